"""Guest linear memory seen from an intercept: segment:offset -> linear -> GPA -> host bytes.

What INS/OUTS (:mod:`mshv.x86.stringio`) and string instructions on MMIO
(:mod:`mshv.x86._string`) need to touch the guest's RAM the way the CPU would: the address-size part of an
index register (16, 32 or 64 bits) that wraps, a segment base, a page walk
(HvCallTranslateVirtualAddress, one per page) outside real mode, and the
partition's mapped regions. Nothing here changes a VP register.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv.memory import PAGE_SIZE
from mshv.registers import Segment
from mshv.translate import TranslateFlag, TranslateResult
from mshv.x86.cpu import code_bits

if TYPE_CHECKING:
    from mshv.intercepts import InterceptHeader
    from mshv.partition import MemoryRegion
    from mshv.vp import Vp

__all__ = [
    "GuestAccessError",
    "LinearMemory",
    "address_bits",
    "advance",
    "next_rip",
    "read_pieces",
    "segment_name",
    "write_pieces",
]

_ADDRESS_BITS = {
    iced.OpKind.MEMORY_SEG_SI: 16, iced.OpKind.MEMORY_ESDI: 16,
    iced.OpKind.MEMORY_SEG_ESI: 32, iced.OpKind.MEMORY_ESEDI: 32,
    iced.OpKind.MEMORY_SEG_RSI: 64, iced.OpKind.MEMORY_ESRDI: 64,
}  # fmt: skip
_SEGMENTS = {
    iced.Register.ES: "es", iced.Register.CS: "cs", iced.Register.SS: "ss",
    iced.Register.DS: "ds", iced.Register.FS: "fs", iced.Register.GS: "gs",
}  # fmt: skip
_MASKS = {16: (1 << 16) - 1, 32: (1 << 32) - 1, 64: (1 << 64) - 1}


class GuestAccessError(ValueError):
    """A guest address the emulated instruction touches cannot be reached (nothing was changed).

    Attributes:
        linear: the guest linear address.
        gpa: its guest physical address, or None when the translation failed.
    """

    def __init__(self, message: str, linear: int, gpa: int | None = None) -> None:
        super().__init__(message)
        self.linear = linear
        self.gpa = gpa


def next_rip(header: InterceptHeader, length: int) -> int:
    """RIP past the ``length``-byte instruction at the intercept, wrapped to the code size."""
    bits = code_bits(header.execution_state, header.cs.attributes)
    return (header.rip + length) & _MASKS[bits]


def address_bits(instr: Any) -> int:
    """The address size (16/32/64) of a decoded string instruction, from its memory operands."""
    for index in range(instr.op_count):
        bits = _ADDRESS_BITS.get(instr.op_kind(index))
        if bits is not None:
            return bits
    raise ValueError(f"{instr} has no string memory operand")


def segment_name(instr: Any) -> str:
    """The segment of a string instruction's source (DS:SI) operand, overrides included."""
    return _SEGMENTS.get(instr.memory_segment, "ds")


def advance(value: int, delta: int, bits: int) -> int:
    """``value`` with its ``bits``-wide part moved by ``delta``, wrapping as the CPU does.

    16 bits keep the upper bits of the register; 32 bits zero-extend (KVM's assign_register).
    """
    mask = _MASKS[bits]
    low = (value + delta) & mask
    return (value & ~mask & _MASKS[64]) | low if bits == 16 else low


class LinearMemory:
    """A VP's guest RAM by linear address, at one intercept (translations cached per page).

    Args:
        vp: the VP whose page tables and partition are used.
        header: the intercept header (its CPU mode decides whether addresses are paged).
    """

    def __init__(self, vp: Vp, header: InterceptHeader) -> None:
        self.vp = vp
        self.paged = header.mode != "real"  # HvCallTranslateVirtualAddress is the identity without paging
        self._pages: dict[tuple[int, bool], tuple[int, bool]] = {}  # (page, write) -> (gpa page, result ok)
        self._segments: dict[str, int] = {}
        self.long_mode = header.mode == "long"

    def segment_base(self, name: str, given: Segment | None = None) -> int:
        """The base of segment ``name`` (0 in long mode but for FS/GS); ``given`` avoids a read."""
        if self.long_mode and name not in ("fs", "gs"):
            return 0
        if given is not None:
            return given.base
        if name not in self._segments:
            segment = self.vp.reg_read(name)
            assert isinstance(segment, Segment)
            self._segments[name] = segment.base
        return self._segments[name]

    def gpa(self, linear: int, write: bool) -> tuple[int, bool]:
        """(GPA, translated) of ``linear``; translated is False for a GPA the walk left unmapped (MMIO).

        Raises:
            GuestAccessError: the page is not present or the access is not allowed.
        """
        linear &= _MASKS[64] if self.long_mode else _MASKS[32]
        if not self.paged:
            return linear, True
        page, offset = divmod(linear, PAGE_SIZE)
        key = (page, write)
        if key not in self._pages:
            flags = TranslateFlag.VALIDATE_WRITE if write else TranslateFlag.VALIDATE_READ
            result, gpa = self.vp.translate_gva(page * PAGE_SIZE, flags)
            if result not in (TranslateResult.SUCCESS, TranslateResult.GPA_UNMAPPED):
                raise GuestAccessError(
                    f"guest linear address {linear:#x} does not translate for "
                    f"{'write' if write else 'read'}: {result!r}",
                    linear,
                )
            self._pages[key] = (gpa // PAGE_SIZE, result == TranslateResult.SUCCESS)
        gpa_page, ok = self._pages[key]
        return gpa_page * PAGE_SIZE + offset, ok

    def ram(self, linear: int, size: int, write: bool) -> list[tuple[MemoryRegion, int, int]]:
        """Where ``size`` bytes at ``linear`` live: (region, offset in its memory, length) per page.

        Raises:
            GuestAccessError: a byte is not in guest RAM (unmapped, MMIO) or the access is refused.
        """
        pieces: list[tuple[MemoryRegion, int, int]] = []
        while size > 0:
            length = min(size, PAGE_SIZE - linear % PAGE_SIZE)
            gpa, _ = self.gpa(linear, write)
            region = self.vp.partition.region_at(gpa)
            if region is None or gpa + length > region.gpa + region.size:
                raise GuestAccessError(
                    f"guest linear address {linear:#x} (GPA {gpa:#x}) is not in guest RAM", linear, gpa
                )
            if write and not region.writable:
                raise GuestAccessError(
                    f"guest linear address {linear:#x} (GPA {gpa:#x}) is in read-only {region!r}", linear, gpa
                )
            pieces.append((region, region.offset + gpa - region.gpa, length))
            linear, size = linear + length, size - length
        return pieces

    def is_ram(self, linear: int, write: bool) -> bool:
        """True when ``linear`` is in a mapped region (False: MMIO)."""
        gpa, ok = self.gpa(linear, write)
        return ok and self.vp.partition.region_at(gpa) is not None


def read_pieces(pieces: list[tuple[MemoryRegion, int, int]]) -> bytes:
    """The bytes of what :meth:`LinearMemory.ram` returned."""
    return b"".join(region.memory.read(offset, length) for region, offset, length in pieces)


def write_pieces(pieces: list[tuple[MemoryRegion, int, int]], data: bytes) -> None:
    """Store ``data`` over what :meth:`LinearMemory.ram` returned."""
    at = 0
    for region, offset, length in pieces:
        region.memory.write(offset, data[at : at + length])
        at += length
