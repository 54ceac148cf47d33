/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: partition and host properties (HvCallGetPartitionProperty,
 * HvCallGetPartitionPropertyEx, HvCallSetPartitionProperty), the processor
 * feature banks derived from what the host KVM offers
 * (HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0/1), and the partition's XSAVE
 * layout (HV_PARTITION_PROPERTY_XSAVE_STATES, MAX_XSAVE_DATA_SIZE).
 */
#include <fcntl.h>
#include <stdlib.h>

#include "emu.h"
#include "hypercall.h"

#define EMU_MAX_XSAVE_SIZE 4096		/* QEMU's MSHV_GET_VP_STATE XSAVE buffer */

/* x86 CPUID bits used for feature banks and XSAVE (Intel SDM / AMD APM). */
enum emu_cpuid_reg { R_EAX, R_EBX, R_ECX, R_EDX };

/* ---- host CPUID -> Hyper-V feature banks -------------------------------- */

struct emu_feature_map {
	uint8_t bank, hv_bit;
	uint32_t leaf, subleaf;
	uint8_t reg, bit;
};

#define F0(name, l, s, r, b) { 0, HV_PROC_FEATURE0_##name##_BIT, l, s, r, b }
#define F1(name, l, s, r, b) { 1, HV_PROC_FEATURE1_##name##_BIT, l, s, r, b }

static const struct emu_feature_map emu_features[] = {
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
	F0(IBRS, 7, 0, R_EDX, 26), F0(STIBP, 7, 0, R_EDX, 27), F0(IBPB, 7, 0, R_EDX, 26),
	F0(FAST_SHORT_REP_MOV, 7, 0, R_EDX, 4), F0(L1DCACHE_FLUSH, 7, 0, R_EDX, 28),
	F0(RD_PID, 7, 0, R_ECX, 22), F0(UMIP, 7, 0, R_ECX, 2), F0(MB_CLEAR, 7, 0, R_EDX, 10),
	F1(TSC_INVARIANT, 0x80000007, 0, R_EDX, 8), F1(CL_ZERO, 0x80000008, 0, R_EBX, 0),
	F1(RDPRU, 0x80000008, 0, R_EBX, 4), F1(LA57, 7, 0, R_ECX, 16),
	F1(PSFD, 7, 2, R_EDX, 0), F1(CET_SS, 7, 0, R_ECX, 7), F1(CET_IBT, 7, 0, R_EDX, 20),
	F1(ENQCMD, 7, 0, R_ECX, 29), F1(UMWAIT_TPAUSE, 7, 0, R_ECX, 5),
	F1(MOVDIRI, 7, 0, R_ECX, 27), F1(MOVDIR64B, 7, 0, R_ECX, 28),
	F1(CLDEMOTE, 7, 0, R_ECX, 25), F1(SERIALIZE, 7, 0, R_EDX, 14),
	F1(TSC_DEADLINE_TMR, 1, 0, R_ECX, 24), F1(TSC_ADJUST, 7, 0, R_EBX, 1),
	F1(FZLREP_MOVSB, 7, 1, R_EAX, 10), F1(FSREP_STOSB, 7, 1, R_EAX, 11),
	F1(FSREP_CMPSB, 7, 1, R_EAX, 12),
};

static uint32_t emu_cpuid_reg(const struct kvm_cpuid_entry2 *e, int reg)
{
	return reg == R_EAX ? e->eax : reg == R_EBX ? e->ebx : reg == R_ECX ? e->ecx : e->edx;
}

/* Host PROCESSOR_FEATURES0/1 from what KVM can give a guest. */
static int emu_host_features(uint64_t banks[2])
{
	int kvm = emu_sys_openat(AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC, 0);
	struct kvm_cpuid2 *c;

	banks[0] = banks[1] = 0;
	if (kvm < 0)
		return -1;
	c = emu_cpuid_get(kvm, KVM_GET_SUPPORTED_CPUID);
	emu_sys_close(kvm);
	if (!c)
		return -1;
	for (size_t i = 0; i < sizeof(emu_features) / sizeof(emu_features[0]); i++) {
		const struct emu_feature_map *f = &emu_features[i];
		struct kvm_cpuid_entry2 *e = emu_cpuid_find(c, f->leaf, f->subleaf);

		if (e && (emu_cpuid_reg(e, f->reg) >> f->bit) & 1)
			banks[f->bank] |= 1ULL << f->hv_bit;
	}
	free(c);
	return 0;
}

/* ---- the partition's property store ------------------------------------- */

