/* SPDX-License-Identifier: MIT */
/*
 * A random client of /dev/mshv, run under LD_PRELOAD=libmshv_emu.so
 * (test_fuzz.py). Only libc, <linux/mshv.h> and mshv_hvdefs.h.
 *
 *   fuzz_client <seed> <operations> [noleakcheck | fdcheck]
 *
 * The rule it checks: whatever a client passes (pointers, sizes, struct
 * fields, ioctl numbers, hypercall codes and inputs, register values, VP
 * state, mmap offsets, call order, closes while a VP runs in another thread),
 * the emulator answers with an errno or an HV status, never a crash
 * (SIGSEGV/SIGABRT/SIGBUS kill this process), a hang (a watchdog thread
 * prints the operation and exits 3), or a leaked fd or mapping (counted in
 * /proc/self at the start and after closing everything; exit 4).
 *
 * Setup: partitions with and without LAPIC, 64 KiB of guest RAM at GPA
 * 0x10000 holding a real-mode guest (OUT, IN, MMIO write/read at 0x30000,
 * HLT; a spin loop; CLI+HLT; UD2; INT), VPs with CS:IP at the guest. Every
 * RUN_VP is bounded by a periodic per-thread timer (SIGUSR1, no SA_RESTART):
 * a spinning or halted guest ends in EINTR.
 *
 * The same seed gives the same sequence of operations (the race operation's
 * interleaving aside). FUZZ_TRACE=1 in the environment prints each operation;
 * FUZZ_HANG_SECONDS (default 20) is how long the watchdog waits for progress.
 * Output: "key=value" lines (seed, ops, counts by result); exit 0 when clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
#define GUEST_GPA 0x10000UL
#define GUEST_SIZE 0x10000UL
#define MMIO_GPA 0x30000UL
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif


/* ---- random numbers (xorshift64*), one stream per seed ------------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t rn(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned pct)
{
	return rn(100) < pct;
}

#define PICK(arr) ((arr)[rn(sizeof(arr) / sizeof((arr)[0]))])

/* A "boundary" 64-bit value: small, near a power of two, near 2^64, or random. */
static uint64_t rval64(void)
{
	static const uint64_t edges[] = {
		0, 1, 2, 7, 8, 0xff, 0x100, 0xfff, 0x1000, 0xffff, 0x10000, 0x7fffffff,
		0x80000000, 0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL,
		0x8000000000000000ULL, 0xfffffffffffff000ULL, 0xffffffffffffffffULL,
		0xfffffffffffffffeULL, 1ULL << 52, (1ULL << 52) - 1, 0xfffffffffffffULL,
	};

	switch (rn(4)) {
	case 0:
		return PICK(edges);
	case 1:
		return PICK(edges) + rn(5) - 2;
	case 2:
		return rn(0x100);
	default:
		return rnd();
	}
}

static void rfill(void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

/* ---- progress, trace and watchdog ------------------------------------------ */

static uint64_t seed;
static atomic_ulong progress;		/* bumped by every operation, both threads */
static const char *volatile cur_op = "setup";
static volatile unsigned long cur_iter;
static bool trace;
static unsigned long stat_ok, stat_err, stat_runs, stat_msgs, stat_eintr, stat_weird;
static int weird_errnos[16];

static void op(const char *name)
{
	cur_op = name;
	atomic_fetch_add(&progress, 1);
	if (trace) {
		fprintf(stderr, "[%lu] %s\n", cur_iter, name);
		fflush(stderr);
	}
}

/* On a hang: where each thread is blocked (/proc/self/task/<tid>/syscall: number, args). */
static void dump_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300], line[256];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f))
			printf("thread %s syscall: %s", e->d_name, line);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

static void *watchdog(void *arg)
{
	const char *env = getenv("FUZZ_HANG_SECONDS");
	int limit = env && atoi(env) > 0 ? atoi(env) : 20;
	unsigned long last = ~0UL;
	int still = 0;

	for (;;) {
		sleep(1);
		unsigned long now = atomic_load(&progress);

		if (now != last) {
			last = now;
			still = 0;
			continue;
		}
		if (++still >= limit) {
			printf("hang: seed=%llu iter=%lu op=%s (no progress for %d s)\n",
			       (unsigned long long)seed, cur_iter, cur_op, limit);
			dump_threads();
			fflush(stdout);
			_exit(3);
		}
	}
	return arg;
}

/*
 * Every errno an mshv ioctl/mmap may give (mshv_root_main.c, and
 * hv_result_to_errno for statuses); anything else is counted as "weird" and printed, not fatal.
 */
static void account(long ret, int err)
{
	static const int known[] = {
		EFAULT, EINVAL, ENOTTY, EBADF, EEXIST, ENOENT, ENOMEM, EBUSY, EOPNOTSUPP,
		ENODEV, EINTR, EPERM, EACCES, EIO, ENOSPC, EAGAIN, EBADFD, ENXIO, E2BIG,
		EOVERFLOW, ENOSYS, ECHILD, EDEADLK, ETIMEDOUT, ERANGE, EMFILE, ENFILE,
	};

	if (ret >= 0) {
		stat_ok++;
		return;
	}
	stat_err++;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (err == known[i])
			return;
	stat_weird++;
	for (int i = 0; i < 16; i++) {
		if (weird_errnos[i] == err)
			break;
		if (!weird_errnos[i]) {
			weird_errnos[i] = err;
			fprintf(stderr, "weird errno %d (%s) from %s at iter %lu\n", err,
				strerror(err), cur_op, cur_iter);
			break;
		}
	}
}

static long xioctl(int fd, unsigned long req, void *arg)
{
	long ret = ioctl(fd, req, arg);

	account(ret, errno);
	return ret;
}

/* ---- client memory: buffers, bad pointers ---------------------------------- */

/*
 * arena: BUF_PAGES read-write pages, then a PROT_NONE guard page, then a
 * read-only page. A "short" pointer ends its object right at the guard.
 */
#define BUF_PAGES 20
static uint8_t *arena;
static uint8_t *guard;
static uint8_t *ropage;

static void *ptr_short(size_t want, size_t have)
{
	(void)want;
	return guard - have;
}

/*
 * A pointer for an argument of `need` bytes: mostly a good one (contents are
 * the caller's), otherwise NULL, unmapped, kernel, non-canonical, read-only,
 * misaligned, or running into the guard page.
 */
static void *bad_ptr(size_t need)
{
	switch (rn(9)) {
	case 0:
		return NULL;
	case 1:
		return guard + rn(PAGE);
	case 2:
		return (void *)(0xffff888000000000ULL + rn(1 << 20) * 8);
	case 3:
		return (void *)(0x0000800000000000ULL + rn(4096));
	case 4:
		return ropage;
	case 5:
		return ptr_short(need, need ? rn(need) : 0);
	case 6:
		return (void *)(uintptr_t)rval64();
	case 7:
		return (void *)(uintptr_t)1;
	default:
		return (void *)(0xfffffffffffff000ULL + rn(0x1000));
	}
}

/* ---- objects the client holds ------------------------------------------------ */

enum fz_kind { FZ_DEV = 1, FZ_PT, FZ_VP };

struct fz_pt {
	bool lapic;
	uint32_t vp_index[16];
	int nvps;
	uint8_t *mem;			/* guest RAM at GUEST_GPA */
};

struct fz_fd {
	int fd;
	enum fz_kind kind;
	int pt;				/* index into pts */
	uint32_t vp_index;
	struct hv_vp_register_page *rp;	/* our mapping of its register page, or NULL */
};

#define MAX_FDS 48
#define MAX_PTS 64
#define MAX_MAPS 256			/* initial size of the mapping table */
#define EPOCH 1000			/* operations between two full teardowns */
static struct fz_fd fds[MAX_FDS];
static int nfds;
static struct fz_pt pts[MAX_PTS];
static int npts;
static int closed_fds[32];		/* numbers we closed (maybe reused since) */
static int nclosed;
static int other_fds[6];		/* /dev/null, eventfds, a pipe */
static struct fz_map { void *addr; size_t len; } *maps;
static int nmaps, maps_cap;

/*
 * Held until the next close_everything(): the caller goes on using it (guest
 * RAM, a register page), so a full table grows rather than unmapping it.
 */
static void track_map(void *addr, size_t len)
{
	if (nmaps == maps_cap) {
		int cap = maps_cap ? 2 * maps_cap : MAX_MAPS;
		struct fz_map *grown = realloc(maps, (size_t)cap * sizeof(*maps));

		if (!grown) {
			fprintf(stderr, "out of memory tracking mappings\n");
			exit(2);
		}
		maps = grown;
		maps_cap = cap;
	}
	maps[nmaps].addr = addr;
	maps[nmaps].len = len;
	nmaps++;
}

static struct fz_fd *add_fd(int fd, enum fz_kind kind, int pt, uint32_t vp_index)
{
	if (nfds >= MAX_FDS) {
		close(fd);
		return NULL;
	}
	fds[nfds] = (struct fz_fd){ .fd = fd, .kind = kind, .pt = pt, .vp_index = vp_index };
	return &fds[nfds++];
}

