/* SPDX-License-Identifier: MIT */
/*
 * A /dev/mshv VMM for the run/regs/hvcall/vpstate tests, run under
 * LD_PRELOAD=libmshv_emu.so. Only libc, <linux/mshv.h> and mshv_hvdefs.h.
 *
 *   run_client <case> [args...]
 *
 * Each case prints "key=value" lines that test_run_*.py, test_regs_*.py and
 * test_hvcall_*.py assert. Setup failures print "setup-failed: ..." and exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
/* A TSC jump no elapsed time can explain (about a day at a few GHz). */
#define TSC_JUMP (1ULL << 48)
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

static const char *ename(long ret, int err)
{
	return ret < 0 ? strerrorname_np(err) : "0";
}

/* ---- a partition with one VP ------------------------------------------------- */

struct world {
	int dev, pt, vp;
	uint8_t *mem;
	size_t mem_size;
	struct hv_vp_register_page *rp;
	struct hv_message *msg_page;
};

static int set_mem(int pt, uint64_t gfn, void *p, size_t size, uint8_t flags)
{
	struct mshv_user_mem_region r = {
		.size = size, .guest_pfn = gfn, .userspace_addr = (uint64_t)(uintptr_t)p,
		.flags = flags,
	};

	return ioctl(pt, MSHV_SET_GUEST_MEMORY, &r);
}

static void load_image(struct world *w, const char *path, size_t at)
{
	FILE *f = fopen(path, "rb");

	if (!f || fread(w->mem + at, 1, w->mem_size - at, f) == 0)
		die("guest image");
	fclose(f);
}

/*
 * mem_size bytes at GPA 0; for real-mode guests the first 64 KiB are also
 * aliased below 4 GiB so the reset vector (F000:FFF0) reaches the image.
 */
static void world_init(struct world *w, uint64_t pt_flags, size_t mem_size, bool reset_alias)
{
	struct mshv_create_partition cp = { .pt_flags = pt_flags };
	struct mshv_create_vp cv = { .vp_index = 0 };

	memset(w, 0, sizeof(*w));
	w->dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (w->dev < 0)
		die("open /dev/mshv");
	w->pt = ioctl(w->dev, MSHV_CREATE_PARTITION, &cp);
	if (w->pt < 0)
		die("create partition");
	if (ioctl(w->pt, MSHV_INITIALIZE_PARTITION))
		die("initialize");
	w->mem_size = mem_size;
	w->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w->mem == MAP_FAILED)
		die("guest memory");
	if (set_mem(w->pt, 0, w->mem, mem_size, RW))
		die("map guest memory");
	if (reset_alias && set_mem(w->pt, (0x100000000UL - 0x10000) / PAGE, w->mem, 0x10000, RW))
		die("map reset alias");
	w->vp = ioctl(w->pt, MSHV_CREATE_VP, &cv);
	if (w->vp < 0)
		die("create vp");
	w->rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w->vp,
		     MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	w->msg_page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, w->vp,
			   MSHV_VP_MMAP_OFFSET_INTERCEPT_MESSAGE * PAGE);
	if (w->rp == MAP_FAILED || w->msg_page == MAP_FAILED)
		die("vp pages");
}

/* ---- hypercalls --------------------------------------------------------------- */

#include "hvcall_client.h"

static void print_hc(const char *key, struct hc r)
{
	printf("%s.ret=%ld\n%s.errno=%s\n%s.status=%#x\n%s.reps=%u\n", key, r.ret, key,
	       ename(r.ret, r.err), key, r.status, key, r.reps);
}

static struct hc get_regs(int fd, uint32_t vp, const uint32_t *names, int n,
			  union hv_register_value *values)
{
	static uint8_t in[PAGE] __attribute__((aligned(8)));
	struct hv_input_get_vp_registers *h = (void *)in;

	memset(in, 0, sizeof(in));
	h->vp_index = vp;
	memcpy(in + sizeof(*h), names, n * sizeof(uint32_t));
	return hvcall(fd, HVCALL_GET_VP_REGISTERS, n, in, sizeof(*h) + n * sizeof(uint32_t),
		      values, n * sizeof(*values));
}

static struct hc set_regs(int fd, uint32_t vp, const uint32_t *names,
			  const union hv_register_value *values, int n)
{
	static uint8_t in[2 * PAGE] __attribute__((aligned(8)));
	struct hv_input_set_vp_registers *h = (void *)in;
	size_t sz = sizeof(*h) + n * sizeof(struct hv_register_assoc);

	memset(in, 0, sizeof(in));
	h->vp_index = vp;
	for (int i = 0; i < n; i++) {
		struct hv_register_assoc a;

		memset(&a, 0, sizeof(a));
		a.name = names[i];
		a.value = values[i];
		memcpy(in + sizeof(*h) + i * sizeof(a), &a, sizeof(a));
	}
	return hvcall(fd, HVCALL_SET_VP_REGISTERS, n, in, sz > 0xffff ? 0xffff : sz, NULL, 0);
}

static uint64_t get1(int fd, uint32_t name)
{
	union hv_register_value v;
	struct hc r = get_regs(fd, 0, &name, 1, &v);

	if (r.ret)
		die("get register");
	return v.reg64;
}

static void set1(int fd, uint32_t name, uint64_t value)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.reg64 = value;
	if (set_regs(fd, 0, &name, &v, 1).ret)
		die("set register");
}

