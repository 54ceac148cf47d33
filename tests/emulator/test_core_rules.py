"""Rule tests for the emulator core: /dev/mshv, partition and VP fds.

A C client (core_client.c, only libc + <linux/mshv.h>) runs under
LD_PRELOAD=<emulator library>; each case prints key=value lines. Every test names
the kernel function (drivers/hv/mshv_root_main.c, Linux 7.2) whose checks it mirrors.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "core_client.c", tmp_path_factory.mktemp("core"), ["-Wno-unused-parameter"])


def run_case(client: str, env: dict[str, str], *args: str) -> dict[str, str]:
    proc = subprocess.run([client, "case", *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def assert_errno(out: dict[str, str], key: str, errno_name: str) -> None:
    if errno_name == "0":
        assert out[f"{key}.errno"] == "0" and int(out[f"{key}.ret"]) >= 0, (key, out)
    else:
        assert (out[f"{key}.ret"], out[f"{key}.errno"]) == ("-1", errno_name), (key, out)


# ---- MSHV_CREATE_PARTITION (mshv_ioctl_create_partition) ---------------------------

CREATE_PARTITION_CASES = [
    # (variant, pt_flags, pt_isolation, extra, errno)
    ("v1", "0", "0", None, "0"),
    ("v1", "0x1", "0", None, "0"),  # LAPIC: split irqchip
    ("v1", "0x37", "0", None, "0"),  # every v1 bit of the 7.2 mask 0x3F
    ("v1", "0x40", "0", None, "EINVAL"),  # outside MSHV_PT_FLAGS_MASK
    ("v1", "0x8000000000000000", "0", None, "EINVAL"),
    ("v1", "0", "1", None, "EINVAL"),  # only ISOLATION_NONE exists
    ("v1", "0x40", "1", None, "EINVAL"),
    ("v1", "0x8", "0", None, "0"),  # v2: banks 2, zero reserved
    ("v1", "0x9", "0", None, "0"),
    ("v1", "0x48", "0", None, "EINVAL"),  # step 2 comes before the v2 copy
    ("banks", "0x8", "0", "1", "EINVAL"),
    ("banks", "0x8", "0", "0", "EINVAL"),
    ("banks", "0x8", "0", "3", "EINVAL"),
    ("banks", "0x0", "0", "1", "0"),  # without bit 3 the v2 fields are not read
    ("rsvd", "0x8", "0", "0", "EINVAL"),
    ("rsvd", "0x8", "0", "5", "EINVAL"),
    ("rsvd1", "0x8", "0", "0", "EINVAL"),
    ("rsvd1", "0x8", "0", "1", "EINVAL"),
    ("rsvd", "0x0", "0", "5", "0"),
    ("null", "0", "0", None, "EFAULT"),  # step 1: copy 16 B
    ("edge15", "0", "0", None, "EFAULT"),
    ("edge16", "0x1", "0", None, "0"),  # v1: exactly 16 bytes are read
    ("edge16", "0x8", "0", None, "EFAULT"),  # step 3: bit 3 reads 64 B
]


@pytest.mark.parametrize("variant,flags,isolation,extra,errno_name", CREATE_PARTITION_CASES)
def test_create_partition(client, preload_env, variant, flags, isolation, extra, errno_name):
    """mshv_ioctl_create_partition / mshv_ioctl_process_pt_flags: checks and order."""
    args = [variant, flags, isolation] + ([extra] if extra else [])
    out = run_case(client, preload_env, "create_partition", *args)
    assert_errno(out, "create", errno_name)
    if errno_name == "0":
        assert out["cloexec"] == "1"  # anon_inode_getfd(..., O_RDWR | O_CLOEXEC)
        assert_errno(out, "init", "0")


# ---- rules on every fd (mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl) ---------


def test_unknown_and_vtl_ioctls_enotty(client, preload_env):
    """mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl: any other number is ENOTTY.

    Covers the mshv_vtl driver's numbers, numbers of the other two fd kinds, and
    right command numbers with wrong size/direction bits, on all three fd kinds.
    """
    out = run_case(client, preload_env, "enotty")
    assert out.get("done") == "1"
    assert [k for k in out if k.startswith("not-enotty")] == []


def test_mmap_device_and_partition_enodev(client, preload_env):
    """mshv_dev_fops / mshv_partition_fops have no .mmap: ENODEV at every offset."""
    out = run_case(client, preload_env, "mmap_enodev")
    for kind in ("dev", "pt"):
        for off in range(3):
            assert_errno(out, f"{kind}{off}", "ENODEV")


@pytest.mark.parametrize(
    "key",
    [
        "create_partition",
        "create_vp",
        "set_guest_memory",
        "irqfd",
        "ioeventfd",
        "set_msi_routing",
        "gpap",
        "set_guest_memory_edge",
        "create_vp_edge",
    ],
)
def test_bad_argument_pointer_efault(client, preload_env, key):
    """copy_from_user in every mshv_*_ioctl handler: an unreadable argument is EFAULT first."""
    out = run_case(client, preload_env, "efault")
    assert_errno(out, key, "EFAULT")


def test_misaligned_argument_structs_answer_as_aligned_ones(client, preload_env):
    """copy_from_user/copy_to_user have no alignment rule: MSHV_SET_MSI_ROUTING's table and
    MSHV_GET_VP_STATE's argument (its buf_sz written back) at odd addresses give what they give
    aligned. Under the sanitized emulator (test_sanitized) UBSan also checks that no member of
    a client's struct is reached through a misaligned pointer."""
    out = run_case(client, preload_env, "misaligned")
    assert out["routing_aligned.ret"] == "0", out
    for name in ("routing", "vp_state"):
        for field in ("ret", "errno", "buf_sz"):
            aligned = out.get(f"{name}_aligned.{field}")
            assert out.get(f"{name}_misaligned.{field}") == aligned, (name, field, out)
    assert int(out["vp_state_misaligned.buf_sz"]) > 0, out  # the size needed, written back