static void drop_fd(int i)
{
	close(fds[i].fd);
	closed_fds[rn(32)] = fds[i].fd;
	if (nclosed < 32)
		nclosed++;
	fds[i] = fds[--nfds];
}

static struct fz_fd *pick(enum fz_kind kind)
{
	int idx[MAX_FDS], n = 0;

	for (int i = 0; i < nfds; i++)
		if (!kind || fds[i].kind == kind)
			idx[n++] = i;
	return n ? &fds[idx[rn(n)]] : NULL;
}

/* An fd to aim a call at: ours of the wanted kind mostly, anything otherwise. */
static int pick_fd(enum fz_kind kind, struct fz_fd **out)
{
	struct fz_fd *f;

	*out = NULL;
	if (chance(85)) {
		f = pick(chance(80) ? kind : 0);
		if (f) {
			*out = f;
			return f->fd;
		}
	}
	switch (rn(4)) {
	case 0:
		return nclosed ? closed_fds[rn(nclosed)] : -1;
	case 1:
		return PICK(other_fds);
	case 2:
		return -1;
	default:
		return (int)rn(1 << 20);
	}
}

/* ---- the guest ----------------------------------------------------------------- */

/* Real-mode code at GUEST_GPA (CS = 0x1000, IP = entry). */
static const uint8_t guest_code[] = {
	0xba, 0x34, 0x12,	/* 0x00 mov $0x1234, %dx */
	0xee,			/* 0x03 out %al, (%dx) */
	0xec,			/* 0x04 in (%dx), %al */
	0xb8, 0x00, 0x30,	/* 0x05 mov $0x3000, %ax */
	0x8e, 0xd8,		/* 0x08 mov %ax, %ds */
	0xa2, 0x00, 0x00,	/* 0x0a mov %al, 0 (MMIO write at 0x30000) */
	0xa0, 0x00, 0x00,	/* 0x0d mov 0, %al (MMIO read) */
	0xf4,			/* 0x10 hlt */
	0xeb, 0xed,		/* 0x11 jmp 0x00 */
};
static const uint16_t guest_entries[] = { 0x00, 0x20, 0x30, 0x40, 0x50, 0x60, 0xffff, 0xfffe };

static void guest_load(uint8_t *mem)
{
	memset(mem, 0xf4, GUEST_SIZE);			/* hlt everywhere else */
	memcpy(mem, guest_code, sizeof(guest_code));
	memcpy(mem + 0x20, "\xeb\xfe", 2);		/* spin */
	memcpy(mem + 0x30, "\xfa\xf4\xeb\xfd", 4);	/* cli; hlt; jmp hlt */
	memcpy(mem + 0x40, "\x0f\x0b", 2);		/* ud2 */
	memcpy(mem + 0x50, "\xcd\x10", 2);		/* int $0x10 */
	memcpy(mem + 0x60, "\xe6\x80\xe4\x81\x0f\xa2\x0f\x32\xeb\xf6", 10); /* out, in, cpuid, rdmsr */
	/* instructions cut by the end of RAM: the rest would be fetched from MMIO */
	memcpy(mem + GUEST_SIZE - 2, "\xe6\xe6", 2);	/* out $imm8, %al */
}

/* ---- hypercall helpers ----------------------------------------------------------- */

static uint8_t hv_in[PAGE] __attribute__((aligned(PAGE)));
static uint8_t hv_out[PAGE] __attribute__((aligned(PAGE)));

static int set_reg(int fd, uint32_t vp, uint32_t name, const union hv_register_value *v)
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
	in.h.vp_index = vp;
	in.r.name = name;
	in.r.value = *v;
	return (int)xioctl(fd, MSHV_ROOT_HVCALL, &a);
}

static void vp_point_at_guest(int fd, uint32_t vp, uint16_t ip)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.segment.selector = GUEST_GPA >> 4;
	v.segment.base = GUEST_GPA;
	v.segment.limit = 0xffff;
	v.segment.attributes = 0x9b;
	set_reg(fd, vp, HV_X64_REGISTER_CS, &v);
	memset(&v, 0, sizeof(v));
	v.reg64 = ip;
	set_reg(fd, vp, HV_X64_REGISTER_RIP, &v);
	v.reg64 = 2;
	set_reg(fd, vp, HV_X64_REGISTER_RFLAGS, &v);
}

