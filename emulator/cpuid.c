/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the guest's CPUID.
 *
 * Each VP starts (CREATE_VP) with the CPUID the hypervisor gives a guest:
 * what KVM supports (KVM_GET_SUPPORTED_CPUID), without KVM's own leaves
 * ("KVMKVMKVM" at 0x40000000: the guest runs on the Microsoft Hypervisor,
 * not on KVM), with the Microsoft hypervisor leaves the partition's
 * SYNTHETIC_PROC_FEATURES grant (TLFS "Feature and Interface Discovery";
 * hv_partition_synthetic_processor_features in the kernel's hvhdk.h:
 * hypervisor_present "CPUID leaves 0x40000000 and 0x40000001 are
 * supported", hv1 "CPUID leaves 0x40000000 - 0x40000006"), its own APIC id,
 * and the physical address width of the PHYSICAL_ADDRESS_WIDTH property.
 * A VMM's HvCallRegisterInterceptResult (HV_INTERCEPT_TYPE_X64_CPUID) is
 * applied on top (results stored per partition, pushed into each VP's KVM
 * CPUID), and HvCallGetVpCpuidValues reads the result the way the guest's
 * CPUID does. KVM_GET_SUPPORTED_CPUID and KVM_GET_CPUID2 helpers are shared
 * with properties.c.
 *
 * What the hypervisor leaves say, and why:
 *  - 0x40000000: "Microsoft Hv", the highest leaf (0x40000006 with hv1, else
 *    0x40000001); 0x40000001: "Hv#1" with hv1, else 0.
 *  - 0x40000002 (the hypervisor's build and version): 0, there is no
 *    Windows build behind the emulator.
 *  - 0x40000003: the privileges the guest can use in full, of those
 *    emu_synthetic_proc_features() grants: VP_RUNTIME, TIME_REF_COUNT,
 *    VP_INDEX, the reference TSC page (with TIME_REF_COUNT: the page has
 *    tsc_sequence 0, which sends the guest to TIME_REF_COUNT) and the
 *    TSC/APIC frequency MSRs (EDX bit 8 with them). Granted registers the
 *    guest is not told about: the hypercall MSRs (no hypercall page is
 *    filled and guest hypercalls are not answered, so a guest that found
 *    them would call into an empty page), the SynIC (no message or event
 *    is ever delivered), the synthetic timers (they never expire) and the
 *    interrupt-control registers (the APIC access MSRs are not implemented).
 *    The VMM still reads and writes all of them (synthetic.c). No hypercall
 *    privilege (EBX): the guest has no hypercall to make.
 *  - 0x40000004: no recommendation, spinlock retries "never notify" (no
 *    HvCallNotifyLongSpinWait), the host's MAXPHYADDR in ECX[6:0].
 *  - 0x40000005: the VP limit (MSHV_MAX_VPS), logical processors and
 *    interrupt remapping vectors not exposed (0).
 *  - 0x40000006: 0, no hardware feature is claimed (which ones KVM uses is
 *    not visible here).
 * Without hypervisor_present the guest sees no hypervisor: CPUID.1:ECX[31]
 * clear and no leaf at 0x40000000. A partition whose VMM never sets
 * SYNTHETIC_PROC_FEATURES has the value 0, hence that view.
 */
#include <stdlib.h>

#include "emu.h"
#include "hypercall.h"

#define EMU_CPUID1_EDX_APIC	(1U << 9)	/* CPUID.1:EDX.APIC */
#define EMU_HV_LEAF_FIRST	HYPERV_CPUID_VENDOR_AND_MAX_FUNCTIONS
#define EMU_HV_LEAF_COUNT	(HYPERV_CPUID_HARDWARE_FEATURES - EMU_HV_LEAF_FIRST + 1)
#define EMU_BIT(n)		(1ULL << (n))

/* ---- KVM CPUID tables ------------------------------------------------------ */

static struct kvm_cpuid2 *emu_cpuid_alloc(int nent)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));

	if (c)
		c->nent = (uint32_t)nent;
	else
		errno = ENOMEM;
	return c;
}

