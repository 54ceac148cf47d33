/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: partition and host properties (HvCallGetPartitionProperty,
 * HvCallGetPartitionPropertyEx, HvCallSetPartitionProperty).
 *
 * The host's own properties (target HV_PARTITION_ID_SELF, the /dev/mshv fd)
 * come from what the host KVM gives a guest: the CPUID a vCPU has after
 * KVM_SET_CPUID2 of KVM_GET_SUPPORTED_CPUID's table (emu_host_load says why
 * not the supported table itself) gives the processor feature banks
 * (hv_partition_processor_features), the XSAVE features
 * (hv_partition_processor_xsave_features) and XSAVE components, the vendor
 * and MAXPHYADDR; KVM_GET_TSC_KHZ the clock frequency. A child partition's
 * properties start from the host's minus what MSHV_CREATE_PARTITION v2
 * disabled (plus what KVM cannot take away from a guest), plus the values the
 * VMM stored; its VPs' CPUID shows the same features (emu_props_cpuid_filter).
 *
 * The rules, property by property, are in emu_props_table below: who answers
 * (host and/or child partition), read-only, "early" (set only between
 * HvCallCreatePartition and HvCallInitializePartition), banked (bank header
 * and masks, HvCallGetPartitionPropertyEx only). Statuses:
 *   unknown code                         HV_STATUS_UNKNOWN_PROPERTY
 *   banked code through 0x44 / 0x45      HV_STATUS_INVALID_PARAMETER
 *   set of a read-only property          HV_STATUS_ACCESS_DENIED
 *   early property set after initialize  HV_STATUS_INVALID_PARTITION_STATE
 *   other property set before initialize HV_STATUS_INVALID_PARTITION_STATE
 *   value outside the property's range   HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE
 * Only the first and fourth are documented for these properties (TLFS
 * HvGetPartitionProperty / HvSetPartitionProperty, HvCallInitializePartition);
 * the reasons for the others are at each check.
 */
#include <fcntl.h>
#include <stdlib.h>

#include "emu.h"
#include "hypercall.h"

#define EMU_MAX_XSAVE_SIZE 4096		/* QEMU's MSHV_GET_VP_STATE XSAVE buffer; struct kvm_xsave */
#define EMU_BIT(n) (1ULL << (n))

/* ---- host CPUID -> Hyper-V feature masks -------------------------------- */

/* x86 CPUID registers (Intel SDM vol. 2A "CPUID", AMD APM vol. 3 appendix E). */
enum emu_cpuid_reg { R_EAX, R_EBX, R_ECX, R_EDX };

/* One Hyper-V feature bit and the CPUID bit that shows it (a bit may have several). */
struct emu_feature_map {
	uint8_t mask, hv_bit;		/* mask: 0/1 = processor bank 0/1, 2 = XSAVE features */
	uint32_t leaf, subleaf;
	uint8_t reg, bit;
};

enum { EMU_FEATURES0, EMU_FEATURES1, EMU_XSAVE_FEATURES, EMU_HOST_MASKS };

#define F0(name, l, s, r, b) { EMU_FEATURES0, HV_PROC_FEATURE0_##name##_BIT, l, s, r, b }
#define F1(name, l, s, r, b) { EMU_FEATURES1, HV_PROC_FEATURE1_##name##_BIT, l, s, r, b }
#define FX(name, l, s, r, b) { EMU_XSAVE_FEATURES, HV_PROC_XSAVE_FEATURE_##name##_BIT, l, s, r, b }

