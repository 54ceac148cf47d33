/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the guest's page walk, and instruction bytes read through
 * it. The hypervisor fills an intercept message's instruction_bytes from the
 * guest's address space (hv_x64_memory_intercept_message and the other
 * intercept messages); here the guest's page tables are walked in software
 * (Intel SDM vol. 3 ch. 4: 32-bit, PAE, 4- and 5-level paging), with
 * KVM_TRANSLATE as the fallback.
 */
#include "emu.h"

/* Architectural x86 bits (Intel SDM), not Hyper-V numbers. */
#define X86_CR0_PE	(1ULL << 0)
#define X86_CR0_PG	(1ULL << 31)
#define X86_EFER_LMA	(1ULL << 10)
#define X86_CR4_PSE	(1ULL << 4)
#define X86_CR4_PAE	(1ULL << 5)
#define X86_CR4_LA57	(1ULL << 12)
#define X86_PTE_P	(1ULL << 0)
#define X86_PTE_PS	(1ULL << 7)
#define X86_PTE_ADDR	0x000ffffffffff000ULL	/* bits 51:12 */

/* 16, 32 or 64: the code size the CPU fetches with. */
int emu_code_bits(const struct kvm_sregs *sr)
{
	if ((sr->efer & X86_EFER_LMA) && sr->cs.l)
		return 64;
	if (!(sr->cr0 & X86_CR0_PE))
		return 16;
	return sr->cs.db ? 32 : 16;
}

/* Linear address of CS:ip; IP wraps at the code size (real/16-bit mode). */
static uint64_t emu_cs_linear(const struct kvm_sregs *sr, uint64_t ip)
{
	switch (emu_code_bits(sr)) {
	case 64:
		return ip;
	case 32:
		return (sr->cs.base + (uint32_t)ip) & 0xffffffffULL;
	default:
		return (sr->cs.base + (uint16_t)ip) & 0xffffffffULL;
	}
}

/*
 * Guest memory for the walk and the fetch; in_guard: inside emu_in_guard's
 * call (emu_gpa_read_guarded), else each read guarded on its own.
 */
static size_t emu_walk_read(struct emu_vp *vp, bool in_guard, uint64_t gpa, void *buf, size_t len)
{
	return in_guard ? emu_gpa_read_guarded(vp->pt, gpa, buf, len) : emu_gpa_read(vp->pt, gpa, buf, len);
}

/*
 * fn(arg) with guest memory read under one regions lock and one fault guard;
 * as emu_guarded_call (-1: a fault, -2: no guard).
 */
static int emu_in_guard(struct emu_vp *vp, int (*fn)(void *), void *arg)
{
	int ret;

	pthread_rwlock_rdlock(&vp->pt->regions_lock);
	ret = emu_guarded_call(fn, arg);
	pthread_rwlock_unlock(&vp->pt->regions_lock);
	return ret;
}

/* One paging-structure entry (4 or 8 bytes) from guest memory. */
static int emu_read_pte(struct emu_vp *vp, bool in_guard, uint64_t gpa, size_t size, uint64_t *pte)
{
	*pte = 0;
	return emu_walk_read(vp, in_guard, gpa, pte, size) == size ? 0 : -1;
}

/*
 * Walk the guest's page tables in software (Intel SDM vol. 3 ch. 4: 32-bit,
 * PAE, 4- and 5-level paging). A vCPU ioctl costs a large share of a whole
 * exit, so KVM_TRANSLATE per exit would nearly double it; reading the tables
 * from guest memory costs nothing like it.
 * Returns 1 when the walk could not be done here (a table outside guest
 * RAM): the caller asks KVM instead. Access rights are not checked: this
 * only locates instruction bytes and operands. *page_mask: the offset bits of
 * the page that maps linear (4 KiB, or a 2 MiB, 4 MiB or 1 GiB page).
 */