/* Every register name and partition property code the header defines. */
static const uint32_t fz_reg_names[] = {
	HV_REGISTER_EXPLICIT_SUSPEND,
	HV_REGISTER_INTERCEPT_SUSPEND,
	HV_REGISTER_INSTRUCTION_EMULATION_HINTS,
	HV_REGISTER_DISPATCH_SUSPEND,
	HV_REGISTER_INTERNAL_ACTIVITY_STATE,
	HV_REGISTER_HYPERVISOR_VERSION,
	HV_REGISTER_PRIVILEGES_AND_FEATURES_INFO,
	HV_REGISTER_FEATURES_INFO,
	HV_REGISTER_IMPLEMENTATION_LIMITS_INFO,
	HV_REGISTER_HARDWARE_FEATURES_INFO,
	HV_REGISTER_CPU_MANAGEMENT_FEATURES_INFO,
	HV_REGISTER_SVM_FEATURES_INFO,
	HV_REGISTER_SKIP_LEVEL_FEATURES_INFO,
	HV_REGISTER_NESTED_VIRT_FEATURES_INFO,
	HV_REGISTER_IPT_FEATURES_INFO,
	HV_REGISTER_GUEST_CRASH_P0,
	HV_REGISTER_GUEST_CRASH_P1,
	HV_REGISTER_GUEST_CRASH_P2,
	HV_REGISTER_GUEST_CRASH_P3,
	HV_REGISTER_GUEST_CRASH_P4,
	HV_REGISTER_GUEST_CRASH_CTL,
	HV_REGISTER_PENDING_INTERRUPTION,
	HV_REGISTER_INTERRUPT_STATE,
	HV_REGISTER_PENDING_EVENT0,
	HV_REGISTER_PENDING_EVENT1,
	HV_REGISTER_DELIVERABILITY_NOTIFICATIONS,
	HV_X64_REGISTER_DELIVERABILITY_NOTIFICATIONS,
	HV_X64_REGISTER_PENDING_DEBUG_EXCEPTION,
	HV_X64_REGISTER_RAX,
	HV_X64_REGISTER_RCX,
	HV_X64_REGISTER_RDX,
	HV_X64_REGISTER_RBX,
	HV_X64_REGISTER_RSP,
	HV_X64_REGISTER_RBP,
	HV_X64_REGISTER_RSI,
	HV_X64_REGISTER_RDI,
	HV_X64_REGISTER_R8,
	HV_X64_REGISTER_R9,
	HV_X64_REGISTER_R10,
	HV_X64_REGISTER_R11,
	HV_X64_REGISTER_R12,
	HV_X64_REGISTER_R13,
	HV_X64_REGISTER_R14,
	HV_X64_REGISTER_R15,
	HV_X64_REGISTER_RIP,
	HV_X64_REGISTER_RFLAGS,
	HV_X64_REGISTER_XMM0,
	HV_X64_REGISTER_XMM1,
	HV_X64_REGISTER_XMM2,
	HV_X64_REGISTER_XMM3,
	HV_X64_REGISTER_XMM4,
	HV_X64_REGISTER_XMM5,
	HV_X64_REGISTER_XMM6,
	HV_X64_REGISTER_XMM7,
	HV_X64_REGISTER_XMM8,
	HV_X64_REGISTER_XMM9,
	HV_X64_REGISTER_XMM10,
	HV_X64_REGISTER_XMM11,
	HV_X64_REGISTER_XMM12,
	HV_X64_REGISTER_XMM13,
	HV_X64_REGISTER_XMM14,
	HV_X64_REGISTER_XMM15,
	HV_X64_REGISTER_FP_MMX0,
	HV_X64_REGISTER_FP_MMX1,
	HV_X64_REGISTER_FP_MMX2,
	HV_X64_REGISTER_FP_MMX3,
	HV_X64_REGISTER_FP_MMX4,
	HV_X64_REGISTER_FP_MMX5,
	HV_X64_REGISTER_FP_MMX6,
	HV_X64_REGISTER_FP_MMX7,
	HV_X64_REGISTER_FP_CONTROL_STATUS,
	HV_X64_REGISTER_XMM_CONTROL_STATUS,
	HV_X64_REGISTER_CR0,
	HV_X64_REGISTER_CR2,
	HV_X64_REGISTER_CR3,
	HV_X64_REGISTER_CR4,
	HV_X64_REGISTER_CR8,
	HV_X64_REGISTER_XFEM,
	HV_X64_REGISTER_INTERMEDIATE_CR0,
	HV_X64_REGISTER_INTERMEDIATE_CR3,
	HV_X64_REGISTER_INTERMEDIATE_CR4,
	HV_X64_REGISTER_INTERMEDIATE_CR8,
	HV_X64_REGISTER_DR0,
	HV_X64_REGISTER_DR1,
	HV_X64_REGISTER_DR2,
	HV_X64_REGISTER_DR3,
	HV_X64_REGISTER_DR6,
	HV_X64_REGISTER_DR7,
	HV_X64_REGISTER_ES,
	HV_X64_REGISTER_CS,
	HV_X64_REGISTER_SS,
	HV_X64_REGISTER_DS,
	HV_X64_REGISTER_FS,
	HV_X64_REGISTER_GS,
	HV_X64_REGISTER_LDTR,
	HV_X64_REGISTER_TR,
	HV_X64_REGISTER_IDTR,
	HV_X64_REGISTER_GDTR,
	HV_X64_REGISTER_TSC,
	HV_X64_REGISTER_EFER,
	HV_X64_REGISTER_KERNEL_GS_BASE,
	HV_X64_REGISTER_APIC_BASE,
	HV_X64_REGISTER_PAT,
	HV_X64_REGISTER_SYSENTER_CS,
	HV_X64_REGISTER_SYSENTER_EIP,
	HV_X64_REGISTER_SYSENTER_ESP,
	HV_X64_REGISTER_STAR,
	HV_X64_REGISTER_LSTAR,
	HV_X64_REGISTER_CSTAR,
	HV_X64_REGISTER_SFMASK,
	HV_X64_REGISTER_INITIAL_APIC_ID,
	HV_X64_REGISTER_MSR_MTRR_CAP,
	HV_X64_REGISTER_MSR_MTRR_DEF_TYPE,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE1,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE2,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE3,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE4,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE5,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE6,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE7,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE8,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASE9,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASEA,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASEB,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASEC,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASED,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASEE,
	HV_X64_REGISTER_MSR_MTRR_PHYS_BASEF,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK1,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK2,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK3,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK4,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK5,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK6,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK7,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK8,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASK9,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKA,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKB,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKC,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKD,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKE,
	HV_X64_REGISTER_MSR_MTRR_PHYS_MASKF,
	HV_X64_REGISTER_MSR_MTRR_FIX64K00000,
	HV_X64_REGISTER_MSR_MTRR_FIX16K80000,
	HV_X64_REGISTER_MSR_MTRR_FIX16KA0000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KC0000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KC8000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KD0000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KD8000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KE0000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KE8000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KF0000,
	HV_X64_REGISTER_MSR_MTRR_FIX4KF8000,
	HV_X64_REGISTER_TSC_AUX,
	HV_X64_REGISTER_BNDCFGS,
	HV_X64_REGISTER_DEBUG_CTL,
	HV_X64_REGISTER_SGX_LAUNCH_CONTROL0,
	HV_X64_REGISTER_SGX_LAUNCH_CONTROL1,
	HV_X64_REGISTER_SGX_LAUNCH_CONTROL2,
	HV_X64_REGISTER_SGX_LAUNCH_CONTROL3,
	HV_X64_REGISTER_SPEC_CTRL,
	HV_X64_REGISTER_PRED_CMD,
	HV_X64_REGISTER_VIRT_SPEC_CTRL,
	HV_X64_REGISTER_U_XSS,
	HV_X64_REGISTER_U_CET,
	HV_X64_REGISTER_S_CET,
	HV_X64_REGISTER_SSP,
	HV_X64_REGISTER_PL0_SSP,
	HV_X64_REGISTER_PL1_SSP,
	HV_X64_REGISTER_PL2_SSP,
	HV_X64_REGISTER_PL3_SSP,
	HV_X64_REGISTER_INTERRUPT_SSP_TABLE_ADDR,
	HV_X64_REGISTER_TSC_ADJUST,
	HV_X64_REGISTER_MSR_IA32_MISC_ENABLE,
	HV_X64_REGISTER_IA32_FEATURE_CONTROL,
	HV_X64_REGISTER_APIC_ID,
	HV_X64_REGISTER_APIC_VERSION,
	HV_REGISTER_VP_RUNTIME,
	HV_X64_REGISTER_HYPERCALL,
	HV_REGISTER_GUEST_OS_ID,
	HV_REGISTER_VP_INDEX,
	HV_REGISTER_TIME_REF_COUNT,
	HV_REGISTER_CPU_MANAGEMENT_VERSION,
	HV_X64_REGISTER_SYNTHETIC_EOI,
	HV_X64_REGISTER_SYNTHETIC_ICR,
	HV_X64_REGISTER_SYNTHETIC_TPR,
	HV_REGISTER_VP_ASSIST_PAGE,
	HV_REGISTER_VP_ROOT_SIGNAL_COUNT,
	HV_REGISTER_REFERENCE_TSC,
	HV_X64_REGISTER_GHCB,
	HV_X64_REGISTER_REG_PAGE,
	HV_X64_REGISTER_EMULATED_TIMER_PERIOD,
	HV_X64_REGISTER_EMULATED_TIMER_CONTROL,
	HV_X64_REGISTER_PM_TIMER_ASSIST,
	HV_REGISTER_SINT0,
	HV_REGISTER_SINT1,
	HV_REGISTER_SINT2,
	HV_REGISTER_SINT3,
	HV_REGISTER_SINT4,
	HV_REGISTER_SINT5,
	HV_REGISTER_SINT6,
	HV_REGISTER_SINT7,
	HV_REGISTER_SINT8,
	HV_REGISTER_SINT9,
	HV_REGISTER_SINT10,
	HV_REGISTER_SINT11,
	HV_REGISTER_SINT12,
	HV_REGISTER_SINT13,
	HV_REGISTER_SINT14,
	HV_REGISTER_SINT15,
	HV_REGISTER_SCONTROL,
	HV_REGISTER_SVERSION,
	HV_REGISTER_SIEFP,
	HV_REGISTER_SIMP,
	HV_REGISTER_EOM,
	HV_REGISTER_SIRBP,
	HV_REGISTER_STIMER0_CONFIG,
	HV_REGISTER_STIMER0_COUNT,
	HV_REGISTER_STIMER1_CONFIG,
	HV_REGISTER_STIMER1_COUNT,
	HV_REGISTER_STIMER2_CONFIG,
	HV_REGISTER_STIMER2_COUNT,
	HV_REGISTER_STIMER3_CONFIG,
	HV_REGISTER_STIMER3_COUNT,
	HV_REGISTER_VSM_VP_STATUS,
	HV_X64_REGISTER_CR_INTERCEPT_CONTROL,
	HV_X64_REGISTER_CR_INTERCEPT_CR0_MASK,
	HV_X64_REGISTER_CR_INTERCEPT_CR4_MASK,
	HV_X64_REGISTER_CR_INTERCEPT_IA32_MISC_ENABLE_MASK,
};

static const uint32_t fz_prop_codes[] = {
	HV_PARTITION_PROPERTY_PRIVILEGE_FLAGS,
	HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES,
	HV_PARTITION_PROPERTY_SUSPEND,
	HV_PARTITION_PROPERTY_CPU_RESERVE,
	HV_PARTITION_PROPERTY_CPU_CAP,
	HV_PARTITION_PROPERTY_CPU_WEIGHT,
	HV_PARTITION_PROPERTY_CPU_GROUP_ID,
	HV_PARTITION_PROPERTY_INTEGRATED_SCHEDULER_ENABLED,
	HV_PARTITION_PROPERTY_TIME_FREEZE,
	HV_PARTITION_PROPERTY_REFERENCE_TIME,
	HV_PARTITION_PROPERTY_DEBUG_CHANNEL_ID,
	HV_PARTITION_PROPERTY_VIRTUAL_TLB_PAGE_COUNT,
	HV_PARTITION_PROPERTY_VSM_CONFIG,
	HV_PARTITION_PROPERTY_ZERO_MEMORY_ON_RESET,
	HV_PARTITION_PROPERTY_PROCESSORS_PER_SOCKET,
	HV_PARTITION_PROPERTY_NESTED_TLB_SIZE,
	HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING,
	HV_PARTITION_PROPERTY_VSM_PERMISSIONS_DIRTY_SINCE_LAST_QUERY,
	HV_PARTITION_PROPERTY_SGX_LAUNCH_CONTROL_CONFIG,
	HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL0,
	HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL1,
	HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL2,
	HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL3,
	HV_PARTITION_PROPERTY_ISOLATION_STATE,
	HV_PARTITION_PROPERTY_ISOLATION_CONTROL,
	HV_PARTITION_PROPERTY_ALLOCATION_ID,
	HV_PARTITION_PROPERTY_MONITORING_ID,
	HV_PARTITION_PROPERTY_IMPLEMENTED_PHYSICAL_ADDRESS_BITS,
	HV_PARTITION_PROPERTY_NON_ARCHITECTURAL_CORE_SHARING,
	HV_PARTITION_PROPERTY_HYPERCALL_DOORBELL_PAGE,
	HV_PARTITION_PROPERTY_ISOLATION_POLICY,
	HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION,
	HV_PARTITION_PROPERTY_SEV_VMGEXIT_OFFLOADS,
	HV_PARTITION_PROPERTY_PROCESSOR_VENDOR,
	HV_PARTITION_PROPERTY_PROCESSOR_FEATURES_DEPRECATED,
	HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES,
	HV_PARTITION_PROPERTY_PROCESSOR_CL_FLUSH_SIZE,
	HV_PARTITION_PROPERTY_ENLIGHTENMENT_MODIFICATIONS,
	HV_PARTITION_PROPERTY_COMPATIBILITY_VERSION,
	HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH,
	HV_PARTITION_PROPERTY_XSAVE_STATES,
	HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE,
	HV_PARTITION_PROPERTY_PROCESSOR_CLOCK_FREQUENCY,
	HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0,
	HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1,
	HV_PARTITION_PROPERTY_GUEST_OS_ID,
	HV_PARTITION_PROPERTY_PROCESSOR_VIRTUALIZATION_FEATURES,
	HV_PARTITION_PROPERTY_VMM_CAPABILITIES,
	HV_PARTITION_PROPERTY_ASSIGNABLE_SYNTHETIC_PROC_FEATURES,
};

