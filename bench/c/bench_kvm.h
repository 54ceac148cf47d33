/* SPDX-License-Identifier: MIT */
/*
 * The raw KVM floor shared by the C baselines: one vCPU in 64-bit mode (page
 * tables and SREGS set here), 256 KiB of RAM at GPA 0 holding the image at
 * BENCH_CODE_GPA, and the KVM way of serving each exit kind. Every KVM call is
 * a plain system call, so a client running under the emulator's LD_PRELOAD
 * drives this VM without passing through its interposers.
 */
#ifndef BENCH_KVM_H
#define BENCH_KVM_H

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "bench_common.h"

struct bench_kvm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
};

static inline long bench_kvm_ioctl(int fd, unsigned long req, void *arg)
{
	return syscall(SYS_ioctl, fd, req, arg);
}

static inline void bench_kvm_cpuid(struct bench_kvm *k)
{
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));

	if (!c)
		bench_die("calloc");
	c->nent = n;
	if (bench_kvm_ioctl(k->kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		bench_die("KVM_GET_SUPPORTED_CPUID");
	if (bench_kvm_ioctl(k->vcpu, KVM_SET_CPUID2, c) < 0)
		bench_die("KVM_SET_CPUID2");
	free(c);
}

static inline void bench_kvm_long_mode(struct bench_kvm *k)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = 8, .type = 0xb,
				    .present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0x3,
				    .present = 1, .s = 1, .db = 1, .g = 1 };

	if (bench_kvm_ioctl(k->vcpu, KVM_GET_SREGS, &sr) < 0)
		bench_die("KVM_GET_SREGS");
	sr.cr3 = BENCH_PT_GPA;
	sr.cr4 = 1 << 5;				/* PAE */
	sr.efer = (1 << 8) | (1 << 10);			/* LME | LMA */
	sr.cr0 = (1U << 31) | (1 << 4) | 1;		/* PG | ET | PE */
	sr.cs = code;
	sr.ds = sr.es = sr.ss = sr.fs = sr.gs = data;
	if (bench_kvm_ioctl(k->vcpu, KVM_SET_SREGS, &sr) < 0)
		bench_die("KVM_SET_SREGS");
	memset(&r, 0, sizeof(r));
	r.rip = BENCH_CODE_GPA;
	r.rsp = BENCH_STACK_GPA;
	r.rflags = 2;
	if (bench_kvm_ioctl(k->vcpu, KVM_SET_REGS, &r) < 0)
		bench_die("KVM_SET_REGS");
}

/* A VM running `image` from BENCH_CODE_GPA in 64-bit mode. */
static inline void bench_kvm_init(struct bench_kvm *k, const char *image)
{
	struct kvm_userspace_memory_region slot;
	uint8_t *mem;
	long run_size;

	k->kvm = (int)syscall(SYS_openat, AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm < 0)
		bench_die("open /dev/kvm");
	k->vm = (int)bench_kvm_ioctl(k->kvm, KVM_CREATE_VM, 0);
	if (k->vm < 0)
		bench_die("KVM_CREATE_VM");
	mem = (void *)syscall(SYS_mmap, NULL, BENCH_RAM_SIZE, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		bench_die("guest memory");
	bench_load_image(mem, BENCH_RAM_SIZE, image);
	bench_page_tables(mem);
	slot = (struct kvm_userspace_memory_region){ .slot = 0, .guest_phys_addr = 0,
		.memory_size = BENCH_RAM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem };
	if (bench_kvm_ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		bench_die("KVM_SET_USER_MEMORY_REGION");
	k->vcpu = (int)bench_kvm_ioctl(k->vm, KVM_CREATE_VCPU, 0);
	if (k->vcpu < 0)
		bench_die("KVM_CREATE_VCPU");
	run_size = bench_kvm_ioctl(k->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	k->run = (void *)syscall(SYS_mmap, NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
				 k->vcpu, 0);
	if (k->run == MAP_FAILED)
		bench_die("mmap kvm_run");
	bench_kvm_cpuid(k);
	bench_kvm_long_mode(k);
}

/* One exit of the expected kind, answered the KVM way; -1 on anything else. */
static inline int bench_kvm_serve(struct kvm_run *run, enum bench_kind kind)
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

/*
 * `exits` exits of the raw loop; ns per exit. With `floor` > 0, each exit also
 * pays what an emulator of /dev/mshv on this KVM cannot leave out: the
 * registers, special registers and events synced out of KVM at every exit
 * (kvm_valid_regs: the intercept message and the VP register page are built
 * from them), and one system call naming fd `fd` for each of the `floor`
 * /dev/mshv calls the client makes per exit (the emulator's check that the fd
 * still names its handle, an lseek).
 */
static inline double bench_kvm_round(struct bench_kvm *k, enum bench_kind kind, int exits,
				     int floor, int fd)
{
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < exits; i++) {
		if (floor > 0)
			k->run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS |
						 KVM_SYNC_X86_EVENTS;
		for (int j = 0; j < floor; j++)
			syscall(SYS_lseek, fd, 0L, SEEK_CUR);
		if (bench_kvm_ioctl(k->vcpu, KVM_RUN, NULL) < 0)
			bench_die("KVM_RUN");
		if (bench_kvm_serve(k->run, kind) < 0) {
			fprintf(stderr, "unexpected exit %u\n", k->run->exit_reason);
			exit(1);
		}
	}
	k->run->kvm_valid_regs = 0;
	return (double)(bench_now_ns() - t0) / exits;
}

#endif /* BENCH_KVM_H */
