/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side.
 *
 * Hyper-V register names <-> KVM vCPU state (HvCallGet/SetVpRegisters, the
 * VP register page).
 *
 * The fast state (GPRs, RIP, RFLAGS, segments, control registers, events)
 * lives in kvm_run->s.regs (KVM_CAP_SYNC_REGS): KVM fills it at every exit
 * (kvm_valid_regs) and applies it at the next KVM_RUN (kvm_dirty_regs), so
 * reading or writing a GPR costs no ioctl. SREGS and EVENTS writes are also
 * issued at once (KVM_SET_SREGS/KVM_SET_VCPU_EVENTS) so a bad value fails
 * the hypercall rather than the next run. Everything else (debug registers,
 * FPU/XMM, MSRs, XCR0, MP state) uses its own ioctl.
 *
 * Synthetic registers (synthetic MSRs, SynIC, synthetic timers, pending
 * events, deliverability, emulation hints) are synthetic.c's; the
 * INTERMEDIATE_CR0/3/4/8 names are the plain CR0/3/4/8, which is what they
 * hold when no nested hypervisor runs in the guest (none can here).
 *
 * The register page and the register file are one state in both
 * directions: a register write refreshes the page, and page writes the VMM
 * marked dirty are taken before any register read or write (so
 * GetVpRegisters returns them, before the first run as after an intercept).
 *
 * Status codes: an unknown or unemulated register name gives
 * HV_STATUS_INVALID_PARAMETER, which is what the TLFS lists for
 * HvGetVpRegisters/HvSetVpRegisters with an invalid register name; a value
 * KVM refuses also gives HV_STATUS_INVALID_PARAMETER (the TLFS has no
 * narrower status for these calls).
 */
#include <stdlib.h>

#include "emu.h"

/* Architectural x86 bits and MSR indices (Intel SDM), not Hyper-V numbers. */
#define X86_CR0_PE		(1ULL << 0)
#define X86_CR0_PG		(1ULL << 31)
#define X86_CR4_PAE		(1ULL << 5)
#define X86_EFER_LMA		(1ULL << 10)
#define MSR_IA32_TSC		0x00000010
#define MSR_IA32_FEATURE_CONTROL 0x0000003a
#define MSR_IA32_TSC_ADJUST	0x0000003b
#define MSR_IA32_SPEC_CTRL	0x00000048
#define MSR_MTRRCAP		0x000000fe
#define MSR_IA32_SYSENTER_CS	0x00000174
#define MSR_IA32_SYSENTER_ESP	0x00000175
#define MSR_IA32_SYSENTER_EIP	0x00000176
#define MSR_IA32_MISC_ENABLE	0x000001a0
#define MSR_IA32_DEBUGCTL	0x000001d9
#define MSR_MTRR_PHYSBASE0	0x00000200
#define MSR_MTRR_FIX64K_00000	0x00000250
#define MSR_MTRR_FIX16K_80000	0x00000258
#define MSR_MTRR_FIX16K_A0000	0x00000259
#define MSR_MTRR_FIX4K_C0000	0x00000268
#define MSR_IA32_CR_PAT		0x00000277
#define MSR_MTRR_DEF_TYPE	0x000002ff
#define MSR_IA32_BNDCFGS	0x00000d90
#define MSR_IA32_XSS		0x00000da0
#define MSR_IA32_U_CET		0x000006a0
#define MSR_IA32_S_CET		0x000006a2
#define MSR_IA32_PL0_SSP	0x000006a4
#define MSR_IA32_INT_SSP_TAB	0x000006a8
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_TSC_AUX		0xc0000103
#define EMU_KVM_MTRR_VAR_COUNT	8	/* KVM_NR_VAR_MTRR */

#define EMU_SYNC_ALL (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)

int emu_regs_sync(struct emu_vp *vp)
{
	struct kvm_sync_regs *s = &vp->run->s.regs;

	if (vp->sync_valid)
		return 0;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_REGS, &s->regs) < 0 ||
	    emu_sys_ioctl(vp->vcpu_fd, KVM_GET_SREGS, &s->sregs) < 0 ||
	    emu_sys_ioctl(vp->vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return -1;
	vp->run->kvm_dirty_regs = 0;
	vp->sync_valid = true;
	return 0;
}

static __u64 *emu_gpr(struct kvm_regs *r, uint32_t name)
{
	switch (name) {
	case HV_X64_REGISTER_RAX: return &r->rax;
	case HV_X64_REGISTER_RCX: return &r->rcx;
	case HV_X64_REGISTER_RDX: return &r->rdx;
	case HV_X64_REGISTER_RBX: return &r->rbx;
	case HV_X64_REGISTER_RSP: return &r->rsp;
	case HV_X64_REGISTER_RBP: return &r->rbp;
	case HV_X64_REGISTER_RSI: return &r->rsi;
	case HV_X64_REGISTER_RDI: return &r->rdi;
	case HV_X64_REGISTER_R8: return &r->r8;
	case HV_X64_REGISTER_R9: return &r->r9;
	case HV_X64_REGISTER_R10: return &r->r10;
	case HV_X64_REGISTER_R11: return &r->r11;
	case HV_X64_REGISTER_R12: return &r->r12;
	case HV_X64_REGISTER_R13: return &r->r13;
	case HV_X64_REGISTER_R14: return &r->r14;
	case HV_X64_REGISTER_R15: return &r->r15;
	case HV_X64_REGISTER_RIP: return &r->rip;
	case HV_X64_REGISTER_RFLAGS: return &r->rflags;
	}
	return NULL;
}

/* Update the register page's copy of a GPR/RIP/RFLAGS (same order as the names). */
static void emu_page_gpr_set(struct hv_vp_register_page *rp, uint32_t name, uint64_t v)
{
	size_t off = offsetof(struct hv_vp_register_page, rax) +
		     (name - HV_X64_REGISTER_RAX) * sizeof(uint64_t);

	memcpy((char *)rp + off, &v, sizeof(v));
}

static struct kvm_segment *emu_seg(struct kvm_sregs *sr, uint32_t name)
{
	switch (name) {
	case HV_X64_REGISTER_ES: return &sr->es;
	case HV_X64_REGISTER_CS: return &sr->cs;
	case HV_X64_REGISTER_SS: return &sr->ss;
	case HV_X64_REGISTER_DS: return &sr->ds;
	case HV_X64_REGISTER_FS: return &sr->fs;
	case HV_X64_REGISTER_GS: return &sr->gs;
	case HV_X64_REGISTER_LDTR: return &sr->ldt;
	case HV_X64_REGISTER_TR: return &sr->tr;
	}
	return NULL;
}

