"""Typed intercept messages: what ``Vp.run()`` returns.

``decode(raw)`` turns the 256-byte ``hv_message`` of MSHV_RUN_VP into one of
the classes below; a type it has no class for comes back as
:class:`UnknownIntercept` with the raw bytes, never as an error. The intercept
header (RIP *at* the intercepted instruction, its length, CPL, mode, CS) is
decoded for every x64 intercept.

Every intercept says what the access was: :attr:`Intercept.access` (an
:class:`InterceptAccess`, or None for messages that carry no access) and
``is_read``/``is_write``/``is_execute``. Install masks are a different type,
:class:`mshv.intercept_config.InterceptAccessMask`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from mshv._abi import ffi, lib
from mshv._enums import OpenIntEnum, build_enum
from mshv._msgread import PAYLOAD_OFFSET, Reader
from mshv.registers import Segment
from mshv.x86.cpu import in_rax

if TYPE_CHECKING:
    from mshv.intercept_config import InterceptAccessMask

__all__ = [
    "ApicEoi",
    "CpuidIntercept",
    "ExceptionIntercept",
    "HaltIntercept",
    "HvMessageType",
    "Intercept",
    "InterceptAccess",
    "InterceptHeader",
    "InterruptionDeliverable",
    "InvalidVpRegisterValue",
    "IoPortIntercept",
    "MemoryIntercept",
    "MsrIntercept",
    "OpaqueIntercept",
    "SintDeliverable",
    "SipiIntercept",
    "TimerExpired",
    "UnknownIntercept",
    "UnrecoverableException",
    "UnsupportedFeature",
    "decode",
]

HvMessageType: Any = build_enum("HvMessageType", lib, "HVMSG_")


class InterceptAccess(OpenIntEnum):
    """What an intercepted access was (the header's HV_INTERCEPT_ACCESS_*: read, write, execute).

    Not a mask: ``install_intercept`` takes :class:`~mshv.intercept_config.InterceptAccessMask`
    (or one of these, meaning its bit), so combining these with ``|`` raises TypeError.
    """

    READ = lib.HV_INTERCEPT_ACCESS_READ
    WRITE = lib.HV_INTERCEPT_ACCESS_WRITE
    EXECUTE = lib.HV_INTERCEPT_ACCESS_EXECUTE

    @property
    def mask(self) -> InterceptAccessMask:
        """The install-mask bit of this access (HV_INTERCEPT_ACCESS_MASK_*)."""
        from mshv.intercept_config import InterceptAccessMask

        return InterceptAccessMask[self.name]

    def __or__(self, other: object) -> Any:
        raise TypeError(
            "InterceptAccess is what an intercept reports (0/1/2), not a mask: combine "
            "InterceptAccessMask members instead (e.g. InterceptAccessMask.READ | InterceptAccessMask.WRITE)"
        )

    __ror__ = __or__


_ACCESS: dict[int, InterceptAccess] = {int(a): a for a in InterceptAccess}


def _access(value: int) -> InterceptAccess:
    member = _ACCESS.get(value)
    return InterceptAccess(value) if member is None else member


def _hex_fields(obj: tuple[Any, ...], decimal: frozenset[str] = frozenset()) -> str:
    """``Name(field=0x..., ...)`` for a NamedTuple: integers in hex except the ``decimal`` ones."""
    shown = ", ".join(
        f"{name}={repr(value) if name in decimal else _fmt(value)}"
        for name, value in zip(obj._fields, obj, strict=True)  # type: ignore[attr-defined]
    )
    return f"{type(obj).__name__}({shown})"


def _fmt(value: Any) -> str:
    """How a repr shows a field: enums by name, integers (addresses, ports, values) in hex."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, enum.Enum):
        return str(value.name)
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return value.hex() or "''"
    return repr(value)


def _segment(seg: Any) -> Segment:
    return Segment(int(seg.base), int(seg.limit), int(seg.selector), int(seg.attributes))


class InterceptHeader(NamedTuple):
    """The 40-byte header every x64 intercept payload starts with (a NamedTuple: cheap to build)."""

    vp_index: int
    instruction_length: int
    cr8: int
    access_type: InterceptAccess  # READ / WRITE / EXECUTE (HV_INTERCEPT_ACCESS_*)
    execution_state: int
    cs: Segment
    rip: int
    rflags: int

    def __repr__(self) -> str:
        return _hex_fields(self, _DECIMAL)

    @property
    def cpl(self) -> int:
        """Current privilege level."""
        return int(self.execution_state & lib.HV_X64_EXECUTION_STATE_CPL_MASK)

    @property
    def mode(self) -> str:
        """CPU mode at the intercept: "real", "protected" or "long"."""
        if self.execution_state & lib.HV_X64_EXECUTION_STATE_EFER_LMA and self.cs.long_mode:
            return "long"
        if self.execution_state & lib.HV_X64_EXECUTION_STATE_CR0_PE:
            return "protected"
        return "real"

    @property
    def next_rip(self) -> int:
        """RIP past the intercepted instruction."""
        return self.rip + self.instruction_length

    @classmethod
    def _read(cls, v: tuple[Any, ...]) -> InterceptHeader:
        """From the first 10 values a ``_HEADER_PATHS`` reader returns."""
        # tuple.__new__ directly: the NamedTuple __new__'s argument parsing is most of its cost
        length_cr8 = v[1]
        return _tuple_new(cls, (
            v[0],                                            # vp_index
            (length_cr8 & _LENGTH_MASK) >> _LENGTH_SHIFT,    # instruction_length
            (length_cr8 & _CR8_MASK) >> _CR8_SHIFT,          # cr8
            _access(v[2]), v[3],                             # access_type, execution_state
            _tuple_new(Segment, v[4:8]),                     # cs: base, limit, selector, attributes
            v[8], v[9],                                      # rip, rflags
        ))  # fmt: skip

    @classmethod
    def _from(cls, hdr: Any) -> InterceptHeader:
        length_cr8 = int(hdr.instruction_length_cr8)
        return cls(
            vp_index=int(hdr.vp_index),
            instruction_length=(length_cr8 & lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK)
            >> lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT,
            cr8=(length_cr8 & lib.HV_X64_INTERCEPT_CR8_MASK) >> lib.HV_X64_INTERCEPT_CR8_SHIFT,
            access_type=_access(int(hdr.intercept_access_type)),
            execution_state=int(hdr.execution_state),
            cs=_segment(hdr.cs_segment),
            rip=int(hdr.rip),
            rflags=int(hdr.rflags),
        )


@dataclass(slots=True, repr=False)
class Intercept:
    """Base of every decoded message: its type and the raw 256 bytes."""

    message_type: Any
    raw: bytes = field(repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" if name in _DECIMAL else f"{name}={_fmt(getattr(self, name))}"
            for name in self._repr_names()
        )
        return f"{type(self).__name__}({shown})"

    def _repr_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.repr]

    @property
    def access(self) -> InterceptAccess | None:
        """What the intercepted access was; None for a message that reports no access."""
        return None

    @property
    def is_read(self) -> bool:
        """The intercepted access was a read (IN, RDMSR, a memory read)."""
        return self.access is InterceptAccess.READ

    @property
    def is_write(self) -> bool:
        """The intercepted access was a write (OUT, WRMSR, a memory write)."""
        return self.access is InterceptAccess.WRITE

    @property
    def is_execute(self) -> bool:
        """The intercepted access was an execution (CPUID, HLT, an instruction fetch, an exception)."""
        return self.access is InterceptAccess.EXECUTE


