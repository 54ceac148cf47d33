"""String port IO (INS/OUTS, with or without REP) completed over guest memory, the mshv way.

The hypervisor stops the VP *at* an INS/OUTS with RCX/RSI/RDI, DS and ES as at
the instruction's start and performs none of it: the VMM moves every element
between the port and guest memory, then writes back RSI or RDI, RCX and RIP.
:func:`complete_string_io` does that: the address size (16/32/64 bits of the
index registers, with wrap-around), the direction flag, DS or its override for
OUTS (ES for INS), and in protected and long mode one page walk
(HvCallTranslateVirtualAddress) per page touched. Every address is checked
before a port is called or a byte moves, so an error changes nothing.

Not checked: segment limits and the I/O permission bitmap (the hypervisor
already delivered the intercept, so the access was allowed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import iced_x86 as iced

from mshv.intercepts import IoPortIntercept
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
from mshv.x86.cpu import DF, code_bits

if TYPE_CHECKING:
    from mshv.partition import MemoryRegion
    from mshv.vp import Vp

__all__ = ["GuestAccessError", "ReadPort", "WritePort", "complete_string_io"]

ReadPort = Callable[[int, int], int]  # (port, size) -> value read
WritePort = Callable[[int, int, int], None]  # (port, size, value written)

_STRING_IO = frozenset((iced.Mnemonic.INSB, iced.Mnemonic.INSW, iced.Mnemonic.INSD,
                        iced.Mnemonic.OUTSB, iced.Mnemonic.OUTSW, iced.Mnemonic.OUTSD))  # fmt: skip


def _shape(intercept: IoPortIntercept) -> tuple[int, str, int]:
    """(address bits, source segment, instruction length) of the INS/OUTS at the intercept."""
    bits = code_bits(intercept.header.execution_state, intercept.header.cs.attributes)
    if not intercept.instruction_bytes:  # no bytes given: the defaults of the code size
        return bits, "ds", intercept.header.instruction_length
    instr = iced.Decoder(bits, intercept.instruction_bytes, ip=intercept.header.rip).decode()
    if instr.mnemonic not in _STRING_IO:
        raise ValueError(
            f"the intercepted instruction {instr} ({intercept.instruction_bytes.hex()}) is not INS/OUTS"
        )
    return address_bits(instr), segment_name(instr), instr.len


def _elements(
    memory: LinearMemory, base: int, index: int, count: int, size: int, step: int, mask: int, write: bool
) -> tuple[list[int], list[list[tuple[MemoryRegion, int, int]]]]:
    """Where the elements live: each one's offset in the bytes of the returned places, in the
    guest's order. Elements that do not wrap around the address size are one block (a
    translation per page); otherwise each element is its own place.
    """
    low = index if step > 0 else index - (count - 1) * size
    if low >= 0 and low + count * size - 1 <= mask:
        forward = range(0, count * size, size)
        offsets = list(forward) if step > 0 else list(reversed(forward))
        return offsets, [memory.ram(base + low, count * size, write)] if count else []
    places = [memory.ram(base + ((index + i * step) & mask), size, write) for i in range(count)]
    return [i * size for i in range(count)], places


def complete_string_io(
    vp: Vp,
    intercept: IoPortIntercept,
    *,
    read_port: ReadPort | None = None,
    write_port: WritePort | None = None,
) -> int:
    """Perform a whole INS/OUTS (REP: RCX elements) and move the VP past it.

    Guest memory is reached through the partition's mapped regions; registers are
    written back in one HvCallSetVpRegisters (RSI for OUTS or RDI for INS, RCX after
    REP, RIP). Ports are called in the guest's element order.

    Args:
        vp: the VP stopped at the intercept.
        intercept: a string :class:`IoPortIntercept` (``intercept.string``).
        read_port: for INS, ``read_port(port, size) -> value`` per element.
        write_port: for OUTS, ``write_port(port, size, value)`` per element.

    Returns:
        the number of elements moved (0 for a REP with RCX 0).

    Raises:
        ValueError: not a string IO intercept, or not INS/OUTS.
        TypeError: the port function this direction needs is missing.
        GuestAccessError: an element's address does not translate or is not in guest
            RAM (no port was called, no byte moved, no register changed).
    """
    if not isinstance(intercept, IoPortIntercept) or not intercept.string:
        raise ValueError(f"not a string port IO intercept: {intercept!r}")
    out = intercept.is_write
    if (write_port if out else read_port) is None:
        raise TypeError(f"{'OUTS needs write_port' if out else 'INS needs read_port'}")
    bits, segment, length = _shape(intercept)
    mask = (1 << bits) - 1
    count = intercept.rcx & mask if intercept.rep else 1
    size, port = intercept.size, intercept.port
    step = -size if intercept.header.rflags & DF else size
    memory = LinearMemory(vp, intercept.header)
    if out:
        given = {"ds": intercept.ds, "es": intercept.es}.get(segment)
        base, index = memory.segment_base(segment, given), intercept.rsi
    else:
        base, index = memory.segment_base("es", intercept.es), intercept.rdi
    offsets, places = _elements(memory, base, index & mask, count, size, step, mask, not out)
    if out:
        assert write_port is not None
        data = b"".join(read_pieces(pieces) for pieces in places)
        for offset in offsets:
            write_port(port, size, int.from_bytes(data[offset : offset + size], "little"))
    else:
        assert read_port is not None
        buffer = bytearray(count * size)
        for offset in offsets:
            value = int(read_port(port, size)) & ((1 << (8 * size)) - 1)
            buffer[offset : offset + size] = value.to_bytes(size, "little")
        for pieces in places:
            write_pieces(pieces, bytes(buffer[: sum(n for _, _, n in pieces)]))
            del buffer[: sum(n for _, _, n in pieces)]
    regs: dict[str, int] = {"rip": next_rip(intercept.header, length)}
    regs["rsi" if out else "rdi"] = advance(index, count * step, bits)
    if intercept.rep:
        regs["rcx"] = advance(intercept.rcx, -count, bits)
    vp.complete_registers(regs)
    return count
