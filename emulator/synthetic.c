/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the synthetic registers, one store for every view of them.
 *
 * The Hyper-V synthetic MSRs (TLFS "Partition Properties", "Virtual Processor
 * Properties", "Timers"), the SynIC registers and the synthetic timers live
 * here, and three views read and write the same values:
 *  - the VMM's HvCallGetVpRegisters/HvCallSetVpRegisters (regs.c calls
 *    emu_synthetic_reg_get/set);
 *  - the VMM's MSHV_GET/SET_VP_STATE SIMP, SIEFP and SYNTHETIC_TIMERS
 *    (vpstate.c calls emu_synthetic_state): STIMERn_CONFIG/COUNT are the
 *    config/count fields of struct hv_synthetic_timers_state;
 *  - the guest's RDMSR/WRMSR: KVM sends accesses to the synthetic MSR range
 *    to user space (KVM_CAP_X86_USER_SPACE_MSR with an MSR filter that denies
 *    the range, so a KVM with its own Hyper-V emulation never answers them
 *    either) and run.c's emu_exit_msr asks emu_synthetic_msr.
 * KVM's Hyper-V emulation (KVM_CAP_HYPERV*) is never used, so the guest and
 * the VMM always see the same values.
 *
 * Scope (TLFS): GUEST_OS_ID, HYPERCALL and REFERENCE_TSC are partition-wide
 * (one value whichever VP names them); the rest are per VP. Each register is
 * granted by a bit of the partition's SYNTHETIC_PROC_FEATURES
 * (hv_partition_synthetic_processor_features): with the bit clear,
 * Get/SetVpRegisters fail with HV_STATUS_INVALID_PARAMETER (the status the
 * TLFS gives for an invalid register name; the hypervisor's own choice is
 * not documented) and the guest's access is an unimplemented MSR.
 *
 * Guest writes follow the TLFS rules (read-only MSRs #GP, HYPERCALL keeps
 * enable 0 while GUEST_OS_ID is 0, zeroing GUEST_OS_ID disables the hypercall
 * page, SINTx vectors below 16 #GP unless masked, a synthetic timer without
 * a SINT stays disabled, a timer COUNT of 0 disables it). SetVpRegisters
 * stores the value after the reserved-bit checks and performs no side
 * effects, as the TLFS says of HvCallSetVpRegisters, so a VMM restores
 * state in any order.
 *
 * Approximated:
 *  - SIMP and SIEFP are overlay pages on the hypervisor: here, enabling one
 *    copies its contents into guest RAM at the page's GPA, disabling copies
 *    them back out; while enabled, guest RAM at that GPA is the page (so
 *    MSHV_GET/SET_VP_STATE read and write guest memory there). The RAM the
 *    overlay covered is not preserved.
 *  - No SynIC message or event is ever delivered and no synthetic timer ever
 *    expires (nothing here posts to the SIMP page); EOM has nothing to
 *    re-deliver.
 *  - The hypercall page is not filled and guest hypercalls are not
 *    answered (a VMCALL goes to KVM). The reference TSC page is written with
 *    tsc_sequence 0, which tells the guest to read TIME_REF_COUNT instead.
 *  - VP_RUNTIME counts the host time spent inside RUN_VP.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "emu.h"

#define EMU_SYNTH_MSR_FIRST	0x40000000U	/* HV_X64_MSR_GUEST_OS_ID */
#define EMU_SYNTH_MSR_COUNT	0x200U		/* ...0x400001FF: every HV_X64_MSR_* */
#define EMU_APIC_BUS_HZ		1000000000ULL	/* KVM's APIC timer: APIC_BUS_CYCLE_NS_DEFAULT 1 */

#define SINT_RESERVED (~(HV_SYNIC_SINT_VECTOR_MASK | HV_SYNIC_SINT_MASKED | \
			 HV_SYNIC_SINT_AUTO_EOI | HV_SYNIC_SINT_POLLING | \
			 HV_SYNIC_SINT_AS_INTERCEPT | HV_SYNIC_SINT_PROXY))
#define EMU_PAGE_MASK (~(EMU_PAGE_SIZE - 1))

