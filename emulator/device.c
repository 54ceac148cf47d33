/* SPDX-License-Identifier: MIT */
/*
 * Driver side.
 *
 * /dev/mshv and partition fds (drivers/hv/mshv_root_main.c: mshv_dev_ioctl,
 * mshv_ioctl_create_partition, mshv_partition_ioctl, mshv_partition_release,
 * destroy_partition).
 *
 * A partition is a KVM VM. With MSHV_PT_BIT_LAPIC it gets KVM's split
 * irqchip: an in-kernel LAPIC per vCPU (the hypervisor's LAPIC) and no
 * PIC/IOAPIC, which mshv does not have either. Without it there is no
 * in-kernel irqchip at all, so HLT exits to us.
 */
#include <fcntl.h>
#include <stdlib.h>

#include "emu.h"

/* Partition ids: unique per process, from 1 (0 and HV_PARTITION_ID_SELF never used). */
static atomic_uint_fast64_t emu_next_partition_id = 1;

static struct emu_file *emu_file_new(enum emu_kind kind)
{
	struct emu_file *f = calloc(1, sizeof(*f));

	if (!f) {
		errno = ENOMEM;
		return NULL;
	}
	f->kind = kind;
	atomic_init(&f->refs, 1);	/* the fd table's reference */
	f->fmode = EMU_FMODE_READ | EMU_FMODE_WRITE;	/* anon_inode_getfd(O_RDWR) */
	return f;
}

/* Hand out fd for f; on failure fd is closed and f freed. */
static int emu_handle_install(int fd, struct emu_file *f)
{
	int err;

	if (emu_fd_install(fd, f) < 0) {
		err = errno;
		emu_sys_close(fd);
		free(f);
		errno = err;
		return -1;
	}
	return fd;
}

static int emu_kvm_open(void)
{
	int fd = emu_sys_openat(AT_FDCWD, "/dev/kvm", O_RDWR | O_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (emu_sys_ioctl(fd, KVM_GET_API_VERSION, NULL) != KVM_API_VERSION) {
		emu_sys_close(fd);
		errno = ENODEV;
		return -1;
	}
	return fd;
}

/*
 * mshv_dev_open checks nothing; the device exists only on a root partition,
 * which for us means: /dev/kvm works. Its errno (ENOENT when missing) is ours.
 */
int emu_dev_open(int flags)
{
	struct emu_file *f;
	int kvm_fd, fd;

	kvm_fd = emu_kvm_open();
	if (kvm_fd < 0)
		return -1;
	emu_sys_close(kvm_fd);
	fd = emu_memfd("mshv", 0);
	if (fd < 0)
		return -1;
	f = emu_file_new(EMU_DEVICE);
	if (!f) {
		emu_sys_close(fd);
		errno = ENOMEM;
		return -1;
	}
	/* the file's FMODE_READ/FMODE_WRITE come from the open */
	f->fmode = (flags & O_ACCMODE) == O_RDONLY ? EMU_FMODE_READ
		 : (flags & O_ACCMODE) == O_WRONLY ? EMU_FMODE_WRITE
		 : EMU_FMODE_READ | EMU_FMODE_WRITE;
	return emu_handle_install(fd, f);
}

static bool emu_nonzero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return true;
	return false;
}