/* kvm_segment -> Hyper-V segment (attributes word: type, s, dpl, p, avl, l, db, g). */
void emu_seg_to_hv(const struct kvm_segment *k, struct hv_x64_segment_register *h)
{
	h->base = k->base;
	h->limit = k->limit;
	h->selector = k->selector;
	h->attributes = (uint16_t)(
		((k->type << HV_X64_SEGMENT_ATTR_TYPE_SHIFT) & HV_X64_SEGMENT_ATTR_TYPE_MASK) |
		((k->s << HV_X64_SEGMENT_ATTR_S_SHIFT) & HV_X64_SEGMENT_ATTR_S_MASK) |
		((k->dpl << HV_X64_SEGMENT_ATTR_DPL_SHIFT) & HV_X64_SEGMENT_ATTR_DPL_MASK) |
		((k->present << HV_X64_SEGMENT_ATTR_P_SHIFT) & HV_X64_SEGMENT_ATTR_P_MASK) |
		((k->avl << HV_X64_SEGMENT_ATTR_AVL_SHIFT) & HV_X64_SEGMENT_ATTR_AVL_MASK) |
		((k->l << HV_X64_SEGMENT_ATTR_L_SHIFT) & HV_X64_SEGMENT_ATTR_L_MASK) |
		((k->db << HV_X64_SEGMENT_ATTR_DB_SHIFT) & HV_X64_SEGMENT_ATTR_DB_MASK) |
		((k->g << HV_X64_SEGMENT_ATTR_G_SHIFT) & HV_X64_SEGMENT_ATTR_G_MASK));
}

/* Hyper-V segment -> kvm_segment; a non-present segment is unusable (as QEMU does). */
void emu_seg_from_hv(const struct hv_x64_segment_register *h, struct kvm_segment *k)
{
	uint16_t a = h->attributes;

	memset(k, 0, sizeof(*k));
	k->base = h->base;
	k->limit = h->limit;
	k->selector = h->selector;
	k->type = (a & HV_X64_SEGMENT_ATTR_TYPE_MASK) >> HV_X64_SEGMENT_ATTR_TYPE_SHIFT;
	k->s = (a & HV_X64_SEGMENT_ATTR_S_MASK) >> HV_X64_SEGMENT_ATTR_S_SHIFT;
	k->dpl = (a & HV_X64_SEGMENT_ATTR_DPL_MASK) >> HV_X64_SEGMENT_ATTR_DPL_SHIFT;
	k->present = (a & HV_X64_SEGMENT_ATTR_P_MASK) >> HV_X64_SEGMENT_ATTR_P_SHIFT;
	k->avl = (a & HV_X64_SEGMENT_ATTR_AVL_MASK) >> HV_X64_SEGMENT_ATTR_AVL_SHIFT;
	k->l = (a & HV_X64_SEGMENT_ATTR_L_MASK) >> HV_X64_SEGMENT_ATTR_L_SHIFT;
	k->db = (a & HV_X64_SEGMENT_ATTR_DB_MASK) >> HV_X64_SEGMENT_ATTR_DB_SHIFT;
	k->g = (a & HV_X64_SEGMENT_ATTR_G_MASK) >> HV_X64_SEGMENT_ATTR_G_SHIFT;
	k->unusable = !k->present;
}

/* ---- MSR-backed registers ------------------------------------------------ */

static uint32_t emu_reg_msr(uint32_t name)
{
	switch (name) {
	case HV_X64_REGISTER_TSC: return MSR_IA32_TSC;
	case HV_X64_REGISTER_KERNEL_GS_BASE: return MSR_KERNEL_GS_BASE;
	case HV_X64_REGISTER_PAT: return MSR_IA32_CR_PAT;
	case HV_X64_REGISTER_SYSENTER_CS: return MSR_IA32_SYSENTER_CS;
	case HV_X64_REGISTER_SYSENTER_EIP: return MSR_IA32_SYSENTER_EIP;
	case HV_X64_REGISTER_SYSENTER_ESP: return MSR_IA32_SYSENTER_ESP;
	case HV_X64_REGISTER_STAR: return MSR_STAR;
	case HV_X64_REGISTER_LSTAR: return MSR_LSTAR;
	case HV_X64_REGISTER_CSTAR: return MSR_CSTAR;
	case HV_X64_REGISTER_SFMASK: return MSR_SYSCALL_MASK;
	case HV_X64_REGISTER_TSC_AUX: return MSR_TSC_AUX;
	case HV_X64_REGISTER_MSR_MTRR_CAP: return MSR_MTRRCAP;
	case HV_X64_REGISTER_MSR_MTRR_DEF_TYPE: return MSR_MTRR_DEF_TYPE;
	case HV_X64_REGISTER_MSR_MTRR_FIX64K00000: return MSR_MTRR_FIX64K_00000;
	case HV_X64_REGISTER_MSR_MTRR_FIX16K80000: return MSR_MTRR_FIX16K_80000;
	case HV_X64_REGISTER_MSR_MTRR_FIX16KA0000: return MSR_MTRR_FIX16K_A0000;
	case HV_X64_REGISTER_BNDCFGS: return MSR_IA32_BNDCFGS;
	case HV_X64_REGISTER_DEBUG_CTL: return MSR_IA32_DEBUGCTL;
	case HV_X64_REGISTER_SPEC_CTRL: return MSR_IA32_SPEC_CTRL;
	case HV_X64_REGISTER_U_XSS: return MSR_IA32_XSS;
	case HV_X64_REGISTER_U_CET: return MSR_IA32_U_CET;
	case HV_X64_REGISTER_S_CET: return MSR_IA32_S_CET;
	case HV_X64_REGISTER_INTERRUPT_SSP_TABLE_ADDR: return MSR_IA32_INT_SSP_TAB;
	case HV_X64_REGISTER_TSC_ADJUST: return MSR_IA32_TSC_ADJUST;
	case HV_X64_REGISTER_MSR_IA32_MISC_ENABLE: return MSR_IA32_MISC_ENABLE;
	case HV_X64_REGISTER_IA32_FEATURE_CONTROL: return MSR_IA32_FEATURE_CONTROL;
	}
	if (name >= HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0 &&
	    name < HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0 + EMU_KVM_MTRR_VAR_COUNT)
		return MSR_MTRR_PHYSBASE0 + 2 * (name - HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0);
	if (name >= HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0 &&
	    name < HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0 + EMU_KVM_MTRR_VAR_COUNT)
		return MSR_MTRR_PHYSBASE0 + 1 + 2 * (name - HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0);
	if (name >= HV_X64_REGISTER_MSR_MTRR_FIX4KC0000 &&
	    name <= HV_X64_REGISTER_MSR_MTRR_FIX4KF8000)
		return MSR_MTRR_FIX4K_C0000 + (name - HV_X64_REGISTER_MSR_MTRR_FIX4KC0000);
	if (name >= HV_X64_REGISTER_PL0_SSP && name <= HV_X64_REGISTER_PL3_SSP)
		return MSR_IA32_PL0_SSP + (name - HV_X64_REGISTER_PL0_SSP);
	return 0;
}

