"""Instruction bytes the hypervisor puts in intercept messages come from the guest's address
space through its page tables: an instruction split across two 4 KiB pages is read from the two
pages they map, however far apart; bytes before an instruction that are not readable (no RAM
there, or host memory the client made unreadable) do not keep it from being found."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import struct
from collections.abc import Iterator

import pytest

from mshv import GuestMemory, IoPortIntercept, MemoryIntercept, Mshv, Table
from mshv.testing import long_mode_registers, protected_mode_registers

PT = 0x5000  # a 4 KiB page table for the first 2 MiB, under long_mode_registers' PD at 0x4000
SPLIT_OUT, SPLIT_LOAD = 0x41000, 0x42000  # VA pages mapped far from their identity GPA
ELSEWHERE = {SPLIT_OUT: 0x70000, SPLIT_LOAD: 0x90000}
DECOY = b"\x99" * 16  # what the identity-mapped GPA after each split holds instead


def _write_va(mem: GuestMemory, va: int, data: bytes) -> None:
    """Write ``data`` at virtual address ``va`` of the page tables below, byte by byte."""
    for i, byte in enumerate(data):
        page = (va + i) & ~0xFFF
        mem.write(ELSEWHERE.get(page, page) + ((va + i) & 0xFFF), bytes([byte]))


def test_an_instruction_split_across_pages_is_read_from_both_pages_it_maps(backend_ready: None) -> None:
    """OUT at the last byte of a page and a MOV load from unmapped GPA at the last byte of
    another: each page after the split maps a GPA far from the one after its first byte."""
    with Mshv() as hv, GuestMemory(0x400000) as mem, hv.create_partition() as pt:
        registers = long_mode_registers(mem, 0x40FFD)
        mem.write(0x4000, struct.pack("<Q", PT | 3))  # PD[0]: 4 KiB pages for the first 2 MiB
        mem.write(PT, b"".join(struct.pack("<Q", ELSEWHERE.get(i << 12, i << 12) | 3) for i in range(512)))
        for page in ELSEWHERE:
            mem.write(page, DECOY)  # never mapped at VA `page`: read from here, a fetch is wrong
            mem.write(ELSEWHERE[page] + 0x1000, DECOY)
        jump = 0x41FFF - (0x41001 + 5)
        _write_va(mem, 0x40FFD, bytes([0xB0, 0x42, 0xE6, 0x10]))  # mov $0x42, %al; out %al, $0x10
        _write_va(mem, 0x41001, b"\xe9" + struct.pack("<i", jump))  # jmp 0x41fff
        _write_va(mem, 0x41FFF, bytes([0x8B, 0x03, 0xF4]))  # mov (%rbx), %eax; hlt
        pt.map_memory(mem, 0)
        vp = pt.create_vp(0)
        vp.set_registers({**registers, "rbx": 0x800000})  # past the 4 MiB of RAM
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and out.port == 0x10, out
        assert (out.header.rip, out.header.instruction_length) == (0x40FFF, 2), out
        vp.complete_io(out)
        load = vp.run()
        assert isinstance(load, MemoryIntercept) and load.gpa == 0x800000, load
        assert load.header.rip == 0x41FFF, load
        assert load.instruction_bytes[:3] == bytes([0x8B, 0x03, 0xF4]), load.instruction_bytes.hex()


@pytest.mark.parametrize("before", ["no region", "unreadable host memory"])
def test_an_out_at_the_start_of_a_region_is_found_without_the_bytes_before_it(
    before: str, backend_ready: None
) -> None:
    """The 15 bytes before an OUT at the first byte of a region are not guest RAM, or are in a
    region whose host memory the client made unreadable: the OUT is still found (RIP at it,
    length 2), and the regions can be unmapped afterwards (no fetch left a lock held)."""
    with Mshv() as hv, GuestMemory(0x10000) as low, GuestMemory(0x10000) as high, hv.create_partition() as pt:
        registers = protected_mode_registers(high, 0x10000, gdt=0x8000)  # GDT in `high` at 0x8000
        registers["gdtr"] = Table(base=0x18000, limit=3 * 8 - 1)  # its GPA
        high.write(0, bytes([0xE6, 0x10, 0xF4]))  # out %al, $0x10; hlt (at GPA 0x10000)
        regions = [pt.map_memory(high, 0x10000)]
        unreadable = contextlib.nullcontext() if before == "no region" else _unreadable(low)
        if before != "no region":
            regions.append(pt.map_memory(low, 0))
        with unreadable:
            vp = pt.create_vp(0)
            vp.set_registers(registers)
            out = vp.run()
            assert isinstance(out, IoPortIntercept) and out.port == 0x10, out
            assert (out.header.rip, out.header.instruction_length) == (0x10000, 2), out
        for region in regions:
            pt.unmap_memory(region)
        assert not pt.regions


@contextlib.contextmanager
def _unreadable(mem: GuestMemory) -> Iterator[None]:
    """``mem``'s host pages PROT_NONE for the block."""
    address = mem._acquire()  # the host address of its mapping
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(address), ctypes.c_size_t(mem.size), 0) == 0  # PROT_NONE
    try:
        yield
    finally:
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        assert libc.mprotect(ctypes.c_void_p(address), ctypes.c_size_t(mem.size), rw) == 0
        mem._release()
