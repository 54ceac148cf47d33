"""VP state blobs, typed: LAPIC, XSAVE, SynIC pages and synthetic timers.

Each pair wraps MSHV_GET_VP_STATE / MSHV_SET_VP_STATE (``Vp.get_state`` /
``Vp.set_state``, 4 KiB-aligned buffers sized the way the kernel asks):

- LAPIC: :class:`LapicState`, the fields of ``hv_local_interrupt_controller_state``
  (register values as they sit in the APIC page, so in xAPIC mode ``apic_id``
  holds the id in bits 24-31);
- XSAVE: the compacted XSAVE area as bytes (XCOMP_BV bit 63 set), as long as
  the partition property MAX_XSAVE_DATA_SIZE says;
- SIMP, SIEFP: the SynIC message and event-flags pages, one page of bytes each;
- synthetic timers: four :class:`SyntheticTimer` values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mshv._abi import ffi, lib
from mshv.memory import PAGE_SIZE

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = [
    "LapicState",
    "SyntheticTimer",
    "get_lapic",
    "get_siefp",
    "get_simp",
    "get_synthetic_timers",
    "get_xsave",
    "set_lapic",
    "set_siefp",
    "set_simp",
    "set_synthetic_timers",
    "set_xsave",
]

_LAPIC = "struct hv_local_interrupt_controller_state"
_TIMERS = "struct hv_synthetic_timers_state"
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_APIC_WORDS = 8  # ISR/TMR/IRR: 256 bits as eight 32-bit registers


def state_buffer_size(length: int) -> int:
    """The buffer MSHV_SET_VP_STATE takes for a blob of ``length`` bytes: whole pages, at least one."""
    return max(PAGE_SIZE, -(-length // PAGE_SIZE) * PAGE_SIZE)


def aligned_state_buffer(size: int) -> tuple[Any, Any]:
    """A zeroed ``size``-byte buffer at a page boundary, as MSHV_GET/SET_VP_STATE take it:
    (the cdata that owns the memory, the aligned ``unsigned char *``)."""
    raw = ffi.new("unsigned char[]", size + PAGE_SIZE)
    address = (int(ffi.cast("uintptr_t", raw)) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    return raw, ffi.cast("unsigned char *", address)


def _check(name: str, value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= limit:
        raise ValueError(f"{name} must be in 0..{limit:#x}, got {value:#x}")
    return value


def _c_field(name: str) -> str:
    return name if name == "apic_id" else f"apic_{name}"


def _vectors(words: list[int]) -> list[int]:
    return [32 * i + bit for i, word in enumerate(words) for bit in range(32) if word >> bit & 1]


@dataclass
class LapicState:
    """A VP's local APIC (``hv_local_interrupt_controller_state``, fields without ``apic_``)."""

    apic_id: int = 0
    version: int = 0
    ldr: int = 0
    dfr: int = 0
    spurious: int = 0
    isr: list[int] = field(default_factory=lambda: [0] * _APIC_WORDS)
    tmr: list[int] = field(default_factory=lambda: [0] * _APIC_WORDS)
    irr: list[int] = field(default_factory=lambda: [0] * _APIC_WORDS)
    esr: int = 0
    icr_high: int = 0
    icr_low: int = 0
    lvt_timer: int = 0
    lvt_thermal: int = 0
    lvt_perfmon: int = 0
    lvt_lint0: int = 0
    lvt_lint1: int = 0
    lvt_error: int = 0
    lvt_cmci: int = 0
    error_status: int = 0
    initial_count: int = 0
    counter_value: int = 0
    divide_configuration: int = 0
    remote_read: int = 0

    @property
    def icr(self) -> int:
        """The 64-bit interrupt command register (high:low)."""
        return (self.icr_high << 32) | self.icr_low

    @property
    def pending_vectors(self) -> list[int]:
        """Vectors requested and not yet delivered (IRR bits)."""
        return _vectors(self.irr)

    @property
    def in_service_vectors(self) -> list[int]:
        """Vectors being serviced, not yet EOIed (ISR bits)."""
        return _vectors(self.isr)

    @classmethod
    def from_bytes(cls, data: bytes) -> LapicState:
        """Decode the first ``sizeof(hv_local_interrupt_controller_state)`` bytes of ``data``."""
        size = ffi.sizeof(_LAPIC)
        if len(data) < size:
            raise ValueError(f"LAPIC state needs {size} bytes, got {len(data)}")
        raw = ffi.new(f"{_LAPIC} *")
        ffi.memmove(raw, data, size)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(raw, _c_field(f.name))
            values[f.name] = list(value) if f.name in ("isr", "tmr", "irr") else int(value)
        return cls(**values)

    def to_bytes(self) -> bytes:
        """Encode as ``hv_local_interrupt_controller_state``; every value is checked first."""
        raw = ffi.new(f"{_LAPIC} *")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("isr", "tmr", "irr"):
                if not isinstance(value, list | tuple) or len(value) != _APIC_WORDS:
                    raise ValueError(f"{f.name} must be {_APIC_WORDS} 32-bit words, got {value!r}")
                value = [_check(f"{f.name}[{i}]", v, _U32) for i, v in enumerate(value)]
            else:
                _check(f.name, value, _U32)
            setattr(raw, _c_field(f.name), value)
        return bytes(ffi.buffer(raw))


