/* SPDX-License-Identifier: MIT */
/*
 * A /dev/mshv VMM for the synthetic-register, register-page and TIME_FREEZE
 * tests, run under LD_PRELOAD=libmshv_emu.so. Only libc, <linux/mshv.h>,
 * <linux/kvm.h> (the host probes) and mshv_hvdefs.h.
 *
 *   synthetic_client <case> [args...]
 *
 * Each case prints "key=value" lines that test_synthetic_*.py asserts.
 * Setup failures print "setup-failed: ..." and exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/mshv.h>
#include "mshv_hvdefs.h"

#define PAGE 4096UL
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))
#define PT_LAPIC (1ULL << MSHV_PT_BIT_LAPIC)
/* QEMU 11.1.3's SYNTHETIC_PROC_FEATURES (bits 0, 1, 3-11, 22, 25, 26) plus VP_RUNTIME (2) */
#define FEATURES_ALL 0x6400fffULL

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

static const char *ename(long ret, int err)
{
	return ret < 0 ? strerrorname_np(err) : "0";
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- hypercalls ------------------------------------------------------------------ */

#include "hvcall_client.h"

static struct hc get_reg(int fd, uint32_t vp, uint32_t name, union hv_register_value *v)
{
	struct {
		struct hv_input_get_vp_registers h;
		uint32_t name;
	} __attribute__((packed)) in;

	memset(&in, 0, sizeof(in));
	memset(v, 0, sizeof(*v));
	in.h.vp_index = vp;
	in.name = name;
	return hvcall(fd, HVCALL_GET_VP_REGISTERS, 1, &in, sizeof(in), v, sizeof(*v));
}

static struct hc set_reg(int fd, uint32_t vp, uint32_t name, union hv_register_value v)
{
	struct {
		struct hv_input_set_vp_registers h;
		struct hv_register_assoc a;
	} __attribute__((packed)) in;

	memset(&in, 0, sizeof(in));
	in.h.vp_index = vp;
	in.a.name = name;
	in.a.value = v;
	return hvcall(fd, HVCALL_SET_VP_REGISTERS, 1, &in, sizeof(in), NULL, 0);
}

static union hv_register_value v64(uint64_t x)
{
	union hv_register_value v;

	memset(&v, 0, sizeof(v));
	v.reg64 = x;
	return v;
}

static uint64_t get64(int fd, uint32_t vp, uint32_t name)
{
	union hv_register_value v;

	if (get_reg(fd, vp, name, &v).ret)
		die("get register");
	return v.reg64;
}

static void set64(int fd, uint32_t vp, uint32_t name, uint64_t x)
{
	struct hc r = set_reg(fd, vp, name, v64(x));

	if (r.ret) {
		printf("setup-failed: set register %#x = %#llx: status %#x\n", name,
		       (unsigned long long)x, r.status);
		exit(2);
	}
}

/* Print <key>.status (HV status, 0 = success) and <key>.value of a GET. */
static void show_get(const char *key, int fd, uint32_t vp, uint32_t name)
{
	union hv_register_value v;
	struct hc r = get_reg(fd, vp, name, &v);

	printf("%s.get=%#x\n", key, r.status);
	if (!r.ret)
		printf("%s.value=%#llx\n%s.high=%#llx\n", key, (unsigned long long)v.reg64, key,
		       (unsigned long long)v.reg128.high_part);
}

static void show_set(const char *key, int fd, uint32_t vp, uint32_t name, uint64_t x)
{
	struct hc r = set_reg(fd, vp, name, v64(x));

	printf("%s.set=%#x\n%s.set_errno=%s\n", key, r.status, key, ename(r.ret, r.err));
}

static struct hc property(int pt, bool set, uint32_t code, uint64_t *value)
{
	if (set) {
		struct hv_input_set_partition_property in = { .property_code = code,
							      .property_value = *value };

		return hvcall(pt, HVCALL_SET_PARTITION_PROPERTY, 0, &in, sizeof(in), NULL, 0);
	} else {
		struct hv_input_get_partition_property in = { .property_code = code };
		struct hv_output_get_partition_property out = { 0 };
		struct hc r = hvcall(pt, HVCALL_GET_PARTITION_PROPERTY, 0, &in, sizeof(in), &out,
				     sizeof(out));

		*value = out.property_value;
		return r;
	}
}

static void set_property(int pt, uint32_t code, uint64_t value)
{
	struct hc r = property(pt, true, code, &value);

	if (r.ret) {
		printf("setup-failed: property %#x = %#llx: status %#x\n", code,
		       (unsigned long long)value, r.status);
		exit(2);
	}
}

static uint64_t get_property(int pt, uint32_t code)
{
	uint64_t v = 0;

	if (property(pt, false, code, &v).ret)
		die("get property");
	return v;
}

static long vp_state(int vp, unsigned long req, uint8_t type, void *buf, uint32_t sz)
{
	struct mshv_get_set_vp_state s = { .type = type, .buf_sz = sz,
					   .buf_ptr = (uint64_t)(uintptr_t)buf };

	return ioctl(vp, req, &s);
}

/* ---- a partition ---------------------------------------------------------------- */

struct world {
	int dev, pt, vp[2];
	uint8_t *mem;
	size_t mem_size;
	struct hv_vp_register_page *rp;
};

/* SYNTHETIC_PROC_FEATURES = features before INITIALIZE; mem_size bytes of RAM at GPA 0. */
static void world_init(struct world *w, uint64_t pt_flags, uint64_t features, size_t mem_size,
		       int nvps)
{
	struct mshv_create_partition cp = { .pt_flags = pt_flags };

	memset(w, 0, sizeof(*w));
	w->dev = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	if (w->dev < 0)
		die("open /dev/mshv");
	w->pt = ioctl(w->dev, MSHV_CREATE_PARTITION, &cp);
	if (w->pt < 0)
		die("create partition");
	set_property(w->pt, HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES, features);
	if (ioctl(w->pt, MSHV_INITIALIZE_PARTITION))
		die("initialize");
	w->mem_size = mem_size;
	w->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w->mem == MAP_FAILED)
		die("guest memory");
	{
		struct mshv_user_mem_region r = { .size = mem_size, .guest_pfn = 0,
			.userspace_addr = (uint64_t)(uintptr_t)w->mem, .flags = RW };

		if (ioctl(w->pt, MSHV_SET_GUEST_MEMORY, &r))
			die("map guest memory");
	}
	for (int i = 0; i < nvps; i++) {
		struct mshv_create_vp cv = { .vp_index = (uint32_t)i };

		w->vp[i] = ioctl(w->pt, MSHV_CREATE_VP, &cv);
		if (w->vp[i] < 0)
			die("create vp");
	}
	w->rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w->vp[0],
		     MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (w->rp == MAP_FAILED)
		die("register page");
}

