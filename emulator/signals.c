/* SPDX-License-Identifier: MIT */
/*
 * Library side (the emulator's own plumbing): signals during MSHV_RUN_VP.
 *
 * The kernel's RUN_VP returns EINTR whenever a signal is pending for the
 * caller once it is inside the ioctl (mshv_run_vp_with_hyp_scheduler's
 * interruptible wait; mshv_run_vp_with_root_scheduler checks signal_pending
 * before each dispatch, xfer_to_guest_mode_handle_work), and the handler runs
 * when the ioctl returns. Here RUN_VP is user code around KVM_RUNs: a signal
 * landing in that code would run the handler at once and be gone, and the
 * next KVM_RUN would wait on a halted guest. Two ways keep it, chosen once
 * when the library loads:
 *
 * Wrapped handlers (the library comes before libc in the process: LD_PRELOAD,
 * so the client's sigaction()/signal() reach our interposers). Every handler
 * the client installs runs through emu_sig_trampoline, installed with the
 * client's own flags and mask, so the kernel delivers exactly as it would to
 * the client's handler. Inside RUN_VP the trampoline sets the running VP's
 * kvm_run immediate_exit (the way a VMM's kick handler does), so the next
 * KVM_RUN returns EINTR before it enters the guest, and holds the client's
 * handler until RUN_VP returns. Then it sends the signal to the thread again
 * with its siginfo (rt_tgsigqueueinfo): the handler runs when the ioctl
 * returns, as with the kernel's RUN_VP. (Two of one standard signal held in
 * one call are one, as pending standard signals are; two real-time ones are
 * one too, where the kernel would queue both.) RUN_VP blocks nothing, so the
 * kernel picks the thread for a process-directed signal as it would with the
 * real driver (complete_signal prefers the thread group leader when it does
 * not block the signal), and RUN_VP makes no system call for this.
 *
 * Blocked signals (dlopen()ed in-process: the client's sigaction() is libc's
 * and cannot be wrapped). For the whole call the thread blocks the catchable
 * asynchronous signals, and KVM_RUN runs with the caller's own mask
 * (KVM_SET_SIGNAL_MASK: kvm_sigset_activate swaps it in for the ioctl only).
 * A signal that came in emulator code stays pending and makes the next
 * KVM_RUN return EINTR; the caller's mask comes back when RUN_VP returns,
 * and the handler runs then. A process-directed signal that arrives while
 * the mask is up goes to another thread that does not block it, if there is
 * one, where the kernel would have given it to a leader inside RUN_VP.
 *
 * Wrapped mode does not see a handler installed past our interposers (a raw
 * rt_sigaction system call, glibc's internal sigset and siginterrupt): one
 * landing in emulator code runs at once and the run goes on. Synchronous
 * fault signals are never blocked or held: the user-copy guard (uaccess.c)
 * catches SIGSEGV/SIGBUS, and a real crash must not wait.
 */
#include <dlfcn.h>
#include <link.h>

#include "emu.h"

typedef int (*emu_sigaction_fn)(int, const struct sigaction *, struct sigaction *);

bool emu_sig_wrapping;				/* set once, by emu_signals_init */
static emu_sigaction_fn emu_sig_next;		/* the sigaction past our interposer */
static struct sigaction emu_sig_client[_NSIG];	/* the client's action where ours wraps it */
static pthread_mutex_t emu_sig_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * The process the table belongs to. A child of vfork() (posix_spawn,
 * Python's subprocess) runs in the parent's memory with handlers of its own,
 * and resets them before exec: its calls go to the kernel and leave the
 * parent's table alone. A child of fork() owns its copy (emu_sig_atfork_child).
 */
static atomic_int emu_sig_owner;

/* Per thread: inside RUN_VP; a signal came in since (emu.h); the kvm_run of its VP. */
EMU_TLS volatile sig_atomic_t emu_run_inside, emu_run_signalled;
static EMU_TLS struct kvm_run *volatile emu_run_target;
/* Blocked mode: the RUN_VP caller's mask while the block is up. */
static __thread bool emu_run_masked;
static __thread uint64_t emu_run_caller_mask;

/* Wrapped mode: where this thread's RUN_VP holds its signals (on that call's stack). */
EMU_TLS struct emu_run_held *emu_run_held;

/*
 * Inside RUN_VP: end the run (immediate_exit) and hold the handler for the
 * end of the ioctl, when the kernel would run it; the client's handler then
 * never runs inside emulator code (where it could call back into a VP whose
 * lock this RUN_VP holds). A handler with SA_RESETHAND runs now: the kernel
 * has already put SIG_DFL in its place.
 */
static bool emu_sig_defer(int sig, const siginfo_t *info, const struct sigaction *act)
{
	struct emu_run_held *held;
	struct kvm_run *run;

	if (!emu_run_inside)
		return false;
	emu_run_signalled = 1;
	atomic_signal_fence(memory_order_seq_cst);
	run = emu_run_target;
	if (run)
		run->immediate_exit = 1;
	held = emu_run_held;
	if (!held || !(EMU_SIGBIT(sig) & EMU_RUN_SIGNALS_BLOCKED) || (act->sa_flags & SA_RESETHAND))
		return false;
	if (!(held->sigs & EMU_SIGBIT(sig)) && held->n < EMU_RUN_HELD_INFO) {
		held->sig[held->n] = sig;
		held->info[held->n++] = *info;
	}
	held->sigs |= EMU_SIGBIT(sig);
	return true;
}

/*
 * The held signals, sent again to this thread: their handlers run now. With
 * their siginfo (rt_tgsigqueueinfo), or, past the first EMU_RUN_HELD_INFO
 * signals of one call, without (tgkill).
 */
static void emu_sig_redeliver(const struct emu_run_held *held)
{
	pid_t pid = (pid_t)syscall(SYS_getpid), tid = (pid_t)syscall(SYS_gettid);
	uint64_t left = held->sigs;

	for (unsigned int i = 0; i < held->n; i++) {
		int sig = held->sig[i];

		left &= ~EMU_SIGBIT(sig);
		if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &held->info[i]) < 0)
			syscall(SYS_tgkill, pid, tid, sig);
	}
	for (int sig = 1; left && sig < _NSIG; sig++) {
		if (left & EMU_SIGBIT(sig))
			syscall(SYS_tgkill, pid, tid, sig);
		left &= ~EMU_SIGBIT(sig);
	}
}

