/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the partition reference time and TIME_FREEZE.
 *
 * The partition reference counter (TLFS "Partition Reference Counter",
 * HV_X64_MSR_TIME_REF_COUNT) counts 100 ns units from 0 at partition
 * creation. HV_PARTITION_PROPERTY_TIME_FREEZE stops it (1) and resumes it
 * from the value it stopped at (0); HV_PARTITION_PROPERTY_REFERENCE_TIME
 * reads it at any time and sets it only while time is frozen.
 *
 * Approximated: the TLFS counter advances only while at least one VP is not
 * explicitly suspended; here it advances from creation whenever it is not
 * frozen. The counter is host CLOCK_MONOTONIC minus an offset, so it never
 * goes backwards on its own.
 *
 * What else a freeze stops, as far as KVM lets it (the hypervisor stops the
 * partition's whole notion of time; KVM's clocks keep running and can only
 * be set back afterwards):
 *  - kvmclock: KVM_GET_CLOCK at freeze, KVM_SET_CLOCK with that value at
 *    thaw, so the guest's kvmclock resumes where it stopped.
 *  - guest TSC: at thaw each VP's TSC is moved back by the time spent frozen,
 *    through KVM_VCPU_TSC_OFFSET (KVM_VCPU_TSC_CTRL), else a host-initiated
 *    MSR_IA32_TSC write, each checked by reading the TSC back. Some hosts
 *    accept both and apply neither; there the guest TSC runs on through a
 *    freeze.
 *  - LAPIC timer: the current count (TMCCT) taken at freeze is written back
 *    at thaw (KVM_SET_LAPIC restarts the timer from TMCCT: kvm_apic_set_state)
 *    if the timer is still counting in the same one-shot/periodic setup (a
 *    LAPIC state set while frozen replaces what was taken: its count is the
 *    one that holds); a timer that expired during the freeze has fired (not
 *    undone), and the TSC-deadline mode is not adjusted. KVM_GET/SET_LAPIC
 *    rewrite the whole APIC page: an interrupt another thread injects in
 *    between is lost.
 *  - synthetic timers never expire here (synthetic.c), so they cannot advance.
 * Only between RUN_VPs: a VP busy in RUN_VP at freeze keeps its clocks
 * running; one busy at thaw gets its TSC and LAPIC timer set back at the
 * start of its next RUN_VP (the time in between counts as frozen). If any VP
 * ran while the partition was frozen, its guest saw time go on, so nothing
 * is set back at thaw (a clock the guest read must not go backwards). The
 * hypervisor does not stop VPs for a freeze either; VMMs pause them first.
 */
#include <time.h>

#include "emu.h"

/* Architectural MSR and local APIC register offsets (Intel SDM). */
#define MSR_IA32_TSC		0x00000010
#define APIC_LVTT		0x320
#define APIC_TMICT		0x380
#define APIC_TMCCT		0x390
#define APIC_LVTT_MODE_MASK	(3U << 17)	/* 0 one-shot, 1 periodic, 2 TSC deadline */
#define APIC_LVTT_TSC_DEADLINE	(2U << 17)

/* 100 ns units of the host's monotonic clock. */
static uint64_t emu_host_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 10000000ULL + (uint64_t)ts.tv_nsec / 100;
}

static uint64_t emu_host_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void emu_time_init(struct emu_partition *pt)
{
	pthread_mutex_init(&pt->time.lock, NULL);
	pt->time.offset = emu_host_ticks();
	pt->time.frozen = false;
	pt->time.frozen_at = 0;
}

void emu_time_destroy(struct emu_partition *pt)
{
	pthread_mutex_destroy(&pt->time.lock);
}

static uint64_t emu_time_reference_locked(struct emu_partition *pt)
{
	if (pt->time.frozen)
		return pt->time.frozen_at;
	return emu_host_ticks() - pt->time.offset;
}

uint64_t emu_time_reference(struct emu_partition *pt)
{
	uint64_t t;

	pthread_mutex_lock(&pt->time.lock);
	t = emu_time_reference_locked(pt);
	pthread_mutex_unlock(&pt->time.lock);
	return t;
}

bool emu_time_frozen(struct emu_partition *pt)
{
	bool frozen;

	pthread_mutex_lock(&pt->time.lock);
	frozen = pt->time.frozen;
	pthread_mutex_unlock(&pt->time.lock);
	return frozen;
}

/* ---- the VP's clocks ------------------------------------------------------- */

