// SPDX-License-Identifier: MIT
/*
 * What the host KVM itself does with a guest's XSAVE features, without the
 * emulator: the reference the emulator's XSAVE tests compare with, and the
 * probe that tells a host limit from an emulator bug.
 *
 *   kvm_xsave_probe GUEST.bin
 *
 * 1. cpuid: KVM_GET_SUPPORTED_CPUID leaf 1 ECX, and what a vCPU given that
 *    table reads back with KVM_GET_CPUID2 (the table the guest's CPUID answers
 *    from, kvm_find_cpuid_entry) for leaf 1 ECX and 0xD.0 EAX.
 * 2. hide: a vCPU given the supported table with XSAVE and AVX cleared in
 *    leaf 1 and x87|SSE alone in 0xD.0: whether KVM_GET_CPUID2 still shows
 *    AVX (a KVM that cannot hide a feature the guest can use natively).
 * 3. avx: GUEST.bin (tests/emulator/test_xsave_state.py's guest) on a vCPU
 *    given the supported table, long mode, page tables at 0x2000 as
 *    mshv.testing.long_mode_registers writes them but user-accessible: it
 *    stores its CPUID at 0x8000, sets XCR0 (OUT 0x10), drops to CPL 3, loads
 *    YMM0/1 (OUT 0x11), stores them (OUT 0x12). At 0x11 KVM_GET_XSAVE shows
 *    XSTATE_BV and YMM0's upper half; KVM_SET_XSAVE then writes a new upper
 *    half, and at 0x12 the guest's store shows whether it took.
 * Prints key=value lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE	0x40000
#define CODE_GPA	0x10000
#define YMM_IN		0x9000
#define YMM_OUT		0x9100
#define XSAVE_YMM_HI	576	/* standard form: CPUID 0xD.2 EBX on every x86 CPU */

static void die(const char *what)
{
	printf("error=%s: %s\n", what, strerror(errno));
	exit(1);
}

static struct kvm_cpuid2 *cpuid_get(int fd, unsigned long req)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 512 * sizeof(c->entries[0]));

	if (!c)
		die("calloc");
	c->nent = 512;
	if (ioctl(fd, req, c) < 0)
		die("cpuid");
	return c;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn &&
		    (!(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
		     c->entries[i].index == index))
			return &c->entries[i];
	return NULL;
}

static int vcpu_with(int vm, int id, struct kvm_cpuid2 *c)
{
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, id);

	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
		die("KVM_SET_CPUID2");
	return vcpu;
}

static void long_mode(int vcpu, uint8_t *mem)
{
	uint64_t *pml4 = (void *)(mem + 0x2000), *pdpt = (void *)(mem + 0x3000);
	uint64_t *pd = (void *)(mem + 0x4000);
	struct kvm_segment cs = { .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1,
				  .s = 1, .l = 1, .g = 1 };
	struct kvm_segment ds = { .limit = 0xffffffff, .selector = 0x10, .type = 3, .present = 1,
				  .s = 1, .db = 1, .g = 1 };
	struct kvm_regs regs = { .rip = CODE_GPA, .rsp = 0x8000, .rflags = 2 };
	struct kvm_sregs s;

	pml4[0] = 0x3000 | 7;	/* present, writable, user */
	pdpt[0] = 0x4000 | 7;
	for (int i = 0; i < 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x87;
	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr3 = 0x2000;
	s.cr4 = 1 << 5;				/* PAE */
	s.cr0 = 0x80000011;			/* PG | ET | PE */
	s.efer = (1 << 8) | (1 << 10);		/* LME | LMA */
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_SREGS");
}

/* Run to the next OUT; its port, or -1 (the exit is printed under avx.exit). */
static int run_to_out(int vcpu, struct kvm_run *run)
{
	if (ioctl(vcpu, KVM_RUN, 0) < 0) {
		printf("avx.exit=KVM_RUN %s\n", strerror(errno));
		return -1;
	}
	if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT)
		return run->io.port;
	printf("avx.exit=reason %u suberror %u\n", run->exit_reason, run->internal.suberror);
	return -1;
}

