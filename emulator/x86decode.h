/* SPDX-License-Identifier: MIT */
/* x86decode.c's interface, for run.c: decoded instructions and the MMIO write helpers. */
#ifndef MSHV_EMU_X86DECODE_H
#define MSHV_EMU_X86DECODE_H

#include "emu.h"

#define X86_RFLAGS_DF (1ULL << 10)	/* string instructions step down */

/* The IP/address mask of a code or address size in bits (16, 32 or 64). */
static inline uint64_t emu_ip_mask(int bits)
{
	return bits == 64 ? ~0ULL : bits == 32 ? 0xffffffffULL : 0xffffULL;
}

/* One decoded port-IO instruction. */
struct emu_io_insn {
	int len;		/* bytes, prefixes included */
	int size;		/* access size in bytes */
	int full_size;		/* operand size for the non-byte forms */
	int addr_bits;		/* address size of string forms */
	bool in, string, rep, imm_port;
	uint8_t port;		/* imm8 port when imm_port */
};

/* Decode IN/OUT/INS/OUTS at code[0..avail); 0 with *d filled, or -1. */
int emu_decode_io(const uint8_t *code, int avail, int bits, struct emu_io_insn *d);
/* Could the instruction have an XMM/YMM operand? (errs on the side of yes) */
bool emu_insn_uses_xmm(const uint8_t *code, int len);

/*
 * The code around RIP, fetched once per exit (an IO exit, an MMIO write):
 * before[15 - nbefore, 15) are the bytes that end at RIP (fewer than 15 only
 * where the bytes before are not readable), at[0, nat) the bytes from RIP
 * on. The candidates of emu_mmio_write_start and emu_mmio_string_undo are all
 * cut from it.
 */
struct emu_code_around {
	uint8_t before[15];
	uint8_t at[15];
	int nbefore, nat;
};

void emu_code_fetch_around(struct emu_vp *vp, uint64_t rip, int bits, struct emu_code_around *c);
/* Length of the instruction that ended at rip_after writing gpa, or -1. */
int emu_mmio_write_start(struct emu_vp *vp, const struct emu_code_around *c, uint64_t rip_after,
			 uint64_t gpa, uint32_t access_len, int bits, bool *exact);
/* Undo the STOS/MOVS element KVM did at gpa: its length with *r at its start, or 0. */
int emu_mmio_string_undo(struct emu_vp *vp, const struct emu_code_around *c, struct kvm_regs *r,
			 uint64_t gpa, uint32_t access_len, int bits, bool moved);

/* A plain MOV load from memory into a general register (8A/8B). */
struct emu_mmio_load {
	int len;		/* instruction bytes */
	int reg;		/* destination, 0-15 in ModRM order (RAX, RCX, ...) */
	int size;		/* bytes read: 1, 2, 4 or 8 */
};

/* Is code[0..avail) at rip a plain MOV load of access_len bytes at gpa? 0 with *ld, or -1. */
int emu_mmio_plain_load(struct emu_vp *vp, const uint8_t *code, int avail, uint64_t rip,
			uint64_t gpa, uint32_t access_len, int bits, struct emu_mmio_load *ld);
/* The register number n (ModRM order) of *r. */
__u64 *emu_gpr_ptr(struct kvm_regs *r, int n);

#endif /* MSHV_EMU_X86DECODE_H */
