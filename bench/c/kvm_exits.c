/* SPDX-License-Identifier: MIT */
/*
 * The floor: a raw KVM loop (no mshv, no emulator) running the same guest
 * work as the /dev/mshv clients, one KVM_RUN per exit.
 *
 *   kvm_exits <image> <out|in|mmio_read|mmio_write> <exits per round> <rounds>
 *
 * One vCPU in 64-bit mode (page tables and SREGS set here), 256 KiB of RAM at
 * GPA 0 and the image at BENCH_CODE_GPA. IN and MMIO reads are answered
 * through kvm_run (KVM completes them in the next KVM_RUN), exactly what a
 * KVM VMM does. Prints one JSON line: median ns per exit.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "bench_common.h"

static void set_cpuid(int kvm, int vcpu)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));

	if (!c)
		bench_die("calloc");
	c->nent = n;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		bench_die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
		bench_die("KVM_SET_CPUID2");
	free(c);
}

static void long_mode(int vcpu)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 8, .type = 0xb,
				    .present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0x3,
				    .present = 1, .s = 1, .db = 1, .g = 1 };

	if (ioctl(vcpu, KVM_GET_SREGS, &sr) < 0)
		bench_die("KVM_GET_SREGS");
	sr.cr3 = BENCH_PT_GPA;
	sr.cr4 = 1 << 5;				/* PAE */
	sr.efer = (1 << 8) | (1 << 10);			/* LME | LMA */
	sr.cr0 = (1U << 31) | (1 << 4) | 1;		/* PG | ET | PE */
	sr.cs = code;
	sr.ds = sr.es = sr.ss = sr.fs = sr.gs = data;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0)
		bench_die("KVM_SET_SREGS");
	memset(&r, 0, sizeof(r));
	r.rip = BENCH_CODE_GPA;
	r.rsp = BENCH_STACK_GPA;
	r.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
		bench_die("KVM_SET_REGS");
}

/* One exit of the expected kind, answered the KVM way; -1 on anything else. */
static int serve(struct kvm_run *run, enum bench_kind kind)
{
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.direction == KVM_EXIT_IO_IN) {
			if (kind != BENCH_IN)
				return -1;
			*((uint8_t *)run + run->io.data_offset) = 0x5a;
			return 0;
		}
		return kind == BENCH_OUT ? 0 : -1;
	case KVM_EXIT_MMIO:
		if (run->mmio.is_write)
			return kind == BENCH_MMIO_WRITE ? 0 : -1;
		if (kind != BENCH_MMIO_READ)
			return -1;
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		run->mmio.data[0] = 0x34;
		run->mmio.data[1] = 0x12;
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	int kvm, vm, vcpu, exits, rounds;
	struct kvm_userspace_memory_region slot;
	enum bench_kind kind;
	struct kvm_run *run;
	double samples[BENCH_MAX_ROUNDS];
	uint8_t *mem;
	char name[64];
	long run_size;

	if (argc != 5) {
		fprintf(stderr, "usage: kvm_exits <image> <kind> <exits> <rounds>\n");
		return 2;
	}
	kind = bench_kind(argv[2]);
	exits = atoi(argv[3]);
	rounds = bench_rounds(argv[4]);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		bench_die("open /dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		bench_die("KVM_CREATE_VM");
	mem = mmap(NULL, BENCH_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		bench_die("guest memory");
	bench_load_image(mem, BENCH_RAM_SIZE, argv[1]);
	bench_page_tables(mem);
	slot = (struct kvm_userspace_memory_region){ .slot = 0, .guest_phys_addr = 0,
		.memory_size = BENCH_RAM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem };
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		bench_die("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		bench_die("KVM_CREATE_VCPU");
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		bench_die("mmap kvm_run");
	set_cpuid(kvm, vcpu);
	long_mode(vcpu);
	for (int r = -1; r < rounds; r++) {		/* round -1 warms up */
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < exits; i++) {
			if (ioctl(vcpu, KVM_RUN, 0) < 0)
				bench_die("KVM_RUN");
			if (serve(run, kind) < 0) {
				fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
				return 1;
			}
		}
		if (r >= 0)
			samples[r] = (double)(bench_now_ns() - t0) / exits;
	}
	snprintf(name, sizeof(name), "c_kvm_%s", argv[2]);
	bench_report(name, "exit", samples, rounds);
	return 0;
}
