/* SPDX-License-Identifier: MIT */
/*
 * MSHV_GET_GPAP_ACCESS_BITMAP on the emulator
 * (mshv_partition_ioctl_get_gpap_access_bitmap), driven by
 * tests/emulator/test_gpap_rules.py.
 *
 * Exit status: 0 all expectations held, 1 some did not, 2 setup failed,
 * 3 SET_PARTITION_PROPERTY (ROOT_HVCALL) is not available yet.
 */
#include "irq_client.h"
#include "mshv_hvdefs.h"

#define MEM_SIZE 0x10000UL
#define PAGE 4096UL

static int bitmap(int pt, uint8_t type, uint8_t op, uint64_t base, uint64_t count, void *buf)
{
	struct mshv_gpap_access_bitmap a = {
		.access_type = type,
		.access_op = op,
		.page_count = count,
		.gpap_base = base,
		.bitmap_ptr = (uint64_t)(uintptr_t)buf,
	};

	return E.ioctl(pt, MSHV_GET_GPAP_ACCESS_BITMAP, &a);
}

#define DIRTY MSHV_GPAP_ACCESS_TYPE_DIRTY
#define ACCESSED MSHV_GPAP_ACCESS_TYPE_ACCESSED
#define NOOP MSHV_GPAP_ACCESS_OP_NOOP
#define CLEAR MSHV_GPAP_ACCESS_OP_CLEAR
#define SET MSHV_GPAP_ACCESS_OP_SET

/* HvCallSetPartitionProperty(GPA_PAGE_ACCESS_TRACKING) through the passthrough */
static int set_tracking(int pt, uint64_t on)
{
	struct hv_input_set_partition_property in = {
		.property_code = HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING,
		.property_value = on,
	};
	struct mshv_root_hvcall call = {
		.code = HVCALL_SET_PARTITION_PROPERTY,
		.in_sz = sizeof(in),
		.in_ptr = (uint64_t)(uintptr_t)&in,
	};

	return E.ioctl(pt, MSHV_ROOT_HVCALL, &call);
}

/* mshv_partition_ioctl_get_gpap_access_bitmap steps 1-2, then the hypercall */
static void gpap_checks(void)
{
	int pt = make_partition(PT_LAPIC);
	struct mshv_gpap_access_bitmap a = { .page_count = 8, .bitmap_ptr = 0 };
	uint8_t buf[2];

	EXPECT_ERR(EINVAL, bitmap(pt, 2, NOOP, 0, 8, buf));		/* access_type */
	EXPECT_ERR(EINVAL, bitmap(pt, DIRTY, 3, 0, 8, buf));		/* access_op */
	EXPECT_ERR(EINVAL, bitmap(pt, DIRTY, CLEAR, 0, 0, buf));	/* page_count 0 */
	EXPECT_ERR(EINVAL, bitmap(pt, DIRTY, CLEAR, 0, 8, NULL));	/* bitmap_ptr 0 */
	a.rsvd[5] = 1;
	a.bitmap_ptr = (uint64_t)(uintptr_t)buf;
	EXPECT_ERR(EINVAL, E.ioctl(pt, MSHV_GET_GPAP_ACCESS_BITMAP, &a));
	EXPECT_ERR(EFAULT, E.ioctl(pt, MSHV_GET_GPAP_ACCESS_BITMAP, before_hole(8)));
	/*
	 * Tracking never enabled: the hypercall fails; our hypervisor answers
	 * HV_STATUS_INVALID_PARTITION_STATE, i.e. EIO (unverified on Hyper-V).
	 * The bitmap is not written.
	 */
	buf[0] = 0xaa;
	EXPECT_ERR(EIO, bitmap(pt, DIRTY, CLEAR, 0, 8, buf));
	EXPECT_EQ(0xaa, buf[0]);
}

static void run_to_port(int vp, uint16_t port)
{
	struct hv_message msg;
	const struct hv_x64_io_port_intercept_message *m = (const void *)msg.payload;

	memset(&msg, 0, sizeof(msg));
	CHECK(E.ioctl(vp, MSHV_RUN_VP, &msg));
	EXPECT_EQ(HVMSG_X64_IO_PORT_INTERCEPT, msg.header.message_type);
	EXPECT_EQ(port, m->port_number);
}

/*
 * After the guest (argv[3]) wrote GPAs 0x3000 and 0x5008 and stopped on port
 * 0x10: the dirty/accessed bitmaps, LSB first, ceil(count/8) bytes, tail bits
 * zero, the op applied after reading, NOOP acting as SET.
 */
static const char *image;

