/* SPDX-License-Identifier: MIT */
/*
 * Rule checks for MSHV_SET_MSI_ROUTING, MSHV_IRQFD and MSHV_IOEVENTFD on the
 * emulator (tests/emulator/test_irq_rules.py runs one case per process).
 * Each case names the kernel function whose checks it mirrors.
 */
#include "irq_client.h"

/* x86 MSI: destination APIC id in address bits 12-19, level-triggered = data bit 15 */
#define MSI_ADDR(apic) (0xfee00000u | ((apic) << 12))
#define MSI_LEVEL (1u << 15)
#define EMU_ROUTES_MAX 4096

struct table {
	struct mshv_user_irq_table hdr;
	struct mshv_user_irq_entry e[EMU_ROUTES_MAX];
};

static int set_routes(int pt, struct table *t, uint32_t nr)
{
	t->hdr.nr = nr;
	return E.ioctl(pt, MSHV_SET_MSI_ROUTING, t);
}

/* One route: gsi -> APIC 0, vector, level or edge. */
static int route1(int pt, uint32_t gsi, uint32_t vector, int level)
{
	static struct table t;

	memset(&t, 0, sizeof(t));
	t.e[0].gsi = gsi;
	t.e[0].address_lo = MSI_ADDR(0);
	t.e[0].data = vector | (level ? MSI_LEVEL : 0);
	return set_routes(pt, &t, 1);
}

static int irqfd(int pt, int fd, uint32_t gsi, uint32_t flags, int resamplefd)
{
	struct mshv_user_irqfd a = { .fd = fd, .resamplefd = resamplefd, .gsi = gsi, .flags = flags };

	return E.ioctl(pt, MSHV_IRQFD, &a);
}

#define DEASSIGN (1u << MSHV_IRQFD_BIT_DEASSIGN)
#define RESAMPLE (1u << MSHV_IRQFD_BIT_RESAMPLE)

static int ioeventfd(int pt, int fd, uint64_t addr, uint32_t len, uint32_t flags, uint64_t dm)
{
	struct mshv_user_ioeventfd a = {
		.datamatch = dm, .addr = addr, .len = len, .fd = fd, .flags = flags,
	};

	return E.ioctl(pt, MSHV_IOEVENTFD, &a);
}

#define IO_DM (1u << MSHV_IOEVENTFD_BIT_DATAMATCH)
#define IO_PIO (1u << MSHV_IOEVENTFD_BIT_PIO)
#define IO_DEASSIGN (1u << MSHV_IOEVENTFD_BIT_DEASSIGN)

/* ---- mshv_partition_ioctl_set_msi_routing / mshv_update_routing_table ---- */

static void routing_header_checks(void)
{
	int pt = make_partition(PT_LAPIC);
	struct mshv_user_irq_table *h = before_hole(sizeof(*h));

	/* header readable, entries not: EFAULT from copying the entries */
	h->nr = 1;
	h->rsvd = 0;
	EXPECT_ERR(EFAULT, E.ioctl(pt, MSHV_SET_MSI_ROUTING, h));
	/* nr > MSHV_MAX_GUEST_IRQS and rsvd are checked before the entries are read */
	h->nr = 4097;
	EXPECT_ERR(EINVAL, E.ioctl(pt, MSHV_SET_MSI_ROUTING, h));
	h->nr = 1;
	h->rsvd = 1;
	EXPECT_ERR(EINVAL, E.ioctl(pt, MSHV_SET_MSI_ROUTING, h));
	/* nr == 0 reads no entries: clearing works right before a hole */
	h->nr = 0;
	h->rsvd = 0;
	EXPECT_ERR(0, E.ioctl(pt, MSHV_SET_MSI_ROUTING, h));
	/* unreadable header */
	EXPECT_ERR(EFAULT, E.ioctl(pt, MSHV_SET_MSI_ROUTING, before_hole(4)));
}