/* What a register name or MSR index stands for. */
enum emu_synth_kind {
	SYN_NONE,
	SYN_GUEST_OS_ID,
	SYN_HYPERCALL,
	SYN_REFERENCE_TSC,
	SYN_VP_INDEX,
	SYN_TIME_REF_COUNT,
	SYN_VP_RUNTIME,
	SYN_VP_ASSIST_PAGE,
	SYN_TSC_FREQUENCY,	/* guest MSR only: no register code */
	SYN_APIC_FREQUENCY,	/* guest MSR only */
	SYN_SCONTROL,
	SYN_SVERSION,
	SYN_SIEFP,
	SYN_SIMP,
	SYN_EOM,
	SYN_SINT,
	SYN_STIMER_CONFIG,
	SYN_STIMER_COUNT,
};

struct emu_synth_id {
	enum emu_synth_kind kind;
	unsigned int n;		/* SINT / STIMER number */
};

/* The per-VP store (vp->vpstate; freed by emu_vpstate_destroy). */
struct emu_synthetic_vp {
	uint64_t vp_assist_page;
	uint64_t scontrol, siefp, simp;
	uint64_t sint[HV_SYNIC_SINT_COUNT];
	struct hv_synthetic_timers_state timers;	/* STIMERn_CONFIG/COUNT */
	uint8_t simp_page[EMU_PAGE_SIZE];		/* contents while not overlaid */
	uint8_t siefp_page[EMU_PAGE_SIZE];
	uint64_t runtime_ns;				/* VP_RUNTIME, host ns in RUN_VP */
	uint64_t run_start_ns;
	/* HV_REGISTER_PENDING_EVENT0/1 until the next RUN_VP hands them to KVM */
	struct hv_u128 pending_event[2];
	uint64_t deliverability;
	uint64_t emulation_hints;
};

static uint64_t emu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct emu_synthetic_vp *emu_svp(struct emu_vp *vp)
{
	return vp->vpstate;
}

void emu_synthetic_init(struct emu_partition *pt)
{
	memset(&pt->synthetic, 0, sizeof(pt->synthetic));
	pthread_mutex_init(&pt->synthetic.lock, NULL);
}

void emu_synthetic_destroy(struct emu_partition *pt)
{
	pthread_mutex_destroy(&pt->synthetic.lock);
}

/* At CREATE_VP: the reset values (SINTx masked, everything else 0). */
int emu_synthetic_vp_init(struct emu_vp *vp)
{
	struct emu_synthetic_vp *s = calloc(1, sizeof(*s));

	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < HV_SYNIC_SINT_COUNT; i++)
		s->sint[i] = HV_SYNIC_SINT_MASKED;
	vp->vpstate = s;
	return 0;
}

/* ---- names, MSRs, gates --------------------------------------------------- */

static bool emu_synth_from_name(uint32_t name, struct emu_synth_id *id)
{
	id->n = 0;
	switch (name) {
	case HV_REGISTER_GUEST_OS_ID: id->kind = SYN_GUEST_OS_ID; return true;
	case HV_X64_REGISTER_HYPERCALL: id->kind = SYN_HYPERCALL; return true;
	case HV_REGISTER_REFERENCE_TSC: id->kind = SYN_REFERENCE_TSC; return true;
	case HV_REGISTER_VP_INDEX: id->kind = SYN_VP_INDEX; return true;
	case HV_REGISTER_TIME_REF_COUNT: id->kind = SYN_TIME_REF_COUNT; return true;
	case HV_REGISTER_VP_RUNTIME: id->kind = SYN_VP_RUNTIME; return true;
	case HV_REGISTER_VP_ASSIST_PAGE: id->kind = SYN_VP_ASSIST_PAGE; return true;
	case HV_REGISTER_SCONTROL: id->kind = SYN_SCONTROL; return true;
	case HV_REGISTER_SVERSION: id->kind = SYN_SVERSION; return true;
	case HV_REGISTER_SIEFP: id->kind = SYN_SIEFP; return true;
	case HV_REGISTER_SIMP: id->kind = SYN_SIMP; return true;
	case HV_REGISTER_EOM: id->kind = SYN_EOM; return true;
	}
	if (name >= HV_REGISTER_SINT0 && name <= HV_REGISTER_SINT15) {
		id->kind = SYN_SINT;
		id->n = name - HV_REGISTER_SINT0;
		return true;
	}
	if (name >= HV_REGISTER_STIMER0_CONFIG && name <= HV_REGISTER_STIMER3_COUNT) {
		id->kind = (name - HV_REGISTER_STIMER0_CONFIG) % 2 ? SYN_STIMER_COUNT :
								      SYN_STIMER_CONFIG;
		id->n = (name - HV_REGISTER_STIMER0_CONFIG) / 2;
		return true;
	}
	id->kind = SYN_NONE;
	return false;
}