static void emu_sig_trampoline(int sig, siginfo_t *info, void *ucontext)
{
	struct sigaction act = emu_sig_client[sig];

	if (emu_sig_defer(sig, info, &act))
		return;
	if (act.sa_flags & SA_RESETHAND)	/* the kernel reset ours to SIG_DFL */
		emu_sig_client[sig].sa_handler = SIG_DFL;
	if (act.sa_handler == SIG_IGN)
		return;
	if (act.sa_handler == SIG_DFL) {
		/* changed under a delivery: the default action, once this handler returns */
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		emu_sig_next(sig, &dfl, NULL);
		syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
		return;
	}
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, info, ucontext);
	else
		act.sa_handler(sig);
}

static bool emu_sig_wrappable(int sig)
{
	return sig > 0 && sig < _NSIG && sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV &&
	       sig != SIGBUS;
}

static bool emu_sig_is_handler(const struct sigaction *act)
{
	return act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

/* What the kernel gets for the client's act: the trampoline with the same flags and mask. */
static struct sigaction emu_sig_wrap(const struct sigaction *act)
{
	struct sigaction wrapped = *act;

	wrapped.sa_sigaction = emu_sig_trampoline;
	wrapped.sa_flags |= SA_SIGINFO;
	return wrapped;
}

/* The old action for the client: its own where the kernel held our wrapper. 0, or -1 EFAULT. */
static int emu_sig_report(struct sigaction *uold, const struct sigaction *real_old,
			  const struct sigaction *client_old)
{
	const struct sigaction *old = real_old->sa_sigaction == emu_sig_trampoline ? client_old : real_old;

	if (!uold)
		return 0;
	return emu_copy_to_user(uold, old, sizeof(*old));
}

int emu_signals_sigaction(int sig, const struct sigaction *uact, struct sigaction *uold, int *ret)
{
	struct sigaction act, real_old, client_old;
	const struct sigaction *give = NULL;
	int r;

	if (!emu_sig_wrapping || !emu_sig_wrappable(sig))
		return 0;
	if (atomic_load(&emu_sig_owner) != (int)syscall(SYS_getpid)) {
		/* a vfork child: its own handlers, the parent's table untouched */
		r = emu_sig_next(sig, uact, &real_old);
		*ret = r == 0 ? emu_sig_report(uold, &real_old, &emu_sig_client[sig]) : r;
		return 1;
	}
	if (uact) {
		if (emu_copy_from_user(&act, uact, sizeof(act)) < 0) {
			*ret = -1;	/* errno EFAULT */
			return 1;
		}
		give = &act;
	}
	pthread_mutex_lock(&emu_sig_lock);
	client_old = emu_sig_client[sig];
	if (give && emu_sig_is_handler(give)) {
		/* the client's handler is in the table before the trampoline can run */
		struct sigaction wrapped = emu_sig_wrap(give);

		emu_sig_client[sig] = *give;
		r = emu_sig_next(sig, &wrapped, &real_old);
		if (r < 0)
			emu_sig_client[sig] = client_old;
	} else {
		r = emu_sig_next(sig, give, &real_old);
		if (r == 0 && give)
			emu_sig_client[sig] = *give;
	}
	pthread_mutex_unlock(&emu_sig_lock);
	*ret = r == 0 ? emu_sig_report(uold, &real_old, &client_old) : r;
	return 1;
}

/*
 * Do the client's sigaction() calls reach ours? Yes when this library sits
 * before the one that defines the next sigaction (libc) in the process's
 * list of objects: loaded at startup by LD_PRELOAD (or needed before libc).
 * A dlopen()ed library comes after libc, and symbol lookups never reach it
 * first. (dlsym(RTLD_DEFAULT) cannot tell: it searches the caller's own
 * scope too.)
 */
static bool emu_sig_interposes(emu_sigaction_fn next)
{
	Dl_info self, libc;
	struct link_map *map = NULL;
	void *main_program = dlopen(NULL, RTLD_NOW);

	if (!main_program || !dladdr((void *)emu_sig_interposes, &self) ||
	    !dladdr((void *)next, &libc) || dlinfo(main_program, RTLD_DI_LINKMAP, &map) < 0)
		return false;
	for (; map; map = map->l_next) {
		if ((void *)map->l_addr == self.dli_fbase)
			return true;
		if ((void *)map->l_addr == libc.dli_fbase)
			return false;
	}
	return false;
}

static void emu_sig_atfork_child(void)
{
	static const pthread_mutex_t unlocked = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&emu_sig_lock, &unlocked, sizeof(unlocked));	/* another thread may have held it */
	atomic_store(&emu_sig_owner, (int)syscall(SYS_getpid));
}

