/* SPDX-License-Identifier: MIT */
/*
 * The completion a C VMM writes for the bench guests, the mshv way: RIP past
 * the instruction and, for IN and the MMIO read, the new RAX. Shared by the
 * /dev/mshv client (its own process) and the in-process timers (inproc.c).
 */
#ifndef BENCH_COMPLETE_H
#define BENCH_COMPLETE_H

#include <linux/mshv.h>
#include "mshv_hvdefs.h"
#include "bench_common.h"

struct bench_completion {
	uint64_t rip, rax;
	bool set_rax;
};

/* The completion of message m for the guest of `kind`; -1 if m is not the expected exit. */
static inline int bench_completion(const struct hv_message *m, enum bench_kind kind,
			    struct bench_completion *c)
{
	const struct hv_x64_intercept_message_header *h = (const void *)m->payload;

	c->rip = h->rip + ((h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK) >>
			   HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT);
	c->rax = 0;
	c->set_rax = false;
	if (kind == BENCH_OUT || kind == BENCH_IN) {
		const struct hv_x64_io_port_intercept_message *io = (const void *)m->payload;

		if (m->header.message_type != HVMSG_X64_IO_PORT_INTERCEPT)
			return -1;
		if (kind == BENCH_IN) {
			c->rax = (io->rax & ~0xffULL) | 0x5a;	/* IN AL: the low byte only */
			c->set_rax = true;
		}
	} else {
		if (m->header.message_type != HVMSG_UNMAPPED_GPA)
			return -1;
		if (kind == BENCH_MMIO_READ) {
			c->rax = 0x1234;			/* mov (%rbx), %eax zero-extends */
			c->set_rax = true;
		}
	}
	return 0;
}

/* Write a completion through the VP register page: the next MSHV_RUN_VP applies it. */
static inline void bench_complete_regpage(struct hv_vp_register_page *rp,
					  const struct bench_completion *c)
{
	if (c->set_rax)
		rp->rax = c->rax;
	rp->rip = c->rip;
	rp->dirty |= (c->set_rax ? 1U << HV_X64_REGISTER_CLASS_GENERAL : 0) |
		     (1U << HV_X64_REGISTER_CLASS_IP);
}

#endif /* BENCH_COMPLETE_H */
