/* SPDX-License-Identifier: MIT */
/*
 * Driver and hypervisor side: MSHV_GET_VP_STATE / MSHV_SET_VP_STATE
 * (mshv_vp_ioctl_get_set_state, mshv_vp_ioctl_get_set_state_pfn) and the
 * HvCallGetVpState / HvCallSetVpState they issue.
 *
 * LAPIC: KVM_GET/SET_LAPIC (the xAPIC register page) converted to and from
 * hv_local_interrupt_controller_state; register values are kept as they sit
 * in the APIC page (so apic_id is the ID register, id << 24 in xAPIC mode).
 * A partition without LAPIC has no interrupt controller state: the
 * hypervisor's answer for a state the VP does not have is taken to be
 * HV_STATUS_INVALID_PARAMETER (EINVAL) (unverified).
 * XSAVE: KVM_GET_XSAVE gives the standard form; mshv gives the compacted
 * form with XCOMP_BV bit 63 set and the partition's XSAVE_STATES as
 * components (QEMU asserts bit 63). A blob set is read as XRSTOR reads the
 * compacted form (SDM 13.8): its own XCOMP_BV says which components it holds
 * and where. Refused (HV_STATUS_INVALID_PARAMETER) where XRSTOR faults, with
 * XSAVE_STATES for XCR0: XCOMP_BV bit 63 clear or a component outside
 * XSAVE_STATES, an XSTATE_BV component XCOMP_BV lacks (x87 and SSE, at fixed
 * offsets, excepted), header bytes 16-63 not zero.
 * SIMP, SIEFP, SYNTHETIC_TIMERS: the SynIC store of synthetic.c, the same
 * values the SIMP/SIEFP/STIMERn registers and the guest's MSRs show (a fresh
 * VP reads zeros).
 */
#include <stdlib.h>

#include "emu.h"

#define EMU_STATE_PAGE 4096
#define EMU_USER_TOP 0x00007ffffffff000ULL	/* x86_64 TASK_SIZE_MAX (access_ok) */
#define EMU_MAX_STATE_PAGES 507			/* PFNs that fit one input page */
#define XSAVE_HDR_OFF 512
#define XSAVE_XCOMP_COMPACTED (1ULL << 63)

/* x86 local APIC register offsets (Intel SDM vol. 3, table 11-1) */
#define APIC_ID		0x20
#define APIC_LVR	0x30
#define APIC_RRR	0xc0
#define APIC_LDR	0xd0
#define APIC_DFR	0xe0
#define APIC_SPIV	0xf0
#define APIC_ISR	0x100
#define APIC_TMR	0x180
#define APIC_IRR	0x200
#define APIC_ESR	0x280
#define APIC_LVTCMCI	0x2f0
#define APIC_ICR	0x300
#define APIC_ICR2	0x310
#define APIC_LVTT	0x320
#define APIC_LVTTHMR	0x330
#define APIC_LVTPC	0x340
#define APIC_LVT0	0x350
#define APIC_LVT1	0x360
#define APIC_LVTERR	0x370
#define APIC_TMICT	0x380
#define APIC_TMCCT	0x390
#define APIC_TDCR	0x3e0
#define APIC_LVTT_MODE_MASK	(3U << 17)	/* 0 one-shot, 1 periodic, 2 TSC deadline */
#define APIC_LVTT_TSC_DEADLINE	(2U << 17)

/* The store is synthetic.c's (emu_synthetic_vp_init); it goes with the VP. */
void emu_vpstate_destroy(struct emu_vp *vp)
{
	free(vp->vpstate);
	vp->vpstate = NULL;
}