/* KVM_GET_SUPPORTED_CPUID on /dev/kvm (fd), or the VP's KVM_GET_CPUID2. */
struct kvm_cpuid2 *emu_cpuid_get(int fd, unsigned long req)
{
	for (int nent = 256; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = emu_cpuid_alloc(nent);

		if (!c)
			return NULL;
		if (emu_sys_ioctl(fd, req, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

/*
 * What a vCPU's CPUID is after KVM_SET_CPUID2 of want: KVM_GET_CPUID2 reads
 * the table the guest's CPUID answers from (kvm_find_cpuid_entry), which is
 * not always want: KVM adjusts runtime bits (kvm_update_cpuid_runtime), and a
 * KVM whose guest runs user-level instructions natively may keep the
 * hardware's feature bits whatever the VMM clears. NULL (errno) on failure.
 */
struct kvm_cpuid2 *emu_cpuid_as_taken(int vcpu_fd, struct kvm_cpuid2 *want)
{
	if (emu_sys_ioctl(vcpu_fd, KVM_SET_CPUID2, want) < 0)
		return NULL;
	return emu_cpuid_get(vcpu_fd, KVM_GET_CPUID2);
}

struct kvm_cpuid_entry2 *emu_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf,
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

/* Is any entry of c for this leaf (whatever its subleaf)? */
static bool emu_cpuid_has_leaf(const struct kvm_cpuid2 *c, uint32_t leaf)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == leaf)
			return true;
	return false;
}

/* A copy of c with room for extra more entries (nent stays c's). */
static struct kvm_cpuid2 *emu_cpuid_grow(const struct kvm_cpuid2 *c, uint32_t extra)
{
	struct kvm_cpuid2 *n = emu_cpuid_alloc((int)(c->nent + extra));

	if (!n)
		return NULL;
	memcpy(n->entries, c->entries, c->nent * sizeof(c->entries[0]));
	n->nent = c->nent;
	return n;
}

static bool emu_cpuid_vendor_is(const struct kvm_cpuid_entry2 *e, const char *id)
{
	char v[12];

	memcpy(v, &e->ebx, 4);
	memcpy(v + 4, &e->edx, 4);
	memcpy(v + 8, &e->ecx, 4);
	return !memcmp(v, id, sizeof(v));
}

/*
 * A leaf the table has no entry for, as the guest's CPUID answers it (KVM's
 * get_out_of_range_cpuid_entry): past the end of its class (basic, hypervisor
 * 0x400000xx, extended, Centaur) an Intel-compatible CPU answers with the
 * highest basic leaf, as Intel CPUs do; AMD and Hygon answer 0.
 */
static struct kvm_cpuid_entry2 *emu_cpuid_out_of_range(struct kvm_cpuid2 *c, uint32_t leaf,
						       uint32_t subleaf)
{
	struct kvm_cpuid_entry2 *basic = emu_cpuid_find(c, 0, 0), *class;

	if (!basic || emu_cpuid_vendor_is(basic, "AuthenticAMD") ||
	    emu_cpuid_vendor_is(basic, "HygonGenuine"))
		return NULL;
	if (leaf >= 0x40000000 && leaf <= 0x4fffffff)
		class = emu_cpuid_find(c, leaf & 0xffffff00, 0);
	else if (leaf >= 0xc0000000)
		class = emu_cpuid_find(c, 0xc0000000, 0);
	else
		class = emu_cpuid_find(c, leaf & 0x80000000, 0);
	if (class && leaf <= class->eax)
		return NULL;
	return emu_cpuid_find(c, basic->eax, subleaf);
}

/* What the guest's CPUID returns for leaf/subleaf with table c (KVM's kvm_cpuid). */
static void emu_cpuid_lookup(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf,
			     uint32_t out[4])
{
	struct kvm_cpuid_entry2 *e = emu_cpuid_find(c, leaf, subleaf);

	if (!e)
		e = emu_cpuid_out_of_range(c, leaf, subleaf);
	memset(out, 0, 4 * sizeof(out[0]));
	if (e) {
		out[0] = e->eax;
		out[1] = e->ebx;
		out[2] = e->ecx;
		out[3] = e->edx;
		return;
	}
	/* 0xB/0x1F: an undefined subleaf still echoes CL and gives the x2APIC id */
	if (leaf == 0xb || leaf == 0x1f) {
		e = emu_cpuid_find(c, leaf, 1);
		if (e) {
			out[2] = subleaf & 0xff;
			out[3] = e->edx;
		}
	}
}

/* ---- the hypervisor leaves --------------------------------------------------- */

/*
 * The privileges (HV_PARTITION_PRIVILEGE_MASK, CPUID 0x40000003 EAX) of the
 * synthetic features whose registers the guest can use in full (see the top
 * of this file for the others).
 */
static const struct {
	uint8_t feature;		/* HV_SYNTHETIC_PROC_FEATURE_*_BIT */
	uint32_t privilege;
} emu_hv_privileges[] = {
	{ HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_RUN_TIME_REG_BIT, HV_MSR_VP_RUNTIME_AVAILABLE },
	{ HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_COUNTER_BIT,
	  HV_MSR_TIME_REF_COUNT_AVAILABLE },
	{ HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_INDEX_BIT, HV_MSR_VP_INDEX_AVAILABLE },
	{ HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_TSC_BIT,
	  HV_MSR_REFERENCE_TSC_AVAILABLE },
	{ HV_SYNTHETIC_PROC_FEATURE_ACCESS_FREQUENCY_REGS_BIT, HV_ACCESS_FREQUENCY_MSRS },
};

static uint32_t emu_hv_privilege_mask(uint64_t features)
{
	uint32_t mask = 0;

	for (size_t i = 0; i < sizeof(emu_hv_privileges) / sizeof(emu_hv_privileges[0]); i++)
		if (features & EMU_BIT(emu_hv_privileges[i].feature))
			mask |= emu_hv_privileges[i].privilege;
	/* the page's fallback (tsc_sequence 0) is TIME_REF_COUNT: no page without it */
	if (!(mask & HV_MSR_TIME_REF_COUNT_AVAILABLE))
		mask &= ~HV_MSR_REFERENCE_TSC_AVAILABLE;
	return mask;
}

static struct kvm_cpuid_entry2 *emu_cpuid_append(struct kvm_cpuid2 *c, uint32_t leaf)
{
	struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];

	memset(e, 0, sizeof(*e));
	e->function = leaf;
	return e;
}

/*
 * Append the hypervisor leaves the partition's synthetic features grant to c
 * (room for EMU_HV_LEAF_COUNT entries); host_phys_bits for 0x40000004.
 */
static void emu_cpuid_hv_leaves(struct emu_partition *pt, struct kvm_cpuid2 *c,
				uint32_t host_phys_bits)
{
	uint64_t features = emu_synthetic_proc_features(pt);
	bool hv1 = features & EMU_BIT(HV_SYNTHETIC_PROC_FEATURE_HV1_BIT);
	struct kvm_cpuid_entry2 *e;
	uint32_t privileges;

	if (!(features & EMU_BIT(HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT)))
		return;
	e = emu_cpuid_append(c, HYPERV_CPUID_VENDOR_AND_MAX_FUNCTIONS);
	e->eax = hv1 ? HYPERV_CPUID_HARDWARE_FEATURES : HYPERV_CPUID_INTERFACE;
	e->ebx = HV_CPUID_VENDOR_MICROSOFT_EBX;
	e->ecx = HV_CPUID_VENDOR_MICROSOFT_ECX;
	e->edx = HV_CPUID_VENDOR_MICROSOFT_EDX;
	e = emu_cpuid_append(c, HYPERV_CPUID_INTERFACE);
	if (!hv1)
		return;
	e->eax = HYPERV_CPUID_SIGNATURE_EAX;
	emu_cpuid_append(c, HYPERV_CPUID_VERSION);
	e = emu_cpuid_append(c, HYPERV_CPUID_FEATURES);
	privileges = emu_hv_privilege_mask(features);
	e->eax = privileges;
	if (privileges & HV_ACCESS_FREQUENCY_MSRS)
		e->edx = HV_FEATURE_FREQUENCY_MSRS_AVAILABLE;
	e = emu_cpuid_append(c, HYPERV_CPUID_ENLIGHTMENT_INFO);
	e->ebx = HYPERV_SPINLOCK_NEVER_NOTIFY;
	e->ecx = host_phys_bits & HV_IMPLEMENTED_PHYSICAL_ADDRESS_BITS_MASK;
	e = emu_cpuid_append(c, HYPERV_CPUID_IMPLEMENT_LIMITS);
	e->eax = EMU_MAX_VPS;
	emu_cpuid_append(c, HYPERV_CPUID_HARDWARE_FEATURES);
}

/* ---- a new VP's CPUID ----------------------------------------------------------- */

/*
 * The partition's physical address width in CPUID 0x80000008: EAX[7:0]
 * (MAXPHYADDR) and a GuestPhysAddrSize (EAX[23:16]) that is wider.
 */
static void emu_cpuid_phys_bits(struct kvm_cpuid_entry2 *e, uint32_t bits)
{
	uint32_t guest = (e->eax >> 16) & 0xff;

	if ((e->eax & 0xff) > bits)
		e->eax = (e->eax & ~0xffU) | bits;
	if (guest > bits)
		e->eax = (e->eax & ~0xff0000U) | bits << 16;
}

/*
 * At CREATE_VP: KVM's supported CPUID without KVM's leaves (the whole
 * 0x40000000 class), with this VP's APIC id (CPUID.1:EBX[31:24], the x2APIC
 * id of 0xB/0x1F), no APIC bit on a partition without MSHV_PT_BIT_LAPIC, the
 * hypervisor-present bit and leaves of the synthetic features, the
 * PHYSICAL_ADDRESS_WIDTH property in 0x80000008, and none of the processor
 * and XSAVE features the partition lacks (emu_props_cpuid_filter). A KVM that
 * keeps feature bits the table clears shows the guest those too; the
 * partition's properties then count them as enabled (properties.c).
 */
int emu_cpuid_vp_init(struct emu_vp *vp)
{
	struct emu_partition *pt = vp->pt;
	bool present = emu_synthetic_proc_features(pt) &
		       EMU_BIT(HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT);
	struct kvm_cpuid2 *sup = emu_cpuid_get(pt->kvm_fd, KVM_GET_SUPPORTED_CPUID), *c;
	uint32_t width = (uint32_t)emu_partition_phys_bits(pt), host_phys_bits = 0;
	int ret, err;

	if (!sup)
		return -1;
	c = emu_cpuid_alloc((int)(sup->nent + EMU_HV_LEAF_COUNT));
	if (!c) {
		free(sup);
		return -1;
	}
	c->nent = 0;
	for (uint32_t i = 0; i < sup->nent; i++) {
		struct kvm_cpuid_entry2 *e = &sup->entries[i];

		if ((e->function & 0xf0000000) == 0x40000000)
			continue;
		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00FFFFFFU) | (vp->index << 24);
			if (!pt->lapic)
				e->edx &= ~EMU_CPUID1_EDX_APIC;
			e->ecx = present ? e->ecx | HYPERV_HYPERVISOR_PRESENT_BIT :
					   e->ecx & ~HYPERV_HYPERVISOR_PRESENT_BIT;
		} else if (e->function == 0xB || e->function == 0x1F) {
			e->edx = vp->index;	/* x2APIC id */
		} else if (e->function == 0x80000008) {
			host_phys_bits = e->eax & 0xff;
			emu_cpuid_phys_bits(e, width);
		}
		c->entries[c->nent++] = *e;
	}
	free(sup);
	emu_cpuid_hv_leaves(pt, c, host_phys_bits);
	if (emu_props_cpuid_filter(pt, c) < 0) {
		err = errno;
		free(c);
		errno = err;
		return -1;
	}
	ret = emu_sys_ioctl(vp->vcpu_fd, KVM_SET_CPUID2, c);
	err = errno;
	free(c);
	errno = err;
	return ret;
}

