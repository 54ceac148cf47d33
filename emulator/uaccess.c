/* SPDX-License-Identifier: MIT */
/*
 * Driver side (copy_from_user/copy_to_user, anon_inode files).
 *
 * Client pointers and anonymous handle files.
 *
 * copy_from_user/copy_to_user: the kernel returns EFAULT for a pointer it
 * cannot read or write, and so do we, without crashing: a guarded memcpy
 * (below), or process_vm_readv/writev on our own pid as a fallback, which
 * fails with EFAULT on an unmapped (or wrongly protected) address.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "emu.h"

/*
 * The fast path is a plain memcpy guarded against faults: a SIGSEGV/SIGBUS
 * handler, installed once, jumps back here when the faulting thread is
 * inside a guarded copy, and hands every other fault to the handler that was
 * there before (or to the default action). SA_NODEFER keeps the signal mask
 * untouched, so the jump needs no system call. A system call per copy
 * (process_vm_readv/writev) made an exit about three times as slow on a
 * nested host (guest memory reads for decoding are copies too); it remains
 * the fallback when the handler cannot be installed.
 *
 * The handler must stay ours: a client that installs its own SIGSEGV handler
 * afterwards would otherwise get the fault of a bad ioctl argument instead of
 * EFAULT. So the sigaction()/signal() interposers (preload.c) do not replace
 * it: they go through emu_fault_sigaction(), which makes the client's handler
 * the one faults outside a guarded copy are handed to, and reports it back
 * as the installed one. (A handler installed by a raw rt_sigaction system
 * call, or by a caller that does not reach the interposers, still wins.)
 */