def test_new_fds_cloexec(client, preload_env):
    """anon_inode_getfd(O_RDWR | O_CLOEXEC) for partition and VP fds; /dev/mshv as opened."""
    out = run_case(client, preload_env, "cloexec")
    assert out["dev"] == "0"
    assert out["dev_cloexec"] == "1"
    assert out["pt"] == "1"
    assert out["vp"] == "1"
    assert "mshv_partition" in out["pt_link"]


# ---- mshv_partition_ioctl_initialize / mshv_partition_ioctl_create_vp -----------------


def test_initialize_idempotent(client, preload_env):
    """mshv_partition_ioctl_initialize: a second INITIALIZE returns 0; no state is checked."""
    out = run_case(client, preload_env, "initialize")
    assert_errno(out, "first", "0")
    assert_errno(out, "second", "0")
    assert_errno(out, "vp_before_init", "0")


@pytest.mark.parametrize(
    "key,errno_name",
    [
        ("index256", "EINVAL"),  # vp_index >= MSHV_MAX_VPS
        ("index_max", "EINVAL"),
        ("index255", "0"),
        ("again255", "EEXIST"),
        ("index0", "0"),
        ("after_close0", "EEXIST"),  # mshv_vp_release keeps the VP
        ("index1", "0"),
        ("other_partition0", "0"),
    ],
)
def test_create_vp(client, preload_env, key, errno_name):
    """mshv_partition_ioctl_create_vp: index bound, duplicates, index kept after close."""
    out = run_case(client, preload_env, "create_vp")
    assert_errno(out, key, errno_name)
    assert out["vp_cloexec"] == "1"


# ---- MSHV_SET_GUEST_MEMORY (mshv_partition_ioctl_set_memory) -------------------------

