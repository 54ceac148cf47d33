/* SPDX-License-Identifier: MIT */
/*
 * The C side of the map+unmap benchmark, run inside the Python process: one
 * MSHV_SET_GUEST_MEMORY map and unmap through the same kernel table the
 * binding uses (libc on a root host, the emulator here), timed in C. The
 * bench calls it right before each Python round, so both sides see the same
 * moment of a host whose memslot cost drifts between slow and fast phases.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <linux/mshv.h>

/* The layout of mshv._abi's kernel table (build_ext/kernel_table.py). */
struct mshv_kernel_table {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	void *(*mmap)(void *addr, unsigned long length, int prot, int flags, int fd, long offset);
	int (*munmap)(void *addr, unsigned long length);
	int (*close)(int fd);
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ns for one map + unmap of [uaddr, uaddr+size) at gpa, or -errno. */
int64_t bench_map_unmap_ns(const struct mshv_kernel_table *k, int pt_fd, uint64_t uaddr,
			   uint64_t size, uint64_t gpa)
{
	struct mshv_user_mem_region region;
	int64_t t0 = now_ns();

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
	return now_ns() - t0;
}
