/* SPDX-License-Identifier: MIT */
/*
 * Irqfd RESAMPLE and APIC EOI messages end to end (test_irq_resample.py).
 *
 *   irq_resample <libmshv_emu.so> <case> <guest image>
 *
 * A LAPIC partition runs the guest image (64 KiB at GPA 0, aliased below
 * 4 GiB for the reset vector). The guest enters 32-bit protected mode, fills
 * its IDT, software-enables its LAPIC, reports "ready" on port 0x10, then
 * loops with IF=1 reporting "idle" on port 0x11 (eax = interrupts taken).
 * Its handlers (vectors 0x50, 0x60, 0x70) drop the interrupt frame (no IRET
 * on this KVM), count the interrupt in ebx, STI, report on port 0x20
 * (eax = count, ecx = vector) and 0x21, write the LAPIC EOI register, report
 * on 0x22 and jump back to the idle loop. A vector the IDT does not expect
 * reports on 0x12.
 *
 * The handler sets IF again before its EOI, so whatever keeps a second
 * interrupt of the same vector out until the EOI is the LAPIC's own priority
 * rule (the vector is in service), as on the hypervisor's APIC.
 */
#include <signal.h>
#include <stdbool.h>

#include "irq_client.h"
#include "mshv_hvdefs.h"

#define MEM_SIZE 0x10000UL
#define PAGE 4096UL

#define PORT_READY 0x10
#define PORT_IDLE 0x11
#define PORT_BAD 0x12
#define PORT_HANDLER 0x20
#define PORT_BEFORE_EOI 0x21
#define PORT_AFTER_EOI 0x22

/* mshv_notify_acked_gsi matches a resampler by vector == GSI. */
#define RS_GSI 0x50
#define RS_VECTOR 0x50
/* A level route whose vector is no resampler's GSI. */
#define LV_GSI 7
#define LV_VECTOR 0x60
/* An edge route. */
#define ED_GSI 8
#define ED_VECTOR 0x70

#define MSI_ADDR 0xfee00000u		/* APIC 0, physical */
#define MSI_LEVEL (1u << 15)		/* data bit 15: level-triggered */

static const char *image;

static struct {
	int pt, vp;
	struct hv_vp_register_page *rp;
	uint8_t *mem;
} w;

static void setup(void)
{
	struct mshv_create_vp vp_arg = { .vp_index = 0 };
	struct sigaction sa;
	ssize_t n;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: a stuck RUN_VP returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	alarm(60);

	w.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w.mem == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	fd = open(image, O_RDONLY);
	CHECK(fd);
	n = read(fd, w.mem, MEM_SIZE);
	close(fd);
	if (n != (ssize_t)MEM_SIZE) {
		fprintf(stderr, "image: %zd bytes, want %lu\n", n, MEM_SIZE);
		exit(2);
	}
	w.pt = make_partition(PT_LAPIC);
	CHECK(set_mem(w.pt, 0, w.mem, MEM_SIZE));
	CHECK(set_mem(w.pt, (0x100000000UL - MEM_SIZE) / PAGE, w.mem, MEM_SIZE));
	w.vp = E.ioctl(w.pt, MSHV_CREATE_VP, &vp_arg);
	CHECK(w.vp);
	w.rp = E.mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w.vp,
		      MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (w.rp == MAP_FAILED) {
		perror("register page");
		exit(2);
	}
}

/* MSHV_SET_MSI_ROUTING: every route to APIC 0, fixed. */
static void set_routes(void)
{
	struct mshv_user_irq_table *t;

	t = calloc(1, sizeof(*t) + 3 * sizeof(t->entries[0]));
	t->nr = 3;
	t->entries[0] = (struct mshv_user_irq_entry){
		.gsi = RS_GSI, .address_lo = MSI_ADDR, .data = RS_VECTOR | MSI_LEVEL };
	t->entries[1] = (struct mshv_user_irq_entry){
		.gsi = LV_GSI, .address_lo = MSI_ADDR, .data = LV_VECTOR | MSI_LEVEL };
	t->entries[2] = (struct mshv_user_irq_entry){
		.gsi = ED_GSI, .address_lo = MSI_ADDR, .data = ED_VECTOR };
	CHECK(E.ioctl(w.pt, MSHV_SET_MSI_ROUTING, t));
	free(t);
}

static void run(struct hv_message *msg)
{
	memset(msg, 0, sizeof(*msg));
	if (E.ioctl(w.vp, MSHV_RUN_VP, msg) < 0) {
		fprintf(stderr, "RUN_VP: %s\n", strerror(errno));
		exit(1);
	}
}

