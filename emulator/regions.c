/* SPDX-License-Identifier: MIT */
/*
 * Driver side.
 *
 * MSHV_SET_GUEST_MEMORY -> KVM memslots (mshv_partition_ioctl_set_memory,
 * mshv_map_user_memory, mshv_unmap_user_memory, mshv_partition_create_region
 * in drivers/hv/mshv_root_main.c and mshv_regions.c).
 *
 * Each region is one memslot. A region without WRITABLE becomes a
 * KVM_MEM_READONLY slot, so a guest write exits as MMIO and run.c turns it
 * into a GPA_INTERCEPT. KVM cannot take execute rights away, so EXECUTABLE
 * is recorded but not enforced.
 *
 * Region types: the kernel makes an MMIO region of a VM_IO/VM_PFNMAP VMA
 * (e.g. a VFIO BAR). KVM accepts such VMAs in a memslot as well (it resolves
 * PFNMAP pages itself), so every region is mapped as RAM here and
 * region->mmio stays false. Like the 7.x movable regions, nothing is pinned
 * or touched at map time: KVM faults pages in on first guest access.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "emu.h"

/* x86_64 TASK_SIZE_MAX with 4-level paging: the end of user space for access_ok(). */
#define EMU_TASK_SIZE_MAX ((1ULL << 47) - EMU_PAGE_SIZE)
#define EMU_MAX_SLOTS (sizeof(((struct emu_partition *)0)->slot_bitmap) * 8)

static bool emu_rsvd_nonzero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return true;
	return false;
}

static uint32_t emu_slot_flags(struct emu_partition *pt, const struct emu_region *r, bool dirty)
{
	uint32_t flags = 0;

	if (!(r->flags & (1 << MSHV_SET_MEM_BIT_WRITABLE)))
		flags |= KVM_MEM_READONLY;
	else if (dirty)
		flags |= KVM_MEM_LOG_DIRTY_PAGES;	/* KVM refuses it on read-only slots */
	return flags;
}

static int emu_slot_set(struct emu_partition *pt, const struct emu_region *r, uint32_t flags,
			bool remove)
{
	struct kvm_userspace_memory_region mr = {
		.slot = r->slot,
		.flags = flags,
		.guest_phys_addr = r->guest_pfn * EMU_PAGE_SIZE,
		.memory_size = remove ? 0 : r->npages * EMU_PAGE_SIZE,
		.userspace_addr = r->userspace_addr,
	};

	return emu_sys_ioctl(pt->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr);
}

static int emu_slot_alloc(struct emu_partition *pt)
{
	int nr = pt->kvm_nr_slots;

	if (!nr) {	/* KVM's count is fixed: asked once */
		nr = emu_sys_ioctl(pt->kvm_fd, KVM_CHECK_EXTENSION, (void *)KVM_CAP_NR_MEMSLOTS);
		if (nr <= 0 || (size_t)nr > EMU_MAX_SLOTS)
			nr = EMU_MAX_SLOTS;
		pt->kvm_nr_slots = nr;
	}
	for (int slot = 0; slot < nr; slot++) {
		if (!(pt->slot_bitmap[slot / 64] & (1ULL << (slot % 64)))) {
			pt->slot_bitmap[slot / 64] |= 1ULL << (slot % 64);
			return slot;
		}
	}
	errno = ENOMEM;
	return -1;
}

static void emu_slot_free(struct emu_partition *pt, uint32_t slot)
{
	pt->slot_bitmap[slot / 64] &= ~(1ULL << (slot % 64));
}

/* The region holding gfn. Caller holds pt->lock or pt->regions_lock. */
struct emu_region *emu_region_find(struct emu_partition *pt, uint64_t gfn)
{
	for (struct emu_region *r = pt->regions; r; r = r->next)
		if (gfn >= r->guest_pfn && gfn - r->guest_pfn < r->npages)
			return r;
	return NULL;
}