static void hex(const char *key, const uint8_t *p, int n)
{
	printf("%s=", key);
	for (int i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

/* ---- trace: run a guest, complete every intercept the way an mshv VMM does --- */

/*
 * trace <image> <pt_flags> <in_value> <mmio_value> <regpage:0|1> [max_exits]
 * IN gets in_value, MMIO reads get mmio_value; with regpage=1 the results
 * (RAX, RIP, RSI, RCX) go through the register page, else SET_VP_REGISTERS.
 */
static void complete(struct world *w, bool regpage, uint64_t rip, uint64_t rax, uint64_t rcx,
		     uint64_t rsi)
{
	if (regpage) {
		w->rp->rax = rax;
		w->rp->rcx = rcx;
		w->rp->rsi = rsi;
		w->rp->rip = rip;
		w->rp->dirty |= (1U << HV_X64_REGISTER_CLASS_GENERAL) |
				(1U << HV_X64_REGISTER_CLASS_IP);
	} else {
		uint32_t names[] = { HV_X64_REGISTER_RIP, HV_X64_REGISTER_RAX,
				     HV_X64_REGISTER_RCX, HV_X64_REGISTER_RSI };
		union hv_register_value v[4];

		memset(v, 0, sizeof(v));
		v[0].reg64 = rip;
		v[1].reg64 = rax;
		v[2].reg64 = rcx;
		v[3].reg64 = rsi;
		if (set_regs(w->vp, 0, names, v, 4).ret)
			die("complete: set registers");
	}
}

static void case_trace(int argc, char **argv)
{
	struct world w;
	uint64_t in_value = strtoull(argv[2], NULL, 0), mmio_value = strtoull(argv[3], NULL, 0);
	bool regpage = atoi(argv[4]);
	int max = argc > 5 ? atoi(argv[5]) : 32;

	world_init(&w, strtoull(argv[1], NULL, 0), 0x20000, true);
	load_image(&w, argv[0], 0);
	for (int i = 0; i < max; i++) {
		struct mshv_run_vp run;
		struct hv_message *m = (void *)run.msg_buf;
		struct hv_x64_intercept_message_header *h = (void *)m->payload;
		char k[64];
		int ret;

		errno = 0;
		ret = ioctl(w.vp, MSHV_RUN_VP, &run);
		printf("exit%d.ret=%d\nexit%d.errno=%s\n", i, ret, i, ename(ret, errno));
		if (ret)
			return;
		uint64_t rip = h->rip;
		uint8_t len = h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;

		printf("exit%d.type=%#x\nexit%d.rip=%#lx\nexit%d.len=%u\nexit%d.access=%u\n", i,
		       m->header.message_type, i, (unsigned long)rip, i, len, i,
		       h->intercept_access_type);
		printf("exit%d.msg_page_same=%d\n", i, !memcmp(w.msg_page, m, sizeof(*m)));
		printf("exit%d.regpage_rip=%#lx\nexit%d.regpage_valid=%u\n", i,
		       (unsigned long)w.rp->rip, i, w.rp->isvalid);
		printf("exit%d.cs_selector=%#x\nexit%d.execution_state=%#x\n", i,
		       h->cs_segment.selector, i, h->execution_state);
		if (m->header.message_type == HVMSG_X64_IO_PORT_INTERCEPT) {
			struct hv_x64_io_port_intercept_message *io = (void *)m->payload;
			unsigned size = io->access_info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK;
			bool string = io->access_info & HV_X64_IO_PORT_ACCESS_INFO_STRING_OP;
			bool rep = io->access_info & HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX;
			uint64_t mask = size == 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
			uint64_t rax = io->rax, rcx = io->rcx, rsi = io->rsi;

			printf("exit%d.port=%#x\nexit%d.size=%u\nexit%d.string=%d\nexit%d.rep=%d\n", i,
			       io->port_number, i, size, i, string, i, rep);
			printf("exit%d.rax=%#lx\nexit%d.rcx=%#lx\nexit%d.rsi=%#lx\n", i,
			       (unsigned long)io->rax, i, (unsigned long)io->rcx, i,
			       (unsigned long)io->rsi);
			snprintf(k, sizeof(k), "exit%d.bytes", i);
			hex(k, io->instruction_bytes, io->instruction_byte_count);
			if (string && h->intercept_access_type == HV_INTERCEPT_ACCESS_WRITE) {
				uint64_t n = rep ? rcx : 1;
				uint64_t lin = io->ds_segment.base + rsi;

				snprintf(k, sizeof(k), "exit%d.data", i);
				hex(k, w.mem + lin, (int)(n * size));
				rsi += n * size;
				if (rep)
					rcx = 0;
			} else if (h->intercept_access_type == HV_INTERCEPT_ACCESS_READ) {
				rax = (rax & ~mask) | (in_value & mask);
			} else {
				printf("exit%d.value=%#lx\n", i, (unsigned long)(rax & mask));
			}
			complete(&w, regpage, rip + len, rax, rcx, rsi);
		} else if (m->header.message_type == HVMSG_UNMAPPED_GPA ||
			   m->header.message_type == HVMSG_GPA_INTERCEPT) {
			struct hv_x64_memory_intercept_message *mi = (void *)m->payload;
			uint64_t rax = get1(w.vp, HV_X64_REGISTER_RAX);

			printf("exit%d.gpa=%#lx\n", i, (unsigned long)mi->guest_physical_address);
			snprintf(k, sizeof(k), "exit%d.bytes", i);
			hex(k, mi->instruction_bytes, mi->instruction_byte_count);
			/* the tests' MMIO reads are byte loads into AL */
			if (h->intercept_access_type == HV_INTERCEPT_ACCESS_READ)
				rax = (rax & ~0xffULL) | (mmio_value & 0xff);
			complete(&w, regpage, rip + len, rax, get1(w.vp, HV_X64_REGISTER_RCX),
				 get1(w.vp, HV_X64_REGISTER_RSI));
		} else {
			return;		/* HALT, UNRECOVERABLE_EXCEPTION, ...: the end */
		}
	}
}

/* ---- signal: EINTR from a spinning guest, then resume ------------------------ */

static void on_alarm(int sig)
{
	(void)sig;
}

/* signal <image> <resume_rip>: the guest spins at 0; after EINTR, RIP := resume_rip */
static void case_signal(int argc, char **argv)
{
	struct world w;
	struct sigaction sa;
	struct itimerval it = { .it_value = { .tv_usec = 100000 } };
	struct mshv_run_vp run;
	struct hv_message *m = (void *)run.msg_buf;
	struct hv_x64_io_port_intercept_message *io = (void *)m->payload;
	int ret;

	world_init(&w, 0, 0x20000, true);
	load_image(&w, argv[0], 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	errno = 0;
	ret = ioctl(w.vp, MSHV_RUN_VP, &run);
	printf("run1.ret=%d\nrun1.errno=%s\n", ret, ename(ret, errno));
	printf("explicit_suspend=%lu\n", (unsigned long)get1(w.vp, HV_REGISTER_EXPLICIT_SUSPEND));
	printf("rip_after_eintr_in_loop=%d\n", get1(w.vp, HV_X64_REGISTER_RIP) < 0x10);
	set1(w.vp, HV_X64_REGISTER_RIP, strtoull(argv[1], NULL, 0));
	errno = 0;
	ret = ioctl(w.vp, MSHV_RUN_VP, &run);
	printf("run2.ret=%d\nrun2.errno=%s\n", ret, ename(ret, errno));
	printf("run2.type=%#x\nrun2.port=%#x\n", m->header.message_type, io->port_number);
	printf("explicit_suspend2=%lu\n", (unsigned long)get1(w.vp, HV_REGISTER_EXPLICIT_SUSPEND));
}

/*
 * in_repeat <image>: the guest starts with `in $0x60, %al; out %al, $0x61`.
 * RUN_VP again without completing the IN: mshv re-executes it (RIP was left
 * at it), so the same IN intercept comes back; then complete it.
 */
static void case_in_repeat(int argc, char **argv)
{
	struct world w;
	struct mshv_run_vp run;
	struct hv_message *m = (void *)run.msg_buf;
	struct hv_x64_io_port_intercept_message *io = (void *)m->payload;

	world_init(&w, 0, 0x20000, true);
	load_image(&w, argv[0], 0);
	for (int i = 0; i < 2; i++) {
		if (ioctl(w.vp, MSHV_RUN_VP, &run))
			die("run");
		printf("run%d.port=%#x\nrun%d.rip=%#lx\nrun%d.access=%u\n", i, io->port_number, i,
		       (unsigned long)io->header.rip, i, io->header.intercept_access_type);
	}
	set1(w.vp, HV_X64_REGISTER_RAX, 0x33);
	set1(w.vp, HV_X64_REGISTER_RIP, io->header.rip + 2);
	if (ioctl(w.vp, MSHV_RUN_VP, &run))
		die("run");
	printf("echo.port=%#x\necho.value=%#lx\n", io->port_number,
	       (unsigned long)(io->rax & 0xff));
}

/* ---- long mode: page tables built here, registers set by hypercall ----------- */

/*
 * longmode <image>: 2 MiB of RAM at GPA 0, identity-mapped through a 2 MiB
 * page (PML4 0x1000, PDPT 0x2000, PD 0x3000) plus a second 2 MiB page at
 * GVA 0x200000 -> GPA 0x200000 that has no RAM behind it (MMIO). Code at
 * 0x10000, stack below 0x80000.
 */
static void case_longmode(int argc, char **argv)
{
	struct world w;
	uint64_t *pml4, *pdpt, *pd;
	uint32_t names[] = {
		HV_X64_REGISTER_CR3, HV_X64_REGISTER_CR4, HV_X64_REGISTER_EFER,
		HV_X64_REGISTER_CR0, HV_X64_REGISTER_CS, HV_X64_REGISTER_DS,
		HV_X64_REGISTER_ES, HV_X64_REGISTER_SS, HV_X64_REGISTER_RIP,
		HV_X64_REGISTER_RSP, HV_X64_REGISTER_RFLAGS,
	};
	union hv_register_value v[11];
	struct hc r;

	world_init(&w, 0, 0x200000, false);
	load_image(&w, argv[0], 0x10000);
	pml4 = (void *)(w.mem + 0x1000);
	pdpt = (void *)(w.mem + 0x2000);
	pd = (void *)(w.mem + 0x3000);
	pml4[0] = 0x2000 | 3;
	pdpt[0] = 0x3000 | 3;
	pd[0] = 0x000000 | 0x83;	/* present, writable, 2 MiB */
	pd[1] = 0x200000 | 0x83;
	memset(v, 0, sizeof(v));
	v[0].reg64 = 0x1000;
	v[1].reg64 = 0x20;		/* CR4.PAE */
	v[2].reg64 = 0x500;		/* EFER.LME | LMA */
	v[3].reg64 = 0x80000011;	/* CR0.PG | ET | PE */
	v[4].segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffffffff,
							  .selector = 8, .attributes = 0xa09b };
	for (int i = 5; i < 8; i++)
		v[i].segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffffffff,
								  .selector = 0x10,
								  .attributes = 0xc093 };
	v[8].reg64 = 0x10000;
	v[9].reg64 = 0x80000;
	v[10].reg64 = 0x2;
	r = set_regs(w.vp, 0, names, v, 11);
	print_hc("setup", r);
	printf("efer=%#lx\n", (unsigned long)get1(w.vp, HV_X64_REGISTER_EFER));
	{
		/* TRANSLATE_VIRTUAL_ADDRESS: mapped code page, then an unmapped GVA */
		struct hv_input_translate_virtual_address in = { .vp_index = 0,
			.control_flags = HV_TRANSLATE_GVA_VALIDATE_READ, .gva_page = 0x10 };
		struct hv_output_translate_virtual_address out;

		memset(&out, 0xaa, sizeof(out));
		r = hvcall(w.vp, HVCALL_TRANSLATE_VIRTUAL_ADDRESS, 0, &in, sizeof(in), &out,
			   sizeof(out));
		print_hc("xlate", r);
		printf("xlate.result=%u\nxlate.gpa_page=%#lx\n", out.translation_result.result_code,
		       (unsigned long)out.gpa_page);
		in.gva_page = 0x80000;	/* 2 GiB: no PDPT entry */
		r = hvcall(w.vp, HVCALL_TRANSLATE_VIRTUAL_ADDRESS, 0, &in, sizeof(in), &out,
			   sizeof(out));
		printf("xlate2.result=%u\n", out.translation_result.result_code);
		in.gva_page = 0x200;	/* mapped by the page tables, no RAM behind */
		r = hvcall(w.vp, HVCALL_TRANSLATE_VIRTUAL_ADDRESS, 0, &in, sizeof(in), &out,
			   sizeof(out));
		printf("xlate3.result=%u\n", out.translation_result.result_code);
	}
	for (int i = 0; i < 4; i++) {
		struct mshv_run_vp run;
		struct hv_message *m = (void *)run.msg_buf;
		struct hv_x64_intercept_message_header *h = (void *)m->payload;
		int ret = ioctl(w.vp, MSHV_RUN_VP, &run);
		uint8_t len = h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;

		printf("exit%d.ret=%d\nexit%d.type=%#x\nexit%d.rip=%#lx\nexit%d.len=%u\n", i, ret,
		       i, m->header.message_type, i, (unsigned long)h->rip, i, len);
		printf("exit%d.execution_state=%#x\nexit%d.cs_attributes=%#x\n", i,
		       h->execution_state, i, h->cs_segment.attributes);
		if (ret)
			return;
		if (m->header.message_type == HVMSG_X64_IO_PORT_INTERCEPT) {
			struct hv_x64_io_port_intercept_message *io = (void *)m->payload;

			printf("exit%d.port=%#x\nexit%d.size=%u\nexit%d.rax=%#lx\n", i,
			       io->port_number, i,
			       io->access_info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK, i,
			       (unsigned long)io->rax);
			set1(w.vp, HV_X64_REGISTER_RIP, h->rip + len);
		} else if (m->header.message_type == HVMSG_UNMAPPED_GPA) {
			struct hv_x64_memory_intercept_message *mi = (void *)m->payload;
			char k[32];

			printf("exit%d.gpa=%#lx\nexit%d.access=%u\n", i,
			       (unsigned long)mi->guest_physical_address, i,
			       h->intercept_access_type);
			snprintf(k, sizeof(k), "exit%d.bytes", i);
			hex(k, mi->instruction_bytes, len);
			/* emulate `mov (%rbx), %ecx`: ECX := 0xC0FFEE */
			set1(w.vp, HV_X64_REGISTER_RCX, 0xc0ffee);
			set1(w.vp, HV_X64_REGISTER_RIP, h->rip + len);
		} else {
			return;
		}
	}
}

/* ---- registers ----------------------------------------------------------------- */

/* One name, set then get; prints <key>.set / <key>.get status and whether equal. */
static void roundtrip(struct world *w, const char *key, uint32_t name,
		      union hv_register_value v, size_t cmp_len)
{
	union hv_register_value got;
	struct hc s = set_regs(w->vp, 0, &name, &v, 1), g;

	memset(&got, 0, sizeof(got));
	g = get_regs(w->vp, 0, &name, 1, &got);
	printf("%s.set=%#x\n%s.get=%#x\n%s.same=%d\n", key, s.status, key, g.status, key,
	       !memcmp(&got, &v, cmp_len));
	if (memcmp(&got, &v, cmp_len)) {
		printf("%s.wanted=%#lx:%#lx\n%s.got=%#lx:%#lx\n", key,
		       (unsigned long)v.reg128.low_part, (unsigned long)v.reg128.high_part, key,
		       (unsigned long)got.reg128.low_part, (unsigned long)got.reg128.high_part);
	}
}

static union hv_register_value val64(uint64_t x)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.reg64 = x;
	return v;
}