/* ---- REGISTER_INTERCEPT_RESULT (CPUID) entries: pt->cpuid_results ------ */

struct emu_cpuid_result {
	uint32_t vp_index;
	struct hv_register_x64_cpuid_result_parameters p;
};

struct emu_cpuid_results {
	struct emu_cpuid_result *entries;
	uint32_t n;
	atomic_uint gen;		/* bumped per entry; a VP applies each gen once */
};

/* Created at the first result; VP-fd calls do not hold pt->lock, so this lock does. */
static pthread_mutex_t emu_cpuid_results_lock = PTHREAD_MUTEX_INITIALIZER;

static struct emu_cpuid_results *emu_cpuid_results(struct emu_partition *pt)
{
	struct emu_cpuid_results *r;

	pthread_mutex_lock(&emu_cpuid_results_lock);
	r = pt->cpuid_results;
	if (!r) {
		r = calloc(1, sizeof(*r));
		pt->cpuid_results = r;
	}
	pthread_mutex_unlock(&emu_cpuid_results_lock);
	return r;
}

void emu_cpuid_results_destroy(struct emu_partition *pt)
{
	struct emu_cpuid_results *r = pt->cpuid_results;

	if (r)
		free(r->entries);
	free(r);
	pt->cpuid_results = NULL;
}

