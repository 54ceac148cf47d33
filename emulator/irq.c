/* SPDX-License-Identifier: MIT */
/*
 * Driver and hypervisor side.
 *
 * MSHV_SET_MSI_ROUTING, MSHV_IRQFD, MSHV_IOEVENTFD and the interrupt
 * assertion behind HvCallAssertVirtualInterrupt, mirroring
 * drivers/hv/mshv_irq.c and drivers/hv/mshv_eventfd.c (Linux 7.2, with the
 * 2026 irqfd-resample fix) on top of KVM's split irqchip:
 *
 *   routing table -> KVM_SET_GSI_ROUTING (KVM_IRQ_ROUTING_MSI entries)
 *   irqfd         -> KVM_IRQFD (no KVM resample: see emu_irq_eoi)
 *   ioeventfd     -> KVM_IOEVENTFD on the MMIO bus
 *   assert        -> KVM_SIGNAL_MSI
 *
 * Eventfd identity. The kernel compares eventfd_ctx pointers and holds a
 * context reference, not the file, so closing the client's last fd of an
 * irqfd's eventfd sends EPOLLHUP and detaches it. A user-space emulator
 * cannot hold a context without holding the file, so irqfds keep no
 * reference at all: KVM's irqfd holds the context (KVM detaches on HUP and
 * answers EBUSY for a reused eventfd exactly like mshv_irqfd_assign), and
 * our bookkeeping names an eventfd by its fdinfo "eventfd-id" (unique among
 * live eventfds). Ioeventfds keep a dup of the eventfd (no HUP semantics to
 * preserve; the dup is needed to deassign from KVM).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "emu.h"

/* x86 MSI message format (Intel SDM vol. 3, 11.11): used for routes and asserts. */
#define EMU_MSI_ADDR_BASE		0xfee00000u
#define EMU_MSI_ADDR_DEST_SHIFT		12
#define EMU_MSI_ADDR_DEST_MASK		0xffu
#define EMU_MSI_ADDR_LOGICAL		(1u << 2)
#define EMU_MSI_DATA_VECTOR_MASK	0xffu
#define EMU_MSI_DATA_TYPE_SHIFT		8
#define EMU_MSI_DATA_TYPE_MASK		0x7u
#define EMU_MSI_DATA_ASSERT		(1u << 14)
#define EMU_MSI_DATA_LEVEL		(1u << 15)

#define EMU_EVENTFD_LINK "anon_inode:[eventfd]"

struct emu_irqfd {
	struct emu_irqfd *next;
	int eventfd_id;			/* fdinfo eventfd-id of the bound eventfd */
	uint32_t gsi;
	int resamplefd;			/* our dup of the resample eventfd, or -1 */
	bool in_kvm;			/* registered with KVM_IRQFD */
};

struct emu_ioeventfd {
	struct emu_ioeventfd *next;
	int fd;				/* our dup of the eventfd */
	int eventfd_id;
	uint64_t addr;
	uint64_t datamatch;
	uint32_t len;			/* 0 = any size */
	bool wildcard;			/* no DATAMATCH */
	uint16_t kvm_lens;		/* lengths registered with KVM_IOEVENTFD (bit n = len n) */
};

/* A route decoded the way mshv_copy_girq_info does it. */
struct emu_lapic_irq {
	uint32_t vector;
	uint32_t apic_id;
	uint32_t type;			/* x86 delivery mode = HV_X64_INTERRUPT_TYPE_* 0..7 */
	bool level;
	bool logical;
};

/*
 * Guards every partition's irqfd and ioeventfd lists against readers on VP
 * threads (emu_irq_eoi, emu_ioeventfd_mmio_write). Writers also hold pt->lock.
 */
static pthread_rwlock_t emu_irq_lock = PTHREAD_RWLOCK_INITIALIZER;

/* ---- eventfds --------------------------------------------------------------- */

