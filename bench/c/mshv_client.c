/* SPDX-License-Identifier: MIT */
/*
 * The C baseline on /dev/mshv: a VMM that includes only <linux/mshv.h>,
 * mshv_hvdefs.h and libc. On a root host it talks to the kernel; elsewhere it
 * runs under LD_PRELOAD=$(mshv emulator --preload-path). Its exit rounds are
 * interleaved with those of a raw KVM loop in the same process (bench_kvm.h,
 * <linux/kvm.h>), the floor the exit latency is measured against.
 *
 *   mshv_client exits <image> <out|in|mmio_read|mmio_write> <exits> <rounds> <regpage|hvcall>
 *   mshv_client map <size> <hugetlb 0|1> <rounds>
 *   mshv_client regs <get|set> <rounds> <name>...
 *   mshv_client bitmap <size> <rounds>
 *   mshv_client touch <image> <size> <rounds>
 *
 * Each intercept is completed the mshv way: the VMM writes the results and
 * moves RIP past the instruction, through the VP register page (dirty bits
 * GENERAL|IP; the emulator honours them in emu_regpage_apply) or through
 * HvCallSetVpRegisters. The client knows its guest, so an MMIO read is
 * emulated as the one instruction it is (`mov (%rbx), %eax`).
 * Prints one JSON line per case (bench_common.h).
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#include "bench_common.h"
#include "bench_complete.h"
#include "bench_kvm.h"

#define RWX ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))
#define HUGE_2M (2UL << 20)
#define TOUCH_GPA 0x10000000UL		/* 256 MiB: inside the identity map */
#define MAP_GPA 0x100000000UL		/* 4 GiB: map+unmap cases, never touched */

struct world {
	int dev, pt, vp;
	uint8_t *mem;
	struct hv_vp_register_page *rp;
};

static int set_mem(int pt, uint64_t gpa, void *p, size_t size, uint8_t flags)
{
	struct mshv_user_mem_region r = {
		.size = size, .guest_pfn = gpa / BENCH_PAGE,
		.userspace_addr = (uint64_t)(uintptr_t)p, .flags = flags,
	};

	return ioctl(pt, MSHV_SET_GUEST_MEMORY, &r);
}

static int hvcall(int fd, uint16_t code, uint16_t reps, void *in, uint16_t in_sz, void *out,
		  uint16_t out_sz)
{
	struct mshv_root_hvcall a = {
		.code = code, .reps = reps, .in_sz = in_sz, .out_sz = out_sz,
		.in_ptr = (uint64_t)(uintptr_t)in, .out_ptr = (uint64_t)(uintptr_t)out,
	};

	if (ioctl(fd, MSHV_ROOT_HVCALL, &a) < 0)
		return -1;
	return a.reps;
}

/* HvCallSetVpRegisters in batches of HV_SET_VP_REGISTERS_BATCH_MAX; -1 on failure. */
static int set_regs(int vp, const uint32_t *names, const union hv_register_value *values, int n)
{
	static uint8_t in[4096] __attribute__((aligned(8)));
	struct hv_input_set_vp_registers *h = (void *)in;
	struct hv_register_assoc *a = (void *)(in + sizeof(*h));

	for (int done = 0; done < n;) {
		int chunk = n - done < HV_SET_VP_REGISTERS_BATCH_MAX ? n - done :
								      HV_SET_VP_REGISTERS_BATCH_MAX;
		size_t sz = sizeof(*h) + (size_t)chunk * sizeof(*a);

		memset(in, 0, sz);
		for (int i = 0; i < chunk; i++) {
			a[i].name = names[done + i];
			a[i].value = values[done + i];
		}
		if (hvcall(vp, HVCALL_SET_VP_REGISTERS, (uint16_t)chunk, in, (uint16_t)sz, NULL,
			   0) != chunk)
			return -1;
		done += chunk;
	}
	return 0;
}

/* HvCallGetVpRegisters in batches of HV_GET_VP_REGISTERS_BATCH_MAX. */
static int get_regs(int vp, const uint32_t *names, union hv_register_value *values, int n)
{
	static uint8_t in[4096] __attribute__((aligned(8)));
	struct hv_input_get_vp_registers *h = (void *)in;

	for (int done = 0; done < n;) {
		int chunk = n - done < HV_GET_VP_REGISTERS_BATCH_MAX ? n - done :
								      HV_GET_VP_REGISTERS_BATCH_MAX;
		size_t sz = sizeof(*h) + (size_t)chunk * sizeof(uint32_t);

		memset(in, 0, sz);
		memcpy(in + sizeof(*h), names + done, (size_t)chunk * sizeof(uint32_t));
		if (hvcall(vp, HVCALL_GET_VP_REGISTERS, (uint16_t)chunk, in, (uint16_t)sz,
			   values + done, (uint16_t)(chunk * sizeof(*values))) != chunk)
			return -1;
		done += chunk;
	}
	return 0;
}

