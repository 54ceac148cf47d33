"""C source of the call batch: a list of /dev/mshv calls made ready once and issued by one C call.

A snapshot restore makes the same calls every time (HvCallSetVpRegisters with
the same input, MSHV_SET_VP_STATE with the same blob, the same property
writes); issued from Python, each costs several microseconds of interpreter
around the call. A batch holds them as ``struct mshv_batch_step`` entries. For each in turn,
``init`` (``size`` bytes, the argument struct as made ready) is copied into
``arg``, then ``ioctl(fds[slot], request, arg)`` goes through the kernel table.
The copy is needed because the kernel writes into the argument
(MSHV_ROOT_HVCALL's ``status`` and ``reps``, which must be zero on entry:
mshv_ioctl_passthru_hvcall; MSHV_SET_VP_STATE's ``buf_sz``:
mshv_vp_ioctl_get_set_state). An MSHV_ROOT_HVCALL counts as failed too when
the reps it completed differ from ``reps`` (errno 0 then).

``mshv_call_batch`` returns ``count`` when every step succeeded, else the
index of the step that failed, with errno as the call left it. It writes only
into the steps' own ``arg`` structs (and what the calls write), never into
memory a Python object owns, so it may run without the GIL.
"""

from __future__ import annotations

INCLUDES = """
#include <errno.h>
#include <stdint.h>
#include <string.h>

struct mshv_batch_step {
	int32_t slot;		/* which of the batch's fds */
	uint32_t reps;		/* MSHV_ROOT_HVCALL: the reps the call must complete */
	uint64_t request;
	void *arg;		/* the call's argument, filled from init first */
	const void *init;
	uint64_t size;		/* bytes of init */
};
"""

TYPES = """
struct mshv_batch_step {
    int32_t slot;
    uint32_t reps;
    uint64_t request;
    void *arg;
    const void *init;
    uint64_t size;
};
"""

FUNCTIONS = """
int mshv_call_batch(const struct mshv_batch_step *steps, int count, const int *fds);
"""

CUSTOMIZATIONS = r"""
static int mshv_call_batch(const struct mshv_batch_step *steps, int count, const int *fds)
{
	for (int i = 0; i < count; i++) {
		const struct mshv_batch_step *s = &steps[i];

		memcpy(s->arg, s->init, s->size);
		if (mshv_ioctl(fds[s->slot], (unsigned long)s->request, s->arg) < 0)
			return i;
		const struct mshv_root_hvcall *hvcall = s->arg;

		if (s->request == MSHV_ROOT_HVCALL && hvcall->reps != s->reps) {
			errno = 0;
			return i;
		}
	}
	return count;
}
"""
