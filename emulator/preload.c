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
#include <linux/close_range.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/uio.h>

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
 * close_range/closefrom close our fds too: their entries go first (as in
 * close()), so a number reused at once is never taken for the old handle.
 * CLOSE_RANGE_CLOEXEC closes nothing.
 */
EMU_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	if (first <= last && !(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) &&
	    !(flags & CLOSE_RANGE_CLOEXEC))
		emu_fd_remove_range(first, last);
	return (int)syscall(SYS_close_range, first, last, flags);
}

EMU_EXPORT void closefrom(int lowfd)
{
	void (*next)(int) = (void (*)(int))dlsym(RTLD_NEXT, "closefrom");

	if (lowfd >= 0)
		emu_fd_remove_range((unsigned int)lowfd, ~0u);
	if (next)
		next(lowfd);
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

/*
 * Ordinary file calls on our fds. The kernel's files have no read, write,
 * fsync or fallocate in their fops (mshv_dev_fops, mshv_partition_fops,
 * mshv_vp_fops; llseek is noop_llseek), so the VFS answers for them:
 * - read/write (vfs_read, vfs_write, vfs_readv, vfs_writev): EBADF without
 *   FMODE_READ/FMODE_WRITE, else EINVAL (no FMODE_CAN_READ/CAN_WRITE);
 * - pread/pwrite/preadv/pwritev (ksys_pread64, do_preadv): EINVAL for a
 *   negative position, then ESPIPE on the anon_inode files, which get no
 *   FMODE_PREAD/FMODE_PWRITE; /dev/mshv, opened through do_dentry_open, has
 *   them and answers as read/write;
 * - lseek: noop_llseek returns f_pos, which stays 0; a whence past SEEK_MAX
 *   is EINVAL (ksys_lseek);
 * - ftruncate: EINVAL (do_ftruncate: not a regular file);
 * - fallocate: EINVAL for offset < 0 or len <= 0, EBADF without FMODE_WRITE,
 *   else ENODEV (vfs_fallocate: neither S_ISREG nor S_ISBLK);
 * - fsync/fdatasync: EINVAL (vfs_fsync_range without ->fsync).
 * Other fds go to the next definition (glibc), so cancellation points and
 * fortify checks stay glibc's. (The memfds behind our fds have their size
 * sealed, so a raw system call cannot pull pages from under us either.)
 */
#define EMU_NEXT(fn)								\
	({									\
		static _Atomic(__typeof__(&fn)) __next;				\
		__typeof__(&fn) __fn = atomic_load_explicit(&__next, memory_order_relaxed); \
		if (!__fn) {							\
			__fn = (__typeof__(&fn))dlsym(RTLD_NEXT, #fn);		\
			atomic_store_explicit(&__next, __fn, memory_order_relaxed); \
		}								\
		__fn;								\
	})

static long emu_fail(int err)
{
	errno = err;
	return -1;
}

/* vfs_read / vfs_write on one of our files (fmode >= 0). */
static long emu_file_rw(int fmode, unsigned int need)
{
	return emu_fail(((unsigned int)fmode & need) ? EINVAL : EBADF);
}

/* ksys_pread64 / ksys_pwrite64 / do_preadv / do_pwritev. */
static long emu_file_prw(enum emu_kind kind, int fmode, unsigned int need, long long pos)
{
	if (pos < 0)
		return emu_fail(EINVAL);
	if (kind != EMU_DEVICE)
		return emu_fail(ESPIPE);
	return emu_file_rw(fmode, need);
}

/* The next definition of fn, or fail with ENOSYS (none: a static libc). */
#define EMU_CALL_NEXT(fn, ...)							\
	({									\
		__typeof__(&fn) __n = EMU_NEXT(fn);				\
		__n ? __n(__VA_ARGS__) : (__typeof__(__n(__VA_ARGS__)))emu_fail(ENOSYS); \
	})

/* read-like: (fd, ...) with no position */
#define EMU_RW(ret_t, fn, need, params, ...)					\
	EMU_EXPORT ret_t fn params						\
	{									\
		enum emu_kind kind;						\
		int fmode = emu_fd_fmode(fd, &kind);				\
									\
		if (fmode >= 0)							\
			return (ret_t)emu_file_rw(fmode, need);			\
		return EMU_CALL_NEXT(fn, __VA_ARGS__);				\
	}

/* pread-like: a position */
#define EMU_PRW(ret_t, fn, need, params, ...)					\
	EMU_EXPORT ret_t fn params						\
	{									\
		enum emu_kind kind;						\
		int fmode = emu_fd_fmode(fd, &kind);				\
									\
		if (fmode >= 0)							\
			return (ret_t)emu_file_prw(kind, fmode, need, pos);	\
		return EMU_CALL_NEXT(fn, __VA_ARGS__);				\
	}

/* preadv2/pwritev2: position -1 means the file position (do_preadv2). */
#define EMU_PRW2(ret_t, fn, need, params, ...)					\
	EMU_EXPORT ret_t fn params						\
	{									\
		enum emu_kind kind;						\
		int fmode = emu_fd_fmode(fd, &kind);				\
									\
		if (fmode >= 0)							\
			return (ret_t)(pos == -1 ? emu_file_rw(fmode, need)	\
				       : emu_file_prw(kind, fmode, need, pos));	\
		return EMU_CALL_NEXT(fn, __VA_ARGS__);				\
	}

ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t pos, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t pos, size_t buflen);

#define R EMU_FMODE_READ
#define W EMU_FMODE_WRITE
EMU_RW(ssize_t, read, R, (int fd, void *buf, size_t n), fd, buf, n)
EMU_RW(ssize_t, __read_chk, R, (int fd, void *buf, size_t n, size_t buflen), fd, buf, n, buflen)
EMU_RW(ssize_t, write, W, (int fd, const void *buf, size_t n), fd, buf, n)
EMU_RW(ssize_t, readv, R, (int fd, const struct iovec *iov, int n), fd, iov, n)
EMU_RW(ssize_t, writev, W, (int fd, const struct iovec *iov, int n), fd, iov, n)
EMU_PRW(ssize_t, pread, R, (int fd, void *buf, size_t n, off_t pos), fd, buf, n, pos)
EMU_PRW(ssize_t, pread64, R, (int fd, void *buf, size_t n, off64_t pos), fd, buf, n, pos)
EMU_PRW(ssize_t, __pread_chk, R, (int fd, void *buf, size_t n, off_t pos, size_t buflen),
	fd, buf, n, pos, buflen)
EMU_PRW(ssize_t, __pread64_chk, R, (int fd, void *buf, size_t n, off64_t pos, size_t buflen),
	fd, buf, n, pos, buflen)
EMU_PRW(ssize_t, pwrite, W, (int fd, const void *buf, size_t n, off_t pos), fd, buf, n, pos)
EMU_PRW(ssize_t, pwrite64, W, (int fd, const void *buf, size_t n, off64_t pos), fd, buf, n, pos)
EMU_PRW(ssize_t, preadv, R, (int fd, const struct iovec *iov, int n, off_t pos), fd, iov, n, pos)
EMU_PRW(ssize_t, preadv64, R, (int fd, const struct iovec *iov, int n, off64_t pos), fd, iov, n, pos)
EMU_PRW(ssize_t, pwritev, W, (int fd, const struct iovec *iov, int n, off_t pos), fd, iov, n, pos)
EMU_PRW(ssize_t, pwritev64, W, (int fd, const struct iovec *iov, int n, off64_t pos), fd, iov, n, pos)
EMU_PRW2(ssize_t, preadv2, R, (int fd, const struct iovec *iov, int n, off_t pos, int flags),
	 fd, iov, n, pos, flags)
EMU_PRW2(ssize_t, preadv64v2, R, (int fd, const struct iovec *iov, int n, off64_t pos, int flags),
	 fd, iov, n, pos, flags)
EMU_PRW2(ssize_t, pwritev2, W, (int fd, const struct iovec *iov, int n, off_t pos, int flags),
	 fd, iov, n, pos, flags)
EMU_PRW2(ssize_t, pwritev64v2, W, (int fd, const struct iovec *iov, int n, off64_t pos, int flags),
	 fd, iov, n, pos, flags)
#undef R
#undef W

/* ksys_lseek + noop_llseek */
#define EMU_LSEEK(fn, off_type)							\
	EMU_EXPORT off_type fn(int fd, off_type off, int whence)		\
	{									\
		enum emu_kind kind;						\
									\
		if (emu_fd_fmode(fd, &kind) >= 0)				\
			return (unsigned int)whence > SEEK_HOLE ? (off_type)emu_fail(EINVAL) : 0; \
		return EMU_CALL_NEXT(fn, fd, off, whence);			\
	}
EMU_LSEEK(lseek, off_t)
EMU_LSEEK(lseek64, off64_t)

/* do_ftruncate: our files are not regular files. */
#define EMU_FTRUNCATE(fn, off_type)						\
	EMU_EXPORT int fn(int fd, off_type len)					\
	{									\
		enum emu_kind kind;						\
									\
		if (emu_fd_fmode(fd, &kind) >= 0)				\
			return (int)emu_fail(EINVAL);				\
		return EMU_CALL_NEXT(fn, fd, len);				\
	}
EMU_FTRUNCATE(ftruncate, off_t)
EMU_FTRUNCATE(ftruncate64, off64_t)

/* vfs_fallocate's answer for one of our files (an errno), 0 if fd is not ours. */
static int emu_fallocate_errno(int fd, int mode, long long off, long long len)
{
	enum emu_kind kind;
	int fmode = emu_fd_fmode(fd, &kind);

	if (fmode < 0)
		return 0;
	if (off < 0 || len <= 0)
		return EINVAL;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return EOPNOTSUPP;
	if (!((unsigned int)fmode & EMU_FMODE_WRITE))
		return EBADF;
	return ENODEV;
}

#define EMU_FALLOCATE(fn, off_type)						\
	EMU_EXPORT int fn(int fd, int mode, off_type off, off_type len)		\
	{									\
		int err = emu_fallocate_errno(fd, mode, off, len);		\
									\
		if (err)							\
			return (int)emu_fail(err);				\
		return EMU_CALL_NEXT(fn, fd, mode, off, len);			\
	}
EMU_FALLOCATE(fallocate, off_t)
EMU_FALLOCATE(fallocate64, off64_t)

/* posix_fallocate returns the error (glibc: the fallocate system call's). */
#define EMU_POSIX_FALLOCATE(fn, off_type)					\
	EMU_EXPORT int fn(int fd, off_type off, off_type len)			\
	{									\
		int err = emu_fallocate_errno(fd, 0, off, len);			\
		__typeof__(&fn) next;						\
									\
		if (err)							\
			return err;						\
		next = EMU_NEXT(fn);						\
		return next ? next(fd, off, len) : ENOSYS;			\
	}
EMU_POSIX_FALLOCATE(posix_fallocate, off_t)
EMU_POSIX_FALLOCATE(posix_fallocate64, off64_t)

/* vfs_fsync_range: no ->fsync */
#define EMU_FSYNC(fn)								\
	EMU_EXPORT int fn(int fd)						\
	{									\
		enum emu_kind kind;						\
									\
		if (emu_fd_fmode(fd, &kind) >= 0)				\
			return (int)emu_fail(EINVAL);				\
		return EMU_CALL_NEXT(fn, fd);					\
	}
EMU_FSYNC(fsync)
EMU_FSYNC(fdatasync)

/*
 * Signal handlers. SIGSEGV/SIGBUS: the emulator's fault handler (uaccess.c)
 * turns a fault in a copy from or to a client pointer into EFAULT, so it must
 * stay installed when the client installs its own. The client's handler
 * becomes the one every other fault is handed to, and is what these calls
 * report. Every other handler is wrapped so that a signal landing in RUN_VP's
 * own code ends it with EINTR (signals.c); these calls report the client's.
 */
EMU_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int ret;

	if (emu_fault_sigaction(sig, act, old))
		return 0;
	if (emu_signals_sigaction(sig, act, old, &ret))
		return ret;
	return EMU_CALL_NEXT(sigaction, sig, act, old);
}

