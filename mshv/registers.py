"""VP registers by name: ``vp.get_registers(["rax", "cs"])``, ``vp.set_registers({"rip": 0x1000})``.

Names are the kernel's HV_X64_REGISTER_* / HV_REGISTER_* without the prefix, in
lower case. The value type follows the register: :class:`Segment` for segment
registers, :class:`Table` for GDTR/IDTR, an int of up to 128 bits for XMM and
FP registers, an int of 64 bits for the rest. Batches are chunked to the
hypercall limits (256 names per GET, 127 per SET) and ``reps`` is checked
after each call.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mshv._abi import ffi, lib
from mshv._enums import build_enum
from mshv.errors import MshvError
from mshv.hvcall import HvcallInput, hvcall

__all__ = ["HvRegister", "RegisterValue", "Segment", "Table", "get_registers", "register", "set_registers"]

HvRegister: Any = build_enum("HvRegister", lib, "HV_X64_REGISTER_")
_GENERIC: Any = build_enum("HvRegisterGeneric", lib, "HV_REGISTER_")

_SEGMENTS = frozenset({"es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"})
_TABLES = frozenset({"idtr", "gdtr"})
_WIDE_PREFIXES = ("xmm", "fp_mmx", "pending_event")
_WIDE = frozenset({"fp_control_status", "xmm_control_status"})

_GET_MAX = lib.HV_GET_VP_REGISTERS_BATCH_MAX
_SET_MAX = lib.HV_SET_VP_REGISTERS_BATCH_MAX


def _attr(name: str) -> int:
    return int(getattr(lib, f"HV_X64_SEGMENT_ATTR_{name}"))


class Segment(NamedTuple):
    """A segment register: base, limit, selector and the access-rights word.

    (A NamedTuple: immutable and cheap; every intercept carries at least one.)
    """

    base: int = 0
    limit: int = 0
    selector: int = 0
    attributes: int = 0

    @property
    def type(self) -> int:
        """Segment type (4 bits)."""
        return (self.attributes & _attr("TYPE_MASK")) >> _attr("TYPE_SHIFT")

    @property
    def present(self) -> bool:
        """The P bit."""
        return bool(self.attributes & _attr("P_MASK"))

    @property
    def dpl(self) -> int:
        """Descriptor privilege level."""
        return (self.attributes & _attr("DPL_MASK")) >> _attr("DPL_SHIFT")

    @property
    def long_mode(self) -> bool:
        """The L bit (64-bit code segment)."""
        return bool(self.attributes & _attr("L_MASK"))

    @property
    def default_big(self) -> bool:
        """The D/B bit (32-bit default operand size)."""
        return bool(self.attributes & _attr("DB_MASK"))

    @classmethod
    def flat(cls, selector: int, *, code: bool, long_mode: bool = False, dpl: int = 0) -> Segment:
        """A flat 4 GiB segment (present, S=1, G=1): code is execute/read, data is read/write."""
        seg_type = 0xB if code else 0x3  # accessed code exec/read; accessed data read/write
        attributes = (
            (seg_type << _attr("TYPE_SHIFT"))
            | _attr("S_MASK")
            | (dpl << _attr("DPL_SHIFT"))
            | _attr("P_MASK")
            | _attr("G_MASK")
            | (_attr("L_MASK") if long_mode else 0)
            | (0 if long_mode and code else _attr("DB_MASK"))
        )
        return cls(base=0, limit=0xFFFFFFFF, selector=selector, attributes=attributes)


class Table(NamedTuple):
    """A descriptor-table register (GDTR, IDTR): base and limit."""

    base: int = 0
    limit: int = 0


RegisterValue = int | Segment | Table

# Every register by lower-case name (x64 names first: they win over a generic alias).
_BY_NAME: dict[str, tuple[str, int]] = {}
for _enum in (HvRegister, _GENERIC):
    for _name, _member in _enum.__members__.items():
        _BY_NAME.setdefault(_name.lower(), (_name.lower(), int(_member)))


def register(name: str | int) -> tuple[str, int]:
    """Return (lower-case name, HV register number) for a name or a number.

    Raises:
        ValueError: unknown register name.
    """
    if isinstance(name, int) and not isinstance(name, bool):
        try:
            return HvRegister(name).name.lower(), int(name)
        except ValueError:
            return f"reg_{name:#x}", int(name)
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is None:
        found = _BY_NAME.get(str(name).lower())
    if found is None:
        raise ValueError(f"unknown register name {name!r}")
    return found


def _kind(name: str) -> str:
    if name in _SEGMENTS:
        return "segment"
    if name in _TABLES:
        return "table"
    if name in _WIDE or name.startswith(_WIDE_PREFIXES):
        return "wide"
    return "int"


def _decode(name: str, value: Any) -> RegisterValue:
    kind = _kind(name)
    if kind == "segment":
        s = value.segment
        return Segment(int(s.base), int(s.limit), int(s.selector), int(s.attributes))
    if kind == "table":
        return Table(int(value.table.base), int(value.table.limit))
    if kind == "wide":
        return int(value.reg128.low_part) | (int(value.reg128.high_part) << 64)
    return int(value.reg64)


def _encode(name: str, value: RegisterValue, out: Any) -> None:
    kind = _kind(name)
    if kind == "segment":
        if not isinstance(value, Segment):
            raise TypeError(f"{name} takes a Segment, not {type(value).__name__}")
        out.segment.base, out.segment.limit = value.base, value.limit
        out.segment.selector, out.segment.attributes = value.selector, value.attributes
    elif kind == "table":
        if not isinstance(value, Table):
            raise TypeError(f"{name} takes a Table, not {type(value).__name__}")
        out.table.base, out.table.limit = value.base, value.limit
    elif isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int, not {type(value).__name__}")
    elif kind == "wide":
        if not 0 <= value < 1 << 128:
            raise ValueError(f"{name} is 128 bits: {value:#x} does not fit")
        out.reg128.low_part, out.reg128.high_part = value & ((1 << 64) - 1), value >> 64
    else:
        if not 0 <= value < 1 << 64:
            raise ValueError(f"{name} is 64 bits: {value:#x} does not fit")
        out.reg64 = value


def _check_reps(done: int, wanted: int, op: str, names: list[str]) -> None:
    if done != wanted:
        failed = names[done] if done < len(names) else "?"
        raise MshvError(errno.EIO, op, None, f"{done} of {wanted} registers done; stopped at {failed}")


def get_registers(fd: int, vp_index: int, names: Iterable[str | int]) -> dict[str, RegisterValue]:
    """Read registers of VP ``vp_index`` (HvCallGetVpRegisters through MSHV_ROOT_HVCALL)."""
    resolved = [register(n) for n in names]
    result: dict[str, RegisterValue] = {}
    for start in range(0, len(resolved), _GET_MAX):
        chunk = resolved[start : start + _GET_MAX]
        data = HvcallInput("struct hv_input_get_vp_registers", "names", "__u32", len(chunk))
        data.header.vp_index = vp_index
        for i, (_, number) in enumerate(chunk):
            data.array[i] = number
        out_size = ffi.sizeof("union hv_register_value") * len(chunk)
        res = hvcall(fd, lib.HVCALL_GET_VP_REGISTERS, data.to_bytes(), out_size, reps=len(chunk))
        _check_reps(res.reps, len(chunk), "HvCallGetVpRegisters", [n for n, _ in chunk])
        values = ffi.from_buffer("union hv_register_value[]", res.output)
        for i, (name, _) in enumerate(chunk):
            result[name] = _decode(name, values[i])
    return result


def set_registers(fd: int, vp_index: int, values: Mapping[str | int, RegisterValue]) -> None:
    """Write registers of VP ``vp_index`` (HvCallSetVpRegisters through MSHV_ROOT_HVCALL).

    Every value is validated before the first hypercall, so bad input changes nothing.
    """
    items = []
    for key, value in values.items():
        name, number = register(key)
        assoc = ffi.new("struct hv_register_assoc *")
        assoc.name = number
        _encode(name, value, assoc.value)
        items.append((name, assoc))
    for start in range(0, len(items), _SET_MAX):
        chunk = items[start : start + _SET_MAX]
        data = HvcallInput(
            "struct hv_input_set_vp_registers", "elements", "struct hv_register_assoc", len(chunk)
        )
        data.header.vp_index = vp_index
        for i, (_, assoc) in enumerate(chunk):
            data.array[i] = assoc[0]
        res = hvcall(fd, lib.HVCALL_SET_VP_REGISTERS, data.to_bytes(), 0, reps=len(chunk))
        _check_reps(res.reps, len(chunk), "HvCallSetVpRegisters", [n for n, _ in chunk])