static bool emu_synth_from_msr(uint32_t msr, struct emu_synth_id *id)
{
	id->n = 0;
	switch (msr) {
	case HV_X64_MSR_GUEST_OS_ID: id->kind = SYN_GUEST_OS_ID; return true;
	case HV_X64_MSR_HYPERCALL: id->kind = SYN_HYPERCALL; return true;
	case HV_X64_MSR_REFERENCE_TSC: id->kind = SYN_REFERENCE_TSC; return true;
	case HV_X64_MSR_VP_INDEX: id->kind = SYN_VP_INDEX; return true;
	case HV_X64_MSR_TIME_REF_COUNT: id->kind = SYN_TIME_REF_COUNT; return true;
	case HV_X64_MSR_VP_RUNTIME: id->kind = SYN_VP_RUNTIME; return true;
	case HV_X64_MSR_VP_ASSIST_PAGE: id->kind = SYN_VP_ASSIST_PAGE; return true;
	case HV_X64_MSR_TSC_FREQUENCY: id->kind = SYN_TSC_FREQUENCY; return true;
	case HV_X64_MSR_APIC_FREQUENCY: id->kind = SYN_APIC_FREQUENCY; return true;
	case HV_X64_MSR_SCONTROL: id->kind = SYN_SCONTROL; return true;
	case HV_X64_MSR_SVERSION: id->kind = SYN_SVERSION; return true;
	case HV_X64_MSR_SIEFP: id->kind = SYN_SIEFP; return true;
	case HV_X64_MSR_SIMP: id->kind = SYN_SIMP; return true;
	case HV_X64_MSR_EOM: id->kind = SYN_EOM; return true;
	}
	if (msr >= HV_X64_MSR_SINT0 && msr <= HV_X64_MSR_SINT15) {
		id->kind = SYN_SINT;
		id->n = msr - HV_X64_MSR_SINT0;
		return true;
	}
	if (msr >= HV_X64_MSR_STIMER0_CONFIG && msr <= HV_X64_MSR_STIMER3_COUNT) {
		id->kind = (msr - HV_X64_MSR_STIMER0_CONFIG) % 2 ? SYN_STIMER_COUNT :
								    SYN_STIMER_CONFIG;
		id->n = (msr - HV_X64_MSR_STIMER0_CONFIG) / 2;
		return true;
	}
	id->kind = SYN_NONE;
	return false;
}

/* The SYNTHETIC_PROC_FEATURES bit that grants a register (TLFS privilege mask). */
static int emu_synth_gate(enum emu_synth_kind kind)
{
	switch (kind) {
	case SYN_GUEST_OS_ID:
	case SYN_HYPERCALL:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_HYPERCALL_REGS_BIT;
	case SYN_REFERENCE_TSC:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_TSC_BIT;
	case SYN_VP_INDEX:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_INDEX_BIT;
	case SYN_TIME_REF_COUNT:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_COUNTER_BIT;
	case SYN_VP_RUNTIME:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_RUN_TIME_REG_BIT;
	case SYN_VP_ASSIST_PAGE:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_INTR_CTRL_REGS_BIT;
	case SYN_TSC_FREQUENCY:
	case SYN_APIC_FREQUENCY:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_FREQUENCY_REGS_BIT;
	case SYN_STIMER_CONFIG:
	case SYN_STIMER_COUNT:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNTHETIC_TIMER_REGS_BIT;
	default:
		return HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNIC_REGS_BIT;
	}
}

/* The features the VMM set, limited to what this file implements (properties.c). */
static bool emu_synth_granted(struct emu_vp *vp, enum emu_synth_kind kind)
{
	return emu_synthetic_proc_features(vp->pt) & (1ULL << emu_synth_gate(kind));
}

/* ---- SIMP / SIEFP overlay pages ------------------------------------------ */

/* The guest page an enabled SIMP/SIEFP value overlays, or 0 if none. */
static uint64_t emu_overlay_gpa(uint64_t msr)
{
	return (msr & HV_SYNIC_SIMP_ENABLE) ? (msr & EMU_PAGE_MASK) : 0;
}

