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
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from mshv._abi import ffi, lib
from mshv._enums import build_enum
from mshv._msgread import Reader
from mshv.errors import MshvError
from mshv.hvcall import failure, hvcall

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = [
    "EncodedRegisters",
    "HvRegister",
    "RegisterAttributes",
    "RegisterValue",
    "Segment",
    "Table",
    "encode_registers",
    "encoded_chunk_error",
    "register",
    "set_encoded_registers",
]

HvRegister: Any = build_enum("HvRegister", lib, "HV_X64_REGISTER_")
_GENERIC: Any = build_enum("HvRegisterGeneric", lib, "HV_REGISTER_")

_SEGMENTS = frozenset({"es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"})
_TABLES = frozenset({"idtr", "gdtr"})
_WIDE_PREFIXES = ("xmm", "fp_mmx", "pending_event")
_WIDE = frozenset({"fp_control_status", "xmm_control_status"})


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

    def __repr__(self) -> str:
        return (
            f"Segment(base={self.base:#x}, limit={self.limit:#x}, selector={self.selector:#x}, "
            f"attributes={self.attributes:#x})"
        )

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

    def __repr__(self) -> str:
        return f"Table(base={self.base:#x}, limit={self.limit:#x})"


RegisterValue = int | Segment | Table

# Every register by lower-case name (x64 names first: they win over a generic alias).
_BY_NAME: dict[str, tuple[str, int]] = {}
for _enum in (HvRegister, _GENERIC):
    for _name, _member in _enum.__members__.items():
        _BY_NAME.setdefault(_name.lower(), (_name.lower(), int(_member)))


_U32_MAX = (1 << 32) - 1
_BY_NUMBER: dict[int, tuple[str, int]] = {int(m): (m.name.lower(), int(m)) for m in HvRegister}


def register(name: str | int) -> tuple[str, int]:
    """Return (lower-case name, HV register number) for a name or a number.

    Raises:
        ValueError: unknown register name, or a number that is not 32 bits.
    """
    found = _BY_NAME.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    if isinstance(name, int) and not isinstance(name, bool):
        known = _BY_NUMBER.get(name)
        if known is not None:
            return known
        if not 0 <= name <= _U32_MAX:  # hv_register_name is 32 bits
            raise ValueError(f"register number {name:#x} is not a 32-bit register name")
        try:
            return HvRegister(name).name.lower(), int(name)
        except ValueError:
            return f"reg_{name:#x}", int(name)
    found = _BY_NAME.get(str(name).lower())
    if found is None:
        raise ValueError(f"unknown register name {name!r}")
    return found


class RegisterAttributes:
    """One VP's registers as attributes: ``vp.regs.rip``, ``vp.regs.rax = 1`` (one hypercall each).

    A name that is no register is an AttributeError (so ``hasattr`` is False), and ``dir()``
    lists every register name.
    """

    __slots__ = ("_vp",)
    _vp: Vp

    def __init__(self, vp: Vp) -> None:
        object.__setattr__(self, "_vp", vp)

    def __getattr__(self, name: str) -> RegisterValue:
        if name.startswith("_") or name.lower() not in _BY_NAME:
            raise AttributeError(f"{type(self).__name__} has no register {name!r}")
        return self._vp.reg_read(name)

    def __setattr__(self, name: str, value: RegisterValue) -> None:
        if name.startswith("_") or name.lower() not in _BY_NAME:
            raise AttributeError(f"{type(self).__name__} has no register {name!r}")
        self._vp.reg_write(name, value)

    def __dir__(self) -> list[str]:
        return sorted(_BY_NAME)

    def __repr__(self) -> str:
        return f"<RegisterAttributes of {self._vp!r}>"


_INT = "int"


def _kind_of(name: str) -> str:
    if name in _SEGMENTS:
        return "segment"
    if name in _TABLES:
        return "table"
    if name in _WIDE or name.startswith(_WIDE_PREFIXES):
        return "wide"
    return _INT


# Every register's value kind, by name; names made up for unknown numbers are added as met.
_KIND: dict[str, str] = {name: _kind_of(name) for name, _ in _BY_NAME.values()}


def _kind(name: str) -> str:
    kind = _KIND.get(name)
    if kind is None:
        kind = _KIND[name] = _kind_of(name)
    return kind