static const struct emu_feature_map emu_features[] = {
	/* hv_partition_processor_features bank 0 */
	F0(SSE3, 1, 0, R_ECX, 0), F0(LAHF_SAHF, 0x80000001, 0, R_ECX, 0),
	F0(SSSE3, 1, 0, R_ECX, 9), F0(SSE4_1, 1, 0, R_ECX, 19), F0(SSE4_2, 1, 0, R_ECX, 20),
	F0(SSE4A, 0x80000001, 0, R_ECX, 6), F0(XOP, 0x80000001, 0, R_ECX, 11),
	F0(POPCNT, 1, 0, R_ECX, 23), F0(CMPXCHG16B, 1, 0, R_ECX, 13),
	F0(ALTMOVCR8, 0x80000001, 0, R_ECX, 4), F0(LZCNT, 0x80000001, 0, R_ECX, 5),
	F0(MIS_ALIGN_SSE, 0x80000001, 0, R_ECX, 7), F0(MMX_EXT, 0x80000001, 0, R_EDX, 22),
	F0(AMD3DNOW, 0x80000001, 0, R_EDX, 31), F0(EXTENDED_AMD3DNOW, 0x80000001, 0, R_EDX, 30),
	F0(PAGE_1GB, 0x80000001, 0, R_EDX, 26), F0(AES, 1, 0, R_ECX, 25),
	F0(PCLMULQDQ, 1, 0, R_ECX, 1), F0(PCID, 1, 0, R_ECX, 17),
	F0(FMA4, 0x80000001, 0, R_ECX, 16), F0(F16C, 1, 0, R_ECX, 29),
	F0(RDRAND, 1, 0, R_ECX, 30), F0(RD_WR_FS_GS, 7, 0, R_EBX, 0), F0(SMEP, 7, 0, R_EBX, 7),
	F0(ENHANCED_FAST_STRING, 7, 0, R_EBX, 9), F0(BMI1, 7, 0, R_EBX, 3),
	F0(BMI2, 7, 0, R_EBX, 8), F0(MOVBE, 1, 0, R_ECX, 22), F0(RDSEED, 7, 0, R_EBX, 18),
	F0(ADX, 7, 0, R_EBX, 19), F0(INTEL_PREFETCH, 0x80000001, 0, R_ECX, 8),
	F0(SMAP, 7, 0, R_EBX, 20), F0(HLE, 7, 0, R_EBX, 4), F0(RTM, 7, 0, R_EBX, 11),
	F0(RDTSCP, 0x80000001, 0, R_EDX, 27), F0(CLFLUSHOPT, 7, 0, R_EBX, 23),
	F0(CLWB, 7, 0, R_EBX, 24), F0(SHA, 7, 0, R_EBX, 29), F0(INVPCID, 7, 0, R_EBX, 10),
	/* speculation controls: Intel leaf 7 EDX, AMD leaf 0x80000008 EBX */
	F0(IBRS, 7, 0, R_EDX, 26), F0(IBRS, 0x80000008, 0, R_EBX, 14),
	F0(STIBP, 7, 0, R_EDX, 27), F0(STIBP, 0x80000008, 0, R_EBX, 15),
	F0(IBPB, 7, 0, R_EDX, 26), F0(IBPB, 0x80000008, 0, R_EBX, 12),
	F0(MDD, 7, 0, R_EDX, 31), F0(MDD, 0x80000008, 0, R_EBX, 24),
	F0(SSB_NO, 0x80000008, 0, R_EBX, 26), F0(VIRT_SPEC_CTRL, 0x80000008, 0, R_EBX, 25),
	F0(FAST_SHORT_REP_MOV, 7, 0, R_EDX, 4), F0(L1DCACHE_FLUSH, 7, 0, R_EDX, 28),
	F0(RD_PID, 7, 0, R_ECX, 22), F0(UMIP, 7, 0, R_ECX, 2), F0(MB_CLEAR, 7, 0, R_EDX, 10),
	/* bank 1 */
	F1(ACOUNT_MCOUNT, 6, 0, R_ECX, 0),
	F1(TSC_INVARIANT, 0x80000007, 0, R_EDX, 8), F1(CL_ZERO, 0x80000008, 0, R_EBX, 0),
	F1(RDPRU, 0x80000008, 0, R_EBX, 4), F1(LA57, 7, 0, R_ECX, 16),
	F1(PSFD, 7, 2, R_EDX, 0), F1(PSFD, 0x80000008, 0, R_EBX, 28),
	F1(CET_SS, 7, 0, R_ECX, 7), F1(CET_IBT, 7, 0, R_EDX, 20),
	F1(ENQCMD, 7, 0, R_ECX, 29), F1(UMWAIT_TPAUSE, 7, 0, R_ECX, 5),
	F1(MOVDIRI, 7, 0, R_ECX, 27), F1(MOVDIR64B, 7, 0, R_ECX, 28),
	F1(CLDEMOTE, 7, 0, R_ECX, 25), F1(SERIALIZE, 7, 0, R_EDX, 14),
	F1(TSC_DEADLINE_TMR, 1, 0, R_ECX, 24), F1(TSC_ADJUST, 7, 0, R_EBX, 1),
	F1(FZLREP_MOVSB, 7, 1, R_EAX, 10), F1(FSREP_STOSB, 7, 1, R_EAX, 11),
	F1(FSREP_CMPSB, 7, 1, R_EAX, 12),
	/* hv_partition_processor_xsave_features */
	FX(XSAVE, 1, 0, R_ECX, 26), FX(XSAVEOPT, 0xd, 1, R_EAX, 0), FX(AVX, 1, 0, R_ECX, 28),
	FX(AVX2, 7, 0, R_EBX, 5), FX(FMA, 1, 0, R_ECX, 12), FX(MPX, 7, 0, R_EBX, 14),
	FX(AVX512, 7, 0, R_EBX, 16), FX(AVX512_DQ, 7, 0, R_EBX, 17),
	FX(AVX512_CD, 7, 0, R_EBX, 28), FX(AVX512_BW, 7, 0, R_EBX, 30),
	FX(AVX512_VL, 7, 0, R_EBX, 31), FX(XSAVE_COMP, 0xd, 1, R_EAX, 1),
	FX(XSAVE_SUPERVISOR, 0xd, 1, R_EAX, 3), FX(XCR1, 0xd, 1, R_EAX, 2),
	FX(AVX512_BITALG, 7, 0, R_ECX, 12), FX(AVX512_I_FMA, 7, 0, R_EBX, 21),
	FX(AVX512_V_BMI, 7, 0, R_ECX, 1), FX(AVX512_V_BMI2, 7, 0, R_ECX, 6),
	FX(AVX512_VNNI, 7, 0, R_ECX, 11), FX(GFNI, 7, 0, R_ECX, 8), FX(VAES, 7, 0, R_ECX, 9),
	FX(AVX512_V_POPCNTDQ, 7, 0, R_ECX, 14), FX(VPCLMULQDQ, 7, 0, R_ECX, 10),
	FX(AVX512_BF16, 7, 1, R_EAX, 5), FX(AVX512_VP2_INTERSECT, 7, 0, R_EDX, 8),
	FX(AVX512_FP16, 7, 0, R_EDX, 23), FX(XFD, 0xd, 1, R_EAX, 4),
	FX(AMX_TILE, 7, 0, R_EDX, 24), FX(AMX_BF16, 7, 0, R_EDX, 22), FX(AMX_INT8, 7, 0, R_EDX, 25),
	FX(AVX_VNNI, 7, 1, R_EAX, 4), FX(AVX_IFMA, 7, 1, R_EAX, 23),
	FX(AVX_NE_CONVERT, 7, 1, R_EDX, 5), FX(AVX_VNNI_INT8, 7, 1, R_EDX, 4),
	FX(AVX_VNNI_INT16, 7, 1, R_EDX, 10), FX(AVX10_1_256, 0x24, 0, R_EBX, 17),
	FX(AVX10_1_512, 0x24, 0, R_EBX, 18), FX(AMX_FP16, 7, 1, R_EAX, 21),
	FX(APX, 7, 1, R_EDX, 21),
};

/*
 * Synthetic processor features the emulator implements, hence what
 * HV_PARTITION_PROPERTY_ASSIGNABLE_SYNTHETIC_PROC_FEATURES offers: the
 * hypervisor CPUID leaves and the synthetic registers the emulator answers
 * (VP runtime, reference counter and TSC page, SynIC, synthetic timers,
 * interrupt-control registers and VP assist page, hypercall and guest OS id
 * MSRs, VP index, TSC/APIC frequency MSRs). Keep it equal to what the
 * synthetic register code gates: a bit here promises a VMM that the guest can
 * use the feature.
 */
#define S(name) EMU_BIT(HV_SYNTHETIC_PROC_FEATURE_##name##_BIT)
static const uint64_t emu_synthetic_assignable =
	S(HYPERVISOR_PRESENT) | S(HV1) | S(ACCESS_VP_RUN_TIME_REG) |
	S(ACCESS_PARTITION_REFERENCE_COUNTER) | S(ACCESS_SYNIC_REGS) |
	S(ACCESS_SYNTHETIC_TIMER_REGS) | S(ACCESS_INTR_CTRL_REGS) | S(ACCESS_HYPERCALL_REGS) |
	S(ACCESS_VP_INDEX) | S(ACCESS_PARTITION_REFERENCE_TSC) | S(ACCESS_FREQUENCY_REGS);

