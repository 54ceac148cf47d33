/* SPDX-License-Identifier: MIT */
/*
 * Building intercept messages: the common x64 header, instruction bytes
 * fetched from guest memory, and a decoder for port-IO instructions (KVM does
 * not report an instruction's length, so run.c needs it to put RIP back *at*
 * the instruction the way the hypervisor reports it; kvm-facts.md).
 */
#include "emu.h"
#include "intercept.h"

/* Architectural x86 bits (Intel SDM), not Hyper-V numbers. */
#define X86_CR0_PE	(1ULL << 0)
#define X86_CR0_AM	(1ULL << 18)
#define X86_CR0_PG	(1ULL << 31)
#define X86_EFER_LMA	(1ULL << 10)

/* 16, 32 or 64: the code size the CPU fetches with. */
int emu_code_bits(const struct kvm_sregs *sr)
{
	if ((sr->efer & X86_EFER_LMA) && sr->cs.l)
		return 64;
	if (!(sr->cr0 & X86_CR0_PE))
		return 16;
	return sr->cs.db ? 32 : 16;
}

/* Linear address of CS:ip; IP wraps at the code size (real/16-bit mode). */
static uint64_t emu_cs_linear(const struct kvm_sregs *sr, uint64_t ip)
{
	switch (emu_code_bits(sr)) {
	case 64:
		return ip;
	case 32:
		return (sr->cs.base + (uint32_t)ip) & 0xffffffffULL;
	default:
		return (sr->cs.base + (uint16_t)ip) & 0xffffffffULL;
	}
}

/* One page's worth of linear -> guest physical; -1 if not mapped. */
static int emu_translate(struct emu_vp *vp, const struct kvm_sregs *sr, uint64_t linear,
			 uint64_t *gpa)
{
	struct kvm_translation tr;

	if (!(sr->cr0 & X86_CR0_PG)) {
		*gpa = linear;
		return 0;
	}
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = linear;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -1;
	*gpa = tr.physical_address;
	return 0;
}

/* Read len bytes at CS:ip, page by page; returns the bytes read. */
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	int done = 0;

	while (done < len) {
		uint64_t linear = emu_cs_linear(sr, ip + (uint64_t)done), gpa;
		size_t chunk = EMU_PAGE_SIZE - (linear & (EMU_PAGE_SIZE - 1));

		if (emu_code_bits(sr) == 16)	/* the 64 KiB segment wraps byte by byte */
			chunk = 1;
		if (chunk > (size_t)(len - done))
			chunk = (size_t)(len - done);
		if (emu_translate(vp, sr, linear, &gpa) < 0)
			break;
		if (emu_gpa_read(vp->pt, gpa, bytes + done, chunk) != chunk)
			break;
		done += (int)chunk;
	}
	return done;
}

int emu_fetch_instruction(struct emu_vp *vp, uint64_t rip, uint8_t bytes[16])
{
	memset(bytes, 0, 16);
	return emu_fetch_code(vp, rip, bytes, 16);
}

/*
 * Decode one port-IO instruction (IN/OUT/INS/OUTS with their prefixes) at
 * code[0..avail). Returns 0 and fills *d, or -1 if it is not one.
 */
int emu_decode_io(const uint8_t *code, int avail, int bits, struct emu_io_insn *d)
{
	bool opsize = false, addrsize = false;
	int i = 0;

	memset(d, 0, sizeof(*d));
	for (; i < avail && i < 15; i++) {
		uint8_t b = code[i];

		if (b == 0x66)
			opsize = true;
		else if (b == 0x67)
			addrsize = true;
		else if (b == 0xf3 || b == 0xf2)
			d->rep = true;
		else if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 ||
			 b == 0x65 || b == 0xf0)
			;
		else if (bits == 64 && (b & 0xf0) == 0x40 && i + 1 < avail &&
			 (code[i + 1] & 0xf0) != 0x40)
			;	/* REX, must be last: W does not widen port IO */
		else
			break;
	}
	if (i >= avail)
		return -1;
	d->full_size = bits == 16 ? (opsize ? 4 : 2) : (opsize ? 2 : 4);
	d->addr_bits = bits == 64 ? (addrsize ? 32 : 64) : (bits == 16) != addrsize ? 16 : 32;
	switch (code[i]) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		if (i + 1 >= avail)
			return -1;
		d->imm_port = true;
		d->port = code[i + 1];
		d->in = code[i] < 0xe6;
		d->size = (code[i] & 1) ? d->full_size : 1;
		d->len = i + 2;
		break;
	case 0xec: case 0xed: case 0xee: case 0xef:
		d->in = code[i] < 0xee;
		d->size = (code[i] & 1) ? d->full_size : 1;
		d->len = i + 1;
		break;
	case 0x6c: case 0x6d: case 0x6e: case 0x6f:
		d->string = true;
		d->in = code[i] < 0x6e;
		d->size = (code[i] & 1) ? d->full_size : 1;
		d->len = i + 1;
		break;
	default:
		return -1;
	}
	if (!d->string)
		d->rep = false;
	return 0;
}

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
