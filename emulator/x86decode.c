/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: x86 instruction decoding for intercept messages. The
 * hypervisor reports an intercepted instruction's length and bytes
 * (hv_x64_intercept_message_header.instruction_length,
 * hv_x64_memory_intercept_message.instruction_bytes); KVM reports neither,
 * so run.c decodes the instruction itself: port-IO instructions, the length
 * and memory operand of general instructions (legacy and REX encodings, Intel
 * SDM vol. 2 appendix A), and, for an MMIO write KVM completed at the exit,
 * the instruction that ended at RIP and how to undo a STOS/MOVS element.
 */
#include "emu.h"
#include "x86decode.h"

/* One decoded instruction (length and memory operand only). */
struct emu_insn {
	int len;
	int addr_bits;
	int seg;		/* override: ES 0 CS 1 SS 2 DS 3 FS 4 GS 5, or -1 */
	uint16_t opcode;	/* 0x0fXX for two-byte opcodes */
	uint8_t rex, modrm, sib;
	bool has_modrm, has_sib, has_mem, string;
	int disp_size, disp_at;	/* displacement bytes and their offset */
	int moffs_at;		/* A0-A3: offset of the address */
};

/* ---- port IO (IN/OUT/INS/OUTS) -------------------------------------------- */

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
	/* C3 (MOVNTI) has no immediate, unlike its neighbours C2, C4, C5, C6 */
	if ((op >= 0x70 && op <= 0x73) || op == 0xa4 || op == 0xac || op == 0xba ||
	    (op >= 0xc2 && op <= 0xc6 && op != 0xc3))
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
static int emu_decode_insn(const uint8_t *code, int avail, int bits, struct emu_insn *d)
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

/* ---- SSE/AVX operands ----------------------------------------------------- */

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

/* ---- memory operands -------------------------------------------------------- */

static uint64_t emu_gpr_by_num(const struct kvm_regs *r, int n)
{
	const __u64 *v[16] = { &r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi,
			       &r->rdi, &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13,
			       &r->r14, &r->r15 };

	return *v[n & 15];
}

static int64_t emu_sread(const uint8_t *p, int n)
{
	switch (n) {
	case 1: return (int8_t)p[0];
	case 2: { int16_t v; memcpy(&v, p, 2); return v; }
	case 4: { int32_t v; memcpy(&v, p, 4); return v; }
	case 8: { int64_t v; memcpy(&v, p, 8); return v; }
	}
	return 0;
}

/* The linear address of a decoded memory operand (registers as they are now). */
static int emu_insn_linear(struct emu_vp *vp, const struct emu_insn *d, const uint8_t *code,
			   uint64_t rip_after, int bits, uint64_t *linear)
{
	const struct kvm_regs *r = &vp->run->s.regs.regs;
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	const struct kvm_segment *segs[6] = { &sr->es, &sr->cs, &sr->ss, &sr->ds, &sr->fs, &sr->gs };
	uint64_t ea, amask = d->addr_bits == 64 ? ~0ULL : d->addr_bits == 32 ? 0xffffffffULL :
			     0xffffULL;
	int seg = 3;		/* DS */

	if (d->moffs_at) {
		ea = 0;
		memcpy(&ea, code + d->moffs_at, (size_t)d->addr_bits / 8);
	} else if (d->has_modrm && d->has_mem) {
		int mod = d->modrm >> 6, rm = d->modrm & 7;
		int64_t disp = emu_sread(code + d->disp_at, d->disp_size);

		if (d->addr_bits == 16) {
			static const int8_t b16[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };	/* bx bx bp bp si di bp bx */
			static const int8_t i16[8] = { 6, 7, 6, 7, -1, -1, -1, -1 };	/* si di si di */

			ea = (mod == 0 && rm == 6) ? 0 : emu_gpr_by_num(r, b16[rm]);
			if (i16[rm] >= 0)
				ea += emu_gpr_by_num(r, i16[rm]);
			if ((rm == 2 || rm == 3 || rm == 6) && !(mod == 0 && rm == 6))
				seg = 2;
		} else if (d->has_sib) {
			int base = (d->sib & 7) | ((d->rex & 1) << 3);
			int index = ((d->sib >> 3) & 7) | ((d->rex & 2) << 2);

			ea = index == 4 ? 0 : emu_gpr_by_num(r, index) << (d->sib >> 6);
			if (!((d->sib & 7) == 5 && mod == 0))
				ea += emu_gpr_by_num(r, base);
			if ((base & 7) == 4 || ((base & 7) == 5 && mod != 0))
				seg = 2;
		} else if (mod == 0 && rm == 5) {
			ea = bits == 64 ? rip_after : 0;	/* RIP-relative in 64-bit mode */
		} else {
			ea = emu_gpr_by_num(r, rm | ((d->rex & 1) << 3));
			if (rm == 5)
				seg = 2;
		}
		ea += (uint64_t)disp;
	} else {
		return -1;
	}
	ea &= amask;
	if (d->seg >= 0)
		seg = d->seg;
	if (bits == 64)
		*linear = ea + (seg >= 4 ? segs[seg]->base : 0);
	else
		*linear = (segs[seg]->base + ea) & 0xffffffffULL;
	return 0;
}

