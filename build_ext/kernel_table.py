"""C source of the kernel table: the one road from Python to /dev/mshv.

The table holds five function pointers {open, ioctl, mmap, munmap, close}.
It starts out pointing at libc (through non-variadic wrappers: a cffi call to
libc's variadic ioctl costs about twice as much), and ``mshv_kernel_use_library``
points it at a shared library exporting the same five calls under the
``mshv_emu_`` prefix (the emulator). The Cython run loop reads the same table
through ``mshv_kernel_table()``.
"""

from __future__ import annotations

INCLUDES = """
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct mshv_kernel_table {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	void *(*mmap)(void *addr, size_t length, int prot, int flags, int fd, long offset);
	int (*munmap)(void *addr, size_t length);
	int (*close)(int fd);
};
"""

TYPES = """
struct mshv_kernel_table {
    int (*open)(const char *path, int flags);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    void *(*mmap)(void *addr, size_t length, int prot, int flags, int fd, long offset);
    int (*munmap)(void *addr, size_t length);
    int (*close)(int fd);
};

#define O_RDWR ...
#define O_CLOEXEC ...
#define PROT_READ ...
#define PROT_WRITE ...
#define MAP_SHARED ...
#define MAP_PRIVATE ...
#define MAP_ANONYMOUS ...
#define MAP_HUGETLB ...
#define MAP_POPULATE ...
#define MAP_NORESERVE ...
#define MAP_HUGE_SHIFT ...
#define MFD_CLOEXEC ...
#define MFD_HUGETLB ...
#define MADV_HUGEPAGE ...
#define MADV_DONTFORK ...
"""

FUNCTIONS = """
struct mshv_kernel_table *mshv_kernel_table(void);
int mshv_kernel_use_libc(void);
int mshv_kernel_use_library(const char *path, char *err, size_t errlen);
int mshv_open(const char *path, int flags);
int mshv_ioctl(int fd, unsigned long request, void *arg);
void *mshv_mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int mshv_munmap(void *addr, size_t length);
int mshv_close(int fd);
int mshv_set_guest_memory(int fd, uint64_t size, uint64_t guest_pfn, uint64_t userspace_addr,
                          uint8_t flags);
int mshv_memfd_create(const char *name, unsigned int flags);
int mshv_ftruncate(int fd, long length);
int mshv_madvise(void *addr, size_t length, int advice);
"""

CUSTOMIZATIONS = r"""
static int mshv_libc_open(const char *path, int flags) { return open(path, flags); }
static int mshv_libc_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static void *mshv_libc_mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
{
	return mmap(addr, length, prot, flags, fd, (off_t)offset);
}
static int mshv_libc_munmap(void *addr, size_t length) { return munmap(addr, length); }
static int mshv_libc_close(int fd) { return close(fd); }

static struct mshv_kernel_table mshv_kernel = {
	mshv_libc_open, mshv_libc_ioctl, mshv_libc_mmap, mshv_libc_munmap, mshv_libc_close,
};

static struct mshv_kernel_table *mshv_kernel_table(void) { return &mshv_kernel; }

static int mshv_kernel_use_libc(void)
{
	mshv_kernel.open = mshv_libc_open;
	mshv_kernel.ioctl = mshv_libc_ioctl;
	mshv_kernel.mmap = mshv_libc_mmap;
	mshv_kernel.munmap = mshv_libc_munmap;
	mshv_kernel.close = mshv_libc_close;
	return 0;
}

/* Point the table at a library's mshv_emu_{open,ioctl,mmap,munmap,close}. */
static int mshv_kernel_use_library(const char *path, char *err, size_t errlen)
{
	static const char *const names[5] = {
		"mshv_emu_open", "mshv_emu_ioctl", "mshv_emu_mmap", "mshv_emu_munmap", "mshv_emu_close",
	};
	void *syms[5];
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	int i;

	if (!handle) {
		snprintf(err, errlen, "%s", dlerror());
		return -1;
	}
	for (i = 0; i < 5; i++) {
		syms[i] = dlsym(handle, names[i]);
		if (!syms[i]) {
			snprintf(err, errlen, "%s: no symbol %s", path, names[i]);
			return -1;
		}
	}
	mshv_kernel.open = (int (*)(const char *, int))syms[0];
	mshv_kernel.ioctl = (int (*)(int, unsigned long, void *))syms[1];
	mshv_kernel.mmap = (void *(*)(void *, size_t, int, int, int, long))syms[2];
	mshv_kernel.munmap = (int (*)(void *, size_t))syms[3];
	mshv_kernel.close = (int (*)(int))syms[4];
	return 0;
}

static int mshv_open(const char *path, int flags) { return mshv_kernel.open(path, flags); }
static int mshv_ioctl(int fd, unsigned long request, void *arg)
{
	return mshv_kernel.ioctl(fd, request, arg);
}
static void *mshv_mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
{
	return mshv_kernel.mmap(addr, length, prot, flags, fd, offset);
}
static int mshv_munmap(void *addr, size_t length) { return mshv_kernel.munmap(addr, length); }
static int mshv_close(int fd) { return mshv_kernel.close(fd); }

/*
 * MSHV_SET_GUEST_MEMORY with the struct filled in C (reserved bytes zero):
 * the benchmarked map path, one cffi call with integer arguments.
 */
static int mshv_set_guest_memory(int fd, uint64_t size, uint64_t guest_pfn,
				uint64_t userspace_addr, uint8_t flags)
{
	struct mshv_user_mem_region region;

	memset(&region, 0, sizeof(region));
	region.size = size;
	region.guest_pfn = guest_pfn;
	region.userspace_addr = userspace_addr;
	region.flags = flags;
	return mshv_kernel.ioctl(fd, MSHV_SET_GUEST_MEMORY, &region);
}

/* Guest memory backing: not /dev/mshv calls, so they go to libc directly. */
static int mshv_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }
static int mshv_ftruncate(int fd, long length) { return ftruncate(fd, (off_t)length); }
static int mshv_madvise(void *addr, size_t length, int advice) { return madvise(addr, length, advice); }
"""
