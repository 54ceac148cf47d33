"""Handle fds under hostile and careless callers (issue 12, items 2-4).

The kernel's /dev/mshv, partition and VP fds are a misc device and anon_inode files
whose fops have ioctl (and, for the VP, mmap) only; the emulator's are memfds. A C
client under LD_PRELOAD (handle_fds_client.c):

- makes every ordinary file call on them and on their KVM twins (/dev/kvm, a VM fd, a
  vCPU fd: the same kinds of file, with no read/write/fsync/fallocate either), which
  this host's kernel answers: the answers must be the same;
- truncates and grows them with raw system calls (which no interposer sees) and then
  runs the VP: nothing may pull the register page from under the emulator;
- closes or replaces a handle fd behind the emulator's back (raw close, close_range,
  raw dup2/dup3) and reuses the number: the new file must be the client's, and the
  dropped handle's reference must be put;
- installs its own SIGSEGV handler after the emulator's and passes bad pointers: they
  must give EFAULT, and the client's own faults must still reach its handler;
- writes to a self-pipe from a signal handler while it dups and closes handle fds: the
  read/write interposers must not take the fd table's lock for an fd that is not ours.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import assemble, compile_c

HERE = Path(__file__).resolve().parent

# include/hyperv/hvhdk.h: HVMSG_X64_IO_PORT_INTERCEPT
HVMSG_X64_IO_PORT_INTERCEPT = 0x80010000

GUEST = """
start:
    mov $0x42, %al
    out %al, $0x10
    hlt
.org 0xfff0                 # reset vector: GPA 0xFFFFFFF0 is this page, aliased
    ljmp $0, $start
.org 0x10000
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "handle_fds_client.c", tmp_path_factory.mktemp("fds"), ["-Wno-unused-parameter"])