static uint32_t apic_get(const struct kvm_lapic_state *l, int off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

static void apic_set(struct kvm_lapic_state *l, int off, uint32_t v)
{
	memcpy(l->regs + off, &v, sizeof(v));
}

static void emu_lapic_to_hv(const struct kvm_lapic_state *l,
			    struct hv_local_interrupt_controller_state *h)
{
	h->apic_id = apic_get(l, APIC_ID);
	h->apic_version = apic_get(l, APIC_LVR);
	h->apic_ldr = apic_get(l, APIC_LDR);
	h->apic_dfr = apic_get(l, APIC_DFR);
	h->apic_spurious = apic_get(l, APIC_SPIV);
	for (int i = 0; i < 8; i++) {
		h->apic_isr[i] = apic_get(l, APIC_ISR + 16 * i);
		h->apic_tmr[i] = apic_get(l, APIC_TMR + 16 * i);
		h->apic_irr[i] = apic_get(l, APIC_IRR + 16 * i);
	}
	h->apic_esr = apic_get(l, APIC_ESR);
	h->apic_icr_high = apic_get(l, APIC_ICR2);
	h->apic_icr_low = apic_get(l, APIC_ICR);
	h->apic_lvt_timer = apic_get(l, APIC_LVTT);
	h->apic_lvt_thermal = apic_get(l, APIC_LVTTHMR);
	h->apic_lvt_perfmon = apic_get(l, APIC_LVTPC);
	h->apic_lvt_lint0 = apic_get(l, APIC_LVT0);
	h->apic_lvt_lint1 = apic_get(l, APIC_LVT1);
	h->apic_lvt_error = apic_get(l, APIC_LVTERR);
	h->apic_lvt_cmci = apic_get(l, APIC_LVTCMCI);
	h->apic_error_status = apic_get(l, APIC_ESR);
	h->apic_initial_count = apic_get(l, APIC_TMICT);
	h->apic_counter_value = apic_get(l, APIC_TMCCT);
	h->apic_divide_configuration = apic_get(l, APIC_TDCR);
	h->apic_remote_read = apic_get(l, APIC_RRR);
}

static void emu_lapic_from_hv(const struct hv_local_interrupt_controller_state *h,
			      struct kvm_lapic_state *l)
{
	apic_set(l, APIC_ID, h->apic_id);
	apic_set(l, APIC_LVR, h->apic_version);
	apic_set(l, APIC_LDR, h->apic_ldr);
	apic_set(l, APIC_DFR, h->apic_dfr);
	apic_set(l, APIC_SPIV, h->apic_spurious);
	for (int i = 0; i < 8; i++) {
		apic_set(l, APIC_ISR + 16 * i, h->apic_isr[i]);
		apic_set(l, APIC_TMR + 16 * i, h->apic_tmr[i]);
		apic_set(l, APIC_IRR + 16 * i, h->apic_irr[i]);
	}
	apic_set(l, APIC_ESR, h->apic_esr);
	apic_set(l, APIC_ICR2, h->apic_icr_high);
	apic_set(l, APIC_ICR, h->apic_icr_low);
	apic_set(l, APIC_LVTT, h->apic_lvt_timer);
	apic_set(l, APIC_LVTTHMR, h->apic_lvt_thermal);
	apic_set(l, APIC_LVTPC, h->apic_lvt_perfmon);
	apic_set(l, APIC_LVT0, h->apic_lvt_lint0);
	apic_set(l, APIC_LVT1, h->apic_lvt_lint1);
	apic_set(l, APIC_LVTERR, h->apic_lvt_error);
	apic_set(l, APIC_LVTCMCI, h->apic_lvt_cmci);
	apic_set(l, APIC_TMICT, h->apic_initial_count);
	apic_set(l, APIC_TMCCT, h->apic_counter_value);
	apic_set(l, APIC_TDCR, h->apic_divide_configuration);
	apic_set(l, APIC_RRR, h->apic_remote_read);
}

/*
 * A LAPIC state equal to the one KVM holds, with no timer armed, needs no
 * KVM_SET_LAPIC: kvm_apic_set_state would rewrite the same page and derive
 * the same IRR/ISR summaries from it. A state with a timer armed (TMICT, or
 * the TSC-deadline mode) is always set: kvm_apic_set_state cancels the timer
 * and starts it again from the page's count (hrtimer_cancel,
 * __start_apic_timer), which a state set must do.
 */
static bool emu_lapic_set_changes_nothing(const struct kvm_lapic_state *held,
					  const struct kvm_lapic_state *set)
{
	if (apic_get(set, APIC_TMICT) ||
	    (apic_get(set, APIC_LVTT) & APIC_LVTT_MODE_MASK) == APIC_LVTT_TSC_DEADLINE)
		return false;
	return !memcmp(held->regs, set->regs, sizeof(set->regs));
}

static uint16_t emu_state_lapic(struct emu_vp *vp, bool set, uint8_t *buf)
{
	struct kvm_lapic_state l, held;
	struct hv_local_interrupt_controller_state h;

	if (!vp->pt->lapic)
		return HV_STATUS_INVALID_PARAMETER;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return HV_STATUS_OPERATION_FAILED;
	if (!set) {
		memset(&h, 0, sizeof(h));
		emu_lapic_to_hv(&l, &h);
		memcpy(buf, &h, sizeof(h));
		return HV_STATUS_SUCCESS;
	}
	memcpy(&h, buf, sizeof(h));
	held = l;
	emu_lapic_from_hv(&h, &l);
	if (!emu_lapic_set_changes_nothing(&held, &l) &&
	    emu_sys_ioctl(vp->vcpu_fd, KVM_SET_LAPIC, &l) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	emu_time_vp_lapic_set(vp, &l);
	return HV_STATUS_SUCCESS;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/*
 * Offsets in a compacted area of the components xcomp has (SDM 13.4.3: in
 * index order after the legacy area and header, 64-byte aligned where CPUID
 * 0xD.i ECX[1] says); false when they do not fit in size bytes.
 */
static bool emu_xsave_offsets(const struct emu_xsave_layout *x, uint64_t xcomp, uint32_t size,
			      uint32_t off[64])
{
	uint32_t at = XSAVE_HDR_OFF + 64;

	for (int i = 2; i < 63; i++) {
		if (!(xcomp & (1ULL << i)))
			continue;
		if (x->align64 & (1ULL << i))
			at = (at + 63) & ~63U;
		off[i] = at;
		at += x->comp_size[i];
	}
	return at <= size;
}

/* KVM's standard-form XSAVE -> the compacted blob (SDM 13.4.3). */
static uint16_t emu_xsave_get(struct emu_vp *vp, uint8_t *buf, const struct emu_xsave_layout *x)
{
	struct kvm_xsave kx;
	const uint8_t *std = (const uint8_t *)kx.region;

	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XSAVE, &kx) < 0)
		return HV_STATUS_OPERATION_FAILED;
	memset(buf, 0, x->size);
	memcpy(buf, std, XSAVE_HDR_OFF);
	put64(buf + XSAVE_HDR_OFF, get64(std + XSAVE_HDR_OFF) & x->states);
	put64(buf + XSAVE_HDR_OFF + 8, XSAVE_XCOMP_COMPACTED | x->states);
	for (int i = 2; i < 63; i++)
		if (x->states & (1ULL << i))
			memcpy(buf + x->comp_off[i], std + x->std_off[i], x->comp_size[i]);
	return HV_STATUS_SUCCESS;
}

/*
 * The compacted blob -> KVM's standard form, built whole from the blob:
 * KVM_SET_XSAVE takes each component XSTATE_BV names from the buffer and puts
 * every other one in its initial state (copy_uabi_to_xstate), so nothing of
 * what KVM holds is needed.
 */
static uint16_t emu_xsave_set(struct emu_vp *vp, const uint8_t *buf, uint32_t buf_sz,
			      const struct emu_xsave_layout *x)
{
	static const uint8_t zero[48];
	struct kvm_xsave kx;
	uint8_t *std = (uint8_t *)kx.region;
	uint64_t bv = get64(buf + XSAVE_HDR_OFF), xcomp = get64(buf + XSAVE_HDR_OFF + 8);
	uint32_t off[64];

	if (!(xcomp & XSAVE_XCOMP_COMPACTED))
		return HV_STATUS_INVALID_PARAMETER;
	xcomp &= ~XSAVE_XCOMP_COMPACTED;
	if ((xcomp & ~x->states) || (bv & ~(xcomp | HV_X64_XFEM_LEGACY_X87 | HV_X64_XFEM_LEGACY_SSE)) ||
	    memcmp(buf + XSAVE_HDR_OFF + 16, zero, sizeof(zero)) ||
	    !emu_xsave_offsets(x, xcomp, buf_sz, off))
		return HV_STATUS_INVALID_PARAMETER;
	memset(&kx, 0, sizeof(kx));
	memcpy(std, buf, XSAVE_HDR_OFF);
	put64(std + XSAVE_HDR_OFF, bv);
	for (int i = 2; i < 63; i++)
		if (xcomp & (1ULL << i))
			memcpy(std + x->std_off[i], buf + off[i], x->comp_size[i]);
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_XSAVE, &kx) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	return HV_STATUS_SUCCESS;
}