/* ---- setup operations -------------------------------------------------------------- */

static void op_open_dev(void)
{
	int fd;

	op("open /dev/mshv");
	fd = open("/dev/mshv", O_RDWR | (chance(50) ? O_CLOEXEC : 0));
	account(fd, errno);
	if (fd >= 0)
		add_fd(fd, FZ_DEV, -1, 0);
}

/* A partition with RAM and the guest; lapic as asked; v2 sometimes. */
static int new_partition(int dev, bool lapic, bool random_args)
{
	struct mshv_create_partition_v2 cp;
	struct mshv_user_mem_region r;
	struct fz_pt *p;
	int fd;

	if (npts >= MAX_PTS)
		return -1;
	memset(&cp, 0, sizeof(cp));
	cp.pt_flags = lapic ? 1ULL << MSHV_PT_BIT_LAPIC : 0;
	if (chance(30)) {
		cp.pt_flags |= 1ULL << MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES;
		cp.pt_num_cpu_fbanks = MSHV_NUM_CPU_FEATURES_BANKS;
	}
	if (random_args) {
		if (chance(50))
			cp.pt_flags = rval64();
		if (chance(30))
			cp.pt_isolation = rval64();
		if (chance(30))
			cp.pt_num_cpu_fbanks = (uint16_t)rnd();
		if (chance(30))
			rfill(cp.pt_rsvd, sizeof(cp.pt_rsvd));
		if (chance(40))
			rfill(cp.pt_cpu_fbanks, sizeof(cp.pt_cpu_fbanks));
		if (chance(20))
			rfill(cp.pt_rsvd1, sizeof(cp.pt_rsvd1));
		if (chance(40))
			cp.pt_disabled_xsave = rval64();
	}
	if (random_args && chance(15)) {
		void *p2 = chance(50) ? bad_ptr(sizeof(cp)) : ptr_short(64, 16 + rn(48));

		if ((uint8_t *)p2 >= arena && (uint8_t *)p2 < guard)
			memcpy(p2, &cp, (size_t)(guard - (uint8_t *)p2) < sizeof(cp) ?
			       (size_t)(guard - (uint8_t *)p2) : sizeof(cp));
		fd = (int)xioctl(dev, MSHV_CREATE_PARTITION, p2);
	} else {
		fd = (int)xioctl(dev, MSHV_CREATE_PARTITION, &cp);
	}
	if (fd < 0)
		return -1;
	p = &pts[npts];
	memset(p, 0, sizeof(*p));
	p->lapic = cp.pt_flags & 1;
	if (!add_fd(fd, FZ_PT, npts, 0))
		return -1;
	npts++;
	if (!random_args || chance(90))
		xioctl(fd, MSHV_INITIALIZE_PARTITION, NULL);
	p->mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return fd;
	}
	track_map(p->mem, GUEST_SIZE);
	guest_load(p->mem);
	r = (struct mshv_user_mem_region){
		.size = GUEST_SIZE, .guest_pfn = GUEST_GPA / PAGE,
		.userspace_addr = (uint64_t)(uintptr_t)p->mem, .flags = RW,
	};
	xioctl(fd, MSHV_SET_GUEST_MEMORY, &r);
	return fd;
}

static void op_new_partition(void)
{
	struct fz_fd *dev = pick(FZ_DEV);

	op("create partition");
	if (dev)
		new_partition(dev->fd, chance(50), chance(30));
}

static struct fz_fd *new_vp(struct fz_fd *pt, uint32_t index, bool map_page)
{
	struct mshv_create_vp cv = { .vp_index = index };
	struct fz_pt *p = &pts[pt->pt];
	struct fz_fd *f;
	void *rp;
	int fd;

	fd = (int)xioctl(pt->fd, MSHV_CREATE_VP, &cv);
	if (trace)
		fprintf(stderr, "  create vp %u on fd %d: %d\n", index, pt->fd, fd);
	if (fd < 0)
		return NULL;
	if (p->nvps < 16)
		p->vp_index[p->nvps++] = index;
	f = add_fd(fd, FZ_VP, pt->pt, index);
	if (!f)
		return NULL;
	vp_point_at_guest(fd, index, PICK(guest_entries));
	if (map_page) {
		rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			  MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
		account(rp == MAP_FAILED ? -1 : 0, errno);
		if (rp != MAP_FAILED) {
			track_map(rp, PAGE);
			f->rp = rp;
		}
	}
	return f;
}

static void op_new_vp(void)
{
	struct fz_fd *pt = pick(FZ_PT);
	uint32_t index;

	op("create vp");
	if (!pt)
		return;
	switch (rn(4)) {
	case 0:
		index = (uint32_t)rval64();
		break;
	case 1:
		index = 250 + (uint32_t)rn(10);
		break;
	default:
		index = (uint32_t)rn(4);
	}
	if (chance(10)) {
		/* a "bad" pointer may still be readable (the read-only page): keep the fd */
		int fd = (int)xioctl(pt->fd, MSHV_CREATE_VP, bad_ptr(4));

		if (fd >= 0)
			add_fd(fd, FZ_VP, pt->pt, 0);
		return;
	}
	new_vp(pt, index, chance(70));
}

/* ---- random ioctls --------------------------------------------------------------- */

static const unsigned long real_ioctls[] = {
	MSHV_CREATE_PARTITION, MSHV_INITIALIZE_PARTITION, MSHV_CREATE_VP,
	MSHV_SET_GUEST_MEMORY, MSHV_IRQFD, MSHV_IOEVENTFD, MSHV_SET_MSI_ROUTING,
	MSHV_GET_GPAP_ACCESS_BITMAP, MSHV_ROOT_HVCALL, MSHV_RUN_VP, MSHV_GET_VP_STATE,
	MSHV_SET_VP_STATE, MSHV_CHECK_EXTENSION, MSHV_GET_VP_REGISTERS,
	MSHV_SET_VP_REGISTERS, MSHV_CREATE_VTL, MSHV_HVCALL, MSHV_HVCALL_SETUP,
	MSHV_SINT_POST_MESSAGE, MSHV_RETURN_TO_LOWER_VTL,
};

static void op_random_ioctl(void)
{
	struct fz_fd *f;
	unsigned long req;
	void *arg;
	int fd = pick_fd(0, &f);
	bool ours = f != NULL;

	op("random ioctl");
	switch (rn(4)) {
	case 0:
		req = _IOC(rn(4), MSHV_IOCTL, rn(0x30), rn(0x4000));
		break;
	case 1:
		req = PICK(real_ioctls) ^ (rn(2) ? (1UL << rn(32)) : 0);
		break;
	case 2:
		req = PICK(real_ioctls);
		break;
	default:
		/* anything, but only on our fds: a stale number may now be KVM's */
		req = ours ? (uint32_t)rnd() : _IOC(rn(4), MSHV_IOCTL, rn(0x100), rn(0x4000));
		if (ours && chance(50))
			req = rnd();
	}
	if (!ours && ((req >> 8) & 0xff) != MSHV_IOCTL)
		req = _IOC(_IOC_DIR(req), MSHV_IOCTL, _IOC_NR(req), _IOC_SIZE(req));
	/* a real RUN_VP with a good buffer belongs to op_run (the timer) */
	if (req == MSHV_RUN_VP || req == MSHV_INITIALIZE_PARTITION)
		return;
	if (chance(60)) {
		arg = arena + rn(8);
		rfill(arg, 512);
	} else {
		arg = bad_ptr(rn(256));
	}
	long ret = xioctl(fd, req, arg);

	/* random bytes can make a valid CREATE_PARTITION/CREATE_VP: not ours to keep */
	if (ret > 0 && ours && (req == MSHV_CREATE_PARTITION || req == MSHV_CREATE_VP))
		close((int)ret);
}