# The value layouts (union hv_register_value, 16 bytes) by kind, and the same inside a
# struct hv_register_assoc after its name: offsets from the compiler, packed with struct.
_VALUE_FIELDS = {
    _INT: ["reg64"],
    "wide": ["reg128.low_part", "reg128.high_part"],
    "segment": [f"segment.{f}" for f in ("base", "limit", "selector", "attributes")],
    "table": ["table.limit", "table.base"],
}
_VALUE_SIZE = ffi.sizeof("union hv_register_value")
_VALUE: dict[str, Any] = {
    kind: Reader("union hv_register_value", fields).struct for kind, fields in _VALUE_FIELDS.items()
}
_ASSOC_SIZE = ffi.sizeof("struct hv_register_assoc")
_ASSOC: dict[str, Any] = {
    kind: Reader("struct hv_register_assoc", ["name"] + [f"value.{f}" for f in fields], _ASSOC_SIZE).struct
    for kind, fields in _VALUE_FIELDS.items()
}
_MASK64 = (1 << 64) - 1


def _field_ends(ctype: str, names: tuple[str, ...]) -> tuple[int, ...]:
    """1 << (bits of each field), from the compiler."""
    fields = dict(ffi.typeof(ctype).fields)
    return tuple(1 << (8 * ffi.sizeof(fields[name].type)) for name in names)


_SEGMENT_ENDS = _field_ends("struct hv_x64_segment_register", ("base", "limit", "selector", "attributes"))
_TABLE_ENDS = _field_ends("struct hv_x64_table_register", ("limit", "base"))
_tuple_new = tuple.__new__
if sys.byteorder != "little":  # the hypercall ABI is x86-64's
    raise ImportError("mshv.registers packs hypercall inputs little-endian; this host is not")


def _decode(name: str, out: bytes | bytearray, offset: int) -> RegisterValue:
    kind = _kind(name)
    values = _VALUE[kind].unpack_from(out, offset)
    if kind == _INT:
        value: int = values[0]
        return value
    if kind == "segment":
        segment: Segment = _tuple_new(Segment, values)
        return segment
    if kind == "table":
        return Table(base=values[1], limit=values[0])
    wide: int = values[0] | (values[1] << 64)
    return wide


