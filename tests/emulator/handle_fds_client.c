/* SPDX-License-Identifier: MIT */
/*
 * Handle fds as ordinary files, for test_handle_fds.py. Run under
 * LD_PRELOAD=libmshv_emu.so; only libc, <linux/kvm.h> and <linux/mshv.h>.
 *
 *   handle_fds_client case fileops
 *       every ordinary file call on /dev/mshv, a partition fd and a VP fd, and
 *       the same call on their KVM twins (/dev/kvm, a VM fd, a vCPU fd: a misc
 *       device and anon_inode files whose fops have no read, write, fsync or
 *       fallocate either), as "<side>.<kind>.<call>=<ret> <errno>"
 *   handle_fds_client case raw_then_run <guest image>
 *       raw ftruncate/fallocate/write system calls on the handle fds, then
 *       MSHV_RUN_VP and a read of the mapped register page
 *   handle_fds_client case stale <vp|pt> <sys_close|close_range|sys_dup2|sys_dup3>
 *       close or replace a handle fd where no interposer sees it, reuse its
 *       number for /proc/self/exe, then mmap/ioctl/read/close it
 *   handle_fds_client case release <close_range|sys_close>
 *       close the partition and VP fds with close_range() (libc) or raw
 *       close system calls, whose numbers then name other files, without
 *       touching those numbers again: the partition must be released
 *   handle_fds_client case child <vfork|fork> <close_range|close|dup2>
 *       a child closes or replaces the inherited handle fds (as posix_spawn
 *       and Python's subprocess do before exec); the fork child then makes
 *       handles of its own; the parent's handles must keep working
 *   handle_fds_client case efault_handler <sigaction|signal>
 *       the client installs its own SIGSEGV handler after the emulator's,
 *       then passes bad pointers
 *   handle_fds_client case signal_write <cycles>
 *       a SIGALRM handler writes to and reads from a pipe (a self-pipe) every
 *       20 us while the main thread dups and closes a handle fd
 *
 * Each case prints key=value lines; setup failures print "setup-failed: ..."
 * and exit 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/kvm.h>
#include <linux/mshv.h>

#define PAGE 4096UL
#define MEM_SIZE (64 * 1024UL)
#define RW ((1 << MSHV_SET_MEM_BIT_WRITABLE) | (1 << MSHV_SET_MEM_BIT_EXECUTABLE))

static void die(const char *what)
{
	printf("setup-failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void report(const char *key, long ret, int err)
{
	printf("%s=%ld %s\n", key, ret, ret < 0 ? strerrorname_np(err) : "0");
}

#define CALL(key, expr)                           \
	({                                        \
		errno = 0;                        \
		long __r = (long)(expr);          \
		report(key, __r, errno);          \
		__r;                              \
	})

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

static int open_dev(int flags)
{
	int fd = open("/dev/mshv", flags | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/mshv");
	return fd;
}

static int create_pt(int dev)
{
	struct mshv_create_partition args = { 0 };
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

/* Every ordinary file call on fd; key prefix "<side>.<kind>". */
static void fileops(const char *prefix, int fd)
{
	char key[128], buf[8] = { 0 };
	struct iovec iov = { buf, 1 };

#define OP(name, expr)                                                  \
	do {                                                            \
		snprintf(key, sizeof(key), "%s.%s", prefix, name);      \
		CALL(key, expr);                                        \
	} while (0)
	OP("read", read(fd, buf, 1));
	OP("read0", read(fd, buf, 0));
	OP("write", write(fd, "x", 1));
	OP("write0", write(fd, "x", 0));
	OP("pread", pread(fd, buf, 1, 0));
	OP("pread_neg", pread(fd, buf, 1, -1));
	OP("pwrite", pwrite(fd, "x", 1, 0));
	OP("pwrite_neg", pwrite(fd, "x", 1, -5));
	OP("readv", readv(fd, &iov, 1));
	OP("writev", writev(fd, &iov, 1));
	OP("preadv", preadv(fd, &iov, 1, 0));
	OP("pwritev", pwritev(fd, &iov, 1, 8));
	OP("preadv2_cur", preadv2(fd, &iov, 1, -1, 0));
	OP("preadv2_pos", preadv2(fd, &iov, 1, 0, 0));
	OP("pwritev2_cur", pwritev2(fd, &iov, 1, -1, 0));
	OP("pwritev2_pos", pwritev2(fd, &iov, 1, 0, 0));
	OP("lseek_set", lseek(fd, 100, SEEK_SET));
	OP("lseek_cur", lseek(fd, 0, SEEK_CUR));
	OP("lseek_end", lseek(fd, 5, SEEK_END));
	OP("lseek_neg", lseek(fd, -5, SEEK_SET));
	OP("lseek_data", lseek(fd, 0, SEEK_DATA));
	OP("lseek_bad_whence", lseek(fd, 0, 7));
	OP("ftruncate0", ftruncate(fd, 0));
	OP("ftruncate_grow", ftruncate(fd, 1 << 20));
	OP("ftruncate_neg", ftruncate(fd, -1));
	OP("fallocate", fallocate(fd, 0, 0, PAGE));
	OP("fallocate_len0", fallocate(fd, 0, 0, 0));
	OP("fallocate_punch", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE));
	OP("posix_fallocate", -posix_fallocate(fd, 0, PAGE));
	OP("fsync", fsync(fd));
	OP("fdatasync", fdatasync(fd));