static int emu_walk(struct emu_vp *vp, bool in_guard, const struct kvm_sregs *sr, uint64_t linear,
		    uint64_t *gpa, uint64_t *page_mask)
{
	uint64_t pte, table;
	int level, levels;

	if (!(sr->cr4 & X86_CR4_PAE)) {			/* 32-bit paging */
		uint32_t la = (uint32_t)linear;

		if (emu_read_pte(vp, in_guard, (sr->cr3 & 0xfffff000) + ((la >> 22) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if ((pte & X86_PTE_PS) && (sr->cr4 & X86_CR4_PSE)) {
			*gpa = (pte & 0xffc00000) | (((pte >> 13) & 0xff) << 32) | (la & 0x3fffff);
			*page_mask = 0x3fffff;
			return 0;
		}
		if (emu_read_pte(vp, in_guard, (pte & 0xfffff000) + (((la >> 12) & 0x3ff) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		*gpa = (pte & 0xfffff000) | (la & 0xfff);
		*page_mask = 0xfff;
		return 0;
	}
	if (sr->efer & X86_EFER_LMA) {
		levels = (sr->cr4 & X86_CR4_LA57) ? 5 : 4;
		table = sr->cr3 & X86_PTE_ADDR;
	} else {					/* PAE: 4 PDPTEs at CR3[31:5] */
		if (emu_read_pte(vp, in_guard, (sr->cr3 & 0xffffffe0) + (((linear >> 30) & 3) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		levels = 2;
		table = pte & X86_PTE_ADDR;
	}
	for (level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (level - 1);

		if (emu_read_pte(vp, in_guard, table + (((linear >> shift) & 0x1ff) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if (level == 1 || ((pte & X86_PTE_PS) && level <= 3)) {
			*page_mask = (1ULL << shift) - 1;
			*gpa = ((pte & X86_PTE_ADDR) & ~*page_mask) | (linear & *page_mask);
			return 0;
		}
		table = pte & X86_PTE_ADDR;
	}
	return -1;
}

/*
 * Linear -> guest physical; -1 if not mapped. *page_mask: the offset bits of
 * the page linear is in (as emu_walk; 4 KiB without paging or from KVM).
 */
static int emu_translate(struct emu_vp *vp, bool in_guard, const struct kvm_sregs *sr,
			 uint64_t linear, uint64_t *gpa, uint64_t *page_mask)
{
	struct kvm_translation tr;
	int walked;

	*page_mask = EMU_PAGE_SIZE - 1;
	if (!(sr->cr0 & X86_CR0_PG)) {
		*gpa = linear;
		return 0;
	}
	walked = emu_walk(vp, in_guard, sr, linear, gpa, page_mask);
	if (walked <= 0)
		return walked;
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = linear;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -1;
	*gpa = tr.physical_address;
	return 0;
}

struct emu_translation {
	struct emu_vp *vp;
	uint64_t linear, gpa, page_mask;
	int ret;	/* emu_translate's */
};

static int emu_translate_in_guard(void *arg)
{
	struct emu_translation *t = arg;

	t->ret = emu_translate(t->vp, true, &t->vp->run->s.regs.sregs, t->linear, &t->gpa,
			       &t->page_mask);
	return 0;
}

/*
 * emu_translate of the VP's current paging, its page-table reads under one
 * regions lock and one fault guard (as emu_fetch_code); read by read, each
 * guarded on its own, after a fault or where no guard can be set.
 */
int emu_linear_to_gpa(struct emu_vp *vp, uint64_t linear, uint64_t *gpa)
{
	struct emu_translation t = { .vp = vp, .linear = linear };

	if (emu_in_guard(vp, emu_translate_in_guard, &t) < 0)	/* a fault, or no guard */
		t.ret = emu_translate(vp, false, &vp->run->s.regs.sregs, linear, &t.gpa,
				      &t.page_mask);
	*gpa = t.gpa;
	return t.ret;
}

/* Linear and guest physical address of CS:ip; -1 if the guest's paging does not map it. */
int emu_code_gpa(struct emu_vp *vp, uint64_t ip, uint64_t *linear, uint64_t *gpa)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;

	*linear = emu_cs_linear(sr, ip);
	return emu_linear_to_gpa(vp, *linear, gpa);
}

/* Read len bytes at CS:ip, page by page; returns the bytes read. */
static int emu_fetch_code_pages(struct emu_vp *vp, bool in_guard, uint64_t ip, uint8_t *bytes,
				int len)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	int done = 0;

	while (done < len) {
		uint64_t linear = emu_cs_linear(sr, ip + (uint64_t)done), gpa, page_mask;
		size_t chunk;

		if (emu_translate(vp, in_guard, sr, linear, &gpa, &page_mask) < 0)
			break;
		chunk = page_mask + 1 - (linear & page_mask);	/* to the end of its page */
		if (emu_code_bits(sr) == 16) {	/* IP wraps at 64 KiB */
			size_t to_wrap = 0x10000 - ((ip + (uint64_t)done) & 0xffff);

			if (chunk > to_wrap)
				chunk = to_wrap;
		}
		if (chunk > (size_t)(len - done))
			chunk = (size_t)(len - done);
		if (emu_walk_read(vp, in_guard, gpa, bytes + done, chunk) != chunk)
			break;
		done += (int)chunk;
	}
	return done;
}

struct emu_fetch {
	struct emu_vp *vp;
	uint64_t ip;
	uint8_t *bytes;
	int len;
};

static int emu_fetch_code_in_guard(void *arg)
{
	struct emu_fetch *f = arg;

	return emu_fetch_code_pages(f->vp, true, f->ip, f->bytes, f->len);
}

/*
 * Read len bytes at CS:ip; returns the bytes read. A fetch is a page walk and
 * the bytes it leads to, about five reads of guest memory on every exit that
 * decodes: they go under one regions lock and one fault guard, not one each.
 * If one faults (the client unmapped its memory) or no guard can be set, the
 * fetch is made again read by read, each guarded on its own.
 */
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len)
{
	struct emu_fetch f = { .vp = vp, .ip = ip, .bytes = bytes, .len = len };
	int n = emu_in_guard(vp, emu_fetch_code_in_guard, &f);

	return n >= 0 ? n : emu_fetch_code_pages(vp, false, ip, bytes, len);
}

int emu_fetch_instruction(struct emu_vp *vp, uint64_t rip, uint8_t bytes[16])
{
	memset(bytes, 0, 16);
	return emu_fetch_code(vp, rip, bytes, 16);
}
