"""What emulate_mmio refuses, and how: UnsupportedInstruction names the instruction (iced-x86's
mnemonic), its bytes and its RIP, and nothing was accessed or changed; a REPE/REPNE CMPS/SCAS
that meets an address that does not translate keeps the elements it did (as a fault would)."""

from __future__ import annotations

import dataclasses

import pytest
from x86_guest import Oracle

from mshv import HaltIntercept, MemoryIntercept
from mshv.testing import entry_gpa
from mshv.x86._linear import GuestAccessError
from mshv.x86.mmio import UnsupportedInstruction, emulate_mmio


def _intercept(
    oracle: Oracle, asm: str, registers: dict[str, int], pointers: tuple[str, ...]
) -> MemoryIntercept:
    """Run ``asm`` with the window on MMIO to the first intercept."""
    oracle.start_at(asm, registers, pointers=pointers)
    exit_ = oracle.vp.run()
    assert isinstance(exit_, MemoryIntercept), exit_
    return exit_


REFUSED = [("shll $3, {mem}", "SHL"), ("cmpxchgl %ecx, {mem}", "CMPXCHG"), ("pushl {mem}", "PUSH"),
           ("movw %ds, {mem}", "MOV")]  # fmt: skip


@pytest.mark.parametrize(("asm", "mnemonic"), REFUSED)
def test_unsupported_instruction_names_itself(oracle: Oracle, asm: str, mnemonic: str) -> None:
    if mnemonic == "PUSH" and oracle.mode == "long":
        asm = "pushq {mem}"
    asm = asm.format(mem=oracle.mem("rbx", 0x10))
    intercept = _intercept(oracle, asm, {"rbx": 0, "rcx": 7}, ("rbx",))
    before = oracle.vp.get_registers(["rip", "rcx", "rflags", "rsp"])
    accesses: list[object] = []
    with pytest.raises(UnsupportedInstruction) as raised:
        emulate_mmio(oracle.vp, intercept, read=lambda *a: accesses.append(a) or 0,
                     write=lambda *a: accesses.append(a))  # fmt: skip
    error = raised.value
    length = intercept.header.instruction_length
    assert error.mnemonic == mnemonic
    assert error.instruction_bytes == intercept.instruction_bytes[:length]
    assert error.rip == intercept.header.rip == entry_gpa(oracle.mode)
    assert mnemonic in str(error) and error.instruction_bytes.hex(" ") in str(error)
    assert f"{error.rip:#x}" in str(error)
    assert accesses == []
    assert oracle.vp.get_registers(["rip", "rcx", "rflags", "rsp"]) == before


def test_undecodable_bytes_are_named(long_oracle: Oracle) -> None:
    intercept = _intercept(long_oracle, "movl (%rbx), %eax", {"rbx": 0}, ("rbx",))
    truncated = dataclasses.replace(intercept, instruction_bytes=b"\x48")  # a REX prefix and nothing else
    with pytest.raises(UnsupportedInstruction, match=r"undecodable.*bytes 48\) at RIP 0x10000") as raised:
        emulate_mmio(long_oracle.vp, truncated, read=lambda g, s: 0, write=lambda g, s, v: None)
    assert (raised.value.mnemonic, raised.value.instruction_bytes) == (None, b"\x48")


def test_repe_cmps_keeps_the_elements_done_before_an_untranslatable_address(long_oracle: Oracle) -> None:
    """The identity map covers 1 GiB: the fifth byte at RDI = 1 GiB - 4 does not translate."""
    vp = long_oracle.vp
    intercept = _intercept(long_oracle, "repe cmpsb", {"rsi": 0, "rdi": 0x800, "rcx": 9}, ("rsi", "rdi"))
    vp.set_registers({"rdi": (1 << 30) - 4})  # the VMM is asked to compare up to the hole
    reads: list[int] = []
    with pytest.raises(GuestAccessError) as raised:
        emulate_mmio(vp, intercept, read=lambda gpa, size: reads.append(gpa) or 0, write=lambda g, s, v: None)
    assert raised.value.linear == 1 << 30
    assert len(reads) == 8  # four elements, two reads each: all equal, so REPE went on
    after = vp.get_registers(["rip", "rcx", "rsi", "rdi", "rflags"])
    assert (after["rip"], after["rcx"], after["rsi"], after["rdi"]) == (
        intercept.header.rip, 9 - 4, 0xE0000 + 4, 1 << 30)  # fmt: skip
    assert int(after["rflags"]) & 0x40  # ZF: the last compare was equal  # type: ignore[call-overload]
    vp.set_registers({"rcx": 0})
    assert isinstance(vp.run(), HaltIntercept)  # the guest goes on from the instruction
