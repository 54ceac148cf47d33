"""STOS and MOVS (with or without REP) touching MMIO: the string half of :func:`mshv.mmio.emulate_mmio`.

The VP stops at the element that reached MMIO, with RCX/RSI/RDI as before it.
The whole rest of the instruction is done here, element by element in the
guest's order: STOS stores AL/AX/EAX/RAX at ES:rDI; MOVS copies DS:rSI (or its
segment override) to ES:rDI, where either side may be RAM (a mapped region) or
MMIO (``read``/``write``). Address size, wrap-around and the direction flag are
honoured, and outside real mode every page is translated once. Every address is
resolved before the first access, so an error changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv._linear import (
    LinearMemory,
    address_bits,
    advance,
    code_bits,
    read_pieces,
    segment_name,
    write_pieces,
)
from mshv.intercepts import MemoryIntercept
from mshv.registers import Segment

if TYPE_CHECKING:
    from mshv.partition import MemoryRegion
    from mshv.vp import Vp

__all__ = ["emulate_string", "is_string"]

RFLAGS_DF = 1 << 10  # EFLAGS.DF (x86 architecture): string instructions step down
_STOS = frozenset((iced.Mnemonic.STOSB, iced.Mnemonic.STOSW, iced.Mnemonic.STOSD, iced.Mnemonic.STOSQ))
_MOVS = frozenset((iced.Mnemonic.MOVSB, iced.Mnemonic.MOVSW, iced.Mnemonic.MOVSD, iced.Mnemonic.MOVSQ))
_DESTINATIONS = frozenset((iced.OpKind.MEMORY_ESDI, iced.OpKind.MEMORY_ESEDI, iced.OpKind.MEMORY_ESRDI))

_Place = list[tuple["MemoryRegion", int, int]] | int  # RAM pieces, or the GPA of an MMIO element


def is_string(instr: Any) -> bool:
    """True for a STOS or MOVS (not SSE MOVSD, whose operands are not ES:rDI)."""
    return instr.mnemonic in (_STOS | _MOVS) and instr.op0_kind in _DESTINATIONS


def _place(memory: LinearMemory, linear: int, size: int, write: bool) -> _Place:
    """Where one element lives: RAM pieces (LinearMemory.ram: all of it RAM) or an MMIO GPA."""
    if memory.is_ram(linear, write):
        return memory.ram(linear, size, write)
    return memory.gpa(linear, write)[0]


def emulate_string(
    vp: Vp,
    intercept: MemoryIntercept,
    instr: Any,
    read: Callable[[int, int], int],
    write: Callable[[int, int, int], None],
) -> None:
    """Do the whole STOS/MOVS ``instr`` of ``intercept`` and move the VP past it (one register write).

    Raises:
        GuestAccessError: an address does not translate or a RAM side is not mapped.
    """
    bits = address_bits(instr)
    mask = (1 << bits) - 1
    size = iced.MemorySizeExt.size(instr.memory_size)
    movs = instr.mnemonic in _MOVS
    source = segment_name(instr)
    names = ["rcx", "rsi", "rdi", "rax", "es"] + ([source] if movs and source != "es" else [])
    regs = vp.get_registers(names)
    rcx, rsi, rdi, rax = (_int(regs[name]) for name in ("rcx", "rsi", "rdi", "rax"))
    rep = instr.has_rep_prefix or instr.has_repne_prefix
    count = rcx & mask if rep else 1
    step = -size if intercept.header.rflags & RFLAGS_DF else size
    memory = LinearMemory(vp, intercept.header)
    es = regs["es"]
    assert isinstance(es, Segment)
    dst_base = memory.segment_base("es", es)
    dst = [_place(memory, dst_base + ((rdi + i * step) & mask), size, True) for i in range(count)]
    src: list[_Place] = []
    if movs:
        given = regs[source]
        assert isinstance(given, Segment)
        src_base = memory.segment_base(source, given)
        src = [_place(memory, src_base + ((rsi + i * step) & mask), size, False) for i in range(count)]
    for i, place in enumerate(dst):
        value = _load(src[i], size, read) if movs else rax & ((1 << (8 * size)) - 1)
        if isinstance(place, int):
            write(place, size, value)
        else:
            write_pieces(place, value.to_bytes(size, "little"))
    changed: dict[str, int] = {"rdi": advance(rdi, count * step, bits)}
    if movs:
        changed["rsi"] = advance(rsi, count * step, bits)
    if rep:
        changed["rcx"] = advance(rcx, -count, bits)
    changed["rip"] = (intercept.header.rip + instr.len) & ((1 << code_bits(intercept.header)) - 1)
    vp.complete_registers(changed)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _load(place: _Place, size: int, read: Callable[[int, int], int]) -> int:
    if isinstance(place, int):
        return int(read(place, size)) & ((1 << (8 * size)) - 1)
    return int.from_bytes(read_pieces(place), "little")