static void routing_entry_checks(void)
{
	static struct table t;
	int pt = make_partition(PT_LAPIC);

	memset(&t, 0, sizeof(t));
	t.e[0].gsi = 4095;
	t.e[0].address_lo = MSI_ADDR(0);
	t.e[0].data = 0x30;
	EXPECT_ERR(0, set_routes(pt, &t, 1));
	t.e[0].gsi = 4096;	/* gsi >= MSHV_MAX_GUEST_IRQS */
	EXPECT_ERR(EINVAL, set_routes(pt, &t, 1));
	t.e[0].gsi = 1;
	t.e[0].address_hi = 1;	/* address_hi must be 0 */
	EXPECT_ERR(EINVAL, set_routes(pt, &t, 1));
	t.e[0].address_hi = 0;
	t.e[1] = t.e[0];	/* the same GSI twice */
	EXPECT_ERR(EINVAL, set_routes(pt, &t, 2));
	t.e[1].gsi = 2;
	EXPECT_ERR(0, set_routes(pt, &t, 2));
}

static void routing_full_and_qemu_tables(void)
{
	static struct table t;
	int pt = make_partition(PT_LAPIC);

	memset(&t, 0, sizeof(t));
	for (uint32_t i = 0; i < 4096; i++) {
		t.e[i].gsi = 4095 - i;
		t.e[i].address_lo = MSI_ADDR(i & 0xff);
		t.e[i].data = 0x20 + (i % 200);
	}
	EXPECT_ERR(0, set_routes(pt, &t, 4096));
	/* QEMU's 24 all-zero routes */
	memset(&t, 0, sizeof(t));
	for (uint32_t i = 0; i < 24; i++)
		t.e[i].gsi = i;
	EXPECT_ERR(0, set_routes(pt, &t, 24));
	EXPECT_ERR(0, set_routes(pt, &t, 0));
}

/*
 * The table is replaced as a whole, a failed update keeps the old one, and
 * nr == 0 clears it. Observed through irqfd RESAMPLE, which needs a
 * level-triggered route for its GSI (mshv_irqfd_assign).
 */
static void routing_replace_atomic(void)
{
	static struct table t;
	int pt = make_partition(PT_LAPIC), rs = new_eventfd();

	memset(&t, 0, sizeof(t));
	t.e[0] = (struct mshv_user_irq_entry){ .gsi = 5, .address_lo = MSI_ADDR(0), .data = 0x35 | MSI_LEVEL };
	t.e[1] = (struct mshv_user_irq_entry){ .gsi = 6, .address_lo = MSI_ADDR(0), .data = 0x36 };
	EXPECT_ERR(0, set_routes(pt, &t, 2));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), 5, RESAMPLE, rs));
	EXPECT_ERR(EINVAL, irqfd(pt, new_eventfd(), 6, RESAMPLE, rs));
	/* a failing update (duplicate GSI 5) changes nothing */
	t.e[1].gsi = 5;
	t.e[1].data = 0x36;
	EXPECT_ERR(EINVAL, set_routes(pt, &t, 2));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), 5, RESAMPLE, rs));
	/* a new table replaces the old one entirely: GSI 5 now edge, 6 level */
	t.e[0].data = 0x35;
	t.e[1] = (struct mshv_user_irq_entry){ .gsi = 6, .address_lo = MSI_ADDR(0), .data = 0x36 | MSI_LEVEL };
	EXPECT_ERR(0, set_routes(pt, &t, 2));
	EXPECT_ERR(EINVAL, irqfd(pt, new_eventfd(), 5, RESAMPLE, rs));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), 6, RESAMPLE, rs));
	/* nr == 0 clears it */
	EXPECT_ERR(0, set_routes(pt, &t, 0));
	EXPECT_ERR(EINVAL, irqfd(pt, new_eventfd(), 6, RESAMPLE, rs));
}

/* ---- mshv_set_unset_irqfd / mshv_irqfd_assign / mshv_irqfd_deassign ----- */

static void irqfd_flags_and_fds(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), pipefd[2], closed;

	CHECK(pipe(pipefd));
	closed = new_eventfd();
	close(closed);
	/* mshv_set_unset_irqfd: flags & ~MSHV_IRQFD_FLAGS_MASK */
	EXPECT_ERR(EINVAL, irqfd(pt, efd, 1, 1u << MSHV_IRQFD_BIT_COUNT, -1));
	/* assign: fd not open, not an eventfd */
	EXPECT_ERR(EBADF, irqfd(pt, -1, 1, 0, -1));
	EXPECT_ERR(EBADF, irqfd(pt, closed, 1, 0, -1));
	EXPECT_ERR(EINVAL, irqfd(pt, pipefd[0], 1, 0, -1));
	EXPECT_ERR(EINVAL, irqfd(pt, pt, 1, 0, -1));
	/* RESAMPLE: resamplefd not open / not an eventfd */
	EXPECT_ERR(EBADF, irqfd(pt, efd, 1, RESAMPLE, closed));
	EXPECT_ERR(EINVAL, irqfd(pt, efd, 1, RESAMPLE, pipefd[1]));
	/* deassign: the same fd checks, then 0 whether or not anything matched */
	EXPECT_ERR(EBADF, irqfd(pt, closed, 1, DEASSIGN, -1));
	EXPECT_ERR(EINVAL, irqfd(pt, pipefd[0], 1, DEASSIGN, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 1, DEASSIGN, -1));
}

