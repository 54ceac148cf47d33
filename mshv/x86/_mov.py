"""Decoding of the simple MMIO MOVs the run loops do through the register page: the Python twin
of ``_decode_mov`` in _runloop.pyx (the pure-Python loop, mshv/_pyloop.py, uses it).

Handles MOV r/m,r (88/89), MOV r,r/m (8A/8B) and MOV r/m,imm (C6/C7) with a
memory operand, with operand-size, address-size, segment and REX prefixes.
Anything else decodes to None and the caller uses :func:`mshv.x86.mmio.emulate_mmio`.
"""

from __future__ import annotations

__all__ = ["decode_mov"]

_SEGMENT_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65))
_OPCODES = frozenset((0x88, 0x89, 0x8A, 0x8B, 0xC6, 0xC7))


def _modrm_length(b: bytes, i: int, mod: int, rm: int, addr: int) -> int:
    """Index past the ModRM's SIB and displacement, or -1 when the bytes run out."""
    if addr == 16:
        return i + (2 if (mod == 0 and rm == 6) or mod == 2 else 1 if mod == 1 else 0)
    if rm == 4:
        if i >= len(b):
            return -1
        i += 1 + (4 if mod == 0 and (b[i] & 7) == 5 else 0)
    return i + (4 if (mod == 0 and rm == 5) or mod == 2 else 1 if mod == 1 else 0)


def decode_mov(b: bytes, bits: int) -> tuple[bool, int, int, int, int, int] | None:
    """Decode a simple MOV: (is_write, size, reg or -1 for an immediate, shift, imm, length) or None."""
    i, opsize16, addr, rex, n = 0, False, bits, 0, len(b)
    while i < n and (b[i] in (0x66, 0x67) or b[i] in _SEGMENT_PREFIXES):
        if b[i] == 0x66:
            opsize16 = True
        elif b[i] == 0x67:
            addr = 16 if bits == 32 else 32
        i += 1
    if bits == 64 and i < n and b[i] & 0xF0 == 0x40:
        rex, i = b[i], i + 1
    if i + 2 > n or b[i] not in _OPCODES or b[i + 1] >> 6 == 3:
        return None
    op, modrm = b[i], b[i + 1]
    i = _modrm_length(b, i + 2, modrm >> 6, modrm & 7, addr)
    if i < 0:
        return None
    size = 1 if op in (0x88, 0x8A, 0xC6) else 8 if rex & 8 else 2 if (bits == 16) != opsize16 else 4
    reg, shift, imm = ((modrm >> 3) & 7) | ((rex & 4) << 1), 0, 0
    if op in (0xC6, 0xC7):
        isize = 4 if size == 8 else size
        if reg != 0 or i + isize > n:
            return None
        imm = int.from_bytes(b[i : i + isize], "little")
        if size == 8 and imm >> 31:
            imm |= 0xFFFFFFFF00000000  # imm32 sign-extends to 64 bits
        reg, i = -1, i + isize
    elif size == 1 and rex == 0 and 4 <= reg < 8:
        reg, shift = reg - 4, 8  # AH, CH, DH, BH
    if i > n:
        return None
    return op in (0x88, 0x89, 0xC6, 0xC7), size, reg, shift, imm, i