/* signal()/bsd_signal(): BSD semantics (glibc __bsd_signal); sysv_signal(): one-shot. */
static bool emu_signal(int sig, sighandler_t handler, int flags, bool mask_self, sighandler_t *old)
{
	struct sigaction act, prev;
	int ret;

	if (handler == SIG_ERR || sig <= 0 || sig >= _NSIG)
		return false;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (mask_self)
		sigaddset(&act.sa_mask, sig);
	if (emu_fault_sigaction(sig, &act, &prev)) {
		*old = prev.sa_handler;
		return true;
	}
	if (!emu_signals_sigaction(sig, &act, &prev, &ret))
		return false;
	*old = ret < 0 ? SIG_ERR : prev.sa_handler;
	return true;
}

#define EMU_SIGNAL(fn, flags, mask_self)					\
	EMU_EXPORT sighandler_t fn(int sig, sighandler_t handler)		\
	{									\
		sighandler_t old;						\
		__typeof__(&fn) next;						\
									\
		if (emu_signal(sig, handler, flags, mask_self, &old))		\
			return old;						\
		next = EMU_NEXT(fn);						\
		if (!next) {							\
			errno = ENOSYS;						\
			return SIG_ERR;						\
		}								\
		return next(sig, handler);					\
	}

sighandler_t bsd_signal(int sig, sighandler_t handler);
EMU_SIGNAL(signal, SA_RESTART, true)
EMU_SIGNAL(bsd_signal, SA_RESTART, true)
EMU_SIGNAL(sysv_signal, SA_RESETHAND | SA_NODEFER, false)
