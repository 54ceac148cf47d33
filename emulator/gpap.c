/* SPDX-License-Identifier: MIT */
/*
 * Driver and hypervisor side.
 *
 * MSHV_GET_GPAP_ACCESS_BITMAP (mshv_partition_ioctl_get_gpap_access_bitmap)
 * and the hypervisor side of HvCallGetGpaPagesAccessStates, on KVM dirty
 * logging.
 *
 * The hypervisor keeps an accessed and a dirty bit per guest page once
 * partition property GPA_PAGE_ACCESS_TRACKING is 1. Here every writable
 * memslot gets KVM_MEM_LOG_DIRTY_PAGES while tracking is on (regions.c), and
 * gpap.c keeps its own accessed/dirty bitmaps per region: before pages are
 * read, KVM_GET_DIRTY_LOG (get-and-reset, so nothing is lost between calls)
 * is ORed into both bitmaps; the SET/CLEAR flags then act on ours only.
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is not used: with our own bitmaps there is
 * nothing to gain from clearing KVM's log page by page.
 *
 * Deviations (KVM has no accessed bits): "accessed" = written by the guest,
 * or set through SET; guest reads are not seen. Read-only regions never get
 * dirty (KVM refuses dirty logging there; the guest cannot write them
 * anyway). Pages outside any region read as 0 and ignore the flags (the
 * hypervisor's answer there is unverified).
 */
#include <stdlib.h>

#include "emu.h"

#define EMU_GPAP_FLAGS (HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED | HV_GPA_PAGE_ACCESS_SET_ACCESSED | \
			HV_GPA_PAGE_ACCESS_CLEAR_DIRTY | HV_GPA_PAGE_ACCESS_SET_DIRTY)

/* Access state of one region's pages. */
struct emu_gpap_slot {
	struct emu_gpap_slot *next;
	uint32_t slot;
	uint64_t guest_pfn;
	uint64_t npages;
	uint64_t *accessed;		/* npages bits */
	uint64_t *dirty;
	uint64_t *log;			/* KVM_GET_DIRTY_LOG scratch */
};

struct emu_gpap {
	struct emu_gpap *next;
	struct emu_partition *pt;
	struct emu_gpap_slot *slots;
};

/* Guards the list and all state; taken after pt->regions_lock. */
static pthread_mutex_t emu_gpap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct emu_gpap *emu_gpaps;

static void emu_gpap_slot_free(struct emu_gpap_slot *s)
{
	free(s->accessed);
	free(s->dirty);
	free(s->log);
	free(s);
}

static struct emu_gpap **emu_gpap_lookup(struct emu_partition *pt)
{
	struct emu_gpap **pp;

	for (pp = &emu_gpaps; *pp; pp = &(*pp)->next)
		if ((*pp)->pt == pt)
			break;
	return pp;
}

/* Drop pt's state. Caller holds emu_gpap_lock. */
static void emu_gpap_forget(struct emu_partition *pt)
{
	struct emu_gpap **pp = emu_gpap_lookup(pt), *g = *pp;

	if (!g)
		return;
	*pp = g->next;
	while (g->slots) {
		struct emu_gpap_slot *s = g->slots;

		g->slots = s->next;
		emu_gpap_slot_free(s);
	}
	free(g);
}

void emu_gpap_destroy(struct emu_partition *pt)
{
	pthread_mutex_lock(&emu_gpap_lock);
	emu_gpap_forget(pt);
	pthread_mutex_unlock(&emu_gpap_lock);
}

/*
 * HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING: dirty logging on every
 * memslot (regions.c adds it to new ones while pt->gpa_access_tracking).
 * Switching on starts from all pages clean; switching off drops the state.
 */