static const struct hv_x64_io_port_intercept_message *io(const struct hv_message *msg)
{
	return (const void *)msg->payload;
}

/*
 * Run to the next port-IO intercept, which must be on `port`; complete the
 * OUT the mshv way (RIP past it, through the register page). Returns the
 * guest's eax. An APIC EOI message in between is a failure here.
 */
static uint32_t expect_out(uint16_t port, int line)
{
	const struct hv_x64_intercept_message_header *h;
	struct hv_message msg;

	run(&msg);
	if (msg.header.message_type != HVMSG_X64_IO_PORT_INTERCEPT) {
		fprintf(stderr, "line %d: want port %#x, got message %#x\n", line, port,
			msg.header.message_type);
		failures++;
		exit(1);
	}
	if (io(&msg)->port_number != port) {
		fprintf(stderr, "line %d: want port %#x, got port %#x (eax %#llx ecx %#llx)\n",
			line, port, io(&msg)->port_number, (unsigned long long)io(&msg)->rax,
			(unsigned long long)io(&msg)->rcx);
		failures++;
		exit(1);
	}
	h = &io(&msg)->header;
	w.rp->rip = h->rip + (h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK);
	w.rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
	/* the handler reports its vector in ecx */
	if (port == PORT_HANDLER)
		printf("handler vector=%#llx count=%llu\n", (unsigned long long)io(&msg)->rcx,
		       (unsigned long long)io(&msg)->rax);
	return (uint32_t)io(&msg)->rax;
}

#define OUT(port) expect_out((port), __LINE__)

/*
 * The LAPIC's in-service bit for `vector` (MSHV_GET_VP_STATE, LAPIC), read
 * while the guest's handler runs. Everything an EOI does (the resample, the
 * APIC EOI message, holding a second interrupt of the vector back) needs the
 * LAPIC to know the vector is in service. kvm_pvm, the KVM of the project's
 * machines, never sets ISR (delivery behaves like auto-EOI; the EOI write
 * finds no vector in service and KVM_EXIT_IOAPIC_EOI never comes, even in a
 * raw KVM program): there the case stops with exit code 3 after the checks
 * that do not depend on it.
 */
static void require_in_service(uint32_t vector)
{
	static struct hv_local_interrupt_controller_state l __attribute__((aligned(4096)));
	struct mshv_get_set_vp_state a = {
		.type = MSHV_VP_STATE_LAPIC, .buf_sz = 4096, .buf_ptr = (uint64_t)(uintptr_t)&l,
	};

	CHECK(E.ioctl(w.vp, MSHV_GET_VP_STATE, &a));
	if (l.apic_isr[vector / 32] & (1u << (vector % 32)))
		return;
	printf("host-lapic-no-isr: vector %#x delivered, ISR %#x, TMR %#x\n", vector,
	       l.apic_isr[vector / 32], l.apic_tmr[vector / 32]);
	fflush(stdout);
	exit(failures ? 1 : 3);
}

static int irqfd(int efd, uint32_t gsi, int resamplefd)
{
	struct mshv_user_irqfd a = {
		.fd = efd,
		.resamplefd = resamplefd,
		.gsi = gsi,
		.flags = resamplefd >= 0 ? 1u << MSHV_IRQFD_BIT_RESAMPLE : 0,
	};

	return E.ioctl(w.pt, MSHV_IRQFD, &a);
}

/* HvCallAssertVirtualInterrupt to APIC 0, fixed; level sets the control's level bit. */
static int assert_interrupt(uint32_t vector, bool level)
{
	struct hv_input_assert_virtual_interrupt in = {
		.control = HV_X64_INTERRUPT_TYPE_FIXED |
			   (level ? HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED : 0),
		.dest_addr = 0,
		.vector = vector,
	};
	struct mshv_root_hvcall call = {
		.code = HVCALL_ASSERT_VIRTUAL_INTERRUPT,
		.in_sz = sizeof(in),
		.in_ptr = (uint64_t)(uintptr_t)&in,
	};

	return E.ioctl(w.pt, MSHV_ROOT_HVCALL, &call);
}

/* Start the guest: it stops at "ready", then at its first idle report. */
static void boot(void)
{
	OUT(PORT_READY);
	EXPECT_EQ(0, OUT(PORT_IDLE));
}

/*
 * mshv_irqfd_assign (RESAMPLE, level route) + mshv_notify_acked_gsi +
 * mshv_irqfd_resampler_ack: the resamplefd is signalled by the guest's EOI
 * of vector == GSI, not before; the EOI message is consumed (never returned
 * by RUN_VP); a second irqfd signal while the first interrupt is in service
 * is delivered only after that EOI; a device that re-asserts after the
 * resample gets a new interrupt.
 */
