"""MMIO reads by a plain MOV load, completed (or not) by the VMM the mshv way.

The emulator reports such a load without settling KVM's pending read and lets the next
RUN_VP complete it only when the VMM's completion is exactly what KVM's own would write
(emulator/run.c, emu_mmio_load_deferred); any other completion must still be what the
guest sees. Each guest first runs a few plain loads so that the emulator has learned the
host (the first load is settled) before the case under test.
"""

from __future__ import annotations

import pytest

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, MemoryIntercept, Partition, Vp
from mshv.testing import PAGED_CODE_GPA, assemble, start_vp

ENTRY = PAGED_CODE_GPA
MMIO = 0x100000  # no memory there: every access is a memory intercept

WARM_UP = f"""
    mov ${MMIO:#x}, %rbx
    mov (%rbx), %eax
    mov (%rbx), %eax
    mov (%rbx), %eax
"""


def _complete(vp: Vp, values: dict[str, int], how: str) -> None:
    if how == "regpage":
        vp.complete_registers(values)
    else:
        vp.set_registers(values)  # type: ignore[arg-type]


def _load(vp: Vp) -> MemoryIntercept:
    exit_ = vp.run()
    assert isinstance(exit_, MemoryIntercept) and not exit_.is_write and exit_.gpa == MMIO
    return exit_


def _warm_up(vp: Vp, how: str) -> None:
    for _ in range(3):
        exit_ = _load(vp)
        assert exit_.header.instruction_length == 2  # 8b 03
        _complete(vp, {"rip": exit_.next_rip, "rax": 1}, how)


def _guest(partition: Partition, memory: GuestMemory, body: str) -> Vp:
    return start_vp(partition, memory, assemble(WARM_UP + body, mode="long", base=ENTRY), mode="long")


@pytest.mark.parametrize("how", ["regpage", "hvcall"])
def test_plain_loads_of_every_size_take_the_vmm_value(
    partition: Partition, memory: GuestMemory, how: str
) -> None:
    """8-bit and 16-bit loads keep the destination's upper bytes, 32-bit ones clear them."""
    body = """
        mov $-1, %rcx
        mov $-1, %rdx
        mov $-1, %rsi
        mov $-1, %r10
        mov (%rbx), %cl             # 8a 0b
        mov (%rbx), %dx             # 66 8b 13
        mov (%rbx), %esi            # 8b 33
        mov (%rbx), %r9             # 4c 8b 0b
        mov (%rbx), %r10b           # 44 8a 13
        out %al, $0x10
        hlt
    """
    vp = _guest(partition, memory, body)
    _warm_up(vp, how)
    expect = {
        "rcx": 0xFFFFFFFFFFFFFF5A,
        "rdx": 0xFFFFFFFFFFFF1234,
        "rsi": 0x89ABCDEF,
        "r9": 0x0123456789ABCDEF,
        "r10": 0xFFFFFFFFFFFFFF77,
    }
    for (reg, value), length in zip(expect.items(), [2, 3, 2, 3, 3], strict=True):
        exit_ = _load(vp)
        assert exit_.header.instruction_length == length
        _complete(vp, {"rip": exit_.next_rip, reg: value}, how)
    assert isinstance(vp.run(), IoPortIntercept)
    assert vp.get_registers(list(expect)) == expect


@pytest.mark.parametrize("how", ["regpage", "hvcall"])
def test_a_completion_unlike_kvms_is_honoured(partition: Partition, memory: GuestMemory, how: str) -> None:
    """What the VMM writes counts even where KVM's pending completion would write otherwise:
    upper bits a 32-bit load would clear, another register, RFLAGS, RIP elsewhere."""
    body = """
        mov (%rbx), %eax            # completed with bits 32-63 set in RAX
        mov (%rbx), %eax            # completed with RCX changed too
        mov (%rbx), %eax            # completed with RFLAGS.CF set
        mov (%rbx), %eax            # completed with RIP past the next instruction
        mov $0x99, %eax             # skipped
        out %al, $0x10
        hlt
    """
    vp = _guest(partition, memory, body)
    _warm_up(vp, how)
    exit_ = _load(vp)
    _complete(vp, {"rip": exit_.next_rip, "rax": 0xDEAD00000001}, how)
    exit_ = _load(vp)
    assert vp.reg_read("rax") == 0xDEAD00000001
    _complete(vp, {"rip": exit_.next_rip, "rax": 2, "rcx": 0xC0FFEE}, how)
    exit_ = _load(vp)
    assert vp.get_registers(["rax", "rcx"]) == {"rax": 2, "rcx": 0xC0FFEE}
    flags = int(vp.reg_read("rflags"))  # type: ignore[arg-type]
    _complete(vp, {"rip": exit_.next_rip, "rax": 3, "rflags": flags | 1}, how)
    exit_ = _load(vp)
    assert int(vp.reg_read("rflags")) & 1  # type: ignore[arg-type]
    _complete(vp, {"rip": exit_.next_rip + 5, "rax": 4}, how)  # over the 5-byte mov $0x99
    out = vp.run()
    assert isinstance(out, IoPortIntercept)
    assert vp.get_registers(["rax", "rcx"]) == {"rax": 4, "rcx": 0xC0FFEE}
    assert int(vp.reg_read("rflags")) & 1  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["regpage", "hvcall"])