/* ---- SET_GUEST_MEMORY ------------------------------------------------------------- */

static void op_set_memory(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_PT, &f);
	struct mshv_user_mem_region r;
	struct fz_pt *p = f && f->kind == FZ_PT ? &pts[f->pt] : NULL;
	void *host = NULL;

	op("set guest memory");
	memset(&r, 0, sizeof(r));
	r.size = chance(50) ? PAGE * (1 + rn(32)) : rval64();
	r.guest_pfn = chance(50) ? rn(0x200) : rval64();
	if (chance(20))
		r.guest_pfn = 0xfffffffffffff000ULL / PAGE * PAGE + rn(0x1000); /* near 2^64 */
	switch (rn(6)) {
	case 0:
		r.userspace_addr = (uint64_t)(uintptr_t)bad_ptr(r.size);
		break;
	case 1:
		if (p && p->mem)
			r.userspace_addr = (uint64_t)(uintptr_t)p->mem + PAGE * rn(16);
		break;
	case 2:
		r.userspace_addr = (uint64_t)(uintptr_t)arena;
		break;
	default:
		/* fresh host memory, sometimes unmapped before or after the map */
		host = mmap(NULL, PAGE * 16, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (host == MAP_FAILED)
			return;
		r.userspace_addr = (uint64_t)(uintptr_t)host;
		if (chance(80))
			r.size = PAGE * (1 + rn(16));
	}
	r.flags = chance(80) ? (uint8_t)rn(8) : (uint8_t)rnd();
	if (chance(10))
		rfill(r.rsvd, sizeof(r.rsvd));
	if (chance(10) && r.userspace_addr)
		r.userspace_addr += 1 + rn(PAGE - 1);
	if (chance(5)) {
		xioctl(fd, MSHV_SET_GUEST_MEMORY, bad_ptr(sizeof(r)));
	} else {
		long ret = xioctl(fd, MSHV_SET_GUEST_MEMORY, &r);

		if (trace)
			fprintf(stderr, "  fd %d size %#llx pfn %#llx uaddr %#llx flags %#x: %ld\n", fd,
				(unsigned long long)r.size, (unsigned long long)r.guest_pfn,
				(unsigned long long)r.userspace_addr, r.flags, ret);

		/* unmap it again half the time */
		if (ret == 0 && chance(50)) {
			r.flags |= 1 << MSHV_SET_MEM_BIT_UNMAP;
			xioctl(fd, MSHV_SET_GUEST_MEMORY, &r);
		}
	}
	if (host) {
		if (chance(30))
			munmap(host, PAGE * 16);	/* the region (if any) loses its backing */
		else
			track_map(host, PAGE * 16);
	}
}

/* ---- IRQFD / IOEVENTFD / MSI routing / GPAP ------------------------------------- */

static int rand_eventfd(void)
{
	struct fz_fd *f;

	if (chance(70))
		return other_fds[1 + rn(3)];
	return pick_fd(0, &f);
}

static void op_irqfd(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_PT, &f);
	struct mshv_user_irqfd a = {
		.fd = rand_eventfd(), .resamplefd = rand_eventfd(),
		.gsi = chance(70) ? (uint32_t)rn(32) : (uint32_t)rval64(),
		.flags = chance(80) ? (uint32_t)rn(4) : (uint32_t)rval64(),
	};

	op("irqfd");
	xioctl(fd, MSHV_IRQFD, chance(5) ? bad_ptr(sizeof(a)) : &a);
}

static void op_ioeventfd(void)
{
	static const uint32_t lens[] = { 0, 1, 2, 4, 8, 3, 16, 0xffffffff };
	struct fz_fd *f;
	int fd = pick_fd(FZ_PT, &f);
	struct mshv_user_ioeventfd a;

	op("ioeventfd");
	memset(&a, 0, sizeof(a));
	a.datamatch = rval64();
	a.addr = chance(50) ? MMIO_GPA + rn(16) : rval64();
	a.len = PICK(lens);
	a.fd = rand_eventfd();
	a.flags = chance(80) ? (uint32_t)rn(8) : (uint32_t)rval64();
	if (chance(10))
		rfill(a.rsvd, sizeof(a.rsvd));
	xioctl(fd, MSHV_IOEVENTFD, chance(5) ? bad_ptr(sizeof(a)) : &a);
}

static void op_msi_routing(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_PT, &f);
	struct mshv_user_irq_table *t;
	size_t room = BUF_PAGES * PAGE - 64;	/* bytes that fit before the guard */
	uint32_t nr;

	op("msi routing");
	switch (rn(5)) {
	case 0:
		nr = (uint32_t)rval64();
		break;
	case 1:
		nr = 4090 + (uint32_t)rn(12);
		break;
	default:
		nr = (uint32_t)rn(8);
	}
	/* the table ends at the guard: a large nr reads into it */
	size_t have = sizeof(*t) + (size_t)(nr < 5000 ? nr : 5000) * sizeof(t->entries[0]);

	if (have > room || chance(15))
		have = rn(room < have ? room : have) / 4 * 4;
	t = (void *)(guard - have - (chance(80) ? 0 : 8));
	rfill(t, have > sizeof(*t) ? sizeof(*t) : have);
	if (have >= sizeof(*t)) {
		t->nr = nr;
		t->rsvd = chance(90) ? 0 : (uint32_t)rnd();
		for (uint32_t i = 0; i < nr && sizeof(*t) + (i + 1) * sizeof(t->entries[0]) <= have; i++) {
			struct mshv_user_irq_entry *e = &t->entries[i];

			e->gsi = chance(80) ? i : (uint32_t)rn(5000);
			e->address_lo = chance(70) ? HV_MSI_ADDRESS_BASE | (uint32_t)(rn(4) << 12)
						   : (uint32_t)rnd();
			e->address_hi = chance(90) ? 0 : (uint32_t)rnd();
			e->data = chance(70) ? 0x20 + (uint32_t)rn(0xe0) : (uint32_t)rnd();
		}
	}
	xioctl(fd, MSHV_SET_MSI_ROUTING, chance(5) ? bad_ptr(8) : (void *)t);
}

static void op_gpap(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_PT, &f);
	struct mshv_gpap_access_bitmap a;
	uint64_t bytes;

	op("gpap bitmap");
	memset(&a, 0, sizeof(a));
	a.access_type = chance(80) ? (uint8_t)rn(2) : (uint8_t)rnd();
	a.access_op = chance(80) ? (uint8_t)rn(3) : (uint8_t)rnd();
	if (chance(10))
		rfill(a.rsvd, sizeof(a.rsvd));
	a.page_count = chance(60) ? rn(64) : rval64();
	a.gpap_base = chance(60) ? GUEST_GPA / PAGE + rn(32) - 8 : rval64();
	bytes = (a.page_count + 7) / 8;
	if (chance(70) && bytes <= BUF_PAGES * PAGE)
		a.bitmap_ptr = (uint64_t)(uintptr_t)(guard - bytes);
	else
		a.bitmap_ptr = (uint64_t)(uintptr_t)bad_ptr(bytes);
	xioctl(fd, MSHV_GET_GPAP_ACCESS_BITMAP, chance(5) ? bad_ptr(sizeof(a)) : &a);
}

/* ---- ROOT_HVCALL ------------------------------------------------------------------- */

static const uint16_t allowed_codes[] = {
	HVCALL_GET_PARTITION_PROPERTY, HVCALL_GET_PARTITION_PROPERTY_EX,
	HVCALL_SET_PARTITION_PROPERTY, HVCALL_INSTALL_INTERCEPT, HVCALL_GET_VP_REGISTERS,
	HVCALL_SET_VP_REGISTERS, HVCALL_TRANSLATE_VIRTUAL_ADDRESS,
	HVCALL_CLEAR_VIRTUAL_INTERRUPT, HVCALL_REGISTER_INTERCEPT_RESULT,
	HVCALL_ASSERT_VIRTUAL_INTERRUPT, HVCALL_GET_GPA_PAGES_ACCESS_STATES,
	HVCALL_SIGNAL_EVENT_DIRECT, HVCALL_POST_MESSAGE_DIRECT, HVCALL_GET_VP_CPUID_VALUES,
	HVCALL_READ_GPA, HVCALL_WRITE_GPA, HVCALL_GET_VP_STATE, HVCALL_SET_VP_STATE,
	HVCALL_MAP_GPA_PAGES, HVCALL_CREATE_VP,
};

static uint32_t rand_vp_index(struct fz_fd *f)
{
	if (f && f->kind == FZ_VP && chance(50))
		return f->vp_index;
	if (chance(60))
		return (uint32_t)rn(4);
	return chance(50) ? 250 + (uint32_t)rn(10) : (uint32_t)rval64();
}