/* The operand size of the non-byte forms: REX.W, else 0x66 against the mode's default. */
static int emu_insn_full_size(const uint8_t *code, const struct emu_insn *d, int bits)
{
	bool p66 = false;

	for (int i = 0; i < d->len; i++) {
		uint8_t b = code[i];

		if (b == 0x66)
			p66 = true;
		else if (!(b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e ||
			   b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65))
			break;
	}
	if (d->rex & 8)
		return 8;
	if (bits == 16)
		return p66 ? 4 : 2;
	return p66 ? 2 : 4;
}

/*
 * Operand size in bytes of a memory operand, for the opcodes that write
 * memory (Intel SDM vol. 2, opcode maps ), 0 when unknown.
 * One-byte: ALU 00-3F, TEST/XCHG/MOV 84-8B, group 1 80-83, MOV moffs
 * A0-A3, C6/C7, F6/F7, FE/FF. Two-byte: SETcc 90-9F (a byte), BT/BTS/
 * BTR/BTC A3/AB/B3/BB and group 8 BA, SHLD/SHRD A4/A5/AC/AD, CMPXCHG
 * B0/B1, XADD C0/C1, MOVNTI C3 (32 or, with REX.W, 64 bits; no 16-bit
 * form), CMPXCHG8B/16B C7 /1.
 */
static int emu_insn_opsize(const uint8_t *code, const struct emu_insn *d, int bits)
{
	uint16_t op = d->opcode;
	int full = emu_insn_full_size(code, d, bits);

	if (op <= 0x3f && (op & 7) <= 3)
		return (op & 1) ? full : 1;
	if (op == 0x80 || op == 0x82)
		return 1;
	if (op == 0x81 || op == 0x83)
		return full;
	if ((op >= 0x84 && op <= 0x8b) || (op >= 0xa0 && op <= 0xa3) || op == 0xc6 ||
	    op == 0xc7 || op == 0xf6 || op == 0xf7 || op == 0xfe || op == 0xff)
		return (op & 1) ? full : 1;
	if (op >= 0x0f90 && op <= 0x0f9f)
		return 1;
	switch (op) {
	case 0x0fa3: case 0x0fab: case 0x0fb3: case 0x0fbb: case 0x0fba:
	case 0x0fa4: case 0x0fa5: case 0x0fac: case 0x0fad:
	case 0x0fb1: case 0x0fc1:
		return full;
	case 0x0fb0: case 0x0fc0:
		return 1;
	case 0x0fc3:
		return (d->rex & 8) ? 8 : 4;
	case 0x0fc7:
		return ((d->modrm >> 3) & 7) == 1 ? ((d->rex & 8) ? 16 : 8) : 0;
	}
	return 0;
}

/* ---- the instruction behind an MMIO write KVM completed at the exit --------- */

