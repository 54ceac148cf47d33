/* SPDX-License-Identifier: MIT */
/*
 * Host and partition properties against what the host KVM gives a guest, run under
 * LD_PRELOAD=libmshv_emu.so: /dev/mshv is the emulator, /dev/kvm is asked
 * directly for the facts the answers must come from.
 *
 *   props_client
 *
 * Prints "key=value" lines for test_properties.py; "setup-failed: ..." and
 * exit 2 when the client cannot set itself up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/mshv.h>
#include "mshv_hvdefs.h"

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ---- the host KVM ----------------------------------------------------------- */

static struct kvm_cpuid2 *kvm_cpuid;
static int kvm_fd;

/*
 * What KVM gives a guest: the CPUID of a vCPU given KVM_GET_SUPPORTED_CPUID's
 * table (KVM_SET_CPUID2), read back with KVM_GET_CPUID2 - the table the
 * guest's CPUID answers from. Some KVMs give a vCPU more than they report as
 * supported (the hardware's user-level features, which their guests run
 * natively).
 */
static void kvm_load(void)
{
	int n = 512, vm, vcpu;
	struct kvm_cpuid2 *sup;

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		die("open /dev/kvm");
	sup = calloc(1, sizeof(*sup) + n * sizeof(sup->entries[0]));
	kvm_cpuid = calloc(1, sizeof(*kvm_cpuid) + n * sizeof(kvm_cpuid->entries[0]));
	if (!sup || !kvm_cpuid)
		die("calloc");
	sup->nent = kvm_cpuid->nent = n;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, sup))
		die("KVM_GET_SUPPORTED_CPUID");
	vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	vcpu = vm < 0 ? -1 : ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	if (ioctl(vcpu, KVM_SET_CPUID2, sup) || ioctl(vcpu, KVM_GET_CPUID2, kvm_cpuid))
		die("KVM_SET_CPUID2/KVM_GET_CPUID2");
	close(vcpu);
	close(vm);
	free(sup);
}

