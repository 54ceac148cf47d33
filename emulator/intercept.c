/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: building intercept messages (struct hv_message with the
 * hv_x64_intercept_message_header every x64 intercept starts with), from
 * the vCPU state KVM left in kvm_run->s.regs. run.c fills each message's
 * payload; instruction bytes come from pagewalk.c, lengths from x86decode.c.
 */
#include "emu.h"

/* Architectural x86 bits (Intel SDM), not Hyper-V numbers. */
#define X86_CR0_PE	(1ULL << 0)
#define X86_CR0_AM	(1ULL << 18)
#define X86_EFER_LMA	(1ULL << 10)

/*
 * Fill the 40-byte header from s.regs (valid after every exit). CPL is
 * SS.DPL (SDM 5.5); real mode is CPL 0.
 */
int emu_intercept_header(struct emu_vp *vp, struct hv_x64_intercept_message_header *hdr,
			 uint8_t access_type, uint8_t instruction_length)
{
	const struct kvm_sync_regs *s = &vp->run->s.regs;
	const struct kvm_sregs *sr = &s->sregs;
	uint16_t es = 0;

	hdr->vp_index = vp->index;
	hdr->instruction_length_cr8 = (uint8_t)(
		((instruction_length << HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT) &
		 HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK) |
		((sr->cr8 << HV_X64_INTERCEPT_CR8_SHIFT) & HV_X64_INTERCEPT_CR8_MASK));
	hdr->intercept_access_type = access_type;
	if (sr->cr0 & X86_CR0_PE)
		es |= (sr->ss.dpl << HV_X64_EXECUTION_STATE_CPL_SHIFT) &
		      HV_X64_EXECUTION_STATE_CPL_MASK;
	if (sr->cr0 & X86_CR0_PE)
		es |= HV_X64_EXECUTION_STATE_CR0_PE;
	if (sr->cr0 & X86_CR0_AM)
		es |= HV_X64_EXECUTION_STATE_CR0_AM;
	if (sr->efer & X86_EFER_LMA)
		es |= HV_X64_EXECUTION_STATE_EFER_LMA;
	if (s->events.exception.injected || s->events.interrupt.injected ||
	    s->events.nmi.injected)
		es |= HV_X64_EXECUTION_STATE_INTERRUPTION_PENDING;
	if (s->events.interrupt.shadow)
		es |= HV_X64_EXECUTION_STATE_INTERRUPT_SHADOW;
	hdr->execution_state = es;
	emu_seg_to_hv(&sr->cs, &hdr->cs_segment);
	hdr->rip = s->regs.rip;
	hdr->rflags = s->regs.rflags;
	return 0;
}

/* The hv_message header for a payload of `size` bytes. */
void emu_message_init(struct hv_message *msg, uint32_t type, size_t size)
{
	memset(msg, 0, sizeof(*msg));
	msg->header.message_type = type;
	msg->header.payload_size = (uint8_t)size;
}
