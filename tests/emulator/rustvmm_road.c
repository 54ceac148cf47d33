/* SPDX-License-Identifier: MIT */
/*
 * The road of a VMM built on rust-vmm's mshv-ioctls 0.7 (Cloud Hypervisor's
 * MshvHypervisor::create_vm, MshvVm::init, vCPU setup and boot), call for
 * call as those crates make them, run under LD_PRELOAD=libmshv_emu.so:
 *
 *   Mshv::new                               open("/dev/mshv", O_NONBLOCK | O_CLOEXEC)
 *   make_default_partition_create_arg       0x44 SELF PROCESSOR_FEATURES0, FEATURES1
 *   make_default_synthetic_features_mask    0x101 SELF ASSIGNABLE_SYNTHETIC_PROC_FEATURES
 *   create_vm_with_args                     MSHV_CREATE_PARTITION v2 (EINTR retried)
 *   create_vm                               0x45 SYNTHETIC_PROC_FEATURES
 *   MshvVm::init                            INITIALIZE; 0x45 UNIMPLEMENTED_MSR_ACTION = 1,
 *                                           TIME_FREEZE = 1; get_msr_index_list's 0x44s
 *   Vm::new / boot                          SET_MSI_ROUTING, SET_GUEST_MEMORY, CREATE_VP
 *                                           + register page, PROCESSORS_PER_SOCKET,
 *                                           REFERENCE_TIME get/set (get_clock/set_clock),
 *                                           TIME_FREEZE = 0
 * plus the host-property calls of mshv-ioctls' own tests (get_vmm_caps,
 * PHYSICAL_ADDRESS_WIDTH, test_get_property, test_set_partition_property_invalid).
 *
 * Each step prints "<step>.ret=", ".status=" (and values); exit 0 after the last
 * step even when one failed, so that the test names the failing step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
#define BIT(n) (1ULL << (n))

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Mshv::hvcall / VmFd::hvcall: MSHV_ROOT_HVCALL with make_args!'s sizes */
static uint16_t hvcall(const char *step, int fd, uint16_t code, void *in, uint16_t in_sz,
		       void *out, uint16_t out_sz)
{
	struct mshv_root_hvcall a = {
		.code = code, .in_sz = in_sz, .out_sz = out_sz,
		.in_ptr = (uint64_t)(uintptr_t)in, .out_ptr = (uint64_t)(uintptr_t)out,
	};
	long ret;

	errno = 0;
	ret = ioctl(fd, MSHV_ROOT_HVCALL, &a);
	printf("%s.ret=%ld\n%s.errno=%d\n%s.status=%#x\n", step, ret, step, ret ? errno : 0,
	       step, a.status);
	return ret ? (a.status ? a.status : 0xffff) : 0;
}

/* get_host_partition_property / VmFd::get_partition_property */
static uint64_t get_property(const char *step, int fd, uint32_t code)
{
	struct hv_input_get_partition_property in = { .property_code = code };
	struct hv_output_get_partition_property out = { 0 };

	hvcall(step, fd, HVCALL_GET_PARTITION_PROPERTY, &in, sizeof(in), &out, sizeof(out));
	printf("%s.value=%#llx\n", step, (unsigned long long)out.property_value);
	return out.property_value;
}

/* get_host_partition_property_ex: arg 0, the whole hv_partition_property_ex back */
static void get_property_ex(const char *step, int fd, uint32_t code,
			    union hv_partition_property_ex *out)
{
	struct hv_input_get_partition_property_ex in = { .property_code = code, .arg = 0 };

	memset(out, 0, sizeof(*out));
	hvcall(step, fd, HVCALL_GET_PARTITION_PROPERTY_EX, &in, sizeof(in), out, sizeof(*out));
}

/* VmFd::set_partition_property */
static uint16_t set_property(const char *step, int fd, uint32_t code, uint64_t value)
{
	struct hv_input_set_partition_property in = { .property_code = code,
						      .property_value = value };

	return hvcall(step, fd, HVCALL_SET_PARTITION_PROPERTY, &in, sizeof(in), NULL, 0);
}

static void ioctl_step(const char *step, long ret)
{
	printf("%s.ret=%ld\n%s.errno=%d\n", step, ret < 0 ? -1L : ret, step, ret < 0 ? errno : 0);
}

/* make_default_synthetic_features_mask's bits before the AND with the assignable set */
static uint64_t rustvmm_default_synthetic(void)
{
	return BIT(HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_HV1_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_COUNTER_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNIC_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNTHETIC_TIMER_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_TSC_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_FREQUENCY_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_INTR_CTRL_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_INDEX_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_HYPERCALL_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_GUEST_IDLE_REG_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_TB_FLUSH_HYPERCALLS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_SYNTHETIC_CLUSTER_IPI_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_DIRECT_SYNTHETIC_TIMERS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_REGS_BIT) |
	       BIT(HV_SYNTHETIC_PROC_FEATURE_FLUSH_GUEST_PHYSICAL_ADDRESS_SPACE_BIT);
}

