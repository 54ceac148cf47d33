/* SPDX-License-Identifier: MIT */
/* Private to run.c/intercept.c (owner: run): instruction helpers. */
#ifndef MSHV_EMU_INTERCEPT_H
#define MSHV_EMU_INTERCEPT_H

#include "emu.h"

/* One decoded port-IO instruction. */
struct emu_io_insn {
	int len;		/* bytes, prefixes included */
	int size;		/* access size in bytes */
	int full_size;		/* operand size for the non-byte forms */
	int addr_bits;		/* address size of string forms */
	bool in, string, rep, imm_port;
	uint8_t port;		/* imm8 port when imm_port */
};

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

int emu_decode_insn(const uint8_t *code, int avail, int bits, struct emu_insn *d);
int emu_linear_to_gpa(struct emu_vp *vp, uint64_t linear, uint64_t *gpa);
int emu_code_bits(const struct kvm_sregs *sr);
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len);
int emu_decode_io(const uint8_t *code, int avail, int bits, struct emu_io_insn *d);
void emu_message_init(struct hv_message *msg, uint32_t type, size_t size);
bool emu_insn_uses_xmm(const uint8_t *code, int len);

#endif /* MSHV_EMU_INTERCEPT_H */
