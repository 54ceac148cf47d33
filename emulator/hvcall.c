/* SPDX-License-Identifier: MIT */
/*
 * MSHV_ROOT_HVCALL passthrough (mshv_ioctl_passthru_hvcall,
 * mshv_passthru_hvcall_allowed) and the hypercalls behind it, done by the
 * emulator in place of the hypervisor (kernel-behaviour.md §6).
 *
 * The driver part is exact: checks in §6.1 order, allow-lists per fd, the
 * partition id written into input bytes 0-7, status and reps always written
 * back, output copied only on success, errno from the status (§5).
 * The hypervisor part does what KVM can do and says so when it cannot
 * (never a silent success): see each handler.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "emu.h"

#define EMU_HV_PAGE 4096
#define EMU_MAX_XSAVE_SIZE 4096		/* QEMU's VP-state buffer (§4.2) */

/* x86 CPUID bits used for feature banks and XSAVE (Intel SDM / AMD APM). */
enum emu_cpuid_reg { R_EAX, R_EBX, R_ECX, R_EDX };

/* ---- §5: status -> errno (hv_result_to_errno, hv_status_infos) ----------- */

int emu_hv_status_errno(uint16_t status)
{
	switch (status) {
	case HV_STATUS_SUCCESS:
		return 0;
	case HV_STATUS_INVALID_HYPERCALL_CODE:
	case HV_STATUS_INVALID_HYPERCALL_INPUT:
	case HV_STATUS_INVALID_PARAMETER:
	case HV_STATUS_INVALID_PARTITION_ID:
	case HV_STATUS_INVALID_VP_INDEX:
	case HV_STATUS_INVALID_PORT_ID:
	case HV_STATUS_INVALID_CONNECTION_ID:
	case HV_STATUS_INVALID_LP_INDEX:	/* first entry wins: EINVAL */
	case HV_STATUS_INVALID_REGISTER_VALUE:	/* likewise */
		return EINVAL;
	case HV_STATUS_INSUFFICIENT_MEMORY:
	case HV_STATUS_INSUFFICIENT_ROOT_MEMORY:		/* ≥7.0 */
	case HV_STATUS_INSUFFICIENT_CONTIGUOUS_MEMORY:		/* ≥7.0 */
	case HV_STATUS_INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY:	/* ≥7.0 */
		return ENOMEM;
	case HV_STATUS_INVALID_ALIGNMENT:
	case HV_STATUS_ACCESS_DENIED:
	case HV_STATUS_INVALID_PARTITION_STATE:
	case HV_STATUS_OPERATION_DENIED:
	case HV_STATUS_UNKNOWN_PROPERTY:
	case HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE:
	case HV_STATUS_NOT_FOUND:
	case HV_STATUS_INSUFFICIENT_BUFFERS:
	case HV_STATUS_NOT_ACKNOWLEDGED:
	case HV_STATUS_INVALID_VP_STATE:
	case HV_STATUS_NO_RESOURCES:
	case HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED:
	case HV_STATUS_OPERATION_FAILED:
	case HV_STATUS_TIME_OUT:
	case HV_STATUS_CALL_PENDING:
	case HV_STATUS_VTL_ALREADY_ENABLED:
	default:			/* unknown code: EIO */
		return EIO;
	}
}

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

static struct kvm_cpuid2 *emu_cpuid_alloc(int nent)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));

	if (c)
		c->nent = (uint32_t)nent;
	return c;
}

/* KVM_GET_SUPPORTED_CPUID on /dev/kvm (fd), or the VP's KVM_GET_CPUID2. */
static struct kvm_cpuid2 *emu_cpuid_get(int fd, unsigned long req)
{
	for (int nent = 256; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = emu_cpuid_alloc(nent);

		if (!c) {
			errno = ENOMEM;
			return NULL;
		}
		if (emu_sys_ioctl(fd, req, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

static struct kvm_cpuid_entry2 *emu_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf,
					       uint32_t subleaf)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == leaf &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == subleaf))
			return e;
	}
	return NULL;
}

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

struct emu_cpuid_result {
	uint32_t vp_index;
	struct hv_register_x64_cpuid_result_parameters p;
};