/* mshv_vp_ioctl_get_set_state (VP mutex held) */
int emu_vp_state(struct emu_vp *vp, bool set, struct mshv_get_set_vp_state *uarg)
{
	struct mshv_get_set_vp_state args;
	const struct emu_xsave_layout *x = NULL;
	uint32_t needed;
	uint8_t *buf;
	size_t filled = 0;
	uint16_t st;
	int ret = 0;

	/* step 1 */
	if (emu_copy_from_user(&args, uarg, sizeof(args)) < 0)
		return -1;
	/* step 2 */
	if (args.type >= MSHV_VP_STATE_COUNT || args.rsvd[0] || args.rsvd[1] || args.rsvd[2] ||
	    !args.buf_sz || args.buf_sz % EMU_STATE_PAGE || args.buf_ptr % EMU_STATE_PAGE) {
		errno = EINVAL;
		return -1;
	}
	/* step 3: access_ok */
	if (args.buf_ptr + args.buf_sz < args.buf_ptr || args.buf_ptr + args.buf_sz > EMU_USER_TOP) {
		errno = EFAULT;
		return -1;
	}
	/* step 4: XSAVE reads XSAVE_STATES and MAX_XSAVE_DATA_SIZE */
	switch (args.type) {
	case MSHV_VP_STATE_XSAVE:
		x = emu_xsave_layout(vp->pt);
		if (!x) {
			errno = EIO;
			return -1;
		}
		needed = x->size;
		break;
	case MSHV_VP_STATE_SYNTHETIC_TIMERS:
		needed = sizeof(struct hv_synthetic_timers_state);
		break;
	default:
		needed = EMU_STATE_PAGE;
	}
	/* step 5: the needed size is written back, on success too */
	if (emu_copy_to_user(EMU_USER_MEMBER(uarg, struct mshv_get_set_vp_state, buf_sz), &needed,
			     sizeof(needed)) < 0)
		return -1;
	/* step 6 */
	if (needed > args.buf_sz) {
		errno = EINVAL;
		return -1;
	}
	/* step 7: page types pin buf_sz/4096 pages, writable even for SET */
	if (args.type != MSHV_VP_STATE_SYNTHETIC_TIMERS &&
	    args.buf_sz / EMU_STATE_PAGE > EMU_MAX_STATE_PAGES) {
		errno = EINVAL;
		return -1;
	}
	buf = malloc(args.buf_sz);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	if (set || args.type != MSHV_VP_STATE_SYNTHETIC_TIMERS) {
		filled = args.type == MSHV_VP_STATE_SYNTHETIC_TIMERS ? needed : args.buf_sz;

		if (emu_copy_from_user(buf, (void *)(uintptr_t)args.buf_ptr, filled) < 0 ||
		    (args.type != MSHV_VP_STATE_SYNTHETIC_TIMERS &&
		     emu_copy_to_user((void *)(uintptr_t)args.buf_ptr, buf, filled) < 0)) {
			ret = -1;
			goto out;
		}
	}
	/* what the copy left (all of a synthetic timers get) reads 0 */
	memset(buf + filled, 0, args.buf_sz - filled);
	/* step 8: HvCallGetVpState / HvCallSetVpState */
	if (args.type == MSHV_VP_STATE_LAPIC)
		st = emu_state_lapic(vp, set, buf);
	else if (args.type == MSHV_VP_STATE_XSAVE)
		st = set ? emu_xsave_set(vp, buf, args.buf_sz, x) : emu_xsave_get(vp, buf, x);
	else
		st = emu_synthetic_state(vp, args.type, set, buf, needed);
	if (st) {
		errno = emu_hv_status_errno(st);
		ret = -1;
		goto out;
	}
	if (!set && emu_copy_to_user((void *)(uintptr_t)args.buf_ptr, buf, needed) < 0)
		ret = -1;
out:
	free(buf);
	return ret;
}