static uint32_t emu_apic_reg(const struct kvm_lapic_state *l, int off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

static int emu_tsc_read(struct emu_vp *vp, uint64_t *tsc)
{
	return emu_kvm_msr(vp, MSR_IA32_TSC, tsc, false);
}

static int emu_tsc_write(struct emu_vp *vp, uint64_t tsc)
{
	return emu_kvm_msr(vp, MSR_IA32_TSC, &tsc, true);
}

/* Did the guest TSC go back by about `ticks` (it read `before` just earlier)? */
static bool emu_tsc_went_back(struct emu_vp *vp, uint64_t before, uint64_t ticks)
{
	uint64_t now;

	return emu_tsc_read(vp, &now) == 0 && now < before - ticks / 2;
}

/*
 * Whether this host's KVM moves a guest's TSC when the VMM sets it (-1: not
 * known yet). Some accept KVM_VCPU_TSC_OFFSET and MSR_IA32_TSC writes and
 * apply neither; that is the host's, the same for every VP, so it is learnt
 * at the first thaw and later thaws skip the attempt (some eight vCPU ioctls,
 * the largest cost of a snapshot restore's time freeze there).
 */
static int emu_tsc_movable = -1;

/* Move the guest TSC back by `ticks`: the offset attribute, else an MSR write. */
static void emu_tsc_back(struct emu_vp *vp, uint64_t ticks)
{
	struct kvm_device_attr attr = {
		.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
	};
	uint64_t offset, before;

	if (!ticks || emu_tsc_read(vp, &before) < 0 || before < ticks)
		return;
	attr.addr = (uint64_t)(uintptr_t)&offset;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_GET_DEVICE_ATTR, &attr) == 0) {
		offset -= ticks;
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_DEVICE_ATTR, &attr) == 0 &&
		    emu_tsc_went_back(vp, before, ticks)) {
			__atomic_store_n(&emu_tsc_movable, 1, __ATOMIC_RELAXED);
			return;
		}
		offset += ticks;	/* not applied: leave the offset as it was */
		emu_sys_ioctl(vp->vcpu_fd, KVM_SET_DEVICE_ATTR, &attr);
	}
	if (emu_tsc_read(vp, &before) == 0 && emu_tsc_write(vp, before - ticks) == 0)
		__atomic_store_n(&emu_tsc_movable, emu_tsc_went_back(vp, before, ticks),
				 __ATOMIC_RELAXED);
}

/* The LAPIC timer the thaw gives back: its setup and current count in l. */
static void emu_time_vp_take_timer(struct emu_vp *vp, const struct kvm_lapic_state *l)
{
	vp->freeze_lvtt = emu_apic_reg(l, APIC_LVTT);
	vp->freeze_tmict = emu_apic_reg(l, APIC_TMICT);
	vp->freeze_tmcct = emu_apic_reg(l, APIC_TMCCT);
}

/* At freeze, between RUN_VPs: the LAPIC timer's current count. */
static void emu_time_vp_capture(struct emu_vp *vp)
{
	struct kvm_lapic_state l;

	vp->freeze_captured = true;
	vp->thaw_pending = false;
	vp->freeze_tmict = 0;
	if (vp->pt->lapic && emu_sys_ioctl(vp->vcpu_fd, KVM_GET_LAPIC, &l) == 0)
		emu_time_vp_take_timer(vp, &l);
}

/*
 * MSHV_SET_VP_STATE of the LAPIC while the freeze holds this VP's timer (VP
 * mutex held): the count set is the one the timer resumes from at thaw, as
 * on the hypervisor, where the whole partition's time stands still; the
 * count taken at freeze no longer applies.
 */
void emu_time_vp_lapic_set(struct emu_vp *vp, const struct kvm_lapic_state *l)
{
	if (vp->freeze_captured)
		emu_time_vp_take_timer(vp, l);
}