/*
 * At load: wrapped mode when the client's sigaction() calls reach ours. The
 * handlers installed before (by the runtime, by libraries loaded earlier) are
 * wrapped now.
 */
__attribute__((constructor)) static void emu_signals_init(void)
{
	emu_sig_next = (emu_sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
	if (!emu_sig_next || !emu_sig_interposes(emu_sig_next))
		return;
	atomic_store(&emu_sig_owner, (int)syscall(SYS_getpid));
	pthread_atfork(NULL, NULL, emu_sig_atfork_child);
	pthread_mutex_lock(&emu_sig_lock);
	for (int sig = 1; sig < _NSIG; sig++) {
		struct sigaction cur, wrapped;

		if (!emu_sig_wrappable(sig) || emu_sig_next(sig, NULL, &cur) < 0 ||
		    !emu_sig_is_handler(&cur))
			continue;
		emu_sig_client[sig] = cur;
		wrapped = emu_sig_wrap(&cur);
		emu_sig_next(sig, &wrapped, NULL);
	}
	emu_sig_wrapping = true;
	pthread_mutex_unlock(&emu_sig_lock);
}

void emu_run_signals_blocked(uint64_t caller)
{
	emu_run_caller_mask = caller;
	emu_run_masked = true;
}

void emu_run_signals_end(uint64_t caller, const struct emu_run_held *held)
{
	int err = errno;

	if (emu_sig_wrapping) {
		/* emu_run_target is NULL again: emu_run_vp untargets before it returns */
		emu_run_inside = 0;
		atomic_signal_fence(memory_order_seq_cst);
		emu_run_held = NULL;	/* no handler holds a signal from here on */
		emu_run_signalled = 0;
		if (held->sigs)
			emu_sig_redeliver(held);
		errno = err;
		return;
	}
	emu_run_masked = false;
	emu_sigprocmask_raw(SIG_SETMASK, &caller, NULL);	/* pending handlers run here */
	errno = err;
}

void emu_run_signals_target(struct kvm_run *run)
{
	emu_run_target = run;
	atomic_signal_fence(memory_order_seq_cst);
	emu_run_signals_rearm(run);
}

void emu_run_signals_untarget(struct kvm_run *run)
{
	emu_run_target = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	run->immediate_exit = 0;
}

void emu_run_signals_rearm(struct kvm_run *run)
{
	run->immediate_exit = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (emu_run_signalled)
		run->immediate_exit = 1;
}

/* Blocked mode: KVM_RUN runs with the RUN_VP caller's mask (one ioctl when it changes). */
int emu_run_signals_kvm_mask(struct emu_vp *vp)
{
	union {
		struct kvm_signal_mask m;
		uint8_t b[sizeof(struct kvm_signal_mask) + sizeof(uint64_t)];
	} km;
	uint64_t bits = emu_run_caller_mask;

	if (emu_sig_wrapping)
		return 0;	/* nothing blocked: KVM_RUN runs with the thread's own mask */
	if (!emu_run_masked && emu_sigprocmask_raw(SIG_BLOCK, NULL, &bits) < 0)
		return 0;
	if (vp->sigmask_set && vp->kvm_sigmask == bits)
		return 0;
	km.m.len = sizeof(bits);
	memcpy(km.m.sigset, &bits, sizeof(bits));
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_SIGNAL_MASK, &km) < 0)
		return -1;
	vp->kvm_sigmask = bits;
	vp->sigmask_set = true;
	return 0;
}