/*
 * Every bit union hv_partition_synthetic_processor_features names on x86_64;
 * the others are reserved.
 */
static const uint64_t emu_synthetic_named =
	S(HYPERVISOR_PRESENT) | S(HV1) | S(ACCESS_VP_RUN_TIME_REG) |
	S(ACCESS_PARTITION_REFERENCE_COUNTER) | S(ACCESS_SYNIC_REGS) |
	S(ACCESS_SYNTHETIC_TIMER_REGS) | S(ACCESS_INTR_CTRL_REGS) | S(ACCESS_HYPERCALL_REGS) |
	S(ACCESS_VP_INDEX) | S(ACCESS_PARTITION_REFERENCE_TSC) | S(ACCESS_GUEST_IDLE_REG) |
	S(ACCESS_FREQUENCY_REGS) | S(ENABLE_EXTENDED_GVA_RANGES_FOR_FLUSH_VA_LIST) |
	S(ACCESS_VSM) | S(FAST_HYPERCALL_OUTPUT) | S(START_VIRTUAL_PROCESSOR) |
	S(DIRECT_SYNTHETIC_TIMERS) | S(EXTENDED_PROCESSOR_MASKS) | S(TB_FLUSH_HYPERCALLS) |
	S(SYNTHETIC_CLUSTER_IPI) | S(NOTIFY_LONG_SPIN_WAIT) | S(QUERY_NUMA_DISTANCE) |
	S(SIGNAL_EVENTS) | S(RETARGET_DEVICE_INTERRUPT) | S(RESTORE_TIME) |
	S(ENLIGHTENED_VMCS) | S(NESTED_DEBUG_CTL) | S(SYNTHETIC_TIME_UNHALTED_TIMER) |
	S(IDLE_SPEC_CTRL) | S(WAKE_VPS) | S(ACCESS_VP_REGS) | S(MANAGEMENT_VTL_SYNIC_SUPPORT) |
	S(PROXY_INTERRUPT_DOORBELL_SUPPORT) | S(MMIO_HYPERCALLS) |
	S(MAP_PARTITION_EVENT_LOG_BUFFER) | S(LOWER_VTL_GUEST_REQUEST_SUPPORT) |
	S(PROXY_INTERRUPT_REDIRECT_SUPPORT) | S(INSTALL_INTERCEPT) |
	S(PIN_GPA_PAGE_RANGE_SUPPORT) | S(HEAT_HINT_BENEFICIAL_SUPPORT) |
	S(RING_BUFFER_MESSAGE_PORT_SUPPORT) | S(FLUSH_GUEST_PHYSICAL_ADDRESS_SPACE);
#undef S

/* ---- the host's answers, read from KVM once per process ------------------- */

struct emu_host {
	int err;			/* errno if KVM could not be asked */
	uint64_t masks[EMU_HOST_MASKS];	/* FEATURES0, FEATURES1, XSAVE_FEATURES */
	uint64_t kept[EMU_HOST_MASKS];	/* of those, what KVM leaves a guest that is denied them */
	uint64_t vendor;		/* HV_PROCESSOR_VENDOR_* */
	uint64_t phys_bits;		/* MAXPHYADDR */
	uint64_t xcr0;			/* XSAVE user components a guest can enable (CPUID 0xD.0) */
	uint64_t kept_xcr0;		/* of those, what a guest denied them keeps */
	struct {
		uint32_t size, std_off;
		bool align64;
	} comp[64];			/* CPUID 0xD.i for i >= 2 */
};

static struct emu_host emu_host;
static pthread_once_t emu_host_once = PTHREAD_ONCE_INIT;
static uint64_t emu_host_tsc_hz;
static pthread_once_t emu_host_tsc_once = PTHREAD_ONCE_INIT;

static uint32_t emu_cpuid_reg(const struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == R_EAX ? e->eax : reg == R_EBX ? e->ebx : reg == R_ECX ? e->ecx : e->edx;
}

/* HV_PROCESSOR_VENDOR from the CPUID vendor string (leaf 0: EBX, EDX, ECX). */
static uint64_t emu_vendor(const struct kvm_cpuid_entry2 *e)
{
	char id[12];

	memcpy(id, &e->ebx, 4);
	memcpy(id + 4, &e->edx, 4);
	memcpy(id + 8, &e->ecx, 4);
	if (!memcmp(id, "AuthenticAMD", 12))
		return HV_PROCESSOR_VENDOR_AMD;
	if (!memcmp(id, "HygonGenuine", 12))
		return HV_PROCESSOR_VENDOR_HYGON;
	/*
	 * GenuineIntel, and the other VMX-based x86 vendors, for which the
	 * hypervisor defines no code of its own.
	 */
	return HV_PROCESSOR_VENDOR_INTEL;
}

/* The Hyper-V feature masks whose CPUID bits c shows. */
static void emu_features_of(struct kvm_cpuid2 *c, uint64_t masks[EMU_HOST_MASKS])
{
	for (size_t i = 0; i < sizeof(emu_features) / sizeof(emu_features[0]); i++) {
		const struct emu_feature_map *f = &emu_features[i];
		struct kvm_cpuid_entry2 *e = emu_cpuid_find(c, f->leaf, f->subleaf);

		if (e && (emu_cpuid_reg(e, f->reg) >> f->bit) & 1)
			masks[f->mask] |= EMU_BIT(f->hv_bit);
	}
}

static uint32_t *emu_cpuid_reg_ptr(struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == R_EAX ? &e->eax : reg == R_EBX ? &e->ebx : reg == R_ECX ? &e->ecx : &e->edx;
}

/* XSAVE user components of CPUID 0xD.0 (EDX:EAX), x87 and SSE always. */
static uint64_t emu_xcr0_of(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e = emu_cpuid_find(c, 0xd, 0);
	uint64_t xcr0 = e ? (uint64_t)e->edx << 32 | e->eax : 0;

	return xcr0 | HV_X64_XFEM_LEGACY_X87 | HV_X64_XFEM_LEGACY_SSE;
}

/*
 * A vCPU of a scratch VM is given sup (*view: what it then has) and sup with
 * every CPUID bit of emu_features cleared and x87|SSE alone in 0xD.0 (*kept:
 * what it has anyway). Both NULL when KVM could not be asked.
 */