/* One MSR through KVM_GET/SET_MSRS, which return the number processed: 0 means KVM refused it. */
int emu_kvm_msr(struct emu_vp *vp, uint32_t index, uint64_t *value, bool set)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = index;
	m.e.data = set ? *value : 0;
	if (emu_sys_ioctl(vp->vcpu_fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, &m) != 1)
		return -1;
	if (!set)
		*value = m.e.data;
	return 0;
}

static uint16_t emu_msr_access(struct emu_vp *vp, uint32_t index, __u64 *value, bool set)
{
	uint64_t v = set ? *value : 0;

	if (emu_kvm_msr(vp, index, &v, set) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	if (!set)
		*value = v;
	return HV_STATUS_SUCCESS;
}

/* ---- events: PENDING_INTERRUPTION, INTERRUPT_STATE ---------------------- */

uint64_t emu_pending_interruption(const struct kvm_vcpu_events *ev)
{
	uint64_t v = 0;

	if (ev->exception.injected) {
		v = HV_X64_PENDING_INTERRUPTION_PENDING |
		    ((uint64_t)HV_X64_PENDING_EXCEPTION << HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT) |
		    ((uint64_t)ev->exception.nr << HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT);
		if (ev->exception.has_error_code)
			v |= HV_X64_PENDING_INTERRUPTION_DELIVER_ERROR_CODE |
			     ((uint64_t)ev->exception.error_code <<
			      HV_X64_PENDING_INTERRUPTION_ERROR_CODE_SHIFT);
	} else if (ev->nmi.injected) {
		v = HV_X64_PENDING_INTERRUPTION_PENDING |
		    ((uint64_t)HV_X64_PENDING_NMI << HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT) |
		    (2ULL << HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT);	/* NMI is vector 2 */
	} else if (ev->interrupt.injected) {
		v = HV_X64_PENDING_INTERRUPTION_PENDING |
		    ((uint64_t)HV_X64_PENDING_INTERRUPT << HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT) |
		    ((uint64_t)ev->interrupt.nr << HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT);
	}
	return v;
}

uint64_t emu_interrupt_state(const struct kvm_vcpu_events *ev)
{
	return (ev->interrupt.shadow ? HV_X64_INTERRUPT_STATE_INTERRUPT_SHADOW : 0) |
	       (ev->nmi.masked ? HV_X64_INTERRUPT_STATE_NMI_MASKED : 0);
}

/* PENDING_INTERRUPTION or INTERRUPT_STATE value v into ev; an HV status. */
static uint16_t emu_events_apply(struct kvm_vcpu_events *ev, uint32_t name, uint64_t v)
{
	if (name == HV_REGISTER_INTERRUPT_STATE) {
		if (v & ~(HV_X64_INTERRUPT_STATE_INTERRUPT_SHADOW | HV_X64_INTERRUPT_STATE_NMI_MASKED))
			return HV_STATUS_INVALID_PARAMETER;
		ev->interrupt.shadow = (v & HV_X64_INTERRUPT_STATE_INTERRUPT_SHADOW) ?
				       KVM_X86_SHADOW_INT_MOV_SS : 0;
		ev->nmi.masked = !!(v & HV_X64_INTERRUPT_STATE_NMI_MASKED);
		ev->flags |= KVM_VCPUEVENT_VALID_SHADOW;
	} else {
		uint32_t type = (v & HV_X64_PENDING_INTERRUPTION_TYPE_MASK) >>
				HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT;
		uint32_t vec = (v & HV_X64_PENDING_INTERRUPTION_VECTOR_MASK) >>
			       HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT;

		ev->exception.injected = 0;
		ev->interrupt.injected = 0;
		ev->nmi.injected = 0;
		if (v & HV_X64_PENDING_INTERRUPTION_PENDING) {
			if (vec > 0xff)
				return HV_STATUS_INVALID_PARAMETER;
			if (type == HV_X64_PENDING_EXCEPTION) {
				ev->exception.injected = 1;
				ev->exception.nr = (uint8_t)vec;
				ev->exception.has_error_code =
					!!(v & HV_X64_PENDING_INTERRUPTION_DELIVER_ERROR_CODE);
				ev->exception.error_code = (uint32_t)(v >>
					HV_X64_PENDING_INTERRUPTION_ERROR_CODE_SHIFT);
			} else if (type == HV_X64_PENDING_NMI) {
				ev->nmi.injected = 1;
			} else if (type == HV_X64_PENDING_INTERRUPT) {
				ev->interrupt.injected = 1;
				ev->interrupt.nr = (uint8_t)vec;
				ev->interrupt.soft = 0;
			} else {
				return HV_STATUS_INVALID_PARAMETER;
			}
		}
	}
	return HV_STATUS_SUCCESS;
}

static uint16_t emu_set_events(struct emu_vp *vp, uint32_t name, uint64_t v)
{
	struct kvm_vcpu_events ev = vp->run->s.regs.events;
	uint16_t st = emu_events_apply(&ev, name, v);

	if (st)
		return st;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	vp->run->s.regs.events = ev;
	return HV_STATUS_SUCCESS;
}

static bool emu_is_events_name(uint32_t name)
{
	return name == HV_REGISTER_PENDING_INTERRUPTION || name == HV_REGISTER_INTERRUPT_STATE;
}

/* ---- FPU / XMM ----------------------------------------------------------- */

/*
 * Through KVM_GET/SET_XSAVE, not KVM_GET/SET_FPU: KVM_GET_FPU never fills
 * MXCSR, and KVM_SET_FPU leaves XSTATE_BV alone, so XMM values written with
 * it are dropped as "init state" by the next XRSTOR
 * (kvm_arch_vcpu_ioctl_get/set_fpu in arch/x86/kvm/x86.c).
 * FXSAVE legacy area: FCW@0 FSW@2 FTW@4 FOP@6 FIP@8 FDP@16 MXCSR@24
 * MXCSR_MASK@28 ST0-7@32 XMM0-15@160; XSTATE_BV@512.
 */
#define FX_FCW 0
#define FX_FSW 2
#define FX_FTW 4
#define FX_FOP 6
#define FX_FIP 8
#define FX_FDP 16
#define FX_MXCSR 24
#define FX_MXCSR_MASK 28
#define FX_ST0 32
#define FX_XMM0 160
#define XSAVE_XSTATE_BV 512

static uint16_t emu_fpu_get(struct emu_vp *vp, uint32_t name, union hv_register_value *v)
{
	struct kvm_xsave x;
	const uint8_t *fx = (const uint8_t *)x.region;

	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XSAVE, &x) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	if (name >= HV_X64_REGISTER_XMM0 && name <= HV_X64_REGISTER_XMM15) {
		memcpy(&v->reg128, fx + FX_XMM0 + 16 * (name - HV_X64_REGISTER_XMM0), 16);
	} else if (name >= HV_X64_REGISTER_FP_MMX0 && name <= HV_X64_REGISTER_FP_MMX7) {
		const uint8_t *r = fx + FX_ST0 + 16 * (name - HV_X64_REGISTER_FP_MMX0);

		memcpy(&v->fp.mantissa, r, 8);
		v->fp.exponent_sign = (uint64_t)r[8] | ((uint64_t)r[9] << 8);
	} else if (name == HV_X64_REGISTER_FP_CONTROL_STATUS) {
		memcpy(&v->fp_control_status.fp_control, fx + FX_FCW, 2);
		memcpy(&v->fp_control_status.fp_status, fx + FX_FSW, 2);
		v->fp_control_status.fp_tag = fx[FX_FTW];
		memcpy(&v->fp_control_status.last_fp_op, fx + FX_FOP, 2);
		memcpy(&v->fp_control_status.last_fp_rip, fx + FX_FIP, 8);
	} else {	/* HV_X64_REGISTER_XMM_CONTROL_STATUS */
		memcpy(&v->xmm_control_status.last_fp_rdp, fx + FX_FDP, 8);
		memcpy(&v->xmm_control_status.xmm_status_control, fx + FX_MXCSR, 4);
		memcpy(&v->xmm_control_status.xmm_status_control_mask, fx + FX_MXCSR_MASK, 4);
	}
	return HV_STATUS_SUCCESS;
}