/* Copy the page's contents between the store and guest RAM (whole pages only). */
static bool emu_overlay_copy(struct emu_partition *pt, uint64_t gpa, uint8_t *page, bool to_guest)
{
	if (!gpa)
		return false;
	if (to_guest)
		return emu_gpa_write(pt, gpa, page, EMU_PAGE_SIZE) == EMU_PAGE_SIZE;
	return emu_gpa_read(pt, gpa, page, EMU_PAGE_SIZE) == EMU_PAGE_SIZE;
}

/* A new SIMP/SIEFP value: take the old overlay back, lay the new one. */
static void emu_overlay_move(struct emu_vp *vp, uint64_t old, uint64_t new, uint8_t *page)
{
	if (emu_overlay_gpa(old) == emu_overlay_gpa(new))
		return;
	emu_overlay_copy(vp->pt, emu_overlay_gpa(old), page, false);
	emu_overlay_copy(vp->pt, emu_overlay_gpa(new), page, true);
}

/* MSHV_GET/SET_VP_STATE SIMP, SIEFP, SYNTHETIC_TIMERS (HvCallGet/SetVpState). */
uint16_t emu_synthetic_state(struct emu_vp *vp, uint8_t type, bool set, uint8_t *buf,
			     uint32_t size)
{
	struct emu_synthetic_vp *s = emu_svp(vp);
	uint8_t *page;
	uint64_t gpa;

	if (type == MSHV_VP_STATE_SYNTHETIC_TIMERS) {
		if (set)
			memcpy(&s->timers, buf, sizeof(s->timers));
		else
			memcpy(buf, &s->timers, sizeof(s->timers));
		return HV_STATUS_SUCCESS;
	}
	if (size < EMU_PAGE_SIZE)
		return HV_STATUS_INVALID_PARAMETER;
	page = type == MSHV_VP_STATE_SIMP ? s->simp_page : s->siefp_page;
	gpa = emu_overlay_gpa(type == MSHV_VP_STATE_SIMP ? s->simp : s->siefp);
	if (set) {
		memcpy(page, buf, EMU_PAGE_SIZE);
		emu_overlay_copy(vp->pt, gpa, page, true);
	} else {
		emu_overlay_copy(vp->pt, gpa, page, false);	/* the guest's view, if overlaid */
		memcpy(buf, page, EMU_PAGE_SIZE);
	}
	return HV_STATUS_SUCCESS;
}

/* ---- values ------------------------------------------------------------------ */

static uint64_t emu_synth_read(struct emu_vp *vp, const struct emu_synth_id *id)
{
	struct emu_synthetic_partition *p = &vp->pt->synthetic;
	struct emu_synthetic_vp *s = emu_svp(vp);
	uint64_t v = 0;
	__u64 khz;

	switch (id->kind) {
	case SYN_GUEST_OS_ID:
	case SYN_HYPERCALL:
	case SYN_REFERENCE_TSC:
		pthread_mutex_lock(&p->lock);
		v = id->kind == SYN_GUEST_OS_ID ? p->guest_os_id :
		    id->kind == SYN_HYPERCALL ? p->hypercall : p->reference_tsc;
		pthread_mutex_unlock(&p->lock);
		return v;
	case SYN_VP_INDEX: return vp->index;
	case SYN_TIME_REF_COUNT: return emu_time_reference(vp->pt);
	case SYN_VP_RUNTIME: return s->runtime_ns / 100;
	case SYN_VP_ASSIST_PAGE: return s->vp_assist_page;
	case SYN_TSC_FREQUENCY:
		khz = (__u64)emu_sys_ioctl(vp->vcpu_fd, KVM_GET_TSC_KHZ, NULL);
		return (int64_t)khz > 0 ? khz * 1000 : 0;
	case SYN_APIC_FREQUENCY: return EMU_APIC_BUS_HZ;
	case SYN_SCONTROL: return s->scontrol;
	case SYN_SVERSION: return HV_SYNIC_VERSION_1;
	case SYN_SIEFP: return s->siefp;
	case SYN_SIMP: return s->simp;
	case SYN_EOM: return 0;
	case SYN_SINT: return s->sint[id->n];
	case SYN_STIMER_CONFIG: return s->timers.timers[id->n].config;
	case SYN_STIMER_COUNT: return s->timers.timers[id->n].count;
	case SYN_NONE: break;
	}
	return 0;
}

