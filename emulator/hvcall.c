/* SPDX-License-Identifier: MIT */
/*
 * Driver side: MSHV_ROOT_HVCALL passthrough (mshv_ioctl_passthru_hvcall,
 * mshv_passthru_hvcall_allowed, mshv_hvcall_is_async). Checks in the
 * kernel's order, the allow-list of each fd, the partition id written into
 * input bytes 0-7, status and reps always written back, output copied only
 * on success, errno from the status (hv_result_to_errno, hvstatus.c).
 * The hypercalls themselves are answered on the hypervisor side:
 * hypercalls.c, properties.c and cpuid.c, through the table below.
 */
#include "emu.h"
#include "hypercall.h"

/* ---- the dispatch table: who may call what, and its handler --------------- */

enum { O_DEV = 1 << EMU_HVCALL_DEVICE, O_PT = 1 << EMU_HVCALL_PARTITION,
       O_VP = 1 << EMU_HVCALL_VP };

struct emu_hvcall_desc {
	uint16_t code;
	uint8_t origins;	/* mshv_passthru_hvcall_allowed, per fd */
	bool rep;
	uint16_t (*fn)(struct emu_call *c);
};

static const struct emu_hvcall_desc emu_hvcalls[] = {
	{ HVCALL_GET_PARTITION_PROPERTY, O_DEV | O_PT | O_VP, false, emu_hc_get_property },
	{ HVCALL_GET_PARTITION_PROPERTY_EX, O_DEV | O_PT | O_VP, false, emu_hc_get_property_ex },
	{ HVCALL_SET_PARTITION_PROPERTY, O_PT | O_VP, false, emu_hc_set_property },
	{ HVCALL_INSTALL_INTERCEPT, O_PT | O_VP, false, emu_hc_install_intercept },
	{ HVCALL_GET_VP_REGISTERS, O_PT | O_VP, true, emu_hc_get_vp_registers },
	{ HVCALL_SET_VP_REGISTERS, O_PT | O_VP, true, emu_hc_set_vp_registers },
	{ HVCALL_TRANSLATE_VIRTUAL_ADDRESS, O_PT | O_VP, false, emu_hc_translate },
	{ HVCALL_CLEAR_VIRTUAL_INTERRUPT, O_PT | O_VP, false, emu_hc_clear_interrupt },
	{ HVCALL_REGISTER_INTERCEPT_RESULT, O_PT | O_VP, false, emu_hc_register_intercept_result },
	{ HVCALL_ASSERT_VIRTUAL_INTERRUPT, O_PT | O_VP, false, emu_hc_assert_interrupt },
	{ HVCALL_GET_GPA_PAGES_ACCESS_STATES, O_PT | O_VP, true, emu_hc_gpa_access_states },
	{ HVCALL_SIGNAL_EVENT_DIRECT, O_PT | O_VP, false, emu_hc_synic },
	{ HVCALL_POST_MESSAGE_DIRECT, O_PT | O_VP, false, emu_hc_synic },
	{ HVCALL_GET_VP_CPUID_VALUES, O_PT | O_VP, true, emu_hc_get_vp_cpuid_values },
};

static const struct emu_hvcall_desc *emu_hvcall_find(uint16_t code, enum emu_hvcall_origin o)
{
	for (size_t i = 0; i < sizeof(emu_hvcalls) / sizeof(emu_hvcalls[0]); i++)
		if (emu_hvcalls[i].code == code)
			return (emu_hvcalls[i].origins & (1 << o)) ? &emu_hvcalls[i] : NULL;
	return NULL;
}

/* The hypervisor side: rep-count rules, then the handler. */
static uint16_t emu_hvcall_do(const struct emu_hvcall_desc *d, struct emu_call *c)
{
	if (!d->rep && c->reps)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;	/* rep count on a simple call */
	return d->fn(c);
}

/* mshv_ioctl_passthru_hvcall */
int emu_root_hvcall(struct emu_partition *pt, enum emu_hvcall_origin origin,
		    struct mshv_root_hvcall *uarg)
{
	struct mshv_root_hvcall args;
	const struct emu_hvcall_desc *d;
	struct emu_call c;
	/*
	 * mshv_ioctl_passthru_hvcall takes the input and output pages from
	 * alloc_pages per call. Here they live on the stack (8 KiB): a calloc
	 * and free of two pages per call cost more than the rest of a register
	 * read. Handlers still see zeroed pages past the input (struct emu_call).
	 */
	_Alignas(64) uint8_t pages[2][EMU_HV_PAGE];
	uint64_t id;
	uint16_t st;

	/* step 1: copy the 32-byte argument */
	if (emu_copy_from_user(&args, uarg, sizeof(args)) < 0)
		return -1;
	/* step 2: status, in_ptr, in_sz, rsvd */
	if (args.status || !args.in_ptr || args.in_sz < sizeof(uint64_t) ||
	    args.rsvd[0] || args.rsvd[1] || args.rsvd[2] || args.rsvd[3] || args.rsvd[4] ||
	    args.rsvd[5] || args.in_sz > EMU_HV_PAGE) {
		errno = EINVAL;
		return -1;
	}
	/* step 3: out_sz is checked only with an out_ptr */
	if (args.out_ptr && (!args.out_sz || args.out_sz > EMU_HV_PAGE)) {
		errno = EINVAL;
		return -1;
	}
	/* step 4: the fd's allow-list (mshv_passthru_hvcall_allowed) */
	d = emu_hvcall_find(args.code, origin);
	/* step 5: the asynchronous call only from a partition fd (mshv_hvcall_is_async) */
	if (!d || (args.code == HVCALL_SET_PARTITION_PROPERTY && origin != EMU_HVCALL_PARTITION)) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * step 7: the pages, zeroed past the input; of the output page, only what
	 * goes back to the caller (out_sz bytes) needs to start zeroed
	 */
	memset(&c, 0, sizeof(c));
	c.in = pages[0];
	c.out = pages[1];
	memset(c.in + args.in_sz, 0, EMU_HV_PAGE - args.in_sz);
	memset(c.out, 0, args.out_ptr ? args.out_sz : 0);
	/* step 8: the input (nothing is written back if this fails) */
	if (emu_copy_from_user(c.in, (void *)(uintptr_t)args.in_ptr, args.in_sz) < 0)
		return -1;
	/* step 9: the target partition's id in input bytes 0-7 */
	id = origin == EMU_HVCALL_DEVICE ? HV_PARTITION_ID_SELF : pt->id;
	memcpy(c.in, &id, sizeof(id));
	c.pt = origin == EMU_HVCALL_DEVICE ? NULL : pt;
	c.origin = origin;
	c.reps = args.reps;
	st = emu_hvcall_do(d, &c);

	/* status and reps always written back; output only on success (hv_do_rep_hypercall_ex) */
	args.status = st;
	args.reps = d->rep ? c.done : 0;
	if (emu_copy_to_user(uarg, &args, sizeof(args)) < 0)
		return -1;
	if (st) {
		errno = emu_hv_status_errno(st);
		return -1;
	}
	if (args.out_ptr &&
	    emu_copy_to_user((void *)(uintptr_t)args.out_ptr, c.out, args.out_sz) < 0)
		return -1;
	return 0;
}