SET_MEMORY_CASES = [
    ("size0", "EINVAL"),
    ("size_unaligned", "EINVAL"),
    ("size_half", "EINVAL"),
    ("uaddr_unaligned", "EINVAL"),
    ("flags8", "EINVAL"),
    ("flags80", "EINVAL"),
    ("rsvd0", "EINVAL"),
    ("rsvd6", "EINVAL"),
    ("unmap_size0", "EINVAL"),  # step 2 before the unmap lookup
    ("map_beyond_user", "EINVAL"),  # access_ok
    ("map_wrap", "EINVAL"),
    ("map_no_vma", "EINVAL"),  # vma_lookup(userspace_addr)
    ("map_tail_hole", "0"),  # only the first address is looked up
    ("map", "0"),
    ("overlap_same", "EEXIST"),
    ("overlap_first", "EEXIST"),
    ("overlap_last", "EEXIST"),
    ("overlap_enclosing", "EEXIST"),  # 7.2 full interval test (≤6.18 missed it)
    ("overlap_inside", "EEXIST"),
    ("adjacent_below", "0"),
    ("adjacent_above", "0"),
    ("uaddr_alias", "0"),  # overlapping userspace ranges are allowed (≥6.19)
    ("readonly", "0"),
    ("exec_only", "0"),
    ("unmap_unknown", "ENOENT"),  # ≤6.18: EINVAL
    ("unmap_wrong_uaddr", "EINVAL"),
    ("unmap_wrong_size", "EINVAL"),
    ("unmap_inner_gfn", "EINVAL"),
    ("unmap", "0"),  # WRITABLE/EXECUTABLE ignored with UNMAP
    ("unmap_again", "ENOENT"),
    ("remap", "0"),
    ("unmap_alias", "0"),
]


@pytest.fixture(scope="module")
def set_memory_out(client, preload_env):
    return run_case(client, preload_env, "set_memory")


@pytest.mark.parametrize("key,errno_name", SET_MEMORY_CASES)
def test_set_guest_memory(set_memory_out, key, errno_name):
    """mshv_partition_ioctl_set_memory, mshv_map_user_memory, mshv_unmap_user_memory,
    mshv_partition_create_region: checks in the kernel's order and errno."""
    assert_errno(set_memory_out, key, errno_name)


# ---- VP mmap (mshv_vp_mmap) ----------------------------------------------------------


@pytest.fixture(scope="module")
def vp_mmap_out(client, preload_env):
    return run_case(client, preload_env, "vp_mmap")


@pytest.mark.parametrize(
    "key,errno_name",
    [
        ("off0", "0"),  # MSHV_VP_MMAP_OFFSET_REGISTERS
        ("off1", "0"),  # MSHV_VP_MMAP_OFFSET_INTERCEPT_MESSAGE
        ("off2", "ENODEV"),  # GHCB: SNP partitions only
        ("off3", "EINVAL"),
        ("off4", "EINVAL"),
        ("off100", "EINVAL"),
        ("unaligned", "EINVAL"),
        ("long", "0"),
        ("private_msg", "0"),
        ("dup", "0"),
    ],
)
def test_vp_mmap(vp_mmap_out, key, errno_name):
    """mshv_vp_mmap: offsets 0/1 map, 2 ENODEV, >=3 EINVAL; length/prot unchecked."""
    assert_errno(vp_mmap_out, key, errno_name)


def test_vp_mmap_pages(vp_mmap_out):
    """mshv_vp_fault: every page of a mapping shows the page of its start offset;
    the register page has version 1 (hv_vp_register_page)."""
    assert vp_mmap_out["version"] == "1"
    assert vp_mmap_out["long_versions"] == "1,1,1"
    assert vp_mmap_out["dup_version"] == "1"
    # an fd made by F_DUPFD_CLOEXEC is still a VP fd: unknown ioctls are ENOTTY
    assert_errno(vp_mmap_out, "dupfd_enotty", "ENOTTY")