static void load_image(struct world *w, const char *path, size_t at)
{
	FILE *f = fopen(path, "rb");

	if (!f || fread(w->mem + at, 1, w->mem_size - at, f) == 0)
		die("guest image");
	fclose(f);
}

/* ---- regs: every synthetic register through the hypercalls ------------------------ */

struct named {
	const char *key;
	uint32_t name;
};

static const struct named synthetic[] = {
	{ "hypercall", HV_X64_REGISTER_HYPERCALL }, { "guest_os_id", HV_REGISTER_GUEST_OS_ID },
	{ "vp_index", HV_REGISTER_VP_INDEX }, { "time_ref_count", HV_REGISTER_TIME_REF_COUNT },
	{ "reference_tsc", HV_REGISTER_REFERENCE_TSC }, { "vp_runtime", HV_REGISTER_VP_RUNTIME },
	{ "vp_assist_page", HV_REGISTER_VP_ASSIST_PAGE }, { "scontrol", HV_REGISTER_SCONTROL },
	{ "sversion", HV_REGISTER_SVERSION }, { "siefp", HV_REGISTER_SIEFP },
	{ "simp", HV_REGISTER_SIMP }, { "eom", HV_REGISTER_EOM },
	{ "sint0", HV_REGISTER_SINT0 }, { "sint15", HV_REGISTER_SINT15 },
	{ "stimer0_config", HV_REGISTER_STIMER0_CONFIG },
	{ "stimer3_count", HV_REGISTER_STIMER3_COUNT },
	{ "pending_event0", HV_REGISTER_PENDING_EVENT0 },
	{ "pending_event1", HV_REGISTER_PENDING_EVENT1 },
	{ "deliverability", HV_REGISTER_DELIVERABILITY_NOTIFICATIONS },
	{ "activity", HV_REGISTER_INTERNAL_ACTIVITY_STATE },
	{ "hints", HV_REGISTER_INSTRUCTION_EMULATION_HINTS },
};

#define NSYNTH (sizeof(synthetic) / sizeof(synthetic[0]))