static void irqfd_ebusy_and_deassign(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), other = new_eventfd();

	/* a GSI without a route is accepted, even one no route can have */
	EXPECT_ERR(0, irqfd(pt, efd, 3, 0, -1));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), 4096, 0, -1));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), UINT32_MAX, 0, -1));
	/* this eventfd is bound already, whatever the GSI */
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 3, 0, -1));
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 4, 0, -1));
	/* a dup is the same eventfd */
	EXPECT_ERR(EBUSY, irqfd(pt, dup(efd), 4, 0, -1));
	EXPECT_ERR(0, irqfd(pt, other, 3, 0, -1));
	/* deassign matches (eventfd, gsi): the wrong GSI leaves it bound */
	EXPECT_ERR(0, irqfd(pt, efd, 4, DEASSIGN, -1));
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 4, 0, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 3, DEASSIGN, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 4, 0, -1));
}

/* 2026 order: EBUSY before the level-triggered check; no route = not level */
static void irqfd_resample_order(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), rs = new_eventfd();

	EXPECT_ERR(EINVAL, irqfd(pt, efd, 7, RESAMPLE, rs));	/* no route */
	CHECK(route1(pt, 7, 0x47, 0));
	EXPECT_ERR(EINVAL, irqfd(pt, efd, 7, RESAMPLE, rs));	/* edge */
	EXPECT_ERR(0, irqfd(pt, efd, 8, 0, -1));
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 7, RESAMPLE, rs));	/* bound, and edge */
	CHECK(route1(pt, 7, 0x47, 1));
	EXPECT_ERR(0, irqfd(pt, new_eventfd(), 7, RESAMPLE, rs));
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 7, RESAMPLE, rs));
}

/*
 * mshv_irqfd_wakeup: a bound eventfd's signals are consumed (routed or not);
 * mshv_irqfd_shutdown (>= 7.0): deassign resets the counter.
 */
static void irqfd_consumes_signals(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd();

	/* a count pending at assign is injected, not read */
	eventfd_put(efd, 1);
	EXPECT_ERR(0, irqfd(pt, efd, 9, 0, -1));
	EXPECT_EQ(1, eventfd_take(efd));
	eventfd_put(efd, 3);
	EXPECT_EQ(0, eventfd_take(efd));		/* unrouted: consumed, nothing injected */
	CHECK(route1(pt, 9, 0x49, 0));
	eventfd_put(efd, 1);
	EXPECT_EQ(0, eventfd_take(efd));		/* routed: consumed */
	EXPECT_ERR(0, irqfd(pt, efd, 9, DEASSIGN, -1));
	eventfd_put(efd, 5);
	EXPECT_EQ(5, eventfd_take(efd));		/* detached */
	eventfd_put(efd, 1);
	EXPECT_ERR(0, irqfd(pt, efd, 9, 0, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 9, DEASSIGN, -1));
	EXPECT_EQ(0, eventfd_take(efd));		/* shutdown cleared the pending count */
}

/* mshv_irqfd_wakeup EPOLLHUP: closing the eventfd detaches the irqfd */
static void irqfd_hup_detaches(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), again;

	EXPECT_ERR(0, irqfd(pt, efd, 10, 0, -1));
	close(efd);
	again = new_eventfd();	/* typically the same fd number (and eventfd id) */
	EXPECT_ERR(0, irqfd(pt, again, 10, 0, -1));
	EXPECT_ERR(EBUSY, irqfd(pt, again, 10, 0, -1));
}

/*
 * No LAPIC: the driver accepts routes and irqfds the same way (there is
 * nothing for the hypervisor to deliver to).
 */