int emu_gpap_set_tracking(struct emu_partition *pt, bool on)
{
	if (on == pt->gpa_access_tracking)
		return 0;
	if (emu_regions_set_dirty_logging(pt, on) < 0) {
		int err = errno;

		(void)emu_regions_set_dirty_logging(pt, pt->gpa_access_tracking);
		errno = err;
		return -1;
	}
	pthread_mutex_lock(&emu_gpap_lock);
	emu_gpap_forget(pt);
	pt->gpa_access_tracking = on;
	pthread_mutex_unlock(&emu_gpap_lock);
	return 0;
}

static struct emu_gpap_slot *emu_gpap_slot_new(const struct emu_region *r)
{
	size_t words = (r->npages + 63) / 64;
	struct emu_gpap_slot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->slot = r->slot;
	s->guest_pfn = r->guest_pfn;
	s->npages = r->npages;
	s->accessed = calloc(words, sizeof(uint64_t));
	s->dirty = calloc(words, sizeof(uint64_t));
	s->log = calloc(words, sizeof(uint64_t));
	if (!s->accessed || !s->dirty || !s->log) {
		emu_gpap_slot_free(s);
		return NULL;
	}
	return s;
}

/*
 * Make g->slots match pt->regions (a region that was unmapped and mapped
 * again starts clean). Caller holds pt->regions_lock and emu_gpap_lock.
 */
static int emu_gpap_sync(struct emu_partition *pt, struct emu_gpap *g)
{
	struct emu_gpap_slot *old = g->slots, *fresh = NULL;

	for (struct emu_region *r = pt->regions; r; r = r->next) {
		struct emu_gpap_slot **pp, *s = NULL;

		for (pp = &old; *pp; pp = &(*pp)->next) {
			if ((*pp)->slot == r->slot && (*pp)->guest_pfn == r->guest_pfn &&
			    (*pp)->npages == r->npages) {
				s = *pp;
				*pp = s->next;
				break;
			}
		}
		if (!s)
			s = emu_gpap_slot_new(r);
		if (!s) {
			g->slots = fresh;
			while (old) {
				s = old;
				old = s->next;
				emu_gpap_slot_free(s);
			}
			errno = ENOMEM;
			return -1;
		}
		s->next = fresh;
		fresh = s;
	}
	while (old) {
		struct emu_gpap_slot *s = old;

		old = s->next;
		emu_gpap_slot_free(s);
	}
	g->slots = fresh;
	return 0;
}

/* KVM_GET_DIRTY_LOG (get and reset) into the region's dirty and accessed bits. */
static void emu_gpap_harvest(struct emu_partition *pt, struct emu_gpap_slot *s)
{
	struct kvm_dirty_log log = { .slot = s->slot, .dirty_bitmap = s->log };
	size_t words = (s->npages + 63) / 64;

	/* ENOENT: the slot logs nothing (read-only region) */
	if (emu_sys_ioctl(pt->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return;
	for (size_t i = 0; i < words; i++) {
		s->dirty[i] |= s->log[i];
		s->accessed[i] |= s->log[i];
	}
}

static void emu_bit_assign(uint64_t *map, uint64_t bit, bool on)
{
	if (on)
		map[bit / 64] |= 1ULL << (bit % 64);
	else
		map[bit / 64] &= ~(1ULL << (bit % 64));
}

static bool emu_bit_test(const uint64_t *map, uint64_t bit)
{
	return map[bit / 64] >> (bit % 64) & 1;
}

/*
 * pt's access state, matched to its regions, with KVM's dirty log taken in
 * for the regions overlapping pfn..+count. Caller holds pt->regions_lock
 * (read) and emu_gpap_lock. Tracking off: HV_STATUS_INVALID_PARTITION_STATE
 * (our choice; the hypervisor's status there is unverified).
 */
static uint16_t emu_gpap_prepare(struct emu_partition *pt, uint64_t pfn, uint64_t count,
				 struct emu_gpap **gp)
{
	struct emu_gpap *g;

	if (!pt->gpa_access_tracking)
		return HV_STATUS_INVALID_PARTITION_STATE;
	g = *emu_gpap_lookup(pt);
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g)
			return HV_STATUS_INSUFFICIENT_MEMORY;
		g->pt = pt;
		g->next = emu_gpaps;
		emu_gpaps = g;
	}
	if (emu_gpap_sync(pt, g) < 0)
		return HV_STATUS_INSUFFICIENT_MEMORY;
	for (struct emu_gpap_slot *s = g->slots; s; s = s->next)
		if (s->guest_pfn < pfn + count && pfn < s->guest_pfn + s->npages)
			emu_gpap_harvest(pt, s);
	*gp = g;
	return HV_STATUS_SUCCESS;
}