#undef OP
}

static void case_fileops(int argc, char **argv)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int kvm_ro = open("/dev/kvm", O_RDONLY | O_CLOEXEC);
	int vm, vcpu, dev, dev_ro, pt, vp;

	if (kvm < 0 || kvm_ro < 0)
		die("open /dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	dev = open_dev(O_RDWR);
	dev_ro = open_dev(O_RDONLY);
	pt = create_pt(dev);
	vp = create_vp(pt, 0);

	fileops("kvm.dev", kvm);
	fileops("kvm.dev_ro", kvm_ro);
	fileops("kvm.pt", vm);
	fileops("kvm.vp", vcpu);
	fileops("mshv.dev", dev);
	fileops("mshv.dev_ro", dev_ro);
	fileops("mshv.pt", pt);
	fileops("mshv.vp", vp);
	/* and the handles still work */
	CALL("mshv.pt.create_vp_after", ioctl(pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 }));
	void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, vp, 0);
	printf("mshv.vp.mmap_after=%d\n", p != MAP_FAILED);
	if (p != MAP_FAILED)
		printf("mshv.vp.regpage_version=%u\n", *(volatile uint16_t *)p);
}

/*
 * Raw system calls reach the memfds behind the handles: none of them may
 * change the size under the emulator's own mapping of the VP's pages.
 */
static void case_raw_then_run(int argc, char **argv)
{
	int dev = open_dev(O_RDWR), pt = create_pt(dev), vp;
	char *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct mshv_user_mem_region r = { .size = MEM_SIZE, .userspace_addr = (uintptr_t)mem, .flags = RW };
	struct mshv_run_vp msg;
	FILE *f = fopen(argv[0], "rb");
	volatile uint8_t *rp;

	if (mem == MAP_FAILED || !f || fread(mem, 1, MEM_SIZE, f) == 0)
		die("guest image");
	fclose(f);
	if (ioctl(pt, MSHV_INITIALIZE_PARTITION) < 0)
		die("init");
	r.guest_pfn = 0;
	if (ioctl(pt, MSHV_SET_GUEST_MEMORY, &r) < 0)
		die("map low");
	r.guest_pfn = (0x100000000UL - MEM_SIZE) / PAGE;	/* the reset vector's alias */
	if (ioctl(pt, MSHV_SET_GUEST_MEMORY, &r) < 0)
		die("map reset");
	vp = create_vp(pt, 0);
	rp = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, vp, 0);
	if (rp == MAP_FAILED)
		die("register page");

	printf("raw_ftruncate_vp_failed=%d\n", syscall(SYS_ftruncate, vp, 0L) < 0);
	printf("raw_ftruncate_vp_grow_failed=%d\n", syscall(SYS_ftruncate, vp, 1L << 20) < 0);
	printf("raw_fallocate_vp_grow_failed=%d\n", syscall(SYS_fallocate, vp, 0, 0L, 1L << 20) < 0);
	printf("raw_ftruncate_pt_failed=%d\n", syscall(SYS_ftruncate, pt, 4096L) < 0);
	printf("raw_write_pt_failed=%d\n", syscall(SYS_write, pt, "x", 1L) < 0);
	printf("raw_write_dev_failed=%d\n", syscall(SYS_write, dev, "x", 1L) < 0);
	CALL("ftruncate_vp", ftruncate(vp, 0));
	CALL("write_pt", write(pt, "x", 1));

	memset(&msg, 0, sizeof(msg));
	CALL("run", ioctl(vp, MSHV_RUN_VP, &msg));
	printf("type=%#x\n", *(uint32_t *)msg.msg_buf);
	printf("regpage_version=%u\n", *(volatile uint16_t *)rp);
}

/* The first page of /proc/self/exe starts with the ELF magic. */
static int is_elf(const void *p)
{
	return p != MAP_FAILED && memcmp(p, "\177ELF", 4) == 0;
}