static void irqfd_no_lapic(void)
{
	int pt = make_partition(0), efd = new_eventfd(), rs = new_eventfd();

	CHECK(route1(pt, 2, 0x42, 1));
	EXPECT_ERR(0, irqfd(pt, efd, 2, 0, -1));
	EXPECT_ERR(EBUSY, irqfd(pt, efd, 1, 0, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 2, DEASSIGN, -1));
	EXPECT_ERR(0, irqfd(pt, efd, 2, RESAMPLE, rs));
	EXPECT_ERR(EINVAL, irqfd(pt, new_eventfd(), 3, RESAMPLE, rs));
}

/* mshv_partition_release -> mshv_eventfd_release: irqfds detach at fd close */
static void irqfd_release_on_close(void)
{
	struct mshv_create_vp vp_arg = { .vp_index = 0 };
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), vp;

	CHECK(route1(pt, 1, 0x41, 0));
	EXPECT_ERR(0, irqfd(pt, efd, 1, 0, -1));
	vp = E.ioctl(pt, MSHV_CREATE_VP, &vp_arg);	/* keeps the partition alive */
	CHECK(vp);
	eventfd_put(efd, 1);
	EXPECT_EQ(0, eventfd_take(efd));
	CHECK(E.close(pt));
	eventfd_put(efd, 2);
	EXPECT_EQ(2, eventfd_take(efd));
	CHECK(E.close(vp));
}

/* ---- mshv_set_unset_ioeventfd / mshv_assign_ioeventfd / mshv_deassign_ioeventfd */

static void ioeventfd_checks(void)
{
	int pt = make_partition(PT_LAPIC), efd = new_eventfd(), pipefd[2];
	struct mshv_user_ioeventfd a = { .addr = 0xd0000000, .len = 4, .fd = efd };

	CHECK(pipe(pipefd));
	/* mshv_set_unset_ioeventfd: flags, rsvd, then PIO */
	EXPECT_ERR(EINVAL, ioeventfd(pt, efd, 0xd0000000, 4, 1u << MSHV_IOEVENTFD_BIT_COUNT, 0));
	a.rsvd[3] = 1;
	EXPECT_ERR(EINVAL, E.ioctl(pt, MSHV_IOEVENTFD, &a));
	EXPECT_ERR(EOPNOTSUPP, ioeventfd(pt, -1, 0x60, 3, IO_PIO, 0));
	EXPECT_ERR(EOPNOTSUPP, ioeventfd(pt, efd, 0x60, 1, IO_PIO | IO_DEASSIGN, 0));
	/* mshv_assign_ioeventfd: len, wrap, then the fd */
	EXPECT_ERR(EINVAL, ioeventfd(pt, -1, 0xd0000000, 3, 0, 0));
	EXPECT_ERR(EINVAL, ioeventfd(pt, -1, 0xd0000000, 16, 0, 0));
	EXPECT_ERR(EINVAL, ioeventfd(pt, -1, UINT64_MAX - 3, 8, 0, 0));
	EXPECT_ERR(EBADF, ioeventfd(pt, -1, 0xd0000000, 4, 0, 0));
	EXPECT_ERR(EINVAL, ioeventfd(pt, pipefd[0], 0xd0000000, 4, 0, 0));
	EXPECT_ERR(EINVAL, ioeventfd(pt, efd, UINT64_MAX - 7, 8, 0, 0));	/* addr + len == 0 */
	EXPECT_ERR(0, ioeventfd(pt, efd, UINT64_MAX - 8, 8, 0, 0));
	/* mshv_deassign_ioeventfd: the fd, then an exact match or ENOENT */
	EXPECT_ERR(EBADF, ioeventfd(pt, -1, 0xd0000000, 4, IO_DEASSIGN, 0));
	EXPECT_ERR(EINVAL, ioeventfd(pt, pipefd[0], 0xd0000000, 4, IO_DEASSIGN, 0));
	EXPECT_ERR(ENOENT, ioeventfd(pt, efd, 0xd0000000, 4, IO_DEASSIGN, 0));
}