struct emu_props {
	bool loaded;
	uint64_t features[HV_PARTITION_PROCESSOR_FEATURES_BANKS];
	uint64_t xsave_features;
	struct emu_xsave_layout xsave;
	uint64_t unimplemented_msr_action;
};

/*
 * XSAVE components the partition gets: KVM's supported XCR0 minus the v2
 * pt_disabled_xsave bits, trimmed so the compacted area fits the 4096 bytes
 * QEMU passes to MSHV_GET_VP_STATE (mshv_vp_ioctl_get_set_state fails with
 * EINVAL when MAX_XSAVE_DATA_SIZE exceeds the caller's buf_sz).
 */
static void emu_xsave_compute(struct kvm_cpuid2 *c, uint64_t disabled,
			      struct emu_xsave_layout *x)
{
	struct kvm_cpuid_entry2 *e = emu_cpuid_find(c, 0xd, 0);
	uint64_t xcr0 = e ? ((uint64_t)e->edx << 32 | e->eax) : 3;
	uint32_t off = 576;	/* legacy area 512 + XSAVE header 64 */

	xcr0 &= ~disabled;
	xcr0 |= HV_X64_XFEM_LEGACY_X87 | HV_X64_XFEM_LEGACY_SSE;
	for (int i = 2; i < 63; i++) {
		struct kvm_cpuid_entry2 *ce;
		uint32_t csize, at;

		if (!(xcr0 & (1ULL << i)))
			continue;
		ce = emu_cpuid_find(c, 0xd, (uint32_t)i);
		csize = ce ? ce->eax : 0;
		at = (ce && (ce->ecx & 2)) ? (off + 63) & ~63U : off;	/* 64-byte aligned */
		if (!csize || at + csize > EMU_MAX_XSAVE_SIZE || ce->ebx + csize > 4096) {
			xcr0 &= ~(1ULL << i);
			continue;
		}
		x->std_off[i] = ce->ebx;
		x->comp_off[i] = at;
		x->comp_size[i] = csize;
		off = at + csize;
	}
	x->states = xcr0;
	x->size = off;
}

/* Lazily built; VP-fd calls do not hold pt->lock, so building takes its own lock. */
static pthread_mutex_t emu_props_lock = PTHREAD_MUTEX_INITIALIZER;

static struct emu_props *emu_props_load(struct emu_partition *pt);

static struct emu_props *emu_props(struct emu_partition *pt)
{
	struct emu_props *p = pt->props;

	if (p && p->loaded)
		return p;
	pthread_mutex_lock(&emu_props_lock);
	p = emu_props_load(pt);
	pthread_mutex_unlock(&emu_props_lock);
	return p;
}

static struct emu_props *emu_props_load(struct emu_partition *pt)
{
	struct emu_props *p = pt->props;
	struct kvm_cpuid2 *c;
	struct kvm_cpuid_entry2 *e;

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return NULL;
		pt->props = p;
	}
	if (p->loaded)
		return p;
	if (emu_host_features(p->features) < 0)
		return NULL;
	for (int i = 0; i < HV_PARTITION_PROCESSOR_FEATURES_BANKS; i++)
		p->features[i] &= ~pt->cpu_fbanks[i];
	c = emu_cpuid_get(pt->kvm_fd, KVM_GET_SUPPORTED_CPUID);
	if (!c)
		return NULL;
	emu_xsave_compute(c, pt->disabled_xsave, &p->xsave);
	e = emu_cpuid_find(c, 1, 0);
	if (e && (e->ecx & (1U << 26)))
		p->xsave_features |= 1ULL << HV_PROC_XSAVE_FEATURE_XSAVE_BIT;
	if (e && (e->ecx & (1U << 28)))
		p->xsave_features |= 1ULL << HV_PROC_XSAVE_FEATURE_AVX_BIT;
	e = emu_cpuid_find(c, 0xd, 1);
	if (e && (e->eax & 1))
		p->xsave_features |= 1ULL << HV_PROC_XSAVE_FEATURE_XSAVEOPT_BIT;
	free(c);
	p->loaded = true;
	return p;
}

const struct emu_xsave_layout *emu_xsave_layout(struct emu_partition *pt)
{
	struct emu_props *p = emu_props(pt);

	return p ? &p->xsave : NULL;
}

void emu_props_destroy(struct emu_partition *pt)
{
	free(pt->props);
	pt->props = NULL;
}

/* ---- partition properties --------------------------------------------------- */