struct emu_props {
	bool loaded;
	uint64_t features[HV_PARTITION_PROCESSOR_FEATURES_BANKS];
	uint64_t xsave_features;
	struct emu_xsave_layout xsave;
	uint64_t unimplemented_msr_action;
	/* REGISTER_INTERCEPT_RESULT (CPUID) entries */
	struct emu_cpuid_result *cpuid;
	uint32_t ncpuid;
	atomic_uint cpuid_gen;
};

/*
 * XSAVE components the partition gets: KVM's supported XCR0 minus the v2
 * pt_disabled_xsave bits, trimmed so the compacted area fits the 4096 bytes
 * QEMU passes to GET_VP_STATE (kernel-behaviour.md §4.2, §7 #9).
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

void emu_hvcall_destroy(struct emu_partition *pt)
{
	struct emu_props *p = pt->props;

	if (p)
		free(p->cpuid);
	free(p);
	pt->props = NULL;
}

/* ---- per-call context ----------------------------------------------------- */

struct emu_call {
	struct emu_partition *pt;	/* NULL for the device origin (host) */
	enum emu_hvcall_origin origin;
	uint16_t reps;			/* requested */
	uint16_t done;			/* reps completed */
	uint8_t *in;			/* one zeroed page holding in_sz bytes */
	uint8_t *out;			/* one zeroed page */
};

/*
 * The VP named in an input, usable for state access: another thread's
 * RUN_VP on it makes it unavailable (the VP fd's mutex serializes only that
 * fd's own calls, §4.3).
 */
static uint16_t emu_call_vp(struct emu_call *c, uint32_t index, uint8_t vtl, struct emu_vp **vpp)
{
	struct emu_vp *vp;

	if (index >= EMU_MAX_VPS || !(vp = c->pt->vps[index]))
		return HV_STATUS_INVALID_VP_INDEX;
	if ((vtl & HV_INPUT_VTL_USE_TARGET_VTL) && (vtl & HV_INPUT_VTL_TARGET_VTL_MASK))
		return HV_STATUS_INVALID_PARAMETER;	/* only VTL 0 exists */
	if (vtl & ~(HV_INPUT_VTL_USE_TARGET_VTL | HV_INPUT_VTL_TARGET_VTL_MASK))
		return HV_STATUS_INVALID_PARAMETER;
	if (atomic_load(&vp->running))
		return HV_STATUS_INVALID_VP_STATE;
	*vpp = vp;
	return HV_STATUS_SUCCESS;
}

/* ---- GET/SET_VP_REGISTERS (rep) ------------------------------------------ */

