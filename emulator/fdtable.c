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
 *
 * Unlike the kernel, we do not own the fd table: a client can close or
 * replace one of our fds where no interposer sees it (syscall(SYS_close),
 * close_range, a raw dup2/dup3), and a later open() gets the same number.
 * So every entry records the identity of the file it was installed for, and
 * a lookup checks that the fd still names that file: a stale entry is
 * dropped and the fd is not ours.
 *
 * The identity is a file position: at install the handle's memfd is given
 * one of its own (a tag), far past its end, where nothing moves it (a read
 * there returns 0 bytes, a write would grow the file, which its seals
 * refuse), and a lookup reads the position back: one lseek, the cheapest
 * system call that names the open file (cheaper than an fstat, which fills
 * a whole struct stat). The position belongs to the open file description,
 * as the handle does: dup'ed fds share it, and any other file that took the
 * number holds its own (a pipe or a socket has none).
 */
#include <stdlib.h>

#include "emu.h"

static pthread_rwlock_t emu_fd_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct emu_file **emu_files;	/* indexed by fd */
static size_t emu_files_cap;

/*
 * Which fds have an entry, readable without the lock: read(), write() and
 * close() on every fd of an LD_PRELOAD client come here, from signal handlers
 * too (a self-pipe write), where taking the lock could deadlock against the
 * thread the signal interrupted. An fd whose bit is clear is not ours. Bits
 * change under the write lock; fds past the bitmap are counted instead.
 */
#define EMU_FD_BITS 65536
static _Atomic uint64_t emu_fd_bits[EMU_FD_BITS / 64];
static atomic_long emu_fd_high;		/* entries at fds >= EMU_FD_BITS */

/*
 * The process the table belongs to. A child of vfork() (posix_spawn,
 * Python's subprocess) runs in the parent's memory with its own fds: its
 * close_range()/close()/dup2() of inherited fds must leave the parent's
 * table alone. A child of fork() gets an empty table of its own (see
 * emu_fd_atfork_child): the parent's KVM VMs are not usable from another
 * process, and releasing them there could wait for locks that other parent
 * threads held at the fork.
 */
static atomic_int emu_fd_owner;
static pthread_once_t emu_fd_atfork_once = PTHREAD_ONCE_INIT;

bool emu_fd_in_child(void)
{
	int owner = atomic_load_explicit(&emu_fd_owner, memory_order_relaxed);

	return owner && owner != (int)syscall(SYS_getpid);
}

/*
 * The parent's handles are left behind, not released: their fds are plain
 * memfds here. The lock is made anew: another parent thread may have held it.
 */
static void emu_fd_atfork_child(void)
{
	static const pthread_rwlock_t unlocked = PTHREAD_RWLOCK_INITIALIZER;

	memcpy(&emu_fd_lock, &unlocked, sizeof(unlocked));
	emu_files = NULL;
	emu_files_cap = 0;
	for (size_t i = 0; i < EMU_FD_BITS / 64; i++)
		atomic_store(&emu_fd_bits[i], 0);
	atomic_store(&emu_fd_high, 0);
	atomic_store(&emu_fd_owner, (int)syscall(SYS_getpid));
}

static void emu_fd_atfork_init(void)
{
	atomic_store(&emu_fd_owner, (int)syscall(SYS_getpid));
	pthread_atfork(NULL, NULL, emu_fd_atfork_child);
}

static bool emu_fd_maybe(int fd)
{
	if (fd < 0)
		return false;
	if (fd >= EMU_FD_BITS)
		return atomic_load_explicit(&emu_fd_high, memory_order_relaxed) > 0;
	return atomic_load_explicit(&emu_fd_bits[fd / 64], memory_order_relaxed) &
	       (1ull << (fd % 64));
}

/* fd's entry went from was to now (NULL or not); caller holds the write lock. */
static void emu_fd_mark(int fd, const struct emu_file *was, const struct emu_file *now)
{
	if (!was == !now)
		return;
	if (fd >= EMU_FD_BITS)
		atomic_fetch_add(&emu_fd_high, now ? 1 : -1);
	else if (now)
		atomic_fetch_or(&emu_fd_bits[fd / 64], 1ull << (fd % 64));
	else
		atomic_fetch_and(&emu_fd_bits[fd / 64], ~(1ull << (fd % 64)));
}

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
	emu_fd_mark(fd, *old, f);
	pthread_rwlock_unlock(&emu_fd_lock);
	return 0;
}

#define EMU_FD_TAG_BASE (1ULL << 62)
static _Atomic uint64_t emu_fd_tags;

/* Does fd name the file tagged `tag` (its file position)? */
static bool emu_fd_is(int fd, uint64_t tag)
{
	long pos = syscall(SYS_lseek, fd, 0L, SEEK_CUR);

	return pos >= 0 && (uint64_t)pos == tag;
}

