/* SPDX-License-Identifier: MIT */
/*
 * End to end: a LAPIC partition runs the guest image argv[3] (built by
 * test_irq_guest.py: 64 KiB, entered at the reset vector) and the client
 * checks what the irq plumbing did:
 *
 *  - MMIO writes to ioeventfd addresses signal the eventfd and never reach
 *    RUN_VP (mshv_assign_ioeventfd: doorbells); a write that does not match
 *    the datamatch is an ordinary memory intercept;
 *  - an eventfd bound by MSHV_IRQFD to a GSI routed by MSHV_SET_MSI_ROUTING
 *    to APIC 0, vector 0x40, runs the guest's IDT handler, which reports on
 *    port 0x11 (mshv_irqfd_wakeup -> HvCallAssertVirtualInterrupt).
 *
 * Guest protocol: port 0x10 = ready for the interrupt, port 0x11 = the
 * handler ran (al = vector), port 0x12 = an unexpected vector.
 */
#include <signal.h>
#include <stdbool.h>

#include "irq_client.h"
#include "mshv_hvdefs.h"

#define MEM_SIZE 0x10000UL
#define PAGE 4096UL
#define VECTOR 0x40
#define GSI 5
#define IOEVENT_ANY 0xd0000000ULL
#define IOEVENT_DM 0xd0000010ULL

/* RUN_VP; EINTR (the alarm) means the guest never got where it should. */
static int run(int vp, struct hv_message *msg)
{
	memset(msg, 0, sizeof(*msg));
	if (E.ioctl(vp, MSHV_RUN_VP, msg) < 0) {
		fprintf(stderr, "RUN_VP: %s\n", strerror(errno));
		exit(1);
	}
	return 0;
}

/* Complete the intercepted instruction the way a VMM does: RIP past it. */
static void skip(struct hv_vp_register_page *rp, const struct hv_message *msg)
{
	const struct hv_x64_intercept_message_header *h = (const void *)msg->payload;
	unsigned len = h->instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK;

	rp->rip = h->rip + len;
	rp->dirty |= 1u << HV_X64_REGISTER_CLASS_IP;
}

static const struct hv_x64_io_port_intercept_message *io(const struct hv_message *msg)
{
	return (const void *)msg->payload;
}

/* HvCallAssertVirtualInterrupt through the passthrough: vector to APIC 0, fixed, edge */
static int assert_interrupt(int pt, uint32_t vector)
{
	struct hv_input_assert_virtual_interrupt in = {
		.control = HV_X64_INTERRUPT_TYPE_FIXED,
		.dest_addr = 0,
		.vector = vector,
	};
	struct mshv_root_hvcall call = {
		.code = HVCALL_ASSERT_VIRTUAL_INTERRUPT,
		.in_sz = sizeof(in),
		.in_ptr = (uint64_t)(uintptr_t)&in,
	};

	return E.ioctl(pt, MSHV_ROOT_HVCALL, &call);
}