/* mshv_ioctl_process_pt_flags: the v1/v2 argument checks, in the kernel's order. */
static int emu_process_pt_flags(void *uarg, struct mshv_create_partition_v2 *args)
{
	memset(args, 0, sizeof(*args));
	/* First the v1 struct, whatever the client's version. */
	if (emu_copy_from_user(args, uarg, sizeof(struct mshv_create_partition)) < 0)
		return -1;
	if ((args->pt_flags & ~(uint64_t)MSHV_PT_FLAGS_MASK) ||
	    args->pt_isolation >= MSHV_PT_ISOLATION_COUNT) {
		errno = EINVAL;
		return -1;
	}
	if (!(args->pt_flags & (1ULL << MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES)))
		return 0;
	/* Bit 3: the full v2 struct, checked again from the new copy. */
	if (emu_copy_from_user(args, uarg, sizeof(*args)) < 0)
		return -1;
	if ((args->pt_flags & ~(uint64_t)MSHV_PT_FLAGS_MASK) ||
	    args->pt_isolation >= MSHV_PT_ISOLATION_COUNT ||
	    args->pt_num_cpu_fbanks != MSHV_NUM_CPU_FEATURES_BANKS ||
	    emu_nonzero(args->pt_rsvd, sizeof(args->pt_rsvd)) ||
	    emu_nonzero(args->pt_rsvd1, sizeof(args->pt_rsvd1))) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static void emu_partition_free(struct emu_partition *pt)
{
	if (pt->vm_fd >= 0)
		emu_sys_close(pt->vm_fd);
	if (pt->kvm_fd >= 0)
		emu_sys_close(pt->kvm_fd);
	pthread_rwlock_destroy(&pt->regions_lock);
	emu_time_destroy(pt);
	emu_synthetic_destroy(pt);
	pthread_mutex_destroy(&pt->lock);
	free(pt);
}

/* The KVM side of HvCallCreatePartition. */
static int emu_partition_kvm_init(struct emu_partition *pt)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_SPLIT_IRQCHIP,
		/*
		 * KVM exits on EOI only for level routes with GSI below this
		 * count, and mshv matches resamplers by vector == GSI
		 * (mshv_notify_acked_gsi), so cover every guest GSI.
		 */
		.args[0] = EMU_MAX_GUEST_IRQS,
	};

	pt->kvm_fd = emu_kvm_open();
	if (pt->kvm_fd < 0)
		return -1;
	pt->vm_fd = emu_sys_ioctl(pt->kvm_fd, KVM_CREATE_VM, 0);
	if (pt->vm_fd < 0)
		return -1;
	if (pt->lapic && emu_sys_ioctl(pt->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return -1;
	return 0;
}

/* mshv_ioctl_create_partition */
static int emu_create_partition(void *uarg)
{
	struct mshv_create_partition_v2 args;
	struct emu_partition *pt;
	struct emu_file *f;
	int fd, err;

	if (emu_process_pt_flags(uarg, &args) < 0)
		return -1;

	pt = calloc(1, sizeof(*pt));
	if (!pt) {
		errno = ENOMEM;
		return -1;
	}
	atomic_init(&pt->refs, 1);		/* the partition fd */
	pthread_mutex_init(&pt->lock, NULL);
	pthread_rwlock_init(&pt->regions_lock, NULL);
	emu_time_init(pt);
	emu_synthetic_init(pt);
	pt->id = atomic_fetch_add(&emu_next_partition_id, 1);
	pt->handle_fd = -1;
	pt->kvm_fd = -1;
	pt->vm_fd = -1;
	pt->pt_flags = args.pt_flags;
	pt->pt_isolation = args.pt_isolation;
	/* v1: nothing disabled (the hypervisor enables all it supports). */
	if (args.pt_flags & (1ULL << MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES)) {
		memcpy(pt->cpu_fbanks, args.pt_cpu_fbanks, sizeof(pt->cpu_fbanks));
		pt->disabled_xsave = args.pt_disabled_xsave;
	}
	pt->lapic = args.pt_flags & (1ULL << MSHV_PT_BIT_LAPIC);

	if (emu_partition_kvm_init(pt) < 0)
		goto fail;
	/* anon_inode_getfd("mshv_partition", ..., O_RDWR | O_CLOEXEC) */
	fd = emu_memfd("mshv_partition", 0);
	if (fd < 0)
		goto fail;
	f = emu_file_new(EMU_PARTITION);
	if (!f) {
		emu_sys_close(fd);
		goto fail;
	}
	f->pt = pt;
	pt->handle_fd = fd;
	if (emu_handle_install(fd, f) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	emu_partition_free(pt);
	errno = err;
	return -1;
}

/* mshv_dev_ioctl: no lock; exact 32-bit numbers, everything else ENOTTY. */
int emu_dev_ioctl(unsigned long req, void *arg)
{
	switch (req) {
	case MSHV_CREATE_PARTITION:
		return emu_create_partition(arg);
	case MSHV_ROOT_HVCALL:
		/* self-targeted passthrough (≥6.19), mshv_ioctl_passthru_hvcall(NULL, ...) */
		return emu_root_hvcall(NULL, EMU_HVCALL_DEVICE, arg);
	default:
		errno = ENOTTY;
		return -1;
	}
}

/* copy_from_user of a fixed-size argument; EFAULT comes before any other check. */
#define EMU_COPY_ARG(dst, uarg) emu_copy_from_user(&(dst), (uarg), sizeof(dst))

static int emu_partition_ioctl_locked(struct emu_partition *pt, unsigned long req, void *arg)
{
	union {
		struct mshv_create_vp vp;
		struct mshv_user_mem_region mem;
		struct mshv_user_irqfd irqfd;
		struct mshv_user_ioeventfd ioeventfd;
		struct mshv_user_irq_table irq_table;
		struct mshv_gpap_access_bitmap gpap;
	} a;

	switch (req) {
	case MSHV_INITIALIZE_PARTITION:
		/* mshv_partition_ioctl_initialize: a second call returns 0. */
		pt->initialized = true;
		return 0;
	case MSHV_CREATE_VP:
		if (EMU_COPY_ARG(a.vp, arg) < 0)
			return -1;
		return emu_create_vp(pt, &a.vp);
	case MSHV_SET_GUEST_MEMORY:
		if (EMU_COPY_ARG(a.mem, arg) < 0)
			return -1;
		return emu_set_guest_memory(pt, &a.mem);
	case MSHV_IRQFD:
		if (EMU_COPY_ARG(a.irqfd, arg) < 0)
			return -1;
		return emu_irqfd(pt, &a.irqfd);
	case MSHV_IOEVENTFD:
		if (EMU_COPY_ARG(a.ioeventfd, arg) < 0)
			return -1;
		return emu_ioeventfd(pt, &a.ioeventfd);
	case MSHV_SET_MSI_ROUTING:
		/* mshv_partition_ioctl_set_msi_routing: the header first; irq.c reads the entries. */
		if (emu_copy_from_user(&a.irq_table, arg, sizeof(a.irq_table)) < 0)
			return -1;
		return emu_set_msi_routing(pt, arg);
	case MSHV_GET_GPAP_ACCESS_BITMAP:
		if (EMU_COPY_ARG(a.gpap, arg) < 0)
			return -1;
		return emu_gpap_access_bitmap(pt, &a.gpap);
	case MSHV_ROOT_HVCALL:
		/* hvcall.c copies the 32 bytes in (and writes status/reps back). */
		return emu_root_hvcall(pt, EMU_HVCALL_PARTITION, arg);
	default:
		errno = ENOTTY;
		return -1;
	}
}

/* mshv_partition_ioctl: every ioctl under the partition mutex. */
int emu_partition_ioctl(struct emu_partition *pt, unsigned long req, void *arg)
{
	int ret;

	pthread_mutex_lock(&pt->lock);
	ret = emu_partition_ioctl_locked(pt, req, arg);
	pthread_mutex_unlock(&pt->lock);
	return ret;
}

void emu_partition_get(struct emu_partition *pt)
{
	atomic_fetch_add(&pt->refs, 1);
}

/*
 * destroy_partition: runs when the partition fd and every VP fd are closed.
 * VPs first (vCPU fds, kvm_run, their pages), then memory, hypercall state,
 * and the VM itself.
 */
static void emu_partition_destroy(struct emu_partition *pt)
{
	for (size_t i = 0; i < EMU_MAX_VPS; i++) {
		if (pt->vps[i]) {
			emu_vp_destroy(pt->vps[i]);
			pt->vps[i] = NULL;
		}
	}
	emu_gpap_destroy(pt);
	emu_regions_destroy(pt);
	emu_props_destroy(pt);
	emu_cpuid_results_destroy(pt);
	free(pt->routes);
	pt->routes = NULL;
	emu_partition_free(pt);
}

void emu_partition_put(struct emu_partition *pt)
{
	if (atomic_fetch_sub(&pt->refs, 1) == 1)
		emu_partition_destroy(pt);
}

/*
 * mshv_partition_release: closing the partition fd detaches the irqfds and
 * ioeventfds at once (mshv_eventfd_release); memory and VPs stay until the
 * last reference (the caller drops the fd's reference next).
 */
void emu_partition_release(struct emu_partition *pt)
{
	emu_irq_release(pt);
	pt->handle_fd = -1;
}