static uint32_t rand_reg_name(void)
{
	if (chance(85))
		return PICK(fz_reg_names);
	return chance(50) ? PICK(fz_reg_names) + (uint32_t)rn(3) - 1 : (uint32_t)rnd();
}

/* Plausible inputs for the allowed codes, random bytes underneath. */
static void hv_make_input(uint16_t code, struct fz_fd *f, uint16_t reps)
{
	uint32_t vp = rand_vp_index(f);

	rfill(hv_in, PAGE);
	if (chance(50))
		memset(hv_in + 8, 0, PAGE - 8);
	memcpy(hv_in + 8, &vp, 4);
	switch (code) {
	case HVCALL_GET_VP_REGISTERS:
		for (unsigned i = 0; i < reps && 16 + 4 * (i + 1) <= PAGE; i++) {
			uint32_t name = rand_reg_name();

			memcpy(hv_in + 16 + 4 * i, &name, 4);
		}
		break;
	case HVCALL_SET_VP_REGISTERS:
		for (unsigned i = 0; i < reps && 16 + 32 * (i + 1) <= PAGE; i++) {
			uint32_t name = rand_reg_name();
			uint64_t v[2] = { rval64(), rval64() };

			memcpy(hv_in + 16 + 32 * i, &name, 4);
			if (chance(50))
				memset(hv_in + 16 + 32 * i + 4, 0, 12);
			memcpy(hv_in + 16 + 32 * i + 16, v, 16);
		}
		break;
	case HVCALL_GET_PARTITION_PROPERTY:
	case HVCALL_GET_PARTITION_PROPERTY_EX:
	case HVCALL_SET_PARTITION_PROPERTY: {
		uint32_t prop = chance(80) ? PICK(fz_prop_codes) : (uint32_t)rnd();
		uint64_t val = rval64();

		memcpy(hv_in + 8, &prop, 4);
		if (chance(60))
			memset(hv_in + 12, 0, 4);
		memcpy(hv_in + 16, &val, 8);
		break;
	}
	case HVCALL_INSTALL_INTERCEPT: {
		uint32_t at = (uint32_t)(chance(80) ? rn(8) : rnd());
		uint32_t type = (uint32_t)(chance(80) ? rn(HV_INTERCEPT_TYPE_MAX + 2) : rnd());

		memcpy(hv_in + 8, &at, 4);
		memcpy(hv_in + 12, &type, 4);
		break;
	}
	case HVCALL_ASSERT_VIRTUAL_INTERRUPT: {
		uint64_t control = chance(70) ? rn(HV_X64_INTERRUPT_TYPE_MAXIMUM + 1) |
				   (rn(4) << 32) : rnd();
		uint64_t dest = chance(70) ? rn(4) : rval64();
		uint32_t vector = chance(70) ? 0x20 + (uint32_t)rn(0xe0) : (uint32_t)rnd();

		memcpy(hv_in + 8, &control, 8);
		memcpy(hv_in + 16, &dest, 8);
		memcpy(hv_in + 24, &vector, 4);
		if (chance(60))
			memset(hv_in + 28, 0, 4);
		break;
	}
	case HVCALL_GET_GPA_PAGES_ACCESS_STATES: {
		uint64_t flags = chance(70) ? rn(16) : rnd();
		uint64_t gfn = chance(60) ? GUEST_GPA / PAGE + rn(32) - 8 : rval64();

		memcpy(hv_in + 8, &flags, 8);
		memcpy(hv_in + 16, &gfn, 8);
		break;
	}
	case HVCALL_TRANSLATE_VIRTUAL_ADDRESS: {
		uint64_t flags = chance(70) ? rn(0x800) : rnd();
		uint64_t gva = chance(50) ? rn(0x100) : rval64();

		memcpy(hv_in + 12, "\0\0\0\0", 4);
		memcpy(hv_in + 16, &flags, 8);
		memcpy(hv_in + 24, &gva, 8);
		break;
	}
	case HVCALL_REGISTER_INTERCEPT_RESULT: {
		uint32_t type = (uint32_t)(chance(80) ? rn(HV_INTERCEPT_TYPE_MAX + 2) : rnd());

		memcpy(hv_in + 12, &type, 4);
		break;
	}
	case HVCALL_GET_VP_CPUID_VALUES: {
		uint32_t flags = (uint32_t)(chance(70) ? rn(4) : rnd());

		memcpy(hv_in + 12, &flags, 4);
		if (chance(60))
			memset(hv_in + 16, 0, 8);
		for (unsigned i = 0; i < reps && 24 + 24 * (i + 1) <= PAGE; i++) {
			uint32_t leaf[2] = { (uint32_t)(chance(60) ? rn(0x20) : rnd()),
					     (uint32_t)rn(4) };

			memcpy(hv_in + 24 + 24 * i, leaf, 8);
			if (chance(50))
				memset(hv_in + 24 + 24 * i + 8, 0, 16);
		}
		break;
	}
	default:
		break;
	}
}

static void op_hvcall(void)
{
	struct fz_fd *f;
	int fd = pick_fd(chance(60) ? FZ_VP : (chance(70) ? FZ_PT : FZ_DEV), &f);
	struct mshv_root_hvcall a;
	uint16_t code;

	op("root hvcall");
	memset(&a, 0, sizeof(a));
	code = chance(85) ? PICK(allowed_codes) : (uint16_t)rnd();
	a.code = code;
	switch (rn(5)) {
	case 0:
		a.reps = (uint16_t)rnd();
		break;
	case 1:
		a.reps = 0;
		break;
	default:
		a.reps = (uint16_t)rn(8);
	}
	hv_make_input(code, f, a.reps);
	/* in_sz: what the reps need, less, more, or anything */
	switch (rn(5)) {
	case 0:
		a.in_sz = (uint16_t)rnd();
		break;
	case 1:
		a.in_sz = (uint16_t)rn(64);
		break;
	default: {
		size_t elem = code == HVCALL_SET_VP_REGISTERS ? 32 :
			      code == HVCALL_GET_VP_REGISTERS ? 4 :
			      code == HVCALL_GET_VP_CPUID_VALUES ? 24 : 8;
		size_t base = code == HVCALL_GET_VP_CPUID_VALUES ? 24 : 16;
		size_t sz = base + elem * a.reps;

		a.in_sz = (uint16_t)(sz > PAGE ? PAGE : sz);
		if (code == HVCALL_SET_PARTITION_PROPERTY || code == HVCALL_GET_PARTITION_PROPERTY_EX)
			a.in_sz = 24;
		if (chance(20))
			a.in_sz -= (uint16_t)rn(a.in_sz + 1);
	}
	}
	switch (rn(5)) {
	case 0:
		a.out_sz = (uint16_t)rnd();
		break;
	case 1:
		a.out_sz = 0;
		break;
	default:
		a.out_sz = (uint16_t)(chance(50) ? 16 * (a.reps ? a.reps : 1) : rn(PAGE + 1));
		if (a.out_sz > PAGE)
			a.out_sz = PAGE;
	}
	a.in_ptr = (uint64_t)(uintptr_t)hv_in;
	a.out_ptr = (uint64_t)(uintptr_t)hv_out;
	if (chance(10)) {
		/* input copied to the end of the arena: a short input */
		size_t n = a.in_sz > PAGE ? PAGE : a.in_sz;

		n = n > 32 ? rn(n) : n;

		memcpy(guard - n, hv_in, n);
		a.in_ptr = (uint64_t)(uintptr_t)(guard - n);
	}
	if (chance(10))
		a.in_ptr = (uint64_t)(uintptr_t)bad_ptr(a.in_sz);
	if (chance(10))
		a.out_ptr = chance(50) ? (uint64_t)(uintptr_t)bad_ptr(a.out_sz)
				       : (uint64_t)(uintptr_t)(guard - rn(a.out_sz + 1));
	if (chance(5))
		a.status = (uint16_t)rnd();
	if (chance(5))
		rfill(a.rsvd, sizeof(a.rsvd));
	xioctl(fd, MSHV_ROOT_HVCALL, chance(3) ? bad_ptr(sizeof(a)) : &a);
}

/* ---- VP state ------------------------------------------------------------------------ */

static uint8_t state_buf[4 * PAGE] __attribute__((aligned(PAGE)));

