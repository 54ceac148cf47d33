/* SPDX-License-Identifier: MIT */
/*
 * The floor: a raw KVM loop (no mshv, no emulator) running the same guest
 * work as the /dev/mshv clients, one KVM_RUN per exit.
 *
 *   kvm_exits <image> <out|in|mmio_read|mmio_write> <exits per round> <rounds>
 *
 * One vCPU in 64-bit mode (page tables and SREGS set here), 256 KiB of RAM at
 * GPA 0 and the image at BENCH_CODE_GPA. IN and MMIO reads are answered
 * through kvm_run (KVM completes them in the next KVM_RUN), exactly what a
 * KVM VMM does. Prints one JSON line: median ns per exit.
 */
#include "bench_kvm.h"

int main(int argc, char **argv)
{
	int exits, rounds;
	enum bench_kind kind;
	double samples[BENCH_MAX_ROUNDS];
	struct bench_kvm k;
	char name[64];

	if (argc != 5) {
		fprintf(stderr, "usage: kvm_exits <image> <kind> <exits> <rounds>\n");
		return 2;
	}
	kind = bench_kind(argv[2]);
	exits = atoi(argv[3]);
	rounds = bench_rounds(argv[4]);
	bench_kvm_init(&k, argv[1]);
	for (int r = -1; r < rounds; r++) {		/* round -1 warms up */
		double ns = bench_kvm_round(&k, kind, exits, 0, -1);

		if (r >= 0)
			samples[r] = ns;
	}
	snprintf(name, sizeof(name), "c_kvm_%s", argv[2]);
	bench_report(name, "exit", samples, rounds);
	return 0;
}
