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

/* One paging-structure entry (4 or 8 bytes) from guest memory. */
static int emu_read_pte(struct emu_vp *vp, uint64_t gpa, size_t size, uint64_t *pte)
{
	*pte = 0;
	return emu_gpa_read(vp->pt, gpa, pte, size) == size ? 0 : -1;
}

/*
 * Walk the guest's page tables in software (Intel SDM vol. 3 ch. 4: 32-bit,
 * PAE, 4- and 5-level paging). A vCPU ioctl costs a large share of a whole
 * exit, so KVM_TRANSLATE per exit would nearly double it; reading the tables
 * from guest memory costs nothing like it.
 * Returns 1 when the walk could not be done here (a table outside guest
 * RAM): the caller asks KVM instead. Access rights are not checked: this
 * only locates instruction bytes and operands.
 */
static int emu_walk(struct emu_vp *vp, const struct kvm_sregs *sr, uint64_t linear, uint64_t *gpa)
{
	uint64_t pte, table;
	int level, levels;

	if (!(sr->cr4 & X86_CR4_PAE)) {			/* 32-bit paging */
		uint32_t la = (uint32_t)linear;

		if (emu_read_pte(vp, (sr->cr3 & 0xfffff000) + ((la >> 22) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if ((pte & X86_PTE_PS) && (sr->cr4 & X86_CR4_PSE)) {
			*gpa = (pte & 0xffc00000) | (((pte >> 13) & 0xff) << 32) | (la & 0x3fffff);
			return 0;
		}
		if (emu_read_pte(vp, (pte & 0xfffff000) + (((la >> 12) & 0x3ff) << 2), 4, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		*gpa = (pte & 0xfffff000) | (la & 0xfff);
		return 0;
	}
	if (sr->efer & X86_EFER_LMA) {
		levels = (sr->cr4 & X86_CR4_LA57) ? 5 : 4;
		table = sr->cr3 & X86_PTE_ADDR;
	} else {					/* PAE: 4 PDPTEs at CR3[31:5] */
		if (emu_read_pte(vp, (sr->cr3 & 0xffffffe0) + (((linear >> 30) & 3) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		levels = 2;
		table = pte & X86_PTE_ADDR;
	}
	for (level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (level - 1);

		if (emu_read_pte(vp, table + (((linear >> shift) & 0x1ff) << 3), 8, &pte) < 0)
			return 1;
		if (!(pte & X86_PTE_P))
			return -1;
		if (level == 1 || ((pte & X86_PTE_PS) && level <= 3)) {
			uint64_t page_mask = (1ULL << shift) - 1;

			*gpa = ((pte & X86_PTE_ADDR) & ~page_mask) | (linear & page_mask);
			return 0;
		}
		table = pte & X86_PTE_ADDR;
	}
	return -1;
}

/* One page's worth of linear -> guest physical; -1 if not mapped. */
static int emu_translate(struct emu_vp *vp, const struct kvm_sregs *sr, uint64_t linear,
			 uint64_t *gpa)
{
	struct kvm_translation tr;
	int walked;

	if (!(sr->cr0 & X86_CR0_PG)) {
		*gpa = linear;
		return 0;
	}
	walked = emu_walk(vp, sr, linear, gpa);
	if (walked <= 0)
		return walked;
	memset(&tr, 0, sizeof(tr));
	tr.linear_address = linear;
	if (emu_sys_ioctl(vp->vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -1;
	*gpa = tr.physical_address;
	return 0;
}

int emu_linear_to_gpa(struct emu_vp *vp, uint64_t linear, uint64_t *gpa)
{
	return emu_translate(vp, &vp->run->s.regs.sregs, linear, gpa);
}

/* Linear and guest physical address of CS:ip; -1 if the guest's paging does not map it. */
int emu_code_gpa(struct emu_vp *vp, uint64_t ip, uint64_t *linear, uint64_t *gpa)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;

	*linear = emu_cs_linear(sr, ip);
	return emu_translate(vp, sr, *linear, gpa);
}

/* Read len bytes at CS:ip, page by page; returns the bytes read. */
int emu_fetch_code(struct emu_vp *vp, uint64_t ip, uint8_t *bytes, int len)
{
	const struct kvm_sregs *sr = &vp->run->s.regs.sregs;
	int done = 0;

	while (done < len) {
		uint64_t linear = emu_cs_linear(sr, ip + (uint64_t)done), gpa;
		size_t chunk = EMU_PAGE_SIZE - (linear & (EMU_PAGE_SIZE - 1));

		if (emu_code_bits(sr) == 16) {	/* IP wraps at 64 KiB */
			size_t to_wrap = 0x10000 - ((ip + (uint64_t)done) & 0xffff);

			if (chunk > to_wrap)
				chunk = to_wrap;
		}
		if (chunk > (size_t)(len - done))
			chunk = (size_t)(len - done);
		if (emu_translate(vp, sr, linear, &gpa) < 0)
			break;
		if (emu_gpa_read(vp->pt, gpa, bytes + done, chunk) != chunk)
			break;
		done += (int)chunk;
	}
	return done;
}

int emu_fetch_instruction(struct emu_vp *vp, uint64_t rip, uint8_t bytes[16])
{
	memset(bytes, 0, 16);
	return emu_fetch_code(vp, rip, bytes, 16);
}