static union hv_register_value val128(uint64_t lo, uint64_t hi)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.reg128.low_part = lo;
	v.reg128.high_part = hi;
	return v;
}

static union hv_register_value seg(uint64_t base, uint32_t limit, uint16_t sel, uint16_t attr)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.segment.base = base;
	v.segment.limit = limit;
	v.segment.selector = sel;
	v.segment.attributes = attr;
	return v;
}

static void case_regs(int argc, char **argv)
{
	struct world w;
	char key[32];

	world_init(&w, 0, 0x20000, true);
	for (uint32_t n = HV_X64_REGISTER_RAX; n <= HV_X64_REGISTER_R15; n++) {
		snprintf(key, sizeof(key), "gpr%u", n - HV_X64_REGISTER_RAX);
		roundtrip(&w, key, n, val64(0x1111111111111111ULL * (n - HV_X64_REGISTER_RAX + 1)), 8);
	}
	roundtrip(&w, "rip", HV_X64_REGISTER_RIP, val64(0x1234), 8);
	roundtrip(&w, "rflags", HV_X64_REGISTER_RFLAGS, val64(0x202 | 0x1 | 0x40), 8);
	roundtrip(&w, "es", HV_X64_REGISTER_ES, seg(0x12340, 0xffff, 0x1234, 0x93), 16);
	roundtrip(&w, "ds", HV_X64_REGISTER_DS, seg(0x20000, 0xffff, 0x2000, 0x93), 16);
	roundtrip(&w, "fs", HV_X64_REGISTER_FS, seg(0x7000, 0xfffff, 0x700, 0x8093), 16);
	roundtrip(&w, "gs", HV_X64_REGISTER_GS, seg(0xabcd0, 0xffff, 0xabcd, 0x93), 16);
	roundtrip(&w, "ss", HV_X64_REGISTER_SS, seg(0x30000, 0xffff, 0x3000, 0x93), 16);
	roundtrip(&w, "cs", HV_X64_REGISTER_CS, seg(0xf0000, 0xffff, 0xf000, 0x9b), 16);
	roundtrip(&w, "ldtr", HV_X64_REGISTER_LDTR, seg(0x5000, 0xff, 0x28, 0x82), 16);
	roundtrip(&w, "tr", HV_X64_REGISTER_TR, seg(0x6000, 0x67, 0x30, 0x8b), 16);
	{
		union hv_register_value t;

		memset(&t, 0, sizeof(t));
		t.table.limit = 0x3ff;
		t.table.base = 0x8000;
		roundtrip(&w, "idtr", HV_X64_REGISTER_IDTR, t, 16);
		t.table.limit = 0x27;
		t.table.base = 0x9000;
		roundtrip(&w, "gdtr", HV_X64_REGISTER_GDTR, t, 16);
	}
	roundtrip(&w, "cr2", HV_X64_REGISTER_CR2, val64(0xdead000), 8);
	roundtrip(&w, "cr3", HV_X64_REGISTER_CR3, val64(0x5000), 8);
	roundtrip(&w, "cr4", HV_X64_REGISTER_CR4, val64(0x20), 8);
	roundtrip(&w, "efer", HV_X64_REGISTER_EFER, val64(0x1), 8);
	roundtrip(&w, "cr0", HV_X64_REGISTER_CR0, val64(0x60000010), 8);
	for (uint32_t n = HV_X64_REGISTER_DR0; n <= HV_X64_REGISTER_DR3; n++) {
		snprintf(key, sizeof(key), "dr%u", n - HV_X64_REGISTER_DR0);
		roundtrip(&w, key, n, val64(0x1000 * (n - HV_X64_REGISTER_DR0 + 1)), 8);
	}
	roundtrip(&w, "dr6", HV_X64_REGISTER_DR6, val64(0xffff0ff1), 8);
	roundtrip(&w, "dr7", HV_X64_REGISTER_DR7, val64(0x401), 8);
	for (uint32_t n = HV_X64_REGISTER_XMM0; n <= HV_X64_REGISTER_XMM15; n++) {
		snprintf(key, sizeof(key), "xmm%u", n - HV_X64_REGISTER_XMM0);
		roundtrip(&w, key, n, val128(0x0102030405060708ULL + n, 0xa0b0c0d0e0f00000ULL + n), 16);
	}
	{
		union hv_register_value f;

		memset(&f, 0, sizeof(f));
		f.fp_control_status.fp_control = 0x37e;
		f.fp_control_status.fp_status = 0x1;
		roundtrip(&w, "fpcs", HV_X64_REGISTER_FP_CONTROL_STATUS, f, 4);
		memset(&f, 0, sizeof(f));
		f.xmm_control_status.xmm_status_control = 0x1f80 | 0x6000;
		roundtrip(&w, "mxcsr", HV_X64_REGISTER_XMM_CONTROL_STATUS, f, 12);
	}
	roundtrip(&w, "kernel_gs_base", HV_X64_REGISTER_KERNEL_GS_BASE, val64(0xffff800000001000ULL), 8);
	roundtrip(&w, "pat", HV_X64_REGISTER_PAT, val64(0x0007040600070406ULL), 8);
	roundtrip(&w, "sysenter_cs", HV_X64_REGISTER_SYSENTER_CS, val64(0x10), 8);
	roundtrip(&w, "sysenter_eip", HV_X64_REGISTER_SYSENTER_EIP, val64(0xffff800000002000ULL), 8);
	roundtrip(&w, "sysenter_esp", HV_X64_REGISTER_SYSENTER_ESP, val64(0xffff800000003000ULL), 8);
	roundtrip(&w, "star", HV_X64_REGISTER_STAR, val64(0x0023001000000000ULL), 8);
	roundtrip(&w, "lstar", HV_X64_REGISTER_LSTAR, val64(0xffff800000004000ULL), 8);
	roundtrip(&w, "cstar", HV_X64_REGISTER_CSTAR, val64(0xffff800000005000ULL), 8);
	roundtrip(&w, "sfmask", HV_X64_REGISTER_SFMASK, val64(0x47700), 8);
	roundtrip(&w, "tsc_aux", HV_X64_REGISTER_TSC_AUX, val64(7), 8);
	roundtrip(&w, "mtrr_def_type", HV_X64_REGISTER_MSR_MTRR_DEF_TYPE, val64(0xc06), 8);
	roundtrip(&w, "mtrr_base0", HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0, val64(0x80000006), 8);
	roundtrip(&w, "mtrr_fix64k", HV_X64_REGISTER_MSR_MTRR_FIX64K00000,
		  val64(0x0606060606060606ULL), 8);
	roundtrip(&w, "interrupt_state", HV_REGISTER_INTERRUPT_STATE,
		  val64(HV_X64_INTERRUPT_STATE_NMI_MASKED), 8);
	roundtrip(&w, "pending_interruption", HV_REGISTER_PENDING_INTERRUPTION,
		  val64(HV_X64_PENDING_INTERRUPTION_PENDING |
			((uint64_t)HV_X64_PENDING_INTERRUPT << HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT) |
			(0x30ULL << HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT)), 8);
	roundtrip(&w, "pending_clear", HV_REGISTER_PENDING_INTERRUPTION, val64(0), 8);
	roundtrip(&w, "intercept_suspend", HV_REGISTER_INTERCEPT_SUSPEND, val64(1), 8);
	roundtrip(&w, "explicit_suspend", HV_REGISTER_EXPLICIT_SUSPEND, val64(1), 8);
	roundtrip(&w, "xfem", HV_X64_REGISTER_XFEM, val64(3), 8);
	{
		/* A value far from the running TSC, so a write that does not take shows. */
		uint64_t t0 = get1(w.vp, HV_X64_REGISTER_TSC);
		uint64_t target = t0 + TSC_JUMP;

		set1(w.vp, HV_X64_REGISTER_TSC, target);
		printf("tsc.t0=%#llx\ntsc.target=%#llx\ntsc.got=%#llx\n", (unsigned long long)t0,
		       (unsigned long long)target, (unsigned long long)get1(w.vp, HV_X64_REGISTER_TSC));
	}
	/* a name the hypervisor does not know, and a read-only one */
	{
		union hv_register_value v;
		uint32_t bad = 0x7fff1234;
		struct hc r = get_regs(w.vp, 0, &bad, 1, &v);

		print_hc("unknown_get", r);
		r = set_regs(w.vp, 0, &bad, &v, 1);
		print_hc("unknown_set", r);
	}
}

