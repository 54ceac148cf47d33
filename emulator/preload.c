/* SPDX-License-Identifier: MIT */
/*
 * Library side (the emulator's own plumbing; no kernel counterpart).
 *
 * LD_PRELOAD interposers: any /dev/mshv client (C, Rust, QEMU) runs on the
 * emulator. Each one hands our paths and fds to the entry points and passes
 * everything else to the system call untouched.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>

#include "emu.h"

int mshv_emu_open(const char *path, int flags);
int mshv_emu_ioctl(int fd, unsigned long req, void *arg);
void *mshv_emu_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int mshv_emu_munmap(void *addr, size_t len);
int mshv_emu_close(int fd);

/* open(2) reads a mode only when it may create a file. */
static bool emu_wants_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/*
 * Is path "/dev/mshv"? (Absolute, so dirfd does not matter.) The path is a
 * client pointer: an unreadable one is not ours, and the real openat gives
 * the kernel's EFAULT.
 */
static bool emu_is_dev_path(const char *path)
{
	static const char dev[] = "/dev/mshv";
	char buf[sizeof(dev)];

	if (emu_copy_from_user(buf, path, sizeof(buf)) < 0)
		return false;
	return memcmp(buf, dev, sizeof(buf)) == 0;
}

static int emu_openat(int dirfd, const char *path, int flags, int mode)
{
	if (emu_is_dev_path(path))
		return mshv_emu_open(path, flags);
	return emu_sys_openat(dirfd, path, flags, mode);
}

#define EMU_VA_MODE(flags, last)					\
	({								\
		int __mode = 0;						\
		if (emu_wants_mode(flags)) {				\
			va_list __ap;					\
			va_start(__ap, last);				\
			__mode = va_arg(__ap, int);			\
			va_end(__ap);					\
		}							\
		__mode;							\
	})

EMU_EXPORT int open(const char *path, int flags, ...)
{
	return emu_openat(AT_FDCWD, path, flags, EMU_VA_MODE(flags, flags));
}

EMU_EXPORT int open64(const char *path, int flags, ...)
{
	return emu_openat(AT_FDCWD, path, flags, EMU_VA_MODE(flags, flags));
}

EMU_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	return emu_openat(dirfd, path, flags, EMU_VA_MODE(flags, flags));
}

EMU_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	return emu_openat(dirfd, path, flags, EMU_VA_MODE(flags, flags));
}

/* _FORTIFY_SOURCE variants (no mode: glibc rejects O_CREAT there). */
EMU_EXPORT int __open_2(const char *path, int flags)
{
	return emu_openat(AT_FDCWD, path, flags, 0);
}

EMU_EXPORT int __open64_2(const char *path, int flags)
{
	return emu_openat(AT_FDCWD, path, flags, 0);
}

EMU_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return emu_openat(dirfd, path, flags, 0);
}

EMU_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return mshv_emu_ioctl(fd, req, arg);
}

EMU_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mshv_emu_mmap(addr, len, prot, flags, fd, off);
}

EMU_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mshv_emu_mmap(addr, len, prot, flags, fd, off);
}

EMU_EXPORT int munmap(void *addr, size_t len)
{
	return mshv_emu_munmap(addr, len);
}

EMU_EXPORT int close(int fd)
{
	return mshv_emu_close(fd);
}

EMU_EXPORT int dup(int oldfd)
{
	int fd = (int)syscall(SYS_dup, oldfd);

	if (fd >= 0 && emu_fd_dup(oldfd, fd) < 0) {
		int err = errno;

		emu_sys_close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static int emu_dup3(int oldfd, int newfd, int flags, bool is_dup2)
{
	int fd;

	if (is_dup2 && oldfd == newfd)	/* dup2 on itself only checks oldfd */
		return (int)syscall(SYS_fcntl, oldfd, F_GETFD) < 0 ? -1 : newfd;
	fd = (int)syscall(SYS_dup3, oldfd, newfd, flags);
	if (fd >= 0 && emu_fd_dup(oldfd, fd) < 0) {
		int err = errno;

		mshv_emu_close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

EMU_EXPORT int dup2(int oldfd, int newfd)
{
	return emu_dup3(oldfd, newfd, 0, true);
}

EMU_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return emu_dup3(oldfd, newfd, flags, false);
}

/*
 * fcntl: only F_DUPFD/F_DUPFD_CLOEXEC concern us. Every other command goes to
 * the next fcntl (glibc), which knows each command's argument type and its
 * quirks (F_GETOWN, F_SETLKW cancellation); the argument is read as a
 * pointer-sized value, as glibc itself does.
 */
typedef int (*emu_fcntl_fn)(int, int, ...);

static int emu_fcntl(bool is64, int fd, int cmd, void *arg)
{
	static _Atomic(emu_fcntl_fn) next[2];
	emu_fcntl_fn fn;
	int newfd;

	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
		newfd = (int)syscall(SYS_fcntl, fd, cmd, (long)(int)(long)arg);
		if (newfd >= 0 && emu_fd_dup(fd, newfd) < 0) {
			int err = errno;

			emu_sys_close(newfd);
			errno = err;
			return -1;
		}
		return newfd;
	}
	fn = atomic_load(&next[is64]);
	if (!fn) {
		fn = (emu_fcntl_fn)dlsym(RTLD_NEXT, is64 ? "fcntl64" : "fcntl");
		if (!fn)
			return (int)syscall(SYS_fcntl, fd, cmd, arg);
		atomic_store(&next[is64], fn);
	}
	return fn(fd, cmd, arg);
}

EMU_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return emu_fcntl(false, fd, cmd, arg);
}

EMU_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return emu_fcntl(true, fd, cmd, arg);
}
