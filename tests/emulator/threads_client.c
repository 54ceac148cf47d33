/* SPDX-License-Identifier: MIT */
/*
 * VPs on threads, from C, under LD_PRELOAD=libmshv_emu.so (test_threads_c.py).
 * Only libc, <linux/mshv.h> and mshv_hvdefs.h (and KVM_RUN from <linux/kvm.h>,
 * to see that a thread is inside the emulator's KVM_RUN).
 *
 *   threads_client four_vps <guest image> <exits per VP>
 *   threads_client run_vs_get <guest image>
 *
 * The guest image (real mode, position independent within its segment):
 *   0x000: dx = [0x100], eax = [0x104], ecx = [0x108]; ecx times
 *          { out %eax, %dx; inc %eax }; hlt
 *   0x080: out %al, $0x50; cli; hlt (and jmp back to the hlt)
 *   0x100: the parameters, written by the client per VP
 *
 * Output: "key=value" lines; setup failures print "setup-failed: ..." and exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>		/* only KVM_RUN: where the emulator's RUN_VP waits */
#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
#define SEG_SIZE 0x10000UL
#define NVPS 4
#define SPIN_RIP 0x80
#define SPIN_PORT 0x50
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))

static uint8_t image[SEG_SIZE];

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

static int new_partition(uint64_t pt_flags)
{
	struct mshv_create_partition cp = { .pt_flags = pt_flags };
	int dev, pt;

	dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("open /dev/mshv");
	pt = ioctl(dev, MSHV_CREATE_PARTITION, &cp);
	if (pt < 0)
		die("create partition");
	if (ioctl(pt, MSHV_INITIALIZE_PARTITION))
		die("initialize");
	close(dev);
	return pt;
}