static uint16_t emu_fpu_set(struct emu_vp *vp, uint32_t name, const union hv_register_value *v)
{
	struct kvm_xsave x;
	uint8_t *fx = (uint8_t *)x.region;
	uint64_t bv;

	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XSAVE, &x) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	memcpy(&bv, fx + XSAVE_XSTATE_BV, 8);
	if (name >= HV_X64_REGISTER_XMM0 && name <= HV_X64_REGISTER_XMM15) {
		memcpy(fx + FX_XMM0 + 16 * (name - HV_X64_REGISTER_XMM0), &v->reg128, 16);
		bv |= HV_X64_XFEM_LEGACY_SSE;
	} else if (name >= HV_X64_REGISTER_FP_MMX0 && name <= HV_X64_REGISTER_FP_MMX7) {
		uint8_t *r = fx + FX_ST0 + 16 * (name - HV_X64_REGISTER_FP_MMX0);

		memcpy(r, &v->fp.mantissa, 8);
		r[8] = (uint8_t)v->fp.exponent_sign;
		r[9] = (uint8_t)(v->fp.exponent_sign >> 8);
		bv |= HV_X64_XFEM_LEGACY_X87;
	} else if (name == HV_X64_REGISTER_FP_CONTROL_STATUS) {
		memcpy(fx + FX_FCW, &v->fp_control_status.fp_control, 2);
		memcpy(fx + FX_FSW, &v->fp_control_status.fp_status, 2);
		fx[FX_FTW] = v->fp_control_status.fp_tag;
		memcpy(fx + FX_FOP, &v->fp_control_status.last_fp_op, 2);
		memcpy(fx + FX_FIP, &v->fp_control_status.last_fp_rip, 8);
		bv |= HV_X64_XFEM_LEGACY_X87;
	} else {
		memcpy(fx + FX_FDP, &v->xmm_control_status.last_fp_rdp, 8);
		memcpy(fx + FX_MXCSR, &v->xmm_control_status.xmm_status_control, 4);
		bv |= HV_X64_XFEM_LEGACY_SSE;
	}
	memcpy(fx + XSAVE_XSTATE_BV, &bv, 8);
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_XSAVE, &x) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	if (name >= HV_X64_REGISTER_XMM0 && name <= HV_X64_REGISTER_XMM5)
		memcpy(&(&vp->reg_page->xmm0)[name - HV_X64_REGISTER_XMM0], &v->reg128, 16);
	return HV_STATUS_SUCCESS;
}

static bool emu_is_fpu_name(uint32_t name)
{
	return (name >= HV_X64_REGISTER_XMM0 && name <= HV_X64_REGISTER_XMM15) ||
	       (name >= HV_X64_REGISTER_FP_MMX0 && name <= HV_X64_REGISTER_FP_MMX7) ||
	       name == HV_X64_REGISTER_FP_CONTROL_STATUS ||
	       name == HV_X64_REGISTER_XMM_CONTROL_STATUS;
}

/* ---- debug registers, XCR0, MP state ------------------------------------ */

static uint16_t emu_dr_access(struct emu_vp *vp, uint32_t name, __u64 *value, bool set)
{
	struct kvm_debugregs dr;
	__u64 *slot;

	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_DEBUGREGS, &dr) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	if (name <= HV_X64_REGISTER_DR3)
		slot = (__u64 *)&dr.db[name - HV_X64_REGISTER_DR0];
	else if (name == HV_X64_REGISTER_DR6)
		slot = (__u64 *)&dr.dr6;
	else
		slot = (__u64 *)&dr.dr7;
	if (!set) {
		*value = *slot;
		return HV_STATUS_SUCCESS;
	}
	*slot = *value;
	dr.flags = 0;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_DEBUGREGS, &dr) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	if (name == HV_X64_REGISTER_DR7)
		vp->reg_page->dr7 = *value;
	return HV_STATUS_SUCCESS;
}

int emu_xcr0_get(struct emu_vp *vp, __u64 *xcr0)
{
	struct kvm_xcrs xcrs;

	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XCRS, &xcrs) < 0)
		return -1;
	for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
		if (xcrs.xcrs[i].xcr == 0) {
			*xcr0 = xcrs.xcrs[i].value;
			return 0;
		}
	}
	*xcr0 = HV_X64_XFEM_LEGACY_X87;
	return 0;
}

static uint16_t emu_xcr0_set(struct emu_vp *vp, uint64_t value)
{
	struct kvm_xcrs xcrs;

	memset(&xcrs, 0, sizeof(xcrs));
	xcrs.nr_xcrs = 1;
	xcrs.xcrs[0].xcr = 0;
	xcrs.xcrs[0].value = value;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_XCRS, &xcrs) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	vp->reg_page->xfem = value;
	return HV_STATUS_SUCCESS;
}

/* HV_REGISTER_INTERNAL_ACTIVITY_STATE <-> KVM MP state */
static uint16_t emu_activity(struct emu_vp *vp, __u64 *value, bool set)
{
	struct kvm_mp_state mp;

	if (!set) {
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_MP_STATE, &mp) < 0)
			return HV_STATUS_INVALID_PARAMETER;
		if (mp.mp_state == KVM_MP_STATE_HALTED)
			*value = HV_INTERNAL_ACTIVITY_HALT_SUSPEND;
		else if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED ||
			 mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
			*value = HV_INTERNAL_ACTIVITY_STARTUP_SUSPEND;
		else
			*value = 0;
		return HV_STATUS_SUCCESS;
	}
	if (*value & ~(HV_INTERNAL_ACTIVITY_STARTUP_SUSPEND | HV_INTERNAL_ACTIVITY_HALT_SUSPEND))
		return HV_STATUS_INVALID_PARAMETER;
	if (*value & HV_INTERNAL_ACTIVITY_STARTUP_SUSPEND)
		mp.mp_state = KVM_MP_STATE_INIT_RECEIVED;
	else if (*value & HV_INTERNAL_ACTIVITY_HALT_SUSPEND)
		mp.mp_state = KVM_MP_STATE_HALTED;
	else
		mp.mp_state = KVM_MP_STATE_RUNNABLE;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	return HV_STATUS_SUCCESS;
}

