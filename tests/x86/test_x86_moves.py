"""Data movement with a memory operand on MMIO (MOV in its ModRM, immediate and moffs forms,
MOVZX, MOVSX, MOVSXD, XCHG), checked against the CPU doing the same on RAM."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from x86_guest import MMIO_DATA, RAM_DATA, Oracle, register, register_value, sizes, suffix

OFFSET = 0x800
SETTINGS = settings(max_examples=40, deadline=None)
words = st.integers(0, (1 << 64) - 1)


@SETTINGS
@given(data=st.data(), memory=words, operand=words)
def test_mov_both_directions_and_xchg(oracle: Oracle, data: st.DataObject, memory: int, operand: int) -> None:
    """MOV reg->mem, mem->reg and XCHG (both operand orders): 32-bit loads zero-extend in
    long mode, 8/16-bit loads keep the rest of the register."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    reg, mem = register("rdx", size), oracle.mem("rbx", OFFSET)
    forms = [f"mov {reg}, {mem}", f"mov {mem}, {reg}", f"xchg {reg}, {mem}", f"xchg {mem}, {reg}"]
    asm = data.draw(st.sampled_from(forms), label="asm")
    oracle.compare(asm, {"rdx": register_value(oracle.mode, operand), "rbx": 0},
                   bytes(OFFSET) + memory.to_bytes(8, "little"))  # fmt: skip


@SETTINGS
@given(data=st.data(), memory=words, operand=words)
def test_movzx_movsx(oracle: Oracle, data: st.DataObject, memory: int, operand: int) -> None:
    """MOVZX/MOVSX from 8 or 16 bits into 16, 32 (64) bits, MOVSXD in long mode."""
    forms = [("movzbw", 2), ("movzbl", 4), ("movzwl", 4), ("movsbw", 2), ("movsbl", 4), ("movswl", 4)]
    if oracle.mode == "long":
        forms += [("movzbq", 8), ("movzwq", 8), ("movsbq", 8), ("movswq", 8), ("movslq", 8)]
    mnemonic, size = data.draw(st.sampled_from(forms), label="form")
    oracle.compare(
        f"{mnemonic} {oracle.mem('rbx', OFFSET)}, {register('rcx', size)}",
        {"rcx": register_value(oracle.mode, operand), "rbx": 0},
        bytes(OFFSET) + memory.to_bytes(8, "little"),
    )


@SETTINGS
@given(data=st.data(), memory=words)
def test_mov_immediate(oracle: Oracle, data: st.DataObject, memory: int) -> None:
    """MOV $imm, (mem): C6/C7 (imm32 sign-extended for a 64-bit store)."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    bits = min(8 * size, 32)
    immediate = data.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1), label="immediate")
    oracle.compare(f"mov{suffix(size)} ${immediate}, {oracle.mem('rbx', OFFSET)}", {"rbx": 0},
                   bytes(OFFSET) + memory.to_bytes(8, "little"))  # fmt: skip


def test_mov_moffs(oracle: Oracle) -> None:
    """MOV between the accumulator and an absolute address (A0-A3: moffs16/32, movabs moffs64):
    no ModRM, no base register, so outside real mode the two runs use two programs that differ
    only in the address (in real mode DS points at the window)."""
    for size in sizes(oracle.mode):
        _mov_moffs(oracle, size)


def _mov_moffs(oracle: Oracle, size: int) -> None:
    accumulator, mov = register("rax", size), "movabs" if oracle.mode == "long" else "mov"
    outcomes = []
    for base, on_mmio in ((RAM_DATA, False), (MMIO_DATA, True)):
        at = OFFSET if oracle.mode == "real" else base + OFFSET
        asm = f"{mov} {at:#x}, {accumulator}\n{mov} {accumulator}, {at + 8:#x}"
        window = bytes(OFFSET) + bytes(range(1, 9))
        outcomes.append(oracle.run(asm, {"rax": register_value(oracle.mode, 0x1122334455667788)}, window,
                                   on_mmio=on_mmio, pointers=()))  # fmt: skip
    cpu, emulated = outcomes
    assert emulated.intercepts == 2
    assert emulated.registers == cpu.registers
    assert emulated.data == cpu.data
    assert cpu.data[OFFSET + 8 : OFFSET + 8 + size] == bytes(range(1, 1 + size))