static void op_vp_state(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_VP, &f);
	struct mshv_get_set_vp_state s;
	bool set = chance(50);

	op(set ? "set vp state" : "get vp state");
	memset(&s, 0, sizeof(s));
	s.type = chance(85) ? (uint8_t)rn(MSHV_VP_STATE_COUNT + 1) : (uint8_t)rnd();
	if (chance(5))
		rfill(s.rsvd, sizeof(s.rsvd));
	switch (rn(4)) {
	case 0:
		s.buf_sz = (uint32_t)rval64();
		break;
	case 1:
		s.buf_sz = (uint32_t)PAGE * (uint32_t)rn(5);
		break;
	default:
		s.buf_sz = PAGE;
	}
	if (chance(75)) {
		s.buf_ptr = (uint64_t)(uintptr_t)state_buf;
		/* a SET gets back what a GET gave, or garbage */
		if (set && chance(50)) {
			struct mshv_get_set_vp_state g = s;

			g.buf_sz = sizeof(state_buf);
			xioctl(fd, MSHV_GET_VP_STATE, &g);
			for (int i = (int)rn(8); i > 0; i--)
				state_buf[rn(sizeof(state_buf))] = (uint8_t)rnd();
		} else if (set) {
			rfill(state_buf, sizeof(state_buf));
		}
	} else if (chance(50)) {
		s.buf_ptr = (uint64_t)(uintptr_t)(guard - PAGE * rn(3));	/* short */
	} else {
		s.buf_ptr = (uint64_t)(uintptr_t)bad_ptr(s.buf_sz);
	}
	xioctl(fd, set ? MSHV_SET_VP_STATE : MSHV_GET_VP_STATE,
	       chance(4) ? bad_ptr(sizeof(s)) : &s);
}

/* ---- registers ------------------------------------------------------------------------ */

/* Garbage registers before a run: through the hypercall or the register page. */
static void op_regs(void)
{
	struct fz_fd *f = pick(FZ_VP);
	union hv_register_value v;

	op("garbage registers");
	if (!f)
		return;
	if (f->rp && chance(50)) {
		struct hv_vp_register_page *rp = f->rp;

		switch (rn(3)) {
		case 0:
			rfill(rp, PAGE);
			break;
		case 1:
			rp->dirty = (uint32_t)rnd();
			rfill((uint8_t *)rp + 8, 8 * (1 + rn(60)));
			break;
		default:
			rp->rip = rn(0x100);
			rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
		}
		return;
	}
	for (int i = (int)rn(4) + 1; i > 0; i--) {
		uint32_t name = rand_reg_name();

		memset(&v, 0, sizeof(v));
		switch (rn(3)) {
		case 0:
			rfill(&v, sizeof(v));
			break;
		case 1:
			v.reg64 = rval64();
			break;
		default:
			v.reg64 = rn(0x10);
		}
		set_reg(f->fd, chance(90) ? f->vp_index : rand_vp_index(f), name, &v);
	}
	if (chance(30))
		vp_point_at_guest(f->fd, f->vp_index, PICK(guest_entries));
}

/* ---- RUN_VP -------------------------------------------------------------------------- */

static void on_usr1(int sig)
{
	(void)sig;
}

/* A periodic SIGUSR1 to this thread while it sits in RUN_VP. */
static timer_t thread_timer(void)
{
	struct sigevent sev;
	timer_t t;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) < 0) {
		perror("timer_create");
		exit(2);
	}
	return t;
}

static void timer_arm(timer_t t, bool on)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_value.tv_nsec = 20 * 1000 * 1000;
		its.it_interval.tv_nsec = 20 * 1000 * 1000;
	}
	timer_settime(t, 0, &its, NULL);
}

static timer_t main_timer;

static long run_vp(int fd, timer_t t, struct hv_message *msg)
{
	long ret;

	timer_arm(t, true);
	ret = ioctl(fd, MSHV_RUN_VP, msg);
	int err = errno;

	timer_arm(t, false);
	account(ret, err);
	errno = err;
	return ret;
}

static struct hv_message run_msg;

static void op_run(void)
{
	struct fz_fd *f;
	int fd = pick_fd(FZ_VP, &f);
	void *buf = &run_msg;
	long ret;

	op("run vp");
	if (chance(8))
		buf = chance(50) ? bad_ptr(256) : (void *)ropage;
	else if (chance(5))
		buf = guard - rn(256);
	/* draw every choice first: the results (EINTR or not) depend on timing */
	int runs = (int)rn(4) + 1;
	bool complete[4], repoint[4];
	uint16_t entry[4];

	for (int k = 0; k < 4; k++) {
		complete[k] = chance(70);
		repoint[k] = chance(30);
		entry[k] = PICK(guest_entries);
	}
	for (int k = 0; k < runs; k++) {
		ret = run_vp(fd, main_timer, buf);
		stat_runs++;
		if (ret < 0) {
			if (errno == EINTR)
				stat_eintr++;
			return;
		}
		if (buf != &run_msg)
			return;
		stat_msgs++;
		/* complete an IO the mshv way, or not */
		if (run_msg.header.message_type == HVMSG_X64_IO_PORT_INTERCEPT && f && complete[k]) {
			const struct hv_x64_io_port_intercept_message *io =
				(const void *)run_msg.payload;
			uint64_t len = io->header.instruction_length_cr8 &
				       HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;

			if (f->rp) {
				f->rp->rip = io->header.rip + len;
				f->rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
			} else {
				union hv_register_value v = { .reg64 = io->header.rip + len };

				set_reg(fd, f->vp_index, HV_X64_REGISTER_RIP, &v);
			}
		} else if (f && repoint[k]) {
			vp_point_at_guest(fd, f->vp_index, entry[k]);
		}
	}
}

/* ---- VP mmap -------------------------------------------------------------------------- */

static void op_mmap(void)
{
	struct fz_fd *f;
	int fd = pick_fd(chance(80) ? FZ_VP : 0, &f);
	bool ours = f != NULL;
	long off;
	size_t len;
	void *p;
	int prot;

	op("mmap");
	off = chance(60) ? (long)(PAGE * rn(5)) : (long)rval64();
	if (chance(10))
		off += 1 + (long)rn(PAGE - 1);
	len = chance(70) ? PAGE * (1 + rn(3)) : (size_t)rval64();
	if (!ours && len > 64 * PAGE)
		len = PAGE;			/* a stale fd may be a real file */
	prot = chance(80) ? PROT_READ | PROT_WRITE : (int)rn(8);
	p = mmap(chance(5) ? (void *)(uintptr_t)rval64() : NULL, len, prot,
		 chance(80) ? MAP_SHARED : (chance(50) ? MAP_PRIVATE : (int)rn(0x100) & ~MAP_FIXED),
		 fd, off);
	account(p == MAP_FAILED ? -1 : 0, errno);
	if (p != MAP_FAILED) {
		/* touch the first byte of what the emulator handed out */
		if (ours && f->kind == FZ_VP && len >= PAGE && off >= 0 &&
		    off < (long)(2 * PAGE) && (prot & PROT_READ))
			(void)*(volatile uint8_t *)p;
		if (chance(50))
			munmap(p, len);
		else
			track_map(p, len);
	}
}

/*
 * The guest RAM's host memory goes away under a mapped region (KVM_RUN
 * faults): replaced by PROT_NONE, so that the range is not handed out again
 * (to the emulator's own mappings) while the region still names it.
 */
static void op_unback(void)
{
	struct fz_fd *f = pick(FZ_PT);
	struct fz_pt *p = f ? &pts[f->pt] : NULL;

	op("unback guest ram");
	if (!p || !p->mem)
		return;
	mmap(p->mem, GUEST_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	p->mem = NULL;
}

/* ---- lifetime ----------------------------------------------------------------------- */

static void op_close(void)
{
	op("close");
	if (nfds)
		drop_fd((int)rn(nfds));
}

static void op_dup(void)
{
	struct fz_fd *f = pick(0);
	int fd;

	op("dup");
	if (!f)
		return;
	switch (rn(3)) {
	case 0:
		fd = dup(f->fd);
		if (trace)
			fprintf(stderr, "  dup %d: %d\n", f->fd, fd);
		break;
	case 1:
		fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 100 + (int)rn(50));
		if (trace)
			fprintf(stderr, "  F_DUPFD %d: %d\n", f->fd, fd);
		break;
	default: {
		/* dup2 over another of our fds (closing it), or onto a fresh number */
		struct fz_fd *g = pick(0);

		if (g && g != f && chance(50)) {
			int target = g->fd;

			fd = dup2(f->fd, target);
			if (trace)
				fprintf(stderr, "  dup2 %d -> %d: %d\n", f->fd, target, fd);
			if (fd >= 0) {
				/* the target entry now names f's object */
				struct fz_fd copy = *f;

				copy.fd = fd;
				copy.rp = NULL;
				*g = copy;
			}
			return;
		}
		fd = dup3(f->fd, 200 + (int)rn(50), O_CLOEXEC);
		if (trace)
			fprintf(stderr, "  dup3 %d: %d\n", f->fd, fd);
		for (int i = 0; i < nfds; i++)
			if (fd >= 0 && fds[i].fd == fd && &fds[i] != f)
				fds[i] = fds[--nfds];	/* replaced an fd we had */
	}
	}
	if (fd >= 0) {
		struct fz_fd copy = *f;

		copy.rp = NULL;
		if (nfds < MAX_FDS) {
			copy.fd = fd;
			fds[nfds++] = copy;
		} else {
			close(fd);
		}
	}
}

/*
 * A second thread in RUN_VP (on a dup of a VP fd) while this one closes the
 * partition fd and VP fds, or issues calls on the same VP and partition.
 */
