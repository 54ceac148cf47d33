/* SPDX-License-Identifier: MIT */
/*
 * Shared by the C clients that run under LD_PRELOAD: one MSHV_ROOT_HVCALL with
 * its outcome (return value, errno, and the status and reps the kernel writes back).
 */
#ifndef HVCALL_CLIENT_H
#define HVCALL_CLIENT_H

#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include <linux/mshv.h>

struct hc {
	long ret;
	int err;
	uint16_t status, reps;
};

static struct hc hvcall(int fd, uint16_t code, uint16_t reps, void *in, uint16_t in_sz,
			void *out, uint16_t out_sz)
{
	struct mshv_root_hvcall a = {
		.code = code, .reps = reps, .in_sz = in_sz, .out_sz = out_sz,
		.in_ptr = (uint64_t)(uintptr_t)in, .out_ptr = (uint64_t)(uintptr_t)out,
	};
	struct hc r;

	errno = 0;
	r.ret = ioctl(fd, MSHV_ROOT_HVCALL, &a);
	r.err = errno;
	r.status = a.status;
	r.reps = a.reps;
	return r;
}

#endif