static void long_mode(int vp)
{
	uint32_t names[] = {
		HV_X64_REGISTER_CR3, HV_X64_REGISTER_CR4, HV_X64_REGISTER_EFER,
		HV_X64_REGISTER_CR0, HV_X64_REGISTER_CS, HV_X64_REGISTER_DS,
		HV_X64_REGISTER_ES, HV_X64_REGISTER_SS, HV_X64_REGISTER_RIP,
		HV_X64_REGISTER_RSP, HV_X64_REGISTER_RFLAGS,
	};
	union hv_register_value v[11];
	struct hv_x64_segment_register data = { .base = 0, .limit = 0xffffffff,
						 .selector = 0x10, .attributes = 0xc093 };

	memset(v, 0, sizeof(v));
	v[0].reg64 = BENCH_PT_GPA;
	v[1].reg64 = 1 << 5;				/* CR4.PAE */
	v[2].reg64 = (1 << 8) | (1 << 10);		/* EFER.LME | LMA */
	v[3].reg64 = (1U << 31) | (1 << 4) | 1;		/* CR0.PG | ET | PE */
	v[4].segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffffffff,
							  .selector = 8, .attributes = 0xa09b };
	v[5].segment = v[6].segment = v[7].segment = data;
	v[8].reg64 = BENCH_CODE_GPA;
	v[9].reg64 = BENCH_STACK_GPA;
	v[10].reg64 = 2;
	if (set_regs(vp, names, v, 11) < 0)
		bench_die("long-mode registers");
}

/* A partition, RAM at GPA 0 (with the image and page tables when image != NULL), VP 0. */
static void world_init(struct world *w, const char *image)
{
	struct mshv_create_partition cp = { .pt_flags = 0 };
	struct mshv_create_vp cv = { .vp_index = 0 };

	memset(w, 0, sizeof(*w));
	w->dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (w->dev < 0)
		bench_die("open /dev/mshv");
	w->pt = ioctl(w->dev, MSHV_CREATE_PARTITION, &cp);
	if (w->pt < 0)
		bench_die("MSHV_CREATE_PARTITION");
	if (ioctl(w->pt, MSHV_INITIALIZE_PARTITION) < 0)
		bench_die("MSHV_INITIALIZE_PARTITION");
	w->mem = mmap(NULL, BENCH_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (w->mem == MAP_FAILED)
		bench_die("guest memory");
	if (image) {
		bench_load_image(w->mem, BENCH_RAM_SIZE, image);
		bench_page_tables(w->mem);
	}
	if (set_mem(w->pt, 0, w->mem, BENCH_RAM_SIZE, RWX) < 0)
		bench_die("MSHV_SET_GUEST_MEMORY");
	w->vp = ioctl(w->pt, MSHV_CREATE_VP, &cv);
	if (w->vp < 0)
		bench_die("MSHV_CREATE_VP");
	w->rp = mmap(NULL, BENCH_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w->vp,
		     MSHV_VP_MMAP_OFFSET_REGISTERS * BENCH_PAGE);
	if (w->rp == MAP_FAILED)
		bench_die("mmap register page");
	if (image)
		long_mode(w->vp);
}

/* Complete one intercept the mshv way: results and RIP past the instruction. */
static int complete(struct world *w, const struct hv_message *m, enum bench_kind kind,
		    bool regpage)
{
	struct bench_completion c;

	if (bench_completion(m, kind, &c) < 0)
		return -1;
	if (regpage) {
		bench_complete_regpage(w->rp, &c);
		return 0;
	} else {
		uint32_t names[2] = { HV_X64_REGISTER_RIP, HV_X64_REGISTER_RAX };
		union hv_register_value v[2];

		memset(v, 0, sizeof(v));
		v[0].reg64 = c.rip;
		v[1].reg64 = c.rax;
		return set_regs(w->vp, names, v, c.set_rax ? 2 : 1);
	}
}

/*
 * Exit latency on /dev/mshv, each round right after a round of the raw KVM
 * loop and one of its floor (bench_kvm.h: one /dev/mshv call per exit with the
 * register page, two with the hypercall) on a KVM VM of this process running
 * the same guest: the host's speed drifts by phases, so the ratios are taken
 * round by round and reported as their medians (ratio_to_kvm, floor_ratio_to_kvm).
 */
static void case_exits(char **argv)
{
	enum bench_kind kind = bench_kind(argv[1]);
	int exits = atoi(argv[2]), rounds = bench_rounds(argv[3]);
	bool regpage = !strcmp(argv[4], "regpage");
	double samples[BENCH_MAX_ROUNDS], kvm[BENCH_MAX_ROUNDS];
	double ratio[BENCH_MAX_ROUNDS], floor_ratio[BENCH_MAX_ROUNDS];
	struct mshv_run_vp run;
	struct bench_kvm k;
	struct world w;
	char name[64], extra[160];

	world_init(&w, argv[0]);
	bench_kvm_init(&k, argv[0]);
	for (int r = -1; r < rounds; r++) {		/* round -1 warms up */
		double raw = bench_kvm_round(&k, kind, exits, 0, -1);
		double floor = bench_kvm_round(&k, kind, exits, regpage ? 1 : 2, w.vp);
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < exits; i++) {
			if (ioctl(w.vp, MSHV_RUN_VP, &run) < 0)
				bench_die("MSHV_RUN_VP");
			if (complete(&w, (const void *)run.msg_buf, kind, regpage) < 0) {
				fprintf(stderr, "unexpected message %#x\n",
					((struct hv_message *)run.msg_buf)->header.message_type);
				exit(1);
			}
		}
		if (r >= 0) {
			samples[r] = (double)(bench_now_ns() - t0) / exits;
			kvm[r] = raw;
			ratio[r] = samples[r] / raw;
			floor_ratio[r] = floor / raw;
		}
	}
	snprintf(extra, sizeof(extra),
		 ", \"kvm_median_ns\": %.3f, \"ratio_to_kvm\": %.4f, \"floor_ratio_to_kvm\": %.4f",
		 bench_median(kvm, rounds), bench_median(ratio, rounds),
		 bench_median(floor_ratio, rounds));
	snprintf(name, sizeof(name), "c_mshv_%s_%s", argv[1], argv[4]);
	bench_report_with(name, "exit", samples, rounds, extra);
}