/* mshv_unmap_user_memory: only the exact (uaddr, gfn, size) triple goes. */
static int emu_unmap_user_memory(struct emu_partition *pt, const struct mshv_user_mem_region *mem)
{
	struct emu_region *r, **pp;

	r = emu_region_find(pt, mem->guest_pfn);
	if (!r) {
		errno = ENOENT;		/* ≤6.18: EINVAL */
		return -1;
	}
	if (r->userspace_addr != mem->userspace_addr || r->guest_pfn != mem->guest_pfn ||
	    r->npages != mem->size / EMU_PAGE_SIZE) {
		errno = EINVAL;
		return -1;
	}
	pthread_rwlock_wrlock(&pt->regions_lock);
	for (pp = &pt->regions; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	pthread_rwlock_unlock(&pt->regions_lock);
	/* the hypervisor's unmap failures are ignored by the kernel too */
	emu_slot_set(pt, r, 0, true);
	emu_slot_free(pt, r->slot);
	free(r);
	return 0;
}

/* Is there a VMA at addr? (vma_lookup in mshv_map_user_memory; mincore fails with ENOMEM if not.) */
static bool emu_vma_exists(uint64_t addr)
{
	unsigned char vec;

	return mincore((void *)(uintptr_t)addr, EMU_PAGE_SIZE, &vec) == 0 || errno != ENOMEM;
}

/* mshv_map_user_memory / mshv_partition_create_region */
static int emu_map_user_memory(struct emu_partition *pt, const struct mshv_user_mem_region *mem)
{
	uint64_t npages = mem->size / EMU_PAGE_SIZE;
	struct emu_region *r;
	int slot, err;

	/* access_ok(userspace_addr, size) */
	if (mem->userspace_addr + mem->size < mem->userspace_addr ||
	    mem->userspace_addr + mem->size > EMU_TASK_SIZE_MAX) {
		errno = EINVAL;
		return -1;
	}
	/* only the first address is looked up */
	if (!emu_vma_exists(mem->userspace_addr)) {
		errno = EINVAL;
		return -1;
	}
	/* 7.2: full interval test on GFNs; overlapping userspace ranges are fine. */
	for (r = pt->regions; r; r = r->next) {
		if (mem->guest_pfn < r->guest_pfn + r->npages &&
		    r->guest_pfn < mem->guest_pfn + npages) {
			errno = EEXIST;
			return -1;
		}
	}
	/*
	 * HvCallMapGpaPages: no GPA beyond the partition's physical address
	 * width (PHYSICAL_ADDRESS_WIDTH, properties.c), the width its guests'
	 * CPUID 0x80000008 shows; EINVAL as for HV_STATUS_INVALID_PARAMETER.
	 */
	if (!emu_gpa_range_fits(pt, mem->guest_pfn, npages)) {
		errno = EINVAL;
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		return -1;
	}
	slot = emu_slot_alloc(pt);
	if (slot < 0) {
		free(r);
		return -1;
	}
	r->guest_pfn = mem->guest_pfn;
	r->npages = npages;
	r->userspace_addr = mem->userspace_addr;
	r->flags = mem->flags;
	r->mmio = false;
	r->slot = (uint32_t)slot;
	if (emu_slot_set(pt, r, emu_slot_flags(pt, r, pt->gpa_access_tracking), false) < 0) {
		/* the hypervisor refused the mapping (e.g. a GPA beyond its limit) */
		err = errno;
		emu_slot_free(pt, r->slot);
		free(r);
		errno = err;
		return -1;
	}
	pthread_rwlock_wrlock(&pt->regions_lock);
	r->next = pt->regions;
	pt->regions = r;
	pthread_rwlock_unlock(&pt->regions_lock);
	return 0;
}

/* mshv_partition_ioctl_set_memory: checks common to map and unmap, then either. */
int emu_set_guest_memory(struct emu_partition *pt, const struct mshv_user_mem_region *mem)
{
	if (!mem->size || mem->size % EMU_PAGE_SIZE || mem->userspace_addr % EMU_PAGE_SIZE ||
	    (mem->flags & ~MSHV_SET_MEM_FLAGS_MASK) ||
	    emu_rsvd_nonzero(mem->rsvd, sizeof(mem->rsvd))) {
		errno = EINVAL;
		return -1;
	}
	if (mem->flags & (1 << MSHV_SET_MEM_BIT_UNMAP))
		return emu_unmap_user_memory(pt, mem);
	return emu_map_user_memory(pt, mem);
}

int emu_regions_set_dirty_logging(struct emu_partition *pt, bool on)
{
	for (struct emu_region *r = pt->regions; r; r = r->next)
		if (emu_slot_set(pt, r, emu_slot_flags(pt, r, on), false) < 0)
			return -1;
	return 0;
}

/* At partition destroy; the VM fd is closed right after, which drops the memslots. */
void emu_regions_destroy(struct emu_partition *pt)
{
	struct emu_region *r, *next;

	pthread_rwlock_wrlock(&pt->regions_lock);
	for (r = pt->regions; r; r = next) {
		next = r->next;
		free(r);
	}
	pt->regions = NULL;
	memset(pt->slot_bitmap, 0, sizeof(pt->slot_bitmap));
	pthread_rwlock_unlock(&pt->regions_lock);
}

enum emu_gpa_copy_mode {
	EMU_GPA_READ,
	EMU_GPA_WRITE,
	EMU_GPA_READ_IN_GUARD,	/* inside emu_guarded_call: emu_guarded_load */
};

/*
 * Copy between guest physical memory and buf, region by region, regions_lock
 * held for reading: each piece through emu_copy_to/from_user, or
 * emu_guarded_load. Stops at the first GPA that is not RAM (or not writable,
 * for a write) or whose host memory is gone. Returns the bytes copied.
 */
static size_t emu_gpa_copy_locked(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len,
				  enum emu_gpa_copy_mode mode)
{
	bool write = mode == EMU_GPA_WRITE;
	size_t done = 0;

	while (done < len) {
		uint64_t cur = gpa + done;
		struct emu_region *r = emu_region_find(pt, cur / EMU_PAGE_SIZE);
		uint64_t off, avail;
		size_t n;
		void *hva;

		if (!r || r->mmio)
			break;
		if (write && !(r->flags & (1 << MSHV_SET_MEM_BIT_WRITABLE)))
			break;
		off = cur - r->guest_pfn * EMU_PAGE_SIZE;
		avail = r->npages * EMU_PAGE_SIZE - off;
		n = len - done < avail ? len - done : (size_t)avail;
		hva = (void *)(uintptr_t)(r->userspace_addr + off);
		if (mode == EMU_GPA_READ_IN_GUARD)
			emu_guarded_load((char *)buf + done, hva, n);
		/* the client may have unmapped its memory: EFAULT, not a crash */
		else if (write ? emu_copy_to_user(hva, (char *)buf + done, n) < 0
			       : emu_copy_from_user((char *)buf + done, hva, n) < 0)
			break;
		done += n;
	}
	return done;
}

static size_t emu_gpa_copy(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len,
			   bool write)
{
	size_t done;

	pthread_rwlock_rdlock(&pt->regions_lock);
	done = emu_gpa_copy_locked(pt, gpa, buf, len, write ? EMU_GPA_WRITE : EMU_GPA_READ);
	pthread_rwlock_unlock(&pt->regions_lock);
	return done;
}

/*
 * emu_gpa_read inside emu_guarded_call, with regions_lock held for reading by
 * the caller (around the guarded call: a fault must not leave it held).
 */
size_t emu_gpa_read_guarded(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len)
{
	return emu_gpa_copy_locked(pt, gpa, buf, len, EMU_GPA_READ_IN_GUARD);
}

size_t emu_gpa_read(struct emu_partition *pt, uint64_t gpa, void *buf, size_t len)
{
	return emu_gpa_copy(pt, gpa, buf, len, false);
}

size_t emu_gpa_write(struct emu_partition *pt, uint64_t gpa, const void *buf, size_t len)
{
	return emu_gpa_copy(pt, gpa, (void *)buf, len, true);
}