/*
 * Does the host KVM honour a host-initiated TSC write (kvm_set_msr_common's
 * MSR_IA32_TSC path with msr_info->host_initiated)? Asked of /dev/kvm
 * directly, not through the emulator: a fresh VM and vCPU, KVM_SET_MSRS of
 * the TSC to a value far from the current one, KVM_GET_MSRS.
 */
static void case_host_tsc_write(int argc, char **argv)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;
	int kvm, vm, vcpu;
	uint64_t t0, target;

	(void)argc;
	(void)argv;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = 0x10;	/* MSR_IA32_TSC */
	if (ioctl(vcpu, KVM_GET_MSRS, &m) != 1)
		die("KVM_GET_MSRS");
	t0 = m.e.data;
	target = t0 + TSC_JUMP;
	m.e.data = target;
	if (ioctl(vcpu, KVM_SET_MSRS, &m) != 1)
		die("KVM_SET_MSRS");
	m.e.data = 0;
	if (ioctl(vcpu, KVM_GET_MSRS, &m) != 1)
		die("KVM_GET_MSRS");
	printf("host.t0=%#llx\nhost.target=%#llx\nhost.got=%#llx\n", (unsigned long long)t0,
	       (unsigned long long)target, (unsigned long long)m.e.data);
	close(vcpu);
	close(vm);
	close(kvm);
}