static int emu_read_small(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = emu_sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	n = syscall(SYS_read, fd, buf, size - 1);
	emu_sys_close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/*
 * eventfd_ctx_fdget(): EBADF when fd is not open, EINVAL when it is not an
 * eventfd. Returns the eventfd's id (fdinfo "eventfd-id").
 */
static int emu_eventfd_id(int fd)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;

	if (fd < 0 || syscall(SYS_fcntl, fd, F_GETFD) < 0) {
		errno = EBADF;
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0) {
		errno = EBADF;
		return -1;
	}
	buf[n] = '\0';
	if (strcmp(buf, EMU_EVENTFD_LINK)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (emu_read_small(path, buf, sizeof(buf)) < 0) {
		errno = EBADF;
		return -1;
	}
	p = strstr(buf, "eventfd-id:");
	if (!p) {
		/* Kernels before 5.17 lack the id; nothing can tell eventfds apart. */
		errno = EINVAL;
		return -1;
	}
	return (int)strtol(p + strlen("eventfd-id:"), NULL, 10);
}

/* An fd of this process that is the live eventfd with this id, or -1. */
static int emu_eventfd_find(int id)
{
	char buf[4096];
	long n;
	int dir, found = -1;

	dir = emu_sys_openat(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dir < 0)
		return -1;
	while (found < 0 && (n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n && found < 0;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			char *end;
			long fd = strtol(d->name, &end, 10);
			int saved = errno;

			off += d->reclen;
			if (*end || end == d->name || fd == dir)
				continue;
			if (emu_eventfd_id((int)fd) == id)
				found = (int)fd;
			errno = saved;
		}
	}
	emu_sys_close(dir);
	return found;
}

static int emu_dupfd(int fd)
{
	return (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0);
}

static void emu_eventfd_signal(int fd)
{
	uint64_t one = 1;

	(void)!syscall(SYS_write, fd, &one, sizeof(one));
}

/* ---- routing table ------------------------------------------------------- */

/* mshv_copy_girq_info */
static void emu_route_decode(const struct emu_msi_route *r, struct emu_lapic_irq *irq)
{
	irq->vector = r->data & EMU_MSI_DATA_VECTOR_MASK;
	irq->apic_id = (r->address_lo >> EMU_MSI_ADDR_DEST_SHIFT) & EMU_MSI_ADDR_DEST_MASK;
	irq->type = (r->data >> EMU_MSI_DATA_TYPE_SHIFT) & EMU_MSI_DATA_TYPE_MASK;
	irq->level = r->data & EMU_MSI_DATA_LEVEL;
	irq->logical = r->address_lo & EMU_MSI_ADDR_LOGICAL;
}

/*
 * The MSI KVM gets: only the fields the hypervisor is given (vector, APIC id,
 * type, level, logical), so bits mshv ignores (redirection hint, data bit 14,
 * reserved bits) cannot change KVM's delivery.
 */
static void emu_msi_encode(const struct emu_lapic_irq *irq, uint32_t *address_lo, uint32_t *data)
{
	*address_lo = EMU_MSI_ADDR_BASE | (irq->apic_id << EMU_MSI_ADDR_DEST_SHIFT) |
		      (irq->logical ? EMU_MSI_ADDR_LOGICAL : 0);
	*data = irq->vector | (irq->type << EMU_MSI_DATA_TYPE_SHIFT) | EMU_MSI_DATA_ASSERT |
		(irq->level ? EMU_MSI_DATA_LEVEL : 0);
}

static const struct emu_msi_route *emu_route_find(struct emu_partition *pt, uint32_t gsi)
{
	for (uint32_t i = 0; i < pt->nr_routes; i++)
		if (pt->routes[i].gsi == gsi)
			return &pt->routes[i];
	return NULL;
}

static int emu_kvm_set_routing(struct emu_partition *pt, const struct emu_msi_route *routes,
			       uint32_t nr)
{
	struct kvm_irq_routing *kr;
	int ret, err;

	kr = calloc(1, sizeof(*kr) + (size_t)nr * sizeof(kr->entries[0]));
	if (!kr) {
		errno = ENOMEM;
		return -1;
	}
	kr->nr = nr;
	for (uint32_t i = 0; i < nr; i++) {
		struct emu_lapic_irq irq;

		emu_route_decode(&routes[i], &irq);
		kr->entries[i].gsi = routes[i].gsi;
		kr->entries[i].type = KVM_IRQ_ROUTING_MSI;
		emu_msi_encode(&irq, &kr->entries[i].u.msi.address_lo, &kr->entries[i].u.msi.data);
	}
	/* KVM re-resolves its irqfds itself (kvm_irq_routing_update -> irqfd_update). */
	ret = emu_sys_ioctl(pt->vm_fd, KVM_SET_GSI_ROUTING, kr);
	err = errno;
	free(kr);
	errno = err;
	return ret < 0 ? -1 : 0;
}

/* mshv_partition_ioctl_set_msi_routing + mshv_update_routing_table */
int emu_set_msi_routing(struct emu_partition *pt, const struct mshv_user_irq_table *uarg)
{
	struct mshv_user_irq_table hdr;
	struct emu_msi_route *routes = NULL;
	uint8_t *seen = NULL;
	int err = EINVAL;

	/* mshv_partition_ioctl_set_msi_routing: copy the 8-byte header */
	if (emu_copy_from_user(&hdr, uarg, sizeof(hdr)) < 0)
		return -1;
	/* nr > MSHV_MAX_GUEST_IRQS or rsvd nonzero */
	if (hdr.nr > EMU_MAX_GUEST_IRQS || hdr.rsvd) {
		errno = EINVAL;
		return -1;
	}
	if (hdr.nr) {
		/* vmemdup_user of the entries: EFAULT */
		routes = malloc((size_t)hdr.nr * sizeof(*routes));
		if (!routes) {
			errno = ENOMEM;
			return -1;
		}
		_Static_assert(sizeof(*routes) == sizeof(uarg->entries[0]), "route layout");
		if (emu_copy_from_user(routes, EMU_USER_MEMBER(uarg, struct mshv_user_irq_table, entries),
				       (size_t)hdr.nr * sizeof(*routes)) < 0)
			goto fail_errno;
		/* mshv_update_routing_table: gsi and address_hi of every entry first */
		for (uint32_t i = 0; i < hdr.nr; i++)
			if (routes[i].gsi >= EMU_MAX_GUEST_IRQS || routes[i].address_hi)
				goto fail;
		/* then "only one to one mapping between GSI and MSI routing" */
		seen = calloc(EMU_MAX_GUEST_IRQS, 1);
		if (!seen) {
			err = ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < hdr.nr; i++) {
			if (seen[routes[i].gsi])
				goto fail;
			seen[routes[i].gsi] = 1;
		}
		free(seen);
		seen = NULL;
	}
	/* swap_routes: the whole table at once (nr == 0 clears it) */
	if (pt->lapic && emu_kvm_set_routing(pt, routes, hdr.nr) < 0)
		goto fail_errno;
	pthread_rwlock_wrlock(&emu_irq_lock);
	free(pt->routes);
	pt->routes = routes;
	pt->nr_routes = hdr.nr;
	pthread_rwlock_unlock(&emu_irq_lock);
	return 0;

fail_errno:
	err = errno;
fail:
	free(seen);
	free(routes);
	errno = err;
	return -1;
}

/* ---- irqfd --------------------------------------------------------------- */

static void emu_irqfd_free(struct emu_irqfd *irqfd)
{
	if (irqfd->resamplefd >= 0)
		emu_sys_close(irqfd->resamplefd);
	free(irqfd);
}

static int emu_kvm_irqfd(struct emu_partition *pt, int fd, uint32_t gsi, bool deassign)
{
	struct kvm_irqfd k = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0,
	};

	return emu_sys_ioctl(pt->vm_fd, KVM_IRQFD, &k) < 0 ? -1 : 0;
}