@dataclass
class SyntheticTimer:
    """One SynIC timer (``hv_stimer_state``): config, count and delivery state."""

    flags: int = 0
    config: int = 0
    count: int = 0
    adjustment: int = 0
    undelivered_exp_time: int = 0

    @property
    def enabled(self) -> bool:
        """The config's enable bit."""
        return bool(self.config & lib.HV_STIMER_CONFIG_ENABLE)


_TIMER_FIELDS = ("flags", "config", "count", "adjustment", "undelivered_exp_time")


def get_lapic(vp: Vp) -> LapicState:
    """Read the VP's local APIC (MSHV_GET_VP_STATE, LAPIC); EINVAL without a LAPIC."""
    return LapicState.from_bytes(vp.get_state(lib.MSHV_VP_STATE_LAPIC))


def set_lapic(vp: Vp, state: LapicState) -> None:
    """Write the VP's local APIC (MSHV_SET_VP_STATE, LAPIC)."""
    if not isinstance(state, LapicState):
        raise TypeError(f"expected a LapicState, not {type(state).__name__}")
    vp.set_state(lib.MSHV_VP_STATE_LAPIC, state.to_bytes())


def get_xsave(vp: Vp) -> bytes:
    """Read the VP's compacted XSAVE area (MSHV_GET_VP_STATE, XSAVE)."""
    return vp.get_state(lib.MSHV_VP_STATE_XSAVE)


def set_xsave(vp: Vp, data: bytes) -> None:
    """Write the VP's compacted XSAVE area (MSHV_SET_VP_STATE, XSAVE), e.g. from :func:`get_xsave`."""
    vp.set_state(lib.MSHV_VP_STATE_XSAVE, _page_bytes("xsave", data, limit=None))


def _page_bytes(name: str, data: object, limit: int | None = PAGE_SIZE) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data or (limit is not None and len(data) != limit):
        raise ValueError(f"{name} must be {limit or 'a non-empty run of'} bytes, got {len(data)}")
    return data


def get_simp(vp: Vp) -> bytes:
    """Read the VP's SynIC message page (MSHV_GET_VP_STATE, SIMP): 4096 bytes."""
    return vp.get_state(lib.MSHV_VP_STATE_SIMP)[:PAGE_SIZE]


def set_simp(vp: Vp, page: bytes) -> None:
    """Write the VP's SynIC message page (MSHV_SET_VP_STATE, SIMP): exactly 4096 bytes."""
    vp.set_state(lib.MSHV_VP_STATE_SIMP, _page_bytes("SIMP page", page))


def get_siefp(vp: Vp) -> bytes:
    """Read the VP's SynIC event-flags page (MSHV_GET_VP_STATE, SIEFP): 4096 bytes."""
    return vp.get_state(lib.MSHV_VP_STATE_SIEFP)[:PAGE_SIZE]


def set_siefp(vp: Vp, page: bytes) -> None:
    """Write the VP's SynIC event-flags page (MSHV_SET_VP_STATE, SIEFP): exactly 4096 bytes."""
    vp.set_state(lib.MSHV_VP_STATE_SIEFP, _page_bytes("SIEFP page", page))


def get_synthetic_timers(vp: Vp) -> list[SyntheticTimer]:
    """Read the VP's four synthetic timers (MSHV_GET_VP_STATE, SYNTHETIC_TIMERS)."""
    data = vp.get_state(lib.MSHV_VP_STATE_SYNTHETIC_TIMERS)
    raw = ffi.new(f"{_TIMERS} *")
    ffi.memmove(raw, data, min(len(data), ffi.sizeof(_TIMERS)))
    return [
        SyntheticTimer(**{name: int(getattr(t, name)) for name in _TIMER_FIELDS})
        for t in raw.timers[0 : lib.HV_SYNIC_STIMER_COUNT]
    ]


def set_synthetic_timers(vp: Vp, timers: list[SyntheticTimer]) -> None:
    """Write the VP's four synthetic timers (MSHV_SET_VP_STATE, SYNTHETIC_TIMERS)."""
    if not isinstance(timers, list | tuple) or len(timers) != lib.HV_SYNIC_STIMER_COUNT:
        raise ValueError(f"expected {lib.HV_SYNIC_STIMER_COUNT} SyntheticTimer values, got {timers!r}")
    raw = ffi.new(f"{_TIMERS} *")
    for i, timer in enumerate(timers):
        if not isinstance(timer, SyntheticTimer):
            raise TypeError(f"timer {i}: expected a SyntheticTimer, not {type(timer).__name__}")
        for name in _TIMER_FIELDS:
            limit = _U32 if name == "flags" else _U64
            setattr(raw.timers[i], name, _check(f"timers[{i}].{name}", getattr(timer, name), limit))
    vp.set_state(lib.MSHV_VP_STATE_SYNTHETIC_TIMERS, bytes(ffi.buffer(raw)))