static void emu_host_vcpu_views(int kvm, struct kvm_cpuid2 *sup, struct kvm_cpuid2 **view,
				struct kvm_cpuid2 **kept)
{
	size_t size = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *bare = malloc(size);
	struct kvm_cpuid_entry2 *e;
	int vm, vcpu = -1;

	*view = *kept = NULL;
	vm = emu_sys_ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0)
		vcpu = emu_sys_ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu >= 0 && bare) {
		memcpy(bare, sup, size);
		for (size_t i = 0; i < sizeof(emu_features) / sizeof(emu_features[0]); i++) {
			const struct emu_feature_map *f = &emu_features[i];

			e = emu_cpuid_find(bare, f->leaf, f->subleaf);
			if (e)
				*emu_cpuid_reg_ptr(e, f->reg) &= ~(1U << f->bit);
		}
		e = emu_cpuid_find(bare, 0xd, 0);
		if (e) {
			e->eax = HV_X64_XFEM_LEGACY_X87 | HV_X64_XFEM_LEGACY_SSE;
			e->edx = 0;
		}
		*view = emu_cpuid_as_taken(vcpu, sup);
		*kept = emu_cpuid_as_taken(vcpu, bare);
		if (!*view || !*kept) {
			free(*view);
			free(*kept);
			*view = *kept = NULL;
		}
	}
	free(bare);
	if (vcpu >= 0)
		emu_sys_close(vcpu);
	if (vm >= 0)
		emu_sys_close(vm);
}

/*
 * The host's features are the CPUID a vCPU has once given everything
 * KVM_GET_SUPPORTED_CPUID offers: that table is what the guest's CPUID
 * answers from, and what it may enable (kvm_set_xcr checks XCR0 against the
 * vCPU's CPUID 0xD.0, kvm_is_valid_cr4 CR4.OSXSAVE against its XSAVE bit).
 * On an ordinary KVM it is the supported table. A paravirtual KVM that runs
 * guest user code on the hardware (kvm_pvm) can report far less as supported
 * (leaf 1 without XSAVE or AVX while 0xD.0 lists the AVX state) and give every
 * vCPU the hardware's user-level features whatever its VMM sets: its guests
 * read them, enable them (CR4.OSXSAVE, XSETBV), run AVX at CPL 3, and
 * KVM_GET_XSAVE holds their YMM state. Trusting the supported table there
 * would give partitions an XSAVE area without the state their guests use.
 * What KVM leaves a vCPU whose table clears every feature is what the
 * partition cannot take away from its guest (emu_props_new).
 */
static void emu_host_load(void)
{
	int kvm = emu_sys_openat(AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC, 0);
	struct kvm_cpuid2 *sup, *view, *kept;
	struct kvm_cpuid_entry2 *e;

	if (kvm < 0) {
		emu_host.err = errno;
		return;
	}
	sup = emu_cpuid_get(kvm, KVM_GET_SUPPORTED_CPUID);
	emu_host.err = sup ? 0 : errno;
	if (sup)
		emu_host_vcpu_views(kvm, sup, &view, &kept);
	emu_sys_close(kvm);
	if (!sup)
		return;
	if (!view) {		/* no scratch vCPU: the supported table, nothing kept */
		view = sup;
		sup = NULL;
	} else {
		emu_features_of(kept, emu_host.kept);
		emu_host.kept_xcr0 = emu_xcr0_of(kept);
	}
	emu_features_of(view, emu_host.masks);
	e = emu_cpuid_find(view, 0, 0);
	emu_host.vendor = e ? emu_vendor(e) : HV_PROCESSOR_VENDOR_INTEL;
	/* SDM "CPUID 80000008H": EAX[7:0]; without the leaf, 36 (PAE) */
	e = emu_cpuid_find(view, 0x80000008, 0);
	emu_host.phys_bits = e && (e->eax & 0xff) ? e->eax & 0xff : 36;
	emu_host.xcr0 = emu_xcr0_of(view);
	emu_host.kept_xcr0 &= emu_host.xcr0;
	for (uint32_t i = 2; i < 63; i++) {
		e = emu_cpuid_find(view, 0xd, i);
		if (!e || !(emu_host.xcr0 & EMU_BIT(i)))
			continue;
		emu_host.comp[i].size = e->eax;
		emu_host.comp[i].std_off = e->ebx;
		emu_host.comp[i].align64 = e->ecx & 2;
	}
	for (int i = 0; i < EMU_HOST_MASKS; i++)
		emu_host.kept[i] &= emu_host.masks[i];
	free(sup);
	free(view);
	free(kept);
}

static const struct emu_host *emu_host_get(void)
{
	pthread_once(&emu_host_once, emu_host_load);
	if (emu_host.err) {
		errno = emu_host.err;
		return NULL;
	}
	return &emu_host;
}

/*
 * The TSC frequency KVM gives its guests (KVM_GET_TSC_KHZ on a VM, or on a
 * vCPU for KVMs without the VM ioctl). The emulator never scales the TSC
 * (no KVM_SET_TSC_KHZ), so every partition runs at this frequency.
 */
static void emu_host_tsc_load(void)
{
	int kvm = emu_sys_openat(AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC, 0);
	int vm, vcpu, khz;

	if (kvm < 0)
		return;
	vm = emu_sys_ioctl(kvm, KVM_CREATE_VM, 0);
	emu_sys_close(kvm);
	if (vm < 0)
		return;
	khz = emu_sys_ioctl(vm, KVM_GET_TSC_KHZ, NULL);
	if (khz <= 0) {
		vcpu = emu_sys_ioctl(vm, KVM_CREATE_VCPU, 0);
		if (vcpu >= 0) {
			khz = emu_sys_ioctl(vcpu, KVM_GET_TSC_KHZ, NULL);
			emu_sys_close(vcpu);
		}
	}
	emu_sys_close(vm);
	if (khz > 0)
		emu_host_tsc_hz = (uint64_t)khz * 1000;
}

/* ---- a child partition's properties --------------------------------------- */

struct emu_props {
	uint64_t masks[EMU_HOST_MASKS];	/* enabled: host minus the v2 disabled banks */
	struct emu_xsave_layout xsave;
	/* values the VMM sets (read without pt->lock from VP fds: atomic) */
	uint64_t privilege_flags;
	uint64_t physical_address_width;
	uint64_t processors_per_socket;
	uint64_t unimplemented_msr_action;
};