/*
 * A new VP starts explicitly suspended; RUN_VP clears it
 * (mshv_partition_ioctl_create_vp, mshv_run_vp_with_hyp_scheduler).
 */
static void case_suspend(int argc, char **argv)
{
	struct world w;
	struct mshv_run_vp run;

	world_init(&w, 0, 0x20000, true);
	load_image(&w, argv[0], 0);
	printf("before=%lu\n", (unsigned long)get1(w.vp, HV_REGISTER_EXPLICIT_SUSPEND));
	if (ioctl(w.vp, MSHV_RUN_VP, &run))
		die("run");
	printf("after=%lu\n", (unsigned long)get1(w.vp, HV_REGISTER_EXPLICIT_SUSPEND));
}

/* batch: 200-name GET, 127-name SET, a failing SET at index 57 */
static void case_batch(int argc, char **argv)
{
	struct world w;
	static uint32_t names[256];
	static union hv_register_value vals[256];
	struct hc r;
	int ok = 1;

	world_init(&w, 0, 0x20000, true);
	for (int i = 0; i < 16; i++)
		set1(w.vp, HV_X64_REGISTER_RAX + i, 0x100 + i);
	for (int i = 0; i < 200; i++)
		names[i] = HV_X64_REGISTER_RAX + i % 16;
	memset(vals, 0, sizeof(vals));
	r = get_regs(w.vp, 0, names, 200, vals);
	print_hc("get200", r);
	for (int i = 0; i < 200; i++)
		ok &= vals[i].reg64 == 0x100 + (uint64_t)(i % 16);
	printf("get200.values_ok=%d\n", ok);

	r = get_regs(w.vp, 0, names, 256, vals);
	print_hc("get256", r);
	r = get_regs(w.vp, 0, names, 257, vals);
	print_hc("get257", r);

	for (int i = 0; i < 127; i++) {
		names[i] = HV_X64_REGISTER_R8 + i % 8;
		vals[i] = val64(0x5000 + i);
	}
	r = set_regs(w.vp, 0, names, vals, 127);
	print_hc("set127", r);
	printf("set127.r8=%#lx\n", (unsigned long)get1(w.vp, HV_X64_REGISTER_R8));
	printf("set127.r15=%#lx\n", (unsigned long)get1(w.vp, HV_X64_REGISTER_R15));
	r = set_regs(w.vp, 0, names, vals, 128);	/* 16 + 32*128 > 4096 */
	print_hc("set128", r);

	for (int i = 0; i < 100; i++) {
		names[i] = HV_X64_REGISTER_RBX;
		vals[i] = val64(0x7000 + i);
	}
	names[57] = 0x7fff1234;
	r = set_regs(w.vp, 0, names, vals, 100);
	print_hc("setbad", r);
	printf("setbad.rbx=%#lx\n", (unsigned long)get1(w.vp, HV_X64_REGISTER_RBX));

	/* a VP that does not exist */
	r = get_regs(w.vp, 5, names, 1, vals);
	print_hc("novp", r);
}