@dataclass(slots=True, repr=False)
class UnknownIntercept(Intercept):
    """A message type this version does not decode (the raw bytes are kept)."""


@dataclass(slots=True, repr=False)
class X64Intercept(Intercept):
    """An x64 intercept: it carries the intercept header.

    The run path's intercepts (port IO, memory) build :attr:`header` at first
    access from the values their decoder read; ``next_rip`` is always there.
    """

    _header: InterceptHeader | None = field(repr=False, compare=False)
    _header_values: tuple[Any, ...] | None = field(repr=False, compare=False)
    next_rip: int  # RIP past the intercepted instruction (header.rip + its length)

    @property
    def header(self) -> InterceptHeader:
        """The intercept header: RIP at the instruction, its length, CPL, mode, CS, RFLAGS."""
        header = self._header
        if header is None:
            values = self._header_values
            if values is None:  # the C decode leaves the header in raw
                values = _HEADER_READER.read(self.raw, PAYLOAD_OFFSET)
            header = self._header = InterceptHeader._read(values)
        return header

    @property
    def rip(self) -> int:
        """RIP of the intercepted instruction."""
        return self.header.rip

    @property
    def access(self) -> InterceptAccess:
        """What the intercepted access was (the header's access type)."""
        return self.header.access_type

    def _repr_names(self) -> list[str]:
        names = Intercept._repr_names(self)  # (zero-argument super() fails in slots dataclasses)
        return names[:1] + ["header"] + names[1:]