/*
 * XSAVE state components the partition's XSAVE features use: x87 and SSE
 * always, the others only with XSAVE enabled and their feature enabled
 * (AVX: YMM; MPX: BNDREGS, BNDCSR; AVX-512 on AVX: opmask, ZMM_Hi256,
 * Hi16_ZMM; AMX-TILE: XTILECFG, XTILEDATA), or when KVM leaves the guest a
 * component of the group whatever its CPUID says (emu_host.kept_xcr0): the
 * guest can then use it, so its state is the partition's. The user
 * component no Hyper-V XSAVE feature controls, PKRU (bit 9, reserved in
 * union hv_x64_xsave_xfem_register), is in only in that second case: a KVM
 * that gives guests the hardware's XCR0 components (kvm_pvm) leaves them
 * PKRU, and XSAVE_STATES then says so, as the guest's CPUID 0xD.0 does.
 */
#define EMU_XSAVE_NO_FEATURE 0xfe	/* no Hyper-V feature bit enables the group */
#define EMU_XFEM_PKRU (1ULL << 9)	/* SDM 13.1: XSAVE state component 9, PKRU */
static const struct {
	uint8_t feature, needs;		/* needs: a second feature bit, or 0xff */
	uint64_t states;
} emu_xsave_groups[] = {
	{ HV_PROC_XSAVE_FEATURE_AVX_BIT, 0xff, HV_X64_XFEM_AVX },
	{ HV_PROC_XSAVE_FEATURE_MPX_BIT, 0xff, HV_X64_XFEM_MPX_BNDREG | HV_X64_XFEM_MPX_BNDCSR },
	{ HV_PROC_XSAVE_FEATURE_AVX512_BIT, HV_PROC_XSAVE_FEATURE_AVX_BIT,
	  HV_X64_XFEM_AVX_512_OP_MASK | HV_X64_XFEM_AVX_512_ZMMHI | HV_X64_XFEM_AVX_512_ZMM16_31 },
	{ EMU_XSAVE_NO_FEATURE, 0xff, EMU_XFEM_PKRU },
	{ HV_PROC_XSAVE_FEATURE_AMX_TILE_BIT, 0xff, HV_X64_XFEM_XTILE_CFG | HV_X64_XFEM_XTILE_DATA },
};

/*
 * Lay the compacted XSAVE area out (SDM 13.4.3: components in index order,
 * 64-byte aligned where CPUID 0xD.i ECX[1] says so). The groups come in
 * component order, so each is placed after the previous one. A group that
 * does not fit the 4096 bytes QEMU passes to MSHV_GET_VP_STATE
 * (mshv_vp_ioctl_get_set_state fails with EINVAL when MAX_XSAVE_DATA_SIZE
 * exceeds the caller's buf_sz), or KVM's 4096-byte struct kvm_xsave, is left
 * out whole.
 */
static bool emu_xsave_place(const struct emu_host *h, uint64_t group, uint32_t *off,
			    struct emu_xsave_layout *x)
{
	uint32_t at = *off;

	for (int i = 2; i < 63; i++) {
		uint32_t size = h->comp[i].size, start;

		if (!(group & EMU_BIT(i)))
			continue;
		start = h->comp[i].align64 ? (at + 63) & ~63U : at;
		if (!size || start + size > EMU_MAX_XSAVE_SIZE ||
		    h->comp[i].std_off + size > EMU_MAX_XSAVE_SIZE)
			return false;
		if (x) {
			x->std_off[i] = h->comp[i].std_off;
			x->comp_off[i] = start;
			x->comp_size[i] = size;
			if (h->comp[i].align64)
				x->align64 |= EMU_BIT(i);
		}
		at = start + size;
	}
	*off = at;
	return true;
}

static void emu_xsave_compute(const struct emu_host *h, uint64_t features,
			      struct emu_xsave_layout *x)
{
	uint32_t off = 576;	/* legacy area 512 + XSAVE header 64 */

	memset(x, 0, sizeof(*x));
	x->states = HV_X64_XFEM_LEGACY_X87 | HV_X64_XFEM_LEGACY_SSE;
	for (size_t g = 0; g < sizeof(emu_xsave_groups) / sizeof(emu_xsave_groups[0]); g++) {
		uint64_t want = emu_xsave_groups[g].states;
		uint8_t needs = emu_xsave_groups[g].needs;
		uint32_t end = off;

		bool enabled = emu_xsave_groups[g].feature != EMU_XSAVE_NO_FEATURE &&
			       (features & EMU_BIT(HV_PROC_XSAVE_FEATURE_XSAVE_BIT)) &&
			       (features & EMU_BIT(emu_xsave_groups[g].feature)) &&
			       (needs == 0xff || (features & EMU_BIT(needs)));

		if ((!enabled && !(h->kept_xcr0 & want)) || (h->xcr0 & want) != want ||
		    !emu_xsave_place(h, want, &end, NULL))
			continue;
		emu_xsave_place(h, want, &off, x);
		x->states |= want;
	}
	x->size = off;
}

/* Built on first use; VP-fd calls do not hold pt->lock, so building takes its own lock. */
static pthread_mutex_t emu_props_lock = PTHREAD_MUTEX_INITIALIZER;

static struct emu_props *emu_props_new(struct emu_partition *pt)
{
	const struct emu_host *h = emu_host_get();
	struct emu_props *p;

	if (!h)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	/*
	 * What the VMM disables is taken away, but not what KVM leaves the
	 * guest anyway (emu_host_load): the guest has it, so the partition
	 * says it has it rather than describe a guest that does not exist.
	 */
	for (int i = 0; i < HV_PARTITION_PROCESSOR_FEATURES_BANKS; i++)
		p->masks[i] = (h->masks[i] & ~pt->cpu_fbanks[i]) | h->kept[i];
	p->masks[EMU_XSAVE_FEATURES] = (h->masks[EMU_XSAVE_FEATURES] & ~pt->disabled_xsave) |
				       h->kept[EMU_XSAVE_FEATURES];
	emu_xsave_compute(h, p->masks[EMU_XSAVE_FEATURES], &p->xsave);
	p->physical_address_width = h->phys_bits;
	p->processors_per_socket = 1;
	p->unimplemented_msr_action = HV_UNIMPLEMENTED_MSR_ACTION_FAULT;
	return p;
}

static struct emu_props *emu_props(struct emu_partition *pt)
{
	struct emu_props *p = __atomic_load_n((struct emu_props **)&pt->props, __ATOMIC_ACQUIRE);