typedef int (*emu_sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static __thread sigjmp_buf *emu_fault_jmp;
static struct sigaction emu_prev_segv, emu_prev_bus;	/* the client's view */
static pthread_once_t emu_fault_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t emu_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static emu_sigaction_fn emu_libc_sigaction;	/* the next sigaction, past our interposer */
static bool emu_fault_ready;

/* A fault outside a guarded copy: what the kernel would do with the client's action. */
static void emu_fault_chain(int sig, siginfo_t *info, void *ucontext)
{
	struct sigaction *slot = sig == SIGBUS ? &emu_prev_bus : &emu_prev_segv;
	struct sigaction prev = *slot;
	sigset_t mask, saved;

	if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
		/* Default action: restore it; the faulting instruction faults again. */
		emu_libc_sigaction(sig, &prev, NULL);
		return;
	}
	if (prev.sa_flags & SA_RESETHAND)
		slot->sa_handler = SIG_DFL;
	/* the handler runs with its sa_mask (and the signal, unless SA_NODEFER) blocked */
	mask = prev.sa_mask;
	if (!(prev.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pthread_sigmask(SIG_BLOCK, &mask, &saved);
	if (prev.sa_flags & SA_SIGINFO)
		prev.sa_sigaction(sig, info, ucontext);
	else
		prev.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

static void emu_fault_handler(int sig, siginfo_t *info, void *ucontext)
{
	sigjmp_buf *jb = emu_fault_jmp;

	if (jb) {
		emu_fault_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	emu_fault_chain(sig, info, ucontext);
}

static void emu_fault_init(void)
{
	struct sigaction sa;

	emu_libc_sigaction = (emu_sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	if (!emu_libc_sigaction)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = emu_fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (emu_libc_sigaction(SIGSEGV, &sa, &emu_prev_segv) < 0)
		return;
	if (emu_libc_sigaction(SIGBUS, &sa, &emu_prev_bus) < 0) {
		emu_libc_sigaction(SIGSEGV, &emu_prev_segv, NULL);
		return;
	}
	emu_fault_ready = true;
}

int emu_fault_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	struct sigaction *slot;

	if (sig != SIGSEGV && sig != SIGBUS)
		return 0;
	pthread_once(&emu_fault_once, emu_fault_init);
	if (!emu_fault_ready)
		return 0;
	slot = sig == SIGBUS ? &emu_prev_bus : &emu_prev_segv;
	pthread_mutex_lock(&emu_fault_lock);
	if (old)
		*old = *slot;
	if (act)
		*slot = *act;
	pthread_mutex_unlock(&emu_fault_lock);
	return 1;
}

#ifdef __SANITIZE_ADDRESS__
/*
 * Built with -fsanitize=address: a client's buffer is not ours to check
 * (copy_from_user reads whatever is mapped there), and ASan's memcpy
 * interceptor would report a bad client pointer instead of letting it
 * fault into the handler above. Copy byte by byte, uninstrumented.
 */
__attribute__((no_sanitize_address, noinline))
static void emu_user_memcpy(void *dst, const void *src, size_t len)
{
	/* integers: a client range may wrap past the top of the address space (then it faults) */
	uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;

	for (size_t i = 0; i < len; i++)
		*(volatile uint8_t *)(d + i) = *(const volatile uint8_t *)(s + i);
}
#else
#define emu_user_memcpy memcpy
#endif

/*
 * fn(arg) under the fault guard, the handler installed (emu_fault_ready): a
 * fault on client memory inside fn returns -1 with errno EFAULT, fn's work
 * abandoned where it stood.
 */
static int emu_guard(int (*fn)(void *), void *arg)
{
	sigjmp_buf jb;
	int ret;

	if (sigsetjmp(jb, 0)) {
		errno = EFAULT;
		return -1;
	}
	emu_fault_jmp = &jb;
	__asm__ volatile("" ::: "memory");
	ret = fn(arg);
	__asm__ volatile("" ::: "memory");
	emu_fault_jmp = NULL;
	return ret;
}

struct emu_user_copy {
	void *dst;
	const void *src;
	size_t len;
};

static int emu_user_copy_fn(void *arg)
{
	struct emu_user_copy *c = arg;

	emu_user_memcpy(c->dst, c->src, c->len);
	return 0;
}

static int emu_guarded_memcpy(void *dst, const void *src, size_t len)
{
	struct emu_user_copy c = { .dst = dst, .src = src, .len = len };

	return emu_guard(emu_user_copy_fn, &c);
}

/*
 * fn(arg) under one fault guard (emu_guard). Inside fn, client memory is read
 * with emu_guarded_load only: no lock may be taken there (a fault would leave
 * it held) and no guarded copy nested. For a run of small reads (a page walk
 * and the bytes it leads to) this sets the guard once instead of once per
 * read. Returns -2, calling nothing, where no guard can be installed: the
 * caller copies with emu_copy_from_user instead.
 */
int emu_guarded_call(int (*fn)(void *), void *arg)
{
	pthread_once(&emu_fault_once, emu_fault_init);
	if (!emu_fault_ready)
		return -2;
	return emu_guard(fn, arg);
}

/* A read of client memory inside emu_guarded_call's fn. */
void emu_guarded_load(void *dst, const void *src, size_t len)
{
	emu_user_memcpy(dst, src, len);
}

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
	pthread_once(&emu_fault_once, emu_fault_init);
	if (emu_fault_ready)
		return to_user ? emu_guarded_memcpy(remote, local, len)
			       : emu_guarded_memcpy(local, remote, len);
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
 *
 * Its size is sealed (F_SEAL_SHRINK | F_SEAL_GROW, then F_SEAL_SEAL so no
 * other seal can be added): an anon_inode file has no size to change
 * (do_ftruncate refuses anything but a regular file), and a client's raw
 * ftruncate or fallocate must not pull the pages from under the emulator's
 * own mapping of a VP's register and message pages (SIGBUS). No write seal:
 * that would refuse the shared writable mappings the emulator and mmap of a
 * VP fd need. The libc file calls of an LD_PRELOAD client get the errno of
 * an anon_inode file (preload.c).
 */
int emu_memfd(const char *name, size_t size)
{
	int fd, err;

	fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if ((size && syscall(SYS_ftruncate, fd, (long)size) < 0) ||
	    syscall(SYS_fcntl, fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = errno;
		emu_sys_close(fd);
		errno = err;
		return -1;
	}
	return fd;
}