/*
 * A result for a leaf the VP's table lacks gets an entry first, holding what
 * the guest's CPUID answered for it until now (so the unmasked bits stay
 * what the guest saw); a subleaf-specific result gets a subleaf entry.
 * Returns the table to use: cpuid, or a larger copy replacing it (cpuid
 * freed); NULL, cpuid freed, when out of memory.
 */
static struct kvm_cpuid2 *emu_cpuid_add_missing(struct kvm_cpuid2 *cpuid,
						const struct emu_cpuid_result *r)
{
	const struct hv_register_x64_cpuid_result_input *in = &r->p.input;
	struct kvm_cpuid_entry2 *e;
	struct kvm_cpuid2 *n;
	uint32_t now[4];

	if (emu_cpuid_has_leaf(cpuid, in->eax))
		return cpuid;
	n = emu_cpuid_grow(cpuid, 1);
	if (n)
		emu_cpuid_lookup(cpuid, in->eax, in->ecx, now);
	free(cpuid);
	if (!n)
		return NULL;
	e = emu_cpuid_append(n, in->eax);
	e->eax = now[0];
	e->ebx = now[1];
	e->ecx = now[2];
	e->edx = now[3];
	if (in->subleaf_specific) {
		e->index = in->ecx;
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	}
	return n;
}

