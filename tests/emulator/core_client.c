/* SPDX-License-Identifier: MIT */
/*
 * A plain /dev/mshv client for the emulator core's tests, run under
 * LD_PRELOAD=libmshv_emu.so. Only libc, <sys/ioctl.h> and <linux/mshv.h>.
 *
 *   core_client case <name> [args...]
 *
 * Each case prints "key=value" lines (ret=, errno=, ...) that
 * test_core_*.py asserts. Setup failures print "setup-failed: ..." and exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/mshv.h>

#define PAGE 4096UL
#define MEM_SIZE (64 * 1024UL)

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ret=<r> errno=<name> for a call under test; errno reads 0 on success. */
static void report(const char *key, long ret, int err)
{
	printf("%s.ret=%ld\n%s.errno=%s\n", key, ret, key, ret < 0 ? strerrorname_np(err) : "0");
}

#define CALL(key, expr)                                   \
	({                                                \
		errno = 0;                                \
		long __r = (long)(expr);                  \
		report(key, __r, errno);                  \
		__r;                                      \
	})

static int open_dev(void)
{
	int fd = open("/dev/mshv", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/mshv");
	return fd;
}

static int create_pt(int dev, uint64_t flags)
{
	struct mshv_create_partition args = { .pt_flags = flags };
	int fd = ioctl(dev, MSHV_CREATE_PARTITION, &args);

	if (fd < 0)
		die("MSHV_CREATE_PARTITION");
	return fd;
}

static int create_vp(int pt, uint32_t index)
{
	struct mshv_create_vp args = { .vp_index = index };
	int fd = ioctl(pt, MSHV_CREATE_VP, &args);

	if (fd < 0)
		die("MSHV_CREATE_VP");
	return fd;
}

static void *alloc_mem(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap memory");
	return p;
}

static int set_mem(int pt, uint64_t gfn, void *uaddr, uint64_t size, uint8_t flags)
{
	struct mshv_user_mem_region r = {
		.size = size, .guest_pfn = gfn, .userspace_addr = (uint64_t)(uintptr_t)uaddr,
		.flags = flags,
	};

	return ioctl(pt, MSHV_SET_GUEST_MEMORY, &r);
}

#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))
#define UNMAP (1 << MSHV_SET_MEM_BIT_UNMAP)

/* A pointer whose first n bytes are readable and whose next byte is not. */
static void *edge_ptr(size_t n)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || mprotect(p + PAGE, PAGE, PROT_NONE))
		die("edge mmap");
	return p + PAGE - n;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		die("opendir");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	if (!f)
		die("fopen maps");
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int cloexec(int fd)
{
	return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

/* ---- MSHV_CREATE_PARTITION (mshv_ioctl_create_partition) ------------------ */

static void case_create_partition(int argc, char **argv)
{
	struct mshv_create_partition_v2 v2 = {
		.pt_num_cpu_fbanks = MSHV_NUM_CPU_FEATURES_BANKS,
	};
	const char *what = argv[0];
	int dev = open_dev();
	void *arg = &v2;

	v2.pt_flags = strtoull(argv[1], NULL, 0);
	v2.pt_isolation = strtoull(argv[2], NULL, 0);
	if (!strcmp(what, "banks"))
		v2.pt_num_cpu_fbanks = (uint16_t)strtoul(argv[3], NULL, 0);
	else if (!strcmp(what, "rsvd"))
		v2.pt_rsvd[strtoul(argv[3], NULL, 0)] = 1;
	else if (!strcmp(what, "rsvd1"))
		v2.pt_rsvd1[strtoul(argv[3], NULL, 0)] = 1;
	else if (!strcmp(what, "null"))
		arg = NULL;
	else if (!strcmp(what, "edge16") || !strcmp(what, "edge15")) {
		/* only 16 (15) readable bytes */
		size_t n = what[5] == '6' ? 16 : 15;

		arg = edge_ptr(n);
		memcpy(arg, &v2, n);
	}
	int fd = CALL("create", ioctl(dev, MSHV_CREATE_PARTITION, arg));
	if (fd >= 0) {
		printf("cloexec=%d\n", cloexec(fd));
		/* the new partition works: INITIALIZE */
		CALL("init", ioctl(fd, MSHV_INITIALIZE_PARTITION));
	}
	(void)argc;
}

/* ---- rules on every fd (mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl) */

static const unsigned long foreign_numbers[] = {
	MSHV_CHECK_EXTENSION, MSHV_CREATE_VTL, MSHV_ADD_VTL0_MEMORY, MSHV_SET_POLL_FILE,
	MSHV_RETURN_TO_LOWER_VTL, MSHV_GET_VP_REGISTERS, MSHV_SET_VP_REGISTERS,
	MSHV_SINT_SIGNAL_EVENT, MSHV_SINT_POST_MESSAGE, MSHV_SINT_SET_EVENTFD,
	MSHV_SINT_PAUSE_MESSAGE_STREAM, MSHV_HVCALL_SETUP, MSHV_HVCALL,
	_IO(MSHV_IOCTL, 0x7F),
	/* right number, wrong size/direction bits */
	_IOW(MSHV_IOCTL, 0x00, struct mshv_create_partition_v2),
	_IOWR(MSHV_IOCTL, 0x02, struct mshv_user_mem_region),
	_IOW(MSHV_IOCTL, 0x01, uint64_t),
	_IO(MSHV_IOCTL, 0x07),
	_IOR(MSHV_IOCTL, 0x00, uint64_t),
	0,
};

/* Numbers valid on another fd kind are unknown here too. */
static const unsigned long dev_only[] = { MSHV_CREATE_PARTITION, 0 };
static const unsigned long pt_only[] = {
	MSHV_INITIALIZE_PARTITION, MSHV_CREATE_VP, MSHV_SET_GUEST_MEMORY, MSHV_IRQFD,
	MSHV_IOEVENTFD, MSHV_SET_MSI_ROUTING, MSHV_GET_GPAP_ACCESS_BITMAP, 0,
};
static const unsigned long vp_only[] = { MSHV_RUN_VP, MSHV_GET_VP_STATE, MSHV_SET_VP_STATE, 0 };

static void check_enotty(const char *kind, int fd, const unsigned long *nums)
{
	uint8_t buf[4096] = { 0 };

	for (; *nums; nums++) {
		errno = 0;
		int r = ioctl(fd, *nums, buf);
		if (r >= 0 || errno != ENOTTY)
			printf("not-enotty.%s=%#lx ret=%d errno=%s\n", kind, *nums, r,
			       strerrorname_np(errno));
	}
}

static void case_enotty(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0), vp = create_vp(pt, 0);

	check_enotty("dev", dev, foreign_numbers);
	check_enotty("dev", dev, pt_only);
	check_enotty("dev", dev, vp_only);
	check_enotty("pt", pt, foreign_numbers);
	check_enotty("pt", pt, dev_only);
	check_enotty("pt", pt, vp_only);
	check_enotty("vp", vp, foreign_numbers);
	check_enotty("vp", vp, dev_only);
	check_enotty("vp", vp, pt_only);
	printf("done=1\n");
}

