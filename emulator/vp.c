/* SPDX-License-Identifier: MIT */
/*
 * Driver side.
 *
 * VPs (drivers/hv/mshv_root_main.c: mshv_partition_ioctl_create_vp,
 * mshv_vp_ioctl, mshv_vp_mmap, mshv_vp_release).
 *
 * A VP is a KVM vCPU plus a 2-page memfd: page 0 is the register page
 * (MSHV_VP_MMAP_OFFSET_REGISTERS), page 1 the intercept-message page
 * (MSHV_VP_MMAP_OFFSET_INTERCEPT_MESSAGE). The emulator keeps its own mapping
 * of both (vp->reg_page, vp->msg_page) and its own fd of the memfd
 * (vp->handle_fd); the client's VP fd is a dup of it.
 *
 * The VP starts in the x86 reset state, which is KVM's vCPU default (real
 * mode, CS selector 0xF000 base 0xFFFF0000, RIP 0xFFF0), and with
 * EXPLICIT_SUSPEND set: it runs only inside RUN_VP. Its register page is
 * valid from creation (version 1, isvalid 1, the reset state), as a real
 * hypervisor's is once the driver has mapped it (HvCallMapVpStatePage).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "emu.h"

#define EMU_VP_PAGES 2

/* Undo whatever part of a VP exists; used by destroy and by create's failure path. */
static void emu_vp_free(struct emu_vp *vp)
{
	emu_vpstate_destroy(vp);	/* SIMP/SIEFP pages, synthetic timers */
	if (vp->reg_page)
		emu_sys_munmap(vp->reg_page, EMU_VP_PAGES * EMU_PAGE_SIZE);
	if (vp->handle_fd >= 0)
		emu_sys_close(vp->handle_fd);
	if (vp->run)
		emu_sys_munmap(vp->run, vp->pt->kvm_run_size);
	if (vp->vcpu_fd >= 0)
		emu_sys_close(vp->vcpu_fd);
	pthread_mutex_destroy(&vp->lock);
	free(vp);
}

/* HvCallCreateVp and the mapping of its pages, as KVM objects. */
static int emu_vp_init(struct emu_vp *vp)
{
	struct emu_partition *pt = vp->pt;
	void *p;
	int size;

	if (!pt->kvm_run_size) {
		size = emu_sys_ioctl(pt->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
		if (size < 0)
			return -1;
		pt->kvm_run_size = (size_t)size;
	}
	vp->vcpu_fd = emu_sys_ioctl(pt->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)vp->index);
	if (vp->vcpu_fd < 0)
		return -1;
	p = emu_sys_mmap(NULL, pt->kvm_run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vp->vcpu_fd, 0);
	if (p == MAP_FAILED)
		return -1;
	vp->run = p;
	if (emu_cpuid_vp_init(vp) < 0)
		return -1;

	vp->handle_fd = emu_memfd("mshv_vp", EMU_VP_PAGES * EMU_PAGE_SIZE);
	if (vp->handle_fd < 0)
		return -1;
	p = emu_sys_mmap(NULL, EMU_VP_PAGES * EMU_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vp->handle_fd, 0);
	if (p == MAP_FAILED)
		return -1;
	vp->reg_page = p;
	vp->msg_page = (struct hv_message *)((char *)p + EMU_PAGE_SIZE);
	if (emu_synthetic_vp_init(vp) < 0 || emu_synthetic_msr_exits(pt) < 0)
		return -1;
	/* the page shows the reset state before the first RUN_VP */
	if (emu_regs_sync(vp) < 0)
		return -1;
	return emu_regpage_fill(vp, true);
}

