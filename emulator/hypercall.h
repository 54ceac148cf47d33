/* SPDX-License-Identifier: MIT */
/*
 * Between the driver's MSHV_ROOT_HVCALL passthrough (hvcall.c, the kernel's
 * mshv_ioctl_passthru_hvcall) and the hypervisor side that answers the
 * hypercall (hypercalls.c, properties.c, cpuid.c): one call as the handlers
 * see it, and the handlers the dispatch table names.
 */
#ifndef MSHV_EMU_HYPERCALL_H
#define MSHV_EMU_HYPERCALL_H

#include "emu.h"

#define EMU_HV_PAGE 4096		/* HV_HYP_PAGE_SIZE: input and output pages */

/* One hypercall: input and output pages, rep counts. */
struct emu_call {
	struct emu_partition *pt;	/* NULL for the device origin (host) */
	enum emu_hvcall_origin origin;
	uint16_t reps;			/* requested */
	uint16_t done;			/* reps completed */
	uint8_t *in;			/* one zeroed page holding in_sz bytes */
	uint8_t *out;			/* one zeroed page */
};

/* hypercalls.c: the VP an input names, if it may be accessed now; an HV status. */
uint16_t emu_call_vp(struct emu_call *c, uint32_t index, uint8_t vtl, struct emu_vp **vpp);

/* Handlers: each returns an HV_STATUS_* code and counts c->done for rep calls. */
/* hypercalls.c */
uint16_t emu_hc_get_vp_registers(struct emu_call *c);
uint16_t emu_hc_set_vp_registers(struct emu_call *c);
uint16_t emu_hc_install_intercept(struct emu_call *c);
uint16_t emu_hc_translate(struct emu_call *c);
uint16_t emu_hc_assert_interrupt(struct emu_call *c);
uint16_t emu_hc_clear_interrupt(struct emu_call *c);
uint16_t emu_hc_gpa_access_states(struct emu_call *c);
uint16_t emu_hc_synic(struct emu_call *c);
/* properties.c */
uint16_t emu_hc_get_property(struct emu_call *c);
uint16_t emu_hc_get_property_ex(struct emu_call *c);
uint16_t emu_hc_set_property(struct emu_call *c);
/* cpuid.c */
uint16_t emu_hc_register_intercept_result(struct emu_call *c);
uint16_t emu_hc_get_vp_cpuid_values(struct emu_call *c);

/* cpuid.c: KVM_GET_SUPPORTED_CPUID on /dev/kvm (fd), or a vCPU's KVM_GET_CPUID2 (free it). */
struct kvm_cpuid2 *emu_cpuid_get(int fd, unsigned long req);
/* cpuid.c: the entry for leaf/subleaf in c, or NULL. */
struct kvm_cpuid_entry2 *emu_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf);
/* cpuid.c: KVM_SET_CPUID2 of want on a vCPU that has not run, then what KVM_GET_CPUID2 gives. */
struct kvm_cpuid2 *emu_cpuid_as_taken(int vcpu_fd, struct kvm_cpuid2 *want);
/* properties.c: the partition's features in a new VP's CPUID table (at CREATE_VP). */
int emu_props_cpuid_filter(struct emu_partition *pt, struct kvm_cpuid2 *c);

#endif /* MSHV_EMU_HYPERCALL_H */