static void case_mmap_enodev(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0);

	for (long off = 0; off < 3; off++) {
		char key[32];

		snprintf(key, sizeof(key), "dev%ld", off);
		CALL(key, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dev, off * PAGE) == MAP_FAILED ? -1 : 0);
		snprintf(key, sizeof(key), "pt%ld", off);
		CALL(key, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, pt, off * PAGE) == MAP_FAILED ? -1 : 0);
	}
}

/* An unreadable argument gives EFAULT before any other check. */
static void case_efault(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0);
	void *bad = (void *)8;

	CALL("create_partition", ioctl(dev, MSHV_CREATE_PARTITION, bad));
	CALL("create_vp", ioctl(pt, MSHV_CREATE_VP, bad));
	CALL("set_guest_memory", ioctl(pt, MSHV_SET_GUEST_MEMORY, bad));
	CALL("irqfd", ioctl(pt, MSHV_IRQFD, bad));
	CALL("ioeventfd", ioctl(pt, MSHV_IOEVENTFD, bad));
	CALL("set_msi_routing", ioctl(pt, MSHV_SET_MSI_ROUTING, bad));
	CALL("gpap", ioctl(pt, MSHV_GET_GPAP_ACCESS_BITMAP, bad));
	/* a struct that ends one byte short of readable memory */
	CALL("set_guest_memory_edge",
	     ioctl(pt, MSHV_SET_GUEST_MEMORY, edge_ptr(sizeof(struct mshv_user_mem_region) - 1)));
	CALL("create_vp_edge", ioctl(pt, MSHV_CREATE_VP, edge_ptr(3)));
}

