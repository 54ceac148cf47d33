/* SPDX-License-Identifier: MIT */
/*
 * python-mshv's /dev/mshv emulator: shared internal declarations.
 *
 * The emulator is a fake mshv_root driver in user space: it hands out real
 * fds (memfds) as /dev/mshv, partition and VP handles, checks every argument
 * the way drivers/hv/mshv_root_main.c does, and runs the guest on /dev/kvm.
 * It also answers in place of the hypervisor behind the driver (hypercalls,
 * intercept messages, VP state). Each file plays one part: [driver] mirrors
 * the kernel's drivers/hv/mshv_*, [hypervisor] what the Microsoft Hypervisor
 * does (TLFS hypercalls, hv_message), [both] an ioctl together with the
 * hypervisor's work behind it, [library] the emulator's own plumbing.
 *
 *   entry.c       [library]    mshv_emu_{open,ioctl,mmap,munmap,close}: the exported table
 *   preload.c     [library]    LD_PRELOAD interposers of open/openat/ioctl/mmap/munmap/close/dup*,
 *                              the file calls (read/write/lseek/ftruncate...), sigaction/signal
 *   fdtable.c     [driver]     fd -> emulated object table, references
 *   uaccess.c     [driver]     copy to/from client pointers (EFAULT, never a crash), memfds
 *   device.c      [driver]     /dev/mshv and partition fds: create, initialize, lifetime, dispatch
 *   regions.c     [driver]     MSHV_SET_GUEST_MEMORY -> KVM memslots
 *   vp.c          [driver]     MSHV_CREATE_VP, VP fd dispatch, VP mmap, VP lifetime
 *   run.c         [both]       MSHV_RUN_VP: the KVM_RUN state machine, KVM exits -> intercepts
 *   signals.c     [library]    signals during RUN_VP: EINTR as on the kernel (wrapped or blocked)
 *   vpstate.c     [both]       MSHV_GET/SET_VP_STATE and the VP state behind it
 *   irq.c         [both]       MSHV_IRQFD, MSHV_IOEVENTFD, MSHV_SET_MSI_ROUTING, assert interrupt
 *   gpap.c        [both]       MSHV_GET_GPAP_ACCESS_BITMAP, access-state tracking
 *   hvcall.c      [driver]     MSHV_ROOT_HVCALL passthrough: checks, allow-lists, copies, dispatch
 *   hvstatus.c    [driver]     hv_result_to_errno: hypercall status -> errno
 *   hypercalls.c  [hypervisor] VP registers, intercepts, translate, interrupts, SynIC hypercalls
 *   properties.c  [hypervisor] partition and host properties, feature banks, XSAVE layout
 *   cpuid.c       [hypervisor] CPUID results (REGISTER_INTERCEPT_RESULT, GET_VP_CPUID_VALUES)
 *   regs.c        [hypervisor] Hyper-V register names <-> KVM register state, register page
 *   intercept.c   [hypervisor] building intercept messages (hv_message, x64 header)
 *   x86decode.c   [hypervisor] x86 instruction decoding for intercept messages
 *   pagewalk.c    [hypervisor] guest page walk, instruction bytes
 *   time.c        [hypervisor] partition reference time, TIME_FREEZE and its effect on KVM
 *   synthetic.c   [hypervisor] synthetic MSRs, SynIC and synthetic timer registers, event
 *                              registers: one store for hypercalls, VP state and guest MSRs
 *
 * Private headers: hypercall.h (hvcall.c and the hypercall handlers),
 * x86decode.h (x86decode.c for run.c).
 *
 * Rules: every call returns -1 with errno set on failure (kernel errno);
 * nothing here calls the libc functions that preload.c interposes: use the
 * emu_sys_* wrappers below, which go straight to the system call.
 */
#ifndef MSHV_EMU_H
#define MSHV_EMU_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define EMU_EXPORT __attribute__((visibility("default")))

#define EMU_PAGE_SIZE 4096UL
#define EMU_MAX_VPS 256			/* MSHV_MAX_VPS */
#define EMU_MAX_GUEST_IRQS 4096		/* MSHV_MAX_GUEST_IRQS */
#define EMU_PARTITION_DEPOSIT_PAGES 208

/* ---- raw system calls (never the interposed libc symbols) --------------- */