/* At thaw (or at the next RUN_VP): set the TSC and LAPIC timer back. */
static void emu_time_vp_restore(struct emu_vp *vp)
{
	struct kvm_lapic_state l;
	__u64 khz;

	vp->freeze_captured = false;
	vp->thaw_pending = false;
	if (__atomic_load_n(&emu_tsc_movable, __ATOMIC_RELAXED)) {
		khz = (__u64)emu_sys_ioctl(vp->vcpu_fd, KVM_GET_TSC_KHZ, NULL);
		if ((int64_t)khz > 0)
			emu_tsc_back(vp, vp->freeze_ns / 1000 * khz / 1000);
	}
	if (!vp->freeze_tmict || emu_sys_ioctl(vp->vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return;
	if (emu_apic_reg(&l, APIC_LVTT) != vp->freeze_lvtt ||
	    emu_apic_reg(&l, APIC_TMICT) != vp->freeze_tmict ||
	    (vp->freeze_lvtt & APIC_LVTT_MODE_MASK) == APIC_LVTT_TSC_DEADLINE)
		return;		/* reprogrammed meanwhile, or a TSC deadline: leave it */
	/* a one-shot timer that reached 0 has fired: re-arming it would fire twice */
	if (!(vp->freeze_lvtt & APIC_LVTT_MODE_MASK) && !emu_apic_reg(&l, APIC_TMCCT))
		return;
	memcpy(l.regs + APIC_TMCCT, &vp->freeze_tmcct, sizeof(vp->freeze_tmcct));
	emu_sys_ioctl(vp->vcpu_fd, KVM_SET_LAPIC, &l);
}

/*
 * RUN_VP start (VP mutex held): give back a thaw that came while this VP was
 * busy; a VP running while frozen lets its guest see time go on.
 */
void emu_time_vp_run(struct emu_vp *vp)
{
	struct emu_partition *pt = vp->pt;
	bool frozen;

	pthread_mutex_lock(&pt->time.lock);
	frozen = pt->time.frozen;
	if (frozen)
		pt->freeze.ran_while_frozen = true;
	pthread_mutex_unlock(&pt->time.lock);
	if (frozen) {
		vp->freeze_captured = false;
		return;
	}
	if (vp->thaw_pending && vp->freeze_captured)
		emu_time_vp_restore(vp);
}

/* Every VP not inside a VP ioctl now (never waits for a running one). */
static void emu_time_each_idle_vp(struct emu_partition *pt, bool freeze, uint64_t frozen_ns)
{
	for (size_t i = 0; i < pt->vps_end; i++) {
		struct emu_vp *vp = pt->vps[i];
		bool idle;

		if (!vp)
			continue;
		idle = pthread_mutex_trylock(&vp->lock) == 0;
		if (freeze) {
			vp->freeze_captured = false;
			if (idle)
				emu_time_vp_capture(vp);
		} else if (vp->freeze_captured) {
			vp->freeze_ns = frozen_ns;
			if (idle)
				emu_time_vp_restore(vp);
			else
				vp->thaw_pending = true;
		}
		if (idle)
			pthread_mutex_unlock(&vp->lock);
	}
}

/*
 * TIME_FREEZE 1/0 (partition mutex held). Freezing while frozen and thawing
 * while running change nothing. On thaw the counter resumes from the frozen
 * value (or the one REFERENCE_TIME set meanwhile), and KVM's clocks are set
 * back as the comment at the top says. Returns an HV status.
 */
uint16_t emu_time_freeze(struct emu_partition *pt, bool freeze)
{
	struct kvm_clock_data clock;
	bool changed = false, ran = false;
	uint64_t frozen_ns = 0;

	pthread_mutex_lock(&pt->time.lock);
	if (freeze && !pt->time.frozen) {
		pt->time.frozen_at = emu_time_reference_locked(pt);
		pt->time.frozen = true;
		pt->freeze.ran_while_frozen = false;
		pt->freeze.host_ns_at_freeze = emu_host_ns();
		changed = true;
	} else if (!freeze && pt->time.frozen) {
		pt->time.offset = emu_host_ticks() - pt->time.frozen_at;
		pt->time.frozen = false;
		ran = pt->freeze.ran_while_frozen;
		frozen_ns = emu_host_ns() - pt->freeze.host_ns_at_freeze;
		changed = true;
	}
	pthread_mutex_unlock(&pt->time.lock);
	if (!changed)
		return HV_STATUS_SUCCESS;
	if (freeze) {
		memset(&clock, 0, sizeof(clock));
		pt->freeze.clock_saved = emu_sys_ioctl(pt->vm_fd, KVM_GET_CLOCK, &clock) == 0;
		pt->freeze.kvmclock = clock.clock;
		emu_time_each_idle_vp(pt, true, 0);
		return HV_STATUS_SUCCESS;
	}
	if (ran) {
		for (size_t i = 0; i < pt->vps_end; i++)
			if (pt->vps[i])
				pt->vps[i]->freeze_captured = false;
		return HV_STATUS_SUCCESS;
	}
	if (pt->freeze.clock_saved) {
		memset(&clock, 0, sizeof(clock));
		clock.clock = pt->freeze.kvmclock;
		emu_sys_ioctl(pt->vm_fd, KVM_SET_CLOCK, &clock);
	}
	emu_time_each_idle_vp(pt, false, frozen_ns);
	return HV_STATUS_SUCCESS;
}

/* REFERENCE_TIME set: only while frozen, else HV_STATUS_INVALID_PARTITION_STATE. */
uint16_t emu_time_reference_set(struct emu_partition *pt, uint64_t ticks)
{
	uint16_t status = HV_STATUS_SUCCESS;

	pthread_mutex_lock(&pt->time.lock);
	if (pt->time.frozen)
		pt->time.frozen_at = ticks;
	else
		status = HV_STATUS_INVALID_PARTITION_STATE;
	pthread_mutex_unlock(&pt->time.lock);
	return status;
}
