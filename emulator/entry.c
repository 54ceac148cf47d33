/* SPDX-License-Identifier: MIT */
/*
 * Library side (the emulator's own plumbing; no kernel counterpart).
 *
 * The emulator's exported table: open, ioctl, mmap, munmap, close.
 *
 * The Python binding puts these in its kernel table; preload.c calls them
 * from the libc interposers. Only "/dev/mshv" and the fds we hand out are
 * ours; everything else goes straight to the system call.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "emu.h"

static const char emu_dev_path[] = "/dev/mshv";

/*
 * Is path "/dev/mshv"? The path is a client pointer, so read it through
 * emu_copy_from_user: a string that ends right before a hole cannot be read
 * in one go, and then it is not ours (the real openat reports EFAULT for a
 * bad pointer).
 */
static bool emu_is_dev_path(const char *path)
{
	char buf[sizeof(emu_dev_path)];

	if (emu_copy_from_user(buf, path, sizeof(buf)) < 0)
		return false;
	return memcmp(buf, emu_dev_path, sizeof(buf)) == 0;
}

EMU_EXPORT int mshv_emu_open(const char *path, int flags)
{
	int fd;

	if (!emu_is_dev_path(path))
		return emu_sys_openat(AT_FDCWD, path, flags, 0);
	emu_fd_sweep();		/* release handles closed behind our back */
	fd = emu_dev_open(flags);
	if (fd < 0)
		return -1;
	/* mshv_dev_open checks nothing; O_CLOEXEC is the opener's choice. */
	if (!(flags & O_CLOEXEC))
		syscall(SYS_fcntl, fd, F_SETFD, 0);
	return fd;
}

EMU_EXPORT int mshv_emu_ioctl(int fd, unsigned long req, void *arg)
{
	/* RUN_VP: a signal from here on ends it with EINTR (signals.c) */
	struct emu_run_held held;
	uint64_t caller = req == MSHV_RUN_VP ? emu_run_signals_begin(&held) : 0;
	struct emu_file *f = emu_fd_get(fd);
	int ret;

	if (!f) {
		if (req == MSHV_RUN_VP)
			emu_run_signals_end(caller, &held);
		return emu_sys_ioctl(fd, req, arg);
	}
	if (req == MSHV_CREATE_PARTITION || req == MSHV_CREATE_VP)
		emu_fd_sweep();	/* release handles closed behind our back */
	switch (f->kind) {
	case EMU_DEVICE:
		ret = emu_dev_ioctl(req, arg);
		break;
	case EMU_PARTITION:
		ret = emu_partition_ioctl(f->pt, req, arg);
		break;
	case EMU_VP:
		ret = emu_vp_ioctl(f->vp, req, arg);
		break;
	default:
		errno = ENOTTY;
		ret = -1;
	}
	emu_fd_put(f);		/* keeps errno */
	if (req == MSHV_RUN_VP)
		emu_run_signals_end(caller, &held);	/* keeps errno */
	return ret;
}

EMU_EXPORT void *mshv_emu_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	struct emu_file *f;
	void *ret;

	if (flags & MAP_ANONYMOUS)
		return emu_sys_mmap(addr, len, prot, flags, fd, off);
	f = emu_fd_get(fd);
	if (!f)
		return emu_sys_mmap(addr, len, prot, flags, fd, off);
	if (f->kind == EMU_VP) {
		ret = emu_vp_mmap(f->vp, addr, len, prot, flags, off);
	} else {
		/* /dev/mshv and partition fds have no mmap in their fops. */
		errno = ENODEV;
		ret = MAP_FAILED;
	}
	emu_fd_put(f);
	return ret;
}

EMU_EXPORT int mshv_emu_munmap(void *addr, size_t len)
{
	return emu_sys_munmap(addr, len);
}

/*
 * close(): the fd leaves the table at once; the handle's release runs when
 * its last reference is gone (other dup'ed fds, calls still in flight), as
 * the kernel's fput does.
 */
EMU_EXPORT int mshv_emu_close(int fd)
{
	struct emu_file *f = emu_fd_remove(fd);
	int ret;

	ret = emu_sys_close(fd);
	emu_fd_put(f);		/* keeps errno */
	return ret;
}

/* The file's release: mshv_partition_release / mshv_vp_release. */
void emu_file_release(struct emu_file *f)
{
	switch (f->kind) {
	case EMU_PARTITION:
		emu_partition_release(f->pt);
		emu_partition_put(f->pt);
		break;
	case EMU_VP:
		/* mshv_vp_release: the VP lives on until the partition goes. */
		emu_partition_put(f->vp->pt);
		break;
	default:
		break;
	}
	free(f);
}