/*
 * Argument structs at odd addresses: copy_from_user/copy_to_user have no alignment rule, so
 * each call answers as it does for the same struct aligned (and the emulator must not access
 * the client's struct through a misaligned pointer: UBSan checks that in the sanitized run).
 */
static void case_misaligned(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0), vp = create_vp(pt, 0);
	struct mshv_user_irq_entry route = { .gsi = 1, .address_lo = 0xfee00000, .data = 0x31 };
	struct mshv_user_irq_table head = { .nr = 1 };
	struct mshv_get_set_vp_state state = { .type = MSHV_VP_STATE_XSAVE, .buf_sz = PAGE };
	static char buf[512] __attribute__((aligned(64)));
	void *page = alloc_mem(PAGE);

	state.buf_ptr = (uintptr_t)page;
	for (int odd = 0; odd <= 1; odd++) {
		char *table = buf + odd, *args = buf + 256 + odd, key[64];
		struct mshv_get_set_vp_state back;
		const char *how = odd ? "misaligned" : "aligned";

		memcpy(table, &head, sizeof(head));
		memcpy(table + sizeof(head), &route, sizeof(route));	/* entries[] */
		snprintf(key, sizeof(key), "routing_%s", how);
		CALL(key, ioctl(pt, MSHV_SET_MSI_ROUTING, table));
		memcpy(args, &state, sizeof(state));
		snprintf(key, sizeof(key), "vp_state_%s", how);
		CALL(key, ioctl(vp, MSHV_GET_VP_STATE, args));
		memcpy(&back, args, sizeof(back));
		printf("%s.buf_sz=%u\n", key, back.buf_sz);
	}
}

static void case_cloexec(int argc, char **argv)
{
	int dev = open("/dev/mshv", O_RDWR), dev2 = open("/dev/mshv", O_RDWR | O_CLOEXEC);
	int pt, vp;
	char path[64], link[256] = "";

	if (dev < 0 || dev2 < 0)
		die("open");
	pt = create_pt(dev, 0);
	vp = create_vp(pt, 0);
	printf("dev=%d\ndev_cloexec=%d\npt=%d\nvp=%d\n", cloexec(dev), cloexec(dev2), cloexec(pt),
	       cloexec(vp));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pt);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	printf("pt_link=%s\n", link);
}

/* ---- mshv_partition_ioctl_initialize / mshv_partition_ioctl_create_vp ------ */

static void case_initialize(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0);

	CALL("first", ioctl(pt, MSHV_INITIALIZE_PARTITION));
	CALL("second", ioctl(pt, MSHV_INITIALIZE_PARTITION));
	/* ioctls are accepted before INITIALIZE too */
	int pt2 = create_pt(dev, 0);
	CALL("vp_before_init", ioctl(pt2, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 0 }));
}

static void case_create_vp(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0);
	struct mshv_create_vp a;
	int vp;

	ioctl(pt, MSHV_INITIALIZE_PARTITION);
	a.vp_index = 256;
	CALL("index256", ioctl(pt, MSHV_CREATE_VP, &a));
	a.vp_index = 0xFFFFFFFF;
	CALL("index_max", ioctl(pt, MSHV_CREATE_VP, &a));
	a.vp_index = 255;
	vp = CALL("index255", ioctl(pt, MSHV_CREATE_VP, &a));
	printf("vp_cloexec=%d\n", cloexec(vp));
	CALL("again255", ioctl(pt, MSHV_CREATE_VP, &a));
	a.vp_index = 0;
	vp = CALL("index0", ioctl(pt, MSHV_CREATE_VP, &a));
	close(vp);
	/* mshv_vp_release keeps the VP: its index stays taken */
	CALL("after_close0", ioctl(pt, MSHV_CREATE_VP, &a));
	a.vp_index = 1;
	CALL("index1", ioctl(pt, MSHV_CREATE_VP, &a));
	/* VP indexes are per partition */
	int pt2 = create_pt(dev, 0);
	a.vp_index = 0;
	CALL("other_partition0", ioctl(pt2, MSHV_CREATE_VP, &a));
}

/* ---- MSHV_SET_GUEST_MEMORY (mshv_partition_ioctl_set_memory) -------------- */