static void ioeventfd_collisions(void)
{
	int pt = make_partition(PT_LAPIC), a = new_eventfd(), b = new_eventfd();
	const uint64_t addr = 0xd0001000;

	/* ioeventfd_check_collision: same addr and len, and a wildcard or equal datamatch */
	EXPECT_ERR(0, ioeventfd(pt, a, addr, 4, IO_DM, 0x11));
	EXPECT_ERR(EEXIST, ioeventfd(pt, b, addr, 4, IO_DM, 0x11));
	EXPECT_ERR(EEXIST, ioeventfd(pt, b, addr, 4, 0, 0));
	EXPECT_ERR(0, ioeventfd(pt, b, addr, 4, IO_DM, 0x22));
	EXPECT_ERR(0, ioeventfd(pt, a, addr, 2, 0, 0));		/* other len */
	EXPECT_ERR(0, ioeventfd(pt, a, addr, 0, IO_DM, 0x11));	/* len 0 is its own len */
	EXPECT_ERR(0, ioeventfd(pt, b, addr + 4, 0, 0, 0));
	EXPECT_ERR(EEXIST, ioeventfd(pt, a, addr + 4, 0, IO_DM, 5));
	EXPECT_ERR(0, ioeventfd(pt, a, addr + 4, 8, IO_DM, 5));
	EXPECT_ERR(EEXIST, ioeventfd(pt, a, addr, 4, IO_DM, 0x22));	/* same eventfd, taken */
}

static void ioeventfd_deassign_exact(void)
{
	int pt = make_partition(PT_LAPIC), a = new_eventfd(), b = new_eventfd();
	const uint64_t addr = 0xd0002000;

	CHECK(ioeventfd(pt, a, addr, 4, IO_DM, 0x11));
	CHECK(ioeventfd(pt, a, addr, 8, 0, 0));
	EXPECT_ERR(ENOENT, ioeventfd(pt, b, addr, 4, IO_DM | IO_DEASSIGN, 0x11));	/* eventfd */
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr + 1, 4, IO_DM | IO_DEASSIGN, 0x11));	/* addr */
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr, 2, IO_DM | IO_DEASSIGN, 0x11));	/* len */
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr, 4, IO_DM | IO_DEASSIGN, 0x12));	/* datamatch */
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr, 4, IO_DEASSIGN, 0x11));		/* wildcard */
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr, 8, IO_DM | IO_DEASSIGN, 0));	/* not wildcard */
	/* wildcard: datamatch is ignored */
	EXPECT_ERR(0, ioeventfd(pt, a, addr, 8, IO_DEASSIGN, 0x1234));
	EXPECT_ERR(0, ioeventfd(pt, dup(a), addr, 4, IO_DM | IO_DEASSIGN, 0x11));
	EXPECT_ERR(ENOENT, ioeventfd(pt, a, addr, 4, IO_DM | IO_DEASSIGN, 0x11));
	/* free again */
	EXPECT_ERR(0, ioeventfd(pt, b, addr, 4, 0, 0));
}

static void ioeventfd_no_lapic(void)
{
	int pt = make_partition(0), a = new_eventfd();

	EXPECT_ERR(0, ioeventfd(pt, a, 0xd0000000, 0, 0, 0));
	EXPECT_ERR(EEXIST, ioeventfd(pt, a, 0xd0000000, 0, IO_DM, 1));
	EXPECT_ERR(0, ioeventfd(pt, a, 0xd0000000, 0, IO_DEASSIGN, 0));
}

/* ---- mshv_partition_release: ioeventfds go at partition fd close -------- */

static void ioeventfd_release_on_close(void)
{
	int pt = make_partition(PT_LAPIC), a = new_eventfd();

	CHECK(ioeventfd(pt, a, 0xd0000000, 4, 0, 0));
	CHECK(E.close(pt));
	/* nothing more to check from here without a guest; the close must not fail */
	EXPECT_EQ(0, eventfd_take(a));
}

static const struct test_case cases[] = {
	CASE(routing_header_checks),
	CASE(routing_entry_checks),
	CASE(routing_full_and_qemu_tables),
	CASE(routing_replace_atomic),
	CASE(irqfd_flags_and_fds),
	CASE(irqfd_ebusy_and_deassign),
	CASE(irqfd_resample_order),
	CASE(irqfd_consumes_signals),
	CASE(irqfd_hup_detaches),
	CASE(irqfd_no_lapic),
	CASE(irqfd_release_on_close),
	CASE(ioeventfd_checks),
	CASE(ioeventfd_collisions),
	CASE(ioeventfd_deassign_exact),
	CASE(ioeventfd_no_lapic),
	CASE(ioeventfd_release_on_close),
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
