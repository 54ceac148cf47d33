/* SPDX-License-Identifier: MIT */
/*
 * Driver and hypervisor side: MSHV_RUN_VP (mshv_vp_ioctl_run_vp,
 * mshv_run_vp_with_hyp_scheduler), the KVM_RUN state machine. One KVM_RUN
 * loop per call, each KVM exit turned into the intercept message the
 * hypervisor would deliver (struct hv_message with the
 * hv_x64_*_intercept_message payloads of include/hyperv/hvhdk.h). Messages
 * are built by intercept.c; instruction lengths and bytes come from
 * x86decode.c and pagewalk.c.
 *
 * The one hard part is RIP. mshv stops the VP *at* the intercepted
 * instruction with nothing pending; the VMM completes the access and writes
 * RIP = rip + instruction_length itself. KVM instead (arch/x86/kvm/x86.c):
 *  - OUT: on some hosts (the paravirtual kvm_pvm) RIP is already past the
 *    OUT at the exit; mainline VMX/SVM leaves RIP at it and skips it in the
 *    next KVM_RUN (complete_fast_pio_out). We learn which on the first OUT (settle once,
 *    see whether RIP moved) and then skip the extra KVM_RUN if it never does.
 *  - IN, MMIO, RDMSR/WRMSR: RIP at the instruction with an access pending
 *    that the next KVM_RUN completes (writing RAX/the destination and moving
 *    RIP). We complete it at once with KVM_RUN immediate_exit=1 and zeroed
 *    data ("settle"), read the instruction length from how far RIP moved,
 *    then restore the registers to their values at the exit. From then on
 *    KVM holds exactly the mshv state: whatever the VMM writes (RAX, RIP,
 *    through the hypercall or the register page) is what counts, and a VMM
 *    that does not move RIP re-executes the instruction, as on mshv.
 *    Cost: one extra KVM_RUN that does not enter the guest, per IN/MMIO/MSR
 *    exit (the lazy alternative, settling only when the VMM leaves RIP alone,
 *    saves it but relies on KVM dropping a pending access when RIP changed,
 *    which the emulated-PIO path, complete_emulated_pio, does not promise).
 *    Two exceptions skip it: a plain IN (emu_exit_in) and a plain MOV load
 *    from MMIO, settled at the next RUN_VP only if the VMM's completion is
 *    not what KVM's pending one would write (emu_load_deferred).
 *  - MMIO writes: on some hosts done at the exit with RIP past the store. As
 *    for OUT, the first plain one-fragment write is settled to learn that;
 *    later ones are reported from the instruction found ending at RIP, with
 *    no settle: KVM's leftover completion of a write's last fragment
 *    (complete_emulated_mmio) returns at once and touches no register.
 *    String stores and multi-fragment writes are still settled.
 *  - String IO (INS/OUTS) runs through KVM's instruction emulator one
 *    element per exit (OUTS: registers already advanced for that element;
 *    INS: pending). We put RSI/RDI/RCX/RIP back to the instruction's start
 *    and report the whole instruction, which the VMM then emulates in full
 *    (as with mshv). INS side effect: the elements KVM completed while
 *    settling were written to guest memory as zeros, before the VMM writes
 *    the real data over them.
 * Register writes go to kvm_run->s.regs (KVM_CAP_SYNC_REGS) and are applied
 * by the next KVM_RUN, so the fast path costs no extra ioctl.
 */
#include <signal.h>

#include "emu.h"
#include "x86decode.h"

#define EMU_SYNC_ALL (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)
#define EMU_SETTLE_MAX 4096		/* KVM_RUNs to drain one string instruction */
#define X86_RFLAGS_TF (1ULL << 8)	/* single-step: KVM's completion would inject #DB */

/* vp->pending: what KVM still holds from the last exit */
enum emu_pending { EMU_PENDING_NONE, EMU_PENDING_IN, EMU_PENDING_MMIO_READ };

/* How this host's KVM leaves a non-string OUT: unknown, pending, or done at exit. */
enum { EMU_OUT_UNKNOWN, EMU_OUT_PENDING, EMU_OUT_DONE };
static atomic_int emu_out_mode = EMU_OUT_UNKNOWN;
/*
 * The same for a plain (non-string, one-fragment) MMIO write: EMU_OUT_DONE once a
 * settle showed it done at the exit; until then every write is settled.
 */
static atomic_int emu_mmio_write_mode = EMU_OUT_UNKNOWN;
/*
 * A plain MOV load from MMIO (emu_mmio_plain_load): EMU_OUT_DONE once the
 * first one, settled, showed KVM's completion to be exactly "destination
 * register = data, RIP past the instruction"; from then on the settle is
 * deferred (emu_load_deferred). EMU_OUT_PENDING: never deferred.
 */
static atomic_int emu_mmio_read_mode = EMU_OUT_UNKNOWN;

static int emu_kvm_run(struct emu_vp *vp)
{
	int ret;

	vp->run->kvm_valid_regs = EMU_SYNC_ALL;
	atomic_store(&vp->ran, true);
	ret = emu_sys_ioctl(vp->vcpu_fd, KVM_RUN, NULL);
	/* EINTR and EAGAIN leave through kvm_arch_vcpu_ioctl_run's out: (store_regs) */
	if (ret < 0 && errno != EINTR && errno != EAGAIN)
		vp->sync_valid = false;
	return ret;
}

/*
 * Complete what KVM has pending without running guest code: KVM_RUN with
 * immediate_exit runs complete_userspace_io and returns EINTR. An access
 * that needs userspace again (the next element of a string instruction)
 * returns 0 with a new exit: zero its data and go on. EINTR is the success
 * case even with a signal pending: kvm_arch_vcpu_ioctl_run calls
 * complete_userspace_io before it looks at immediate_exit or signals, and
 * the signal is kept for the next KVM_RUN (signals.c: pending while blocked,
 * or immediate_exit set again by emu_run_signals_rearm).
 */