@dataclass(slots=True, repr=False)
class IoPortIntercept(X64Intercept):
    """IN/OUT (and INS/OUTS) on a port: HVMSG_X64_IO_PORT_INTERCEPT.

    The fields a plain IN/OUT needs are decoded at once; those only INS/OUTS
    need (instruction bytes, RCX/RSI/RDI, DS/ES) are read from :attr:`raw` at
    first access, which keeps the run path's per-exit decoding short.
    """

    # OUT/OUTS. (field(): the base class's is_write property must not become its default.)
    is_write: bool = field()
    port: int
    size: int  # bytes: 1, 2 or 4
    string: bool
    rep: bool
    rax: int
    _string_fields: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def _cold(self) -> tuple[Any, ...]:
        values = self._string_fields
        if values is None:
            v = _IO_STRING_READER.read(self.raw, PAYLOAD_OFFSET)
            values = self._string_fields = (
                v[1][: min(v[0], 16)],          # instruction_bytes
                v[10], v[11], v[12],            # rcx, rsi, rdi
                _tuple_new(Segment, v[2:6]),    # ds
                _tuple_new(Segment, v[6:10]),   # es
            )  # fmt: skip
        return values

    @property
    def instruction_bytes(self) -> bytes:
        """The intercepted instruction's bytes as the hypervisor gave them (may be empty)."""
        value: bytes = self._cold()[0]
        return value

    @property
    def rcx(self) -> int:
        """RCX at the intercept (the REP count of INS/OUTS)."""
        value: int = self._cold()[1]
        return value

    @property
    def rsi(self) -> int:
        """RSI at the intercept (the OUTS source index)."""
        value: int = self._cold()[2]
        return value

    @property
    def rdi(self) -> int:
        """RDI at the intercept (the INS destination index)."""
        value: int = self._cold()[3]
        return value

    @property
    def ds(self) -> Segment:
        """DS at the intercept (the OUTS source segment unless overridden)."""
        value: Segment = self._cold()[4]
        return value

    @property
    def es(self) -> Segment:
        """ES at the intercept (the INS destination segment)."""
        value: Segment = self._cold()[5]
        return value

    def _repr_names(self) -> list[str]:
        names = X64Intercept._repr_names(self)
        return names + ["instruction_bytes", "rcx", "rsi", "rdi", "ds", "es"] if self.string else names

    @property
    def value(self) -> int:
        """For OUT: the value written (RAX masked to the access size)."""
        return self.rax & ((1 << (8 * self.size)) - 1)

    def completion_rax(self, value: int) -> int:
        """For IN: RAX after merging ``value`` by access size (the upper bytes are kept)."""
        return in_rax(self.rax, self.size, value)


@dataclass(slots=True, repr=False)
class MemoryIntercept(X64Intercept):
    """A guest access to an unmapped GPA (MMIO) or one its mapping forbids."""

    is_write: bool = field()  # a write access (field(): see IoPortIntercept)
    gpa: int
    gva: int
    gva_valid: bool
    instruction_bytes: bytes
    cache_type: int


@dataclass(slots=True, repr=False)
class HaltIntercept(X64Intercept):
    """HLT on a partition without an in-hypervisor LAPIC: HVMSG_X64_HALT."""


@dataclass(slots=True, repr=False)
class UnrecoverableException(X64Intercept):
    """The VP cannot continue (e.g. a triple fault): HVMSG_UNRECOVERABLE_EXCEPTION.

    ``host_limit`` (filled by ``Vp.run()``) says when the backend, not the guest, is the likely
    cause: the VP stopped at an instruction the host's KVM was found unable to run in this
    mode (see :mod:`mshv.limits`); None otherwise.
    """

    host_limit: str | None = field(default=None, repr=False, compare=False)

    def _repr_names(self) -> list[str]:
        names = X64Intercept._repr_names(self)
        return names + ["host_limit"] if self.host_limit is not None else names


@dataclass(slots=True, repr=False)
class MsrIntercept(X64Intercept):
    """RDMSR/WRMSR on an intercepted MSR."""

    msr: int
    rdx: int
    rax: int