/*
 * HvCallGetGpaPagesAccessStates for `count` pages from base_pfn: one state
 * byte per page (HV_GPA_PAGE_ACCESS_STATE_*), then the flags applied to it.
 * Caller must not hold pt->regions_lock. Unknown flag bits:
 * HV_STATUS_INVALID_PARAMETER.
 */
uint16_t emu_gpa_access_states(struct emu_partition *pt, uint64_t base_pfn, uint32_t count,
			       uint8_t *states, uint64_t flags, uint32_t *done)
{
	struct emu_gpap_slot *s, *hint = NULL;
	struct emu_gpap *g;
	uint16_t status;

	*done = 0;
	if (flags & ~(uint64_t)EMU_GPAP_FLAGS)
		return HV_STATUS_INVALID_PARAMETER;
	pthread_rwlock_rdlock(&pt->regions_lock);
	pthread_mutex_lock(&emu_gpap_lock);
	status = emu_gpap_prepare(pt, base_pfn, count, &g);
	if (status != HV_STATUS_SUCCESS)
		goto out;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t pfn = base_pfn + i, bit;
		uint8_t st = 0;

		s = hint;
		if (!s || pfn < s->guest_pfn || pfn - s->guest_pfn >= s->npages)
			for (s = g->slots; s; s = s->next)
				if (pfn >= s->guest_pfn && pfn - s->guest_pfn < s->npages)
					break;
		hint = s;
		if (s) {
			bit = pfn - s->guest_pfn;
			if (emu_bit_test(s->accessed, bit))
				st |= HV_GPA_PAGE_ACCESS_STATE_ACCESSED;
			if (emu_bit_test(s->dirty, bit))
				st |= HV_GPA_PAGE_ACCESS_STATE_DIRTY;
			/* the flags act after the state is read */
			if (flags & HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED)
				emu_bit_assign(s->accessed, bit, false);
			if (flags & HV_GPA_PAGE_ACCESS_SET_ACCESSED)
				emu_bit_assign(s->accessed, bit, true);
			if (flags & HV_GPA_PAGE_ACCESS_CLEAR_DIRTY)
				emu_bit_assign(s->dirty, bit, false);
			if (flags & HV_GPA_PAGE_ACCESS_SET_DIRTY)
				emu_bit_assign(s->dirty, bit, true);
		}
		states[i] = st;
	}
	*done = count;
out:
	pthread_mutex_unlock(&emu_gpap_lock);
	pthread_rwlock_unlock(&pt->regions_lock);
	return status;
}

/* ---- the bitmap ioctl, 64 pages at a time ---------------------------------- */

/* The n (1..64) bits of map from bit on, in the low bits. */
static inline uint64_t emu_bits_get(const uint64_t *map, uint64_t bit, unsigned int n)
{
	unsigned int o = bit % 64;
	uint64_t v = map[bit / 64] >> o;

	if (o && o + n > 64)
		v |= map[bit / 64 + 1] << (64 - o);
	return n == 64 ? v : v & ((1ULL << n) - 1);
}

/* Set (on) or clear the n (1..64) bits of map from bit on. */
static inline void emu_bits_assign(uint64_t *map, uint64_t bit, unsigned int n, bool on)
{
	uint64_t all = n == 64 ? ~0ULL : (1ULL << n) - 1;
	unsigned int o = bit % 64;

	if (on)
		map[bit / 64] |= all << o;
	else
		map[bit / 64] &= ~(all << o);
	if (o && o + n > 64) {
		if (on)
			map[bit / 64 + 1] |= all >> (64 - o);
		else
			map[bit / 64 + 1] &= ~(all >> (64 - o));
	}
}