/* ---- SREGS-backed registers --------------------------------------------- */

static uint16_t emu_sregs_get(struct kvm_sregs *sr, uint32_t name, union hv_register_value *v)
{
	struct kvm_segment *seg = emu_seg(sr, name);

	if (seg) {
		emu_seg_to_hv(seg, &v->segment);
		return HV_STATUS_SUCCESS;
	}
	switch (name) {
	case HV_X64_REGISTER_IDTR:
	case HV_X64_REGISTER_GDTR: {
		struct kvm_dtable *t = name == HV_X64_REGISTER_IDTR ? &sr->idt : &sr->gdt;

		v->table.limit = t->limit;
		v->table.base = t->base;
		return HV_STATUS_SUCCESS;
	}
	case HV_X64_REGISTER_CR0: v->reg64 = sr->cr0; break;
	case HV_X64_REGISTER_CR2: v->reg64 = sr->cr2; break;
	case HV_X64_REGISTER_CR3: v->reg64 = sr->cr3; break;
	case HV_X64_REGISTER_CR4: v->reg64 = sr->cr4; break;
	case HV_X64_REGISTER_CR8: v->reg64 = sr->cr8; break;
	case HV_X64_REGISTER_EFER: v->reg64 = sr->efer; break;
	case HV_X64_REGISTER_APIC_BASE: v->reg64 = sr->apic_base; break;
	default:
		return HV_STATUS_INVALID_PARAMETER;
	}
	return HV_STATUS_SUCCESS;
}

static bool emu_is_sregs_name(uint32_t name)
{
	switch (name) {
	case HV_X64_REGISTER_ES: case HV_X64_REGISTER_CS: case HV_X64_REGISTER_SS:
	case HV_X64_REGISTER_DS: case HV_X64_REGISTER_FS: case HV_X64_REGISTER_GS:
	case HV_X64_REGISTER_LDTR: case HV_X64_REGISTER_TR:
	case HV_X64_REGISTER_IDTR: case HV_X64_REGISTER_GDTR:
	case HV_X64_REGISTER_CR0: case HV_X64_REGISTER_CR2: case HV_X64_REGISTER_CR3:
	case HV_X64_REGISTER_CR4: case HV_X64_REGISTER_CR8:
	case HV_X64_REGISTER_EFER: case HV_X64_REGISTER_APIC_BASE:
		return true;
	}
	return false;
}

/*
 * SREGS writes go to the cache and are committed together by
 * emu_regs_commit() at the end of the SET_VP_REGISTERS call (or by the next
 * KVM_RUN): KVM checks CR0, CR4, EFER and CS as one set
 * (kvm_is_valid_sregs), so a VMM entering long mode in one batch must not
 * be refused half way.
 */
static uint16_t emu_sregs_set(struct emu_vp *vp, uint32_t name, const union hv_register_value *v)
{
	struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	struct kvm_segment *seg = emu_seg(sr, name);

	emu_sregs_write_begin(vp);
	if (seg) {
		emu_seg_from_hv(&v->segment, seg);
	} else {
		switch (name) {
		case HV_X64_REGISTER_IDTR:
			sr->idt.limit = v->table.limit;
			sr->idt.base = v->table.base;
			break;
		case HV_X64_REGISTER_GDTR:
			sr->gdt.limit = v->table.limit;
			sr->gdt.base = v->table.base;
			break;
		case HV_X64_REGISTER_CR0: sr->cr0 = v->reg64; break;
		case HV_X64_REGISTER_CR2: sr->cr2 = v->reg64; break;
		case HV_X64_REGISTER_CR3: sr->cr3 = v->reg64; break;
		case HV_X64_REGISTER_CR4: sr->cr4 = v->reg64; break;
		case HV_X64_REGISTER_CR8: sr->cr8 = v->reg64; break;
		case HV_X64_REGISTER_EFER: sr->efer = v->reg64; break;
		case HV_X64_REGISTER_APIC_BASE: sr->apic_base = v->reg64; break;
		}
	}
	vp->run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
	return HV_STATUS_SUCCESS;
}

/*
 * Before a write to the SREGS cache: the first write since the last commit
 * or exit keeps what KVM holds (the cache, while it is in sync), for
 * emu_regs_commit to compare with.
 */
void emu_sregs_write_begin(struct emu_vp *vp)
{
	if (vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS)
		return;
	vp->sregs_held_valid = vp->sync_valid;
	if (vp->sync_valid)
		vp->sregs_held = vp->run->s.regs.sregs;
}

/*
 * KVM_SET_SREGS of the values KVM already holds changes nothing
 * (__set_sregs_common resets the MMU only for a changed CR0/CR3/CR4/EFER),
 * except where __set_sregs acts on the values themselves: legacy PAE paging
 * reloads the PDPTRs from guest memory, which may have changed (a restore);
 * a vector in interrupt_bitmap is queued again; and the reset vector in real
 * mode makes the BSP runnable. Those are always set.
 */
static bool emu_sregs_set_is_noop(const struct kvm_sregs *held, const struct kvm_sregs *sr)
{
	bool pae_legacy = (sr->cr0 & X86_CR0_PG) && (sr->cr4 & X86_CR4_PAE) &&
			  !(sr->efer & X86_EFER_LMA);
	bool reset_vector = !(sr->cr0 & X86_CR0_PE) && sr->cs.selector == 0xf000 &&
			    sr->cs.base == 0xffff0000;

	for (size_t i = 0; i < sizeof(sr->interrupt_bitmap) / sizeof(sr->interrupt_bitmap[0]); i++)
		if (sr->interrupt_bitmap[i])
			return false;
	return !pae_legacy && !reset_vector && !memcmp(held, sr, sizeof(*sr));
}

uint16_t emu_regs_commit(struct emu_vp *vp)
{
	bool held = vp->sregs_held_valid;

	if (!(vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS))
		return HV_STATUS_SUCCESS;
	vp->run->kvm_dirty_regs &= ~KVM_SYNC_X86_SREGS;
	vp->sregs_held_valid = false;
	if (held && emu_sregs_set_is_noop(&vp->sregs_held, &vp->run->s.regs.sregs)) {
		emu_regpage_fill(vp, false);	/* as after a set, below */
		return HV_STATUS_SUCCESS;
	}
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_SREGS, &vp->run->s.regs.sregs) < 0) {
		/* refused: the cache goes back to what KVM holds */
		emu_sys_ioctl(vp->vcpu_fd, KVM_GET_SREGS, &vp->run->s.regs.sregs);
		emu_regpage_fill(vp, false);
		return HV_STATUS_INVALID_PARAMETER;
	}
	/* what KVM made of it (e.g. CR8 from the TPR) */
	emu_sys_ioctl(vp->vcpu_fd, KVM_GET_SREGS, &vp->run->s.regs.sregs);
	emu_regpage_fill(vp, false);
	return HV_STATUS_SUCCESS;
}