@dataclass(slots=True, repr=False)
class CpuidIntercept(X64Intercept):
    """CPUID with CPUID intercepts installed."""

    rax: int
    rcx: int
    rdx: int
    rbx: int


@dataclass(slots=True, repr=False)
class ExceptionIntercept(X64Intercept):
    """An intercepted exception."""

    vector: int
    error_code: int


@dataclass(slots=True, repr=False)
class SipiIntercept(X64Intercept):
    """A startup IPI sent by the guest: HVMSG_X64_SIPI_INTERCEPT."""

    target_vp_index: int
    vector: int


@dataclass(slots=True, repr=False)
class InterruptionDeliverable(X64Intercept):
    """The VP can now take the pending interruption asked for (DELIVERABILITY_NOTIFICATIONS)."""

    deliverable_type: int  # interrupt, NMI or exception (the hv_x64_pending_interruption types)


@dataclass(slots=True, repr=False)
class SintDeliverable(X64Intercept):
    """Synthetic interrupt sources that became deliverable: HVMSG_SYNIC_SINT_DELIVERABLE."""

    deliverable_sints: int  # bit n = SINTn


@dataclass(slots=True, repr=False)
class TimerExpired(Intercept):
    """A synthetic timer expired: HVMSG_TIMER_EXPIRED."""

    timer_index: int
    expiration_time: int
    delivery_time: int


@dataclass(slots=True, repr=False)
class InvalidVpRegisterValue(Intercept):
    """The VP's registers cannot be run (e.g. inconsistent control registers)."""

    vp_index: int


@dataclass(slots=True, repr=False)
class UnsupportedFeature(Intercept):
    """The guest used a feature the hypervisor does not support for it."""

    vp_index: int
    feature_code: int  # HV_UNSUPPORTED_FEATURE_*
    feature_parameter: int


@dataclass(slots=True, repr=False)
class OpaqueIntercept(Intercept):
    """An intercept whose details are not visible to the root (isolated partitions)."""

    vp_index: int


@dataclass(slots=True, repr=False)
class ApicEoi(Intercept):
    """An EOI of a level-triggered interrupt: HVMSG_X64_APIC_EOI."""

    vp_index: int
    vector: int


def _payload(msg: Any, ctype: str) -> Any:
    return ffi.cast(f"{ctype} *", msg.payload)


_tuple_new = tuple.__new__
# Fields a repr shows in decimal (counts and indexes); every other integer is shown in hex.
_DECIMAL = frozenset({"vp_index", "target_vp_index", "instruction_length", "size", "timer_index", "cr8"})

# Constants of the hot path, read from the compiled ABI once.
_MESSAGE_SIZE = lib.HV_MESSAGE_SIZE
_LENGTH_MASK, _LENGTH_SHIFT = (
    lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK,
    lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT,
)
_CR8_MASK, _CR8_SHIFT = lib.HV_X64_INTERCEPT_CR8_MASK, lib.HV_X64_INTERCEPT_CR8_SHIFT
_IO_SIZE_MASK = lib.HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK
_IO_SIZE_SHIFT = lib.HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
_IO_STRING, _IO_REP = lib.HV_X64_IO_PORT_ACCESS_INFO_STRING_OP, lib.HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX
_GVA_VALID = lib.HV_X64_MEMORY_ACCESS_INFO_GVA_VALID
_ACCESS_WRITE = lib.HV_INTERCEPT_ACCESS_WRITE
# message_type alone, read without the general Reader's reordering (every decode starts here)
_TYPE = struct.Struct(
    "<"
    + {4: "I", 8: "Q"}[ffi.sizeof(dict(ffi.typeof("struct hv_message_header").fields)["message_type"].type)]
)
_TYPE_OFFSET = ffi.offsetof("struct hv_message", "header") + ffi.offsetof(
    "struct hv_message_header", "message_type"
)
_KNOWN_TYPES: dict[int, Any] = {int(member): member for member in HvMessageType}