/* OR the n (1..64) low bits of v into the LSB-first byte bitmap out from bit on. */
static void emu_bits_put(uint8_t *out, uint64_t bit, uint64_t v, unsigned int n)
{
	while (n && v) {
		unsigned int o = bit % 8, take = 8 - o < n ? 8 - o : n;

		out[bit / 8] |= (uint8_t)((v & ((1U << take) - 1)) << o);
		v >>= take;
		bit += take;
		n -= take;
	}
}

/* OR the 64 bits of v into the 8 bytes at out (LSB-first bytes: x86 is little-endian). */
static inline void emu_word_put(uint8_t *out, uint64_t v)
{
	uint64_t w;

	if (!v)
		return;
	memcpy(&w, out, sizeof(w));
	w |= v;
	memcpy(out, &w, sizeof(w));
}

/*
 * emu_gpap_bitmap's loop for a region's bulk, where its state lines up with
 * out: whole words of state to whole bytes of out, then `flags` applied a word
 * at a time (each map cleared, then set, as emu_gpa_access_states does).
 */
static void emu_gpap_words(struct emu_gpap_slot *s, const uint64_t *state, uint64_t word,
			   uint64_t nwords, uint64_t flags, uint8_t *out)
{
	uint64_t keep_a = flags & HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED ? 0 : ~0ULL;
	uint64_t set_a = flags & HV_GPA_PAGE_ACCESS_SET_ACCESSED ? ~0ULL : 0;
	uint64_t keep_d = flags & HV_GPA_PAGE_ACCESS_CLEAR_DIRTY ? 0 : ~0ULL;
	uint64_t set_d = flags & HV_GPA_PAGE_ACCESS_SET_DIRTY ? ~0ULL : 0;

	for (uint64_t i = word; i < word + nwords; i++, out += 8) {
		emu_word_put(out, state[i]);	/* (state is one of the two maps) */
		s->accessed[i] = (s->accessed[i] & keep_a) | set_a;
		s->dirty[i] = (s->dirty[i] & keep_d) | set_d;
	}
}

/*
 * The page states of count pages from base as the bitmap's bits (`mask`:
 * HV_GPA_PAGE_ACCESS_STATE_DIRTY or _ACCESSED), then `flags` applied: what
 * emu_gpa_access_states does page by page for each of the kernel's batches
 * (mshv_partition_ioctl_get_gpap_access_bitmap makes one hypercall per
 * HV_GET_GPA_ACCESS_STATES_BATCH_SIZE pages), here on 64 pages at once and
 * with KVM's dirty log taken in once for the whole range. Pages outside any
 * region read 0.
 */
static uint16_t emu_gpap_bitmap(struct emu_partition *pt, uint64_t base, uint32_t count,
				uint64_t flags, uint8_t mask, uint8_t *out)
{
	struct emu_gpap *g;
	uint16_t status;

	pthread_rwlock_rdlock(&pt->regions_lock);
	pthread_mutex_lock(&emu_gpap_lock);
	status = emu_gpap_prepare(pt, base, count, &g);
	for (struct emu_gpap_slot *s = status ? NULL : g->slots; s; s = s->next) {
		uint64_t lo = s->guest_pfn > base ? s->guest_pfn : base;
		uint64_t end = s->guest_pfn + s->npages;
		uint64_t hi = end < base + count ? end : base + count;
		const uint64_t *state = mask == HV_GPA_PAGE_ACCESS_STATE_DIRTY ? s->dirty : s->accessed;

		for (uint64_t pfn = lo; pfn < hi;) {
			unsigned int n = hi - pfn < 64 ? (unsigned int)(hi - pfn) : 64;
			uint64_t bit = pfn - s->guest_pfn;

			if (n == 64 && bit % 64 == 0 && (pfn - base) % 8 == 0) {
				uint64_t words = (hi - pfn) / 64;

				emu_gpap_words(s, state, bit / 64, words, flags, out + (pfn - base) / 8);
				pfn += words * 64;
				continue;
			}
			emu_bits_put(out, pfn - base, emu_bits_get(state, bit, n), n);
			/* the flags act after the state is read, in emu_gpa_access_states' order */
			if (flags & HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED)
				emu_bits_assign(s->accessed, bit, n, false);
			if (flags & HV_GPA_PAGE_ACCESS_SET_ACCESSED)
				emu_bits_assign(s->accessed, bit, n, true);
			if (flags & HV_GPA_PAGE_ACCESS_CLEAR_DIRTY)
				emu_bits_assign(s->dirty, bit, n, false);
			if (flags & HV_GPA_PAGE_ACCESS_SET_DIRTY)
				emu_bits_assign(s->dirty, bit, n, true);
			pfn += n;
		}
	}
	pthread_mutex_unlock(&emu_gpap_lock);
	pthread_rwlock_unlock(&pt->regions_lock);
	return status;
}