/* ---- the two entry points ------------------------------------------------ */

/* INTERMEDIATE_CRx: the CR itself while no nested hypervisor runs (always, here). */
static uint32_t emu_reg_alias(uint32_t name)
{
	switch (name) {
	case HV_X64_REGISTER_INTERMEDIATE_CR0: return HV_X64_REGISTER_CR0;
	case HV_X64_REGISTER_INTERMEDIATE_CR3: return HV_X64_REGISTER_CR3;
	case HV_X64_REGISTER_INTERMEDIATE_CR4: return HV_X64_REGISTER_CR4;
	case HV_X64_REGISTER_INTERMEDIATE_CR8: return HV_X64_REGISTER_CR8;
	}
	return name;
}

/* The register view starts from the page's dirty classes, if the VMM left any. */
static int emu_reg_prepare(struct emu_vp *vp)
{
	if (emu_vp_settle(vp) < 0 || emu_regs_sync(vp) < 0)
		return -1;
	return vp->reg_page->dirty ? emu_regpage_apply(vp) : 0;
}

uint16_t emu_reg_get(struct emu_vp *vp, uint32_t name, union hv_register_value *value)
{
	struct kvm_sync_regs *s = &vp->run->s.regs;
	__u64 *p;
	uint32_t msr;

	memset(value, 0, sizeof(*value));
	if (emu_reg_prepare(vp) < 0)
		return HV_STATUS_OPERATION_FAILED;
	name = emu_reg_alias(name);
	p = emu_gpr(&s->regs, name);
	if (p) {
		value->reg64 = *p;
		return HV_STATUS_SUCCESS;
	}
	if (emu_is_sregs_name(name))
		return emu_sregs_get(&s->sregs, name, value);
	if (emu_is_fpu_name(name))
		return emu_fpu_get(vp, name, value);
	if (name >= HV_X64_REGISTER_DR0 && name <= HV_X64_REGISTER_DR7)
		return emu_dr_access(vp, name, &value->reg64, false);
	msr = emu_reg_msr(name);
	if (msr)
		return emu_msr_access(vp, msr, &value->reg64, false);
	if (emu_synthetic_is_register(name))
		return emu_synthetic_reg_get(vp, name, value);
	if (emu_synthetic_is_state_register(name))
		return emu_synthetic_state_reg_get(vp, name, value);
	switch (name) {
	case HV_REGISTER_EXPLICIT_SUSPEND:
		value->explicit_suspend = vp->explicit_suspend ? HV_SUSPEND_REGISTER_SUSPENDED : 0;
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_INTERCEPT_SUSPEND:
		value->intercept_suspend = vp->intercept_suspend ? HV_SUSPEND_REGISTER_SUSPENDED : 0;
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_PENDING_INTERRUPTION:
		value->pending_interruption = emu_pending_interruption(&s->events);
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_INTERRUPT_STATE:
		value->interrupt_state = emu_interrupt_state(&s->events);
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_INTERNAL_ACTIVITY_STATE:
		return emu_activity(vp, &value->reg64, false);
	case HV_X64_REGISTER_XFEM:
		return emu_xcr0_get(vp, &value->reg64) < 0 ? HV_STATUS_INVALID_PARAMETER :
							      HV_STATUS_SUCCESS;
	}
	return HV_STATUS_INVALID_PARAMETER;
}

static uint16_t emu_reg_set_one(struct emu_vp *vp, uint32_t name,
				const union hv_register_value *value)
{
	struct kvm_sync_regs *s = &vp->run->s.regs;
	__u64 *p, v = value->reg64;
	uint32_t msr;

	p = emu_gpr(&s->regs, name);
	if (p) {
		/* applied by the next KVM_RUN (sync_regs), no ioctl on the fast path */
		*p = v;
		vp->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		emu_page_gpr_set(vp->reg_page, name, v);	/* keep the register page coherent */
		return HV_STATUS_SUCCESS;
	}
	if (emu_is_sregs_name(name))
		return emu_sregs_set(vp, name, value);
	if (emu_is_fpu_name(name))
		return emu_fpu_set(vp, name, value);
	if (name >= HV_X64_REGISTER_DR0 && name <= HV_X64_REGISTER_DR7)
		return emu_dr_access(vp, name, &v, true);
	msr = emu_reg_msr(name);
	if (msr)
		return emu_msr_access(vp, msr, &v, true);
	if (emu_synthetic_is_register(name))
		return emu_synthetic_reg_set(vp, name, value);
	if (emu_synthetic_is_state_register(name))
		return emu_synthetic_state_reg_set(vp, name, value);
	switch (name) {
	case HV_REGISTER_EXPLICIT_SUSPEND:
	case HV_REGISTER_INTERCEPT_SUSPEND:
		if (v & ~HV_SUSPEND_REGISTER_SUSPENDED)
			return HV_STATUS_INVALID_PARAMETER;
		if (name == HV_REGISTER_EXPLICIT_SUSPEND)
			vp->explicit_suspend = v & HV_SUSPEND_REGISTER_SUSPENDED;
		else
			vp->intercept_suspend = v & HV_SUSPEND_REGISTER_SUSPENDED;
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_PENDING_INTERRUPTION:
	case HV_REGISTER_INTERRUPT_STATE:
		return emu_set_events(vp, name, v);
	case HV_REGISTER_INTERNAL_ACTIVITY_STATE:
		return emu_activity(vp, &v, true);
	case HV_X64_REGISTER_XFEM:
		return emu_xcr0_set(vp, v);
	}
	return HV_STATUS_INVALID_PARAMETER;
}

uint16_t emu_reg_set(struct emu_vp *vp, uint32_t name, const union hv_register_value *value)
{
	uint16_t st;

	if (emu_reg_prepare(vp) < 0)
		return HV_STATUS_OPERATION_FAILED;
	name = emu_reg_alias(name);
	st = emu_reg_set_one(vp, name, value);
	/* GPRs keep the page current themselves; SREGS do at emu_regs_commit */
	if (st == HV_STATUS_SUCCESS && !emu_gpr(&vp->run->s.regs.regs, name) &&
	    !emu_is_sregs_name(name))
		emu_regpage_fill(vp, false);
	return st;
}

/* ---- runs of MSRs and debug registers: one KVM ioctl each ----------------- */

