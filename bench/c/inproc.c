/* SPDX-License-Identifier: MIT */
/*
 * The C timers the benchmarks run inside the Python process, through the same
 * kernel table the binding uses (libc on a root host, the emulator here):
 *  - bench_map_unmap_ns: one MSHV_SET_GUEST_MEMORY map and unmap;
 *  - bench_exits_ns: n MSHV_RUN_VP exits of a bench guest on a VP the Python
 *    side also drives, each completed through the register page;
 *  - bench_touch_ns: the MSHV_RUN_VP in which the "touch" guest first writes a
 *    freshly mapped region, on the Python side's VP;
 *  - bench_run_ns: one MSHV_RUN_VP that ends in the bench's OUT, on the Python side's VP;
 *  - bench_regs_ns: one register batch, read or written, on the Python side's VP;
 *  - bench_bitmap_ns: one dirty bitmap read and clear on the Python side's partition;
 *  - bench_restore_ns: a snapshot restore's prepared calls and dirty-page copies.
 * The benches call them right before each Python round, so both sides see the
 * same moment of a host whose speed drifts between slow and fast phases.
 */
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "bench_complete.h"

/* The layout of mshv._abi's kernel table (build_ext/kernel_table.py). */
struct mshv_kernel_table {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	void *(*mmap)(void *addr, unsigned long length, int prot, int flags, int fd, long offset);
	int (*munmap)(void *addr, unsigned long length);
	int (*close)(int fd);
};

/* ns for one map + unmap of [uaddr, uaddr+size) at gpa, or -errno. */
int64_t bench_map_unmap_ns(const struct mshv_kernel_table *k, int pt_fd, uint64_t uaddr,
			   uint64_t size, uint64_t gpa)
{
	struct mshv_user_mem_region region;
	uint64_t t0 = bench_now_ns();

	memset(&region, 0, sizeof(region));
	region.size = size;
	region.guest_pfn = gpa >> 12;
	region.userspace_addr = uaddr;
	region.flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE);
	if (k->ioctl(pt_fd, MSHV_SET_GUEST_MEMORY, &region) < 0)
		return -errno;
	region.flags = 1 << MSHV_SET_MEM_BIT_UNMAP;
	if (k->ioctl(pt_fd, MSHV_SET_GUEST_MEMORY, &region) < 0)
		return -errno;
	return (int64_t)(bench_now_ns() - t0);
}

/*
 * ns for n exits of the guest of `kind` (0 out, 1 in, 2 mmio_read, 3 mmio_write:
 * enum bench_kind) on VP fd vp_fd with its register page mapped at rp, or -errno
 * (-EPROTO for an exit the guest should not make).
 */
int64_t bench_exits_ns(const struct mshv_kernel_table *k, int vp_fd, struct hv_vp_register_page *rp,
		       int kind, int n)
{
	struct mshv_run_vp run;
	struct bench_completion c;
	uint64_t t0 = bench_now_ns();

	if (kind < BENCH_OUT || kind > BENCH_MMIO_WRITE)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (k->ioctl(vp_fd, MSHV_RUN_VP, &run) < 0)
			return -errno;
		if (bench_completion((const struct hv_message *)run.msg_buf, (enum bench_kind)kind, &c) < 0)
			return -EPROTO;
		bench_complete_regpage(rp, &c);
	}
	return (int64_t)(bench_now_ns() - t0);
}

/*
 * ns for the MSHV_RUN_VP in which the "touch" guest first writes `size` bytes of
 * fresh anonymous memory mapped at gpa (its OUT exit included), or -errno
 * (-EPROTO when the guest did not write it). The region is unmapped and freed after.
 */
