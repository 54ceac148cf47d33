/* SPDX-License-Identifier: MIT */
/*
 * Shared by the C baselines of bench/: a monotonic clock, medians, the guest
 * image loader and identity-mapped long-mode page tables. Libc only.
 *
 * Every baseline prints one JSON object per line:
 *   {"case": "...", "median_ns": N, "unit": "exit"|"call", "samples_ns": [...]}
 * where median_ns is the median over rounds of (round time / operations).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_PAGE 4096UL
#define BENCH_CODE_GPA 0x10000UL	/* guest code */
#define BENCH_PT_GPA 0x2000UL		/* PML4, PDPT, PD: three pages */
#define BENCH_STACK_GPA 0x8000UL
#define BENCH_MMIO_GPA 0x100000UL	/* no RAM behind it */
#define BENCH_RAM_SIZE 0x40000UL	/* RAM at GPA 0 */
#define BENCH_MAX_ROUNDS 1000

static inline void bench_die(const char *what)
{
	fprintf(stderr, "setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n); sorts v in place. */
static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Print the result line, with `extra` (JSON members, each ", \"key\": value") before the end. */
static inline void bench_report_with(const char *name, const char *unit, double *samples, int n,
				     const char *extra)
{
	double median = bench_median(samples, n);

	printf("{\"case\": \"%s\", \"unit\": \"%s\", \"median_ns\": %.3f, \"samples_ns\": [", name,
	       unit, median);
	for (int i = 0; i < n; i++)
		printf("%s%.3f", i ? ", " : "", samples[i]);
	printf("]%s}\n", extra);
	fflush(stdout);
}

/* Print the result line; sorts samples in place. */
static inline void bench_report(const char *name, const char *unit, double *samples, int n)
{
	bench_report_with(name, unit, samples, n, "");
}

static inline void bench_load_image(uint8_t *mem, size_t mem_size, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		bench_die("open guest image");
	n = fread(mem + BENCH_CODE_GPA, 1, mem_size - BENCH_CODE_GPA, f);
	fclose(f);
	if (n == 0)
		bench_die("read guest image");
}

/* Identity map of the first 1 GiB with 2 MiB pages (PML4, PDPT, PD at BENCH_PT_GPA). */
static inline void bench_page_tables(uint8_t *mem)
{
	uint64_t *pml4 = (void *)(mem + BENCH_PT_GPA);
	uint64_t *pdpt = (void *)(mem + BENCH_PT_GPA + BENCH_PAGE);
	uint64_t *pd = (void *)(mem + BENCH_PT_GPA + 2 * BENCH_PAGE);

	pml4[0] = (BENCH_PT_GPA + BENCH_PAGE) | 3;		/* present, writable */
	pdpt[0] = (BENCH_PT_GPA + 2 * BENCH_PAGE) | 3;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x83;			/* present, writable, 2 MiB */
}

/* The four guest kinds; the guest's code is `1: <access>; jmp 1b`. */
enum bench_kind { BENCH_OUT, BENCH_IN, BENCH_MMIO_READ, BENCH_MMIO_WRITE };

static inline enum bench_kind bench_kind(const char *s)
{
	if (!strcmp(s, "out"))
		return BENCH_OUT;
	if (!strcmp(s, "in"))
		return BENCH_IN;
	if (!strcmp(s, "mmio_read"))
		return BENCH_MMIO_READ;
	if (!strcmp(s, "mmio_write"))
		return BENCH_MMIO_WRITE;
	fprintf(stderr, "unknown guest kind %s\n", s);
	exit(2);
}

static inline int bench_rounds(const char *s)
{
	int n = atoi(s);

	if (n < 1 || n > BENCH_MAX_ROUNDS) {
		fprintf(stderr, "rounds must be 1..%d\n", BENCH_MAX_ROUNDS);
		exit(2);
	}
	return n;
}

#endif /* BENCH_COMMON_H */