/*
 * Each register is a vCPU ioctl of its own in emu_reg_get/set, and a vCPU
 * ioctl is a large share of a KVM exit's cost; a VMM saving or restoring a
 * VP moves some 50 MSRs and the debug registers in one hypercall. So a run
 * of consecutive MSR-backed registers goes to KVM as one KVM_GET/SET_MSRS,
 * and a run of debug registers as one KVM_GET_DEBUGREGS (and one
 * KVM_SET_DEBUGREGS). The rep semantics stay the hypercall's: the registers
 * before a refused MSR took effect, reps completed names the refused one
 * (KVM_GET/SET_MSRS process entries in order and return how many they did);
 * a refused KVM_SET_DEBUGREGS applies none of the run and names its first.
 */
#define EMU_REG_RUN_MAX 256	/* HV_GET_VP_REGISTERS_BATCH_MAX: the longest input */

struct emu_msr_run {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[EMU_REG_RUN_MAX];
};

static bool emu_is_dr_name(uint32_t name)
{
	return name >= HV_X64_REGISTER_DR0 && name <= HV_X64_REGISTER_DR7;
}

static __u64 *emu_dr_slot(struct kvm_debugregs *dr, uint32_t name)
{
	if (name <= HV_X64_REGISTER_DR3)
		return (__u64 *)&dr->db[name - HV_X64_REGISTER_DR0];
	return name == HV_X64_REGISTER_DR6 ? (__u64 *)&dr->dr6 : (__u64 *)&dr->dr7;
}

/* The debug registers a run names, one bit each: DR0-DR3, DR6, DR7 (bits 0-5). */
#define EMU_DR_ALL 0x3fU

static uint32_t emu_dr_names(const uint32_t *names, uint32_t n)
{
	uint32_t seen = 0;

	for (uint32_t i = 0; i < n; i++)
		seen |= names[i] <= HV_X64_REGISTER_DR3 ? 1U << (names[i] - HV_X64_REGISTER_DR0) :
			names[i] == HV_X64_REGISTER_DR6 ? 1U << 4 : 1U << 5;
	return seen;
}

/* How many of names[0..count) form a run of one kind: MSRs (*msr) or debug registers. */
static uint32_t emu_reg_run_length(const uint32_t *names, uint32_t count, bool *msr)
{
	uint32_t n = 0;

	*msr = emu_reg_msr(emu_reg_alias(names[0])) != 0;
	if (!*msr && !emu_is_dr_name(names[0]))
		return 0;
	while (n < count && n < EMU_REG_RUN_MAX &&
	       (*msr ? emu_reg_msr(emu_reg_alias(names[n])) != 0 : emu_is_dr_name(names[n])))
		n++;
	return n;
}

/*
 * GET_VP_REGISTERS from names[0]: the run of MSRs or debug registers there
 * in one ioctl. Returns the registers read (0: names[0] starts no run);
 * *status is the status of the first one not read, if any.
 */
uint32_t emu_reg_get_run(struct emu_vp *vp, const uint32_t *names, uint32_t count,
			 union hv_register_value *out, uint16_t *status)
{
	struct emu_msr_run m;
	struct kvm_debugregs dr;
	uint32_t n, got;
	bool msr;

	*status = HV_STATUS_SUCCESS;
	n = emu_reg_run_length(names, count, &msr);
	if (n < 2)
		return 0;	/* a single register: emu_reg_get */
	if (emu_reg_prepare(vp) < 0) {
		*status = HV_STATUS_OPERATION_FAILED;
		return 0;
	}
	if (!msr) {
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_DEBUGREGS, &dr) < 0) {
			*status = HV_STATUS_INVALID_PARAMETER;
			return 0;
		}
		for (uint32_t i = 0; i < n; i++) {
			memset(&out[i], 0, sizeof(out[i]));
			out[i].reg64 = *emu_dr_slot(&dr, names[i]);
		}
		return n;
	}
	memset(&m.hdr, 0, sizeof(m.hdr));
	m.hdr.nmsrs = n;
	for (uint32_t i = 0; i < n; i++) {
		memset(&m.e[i], 0, sizeof(m.e[i]));
		m.e[i].index = emu_reg_msr(emu_reg_alias(names[i]));
	}
	got = (uint32_t)emu_sys_ioctl(vp->vcpu_fd, KVM_GET_MSRS, &m);
	if ((int)got < 0)
		got = 0;
	for (uint32_t i = 0; i < got; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].reg64 = m.e[i].data;
	}
	if (got < n)
		*status = HV_STATUS_INVALID_PARAMETER;
	return got;
}

/*
 * PENDING_INTERRUPTION and INTERRUPT_STATE side by side (a VP restore sets
 * both) in one KVM_SET_VCPU_EVENTS: it sets the whole event state, so the
 * pair's end state is the second of the two single calls'. Only when both
 * values are good and KVM takes them; otherwise 0, and the caller sets them
 * one by one, which names the one refused.
 */
static uint32_t emu_events_set_pair(struct emu_vp *vp, const uint32_t *names,
				    const union hv_register_value *values, uint16_t *status)
{
	struct kvm_vcpu_events ev;

	if (emu_reg_prepare(vp) < 0) {
		*status = HV_STATUS_OPERATION_FAILED;
		return 0;
	}
	ev = vp->run->s.regs.events;
	if (emu_events_apply(&ev, names[0], values[0].reg64) != HV_STATUS_SUCCESS ||
	    emu_events_apply(&ev, names[1], values[1].reg64) != HV_STATUS_SUCCESS ||
	    emu_sys_ioctl(vp->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return 0;
	vp->run->s.regs.events = ev;
	emu_regpage_fill(vp, false);
	return 2;
}

/*
 * SET_VP_REGISTERS from elements[0] (names and values, reserved fields
 * checked by the caller): the run of MSRs or debug registers there, or the
 * pair of event registers, in one ioctl. Returns the registers written (0:
 * elements[0] starts no run, or nothing was written); *status as for
 * emu_reg_get_run.
 */
uint32_t emu_reg_set_run(struct emu_vp *vp, const uint32_t *names,
			 const union hv_register_value *values, uint32_t count, uint16_t *status)
{
	struct emu_msr_run m;
	struct kvm_debugregs dr;
	uint32_t n, done;
	bool msr;

	*status = HV_STATUS_SUCCESS;
	if (count >= 2 && emu_is_events_name(names[0]) && emu_is_events_name(names[1]) &&
	    names[0] != names[1])
		return emu_events_set_pair(vp, names, values, status);
	n = emu_reg_run_length(names, count, &msr);
	if (n < 2)
		return 0;	/* a single register: emu_reg_set */
	if (emu_reg_prepare(vp) < 0) {
		*status = HV_STATUS_OPERATION_FAILED;
		return 0;
	}
	if (!msr) {
		/* a run naming all six (a VP restore) needs nothing of what KVM holds */
		memset(&dr, 0, sizeof(dr));
		if (emu_dr_names(names, n) != EMU_DR_ALL &&
		    emu_sys_ioctl(vp->vcpu_fd, KVM_GET_DEBUGREGS, &dr) < 0) {
			*status = HV_STATUS_INVALID_PARAMETER;
			return 0;
		}
		for (uint32_t i = 0; i < n; i++)
			*emu_dr_slot(&dr, names[i]) = values[i].reg64;
		dr.flags = 0;
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_DEBUGREGS, &dr) < 0) {
			*status = HV_STATUS_INVALID_PARAMETER;
			return 0;
		}
		vp->reg_page->dr7 = dr.dr7;
		done = n;
	} else {
		memset(&m.hdr, 0, sizeof(m.hdr));
		m.hdr.nmsrs = n;
		for (uint32_t i = 0; i < n; i++) {
			memset(&m.e[i], 0, sizeof(m.e[i]));
			m.e[i].index = emu_reg_msr(emu_reg_alias(names[i]));
			m.e[i].data = values[i].reg64;
		}
		done = (uint32_t)emu_sys_ioctl(vp->vcpu_fd, KVM_SET_MSRS, &m);
		if ((int)done < 0)
			done = 0;
		if (done < n)
			*status = HV_STATUS_INVALID_PARAMETER;
	}
	if (done)
		emu_regpage_fill(vp, false);
	return done;
}