static uint16_t emu_hc_get_vp_registers(struct emu_call *c)
{
	const struct hv_input_get_vp_registers *in = (const void *)c->in;
	union hv_register_value *out = (void *)c->out;
	struct emu_vp *vp;
	uint16_t st;

	if (sizeof(*in) + (size_t)c->reps * sizeof(uint32_t) > EMU_HV_PAGE ||
	    (size_t)c->reps * sizeof(*out) > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_call_vp(c, in->vp_index, in->input_vtl, &vp);
	if (st)
		return st;
	for (; c->done < c->reps; c->done++) {
		st = emu_reg_get(vp, in->names[c->done], &out[c->done]);
		if (st)
			return st;
	}
	return HV_STATUS_SUCCESS;
}

/*
 * Registers KVM validates as a set (CR0/CR4/EFER/segments) are committed
 * once at the end; if KVM refuses them the call fails with reps at the
 * first such register of the batch (none of them is applied).
 */
static uint16_t emu_hc_set_vp_registers(struct emu_call *c)
{
	const struct hv_input_set_vp_registers *in = (const void *)c->in;
	struct emu_vp *vp;
	uint16_t st = HV_STATUS_SUCCESS, first_sregs = 0xffff;

	if (sizeof(*in) + (size_t)c->reps * sizeof(struct hv_register_assoc) > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_call_vp(c, in->vp_index, in->input_vtl, &vp);
	if (st)
		return st;
	for (; c->done < c->reps; c->done++) {
		bool was_pending = vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS;
		struct hv_register_assoc a;
		union hv_register_value v;

		memcpy(&a, &in->elements[c->done], sizeof(a));
		memcpy(&v, (const char *)&in->elements[c->done] +
			   offsetof(struct hv_register_assoc, value), sizeof(v));
		st = (a.reserved1 || a.reserved2) ? HV_STATUS_INVALID_PARAMETER :
						    emu_reg_set(vp, a.name, &v);
		if (st)
			break;
		if (!was_pending && (vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS))
			first_sregs = c->done;
	}
	if (emu_regs_commit(vp) != HV_STATUS_SUCCESS) {
		if (first_sregs != 0xffff)
			c->done = first_sregs;
		return HV_STATUS_INVALID_PARAMETER;
	}
	return st;
}

/* ---- partition properties --------------------------------------------------- */

/* The host's own properties (HV_PARTITION_ID_SELF, /dev/mshv origin, §2.2). */
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
 * refuses them, with INVALID_PARTITION_STATE as the best guess
 * (kernel-behaviour.md §3.10, unverified). XSAVE_STATES and
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

static uint16_t emu_hc_get_property(struct emu_call *c)
{
	const struct hv_input_get_partition_property *in = (const void *)c->in;
	struct hv_output_get_partition_property *out = (void *)c->out;
	uint64_t v = 0;
	uint16_t st = emu_get_property(c, in->property_code, &v);

	out->property_value = v;
	return st;
}

static uint16_t emu_hc_get_property_ex(struct emu_call *c)
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

static uint16_t emu_hc_set_property(struct emu_call *c)
{
	const struct hv_input_set_partition_property *in = (const void *)c->in;

	return emu_set_property(c, in->property_code, in->property_value);
}

/* ---- intercepts ------------------------------------------------------------ */

/*
 * INSTALL_INTERCEPT. IO ports: every port already exits (exo partition),
 * so success. MSR: KVM_CAP_X86_USER_SPACE_MSR, so accesses to MSRs KVM does
 * not implement (and filtered ones) come out as MSR intercepts; MSRs KVM
 * handles itself never do. Exceptions: #DB (1) and #BP (3) through
 * KVM_SET_GUEST_DEBUG, where this KVM delivers them (probed, see
 * emu_exception_exits); KVM cannot hand other vectors to user space.
 * CPUID: KVM always handles CPUID in the kernel and has no CPUID exit, so
 * the intercept cannot be delivered: HV_STATUS_OPERATION_DENIED (EIO), and
 * a VMM shapes CPUID with REGISTER_INTERCEPT_RESULT instead, as QEMU does.
 * Other valid types KVM cannot produce: OPERATION_DENIED as well.
 */
/*
 * Does this host's KVM hand a guest #BP (INT3, with KVM_GUESTDBG_USE_SW_BP)
 * or #DB (trap flag, with KVM_GUESTDBG_USE_HW_BP) to user space? Mainline
 * VMX/SVM does; the paravirtual kvm_pvm measured here does not (the guest
 * takes the exception itself). Probed once per process with a scratch VM:
 * a real-mode page whose IVT sends every vector to a HLT.
 */
static bool emu_exception_exits(int kvm_fd, unsigned int vector)
{
	static const uint8_t bp_code[] = { 0xcc, 0xf4 };		/* int3; hlt */
	static const uint8_t db_code[] = { 0x9c, 0x58, 0x0d, 0x00, 0x01, 0x50,
					   0x9d, 0x90, 0xf4 };	/* set TF; nop; hlt */
	struct kvm_userspace_memory_region slot = { .memory_size = EMU_PAGE_SIZE };
	struct kvm_guest_debug dbg = { .control = KVM_GUESTDBG_ENABLE };
	struct kvm_regs regs = { .rip = 0x600, .rflags = 2 };
	struct kvm_sregs sregs;
	struct kvm_run *run = MAP_FAILED;
	int vm = -1, vcpu = -1, run_size;
	bool exits = false;
	uint8_t *mem;

	mem = emu_sys_mmap(NULL, EMU_PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return false;
	for (int i = 0; i < 256; i++)		/* every vector: 0000:0500 */
		memcpy(mem + 4 * i, (const uint8_t[]){ 0x00, 0x05, 0x00, 0x00 }, 4);
	mem[0x500] = 0xf4;
	if (vector == 3)
		memcpy(mem + 0x600, bp_code, sizeof(bp_code));
	else
		memcpy(mem + 0x600, db_code, sizeof(db_code));
	dbg.control |= vector == 3 ? KVM_GUESTDBG_USE_SW_BP : KVM_GUESTDBG_USE_HW_BP;
	slot.userspace_addr = (uint64_t)(uintptr_t)mem;
	vm = emu_sys_ioctl(kvm_fd, KVM_CREATE_VM, 0);
	run_size = emu_sys_ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (vm < 0 || run_size <= 0 || emu_sys_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		goto out;
	vcpu = emu_sys_ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		goto out;
	run = emu_sys_mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED || emu_sys_ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		goto out;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (emu_sys_ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 ||
	    emu_sys_ioctl(vcpu, KVM_SET_REGS, &regs) < 0 ||
	    emu_sys_ioctl(vcpu, KVM_SET_GUEST_DEBUG, &dbg) < 0)
		goto out;
	if (emu_sys_ioctl(vcpu, KVM_RUN, NULL) == 0)
		exits = run->exit_reason == KVM_EXIT_DEBUG;
out:
	if (run != MAP_FAILED)
		emu_sys_munmap(run, (size_t)run_size);
	if (vcpu >= 0)
		emu_sys_close(vcpu);
	if (vm >= 0)
		emu_sys_close(vm);
	emu_sys_munmap(mem, EMU_PAGE_SIZE);
	return exits;
}

static bool emu_exception_delivered(int kvm_fd, unsigned int vector)
{
	/* 0 = not probed, 1 = exits, 2 = does not; per vector (1 and 3) */
	static atomic_int probed[4];
	int v = atomic_load(&probed[vector]);

	if (!v) {
		v = emu_exception_exits(kvm_fd, vector) ? 1 : 2;
		atomic_store(&probed[vector], v);
	}
	return v == 1;
}

static uint16_t emu_hc_install_intercept(struct emu_call *c)
{
	const struct hv_input_install_intercept *in = (const void *)c->in;
	struct emu_partition *pt = c->pt;

	if (in->intercept_type >= HV_INTERCEPT_TYPE_MAX)
		return HV_STATUS_INVALID_PARAMETER;
	if (in->access_type & ~(HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE |
				HV_INTERCEPT_ACCESS_MASK_EXECUTE))
		return HV_STATUS_INVALID_PARAMETER;
	switch (in->intercept_type) {
	case HV_INTERCEPT_TYPE_X64_IO_PORT:
		return HV_STATUS_SUCCESS;
	case HV_INTERCEPT_TYPE_X64_MSR: {
		struct kvm_enable_cap cap;

		if (pt->intercepts.msr)
			return HV_STATUS_SUCCESS;
		memset(&cap, 0, sizeof(cap));
		cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
		cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
		if (emu_sys_ioctl(pt->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return HV_STATUS_OPERATION_DENIED;
		pt->intercepts.msr = true;
		return HV_STATUS_SUCCESS;
	}
	case HV_INTERCEPT_TYPE_EXCEPTION: {
		uint16_t vec = in->intercept_parameter.exception_vector;

		if (vec >= 32)
			return HV_STATUS_INVALID_PARAMETER;
		if (vec != 1 && vec != 3)
			return HV_STATUS_OPERATION_DENIED;
		/* never accept what this KVM would not deliver */
		if (!emu_exception_delivered(pt->kvm_fd, vec))
			return HV_STATUS_OPERATION_DENIED;
		pt->intercepts.exception_bitmap |= 1U << vec;
		return HV_STATUS_SUCCESS;
	}
	}
	return HV_STATUS_OPERATION_DENIED;
}

/* CPUID results: (value & mask) | (KVM's value & ~mask), per leaf/subleaf. */
static void emu_cpuid_patch(struct kvm_cpuid2 *cpuid, const struct emu_cpuid_result *r)
{
	const struct hv_register_x64_cpuid_result_input *in = &r->p.input;
	const struct hv_register_x64_cpuid_result_output *o = &r->p.result;

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function != in->eax || (in->subleaf_specific && e->index != in->ecx))
			continue;
		e->eax = (e->eax & ~o->eax_mask) | (o->eax & o->eax_mask);
		e->ebx = (e->ebx & ~o->ebx_mask) | (o->ebx & o->ebx_mask);
		e->ecx = (e->ecx & ~o->ecx_mask) | (o->ecx & o->ecx_mask);
		e->edx = (e->edx & ~o->edx_mask) | (o->edx & o->edx_mask);
	}
}

/*
 * Push every registered CPUID result for this VP into its KVM CPUID. KVM
 * refuses a different CPUID once the vCPU has run (EBUSY, since 5.16), so
 * results must be registered before a VP's first RUN_VP, as QEMU does.
 */
int emu_cpuid_results_apply(struct emu_vp *vp)
{
	struct emu_props *p = vp->pt->props;
	struct kvm_cpuid2 *cpuid;
	uint32_t gen;
	int ret, err;

	if (!p || !p->ncpuid)
		return 0;
	gen = atomic_load(&p->cpuid_gen);
	if (vp->cpuid_gen == gen)
		return 0;
	cpuid = emu_cpuid_get(vp->vcpu_fd, KVM_GET_CPUID2);
	if (!cpuid)
		return -1;
	for (uint32_t i = 0; i < p->ncpuid; i++)
		if (p->cpuid[i].vp_index == HV_ANY_VP || p->cpuid[i].vp_index == vp->index)
			emu_cpuid_patch(cpuid, &p->cpuid[i]);
	ret = emu_sys_ioctl(vp->vcpu_fd, KVM_SET_CPUID2, cpuid);
	err = errno;
	free(cpuid);
	if (ret == 0)
		vp->cpuid_gen = gen;
	errno = err;
	return ret;
}

static uint16_t emu_hc_register_intercept_result(struct emu_call *c)
{
	const struct hv_input_register_intercept_result *in = (const void *)c->in;
	struct emu_props *p = emu_props(c->pt);
	struct emu_cpuid_result *n;

	if (!p)
		return HV_STATUS_OPERATION_FAILED;
	if (in->intercept_type != HV_INTERCEPT_TYPE_X64_CPUID)
		return HV_STATUS_OPERATION_DENIED;	/* MSR results: not emulated */
	if (in->vp_index != HV_ANY_VP &&
	    (in->vp_index >= EMU_MAX_VPS || !c->pt->vps[in->vp_index]))
		return HV_STATUS_INVALID_VP_INDEX;
	/*
	 * KVM freezes a vCPU's CPUID at its first KVM_RUN (EBUSY upstream,
	 * EINVAL on this host), so a result for a VP that has run could never
	 * take effect: refuse it here rather than fail every later RUN_VP.
	 */
	for (int i = 0; i < EMU_MAX_VPS; i++) {
		struct emu_vp *vp = c->pt->vps[i];

		if (vp && atomic_load(&vp->ran) &&
		    (in->vp_index == HV_ANY_VP || in->vp_index == (uint32_t)i))
			return HV_STATUS_OPERATION_DENIED;
	}
	n = realloc(p->cpuid, (p->ncpuid + 1) * sizeof(*n));
	if (!n)
		return HV_STATUS_INSUFFICIENT_MEMORY;
	p->cpuid = n;
	n[p->ncpuid].vp_index = in->vp_index;
	n[p->ncpuid].p = in->parameters.cpuid;
	p->ncpuid++;
	atomic_fetch_add(&p->cpuid_gen, 1);
	/* VPs that have not run take it now; the others at their next RUN_VP */
	for (int i = 0; i < EMU_MAX_VPS; i++) {
		struct emu_vp *vp = c->pt->vps[i];

		if (vp && !atomic_load(&vp->running) && emu_cpuid_results_apply(vp) < 0)
			return HV_STATUS_OPERATION_FAILED;
	}
	return HV_STATUS_SUCCESS;
}

/* GET_VP_CPUID_VALUES (rep): the VP's KVM CPUID, registered results included. */
static uint16_t emu_hc_get_vp_cpuid_values(struct emu_call *c)
{
	const struct hv_input_get_vp_cpuid_values *in = (const void *)c->in;
	struct hv_output_get_vp_cpuid_values *out = (void *)c->out;
	struct kvm_cpuid2 *cpuid;
	struct emu_vp *vp;
	uint16_t st;

	if (sizeof(*in) + (size_t)c->reps * sizeof(in->cpuid_leaf_info[0]) > EMU_HV_PAGE ||
	    (size_t)c->reps * sizeof(*out) > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_call_vp(c, in->vp_index, 0, &vp);
	if (st)
		return st;
	emu_cpuid_results_apply(vp);
	cpuid = emu_cpuid_get(vp->vcpu_fd, KVM_GET_CPUID2);
	if (!cpuid)
		return HV_STATUS_OPERATION_FAILED;
	for (; c->done < c->reps; c->done++) {
		const struct hv_cpuid_leaf_info *l = &in->cpuid_leaf_info[c->done];
		struct kvm_cpuid_entry2 *e = emu_cpuid_find(cpuid, l->eax, l->ecx);

		memset(&out[c->done], 0, sizeof(out[0]));
		if (e) {
			out[c->done].eax = e->eax;
			out[c->done].ebx = e->ebx;
			out[c->done].ecx = e->ecx;
			out[c->done].edx = e->edx;
		}
	}
	free(cpuid);
	return HV_STATUS_SUCCESS;
}

/* ---- translate, interrupts, GPA access states, SynIC ---------------------- */

static uint16_t emu_hc_translate(struct emu_call *c)
{
	const struct hv_input_translate_virtual_address *in = (const void *)c->in;
	struct hv_output_translate_virtual_address *out = (void *)c->out;
	struct kvm_translation tr;
	struct emu_region *region;
	struct emu_vp *vp;
	uint16_t st;

	st = emu_call_vp(c, in->vp_index, 0, &vp);
	if (st)
		return st;
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = in->gva_page << 12;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0)
		return HV_STATUS_OPERATION_FAILED;
	if (!tr.valid) {
		out->translation_result.result_code = HV_TRANSLATE_GVA_PAGE_NOT_PRESENT;
		return HV_STATUS_SUCCESS;
	}
	if ((in->control_flags & HV_TRANSLATE_GVA_VALIDATE_WRITE) && !tr.writeable) {
		out->translation_result.result_code = HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION;
		return HV_STATUS_SUCCESS;
	}
	out->gpa_page = tr.physical_address >> 12;
	region = emu_region_find(c->pt, out->gpa_page);
	if (!region)
		out->translation_result.result_code = HV_TRANSLATE_GVA_GPA_UNMAPPED;
	else if ((in->control_flags & HV_TRANSLATE_GVA_VALIDATE_WRITE) &&
		 !(region->flags & (1U << MSHV_SET_MEM_BIT_WRITABLE)))
		out->translation_result.result_code = HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS;
	else
		out->translation_result.result_code = HV_TRANSLATE_GVA_SUCCESS;
	out->translation_result.result_flags = HV_CACHE_TYPE_WRITE_BACK;
	return HV_STATUS_SUCCESS;
}

static uint16_t emu_hc_assert_interrupt(struct emu_call *c)
{
	const struct hv_input_assert_virtual_interrupt *in = (const void *)c->in;
	uint64_t ctl = in->control;

	if (in->rsvd_z0 || in->rsvd_z1 || in->target_vtl ||
	    (ctl & ~(HV_INTERRUPT_CONTROL_TYPE_MASK | HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED |
		     HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE)))
		return HV_STATUS_INVALID_PARAMETER;
	if ((ctl & HV_INTERRUPT_CONTROL_TYPE_MASK) >= HV_X64_INTERRUPT_TYPE_MAXIMUM)
		return HV_STATUS_INVALID_PARAMETER;
	if (emu_assert_interrupt(c->pt, in->vector, in->dest_addr,
				 (uint32_t)(ctl & HV_INTERRUPT_CONTROL_TYPE_MASK),
				 ctl & HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE,
				 ctl & HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED) < 0)
		return errno == EINVAL ? HV_STATUS_INVALID_PARAMETER : HV_STATUS_OPERATION_FAILED;
	return HV_STATUS_SUCCESS;
}

/*
 * CLEAR_VIRTUAL_INTERRUPT withdraws an asserted ExtINT that was not taken.
 * KVM delivers an ExtINT to the vCPU when it is injected and keeps no
 * asserted-but-pending copy the emulator could withdraw, so there is
 * nothing to clear and success is the true result.
 */
static uint16_t emu_hc_clear_interrupt(struct emu_call *c)
{
	return HV_STATUS_SUCCESS;
}

static uint16_t emu_hc_gpa_access_states(struct emu_call *c)
{
	const struct hv_input_get_gpa_pages_access_state *in = (const void *)c->in;
	uint32_t done = 0;
	uint16_t st;

	if (c->reps > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_gpa_access_states(c->pt, in->hv_gpa_page_number, c->reps, c->out,
				   in->flags, &done);
	c->done = (uint16_t)done;
	return st;
}

/*
 * SIGNAL_EVENT_DIRECT / POST_MESSAGE_DIRECT target a VP's SynIC, which the
 * emulator does not have: the target's SynIC is never enabled, which the
 * hypervisor reports as HV_STATUS_INVALID_VP_STATE (EIO).
 */
static uint16_t emu_hc_synic(struct emu_call *c)
{
	uint32_t vp = c->in[8] | c->in[9] << 8 | c->in[10] << 16 | (uint32_t)c->in[11] << 24;

	if (vp >= EMU_MAX_VPS || !c->pt->vps[vp])
		return HV_STATUS_INVALID_VP_INDEX;
	return HV_STATUS_INVALID_VP_STATE;
}

/* ---- dispatch and the driver part ----------------------------------------- */

enum { O_DEV = 1 << EMU_HVCALL_DEVICE, O_PT = 1 << EMU_HVCALL_PARTITION,
       O_VP = 1 << EMU_HVCALL_VP };

struct emu_hvcall_desc {
	uint16_t code;
	uint8_t origins;	/* mshv_passthru_hvcall_allowed, per fd (§6.2) */
	bool rep;
	uint16_t (*fn)(struct emu_call *c);
};

static const struct emu_hvcall_desc emu_hvcalls[] = {
	{ HVCALL_GET_PARTITION_PROPERTY, O_DEV | O_PT | O_VP, false, emu_hc_get_property },
	{ HVCALL_GET_PARTITION_PROPERTY_EX, O_DEV | O_PT | O_VP, false, emu_hc_get_property_ex },
	{ HVCALL_SET_PARTITION_PROPERTY, O_PT | O_VP, false, emu_hc_set_property },
	{ HVCALL_INSTALL_INTERCEPT, O_PT | O_VP, false, emu_hc_install_intercept },
	{ HVCALL_GET_VP_REGISTERS, O_PT | O_VP, true, emu_hc_get_vp_registers },
	{ HVCALL_SET_VP_REGISTERS, O_PT | O_VP, true, emu_hc_set_vp_registers },
	{ HVCALL_TRANSLATE_VIRTUAL_ADDRESS, O_PT | O_VP, false, emu_hc_translate },
	{ HVCALL_CLEAR_VIRTUAL_INTERRUPT, O_PT | O_VP, false, emu_hc_clear_interrupt },
	{ HVCALL_REGISTER_INTERCEPT_RESULT, O_PT | O_VP, false, emu_hc_register_intercept_result },
	{ HVCALL_ASSERT_VIRTUAL_INTERRUPT, O_PT | O_VP, false, emu_hc_assert_interrupt },
	{ HVCALL_GET_GPA_PAGES_ACCESS_STATES, O_PT | O_VP, true, emu_hc_gpa_access_states },
	{ HVCALL_SIGNAL_EVENT_DIRECT, O_PT | O_VP, false, emu_hc_synic },
	{ HVCALL_POST_MESSAGE_DIRECT, O_PT | O_VP, false, emu_hc_synic },
	{ HVCALL_GET_VP_CPUID_VALUES, O_PT | O_VP, true, emu_hc_get_vp_cpuid_values },
};

static const struct emu_hvcall_desc *emu_hvcall_find(uint16_t code, enum emu_hvcall_origin o)
{
	for (size_t i = 0; i < sizeof(emu_hvcalls) / sizeof(emu_hvcalls[0]); i++)
		if (emu_hvcalls[i].code == code)
			return (emu_hvcalls[i].origins & (1 << o)) ? &emu_hvcalls[i] : NULL;
	return NULL;
}

/* The hypervisor side: rep-count rules, then the handler. */
static uint16_t emu_hvcall_do(const struct emu_hvcall_desc *d, struct emu_call *c)
{
	if (!d->rep && c->reps)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;	/* rep count on a simple call */
	return d->fn(c);
}

/* mshv_ioctl_passthru_hvcall */
int emu_root_hvcall(struct emu_partition *pt, enum emu_hvcall_origin origin,
		    struct mshv_root_hvcall *uarg)
{
	struct mshv_root_hvcall args;
	const struct emu_hvcall_desc *d;
	struct emu_call c;
	uint64_t id;
	uint16_t st;
	int ret = 0;

	/* step 1: copy the 32-byte argument */
	if (emu_copy_from_user(&args, uarg, sizeof(args)) < 0)
		return -1;
	/* step 2: status, in_ptr, in_sz, rsvd */
	if (args.status || !args.in_ptr || args.in_sz < sizeof(uint64_t) ||
	    args.rsvd[0] || args.rsvd[1] || args.rsvd[2] || args.rsvd[3] || args.rsvd[4] ||
	    args.rsvd[5] || args.in_sz > EMU_HV_PAGE) {
		errno = EINVAL;
		return -1;
	}
	/* step 3: out_sz is checked only with an out_ptr */
	if (args.out_ptr && (!args.out_sz || args.out_sz > EMU_HV_PAGE)) {
		errno = EINVAL;
		return -1;
	}
	/* step 4: the fd's allow-list (mshv_passthru_hvcall_allowed) */
	d = emu_hvcall_find(args.code, origin);
	/* step 5: the asynchronous call only from a partition fd (mshv_hvcall_is_async) */
	if (!d || (args.code == HVCALL_SET_PARTITION_PROPERTY && origin != EMU_HVCALL_PARTITION)) {
		errno = EINVAL;
		return -1;
	}
	/* step 7: the pages */
	memset(&c, 0, sizeof(c));
	c.in = calloc(1, EMU_HV_PAGE);
	c.out = calloc(1, EMU_HV_PAGE);
	if (!c.in || !c.out) {
		free(c.in);
		free(c.out);
		errno = ENOMEM;
		return -1;
	}
	/* step 8: the input (nothing is written back if this fails) */
	if (emu_copy_from_user(c.in, (void *)(uintptr_t)args.in_ptr, args.in_sz) < 0) {
		ret = -1;
		goto out;
	}
	/* step 9: the target partition's id in input bytes 0-7 */
	id = origin == EMU_HVCALL_DEVICE ? HV_PARTITION_ID_SELF : pt->id;
	memcpy(c.in, &id, sizeof(id));
	c.pt = origin == EMU_HVCALL_DEVICE ? NULL : pt;
	c.origin = origin;
	c.reps = args.reps;
	st = emu_hvcall_do(d, &c);

	/* §6.3: status and reps always written back; output only on success */
	args.status = st;
	args.reps = d->rep ? c.done : 0;
	if (emu_copy_to_user(uarg, &args, sizeof(args)) < 0) {
		ret = -1;
		goto out;
	}
	if (st) {
		errno = emu_hv_status_errno(st);
		ret = -1;
		goto out;
	}
	if (args.out_ptr &&
	    emu_copy_to_user((void *)(uintptr_t)args.out_ptr, c.out, args.out_sz) < 0)
		ret = -1;
out:
	free(c.in);
	free(c.out);
	return ret;
}