/*
 * Forget irqfds whose eventfd is gone: KVM detached them on EPOLLHUP
 * (irqfd_wakeup), as mshv_irqfd_wakeup does. Caller holds emu_irq_lock.
 */
static void emu_irqfd_prune(struct emu_partition *pt)
{
	struct emu_irqfd **pp = &pt->irqfds;

	while (*pp) {
		struct emu_irqfd *irqfd = *pp;

		if (emu_eventfd_find(irqfd->eventfd_id) < 0) {
			*pp = irqfd->next;
			emu_irqfd_free(irqfd);
		} else {
			pp = &irqfd->next;
		}
	}
}

static bool emu_irqfd_bound(struct emu_partition *pt, int id)
{
	for (struct emu_irqfd *irqfd = pt->irqfds; irqfd; irqfd = irqfd->next)
		if (irqfd->eventfd_id == id)
			return true;
	return false;
}

/*
 * mshv_irqfd_deassign: every irqfd with this (eventfd, gsi) goes; 0 even when
 * nothing matched. KVM's irqfd shutdown, like mshv's since 7.0, clears the
 * eventfd's counter.
 */
static int emu_irqfd_deassign(struct emu_partition *pt, const struct mshv_user_irqfd *args)
{
	struct emu_irqfd **pp;
	int id;

	/* eventfd_ctx_fdget: EBADF / EINVAL */
	id = emu_eventfd_id(args->fd);
	if (id < 0)
		return -1;
	pthread_rwlock_wrlock(&emu_irq_lock);
	if (pt->lapic)
		(void)emu_kvm_irqfd(pt, args->fd, args->gsi, true);
	for (pp = &pt->irqfds; *pp;) {
		struct emu_irqfd *irqfd = *pp;

		if (irqfd->eventfd_id == id && irqfd->gsi == args->gsi) {
			*pp = irqfd->next;
			emu_irqfd_free(irqfd);
		} else {
			pp = &irqfd->next;
		}
	}
	pthread_rwlock_unlock(&emu_irq_lock);
	return 0;
}