static int emu_settle_now(struct emu_vp *vp)
{
	struct kvm_run *run = vp->run;

	for (int i = 0; i < EMU_SETTLE_MAX; i++) {
		if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN)
			memset((char *)run + run->io.data_offset, 0,
			       (size_t)run->io.size * run->io.count);
		else if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write)
			memset(run->mmio.data, 0, sizeof(run->mmio.data));
		else if (run->exit_reason == KVM_EXIT_X86_RDMSR ||
			 run->exit_reason == KVM_EXIT_X86_WRMSR) {
			run->msr.error = 0;
			if (run->exit_reason == KVM_EXIT_X86_RDMSR)
				run->msr.data = 0;
		}
		run->immediate_exit = 1;
		if (emu_kvm_run(vp) < 0) {
			emu_run_signals_rearm(run);	/* keeps errno */
			return errno == EINTR ? 0 : -1;
		}
		emu_run_signals_rearm(run);
		if (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO)
			break;
	}
	errno = EIO;
	return -1;
}

/*
 * Register access between RUN_VPs needs nothing settled: s.regs already
 * holds the mshv view, and the only access KVM may still hold (a deferred
 * IN or MMIO load) is resolved by the next RUN_VP (emu_settle_deferred).
 */
int emu_vp_settle(struct emu_vp *vp)
{
	return 0;
}