/* mshv_partition_ioctl_create_vp (partition mutex held) */
int emu_create_vp(struct emu_partition *pt, const struct mshv_create_vp *arg)
{
	struct emu_file *f = NULL;
	struct emu_vp *vp;
	int fd = -1, err;

	if (arg->vp_index >= EMU_MAX_VPS) {
		errno = EINVAL;
		return -1;
	}
	/* the index stays taken after its fd is closed (mshv_vp_release) */
	if (pt->vps[arg->vp_index]) {
		errno = EEXIST;
		return -1;
	}
	vp = calloc(1, sizeof(*vp));
	if (!vp) {
		errno = ENOMEM;
		return -1;
	}
	vp->pt = pt;
	vp->index = arg->vp_index;
	vp->handle_fd = -1;
	vp->vcpu_fd = -1;
	vp->explicit_suspend = true;
	pthread_mutex_init(&vp->lock, NULL);
	if (emu_vp_init(vp) < 0)
		goto fail;

	/* anon_inode_getfd("mshv_vp", ..., O_RDWR | O_CLOEXEC) */
	fd = (int)syscall(SYS_fcntl, vp->handle_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	f = calloc(1, sizeof(*f));
	if (!f) {
		errno = ENOMEM;
		goto fail;
	}
	f->kind = EMU_VP;
	atomic_init(&f->refs, 1);
	f->fmode = EMU_FMODE_READ | EMU_FMODE_WRITE;	/* anon_inode_getfd(O_RDWR) */
	f->vp = vp;
	if (emu_fd_install(fd, f) < 0)
		goto fail;
	emu_partition_get(pt);		/* the VP fd's reference */
	pt->vps[vp->index] = vp;
	if (vp->index >= pt->vps_end)
		pt->vps_end = vp->index + 1;
	return fd;
fail:
	err = errno;
	free(f);
	if (fd >= 0)
		emu_sys_close(fd);
	emu_vp_free(vp);
	errno = err;
	return -1;
}

/* mshv_vp_ioctl_run_vp: the message goes out even if the copy fails afterwards. */
static int emu_vp_ioctl_run_vp(struct emu_vp *vp, void *uarg)
{
	struct hv_message msg;
	int ret;

	memset(&msg, 0, sizeof(msg));
	emu_time_vp_run(vp);
	emu_synthetic_run_begin(vp);
	ret = emu_run_vp(vp, &msg);
	emu_synthetic_run_end(vp);
	if (ret < 0)
		return -1;
	return emu_copy_to_user(uarg, &msg, sizeof(msg));
}

static int emu_vp_ioctl_locked(struct emu_vp *vp, unsigned long req, void *arg)
{
	switch (req) {
	case MSHV_RUN_VP:
		return emu_vp_ioctl_run_vp(vp, arg);
	case MSHV_GET_VP_STATE:
		return emu_vp_state(vp, false, arg);
	case MSHV_SET_VP_STATE:
		return emu_vp_state(vp, true, arg);
	case MSHV_ROOT_HVCALL:
		return emu_root_hvcall(vp->pt, EMU_HVCALL_VP, arg);
	default:
		errno = ENOTTY;
		return -1;
	}
}

/* mshv_vp_ioctl: every VP ioctl under the VP mutex. */
int emu_vp_ioctl(struct emu_vp *vp, unsigned long req, void *arg)
{
	int ret;

	pthread_mutex_lock(&vp->lock);
	ret = emu_vp_ioctl_locked(vp, req, arg);
	pthread_mutex_unlock(&vp->lock);
	return ret;
}

/*
 * mshv_vp_mmap: the page is chosen by the mapping's starting offset; length,
 * protection and MAP_SHARED/PRIVATE are not checked, and every page of a
 * longer mapping shows that same page (the fault handler keys on vm_pgoff).
 * off is the mmap offset in bytes.
 */
void *emu_vp_mmap(struct emu_vp *vp, void *addr, size_t len, int prot, int flags, long off)
{
	long pgoff = off / (long)EMU_PAGE_SIZE;
	char *p;

	/* do_mmap's own checks come before the driver's */
	if (!len || off % (long)EMU_PAGE_SIZE || off < 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	switch (pgoff) {
	case MSHV_VP_MMAP_OFFSET_REGISTERS:
	case MSHV_VP_MMAP_OFFSET_INTERCEPT_MESSAGE:
		break;
	case MSHV_VP_MMAP_OFFSET_GHCB:
		errno = ENODEV;		/* SNP partitions only */
		return MAP_FAILED;
	default:
		errno = EINVAL;
		return MAP_FAILED;
	}
	p = emu_sys_mmap(addr, len, prot, flags, vp->handle_fd, off);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	for (size_t done = EMU_PAGE_SIZE; done < len; done += EMU_PAGE_SIZE) {
		void *q = emu_sys_mmap(p + done, EMU_PAGE_SIZE, prot,
				       (flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED,
				       vp->handle_fd, off);
		if (q == MAP_FAILED) {
			int err = errno;

			emu_sys_munmap(p, len);
			errno = err;
			return MAP_FAILED;
		}
	}
	return p;
}

/* At partition destroy: no VP fd is open, so no call is in flight. */
void emu_vp_destroy(struct emu_vp *vp)
{
	emu_vp_free(vp);
}
