/* SPDX-License-Identifier: MIT */
/*
 * Driver side (the files and references the kernel keeps per fd).
 *
 * fd -> handle table.
 *
 * The kernel finds a file through the fd table and holds a reference for the
 * length of the system call (fdget/fdput); the file's release runs when the
 * last reference is gone. We do the same: the table owns one reference per
 * fd that names the handle (dup'ed fds share it), and every call in flight
 * holds one more. emu_file_release() (entry.c) runs at the last put.
 */
#include <stdlib.h>

#include "emu.h"

static pthread_rwlock_t emu_fd_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct emu_file **emu_files;	/* indexed by fd */
static size_t emu_files_cap;

/* Make room for fd; caller holds the write lock. */
static int emu_fd_grow(int fd)
{
	struct emu_file **files;
	size_t cap = emu_files_cap ? emu_files_cap : 64;

	while (cap <= (size_t)fd)
		cap *= 2;
	if (cap == emu_files_cap)
		return 0;
	files = realloc(emu_files, cap * sizeof(*files));
	if (!files) {
		errno = ENOMEM;
		return -1;
	}
	memset(files + emu_files_cap, 0, (cap - emu_files_cap) * sizeof(*files));
	emu_files = files;
	emu_files_cap = cap;
	return 0;
}

/*
 * Put f at fd. An entry already there is stale (its fd was closed behind our
 * back, e.g. by close_range or a raw syscall): the table's reference to it is
 * returned through *old so the caller can drop it outside the lock.
 */
static int emu_fd_set(int fd, struct emu_file *f, struct emu_file **old)
{
	*old = NULL;
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	pthread_rwlock_wrlock(&emu_fd_lock);
	if (emu_fd_grow(fd) < 0) {
		pthread_rwlock_unlock(&emu_fd_lock);
		return -1;
	}
	*old = emu_files[fd];
	emu_files[fd] = f;
	pthread_rwlock_unlock(&emu_fd_lock);
	return 0;
}

int emu_fd_install(int fd, struct emu_file *f)
{
	struct emu_file *old;
	int ret;

	ret = emu_fd_set(fd, f, &old);
	if (old)
		emu_fd_put(old);
	return ret;
}

struct emu_file *emu_fd_get(int fd)
{
	struct emu_file *f = NULL;

	if (fd < 0)
		return NULL;
	pthread_rwlock_rdlock(&emu_fd_lock);
	if ((size_t)fd < emu_files_cap) {
		f = emu_files[fd];
		if (f)
			atomic_fetch_add(&f->refs, 1);
	}
	pthread_rwlock_unlock(&emu_fd_lock);
	return f;
}

void emu_fd_put(struct emu_file *f)
{
	int err = errno;

	if (f && atomic_fetch_sub(&f->refs, 1) == 1)
		emu_file_release(f);
	errno = err;
}

struct emu_file *emu_fd_remove(int fd)
{
	struct emu_file *f = NULL;

	if (fd < 0)
		return NULL;
	pthread_rwlock_wrlock(&emu_fd_lock);
	if ((size_t)fd < emu_files_cap) {
		f = emu_files[fd];
		emu_files[fd] = NULL;
	}
	pthread_rwlock_unlock(&emu_fd_lock);
	return f;
}

/*
 * After a successful dup/dup2/dup3/F_DUPFD: newfd now names what oldfd names.
 * dup2/dup3 onto one of our fds closed that fd first, so its entry goes too.
 */
int emu_fd_dup(int oldfd, int newfd)
{
	struct emu_file *f, *old;
	int ret;

	if (oldfd == newfd)
		return 0;
	f = emu_fd_get(oldfd);		/* this reference becomes newfd's */
	if (!f) {
		old = emu_fd_remove(newfd);
		emu_fd_put(old);
		return 0;
	}
	ret = emu_fd_set(newfd, f, &old);
	if (ret < 0)
		emu_fd_put(f);
	emu_fd_put(old);
	return ret;
}