def _fields(name: str, kind: str, value: RegisterValue) -> tuple[int, ...]:
    """The fields :data:`_ASSOC` packs for ``value`` after the name, after checking its type
    and range."""
    if kind == "segment":
        if not isinstance(value, Segment):
            raise TypeError(f"{name} takes a Segment, not {type(value).__name__}")
        return _checked(name, Segment._fields, tuple(value), _SEGMENT_ENDS)
    if kind == "table":
        if not isinstance(value, Table):
            raise TypeError(f"{name} takes a Table, not {type(value).__name__}")
        return _checked(name, ("limit", "base"), (value.limit, value.base), _TABLE_ENDS)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int, not {type(value).__name__}")
    if kind == "wide":
        if not 0 <= value < 1 << 128:
            raise ValueError(f"{name} is 128 bits: {value:#x} does not fit")
        return value & _MASK64, value >> 64
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name} is 64 bits: {value:#x} does not fit")
    return (value,)


def _checked(
    name: str, fields: tuple[str, ...], values: tuple[int, ...], ends: tuple[int, ...]
) -> tuple[int, ...]:
    """``values`` (the fields of a Segment or Table), each checked: an int below its end."""
    for field, value, end in zip(fields, values, ends, strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}.{field} takes an int, not {type(value).__name__}")
        if not 0 <= value < end:
            raise ValueError(f"{name}.{field} is {end.bit_length() - 1} bits: {value:#x} does not fit")
    return values


def _encode(name: str, number: int, value: RegisterValue) -> bytes:
    """One struct hv_register_assoc for ``value``, after checking its type and range."""
    kind = _kind(name)
    data: bytes = _ASSOC[kind].pack(number, *_fields(name, kind, value))
    return data


# Every known register by name and by number: (name, number, value kind). Only a key of exactly
# str or int is looked up here (a bool or a float equal to a register number is not one, and
# register() refuses it); anything else, and names in other cases, go through register().
_SPEC: dict[str | int, tuple[str, int, str]] = {
    name: (name, number, _KIND[name]) for name, number in _BY_NAME.values()
}
_SPEC.update({number: (name, number, _KIND[name]) for number, (name, _) in _BY_NUMBER.items()})


def _resolve(key: str | int) -> tuple[str, int, str]:
    name, number = register(key)
    return name, number, _kind(name)


# -- encode once, send many (mshv.snapshot) ---------------------------------------------------
_SET_MAX = lib.HV_SET_VP_REGISTERS_BATCH_MAX
_HVCALL_SET = lib.HVCALL_SET_VP_REGISTERS
# The SET input's header (partition_id, vp_index, input_vtl, reserved) up to its array.
_SET_HEADER = Reader(
    "struct hv_input_set_vp_registers",
    ["vp_index"],
    ffi.offsetof("struct hv_input_set_vp_registers", "elements"),
).struct


def _reps_error(done: int, wanted: int, op: str, names: list[str]) -> MshvError:
    failed = names[done] if done < len(names) else "?"
    return MshvError(errno.EIO, op, None, f"stopped at register {failed}: {done} of {wanted} done")


def _check_reps(done: int, wanted: int, op: str, names: list[str]) -> None:
    if done != wanted:
        raise _reps_error(done, wanted, op, names)


def _batch_error(exc: MshvError, names: list[str], first: int, total: int, vp_index: int) -> MshvError:
    """``exc`` (a failed register hypercall of the chunk ``names`` starting at batch index ``first``)
    naming the register the hypervisor stopped at: reps completed = that register's index."""
    done = exc.reps_done if exc.reps_done is not None else 0
    failed = names[done] if done < len(names) else "?"
    details = f"register {failed} on VP {vp_index}: {first + done} of {total} done; {exc.details}"
    new = MshvError(exc.errno or 0, exc.op, exc.hv_status, details)
    new.reps_done = exc.reps_done
    return new


class EncodedRegisters(NamedTuple):
    """HvCallSetVpRegisters inputs encoded once (values checked), to be sent any number of times.

    ``names`` are the registers in order; ``inputs`` holds one hypercall input per chunk of 127
    and ``counts`` its number of registers.
    """

    vp_index: int
    names: tuple[str, ...]
    inputs: tuple[bytes, ...]
    counts: tuple[int, ...]


def encode_registers(vp_index: int, values: Mapping[str | int, RegisterValue]) -> EncodedRegisters:
    """Encode the HvCallSetVpRegisters inputs for ``values`` of VP ``vp_index``, checking each value."""
    items = []
    for key, value in values.items():
        name, number = register(key)
        items.append((name, _encode(name, number, value)))
    inputs, counts = [], []
    for start in range(0, len(items), _SET_MAX):
        chunk = items[start : start + _SET_MAX]
        inputs.append(_SET_HEADER.pack(vp_index) + b"".join([assoc for _, assoc in chunk]))
        counts.append(len(chunk))
    return EncodedRegisters(vp_index, tuple(name for name, _ in items), tuple(inputs), tuple(counts))


def set_encoded_registers(fd: int, encoded: EncodedRegisters) -> None:
    """Write registers encoded by :func:`encode_registers` (HvCallSetVpRegisters, one call per chunk)."""
    start = 0
    for data, count in zip(encoded.inputs, encoded.counts, strict=True):
        chunk = encoded.names[start : start + count]
        try:
            res = hvcall(fd, _HVCALL_SET, data, 0, reps=count)
        except MshvError as exc:
            raise _batch_error(exc, list(chunk), start, len(encoded.names), encoded.vp_index) from None
        if res.reps != count:
            _check_reps(res.reps, count, "HvCallSetVpRegisters", list(chunk))
        start += count


def encoded_chunk_error(encoded: EncodedRegisters, chunk: int) -> Callable[[int, int, int], MshvError]:
    """The error :func:`set_encoded_registers` raises when chunk ``chunk`` of ``encoded`` fails,
    from (errno, status, reps done); errno 0: the call returned short of its reps."""
    start = sum(encoded.counts[:chunk])
    count = encoded.counts[chunk]
    names = list(encoded.names[start : start + count])

    def error(err: int, status: int, done: int) -> MshvError:
        if not err:
            return _reps_error(done, count, "HvCallSetVpRegisters", names)
        exc = failure(err, _HVCALL_SET, status, done, count)
        return _batch_error(exc, names, start, len(encoded.names), encoded.vp_index)

    return error
