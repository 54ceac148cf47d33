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

int emu_code_bits(const struct kvm_sregs *sr);
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len);
int emu_decode_io(const uint8_t *code, int avail, int bits, struct emu_io_insn *d);
void emu_message_init(struct hv_message *msg, uint32_t type, size_t size);

#endif /* MSHV_EMU_INTERCEPT_H */