static void case_regs(void)
{
	struct world w, bare;
	char key[64];
	uint8_t *buf;
	union hv_register_value v;
	struct hc r;
	uint64_t t0, t1;

	world_init(&w, PT_LAPIC, FEATURES_ALL, 0x100000, 2);
	/* reset values, VP 0 and VP 1 */
	for (int vp = 0; vp < 2; vp++)
		for (size_t i = 0; i < NSYNTH; i++) {
			snprintf(key, sizeof(key), "reset%d.%s", vp, synthetic[i].key);
			show_get(key, w.vp[0], (uint32_t)vp, synthetic[i].name);
		}
	/* round trips (VP 0) */
	{
		static const struct { const char *key; uint32_t name; uint64_t value; } rt[] = {
			{ "guest_os_id", HV_REGISTER_GUEST_OS_ID, 0x8100000000000001ULL },
			{ "hypercall", HV_X64_REGISTER_HYPERCALL, 0x7000 | 1 },
			{ "reference_tsc", HV_REGISTER_REFERENCE_TSC, 0x8000 | 1 },
			{ "vp_assist_page", HV_REGISTER_VP_ASSIST_PAGE, 0x9000 | 1 },
			{ "scontrol", HV_REGISTER_SCONTROL, 1 },
			{ "siefp", HV_REGISTER_SIEFP, 0xa000 | 1 },
			{ "simp", HV_REGISTER_SIMP, 0xb000 | 1 },
			{ "sint2", HV_REGISTER_SINT2, 0x20051 },
			{ "sint3_low_vector_masked", HV_REGISTER_SINT3, 0x10005 },
			{ "stimer0_config", HV_REGISTER_STIMER0_CONFIG, 0x2000b },
			{ "stimer0_count", HV_REGISTER_STIMER0_COUNT, 10000000 },
			{ "stimer3_count", HV_REGISTER_STIMER3_COUNT, 12345 },
			{ "deliverability_sints", HV_REGISTER_DELIVERABILITY_NOTIFICATIONS,
			  0x0004000000000000ULL },
			{ "deliverability_zero", HV_REGISTER_DELIVERABILITY_NOTIFICATIONS, 0 },
			{ "pending_event0_zero", HV_REGISTER_PENDING_EVENT0, 0 },
			{ "hints_zero", HV_REGISTER_INSTRUCTION_EMULATION_HINTS, 0 },
			{ "eom", HV_REGISTER_EOM, 0 },
		};

		for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
			snprintf(key, sizeof(key), "rt.%s", rt[i].key);
			show_set(key, w.vp[0], 0, rt[i].name, rt[i].value);
			show_get(key, w.vp[0], 0, rt[i].name);
		}
	}
	/* partition-wide vs per VP, seen from VP 1 */
	show_get("vp1.hypercall", w.vp[1], 1, HV_X64_REGISTER_HYPERCALL);
	show_get("vp1.guest_os_id", w.vp[1], 1, HV_REGISTER_GUEST_OS_ID);
	show_get("vp1.reference_tsc", w.vp[1], 1, HV_REGISTER_REFERENCE_TSC);
	show_get("vp1.sint2", w.vp[1], 1, HV_REGISTER_SINT2);
	show_get("vp1.simp", w.vp[1], 1, HV_REGISTER_SIMP);
	show_get("vp1.stimer0_config", w.vp[1], 1, HV_REGISTER_STIMER0_CONFIG);
	/* read-only and refused values */
	show_set("ro.vp_index", w.vp[0], 0, HV_REGISTER_VP_INDEX, 5);
	show_set("ro.time_ref_count", w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT, 5);
	show_set("ro.vp_runtime", w.vp[0], 0, HV_REGISTER_VP_RUNTIME, 5);
	show_set("ro.sversion", w.vp[0], 0, HV_REGISTER_SVERSION, 2);
	show_set("bad.sint_reserved", w.vp[0], 0, HV_REGISTER_SINT4, 1ULL << 40);
	show_set("bad.deliverability_nmi", w.vp[0], 0, HV_REGISTER_DELIVERABILITY_NOTIFICATIONS,
		 1);
	show_set("bad.hints", w.vp[0], 0, HV_REGISTER_INSTRUCTION_EMULATION_HINTS, 1);
	show_get("after_bad.sint4", w.vp[0], 0, HV_REGISTER_SINT4);
	/* HvCallSetVpRegisters performs no side effects: HYPERCALL enable stays with GUEST_OS_ID 0 */
	set64(w.vp[0], 0, HV_REGISTER_GUEST_OS_ID, 0);
	show_get("no_side_effect.hypercall", w.vp[0], 0, HV_X64_REGISTER_HYPERCALL);
	/* time: TIME_REF_COUNT advances (100 ns units) and agrees with REFERENCE_TIME */
	t0 = get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT);
	sleep_ms(50);
	t1 = get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT);
	printf("time.t0=%llu\ntime.t1=%llu\n", (unsigned long long)t0, (unsigned long long)t1);
	printf("time.property=%llu\n",
	       (unsigned long long)get_property(w.pt, HV_PARTITION_PROPERTY_REFERENCE_TIME));
	printf("time.t2=%llu\n", (unsigned long long)get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT));
	/* STIMERs and VP state SYNTHETIC_TIMERS are one store */
	buf = aligned_alloc(PAGE, PAGE);
	memset(buf, 0, PAGE);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_SYNTHETIC_TIMERS, buf, PAGE))
		die("get timers");
	{
		struct hv_synthetic_timers_state *t = (void *)buf;

		printf("state.timer0_config=%#llx\nstate.timer0_count=%llu\n",
		       (unsigned long long)t->timers[0].config,
		       (unsigned long long)t->timers[0].count);
		t->timers[1].config = 0x3000b;
		t->timers[1].count = 777;
		if (vp_state(w.vp[0], MSHV_SET_VP_STATE, MSHV_VP_STATE_SYNTHETIC_TIMERS, buf, PAGE))
			die("set timers");
		show_get("state.stimer1_config", w.vp[0], 0, HV_REGISTER_STIMER1_CONFIG);
		show_get("state.stimer1_count", w.vp[0], 0, HV_REGISTER_STIMER1_COUNT);
	}
	/* SIMP overlay: enabled at 0xb000 above, so the page's contents are guest RAM there */
	memset(buf, 0x5a, PAGE);
	if (vp_state(w.vp[0], MSHV_SET_VP_STATE, MSHV_VP_STATE_SIMP, buf, PAGE))
		die("set simp");
	printf("simp.guest_byte=%#x\n", w.mem[0xb000 + 100]);
	w.mem[0xb000 + 7] = 0x77;
	memset(buf, 0, PAGE);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, buf, PAGE))
		die("get simp");
	printf("simp.state_byte7=%#x\nsimp.state_byte100=%#x\n", buf[7], buf[100]);
	/* disabled: the contents move back into the store, guest RAM is left alone */
	set64(w.vp[0], 0, HV_REGISTER_SIMP, 0);
	w.mem[0xb000 + 7] = 0x11;
	memset(buf, 0, PAGE);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_SIMP, buf, PAGE))
		die("get simp");
	printf("simp_off.state_byte7=%#x\n", buf[7]);
	/* PENDING_EVENT0: an exception event reads back and is the pending interruption */
	memset(&v, 0, sizeof(v));
	v.reg128.low_part = HV_X64_PENDING_EVENT_PENDING | HV_X64_PENDING_EVENT_DELIVER_ERROR_CODE |
			    (13ULL << HV_X64_PENDING_EVENT_VECTOR_SHIFT) |
			    (0x18ULL << HV_X64_PENDING_EVENT_ERROR_CODE_SHIFT);
	r = set_reg(w.vp[0], 0, HV_REGISTER_PENDING_EVENT0, v);
	printf("event.set=%#x\n", r.status);
	show_get("event", w.vp[0], 0, HV_REGISTER_PENDING_EVENT0);
	show_get("event.interruption", w.vp[0], 0, HV_REGISTER_PENDING_INTERRUPTION);
	v.reg128.low_part = HV_X64_PENDING_EVENT_PENDING | (1ULL << HV_X64_PENDING_EVENT_TYPE_SHIFT);
	r = set_reg(w.vp[0], 0, HV_REGISTER_PENDING_EVENT0, v);
	printf("event_memory_intercept.set=%#x\n", r.status);
	/* INTERMEDIATE_CRx are the CRs */
	set64(w.vp[0], 0, HV_X64_REGISTER_INTERMEDIATE_CR3, 0x5000);
	show_get("icr.cr3", w.vp[0], 0, HV_X64_REGISTER_CR3);
	set64(w.vp[0], 0, HV_X64_REGISTER_CR4, 0x20);
	show_get("icr.intermediate_cr4", w.vp[0], 0, HV_X64_REGISTER_INTERMEDIATE_CR4);
	show_get("icr.intermediate_cr0", w.vp[0], 0, HV_X64_REGISTER_INTERMEDIATE_CR0);
	show_get("icr.cr0", w.vp[0], 0, HV_X64_REGISTER_CR0);
	set64(w.vp[0], 0, HV_X64_REGISTER_INTERMEDIATE_CR8, 3);
	show_get("icr.cr8", w.vp[0], 0, HV_X64_REGISTER_CR8);

	/* gates: a partition that never enabled the synthetic features */
	world_init(&bare, PT_LAPIC, 0, 0x10000, 1);
	for (size_t i = 0; i < NSYNTH; i++) {
		snprintf(key, sizeof(key), "bare.%s", synthetic[i].key);
		show_get(key, bare.vp[0], 0, synthetic[i].name);
	}
	show_set("bare.set_hypercall", bare.vp[0], 0, HV_X64_REGISTER_HYPERCALL, 0);
	show_set("bare.set_sint0", bare.vp[0], 0, HV_REGISTER_SINT0, 0x10000);
	/* one bit at a time: only SynIC (4) */
	{
		struct world one;

		world_init(&one, PT_LAPIC, 1ULL << HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNIC_REGS_BIT,
			   0x10000, 1);
		show_get("synic_only.sint0", one.vp[0], 0, HV_REGISTER_SINT0);
		show_get("synic_only.stimer0_config", one.vp[0], 0, HV_REGISTER_STIMER0_CONFIG);
		show_get("synic_only.guest_os_id", one.vp[0], 0, HV_REGISTER_GUEST_OS_ID);
	}
	free(buf);
}

