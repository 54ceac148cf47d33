/* SPDX-License-Identifier: MIT */
/*
 * Signals during MSHV_RUN_VP, from C, under LD_PRELOAD=libmshv_emu.so
 * (test_signals.py). Only libc, <linux/mshv.h> and mshv_hvdefs.h.
 *
 *   signal_client swallow|divert <guest image> <signals> <max delay ns> <seed>
 *
 * The guest (real mode, CS base 0x10000, IP 0) halts with IF=0 on a LAPIC
 * partition, so RUN_VP never returns by itself: only a signal ends it, with
 * EINTR (mshv_run_vp_with_hyp_scheduler). Each round arms a one-shot timer
 * (SIGALRM, to this thread) at a random delay, then calls RUN_VP. The
 * kernel's RUN_VP returns EINTR whenever a signal is pending for the caller
 * once it is inside the ioctl. A signal whose handler ran while the thread
 * was inside RUN_VP, after which RUN_VP went on waiting (it returned only
 * when the watchdog signal, SIGUSR1, came 100 ms later), was swallowed.
 *
 * A signal that lands before the thread is in the ioctl (its handler
 * interrupted the client's own code, or the ioctl() interposer before it
 * reached the emulator's RUN_VP) is lost on the kernel too; it is counted as
 * "early", not swallowed: the handler records where it interrupted the
 * thread (the PC in its ucontext) and the round classifies it.
 *
 * reenter: the same with a handler that reads a register of the VP.
 *
 * divert: the same with a process-directed SIGALRM (a timer with
 * SIGEV_SIGNAL) while a second thread sleeps with SIGALRM unblocked. The
 * kernel gives a process-directed signal to the thread group leader when it
 * does not block it (complete_signal), so the leader, inside RUN_VP, takes
 * it and returns EINTR. A RUN_VP that blocked signals in its own code would
 * let the kernel hand the signal to the sleeping thread instead: the leader's
 * RUN_VP would never see it ("swallowed", and "diverted" counts those whose
 * handler ran on the other thread).
 *
 * With MSHV_EMU_INPROC=<libmshv_emu.so> in the environment the client
 * dlopen()s the emulator (RTLD_LOCAL) and calls its entry points, as the
 * Python binding does, instead of reaching it through LD_PRELOAD.
 *
 * Output: "key=value" lines: signals, ok, early, swallowed, diverted, other,
 * siginfo_lost (handlers that did not see the timer's si_code).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
#define SEG_SIZE 0x10000UL
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))
#define WATCHDOG_NS 100000000L

static uint8_t image[SEG_SIZE];

/* The emulator's open/ioctl: libc's (LD_PRELOAD), or its entry points (MSHV_EMU_INPROC). */
static int (*dev_open)(const char *path, int flags);
static int (*dev_ioctl)(int fd, unsigned long req, void *arg);

static int libc_open(const char *path, int flags)
{
	return open(path, flags);
}

static int libc_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg);
}

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void load_image(const char *path)
{
	FILE *f = fopen(path, "rb");

	if (!f || fread(image, 1, sizeof(image), f) == 0)
		die("guest image");
	fclose(f);
}

