"""Partition.map_memory and the partition's physical address width (PHYSICAL_ADDRESS_WIDTH).

The hypervisor maps no GPA at or beyond ``1 << width`` (HvCallMapGpaPages). map_memory
refuses such a range itself, with GpaRangeError, before the request reaches the kernel:
nothing is mapped, and the low GPAs a wrapped address would alias stay free.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

import mshv.partition
from mshv import GpaRangeError, GuestMemory, Mshv, Partition
from mshv._abi import lib
from mshv.partition import _set_guest_memory

PAGE = 0x1000


@pytest.fixture(params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """map_memory in C (mshv._native, when built) and its pure-Python twin."""
    if request.param == "python":
        monkeypatch.setattr(mshv.partition, "_memory_calls", None)
    return str(request.param)


@pytest.fixture
def mem() -> Iterator[GuestMemory]:
    with GuestMemory(0x10000) as memory:
        yield memory


def test_width_is_the_property_and_the_guests_cpuid(partition: Partition) -> None:
    """One width: the property, and what CPUID 0x80000008 tells the guest (EAX[7:0])."""
    width = partition.physical_address_width
    assert width == partition.get_property(lib.HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH)
    assert 32 <= width <= 52
    vp = partition.create_vp(0)
    assert vp.get_cpuid(0x80000008).eax & 0xFF == width


def test_gpa_past_2_64_does_not_alias_low_memory(partition: Partition, mem: GuestMemory, path: str) -> None:
    """(1 << 64) + 0x10000 used to be accepted and read by the guest at GPA 0x10000, with
    region_at(0x10000) None and a mapping there refused with EEXIST."""
    with pytest.raises(GpaRangeError) as info:
        partition.map_memory(mem, (1 << 64) + 0x10000)
    assert info.value.gpa == (1 << 64) + 0x10000 and info.value.width == partition.physical_address_width
    assert partition.region_at(0x10000) is None and not partition._regions
    region = partition.map_memory(mem, 0x10000)
    assert partition.region_at(0x10000) is region


@pytest.mark.parametrize("below", [0, PAGE])
def test_range_must_end_within_the_width(
    partition: Partition, mem: GuestMemory, path: str, below: int
) -> None:
    """A region ending exactly at 1 << width maps; one that starts there, or straddles it,
    raises GpaRangeError (a ValueError) and leaves nothing mapped."""
    top = 1 << partition.physical_address_width
    with pytest.raises(GpaRangeError, match=f"{partition.physical_address_width}-bit"):
        partition.map_memory(mem, top - below, size=2 * PAGE)
    assert not partition._regions
    region = partition.map_memory(mem, top - PAGE, size=PAGE)
    assert partition.region_at(top - PAGE) is region


def test_raw_request_beyond_the_width_is_einval(partition: Partition, mem: GuestMemory) -> None:
    """Below Python, the backend refuses too: MSHV_SET_GUEST_MEMORY with a guest_pfn
    beyond the width fails with EINVAL (HV_STATUS_INVALID_PARAMETER from HvCallMapGpaPages)."""
    from mshv import _kernel

    top_pfn = (1 << partition.physical_address_width) // PAGE
    hva = mem._acquire()
    try:
        flags = 1 << lib.MSHV_SET_MEM_BIT_WRITABLE
        for pfn in (top_pfn, (1 << 52) + 0x10, 2**64 - 1):
            assert _set_guest_memory(partition.fd, PAGE, pfn, hva, flags) < 0
            assert _kernel.errno() == errno.EINVAL, pfn
    finally:
        mem._release()


def test_width_set_before_initialize(hv: Mshv, mem: GuestMemory) -> None:
    """PHYSICAL_ADDRESS_WIDTH set lower (an early property) is the width map_memory checks."""
    with hv.create_partition(lapic=False, initialize=False) as pt:
        pt.set_property(lib.HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH, 36)
        pt.initialize()
        assert pt.physical_address_width == 36
        with pytest.raises(GpaRangeError):
            pt.map_memory(mem, 1 << 36, size=PAGE)
        pt.map_memory(mem, (1 << 36) - PAGE, size=PAGE)