static bool emu_synth_read_only(enum emu_synth_kind kind)
{
	return kind == SYN_VP_INDEX || kind == SYN_TIME_REF_COUNT || kind == SYN_VP_RUNTIME ||
	       kind == SYN_SVERSION || kind == SYN_TSC_FREQUENCY || kind == SYN_APIC_FREQUENCY;
}

/* Zero the reference TSC page's header: tsc_sequence 0 sends the guest to the MSR. */
static void emu_reference_tsc_page(struct emu_partition *pt, uint64_t value)
{
	struct hv_reference_tsc_page hdr;

	if (!(value & HV_X64_MSR_TSC_REFERENCE_ENABLE))
		return;
	memset(&hdr, 0, sizeof(hdr));
	emu_gpa_write(pt, value & EMU_PAGE_MASK, &hdr, sizeof(hdr));
}

/* The partition-wide registers; guest writes get the TLFS side effects. */
static void emu_synth_write_partition(struct emu_vp *vp, enum emu_synth_kind kind, uint64_t v,
				      bool guest)
{
	struct emu_synthetic_partition *p = &vp->pt->synthetic;

	pthread_mutex_lock(&p->lock);
	if (kind == SYN_GUEST_OS_ID) {
		p->guest_os_id = v;
		if (guest && !v)	/* zeroing it disables the hypercall page */
			p->hypercall &= ~HV_X64_MSR_HYPERCALL_ENABLE;
	} else if (kind == SYN_HYPERCALL) {
		if (guest && (p->hypercall & HV_X64_MSR_HYPERCALL_LOCKED)) {
			/* locked: read-only until the partition is reset */
		} else {
			if (guest && !p->guest_os_id)
				v &= ~HV_X64_MSR_HYPERCALL_ENABLE;
			p->hypercall = v;
		}
	} else {
		p->reference_tsc = v;
		if (guest)
			emu_reference_tsc_page(vp->pt, v);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Write one register; false when the value is refused (reserved bits, a
 * read-only register, a SINT vector the guest may not use), which is
 * HV_STATUS_INVALID_PARAMETER for the VMM and #GP for the guest.
 */
static bool emu_synth_write(struct emu_vp *vp, const struct emu_synth_id *id, uint64_t v,
			    bool guest)
{
	struct emu_synthetic_vp *s = emu_svp(vp);
	struct hv_stimer_state *t;

	if (emu_synth_read_only(id->kind))
		return false;
	switch (id->kind) {
	case SYN_GUEST_OS_ID:
	case SYN_HYPERCALL:
	case SYN_REFERENCE_TSC:
		emu_synth_write_partition(vp, id->kind, v, guest);
		return true;
	case SYN_VP_ASSIST_PAGE:
		s->vp_assist_page = v;
		return true;
	case SYN_SCONTROL:
		s->scontrol = v;
		return true;
	case SYN_SIEFP:
		emu_overlay_move(vp, s->siefp, v, s->siefp_page);
		s->siefp = v;
		return true;
	case SYN_SIMP:
		emu_overlay_move(vp, s->simp, v, s->simp_page);
		s->simp = v;
		return true;
	case SYN_EOM:
		return true;	/* no message is ever pending: nothing to re-deliver */
	case SYN_SINT:
		if (v & SINT_RESERVED)
			return false;
		if (guest && !(v & HV_SYNIC_SINT_MASKED) &&
		    (v & HV_SYNIC_SINT_VECTOR_MASK) < HV_SYNIC_FIRST_VALID_VECTOR)
			return false;
		s->sint[id->n] = v;
		return true;
	case SYN_STIMER_CONFIG:
		t = &s->timers.timers[id->n];
		/* a timer that is not direct needs a SINT, else it stays disabled */
		if (guest && (v & HV_STIMER_CONFIG_ENABLE) && !(v & HV_STIMER_CONFIG_DIRECT_MODE) &&
		    !(v & HV_STIMER_CONFIG_SINTX_MASK))
			v &= ~HV_STIMER_CONFIG_ENABLE;
		t->config = v;
		return true;
	case SYN_STIMER_COUNT:
		t = &s->timers.timers[id->n];
		t->count = v;
		if (guest && !v)
			t->config &= ~HV_STIMER_CONFIG_ENABLE;
		else if (guest && (t->config & HV_STIMER_CONFIG_AUTO_ENABLE))
			t->config |= HV_STIMER_CONFIG_ENABLE;
		return true;
	default:
		return false;
	}
}

/* ---- the VMM's view: HvCallGet/SetVpRegisters ------------------------------ */

bool emu_synthetic_is_register(uint32_t name)
{
	struct emu_synth_id id;

	return emu_synth_from_name(name, &id);
}

uint16_t emu_synthetic_reg_get(struct emu_vp *vp, uint32_t name, union hv_register_value *value)
{
	struct emu_synth_id id;

	if (!emu_synth_from_name(name, &id) || !emu_synth_granted(vp, id.kind))
		return HV_STATUS_INVALID_PARAMETER;
	value->reg64 = emu_synth_read(vp, &id);
	return HV_STATUS_SUCCESS;
}

uint16_t emu_synthetic_reg_set(struct emu_vp *vp, uint32_t name,
			       const union hv_register_value *value)
{
	struct emu_synth_id id;

	if (!emu_synth_from_name(name, &id) || !emu_synth_granted(vp, id.kind))
		return HV_STATUS_INVALID_PARAMETER;
	if (value->reg128.high_part)
		return HV_STATUS_INVALID_PARAMETER;	/* beyond the register's 64 bits */
	return emu_synth_write(vp, &id, value->reg64, false) ? HV_STATUS_SUCCESS :
							       HV_STATUS_INVALID_PARAMETER;
}

/* ---- event and state registers (HV_REGISTER_PENDING_EVENT0/1, ...) --------- */

/*
 * PENDING_EVENT0/1: a pending exception or ExtInt event is handed to KVM as
 * an injected exception/interrupt (KVM_SET_VCPU_EVENTS) at once, and reads
 * back until the next RUN_VP, which delivers it. Other event types
 * (memory intercepts, hypercall output, virtualization faults) belong to
 * the hypervisor's own nested and isolation machinery and are refused.
 */
static uint16_t emu_pending_event_set(struct emu_vp *vp, unsigned int n,
				      const union hv_register_value *value)
{
	struct emu_synthetic_vp *s = emu_svp(vp);
	uint64_t low = value->reg128.low_part;
	struct kvm_vcpu_events ev;
	unsigned int type, vector;

	if (n == 1 || !(low & HV_X64_PENDING_EVENT_PENDING)) {
		s->pending_event[n] = value->reg128;
		return HV_STATUS_SUCCESS;
	}
	type = (low & HV_X64_PENDING_EVENT_TYPE_MASK) >> HV_X64_PENDING_EVENT_TYPE_SHIFT;
	vector = (low & HV_X64_PENDING_EVENT_VECTOR_MASK) >> HV_X64_PENDING_EVENT_VECTOR_SHIFT;
	if (vector > 0xff)
		return HV_STATUS_INVALID_PARAMETER;
	ev = vp->run->s.regs.events;
	if (type == HV_X64_PENDING_EVENT_EXCEPTION) {
		if (vector >= 32)
			return HV_STATUS_INVALID_PARAMETER;
		ev.exception.injected = 1;
		ev.exception.nr = (uint8_t)vector;
		ev.exception.has_error_code = !!(low & HV_X64_PENDING_EVENT_DELIVER_ERROR_CODE);
		ev.exception.error_code = (uint32_t)(low >> HV_X64_PENDING_EVENT_ERROR_CODE_SHIFT);
		if (vector == 14) {	/* #PF: the exception parameter is CR2 */
			emu_sregs_write_begin(vp);
			vp->run->s.regs.sregs.cr2 = value->reg128.high_part;
			vp->run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
			if (emu_regs_commit(vp) != HV_STATUS_SUCCESS)
				return HV_STATUS_INVALID_PARAMETER;
		}
	} else if (type == HV_X64_PENDING_EVENT_EXT_INT) {
		/* ExtInt events carry their vector in bits 15:8 */
		ev.interrupt.injected = 1;
		ev.interrupt.nr = (uint8_t)(low >> 8);
		ev.interrupt.soft = 0;
	} else {
		return HV_STATUS_INVALID_PARAMETER;
	}
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return HV_STATUS_INVALID_PARAMETER;
	vp->run->s.regs.events = ev;
	s->pending_event[n] = value->reg128;
	return HV_STATUS_SUCCESS;
}

/*
 * DELIVERABILITY_NOTIFICATIONS: the value is kept; no notification message
 * is generated. NMI notification on a partition with the hypervisor's LAPIC
 * is refused with INVALID_PARAMETER, as a real hypervisor answers a write
 * of 1 on a fresh LAPIC partition's VP (rust-vmm mshv-ioctls' hardware
 * test); reserved bits 47:6 likewise.
 */
static uint16_t emu_deliverability_set(struct emu_vp *vp, uint64_t v)
{
	uint64_t known = HV_DELIVERABILITY_NMI_NOTIFICATION |
			 HV_DELIVERABILITY_INTERRUPT_NOTIFICATION |
			 HV_DELIVERABILITY_INTERRUPT_PRIORITY_MASK | HV_DELIVERABILITY_SINTS_MASK;

	if (v & ~known)
		return HV_STATUS_INVALID_PARAMETER;
	if ((v & HV_DELIVERABILITY_NMI_NOTIFICATION) && vp->pt->lapic)
		return HV_STATUS_INVALID_PARAMETER;
	emu_svp(vp)->deliverability = v;
	return HV_STATUS_SUCCESS;
}

bool emu_synthetic_is_state_register(uint32_t name)
{
	return name == HV_REGISTER_PENDING_EVENT0 || name == HV_REGISTER_PENDING_EVENT1 ||
	       name == HV_REGISTER_DELIVERABILITY_NOTIFICATIONS ||
	       name == HV_REGISTER_INSTRUCTION_EMULATION_HINTS;
}

uint16_t emu_synthetic_state_reg_get(struct emu_vp *vp, uint32_t name,
				     union hv_register_value *value)
{
	struct emu_synthetic_vp *s = emu_svp(vp);

	switch (name) {
	case HV_REGISTER_PENDING_EVENT0:
	case HV_REGISTER_PENDING_EVENT1:
		value->reg128 = s->pending_event[name - HV_REGISTER_PENDING_EVENT0];
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_DELIVERABILITY_NOTIFICATIONS:
		value->reg64 = s->deliverability;
		return HV_STATUS_SUCCESS;
	case HV_REGISTER_INSTRUCTION_EMULATION_HINTS:
		value->reg64 = s->emulation_hints;
		return HV_STATUS_SUCCESS;
	}
	return HV_STATUS_INVALID_PARAMETER;
}

uint16_t emu_synthetic_state_reg_set(struct emu_vp *vp, uint32_t name,
				     const union hv_register_value *value)
{
	switch (name) {
	case HV_REGISTER_PENDING_EVENT0:
	case HV_REGISTER_PENDING_EVENT1:
		return emu_pending_event_set(vp, name - HV_REGISTER_PENDING_EVENT0, value);
	case HV_REGISTER_DELIVERABILITY_NOTIFICATIONS:
		if (value->reg128.high_part)
			return HV_STATUS_INVALID_PARAMETER;
		return emu_deliverability_set(vp, value->reg64);
	case HV_REGISTER_INSTRUCTION_EMULATION_HINTS:
		/*
		 * Its bits (PARTITION_SECURE_VTL_ENABLED, MBEC_USER_EXECUTE_CONTROL)
		 * describe features this partition cannot have: only 0 is true of it.
		 */
		if (value->reg128.high_part || value->reg64)
			return HV_STATUS_INVALID_PARAMETER;
		emu_svp(vp)->emulation_hints = 0;
		return HV_STATUS_SUCCESS;
	}
	return HV_STATUS_INVALID_PARAMETER;
}

uint64_t emu_synthetic_emulation_hints(struct emu_vp *vp)
{
	return emu_svp(vp)->emulation_hints;
}

/* ---- RUN_VP bracket: VP_RUNTIME, pending events ----------------------------- */

void emu_synthetic_run_begin(struct emu_vp *vp)
{
	struct emu_synthetic_vp *s = emu_svp(vp);

	/* KVM holds any pending event now; it is delivered by this run */
	memset(s->pending_event, 0, sizeof(s->pending_event));
	s->run_start_ns = emu_now_ns();
}

void emu_synthetic_run_end(struct emu_vp *vp)
{
	struct emu_synthetic_vp *s = emu_svp(vp);

	s->runtime_ns += emu_now_ns() - s->run_start_ns;
}

/* ---- the guest's view: RDMSR/WRMSR ------------------------------------------ */

/*
 * KVM_CAP_X86_USER_SPACE_MSR for MSRs KVM does not implement and for
 * filtered ones, and a filter (KVM_X86_SET_MSR_FILTER) that denies the whole
 * synthetic MSR range to KVM: every guest access to it exits to user space.
 * Once per partition, at its first CREATE_VP (partition mutex held). If this
 * KVM lacks either capability the guest gets KVM's own answer (#GP for an
 * MSR it does not know) and the VMM's view is unchanged.
 */
int emu_synthetic_msr_exits(struct emu_partition *pt)
{
	static const uint8_t deny[EMU_SYNTH_MSR_COUNT / 8];	/* all 0: deny */
	struct kvm_enable_cap cap;
	struct kvm_msr_filter f;

	if (pt->synthetic.msr_exits_tried)
		return 0;
	pt->synthetic.msr_exits_tried = true;
	memset(&cap, 0, sizeof(cap));
	cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
	cap.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
	if (emu_sys_ioctl(pt->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return 0;
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	f.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	f.ranges[0].base = EMU_SYNTH_MSR_FIRST;
	f.ranges[0].nmsrs = EMU_SYNTH_MSR_COUNT;
	f.ranges[0].bitmap = (__u8 *)deny;
	pt->synthetic.msr_filter = emu_sys_ioctl(pt->vm_fd, KVM_X86_SET_MSR_FILTER, &f) == 0;
	pt->synthetic.msr_exits = true;
	return 0;
}

/*
 * A guest RDMSR (write false) or WRMSR of msr: EMU_MSR_DONE with *data read
 * or taken, EMU_MSR_FAULT for #GP, EMU_MSR_NOT_SYNTHETIC when it is no
 * synthetic MSR of this partition (not one, or its feature bit is clear).
 */
int emu_synthetic_msr(struct emu_vp *vp, uint32_t msr, bool write, uint64_t *data)
{
	struct emu_synth_id id;

	if (!emu_synth_from_msr(msr, &id) || !emu_synth_granted(vp, id.kind))
		return EMU_MSR_NOT_SYNTHETIC;
	if (!write) {
		*data = emu_synth_read(vp, &id);
		return EMU_MSR_DONE;
	}
	return emu_synth_write(vp, &id, *data, true) ? EMU_MSR_DONE : EMU_MSR_FAULT;
}

/* ---- what `mshv info` says about the guest's view --------------------------- */

static char emu_view_text[384];

static void emu_view_probe(void)
{
	int kvm = emu_sys_openat(AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC, 0);
	int vm = kvm < 0 ? -1 : emu_sys_ioctl(kvm, KVM_CREATE_VM, 0);
	int fd = vm >= 0 ? vm : kvm;
	bool user_msr = false, filter = false, hyperv = false;

	if (fd >= 0) {
		user_msr = emu_sys_ioctl(fd, KVM_CHECK_EXTENSION,
					 (void *)(uintptr_t)KVM_CAP_X86_USER_SPACE_MSR) > 0;
		filter = emu_sys_ioctl(fd, KVM_CHECK_EXTENSION,
				       (void *)(uintptr_t)KVM_CAP_X86_MSR_FILTER) > 0;
		hyperv = emu_sys_ioctl(fd, KVM_CHECK_EXTENSION,
				       (void *)(uintptr_t)KVM_CAP_HYPERV) > 0;
	}
	if (vm >= 0)
		emu_sys_close(vm);
	if (kvm >= 0)
		emu_sys_close(kvm);
	snprintf(emu_view_text, sizeof(emu_view_text),
		 "%s; KVM's Hyper-V emulation %s",
		 user_msr && filter ?
		 "guest RDMSR/WRMSR of every synthetic MSR answered by the emulator "
		 "(KVM user-space MSR exits and an MSR filter)" :
		 user_msr ?
		 "guest RDMSR/WRMSR of synthetic MSRs answered by the emulator "
		 "(KVM user-space MSR exits; no MSR filter)" :
		 "guest RDMSR/WRMSR of synthetic MSRs #GP (no KVM user-space MSR exits); "
		 "the VMM's view is the emulator's",
		 hyperv ? "present, not used" : "absent");
}

/* One line: how the guest sees the synthetic registers on this host (`mshv info`). */
EMU_EXPORT const char *mshv_emu_synthetic_view(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, emu_view_probe);
	return emu_view_text;
}