/*
 * mshv_irqfd_assign, in its order: fd (EBADF), eventfd (EINVAL), resamplefd
 * (EBADF/EINVAL), already bound in this partition (EBUSY), then with
 * RESAMPLE the route must be level-triggered (EINVAL; the 2026 order).
 *
 * LAPIC partitions: KVM_IRQFD does the binding. It consumes each signal and
 * sends the routed MSI, injects at once when a count is pending at assign,
 * detaches on HUP and answers EBUSY for an eventfd already bound to this VM.
 * A GSI without a route stays unrouted in KVM: signals are consumed and inject
 * nothing until SET_MSI_ROUTING adds the route (mshv_ret_girq_entry's
 * "premature register_irqfd"). KVM refuses KVM_IRQFD_FLAG_RESAMPLE with a
 * split irqchip (kvm_arch_irqfd_allowed needs the full in-kernel irqchip), so
 * resampling is done here: KVM's split irqchip exits with KVM_EXIT_IOAPIC_EOI
 * when the guest EOIs a level-triggered vector of a route below
 * KVM_CAP_SPLIT_IRQCHIP's reserved-pin count, and run.c calls emu_irq_eoi().
 *
 * Partitions without LAPIC: the hypervisor has no APIC to deliver to, so its
 * HvCallAssertVirtualInterrupt would fail, and mshv_assert_irq_slow ignores
 * the status: the driver accepts routes and irqfds and nothing is ever
 * injected. KVM has no irqchip to bind to here, so the irqfd is kept only in
 * our list (EBUSY and deassign work); deviation: signals are not consumed.
 */
static int emu_irqfd_assign(struct emu_partition *pt, const struct mshv_user_irqfd *args)
{
	bool resample = args->flags & (1u << MSHV_IRQFD_BIT_RESAMPLE);
	const struct emu_msi_route *route;
	struct emu_irqfd *irqfd;
	int id, err;

	/* CLASS(fd) + eventfd_ctx_fileget: EBADF, then EINVAL */
	id = emu_eventfd_id(args->fd);
	if (id < 0)
		return -1;
	irqfd = calloc(1, sizeof(*irqfd));
	if (!irqfd) {
		errno = ENOMEM;
		return -1;
	}
	irqfd->eventfd_id = id;
	irqfd->gsi = args->gsi;
	irqfd->resamplefd = -1;
	if (resample) {
		/* eventfd_ctx_fdget(args->resamplefd): EBADF / EINVAL */
		if (emu_eventfd_id(args->resamplefd) < 0)
			goto fail_errno;
		irqfd->resamplefd = emu_dupfd(args->resamplefd);
		if (irqfd->resamplefd < 0)
			goto fail_errno;
	}

	pthread_rwlock_wrlock(&emu_irq_lock);
	emu_irqfd_prune(pt);
	route = emu_route_find(pt, args->gsi);
	/* RESAMPLE on x86: the route must be level-triggered (after the EBUSY check) */
	if (resample && !(route && (route->data & EMU_MSI_DATA_LEVEL))) {
		err = emu_irqfd_bound(pt, id) ? EBUSY : EINVAL;
		goto fail_unlock;
	}
	if (pt->lapic) {
		/* "This fd is used for another irq already": KVM's identical check */
		if (emu_kvm_irqfd(pt, args->fd, args->gsi, false) < 0) {
			err = errno;
			goto fail_unlock;
		}
		irqfd->in_kvm = true;
	} else if (emu_irqfd_bound(pt, id)) {
		err = EBUSY;
		goto fail_unlock;
	}
	irqfd->next = pt->irqfds;
	pt->irqfds = irqfd;
	pthread_rwlock_unlock(&emu_irq_lock);
	return 0;

fail_unlock:
	pthread_rwlock_unlock(&emu_irq_lock);
	emu_irqfd_free(irqfd);
	errno = err;
	return -1;
fail_errno:
	err = errno;
	emu_irqfd_free(irqfd);
	errno = err;
	return -1;
}