static void avx(int kvm, struct kvm_cpuid2 *sup, const char *guest)
{
	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int vm = ioctl(kvm, KVM_CREATE_VM, 0), vcpu, port, size;
	struct kvm_userspace_memory_region r = { .memory_size = MEM_SIZE };
	static struct kvm_xsave x;
	struct kvm_run *run;
	uint64_t bv;
	FILE *f;

	if (mem == MAP_FAILED || vm < 0)
		die("VM");
	r.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	f = fopen(guest, "rb");
	if (!f)
		die("guest");
	size = (int)fread(mem + CODE_GPA, 1, MEM_SIZE - CODE_GPA, f);
	fclose(f);
	if (size <= 0)
		die("guest size");
	for (int i = 0; i < 64; i++)
		mem[YMM_IN + i] = (uint8_t)(0x10 + i);
	vcpu = vcpu_with(vm, 0, sup);
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE,
		   MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	long_mode(vcpu, mem);
	port = run_to_out(vcpu, run);
	printf("avx.xsetbv=%d\n", port == 0x10);
	for (int i = 0; i < 4; i++)
		printf("avx.guest_cpuid%d=%08x,%08x,%08x,%08x\n", i,
		       *(uint32_t *)(mem + 0x8000 + 16 * i), *(uint32_t *)(mem + 0x8004 + 16 * i),
		       *(uint32_t *)(mem + 0x8008 + 16 * i), *(uint32_t *)(mem + 0x800c + 16 * i));
	if (port != 0x10)
		return;
	port = run_to_out(vcpu, run);
	printf("avx.ran=%d\n", port == 0x11);
	if (port != 0x11)
		return;
	if (ioctl(vcpu, KVM_GET_XSAVE, &x) < 0)
		die("KVM_GET_XSAVE");
	memcpy(&bv, (uint8_t *)x.region + 512, sizeof(bv));
	printf("avx.xstate_bv=%#llx\n", (unsigned long long)bv);
	printf("avx.ymm0_hi=%d\n", !memcmp((uint8_t *)x.region + XSAVE_YMM_HI, mem + YMM_IN + 16, 16));
	memset((uint8_t *)x.region + XSAVE_YMM_HI, 0x5a, 16);
	if (ioctl(vcpu, KVM_SET_XSAVE, &x) < 0)
		die("KVM_SET_XSAVE");
	port = run_to_out(vcpu, run);
	if (port != 0x12)
		return;
	printf("avx.set_xsave_took=%d\n", mem[YMM_OUT + 16] == 0x5a && mem[YMM_OUT + 31] == 0x5a);
}

int main(int argc, char **argv)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, vcpu;
	struct kvm_cpuid2 *sup, *got, *bare;
	struct kvm_cpuid_entry2 *e;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2)
		return 2;
	if (kvm < 0)
		die("/dev/kvm");
	sup = cpuid_get(kvm, KVM_GET_SUPPORTED_CPUID);
	e = find(sup, 1, 0);
	printf("cpuid.supported_1_ecx=%#x\n", e ? e->ecx : 0);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	vcpu = vcpu_with(vm, 0, sup);
	got = cpuid_get(vcpu, KVM_GET_CPUID2);
	e = find(got, 1, 0);
	printf("cpuid.vcpu_1_ecx=%#x\n", e ? e->ecx : 0);
	e = find(got, 0xd, 0);
	printf("cpuid.vcpu_d0_eax=%#x\n", e ? e->eax : 0);
	free(got);

	bare = cpuid_get(kvm, KVM_GET_SUPPORTED_CPUID);
	e = find(bare, 1, 0);
	if (e)
		e->ecx &= ~((1U << 26) | (1U << 28));	/* XSAVE, AVX */
	e = find(bare, 0xd, 0);
	if (e) {
		e->eax = 3;
		e->edx = 0;
	}
	vcpu = vcpu_with(vm, 1, bare);
	got = cpuid_get(vcpu, KVM_GET_CPUID2);
	e = find(got, 1, 0);
	printf("hide.avx_still_shown=%d\n", e ? (int)((e->ecx >> 28) & 1) : 0);
	e = find(got, 0xd, 0);
	printf("hide.d0_eax=%#x\n", e ? e->eax : 0);
	free(got);
	free(bare);
	close(vm);

	avx(kvm, sup, argv[1]);
	return 0;
}
