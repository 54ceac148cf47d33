"""mshv/_native.pyx: Partition.map_memory/unmap_memory in C, and their pure-Python twins.

Every test runs both ways (``path``): through ``mshv._native.MemoryCalls`` and through the
twins it hands what it does not take (``Partition._map_memory``/``_unmap_memory``, all a
build without a compiler has). They must agree on every result and every error.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mshv import (
    GuestMemory,
    HaltIntercept,
    MemoryRegion,
    MshvError,
    Partition,
    _kernel,
)
from mshv import (
    partition as partition_mod,
)
from mshv._abi import lib
from mshv.testing import CODE_GPA, assemble, real_mode_registers


@pytest.fixture(params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Map and unmap through the C path (it must be built here) or the pure-Python twins."""
    if request.param == "native":
        assert partition_mod._memory_calls is not None, "mshv._native is not built in this install"
    else:
        monkeypatch.setattr(partition_mod, "_memory_calls", None)
    yield request.param


def test_a_guest_runs_in_memory_mapped_and_unmapped(partition: Partition, path: str) -> None:
    with GuestMemory(0x10000) as mem, GuestMemory(0x1000) as data:
        mem.write(CODE_GPA, assemble("movb $0x5a, (0x2000); hlt"))
        code = partition.map_memory(mem, 0, size=0x2000, executable=True)
        extra = partition.map_memory(data, 0x2000, executable=False)
        assert partition.regions == [code, extra] and (mem._mapped_by, data._mapped_by) == (1, 1)
        assert extra == MemoryRegion(data, 0x2000, 0x1000, 0, True, False, data.address)
        assert code == MemoryRegion(mem, 0, 0x2000, 0, True, True, mem.address)
        vp = partition.create_vp(0)
        vp.set_registers(real_mode_registers())  # type: ignore[arg-type]
        assert isinstance(vp.run(), HaltIntercept)
        assert data.read(0, 1) == b"\x5a"
        partition.unmap_memory(extra)
        assert partition.regions == [code] and data._mapped_by == 0
        partition.unmap_memory(MemoryRegion(*code))  # an equal region (not the same object) will do
        assert partition.regions == [] and mem._mapped_by == 0
        partition.close()


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        result = call()
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "ok", repr(result)


BAD_MAPS: list[tuple[str, dict[str, Any]]] = [
    ("unaligned gpa", {"gpa": 0x1234}),
    ("negative gpa", {"gpa": -0x1000}),
    ("unaligned offset", {"gpa": 0, "offset": 0x10}),
    ("negative offset", {"gpa": 0, "offset": -0x1000}),
    ("size 0", {"gpa": 0, "size": 0}),
    ("unaligned size", {"gpa": 0, "size": 0x1800}),
    ("past the memory", {"gpa": 0, "size": 0x20000}),
    ("offset past the memory", {"gpa": 0, "offset": 0x10000}),
    ("overlap", {"gpa": 0x104000, "size": 0x1000}),
    ("overlap from below", {"gpa": 0xFF000, "size": 0x2000}),
    ("gpa beyond 64 bits", {"gpa": 1 << 80}),
    ("gpa beyond 62 bits", {"gpa": 1 << 63}),
    ("bool gpa", {"gpa": True}),
    ("float gpa", {"gpa": 4096.0}),
    ("str size", {"gpa": 0, "size": "4096"}),
    ("not GuestMemory", {"gpa": 0, "memory": bytearray(0x1000)}),
]


@pytest.mark.parametrize(("what", "kwargs"), BAD_MAPS, ids=[w for w, _ in BAD_MAPS])
def test_a_bad_map_fails_alike_both_ways(partition: Partition, what: str, kwargs: dict[str, Any]) -> None:
    with GuestMemory(0x10000) as mem:
        partition.map_memory(mem, 0x100000)
        memory = kwargs.pop("memory", mem)
        outcomes = []
        for calls in (partition_mod._memory_calls, None):
            assert partition_mod._memory_calls is not None
            saved, partition_mod._memory_calls = partition_mod._memory_calls, calls
            try:
                outcomes.append(_outcome(lambda: partition.map_memory(memory, **kwargs)))
            finally:
                partition_mod._memory_calls = saved
        native, python = outcomes
        assert native == python and native[0] != "ok", (what, native, python)
        assert len(partition.regions) == 1 and mem._mapped_by == 1  # nothing recorded, nothing held
        partition.close()