/* Guest memory of size bytes (2 MiB hugetlb pages when huge), not touched. */
static void *host_memory(size_t size, bool huge)
{
	int flags = MAP_SHARED | MAP_ANONYMOUS | (huge ? MAP_HUGETLB | (21 << MAP_HUGE_SHIFT) : 0);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		bench_die(huge ? "hugetlb guest memory" : "guest memory");
	return p;
}

static void case_map(char **argv)
{
	size_t size = strtoull(argv[0], NULL, 0);
	bool huge = atoi(argv[1]);
	int rounds = bench_rounds(argv[2]);
	double samples[BENCH_MAX_ROUNDS];
	struct world w;
	char name[64];
	void *p = host_memory(size, huge);

	world_init(&w, NULL);
	for (int r = -1; r < rounds; r++) {
		uint64_t t0 = bench_now_ns();

		if (set_mem(w.pt, MAP_GPA, p, size, RWX) < 0)
			bench_die("map");
		if (set_mem(w.pt, MAP_GPA, p, size, 1 << MSHV_SET_MEM_BIT_UNMAP) < 0)
			bench_die("unmap");
		if (r >= 0)
			samples[r] = (double)(bench_now_ns() - t0);
	}
	snprintf(name, sizeof(name), "c_map_%s_%zu", huge ? "2m" : "4k", size);
	bench_report(name, "call", samples, rounds);
}

static void case_regs(int argc, char **argv)
{
	bool set = !strcmp(argv[0], "set");
	int rounds = bench_rounds(argv[1]), n = argc - 2;
	double samples[BENCH_MAX_ROUNDS];
	uint32_t *names = calloc((size_t)n, sizeof(*names));
	union hv_register_value *values = calloc((size_t)n, sizeof(*values));
	struct world w;
	char name[64];

	if (!names || !values)
		bench_die("calloc");
	for (int i = 0; i < n; i++)
		names[i] = (uint32_t)strtoul(argv[2 + i], NULL, 0);
	world_init(&w, NULL);
	if (get_regs(w.vp, names, values, n) < 0)	/* set writes back what is there */
		bench_die("get registers");
	for (int r = -1; r < rounds; r++) {
		uint64_t t0 = bench_now_ns();

		if ((set ? set_regs(w.vp, names, values, n) : get_regs(w.vp, names, values, n)) < 0)
			bench_die(set ? "set registers" : "get registers");
		if (r >= 0)
			samples[r] = (double)(bench_now_ns() - t0);
	}
	snprintf(name, sizeof(name), "c_regs_%s_%d", argv[0], n);
	bench_report(name, "call", samples, rounds);
}