/* ---- regpage: the register page and the hypercalls, both directions -------------- */

static void case_regpage(int argc, char **argv)
{
	struct world w;
	struct mshv_run_vp run;
	struct hv_message *m = (void *)run.msg_buf;
	union hv_register_value v;

	if (argc < 1)
		die("regpage <image>");
	world_init(&w, 0, FEATURES_ALL, 0x10000, 1);
	printf("fresh.version=%u\nfresh.isvalid=%u\nfresh.dirty=%u\n", w.rp->version,
	       w.rp->isvalid, w.rp->dirty);
	printf("fresh.rip=%#llx\nfresh.cs_selector=%#x\nfresh.cs_base=%#llx\nfresh.cr0=%#llx\n",
	       (unsigned long long)w.rp->rip, w.rp->cs.selector,
	       (unsigned long long)w.rp->cs.base, (unsigned long long)w.rp->cr0);
	/* hypercall -> page */
	set64(w.vp[0], 0, HV_X64_REGISTER_RAX, 0x1234);
	memset(&v, 0, sizeof(v));
	v.segment = (struct hv_x64_segment_register){ .base = 0x20000, .limit = 0xffff,
						      .selector = 0x2000, .attributes = 0x9b };
	set_reg(w.vp[0], 0, HV_X64_REGISTER_DS, v);
	set64(w.vp[0], 0, HV_X64_REGISTER_CR0, 0x60000010);
	printf("h2p.rax=%#llx\nh2p.ds_selector=%#x\nh2p.ds_base=%#llx\nh2p.cr0=%#llx\n",
	       (unsigned long long)w.rp->rax, w.rp->ds.selector, (unsigned long long)w.rp->ds.base,
	       (unsigned long long)w.rp->cr0);
	/* page (dirty) -> hypercall, before the first run */
	w.rp->rbx = 0x5678;
	w.rp->es.selector = 0x3000;
	w.rp->es.base = 0x30000;
	w.rp->dirty |= (1U << HV_X64_REGISTER_CLASS_GENERAL) | (1U << HV_X64_REGISTER_CLASS_SEGMENT);
	printf("p2h.rbx=%#llx\n", (unsigned long long)get64(w.vp[0], 0, HV_X64_REGISTER_RBX));
	get_reg(w.vp[0], 0, HV_X64_REGISTER_ES, &v);
	printf("p2h.es_selector=%#x\np2h.es_base=%#llx\np2h.dirty_after=%u\n", v.segment.selector,
	       (unsigned long long)v.segment.base, w.rp->dirty);
	/* a page write without its dirty bit is not taken */
	w.rp->rcx = 0x9999;
	printf("clean.rcx=%#llx\n", (unsigned long long)get64(w.vp[0], 0, HV_X64_REGISTER_RCX));

	/* the guest: real mode at 0:0x1000 (`out %al, $0x10; hlt`) */
	load_image(&w, argv[0], 0x1000);
	memset(&v, 0, sizeof(v));
	v.segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffff, .selector = 0,
						      .attributes = 0x9b };
	set_reg(w.vp[0], 0, HV_X64_REGISTER_CS, v);
	v.segment.attributes = 0x93;
	set_reg(w.vp[0], 0, HV_X64_REGISTER_DS, v);
	set_reg(w.vp[0], 0, HV_X64_REGISTER_ES, v);
	set64(w.vp[0], 0, HV_X64_REGISTER_CR0, 0x60000010);
	set64(w.vp[0], 0, HV_X64_REGISTER_RIP, 0x1000);
	set64(w.vp[0], 0, HV_X64_REGISTER_RAX, 0x42);
	if (ioctl(w.vp[0], MSHV_RUN_VP, &run))
		die("run");
	printf("run.type=%#x\nrun.isvalid=%u\nrun.rax=%#llx\n", m->header.message_type,
	       w.rp->isvalid, (unsigned long long)w.rp->rax);
	/* after the run, both directions again */
	w.rp->rdx = 0xabcd;
	w.rp->dirty |= 1U << HV_X64_REGISTER_CLASS_GENERAL;
	printf("after.p2h.rdx=%#llx\n", (unsigned long long)get64(w.vp[0], 0, HV_X64_REGISTER_RDX));
	set64(w.vp[0], 0, HV_X64_REGISTER_RSI, 0x4321);
	printf("after.h2p.rsi=%#llx\n", (unsigned long long)w.rp->rsi);
}