	if (p)
		return p;
	pthread_mutex_lock(&emu_props_lock);
	p = pt->props;
	if (!p) {
		p = emu_props_new(pt);
		__atomic_store_n((struct emu_props **)&pt->props, p, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&emu_props_lock);
	return p;
}

const struct emu_xsave_layout *emu_xsave_layout(struct emu_partition *pt)
{
	struct emu_props *p = emu_props(pt);

	return p ? &p->xsave : NULL;
}

/*
 * The partition's features in a VP's CPUID table c: the CPUID bits of
 * processor and XSAVE features it lacks are cleared (a CPUID bit that
 * several Hyper-V features share goes when none of them is enabled), and
 * leaf 0xD describes XSAVE_STATES: 0xD.0 EDX:EAX are its user components,
 * ECX the standard-form size they need (SDM "CPUID leaf 0DH"; EBX, the size
 * for the current XCR0, is KVM's: kvm_update_cpuid_runtime), and the 0xD.i of
 * components outside it are zero, as for a component the CPU lacks.
 */
int emu_props_cpuid_filter(struct emu_partition *pt, struct kvm_cpuid2 *c)
{
	const size_t n = sizeof(emu_features) / sizeof(emu_features[0]);
	struct emu_props *p = emu_props(pt);
	const struct emu_xsave_layout *x;
	struct kvm_cpuid_entry2 *e;
	uint32_t std_size = 576;	/* legacy area and XSAVE header */

	if (!p)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct emu_feature_map *f = &emu_features[i];
		bool wanted = false;

		for (size_t j = 0; j < n && !wanted; j++) {
			const struct emu_feature_map *g = &emu_features[j];

			wanted = g->leaf == f->leaf && g->subleaf == f->subleaf &&
				 g->reg == f->reg && g->bit == f->bit &&
				 (p->masks[g->mask] & EMU_BIT(g->hv_bit));
		}
		e = emu_cpuid_find(c, f->leaf, f->subleaf);
		if (e && !wanted)
			*emu_cpuid_reg_ptr(e, f->reg) &= ~(1U << f->bit);
	}
	x = &p->xsave;
	for (uint32_t i = 2; i < 63; i++) {
		if (x->states & EMU_BIT(i)) {
			if (x->std_off[i] + x->comp_size[i] > std_size)
				std_size = x->std_off[i] + x->comp_size[i];
			continue;
		}
		e = emu_cpuid_find(c, 0xd, i);
		if (e && !(e->ecx & 1))		/* ECX[0]: an IA32_XSS (supervisor) component */
			e->eax = e->ebx = e->ecx = e->edx = 0;
	}
	e = emu_cpuid_find(c, 0xd, 0);
	if (e) {
		e->eax = (uint32_t)x->states;
		e->edx = (uint32_t)(x->states >> 32);
		e->ecx = std_size;
	}
	return 0;
}

void emu_props_destroy(struct emu_partition *pt)
{
	free(pt->props);
	pt->props = NULL;
}

uint64_t emu_unimplemented_msr_action(struct emu_partition *pt)
{
	struct emu_props *p = emu_props(pt);

	return p ? __atomic_load_n(&p->unimplemented_msr_action, __ATOMIC_RELAXED) :
		   HV_UNIMPLEMENTED_MSR_ACTION_FAULT;
}

uint64_t emu_synthetic_proc_features(struct emu_partition *pt)
{
	return __atomic_load_n(&pt->synthetic_proc_features, __ATOMIC_RELAXED) &
	       emu_synthetic_assignable;
}

uint64_t emu_synthetic_proc_features_assignable(void)
{
	return emu_synthetic_assignable;
}

uint64_t emu_partition_phys_bits(struct emu_partition *pt)
{
	struct emu_props *p = emu_props(pt);
	const struct emu_host *h;

	if (p)
		return __atomic_load_n(&p->physical_address_width, __ATOMIC_RELAXED);
	h = emu_host_get();
	return h ? h->phys_bits : 36;
}

/*
 * A region of npages guest pages from pfn lies below 2^PHYSICAL_ADDRESS_WIDTH.
 * KVM's own limit (kvm_arch_prepare_memory_region: kvm_mmu_max_gfn) is the
 * host's MAXPHYADDR with TDP but 52 bits with shadow paging, wider than
 * the MAXPHYADDR the guest is told; this keeps the two the same.
 */
bool emu_gpa_range_fits(struct emu_partition *pt, uint64_t pfn, uint64_t npages)
{
	uint64_t limit = 1ULL << (emu_partition_phys_bits(pt) - 12);

	return npages <= limit && pfn <= limit - npages;
}

/* ---- one function per property ----------------------------------------------- */

/* pt is NULL for the host (HV_PARTITION_ID_SELF); p is pt's store. */
typedef uint16_t emu_prop_get_fn(struct emu_partition *pt, struct emu_props *p, uint64_t *v);
typedef uint16_t emu_prop_set_fn(struct emu_partition *pt, struct emu_props *p, uint64_t v);

static uint64_t emu_load(const uint64_t *at)
{
	return __atomic_load_n(at, __ATOMIC_RELAXED);
}

static void emu_store(uint64_t *at, uint64_t v)
{
	__atomic_store_n(at, v, __ATOMIC_RELAXED);
}

/* PROCESSOR_FEATURES0/1, PROCESSOR_XSAVE_FEATURES: host set, or the partition's enabled set */
static uint16_t emu_get_mask(struct emu_partition *pt, struct emu_props *p, int mask,
			     uint64_t *v)
{
	const struct emu_host *h = emu_host_get();

	if (!h)
		return HV_STATUS_OPERATION_FAILED;
	*v = pt ? p->masks[mask] : h->masks[mask];
	return HV_STATUS_SUCCESS;
}

static uint16_t get_features0(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	return emu_get_mask(pt, p, EMU_FEATURES0, v);
}

static uint16_t get_features1(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	return emu_get_mask(pt, p, EMU_FEATURES1, v);
}

static uint16_t get_xsave_features(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	return emu_get_mask(pt, p, EMU_XSAVE_FEATURES, v);
}

static uint16_t get_vendor(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	const struct emu_host *h = emu_host_get();

	(void)pt;
	(void)p;
	if (!h)
		return HV_STATUS_OPERATION_FAILED;
	*v = h->vendor;
	return HV_STATUS_SUCCESS;
}

static uint16_t get_phys_width(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	const struct emu_host *h = emu_host_get();

	if (!h)
		return HV_STATUS_OPERATION_FAILED;
	*v = pt ? emu_load(&p->physical_address_width) : h->phys_bits;
	return HV_STATUS_SUCCESS;
}