int emu_fd_install(int fd, struct emu_file *f)
{
	struct emu_file *old;
	int ret;

	f->tag = EMU_FD_TAG_BASE + atomic_fetch_add(&emu_fd_tags, 1);
	if (syscall(SYS_lseek, fd, (long)f->tag, SEEK_SET) < 0)
		return -1;
	pthread_once(&emu_fd_atfork_once, emu_fd_atfork_init);
	ret = emu_fd_set(fd, f, &old);
	if (old)
		emu_fd_put(old);
	return ret;
}

/* Drop fd's entry if it is still f (a stale one); the table's reference goes. */
static void emu_fd_drop_stale(int fd, struct emu_file *f)
{
	bool dropped = false;

	if (emu_fd_in_child())
		return;
	pthread_rwlock_wrlock(&emu_fd_lock);
	if ((size_t)fd < emu_files_cap && emu_files[fd] == f) {
		emu_files[fd] = NULL;
		emu_fd_mark(fd, f, NULL);
		dropped = true;
	}
	pthread_rwlock_unlock(&emu_fd_lock);
	if (dropped)
		emu_fd_put(f);
}

struct emu_file *emu_fd_get(int fd)
{
	struct emu_file *f = NULL;
	int err;

	if (!emu_fd_maybe(fd))
		return NULL;
	pthread_rwlock_rdlock(&emu_fd_lock);
	if ((size_t)fd < emu_files_cap) {
		f = emu_files[fd];
		if (f)
			atomic_fetch_add(&f->refs, 1);
	}
	pthread_rwlock_unlock(&emu_fd_lock);
	if (!f)
		return NULL;
	/*
	 * Does fd still name f's file? (The reference we hold keeps f alive, not
	 * the fd: like fdget, the call goes on with f even if fd is closed now.)
	 */
	err = errno;
	if (emu_fd_is(fd, f->tag)) {
		errno = err;
		return f;
	}
	errno = err;
	emu_fd_drop_stale(fd, f);
	emu_fd_put(f);
	return NULL;
}

int emu_fd_fmode(int fd, enum emu_kind *kind)
{
	struct emu_file *f = emu_fd_get(fd);
	int fmode;

	if (!f)
		return -1;
	*kind = f->kind;
	fmode = (int)f->fmode;
	emu_fd_put(f);
	return fmode;
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

	if (!emu_fd_maybe(fd) || emu_fd_in_child())
		return NULL;
	pthread_rwlock_wrlock(&emu_fd_lock);
	if ((size_t)fd < emu_files_cap) {
		f = emu_files[fd];
		emu_files[fd] = NULL;
		emu_fd_mark(fd, f, NULL);
	}
	pthread_rwlock_unlock(&emu_fd_lock);
	return f;
}

/*
 * close_range/closefrom: every entry in [first, last] leaves the table, and
 * its reference is put (the caller closes the fds after). Not in a vfork
 * child: the table is the parent's.
 */
void emu_fd_remove_range(unsigned int first, unsigned int last)
{
	size_t end;

	if (emu_fd_in_child())
		return;

	pthread_rwlock_rdlock(&emu_fd_lock);
	end = emu_files_cap;
	pthread_rwlock_unlock(&emu_fd_lock);
	if (end == 0 || first >= end)
		return;
	if (last >= end)
		last = (unsigned int)(end - 1);
	for (size_t fd = first; fd <= last; fd++) {
		if (fd < EMU_FD_BITS && fd % 64 == 0 && fd + 63 <= last &&
		    !atomic_load_explicit(&emu_fd_bits[fd / 64], memory_order_relaxed)) {
			fd += 63;	/* no entry in this word */
			continue;
		}
		emu_fd_put(emu_fd_remove((int)fd));
	}
}

/*
 * Drop every entry whose fd no longer names its file: a handle closed by a
 * raw system call is released at the latest when the next handle is made,
 * even if its number is never looked up again.
 */
void emu_fd_sweep(void)
{
	size_t end;

	pthread_rwlock_rdlock(&emu_fd_lock);
	end = emu_files_cap;
	pthread_rwlock_unlock(&emu_fd_lock);
	for (size_t fd = 0; fd < end; fd++) {
		if (fd < EMU_FD_BITS && fd % 64 == 0 &&
		    !atomic_load_explicit(&emu_fd_bits[fd / 64], memory_order_relaxed)) {
			fd += 63;
			continue;
		}
		emu_fd_put(emu_fd_get((int)fd));	/* a stale entry is dropped here */
	}
}

/*
 * After a successful dup/dup2/dup3/F_DUPFD: newfd now names what oldfd names.
 * dup2/dup3 onto one of our fds closed that fd first, so its entry goes too.
 */
int emu_fd_dup(int oldfd, int newfd)
{
	struct emu_file *f, *old;
	int ret;

	if (oldfd == newfd || !(emu_fd_maybe(oldfd) || emu_fd_maybe(newfd)) || emu_fd_in_child())
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
