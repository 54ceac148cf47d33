/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the hypercalls the emulator answers in the hypervisor's
 * place, other than properties (properties.c) and CPUID (cpuid.c):
 * HvCallGetVpRegisters/HvCallSetVpRegisters, HvCallInstallIntercept,
 * HvCallTranslateVirtualAddress, HvCallAssertVirtualInterrupt,
 * HvCallClearVirtualInterrupt, HvCallGetGpaPagesAccessStates and the SynIC
 * calls HvCallSignalEventDirect/HvCallPostMessageDirect. Each does what KVM
 * can do and says so when it cannot (never a silent success). The driver's
 * passthrough (hvcall.c) has already checked and copied the input.
 */
#include <sys/mman.h>

#include "emu.h"
#include "hypercall.h"

/*
 * The VP named in an input, usable for state access: another thread's
 * RUN_VP on it makes it unavailable (the VP fd's mutex serializes only that
 * fd's own calls: mshv_vp_ioctl).
 */
uint16_t emu_call_vp(struct emu_call *c, uint32_t index, uint8_t vtl, struct emu_vp **vpp)
{
	struct emu_vp *vp;

	if (index >= EMU_MAX_VPS || !(vp = c->pt->vps[index]))
		return HV_STATUS_INVALID_VP_INDEX;
	if ((vtl & HV_INPUT_VTL_USE_TARGET_VTL) && (vtl & HV_INPUT_VTL_TARGET_VTL_MASK))
		return HV_STATUS_INVALID_PARAMETER;	/* only VTL 0 exists */
	if (vtl & ~(HV_INPUT_VTL_USE_TARGET_VTL | HV_INPUT_VTL_TARGET_VTL_MASK))
		return HV_STATUS_INVALID_PARAMETER;
	if (atomic_load(&vp->running))
		return HV_STATUS_INVALID_VP_STATE;
	*vpp = vp;
	return HV_STATUS_SUCCESS;
}

/* ---- GET/SET_VP_REGISTERS (rep) ------------------------------------------ */