static void case_stale(int argc, char **argv)
{
	const char *victim = argv[0], *how = argv[1];
	int fds_before = count_fds();
	int dev = open_dev(O_RDWR), pt = create_pt(dev), vp = create_vp(pt, 0);
	int fd = !strcmp(victim, "vp") ? vp : pt;
	int exe = -1, reused;
	char buf[4] = { 0 };
	struct mshv_run_vp msg;
	void *p;

	/* the handle works, and the emulator has seen it */
	if (!strcmp(victim, "vp"))
		p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	else
		p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap before");
	munmap(p, PAGE);

	if (!strcmp(how, "sys_close")) {
		if (syscall(SYS_close, fd) < 0)
			die("SYS_close");
	} else if (!strcmp(how, "close_range")) {
		if (syscall(SYS_close_range, fd, fd, 0) < 0)
			die("close_range");
	} else {
		exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		if (exe < 0)
			die("open exe");
		if (!strcmp(how, "sys_dup2") ? syscall(SYS_dup2, exe, fd) < 0
					     : syscall(SYS_dup3, exe, fd, O_CLOEXEC) < 0)
			die("dup");
		close(exe);
	}
	if (exe < 0) {
		reused = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		printf("same_number=%d\n", reused == fd);
		if (reused != fd)
			die("the number was not reused");
	}

	p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	printf("mmap_is_exe=%d\n", is_elf(p));
	if (p != MAP_FAILED)
		munmap(p, PAGE);
	if (!strcmp(victim, "vp"))
		CALL("ioctl", ioctl(fd, MSHV_RUN_VP, &msg));
	else
		CALL("ioctl", ioctl(fd, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 }));
	CALL("read", read(fd, buf, 4));
	printf("read_is_exe=%d\n", memcmp(buf, "\177ELF", 4) == 0);
	/* a raw close: only the lookups above can have dropped the stale entry */
	CALL("close", syscall(SYS_close, fd));

	/* the other handles still work: the table's other entries are intact */
	if (!strcmp(victim, "vp"))
		close((int)CALL("other_ioctl",
				ioctl(pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 })));
	else
		CALL("other_ioctl", ioctl(vp, MSHV_GET_VP_STATE, (void *)8));
	close(!strcmp(victim, "vp") ? pt : vp);
	close(dev);
	/*
	 * The dropped entry's reference is gone: with every fd closed the
	 * partition is destroyed and its KVM fds with it.
	 */
	printf("fds_leaked=%d\n", count_fds() - fds_before);
}

static void case_release(int argc, char **argv)
{
	const char *how = argv[0];
	int fds_before = count_fds();
	int dev = open_dev(O_RDWR), pt = create_pt(dev), vp = create_vp(pt, 0);
	int null1 = -1, null2 = -1, dev2;

	if (!strcmp(how, "close_range")) {
		/* one fd at a time: the emulator's own fds lie between them */
		CALL("close_range_vp", close_range(vp, vp, 0));
		CALL("close_range_pt", close_range(pt, pt, 0));
	} else {
		if (syscall(SYS_close, vp) < 0 || syscall(SYS_close, pt) < 0)
			die("SYS_close");
		/* the numbers now name other files, and nobody looks them up */
		null1 = open("/dev/null", O_RDONLY | O_CLOEXEC);
		null2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
		printf("numbers_reused=%d\n", (null1 == pt || null1 == vp) && (null2 == pt || null2 == vp));
		/* making a new handle releases what was closed behind our back */
		dev2 = open_dev(O_RDWR);
		close(dev2);
		/* raw closes again: a libc close() of the number would drop the entry itself */
		syscall(SYS_close, null1);
		syscall(SYS_close, null2);
	}
	close(dev);
	printf("fds_leaked=%d\n", count_fds() - fds_before);
}

/* What the child does to the inherited fds; returns 0 if all went as expected. */
static int child_closes(const char *how, int dev, int pt, int vp)
{
	if (!strcmp(how, "close_range"))
		return close_range(3, ~0U, 0) != 0;
	if (!strcmp(how, "close"))
		return close(dev) || close(pt) || close(vp);
	return dup2(0, dev) != dev || dup2(0, pt) != pt || dup2(0, vp) != vp;
}

