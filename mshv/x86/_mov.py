"""Simple MMIO MOVs done through the register page: the Python twin of ``_decode_mov`` in _runloop.pyx.

Handles MOV r/m,r (88/89), MOV r,r/m (8A/8B) and MOV r/m,imm (C6/C7) with a
memory operand, with operand-size, address-size, segment and REX prefixes.
Anything else returns False and the caller uses :func:`mshv.x86.mmio.emulate_mmio`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mshv._abi import lib
from mshv._msgread import Reader
from mshv.regpage import GPRS
from mshv.x86.cpu import code_bits, merge_gpr

__all__ = ["GPA_INDEX", "MEMORY_FIELDS", "decode_mov", "mmio_mov"]

_SEGMENT_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65))
_OPCODES = frozenset((0x88, 0x89, 0x8A, 0x8B, 0xC6, 0xC7))
_DIRTY_IP = 1 << lib.HV_X64_REGISTER_CLASS_IP
_DIRTY_GENERAL = 1 << lib.HV_X64_REGISTER_CLASS_GENERAL
_ACCESS_WRITE = lib.HV_INTERCEPT_ACCESS_WRITE

#: The fields of ``struct hv_x64_memory_intercept_message`` the MOV needs, in offset order, for
#: one ``struct.unpack_from`` of the message at its payload (layout from the compiler).
MEMORY_FIELDS = Reader(
    "struct hv_x64_memory_intercept_message",
    ["header.intercept_access_type", "header.execution_state", "header.cs_segment.attributes",
     "header.rip", "instruction_byte_count", "guest_physical_address", "instruction_bytes"],
)  # fmt: skip
_ACCESS, _STATE, _CS_ATTRIBUTES, _RIP, _BYTE_COUNT, _GPA, _BYTES = range(7)
GPA_INDEX = _GPA  #: where guest_physical_address is in what MEMORY_FIELDS reads


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


# A guest's MMIO accesses come from a few instructions: decode each (bytes, bitness) once.
_decode_mov_cached = functools.lru_cache(maxsize=256)(decode_mov)


def mmio_mov(
    page: Any, v: tuple[Any, ...], read: Callable[[int, int], int], write: Callable[[int, int, int], None]
) -> bool:
    """Do the MOV of a memory intercept through register page ``page``; False if not simple.

    ``v`` is the intercept as :data:`MEMORY_FIELDS` reads it (one ``struct.unpack_from``).
    """
    if page is None or not page.isvalid:
        return False
    bits = code_bits(v[_STATE], v[_CS_ATTRIBUTES])
    insn = _decode_mov_cached(v[_BYTES][: v[_BYTE_COUNT]], bits)
    if insn is None:
        return False
    is_write, size, reg, shift, imm, length = insn
    if is_write != (v[_ACCESS] == _ACCESS_WRITE):
        return False
    gpa, dirty = v[_GPA], _DIRTY_IP
    if is_write:
        value = imm if reg < 0 else getattr(page, GPRS[reg]) >> shift
        write(gpa, size, value & ((1 << (8 * size)) - 1))
    else:
        name = GPRS[reg]
        setattr(page, name, merge_gpr(getattr(page, name), read(gpa, size), size, shift, bits))
        dirty |= _DIRTY_GENERAL
    page.rip = v[_RIP] + length
    page.dirty |= dirty
    return True