int main(void)
{
	static union hv_partition_property_ex ex;
	struct mshv_create_partition_v2 args;
	struct mshv_user_irq_table routes = { .nr = 0 };
	struct mshv_create_vp cv = { .vp_index = 0 };
	uint64_t host0, host1, assignable, mask, ref;
	int dev, pt, vp;
	void *mem, *rp;

	setvbuf(stdout, NULL, _IOLBF, 0);

	/* 1. Mshv::new */
	dev = open("/dev/mshv", O_NONBLOCK | O_CLOEXEC);
	ioctl_step("open", dev);
	if (dev < 0)
		die("open /dev/mshv");

	/* 2. make_default_partition_create_arg (.unwrap() on both) */
	host0 = get_property("host_features0", dev, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0);
	host1 = get_property("host_features1", dev, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1);
	memset(&args, 0, sizeof(args));
	args.pt_flags = BIT(MSHV_PT_BIT_LAPIC) | BIT(MSHV_PT_BIT_X2APIC) |
			BIT(MSHV_PT_BIT_GPA_SUPER_PAGES) | BIT(MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES);
	args.pt_isolation = MSHV_PT_ISOLATION_NONE;
	args.pt_num_cpu_fbanks = MSHV_NUM_CPU_FEATURES_BANKS;
	args.pt_disabled_xsave = ~(BIT(HV_PROC_XSAVE_FEATURE_XSAVE_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_XSAVEOPT_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_AVX_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_AVX2_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_FMA_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_XSAVE_COMP_BIT) |
				   BIT(HV_PROC_XSAVE_FEATURE_XSAVE_SUPERVISOR_BIT));
	/* disabled = ~enabled; bank 0's reserved bit 63 forced disabled */
	args.pt_cpu_fbanks[0] = ~host0 | BIT(63);
	args.pt_cpu_fbanks[1] = ~host1;
	/* Cloud Hypervisor's create_vm: nested virtualization off */
	args.pt_cpu_fbanks[1] |= BIT(HV_PROC_FEATURE1_NESTED_VIRT_BIT);

	/* 3. make_default_synthetic_features_mask (.unwrap(); bank 0 at byte 8) */
	get_property_ex("assignable", dev, HV_PARTITION_PROPERTY_ASSIGNABLE_SYNTHETIC_PROC_FEATURES,
			&ex);
	memcpy(&assignable, ex.buffer + 8, sizeof(assignable));
	mask = rustvmm_default_synthetic() & assignable;
	printf("assignable.value=%#llx\nsynthetic_mask=%#llx\n", (unsigned long long)assignable,
	       (unsigned long long)mask);

	/* 4. create_vm_with_args, retried on EINTR */
	do {
		pt = ioctl(dev, MSHV_CREATE_PARTITION, &args);
	} while (pt < 0 && errno == EINTR);
	ioctl_step("create_partition", pt);
	if (pt < 0)
		die("MSHV_CREATE_PARTITION");

	/* 5. the early property */
	set_property("set_synthetic", pt, HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES, mask);

	/* 6. MshvVm::init */
	ioctl_step("initialize", ioctl(pt, MSHV_INITIALIZE_PARTITION));
	set_property("set_msr_action", pt, HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION,
		     HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO);
	set_property("freeze", pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 1);
	/* get_msr_index_list */
	get_property("pt_xsave_features", pt, HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES);
	get_property("pt_features0", pt, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0);
	get_property("pt_features1", pt, HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1);
	get_property("pt_synthetic", pt, HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES);

	/* 7. the VM's devices, memory and vCPU */
	ioctl_step("msi_routing", ioctl(pt, MSHV_SET_MSI_ROUTING, &routes));
	mem = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("guest memory");
	{
		struct mshv_user_mem_region r = {
			.size = 16 * PAGE, .guest_pfn = 0, .userspace_addr = (uint64_t)(uintptr_t)mem,
			.flags = BIT(MSHV_SET_MEM_BIT_WRITABLE) | BIT(MSHV_SET_MEM_BIT_EXECUTABLE),
		};

		ioctl_step("guest_memory", ioctl(pt, MSHV_SET_GUEST_MEMORY, &r));
	}
	vp = ioctl(pt, MSHV_CREATE_VP, &cv);
	ioctl_step("create_vp", vp);
	rp = vp < 0 ? MAP_FAILED : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vp,
					MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	printf("register_page.ok=%d\n", rp != MAP_FAILED);
	set_property("per_socket", pt, HV_PARTITION_PROPERTY_PROCESSORS_PER_SOCKET, 1);
	/* get_clock / set_clock while frozen */
	ref = get_property("get_clock", pt, HV_PARTITION_PROPERTY_REFERENCE_TIME);
	set_property("set_clock", pt, HV_PARTITION_PROPERTY_REFERENCE_TIME, ref + 10000000);
	get_property("get_clock_again", pt, HV_PARTITION_PROPERTY_REFERENCE_TIME);
	printf("clock_set_to=%#llx\n", (unsigned long long)(ref + 10000000));
	/* 8. Vm::boot -> resume */
	set_property("thaw", pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 0);

	/* mshv-ioctls' own tests of the same calls */
	get_property_ex("vmm_caps", dev, HV_PARTITION_PROPERTY_VMM_CAPABILITIES, &ex);
	printf("vmm_caps.bank_count=%u\nvmm_caps.value=%#llx\n",
	       ex.vmm_capabilities.bank_count, (unsigned long long)ex.vmm_capabilities.capabilities);
	get_property("host_ipa_limit", dev, HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH);
	get_property("max_xsave", pt, HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE);
	get_property("clock_frequency", pt, HV_PARTITION_PROPERTY_PROCESSOR_CLOCK_FREQUENCY);
	get_property("msr_action", pt, HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION);
	set_property("privilege_after_init", pt, HV_PARTITION_PROPERTY_PRIVILEGE_FLAGS, 0);
	return 0;
}
