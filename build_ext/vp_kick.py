"""C source of the VP kick: a signal that brings a thread back from MSHV_RUN_VP.

The kernel's RUN_VP returns EINTR as soon as a signal is pending for the
thread inside it (``mshv_run_vp_with_hyp_scheduler`` suspends the VP;
``mshv_run_vp_with_root_scheduler`` checks before each dispatch), and so does
KVM_RUN under the emulator. The kick is SIGRTMIN, the signal Cloud Hypervisor
kicks its vCPU threads with, sent to one thread (tgkill). Its handler does
nothing and is installed here in C, without SA_RESTART, so Python's signal
machinery never sees a kick (no Python handler, no main-thread rule).
"""

from __future__ import annotations

INCLUDES = """
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
"""

TYPES = ""

FUNCTIONS = """
int mshv_kick_signal(void);
int mshv_kick_install(void);
int mshv_kick_thread(int tid);
"""

CUSTOMIZATIONS = r"""
static void mshv_kick_handler(int signo)
{
	(void)signo;	/* the EINTR it causes is the whole point */
}

static int mshv_kick_signal(void) { return SIGRTMIN; }

/*
 * Install the kick's handler: 0 when it is installed (or already was), 1 when
 * the signal has another handler (left alone: the caller reports it), -1 with
 * errno on failure.
 */
static int mshv_kick_install(void)
{
	struct sigaction old, act;

	if (sigaction(SIGRTMIN, NULL, &old) < 0)
		return -1;
	if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == mshv_kick_handler)
		return 0;
	if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
		return 1;
	memset(&act, 0, sizeof(act));
	act.sa_handler = mshv_kick_handler;
	sigemptyset(&act.sa_mask);
	act.sa_flags = 0;	/* no SA_RESTART: a slow call the kick lands in returns EINTR */
	return sigaction(SIGRTMIN, &act, NULL);
}

/* Send the kick to one thread of this process, by its kernel thread id. */
static int mshv_kick_thread(int tid)
{
	return (int)syscall(SYS_tgkill, (long)getpid(), (long)tid, (long)SIGRTMIN);
}
"""