static void run_guest(const char *image_path, bool by_hvcall)
{
	struct mshv_user_irq_table *table;
	struct mshv_create_vp vp_arg = { .vp_index = 0 };
	struct hv_vp_register_page *rp;
	struct hv_message msg;
	struct sigaction sa;
	int pt, vp, fd, irq_efd, any_efd, dm_efd;
	uint8_t *mem;
	ssize_t n;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: RUN_VP returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	alarm(60);

	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = open(image_path, O_RDONLY);
	CHECK(fd);
	n = read(fd, mem, MEM_SIZE);
	close(fd);
	if (n != (ssize_t)MEM_SIZE) {
		fprintf(stderr, "image: %zd bytes, want %lu\n", n, MEM_SIZE);
		exit(2);
	}

	pt = make_partition(PT_LAPIC);
	CHECK(set_mem(pt, 0, mem, MEM_SIZE));
	CHECK(set_mem(pt, (0x100000000UL - MEM_SIZE) / PAGE, mem, MEM_SIZE));	/* reset vector */
	vp = E.ioctl(pt, MSHV_CREATE_VP, &vp_arg);
	CHECK(vp);
	rp = E.mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vp,
		    MSHV_VP_MMAP_OFFSET_REGISTERS * PAGE);
	if (rp == MAP_FAILED) {
		perror("register page");
		exit(2);
	}

	/* GSI 5 -> APIC 0, vector 0x40, fixed, edge */
	table = calloc(1, sizeof(*table) + sizeof(table->entries[0]));
	table->nr = 1;
	table->entries[0].gsi = GSI;
	table->entries[0].address_lo = 0xfee00000u;
	table->entries[0].data = VECTOR;
	EXPECT_ERR(0, E.ioctl(pt, MSHV_SET_MSI_ROUTING, table));
	irq_efd = new_eventfd();
	EXPECT_ERR(0, E.ioctl(pt, MSHV_IRQFD, &(struct mshv_user_irqfd){ .fd = irq_efd, .gsi = GSI }));
	any_efd = new_eventfd();
	EXPECT_ERR(0, E.ioctl(pt, MSHV_IOEVENTFD, &(struct mshv_user_ioeventfd){
		.addr = IOEVENT_ANY, .len = 4, .fd = any_efd }));
	dm_efd = new_eventfd();
	EXPECT_ERR(0, E.ioctl(pt, MSHV_IOEVENTFD, &(struct mshv_user_ioeventfd){
		.datamatch = 0x1234, .addr = IOEVENT_DM, .len = 4, .fd = dm_efd,
		.flags = 1u << MSHV_IOEVENTFD_BIT_DATAMATCH }));

	/*
	 * First stop: the write of 0x5678 to IOEVENT_DM (no datamatch). The two
	 * doorbell writes before it never showed up.
	 */
	run(vp, &msg);
	{
		const struct hv_x64_memory_intercept_message *m = (const void *)msg.payload;

		printf("first_exit=%#x gpa=%#llx\n", msg.header.message_type,
		       (unsigned long long)m->guest_physical_address);
		if (msg.header.message_type != HVMSG_UNMAPPED_GPA &&
		    msg.header.message_type != HVMSG_GPA_INTERCEPT) {
			fprintf(stderr, "first exit is not a memory intercept\n");
			exit(1);
		}
		EXPECT_EQ(IOEVENT_DM, m->guest_physical_address);
		EXPECT_EQ(HV_INTERCEPT_ACCESS_WRITE, m->header.intercept_access_type);
	}
	EXPECT_EQ(1, eventfd_take(any_efd));
	EXPECT_EQ(1, eventfd_take(dm_efd));
	skip(rp, &msg);

	/* Second stop: "ready" on port 0x10. Then the irqfd fires. */
	run(vp, &msg);
	EXPECT_EQ(HVMSG_X64_IO_PORT_INTERCEPT, msg.header.message_type);
	EXPECT_EQ(0x10, io(&msg)->port_number);
	skip(rp, &msg);
	if (by_hvcall) {
		if (assert_interrupt(pt, VECTOR) < 0) {
			fprintf(stderr, "ROOT_HVCALL(ASSERT_VIRTUAL_INTERRUPT): %s\n", strerror(errno));
			exit(3);
		}
	} else {
		eventfd_put(irq_efd, 1);
		EXPECT_EQ(0, eventfd_take(irq_efd));	/* consumed by the irqfd */
	}

	/* Third stop: the handler for vector 0x40 reports on port 0x11. */
	run(vp, &msg);
	EXPECT_EQ(HVMSG_X64_IO_PORT_INTERCEPT, msg.header.message_type);
	EXPECT_EQ(0x11, io(&msg)->port_number);
	EXPECT_EQ(VECTOR, io(&msg)->rax & 0xff);
	printf("handler_port=%#x vector=%#llx\n", io(&msg)->port_number,
	       (unsigned long long)(io(&msg)->rax & 0xff));
	/* nothing signalled the doorbells again */
	EXPECT_EQ(0, eventfd_take(any_efd));
	EXPECT_EQ(0, eventfd_take(dm_efd));
	alarm(0);
}

static const char *image;

static void guest_irqfd_ioeventfd(void)
{
	run_guest(image, false);
}

static void guest_assert_interrupt(void)
{
	run_guest(image, true);
}

static const struct test_case cases[] = {
	CASE(guest_irqfd_ioeventfd),
	CASE(guest_assert_interrupt),
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