def test_closed_objects_are_refused(hv: Any, path: str) -> None:
    pt = hv.create_partition(lapic=False)
    with GuestMemory(0x1000) as mem:
        region = pt.map_memory(mem, 0)
        closed = GuestMemory(0x1000)
        closed.close()
        with pytest.raises(ValueError, match="closed GuestMemory"):
            pt.map_memory(closed, 0x1000)
        pt.close()
        assert mem._mapped_by == 0
        with pytest.raises(ValueError, match="partition is closed"):
            pt.map_memory(mem, 0)
        with pytest.raises(ValueError, match="partition is closed"):
            pt.unmap_memory(region)


def test_the_kernel_refusal_carries_its_errno(partition: Partition, path: str) -> None:
    """EEXIST on a map and ENOENT on an unmap come from the call's own errno (the C path reads
    errno right after its table call; the twin asks cffi)."""
    unmap = 1 << lib.MSHV_SET_MEM_BIT_UNMAP
    with GuestMemory(0x10000) as mem:
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x100, mem.address, 0) == 0
        with pytest.raises(MshvError) as info:
            partition.map_memory(mem, 0x108000, size=0x1000)
        assert info.value.errno == errno.EEXIST and info.value.op == "MSHV_SET_GUEST_MEMORY"
        assert "map gpa=0x108000 size=0x1000" in str(info.value)
        assert not partition.regions and mem._mapped_by == 0
        region = partition.map_memory(mem, 0x200000)
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x200, mem.address, unmap) == 0
        with pytest.raises(MshvError) as info:
            partition.unmap_memory(region)
        assert info.value.errno == errno.ENOENT and "unmap gpa=0x200000 size=0x10000" in str(info.value)
        assert partition.regions == [region] and mem._mapped_by == 1  # the unmap did not happen
        with pytest.raises(ValueError, match="is not mapped"):
            partition.unmap_memory(MemoryRegion(mem, 0x300000, 0x1000, 0, True, True, mem.address))
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x200, mem.address, 3) == 0
        partition.unmap_memory(region)
        assert _kernel.set_guest_memory_raw(partition.fd, 0x10000, 0x100, mem.address, unmap) == 0
        assert mem._mapped_by == 0


def test_the_c_path_takes_good_calls_and_hands_on_the_rest(
    partition: Partition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Good calls stay in C; a call it does not take goes to the twin, once, as it came."""
    from mshv._abi import ffi
    from mshv._native import MemoryCalls

    handed: list[tuple[Any, ...]] = []

    def map_checked(*args: Any) -> Any:
        handed.append(args)
        return Partition._map_memory(*args)

    def unmap_checked(*args: Any) -> Any:
        handed.append(args)
        return Partition._unmap_memory(*args)

    table = int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
    calls = MemoryCalls(
        table, GuestMemory, MemoryRegion, map_checked, unmap_checked, partition_mod._memory_error
    )
    monkeypatch.setattr(partition_mod, "_memory_calls", calls)
    with GuestMemory(0x10000) as mem:
        # twice: the first reads the physical address width, the second finds it kept
        for _ in range(2):
            region = partition.map_memory(mem, 0x100000, size=0x8000, offset=0x4000, writable=False)
            assert region == MemoryRegion(mem, 0x100000, 0x8000, 0x4000, False, True, mem.address + 0x4000)
            assert mem._mapped_by == 1
            partition.unmap_memory(region)
            assert handed == [] and partition.regions == [] and mem._mapped_by == 0
        assert partition._gpa_width is not None
        with pytest.raises(ValueError, match="aligned"):
            partition.map_memory(mem, 0x100800)
        assert handed == [(partition, mem, 0x100800, None, 0, True, True)]
        with pytest.raises(ValueError, match="not mapped"):
            partition.unmap_memory(region)
        assert handed[1] == (partition, region)