/*
 * PHYSICAL_ADDRESS_WIDTH (early): the guest-physical address bits, at most
 * the host's MAXPHYADDR and at least 32 (the SDM's smallest MAXPHYADDR).
 * The hypervisor's use of a width below the host's is not documented; here
 * it is the partition's guest-physical address space throughout: the
 * guest's CPUID 0x80000008 says it (cpuid.c, unless the VMM registers
 * another result) and guest memory must fit in it (emu_gpa_range_fits).
 */
static uint16_t set_phys_width(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	const struct emu_host *h = emu_host_get();

	(void)pt;
	if (!h)
		return HV_STATUS_OPERATION_FAILED;
	if (v < 32 || v > h->phys_bits)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	emu_store(&p->physical_address_width, v);
	return HV_STATUS_SUCCESS;
}

/* PROCESSOR_CLOCK_FREQUENCY: the TSC frequency in Hz */
static uint16_t get_clock(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	(void)p;
	pthread_once(&emu_host_tsc_once, emu_host_tsc_load);
	if (!emu_host_tsc_hz)
		return HV_STATUS_OPERATION_FAILED;
	*v = emu_host_tsc_hz;
	return HV_STATUS_SUCCESS;
}

static uint16_t get_xsave_states(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	*v = p->xsave.states;
	return HV_STATUS_SUCCESS;
}

static uint16_t get_xsave_size(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	*v = p->xsave.size;
	return HV_STATUS_SUCCESS;
}

/* PRIVILEGE_FLAGS (early): HV_PARTITION_PRIVILEGE_MASK, stored as given; 0 until set */
static uint16_t get_privileges(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	*v = emu_load(&p->privilege_flags);
	return HV_STATUS_SUCCESS;
}

static uint16_t set_privileges(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)pt;
	emu_store(&p->privilege_flags, v);
	return HV_STATUS_SUCCESS;
}

static uint16_t get_synthetic(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)p;
	*v = emu_load(&pt->synthetic_proc_features);
	return HV_STATUS_SUCCESS;
}

/*
 * SYNTHETIC_PROC_FEATURES (early). Reserved bits are refused. Named bits
 * outside the assignable set are accepted and read back, but grant the
 * guest nothing (emu_synthetic_proc_features): QEMU 11.1 and OpenVMM write
 * their masks without reading ASSIGNABLE_SYNTHETIC_PROC_FEATURES and run on
 * the real hypervisor, so it takes at least the bits they write.
 */
static uint16_t set_synthetic(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)p;
	if (v & ~emu_synthetic_named)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	emu_store(&pt->synthetic_proc_features, v);
	return HV_STATUS_SUCCESS;
}

static uint16_t get_time_freeze(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)p;
	*v = emu_time_frozen(pt);
	return HV_STATUS_SUCCESS;
}

/* TIME_FREEZE: 1 freezes the partition's time, 0 thaws it (time.c) */
static uint16_t set_time_freeze(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)p;
	if (v > 1)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	return emu_time_freeze(pt, v == 1);
}

static uint16_t get_reference_time(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)p;
	*v = emu_time_reference(pt);
	return HV_STATUS_SUCCESS;
}

/* REFERENCE_TIME: only while frozen, else INVALID_PARTITION_STATE (time.c) */
static uint16_t set_reference_time(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)p;
	return emu_time_reference_set(pt, v);
}

static uint16_t get_per_socket(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	*v = emu_load(&p->processors_per_socket);
	return HV_STATUS_SUCCESS;
}

/* PROCESSORS_PER_SOCKET: 1..MSHV_MAX_VPS; stored (the guest's topology is its CPUID) */
static uint16_t set_per_socket(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)pt;
	if (!v || v > EMU_MAX_VPS)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	emu_store(&p->processors_per_socket, v);
	return HV_STATUS_SUCCESS;
}

static uint16_t get_tracking(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)p;
	*v = pt->gpa_access_tracking;
	return HV_STATUS_SUCCESS;
}

/* GPA_PAGE_ACCESS_TRACKING 1/0: dirty logging of every memslot (gpap.c) */
static uint16_t set_tracking(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)p;
	if (v > 1)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	if (emu_gpap_set_tracking(pt, v == 1) < 0)
		return HV_STATUS_OPERATION_FAILED;
	pt->gpa_access_tracking = v == 1;
	return HV_STATUS_SUCCESS;
}

static uint16_t get_msr_action(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	*v = emu_load(&p->unimplemented_msr_action);
	return HV_STATUS_SUCCESS;
}

/* UNIMPLEMENTED_MSR_ACTION: FAULT (0) or IGNORE_WRITE_READ_ZERO (1), enum hv_unimplemented_msr_action */
static uint16_t set_msr_action(struct emu_partition *pt, struct emu_props *p, uint64_t v)
{
	(void)pt;
	if (v > HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO)
		return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
	emu_store(&p->unimplemented_msr_action, v);
	return HV_STATUS_SUCCESS;
}

/*
 * VMM_CAPABILITIES bank 0 (mshv_init_vmm_caps reads it at module load): of
 * the optional capabilities only the ASSIGNABLE_SYNTHETIC_PROC_FEATURES
 * property is offered.
 */
static uint16_t get_vmm_caps(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	(void)p;
	*v = HV_VMM_CAP_ASSIGNABLE_SYNTHETIC_PROC_FEATURES;
	return HV_STATUS_SUCCESS;
}

static uint16_t get_assignable(struct emu_partition *pt, struct emu_props *p, uint64_t *v)
{
	(void)pt;
	(void)p;
	*v = emu_synthetic_assignable;
	return HV_STATUS_SUCCESS;
}

/* ---- the table ------------------------------------------------------------------ */

enum {
	EMU_PROP_HOST = 1 << 0,		/* answered for HV_PARTITION_ID_SELF (/dev/mshv) */
	EMU_PROP_GUEST = 1 << 1,	/* answered for a child partition (partition and VP fds) */
	EMU_PROP_EARLY = 1 << 2,	/* set only before HvCallInitializePartition */
	EMU_PROP_BANKED = 1 << 3,	/* bank header + masks: HvCallGetPartitionPropertyEx only */
};

struct emu_prop_desc {
	uint32_t code;
	uint8_t flags;
	emu_prop_get_fn *get;
	emu_prop_set_fn *set;		/* NULL: read-only */
};