uint16_t emu_hc_get_vp_registers(struct emu_call *c)
{
	const struct hv_input_get_vp_registers *in = (const void *)c->in;
	union hv_register_value *out = (void *)c->out;
	uint32_t names[EMU_HV_PAGE / sizeof(union hv_register_value)];
	struct emu_vp *vp;
	uint16_t st;

	if (sizeof(*in) + (size_t)c->reps * sizeof(uint32_t) > EMU_HV_PAGE ||
	    (size_t)c->reps * sizeof(*out) > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_call_vp(c, in->vp_index, in->input_vtl, &vp);
	if (st)
		return st;
	memcpy(names, (const char *)in + offsetof(struct hv_input_get_vp_registers, names),
	       (size_t)c->reps * sizeof(names[0]));
	while (c->done < c->reps) {
		/* a run of MSRs or debug registers in one ioctl (regs.c), else one register */
		uint32_t n = emu_reg_get_run(vp, &names[c->done], c->reps - c->done,
					     &out[c->done], &st);

		if (!n && !st) {
			st = emu_reg_get(vp, names[c->done], &out[c->done]);
			n = !st;
		}
		c->done += n;
		if (st)
			return st;
	}
	return HV_STATUS_SUCCESS;
}

/*
 * Registers KVM validates as a set (CR0/CR4/EFER/segments) are committed
 * once at the end; if KVM refuses them the call fails with reps at the
 * first such register of the batch (none of them is applied).
 */
uint16_t emu_hc_set_vp_registers(struct emu_call *c)
{
	const struct hv_input_set_vp_registers *in = (const void *)c->in;
	uint32_t names[EMU_HV_PAGE / sizeof(struct hv_register_assoc)];
	union hv_register_value values[EMU_HV_PAGE / sizeof(struct hv_register_assoc)];
	struct emu_vp *vp;
	uint16_t st = HV_STATUS_SUCCESS, first_sregs = 0xffff, bad;

	if (sizeof(*in) + (size_t)c->reps * sizeof(struct hv_register_assoc) > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_call_vp(c, in->vp_index, in->input_vtl, &vp);
	if (st)
		return st;
	bad = c->reps;	/* the first element with reserved fields set */
	for (uint16_t i = c->done; i < c->reps; i++) {
		struct hv_register_assoc a;

		memcpy(&a, &in->elements[i], sizeof(a));
		memcpy(&values[i], (const char *)&in->elements[i] +
			   offsetof(struct hv_register_assoc, value), sizeof(values[i]));
		names[i] = a.name;
		if ((a.reserved1 || a.reserved2) && bad == c->reps)
			bad = i;
	}
	while (c->done < c->reps) {
		bool was_pending = vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS;
		/* a run of MSRs or debug registers in one ioctl (regs.c), else one register */
		uint32_t n = c->done < bad ? emu_reg_set_run(vp, &names[c->done], &values[c->done],
							     bad - c->done, &st) : 0;

		if (!n && !st) {
			st = c->done == bad ? HV_STATUS_INVALID_PARAMETER :
					      emu_reg_set(vp, names[c->done], &values[c->done]);
			n = !st;
		}
		if (n && !was_pending && (vp->run->kvm_dirty_regs & KVM_SYNC_X86_SREGS))
			first_sregs = c->done;
		c->done += n;
		if (st)
			break;
	}
	if (emu_regs_commit(vp) != HV_STATUS_SUCCESS) {
		if (first_sregs != 0xffff)
			c->done = first_sregs;
		return HV_STATUS_INVALID_PARAMETER;
	}
	return st;
}

/* ---- intercepts ------------------------------------------------------------ */

/*
 * INSTALL_INTERCEPT. IO ports: every port already exits (exo partition),
 * so success. MSR: KVM_CAP_X86_USER_SPACE_MSR, so accesses to MSRs KVM does
 * not implement (and filtered ones) come out as MSR intercepts; MSRs KVM
 * handles itself never do. Exceptions: #DB (1) and #BP (3) through
 * KVM_SET_GUEST_DEBUG, where this KVM delivers them (probed, see
 * emu_exception_exits); KVM cannot hand other vectors to user space.
 * CPUID: KVM always handles CPUID in the kernel and has no CPUID exit, so
 * the intercept cannot be delivered: HV_STATUS_OPERATION_DENIED (EIO), and
 * a VMM shapes CPUID with REGISTER_INTERCEPT_RESULT instead, as QEMU does.
 * Other valid types KVM cannot produce: OPERATION_DENIED as well.
 */
/*
 * Does this host's KVM hand a guest #BP (INT3, with KVM_GUESTDBG_USE_SW_BP)
 * or #DB (trap flag, with KVM_GUESTDBG_USE_HW_BP) to user space? Mainline
 * VMX/SVM does; the paravirtual kvm_pvm does not (the guest takes the
 * exception itself). Probed once per process with a scratch VM: a real-mode
 * page whose IVT sends every vector to a HLT.
 */
static bool emu_exception_exits(int kvm_fd, unsigned int vector)
{
	static const uint8_t bp_code[] = { 0xcc, 0xf4 };		/* int3; hlt */
	static const uint8_t db_code[] = { 0x9c, 0x58, 0x0d, 0x00, 0x01, 0x50,
					   0x9d, 0x90, 0xf4 };	/* set TF; nop; hlt */
	struct kvm_userspace_memory_region slot = { .memory_size = EMU_PAGE_SIZE };
	struct kvm_guest_debug dbg = { .control = KVM_GUESTDBG_ENABLE };
	struct kvm_regs regs = { .rip = 0x600, .rflags = 2 };
	struct kvm_sregs sregs;
	struct kvm_run *run = MAP_FAILED;
	int vm = -1, vcpu = -1, run_size;
	bool exits = false;
	uint8_t *mem;

	mem = emu_sys_mmap(NULL, EMU_PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return false;
	for (int i = 0; i < 256; i++)		/* every vector: 0000:0500 */
		memcpy(mem + 4 * i, (const uint8_t[]){ 0x00, 0x05, 0x00, 0x00 }, 4);
	mem[0x500] = 0xf4;
	if (vector == 3)
		memcpy(mem + 0x600, bp_code, sizeof(bp_code));
	else
		memcpy(mem + 0x600, db_code, sizeof(db_code));
	dbg.control |= vector == 3 ? KVM_GUESTDBG_USE_SW_BP : KVM_GUESTDBG_USE_HW_BP;
	slot.userspace_addr = (uint64_t)(uintptr_t)mem;
	vm = emu_sys_ioctl(kvm_fd, KVM_CREATE_VM, 0);
	run_size = emu_sys_ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (vm < 0 || run_size <= 0 || emu_sys_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		goto out;
	vcpu = emu_sys_ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		goto out;
	run = emu_sys_mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED || emu_sys_ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		goto out;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (emu_sys_ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 ||
	    emu_sys_ioctl(vcpu, KVM_SET_REGS, &regs) < 0 ||
	    emu_sys_ioctl(vcpu, KVM_SET_GUEST_DEBUG, &dbg) < 0)
		goto out;
	if (emu_sys_ioctl(vcpu, KVM_RUN, NULL) == 0)
		exits = run->exit_reason == KVM_EXIT_DEBUG;
out:
	if (run != MAP_FAILED)
		emu_sys_munmap(run, (size_t)run_size);
	if (vcpu >= 0)
		emu_sys_close(vcpu);
	if (vm >= 0)
		emu_sys_close(vm);
	emu_sys_munmap(mem, EMU_PAGE_SIZE);
	return exits;
}

static bool emu_exception_delivered(int kvm_fd, unsigned int vector)
{
	/* 0 = not probed, 1 = exits, 2 = does not; per vector (1 and 3) */
	static atomic_int probed[4];
	int v = atomic_load(&probed[vector]);

	if (!v) {
		v = emu_exception_exits(kvm_fd, vector) ? 1 : 2;
		atomic_store(&probed[vector], v);
	}
	return v == 1;
}

uint16_t emu_hc_install_intercept(struct emu_call *c)
{
	const struct hv_input_install_intercept *in = (const void *)c->in;
	struct emu_partition *pt = c->pt;

	if (in->intercept_type >= HV_INTERCEPT_TYPE_MAX)
		return HV_STATUS_INVALID_PARAMETER;
	if (in->access_type & ~(HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE |
				HV_INTERCEPT_ACCESS_MASK_EXECUTE))
		return HV_STATUS_INVALID_PARAMETER;
	switch (in->intercept_type) {
	case HV_INTERCEPT_TYPE_X64_IO_PORT:
		return HV_STATUS_SUCCESS;
	case HV_INTERCEPT_TYPE_X64_MSR: {
		struct kvm_enable_cap cap;

		if (pt->intercepts.msr)
			return HV_STATUS_SUCCESS;
		memset(&cap, 0, sizeof(cap));
		cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
		cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
		if (emu_sys_ioctl(pt->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return HV_STATUS_OPERATION_DENIED;
		pt->intercepts.msr = true;
		return HV_STATUS_SUCCESS;
	}
	case HV_INTERCEPT_TYPE_EXCEPTION: {
		uint16_t vec = in->intercept_parameter.exception_vector;

		if (vec >= 32)
			return HV_STATUS_INVALID_PARAMETER;
		if (vec != 1 && vec != 3)
			return HV_STATUS_OPERATION_DENIED;
		/* never accept what this KVM would not deliver */
		if (!emu_exception_delivered(pt->kvm_fd, vec))
			return HV_STATUS_OPERATION_DENIED;
		pt->intercepts.exception_bitmap |= 1U << vec;
		return HV_STATUS_SUCCESS;
	}
	}
	return HV_STATUS_OPERATION_DENIED;
}

/* ---- translate, interrupts, GPA access states, SynIC ---------------------- */

uint16_t emu_hc_translate(struct emu_call *c)
{
	const struct hv_input_translate_virtual_address *in = (const void *)c->in;
	struct hv_output_translate_virtual_address *out = (void *)c->out;
	struct kvm_translation tr;
	struct emu_region *region;
	struct emu_vp *vp;
	uint16_t st;

	st = emu_call_vp(c, in->vp_index, 0, &vp);
	if (st)
		return st;
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = in->gva_page << 12;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0)
		return HV_STATUS_OPERATION_FAILED;
	if (!tr.valid) {
		out->translation_result.result_code = HV_TRANSLATE_GVA_PAGE_NOT_PRESENT;
		return HV_STATUS_SUCCESS;
	}
	if ((in->control_flags & HV_TRANSLATE_GVA_VALIDATE_WRITE) && !tr.writeable) {
		out->translation_result.result_code = HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION;
		return HV_STATUS_SUCCESS;
	}
	out->gpa_page = tr.physical_address >> 12;
	region = emu_region_find(c->pt, out->gpa_page);
	if (!region)
		out->translation_result.result_code = HV_TRANSLATE_GVA_GPA_UNMAPPED;
	else if ((in->control_flags & HV_TRANSLATE_GVA_VALIDATE_WRITE) &&
		 !(region->flags & (1U << MSHV_SET_MEM_BIT_WRITABLE)))
		out->translation_result.result_code = HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS;
	else
		out->translation_result.result_code = HV_TRANSLATE_GVA_SUCCESS;
	out->translation_result.result_flags = HV_CACHE_TYPE_WRITE_BACK;
	return HV_STATUS_SUCCESS;
}

uint16_t emu_hc_assert_interrupt(struct emu_call *c)
{
	const struct hv_input_assert_virtual_interrupt *in = (const void *)c->in;
	uint64_t ctl = in->control;

	if (in->rsvd_z0 || in->rsvd_z1 || in->target_vtl ||
	    (ctl & ~(HV_INTERRUPT_CONTROL_TYPE_MASK | HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED |
		     HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE)))
		return HV_STATUS_INVALID_PARAMETER;
	if ((ctl & HV_INTERRUPT_CONTROL_TYPE_MASK) >= HV_X64_INTERRUPT_TYPE_MAXIMUM)
		return HV_STATUS_INVALID_PARAMETER;
	if (emu_assert_interrupt(c->pt, in->vector, in->dest_addr,
				 (uint32_t)(ctl & HV_INTERRUPT_CONTROL_TYPE_MASK),
				 ctl & HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE,
				 ctl & HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED) < 0)
		return errno == EINVAL ? HV_STATUS_INVALID_PARAMETER : HV_STATUS_OPERATION_FAILED;
	return HV_STATUS_SUCCESS;
}

/*
 * CLEAR_VIRTUAL_INTERRUPT withdraws an asserted ExtINT that was not taken.
 * KVM delivers an ExtINT to the vCPU when it is injected and keeps no
 * asserted-but-pending copy the emulator could withdraw, so there is
 * nothing to clear and success is the true result.
 */
uint16_t emu_hc_clear_interrupt(struct emu_call *c)
{
	return HV_STATUS_SUCCESS;
}

uint16_t emu_hc_gpa_access_states(struct emu_call *c)
{
	const struct hv_input_get_gpa_pages_access_state *in = (const void *)c->in;
	uint32_t done = 0;
	uint16_t st;

	if (c->reps > EMU_HV_PAGE)
		return HV_STATUS_INVALID_HYPERCALL_INPUT;
	st = emu_gpa_access_states(c->pt, in->hv_gpa_page_number, c->reps, c->out,
				   in->flags, &done);
	c->done = (uint16_t)done;
	return st;
}

/*
 * SIGNAL_EVENT_DIRECT / POST_MESSAGE_DIRECT target a VP's SynIC, which the
 * emulator does not have: the target's SynIC is never enabled, which the
 * hypervisor reports as HV_STATUS_INVALID_VP_STATE (EIO).
 */
uint16_t emu_hc_synic(struct emu_call *c)
{
	uint32_t vp = c->in[8] | c->in[9] << 8 | c->in[10] << 16 | (uint32_t)c->in[11] << 24;

	if (vp >= EMU_MAX_VPS || !c->pt->vps[vp])
		return HV_STATUS_INVALID_VP_INDEX;
	return HV_STATUS_INVALID_VP_STATE;
}