/* mshv_set_unset_irqfd */
int emu_irqfd(struct emu_partition *pt, const struct mshv_user_irqfd *args)
{
	if (args->flags & ~(uint32_t)MSHV_IRQFD_FLAGS_MASK) {
		errno = EINVAL;
		return -1;
	}
	if (args->flags & (1u << MSHV_IRQFD_BIT_DEASSIGN))
		return emu_irqfd_deassign(pt, args);
	return emu_irqfd_assign(pt, args);
}

/*
 * mshv_notify_acked_gsi + mshv_irqfd_resampler_ack: an EOI of `vector`
 * signals the resamplefd of every RESAMPLE irqfd whose GSI equals the vector
 * (the kernel compares the EOI message's vector with the resampler's GSI).
 * Returns true when one matched: the kernel then consumes the
 * HVMSG_X64_APIC_EOI; otherwise RUN_VP returns it to the VMM.
 * Not done: HvCallClearVirtualInterrupt for ExtINT routes (no PIC here).
 */
bool emu_irq_eoi(struct emu_partition *pt, uint32_t vector)
{
	bool acked = false;

	pthread_rwlock_rdlock(&emu_irq_lock);
	for (struct emu_irqfd *irqfd = pt->irqfds; irqfd; irqfd = irqfd->next) {
		if (irqfd->resamplefd >= 0 && irqfd->gsi == vector) {
			emu_eventfd_signal(irqfd->resamplefd);
			acked = true;
		}
	}
	pthread_rwlock_unlock(&emu_irq_lock);
	return acked;
}

/* ---- ioeventfd ----------------------------------------------------------- */

