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
#define X86_CR4_PSE	(1ULL << 4)
#define X86_CR4_PAE	(1ULL << 5)
#define X86_CR4_LA57	(1ULL << 12)
#define X86_PTE_P	(1ULL << 0)
#define X86_PTE_PS	(1ULL << 7)
#define X86_PTE_ADDR	0x000ffffffffff000ULL	/* bits 51:12 */

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

/* One paging-structure entry (4 or 8 bytes) from guest memory. */
static int emu_read_pte(struct emu_vp *vp, uint64_t gpa, size_t size, uint64_t *pte)
{
	*pte = 0;
	return emu_gpa_read(vp->pt, gpa, pte, size) == size ? 0 : -1;
}

/*
 * Walk the guest's page tables in software (Intel SDM vol. 3 ch. 4: 32-bit,
 * PAE, 4- and 5-level paging). On this nested host every vCPU ioctl costs
 * several microseconds, so KVM_TRANSLATE per exit would cost as much as the
 * exit itself; reading the tables from guest memory costs nothing like it.
 * Returns 1 when the walk could not be done here (a table outside guest
 * RAM): the caller asks KVM instead. Access rights are not checked: this
 * only locates instruction bytes and operands.
 */
static int emu_walk(struct emu_vp *vp, const struct kvm_sregs *sr, uint64_t linear, uint64_t *gpa)
{
	uint64_t pte, table;
	int level, levels;

	if (!(sr->cr4 & X86_CR4_PAE)) {			/* 32-bit paging */
		uint32_t la = (uint32_t)linear;

		if (emu_read_pte(vp, (sr->cr3 & 0xfffff000) + ((la >> 22) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if ((pte & X86_PTE_PS) && (sr->cr4 & X86_CR4_PSE)) {
			*gpa = (pte & 0xffc00000) | (((pte >> 13) & 0xff) << 32) | (la & 0x3fffff);
			return 0;
		}
		if (emu_read_pte(vp, (pte & 0xfffff000) + (((la >> 12) & 0x3ff) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		*gpa = (pte & 0xfffff000) | (la & 0xfff);
		return 0;
	}
	if (sr->efer & X86_EFER_LMA) {
		levels = (sr->cr4 & X86_CR4_LA57) ? 5 : 4;
		table = sr->cr3 & X86_PTE_ADDR;
	} else {					/* PAE: 4 PDPTEs at CR3[31:5] */
		if (emu_read_pte(vp, (sr->cr3 & 0xffffffe0) + (((linear >> 30) & 3) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		levels = 2;
		table = pte & X86_PTE_ADDR;
	}
	for (level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (level - 1);

		if (emu_read_pte(vp, table + (((linear >> shift) & 0x1ff) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if (level == 1 || ((pte & X86_PTE_PS) && level <= 3)) {
			uint64_t page_mask = (1ULL << shift) - 1;

			*gpa = ((pte & X86_PTE_ADDR) & ~page_mask) | (linear & page_mask);
			return 0;
		}
		table = pte & X86_PTE_ADDR;
	}
	return -1;
}

/* One page's worth of linear -> guest physical; -1 if not mapped. */
static int emu_translate(struct emu_vp *vp, const struct kvm_sregs *sr, uint64_t linear,
			 uint64_t *gpa)
{
	struct kvm_translation tr;
	int walked;

	if (!(sr->cr0 & X86_CR0_PG)) {
		*gpa = linear;
		return 0;
	}
	walked = emu_walk(vp, sr, linear, gpa);
	if (walked <= 0)
		return walked;
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = linear;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -1;
	*gpa = tr.physical_address;
	return 0;
}

int emu_linear_to_gpa(struct emu_vp *vp, uint64_t linear, uint64_t *gpa)
{
	return emu_translate(vp, &vp->run->s.regs.sregs, linear, gpa);
}

/* Read len bytes at CS:ip, page by page; returns the bytes read. */
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	int done = 0;

	while (done < len) {
		uint64_t linear = emu_cs_linear(sr, ip + (uint64_t)done), gpa;
		size_t chunk = EMU_PAGE_SIZE - (linear & (EMU_PAGE_SIZE - 1));

		if (emu_code_bits(sr) == 16) {	/* IP wraps at 64 KiB */
			size_t to_wrap = 0x10000 - ((ip + (uint64_t)done) & 0xffff);

			if (chunk > to_wrap)
				chunk = to_wrap;
		}
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

/*
 * Could this instruction have an XMM/YMM operand? VEX (C4/C5), EVEX (62) and
 * XOP (8F) encodings, and the 0F opcode ranges of SSE (Intel SDM vol. 2,
 * opcode map A-3). Errs on the side of yes; used only to skip work.
 */
bool emu_insn_uses_xmm(const uint8_t *code, int len)
{
	int i = 0;

	while (i < len && (code[i] == 0x66 || code[i] == 0x67 || code[i] == 0xf0 ||
			   code[i] == 0xf2 || code[i] == 0xf3 || code[i] == 0x2e ||
			   code[i] == 0x36 || code[i] == 0x3e || code[i] == 0x26 ||
			   code[i] == 0x64 || code[i] == 0x65 || (code[i] & 0xf0) == 0x40))
		i++;
	if (i >= len)
		return true;
	if (code[i] == 0xc4 || code[i] == 0xc5 || code[i] == 0x62 || code[i] == 0x8f)
		return true;
	if (code[i] != 0x0f)
		return false;
	if (i + 1 >= len)
		return true;
	switch (code[i + 1]) {
	case 0x10 ... 0x17:
	case 0x28 ... 0x2f:
	case 0x38:
	case 0x3a:
	case 0x50 ... 0x7f:
	case 0xc2 ... 0xc6:
	case 0xd0 ... 0xff:
		return true;
	default:
		return false;
	}
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

/* ---- general instruction length (legacy + REX encodings; no VEX/EVEX) ---- */

enum { IMM_NONE, IMM_B, IMM_W, IMM_Z, IMM_V, IMM_BW, IMM_FAR, IMM_MOFFS, IMM_GRP3 };

/* 1-byte map: bit 7 = ModRM, low bits = immediate kind; 0xff = prefix/invalid */
static uint8_t emu_op1(uint8_t op, int bits)
{
	const uint8_t M = 0x80;

	if (op < 0x40) {
		switch (op & 7) {
		case 0: case 1: case 2: case 3:
			return M;
		case 4:
			return IMM_B;
		case 5:
			return IMM_Z;
		default:
			return op == 0x0f ? 0xff : IMM_NONE;
		}
	}
	if (op >= 0x70 && op <= 0x7f)
		return IMM_B;
	if (op >= 0xb0 && op <= 0xb7)
		return IMM_B;
	if (op >= 0xb8 && op <= 0xbf)
		return IMM_V;
	if (op >= 0xd8 && op <= 0xdf)
		return M;
	if (op >= 0xe0 && op <= 0xe7)
		return IMM_B;
	switch (op) {
	case 0x62: case 0x63: case 0x84: case 0x85: case 0x86: case 0x87: case 0x88:
	case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8e: case 0x8f:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0xfe: case 0xff:
		return M;
	case 0xc4: case 0xc5:
		return bits == 64 ? 0xff : M;	/* VEX in 64-bit mode: not decoded */
	case 0x68: case 0xa9: case 0xe8: case 0xe9:
		return IMM_Z;
	case 0x69: case 0x81: case 0xc7:
		return M | IMM_Z;
	case 0x6a: case 0xa8: case 0xcd: case 0xd4: case 0xd5: case 0xeb:
		return IMM_B;
	case 0x6b: case 0x80: case 0x82: case 0x83: case 0xc0: case 0xc1: case 0xc6:
		return M | IMM_B;
	case 0xc2: case 0xca:
		return IMM_W;
	case 0xc8:
		return IMM_BW;
	case 0x9a: case 0xea:
		return IMM_FAR;
	case 0xa0: case 0xa1: case 0xa2: case 0xa3:
		return IMM_MOFFS;
	case 0xf6: case 0xf7:
		return M | IMM_GRP3;
	}
	return IMM_NONE;
}

/* 0F map */
static uint8_t emu_op2(uint8_t op)
{
	const uint8_t M = 0x80;

	if ((op >= 0x80 && op <= 0x8f))
		return IMM_Z;
	if ((op >= 0x70 && op <= 0x73) || op == 0xa4 || op == 0xac || op == 0xba ||
	    (op >= 0xc2 && op <= 0xc6))
		return M | IMM_B;
	if (op == 0x0f)
		return M | IMM_B;	/* 3DNow! */
	if ((op >= 0x04 && op <= 0x0c && op != 0x0d) || op == 0x0e || op == 0x77 ||
	    (op >= 0x30 && op <= 0x37) || (op >= 0xa0 && op <= 0xa2) ||
	    (op >= 0xa8 && op <= 0xaa) || (op >= 0xc8 && op <= 0xcf))
		return IMM_NONE;
	return M;
}

/*
 * Decode the length of the instruction at code[0..avail); returns 0 and
 * fills *d, or -1. Enough for every instruction that can write memory
 * outside VEX/EVEX encodings.
 */
int emu_decode_insn(const uint8_t *code, int avail, int bits, struct emu_insn *d)
{
	bool opsize = false, addrsize = false;
	int i = 0, imm = 0, osz, asz;
	uint8_t op, kind;

	memset(d, 0, sizeof(*d));
	d->seg = -1;
	for (; i < avail && i < 14; i++) {
		uint8_t b = code[i];

		if (b == 0x66)
			opsize = true;
		else if (b == 0x67)
			addrsize = true;
		else if (b == 0xf0 || b == 0xf2 || b == 0xf3)
			;
		else if (b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e)
			d->seg = (b >> 3) & 3;		/* ES 0, CS 1, SS 2, DS 3 */
		else if (b == 0x64 || b == 0x65)
			d->seg = b - 0x64 + 4;		/* FS 4, GS 5 */
		else
			break;
	}
	if (bits == 64 && i < avail && (code[i] & 0xf0) == 0x40)
		d->rex = code[i++];
	if (i >= avail)
		return -1;
	osz = (d->rex & 8) ? 8 : bits == 16 ? (opsize ? 4 : 2) : (opsize ? 2 : 4);
	asz = bits == 64 ? (addrsize ? 4 : 8) : (bits == 16) != addrsize ? 2 : 4;
	d->addr_bits = asz * 8;
	op = code[i++];
	d->opcode = op;
	if (op == 0x0f) {
		if (i >= avail)
			return -1;
		op = code[i++];
		d->opcode = 0x0f00 | op;
		if (op == 0x38 || op == 0x3a) {
			if (i >= avail)
				return -1;
			i++;
			kind = 0x80 | (op == 0x3a ? IMM_B : IMM_NONE);
		} else {
			kind = emu_op2(op);
		}
	} else {
		kind = emu_op1(op, bits);
		if (kind == 0xff)
			return -1;
		if ((op & 0xf0) == 0x40 && bits == 64)
			return -1;
	}
	if (kind & 0x80) {
		uint8_t modrm, mod, rm;

		if (i >= avail)
			return -1;
		modrm = code[i++];
		d->modrm = modrm;
		d->has_modrm = true;
		mod = modrm >> 6;
		rm = modrm & 7;
		if (mod != 3) {
			d->has_mem = true;
			if (asz == 2) {
				d->disp_size = mod == 1 ? 1 : (mod == 2 || (mod == 0 && rm == 6)) ? 2 : 0;
			} else {
				if (rm == 4) {
					if (i >= avail)
						return -1;
					d->sib = code[i++];
					d->has_sib = true;
				}
				d->disp_size = mod == 1 ? 1 : mod == 2 ? 4 :
					(rm == 5 || (d->has_sib && (d->sib & 7) == 5)) ? 4 : 0;
			}
			d->disp_at = i;
			i += d->disp_size;
		}
	}
	switch (kind & 0x7f) {
	case IMM_B: imm = 1; break;
	case IMM_W: imm = 2; break;
	case IMM_Z: imm = osz == 2 ? 2 : 4; break;
	case IMM_V: imm = osz; break;
	case IMM_BW: imm = 3; break;
	case IMM_FAR: imm = (osz == 2 ? 2 : 4) + 2; break;
	case IMM_MOFFS: imm = asz; d->has_mem = true; d->moffs_at = i; break;
	case IMM_GRP3: imm = ((d->modrm >> 3) & 7) < 2 ? (op == 0xf6 ? 1 : osz == 2 ? 2 : 4) : 0;
		break;
	}
	if (op >= 0xa4 && op <= 0xaf && d->opcode == op && op != 0xa8 && op != 0xa9)
		d->string = true;
	i += imm;
	if (i > avail || i > 15)
		return -1;
	d->len = i;
	return 0;
}