/* The VP's registers become `regs` at the next KVM_RUN (and now, for readers). */
static void emu_set_regs_lazy(struct emu_vp *vp, const struct kvm_regs *regs)
{
	vp->run->s.regs.regs = *regs;
	vp->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

/* Does the instruction at code[] match what KVM reported for this exit? */
static bool emu_io_matches(const struct kvm_run *run, const struct emu_io_insn *d)
{
	bool in = run->io.direction == KVM_EXIT_IO_IN;

	if (d->in != in || d->size != run->io.size)
		return false;
	if (d->imm_port && d->port != run->io.port)
		return false;
	return true;
}

/*
 * RIP is already past an IO instruction: find where it began. Try every
 * length 1..15 ending at rip and keep the shortest instruction that decodes
 * to the access KVM reported. A longer candidate differs only in leading
 * prefix-like bytes, and rip + length is the same for all, so a VMM that
 * advances RIP by the reported length lands on the right byte either way.
 */
static int emu_io_find_start(const struct kvm_run *run, const uint8_t *before, int nbefore,
			     uint64_t rip, int bits, struct emu_io_insn *d, uint64_t *start)
{
	for (int len = 1; len <= nbefore; len++) {
		if (emu_decode_io(before + nbefore - len, len, bits, d) == 0 && d->len == len &&
		    emu_io_matches(run, d)) {
			*start = (rip - (uint64_t)len) & emu_ip_mask(bits);
			return 0;
		}
	}
	return -1;
}

/*
 * The code around an IO exit, fetched once per exit (emu_code_fetch_around):
 * b[0..nb) are the bytes before rip (nb <= 15, fewer only where the bytes
 * before are not readable), b[nb..nb+na) the bytes from rip on.
 */
struct emu_code_window {
	uint8_t b[32];
	int nb, na;
};

static void emu_window_fetch(struct emu_vp *vp, uint64_t rip, int bits,
			     struct emu_code_window *w)
{
	struct emu_code_around c;

	emu_code_fetch_around(vp, rip, bits, &c);
	w->nb = c.nbefore;
	w->na = c.nat;
	memcpy(w->b, c.before + sizeof(c.before) - c.nbefore, (size_t)c.nbefore);
	memcpy(w->b + c.nbefore, c.at, (size_t)c.nat);
}

static void emu_io_message(struct emu_vp *vp, struct hv_message *msg, const struct kvm_regs *r,
			   uint64_t start, const struct emu_io_insn *d, const uint8_t *bytes,
			   int nbytes)
{
	struct hv_x64_io_port_intercept_message *io = (void *)msg->payload;
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	uint8_t info;

	emu_message_init(msg, HVMSG_X64_IO_PORT_INTERCEPT, sizeof(*io));
	emu_intercept_header(vp, &io->header,
			     d->in ? HV_INTERCEPT_ACCESS_READ : HV_INTERCEPT_ACCESS_WRITE,
			     (uint8_t)d->len);
	io->header.rip = start;
	io->header.rflags = r->rflags;
	io->port_number = vp->run->io.port;
	info = (uint8_t)((d->size << HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT) &
			 HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK);
	if (d->string)
		info |= HV_X64_IO_PORT_ACCESS_INFO_STRING_OP;
	if (d->rep)
		info |= HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX;
	io->access_info = info;
	io->rax = r->rax;
	if (nbytes > d->len)
		nbytes = d->len;
	if (nbytes > 0)
		memcpy(io->instruction_bytes, bytes, (size_t)nbytes);
	io->instruction_byte_count = (uint8_t)(nbytes > 0 ? nbytes : 0);
	emu_seg_to_hv(&sr->ds, &io->ds_segment);
	emu_seg_to_hv(&sr->es, &io->es_segment);
	io->rcx = r->rcx;
	io->rsi = r->rsi;
	io->rdi = r->rdi;
}

/* Fallback when no instruction could be decoded: a one-byte IN/OUT. */
static void emu_io_guess(const struct kvm_run *run, struct emu_io_insn *d)
{
	memset(d, 0, sizeof(*d));
	d->len = 1;
	d->size = run->io.size;
	d->full_size = run->io.size;
	d->addr_bits = 64;
	d->in = run->io.direction == KVM_EXIT_IO_IN;
}

/*
 * IN: pending on every host with RIP at the instruction, which is already
 * the mshv view. What the next KVM_RUN does with it depends on the host:
 * complete_fast_pio_in drops it once RIP moved (kvm_is_linear_rip), but
 * complete_emulated_pio (an IN KVM's emulator ran) writes RAX, RIP past the
 * IN and RFLAGS as at the exit whatever the VMM wrote. So the settle is
 * deferred to the next RUN_VP (emu_load_deferred) and skipped when the
 * VMM's completion is what either would write (saves a KVM_RUN, a large
 * share of the cost of an IN exit). INS is settled at once.
 */
static int emu_exit_in(struct emu_vp *vp, struct hv_message *msg, struct emu_io_insn *d,
		       bool decoded, int bits, const uint8_t *bytes, int nbytes)
{
	struct kvm_run *run = vp->run;
	struct kvm_run saved;
	struct kvm_regs r = run->s.regs.regs;

	if (!d->string) {
		vp->pending = EMU_PENDING_IN;
		vp->pending_rip = r.rip;
		vp->pending_regs = r;
		/* 0: KVM never completes it (under TF its completion would also inject #DB) */
		vp->pending_len = (uint8_t)(decoded && !(r.rflags & X86_RFLAGS_TF) ? d->len : 0);
		vp->pending_reg = 0;	/* RAX */
		vp->pending_size = (uint8_t)d->size;
		emu_io_message(vp, msg, &r, r.rip, d, bytes, nbytes);
		return 0;
	}
	saved = *run;
	if (emu_settle_now(vp) < 0)
		return -1;
	*run = saved;
	emu_set_regs_lazy(vp, &r);
	emu_io_message(vp, msg, &r, r.rip, d, bytes, nbytes);
	return 0;
}

/*
 * The value of a destination register of `size` bytes after a MOV load of
 * `data` into `old`: a 32-bit destination is zero-extended, 8 and 16 bits
 * keep the upper bytes (assign_register in arch/x86/kvm/emulate.c).
 */
static uint64_t emu_load_result(uint64_t old, uint64_t data, int size)
{
	switch (size) {
	case 1: return (old & ~0xffULL) | (data & 0xff);
	case 2: return (old & ~0xffffULL) | (data & 0xffff);
	case 4: return data & 0xffffffffULL;
	}
	return data;
}

/*
 * A deferred MMIO load or IN: the next KVM_RUN runs complete_emulated_mmio
 * (or complete_emulated_pio), which copies the data into the destination
 * register and writes RIP past the instruction and RFLAGS as they were at
 * the exit (x86_emulate_instruction after the emulator's writeback), whatever
 * the VMM wrote. So it may go ahead only when the VMM's completion is exactly
 * such a load: RIP past the instruction, RFLAGS and every other general
 * register as at the exit, segments and events untouched, and a destination
 * that some data gives; that data goes into run->mmio.data (the PIO data for
 * IN). Any other completion (a VMM that left RIP at the load, emulated it
 * differently or moved the VP elsewhere) is settled and then overwritten
 * with what the VMM wrote.
 */
static bool emu_load_deferred(struct emu_vp *vp)
{
	struct kvm_run *run = vp->run;
	struct kvm_regs now = run->s.regs.regs, exp = vp->pending_regs;
	int bits = emu_code_bits(&run->s.regs.sregs), size = vp->pending_size;
	uint64_t data;
	__u64 *dst;

	if (run->kvm_dirty_regs & (KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS))
		return false;
	if (now.rip != ((exp.rip + vp->pending_len) & emu_ip_mask(bits)) ||
	    now.rflags != exp.rflags)
		return false;
	data = *emu_gpr_ptr(&now, vp->pending_reg);
	dst = emu_gpr_ptr(&exp, vp->pending_reg);
	if (emu_load_result(*dst, data, size) != data)
		return false;
	*dst = data;
	exp.rip = now.rip;
	if (memcmp(&now, &exp, sizeof(now)) != 0)
		return false;
	if (vp->pending == EMU_PENDING_IN)
		memcpy((char *)run + run->io.data_offset, &data, (size_t)size);
	else
		memcpy(run->mmio.data, &data, sizeof(data));
	return true;
}

/* Before KVM_RUN: a deferred IN or MMIO load that KVM would complete differently is settled. */
static int emu_settle_deferred(struct emu_vp *vp)
{
	struct kvm_run *run = vp->run;
	struct kvm_regs want;
	int pending = vp->pending;

	if (pending == EMU_PENDING_NONE)
		return 0;
	if ((pending == EMU_PENDING_MMIO_READ || vp->pending_len) && emu_load_deferred(vp)) {
		vp->pending = EMU_PENDING_NONE;
		return 0;
	}
	vp->pending = EMU_PENDING_NONE;
	/* complete it with zeros, then put back what the VMM left: the IN runs again */
	want = run->s.regs.regs;
	if (emu_settle_now(vp) < 0)
		return -1;
	emu_set_regs_lazy(vp, &want);
	return 0;
}

/*
 * OUTS: KVM's emulator did one element at the exit and advanced RSI (and
 * RCX for REP); RIP moved past only if the instruction ended. Undo that.
 */
static void emu_exit_outs(struct emu_vp *vp, struct hv_message *msg,
			  const struct emu_io_insn *d, uint64_t start, const uint8_t *bytes,
			  int nbytes)
{
	struct kvm_regs r = vp->run->s.regs.regs;
	uint64_t amask = emu_ip_mask(d->addr_bits), step = (uint64_t)d->size;

	if (r.rflags & X86_RFLAGS_DF)
		r.rsi = (r.rsi & ~amask) | ((r.rsi + step) & amask);
	else
		r.rsi = (r.rsi & ~amask) | ((r.rsi - step) & amask);
	if (d->rep)
		r.rcx = (r.rcx & ~amask) | ((r.rcx + 1) & amask);
	r.rip = start;
	emu_set_regs_lazy(vp, &r);
	emu_io_message(vp, msg, &r, start, d, bytes, nbytes);
}

static int emu_exit_io(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	int bits = emu_code_bits(&run->s.regs.sregs);
	struct kvm_regs r = run->s.regs.regs;
	struct emu_code_window w;
	const uint8_t *at = NULL;
	struct emu_io_insn d;
	uint64_t start;
	bool have;

	emu_window_fetch(vp, r.rip, bits, &w);
	have = emu_decode_io(w.b + w.nb, w.na, bits, &d) == 0 && emu_io_matches(run, &d);
	if (run->io.direction == KVM_EXIT_IO_IN) {
		if (!have)
			emu_io_guess(run, &d);
		return emu_exit_in(vp, msg, &d, have, bits, w.b + w.nb, w.na);
	}
	/* a REP OUTS still in progress: RIP stays at it until RCX is 0 */
	if (have && d.string && d.rep && (r.rcx & emu_ip_mask(d.addr_bits)) != 0) {
		emu_exit_outs(vp, msg, &d, r.rip, w.b + w.nb, w.na);
		return 0;
	}
	if (atomic_load(&emu_out_mode) != EMU_OUT_DONE) {
		struct kvm_run saved = *run;

		if (emu_settle_now(vp) < 0)
			return -1;
		if (run->s.regs.regs.rip != r.rip) {
			/* mainline: the OUT was pending and RIP was at it */
			atomic_store(&emu_out_mode, EMU_OUT_PENDING);
			if (!have)
				emu_io_guess(&saved, &d);
			d.len = (int)((run->s.regs.regs.rip - r.rip) & emu_ip_mask(bits));
			*run = saved;
			emu_set_regs_lazy(vp, &r);
			emu_io_message(vp, msg, &r, r.rip, &d, w.b + w.nb, w.na);
			return 0;
		}
		*run = saved;
	}
	/* done at the exit: RIP is past the instruction, put it back at it */
	if (emu_io_find_start(run, w.b, w.nb, r.rip, bits, &d, &start) == 0) {
		at = w.b + w.nb - d.len;
	} else {
		emu_io_guess(run, &d);
		start = (r.rip - 1) & emu_ip_mask(bits);
	}
	if (d.string) {
		emu_exit_outs(vp, msg, &d, start, at, at ? d.len : 0);
		return 0;
	}
	atomic_store(&emu_out_mode, EMU_OUT_DONE);
	r.rip = start;
	emu_set_regs_lazy(vp, &r);
	emu_io_message(vp, msg, &r, start, &d, at, at ? d.len : 0);
	return 0;
}

/* KVM made one fragment of this access: at most 8 bytes, within one page (x86.c). */
static bool emu_mmio_one_fragment(uint64_t gpa, uint32_t len)
{
	return len <= 8 && (gpa & 4095) + len <= 4096;
}

/*
 * A plain MMIO write on a host that completes writes at the exit: find the
 * instruction that ended at RIP and report it without settling. KVM's
 * completion at the next KVM_RUN only closes the access (complete_emulated_mmio
 * returns at once after a write's last fragment, whatever RIP then is), so the
 * settling KVM_RUN (a vCPU ioctl, which costs far more than the decoding)
 * can be skipped. String stores, and writes not matched exactly by address
 * and size, take the settled path.
 */
static bool emu_mmio_plain_write_done(struct emu_vp *vp, struct kvm_regs *r, uint64_t gpa,
				      int bits, uint64_t *len, uint8_t insn[16], int *ninsn)
{
	const struct kvm_run *run = vp->run;
	struct kvm_regs probe = *r;
	struct emu_code_around c;
	bool exact = false;
	int n;

	if (!run->mmio.is_write || atomic_load(&emu_mmio_write_mode) != EMU_OUT_DONE ||
	    !emu_mmio_one_fragment(gpa, run->mmio.len))
		return false;
	emu_code_fetch_around(vp, r->rip, bits, &c);
	if (emu_mmio_string_undo(vp, &c, &probe, gpa, run->mmio.len, bits, false) != 0 ||
	    emu_mmio_string_undo(vp, &c, &probe, gpa, run->mmio.len, bits, true) != 0)
		return false;
	n = emu_mmio_write_start(vp, &c, r->rip, gpa, run->mmio.len, bits, &exact);
	if (n <= 0 || !exact)
		return false;
	*len = (uint64_t)n;
	r->rip = (r->rip - *len) & emu_ip_mask(bits);
	/* the message's instruction bytes, from the code already read, as emu_fetch_instruction */
	if (c.nat >= 16 - n) {
		memcpy(insn, c.before + 15 - n, (size_t)n);
		memcpy(insn + n, c.at, (size_t)(16 - n));
		*ninsn = 16;
	}
	return true;
}

/*
 * The first plain MOV load, settled with zero data: did KVM do exactly what
 * emu_load_deferred assumes (destination = 0 merged by size, RIP past
 * the decoded length, nothing else changed)? Then later loads are deferred.
 */
static void emu_mmio_load_learn(const struct kvm_regs *at, const struct kvm_regs *after,
				const struct emu_mmio_load *load, int bits)
{
	struct kvm_regs exp = *at;
	__u64 *dst = emu_gpr_ptr(&exp, load->reg);

	*dst = emu_load_result(*dst, 0, load->size);
	exp.rip = (at->rip + (uint64_t)load->len) & emu_ip_mask(bits);
	atomic_store(&emu_mmio_read_mode, memcmp(&exp, after, sizeof(exp)) == 0 ?
				       EMU_OUT_DONE : EMU_OUT_PENDING);
}

/*
 * UNMAPPED_GPA (no region) or GPA_INTERCEPT (a region refused the access);
 * 1 with a message, 0 when an ioeventfd consumed the write, -1 on error.
 */
static int emu_exit_mmio(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	struct kvm_run saved;	/* the exit, kept only when a settle is to overwrite it */
	bool settled = false;
	struct kvm_regs r = run->s.regs.regs;
	struct hv_x64_memory_intercept_message *m = (void *)msg->payload;
	uint64_t gpa = run->mmio.phys_addr, len = 0;
	struct emu_region *region;
	int bits = emu_code_bits(&run->s.regs.sregs);
	struct emu_mmio_load load;
	uint8_t insn[16];
	uint64_t fetched_rip = r.rip;
	int ninsn = -1;
	bool learn = false;

	if (run->mmio.is_write && run->mmio.len <= 8) {
		uint64_t data = 0;

		memcpy(&data, run->mmio.data, run->mmio.len);
		if (emu_ioeventfd_mmio_write(vp->pt, gpa, run->mmio.len, data)) {
			/* a doorbell: the write is consumed, the guest goes on (mshv_assign_ioeventfd) */
			if (emu_settle_now(vp) < 0)
				return -1;
			return 0;
		}
	}
	if (emu_mmio_plain_write_done(vp, &r, gpa, bits, &len, insn, &ninsn)) {
		fetched_rip = r.rip;
		goto report;	/* nothing to settle: see emu_mmio_plain_write_done */
	}
	if (!run->mmio.is_write && emu_mmio_one_fragment(gpa, run->mmio.len) &&
	    !(r.rflags & X86_RFLAGS_TF) &&
	    atomic_load(&emu_mmio_read_mode) != EMU_OUT_PENDING) {
		ninsn = emu_fetch_instruction(vp, r.rip, insn);
		if (emu_mmio_plain_load(vp, insn, ninsn, r.rip, gpa, run->mmio.len, bits,
					&load) == 0) {
			if (atomic_load(&emu_mmio_read_mode) == EMU_OUT_DONE) {
				/* settled by the next RUN_VP: emu_load_deferred */
				vp->pending = EMU_PENDING_MMIO_READ;
				vp->pending_regs = r;
				vp->pending_len = (uint8_t)load.len;
				vp->pending_reg = (uint8_t)load.reg;
				vp->pending_size = (uint8_t)load.size;
				len = (uint64_t)load.len;
				goto report;
			}
			learn = true;
		}
	}
	saved = *run;
	settled = true;
	if (emu_settle_now(vp) < 0)
		return -1;
	if (learn)
		emu_mmio_load_learn(&r, &run->s.regs.regs, &load, bits);
	if (run->s.regs.regs.rip != r.rip) {
		/* pending until now (reads, and writes on other hosts): RIP was at it */
		len = (run->s.regs.regs.rip - r.rip) & emu_ip_mask(bits);
	} else if (saved.mmio.is_write) {
		/* done at the exit (RIP past it unless a REP goes on): find the start */
		struct emu_code_around c;
		bool exact = false;
		int n;

		*run = saved;
		emu_code_fetch_around(vp, r.rip, bits, &c);
		n = emu_mmio_string_undo(vp, &c, &r, gpa, saved.mmio.len, bits, false);
		if (n == 0)
			n = emu_mmio_string_undo(vp, &c, &r, gpa, saved.mmio.len, bits, true);
		if (n > 0)
			len = (uint64_t)n;	/* r is at the element KVM did */
		else
			n = emu_mmio_write_start(vp, &c, r.rip, gpa, saved.mmio.len, bits, &exact);
		if (len == 0 && n > 0) {
			len = (uint64_t)n;
			r.rip = (r.rip - len) & emu_ip_mask(bits);
			if (exact && emu_mmio_one_fragment(gpa, saved.mmio.len))
				atomic_store(&emu_mmio_write_mode, EMU_OUT_DONE);
		}
	}
report:
	if (settled)
		*run = saved;
	emu_set_regs_lazy(vp, &r);

	region = emu_region_find(vp->pt, gpa >> 12);
	emu_message_init(msg, region ? HVMSG_GPA_INTERCEPT : HVMSG_UNMAPPED_GPA, sizeof(*m));
	emu_intercept_header(vp, &m->header,
			     run->mmio.is_write ? HV_INTERCEPT_ACCESS_WRITE :
						   HV_INTERCEPT_ACCESS_READ,
			     (uint8_t)(len > 15 ? 0 : len));
	m->cache_type = region && !region->mmio ? HV_CACHE_TYPE_WRITE_BACK :
						  HV_CACHE_TYPE_UNCACHED;
	/* KVM does not report the linear address: gva_valid stays 0 */
	m->memory_access_info = 0;
	m->guest_virtual_address = 0;
	m->guest_physical_address = gpa;
	if (ninsn < 0 || r.rip != fetched_rip)
		ninsn = emu_fetch_instruction(vp, r.rip, insn);
	m->instruction_byte_count = (uint8_t)ninsn;
	memcpy(m->instruction_bytes, insn, sizeof(m->instruction_bytes));
	return 1;
}

/* An MSR the VMM intercepts: HVMSG_X64_MSR_INTERCEPT, RIP at the RDMSR/WRMSR. */
static int emu_exit_msr_intercept(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	struct kvm_run saved = *run;
	struct kvm_regs r = run->s.regs.regs;
	struct hv_x64_msr_intercept_message *m = (void *)msg->payload;
	uint64_t len = 0;

	if (emu_settle_now(vp) < 0)
		return -1;
	if (run->s.regs.regs.rip != r.rip)
		len = run->s.regs.regs.rip - r.rip;
	*run = saved;
	emu_set_regs_lazy(vp, &r);
	emu_message_init(msg, HVMSG_X64_MSR_INTERCEPT, sizeof(*m));
	emu_intercept_header(vp, &m->header,
			     saved.exit_reason == KVM_EXIT_X86_WRMSR ? HV_INTERCEPT_ACCESS_WRITE :
								       HV_INTERCEPT_ACCESS_READ,
			     (uint8_t)(len > 15 ? 0 : len));
	m->msr_number = saved.msr.index;
	m->rax = r.rax;
	m->rdx = r.rdx;
	return 1;
}

/*
 * KVM_EXIT_X86_RDMSR/WRMSR: KVM sends out MSRs it does not implement and the
 * synthetic range (filtered away from KVM, synthetic.c emu_synthetic_msr_exits).
 * In the hypervisor's order: a synthetic MSR the partition's
 * SYNTHETIC_PROC_FEATURES grant is answered here; any other MSR becomes an
 * HVMSG_X64_MSR_INTERCEPT when the VMM installed an MSR intercept; else the
 * partition's UNIMPLEMENTED_MSR_ACTION decides: #GP (0) or ignore the write /
 * read zero (1). Answered accesses complete in the next KVM_RUN (KVM writes
 * EDX:EAX, moves RIP, or injects #GP for msr.error). 0 to run on, 1 with
 * *msg filled, -1 on error.
 */
static int emu_exit_msr(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	bool write = run->exit_reason == KVM_EXIT_X86_WRMSR;
	uint64_t data = write ? run->msr.data : 0;

	switch (emu_synthetic_msr(vp, run->msr.index, write, &data)) {
	case EMU_MSR_DONE:
		run->msr.error = 0;
		if (!write)
			run->msr.data = data;
		return 0;
	case EMU_MSR_FAULT:
		run->msr.error = 1;
		return 0;
	}
	if (vp->pt->intercepts.msr)
		return emu_exit_msr_intercept(vp, msg);
	if (emu_unimplemented_msr_action(vp->pt) ==
	    HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO) {
		run->msr.error = 0;
		if (!write)
			run->msr.data = 0;
	} else {
		run->msr.error = 1;
	}
	return 0;
}

static void emu_exit_debug(struct emu_vp *vp, struct hv_message *msg)
{
	const struct kvm_sync_regs *s = &vp->run->s.regs;
	const struct kvm_regs *r = &s->regs;
	struct hv_x64_exception_intercept_message *m = (void *)msg->payload;

	emu_message_init(msg, HVMSG_X64_EXCEPTION_INTERCEPT, sizeof(*m));
	emu_intercept_header(vp, &m->header, HV_INTERCEPT_ACCESS_EXECUTE, 0);
	m->exception_vector = (uint16_t)vp->run->debug.arch.exception;
	if (m->exception_vector == 3)
		m->exception_info = HV_X64_EXCEPTION_INFO_SOFTWARE_EXCEPTION;
	m->exception_parameter = vp->run->debug.arch.dr6;
	m->instruction_byte_count = (uint8_t)emu_fetch_instruction(vp, r->rip,
								   m->instruction_bytes);
	emu_seg_to_hv(&s->sregs.ds, &m->ds_segment);
	emu_seg_to_hv(&s->sregs.ss, &m->ss_segment);
	m->rax = r->rax; m->rcx = r->rcx; m->rdx = r->rdx; m->rbx = r->rbx;
	m->rsp = r->rsp; m->rbp = r->rbp; m->rsi = r->rsi; m->rdi = r->rdi;
	m->r8 = r->r8; m->r9 = r->r9; m->r10 = r->r10; m->r11 = r->r11;
	m->r12 = r->r12; m->r13 = r->r13; m->r14 = r->r14; m->r15 = r->r15;
}

/* Header-only messages (HALT, UNRECOVERABLE_EXCEPTION). */
static void emu_header_only(struct emu_vp *vp, struct hv_message *msg, uint32_t type,
			    uint8_t access, uint8_t len, uint64_t rip)
{
	struct hv_x64_intercept_message_header *h = (void *)msg->payload;

	emu_message_init(msg, type, sizeof(*h));
	emu_intercept_header(vp, h, access, len);
	h->rip = rip;
}

/*
 * An instruction fetch from a GPA no region maps. The hypervisor stops the VP
 * at the instruction with HVMSG_UNMAPPED_GPA, access type execute, and the
 * GPA fetched from. KVM has no memslot there and takes the fetch for MMIO
 * (kvm_mmu_page_fault -> x86_emulate_instruction); its instruction emulator
 * cannot fetch from MMIO either and gives up with KVM_EXIT_INTERNAL_ERROR
 * (KVM_INTERNAL_ERROR_EMULATION, handle_emulation_failure), with RIP still
 * at the instruction. So: an internal error whose CS:RIP lies in no region
 * is that fetch, and so is one whose instruction KVM could read only up to
 * the end of its page when the next page lies in no region. The same happens to a guest whose memory is unmapped under
 * it (a VMM tearing a partition down while a VP still runs). 1 with *msg
 * filled, 0 if RIP is in guest memory (a real emulation failure).
 */
static int emu_exit_fetch_unmapped(struct emu_vp *vp, struct hv_message *msg)
{
	struct hv_x64_memory_intercept_message *m = (void *)msg->payload;
	const struct kvm_regs *r = &vp->run->s.regs.regs;
	uint64_t linear, gpa;

	if (emu_code_gpa(vp, r->rip, &linear, &gpa) < 0)
		return 0;
	if (emu_region_find(vp->pt, gpa >> 12)) {
		/*
		 * An instruction that runs on into an unmapped page: KVM's
		 * emulator fetched the bytes up to the page end (it fetches no
		 * further unless decoding needs more) and reports exactly those.
		 */
		const struct kvm_run *run = vp->run;
		uint64_t left = EMU_PAGE_SIZE - (linear & (EMU_PAGE_SIZE - 1));

		if (left >= 15 || run->emulation_failure.suberror != KVM_INTERNAL_ERROR_EMULATION ||
		    !(run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) ||
		    run->emulation_failure.insn_size != left)
			return 0;
		if (emu_code_gpa(vp, r->rip + left, &linear, &gpa) < 0 ||
		    emu_region_find(vp->pt, gpa >> 12))
			return 0;
	}
	emu_message_init(msg, HVMSG_UNMAPPED_GPA, sizeof(*m));
	emu_intercept_header(vp, &m->header, HV_INTERCEPT_ACCESS_EXECUTE, 0);
	m->cache_type = HV_CACHE_TYPE_UNCACHED;
	m->memory_access_info = HV_X64_MEMORY_ACCESS_INFO_GVA_VALID;
	m->guest_virtual_address = linear;
	m->guest_physical_address = gpa;
	m->instruction_byte_count = 0;	/* nothing to fetch there */
	return 1;
}

/*
 * KVM_EXIT_IOAPIC_EOI with a split irqchip comes for every EOI of a vector in
 * ioapic_handled_vectors (kvm_ioapic_send_eoi does not look at TMR there),
 * and kvm_scan_ioapic_routes puts a vector there when any level-triggered
 * MSI route to this vCPU uses it. The hypervisor sends HVMSG_X64_APIC_EOI
 * only for the EOI of a level-triggered interrupt (WHvRunVpExitReasonX64ApicEoi:
 * "an APIC EOI of a level-triggered interrupt"), i.e. when the vector's TMR
 * bit is set; __apic_accept_irq sets or clears TMR at each acceptance and an
 * EOI leaves it alone. So an edge-triggered delivery of a vector that a level
 * route also uses is EOI'd silently. Costs one KVM_GET_LAPIC per EOI exit; if
 * it fails, the EOI counts as level-triggered (KVM's own view).
 * Unverified on the project's machines: kvm_pvm never sets ISR, so no EOI
 * exit happens there at all (test_irq_resample.py).
 */
static bool emu_eoi_level_triggered(struct emu_vp *vp, uint32_t vector)
{
	struct kvm_lapic_state l;
	uint32_t tmr;

	if (vector > 255 || emu_sys_ioctl(vp->vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return true;
	/* APIC_TMR: eight 32-bit registers at 0x180, 16 bytes apart */
	memcpy(&tmr, l.regs + 0x180 + 0x10 * (vector / 32), sizeof(tmr));
	return tmr & (1u << (vector % 32));
}

/*
 * One exit: 1 with *msg filled, 0 to run again, -1 on error.
 * HLT (partitions without LAPIC; with one, KVM's in-kernel LAPIC halts the
 * vCPU inside KVM_RUN, which matches the hypervisor blocking in RUN_VP):
 * KVM has already moved RIP past the HLT; like every other intercept the VP
 * is put back *at* the HLT (length 1), so a VMM that wants the guest to go
 * on advances RIP itself, and one that does not gets HALT again (a CPU with
 * no interrupt source stays halted). The hypervisor's exact choice is
 * unverified (no public source gives it). Triple fault and KVM emulation
 * failures (KVM_INTERNAL_ERROR_EMULATION: instructions the host's KVM cannot
 * emulate) both become UNRECOVERABLE_EXCEPTION: the VP cannot go on in
 * either case.
 */
static int emu_handle_exit(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	const struct kvm_regs *r = &run->s.regs.regs;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return emu_exit_io(vp, msg) < 0 ? -1 : 1;
	case KVM_EXIT_MMIO:
		return emu_exit_mmio(vp, msg);
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		return emu_exit_msr(vp, msg);
	case KVM_EXIT_HLT: {
		struct kvm_regs at = *r;

		if (vp->pt->lapic)
			return 0;
		at.rip = (at.rip - 1) & emu_ip_mask(emu_code_bits(&run->s.regs.sregs));
		emu_set_regs_lazy(vp, &at);
		emu_header_only(vp, msg, HVMSG_X64_HALT, HV_INTERCEPT_ACCESS_EXECUTE, 1, at.rip);
		return 1;
	}
	case KVM_EXIT_DEBUG:
		emu_exit_debug(vp, msg);
		return 1;
	case KVM_EXIT_IOAPIC_EOI: {
		struct hv_x64_apic_eoi_message *m = (void *)msg->payload;

		/* the hypervisor reports EOIs of level-triggered interrupts only */
		if (!emu_eoi_level_triggered(vp, run->eoi.vector))
			return 0;
		/* a resampler's GSI: consumed in the kernel (mshv_notify_acked_gsi) */
		if (emu_irq_eoi(vp->pt, run->eoi.vector))
			return 0;

		emu_message_init(msg, HVMSG_X64_APIC_EOI, sizeof(*m));
		m->vp_index = vp->index;
		m->interrupt_vector = run->eoi.vector;
		return 1;
	}
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		if (emu_exit_fetch_unmapped(vp, msg))
			return 1;
		/* fall through */
	case KVM_EXIT_SHUTDOWN:
	case KVM_EXIT_FAIL_ENTRY:
	case KVM_EXIT_SYSTEM_EVENT:
	default:
		emu_header_only(vp, msg, HVMSG_UNRECOVERABLE_EXCEPTION,
				HV_INTERCEPT_ACCESS_EXECUTE, 0, r->rip);
		return 1;
	}
}

/*
 * What hypercalls configured since this VP last ran: exception intercepts
 * (#DB/#BP through KVM guest debugging) and registered CPUID results.
 */
int emu_vp_prepare(struct emu_vp *vp)
{
	uint32_t bitmap = vp->pt->intercepts.exception_bitmap;

	if (vp->debug_applied != bitmap) {
		struct kvm_guest_debug dbg;

		memset(&dbg, 0, sizeof(dbg));
		if (bitmap & ((1U << 1) | (1U << 3))) {
			dbg.control = KVM_GUESTDBG_ENABLE;
			if (bitmap & (1U << 3))
				dbg.control |= KVM_GUESTDBG_USE_SW_BP;
			if (bitmap & (1U << 1))
				dbg.control |= KVM_GUESTDBG_USE_HW_BP;
		}
		if (emu_sys_ioctl(vp->vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
			return -1;
		vp->debug_applied = bitmap;
	}
	return emu_cpuid_results_apply(vp);
}

/*
 * XMM0-5, DR7 and XFEM cost three vCPU ioctls, each a large share of a
 * whole exit, to put on the register page. A port-IO intercept never
 * needs them, nor does a memory intercept by an instruction without SSE/AVX
 * operands; those pages keep the values of the last full fill (read the
 * registers with GET_VP_REGISTERS for current ones).
 */
static bool emu_regpage_needs_xstate(const struct hv_message *msg)
{
	const struct hv_x64_memory_intercept_message *m = (const void *)msg->payload;

	switch (msg->header.message_type) {
	case HVMSG_X64_IO_PORT_INTERCEPT:
		return false;
	case HVMSG_UNMAPPED_GPA:
	case HVMSG_GPA_INTERCEPT:
		return emu_insn_uses_xmm(m->instruction_bytes, m->instruction_byte_count);
	default:
		return true;
	}
}

/*
 * KVM_RUN failed with ENOSPC: the VM's shadow MMU is out of pages it may use.
 * With shadow paging (no TDP, e.g. kvm_pvm) KVM caps a VM's shadow pages at
 * n_max_mmu_pages, by default 2% of its memslot pages and at least
 * KVM_MIN_ALLOC_MMU_PAGES (64). make_mmu_pages_available zaps the oldest pages
 * to make room but never a root in use (root_count), and each vCPU pins its
 * current root and up to KVM_MMU_NUM_PREV_ROOTS cached ones (four pages each
 * for a PAE guest); when only pinned roots are left, loading a root or
 * handling a fault returns -ENOSPC before anything in the guest changed.
 * The hypervisor has no such cap (its second-level tables come from the
 * partition's deposited pool), so RUN_VP doubles the VM's cap
 * (KVM_GET_NR_MMU_PAGES, KVM_SET_NR_MMU_PAGES) and runs again; the vCPU
 * redoes the same entry or fault. KVM then keeps that cap (it no longer
 * follows the memslots' size), which only grows.
 * 0 when raised, -1 (errno ENOSPC) when the cap cannot grow further.
 */
#define EMU_MMU_PAGES_MAX (1UL << 22)	/* 16 GiB of shadow pages: give up beyond */

static int emu_mmu_pages_raise(struct emu_vp *vp)
{
	struct emu_partition *pt = vp->pt;
	unsigned long want = 128;
	int cur;

	cur = emu_sys_ioctl(pt->vm_fd, KVM_GET_NR_MMU_PAGES, NULL);
	if (cur > 0 && (unsigned long)cur * 2 > want)
		want = (unsigned long)cur * 2;
	if (cur > 0 && (unsigned long)cur >= EMU_MMU_PAGES_MAX)
		goto full;
	if (want > EMU_MMU_PAGES_MAX)
		want = EMU_MMU_PAGES_MAX;
	if (emu_sys_ioctl(pt->vm_fd, KVM_SET_NR_MMU_PAGES, (void *)want) < 0)
		goto full;
	return 0;
full:
	errno = ENOSPC;
	return -1;
}

/* mshv_run_vp_with_hyp_scheduler, with KVM_RUN as the dispatch. */
static int emu_run_vp_dispatch(struct emu_vp *vp, struct hv_message *msg)
{
	struct kvm_run *run = vp->run;
	int ret;

	if (emu_regs_sync(vp) < 0 || emu_vp_prepare(vp) < 0 || emu_run_signals_kvm_mask(vp) < 0)
		return -1;
	/* step 1: resume: INTERCEPT_SUSPEND = 0, then EXPLICIT_SUSPEND = 0 */
	vp->intercept_suspend = false;
	vp->explicit_suspend = false;
	if (emu_regpage_apply(vp) < 0 || emu_settle_deferred(vp) < 0)
		return -1;
	for (;;) {
		vp->run_thread = pthread_self();
		atomic_store(&vp->running, true);
		ret = emu_kvm_run(vp);
		atomic_store(&vp->running, false);
		/*
		 * An AP waiting for SIPI (KVM_MP_STATE_UNINITIALIZED or
		 * INIT_RECEIVED) sleeps inside KVM_RUN until INIT/SIPI come;
		 * when kvm_apic_accept_events has taken the SIPI and put it at
		 * the vector's CS:IP, KVM_RUN returns EAGAIN without running it
		 * (kvm_arch_vcpu_ioctl_run). The hypervisor just starts the VP
		 * and RUN_VP goes on: run again.
		 */
		if (ret < 0 && errno == EAGAIN)
			continue;
		if (ret < 0 && errno == ENOSPC && emu_mmu_pages_raise(vp) == 0)
			continue;
		if (ret < 0) {
			/*
			 * step 3: a signal with no intercept in flight: EINTR, the VP
			 * explicitly suspended and resumable by the next RUN_VP.
			 */
			if (errno == EINTR) {
				run->immediate_exit = 0;
				vp->explicit_suspend = true;
				errno = EINTR;
			}
			return -1;
		}
		ret = emu_handle_exit(vp, msg);
		if (ret < 0)
			return -1;
		if (ret > 0)
			break;
	}
	memcpy(vp->msg_page, msg, sizeof(*msg));
	emu_regpage_fill(vp, emu_regpage_needs_xstate(msg));
	return 0;
}

int emu_run_vp(struct emu_vp *vp, struct hv_message *msg)
{
	int ret;

	emu_run_signals_target(vp->run);	/* a signal from here on ends the run (signals.c) */
	ret = emu_run_vp_dispatch(vp, msg);
	emu_run_signals_untarget(vp->run);	/* keeps errno */
	return ret;
}
