/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: CPUID. HvCallRegisterInterceptResult with
 * HV_INTERCEPT_TYPE_X64_CPUID (results stored per partition and pushed into
 * each VP's KVM CPUID), HvCallGetVpCpuidValues, and the KVM CPUID helpers
 * that properties.c shares (KVM_GET_SUPPORTED_CPUID, KVM_GET_CPUID2).
 */
#include <stdlib.h>

#include "emu.h"
#include "hypercall.h"

/* ---- KVM CPUID tables ------------------------------------------------------ */

static struct kvm_cpuid2 *emu_cpuid_alloc(int nent)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));

	if (c)
		c->nent = (uint32_t)nent;
	return c;
}

/* KVM_GET_SUPPORTED_CPUID on /dev/kvm (fd), or the VP's KVM_GET_CPUID2. */
struct kvm_cpuid2 *emu_cpuid_get(int fd, unsigned long req)
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
	for (uint32_t i = 0; i < p->n; i++)
		if (p->entries[i].vp_index == HV_ANY_VP || p->entries[i].vp_index == vp->index)
			emu_cpuid_patch(cpuid, &p->entries[i]);
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

/* GET_VP_CPUID_VALUES (rep): the VP's KVM CPUID, registered results included. */
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
