"""String instructions touching MMIO: the string half of :func:`mshv.x86.mmio.emulate_mmio`.

The VP stops at the element that reached MMIO, with RCX/RSI/RDI as before it. The
whole rest of the instruction is done here, element by element in the guest's
order, where either side may be RAM (a mapped region) or MMIO (``read``/``write``):

- STOS stores AL/AX/EAX/RAX at ES:rDI; MOVS copies DS:rSI (or its segment
  override) to ES:rDI; LODS loads DS:rSI into AL/AX/EAX/RAX. REP (F3 or F2)
  repeats them RCX times. Every address is resolved before the first access, so
  an error changes nothing.
- CMPS compares DS:rSI with ES:rDI, SCAS AL/AX/EAX/RAX with ES:rDI, setting the
  flags of a SUB. REPE/REPNE repeat them while RCX is nonzero and ZF is set/clear.
  Their element count is not known in advance, so each element's addresses are
  resolved just before it: an error at a later element keeps the elements done
  (RCX/RSI/RDI and RFLAGS written, RIP left at the instruction), as a fault would.

Address size, wrap-around and the direction flag are honoured, and outside real
mode every page is translated once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv.intercepts import MemoryIntercept
from mshv.registers import Segment
from mshv.x86._alu import sub
from mshv.x86._linear import (
    GuestAccessError,
    LinearMemory,
    address_bits,
    advance,
    next_rip,
    read_pieces,
    segment_name,
    write_pieces,
)
from mshv.x86.cpu import ARITHMETIC_FLAGS, DF, ZF, code_bits, merge_gpr

if TYPE_CHECKING:
    from mshv.partition import MemoryRegion
    from mshv.vp import Vp

__all__ = ["emulate_string", "is_string"]

M = iced.Mnemonic
_KINDS = {
    **dict.fromkeys((M.STOSB, M.STOSW, M.STOSD, M.STOSQ), "stos"),
    **dict.fromkeys((M.MOVSB, M.MOVSW, M.MOVSD, M.MOVSQ), "movs"),
    **dict.fromkeys((M.LODSB, M.LODSW, M.LODSD, M.LODSQ), "lods"),
    **dict.fromkeys((M.CMPSB, M.CMPSW, M.CMPSD, M.CMPSQ), "cmps"),
    **dict.fromkeys((M.SCASB, M.SCASW, M.SCASD, M.SCASQ), "scas"),
}
_SOURCES = frozenset((iced.OpKind.MEMORY_SEG_SI, iced.OpKind.MEMORY_SEG_ESI, iced.OpKind.MEMORY_SEG_RSI))
_DESTINATIONS = frozenset((iced.OpKind.MEMORY_ESDI, iced.OpKind.MEMORY_ESEDI, iced.OpKind.MEMORY_ESRDI))

_Place = list[tuple["MemoryRegion", int, int]] | int  # RAM pieces, or the GPA of an MMIO element


def is_string(instr: Any) -> bool:
    """True for STOS, MOVS, LODS, CMPS and SCAS (not SSE MOVSD/CMPSD, whose operands are not rSI/rDI)."""
    kinds = {instr.op_kind(i) for i in range(instr.op_count)}
    return instr.mnemonic in _KINDS and bool(kinds & (_SOURCES | _DESTINATIONS))


def _place(memory: LinearMemory, linear: int, size: int, write: bool) -> _Place:
    """Where one element lives: RAM pieces (LinearMemory.ram: all of it RAM) or an MMIO GPA."""
    if memory.is_ram(linear, write):
        return memory.ram(linear, size, write)
    return memory.gpa(linear, write)[0]


def _load(place: _Place, size: int, read: Callable[[int, int], int]) -> int:
    if isinstance(place, int):
        return int(read(place, size)) & ((1 << (8 * size)) - 1)
    return int.from_bytes(read_pieces(place), "little")


def _store(place: _Place, size: int, value: int, write: Callable[[int, int, int], None]) -> None:
    if isinstance(place, int):
        write(place, size, value)
    else:
        write_pieces(place, value.to_bytes(size, "little"))


class _String:
    """One string instruction at an intercept: its registers, element size, step and count."""

    def __init__(self, vp: Vp, intercept: MemoryIntercept, instr: Any) -> None:
        self.vp, self.intercept, self.instr = vp, intercept, instr
        self.kind = _KINDS[instr.mnemonic]
        self.reads_source = self.kind in ("movs", "lods", "cmps")
        self.uses_destination = self.kind != "lods"
        self.bits = address_bits(instr)
        self.mask = (1 << self.bits) - 1
        self.size = iced.MemorySizeExt.size(instr.memory_size)
        self.step = -self.size if intercept.header.rflags & DF else self.size
        self.rep = instr.has_rep_prefix or instr.has_repne_prefix
        source = segment_name(instr)
        extra = [source] if self.reads_source and source != "es" else []
        regs = vp.get_registers(["rcx", "rsi", "rdi", "rax", "es", *extra])
        self.rcx, self.rsi, self.rdi, self.rax = (_int(regs[name]) for name in ("rcx", "rsi", "rdi", "rax"))
        self.count = self.rcx & self.mask if self.rep else 1
        self.memory = LinearMemory(vp, intercept.header)
        self.destination_base = self.memory.segment_base("es", _segment(regs["es"]))
        self.source_base = 0
        if self.reads_source:
            self.source_base = self.memory.segment_base(source, _segment(regs[source]))

    def source(self, i: int) -> _Place:
        linear = self.source_base + ((self.rsi + i * self.step) & self.mask)
        return _place(self.memory, linear, self.size, False)

    def destination(self, i: int, write: bool) -> _Place:
        linear = self.destination_base + ((self.rdi + i * self.step) & self.mask)
        return _place(self.memory, linear, self.size, write)

    def complete(self, done: int, changed: dict[str, int], finished: bool) -> None:
        """Write back the registers after ``done`` elements; RIP moves only when ``finished``."""
        if self.reads_source:
            changed["rsi"] = advance(self.rsi, done * self.step, self.bits)
        if self.uses_destination:
            changed["rdi"] = advance(self.rdi, done * self.step, self.bits)
        if self.rep:
            changed["rcx"] = advance(self.rcx, -done, self.bits)
        if finished:
            changed["rip"] = next_rip(self.intercept.header, self.instr.len)
        self.vp.complete_registers(changed)


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _segment(value: object) -> Segment:
    assert isinstance(value, Segment)
    return value


def _transfer(s: _String, read: Callable[[int, int], int], write: Callable[[int, int, int], None]) -> None:
    """STOS, MOVS, LODS: every element's places first, then the accesses in order."""
    count, size = s.count, s.size
    destinations = [s.destination(i, True) for i in range(count)] if s.uses_destination else []
    sources = [s.source(i) for i in range(count)] if s.reads_source else []
    value = s.rax & ((1 << (8 * size)) - 1)
    for i in range(count):
        if s.reads_source:
            value = _load(sources[i], size, read)
        if s.uses_destination:
            _store(destinations[i], size, value, write)
    changed: dict[str, int] = {}
    if s.kind == "lods" and count:
        header = s.intercept.header
        bits = code_bits(header.execution_state, header.cs.attributes)
        changed["rax"] = merge_gpr(s.rax, value, size, 0, bits)
    s.complete(count, changed, True)