/* ---- guest_msr: guest RDMSR/WRMSR, checked against the hypercall view ------------ */

/*
 * guest_msr <image> <mode 32|64> <features> <msr_action> <intercept 0|1> [name=value...]
 * The image goes at 0x10000 (its #GP handler at 0x10800). GDT at 0x6000, IDT
 * at 0x5000, page tables at 0x1000-0x3fff (64-bit), stack below 0x80000. The
 * VMM first sets each name=value (hex register code) by hypercall, then runs
 * the guest: OUT to 0xE0 reports one access (EAX, EDX, EDI = 1 after a #GP),
 * HLT ends it. MSR intercepts are printed and completed with EAX 0xABC.
 */
static void case_guest_msr(int argc, char **argv)
{
	struct world w;
	int mode, ops = 0;
	uint64_t features, action;
	bool intercept;
	uint64_t *gdt, handler = 0x10800;
	union hv_register_value v;

	if (argc < 5)
		die("guest_msr <image> <mode> <features> <action> <intercept> [name=value...]");
	mode = atoi(argv[1]);
	features = strtoull(argv[2], NULL, 0);
	action = strtoull(argv[3], NULL, 0);
	intercept = atoi(argv[4]);
	world_init(&w, 0, features, 0x200000, 1);
	load_image(&w, argv[0], 0x10000);
	set_property(w.pt, HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION, action);
	if (intercept) {
		struct hv_input_install_intercept in;
		struct hc r;

		memset(&in, 0, sizeof(in));
		in.access_type = HV_INTERCEPT_ACCESS_MASK_READ | HV_INTERCEPT_ACCESS_MASK_WRITE;
		in.intercept_type = HV_INTERCEPT_TYPE_X64_MSR;
		r = hvcall(w.pt, HVCALL_INSTALL_INTERCEPT, 0, &in, sizeof(in), NULL, 0);
		if (r.ret)
			die("install msr intercept");
	}
	for (int i = 5; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			die("name=value");
		set64(w.vp[0], 0, (uint32_t)strtoul(argv[i], NULL, 0), strtoull(eq + 1, NULL, 0));
	}
	gdt = (void *)(w.mem + 0x6000);
	gdt[1] = mode == 64 ? 0x00af9b000000ffffULL : 0x00cf9b000000ffffULL;
	gdt[2] = 0x00cf93000000ffffULL;
	if (mode == 64) {
		uint64_t *pml4 = (void *)(w.mem + 0x1000), *pdpt = (void *)(w.mem + 0x2000);
		uint64_t *pd = (void *)(w.mem + 0x3000);
		uint32_t *gate = (void *)(w.mem + 0x5000 + 13 * 16);

		pml4[0] = 0x2000 | 3;
		pdpt[0] = 0x3000 | 3;
		pd[0] = 0x83;
		gate[0] = (uint32_t)(0x8 << 16) | (handler & 0xffff);
		gate[1] = (uint32_t)(handler & 0xffff0000) | 0x8e00;
		gate[2] = (uint32_t)(handler >> 32);
		gate[3] = 0;
		/* KVM checks CR0/CR4/EFER as one set: one batch */
		struct {
			struct hv_input_set_vp_registers h;
			struct hv_register_assoc a[4];
		} __attribute__((packed)) in;
		static const uint32_t names[] = { HV_X64_REGISTER_CR3, HV_X64_REGISTER_CR4,
						  HV_X64_REGISTER_EFER, HV_X64_REGISTER_CR0 };
		static const uint64_t values[] = { 0x1000, 0x20, 0x500, 0x80000011 };

		memset(&in, 0, sizeof(in));
		for (int i = 0; i < 4; i++) {
			in.a[i].name = names[i];
			in.a[i].value = v64(values[i]);
		}
		if (hvcall(w.vp[0], HVCALL_SET_VP_REGISTERS, 4, &in, sizeof(in), NULL, 0).ret)
			die("long mode registers");
	} else {
		uint32_t *gate = (void *)(w.mem + 0x5000 + 13 * 8);

		gate[0] = (uint32_t)(0x8 << 16) | (handler & 0xffff);
		gate[1] = (uint32_t)(handler & 0xffff0000) | 0x8e00;
		set64(w.vp[0], 0, HV_X64_REGISTER_CR0, 0x11);
	}
	memset(&v, 0, sizeof(v));
	v.table.base = 0x6000;
	v.table.limit = 3 * 8 - 1;
	set_reg(w.vp[0], 0, HV_X64_REGISTER_GDTR, v);
	v.table.base = 0x5000;
	v.table.limit = mode == 64 ? 256 * 16 - 1 : 256 * 8 - 1;
	set_reg(w.vp[0], 0, HV_X64_REGISTER_IDTR, v);
	memset(&v, 0, sizeof(v));
	v.segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffffffff,
		.selector = 8, .attributes = mode == 64 ? 0xa09b : 0xc09b };
	set_reg(w.vp[0], 0, HV_X64_REGISTER_CS, v);
	v.segment.selector = 0x10;
	v.segment.attributes = 0xc093;
	set_reg(w.vp[0], 0, HV_X64_REGISTER_DS, v);
	set_reg(w.vp[0], 0, HV_X64_REGISTER_ES, v);
	set_reg(w.vp[0], 0, HV_X64_REGISTER_SS, v);
	set64(w.vp[0], 0, HV_X64_REGISTER_RIP, 0x10000);
	set64(w.vp[0], 0, HV_X64_REGISTER_RSP, 0x80000);
	set64(w.vp[0], 0, HV_X64_REGISTER_RFLAGS, 2);

	for (int exits = 0; exits < 200; exits++) {
		struct mshv_run_vp run;
		struct hv_message *m = (void *)run.msg_buf;
		struct hv_x64_intercept_message_header *h = (void *)m->payload;
		uint8_t len;

		if (ioctl(w.vp[0], MSHV_RUN_VP, &run)) {
			printf("run.errno=%s\n", strerrorname_np(errno));
			return;
		}
		len = h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;
		if (m->header.message_type == HVMSG_X64_IO_PORT_INTERCEPT) {
			printf("op%d.rip=%#llx\n", ops, (unsigned long long)h->rip);
			printf("op%d.eax=%#llx\nop%d.edx=%#llx\nop%d.fault=%llu\n", ops,
			       (unsigned long long)(get64(w.vp[0], 0, HV_X64_REGISTER_RAX) &
						    0xffffffff), ops,
			       (unsigned long long)(get64(w.vp[0], 0, HV_X64_REGISTER_RDX) &
						    0xffffffff), ops,
			       (unsigned long long)get64(w.vp[0], 0, HV_X64_REGISTER_RDI));
			ops++;
			set64(w.vp[0], 0, HV_X64_REGISTER_RIP, h->rip + len);
		} else if (m->header.message_type == HVMSG_X64_MSR_INTERCEPT) {
			struct hv_x64_msr_intercept_message *mi = (void *)m->payload;

			printf("intercept%d.msr=%#x\nintercept%d.access=%u\n", ops, mi->msr_number,
			       ops, h->intercept_access_type);
			if (h->intercept_access_type == HV_INTERCEPT_ACCESS_READ) {
				set64(w.vp[0], 0, HV_X64_REGISTER_RAX, 0xabc);
				set64(w.vp[0], 0, HV_X64_REGISTER_RDX, 0);
			}
			set64(w.vp[0], 0, HV_X64_REGISTER_RIP, h->rip + len);
		} else {
			printf("end.type=%#x\nend.rip=%#llx\n", m->header.message_type,
			       (unsigned long long)h->rip);
			break;
		}
	}
	printf("ops=%d\n", ops);
	for (size_t i = 0; i < NSYNTH; i++) {
		char key[64];

		snprintf(key, sizeof(key), "after.%s", synthetic[i].key);
		show_get(key, w.vp[0], 0, synthetic[i].name);
	}
	show_get("after.sint1", w.vp[0], 0, HV_REGISTER_SINT1);
	show_get("after.stimer0_count", w.vp[0], 0, HV_REGISTER_STIMER0_COUNT);
	show_get("after.stimer1_config", w.vp[0], 0, HV_REGISTER_STIMER1_CONFIG);
	printf("after.reftsc_page_sequence=%#x\n", *(uint32_t *)(w.mem + 0x9000));
}