/* Fetch the code around RIP once per exit (each fetch is a page walk). */
void emu_code_fetch_around(struct emu_vp *vp, uint64_t rip, int bits, struct emu_code_around *c)
{
	uint64_t mask = emu_ip_mask(bits);
	uint8_t both[30];

	/* usually one read (one page walk) for both sides of RIP */
	if (emu_fetch_code(vp, (rip - 15) & mask, both, 30) == 30) {
		memcpy(c->before, both, 15);
		memcpy(c->at, both + 15, 15);
		c->nbefore = c->nat = 15;
		return;
	}
	c->nat = emu_fetch_code(vp, rip, c->at, 15);
	/* as many bytes before RIP as can be read (fewer only at an unreadable page) */
	for (c->nbefore = 15; c->nbefore > 0; c->nbefore--)
		if (emu_fetch_code(vp, (rip - (uint64_t)c->nbefore) & mask,
				   c->before + 15 - c->nbefore, c->nbefore) == c->nbefore)
			break;
}

/*
 * An MMIO write is complete at the exit and RIP is past it (KVM writes the
 * emulator's registers back for writes). Find the instruction that ended at
 * rip_after: every length 1..15 that decodes to exactly that length with a
 * memory operand. A candidate whose operand's address translates to the
 * faulting GPA and whose operand size is the access size wins (so a REX.W or
 * 0x66 prefix is not dropped: 48 89 4b 08 is not 89 4b 08); else the
 * shortest one with the right address; else the shortest. -1 if none.
 */
int emu_mmio_write_start(struct emu_vp *vp, const struct emu_code_around *c, uint64_t rip_after,
			 uint64_t gpa, uint32_t access_len, int bits, bool *exact)
{
	int fallback = -1, addr_match = -1;

	*exact = false;

	for (int len = 1; len <= c->nbefore; len++) {
		uint64_t linear, g;
		struct emu_insn d;
		uint8_t code[16];

		memcpy(code, c->before + 15 - len, (size_t)len);
		if (emu_decode_insn(code, len, bits, &d) < 0 || d.len != len || !d.has_mem)
			continue;
		if (!d.string && emu_insn_linear(vp, &d, code, rip_after, bits, &linear) == 0 &&
		    emu_linear_to_gpa(vp, linear, &g) == 0 && g == gpa) {
			int size = emu_insn_opsize(code, &d, bits);

			if (size == 0 || (uint32_t)size == access_len) {
				*exact = size != 0;
				return len;
			}
			if (addr_match < 0)
				addr_match = len;
		}
		if (fallback < 0)
			fallback = len;
	}
	return addr_match > 0 ? addr_match : fallback;
}

/* ---- a plain MOV load whose MMIO read KVM holds pending ------------------------ */

__u64 *emu_gpr_ptr(struct kvm_regs *r, int n)
{
	__u64 *v[16] = { &r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi,
			 &r->rdi, &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13,
			 &r->r14, &r->r15 };

	return v[n & 15];
}

/*
 * MOV r8, m8 (8A) or MOV r16/32/64, m (8B) at rip, reading access_len bytes
 * at gpa: for these KVM's emulator (em_mov) only copies the data it read
 * into the destination register and moves RIP past the instruction. LOCK
 * and REP prefixes, the high-byte registers AH-BH (no REX, 8A with reg
 * 4-7) and any operand not at gpa are left out.
 */
int emu_mmio_plain_load(struct emu_vp *vp, const uint8_t *code, int avail, uint64_t rip,
			uint64_t gpa, uint32_t access_len, int bits, struct emu_mmio_load *ld)
{
	struct emu_insn d;
	uint64_t linear, g;

	if (emu_decode_insn(code, avail, bits, &d) < 0 || !d.has_modrm || !d.has_mem ||
	    (d.opcode != 0x8a && d.opcode != 0x8b))
		return -1;
	for (int i = 0; i < d.len && code[i] != d.opcode; i++)
		if (code[i] == 0xf0 || code[i] == 0xf2 || code[i] == 0xf3)
			return -1;
	ld->len = d.len;
	ld->reg = ((d.modrm >> 3) & 7) | ((d.rex & 4) << 1);
	ld->size = d.opcode == 0x8a ? 1 : emu_insn_full_size(code, &d, bits);
	if ((uint32_t)ld->size != access_len || (ld->size == 1 && !d.rex && ld->reg >= 4))
		return -1;
	if (emu_insn_linear(vp, &d, code, (rip + (uint64_t)d.len) & emu_ip_mask(bits), bits,
			    &linear) < 0 ||
	    emu_linear_to_gpa(vp, linear, &g) < 0 || g != gpa)
		return -1;
	return 0;
}