/* ---- mshv_ioctl_passthru_hvcall checks --------------------------------------------- */

static void raw_hvcall(const char *key, int fd, struct mshv_root_hvcall *a)
{
	long ret;

	errno = 0;
	ret = ioctl(fd, MSHV_ROOT_HVCALL, a);
	printf("%s.ret=%ld\n%s.errno=%s\n%s.status=%#x\n%s.reps=%u\n", key, ret, key,
	       ename(ret, errno), key, a->status, key, a->reps);
}

static void case_hvcall_checks(int argc, char **argv)
{
	struct world w;
	struct hv_input_get_partition_property in = {
		.property_code = HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE };
	struct hv_output_get_partition_property out;
	struct mshv_root_hvcall a, base = {
		.code = HVCALL_GET_PARTITION_PROPERTY, .in_sz = sizeof(in), .out_sz = sizeof(out),
		.in_ptr = (uint64_t)(uintptr_t)&in, .out_ptr = (uint64_t)(uintptr_t)&out,
	};

	world_init(&w, 0, 0x20000, true);
	a = base; raw_hvcall("ok", w.pt, &a);
	printf("ok.value=%lu\n", (unsigned long)out.property_value);
	a = base; a.status = 1; raw_hvcall("status_set", w.pt, &a);
	a = base; a.in_ptr = 0; raw_hvcall("in_ptr0", w.pt, &a);
	a = base; a.in_sz = 7; raw_hvcall("in_sz7", w.pt, &a);
	a = base; a.rsvd[5] = 1; raw_hvcall("rsvd", w.pt, &a);
	a = base; a.in_sz = 4097; raw_hvcall("in_sz4097", w.pt, &a);
	a = base; a.out_sz = 0; raw_hvcall("out_sz0", w.pt, &a);
	a = base; a.out_sz = 4097; raw_hvcall("out_sz4097", w.pt, &a);
	a = base; a.out_ptr = 0; a.out_sz = 0; raw_hvcall("no_out", w.pt, &a);
	a = base; a.out_ptr = 0; a.out_sz = 5000; raw_hvcall("no_out_big_sz", w.pt, &a);
	a = base; a.code = HVCALL_READ_GPA; raw_hvcall("not_allowed", w.pt, &a);
	a = base; a.code = HVCALL_GET_VP_STATE; raw_hvcall("not_allowed_vp", w.vp, &a);
	a = base; a.in_ptr = 8; raw_hvcall("in_efault", w.pt, &a);
	/* an unreadable argument: EFAULT before anything (copy_from_user first) */
	{
		long ret;

		errno = 0;
		ret = ioctl(w.pt, MSHV_ROOT_HVCALL, (void *)8);
		printf("arg_efault.errno=%s\n", ename(ret, errno));
	}
	/* unknown property: status and reps written back, output untouched */
	in.property_code = 0x7fff0001;
	memset(&out, 0xaa, sizeof(out));
	a = base; raw_hvcall("unknown_prop", w.pt, &a);
	printf("unknown_prop.out_untouched=%d\n", out.property_value == 0xaaaaaaaaaaaaaaaaULL);
	/* a failing output copy: EFAULT after the status was written back */
	in.property_code = HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE;
	{
		void *p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		a = base; a.out_ptr = (uint64_t)(uintptr_t)p; raw_hvcall("out_efault", w.pt, &a);
	}
	/* a simple hypercall with a rep count */
	a = base; a.reps = 3; raw_hvcall("simple_with_reps", w.pt, &a);

	/* SET_PARTITION_PROPERTY (async) only from the partition fd */
	{
		struct hv_input_set_partition_property sp = {
			.property_code = HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING,
			.property_value = 1 };

		a = (struct mshv_root_hvcall){ .code = HVCALL_SET_PARTITION_PROPERTY,
			.in_sz = sizeof(sp), .in_ptr = (uint64_t)(uintptr_t)&sp };
		raw_hvcall("set_from_vp", w.vp, &a);
		a = (struct mshv_root_hvcall){ .code = HVCALL_SET_PARTITION_PROPERTY,
			.in_sz = sizeof(sp), .in_ptr = (uint64_t)(uintptr_t)&sp };
		raw_hvcall("set_from_dev", w.dev, &a);
		a = (struct mshv_root_hvcall){ .code = HVCALL_SET_PARTITION_PROPERTY,
			.in_sz = sizeof(sp), .in_ptr = (uint64_t)(uintptr_t)&sp };
		raw_hvcall("set_from_pt", w.pt, &a);
		in.property_code = HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING;
		a = base; raw_hvcall("tracking", w.pt, &a);
		printf("tracking.value=%lu\n", (unsigned long)out.property_value);
		sp.property_code = HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES;
		a = (struct mshv_root_hvcall){ .code = HVCALL_SET_PARTITION_PROPERTY,
			.in_sz = sizeof(sp), .in_ptr = (uint64_t)(uintptr_t)&sp };
		raw_hvcall("early_after_init", w.pt, &a);
	}
	/* /dev/mshv: host properties only */
	{
		struct hv_input_get_partition_property hp = {
			.property_code = HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0 };
		struct hv_output_get_partition_property ho = { 0 };

		a = (struct mshv_root_hvcall){ .code = HVCALL_GET_PARTITION_PROPERTY,
			.in_sz = sizeof(hp), .out_sz = sizeof(ho),
			.in_ptr = (uint64_t)(uintptr_t)&hp, .out_ptr = (uint64_t)(uintptr_t)&ho };
		raw_hvcall("dev_features0", w.dev, &a);
		printf("dev_features0.value=%#lx\n", (unsigned long)ho.property_value);
		a.code = HVCALL_GET_VP_REGISTERS;
		raw_hvcall("dev_regs", w.dev, &a);
	}
	/* INSTALL_INTERCEPT */
	{
		struct hv_input_install_intercept ii = {
			.access_type = HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE,
			.intercept_type = HV_INTERCEPT_TYPE_X64_IO_PORT };

		a = (struct mshv_root_hvcall){ .code = HVCALL_INSTALL_INTERCEPT,
			.in_sz = sizeof(ii), .in_ptr = (uint64_t)(uintptr_t)&ii };
		raw_hvcall("intercept_io", w.pt, &a);
		ii.intercept_type = HV_INTERCEPT_TYPE_X64_CPUID;
		a = (struct mshv_root_hvcall){ .code = HVCALL_INSTALL_INTERCEPT,
			.in_sz = sizeof(ii), .in_ptr = (uint64_t)(uintptr_t)&ii };
		raw_hvcall("intercept_cpuid", w.pt, &a);
	}
	/* SynIC hypercalls: not emulated */
	{
		struct hv_input_signal_event_direct se = { .target_vp = 0, .target_sint = 2 };
		struct hv_output_signal_event_direct so;

		a = (struct mshv_root_hvcall){ .code = HVCALL_SIGNAL_EVENT_DIRECT,
			.in_sz = sizeof(se), .out_sz = sizeof(so),
			.in_ptr = (uint64_t)(uintptr_t)&se, .out_ptr = (uint64_t)(uintptr_t)&so };
		raw_hvcall("signal_event", w.pt, &a);
	}
}