/* ---- freeze: TIME_FREEZE stops the reference time ----------------------------- */

static void case_freeze(void)
{
	struct world w;
	uint64_t a, b, c, d, e, f;

	world_init(&w, PT_LAPIC, FEATURES_ALL, 0x10000, 1);
	sleep_ms(20);
	set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 1);
	printf("frozen_property=%llu\n",
	       (unsigned long long)get_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE));
	a = get_property(w.pt, HV_PARTITION_PROPERTY_REFERENCE_TIME);
	b = get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT);
	sleep_ms(200);
	c = get_property(w.pt, HV_PARTITION_PROPERTY_REFERENCE_TIME);
	d = get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT);
	set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 0);
	sleep_ms(100);
	e = get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT);
	f = get_property(w.pt, HV_PARTITION_PROPERTY_REFERENCE_TIME);
	printf("frozen.property0=%llu\nfrozen.register0=%llu\nfrozen.property1=%llu\n"
	       "frozen.register1=%llu\nthawed.register=%llu\nthawed.property=%llu\n",
	       (unsigned long long)a, (unsigned long long)b, (unsigned long long)c,
	       (unsigned long long)d, (unsigned long long)e, (unsigned long long)f);
	/* REFERENCE_TIME: set only while frozen */
	{
		uint64_t x = 123456789;
		struct hc r = property(w.pt, true, HV_PARTITION_PROPERTY_REFERENCE_TIME, &x);

		printf("set_running.status=%#x\n", r.status);
		set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 1);
		r = property(w.pt, true, HV_PARTITION_PROPERTY_REFERENCE_TIME, &x);
		printf("set_frozen.status=%#x\nset_frozen.register=%llu\n", r.status,
		       (unsigned long long)get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT));
		set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 0);
		sleep_ms(10);
		printf("set_thawed.register=%llu\n",
		       (unsigned long long)get64(w.vp[0], 0, HV_REGISTER_TIME_REF_COUNT));
	}
}

/*
 * freeze_tsc <image>: the guest (real mode at 0:0x1000) reads the TSC, OUTs,
 * reads it again, OUTs. Between the two the VMM freezes time for 300 ms.
 */