int64_t bench_touch_ns(const struct mshv_kernel_table *k, int pt_fd, int vp_fd,
		       struct hv_vp_register_page *rp, uint64_t gpa, uint64_t size)
{
	struct mshv_user_mem_region region;
	struct bench_completion c;
	struct mshv_run_vp run;
	int64_t ns = -EPROTO;
	uint64_t t0;
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	memset(&region, 0, sizeof(region));
	region.size = size;
	region.guest_pfn = gpa >> 12;
	region.userspace_addr = (uint64_t)(uintptr_t)p;
	region.flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE);
	if (k->ioctl(pt_fd, MSHV_SET_GUEST_MEMORY, &region) < 0) {
		ns = -errno;
		munmap(p, size);
		return ns;
	}
	t0 = bench_now_ns();
	if (k->ioctl(vp_fd, MSHV_RUN_VP, &run) < 0) {
		ns = -errno;
	} else if (bench_completion((const struct hv_message *)run.msg_buf, BENCH_OUT, &c) == 0 &&
		   *(volatile uint8_t *)p == 1) {
		ns = (int64_t)(bench_now_ns() - t0);
		bench_complete_regpage(rp, &c);
	}
	region.flags = 1 << MSHV_SET_MEM_BIT_UNMAP;
	if (k->ioctl(pt_fd, MSHV_SET_GUEST_MEMORY, &region) < 0 && ns >= 0)
		ns = -errno;
	munmap(p, size);
	return ns;
}