static void case_bitmap(char **argv)
{
	size_t size = strtoull(argv[0], NULL, 0);
	int rounds = bench_rounds(argv[1]);
	uint64_t npages = size / BENCH_PAGE;
	double samples[BENCH_MAX_ROUNDS];
	uint8_t *bitmap = calloc(npages / 8 + 1, 1);
	struct hv_input_set_partition_property prop;
	void *p = host_memory(size, false);
	struct world w;
	char name[64];

	if (!bitmap)
		bench_die("calloc");
	world_init(&w, NULL);
	if (set_mem(w.pt, MAP_GPA, p, size, RWX) < 0)
		bench_die("map");
	memset(&prop, 0, sizeof(prop));
	prop.property_code = HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING;
	prop.property_value = 1;
	if (hvcall(w.pt, HVCALL_SET_PARTITION_PROPERTY, 0, &prop, sizeof(prop), NULL, 0) < 0)
		bench_die("GPA_PAGE_ACCESS_TRACKING");
	for (int r = -1; r < rounds; r++) {
		struct mshv_gpap_access_bitmap a = {
			.access_type = MSHV_GPAP_ACCESS_TYPE_DIRTY,
			.access_op = MSHV_GPAP_ACCESS_OP_CLEAR,
			.page_count = npages, .gpap_base = MAP_GPA / BENCH_PAGE,
			.bitmap_ptr = (uint64_t)(uintptr_t)bitmap,
		};
		uint64_t t0 = bench_now_ns();

		if (ioctl(w.pt, MSHV_GET_GPAP_ACCESS_BITMAP, &a) < 0)
			bench_die("MSHV_GET_GPAP_ACCESS_BITMAP");
		if (r >= 0)
			samples[r] = (double)(bench_now_ns() - t0);
	}
	snprintf(name, sizeof(name), "c_bitmap_%zu", size);
	bench_report(name, "call", samples, rounds);
}

/*
 * Time to first guest touch: a fresh region is mapped at TOUCH_GPA, and the
 * RUN_VP in which the guest writes its first byte and then does OUT is timed
 * (the OUT exit included). The guest loops, so the next round's touch hits
 * the next fresh region.
 */
static void case_touch(char **argv)
{
	size_t size = strtoull(argv[1], NULL, 0);
	int rounds = bench_rounds(argv[2]);
	double samples[BENCH_MAX_ROUNDS];
	struct mshv_run_vp run;
	struct world w;
	char name[64];

	world_init(&w, argv[0]);
	for (int r = -1; r < rounds; r++) {
		void *p = host_memory(size, false);
		uint64_t t0;

		if (set_mem(w.pt, TOUCH_GPA, p, size, RWX) < 0)
			bench_die("map");
		t0 = bench_now_ns();
		if (ioctl(w.vp, MSHV_RUN_VP, &run) < 0)
			bench_die("MSHV_RUN_VP");
		if (r >= 0)
			samples[r] = (double)(bench_now_ns() - t0);
		if (complete(&w, (const void *)run.msg_buf, BENCH_OUT, true) < 0 ||
		    *(volatile uint8_t *)p != 1) {
			fprintf(stderr, "touch: the guest did not write the region\n");
			exit(1);
		}
		if (set_mem(w.pt, TOUCH_GPA, p, size, 1 << MSHV_SET_MEM_BIT_UNMAP) < 0)
			bench_die("unmap");
		munmap(p, size);
	}
	snprintf(name, sizeof(name), "c_touch_%zu", size);
	bench_report(name, "call", samples, rounds);
}

int main(int argc, char **argv)
{
	if (argc >= 7 && !strcmp(argv[1], "exits"))
		case_exits(argv + 2);
	else if (argc == 5 && !strcmp(argv[1], "map"))
		case_map(argv + 2);
	else if (argc >= 5 && !strcmp(argv[1], "regs"))
		case_regs(argc - 2, argv + 2);
	else if (argc == 4 && !strcmp(argv[1], "bitmap"))
		case_bitmap(argv + 2);
	else if (argc == 5 && !strcmp(argv[1], "touch"))
		case_touch(argv + 2);
	else {
		fprintf(stderr, "usage: see the comment at the top of mshv_client.c\n");
		return 2;
	}
	return 0;
}