static void case_set_memory(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0);
	char *mem = alloc_mem(4 * MEM_SIZE);
	struct mshv_user_mem_region r;
	char *hole;

	/* step 2: size, alignment, flags, rsvd */
	CALL("size0", set_mem(pt, 0, mem, 0, RW));
	CALL("size_unaligned", set_mem(pt, 0, mem, PAGE + 1, RW));
	CALL("size_half", set_mem(pt, 0, mem, PAGE / 2, RW));
	CALL("uaddr_unaligned", set_mem(pt, 0, mem + 8, PAGE, RW));
	CALL("flags8", set_mem(pt, 0, mem, PAGE, 0x8));
	CALL("flags80", set_mem(pt, 0, mem, PAGE, 0x80));
	for (int i = 0; i < 7; i += 6) {
		char key[16];

		r = (struct mshv_user_mem_region){ .size = PAGE, .userspace_addr = (uintptr_t)mem,
						   .flags = RW };
		r.rsvd[i] = 1;
		snprintf(key, sizeof(key), "rsvd%d", i);
		CALL(key, ioctl(pt, MSHV_SET_GUEST_MEMORY, &r));
	}
	/* step 2 comes before the unmap lookup */
	CALL("unmap_size0", set_mem(pt, 0x999, mem, 0, UNMAP));

	/* map: access_ok, then the VMA of the first address */
	CALL("map_beyond_user", set_mem(pt, 0, (void *)0x7ffffffff000UL, 2 * PAGE, RW));
	CALL("map_wrap", set_mem(pt, 0, (void *)0xfffffffffffff000UL, 2 * PAGE, RW));
	hole = alloc_mem(2 * PAGE);
	munmap(hole, 2 * PAGE);
	CALL("map_no_vma", set_mem(pt, 0, hole, PAGE, RW));
	/* only the first address is looked up */
	munmap(mem + 3 * MEM_SIZE, MEM_SIZE);
	CALL("map_tail_hole", set_mem(pt, 0x1000, mem + 2 * MEM_SIZE, 2 * MEM_SIZE, RW));

	/* map and overlaps */
	CALL("map", set_mem(pt, 0x10, mem, MEM_SIZE, RW));
	CALL("overlap_same", set_mem(pt, 0x10, mem, MEM_SIZE, RW));
	CALL("overlap_first", set_mem(pt, 0x1f, mem + MEM_SIZE, PAGE, RW));
	CALL("overlap_last", set_mem(pt, 0x0, mem + MEM_SIZE, 0x11 * PAGE, RW));
	CALL("overlap_enclosing", set_mem(pt, 0x0, mem + MEM_SIZE, 0x40 * PAGE, RW));
	CALL("overlap_inside", set_mem(pt, 0x12, mem + MEM_SIZE, PAGE, RW));
	CALL("adjacent_below", set_mem(pt, 0x0, mem + MEM_SIZE, 0x10 * PAGE, RW));
	CALL("adjacent_above", set_mem(pt, 0x20, mem + MEM_SIZE, PAGE, 0));
	/* the same host memory may back several GFN ranges (≥6.19) */
	CALL("uaddr_alias", set_mem(pt, 0x100, mem, MEM_SIZE, RW));
	CALL("readonly", set_mem(pt, 0x200, mem, PAGE, 0));
	CALL("exec_only", set_mem(pt, 0x201, mem, PAGE, 1 << MSHV_SET_MEM_BIT_EXECUTABLE));

	/* unmap: exact triple */
	CALL("unmap_unknown", set_mem(pt, 0x5000, mem, MEM_SIZE, UNMAP));
	CALL("unmap_wrong_uaddr", set_mem(pt, 0x10, mem + PAGE, MEM_SIZE, UNMAP));
	CALL("unmap_wrong_size", set_mem(pt, 0x10, mem, PAGE, UNMAP));
	CALL("unmap_inner_gfn", set_mem(pt, 0x11, mem + PAGE, MEM_SIZE - PAGE, UNMAP));
	CALL("unmap", set_mem(pt, 0x10, mem, MEM_SIZE, UNMAP | RW));
	CALL("unmap_again", set_mem(pt, 0x10, mem, MEM_SIZE, UNMAP));
	CALL("remap", set_mem(pt, 0x10, mem, MEM_SIZE, RW));
	CALL("unmap_alias", set_mem(pt, 0x100, mem, MEM_SIZE, UNMAP));
}

/* ---- VP mmap (mshv_vp_mmap) ----------------------------------------------- */

