"""mshv/memory.py and Partition.map_memory: guest memory lifetime and validation."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from mshv import GuestMemory, MshvError, Partition, _kernel
from mshv._abi import lib
from mshv.memory import HUGE_PAGE_SIZE


def test_read_write_and_buffer() -> None:
    with GuestMemory(0x4000) as mem:
        mem.write(0x10, b"abc")
        assert mem.read(0x10, 3) == b"abc"
        view = mem.view()
        view[0x20] = 0x7F
        assert mem.read(0x20, 1) == b"\x7f"
        with pytest.raises(ValueError):
            mem.read(0x3FFF, 2)
        view.release()  # close() refuses while a view is alive (tests/test_lifetimes.py)


def test_size_is_checked() -> None:
    for size in (0, 100, -4096):
        with pytest.raises(ValueError):
            GuestMemory(size)
    with pytest.raises(ValueError):
        GuestMemory(0x1000, hugepages=True)  # not a multiple of 2 MiB


def test_memfd_backed() -> None:
    with GuestMemory(0x2000, memfd=True) as mem:
        assert mem.fd >= 0
        mem.write(0, b"x")
        assert mem.read(0, 1) == b"x"


def test_use_after_close_is_an_error() -> None:
    mem = GuestMemory(0x1000)
    mem.close()
    mem.close()
    with pytest.raises(ValueError, match="closed"):
        mem.read(0, 1)


def test_memory_is_not_freed_while_mapped(partition: Partition) -> None:
    """close() while mapped only ends its use from Python; unmapping the region frees it."""
    mem = GuestMemory(0x10000)
    region = partition.map_memory(mem, 0x100000, writable=True)
    mem.close()
    assert mem.closed and mem._ptr is not None
    with pytest.raises(ValueError, match="closed"):
        partition.map_memory(mem, 0x200000)  # closed memory cannot be mapped again
    partition.unmap_memory(region)
    assert mem._ptr is None


def test_map_validation_happens_before_the_kernel(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem:
        with pytest.raises(ValueError):
            partition.map_memory(mem, 0x1234)
        with pytest.raises(ValueError):
            partition.map_memory(mem, 0, size=0x20000)
        partition.map_memory(mem, 0, size=0x8000)
        with pytest.raises(ValueError, match="overlaps"):
            partition.map_memory(mem, 0x4000, offset=0x8000, size=0x8000)
        partition.close()


def test_partition_close_unmaps_and_releases_memory(hv: object) -> None:
    from mshv import Mshv

    assert isinstance(hv, Mshv)
    mem = GuestMemory(0x10000)
    pt = hv.create_partition(lapic=False)
    pt.map_memory(mem, 0)
    pt.create_vp(0)
    pt.close()
    mem.close()  # allowed now
    assert pt.closed and mem.closed


def test_same_host_memory_at_two_gpas(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem:
        a = partition.map_memory(mem, 0)
        b = partition.map_memory(mem, 0x100000)
        assert a.hva == b.hva
        partition.close()


def test_kernel_rejection_is_a_typed_error(partition: Partition) -> None:
    """What the Python side cannot know, the kernel rejects: EEXIST on map, ENOENT on unmap."""
    unmap = 1 << lib.MSHV_SET_MEM_BIT_UNMAP
    with GuestMemory(0x10000) as mem:
        region = partition.map_memory(mem, 0)
        partition.unmap_memory(region)
        with pytest.raises(ValueError):
            partition.unmap_memory(region)  # not mapped any more: caught before the kernel
        # Another client of the same partition fd maps GPA 0x100000 (mshv_partition_create_region:
        # an overlapping GFN range is EEXIST) ...
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x100, mem.address, 0) == 0
        with pytest.raises(MshvError) as info:
            partition.map_memory(mem, 0x108000, size=0x1000)
        assert info.value.errno == errno.EEXIST and info.value.op == "MSHV_SET_GUEST_MEMORY"
        assert "map gpa=0x108000 size=0x1000" in str(info.value)
        assert not partition.regions and mem._mapped_by == 0  # nothing recorded, nothing held
        # ... and unmaps a region behind this object's back: the kernel finds none (ENOENT, >=6.19).
        region = partition.map_memory(mem, 0x200000)
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x200, mem.address, unmap) == 0
        with pytest.raises(MshvError) as info:
            partition.unmap_memory(region)
        assert info.value.errno == errno.ENOENT
        assert partition.regions == [region]  # still recorded: the unmap did not happen
        # put the kernel back in step, then both sides unmap cleanly
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x200, mem.address, 3) == 0
        partition.unmap_memory(region)
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x100, mem.address, unmap) == 0


def _free_hugepages() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("HugePages_Free:"):
            return int(line.split()[1])
    raise AssertionError("/proc/meminfo has no HugePages_Free")


@pytest.mark.parametrize("memfd", [False, True], ids=["anonymous", "memfd"])
def test_hugepages_without_reserved_pages_say_how_to_reserve_them(memfd: bool) -> None:
    wanted = _free_hugepages() + 1  # one more than the host has free
    with pytest.raises(MshvError) as info:
        GuestMemory(wanted * HUGE_PAGE_SIZE, hugepages=True, memfd=memfd)
    text = str(info.value)
    assert info.value.errno == errno.ENOMEM
    assert "vm.nr_hugepages" in text and f"{wanted} pages of 2 MiB wanted" in text, text


def test_map_memory_takes_guest_memory(partition: Partition) -> None:
    with pytest.raises(TypeError, match="GuestMemory.*bytearray"):
        partition.map_memory(bytearray(4096), 0)  # type: ignore[arg-type]
    assert partition.regions == []


@pytest.fixture
def hugetlb_pages() -> Iterator[None]:
    """Two free 2 MiB hugetlb pages: reserved for the test (root) and the old count put back."""
    path = Path("/proc/sys/vm/nr_hugepages")
    old = int(path.read_text())
    missing = 2 - _free_hugepages()
    if missing > 0:
        try:
            path.write_text(str(old + missing))
        except OSError as exc:
            pytest.xfail(f"cannot reserve 2 MiB hugetlb pages here: {exc}")
    try:
        if _free_hugepages() < 2:
            pytest.xfail("the host could not reserve two 2 MiB hugetlb pages (memory fragmented)")
        yield
    finally:
        if missing > 0:
            path.write_text(str(old))


def test_regions_tell_their_backing_page_size(partition: Partition, hugetlb_pages: None) -> None:
    with GuestMemory(HUGE_PAGE_SIZE, hugepages=True) as huge, GuestMemory(0x10000) as small:
        assert (huge.page_size, small.page_size) == (HUGE_PAGE_SIZE, 0x1000)
        region = partition.map_memory(huge, HUGE_PAGE_SIZE)
        assert region.page_size == HUGE_PAGE_SIZE and "2 MiB pages" in repr(region)
        assert partition.map_memory(small, 0).page_size == 0x1000
        partition.close()


def test_hugetlb_memory_is_mapped_whole_2m_pages_only(partition: Partition, hugetlb_pages: None) -> None:
    """A 2 MiB page cannot back a guest large page at a GPA or offset off 2 MiB, or as 4 KiB
    slices: map_memory refuses rather than silently losing the large pages."""
    with GuestMemory(2 * HUGE_PAGE_SIZE, hugepages=True) as mem:
        for gpa, offset, size in ((0x1000, 0, None), (0, 0x1000, 0x1FF000), (0, 0, 0x1000)):
            with pytest.raises(ValueError, match="2 MiB"):
                partition.map_memory(mem, gpa, offset=offset, size=size)
        assert partition.regions == [] and mem._mapped_by == 0  # nothing recorded, nothing held
        region = partition.map_memory(mem, 4 * HUGE_PAGE_SIZE, offset=HUGE_PAGE_SIZE, size=HUGE_PAGE_SIZE)
        assert region.page_size == HUGE_PAGE_SIZE
        partition.close()