/* the VP fd acts on the vp_index in the input, not on its own VP (mshv_vp_ioctl) */
static void case_vp_index(int argc, char **argv)
{
	struct world w;
	struct mshv_create_vp cv = { .vp_index = 3 };
	int vp3;
	uint32_t name = HV_X64_REGISTER_RBX;
	union hv_register_value v = val64(0x3333), got;
	struct hc r;

	world_init(&w, 0, 0x20000, true);
	vp3 = ioctl(w.pt, MSHV_CREATE_VP, &cv);
	if (vp3 < 0)
		die("create vp 3");
	r = set_regs(w.vp, 3, &name, &v, 1);	/* through VP 0's fd */
	print_hc("set_via_vp0", r);
	memset(&got, 0, sizeof(got));
	r = get_regs(vp3, 3, &name, 1, &got);
	printf("vp3.rbx=%#lx\n", (unsigned long)got.reg64);
	r = get_regs(w.pt, 0, &name, 1, &got);
	printf("vp0.rbx_untouched=%d\n", got.reg64 != 0x3333);
}

/* ---- VP state ---------------------------------------------------------------------- */

static long vp_state(int vp, unsigned long req, uint8_t type, void *buf, uint32_t *sz)
{
	struct mshv_get_set_vp_state s = { .type = type, .buf_sz = *sz,
					   .buf_ptr = (uint64_t)(uintptr_t)buf };
	long ret = ioctl(vp, req, &s);

	*sz = s.buf_sz;
	return ret;
}

