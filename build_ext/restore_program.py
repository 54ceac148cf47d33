"""C source of a snapshot restore run by one C call: TIME_FREEZE, dirty bitmaps, page copies,
VP calls and the thaw, each made ready once (mshv.snapshot._Program).

From Python the restore's steps cost little CPU, but each runs cold: right after the guest
ran, the interpreter's code and objects have to be fetched back into the caches and the TLB,
and a restore from Python took 1.4-1.8 times as long as the same calls issued from C.
``mshv_restore`` makes the whole sequence one call, with the rules of the Python path:

- TIME_FREEZE is read first; a hypercall status there (a hypervisor that cannot read it
  back) counts as "not frozen", an error without one fails the restore.
- Time is frozen unless it already was, and then thawed even when a step between failed
  (the thaw's own failure is reported beside the first one).
- The dirty bitmaps are read and cleared, each region's dirty pages copied back
  (``mshv_copy_bitmap_pages``, build_ext/page_copy.py), each register page's dirty classes
  dropped, the VP calls issued (``mshv_call_batch``, build_ext/call_batch.py).
- Once all succeeded, the packed GPRs, RIP and RFLAGS are written into each register page
  (the hypervisor does not update the page on a register set).

``mshv_restore`` returns ``MSHV_RESTORE_DONE`` or the batch that failed, whose step index
and errno land in the outcome, so the caller raises the error that batch's step describes.
Like the call batch, it writes only into the program's own buffers, the guest memory and
the register pages, never into a Python object.
"""

from __future__ import annotations

INCLUDES = ""

# The types, as both the cdef and the C source declare them (cffi strips the comments).
DECLARATIONS = r"""
enum mshv_restore_batch {
	MSHV_RESTORE_DONE = 0,
	MSHV_RESTORE_READ_FROZEN = 1,
	MSHV_RESTORE_FREEZE = 2,
	MSHV_RESTORE_BITMAPS = 3,
	MSHV_RESTORE_VP_CALLS = 4,
	MSHV_RESTORE_THAW = 5,
};

/* A region of guest memory whose pages set in bitmap come back from src. */
struct mshv_restore_region {
	void *dst;
	const void *src;
	const unsigned char *bitmap;	/* filled by the bitmaps batch */
	uint64_t npages;
};

/* A VP's register page: its dirty classes dropped; then size bytes of packed at offset. */
struct mshv_restore_page {
	struct hv_vp_register_page *page;
	const void *packed;		/* NULL: the caller writes the page itself */
	uint64_t offset;
	uint64_t size;
};

struct mshv_restore_program {
	const struct mshv_batch_step *read_frozen;	/* HvCallGetPartitionProperty TIME_FREEZE */
	const unsigned char *frozen;			/* its output: the property, 8 bytes */
	const struct mshv_batch_step *freeze;		/* one step each */
	const struct mshv_batch_step *bitmaps;
	int32_t nbitmaps;
	int32_t nregions;
	const struct mshv_restore_region *regions;
	const struct mshv_batch_step *vp_calls;
	int32_t nvp_calls;
	int32_t npages;
	const struct mshv_restore_page *pages;
	const struct mshv_batch_step *thaw;
};

struct mshv_restore_outcome {
	int32_t batch;		/* MSHV_RESTORE_DONE, or the batch of the first failure */
	int32_t step;		/* its step */
	int32_t err;		/* errno it left (0: a hypercall short of its reps) */
	int32_t thaw_err;	/* -1, or the errno of a thaw that failed after that failure */
};
"""

TYPES = DECLARATIONS

FUNCTIONS = """
int mshv_restore(const struct mshv_restore_program *program, const int *fds,
                 struct mshv_restore_outcome *outcome);
"""

CUSTOMIZATIONS = (
    DECLARATIONS
    + r"""
static int mshv_restore_failed(struct mshv_restore_outcome *out, int batch, int step)
{
	out->batch = batch;
	out->step = step;
	out->err = errno;
	return batch;
}

static int mshv_restore(const struct mshv_restore_program *p, const int *fds,
			struct mshv_restore_outcome *out)
{
	int was_frozen = 0;
	int done;

	out->batch = MSHV_RESTORE_DONE;
	out->step = out->err = 0;
	out->thaw_err = -1;
	if (mshv_call_batch(p->read_frozen, 1, fds) == 1) {
		uint64_t frozen;

		memcpy(&frozen, p->frozen, sizeof(frozen));
		was_frozen = frozen != 0;
	} else if (((const struct mshv_root_hvcall *)p->read_frozen->arg)->status == 0) {
		return mshv_restore_failed(out, MSHV_RESTORE_READ_FROZEN, 0);
	}
	if (!was_frozen && mshv_call_batch(p->freeze, 1, fds) != 1)
		return mshv_restore_failed(out, MSHV_RESTORE_FREEZE, 0);

	done = mshv_call_batch(p->bitmaps, p->nbitmaps, fds);
	if (done != p->nbitmaps) {
		mshv_restore_failed(out, MSHV_RESTORE_BITMAPS, done);
	} else {
		for (int i = 0; i < p->nregions; i++) {
			const struct mshv_restore_region *r = &p->regions[i];

			mshv_copy_bitmap_pages(r->dst, r->src, r->bitmap, r->npages, MSHV_HV_PAGE_SIZE);
		}
		for (int i = 0; i < p->npages; i++)	/* what it would carry to the next run goes */
			p->pages[i].page->dirty = 0;
		done = mshv_call_batch(p->vp_calls, p->nvp_calls, fds);
		if (done != p->nvp_calls)
			mshv_restore_failed(out, MSHV_RESTORE_VP_CALLS, done);
	}

	if (!was_frozen && mshv_call_batch(p->thaw, 1, fds) != 1) {
		if (out->batch == MSHV_RESTORE_DONE)
			return mshv_restore_failed(out, MSHV_RESTORE_THAW, 0);
		out->thaw_err = errno;
	}
	if (out->batch != MSHV_RESTORE_DONE)
		return out->batch;
	for (int i = 0; i < p->npages; i++) {
		const struct mshv_restore_page *pg = &p->pages[i];

		if (pg->packed)
			memcpy((unsigned char *)pg->page + pg->offset, pg->packed, pg->size);
	}
	return MSHV_RESTORE_DONE;
}
"""
)