#define HOST EMU_PROP_HOST
#define GUEST EMU_PROP_GUEST
#define EARLY EMU_PROP_EARLY
#define BANKED EMU_PROP_BANKED
#define P(name) HV_PARTITION_PROPERTY_##name

static const struct emu_prop_desc emu_props_table[] = {
	{ P(PRIVILEGE_FLAGS), GUEST | EARLY, get_privileges, set_privileges },
	{ P(SYNTHETIC_PROC_FEATURES), GUEST | EARLY, get_synthetic, set_synthetic },
	{ P(TIME_FREEZE), GUEST, get_time_freeze, set_time_freeze },
	{ P(REFERENCE_TIME), GUEST, get_reference_time, set_reference_time },
	{ P(PROCESSORS_PER_SOCKET), GUEST, get_per_socket, set_per_socket },
	{ P(GPA_PAGE_ACCESS_TRACKING), GUEST, get_tracking, set_tracking },
	{ P(UNIMPLEMENTED_MSR_ACTION), GUEST, get_msr_action, set_msr_action },
	{ P(PROCESSOR_VENDOR), HOST | GUEST, get_vendor, NULL },
	{ P(PROCESSOR_XSAVE_FEATURES), HOST | GUEST, get_xsave_features, NULL },
	{ P(PHYSICAL_ADDRESS_WIDTH), HOST | GUEST | EARLY, get_phys_width, set_phys_width },
	{ P(XSAVE_STATES), GUEST, get_xsave_states, NULL },
	{ P(MAX_XSAVE_DATA_SIZE), GUEST, get_xsave_size, NULL },
	{ P(PROCESSOR_CLOCK_FREQUENCY), HOST | GUEST, get_clock, NULL },
	{ P(PROCESSOR_FEATURES0), HOST | GUEST, get_features0, NULL },
	{ P(PROCESSOR_FEATURES1), HOST | GUEST, get_features1, NULL },
	{ P(VMM_CAPABILITIES), HOST | GUEST | BANKED, get_vmm_caps, NULL },
	{ P(ASSIGNABLE_SYNTHETIC_PROC_FEATURES), HOST | GUEST | BANKED, get_assignable, NULL },
};

#undef HOST
#undef GUEST
#undef EARLY
#undef BANKED
#undef P

/* The property code as the target (host or child partition) knows it, or NULL. */
static const struct emu_prop_desc *emu_prop_find(const struct emu_call *c, uint32_t code)
{
	uint8_t who = c->pt ? EMU_PROP_GUEST : EMU_PROP_HOST;

	for (size_t i = 0; i < sizeof(emu_props_table) / sizeof(emu_props_table[0]); i++)
		if (emu_props_table[i].code == code)
			return (emu_props_table[i].flags & who) ? &emu_props_table[i] : NULL;
	return NULL;
}

/*
 * Read a property through 0x44 (ex = false) or 0x101 (ex = true). A banked
 * property gives one bank; the caller writes the header. Through 0x44 a
 * banked code is INVALID_PARAMETER, not UNKNOWN_PROPERTY: the code is known
 * (0x101 answers it), the call cannot carry its value.
 */
static uint16_t emu_get_property(struct emu_call *c, uint32_t code, bool ex, uint64_t *value,
				 bool *banked)
{
	const struct emu_prop_desc *d = emu_prop_find(c, code);
	struct emu_props *p = NULL;

	if (!d)
		return HV_STATUS_UNKNOWN_PROPERTY;
	*banked = d->flags & EMU_PROP_BANKED;
	if (*banked && !ex)
		return HV_STATUS_INVALID_PARAMETER;
	if (c->pt) {
		p = emu_props(c->pt);
		if (!p)
			return HV_STATUS_OPERATION_FAILED;
	}
	return d->get(c->pt, p, value);
}

uint16_t emu_hc_get_property(struct emu_call *c)
{
	const struct hv_input_get_partition_property *in = (const void *)c->in;
	struct hv_output_get_partition_property *out = (void *)c->out;
	uint64_t v = 0;
	bool banked;
	uint16_t st = emu_get_property(c, in->property_code, false, &v, &banked);

	out->property_value = v;
	return st;
}

uint16_t emu_hc_get_property_ex(struct emu_call *c)
{
	const struct hv_input_get_partition_property_ex *in = (const void *)c->in;
	struct hv_output_get_partition_property_ex *out = (void *)c->out;
	union hv_partition_property_ex *val = &out->property_value;
	uint64_t v = 0;
	bool banked = false;
	uint16_t st = emu_get_property(c, in->property_code, true, &v, &banked);

	if (st)
		return st;
	if (banked) {
		/* hv_partition_property_vmm_capabilities' shape: bank_count, reserved, masks */
		val->assignable_synthetic_proc_features.bank_count = 1;
		val->assignable_synthetic_proc_features.features[0] = v;
	} else {
		memcpy(val->buffer, &v, sizeof(v));
	}
	return HV_STATUS_SUCCESS;
}

/*
 * HvCallSetPartitionProperty (partition fd only: the driver allows the
 * asynchronous call nowhere else, so c->pt is set).
 */
uint16_t emu_hc_set_property(struct emu_call *c)
{
	const struct hv_input_set_partition_property *in = (const void *)c->in;
	const struct emu_prop_desc *d = emu_prop_find(c, in->property_code);
	struct emu_partition *pt = c->pt;
	struct emu_props *p;

	if (!d)
		return HV_STATUS_UNKNOWN_PROPERTY;
	/* as for the get: known, but no value of this call can be a bank */
	if (d->flags & EMU_PROP_BANKED)
		return HV_STATUS_INVALID_PARAMETER;
	/*
	 * Read-only (archived TLFS "Partition Properties": vendor, processor
	 * features, ...; derived by the hypervisor): the caller lacks the
	 * right to write it, HV_STATUS_ACCESS_DENIED.
	 */
	if (!d->set)
		return HV_STATUS_ACCESS_DENIED;
	/*
	 * Early properties are frozen by HvCallInitializePartition; the others
	 * need an initialized partition (TLFS hv_partition_property_code: only
	 * early properties may be set before initialize; the archived
	 * HvSetPartitionProperty: the partition must be active).
	 */
	if (!!(d->flags & EMU_PROP_EARLY) == pt->initialized)
		return HV_STATUS_INVALID_PARTITION_STATE;
	p = emu_props(pt);
	if (!p)
		return HV_STATUS_OPERATION_FAILED;
	return d->set(pt, p, in->property_value);
}
