/* SPDX-License-Identifier: MIT */
/*
 * Client pointers and anonymous handle files.
 *
 * copy_from_user/copy_to_user: the kernel returns EFAULT for a pointer it
 * cannot read or write. We get the same without ever faulting by asking the
 * kernel to do the copy for us: process_vm_readv/writev on our own pid fails
 * with EFAULT on an unmapped (or wrongly protected) address.
 */
#include <sys/mman.h>
#include <sys/uio.h>

#include "emu.h"

static int emu_copy_user(void *local, void *remote, size_t len, bool to_user)
{
	struct iovec liov = { .iov_base = local, .iov_len = len };
	struct iovec riov = { .iov_base = remote, .iov_len = len };
	ssize_t n;

	if (len == 0)
		return 0;
	if (!remote) {
		errno = EFAULT;
		return -1;
	}
	do {
		if (to_user)
			n = process_vm_writev(getpid(), &liov, 1, &riov, 1, 0);
		else
			n = process_vm_readv(getpid(), &liov, 1, &riov, 1, 0);
	} while (n < 0 && errno == EINTR);
	/* A partial copy means the range ran into a hole: EFAULT, as copy_*_user. */
	if (n < 0 || (size_t)n != len) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

int emu_copy_from_user(void *dst, const void *usrc, size_t len)
{
	return emu_copy_user(dst, (void *)usrc, len, false);
}

int emu_copy_to_user(void *udst, const void *src, size_t len)
{
	return emu_copy_user((void *)src, udst, len, true);
}

/*
 * A memfd stands in for an anon_inode file: a real fd, so close(), dup()
 * and fork/exec behave, and O_CLOEXEC like anon_inode_getfd(O_CLOEXEC).
 */
int emu_memfd(const char *name, size_t size)
{
	int fd, err;

	fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (size && syscall(SYS_ftruncate, fd, (long)size) < 0) {
		err = errno;
		emu_sys_close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