def run_case(client: str, env: dict[str, str], *args: str) -> dict[str, str]:
    proc = subprocess.run([client, "case", *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


KINDS = ["dev", "dev_ro", "pt", "vp"]


def test_file_calls_answer_as_the_kernels_files(client, preload_env):
    """read/write/pread/pwrite/readv/writev/preadv(2)/pwritev(2)/lseek/ftruncate/fallocate/
    posix_fallocate/fsync/fdatasync on /dev/mshv (read-write and read-only), a partition fd
    and a VP fd answer exactly as the same calls on /dev/kvm, a KVM VM fd and a vCPU fd
    (vfs_read, vfs_write, ksys_pread64, do_preadv, noop_llseek, do_ftruncate, vfs_fallocate,
    vfs_fsync_range), and the handles work afterwards."""
    out = run_case(client, preload_env, "fileops")
    reference = {k.removeprefix("kvm."): v for k, v in out.items() if k.startswith("kvm.")}
    ours = {k.removeprefix("mshv."): v for k, v in out.items() if k.startswith("mshv.")}
    assert len(reference) == len(KINDS) * 31
    # the host's answers are the kernel rules themselves (checked, so a host change shows)
    assert reference["pt.write"] == reference["vp.write"] == "-1 EINVAL"
    assert reference["pt.pread"] == "-1 ESPIPE"
    assert reference["dev.pread"] == "-1 EINVAL"
    assert reference["dev_ro.write"] == "-1 EBADF"
    assert reference["vp.lseek_set"] == "0 0"
    assert reference["vp.ftruncate0"] == "-1 EINVAL"
    assert reference["pt.fallocate"] == "-1 ENODEV"
    mismatches = {k: (v, ours.get(k)) for k, v in reference.items() if ours.get(k) != v}
    assert mismatches == {}, "call: (kernel's anon_inode/misc file, ours)"
    assert out["mshv.pt.create_vp_after"].endswith(" 0")
    assert out["mshv.vp.mmap_after"] == "1"
    assert out["mshv.vp.regpage_version"] == "1"  # nothing was written into the register page


def test_raw_truncate_cannot_pull_the_register_page(client, preload_env, tmp_path):
    """Raw ftruncate/fallocate/write system calls on the handle fds fail (their size is
    sealed), so the next MSHV_RUN_VP runs (before: SIGBUS in emu_regpage_apply) and the
    client's register page mapping stays readable."""
    image = tmp_path / "guest.bin"
    image.write_bytes(assemble(GUEST, tmp_path, 16))
    out = run_case(client, preload_env, "raw_then_run", str(image))
    for key in (
        "raw_ftruncate_vp_failed",
        "raw_ftruncate_vp_grow_failed",
        "raw_fallocate_vp_grow_failed",
        "raw_ftruncate_pt_failed",
        "raw_write_pt_failed",
        "raw_write_dev_failed",
    ):
        assert out[key] == "1", key
    assert out["ftruncate_vp"] == "-1 EINVAL"
    assert out["write_pt"] == "-1 EINVAL"
    assert out["run"] == "0 0"
    assert int(out["type"], 0) == HVMSG_X64_IO_PORT_INTERCEPT
    assert out["regpage_version"] == "1"


@pytest.mark.parametrize("how", ["sys_close", "close_range", "sys_dup2", "sys_dup3"])
@pytest.mark.parametrize("victim", ["vp", "pt"])
def test_fd_closed_behind_our_back(client, preload_env, victim, how):
    """A handle fd closed or replaced where no interposer sees it, its number reused for
    /proc/self/exe: mmap, ioctl and read reach the new file (before: mmap returned the
    VP register page, the ioctl reached the emulator), and the stale entry's reference
    is put (every fd of the partition is gone after the last close)."""
    out = run_case(client, preload_env, "stale", victim, how)
    assert out.get("same_number", "1") == "1"
    assert out["mmap_is_exe"] == "1"
    assert out["ioctl"] == "-1 ENOTTY"  # a regular file's answer
    assert out["read"] == "4 0"
    assert out["read_is_exe"] == "1"
    assert out["close"] == "0 0"
    if victim == "vp":
        assert out["other_ioctl"].endswith(" 0")  # MSHV_CREATE_VP on the partition
    else:
        assert out["other_ioctl"] == "-1 EFAULT"  # the VP fd is still ours
    assert out["fds_leaked"] == "0"


@pytest.mark.parametrize("how", ["close_range", "sys_close"])
def test_handles_closed_behind_our_back_are_released(client, preload_env, how):
    """mshv_partition_release / mshv_vp_release run when the fds go, not when their numbers
    are next used: close_range() (libc) drops the entries at once, and entries of fds closed
    by raw system calls are dropped when the next handle is made (before: the partition and
    its KVM fds lived on while the numbers named other files)."""
    out = run_case(client, preload_env, "release", how)
    if how == "close_range":
        assert out["close_range_vp"] == "0 0"
        assert out["close_range_pt"] == "0 0"
    else:
        assert out["numbers_reused"] == "1"
    assert out["fds_leaked"] == "0"


@pytest.mark.parametrize("how", ["close_range", "close", "dup2"])
@pytest.mark.parametrize("kind", ["vfork", "fork"])
def test_child_closing_inherited_fds_leaves_parent_handles(client, preload_env, kind, how):
    """A child of vfork (posix_spawn, Python's subprocess) shares the parent's memory but
    not its fds: its close_range()/close()/dup2() over the inherited handle fds must not
    touch the parent's table (before: the parent's handles were released and its ioctls
    gave ENOTTY). A child of fork gets a table of its own and can make its own handles."""
    out = run_case(client, preload_env, "child", kind, how)
    assert out["child_status"] == "0"
    assert out["parent_create_vp"].endswith(" 0")
    assert out["parent_vp_ioctl"] == "-1 EFAULT"
    assert out["parent_create_partition"].endswith(" 0")


@pytest.mark.parametrize("how", ["sigaction", "signal"])
def test_client_sigsegv_handler_keeps_efault(client, preload_env, how):
    """copy_from_user/copy_to_user: a client that installs its own SIGSEGV handler after
    the emulator's still gets EFAULT for bad ioctl arguments and a bad open() path (before:
    its handler ran), its own faults still reach its handler, and sigaction reports it."""
    out = run_case(client, preload_env, "efault_handler", how)
    assert out["create_vp_bad_ptr"] == "-1 EFAULT"
    assert out["create_partition_bad_ptr"] == "-1 EFAULT"
    assert out["open_bad_ptr"] == "-1 EFAULT"
    assert out["client_handler_calls"] == "0"
    assert out["client_handler_calls_after_own_fault"] == "1"
    assert out["query_is_client"] == "1"
    assert out["create_vp_after"].endswith(" 0")


def test_signal_handler_write_while_closing_handles(client, preload_env):
    """A SIGALRM handler's write()/read() on a self-pipe, every 20 us, while the main thread
    dups and closes a /dev/mshv fd 100,000 times: the interposers of these async-signal-safe
    calls never wait for the table lock the interrupted close() holds (before: deadlock)."""
    out = run_case(client, preload_env, "signal_write", "100000")
    assert out["cycles"] == "100000"
    assert out["alarms_seen"] == "1"
