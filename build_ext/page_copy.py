"""C source of what Python does with a page bitmap: copy the pages it names (a snapshot
restore), or list them (``mshv.dirty``), in one call each.

MSHV_GET_GPAP_ACCESS_BITMAP writes one bit per page, LSB first
(mshv_partition_ioctl_get_gpap_access_bitmap packs the hypervisor's state bytes
with ``__assign_bit``). ``mshv_copy_bitmap_pages`` walks such a bitmap 64 pages
at a time and copies each run of set pages with one ``memcpy``, so a restore
turns neither the bitmap into a list of addresses nor each run into a Python
slice assignment. ``mshv_bitmap_pages`` lists the set pages' numbers, skipping
clear words at memory speed: a clean 1 GiB bitmap (32 KiB) is a few
microseconds, where a Python scan of its bytes takes hundreds. Neither makes a
kernel call.
"""

from __future__ import annotations

INCLUDES = """
#include <stdint.h>
#include <string.h>
"""

TYPES = ""

FUNCTIONS = """
uint64_t mshv_copy_bitmap_pages(void *dst, const void *src, const unsigned char *bitmap,
                                uint64_t npages, uint64_t page_size);
uint64_t mshv_bitmap_pages(const unsigned char *bitmap, uint64_t npages, uint64_t *pages,
                           uint64_t cap);
"""

CUSTOMIZATIONS = r"""
/* Bits first..first+63 of an LSB-first byte bitmap of npages bits; those past npages read 0. */
static uint64_t mshv_bitmap_word(const unsigned char *bitmap, uint64_t first, uint64_t npages)
{
	uint64_t word = 0, left = npages - first;

	if (left >= 64) {
		memcpy(&word, bitmap + first / 8, sizeof(word));	/* little-endian host (x86) */
		return word;
	}
	for (uint64_t i = 0; i < (left + 7) / 8; i++)
		word |= (uint64_t)bitmap[first / 8 + i] << (8 * i);
	return word & ((1ULL << left) - 1);
}

/*
 * Whether bit first starts a block of 512 clear bits (first a multiple of 512, the
 * block within npages): a clean bitmap is skipped 64 bytes per test.
 */
static int mshv_bitmap_block_clear(const unsigned char *bitmap, uint64_t first, uint64_t npages)
{
	uint64_t w[8];

	if (first % 512 || npages - first < 512)
		return 0;
	memcpy(w, bitmap + first / 8, sizeof(w));
	return !(w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]);
}

/*
 * Copy from src to dst (both npages * page_size bytes) each page whose bit is
 * set in bitmap, one memcpy per run of adjacent set pages (a run may cross
 * words). Returns the number of pages copied.
 */
static uint64_t mshv_copy_bitmap_pages(void *dst, const void *src, const unsigned char *bitmap,
					uint64_t npages, uint64_t page_size)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	uint64_t copied = 0, run_start = 0, run_len = 0;

	for (uint64_t first = 0; first < npages; first += 64) {
		uint64_t word;

		if (mshv_bitmap_block_clear(bitmap, first, npages)) {
			first += 512 - 64;
			continue;
		}
		word = mshv_bitmap_word(bitmap, first, npages);
		while (word) {
			uint64_t bit = (uint64_t)__builtin_ctzll(word);
			uint64_t rest = ~(word >> bit);	/* 0 only for a word of 64 set bits */
			uint64_t ones = rest ? (uint64_t)__builtin_ctzll(rest) : 64;
			uint64_t page = first + bit;

			if (ones == 64 - bit)
				word = 0;
			else
				word &= ~(((1ULL << ones) - 1) << bit);
			if (run_len && run_start + run_len == page) {
				run_len += ones;	/* the run goes on from the last word */
				continue;
			}
			if (run_len)
				memcpy(d + run_start * page_size, s + run_start * page_size, run_len * page_size);
			copied += run_len;
			run_start = page;
			run_len = ones;
		}
	}
	if (run_len)
		memcpy(d + run_start * page_size, s + run_start * page_size, run_len * page_size);
	return copied + run_len;
}

/*
 * The numbers of the pages set in bitmap (npages bits; those past npages in
 * the last byte ignored), in order: the first cap of them into pages. Returns
 * how many are set, whatever cap (cap 0 counts them).
 */
static uint64_t mshv_bitmap_pages(const unsigned char *bitmap, uint64_t npages,
					uint64_t *pages, uint64_t cap)
{
	uint64_t found = 0;

	for (uint64_t first = 0; first < npages; first += 64) {
		uint64_t word;

		if (mshv_bitmap_block_clear(bitmap, first, npages)) {
			first += 512 - 64;
			continue;
		}
		word = mshv_bitmap_word(bitmap, first, npages);
		for (; word; word &= word - 1, found++)
			if (found < cap)
				pages[found] = first + (uint64_t)__builtin_ctzll(word);
	}
	return found;
}
"""