static void case_vp_mmap(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0), vp = create_vp(pt, 0);
	char *p;

	for (long off = 0; off < 5; off++) {
		char key[16];

		snprintf(key, sizeof(key), "off%ld", off);
		CALL(key, (p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vp, off * PAGE)) ==
				  MAP_FAILED ? -1 : 0);
		if (p != MAP_FAILED && off == 0)
			printf("version=%u\n", *(uint16_t *)p);
	}
	CALL("off100", mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vp, 100 * PAGE) == MAP_FAILED ? -1 : 0);
	CALL("unaligned", mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vp, 1) == MAP_FAILED ? -1 : 0);
	/* length is not checked, and every page shows the page of the starting offset */
	CALL("long", (p = mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, vp, 0)) == MAP_FAILED ? -1 : 0);
	if (p != MAP_FAILED)
		printf("long_versions=%u,%u,%u\n", *(uint16_t *)p, *(uint16_t *)(p + PAGE),
		       *(uint16_t *)(p + 2 * PAGE));
	/* protection and MAP_PRIVATE are not checked either */
	CALL("private_msg", (p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, vp, PAGE)) == MAP_FAILED ? -1 : 0);
	/* a dup'ed fd is the same VP */
	int vp2 = dup(vp);
	CALL("dup", (p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vp2, 0)) == MAP_FAILED ? -1 : 0);
	if (p != MAP_FAILED)
		printf("dup_version=%u\n", *(uint16_t *)p);
	int vp3 = fcntl(vp, F_DUPFD_CLOEXEC, 100);
	CALL("dupfd_enotty", ioctl(vp3, 0xB8FF));
}

/* ---- lifetime (mshv_partition_release, mshv_vp_release, destroy_partition) */

struct world {
	int dev, pt, vp;
	char *mem;
	char *vp_page;
};

static void world_create(struct world *w, int nvps)
{
	w->dev = open_dev();
	w->pt = create_pt(w->dev, 0);
	if (ioctl(w->pt, MSHV_INITIALIZE_PARTITION))
		die("init");
	w->mem = alloc_mem(MEM_SIZE);
	if (set_mem(w->pt, 0, w->mem, MEM_SIZE, RW))
		die("set_mem");
	for (int i = 0; i < nvps; i++) {
		w->vp = create_vp(w->pt, i);
		if (i + 1 < nvps)
			close(w->vp);
	}
	w->vp_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, w->vp, 0);
	if (w->vp_page == MAP_FAILED)
		die("vp mmap");
}

/* order: 0 VP, partition, device; 1 partition, VP, device; 2 device, partition, VP */
static void world_close(struct world *w, int order)
{
	munmap(w->vp_page, PAGE);
	switch (order % 3) {
	case 0:
		close(w->vp);
		close(w->pt);
		close(w->dev);
		break;
	case 1:
		close(w->pt);
		close(w->vp);
		close(w->dev);
		break;
	default:
		close(w->dev);
		close(w->pt);
		close(w->vp);
		break;
	}
	munmap(w->mem, MEM_SIZE);
}

static void case_lifecycle(int argc, char **argv)
{
	int cycles = atoi(argv[0]);
	struct world w;
	int fds, maps;

	world_create(&w, 2);	/* warm-up: libc, the emulator's tables */
	world_close(&w, 0);
	fds = count_fds();
	maps = count_maps();
	for (int i = 0; i < cycles; i++) {
		world_create(&w, 1 + i % 2);
		world_close(&w, i);
	}
	printf("fds_before=%d\nfds_after=%d\nmaps_before=%d\nmaps_after=%d\n", fds, count_fds(),
	       maps, count_maps());
}

