"""String instructions on MMIO (MOVS, STOS, LODS, CMPS, SCAS; REP, REPE, REPNE; both directions),
checked against the CPU doing the same on RAM: registers (RSI/RDI/RCX/RAX), RFLAGS, memory.

Before mshv.x86, LODS, CMPS and SCAS on MMIO raised UnsupportedInstruction."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from x86_guest import Oracle, _code, register_value, sizes, suffix

from mshv import HaltIntercept, MemoryIntercept
from mshv.x86.cpu import ARITHMETIC_FLAGS, DF
from mshv.x86.mmio import emulate_mmio

SOURCE, DESTINATION = 0x400, 0xC00  # rSI and rDI start here in the window; elements go either way
SETTINGS = settings(max_examples=50, deadline=None)
PREFIXES = {"movs": ["", "rep"], "stos": ["", "rep"], "lods": ["", "rep"],
            "cmps": ["", "repe", "repne"], "scas": ["", "repe", "repne"]}  # fmt: skip


def _window(rng: random.Random, similar: bool) -> bytes:
    """Random bytes; with ``similar`` the destination area repeats the source area with a few
    bytes changed (so REPE runs a while and then stops), else mostly different bytes with a
    few copied (so REPNE does)."""
    window = bytearray(rng.randbytes(0x1000))
    area = slice(DESTINATION - 0x200, DESTINATION + 0x200)
    source_area = window[SOURCE - 0x200 : SOURCE + 0x200]
    if similar:
        window[area] = source_area
        for _ in range(rng.randrange(4)):
            window[DESTINATION + rng.randrange(-0x40, 0x40)] ^= 1 << rng.randrange(8)
    else:
        for _ in range(rng.randrange(4)):
            at = rng.randrange(-0x40, 0x40)
            window[DESTINATION + at] = source_area[0x200 + at]
    return bytes(window)


@SETTINGS
@given(
    data=st.data(),
    kind=st.sampled_from(sorted(PREFIXES)),
    count=st.integers(1, 40),
    backwards=st.booleans(),
    seed=st.integers(0, 1 << 32),
    similar=st.booleans(),
)
def test_string_instruction(
    oracle: Oracle, data: st.DataObject, kind: str, count: int, backwards: bool, seed: int, similar: bool
) -> None:
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    prefix = data.draw(st.sampled_from(PREFIXES[kind]), label="prefix")
    rng = random.Random(seed)
    window = _window(rng, similar)
    element = int.from_bytes(window[DESTINATION : DESTINATION + size], "little")
    rax = element if similar else rng.getrandbits(64)  # SCAS: an equal first element, or likely not
    cpu, _ = oracle.compare(
        f"{prefix} {kind}{suffix(size)}",
        {"rsi": SOURCE, "rdi": DESTINATION, "rcx": count, "rax": register_value(oracle.mode, rax)},
        window,
        pointers=("rsi", "rdi"),
        rflags=0x2 | (DF if backwards else 0) | (rng.getrandbits(12) & ARITHMETIC_FLAGS),
    )
    done = count - cpu.registers["rcx"] if prefix else 1
    assert done >= 1


@pytest.mark.parametrize("mode_oracle", ["protected", "long"])
def test_cmps_between_mmio_and_ram(mode_oracle: str) -> None:
    """REPE CMPSD with the source on MMIO and the destination in RAM (outside the window): the
    comparison stops at the first difference, as on the CPU."""
    with Oracle(mode_oracle) as oracle:
        ram = 0x20000
        window = bytes(SOURCE) + bytes(range(64))
        expected = bytearray(range(64))
        expected[4 * 9 + 2] ^= 0x40  # the tenth dword differs
        oracle.memory.write(ram, bytes(expected))
        asm = "repe cmpsl"
        cpu, emulated = oracle.compare(asm, {"rsi": SOURCE, "rdi": ram, "rcx": 16}, window, pointers=("rsi",))
        assert cpu.registers["rcx"] == 16 - 10
        assert [kind for kind, *_ in emulated.log] == ["read"] * 10


@pytest.mark.parametrize("asm", ["rep stosb", "rep movsb"])
def test_rep_string_whose_last_element_is_the_first_on_mmio(oracle: Oracle, asm: str) -> None:
    """RAM ends at 0x40000: REP STOSB/MOVSB of 4 bytes from 0x3FFFD writes 3 bytes of RAM
    natively and its last element on MMIO. KVM leaves RIP at the REP with RCX already 0; the
    emulator must still report the REP (not the bytes before it) with that element to do."""
    ram_end, count = 0x40000, 4
    start = ram_end - (count - 1)
    base = 0x38000  # real mode: DS = ES = 0x3800, so DI does not wrap before 0x40000
    registers = {
        "rdi": start - base if oracle.mode == "real" else start,
        "rsi": 0x100,
        "rcx": count,
        "rax": 0xA5,
    }
    oracle.memory.write(base + 0x100, bytes([0x11, 0x22, 0x33, 0x44]))
    oracle.memory.write(start, bytes(count - 1))
    oracle.start_at(asm, registers, base=base, pointers=("rsi",))
    writes: list[tuple[int, int, int]] = []
    exit_ = oracle.vp.run()
    assert isinstance(exit_, MemoryIntercept) and exit_.gpa == ram_end
    assert exit_.instruction_bytes[:2] == _code(asm, oracle.mode)[:2]  # F3 AA / F3 A4
    emulate_mmio(oracle.vp, exit_, read=lambda g, s: 0, write=lambda g, s, v: writes.append((g, s, v)))
    assert isinstance(oracle.vp.run(), HaltIntercept)
    stored = [0xA5] * count if asm == "rep stosb" else [0x11, 0x22, 0x33, 0x44]
    assert writes == [(ram_end, 1, stored[-1])]
    assert oracle.memory.read(start, count - 1) == bytes(stored[:-1])
    after = oracle.vp.get_registers(["rcx", "rdi"])
    assert (after["rcx"], after["rdi"]) == (0, registers["rdi"] + count)