static inline int emu_sys_ioctl(int fd, unsigned long req, void *arg)
{
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

static inline int emu_sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static inline void *emu_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int emu_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static inline int emu_sys_openat(int dirfd, const char *path, int flags, int mode)
{
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

/* Returns -1/errno like the libc call. */
int emu_memfd(const char *name, size_t size);

/* ---- objects ------------------------------------------------------------ */

enum emu_kind { EMU_DEVICE = 1, EMU_PARTITION, EMU_VP };

struct emu_region {
	struct emu_region *next;
	uint64_t guest_pfn;
	uint64_t npages;
	uint64_t userspace_addr;
	uint8_t flags;			/* 1 << MSHV_SET_MEM_BIT_* */
	bool mmio;			/* VM_IO/VM_PFNMAP VMA: always RW, uncached */
	uint32_t slot;			/* KVM memslot */
};

struct emu_msi_route {
	uint32_t gsi;
	uint32_t address_lo;
	uint32_t address_hi;
	uint32_t data;
};

struct emu_irqfd;		/* irq.c */
struct emu_ioeventfd;		/* irq.c */

/* Per-partition intercept and CPUID configuration set by hypercalls. */
struct emu_intercepts {
	bool cpuid;			/* HV_INTERCEPT_TYPE_X64_CPUID installed */
	bool msr;			/* HV_INTERCEPT_TYPE_X64_MSR */
	uint32_t exception_bitmap;	/* HV_INTERCEPT_TYPE_EXCEPTION, by vector */
	/* IO port intercepts are always on for exo partitions. */
};

/* time.c: the partition reference time and TIME_FREEZE */
struct emu_time {
	pthread_mutex_t lock;
	uint64_t offset;		/* host ticks (100 ns) at reference time 0 */
	bool frozen;			/* HV_PARTITION_PROPERTY_TIME_FREEZE = 1 */
	uint64_t frozen_at;		/* reference time while frozen */
};

/* synthetic.c: the partition-wide synthetic MSRs and how guest MSR accesses reach them */
struct emu_synthetic_partition {
	pthread_mutex_t lock;
	uint64_t guest_os_id;		/* HV_X64_MSR_GUEST_OS_ID */
	uint64_t hypercall;		/* HV_X64_MSR_HYPERCALL */
	uint64_t reference_tsc;		/* HV_X64_MSR_REFERENCE_TSC */
	bool msr_exits_tried;
	bool msr_exits;			/* KVM_CAP_X86_USER_SPACE_MSR enabled */
	bool msr_filter;		/* the synthetic range filtered away from KVM */
};

/* time.c: what TIME_FREEZE took from KVM, to give back at thaw */
struct emu_time_freeze {
	bool clock_saved;
	uint64_t kvmclock;		/* KVM_GET_CLOCK at freeze */
	uint64_t host_ns_at_freeze;	/* CLOCK_MONOTONIC */
	bool ran_while_frozen;		/* a VP ran: its guest saw time go on, keep it */
};

struct emu_partition {
	atomic_int refs;		/* one for the fd, one per VP fd */
	pthread_mutex_t lock;		/* the partition mutex (mshv_partition_ioctl) */
	uint64_t id;			/* partition id written into hypercall inputs */
	int handle_fd;			/* the memfd handed out as the partition fd, -1 once closed */
	int kvm_fd;			/* /dev/kvm */
	int vm_fd;			/* KVM VM */
	uint64_t pt_flags;
	uint64_t pt_isolation;
	uint64_t cpu_fbanks[MSHV_NUM_CPU_FEATURES_BANKS];	/* disabled features (v2) */
	uint64_t disabled_xsave;
	bool initialized;
	bool lapic;			/* split irqchip created (MSHV_PT_BIT_LAPIC) */

	struct emu_vp *vps[EMU_MAX_VPS];	/* index stays taken until destroy */
	size_t vps_end;			/* vps[] from here on are NULL (partition mutex) */
	size_t kvm_run_size;

	struct emu_region *regions;
	uint64_t slot_bitmap[512];	/* KVM memslot numbers in use */
	int kvm_nr_slots;		/* KVM_CAP_NR_MEMSLOTS (0: not asked yet) */

	struct emu_msi_route *routes;	/* MSI routing table, nr_routes entries */
	uint32_t nr_routes;
	struct emu_irqfd *irqfds;
	struct emu_ioeventfd *ioeventfds;

	struct emu_intercepts intercepts;
	bool gpa_access_tracking;	/* HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING */
	uint64_t synthetic_proc_features;
	void *props;			/* properties.c: other stored partition properties */
	void *cpuid_results;		/* cpuid.c: REGISTER_INTERCEPT_RESULT entries */

	/* ---- core (device.c/regions.c) additions ---- */
	/*
	 * Guards the regions list against RUN_VP readers: SET_GUEST_MEMORY
	 * (under pt->lock) takes it for writing, emu_gpa_read/write for reading.
	 */
	pthread_rwlock_t regions_lock;

	struct emu_time time;		/* time.c */
	struct emu_synthetic_partition synthetic;	/* synthetic.c */
	struct emu_time_freeze freeze;	/* time.c */
};

struct emu_vp {
	struct emu_partition *pt;
	uint32_t index;
	pthread_mutex_t lock;		/* the VP mutex (mshv_vp_ioctl) */
	int handle_fd;			/* memfd: page 0 register page, page 1 message page */
	int vcpu_fd;
	struct kvm_run *run;		/* mmapped kvm_run, pt->kvm_run_size bytes */
	struct hv_vp_register_page *reg_page;	/* emulator's mapping of handle page 0 */
	struct hv_message *msg_page;		/* emulator's mapping of handle page 1 */
	bool explicit_suspend;		/* HV_REGISTER_EXPLICIT_SUSPEND */
	bool intercept_suspend;		/* HV_REGISTER_INTERCEPT_SUSPEND */
	/*
	 * run.c: what the last intercept left for the next RUN_VP to reconcile
	 * (KVM's RIP/pending-IO view vs. mshv's "RIP at the instruction").
	 */
	int pending;			/* enum emu_pending in run.c, 0 = none */
	uint64_t pending_rip;
	struct kvm_regs pending_regs;	/* a deferred MMIO load: the registers at the exit */
	uint8_t pending_len, pending_reg, pending_size;	/* its length, destination, size */
	atomic_bool running;		/* inside KVM_RUN */
	pthread_t run_thread;
	/* ---- run.c/regs.c/vpstate.c (owner: run) ---- */
	bool sync_valid;		/* run->s.regs holds the vCPU's REGS/SREGS/EVENTS */
	bool sregs_held_valid;		/* regs.c: sregs_held is what KVM holds */
	struct kvm_sregs sregs_held;	/* regs.c: the SREGS before this call's writes */
	void *vpstate;			/* vpstate.c: SIMP/SIEFP pages, synthetic timers */
	uint32_t cpuid_gen;		/* cpuid.c: CPUID results generation applied */
	uint32_t debug_applied;		/* run.c: exception intercepts given to KVM */
	atomic_bool ran;		/* run.c: KVM_RUN was called once (CPUID is frozen) */
	bool sigmask_set;		/* run.c: KVM_SET_SIGNAL_MASK was given kvm_sigmask */
	uint64_t kvm_sigmask;		/* run.c: the signal mask KVM_RUN runs with */
	/* ---- time.c: this VP's share of TIME_FREEZE ---- */
	bool freeze_captured;		/* TSC/LAPIC timer taken at freeze, not yet given back */
	bool thaw_pending;		/* thawed while this VP was busy: give back at next RUN_VP */
	uint64_t freeze_ns;		/* host ns the partition stayed frozen (set at thaw) */
	uint32_t freeze_tmcct, freeze_tmict, freeze_lvtt;	/* LAPIC timer at freeze */
};

/* A handle: what one of our fds stands for. */
struct emu_file {
	enum emu_kind kind;
	atomic_int refs;		/* table entries + calls in flight */
	unsigned int fmode;		/* EMU_FMODE_READ/WRITE: the open's access mode */
	uint64_t tag;			/* the backing file's position: its identity (fdtable.c) */
	union {
		struct emu_partition *pt;
		struct emu_vp *vp;
	};
};

/* ---- fdtable.c ---------------------------------------------------------- */

#define EMU_FMODE_READ 1u
#define EMU_FMODE_WRITE 2u

/* Register a handle fd; the table owns one reference to f (f->dev/ino are set here). */
int emu_fd_install(int fd, struct emu_file *f);
/*
 * Look a handle up, taking a reference (NULL if fd is not ours). An entry
 * whose fd no longer names the handle's file (closed and reused behind our
 * back) is dropped and NULL returned.
 */
struct emu_file *emu_fd_get(int fd);
void emu_fd_put(struct emu_file *f);
/* fd's EMU_FMODE_* bits and kind, or -1 if fd is not ours. */
int emu_fd_fmode(int fd, enum emu_kind *kind);
/* Remove fd from the table and return its handle (reference passes to caller). */
struct emu_file *emu_fd_remove(int fd);
/* dup/dup2/dup3/F_DUPFD: newfd refers to the same handle as oldfd. */
int emu_fd_dup(int oldfd, int newfd);
/* close_range/closefrom: remove [first, last] and put their references. */
void emu_fd_remove_range(unsigned int first, unsigned int last);
/* Drop the entries of fds closed behind our back (one lseek per entry). */
void emu_fd_sweep(void);
/* Are we a child (fork/vfork) of the process that made the handles? */
bool emu_fd_in_child(void);

/* ---- device.c ------------------------------------------------------------ */

int emu_dev_open(int flags);			/* a /dev/mshv handle fd (open flags) */
int emu_dev_ioctl(unsigned long req, void *arg);
int emu_partition_ioctl(struct emu_partition *pt, unsigned long req, void *arg);
void emu_partition_get(struct emu_partition *pt);
void emu_partition_put(struct emu_partition *pt);	/* last ref destroys it */
void emu_partition_release(struct emu_partition *pt);	/* partition fd closed */

/* ---- regions.c ----------------------------------------------------------- */

int emu_set_guest_memory(struct emu_partition *pt, const struct mshv_user_mem_region *arg);
void emu_regions_destroy(struct emu_partition *pt);
/* The region holding gfn, or NULL. Caller holds pt->lock or runs the VP. */
struct emu_region *emu_region_find(struct emu_partition *pt, uint64_t gfn);
/* Copy guest physical memory (only RAM regions); returns bytes copied. */
size_t emu_gpa_read(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len);
size_t emu_gpa_read_guarded(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len);
size_t emu_gpa_write(struct emu_partition *pt, uint64_t gpa, const void *buf, size_t len);

/* ---- vp.c ---------------------------------------------------------------- */

int emu_create_vp(struct emu_partition *pt, const struct mshv_create_vp *arg);
int emu_vp_ioctl(struct emu_vp *vp, unsigned long req, void *arg);
void *emu_vp_mmap(struct emu_vp *vp, void *addr, size_t len, int prot, int flags, long off);
void emu_vp_destroy(struct emu_vp *vp);		/* at partition destroy */

/* ---- run.c ------------------------------------------------------------- */

/* MSHV_RUN_VP with vp->lock held; msg receives the 256-byte message. */
int emu_run_vp(struct emu_vp *vp, struct hv_message *msg);
/* ---- signals.c: signals during RUN_VP (wrapped handlers, or blocked) -- */

/* Thread-locals a signal handler reads: static TLS, no __tls_get_addr call. */
#define EMU_TLS __thread __attribute__((tls_model("initial-exec")))
extern bool emu_sig_wrapping;
extern EMU_TLS volatile sig_atomic_t emu_run_inside, emu_run_signalled;

/* Wrapped mode: the signals one RUN_VP call holds until it returns, on its stack. */
#define EMU_RUN_HELD_INFO 8
struct emu_run_held {
	uint64_t sigs;				/* signal n is bit n - 1 */
	unsigned int n;				/* sig/info entries, the first signals held */
	int sig[EMU_RUN_HELD_INFO];
	siginfo_t info[EMU_RUN_HELD_INFO];
};
extern EMU_TLS struct emu_run_held *emu_run_held;
/* The catchable asynchronous signals: what blocked mode blocks, wrapped mode holds (bit n - 1). */
#define EMU_SIGBIT(sig) (1ULL << ((sig) - 1))
#define EMU_RUN_SIGNALS_BLOCKED                                                              \
	(~(EMU_SIGBIT(SIGKILL) | EMU_SIGBIT(SIGSTOP) | EMU_SIGBIT(SIGSEGV) | EMU_SIGBIT(SIGBUS) | \
	   EMU_SIGBIT(SIGFPE) | EMU_SIGBIT(SIGILL) | EMU_SIGBIT(SIGTRAP) | EMU_SIGBIT(SIGSYS) |  \
	   EMU_SIGBIT(SIGABRT) | EMU_SIGBIT(32) | EMU_SIGBIT(33)))	/* 32, 33: libc's own */

/* rt_sigprocmask(how, set, old, 8) as one inline system call (x86-64): no libc window. */
static inline long emu_sigprocmask_raw(int how, const uint64_t *set, uint64_t *old)
{
	register long r10 __asm__("r10") = sizeof(*set);
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"((long)SYS_rt_sigprocmask), "D"((long)how), "S"(set), "d"(old), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

void emu_run_signals_blocked(uint64_t caller);

/*
 * The first thing mshv_emu_ioctl does for RUN_VP, inline (no call a signal
 * could land in): from the store of emu_run_inside, or the mask system call,
 * on the thread is inside the ioctl. Returns the caller's mask (blocked mode).
 */
static inline uint64_t emu_run_signals_begin(struct emu_run_held *held)
{
	static const uint64_t blocked = EMU_RUN_SIGNALS_BLOCKED;
	uint64_t caller = 0;

	if (emu_sig_wrapping) {
		held->sigs = 0;
		held->n = 0;
		emu_run_held = held;
		emu_run_signalled = 0;
		atomic_signal_fence(memory_order_seq_cst);
		emu_run_inside = 1;
		return 0;
	}
	emu_sigprocmask_raw(SIG_BLOCK, &blocked, &caller);
	emu_run_signals_blocked(caller);
	return caller;
}

/* The last thing RUN_VP does: the caller's mask back (blocked mode: pending handlers run). */
void emu_run_signals_end(uint64_t caller, const struct emu_run_held *held);	/* keeps errno */
/* run.c: the kvm_run a signal's immediate_exit goes to, for this thread's RUN_VP. */
void emu_run_signals_target(struct kvm_run *run);
void emu_run_signals_untarget(struct kvm_run *run);	/* keeps errno */
/* immediate_exit = whether a signal came in during this RUN_VP (after a settle). */
void emu_run_signals_rearm(struct kvm_run *run);	/* keeps errno */
/* Blocked mode: KVM_RUN gets the RUN_VP caller's mask (KVM_SET_SIGNAL_MASK). */
int emu_run_signals_kvm_mask(struct emu_vp *vp);
/*
 * sigaction() from the client (preload.c), for every signal but
 * SIGSEGV/SIGBUS: 1 when handled (the result in *ret), 0 to pass it on.
 */
struct sigaction;
int emu_signals_sigaction(int sig, const struct sigaction *act, struct sigaction *old, int *ret);

/* ---- run.c (settle) ----------------------------------------------------- */
/* Settle KVM's pending IO/MMIO before registers are read or written. */
int emu_vp_settle(struct emu_vp *vp);

/* ---- intercept.c --------------------------------------------------------- */

/* Fill the 40-byte intercept header from the vCPU's current state. */
int emu_intercept_header(struct emu_vp *vp, struct hv_x64_intercept_message_header *hdr,
			 uint8_t access_type, uint8_t instruction_length);
/* The hv_message header for a payload of `size` bytes (the rest zeroed). */
void emu_message_init(struct hv_message *msg, uint32_t type, size_t size);

/* ---- pagewalk.c ---------------------------------------------------------- */

/* 16, 32 or 64: the code size the CPU fetches with. */
int emu_code_bits(const struct kvm_sregs *sr);
/* Guest linear -> guest physical address with the VP's current paging; -1 if not mapped. */
int emu_linear_to_gpa(struct emu_vp *vp, uint64_t linear, uint64_t *gpa);
/* Linear and guest physical address of CS:ip; -1 if the guest's paging does not map it. */
int emu_code_gpa(struct emu_vp *vp, uint64_t ip, uint64_t *linear, uint64_t *gpa);
/* Read len bytes at CS:ip; returns the count read. */
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len);
/* Read up to 16 instruction bytes at the guest's RIP (rest zeroed); returns the count read. */
int emu_fetch_instruction(struct emu_vp *vp, uint64_t rip, uint8_t bytes[16]);

/* ---- regs.c -------------------------------------------------------------- */

/* Get/set one Hyper-V register; returns an HV_STATUS_* code (0 = success). */
uint16_t emu_reg_get(struct emu_vp *vp, uint32_t name, union hv_register_value *value);
uint16_t emu_reg_set(struct emu_vp *vp, uint32_t name, const union hv_register_value *value);
uint32_t emu_reg_get_run(struct emu_vp *vp, const uint32_t *names, uint32_t count,
			 union hv_register_value *out, uint16_t *status);
uint32_t emu_reg_set_run(struct emu_vp *vp, const uint32_t *names,
			 const union hv_register_value *values, uint32_t count, uint16_t *status);
/* Register page: fill from KVM after an exit; apply dirty classes before a run. */
int emu_regpage_fill(struct emu_vp *vp, bool full);	/* full: also XMM0-5, DR7, XFEM */
int emu_regpage_apply(struct emu_vp *vp);

/* ---- hvcall.c ------------------------------------------------------------ */

enum emu_hvcall_origin { EMU_HVCALL_DEVICE, EMU_HVCALL_PARTITION, EMU_HVCALL_VP };
int emu_root_hvcall(struct emu_partition *pt, enum emu_hvcall_origin origin,
		    struct mshv_root_hvcall *uarg);

/* ---- hvstatus.c ---------------------------------------------------------- */

/* hv_result_to_errno: the errno a failed hypercall status gives. */
int emu_hv_status_errno(uint16_t status);

/* ---- properties.c, cpuid.c ------------------------------------------------ */

void emu_props_destroy(struct emu_partition *pt);		/* at partition destroy */
void emu_cpuid_results_destroy(struct emu_partition *pt);	/* at partition destroy */

/* ---- vpstate.c ----------------------------------------------------------- */

int emu_vp_state(struct emu_vp *vp, bool set, struct mshv_get_set_vp_state *uarg);

/* ---- irq.c --------------------------------------------------------------- */

int emu_irqfd(struct emu_partition *pt, const struct mshv_user_irqfd *arg);
int emu_ioeventfd(struct emu_partition *pt, const struct mshv_user_ioeventfd *arg);
int emu_set_msi_routing(struct emu_partition *pt, const struct mshv_user_irq_table *uarg);
void emu_irq_release(struct emu_partition *pt);		/* partition fd closed */
/* Inject an MSI-style interrupt into the partition's LAPICs (assert hypercall). */
int emu_assert_interrupt(struct emu_partition *pt, uint32_t vector, uint64_t apic_id,
			 uint32_t type, bool logical, bool level);

/* ---- gpap.c -------------------------------------------------------------- */

int emu_gpap_access_bitmap(struct emu_partition *pt, struct mshv_gpap_access_bitmap *arg);
/* HvCallGetGpaPagesAccessStates backing; returns an HV status. */
uint16_t emu_gpa_access_states(struct emu_partition *pt, uint64_t base_pfn, uint32_t count,
			       uint8_t *states, uint64_t flags, uint32_t *done);

/* ---- user pointers ------------------------------------------------------- */

/*
 * The address of member m of the client's struct type at p, reached without a member access
 * through p: a client's pointer may be misaligned (copy_from_user has no alignment rule), and a
 * member access through a misaligned pointer is undefined behaviour.
 */
#define EMU_USER_MEMBER(p, type, m) ((void *)((uintptr_t)(p) + offsetof(type, m)))
/*
 * copy_from_user/copy_to_user: a bad pointer from the client must give
 * EFAULT, never a crash: a memcpy guarded by our SIGSEGV/SIGBUS handler, or
 * process_vm_readv/writev on our own pid when that cannot be installed.
 */
int emu_copy_from_user(void *dst, const void *usrc, size_t len);
int emu_copy_to_user(void *udst, const void *src, size_t len);
/* Reads of client memory in a run under one fault guard (uaccess.c); -2: no guard here. */
int emu_guarded_call(int (*fn)(void *), void *arg);
void emu_guarded_load(void *dst, const void *src, size_t len);
/*
 * sigaction() of SIGSEGV/SIGBUS from the client (preload.c): our fault handler
 * stays installed and act becomes the one faults outside a guarded copy go
 * to; old gets the client's current one. 1 if done, 0 to pass the call on.
 */
struct sigaction;
int emu_fault_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

/* ---- core additions (entry.c, device.c, regions.c, vp.c) ------------------ */

/* entry.c: the handle's last reference is gone (every fd closed, no call in flight). */
void emu_file_release(struct emu_file *f);
/*
 * regions.c: re-register every memslot with (on) or without KVM_MEM_LOG_DIRTY_PAGES.
 * Hook for gpap.c when GPA_PAGE_ACCESS_TRACKING changes; caller holds pt->lock.
 * New regions get KVM_MEM_LOG_DIRTY_PAGES iff pt->gpa_access_tracking.
 */
int emu_regions_set_dirty_logging(struct emu_partition *pt, bool on);
/*
 * Notes on ownership:
 * - device.c frees pt->routes at destroy; irq.c must set it to NULL if it
 *   frees the table earlier.
 * - vp->handle_fd is the VP's private fd of its memfd (the client's VP fd is
 *   a dup of it); emu_vp_mmap maps it. Closed at emu_vp_destroy.
 * - emu_vp_mmap's off is in bytes (the mmap offset), not pages.
 */

/* ---- run additions (run.c, regs.c, cpuid.c, properties.c, vpstate.c) ------ */

/* regs.c: make run->s.regs current (fetches it once before the first KVM_RUN). */
int emu_regs_sync(struct emu_vp *vp);
/* regs.c: apply register writes that KVM validates together (SREGS); an HV status */
void emu_sregs_write_begin(struct emu_vp *vp);
uint16_t emu_regs_commit(struct emu_vp *vp);
/* regs.c: conversions shared by intercept.c and vpstate.c */
void emu_seg_to_hv(const struct kvm_segment *k, struct hv_x64_segment_register *h);
void emu_seg_from_hv(const struct hv_x64_segment_register *h, struct kvm_segment *k);
uint64_t emu_pending_interruption(const struct kvm_vcpu_events *ev);
uint64_t emu_interrupt_state(const struct kvm_vcpu_events *ev);
int emu_xcr0_get(struct emu_vp *vp, __u64 *xcr0);
/* regs.c: one MSR of the vCPU through KVM_GET/SET_MSRS; -1 when KVM refused it */
int emu_kvm_msr(struct emu_vp *vp, uint32_t index, uint64_t *value, bool set);
/* run.c: give KVM this VP's installed exception intercepts and CPUID results */
int emu_vp_prepare(struct emu_vp *vp);
/* cpuid.c: apply registered CPUID results to a VP's KVM CPUID (pt->lock not needed) */
int emu_cpuid_results_apply(struct emu_vp *vp);
/* cpuid.c: a new VP's CPUID, the hypervisor's leaves included (at CREATE_VP) */
int emu_cpuid_vp_init(struct emu_vp *vp);
/* properties.c: the partition's XSAVE layout (XSAVE_STATES, MAX_XSAVE_DATA_SIZE) */
struct emu_xsave_layout {
	uint64_t states;		/* XFEM bits, x87 and SSE included */
	uint32_t size;			/* compacted size of states */
	uint32_t std_off[64];		/* component offsets, standard form (CPUID 0xD.i.EBX) */
	uint32_t comp_off[64];		/* component offsets, compacted form */
	uint32_t comp_size[64];
	uint64_t align64;		/* components 64-byte aligned when compacted (0xD.i ECX[1]) */
};
const struct emu_xsave_layout *emu_xsave_layout(struct emu_partition *pt);
/*
 * properties.c: HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION, what a guest
 * RDMSR/WRMSR of an MSR nobody implements does: HV_UNIMPLEMENTED_MSR_ACTION_FAULT
 * (#GP, the default) or _IGNORE_WRITE_READ_ZERO. Any thread, no lock needed.
 */
uint64_t emu_unimplemented_msr_action(struct emu_partition *pt);
/*
 * properties.c: the synthetic features the guest gets (hv_partition_synthetic_
 * processor_features bank 0): the SYNTHETIC_PROC_FEATURES the VMM set, limited
 * to what the emulator implements. Gate synthetic registers with it. No lock.
 */
uint64_t emu_synthetic_proc_features(struct emu_partition *pt);
/* properties.c: what the emulator implements (ASSIGNABLE_SYNTHETIC_PROC_FEATURES bank 0). */
uint64_t emu_synthetic_proc_features_assignable(void);
/*
 * properties.c: PHYSICAL_ADDRESS_WIDTH, the guest-physical address bits (the
 * host's MAXPHYADDR unless the VMM set fewer), and whether npages from pfn
 * fit in them. No lock.
 */
uint64_t emu_partition_phys_bits(struct emu_partition *pt);
bool emu_gpa_range_fits(struct emu_partition *pt, uint64_t pfn, uint64_t npages);
/* vpstate.c: free the per-VP stored state (call from emu_vp_destroy). */
void emu_vpstate_destroy(struct emu_vp *vp);

/* ---- for gpap.c (owner: irq): implemented there ---------------------------- */

/*
 * HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING set through
 * SET_PARTITION_PROPERTY (properties.c calls it with pt->lock held): switch dirty
 * logging of the partition's memslots on or off. Returns -1/errno on failure.
 */
int emu_gpap_set_tracking(struct emu_partition *pt, bool on);

/* ---- irq additions (irq.c, gpap.c) ----------------------------------------- */

/*
 * irq.c, for run.c: KVM_EXIT_IOAPIC_EOI (the guest EOI'd a level-triggered
 * vector). Signals the resamplefd of RESAMPLE irqfds whose GSI == vector
 * (mshv_notify_acked_gsi). true: consumed, resume the guest; false: RUN_VP
 * returns HVMSG_X64_APIC_EOI to the VMM. Needs no lock.
 */
bool emu_irq_eoi(struct emu_partition *pt, uint32_t vector);
/*
 * irq.c, for run.c: a guest MMIO write KVM did not consume (KVM_EXIT_MMIO,
 * is_write). true: it matched an ioeventfd KVM could not hold (signalled;
 * skip the instruction, no intercept message). Needs no lock.
 */
bool emu_ioeventfd_mmio_write(struct emu_partition *pt, uint64_t gpa, uint32_t len,
			      uint64_t data);
/* gpap.c, for device.c: free the access-state tracking at partition destroy. */
void emu_gpap_destroy(struct emu_partition *pt);

/* ---- time.c (hypervisor: partition reference time, TIME_FREEZE) ----------- */

void emu_time_init(struct emu_partition *pt);
void emu_time_destroy(struct emu_partition *pt);
/* The partition reference counter, 100 ns units since creation (stops while frozen). */
uint64_t emu_time_reference(struct emu_partition *pt);
bool emu_time_frozen(struct emu_partition *pt);
/* HV_PARTITION_PROPERTY_TIME_FREEZE 1/0; an HV status. */
uint16_t emu_time_freeze(struct emu_partition *pt, bool freeze);
/* HV_PARTITION_PROPERTY_REFERENCE_TIME set: only while frozen; an HV status. */
uint16_t emu_time_reference_set(struct emu_partition *pt, uint64_t ticks);

/* time.c: a VP's deferred part of TIME_FREEZE/thaw, at the start of RUN_VP (VP mutex held). */
void emu_time_vp_run(struct emu_vp *vp);
/* time.c: a LAPIC state set while frozen: its timer count holds until the thaw (VP mutex held). */
void emu_time_vp_lapic_set(struct emu_vp *vp, const struct kvm_lapic_state *l);

/* ---- synthetic.c (hypervisor: synthetic registers) ------------------------- */

void emu_synthetic_init(struct emu_partition *pt);	/* at partition create */
void emu_synthetic_destroy(struct emu_partition *pt);
/* At CREATE_VP: the VP's store (vp->vpstate, reset values); -1/errno. */
int emu_synthetic_vp_init(struct emu_vp *vp);
/* At the first CREATE_VP (partition mutex held): guest synthetic MSR accesses exit to us. */
int emu_synthetic_msr_exits(struct emu_partition *pt);
/* Synthetic MSR registers (HV_REGISTER_GUEST_OS_ID, SINTx, STIMERx_*...): an HV status. */
bool emu_synthetic_is_register(uint32_t name);
uint16_t emu_synthetic_reg_get(struct emu_vp *vp, uint32_t name, union hv_register_value *value);
uint16_t emu_synthetic_reg_set(struct emu_vp *vp, uint32_t name,
			       const union hv_register_value *value);
/* PENDING_EVENT0/1, DELIVERABILITY_NOTIFICATIONS, INSTRUCTION_EMULATION_HINTS. */
bool emu_synthetic_is_state_register(uint32_t name);
uint16_t emu_synthetic_state_reg_get(struct emu_vp *vp, uint32_t name,
				     union hv_register_value *value);
uint16_t emu_synthetic_state_reg_set(struct emu_vp *vp, uint32_t name,
				     const union hv_register_value *value);
uint64_t emu_synthetic_emulation_hints(struct emu_vp *vp);
/* MSHV_GET/SET_VP_STATE SIMP, SIEFP, SYNTHETIC_TIMERS: an HV status. */
uint16_t emu_synthetic_state(struct emu_vp *vp, uint8_t type, bool set, uint8_t *buf,
			     uint32_t size);
/* A guest RDMSR/WRMSR (run.c emu_exit_msr). */
enum { EMU_MSR_DONE, EMU_MSR_FAULT, EMU_MSR_NOT_SYNTHETIC };
int emu_synthetic_msr(struct emu_vp *vp, uint32_t msr, bool write, uint64_t *data);
/* RUN_VP bracket (vp.c): VP_RUNTIME, pending events handed to KVM. */
void emu_synthetic_run_begin(struct emu_vp *vp);
void emu_synthetic_run_end(struct emu_vp *vp);
/* `mshv info`: how the guest sees the synthetic registers on this host. */
EMU_EXPORT const char *mshv_emu_synthetic_view(void);

#endif /* MSHV_EMU_H */