/* HVCALL_GET/SET_VP_REGISTERS on the VP fd (buffers on the caller's stack). */
static int get_reg(int vp_fd, uint32_t vp, uint32_t name, union hv_register_value *value)
{
	struct {
		struct hv_input_get_vp_registers h;
		uint32_t name;
	} __attribute__((packed)) in = { .h.vp_index = vp, .name = name };
	struct mshv_root_hvcall a = {
		.code = HVCALL_GET_VP_REGISTERS, .reps = 1, .in_sz = sizeof(in),
		.out_sz = sizeof(*value), .in_ptr = (uint64_t)(uintptr_t)&in,
		.out_ptr = (uint64_t)(uintptr_t)value,
	};

	if (ioctl(vp_fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.status ? -1 : 0;
}

static int set_reg(int vp_fd, uint32_t vp, uint32_t name, const union hv_register_value *value)
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
	in.r.value = *value;
	if (ioctl(vp_fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.status ? -1 : 0;
}

/* ---- four VPs, four threads ---------------------------------------------------- */

struct vp_ctx {
	int pt;
	uint32_t index;
	uint32_t exits;			/* OUTs the guest does */
	pthread_t thread;
	/* results */
	uint32_t seen;			/* OUT intercepts that matched exactly */
	bool halted;
	char error[256];
};

/*
 * Everything per thread: its own guest memory (a private copy of the image
 * at GPA (index + 1) * 64 KiB), its own VP, register page and run loop.
 * Only the partition fd is shared.
 */
static void *vp_main(void *arg)
{
	struct vp_ctx *c = arg;
	struct mshv_create_vp cv = { .vp_index = c->index };
	uint64_t gpa = (c->index + 1) * SEG_SIZE;
	uint32_t port = 0x1000 + c->index, base = (c->index + 1) << 24;
	struct hv_vp_register_page *rp;
	union hv_register_value v;
	struct hv_message msg;
	uint8_t *mem;
	int vp;

#define FAIL(...) do { snprintf(c->error, sizeof(c->error), __VA_ARGS__); return NULL; } while (0)
	mem = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	memcpy(mem, image, SEG_SIZE);
	memcpy(mem + 0x100, &port, 4);
	memcpy(mem + 0x104, &base, 4);
	memcpy(mem + 0x108, &c->exits, 4);
	{
		struct mshv_user_mem_region r = {
			.size = SEG_SIZE, .guest_pfn = gpa / PAGE,
			.userspace_addr = (uint64_t)(uintptr_t)mem, .flags = RW,
		};

		if (ioctl(c->pt, MSHV_SET_GUEST_MEMORY, &r) < 0)
			FAIL("SET_GUEST_MEMORY: %s", strerror(errno));
	}
	vp = ioctl(c->pt, MSHV_CREATE_VP, &cv);
	if (vp < 0)
		FAIL("CREATE_VP %u: %s", c->index, strerror(errno));
	rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vp,
		  MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (rp == MAP_FAILED)
		FAIL("register page: %s", strerror(errno));
	/* real mode: CS = gpa >> 4 (base gpa), IP = 0 */
	if (get_reg(vp, c->index, HV_X64_REGISTER_CS, &v) < 0)
		FAIL("get CS");
	v.segment.selector = (uint16_t)(gpa >> 4);
	v.segment.base = gpa;
	if (set_reg(vp, c->index, HV_X64_REGISTER_CS, &v) < 0)
		FAIL("set CS");
	memset(&v, 0, sizeof(v));
	if (set_reg(vp, c->index, HV_X64_REGISTER_RIP, &v) < 0)
		FAIL("set RIP");

	for (uint32_t k = 0;; k++) {
		const struct hv_x64_io_port_intercept_message *io = (const void *)msg.payload;
		unsigned len;

		if (ioctl(vp, MSHV_RUN_VP, &msg) < 0)
			FAIL("RUN_VP after %u exits: %s", k, strerror(errno));
		if (msg.header.message_type == HVMSG_X64_HALT) {
			if (k != c->exits)
				FAIL("HALT after %u exits, want %u", k, c->exits);
			c->halted = true;
			break;
		}
		if (msg.header.message_type != HVMSG_X64_IO_PORT_INTERCEPT)
			FAIL("exit %u: message %#x", k, msg.header.message_type);
		if (io->port_number != port || (uint32_t)io->rax != base + k ||
		    (io->access_info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK) != 4 ||
		    io->header.intercept_access_type != HV_INTERCEPT_ACCESS_WRITE)
			FAIL("exit %u: port %#x rax %#llx access %#x type %u, want port %#x rax %#x",
			     k, io->port_number, (unsigned long long)io->rax, io->access_info,
			     io->header.intercept_access_type, port, base + k);
		c->seen++;
		/* complete the OUT the mshv way: RIP past it, through the register page */
		len = io->header.instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;
		rp->rip = io->header.rip + len;
		rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
	}
	munmap(rp, PAGE);
	close(vp);
	return NULL;
#undef FAIL
}

static int four_vps(uint32_t exits)
{
	struct vp_ctx c[NVPS];
	int pt = new_partition(0), bad = 0;

	for (int i = 0; i < NVPS; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].pt = pt;
		c[i].index = i;
		c[i].exits = exits;
	}
	for (int i = 0; i < NVPS; i++)
		if (pthread_create(&c[i].thread, NULL, vp_main, &c[i]))
			die("pthread_create");
	for (int i = 0; i < NVPS; i++) {
		pthread_join(c[i].thread, NULL);
		printf("vp%d.exits=%u\nvp%d.halted=%d\n", i, c[i].seen, i, c[i].halted);
		if (c[i].error[0]) {
			printf("vp%d.error=%s\n", i, c[i].error);
			bad = 1;
		}
	}
	close(pt);
	return bad;
}

/* ---- RUN_VP and GET_VP_REGISTERS on one VP fd ---------------------------------- */

static atomic_int order;		/* RUN_VP/GET_VP_REGISTERS calls that returned */
static int run_vp_fd;
static volatile sig_atomic_t kicked;

struct runner {
	pthread_t thread;
	pid_t tid;
	int ret, err;
	uint32_t type;
};

struct getter {
	pthread_t thread;
	pid_t tid;
	int ret;
	uint64_t rip;
};

static void on_usr1(int sig)
{
	(void)sig;
	kicked = 1;
}

/* The second RUN_VP: the guest halts with IF=0, so only the signal ends it (EINTR). */
static void *runner_main(void *arg)
{
	struct runner *r = arg;
	struct hv_message msg;

	r->tid = (pid_t)syscall(SYS_gettid);
	r->ret = ioctl(run_vp_fd, MSHV_RUN_VP, &msg);
	r->err = errno;
	atomic_fetch_add(&order, 1);
	r->type = r->ret == 0 ? msg.header.message_type : 0;
	return NULL;
}

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	union hv_register_value v;

	g->tid = (pid_t)syscall(SYS_gettid);
	g->ret = get_reg(run_vp_fd, 0, HV_X64_REGISTER_RIP, &v);
	atomic_fetch_add(&order, 1);
	g->rip = v.reg64;
	return NULL;
}

/*
 * The system call a thread is blocked in (/proc/self/task/<tid>/syscall: the
 * number, then the arguments), or -1 while it runs in user space.
 */
static long blocked_in(pid_t tid, unsigned long *arg1)
{
	char path[64], buf[256];
	ssize_t n;
	long nr;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%ld %*s %lx", &nr, arg1) != 2)
		return -1;
	return nr;
}

/* Wait (without a deadline: pytest's timeout bounds the run) until tid sits in syscall nr. */
static void wait_blocked(pid_t tid, long nr, unsigned long arg1)
{
	for (;;) {
		unsigned long a = 0;

		if (blocked_in(tid, &a) == nr && (arg1 == 0 || a == arg1))
			return;
		usleep(1000);
	}
}

/*
 * mshv_vp_ioctl takes the VP mutex (mutex_lock_killable(&vp->vp_mutex)) for
 * every VP ioctl, RUN_VP included: a GET_VP_REGISTERS hypercall issued on the
 * VP fd while another thread is inside RUN_VP waits until RUN_VP returns, and
 * then reads the state RUN_VP left.
 */
static int run_vs_get(void)
{
	struct mshv_create_vp cv = { .vp_index = 0 };
	struct hv_vp_register_page *rp;
	struct runner r = { 0 };
	struct getter g = { 0 };
	union hv_register_value v;
	struct hv_message msg;
	struct sigaction sa;
	/* LAPIC: KVM's in-kernel LAPIC halts the vCPU inside KVM_RUN (sleeping, not spinning) */
	int pt = new_partition(1ULL << MSHV_PT_BIT_LAPIC);
	uint8_t *mem;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;	/* no SA_RESTART: RUN_VP returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	alarm(60);			/* default action: a stuck case dies instead of hanging */

	mem = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	memcpy(mem, image, SEG_SIZE);
	{
		struct mshv_user_mem_region reg = {
			.size = SEG_SIZE, .guest_pfn = SEG_SIZE / PAGE,
			.userspace_addr = (uint64_t)(uintptr_t)mem, .flags = RW,
		};

		if (ioctl(pt, MSHV_SET_GUEST_MEMORY, &reg) < 0)
			die("SET_GUEST_MEMORY");
	}
	run_vp_fd = ioctl(pt, MSHV_CREATE_VP, &cv);
	if (run_vp_fd < 0)
		die("CREATE_VP");
	rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, run_vp_fd,
		  MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (rp == MAP_FAILED)
		die("register page");
	if (get_reg(run_vp_fd, 0, HV_X64_REGISTER_CS, &v) < 0)
		die("get CS");
	v.segment.selector = SEG_SIZE >> 4;
	v.segment.base = SEG_SIZE;
	if (set_reg(run_vp_fd, 0, HV_X64_REGISTER_CS, &v) < 0)
		die("set CS");
	memset(&v, 0, sizeof(v));
	v.reg64 = SPIN_RIP;
	if (set_reg(run_vp_fd, 0, HV_X64_REGISTER_RIP, &v) < 0)
		die("set RIP");

	/* first RUN_VP: the OUT before the spin loop; complete it */
	if (ioctl(run_vp_fd, MSHV_RUN_VP, &msg) < 0)
		die("RUN_VP");
	{
		const struct hv_x64_io_port_intercept_message *io = (const void *)msg.payload;

		printf("first.type=%#x\nfirst.port=%#x\n", msg.header.message_type, io->port_number);
		rp->rip = io->header.rip +
			  (io->header.instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK);
		rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
	}

	/* thread A enters RUN_VP and sleeps in KVM_RUN (the guest halted with IF=0) */
	if (pthread_create(&r.thread, NULL, runner_main, &r))
		die("pthread_create");
	while (!__atomic_load_n(&r.tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	wait_blocked(r.tid, SYS_ioctl, KVM_RUN);
	/* thread B asks for RIP and must block on the VP mutex (a futex) */
	if (pthread_create(&g.thread, NULL, getter_main, &g))
		die("pthread_create");
	while (!__atomic_load_n(&g.tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	wait_blocked(g.tid, SYS_futex, 0);
	/* both are parked: A in KVM_RUN, B waiting; nothing has returned */
	printf("blocked.order=%d\n", atomic_load(&order));
	/* end RUN_VP with a signal: EINTR, then B gets the mutex */
	pthread_kill(r.thread, SIGUSR1);
	pthread_join(r.thread, NULL);
	pthread_join(g.thread, NULL);
	/* (the order of the two returns after the kick is a race: not reported) */
	printf("run.ret=%d\nrun.errno=%s\n", r.ret, r.ret < 0 ? strerrorname_np(r.err) : "0");
	printf("get.ret=%d\nget.rip=%#llx\n", g.ret, (unsigned long long)g.rip);
	/* what RIP reads now, with nobody running the VP */
	if (get_reg(run_vp_fd, 0, HV_X64_REGISTER_RIP, &v) < 0)
		die("get RIP");
	printf("after.rip=%#llx\n", (unsigned long long)v.reg64);
	close(run_vp_fd);
	close(pt);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "four_vps")) {
		load_image(argv[2]);
		return four_vps(argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 0) : 1000);
	}
	if (argc >= 3 && !strcmp(argv[1], "run_vs_get")) {
		load_image(argv[2]);
		return run_vs_get();
	}
	fprintf(stderr, "usage: %s four_vps|run_vs_get <image> [exits]\n", argv[0]);
	return 2;
}