_HEADER_PATHS = [
    f"header.{name}"
    for name in (
        "vp_index", "instruction_length_cr8", "intercept_access_type", "execution_state",
        "cs_segment.base", "cs_segment.limit", "cs_segment.selector", "cs_segment.attributes",
        "rip", "rflags",
    )
]  # fmt: skip
_SEGMENT = ("base", "limit", "selector", "attributes")
# The header alone, at the payload (every x64 intercept starts with it).
_HEADER_READER = Reader(
    "struct hv_x64_intercept_message_header", [p.partition(".")[2] for p in _HEADER_PATHS]
)
# Port IO: what every IN/OUT needs, in offset order (so reading is one bare unpack_from) ...
_IO_READER = Reader(
    "struct hv_x64_io_port_intercept_message",
    _HEADER_PATHS + ["port_number", "access_info", "rax"],
)
# ... and what only INS/OUTS need, read at first access.
_IO_STRING_READER = Reader(
    "struct hv_x64_io_port_intercept_message",
    ["instruction_byte_count", "instruction_bytes"]
    + [f"ds_segment.{f}" for f in _SEGMENT]
    + [f"es_segment.{f}" for f in _SEGMENT]
    + ["rcx", "rsi", "rdi"],
)
_MEMORY_READER = Reader(
    "struct hv_x64_memory_intercept_message",
    _HEADER_PATHS
    + ["cache_type", "instruction_byte_count", "memory_access_info", "guest_virtual_address"]
    + ["guest_physical_address", "instruction_bytes"],
)


def decode(raw: bytes) -> Intercept:
    """Decode a 256-byte ``hv_message`` into its typed intercept object."""
    if len(raw) != _MESSAGE_SIZE:
        raise ValueError(f"an hv_message is {_MESSAGE_SIZE} bytes, got {len(raw)}")
    number = _TYPE.unpack_from(raw, _TYPE_OFFSET)[0]
    fast = _FAST_DECODERS.get(number)
    if fast is not None:
        mtype, read = fast
        result: Intercept = read(mtype, raw)
        return result
    mtype = _KNOWN_TYPES.get(number)
    if mtype is None:
        mtype = HvMessageType(number)
    decoder = _DECODERS.get(number)
    if decoder is None:
        return UnknownIntercept(mtype, raw)
    result = decoder(mtype, raw, ffi.from_buffer("struct hv_message *", raw))
    return result


def _io(mtype: Any, raw: bytes) -> IoPortIntercept:
    v = _IO_READER.read(raw, PAYLOAD_OFFSET)
    info = v[11]
    return IoPortIntercept(  # positional, in field order: the run path builds one per exit
        mtype, raw, None, v,
        v[8] + ((v[1] & _LENGTH_MASK) >> _LENGTH_SHIFT),  # next_rip: rip + instruction length
        v[2] == _ACCESS_WRITE,                   # is_write
        v[10],                                   # port
        (info & _IO_SIZE_MASK) >> _IO_SIZE_SHIFT,  # size
        bool(info & _IO_STRING),                 # string
        bool(info & _IO_REP),                    # rep
        v[12],                                   # rax
    )  # fmt: skip


def _memory(mtype: Any, raw: bytes) -> MemoryIntercept:
    v = _MEMORY_READER.read(raw, PAYLOAD_OFFSET)
    return MemoryIntercept(  # positional, in field order
        mtype, raw, None, v,
        v[8] + ((v[1] & _LENGTH_MASK) >> _LENGTH_SHIFT),  # next_rip
        v[2] == _ACCESS_WRITE,      # is_write
        v[14],                      # gpa
        v[13],                      # gva
        bool(v[12] & _GVA_VALID),   # gva_valid
        v[15][: min(v[11], 16)],    # instruction_bytes
        v[10],                      # cache_type
    )  # fmt: skip


def _header(hdr: Any) -> tuple[InterceptHeader, None, int]:
    """X64Intercept's first three fields from a cffi ``hv_x64_intercept_message_header``."""
    header = InterceptHeader._from(hdr)
    return header, None, header.next_rip


def _header_only(cls: type) -> Any:
    def make(mtype: Any, raw: bytes, msg: Any) -> Any:
        p = _payload(msg, "struct hv_x64_intercept_message_header")
        return cls(mtype, raw, *_header(p[0]))

    return make


def _msr(mtype: Any, raw: bytes, msg: Any) -> MsrIntercept:
    p = _payload(msg, "struct hv_x64_msr_intercept_message")
    return MsrIntercept(mtype, raw, *_header(p.header), int(p.msr_number), int(p.rdx), int(p.rax))


def _cpuid(mtype: Any, raw: bytes, msg: Any) -> CpuidIntercept:
    p = _payload(msg, "struct hv_x64_cpuid_intercept_message")
    return CpuidIntercept(mtype, raw, *_header(p.header), int(p.rax), int(p.rcx), int(p.rdx), int(p.rbx))