/* ---- the register page (hv_vp_register_page) ----------------------------- */

/*
 * After every intercept: version 1, isvalid 1, dirty 0 and the state the
 * hypervisor publishes (struct hv_vp_register_page). GPRs, segments, CRs and
 * events come from s.regs at no cost. XMM0-5, DR7 and XFEM need one vCPU
 * ioctl each, a large share of a whole KVM exit, so with `full` false
 * (port-IO intercepts, the hot path; no IO instruction reads or writes them)
 * they keep the values of the last full fill or register write.
 * GET_VP_REGISTERS always reads them live.
 */
int emu_regpage_fill(struct emu_vp *vp, bool full)
{
	struct hv_vp_register_page *rp = vp->reg_page;
	struct kvm_sync_regs *s = &vp->run->s.regs;
	struct kvm_regs *r = &s->regs;
	struct kvm_sregs *sr = &s->sregs;
	struct kvm_debugregs dr;
	struct kvm_xsave x;

	rp->rax = r->rax; rp->rcx = r->rcx; rp->rdx = r->rdx; rp->rbx = r->rbx;
	rp->rsp = r->rsp; rp->rbp = r->rbp; rp->rsi = r->rsi; rp->rdi = r->rdi;
	rp->r8 = r->r8; rp->r9 = r->r9; rp->r10 = r->r10; rp->r11 = r->r11;
	rp->r12 = r->r12; rp->r13 = r->r13; rp->r14 = r->r14; rp->r15 = r->r15;
	rp->rip = r->rip;
	rp->rflags = r->rflags;
	emu_seg_to_hv(&sr->es, &rp->es);
	emu_seg_to_hv(&sr->cs, &rp->cs);
	emu_seg_to_hv(&sr->ss, &rp->ss);
	emu_seg_to_hv(&sr->ds, &rp->ds);
	emu_seg_to_hv(&sr->fs, &rp->fs);
	emu_seg_to_hv(&sr->gs, &rp->gs);
	rp->cr0 = sr->cr0;
	rp->cr3 = sr->cr3;
	rp->cr4 = sr->cr4;
	rp->cr8 = sr->cr8;
	rp->efer = sr->efer;
	rp->pending_interruption = emu_pending_interruption(&s->events);
	rp->interrupt_state = emu_interrupt_state(&s->events);
	rp->instruction_emulation_hints = emu_synthetic_emulation_hints(vp);
	if (full) {
		__u64 xcr0;

		if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XSAVE, &x) == 0)
			memcpy(&rp->xmm0, (uint8_t *)x.region + FX_XMM0,
			       6 * sizeof(struct hv_u128));
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_DEBUGREGS, &dr) == 0)
			rp->dr7 = dr.dr7;
		if (emu_xcr0_get(vp, &xcr0) == 0)
			rp->xfem = xcr0;
	}
	rp->version = HV_VP_REGISTER_PAGE_VERSION_1;
	rp->dirty = 0;
	rp->isvalid = 1;
	return 0;
}

/* Before each run: take the classes the VMM marked dirty, then clear dirty. */
int emu_regpage_apply(struct emu_vp *vp)
{
	struct hv_vp_register_page *rp = vp->reg_page;
	struct kvm_sync_regs *s = &vp->run->s.regs;
	struct kvm_regs *r = &s->regs;
	uint32_t dirty = rp->dirty;

	if (!dirty)
		return 0;
	if (emu_regs_sync(vp) < 0)
		return -1;
	if (dirty & (1U << HV_X64_REGISTER_CLASS_GENERAL)) {
		r->rax = rp->rax; r->rcx = rp->rcx; r->rdx = rp->rdx; r->rbx = rp->rbx;
		r->rsp = rp->rsp; r->rbp = rp->rbp; r->rsi = rp->rsi; r->rdi = rp->rdi;
		r->r8 = rp->r8; r->r9 = rp->r9; r->r10 = rp->r10; r->r11 = rp->r11;
		r->r12 = rp->r12; r->r13 = rp->r13; r->r14 = rp->r14; r->r15 = rp->r15;
		vp->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	}
	if (dirty & (1U << HV_X64_REGISTER_CLASS_IP)) {
		r->rip = rp->rip;
		vp->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	}
	if (dirty & (1U << HV_X64_REGISTER_CLASS_FLAGS)) {
		r->rflags = rp->rflags;
		vp->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	}
	if (dirty & (1U << HV_X64_REGISTER_CLASS_SEGMENT)) {
		struct kvm_sregs *sr = &s->sregs;

		emu_sregs_write_begin(vp);
		emu_seg_from_hv(&rp->es, &sr->es);
		emu_seg_from_hv(&rp->cs, &sr->cs);
		emu_seg_from_hv(&rp->ss, &sr->ss);
		emu_seg_from_hv(&rp->ds, &sr->ds);
		emu_seg_from_hv(&rp->fs, &sr->fs);
		emu_seg_from_hv(&rp->gs, &sr->gs);
		vp->run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
	}
	if (dirty & (1U << HV_X64_REGISTER_CLASS_XMM)) {
		struct kvm_xsave x;
		uint64_t bv;

		if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_XSAVE, &x) < 0)
			return -1;
		memcpy((uint8_t *)x.region + FX_XMM0, &rp->xmm0, 6 * sizeof(struct hv_u128));
		memcpy(&bv, (uint8_t *)x.region + XSAVE_XSTATE_BV, 8);
		bv |= HV_X64_XFEM_LEGACY_SSE;
		memcpy((uint8_t *)x.region + XSAVE_XSTATE_BV, &bv, 8);
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_XSAVE, &x) < 0)
			return -1;
	}
	rp->dirty = 0;
	return 0;
}