/* A STOS or MOVS at code[]: its element size and whether it has a REP prefix. */
static bool emu_string_store(const uint8_t *code, const struct emu_insn *d, int bits, int *size,
			     bool *rep)
{
	bool p66 = false;

	*rep = false;
	for (int i = 0; i < d->len; i++) {
		uint8_t b = code[i];

		if (b == 0x66)
			p66 = true;
		else if (b == 0xf2 || b == 0xf3)
			*rep = true;
		else if (!(b == 0x67 || b == 0xf0 || b == 0x2e || b == 0x36 || b == 0x3e ||
			   b == 0x26 || b == 0x64 || b == 0x65))
			break;
	}
	if (d->opcode == 0xaa || d->opcode == 0xa4)
		*size = 1;
	else if (d->opcode == 0xab || d->opcode == 0xa5)
		*size = (d->rex & 8) ? 8 : (bits == 16) != p66 ? 2 : 4;
	else
		return false;
	return true;
}

/*
 * A STOS/MOVS writing MMIO: KVM's emulator did the element at the exit and
 * advanced RDI (RSI for MOVS, RCX under REP); RIP moved past the instruction
 * only if it ended. mshv stops *at* the element, so undo it, as emu_exit_outs
 * does for OUTS. Not moved (a REP): the instruction is at RIP, RCX left or 0
 * (x86_emulate_insn leaves RIP at a REP whose last element it just did: the
 * RCX == 0 check ending it runs when the instruction is next executed).
 * Moved: try every start 1..15 bytes back, longest first (prefixes kept), and
 * take a STOS/MOVS of the access size whose undone destination is the faulting
 * GPA; a REP only if RCX ended at 0 (then REP or not means the same). A byte
 * before a MOVS that looks like a segment prefix is taken as one.
 * Ambiguous, resolved as "not moved": a STOS/MOVS followed at once by a REP
 * one with the same element and RCX left. Returns the length with *r at the
 * start, or 0.
 */
int emu_mmio_string_undo(struct emu_vp *vp, const struct emu_code_around *c, struct kvm_regs *r,
			 uint64_t gpa, uint32_t access_len, int bits, bool moved)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	uint64_t mask = emu_ip_mask(bits);
	uint8_t last = c->before[14];

	/* STOS/MOVS end with their opcode: nothing else can have ended at RIP */
	if (moved && (c->nbefore < 1 || (last != 0xa4 && last != 0xa5 && last != 0xaa && last != 0xab)))
		return 0;
	for (int len = moved ? 15 : 0; len >= (moved ? 1 : 0); len--) {
		uint64_t at = (r->rip - (uint64_t)len) & mask, amask, step, rdi, g;
		int avail = moved ? len : 15, size;
		struct emu_insn d;
		uint8_t code[16];
		bool rep;

		if (moved ? len > c->nbefore : c->nat != avail)
			continue;
		memcpy(code, moved ? c->before + 15 - len : c->at, (size_t)avail);
		if (emu_decode_insn(code, avail, bits, &d) < 0 || (moved && d.len != len) ||
		    !d.string || !emu_string_store(code, &d, bits, &size, &rep) ||
		    (uint32_t)size != access_len)
			continue;
		amask = emu_ip_mask(d.addr_bits);
		if (moved ? rep && (r->rcx & amask) != 0 : !rep)
			continue;
		step = (uint64_t)size;
		rdi = (r->rflags & X86_RFLAGS_DF) ? r->rdi + step : r->rdi - step;
		if (emu_linear_to_gpa(vp, (bits == 64 ? 0 : sr->es.base) + (rdi & amask), &g) < 0 ||
		    g != gpa)
			continue;
		r->rdi = (r->rdi & ~amask) | (rdi & amask);
		if (d.opcode == 0xa4 || d.opcode == 0xa5) {
			uint64_t rsi = (r->rflags & X86_RFLAGS_DF) ? r->rsi + step : r->rsi - step;

			r->rsi = (r->rsi & ~amask) | (rsi & amask);
		}
		if (rep)
			r->rcx = (r->rcx & ~amask) | ((r->rcx + 1) & amask);
		r->rip = at;
		return d.len;
	}
	return 0;
}
