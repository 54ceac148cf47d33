/* SPDX-License-Identifier: MIT */
/*
 * Shared by the irq/gpap C clients: loads the emulator library in process
 * (dlopen of argv[1]) and offers small helpers. A case is a function that
 * returns the number of failed expectations; main() runs the case named by
 * argv[2].
 */
#ifndef IRQ_CLIENT_H
#define IRQ_CLIENT_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/mshv.h>

static struct {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long req, void *arg);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, long off);
	int (*munmap)(void *addr, size_t len);
	int (*close)(int fd);
} E;

static int failures;

static const char *err_name(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "?";
}

/* Run call; its errno (0 on success) must be `want`. */
#define EXPECT_ERR(want, call)								\
	do {										\
		int r_, e_;								\
		errno = 0;								\
		r_ = (call);								\
		e_ = r_ < 0 ? errno : 0;						\
		if (e_ != (want)) {							\
			fprintf(stderr, "%s:%d: %s: want %s, got %s (ret %d)\n",	\
				__FILE__, __LINE__, #call, err_name(want),		\
				err_name(e_), r_);					\
			failures++;							\
		}									\
	} while (0)

#define EXPECT_EQ(want, got)								\
	do {										\
		unsigned long long w_ = (want), g_ = (got);				\
		if (w_ != g_) {								\
			fprintf(stderr, "%s:%d: %s: want %#llx, got %#llx\n",		\
				__FILE__, __LINE__, #got, w_, g_);			\
			failures++;							\
		}									\
	} while (0)

#define CHECK(call)									\
	do {										\
		if ((call) < 0) {							\
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,	\
				#call, strerror(errno));				\
			exit(2);							\
		}									\
	} while (0)

static void load_emulator(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(2);
	}
	E.open = dlsym(h, "mshv_emu_open");
	E.ioctl = dlsym(h, "mshv_emu_ioctl");
	E.mmap = dlsym(h, "mshv_emu_mmap");
	E.munmap = dlsym(h, "mshv_emu_munmap");
	E.close = dlsym(h, "mshv_emu_close");
	if (!E.open || !E.ioctl || !E.mmap || !E.munmap || !E.close) {
		fprintf(stderr, "%s lacks the mshv_emu_* table\n", path);
		exit(2);
	}
}

/* A new, initialized partition on a fresh /dev/mshv fd. */
static int make_partition(uint64_t pt_flags)
{
	struct mshv_create_partition args = {
		.pt_flags = pt_flags,
		.pt_isolation = MSHV_PT_ISOLATION_NONE,
	};
	int dev, pt;

	dev = E.open("/dev/mshv", O_RDWR | O_CLOEXEC);
	CHECK(dev);
	pt = E.ioctl(dev, MSHV_CREATE_PARTITION, &args);
	CHECK(pt);
	CHECK(E.ioctl(pt, MSHV_INITIALIZE_PARTITION, NULL));
	E.close(dev);
	return pt;
}

#define PT_LAPIC (1ULL << MSHV_PT_BIT_LAPIC)

/* SIGALRM only interrupts a RUN_VP that waits too long (EINTR). */
static inline void on_alarm(int sig)
{
	(void)sig;
}

/* Map guest memory read/write/execute (MSHV_SET_GUEST_MEMORY). */
static inline int set_mem(int pt, uint64_t gfn, void *uaddr, uint64_t size)
{
	struct mshv_user_mem_region r = {
		.size = size,
		.guest_pfn = gfn,
		.userspace_addr = (uint64_t)(uintptr_t)uaddr,
		.flags = (1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE),
	};

	return E.ioctl(pt, MSHV_SET_GUEST_MEMORY, &r);
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	CHECK(fd);
	return fd;
}

/* The eventfd's count (read, so it resets), 0 when nothing is pending. */
static uint64_t eventfd_take(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static void eventfd_put(int fd, uint64_t v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v)) {
		perror("eventfd write");
		exit(2);
	}
}

/* A page followed by an unmapped one: a pointer `off` bytes before the hole. */
static void *before_hole(size_t off)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	munmap(p + pg, pg);
	return p + pg - off;
}

struct test_case {
	const char *name;
	void (*fn)(void);
};

static int run_cases(int argc, char **argv, const struct test_case *cases, size_t n)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <libmshv_emu.so> <case>\n", argv[0]);
		return 2;
	}
	load_emulator(argv[1]);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cases[i].name, argv[2]))
			continue;
		cases[i].fn();
		if (!failures)
			printf("%s: ok\n", cases[i].name);
		return failures ? 1 : 0;
	}
	fprintf(stderr, "unknown case %s\n", argv[2]);
	return 2;
}

#define CASE(fn) { #fn, fn }

#endif /* IRQ_CLIENT_H */