/* One MSHV_ROOT_HVCALL: the reps done, or -1 with errno set. */
static int bench_hvcall(const struct mshv_kernel_table *k, int fd, uint16_t code, uint16_t reps,
			void *in, uint16_t in_sz, void *out, uint16_t out_sz)
{
	struct mshv_root_hvcall a;

	memset(&a, 0, sizeof(a));
	a.code = code;
	a.reps = reps;
	a.in_sz = in_sz;
	a.out_sz = out_sz;
	a.in_ptr = (uint64_t)(uintptr_t)in;
	a.out_ptr = (uint64_t)(uintptr_t)out;
	if (k->ioctl(fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.reps;
}

/*
 * ns for one MSHV_RUN_VP of VP vp_fd that ends in the bench's OUT, which is then
 * completed through the register page rp; -errno, or -EPROTO for another exit.
 */
int64_t bench_run_ns(const struct mshv_kernel_table *k, int vp_fd, struct hv_vp_register_page *rp)
{
	struct bench_completion c;
	struct mshv_run_vp run;
	uint64_t t0 = bench_now_ns();
	int64_t ns;

	if (k->ioctl(vp_fd, MSHV_RUN_VP, &run) < 0)
		return -errno;
	ns = (int64_t)(bench_now_ns() - t0);
	if (bench_completion((const struct hv_message *)run.msg_buf, BENCH_OUT, &c) != 0)
		return -EPROTO;
	bench_complete_regpage(rp, &c);
	return ns;
}

/*
 * ns for one MSHV_GET_GPAP_ACCESS_BITMAP of the dirty bits of npages pages from gpa, read
 * and cleared into bitmap (npages bits), or -errno.
 */
int64_t bench_bitmap_ns(const struct mshv_kernel_table *k, int pt_fd, uint64_t gpa, uint64_t npages,
			uint8_t *bitmap)
{
	struct mshv_gpap_access_bitmap a;
	uint64_t t0;

	memset(&a, 0, sizeof(a));
	a.access_type = MSHV_GPAP_ACCESS_TYPE_DIRTY;
	a.access_op = MSHV_GPAP_ACCESS_OP_CLEAR;
	a.page_count = npages;
	a.gpap_base = gpa / BENCH_PAGE;
	a.bitmap_ptr = (uint64_t)(uintptr_t)bitmap;
	t0 = bench_now_ns();
	if (k->ioctl(pt_fd, MSHV_GET_GPAP_ACCESS_BITMAP, &a) < 0)
		return -errno;
	return (int64_t)(bench_now_ns() - t0);
}

/*
 * ns for HvCallGetVpRegisters (set == 0: into values) or HvCallSetVpRegisters (set != 0: from
 * values) of the n names of VP vp_index through fd, chunked to the hypercall limits as the
 * Python side and the C client (bench/c/mshv_client.c) do; -errno on failure, -EIO when
 * the hypervisor did fewer reps than asked.
 */
int64_t bench_regs_ns(const struct mshv_kernel_table *k, int fd, uint32_t vp_index, int set,
		      const uint32_t *names, union hv_register_value *values, int n)
{
	static uint8_t in[4096] __attribute__((aligned(8)));
	struct hv_input_get_vp_registers *gh = (void *)in;
	struct hv_input_set_vp_registers *sh = (void *)in;
	struct hv_register_assoc *a = (void *)(in + sizeof(*sh));
	uint64_t t0 = bench_now_ns();

	for (int done = 0; done < n;) {
		int max = set ? HV_SET_VP_REGISTERS_BATCH_MAX : HV_GET_VP_REGISTERS_BATCH_MAX;
		int chunk = n - done < max ? n - done : max;
		size_t sz;
		int reps;

		if (set) {
			sz = sizeof(*sh) + (size_t)chunk * sizeof(*a);
			memset(in, 0, sz);
			sh->vp_index = vp_index;
			for (int i = 0; i < chunk; i++) {
				a[i].name = names[done + i];
				a[i].value = values[done + i];
			}
			reps = bench_hvcall(k, fd, HVCALL_SET_VP_REGISTERS, (uint16_t)chunk, in,
					    (uint16_t)sz, NULL, 0);
		} else {
			sz = sizeof(*gh) + (size_t)chunk * sizeof(uint32_t);
			memset(in, 0, sz);
			gh->vp_index = vp_index;
			memcpy(in + sizeof(*gh), names + done, (size_t)chunk * sizeof(uint32_t));
			reps = bench_hvcall(k, fd, HVCALL_GET_VP_REGISTERS, (uint16_t)chunk, in,
					    (uint16_t)sz, values + done,
					    (uint16_t)(chunk * sizeof(*values)));
		}
		if (reps < 0)
			return -errno;
		if (reps != chunk)
			return -EIO;
		done += chunk;
	}
	return (int64_t)(bench_now_ns() - t0);
}

/*
 * A call as mshv._batch makes it ready: struct mshv_batch_step of
 * build_ext/call_batch.py, the same layout. Its init is copied into arg (the
 * kernel writes into the argument), then the ioctl goes to fds[slot].
 */
struct bench_batch_step {
	int32_t slot;
	uint32_t reps;	/* MSHV_ROOT_HVCALL: the reps the call must complete */
	uint64_t request;
	void *arg;
	const void *init;
	uint64_t size;
};

/* One region's pages to put back: each page set in bitmap, from src to dst. */
struct bench_region_copy {
	uint8_t *dst;
	const uint8_t *src;
	const uint8_t *bitmap;
	uint64_t npages;
};

static int bench_batch(const struct mshv_kernel_table *k, const struct bench_batch_step *steps,
		       int n, const int *fds)
{
	for (int i = 0; i < n; i++) {
		const struct bench_batch_step *s = &steps[i];

		memcpy(s->arg, s->init, s->size);
		if (k->ioctl(fds[s->slot], (unsigned long)s->request, s->arg) < 0)
			return -errno;
		if (s->request == MSHV_ROOT_HVCALL &&
		    ((const struct mshv_root_hvcall *)s->arg)->reps != s->reps)
			return -EIO;
	}
	return 0;
}

static void bench_copy_pages(const struct bench_region_copy *c)
{
	for (uint64_t byte = 0; byte < (c->npages + 7) / 8; byte++) {
		for (unsigned bits = c->bitmap[byte]; bits; bits &= bits - 1) {
			uint64_t page = byte * 8 + (uint64_t)__builtin_ctz(bits);

			if (page < c->npages)
				memcpy(c->dst + page * 4096, c->src + page * 4096, 4096);
		}
	}
}

/*
 * ns for one dirty-page restore made of a restore program's prepared calls:
 * the batches in order (TIME_FREEZE read and set, the dirty bitmaps, the VP
 * calls, the thaw), the pages each bitmap marks copied back before batch
 * copy_at, then page_len bytes of packed registers into the register page.
 * -errno when a call fails (-EIO: fewer reps than asked).
 */
int64_t bench_restore_ns(const struct mshv_kernel_table *k, const int *fds,
			 const struct bench_batch_step *const *batches, const int *counts, int nbatches,
			 int copy_at, const struct bench_region_copy *copies, int ncopies,
			 void *page_dst, const void *page_src, uint64_t page_len)
{
	uint64_t t0 = bench_now_ns();

	for (int b = 0; b < nbatches; b++) {
		if (b == copy_at)
			for (int i = 0; i < ncopies; i++)
				bench_copy_pages(&copies[i]);
		int rc = bench_batch(k, batches[b], counts[b], fds);

		if (rc < 0)
			return rc;
	}
	memcpy(page_dst, page_src, page_len);
	return (int64_t)(bench_now_ns() - t0);
}