static const struct kvm_cpuid_entry2 *leaf(uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < kvm_cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &kvm_cpuid->entries[i];

		if (e->function == fn &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

enum { EAX, EBX, ECX, EDX };

static int kvm_bit(uint32_t fn, uint32_t index, int reg, int bit)
{
	const struct kvm_cpuid_entry2 *e = leaf(fn, index);
	uint32_t r;

	if (!e)
		return 0;
	r = reg == EAX ? e->eax : reg == EBX ? e->ebx : reg == ECX ? e->ecx : e->edx;
	return (r >> bit) & 1;
}

static long kvm_tsc_khz(void)
{
	int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	int vcpu;
	long khz;

	if (vm < 0)
		die("KVM_CREATE_VM");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
	close(vcpu);
	close(vm);
	return khz;
}

/* The compacted XSAVE size of `states` (SDM 13.4.3), from KVM's CPUID 0xD.i. */
static uint64_t compacted_size(uint64_t states)
{
	uint64_t off = 576;

	for (int i = 2; i < 63; i++) {
		const struct kvm_cpuid_entry2 *e;

		if (!(states & (1ULL << i)))
			continue;
		e = leaf(0xd, i);
		if (!e)
			return 0;
		if (e->ecx & 2)
			off = (off + 63) & ~63ULL;
		off += e->eax;
	}
	return off;
}

/* ---- /dev/mshv ---------------------------------------------------------------- */

struct answer {
	long ret;
	int err;
	uint16_t status;
	uint64_t value;
	uint8_t ex[HV_PARTITION_PROPERTY_EX_MAX_VAR_SIZE];
};

static struct answer hvcall(int fd, uint16_t code, void *in, uint16_t in_sz, void *out,
			    uint16_t out_sz)
{
	struct mshv_root_hvcall a = {
		.code = code, .in_sz = in_sz, .out_sz = out_sz,
		.in_ptr = (uint64_t)(uintptr_t)in, .out_ptr = (uint64_t)(uintptr_t)out,
	};
	struct answer r = { 0 };

	errno = 0;
	r.ret = ioctl(fd, MSHV_ROOT_HVCALL, &a);
	r.err = errno;
	r.status = a.status;
	return r;
}

/* HvCallGetPartitionProperty (0x44) */
static struct answer get44(int fd, uint32_t code)
{
	struct hv_input_get_partition_property in = { .property_code = code };
	struct hv_output_get_partition_property out = { 0 };
	struct answer r = hvcall(fd, HVCALL_GET_PARTITION_PROPERTY, &in, sizeof(in), &out,
				 sizeof(out));

	r.value = out.property_value;
	return r;
}

/* HvCallGetPartitionPropertyEx (0x101), arg 0, a whole output page as rust-vmm asks */
static struct answer get101(int fd, uint32_t code)
{
	struct hv_input_get_partition_property_ex in = { .property_code = code };
	static struct hv_output_get_partition_property_ex out;
	struct answer r;

	memset(&out, 0, sizeof(out));
	r = hvcall(fd, HVCALL_GET_PARTITION_PROPERTY_EX, &in, sizeof(in), &out, sizeof(out));
	memcpy(&r.value, out.property_value.buffer, sizeof(r.value));
	memcpy(r.ex, out.property_value.buffer, sizeof(r.ex));
	return r;
}

static void print_answer(const char *key, struct answer r)
{
	printf("%s.ret=%ld\n%s.status=%#x\n%s.value=%#llx\n", key, r.ret, key, r.status, key,
	       (unsigned long long)r.value);
}

/* One Hyper-V bit and the KVM CPUID bit it must equal. */
struct bitcheck {
	const char *name;
	uint32_t code;		/* FEATURES0/1 or PROCESSOR_XSAVE_FEATURES */
	int hv_bit;
	uint32_t fn, index;
	int reg, bit;
};

#define B0(n, f, i, r, b) { #n, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0, HV_PROC_FEATURE0_##n##_BIT, f, i, r, b }
#define B1(n, f, i, r, b) { #n, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1, HV_PROC_FEATURE1_##n##_BIT, f, i, r, b }
#define BX(n, f, i, r, b) { #n, HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES, HV_PROC_XSAVE_FEATURE_##n##_BIT, f, i, r, b }

/* CPUID bits from the Intel SDM / AMD APM CPUID tables, written out independently here. */
static const struct bitcheck checks[] = {
	B0(SSE3, 1, 0, ECX, 0), B0(CMPXCHG16B, 1, 0, ECX, 13), B0(POPCNT, 1, 0, ECX, 23),
	B0(AES, 1, 0, ECX, 25), B0(LAHF_SAHF, 0x80000001, 0, ECX, 0),
	B0(PAGE_1GB, 0x80000001, 0, EDX, 26), B0(RDTSCP, 0x80000001, 0, EDX, 27),
	B0(SMEP, 7, 0, EBX, 7), B0(BMI1, 7, 0, EBX, 3), B0(CLFLUSHOPT, 7, 0, EBX, 23),
	B0(CLWB, 7, 0, EBX, 24),
	B1(TSC_DEADLINE_TMR, 1, 0, ECX, 24), B1(TSC_ADJUST, 7, 0, EBX, 1),
	B1(TSC_INVARIANT, 0x80000007, 0, EDX, 8), B1(LA57, 7, 0, ECX, 16),
	BX(XSAVE, 1, 0, ECX, 26), BX(AVX, 1, 0, ECX, 28), BX(AVX2, 7, 0, EBX, 5),
	BX(GFNI, 7, 0, ECX, 8), BX(XSAVEOPT, 0xd, 1, EAX, 0),
};

static void host(int dev)
{
	static const uint32_t plain[] = {
		HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1,
		HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES,
		HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH,
		HV_PARTITION_PROPERTY_PROCESSOR_CLOCK_FREQUENCY,
		HV_PARTITION_PROPERTY_PROCESSOR_VENDOR,
	};
	const struct kvm_cpuid_entry2 *e;
	char vendor[13] = { 0 };
	char key[64];

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		struct answer a = get44(dev, plain[i]), b = get101(dev, plain[i]);

		snprintf(key, sizeof(key), "host.%#x", plain[i]);
		print_answer(key, a);
		snprintf(key, sizeof(key), "host_ex.%#x", plain[i]);
		print_answer(key, b);
	}
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		const struct bitcheck *c = &checks[i];
		struct answer a = get44(dev, c->code);

		printf("bit.%s.hv=%d\nbit.%s.kvm=%d\n", c->name, (int)((a.value >> c->hv_bit) & 1),
		       c->name, kvm_bit(c->fn, c->index, c->reg, c->bit));
	}
	e = leaf(0, 0);
	if (!e)
		die("CPUID leaf 0");
	memcpy(vendor, &e->ebx, 4);
	memcpy(vendor + 4, &e->edx, 4);
	memcpy(vendor + 8, &e->ecx, 4);
	printf("kvm.vendor=%s\n", vendor);
	e = leaf(0x80000008, 0);
	printf("kvm.phys_bits=%u\n", e ? e->eax & 0xff : 36);
	printf("kvm.tsc_khz=%ld\n", kvm_tsc_khz());
}

/* A default partition's XSAVE answers and what KVM's CPUID 0xD makes of them. */
static void partition_xsave(int dev)
{
	struct mshv_create_partition cp = { .pt_isolation = MSHV_PT_ISOLATION_NONE };
	const struct kvm_cpuid_entry2 *e = leaf(0xd, 0);
	uint64_t xcr0 = e ? ((uint64_t)e->edx << 32 | e->eax) : 3;
	struct answer states, size;
	int pt = ioctl(dev, MSHV_CREATE_PARTITION, &cp);

	if (pt < 0 || ioctl(pt, MSHV_INITIALIZE_PARTITION))
		die("partition");
	states = get44(pt, HV_PARTITION_PROPERTY_XSAVE_STATES);
	size = get44(pt, HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE);
	print_answer("pt.states", states);
	print_answer("pt.size", size);
	printf("kvm.xcr0=%#llx\n", (unsigned long long)xcr0);
	printf("kvm.size_of_states=%llu\n", (unsigned long long)compacted_size(states.value));
	close(pt);
}

int main(void)
{
	int dev;

	setvbuf(stdout, NULL, _IOLBF, 0);
	kvm_load();
	dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		die("open /dev/mshv");
	host(dev);
	partition_xsave(dev);
	return 0;
}