def _compare(s: _String, read: Callable[[int, int], int]) -> None:
    """CMPS, SCAS: element by element until RCX runs out or ZF ends a REPE/REPNE."""
    rflags, size, done = s.intercept.header.rflags, s.size, 0
    while_zero = s.instr.has_repe_prefix  # REPE goes on while ZF is set, REPNE while it is clear
    try:
        while done < s.count:
            source = s.source(done) if s.kind == "cmps" else None
            destination = s.destination(done, False)
            first = s.rax if source is None else _load(source, size, read)
            _, flags = sub(first, _load(destination, size, read), 0, size)
            rflags = (rflags & ~ARITHMETIC_FLAGS) | flags
            done += 1
            if s.rep and bool(flags & ZF) != while_zero:
                break
    except GuestAccessError:
        if done:
            s.complete(done, {"rflags": rflags}, False)
        raise
    s.complete(done, {"rflags": rflags} if done else {}, True)


def emulate_string(
    vp: Vp,
    intercept: MemoryIntercept,
    instr: Any,
    read: Callable[[int, int], int],
    write: Callable[[int, int, int], None],
) -> None:
    """Do the whole string instruction ``instr`` of ``intercept`` and move the VP past it.

    Raises:
        GuestAccessError: an address does not translate or a RAM side is not mapped.
    """
    s = _String(vp, intercept, instr)
    if s.kind in ("cmps", "scas"):
        _compare(s, read)
    else:
        _transfer(s, read, write)