static void case_child(int argc, char **argv)
{
	const char *kind = argv[0], *how = argv[1];
	int dev = open_dev(O_RDWR), pt = create_pt(dev), vp = create_vp(pt, 0), status;
	pid_t pid;

	if (!strcmp(kind, "vfork")) {
		pid = vfork();
		if (pid == 0)
			_exit(child_closes(how, dev, pt, vp));
	} else {
		pid = fork();
		if (pid == 0) {
			int bad = child_closes(how, dev, pt, vp);
			int d = open("/dev/mshv", O_RDWR | O_CLOEXEC);
			struct mshv_create_partition a = { 0 };
			int p = d < 0 ? -1 : ioctl(d, MSHV_CREATE_PARTITION, &a);
			int v = p < 0 ? -1 : ioctl(p, MSHV_CREATE_VP, &(struct mshv_create_vp){ 0 });

			_exit(bad ? 1 : v < 0 ? 2 : 0);
		}
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		die("child");
	printf("child_status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	/* the parent's handles are intact */
	close((int)CALL("parent_create_vp",
			ioctl(pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 })));
	CALL("parent_vp_ioctl", ioctl(vp, MSHV_GET_VP_STATE, (void *)8));
	close((int)CALL("parent_create_partition",
			ioctl(dev, MSHV_CREATE_PARTITION, &(struct mshv_create_partition){ 0 })));
}

static sigjmp_buf client_jmp;
static volatile sig_atomic_t client_faults;

static void client_segv(int sig)
{
	client_faults++;
	siglongjmp(client_jmp, 1);
}

static void case_efault_handler(int argc, char **argv)
{
	const char *how = argv[0];
	int dev = open_dev(O_RDWR), pt = create_pt(dev);
	struct sigaction sa, old;

	/* the emulator has copied arguments (its fault handler is in place) */
	close(create_vp(pt, 0));

	if (!strcmp(how, "sigaction")) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = client_segv;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_NODEFER;
		if (sigaction(SIGSEGV, &sa, NULL) < 0)
			die("sigaction");
	} else {
		if (signal(SIGSEGV, client_segv) == SIG_ERR)
			die("signal");
	}

	if (sigsetjmp(client_jmp, 1) == 0) {
		CALL("create_vp_bad_ptr", ioctl(pt, MSHV_CREATE_VP, (void *)8));
		CALL("create_partition_bad_ptr", ioctl(dev, MSHV_CREATE_PARTITION, (void *)8));
		CALL("open_bad_ptr", open((const char *)8, O_RDONLY));
	}
	printf("client_handler_calls=%d\n", (int)client_faults);

	/* the client's own faults still reach its handler */
	if (sigsetjmp(client_jmp, 1) == 0)
		*(volatile int *)16 = 1;
	printf("client_handler_calls_after_own_fault=%d\n", (int)client_faults);

	/* and sigaction reports the client's handler */
	if (sigaction(SIGSEGV, NULL, &old) < 0)
		die("sigaction query");
	printf("query_is_client=%d\n", old.sa_handler == client_segv);
	/* a handle still works after all that */
	CALL("create_vp_after", ioctl(pt, MSHV_CREATE_VP, &(struct mshv_create_vp){ .vp_index = 1 }));
}

static int self_pipe[2];
static volatile sig_atomic_t alarms;

static void alarm_handler(int sig)
{
	char c = 'x', buf[64];

	(void)!write(self_pipe[1], &c, 1);
	(void)!read(self_pipe[0], buf, sizeof(buf));
	alarms++;
}

/* read()/write() are async-signal-safe: their interposers must be too. */
static void case_signal_write(int argc, char **argv)
{
	struct itimerval every = { { 0, 20 }, { 0, 20 } }, off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa;
	int dev = open_dev(O_RDWR), n = atoi(argv[0]);

	if (pipe2(self_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		die("pipe2");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = alarm_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &every, NULL) < 0)
		die("timer");
	for (int i = 0; i < n; i++) {
		int fd = dup(dev);

		if (fd < 0)
			die("dup");
		close(fd);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	printf("cycles=%d\nalarms_seen=%d\n", n, alarms > 0);
}

struct kase {
	const char *name;
	int nargs;
	void (*fn)(int argc, char **argv);
};

static const struct kase cases[] = {
	{ "fileops", 0, case_fileops },
	{ "raw_then_run", 1, case_raw_then_run },
	{ "stale", 2, case_stale },
	{ "release", 1, case_release },
	{ "child", 2, case_child },
	{ "efault_handler", 1, case_efault_handler },
	{ "signal_write", 1, case_signal_write },
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3 || strcmp(argv[1], "case")) {
		fprintf(stderr, "usage: %s case <name> [args]\n", argv[0]);
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!strcmp(cases[i].name, argv[2]) && argc - 3 >= cases[i].nargs) {
			cases[i].fn(argc - 3, argv + 3);
			return 0;
		}
	}
	fprintf(stderr, "unknown case or missing arguments: %s\n", argv[2]);
	return 1;
}
