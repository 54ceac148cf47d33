"""ALU instructions with a memory operand on MMIO, emulated by mshv.x86.mmio.emulate_mmio and
checked against the CPU running the same instruction on RAM (results, RFLAGS, the memory),
in real, protected and long mode, with operands drawn by hypothesis.

Before mshv.x86 these instructions (but ADD/SUB/AND/OR/XOR with a memory destination, whose
RFLAGS were not computed) raised UnsupportedInstruction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from x86_guest import INPUT_FLAGS, Oracle, register, register_value, sizes, suffix

from mshv.x86.cpu import ARITHMETIC_FLAGS, CF, OF, PF, SF, ZF

OFFSET = 0x800  # the memory operand, in the middle of the window
SETTINGS = settings(max_examples=60, deadline=None)
LOGIC_DEFINED = CF | OF | PF | SF | ZF  # AF is undefined after AND/OR/XOR/TEST (test_x86_undefined.py)
words = st.integers(0, (1 << 64) - 1)
EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
EDGES += [0x7FFFFFFFFFFFFFFF, 0x8000000000000000, (1 << 64) - 1]
interesting = st.sampled_from(EDGES)
values = st.one_of(words, interesting)


def _flags_mask(mnemonic: str) -> int:
    return LOGIC_DEFINED if mnemonic in ("and", "or", "xor", "test") else ARITHMETIC_FLAGS


@SETTINGS
@given(
    data=st.data(),
    mnemonic=st.sampled_from(["add", "adc", "sub", "sbb", "and", "or", "xor", "cmp", "test"]),
    memory=values,
    operand=values,
    flags=INPUT_FLAGS,
)
def test_register_operand(
    oracle: Oracle, data: st.DataObject, mnemonic: str, memory: int, operand: int, flags: int
) -> None:
    """``op %reg, (mem)`` and ``op (mem), %reg`` (TEST has only the first)."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    memory_is_destination = mnemonic == "test" or data.draw(st.booleans(), label="memory is destination")
    reg = register("rcx", size)
    mem = oracle.mem("rbx", OFFSET)
    operands = f"{reg}, {mem}" if memory_is_destination else f"{mem}, {reg}"
    oracle.compare(
        f"{mnemonic}{suffix(size)} {operands}",
        {"rcx": register_value(oracle.mode, operand), "rbx": 0},
        bytes(OFFSET) + memory.to_bytes(8, "little"),
        rflags=flags,
        flags_mask=_flags_mask(mnemonic),
    )


@SETTINGS
@given(
    data=st.data(),
    mnemonic=st.sampled_from(["add", "adc", "sub", "sbb", "and", "or", "xor", "cmp", "test"]),
    memory=values,
    flags=INPUT_FLAGS,
)
def test_immediate_operand(
    oracle: Oracle, data: st.DataObject, mnemonic: str, memory: int, flags: int
) -> None:
    """``op $imm, (mem)``: imm8 sign-extended (83 /n) or full-size up to imm32 (80/81 /n, F6/F7 /0)."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    bits = min(8 * size, 32)
    immediate = data.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1), label="immediate")
    oracle.compare(
        f"{mnemonic}{suffix(size)} ${immediate}, {oracle.mem('rbx', OFFSET)}",
        {"rbx": 0},
        bytes(OFFSET) + memory.to_bytes(8, "little"),
        rflags=flags,
        flags_mask=_flags_mask(mnemonic),
    )


@SETTINGS
@given(
    data=st.data(), mnemonic=st.sampled_from(["inc", "dec", "neg", "not"]), memory=values, flags=INPUT_FLAGS
)
def test_unary(oracle: Oracle, data: st.DataObject, mnemonic: str, memory: int, flags: int) -> None:
    """INC/DEC (CF kept), NEG (CF: operand nonzero), NOT (no flags)."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    oracle.compare(
        f"{mnemonic}{suffix(size)} {oracle.mem('rbx', OFFSET)}",
        {"rbx": 0},
        bytes(OFFSET) + memory.to_bytes(8, "little"),
        rflags=flags,
        flags_mask=ARITHMETIC_FLAGS,
    )


@SETTINGS
@given(data=st.data(), memory=values, operand=values, flags=INPUT_FLAGS)
def test_xadd(oracle: Oracle, data: st.DataObject, memory: int, operand: int, flags: int) -> None:
    """XADD: memory gets the sum, the register the old memory value, RFLAGS those of ADD."""
    size = data.draw(st.sampled_from(sizes(oracle.mode)), label="size")
    oracle.compare(
        f"xadd{suffix(size)} {register('rcx', size)}, {oracle.mem('rbx', OFFSET)}",
        {"rcx": register_value(oracle.mode, operand), "rbx": 0},
        bytes(OFFSET) + memory.to_bytes(8, "little"),
        rflags=flags,
        flags_mask=ARITHMETIC_FLAGS,
    )


def test_high_byte_registers_and_lock(oracle: Oracle) -> None:
    """AH/CH as operands (no REX), LOCK'd read-modify-write, a displacement off another base."""
    for asm in (
        f"addb %ah, {oracle.mem('rbx', OFFSET)}",
        f"subb {oracle.mem('rbx', OFFSET)}, %ch",
        f"lock orb %dh, {oracle.mem('rbx', OFFSET + 1)}",
        f"cmpb %bh, {oracle.mem('rsi', 0x10)}",
    ):
        cpu, _ = oracle.compare(
            asm,
            {"rax": 0x7F00, "rcx": 0x8100, "rdx": 0x5A00, "rbx": 0, "rsi": OFFSET - 0x10},
            bytes(OFFSET) + bytes([0x81, 0x7F]),
            pointers=("rbx", "rsi"),
            rflags=0x2 | CF,
        )
        assert cpu.rflags != 0x2 | CF, f"{asm}: the CPU changed no flag, a weak check"