static void case_freeze_tsc(int argc, char **argv)
{
	struct world w;
	uint64_t tsc[2];
	union hv_register_value v;

	if (argc < 1)
		die("freeze_tsc <image>");
	world_init(&w, 0, FEATURES_ALL, 0x10000, 1);
	load_image(&w, argv[0], 0x1000);
	memset(&v, 0, sizeof(v));
	v.segment = (struct hv_x64_segment_register){ .base = 0, .limit = 0xffff, .selector = 0,
						      .attributes = 0x9b };
	set_reg(w.vp[0], 0, HV_X64_REGISTER_CS, v);
	set64(w.vp[0], 0, HV_X64_REGISTER_RIP, 0x1000);
	for (int i = 0; i < 2; i++) {
		struct mshv_run_vp run;
		struct hv_message *m = (void *)run.msg_buf;
		struct hv_x64_intercept_message_header *h = (void *)m->payload;
		uint8_t len;

		if (ioctl(w.vp[0], MSHV_RUN_VP, &run) ||
		    m->header.message_type != HVMSG_X64_IO_PORT_INTERCEPT)
			die("run to the OUT");
		len = h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;
		tsc[i] = (get64(w.vp[0], 0, HV_X64_REGISTER_RAX) & 0xffffffff) |
			 (get64(w.vp[0], 0, HV_X64_REGISTER_RDX) << 32);
		set64(w.vp[0], 0, HV_X64_REGISTER_RIP, h->rip + len);
		if (i == 0) {
			set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 1);
			sleep_ms(300);
			set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 0);
		}
	}
	printf("tsc.delta=%llu\n", (unsigned long long)(tsc[1] - tsc[0]));
	{
		/* the host's TSC rate (the guest's runs at it): ticks in 50 ms */
		uint64_t h0 = __builtin_ia32_rdtsc(), h1;

		sleep_ms(50);
		h1 = __builtin_ia32_rdtsc();
		printf("tsc.per_ms=%llu\n", (unsigned long long)((h1 - h0) / 50));
	}
}

/*
 * freeze_lapic: a masked one-shot LAPIC timer counting down; its current
 * count before a 300 ms freeze and after the thaw. Also the probe: does this
 * KVM take a current count written with KVM_SET_LAPIC (SET_VP_STATE LAPIC)?
 */
static void case_freeze_lapic(void)
{
	struct world w;
	struct hv_local_interrupt_controller_state *l;
	uint8_t *buf = aligned_alloc(PAGE, PAGE);
	uint32_t c0, c1, c2;

	world_init(&w, PT_LAPIC, FEATURES_ALL, 0x10000, 1);
	l = (void *)buf;
	memset(buf, 0, PAGE);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE))
		die("get lapic");
	l->apic_spurious = 0x1ff;			/* APIC software-enabled */
	l->apic_lvt_timer = 0x10000 | 0x40;		/* masked, one-shot, vector 0x40 */
	l->apic_divide_configuration = 0xb;		/* divide by 1 */
	l->apic_initial_count = 0xffffffff;
	l->apic_counter_value = 0xffffffff;	/* KVM starts the timer from TMCCT */
	if (vp_state(w.vp[0], MSHV_SET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE))
		die("set lapic");
	sleep_ms(10);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE))
		die("get lapic");
	c0 = l->apic_counter_value;
	set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 1);
	sleep_ms(300);
	set_property(w.pt, HV_PARTITION_PROPERTY_TIME_FREEZE, 0);
	if (vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE))
		die("get lapic");
	c1 = l->apic_counter_value;
	printf("lapic.before=%u\nlapic.after=%u\n", c0, c1);
	/* probe: write a current count far from the running one, read it back */
	l->apic_counter_value = 0x10000000;
	if (vp_state(w.vp[0], MSHV_SET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE) ||
	    vp_state(w.vp[0], MSHV_GET_VP_STATE, MSHV_VP_STATE_LAPIC, buf, PAGE))
		die("probe lapic");
	c2 = l->apic_counter_value;
	printf("probe.written=%u\nprobe.read=%u\n", 0x10000000, c2);
	free(buf);
}

/*
 * host_tsc_offset: the host KVM itself (no emulator): does a vCPU's guest TSC
 * move when KVM_VCPU_TSC_OFFSET or a host-initiated MSR_IA32_TSC write asks?
 */