/* CPUID results: (value & mask) | (the default & ~mask), per leaf/subleaf. */
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
	struct emu_cpuid_results *p = vp->pt->cpuid_results;
	struct kvm_cpuid2 *cpuid;
	uint32_t gen;
	int ret, err;

	if (!p || !p->n)
		return 0;
	gen = atomic_load(&p->gen);
	if (vp->cpuid_gen == gen)
		return 0;
	cpuid = emu_cpuid_get(vp->vcpu_fd, KVM_GET_CPUID2);
	if (!cpuid)
		return -1;
	for (uint32_t i = 0; i < p->n && cpuid; i++) {
		if (p->entries[i].vp_index != HV_ANY_VP && p->entries[i].vp_index != vp->index)
			continue;
		cpuid = emu_cpuid_add_missing(cpuid, &p->entries[i]);
		if (cpuid)
			emu_cpuid_patch(cpuid, &p->entries[i]);
	}
	if (!cpuid)
		return -1;
	ret = emu_sys_ioctl(vp->vcpu_fd, KVM_SET_CPUID2, cpuid);
	err = errno;
	free(cpuid);
	if (ret == 0)
		vp->cpuid_gen = gen;
	errno = err;
	return ret;
}

uint16_t emu_hc_register_intercept_result(struct emu_call *c)
{
	const struct hv_input_register_intercept_result *in = (const void *)c->in;
	struct emu_cpuid_results *p = emu_cpuid_results(c->pt);
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
	 * EINVAL on the paravirtual kvm_pvm), so a result for a VP that has run could never
	 * take effect: refuse it here rather than fail every later RUN_VP.
	 */
	for (int i = 0; i < EMU_MAX_VPS; i++) {
		struct emu_vp *vp = c->pt->vps[i];

		if (vp && atomic_load(&vp->ran) &&
		    (in->vp_index == HV_ANY_VP || in->vp_index == (uint32_t)i))
			return HV_STATUS_OPERATION_DENIED;
	}
	n = realloc(p->entries, (p->n + 1) * sizeof(*n));
	if (!n)
		return HV_STATUS_INSUFFICIENT_MEMORY;
	p->entries = n;
	n[p->n].vp_index = in->vp_index;
	n[p->n].p = in->parameters.cpuid;
	p->n++;
	atomic_fetch_add(&p->gen, 1);
	/* VPs that have not run take it now; the others at their next RUN_VP */
	for (int i = 0; i < EMU_MAX_VPS; i++) {
		struct emu_vp *vp = c->pt->vps[i];

		if (vp && !atomic_load(&vp->running) && emu_cpuid_results_apply(vp) < 0)
			return HV_STATUS_OPERATION_FAILED;
	}
	return HV_STATUS_SUCCESS;
}

/*
 * GET_VP_CPUID_VALUES (rep): what the guest's CPUID answers, from the VP's
 * KVM CPUID with the registered results (KVM's rules for leaves the table
 * lacks, emu_cpuid_lookup).
 */
uint16_t emu_hc_get_vp_cpuid_values(struct emu_call *c)
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
		uint32_t v[4];

		emu_cpuid_lookup(cpuid, l->eax, l->ecx, v);
		memset(&out[c->done], 0, sizeof(out[0]));
		out[c->done].eax = v[0];
		out[c->done].ebx = v[1];
		out[c->done].ecx = v[2];
		out[c->done].edx = v[3];
	}
	free(cpuid);
	return HV_STATUS_SUCCESS;
}
