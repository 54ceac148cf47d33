"""Integer results and status flags of the x86 ALU instructions, computed in Python.

Each function returns ``(result, flags)``: the ``size``-byte result and the status
flags it sets, as the SDM defines them per instruction (Intel SDM vol. 1 appendix A,
"EFLAGS Cross-Reference", and each instruction's "Flags Affected"). Where the SDM
leaves a flag undefined the choice is the one x86 processors make in practice and
the one each function's docstring names; the caller decides which flags the
instruction writes (``written``).
"""

from __future__ import annotations

from mshv.x86.cpu import AF, CF, OF, PF, SF, ZF

__all__ = ["add", "logic", "sign_extend", "sub"]


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def _result_flags(result: int, size: int) -> int:
    """SF, ZF and PF of a ``size``-byte result (PF: even parity of its low byte)."""
    flags = SF if result >> (8 * size - 1) & 1 else 0
    if result == 0:
        flags |= ZF
    if bin(result & 0xFF).count("1") % 2 == 0:
        flags |= PF
    return flags


def add(a: int, b: int, carry: int, size: int) -> tuple[int, int]:
    """``a + b + carry`` (ADD, ADC with carry = CF, INC, XADD): CF, PF, AF, ZF, SF, OF."""
    mask = _mask(size)
    a, b = a & mask, b & mask
    full = a + b + carry
    result = full & mask
    flags = _result_flags(result, size)
    if full >> (8 * size):
        flags |= CF
    if (a ^ b ^ result) & 0x10:
        flags |= AF
    if ((a ^ result) & (b ^ result)) >> (8 * size - 1) & 1:
        flags |= OF
    return result, flags


def sub(a: int, b: int, borrow: int, size: int) -> tuple[int, int]:
    """``a - b - borrow`` (SUB, SBB with borrow = CF, CMP, DEC, NEG as 0 - b, CMPS, SCAS)."""
    mask = _mask(size)
    a, b = a & mask, b & mask
    result = (a - b - borrow) & mask
    flags = _result_flags(result, size)
    if a < b + borrow:
        flags |= CF
    if (a ^ b ^ result) & 0x10:
        flags |= AF
    if ((a ^ b) & (a ^ result)) >> (8 * size - 1) & 1:
        flags |= OF
    return result, flags


def logic(result: int, size: int) -> tuple[int, int]:
    """The flags of AND, OR, XOR and TEST: CF and OF clear, SF/ZF/PF from the result.

    AF is undefined in the SDM; Intel and AMD processors clear it, and so does this.
    """
    result &= _mask(size)
    return result, _result_flags(result, size)


def sign_extend(value: int, size: int) -> int:
    """``value``'s low ``size`` bytes as a signed integer."""
    bit = 1 << (8 * size - 1)
    return (value & (bit - 1)) - (value & bit)