static void case_host_tsc_offset(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, vcpu;
	struct kvm_device_attr attr = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;
	uint64_t offset, t0, t1;

	if (kvm < 0 || (vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0 ||
	    (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0)
		die("kvm");
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = 0x10;
	if (ioctl(vcpu, KVM_GET_MSRS, &m) != 1)
		die("read tsc");
	t0 = m.e.data;
	attr.addr = (uint64_t)(uintptr_t)&offset;
	if (ioctl(vcpu, KVM_GET_DEVICE_ATTR, &attr) == 0) {
		offset += 1ULL << 48;
		printf("offset.set=%d\n", ioctl(vcpu, KVM_SET_DEVICE_ATTR, &attr) == 0);
	} else {
		printf("offset.set=0\n");
	}
	if (ioctl(vcpu, KVM_GET_MSRS, &m) != 1)
		die("read tsc");
	t1 = m.e.data;
	printf("offset.took=%d\n", t1 >= t0 + (1ULL << 47));
	m.e.data = t1 + (1ULL << 48);
	ioctl(vcpu, KVM_SET_MSRS, &m);
	if (ioctl(vcpu, KVM_GET_MSRS, &m) != 1)
		die("read tsc");
	printf("msr.took=%d\n", m.e.data >= t1 + (1ULL << 47));
}

/*
 * qemu_puts: QEMU 11.1's register puts at boot in its own batches (target/i386/mshv
 * msr_env_map without the feature-dependent CET/XSS/SPEC_CTRL/TSC_ADJUST, then the
 * 27 MTRRs; then the event registers), set and read back on VP 0 and, without the
 * partition-wide three, on VP 1.
 */
static void case_qemu_puts(void)
{
	static const uint32_t msrs[] = {
		HV_X64_REGISTER_EFER, HV_X64_REGISTER_PAT, HV_X64_REGISTER_SYSENTER_CS,
		HV_X64_REGISTER_SYSENTER_ESP, HV_X64_REGISTER_SYSENTER_EIP, HV_X64_REGISTER_STAR,
		HV_X64_REGISTER_LSTAR, HV_X64_REGISTER_CSTAR, HV_X64_REGISTER_SFMASK,
		HV_X64_REGISTER_KERNEL_GS_BASE, HV_X64_REGISTER_TSC, HV_X64_REGISTER_TSC_AUX,
		HV_X64_REGISTER_HYPERCALL, HV_REGISTER_GUEST_OS_ID, HV_REGISTER_REFERENCE_TSC,
		HV_REGISTER_SCONTROL, HV_REGISTER_SIEFP, HV_REGISTER_SIMP,
		HV_X64_REGISTER_MSR_MTRR_DEF_TYPE,
	};
	static const uint32_t events[] = {
		HV_REGISTER_PENDING_INTERRUPTION, HV_REGISTER_INTERRUPT_STATE,
		HV_REGISTER_PENDING_EVENT0,
	};
	struct world w;

	/* QEMU 11.1.3's SYNTHETIC_PROC_FEATURES */
	world_init(&w, PT_LAPIC, 0x6400ffbULL, 0x10000, 2);
	for (int vp = 0; vp < 2; vp++) {
		struct {
			struct hv_input_set_vp_registers h;
			struct hv_register_assoc a[64];
		} __attribute__((packed)) in;
		struct {
			struct hv_input_get_vp_registers h;
			uint32_t names[64];
		} __attribute__((packed)) gin;
		union hv_register_value out[64];
		int n = 0;
		struct hc r;

		memset(&in, 0, sizeof(in));
		memset(&gin, 0, sizeof(gin));
		for (size_t i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
			if (vp && (msrs[i] == HV_X64_REGISTER_HYPERCALL ||
				   msrs[i] == HV_REGISTER_GUEST_OS_ID ||
				   msrs[i] == HV_REGISTER_REFERENCE_TSC))
				continue;
			in.a[n].name = msrs[i];
			n++;
		}
		for (int i = 0; i < 8; i++) {
			in.a[n++].name = HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0 + i;
		}
		for (int i = 0; i < 8; i++)
			in.a[n++].name = HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0 + i;
		for (int i = 0; i < 11; i++)
			in.a[n++].name = HV_X64_REGISTER_MSR_MTRR_FIX64K00000 + i;
		for (int i = 0; i < n; i++) {
			in.a[i].value = v64(0);
			if (in.a[i].name == HV_X64_REGISTER_PAT)
				in.a[i].value = v64(0x0007040600070406ULL);
			if (in.a[i].name == HV_X64_REGISTER_MSR_MTRR_DEF_TYPE)
				in.a[i].value = v64(0x806);
			gin.names[i] = in.a[i].name;
		}
		in.h.vp_index = (uint32_t)vp;
		gin.h.vp_index = (uint32_t)vp;
		r = hvcall(w.vp[vp], HVCALL_SET_VP_REGISTERS, (uint16_t)n, &in,
			   (uint16_t)(sizeof(in.h) + n * sizeof(in.a[0])), NULL, 0);
		printf("vp%d.msrs.count=%d\nvp%d.msrs.set=%#x\nvp%d.msrs.set_reps=%u\n", vp, n, vp,
		       r.status, vp, r.reps);
		r = hvcall(w.vp[vp], HVCALL_GET_VP_REGISTERS, (uint16_t)n, &gin,
			   (uint16_t)(sizeof(gin.h) + n * 4), out, (uint16_t)(n * sizeof(out[0])));
		printf("vp%d.msrs.get=%#x\nvp%d.msrs.get_reps=%u\n", vp, r.status, vp, r.reps);
		n = 0;
		memset(&in, 0, sizeof(in));
		for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
			in.a[n].name = events[i];
			in.a[n].value = v64(0);
			gin.names[n] = events[i];
			n++;
		}
		r = hvcall(w.vp[vp], HVCALL_SET_VP_REGISTERS, (uint16_t)n, &in,
			   (uint16_t)(sizeof(in.h) + n * sizeof(in.a[0])), NULL, 0);
		printf("vp%d.events.set=%#x\nvp%d.events.set_reps=%u\n", vp, r.status, vp, r.reps);
		r = hvcall(w.vp[vp], HVCALL_GET_VP_REGISTERS, (uint16_t)n, &gin,
			   (uint16_t)(sizeof(gin.h) + n * 4), out, (uint16_t)(n * sizeof(out[0])));
		printf("vp%d.events.get=%#x\nvp%d.events.get_reps=%u\n", vp, r.status, vp, r.reps);
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		die("usage: synthetic_client <case> [args]");
	if (!strcmp(argv[1], "regs"))
		case_regs();
	else if (!strcmp(argv[1], "regpage"))
		case_regpage(argc - 2, argv + 2);
	else if (!strcmp(argv[1], "guest_msr"))
		case_guest_msr(argc - 2, argv + 2);
	else if (!strcmp(argv[1], "freeze"))
		case_freeze();
	else if (!strcmp(argv[1], "freeze_tsc"))
		case_freeze_tsc(argc - 2, argv + 2);
	else if (!strcmp(argv[1], "freeze_lapic"))
		case_freeze_lapic();
	else if (!strcmp(argv[1], "qemu_puts"))
		case_qemu_puts();
	else if (!strcmp(argv[1], "host_tsc_offset"))
		case_host_tsc_offset();
	else
		die("unknown case");
	return 0;
}
