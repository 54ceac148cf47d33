"""Guests in every CPU mode through the public API: protected mode (flat segments set from
Python) and long mode (page tables from Python) doing port IO echo and MMIO, completed the
mshv way (RIP moved past the instruction by the VMM). Real mode: tests/test_vp.py.
Guests come from the pytest plugin's ``mshv_guest`` (mshv/pytest_plugin.py)."""

from __future__ import annotations

import pytest

from mshv import GuestMemory, HaltIntercept, MemoryIntercept, Partition
from mshv.exits import Halt, IoPort, Mmio
from mshv.pytest_plugin import GuestFactory
from mshv.testing import PAGED_CODE_GPA, assemble, start_vp
from mshv.x86.mmio import emulate_mmio

ENTRY = PAGED_CODE_GPA
MMIO = 0x100000  # no memory there: every access is a memory intercept

GUEST = f"""
    mov $0x12345678, %eax
    out %eax, $0x10             # OUT: the VMM sees the value
    in $0x11, %eax              # IN: the VMM supplies one
    out %eax, $0x12             # the guest echoes what it got
    movl $0xabcdef01, {MMIO:#x}  # MMIO write
    mov {MMIO + 4:#x}, %ebx     # MMIO read into a register that is not RAX
    mov %ebx, %eax
    out %eax, $0x13
    hlt
"""


@pytest.mark.parametrize("mshv_mode", ["protected", "long"])
def test_port_io_and_mmio(mshv_guest: GuestFactory, mshv_mode: str) -> None:
    guest = mshv_guest(GUEST, mode=mshv_mode)
    got = guest.assert_exits(
        [
            IoPort(0x10, write=True, value=0x12345678, size=4),
            IoPort(0x11, write=False, value=0xCAFEBABE, size=4),
            IoPort(0x12, write=True, value=0xCAFEBABE, size=4),
            Mmio(MMIO, write=True, value=0xABCDEF01, size=4),
            Mmio(MMIO + 4, write=False, value=MMIO + 8, size=4),
            IoPort(0x13, write=True, value=MMIO + 8, size=4),
            Halt(),
        ]
    )
    assert {exit_.header.mode for exit_ in got} == {mshv_mode}  # type: ignore[attr-defined]
    assert guest.reg("rbx") == MMIO + 8
    assert guest.vp.exits == 7


PREFIXED_WRITES = f"""
    mov ${MMIO:#x}, %rbx
    mov $0x1122334455667788, %rcx
    mov %rcx, 8(%rbx)           # 48 89 4b 08: REX.W, an 8-byte write
    mov %cx, 16(%rbx)           # 66 89 4b 10: operand-size prefix, 2 bytes
    mov %ecx, 24(%rbx)          # 89 4b 18: 4 bytes
    hlt
"""


def test_prefixed_mmio_writes_keep_their_prefix(mshv_guest: GuestFactory) -> None:
    """A write is past its instruction at KVM's exit; the emulator must find the whole of it."""
    vp = mshv_guest(PREFIXED_WRITES, mode="long").vp
    seen: list[tuple[bytes, int, int]] = []
    writes: list[tuple[int, int, int]] = []
    while not isinstance(exit_ := vp.run(), HaltIntercept):
        assert isinstance(exit_, MemoryIntercept) and exit_.is_write
        n = exit_.header.instruction_length
        seen.append((exit_.instruction_bytes[:n], exit_.gpa, exit_.header.rip))
        emulate_mmio(vp, exit_, read=lambda g, s: 0, write=lambda g, s, v: writes.append((g, s, v)))
    assert [code for code, _, _ in seen] == [b"\x48\x89\x4b\x08", b"\x66\x89\x4b\x10", b"\x89\x4b\x18"]
    assert writes == [
        (MMIO + 8, 8, 0x1122334455667788),
        (MMIO + 16, 2, 0x7788),
        (MMIO + 24, 4, 0x55667788),
    ]
    assert seen[1][2] == seen[0][2] + 4 and seen[2][2] == seen[1][2] + 4  # RIP at each instruction


def test_emulate_mmio_reads_registers_the_vmm_changed(partition: Partition, memory: GuestMemory) -> None:
    """A register the VMM changed after the intercept is what an emulated store writes.

    emulate_mmio reads GPRs from the register page while it holds the intercept's state and by
    hypercall once a hypercall wrote registers (the hypervisor refreshes the page only at the
    next intercept); a change made through the page (a pending completion) is read back from it.
    """
    source = f"mov ${MMIO:#x}, %rbx\nmov $1, %rcx\nmov %rcx, (%rbx)\nmov %rcx, 8(%rbx)\nhlt"
    code = assemble(source, mode="long", base=ENTRY)
    vp = start_vp(partition, memory, code, mode="long")
    writes: list[tuple[int, int, int]] = []

    def write(gpa: int, size: int, value: int) -> None:
        writes.append((gpa, size, value))

    first = vp.run()
    assert isinstance(first, MemoryIntercept) and vp.register_page is not None and vp.register_page.valid
    vp.set_registers({"rcx": 0x2222})  # by hypercall: the page no longer holds the VP's state
    emulate_mmio(vp, first, read=lambda g, s: 0, write=write)
    second = vp.run()
    assert isinstance(second, MemoryIntercept)
    vp.complete_registers({"rcx": 0x3333})  # through the page: a write the next run applies
    emulate_mmio(vp, second, read=lambda g, s: 0, write=write)
    assert isinstance(vp.run(), HaltIntercept)
    assert writes == [(MMIO, 8, 0x2222), (MMIO + 8, 8, 0x3333)]


def test_an_mmio_write_left_uncompleted_runs_again(partition: Partition, memory: GuestMemory) -> None:
    """The VMM owns RIP after an MMIO write (RIP at the instruction, as on mshv): leaving it
    there executes the store again, moving it elsewhere resumes there. The emulator reports a
    plain write that KVM finished at the exit without settling it (run.c), so this pins that
    KVM's leftover completion changes nothing of what the VMM decided."""
    source = f"""
        mov ${MMIO:#x}, %rbx
        mov $0x55, %ecx
    store:
        mov %ecx, (%rbx)
        out %al, $0x10          # skipped: the VMM moves RIP from the store straight to the hlt
    done:
        hlt
    """
    code = assemble(source, mode="long", base=ENTRY)
    vp = start_vp(partition, memory, code, mode="long")
    seen: list[tuple[int, int, bytes]] = []
    for _ in range(4):  # the first settles (and learns the host), the later ones need not
        exit_ = vp.run()
        assert isinstance(exit_, MemoryIntercept) and exit_.is_write
        seen.append((exit_.header.rip, exit_.gpa, exit_.instruction_bytes[: exit_.header.instruction_length]))
        assert vp.reg_read("rip") == exit_.header.rip  # at the instruction, not past it
    assert len(set(seen)) == 1 and seen[0][1] == MMIO and seen[0][2] == b"\x89\x0b"
    vp.complete_registers({"rip": seen[0][0] + 2 + 2})  # past the store and the 2-byte OUT
    assert isinstance(vp.run(), HaltIntercept)