def test_a_load_left_uncompleted_runs_again(partition: Partition, memory: GuestMemory, how: str) -> None:
    """RIP left at the load (even with the destination written): the load executes again,
    with the registers as the VMM left them, and KVM's pending read is gone."""
    vp = _guest(partition, memory, "mov (%rbx), %eax\nhlt\n")
    _warm_up(vp, how)
    first = _load(vp)
    second = _load(vp)  # no completion at all
    assert second.header.rip == first.header.rip
    _complete(vp, {"rax": 0x1234}, how)  # a value, but RIP stays
    third = _load(vp)
    assert third.header.rip == first.header.rip and vp.reg_read("rax") == 0x1234
    _complete(vp, {"rip": third.next_rip, "rax": 0x5678}, how)
    assert isinstance(vp.run(), HaltIntercept)
    assert vp.reg_read("rax") == 0x5678


def test_mmio_writes_report_the_sixteen_bytes_at_the_store(partition: Partition, memory: GuestMemory) -> None:
    """A plain write is reported from the code read once around RIP (run.c): the message
    still carries the 16 bytes from the store on, as the hypervisor's does."""
    body = "mov %eax, 8(%rbx)\nmov %rax, (%rbx)\nmov %ax, 4(%rbx)\nhlt\n" + "nop\n" * 16
    vp = _guest(partition, memory, body)
    _warm_up(vp, "regpage")
    for _ in range(3):
        exit_ = vp.run()
        assert isinstance(exit_, MemoryIntercept) and exit_.is_write
        rip = exit_.header.rip
        assert bytes(exit_.instruction_bytes) == memory.read(rip, 16)
        vp.complete_registers({"rip": exit_.next_rip})
    assert isinstance(vp.run(), HaltIntercept)


@pytest.mark.parametrize("how", ["regpage", "hvcall"])
def test_an_in_completion_unlike_kvms_is_honoured(
    partition: Partition, memory: GuestMemory, how: str
) -> None:
    """IN is reported with KVM's completion still pending too (run.c, emu_exit_in): what the VMM
    writes (upper RAX bits, another register, RFLAGS, RIP) is what the guest gets, and an IN
    left at its RIP runs again."""
    body = """
        in $0x10, %al
        in $0x10, %al
        in $0x10, %al               # left uncompleted once, then completed over the next mov
        mov $0x99, %eax
        out %al, $0x11
        hlt
    """
    vp = _guest(partition, memory, body)
    _warm_up(vp, how)

    def in_exit() -> IoPortIntercept:
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10 and not exit_.is_write
        return exit_

    exit_ = in_exit()
    flags = int(vp.reg_read("rflags")) | 1  # type: ignore[arg-type]
    _complete(vp, {"rip": exit_.next_rip, "rax": 0xDEAD000000000001, "rflags": flags}, how)
    exit_ = in_exit()
    assert vp.get_registers(["rax", "rflags"]) == {"rax": 0xDEAD000000000001, "rflags": flags}
    _complete(vp, {"rip": exit_.next_rip, "rax": 2, "rcx": 0xC0FFEE}, how)
    exit_ = in_exit()
    again = in_exit()  # not completed: the same IN again
    assert again.header.rip == exit_.header.rip
    _complete(vp, {"rip": again.next_rip + 5, "rax": 3}, how)
    assert isinstance(vp.run(), IoPortIntercept)
    assert vp.get_registers(["rax", "rcx", "rflags"]) == {"rax": 3, "rcx": 0xC0FFEE, "rflags": flags}