static int emu_kvm_ioeventfd(struct emu_partition *pt, const struct emu_ioeventfd *p,
			     uint32_t len, bool deassign)
{
	struct kvm_ioeventfd k = {
		.datamatch = p->datamatch,
		.addr = p->addr,
		.len = len,
		.fd = p->fd,
		.flags = (p->wildcard ? 0 : KVM_IOEVENTFD_FLAG_DATAMATCH) |
			 (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};

	return emu_sys_ioctl(pt->vm_fd, KVM_IOEVENTFD, &k) < 0 ? -1 : 0;
}

static void emu_ioeventfd_unregister(struct emu_partition *pt, struct emu_ioeventfd *p)
{
	for (uint32_t len = 0; len <= 8; len++)
		if (p->kvm_lens & (1u << len))
			(void)emu_kvm_ioeventfd(pt, p, len, true);
	p->kvm_lens = 0;
}

/*
 * The doorbell (mshv_register_doorbell) as KVM ioeventfds. KVM takes len 0
 * (any size) only without DATAMATCH, so "any size, this value" becomes one
 * KVM ioeventfd per size the value fits in. KVM's collision rule is stricter
 * than ioeventfd_check_collision (a len-0 entry collides with every length at
 * its address): a length KVM refuses with EEXIST stays unregistered there and
 * is matched in software by emu_ioeventfd_mmio_write.
 */
static int emu_ioeventfd_register(struct emu_partition *pt, struct emu_ioeventfd *p)
{
	static const uint32_t sizes[] = { 1, 2, 4, 8 };

	if (p->len || p->wildcard) {
		if (emu_kvm_ioeventfd(pt, p, p->len, false) == 0)
			p->kvm_lens |= 1u << p->len;
		else if (errno != EEXIST)
			return -1;
		return 0;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t len = sizes[i];

		if (len < 8 && p->datamatch >> (8 * len))
			continue;	/* a write of this size never equals datamatch */
		if (emu_kvm_ioeventfd(pt, p, len, false) == 0) {
			p->kvm_lens |= 1u << len;
		} else if (errno != EEXIST) {
			int err = errno;

			emu_ioeventfd_unregister(pt, p);
			errno = err;
			return -1;
		}
	}
	return 0;
}

static void emu_ioeventfd_free(struct emu_partition *pt, struct emu_ioeventfd *p)
{
	emu_ioeventfd_unregister(pt, p);
	emu_sys_close(p->fd);
	free(p);
}

/* ioeventfd_check_collision */
static bool emu_ioeventfd_collides(struct emu_partition *pt, const struct emu_ioeventfd *p)
{
	for (struct emu_ioeventfd *q = pt->ioeventfds; q; q = q->next)
		if (q->addr == p->addr && q->len == p->len &&
		    (q->wildcard || p->wildcard || q->datamatch == p->datamatch))
			return true;
	return false;
}

/* mshv_assign_ioeventfd */
static int emu_ioeventfd_assign(struct emu_partition *pt, const struct mshv_user_ioeventfd *args)
{
	struct emu_ioeventfd *p;
	int id, err;

	/* "must be natural-word sized" */
	switch (args->len) {
	case 0: case 1: case 2: case 4: case 8:
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	/* range overflow */
	if (args->addr + args->len < args->addr) {
		errno = EINVAL;
		return -1;
	}
	/* eventfd_ctx_fdget: EBADF / EINVAL */
	id = emu_eventfd_id(args->fd);
	if (id < 0)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	p->eventfd_id = id;
	p->addr = args->addr;
	p->len = args->len;
	p->wildcard = !(args->flags & (1u << MSHV_IOEVENTFD_BIT_DATAMATCH));
	p->datamatch = p->wildcard ? 0 : args->datamatch;
	p->fd = emu_dupfd(args->fd);
	if (p->fd < 0) {
		err = errno;
		free(p);
		errno = err;
		return -1;
	}
	pthread_rwlock_wrlock(&emu_irq_lock);
	if (emu_ioeventfd_collides(pt, p)) {
		err = EEXIST;
		goto fail;
	}
	if (emu_ioeventfd_register(pt, p) < 0) {
		err = errno;
		goto fail;
	}
	p->next = pt->ioeventfds;
	pt->ioeventfds = p;
	pthread_rwlock_unlock(&emu_irq_lock);
	return 0;
fail:
	pthread_rwlock_unlock(&emu_irq_lock);
	emu_sys_close(p->fd);
	free(p);
	errno = err;
	return -1;
}

/*
 * mshv_deassign_ioeventfd: the entry with the same eventfd, addr, len and
 * wildcard-ness (and datamatch unless wildcard), else ENOENT.
 */
static int emu_ioeventfd_deassign(struct emu_partition *pt, const struct mshv_user_ioeventfd *args)
{
	bool wildcard = !(args->flags & (1u << MSHV_IOEVENTFD_BIT_DATAMATCH));
	struct emu_ioeventfd **pp;
	int id;

	id = emu_eventfd_id(args->fd);
	if (id < 0)
		return -1;
	pthread_rwlock_wrlock(&emu_irq_lock);
	for (pp = &pt->ioeventfds; *pp; pp = &(*pp)->next) {
		struct emu_ioeventfd *p = *pp;

		if (p->eventfd_id != id || p->addr != args->addr || p->len != args->len ||
		    p->wildcard != wildcard)
			continue;
		if (!p->wildcard && p->datamatch != args->datamatch)
			continue;
		*pp = p->next;
		pthread_rwlock_unlock(&emu_irq_lock);
		emu_ioeventfd_free(pt, p);
		return 0;
	}
	pthread_rwlock_unlock(&emu_irq_lock);
	errno = ENOENT;
	return -1;
}

/* mshv_set_unset_ioeventfd */
int emu_ioeventfd(struct emu_partition *pt, const struct mshv_user_ioeventfd *args)
{
	bool rsvd = false;

	for (size_t i = 0; i < sizeof(args->rsvd); i++)
		rsvd |= args->rsvd[i] != 0;
	if ((args->flags & ~(uint32_t)MSHV_IOEVENTFD_FLAGS_MASK) || rsvd) {
		errno = EINVAL;
		return -1;
	}
	/* "PIO not yet implemented" */
	if (args->flags & (1u << MSHV_IOEVENTFD_BIT_PIO)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (args->flags & (1u << MSHV_IOEVENTFD_BIT_DEASSIGN))
		return emu_ioeventfd_deassign(pt, args);
	return emu_ioeventfd_assign(pt, args);
}

/*
 * ioeventfd_mmio_write for the lengths KVM would not take (see
 * emu_ioeventfd_register). run.c calls this for a guest MMIO write KVM
 * passed on; true means the write was a doorbell: signal, no intercept.
 */
bool emu_ioeventfd_mmio_write(struct emu_partition *pt, uint64_t gpa, uint32_t len, uint64_t data)
{
	bool hit = false;

	if (len < 8)
		data &= (1ULL << (8 * len)) - 1;
	pthread_rwlock_rdlock(&emu_irq_lock);
	for (struct emu_ioeventfd *p = pt->ioeventfds; p && !hit; p = p->next) {
		if (p->addr != gpa || (p->len && p->len != len) || (p->kvm_lens & (1u << p->len)))
			continue;
		if (!p->len && !p->wildcard && (p->kvm_lens & (1u << len)))
			continue;
		if (!p->wildcard && p->datamatch != data)
			continue;
		emu_eventfd_signal(p->fd);
		hit = true;
	}
	pthread_rwlock_unlock(&emu_irq_lock);
	return hit;
}

/* ---- partition fd closed ------------------------------------------------- */

/*
 * mshv_eventfd_release: every ioeventfd, then every irqfd. KVM's irqfds need
 * an fd of their eventfd to be deassigned: one still open in this process is
 * found by id; an eventfd with none was closed, and KVM detached it on HUP.
 */
void emu_irq_release(struct emu_partition *pt)
{
	struct emu_ioeventfd *p;
	struct emu_irqfd *irqfd;

	pthread_rwlock_wrlock(&emu_irq_lock);
	p = pt->ioeventfds;
	irqfd = pt->irqfds;
	pt->ioeventfds = NULL;
	pt->irqfds = NULL;
	pthread_rwlock_unlock(&emu_irq_lock);

	while (p) {
		struct emu_ioeventfd *next = p->next;

		emu_ioeventfd_free(pt, p);
		p = next;
	}
	while (irqfd) {
		struct emu_irqfd *next = irqfd->next;

		if (irqfd->in_kvm) {
			int fd = emu_eventfd_find(irqfd->eventfd_id);

			if (fd >= 0)
				(void)emu_kvm_irqfd(pt, fd, irqfd->gsi, true);
		}
		emu_irqfd_free(irqfd);
		irqfd = next;
	}
}

/* ---- HvCallAssertVirtualInterrupt ---------------------------------------- */

/*
 * The hypervisor side of HvCallAssertVirtualInterrupt: one MSI to the
 * LAPIC(s) through KVM_SIGNAL_MSI. The Hyper-V interrupt types FIXED..EXTINT
 * are the x86 delivery modes; LOCALINT0/1 have no MSI form.
 * Errors (hypercalls.c turns them into a status): EINVAL for a type or an APIC id
 * an MSI cannot carry, and for a partition without LAPIC (no APIC to deliver
 * to: HV_STATUS_INVALID_PARAMETER is our choice, unverified). KVM reports no
 * error for a destination that matches no APIC; neither do we.
 */
int emu_assert_interrupt(struct emu_partition *pt, uint32_t vector, uint64_t apic_id,
			 uint32_t type, bool logical, bool level)
{
	struct emu_lapic_irq irq = {
		.vector = vector & EMU_MSI_DATA_VECTOR_MASK,
		.apic_id = (uint32_t)apic_id,
		.level = level,
		.logical = logical,
	};
	struct kvm_msi msi = { 0 };

	switch (type) {
	case HV_X64_INTERRUPT_TYPE_FIXED:
	case HV_X64_INTERRUPT_TYPE_LOWESTPRIORITY:
	case HV_X64_INTERRUPT_TYPE_SMI:
	case HV_X64_INTERRUPT_TYPE_REMOTEREAD:
	case HV_X64_INTERRUPT_TYPE_NMI:
	case HV_X64_INTERRUPT_TYPE_INIT:
	case HV_X64_INTERRUPT_TYPE_SIPI:
	case HV_X64_INTERRUPT_TYPE_EXTINT:
		irq.type = type;
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (!pt->lapic || vector > EMU_MSI_DATA_VECTOR_MASK || apic_id > EMU_MSI_ADDR_DEST_MASK) {
		errno = EINVAL;
		return -1;
	}
	emu_msi_encode(&irq, &msi.address_lo, &msi.data);
	return emu_sys_ioctl(pt->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -1 : 0;
}