static void resample(void)
{
	int efd, rfd, other;

	setup();
	set_routes();
	efd = new_eventfd();
	rfd = new_eventfd();
	EXPECT_ERR(0, irqfd(efd, RS_GSI, rfd));
	/* the level rule (step e) still holds for the edge route */
	other = new_eventfd();
	EXPECT_ERR(EINVAL, irqfd(other, ED_GSI, new_eventfd()));

	boot();
	EXPECT_EQ(0, eventfd_take(rfd));

	/* first assertion: the handler runs, nothing is resampled yet */
	eventfd_put(efd, 1);
	EXPECT_EQ(1, OUT(PORT_HANDLER));
	EXPECT_EQ(0, eventfd_take(efd));	/* consumed by the irqfd */
	EXPECT_EQ(0, eventfd_take(rfd));
	require_in_service(RS_VECTOR);
	/* the device asserts again while vector 0x50 is in service (IF is 1) */
	eventfd_put(efd, 1);
	EXPECT_EQ(1, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(0, eventfd_take(rfd));
	/*
	 * The EOI: resamplefd signalled, no APIC EOI message; the pending
	 * second interrupt is taken right after it, before the handler's
	 * "after EOI" report.
	 */
	EXPECT_EQ(2, OUT(PORT_HANDLER));
	EXPECT_EQ(1, eventfd_take(rfd));
	EXPECT_EQ(2, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(0, eventfd_take(rfd));
	EXPECT_EQ(2, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, eventfd_take(rfd));
	/* nothing else pending: the guest idles */
	EXPECT_EQ(2, OUT(PORT_IDLE));
	EXPECT_EQ(2, OUT(PORT_IDLE));
	EXPECT_EQ(0, eventfd_take(rfd));

	/* the VMM saw the resample and re-asserts: a third interrupt */
	eventfd_put(efd, 1);
	EXPECT_EQ(3, OUT(PORT_HANDLER));
	EXPECT_EQ(0, eventfd_take(rfd));
	EXPECT_EQ(3, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(3, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, eventfd_take(rfd));
	EXPECT_EQ(3, OUT(PORT_IDLE));

	/* deassigned: signals inject nothing and the EOI path has no resampler */
	EXPECT_ERR(0, E.ioctl(w.pt, MSHV_IRQFD, &(struct mshv_user_irqfd){
		.fd = efd, .gsi = RS_GSI, .flags = 1u << MSHV_IRQFD_BIT_DEASSIGN }));
	eventfd_put(efd, 1);
	EXPECT_EQ(3, OUT(PORT_IDLE));
	EXPECT_EQ(1, eventfd_take(efd));	/* nobody consumed it */
	EXPECT_EQ(0, eventfd_take(rfd));
	alarm(0);
}

/*
 * mshv_intercept_isr: an HVMSG_X64_APIC_EOI that no resampler claims (the
 * vector of a level route whose GSI is not the vector) wakes the VP's
 * RUN_VP like an intercept: vp_index and the EOI'd vector. The guest is past
 * its EOI write; the next RUN_VP simply goes on.
 */
static void eoi_message(void)
{
	const struct hv_x64_apic_eoi_message *eoi;
	struct hv_message msg;
	int efd, rfd;

	setup();
	set_routes();
	efd = new_eventfd();
	EXPECT_ERR(0, irqfd(efd, LV_GSI, -1));
	/* a resampler on another GSI does not claim vector 0x60 */
	rfd = new_eventfd();
	EXPECT_ERR(0, irqfd(new_eventfd(), RS_GSI, rfd));

	boot();
	eventfd_put(efd, 1);
	EXPECT_EQ(1, OUT(PORT_HANDLER));
	require_in_service(LV_VECTOR);
	EXPECT_EQ(1, OUT(PORT_BEFORE_EOI));
	run(&msg);
	eoi = (const void *)msg.payload;
	printf("eoi_message type=%#x vp=%u vector=%#x size=%u\n", msg.header.message_type,
	       eoi->vp_index, eoi->interrupt_vector, msg.header.payload_size);
	EXPECT_EQ(HVMSG_X64_APIC_EOI, msg.header.message_type);
	EXPECT_EQ(sizeof(*eoi), msg.header.payload_size);
	EXPECT_EQ(0, eoi->vp_index);
	EXPECT_EQ(LV_VECTOR, eoi->interrupt_vector);
	EXPECT_EQ(0, eventfd_take(rfd));
	/* no completion needed: the EOI write is done */
	EXPECT_EQ(1, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, OUT(PORT_IDLE));
	alarm(0);
}

/*
 * The hypervisor reports EOIs of level-triggered interrupts only (the TMR
 * bit of the vector). An edge route's EOI produces no message, and neither
 * does an edge-triggered assertion of a vector that a level route also uses
 * (HvCallAssertVirtualInterrupt without the level bit): no APIC EOI message,
 * no resample.
 */
static void edge_eoi_silent(void)
{
	int efd, rfd;

	setup();
	set_routes();
	efd = new_eventfd();
	EXPECT_ERR(0, irqfd(efd, ED_GSI, -1));
	rfd = new_eventfd();
	EXPECT_ERR(0, irqfd(new_eventfd(), RS_GSI, rfd));

	boot();
	/* edge route 0x70 */
	eventfd_put(efd, 1);
	EXPECT_EQ(1, OUT(PORT_HANDLER));
	require_in_service(ED_VECTOR);
	EXPECT_EQ(1, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(1, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, OUT(PORT_IDLE));
	/* vector 0x50 asserted edge-triggered: the level route's vector, yet no resample */
	if (assert_interrupt(RS_VECTOR, false) < 0) {
		fprintf(stderr, "ASSERT_VIRTUAL_INTERRUPT: %s\n", strerror(errno));
		exit(1);
	}
	EXPECT_EQ(2, OUT(PORT_HANDLER));
	EXPECT_EQ(2, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(2, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(0, eventfd_take(rfd));
	/* and the same vector level-triggered through the hypercall is resampled */
	if (assert_interrupt(RS_VECTOR, true) < 0) {
		fprintf(stderr, "ASSERT_VIRTUAL_INTERRUPT: %s\n", strerror(errno));
		exit(1);
	}
	EXPECT_EQ(3, OUT(PORT_HANDLER));
	EXPECT_EQ(3, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(0, eventfd_take(rfd));
	EXPECT_EQ(3, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, eventfd_take(rfd));
	EXPECT_EQ(3, OUT(PORT_IDLE));
	alarm(0);
}

/*
 * Routes set before the VP exists (and before the guest enables its APIC)
 * still make the EOI reach the resampler: the emulator must not depend on
 * the order of SET_MSI_ROUTING, CREATE_VP and the guest's APIC setup.
 */
static void routes_before_vp(void)
{
	struct mshv_create_vp vp_arg = { .vp_index = 0 };
	struct mshv_user_irq_table *t;
	int efd, rfd, fd;
	ssize_t n;

	alarm(60);
	w.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = open(image, O_RDONLY);
	CHECK(fd);
	n = read(fd, w.mem, MEM_SIZE);
	close(fd);
	if (n != (ssize_t)MEM_SIZE)
		exit(2);
	w.pt = make_partition(PT_LAPIC);
	t = calloc(1, sizeof(*t) + sizeof(t->entries[0]));
	t->nr = 1;
	t->entries[0] = (struct mshv_user_irq_entry){
		.gsi = RS_GSI, .address_lo = MSI_ADDR, .data = RS_VECTOR | MSI_LEVEL };
	CHECK(E.ioctl(w.pt, MSHV_SET_MSI_ROUTING, t));
	free(t);
	efd = new_eventfd();
	rfd = new_eventfd();
	EXPECT_ERR(0, irqfd(efd, RS_GSI, rfd));
	CHECK(set_mem(w.pt, 0, w.mem, MEM_SIZE));
	CHECK(set_mem(w.pt, (0x100000000UL - MEM_SIZE) / PAGE, w.mem, MEM_SIZE));
	w.vp = E.ioctl(w.pt, MSHV_CREATE_VP, &vp_arg);
	CHECK(w.vp);
	w.rp = E.mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w.vp,
		      MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (w.rp == MAP_FAILED)
		exit(2);

	boot();
	eventfd_put(efd, 1);
	EXPECT_EQ(1, OUT(PORT_HANDLER));
	require_in_service(RS_VECTOR);
	EXPECT_EQ(1, OUT(PORT_BEFORE_EOI));
	EXPECT_EQ(0, eventfd_take(rfd));
	EXPECT_EQ(1, OUT(PORT_AFTER_EOI));
	EXPECT_EQ(1, eventfd_take(rfd));
	alarm(0);
}

static const struct test_case cases[] = {
	CASE(resample),
	CASE(eoi_message),
	CASE(edge_eoi_silent),
	CASE(routes_before_vp),
};

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s <libmshv_emu.so> <case> <guest image>\n", argv[0]);
		return 2;
	}
	image = argv[3];
	return run_cases(3, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