/* The host's own properties (HV_PARTITION_ID_SELF: ROOT_HVCALL on /dev/mshv, mshv_dev_ioctl). */
static uint16_t emu_host_property(uint32_t code, uint64_t *value)
{
	uint64_t banks[2];

	switch (code) {
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0:
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1:
		if (emu_host_features(banks) < 0)
			return HV_STATUS_OPERATION_FAILED;
		*value = banks[code == HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1];
		return HV_STATUS_SUCCESS;
	}
	return HV_STATUS_UNKNOWN_PROPERTY;
}

static uint16_t emu_get_property(struct emu_call *c, uint32_t code, uint64_t *value)
{
	struct emu_partition *pt = c->pt;
	struct emu_props *p;

	if (!pt)
		return emu_host_property(code, value);
	p = emu_props(pt);
	if (!p)
		return HV_STATUS_OPERATION_FAILED;
	switch (code) {
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0:
		*value = p->features[0];
		break;
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1:
		*value = p->features[1];
		break;
	case HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES:
		*value = p->xsave_features;
		break;
	case HV_PARTITION_PROPERTY_XSAVE_STATES:
		*value = p->xsave.states;
		break;
	case HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE:
		*value = p->xsave.size;
		break;
	case HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING:
		*value = pt->gpa_access_tracking;
		break;
	case HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES:
		*value = pt->synthetic_proc_features;
		break;
	case HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION:
		*value = p->unimplemented_msr_action;
		break;
	default:
		return HV_STATUS_UNKNOWN_PROPERTY;
	}
	return HV_STATUS_SUCCESS;
}

/*
 * Settable properties. "Early" ones (processor/XSAVE features, synthetic
 * features) are taken only before INITIALIZE; afterwards the hypervisor
 * refuses them, with INVALID_PARTITION_STATE as the best guess (unverified:
 * mshv_partition_ioctl_initialize does not check, the status is the
 * hypervisor's). XSAVE_STATES and
 * MAX_XSAVE_DATA_SIZE are derived by the hypervisor: ACCESS_DENIED.
 */
static uint16_t emu_set_property(struct emu_call *c, uint32_t code, uint64_t value)
{
	struct emu_partition *pt = c->pt;
	struct emu_props *p = emu_props(pt);

	if (!p)
		return HV_STATUS_OPERATION_FAILED;
	switch (code) {
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0:
	case HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1:
	case HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES:
	case HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES:
		if (pt->initialized)
			return HV_STATUS_INVALID_PARTITION_STATE;
		if (code == HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0)
			p->features[0] = value;
		else if (code == HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1)
			p->features[1] = value;
		else if (code == HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES)
			p->xsave_features = value;
		else
			pt->synthetic_proc_features = value;
		return HV_STATUS_SUCCESS;
	case HV_PARTITION_PROPERTY_XSAVE_STATES:
	case HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE:
		return HV_STATUS_ACCESS_DENIED;
	case HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING:
		if (value > 1)
			return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
		if (emu_gpap_set_tracking(pt, value == 1) < 0)
			return HV_STATUS_OPERATION_FAILED;
		pt->gpa_access_tracking = value == 1;
		return HV_STATUS_SUCCESS;
	case HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION:
		if (value > HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO)
			return HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE;
		p->unimplemented_msr_action = value;
		return HV_STATUS_SUCCESS;
	}
	return HV_STATUS_UNKNOWN_PROPERTY;
}

uint16_t emu_hc_get_property(struct emu_call *c)
{
	const struct hv_input_get_partition_property *in = (const void *)c->in;
	struct hv_output_get_partition_property *out = (void *)c->out;
	uint64_t v = 0;
	uint16_t st = emu_get_property(c, in->property_code, &v);

	out->property_value = v;
	return st;
}

uint16_t emu_hc_get_property_ex(struct emu_call *c)
{
	const struct hv_input_get_partition_property_ex *in = (const void *)c->in;
	struct hv_output_get_partition_property_ex *out = (void *)c->out;
	uint64_t v = 0;
	uint16_t st;

	if (in->property_code == HV_PARTITION_PROPERTY_VMM_CAPABILITIES) {
		/* none of the optional VMM capabilities is emulated */
		out->property_value.vmm_capabilities.bank_count =
			HV_PARTITION_VMM_CAPABILITIES_BANK_COUNT;
		out->property_value.vmm_capabilities.capabilities = 0;
		return HV_STATUS_SUCCESS;
	}
	st = emu_get_property(c, in->property_code, &v);
	memcpy(out->property_value.buffer, &v, sizeof(v));
	return st;
}

uint16_t emu_hc_set_property(struct emu_call *c)
{
	const struct hv_input_set_partition_property *in = (const void *)c->in;

	return emu_set_property(c, in->property_code, in->property_value);
}