def _exception(mtype: Any, raw: bytes, msg: Any) -> ExceptionIntercept:
    p = _payload(msg, "struct hv_x64_exception_intercept_message")
    return ExceptionIntercept(mtype, raw, *_header(p.header), int(p.exception_vector), int(p.error_code))


def _eoi(mtype: Any, raw: bytes, msg: Any) -> ApicEoi:
    p = _payload(msg, "struct hv_x64_apic_eoi_message")
    return ApicEoi(mtype, raw, int(p.vp_index), int(p.interrupt_vector))


def _sipi(mtype: Any, raw: bytes, msg: Any) -> SipiIntercept:
    p = _payload(msg, "struct hv_x64_sipi_intercept_message")
    return SipiIntercept(mtype, raw, *_header(p.header), int(p.target_vp_index), int(p.interrupt_vector))


def _deliverable(mtype: Any, raw: bytes, msg: Any) -> InterruptionDeliverable:
    p = _payload(msg, "struct hv_x64_interruption_deliverable_message")
    return InterruptionDeliverable(mtype, raw, *_header(p.header), int(p.deliverable_type))


def _sint_deliverable(mtype: Any, raw: bytes, msg: Any) -> SintDeliverable:
    p = _payload(msg, "struct hv_x64_sint_deliverable_message")
    return SintDeliverable(mtype, raw, *_header(p.header), int(p.deliverable_sints))


def _timer(mtype: Any, raw: bytes, msg: Any) -> TimerExpired:
    p = _payload(msg, "struct hv_timer_message_payload")
    return TimerExpired(mtype, raw, int(p.timer_index), int(p.expiration_time), int(p.delivery_time))


def _invalid_register(mtype: Any, raw: bytes, msg: Any) -> InvalidVpRegisterValue:
    p = _payload(msg, "struct hv_x64_invalid_vp_register_message")
    return InvalidVpRegisterValue(mtype, raw, int(p.vp_index))


def _unsupported(mtype: Any, raw: bytes, msg: Any) -> UnsupportedFeature:
    p = _payload(msg, "struct hv_x64_unsupported_feature_message")
    return UnsupportedFeature(mtype, raw, int(p.vp_index), int(p.feature_code), int(p.feature_parameter))


def _opaque(mtype: Any, raw: bytes, msg: Any) -> OpaqueIntercept:
    p = _payload(msg, "struct hv_opaque_intercept_message")
    return OpaqueIntercept(mtype, raw, int(p.vp_index))


# The run path's message types: read with one struct.unpack_from (mshv._msgread).
_FAST_DECODERS: dict[int, tuple[Any, Any]] = {  # number: (its HvMessageType, decoder)
    number: (_KNOWN_TYPES[number], read)
    for number, read in (
        (lib.HVMSG_X64_IO_PORT_INTERCEPT, _io),
        (lib.HVMSG_UNMAPPED_GPA, _memory),
        (lib.HVMSG_GPA_INTERCEPT, _memory),
        (lib.HVMSG_UNACCEPTED_GPA, _memory),
    )
}


def run_path_types() -> dict[int, Any]:
    """``{number: HvMessageType member}`` of the run path's message types (the fast decoders')."""
    return {number: mtype for number, (mtype, _read) in _FAST_DECODERS.items()}


_DECODERS: dict[int, Any] = {
    lib.HVMSG_X64_HALT: _header_only(HaltIntercept),
    lib.HVMSG_UNRECOVERABLE_EXCEPTION: _header_only(UnrecoverableException),
    lib.HVMSG_X64_MSR_INTERCEPT: _msr,
    lib.HVMSG_X64_CPUID_INTERCEPT: _cpuid,
    lib.HVMSG_X64_EXCEPTION_INTERCEPT: _exception,
    lib.HVMSG_X64_APIC_EOI: _eoi,
    lib.HVMSG_X64_SIPI_INTERCEPT: _sipi,
    lib.HVMSG_X64_INTERRUPTION_DELIVERABLE: _deliverable,
    lib.HVMSG_SYNIC_SINT_DELIVERABLE: _sint_deliverable,
    lib.HVMSG_TIMER_EXPIRED: _timer,
    lib.HVMSG_INVALID_VP_REGISTER_VALUE: _invalid_register,
    lib.HVMSG_UNSUPPORTED_FEATURE: _unsupported,
    lib.HVMSG_OPAQUE_INTERCEPT: _opaque,
}