static void case_vpstate(int argc, char **argv)
{
	struct world w;
	uint8_t *buf = aligned_alloc(PAGE, 2 * PAGE), *buf2 = aligned_alloc(PAGE, 2 * PAGE);
	uint32_t sz;
	long ret;
	uint64_t xcomp;
	int lapic = atoi(argv[0]);

	world_init(&w, lapic ? 1 << MSHV_PT_BIT_LAPIC : 0, 0x20000, true);
	/* XSAVE: compacted, XCOMP_BV bit 63, buf_sz = MAX_XSAVE_DATA_SIZE */
	{
		union hv_register_value x = val128(0x1122334455667788ULL, 0x99aabbccddeeff00ULL);
		uint32_t name = HV_X64_REGISTER_XMM0;

		set_regs(w.vp, 0, &name, &x, 1);
	}
	memset(buf, 0, 2 * PAGE);
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_XSAVE, buf, &sz);
	printf("xsave_get.ret=%ld\nxsave_get.errno=%s\nxsave_get.buf_sz=%u\n", ret,
	       ename(ret, errno), sz);
	memcpy(&xcomp, buf + 520, 8);
	printf("xsave.xcomp_bit63=%lu\n", (unsigned long)(xcomp >> 63));
	printf("xsave.xcomp_sse=%lu\n", (unsigned long)((xcomp >> 1) & 1));
	printf("xsave.xmm0_ok=%d\n", !memcmp(buf + 160, "\x88\x77\x66\x55\x44\x33\x22\x11", 8));
	/* change XMM1 in the blob, SET, read it back as a register */
	memset(buf + 176, 0x5c, 16);
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_SET_VP_STATE, MSHV_VP_STATE_XSAVE, buf, &sz);
	printf("xsave_set.ret=%ld\nxsave_set.errno=%s\n", ret, ename(ret, errno));
	{
		uint32_t name = HV_X64_REGISTER_XMM1;
		union hv_register_value got;

		get_regs(w.vp, 0, &name, 1, &got);
		printf("xsave_set.xmm1=%#lx\n", (unsigned long)got.reg128.low_part);
	}
	/* LAPIC */
	memset(buf, 0, PAGE);
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, &sz);
	printf("lapic_get.ret=%ld\nlapic_get.errno=%s\nlapic_get.buf_sz=%u\n", ret,
	       ename(ret, errno), sz);
	if (!ret) {
		struct hv_local_interrupt_controller_state *l = (void *)buf;

		printf("lapic.version=%#x\n", l->apic_version);
		l->apic_lvt_lint0 = 0x700;	/* ExtINT, unmasked */
		l->apic_spurious = 0x1ff;
		sz = PAGE;
		errno = 0;
		ret = vp_state(w.vp, MSHV_SET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, &sz);
		printf("lapic_set.ret=%ld\nlapic_set.errno=%s\n", ret, ename(ret, errno));
		memset(buf2, 0, PAGE);
		sz = PAGE;
		vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf2, &sz);
		l = (void *)buf2;
		printf("lapic.lint0=%#x\nlapic.spurious=%#x\n", l->apic_lvt_lint0, l->apic_spurious);
	}
	/* SIMP round trip, SYNTHETIC_TIMERS is 200 bytes */
	for (int i = 0; i < (int)PAGE; i++)
		buf[i] = (uint8_t)(i * 7);
	sz = PAGE;
	ret = vp_state(w.vp, MSHV_SET_VP_STATE, MSHV_VP_STATE_SIMP, buf, &sz);
	memset(buf2, 0, PAGE);
	sz = PAGE;
	ret |= vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, buf2, &sz);
	printf("simp.ret=%ld\nsimp.same=%d\n", ret, !memcmp(buf, buf2, PAGE));
	sz = PAGE;
	memset(buf2, 0, PAGE);
	ret = vp_state(w.vp, MSHV_SET_VP_STATE, MSHV_VP_STATE_SYNTHETIC_TIMERS, buf, &sz);
	printf("timers_set.ret=%ld\ntimers_set.buf_sz=%u\n", ret, sz);
	sz = PAGE;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_SYNTHETIC_TIMERS, buf2, &sz);
	printf("timers_get.ret=%ld\ntimers_get.buf_sz=%u\ntimers.same=%d\ntimers.rest_zero=%d\n",
	       ret, sz, !memcmp(buf, buf2, 200), buf2[200] == 0);
	/* checks: no write-back on step-2 failures */
	sz = 0;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, &sz);
	printf("sz0.errno=%s\nsz0.buf_sz=%u\n", ename(ret, errno), sz);
	sz = 100;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, buf, &sz);
	printf("sz100.errno=%s\nsz100.buf_sz=%u\n", ename(ret, errno), sz);
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, buf + 8, &sz);
	printf("misaligned.errno=%s\nmisaligned.buf_sz=%u\n", ename(ret, errno), sz);
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_COUNT, buf, &sz);
	printf("badtype.errno=%s\n", ename(ret, errno));
	sz = PAGE;
	errno = 0;
	ret = vp_state(w.vp, MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, (void *)0x7ffffffff000UL, &sz);
	printf("access_ok.errno=%s\naccess_ok.buf_sz=%u\n", ename(ret, errno), sz);
}

struct kase {
	const char *name;
	void (*fn)(int argc, char **argv);
};

static const struct kase cases[] = {
	{ "trace", case_trace },
	{ "signal", case_signal },
	{ "in_repeat", case_in_repeat },
	{ "longmode", case_longmode },
	{ "regs", case_regs },
	{ "host_tsc_write", case_host_tsc_write },
	{ "suspend", case_suspend },
	{ "batch", case_batch },
	{ "hvcall_checks", case_hvcall_checks },
	{ "vp_index", case_vp_index },
	{ "vpstate", case_vpstate },
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!strcmp(cases[i].name, argv[1])) {
			cases[i].fn(argc - 2, argv + 2);
			return 0;
		}
	}
	fprintf(stderr, "unknown case %s\n", argv[1]);
	return 2;
}