#define RACE_STACK (256 * 1024)
static uint8_t *race_stack;

struct race {
	int fd;
	int runs;
	atomic_int done;
};

static void *race_main(void *arg)
{
	struct race *r = arg;
	timer_t t = thread_timer();
	struct hv_message msg;

	for (int i = 0; i < r->runs; i++) {
		atomic_fetch_add(&progress, 1);
		if (run_vp(r->fd, t, &msg) < 0 && errno != EINTR)
			break;
	}
	timer_delete(t);
	atomic_store(&r->done, 1);
	return NULL;
}

static void op_race(void)
{
	struct fz_fd *f = pick(FZ_VP);
	pthread_attr_t attr;
	pthread_t th;
	struct race r = { .runs = 1 + (int)rn(5) };

	op("race");
	if (!f)
		return;
	r.fd = dup(f->fd);
	if (r.fd < 0)
		return;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, race_stack, RACE_STACK);
	if (pthread_create(&th, &attr, race_main, &r)) {
		close(r.fd);
		return;
	}
	pthread_attr_destroy(&attr);
	usleep(1000);
	int pt = f->pt;

	/*
	 * The actions are drawn up front; which of them run before the other
	 * thread finishes depends on timing (this operation is the only one
	 * whose effect is not fixed by the seed).
	 */
	int acts[6], nacts = (int)rn(6);

	for (int k = 0; k < nacts; k++)
		acts[k] = (int)rn(6);
	for (int k = 0; k < nacts; k++) {
		switch (acts[k]) {
		case 0:
			/* close the partition's fds (the VP keeps it alive) */
			for (int i = nfds - 1; i >= 0; i--)
				if (fds[i].kind == FZ_PT && fds[i].pt == pt)
					drop_fd(i);
			break;
		case 1:
			for (int i = nfds - 1; i >= 0; i--)
				if (fds[i].kind == FZ_VP && fds[i].pt == pt && chance(50))
					drop_fd(i);
			break;
		case 2:
			op_hvcall();
			break;
		case 3:
			op_vp_state();
			break;
		case 4:
			op_set_memory();
			break;
		default:
			op_regs();
		}
		usleep(1000);
	}
	pthread_join(th, NULL);
	close(r.fd);
	op("race joined");
}

/* ---- leak accounting ---------------------------------------------------------------- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;			/* the DIR's own fd */
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[256];

	while (d && (e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			fprintf(stderr, "fd %s -> %s\n", e->d_name, target);
		}
	}
	if (d)
		closedir(d);
}

static char *maps_text(int *lines)
{
	static char buf[1 << 20];
	int fd = open("/proc/self/maps", O_RDONLY);
	size_t n = 0;
	ssize_t k;

	*lines = 0;
	if (fd < 0)
		return NULL;
	while (n < sizeof(buf) - 1 && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	buf[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n')
			(*lines)++;
	return buf;
}

static void close_everything(void)
{
	if (trace)
		for (int i = 0; i < nfds; i++)
			fprintf(stderr, "  holding fd %d kind %d pt %d vp %u\n", fds[i].fd,
				fds[i].kind, fds[i].pt, fds[i].vp_index);
	while (nfds)
		drop_fd(nfds - 1);
	for (int i = 0; i < nmaps; i++)
		munmap(maps[i].addr, maps[i].len);
	nmaps = 0;
	npts = 0;
	nclosed = 0;
}

/* One clean cycle first, so lazily created process-wide state is in the baseline. */
static void warm_up(void)
{
	struct hv_message msg;
	int dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);

	if (dev < 0) {
		printf("setup-failed: open /dev/mshv: %s\n", strerror(errno));
		exit(2);
	}
	add_fd(dev, FZ_DEV, -1, 0);
	for (int lapic = 0; lapic < 2; lapic++) {
		int pt = new_partition(dev, lapic, false);
		struct fz_fd *vp;

		if (pt < 0) {
			printf("setup-failed: partition: %s\n", strerror(errno));
			exit(2);
		}
		vp = new_vp(&fds[nfds - 1], 0, true);
		if (!vp) {
			printf("setup-failed: vp: %s\n", strerror(errno));
			exit(2);
		}
		vp_point_at_guest(vp->fd, 0, 0);
		run_vp(vp->fd, main_timer, &msg);
	}
	close_everything();
}

int main(int argc, char **argv)
{
	unsigned long iters;
	int fds0, maps0, fds1, maps1;
	bool leakcheck = !(argc > 3 && !strcmp(argv[3], "noleakcheck"));
	/* fdcheck: fds only (under ASan, whose allocator maps memory as it goes) */
	bool mapcheck = leakcheck && !(argc > 3 && !strcmp(argv[3], "fdcheck"));
	struct sigaction sa;
	pthread_t wd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s <seed> <operations> [noleakcheck | fdcheck]\n", argv[0]);
		return 2;
	}
	seed = strtoull(argv[1], NULL, 0);
	iters = strtoul(argv[2], NULL, 0);
	rng = seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
	trace = getenv("FUZZ_TRACE") != NULL;
	setvbuf(stdout, NULL, _IOLBF, 0);
	mallopt(M_ARENA_MAX, 1);		/* no per-thread malloc arenas in the map count */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;		/* no SA_RESTART: RUN_VP returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	main_timer = thread_timer();

	arena = mmap(NULL, (BUF_PAGES + 2) * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	race_stack = mmap(NULL, RACE_STACK, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED || race_stack == MAP_FAILED)
		return 2;
	guard = arena + BUF_PAGES * PAGE;
	ropage = guard + PAGE;
	mprotect(guard, PAGE, PROT_NONE);
	mprotect(ropage, PAGE, PROT_READ);
	other_fds[0] = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 1; i < 4; i++)
		other_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pipe2(&other_fds[4], O_CLOEXEC) < 0)
		return 2;
	pthread_create(&wd, NULL, watchdog, NULL);

	warm_up();
	fds0 = count_fds();
	maps_text(&maps0);

	for (cur_iter = 0; cur_iter < iters; cur_iter++) {
		unsigned k = (unsigned)rn(100);

		/*
		 * Every EPOCH operations everything is closed and the fd and
		 * mapping counts must be back at the baseline: a long run
		 * stays bounded, and a leak is caught near where it began.
		 */
		if (cur_iter && cur_iter % EPOCH == 0) {
			op("epoch teardown");
			close_everything();
			fds1 = count_fds();
			maps_text(&maps1);
			if (leakcheck && (fds1 != fds0 || (mapcheck && maps1 != maps0))) {
				printf("leak before op %lu: fds %d -> %d, maps %d -> %d\n", cur_iter,
				       fds0, fds1, maps0, maps1);
				list_fds();
				return 4;
			}
		}

		/* keep a few objects around */
		if (!pick(FZ_DEV) || chance(1))
			op_open_dev();
		if (!pick(FZ_PT) || (chance(3) && nfds < MAX_FDS - 4))
			op_new_partition();
		if (!pick(FZ_VP) || (chance(5) && nfds < MAX_FDS - 4))
			op_new_vp();
		if (k < 8)
			op_random_ioctl();
		else if (k < 14)
			op_set_memory();
		else if (k < 19)
			op_irqfd();
		else if (k < 24)
			op_ioeventfd();
		else if (k < 28)
			op_msi_routing();
		else if (k < 32)
			op_gpap();
		else if (k < 52)
			op_hvcall();
		else if (k < 60)
			op_vp_state();
		else if (k < 68)
			op_regs();
		else if (k < 82)
			op_run();
		else if (k < 86)
			op_mmap();
		else if (k < 91)
			op_close();
		else if (k < 95)
			op_dup();
		else if (k < 97)
			op_race();
		else if (k < 98 && chance(25))
			op_unback();
		else {
			/* an eventfd replaced (HUP of irqfds bound to it) */
			int i = 1 + (int)rn(3);

			op("replace eventfd");
			close(other_fds[i]);
			other_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (chance(50)) {
				uint64_t one = 1;

				if (write(other_fds[1 + rn(3)], &one, 8) < 0)
					stat_weird += 0;
			}
		}
	}
	op("teardown");
	close_everything();

	fds1 = count_fds();
	char *m = maps_text(&maps1);

	printf("seed=%llu\nops=%lu\nok=%lu\nerrors=%lu\nruns=%lu\nmessages=%lu\neintr=%lu\n"
	       "weird_errno=%lu\nfds=%d/%d\nmaps=%d/%d\n", (unsigned long long)seed, iters,
	       stat_ok, stat_err, stat_runs, stat_msgs, stat_eintr, stat_weird, fds0, fds1,
	       maps0, maps1);
	if (leakcheck && (fds1 != fds0 || (mapcheck && maps1 != maps0))) {
		printf("leak: fds %d -> %d, maps %d -> %d\n", fds0, fds1, maps0, maps1);
		if (getenv("FUZZ_MAPS"))
			fputs(m ? m : "", stderr);
		list_fds();
		return 4;
	}
	return 0;
}