static void gpap_after_guest_writes(void)
{
	struct mshv_create_vp vp_arg = { .vp_index = 0 };
	uint8_t buf[4], *mem, *hole;
	int pt, vp, fd;

	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fd = open(image, O_RDONLY);
	CHECK(fd);
	if (read(fd, mem, MEM_SIZE) != (ssize_t)MEM_SIZE)
		exit(2);
	close(fd);
	pt = make_partition(PT_LAPIC);
	CHECK(E.ioctl(pt, MSHV_SET_GUEST_MEMORY, &(struct mshv_user_mem_region){
		.size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem,
		.flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE) }));
	CHECK(E.ioctl(pt, MSHV_SET_GUEST_MEMORY, &(struct mshv_user_mem_region){
		.size = MEM_SIZE, .guest_pfn = (0x100000000UL - MEM_SIZE) / PAGE,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
		.flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE) }));
	vp = E.ioctl(pt, MSHV_CREATE_VP, &vp_arg);
	CHECK(vp);
	if (set_tracking(pt, 1) < 0) {
		fprintf(stderr, "SET_PARTITION_PROPERTY(GPA_PAGE_ACCESS_TRACKING): %s\n",
			strerror(errno));
		exit(3);
	}
	run_to_port(vp, 0x10);

	/* DIRTY CLEAR: pages 3 and 5, then clean */
	memset(buf, 0xaa, sizeof(buf));
	EXPECT_ERR(0, bitmap(pt, DIRTY, CLEAR, 0, 16, buf));
	EXPECT_EQ(0x28, buf[0]);
	EXPECT_EQ(0x00, buf[1]);
	EXPECT_EQ(0xaa, buf[2]);	/* ceil(16 / 8) bytes written, no more */
	EXPECT_ERR(0, bitmap(pt, DIRTY, CLEAR, 0, 16, buf));
	EXPECT_EQ(0x00, buf[0]);
	/* ACCESSED NOOP: written pages were accessed; NOOP then sets accessed on all */
	EXPECT_ERR(0, bitmap(pt, ACCESSED, NOOP, 0, 16, buf));
	EXPECT_EQ(0x28, buf[0]);
	EXPECT_EQ(0x00, buf[1]);
	EXPECT_ERR(0, bitmap(pt, ACCESSED, CLEAR, 0, 16, buf));
	EXPECT_EQ(0xff, buf[0]);
	EXPECT_EQ(0xff, buf[1]);
	EXPECT_ERR(0, bitmap(pt, ACCESSED, NOOP, 0, 16, buf));
	EXPECT_EQ(0x00, buf[0]);
	/* DIRTY SET marks dirty (and accessed) after reading; 12 pages: tail bits zero */
	EXPECT_ERR(0, bitmap(pt, DIRTY, CLEAR, 0, 16, buf));
	EXPECT_ERR(0, bitmap(pt, DIRTY, SET, 0, 12, buf));
	EXPECT_EQ(0x00, buf[0]);
	EXPECT_ERR(0, bitmap(pt, DIRTY, NOOP, 0, 12, buf));
	EXPECT_EQ(0xff, buf[0]);
	EXPECT_EQ(0x0f, buf[1]);
	/* ACCESSED CLEAR also clears dirty */
	EXPECT_ERR(0, bitmap(pt, ACCESSED, CLEAR, 2, 1, buf));
	EXPECT_ERR(0, bitmap(pt, DIRTY, CLEAR, 0, 8, buf));
	EXPECT_EQ(0xfb, buf[0]);
	/* no region: nothing to report */
	EXPECT_ERR(0, bitmap(pt, DIRTY, SET, 0x100, 8, buf));
	EXPECT_ERR(0, bitmap(pt, DIRTY, NOOP, 0x100, 8, buf));
	EXPECT_EQ(0x00, buf[0]);
	/* the bitmap copy-out faults: EFAULT (the op was applied anyway) */
	hole = before_hole(1);
	EXPECT_ERR(EFAULT, bitmap(pt, DIRTY, SET, 0, 16, hole));
	EXPECT_ERR(0, bitmap(pt, DIRTY, CLEAR, 0, 16, buf));
	EXPECT_EQ(0xff, buf[0]);
	EXPECT_EQ(0xff, buf[1]);
	/* switching tracking off: the hypercall fails again */
	CHECK(set_tracking(pt, 0));
	EXPECT_ERR(EIO, bitmap(pt, DIRTY, CLEAR, 0, 16, buf));
}

static const struct test_case cases[] = {
	CASE(gpap_checks),
	CASE(gpap_after_guest_writes),
};

int main(int argc, char **argv)
{
	if (argc == 4)
		image = argv[3];
	return run_cases(3, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
