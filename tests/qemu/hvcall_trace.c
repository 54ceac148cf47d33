/* SPDX-License-Identifier: MIT */
/*
 * An LD_PRELOAD tracer for /dev/mshv clients: it sits before the emulator
 * (LD_PRELOAD="hvcall_trace.so libmshv_emu.so") or before libc on a root host,
 * logs every ioctl of type 0xB8 and passes it on unchanged.
 *
 * One line per ioctl on $MSHV_TRACE_FILE (default stderr): the request's
 * number and direction, its result and errno. MSHV_ROOT_HVCALL also shows the
 * hypercall code, reps, sizes and the HV status written back, and decodes what
 * a VMM sends most: partition properties (0x44/0x45/0x101), register names and
 * values (0x50/0x51). It is a debugging tool: nothing here is part of the ABI.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/mshv.h>
#include <mshv_hvdefs.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

static FILE *trace_out(void)
{
	static FILE *out;
	const char *path;

	if (out)
		return out;
	path = getenv("MSHV_TRACE_FILE");
	out = path ? fopen(path, "a") : NULL;
	if (!out)
		out = stderr;
	setvbuf(out, NULL, _IOLBF, 0);
	return out;
}

static const uint8_t *in_bytes(const struct mshv_root_hvcall *call)
{
	return (const uint8_t *)(uintptr_t)call->in_ptr;
}

static const uint8_t *out_bytes(const struct mshv_root_hvcall *call)
{
	return (const uint8_t *)(uintptr_t)call->out_ptr;
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* hv_input_{get,set}_partition_property: partition id @0, code @8, value @16 (set). */
static void trace_property(FILE *out, const struct mshv_root_hvcall *call, int ok)
{
	const uint8_t *in = in_bytes(call);

	if (!in || call->in_sz < 16)
		return;
	fprintf(out, " property=%#x", load32(in + 8));
	if (call->code == HVCALL_SET_PARTITION_PROPERTY && call->in_sz >= 24)
		fprintf(out, " value=%#" PRIx64, load64(in + 16));
	else if (ok && call->out_ptr && call->out_sz >= 8)
		fprintf(out, " -> %#" PRIx64, load64(out_bytes(call)));
}

/*
 * hv_input_get_vp_registers: id @0, vp_index @8, names u32[] @16; output 16-byte values.
 * hv_input_set_vp_registers: id @0, vp_index @8, hv_register_assoc[] @16 (32 bytes:
 * name u32, reserved, value 16 bytes @16).
 */
static void trace_registers(FILE *out, const struct mshv_root_hvcall *call, int ok)
{
	const uint8_t *in = in_bytes(call);
	const uint8_t *res = out_bytes(call);
	int set = call->code == HVCALL_SET_VP_REGISTERS;
	unsigned int i, count;

	if (!in || call->in_sz < 16)
		return;
	/* reps holds the reps completed now: the count asked for is in the input's size */
	count = (call->in_sz - 16) / (set ? 32u : 4u);
	fprintf(out, " vp=%u count=%u", load32(in + 8), count);
	for (i = 0; i < count; i++) {
		const uint8_t *name = in + 16 + (set ? 32u * i : 4u * i);

		fprintf(out, i == call->reps && !ok ? " FAILED:%#x" : " %#x", load32(name));
		if (set)
			fprintf(out, "=%#" PRIx64, load64(name + 16));
		else if (ok && res && 16u * (i + 1) <= call->out_sz)
			fprintf(out, ":%#" PRIx64, load64(res + 16u * i));
	}
}

/* hv_input_assert_virtual_interrupt: control @8, destination @16, vector @24. */
static void trace_interrupt(FILE *out, const struct mshv_root_hvcall *call)
{
	const struct hv_input_assert_virtual_interrupt *in = (const void *)in_bytes(call);

	if (!in || call->in_sz < sizeof(*in))
		return;
	fprintf(out, " control=%#" PRIx64 " dest=%#" PRIx64 " vector=%#x", (uint64_t)in->control,
		(uint64_t)in->dest_addr, in->vector);
}

static void trace_hvcall(FILE *out, const struct mshv_root_hvcall *call, int ret)
{
	int ok = ret == 0 && call->status == HV_STATUS_SUCCESS;

	fprintf(out, " code=%#x reps_done=%u in=%u out=%u status=%#x", call->code, call->reps,
		call->in_sz, call->out_sz, call->status);
	switch (call->code) {
	case HVCALL_GET_PARTITION_PROPERTY:
	case HVCALL_SET_PARTITION_PROPERTY:
	case HVCALL_GET_PARTITION_PROPERTY_EX:
		trace_property(out, call, ok);
		break;
	case HVCALL_GET_VP_REGISTERS:
	case HVCALL_SET_VP_REGISTERS:
		trace_registers(out, call, ok);
		break;
	case HVCALL_ASSERT_VIRTUAL_INTERRUPT:
		trace_interrupt(out, call);
		break;
	}
}

/* MSHV_{GET,SET}_VP_STATE: the type; for the LAPIC, the LVT entries VMMs set up (LINT0/1). */
static void trace_vp_state(FILE *out, const struct mshv_get_set_vp_state *st, int ret)
{
	const struct hv_local_interrupt_controller_state *lapic;

	fprintf(out, " type=%u buf_sz=%u", st->type, st->buf_sz);
	if (ret < 0 || st->type != MSHV_VP_STATE_LAPIC || st->buf_sz < sizeof(*lapic))
		return;
	lapic = (const void *)(uintptr_t)st->buf_ptr;
	fprintf(out, " apic_id=%#x lint0=%#x lint1=%#x spurious=%#x", lapic->apic_id,
		lapic->apic_lvt_lint0, lapic->apic_lvt_lint1, lapic->apic_spurious);
}

int ioctl(int fd, unsigned long req, ...)
{
	static ioctl_fn next;
	va_list ap;
	void *arg;
	int ret, saved;
	FILE *out;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!next)
		next = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	ret = next(fd, req, arg);
	if (_IOC_TYPE(req) != MSHV_IOCTL)
		return ret;
	saved = errno;
	out = trace_out();
	fprintf(out, "mshv fd=%d nr=%#lx dir=%lu size=%lu ret=%d", fd, (unsigned long)_IOC_NR(req),
		(unsigned long)_IOC_DIR(req), (unsigned long)_IOC_SIZE(req), ret);
	if (ret < 0)
		fprintf(out, " errno=%s", strerrorname_np(saved) ? strerrorname_np(saved) : "?");
	if (req == MSHV_ROOT_HVCALL && arg)
		trace_hvcall(out, arg, ret);
	else if ((req == MSHV_GET_VP_STATE || req == MSHV_SET_VP_STATE) && arg)
		trace_vp_state(out, arg, ret);
	fputc('\n', out);
	errno = saved;
	return ret;
}