static int get_reg(int vp_fd, uint32_t name, union hv_register_value *value)
{
	struct {
		struct hv_input_get_vp_registers h;
		uint32_t name;
	} __attribute__((packed)) in = { .h.vp_index = 0, .name = name };
	struct mshv_root_hvcall a = {
		.code = HVCALL_GET_VP_REGISTERS, .reps = 1, .in_sz = sizeof(in),
		.out_sz = sizeof(*value), .in_ptr = (uint64_t)(uintptr_t)&in,
		.out_ptr = (uint64_t)(uintptr_t)value,
	};

	if (dev_ioctl(vp_fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.status ? -1 : 0;
}

static int set_reg(int vp_fd, uint32_t name, const union hv_register_value *value)
{
	struct {
		struct hv_input_set_vp_registers h;
		struct hv_register_assoc r;
	} __attribute__((packed)) in;
	struct mshv_root_hvcall a = {
		.code = HVCALL_SET_VP_REGISTERS, .reps = 1, .in_sz = sizeof(in),
		.in_ptr = (uint64_t)(uintptr_t)&in,
	};

	memset(&in, 0, sizeof(in));
	in.r.name = name;
	in.r.value = *value;
	if (dev_ioctl(vp_fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.status ? -1 : 0;
}

/* One VP of a LAPIC partition at CS:IP = 0x1000:0 with the image at GPA 0x10000. */
static int halted_vp(void)
{
	struct mshv_create_partition cp = { .pt_flags = 1ULL << MSHV_PT_BIT_LAPIC };
	struct mshv_create_vp cv = { .vp_index = 0 };
	union hv_register_value v;
	uint8_t *mem;
	int dev, pt, vp;

	dev = dev_open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("open /dev/mshv");
	pt = dev_ioctl(dev, MSHV_CREATE_PARTITION, &cp);
	if (pt < 0 || dev_ioctl(pt, MSHV_INITIALIZE_PARTITION, NULL))
		die("create partition");
	mem = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	memcpy(mem, image, SEG_SIZE);
	{
		struct mshv_user_mem_region r = {
			.size = SEG_SIZE, .guest_pfn = SEG_SIZE / PAGE,
			.userspace_addr = (uint64_t)(uintptr_t)mem, .flags = RW,
		};

		if (dev_ioctl(pt, MSHV_SET_GUEST_MEMORY, &r) < 0)
			die("SET_GUEST_MEMORY");
	}
	vp = dev_ioctl(pt, MSHV_CREATE_VP, &cv);
	if (vp < 0)
		die("CREATE_VP");
	if (get_reg(vp, HV_X64_REGISTER_CS, &v) < 0)
		die("get CS");
	v.segment.selector = SEG_SIZE >> 4;
	v.segment.base = SEG_SIZE;
	if (set_reg(vp, HV_X64_REGISTER_CS, &v) < 0)
		die("set CS");
	memset(&v, 0, sizeof(v));
	if (set_reg(vp, HV_X64_REGISTER_RIP, &v) < 0)
		die("set RIP");
	return vp;
}

static volatile sig_atomic_t seq, alarm_seq, wd_seq, alarm_in_run;
static volatile sig_atomic_t in_run;
static volatile uintptr_t alarm_pc;
static volatile pid_t alarm_tid;
static volatile int alarm_code;

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	alarm_seq = ++seq;
	alarm_in_run = in_run;
	alarm_pc = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
	alarm_tid = (pid_t)syscall(SYS_gettid);
	alarm_code = si->si_code;
}

/*
 * reenter: the alarm's handler reads the VP's RIP through its fd. The
 * kernel runs a handler when RUN_VP has returned, so the VP is free then;
 * the read must succeed (handler_reads counts those that did).
 */
static int reenter_vp = -1;
static volatile sig_atomic_t handler_reads, handler_read_failures;

static void on_alarm_reenter(int sig, siginfo_t *si, void *uc)
{
	union hv_register_value v;

	on_alarm(sig, si, uc);
	if (get_reg(reenter_vp, HV_X64_REGISTER_RIP, &v) == 0)
		handler_reads++;
	else
		handler_read_failures++;
}

static void on_watchdog(int sig)
{
	(void)sig;
	wd_seq = ++seq;
}

static bool pc_in(uintptr_t pc, const char *name)
{
	const ElfW(Sym) *sym = NULL;
	Dl_info info;

	if (!dladdr1((void *)pc, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !info.dli_sname)
		return false;
	return strcmp(info.dli_sname, name) == 0 &&
	       pc - (uintptr_t)info.dli_saddr < (uintptr_t)sym->st_size;
}

/*
 * Before the thread is inside RUN_VP: in this program's own code, or in the
 * ioctl() interposer and the emulator's dispatch before its RUN_VP began
 * (the equivalent of libc's ioctl wrapper before the system call), or in a
 * sanitizer runtime's ioctl interceptor, which runs before the interposer
 * when the runtime is preloaded first.
 */
static bool pc_early(uintptr_t pc)
{
	Dl_info self, at;

	if (!dladdr((void *)pc_early, &self) || !dladdr((void *)pc, &at))
		return false;
	if (at.dli_fbase == self.dli_fbase)
		return true;
	return pc_in(pc, "ioctl") || pc_in(pc, "mshv_emu_ioctl") ||
	       pc_in(pc, "__interceptor_ioctl") || pc_in(pc, "___interceptor_ioctl");
}

/* A timer signalling this thread, or (process_directed) the whole process. */
static timer_t signal_timer(int sig, bool process_directed)
{
	struct sigevent ev;
	timer_t t;

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = process_directed ? SIGEV_SIGNAL : SIGEV_THREAD_ID;
	ev.sigev_signo = sig;
	if (!process_directed)
		ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) < 0)
		die("timer_create");
	return t;
}

static void arm(timer_t t, long ns)
{
	struct itimerspec its = { .it_value = { .tv_sec = ns / 1000000000L,
						.tv_nsec = ns % 1000000000L } };

	if (timer_settime(t, 0, &its, NULL) < 0)
		die("timer_settime");
}

/* The second thread of "divert": sleeps, SIGALRM unblocked, and takes what it is given. */
static volatile sig_atomic_t sleeper_up;

static void *sleeper(void *arg)
{
	(void)arg;
	sleeper_up = 1;
	for (;;)
		pause();
	return NULL;
}

static int swallow(long n, long max_delay_ns, unsigned seed, bool process_directed, bool reenter)
{
	struct hv_message msg;
	struct sigaction sa;
	long ok = 0, early = 0, swallowed = 0, diverted = 0, other = 0, siginfo_lost = 0;
	pid_t self = (pid_t)syscall(SYS_gettid);
	timer_t alarm_t, wd_t;
	pthread_t other_thread;
	int vp = halted_vp();

	reenter_vp = vp;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = reenter ? on_alarm_reenter : on_alarm;	/* no SA_RESTART: EINTR */
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGALRM, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watchdog;
	sigaction(SIGUSR1, &sa, NULL);
	alarm_t = signal_timer(SIGALRM, process_directed);
	wd_t = signal_timer(SIGUSR1, false);
	if (process_directed) {
		if (pthread_create(&other_thread, NULL, sleeper, NULL) != 0)
			die("pthread_create");
		while (!sleeper_up)	/* its start (a sanitizer runtime's too) is over */
			usleep(1000);
		usleep(10000);
	}
	srand(seed);

	for (long i = 0; i < n; i++) {
		long delay = 1 + (long)((double)rand() / RAND_MAX * (double)max_delay_ns);
		int ret, err;

		alarm_seq = wd_seq = 0;
		alarm_in_run = 0;
		arm(wd_t, WATCHDOG_NS);
		arm(alarm_t, delay);
		in_run = 1;
		ret = dev_ioctl(vp, MSHV_RUN_VP, &msg);
		err = errno;
		in_run = 0;
		arm(wd_t, 0);
		while (!alarm_seq)	/* RUN_VP ended by the watchdog before the alarm came */
			usleep(100);
		if (alarm_code != SI_TIMER)	/* the handler saw the timer's siginfo */
			siginfo_lost++;
		if (ret != -1 || err != EINTR) {
			printf("round%ld=ret %d errno %d type %#x\n", i, ret, err,
			       ret == 0 ? msg.header.message_type : 0);
			other++;
		} else if (!alarm_in_run || pc_early(alarm_pc)) {
			early++;
		} else if (wd_seq && wd_seq > alarm_seq) {
			/* the alarm's handler ran inside RUN_VP, which went on waiting */
			Dl_info at;

			if (dladdr((void *)alarm_pc, &at))
				printf("swallowed.at=%s+%#lx (%#lx) in %s\n",
				       at.dli_sname ? at.dli_sname : "?",
				       (unsigned long)(alarm_pc - (uintptr_t)at.dli_saddr),
				       (unsigned long)(alarm_pc - (uintptr_t)at.dli_fbase), at.dli_fname);
			swallowed++;
			if (alarm_tid != self)
				diverted++;
		} else {
			ok++;
		}
	}
	printf("signals=%ld\nok=%ld\nearly=%ld\nswallowed=%ld\ndiverted=%ld\nother=%ld\n", n, ok,
	       early, swallowed, diverted, other);
	printf("siginfo_lost=%ld\n", siginfo_lost);
	if (reenter)
		printf("handler_reads=%d\nhandler_read_failures=%d\n", (int)handler_reads,
		       (int)handler_read_failures);
	return 0;
}

/*
 * handlers: the client's view of its handlers is its own, and their
 * delivery semantics hold, while the emulator's wrapper is what the kernel
 * has (a raw rt_sigaction query shows another handler).
 */
static volatile sig_atomic_t h_calls, h_signo, h_usr1_blocked;

static void h_siginfo(int sig, siginfo_t *si, void *uc)
{
	sigset_t now;

	(void)uc;
	h_calls++;
	h_signo = si->si_signo == sig ? sig : -1;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	h_usr1_blocked = sigismember(&now, SIGUSR1);
}

static void h_plain(int sig)
{
	(void)sig;
	h_calls++;
}

#define CHECK(cond)								\
	do {									\
		if (!(cond)) {							\
			printf("failed: %s (line %d)\n", #cond, __LINE__);	\
			return 1;						\
		}								\
	} while (0)

static int handlers(void)
{
	struct sigaction sa, old;
	struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } raw;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = h_siginfo;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
	CHECK(sigaction(SIGUSR2, NULL, &old) == 0);
	CHECK(old.sa_sigaction == h_siginfo);
	CHECK((old.sa_flags & (SA_SIGINFO | SA_RESETHAND)) == (SA_SIGINFO | SA_RESETHAND));
	CHECK(sigismember(&old.sa_mask, SIGUSR1));
	CHECK(syscall(SYS_rt_sigaction, SIGUSR2, NULL, &raw, 8) == 0);
	printf("kernel_handler_is_clients=%d\n", raw.handler == (void *)h_siginfo);
	CHECK(raise(SIGUSR2) == 0);
	CHECK(h_calls == 1 && h_signo == SIGUSR2 && h_usr1_blocked == 1);
	CHECK(sigaction(SIGUSR2, NULL, &old) == 0);
	CHECK(old.sa_handler == SIG_DFL);	/* SA_RESETHAND */
	CHECK(signal(SIGUSR2, h_plain) == SIG_DFL);
	CHECK(raise(SIGUSR2) == 0 && h_calls == 2);
	CHECK(signal(SIGUSR2, h_plain) == h_plain);	/* BSD signal(): not reset */
	CHECK(signal(SIGUSR2, SIG_IGN) == h_plain);
	CHECK(raise(SIGUSR2) == 0 && h_calls == 2);
	CHECK(sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_IGN);
	CHECK(sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL);
	/* a vfork child resets its handlers before exec (posix_spawn, Python's subprocess) */
	CHECK(signal(SIGUSR2, h_plain) == SIG_IGN);
	{
		pid_t child = vfork();
		int status;

		if (child == 0) {
			signal(SIGUSR2, SIG_DFL);
			_exit(0);
		}
		CHECK(child > 0 && waitpid(child, &status, 0) == child);
	}
	CHECK(sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == h_plain);
	CHECK(raise(SIGUSR2) == 0 && h_calls == 3);
	printf("handlers=ok\n");
	return 0;
}

/* Where open/ioctl go: see MSHV_EMU_INPROC above. */
static void choose_entry_points(void)
{
	const char *lib = getenv("MSHV_EMU_INPROC");
	void *h;

	dev_open = libc_open;
	dev_ioctl = libc_ioctl;
	if (!lib)
		return;
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("setup-failed: dlopen: %s\n", dlerror());
		exit(2);
	}
	dev_open = (int (*)(const char *, int))dlsym(h, "mshv_emu_open");
	dev_ioctl = (int (*)(int, unsigned long, void *))dlsym(h, "mshv_emu_ioctl");
	if (!dev_open || !dev_ioctl)
		die("dlsym");
}

int main(int argc, char **argv)
{
	bool divert = argc == 6 && strcmp(argv[1], "divert") == 0;
	bool reenter = argc == 6 && strcmp(argv[1], "reenter") == 0;

	if (argc == 2 && strcmp(argv[1], "handlers") == 0)
		return handlers();

	if (argc == 6 && (divert || reenter || strcmp(argv[1], "swallow") == 0)) {
		choose_entry_points();
		load_image(argv[2]);
		return swallow(atol(argv[3]), atol(argv[4]), (unsigned)atol(argv[5]), divert, reenter);
	}
	fprintf(stderr, "usage: %s swallow|divert|reenter <image> <signals> <max delay ns> <seed>\n",
		argv[0]);
	return 2;
}