/* Each close order leaves the other fds working, and the last close frees all. */
static void case_close_order(int argc, char **argv)
{
	int order = atoi(argv[0]);
	struct world w;
	int fds = count_fds(), maps = count_maps();
	int fds0, maps0, vp1;

	world_create(&w, 1);
	world_close(&w, 0);
	fds0 = count_fds();
	maps0 = count_maps();
	(void)fds;
	(void)maps;

	world_create(&w, 1);
	munmap(w.vp_page, PAGE);
	switch (order) {
	case 0:		/* VP, then partition: the partition still takes ioctls */
		close(w.vp);
		vp1 = CALL("pt_create_vp1",
			   ioctl(w.pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 }));
		CALL("pt_create_vp0", ioctl(w.pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 0 }));
		close(w.pt);
		close(vp1);
		break;
	case 1:		/* partition, then VP: the VP lives on until its fd goes */
		close(w.pt);
		CALL("vp_mmap_after_pt_close",
		     (w.vp_page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, w.vp, 0)) == MAP_FAILED ? -1 : 0);
		if (w.vp_page != MAP_FAILED) {
			printf("version=%u\n", *(uint16_t *)w.vp_page);
			munmap(w.vp_page, PAGE);
		}
		CALL("vp_ioctl_after_pt_close", ioctl(w.vp, _IO(MSHV_IOCTL, 0x7F)));
		close(w.vp);
		break;
	default:	/* the device fd first: partitions do not depend on it */
		close(w.dev);
		vp1 = CALL("pt_create_vp1",
			   ioctl(w.pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 }));
		close(w.vp);
		close(w.pt);
		close(vp1);
		w.dev = -1;
		break;
	}
	if (w.dev >= 0)
		close(w.dev);
	munmap(w.mem, MEM_SIZE);
	printf("fds_before=%d\nfds_after=%d\nmaps_before=%d\nmaps_after=%d\n", fds0, count_fds(),
	       maps0, count_maps());
}

/* ---- a guest: 64 KiB at GPA 0 and, aliased, below 4 GiB for the reset vector */

static void case_run(int argc, char **argv)
{
	int dev = open_dev(), pt = create_pt(dev, 0), vp;
	char *mem = alloc_mem(MEM_SIZE);
	struct mshv_run_vp msg;
	FILE *f = fopen(argv[0], "rb");

	if (!f || fread(mem, 1, MEM_SIZE, f) == 0)
		die("guest image");
	fclose(f);
	if (ioctl(pt, MSHV_INITIALIZE_PARTITION))
		die("init");
	CALL("map_low", set_mem(pt, 0, mem, MEM_SIZE, RW));
	CALL("map_reset", set_mem(pt, (0x100000000UL - MEM_SIZE) / PAGE, mem, MEM_SIZE, RW));
	vp = create_vp(pt, 0);
	char *msg_page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vp, PAGE);
	if (msg_page == MAP_FAILED)
		die("msg page");
	memset(&msg, 0xAA, sizeof(msg));
	CALL("run", ioctl(vp, MSHV_RUN_VP, &msg));
	/* hv_message: type u32@0, payload@16; intercept header: access u8@5;
	 * io port: port u16@40, access_info u8@42, rax u64@48 (payload-relative) */
	uint8_t *m = msg.msg_buf;
	printf("type=%#x\n", *(uint32_t *)m);
	printf("instruction_length=%u\n", m[16 + 4] & 0xF);
	printf("access_type=%u\n", m[16 + 5]);
	printf("rip=%#lx\n", *(uint64_t *)(m + 16 + 24));
	printf("port=%#x\n", *(uint16_t *)(m + 16 + 40));
	printf("access_size=%u\n", m[16 + 42] & 7);
	printf("rax=%#lx\n", *(uint64_t *)(m + 16 + 48));
	printf("msg_page_same=%d\n", memcmp(msg_page, &msg, sizeof(msg)) == 0);
	/* MSHV_RUN_VP writes its 256 bytes out last: a bad pointer is EFAULT */
	CALL("run_efault", ioctl(vp, MSHV_RUN_VP, (void *)8));
}

struct kase {
	const char *name;
	void (*fn)(int argc, char **argv);
};

static const struct kase cases[] = {
	{ "create_partition", case_create_partition },
	{ "enotty", case_enotty },
	{ "mmap_enodev", case_mmap_enodev },
	{ "efault", case_efault },
	{ "misaligned", case_misaligned },
	{ "cloexec", case_cloexec },
	{ "initialize", case_initialize },
	{ "create_vp", case_create_vp },
	{ "set_memory", case_set_memory },
	{ "vp_mmap", case_vp_mmap },
	{ "lifecycle", case_lifecycle },
	{ "close_order", case_close_order },
	{ "run", case_run },
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3 || strcmp(argv[1], "case")) {
		fprintf(stderr, "usage: %s case <name> [args]\n", argv[0]);
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!strcmp(cases[i].name, argv[2])) {
			cases[i].fn(argc - 3, argv + 3);
			return 0;
		}
	}
	fprintf(stderr, "unknown case %s\n", argv[2]);
	return 1;
}