/* mshv_partition_ioctl_get_gpap_access_bitmap; args were copied in by device.c */
int emu_gpap_access_bitmap(struct emu_partition *pt, struct mshv_gpap_access_bitmap *args)
{
	uint64_t flags = 0, bitmap_sz;
	uint8_t mask, *bitmap;
	uint16_t status;
	bool rsvd = false;
	int ret = 0;

	for (size_t i = 0; i < sizeof(args->rsvd); i++)
		rsvd |= args->rsvd[i] != 0;
	if (args->access_type >= MSHV_GPAP_ACCESS_TYPE_COUNT ||
	    args->access_op >= MSHV_GPAP_ACCESS_OP_COUNT || rsvd || !args->page_count ||
	    !args->bitmap_ptr) {
		errno = EINVAL;
		return -1;
	}
	/* NOOP falls into the SET branch: the kernel only tests for CLEAR */
	if (args->access_type == MSHV_GPAP_ACCESS_TYPE_ACCESSED) {
		mask = HV_GPA_PAGE_ACCESS_STATE_ACCESSED;
		if (args->access_op == MSHV_GPAP_ACCESS_OP_CLEAR)
			/* not accessed implies not dirty */
			flags = HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED | HV_GPA_PAGE_ACCESS_CLEAR_DIRTY;
		else
			flags = HV_GPA_PAGE_ACCESS_SET_ACCESSED;
	} else {
		mask = HV_GPA_PAGE_ACCESS_STATE_DIRTY;
		if (args->access_op == MSHV_GPAP_ACCESS_OP_CLEAR)
			flags = HV_GPA_PAGE_ACCESS_CLEAR_DIRTY;
		else
			/* dirty implies accessed */
			flags = HV_GPA_PAGE_ACCESS_SET_DIRTY | HV_GPA_PAGE_ACCESS_SET_ACCESSED;
	}
	/* DIV_ROUND_UP(page_count, 8); the kernel's page_count-byte vzalloc fails first */
	bitmap_sz = args->page_count / 8 + (args->page_count % 8 != 0);
	bitmap = bitmap_sz <= SIZE_MAX ? calloc(bitmap_sz, 1) : NULL;
	if (!bitmap) {
		errno = ENOMEM;
		return -1;
	}
	/* hv_call_get_gpa_access_states takes a u32 count: larger counts are truncated */
	status = emu_gpap_bitmap(pt, args->gpap_base, (uint32_t)args->page_count, flags, mask,
				 bitmap);
	if (status != HV_STATUS_SUCCESS) {
		errno = emu_hv_status_errno(status);
		ret = -1;
		goto out;
	}
	/* bits past the u32 count stay zero; copy ceil(page_count / 8) bytes */
	if (emu_copy_to_user((void *)(uintptr_t)args->bitmap_ptr, bitmap, bitmap_sz) < 0)
		ret = -1;
out:
	free(bitmap);
	return ret;
}
