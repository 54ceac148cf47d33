"""What the backend cannot do, found by trying it: guest instructions, intercepts, TSC writes,
CPU features a partition disables.

On the emulator, guests run on the host's KVM, and some KVMs cannot run some
instructions in some modes (e.g. a paravirtual KVM with no hardware
virtualization for the guest emulates IRET and INT n outside real mode and
may not implement them). KVM then stops the VP with an emulation failure,
which the emulator reports as HVMSG_UNRECOVERABLE_EXCEPTION: it looks like
a guest crash. Nothing here is assumed about the host: each limit is probed
on the backend in use, once per process, with a tiny guest (hand-encoded
machine code, so no assembler is needed) or a hypercall.

- :func:`probe_limits` runs every probe (``mshv info`` prints them).
- :func:`instruction_limit` probes one instruction in one mode.
- :func:`cpu_feature_hiding` probes whether a feature the partition disables is hidden from
  its guest's CPUID (a KVM that runs guest user code on the hardware may keep showing them).
- :func:`read_access_tracking` probes whether a page the guest only reads is marked accessed
  (the emulator sees guest writes only: KVM's dirty log).
- :func:`host_cause` says whether an ``UnrecoverableException`` stopped at an
  instruction the probes found the host cannot run, or in real mode with an
  IVT shorter than 256 vectors on a host whose KVM ignores the real-mode IDT
  limit (:func:`real_mode_idt_limit`). ``Vp.run()`` fills
  ``UnrecoverableException.host_limit`` with it.

Each instruction probe in protected and long mode has a control: a #UD
(UD2) delivered through the same IDT. When the control fails too, the
probe's verdict is "inconclusive" (works is None), never a false limit.
"""

from __future__ import annotations

import functools
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import iced_x86 as iced

from mshv import backend
from mshv._abi import lib
from mshv.device import Mshv
from mshv.errors import MshvError
from mshv.intercepts import IoPortIntercept, UnrecoverableException
from mshv.memory import GuestMemory
from mshv.registers import Segment, Table
from mshv.testing import (
    entry_gpa,
    long_mode_registers,
    protected_mode_registers,
    real_mode_registers,
    segment_descriptor,
)
from mshv.translate import TranslateResult

if TYPE_CHECKING:
    from mshv.intercepts import InterceptHeader
    from mshv.vp import Vp

__all__ = [
    "Limit",
    "cpu_feature_hiding",
    "host_cause",
    "instruction_limit",
    "probe_limits",
    "read_access_tracking",
    "real_mode_idt_limit",
]


@dataclass(frozen=True)
class Limit:
    """One probed capability: ``works`` is True, False, or None when the probe was inconclusive."""

    name: str
    works: bool | None
    detail: str


# Probe guests: code at entry_gpa(mode), the handler (or jump target) HANDLER_OFFSET bytes later.
# A probe "works" when the guest reaches the handler, which reports on port REACHED.
_MEMORY_SIZE = 0x40000
_REACHED, _FELL_THROUGH, _RAISED_UD = 0x11, 0x12, 0x13
_HANDLER_OFFSET, _UD_HANDLER_OFFSET = 0x100, 0x180
_GDT, _IDT, _STACK, _SCRATCH = 0x500, 0x800, 0x8000, 0x9000
_VECTOR = 0x20  # the software interrupt the INT n probes raise
_UD = 6  # #UD: the control every protected/long probe has
_OUT_REACHED_HLT = bytes([0xE6, _REACHED, 0xF4])  # out %al, $REACHED; hlt
_OUT_FELL_HLT = bytes([0xE6, _FELL_THROUGH, 0xF4])  # out %al, $FELL_THROUGH; hlt

# op -> (label, machine code of the probed instruction, IDT vector its handler needs or None)
_OPS: dict[str, tuple[str, bytes, int | None]] = {
    "int": ("INT n", bytes([0xCD, _VECTOR]), _VECTOR),
    "iret": ("IRET", bytes([0xCF]), None),
    "iretq": ("IRETQ", bytes([0x48, 0xCF]), None),
    "int3": ("INT3", bytes([0xCC]), 3),
    "cmpxchg16b": ("CMPXCHG16B", bytes([0x48, 0x0F, 0xC7, 0x0E]), None),  # cmpxchg16b (%rsi)
    "ud2": ("#UD (UD2) through the IDT", bytes([0x0F, 0x0B]), _UD),
}
# What is probed, in the order ``mshv info`` lists it.
_INSTRUCTION_PROBES: list[tuple[str, str]] = [
    ("real", "int"), ("real", "iret"),
    ("protected", "ud2"), ("protected", "int"), ("protected", "iret"),
    ("long", "ud2"), ("long", "int"), ("long", "int3"), ("long", "iretq"), ("long", "cmpxchg16b"),
]  # fmt: skip
# iced-x86 mnemonics of the probed instructions (an UnrecoverableException at one is looked up)
_MNEMONICS: dict[int, str] = {
    iced.Mnemonic.INT: "int",
    iced.Mnemonic.IRET: "iret",
    iced.Mnemonic.IRETD: "iret",
    iced.Mnemonic.IRETQ: "iretq",
    iced.Mnemonic.INT3: "int3",
    iced.Mnemonic.CMPXCHG16B: "cmpxchg16b",
}

_lock = threading.RLock()
_probing = threading.local()


def _gate(mode: str, offset: int) -> bytes:
    """An interrupt gate (present, DPL 0, type 0xE) to ``offset`` in code segment 0x8."""
    if mode == "real":  # an IVT entry: offset, segment
        return struct.pack("<HH", offset, 0)
    low = struct.pack("<HHBBH", offset & 0xFFFF, 0x8, 0, 0x8E, (offset >> 16) & 0xFFFF)
    return low if mode == "protected" else low + struct.pack("<II", offset >> 32, 0)


def _iret_frame(mode: str, target: int) -> bytes:
    """The stack an IRET of ``mode`` pops to land at ``target`` in the same privilege level."""
    if mode == "real":
        return struct.pack("<HHH", target, 0, 0x2)
    if mode == "protected":
        return struct.pack("<III", target, 0x8, 0x2)
    return struct.pack("<QQQQQ", target, 0x8, 0x2, _STACK, 0x10)


def _guest(mem: GuestMemory, mode: str, op: str) -> dict[str, object]:
    """Write probe ``op``'s guest into ``mem``; returns the VP's registers."""
    entry = entry_gpa(mode)
    handler = entry + _HANDLER_OFFSET
    if mode == "real":
        regs = real_mode_registers(rip=entry)
    elif mode == "protected":
        regs = protected_mode_registers(mem, entry, gdt=_GDT)
    else:
        regs = long_mode_registers(mem, entry)
        code64, data = Segment.flat(0x8, code=True, long_mode=True), Segment.flat(0x10, code=False)
        # a GDT: the gates' selector and IRETQ's CS and SS are loaded from it
        mem.write(_GDT, bytes(8) + segment_descriptor(code64) + segment_descriptor(data))
        regs["gdtr"] = Table(base=_GDT, limit=3 * 8 - 1)
    _label, code, vector = _OPS[op]
    gates = {} if vector is None else {vector: handler}
    if mode != "real" and vector != _UD:  # a #UD says so (e.g. a CPU feature the VP lacks)
        gates[_UD] = entry + _UD_HANDLER_OFFSET
        mem.write(entry + _UD_HANDLER_OFFSET, bytes([0xE6, _RAISED_UD, 0xF4]))
    if gates:
        size = len(_gate(mode, 0))
        idt = 0 if mode == "real" else _IDT  # real mode: the IVT at 0 (real_mode_registers' IDTR)
        for number, target in gates.items():
            mem.write(idt + number * size, _gate(mode, target))
        if mode != "real":
            regs["idtr"] = Table(base=_IDT, limit=(max(gates) + 1) * size - 1)
    if op.startswith("iret"):
        frame = _iret_frame(mode, handler)
        mem.write(_STACK - len(frame), frame)
        regs["rsp"] = _STACK - len(frame)
    if op == "cmpxchg16b":
        regs["rsi"] = _SCRATCH
        code += _OUT_REACHED_HLT  # it works when the guest gets past it
    mem.write(entry, code + _OUT_FELL_HLT)
    mem.write(handler, _OUT_REACHED_HLT)
    return regs


def _run_probe(mode: str, op: str) -> tuple[bool, str]:
    """Run probe ``op`` in ``mode`` on a partition of its own: (reached the handler, what was seen)."""
    with Mshv() as hv, GuestMemory(_MEMORY_SIZE) as mem:
        partition = hv.create_partition(lapic=False)
        try:
            partition.map_memory(mem, 0)
            vp = partition.create_vp(0)
            vp.set_registers(_guest(mem, mode, op))  # type: ignore[arg-type]
            exit_ = vp.run()
        finally:
            partition.close()
    if isinstance(exit_, IoPortIntercept) and exit_.port == _REACHED:
        return True, "the probe guest ran it"
    if isinstance(exit_, IoPortIntercept) and exit_.port == _RAISED_UD:
        return False, "it raised #UD in the probe guest (the VP's CPU does not offer it)"
    if isinstance(exit_, UnrecoverableException):
        return (
            False,
            f"unrecoverable exception at the instruction (RIP {exit_.rip:#x}): the host cannot run it",
        )
    return False, f"the probe guest did not get past it: {type(exit_).__name__} at RIP {exit_.rip:#x}"  # type: ignore[attr-defined]


@functools.cache
def instruction_limit(mode: str, op: str) -> Limit:
    """Whether the backend runs instruction ``op`` ("int", "iret", "iretq", "int3", "cmpxchg16b",
    "ud2") in ``mode`` ("real", "protected", "long"); probed once per process."""
    if (mode, op) not in _INSTRUCTION_PROBES:
        raise ValueError(f"no probe for {op!r} in {mode!r} mode; probes: {_INSTRUCTION_PROBES}")
    name = f"{_OPS[op][0]} in {mode} mode"
    with _lock:
        _probing.active = True
        try:
            works, detail = _run_probe(mode, op)
            if not works and mode != "real" and op != "ud2" and not instruction_limit(mode, "ud2").works:
                return Limit(name, None, f"inconclusive: {detail}, and so did the control (#UD)")
        except (MshvError, OSError) as exc:
            return Limit(name, None, f"could not probe: {exc}")
        finally:
            _probing.active = False
    return Limit(name, works, detail)


# The real-mode IDT probe: an IVT of vectors 0-5 only, so #UD (6), #GP (13) and #DF (8) lie past it.
_REAL_IVT_FULL = 256 * 4 - 1  # IDTR.limit of an IVT that holds every vector
_REAL_IVT_SHORT = _UD * 4 - 1


def _real_mode_idt_guest(mem: GuestMemory) -> dict[str, object]:
    """UD2 in real mode with IDTR.limit ending before vector 6, whose IVT entry (past the
    limit) points at the handler; returns the VP's registers."""
    entry = entry_gpa("real")
    mem.write(_UD * 4, _gate("real", entry + _HANDLER_OFFSET))
    mem.write(entry, bytes([0x0F, 0x0B]) + _OUT_FELL_HLT)  # ud2
    mem.write(entry + _HANDLER_OFFSET, _OUT_REACHED_HLT)
    regs = real_mode_registers(rip=entry)
    regs["idtr"] = Table(base=0, limit=_REAL_IVT_SHORT)
    return regs


@functools.cache
def real_mode_idt_limit() -> Limit:
    """Whether an exception past IDTR.limit in real mode stops the VP, as a CPU shuts down
    (#GP, then #DF, then a triple fault); probed once per process.

    KVM delivers real-mode events itself when the host cannot run real mode natively
    (``__emulate_int_real`` in arch/x86/kvm/emulate.c), and does not check the limit: the
    guest jumps through the IVT entry past it instead, and runs whatever that points to
    (e.g. zeroed memory, emulated instruction by instruction, for seconds) until it stops.
    """
    name = "real-mode IDT limit"
    with _lock:
        _probing.active = True
        try:
            with (
                Mshv() as hv,
                GuestMemory(_MEMORY_SIZE) as mem,
                hv.create_partition(lapic=False) as partition,
            ):
                partition.map_memory(mem, 0)
                vp = partition.create_vp(0)
                vp.set_registers(_real_mode_idt_guest(mem))  # type: ignore[arg-type]
                exit_ = vp.run()
        except (MshvError, OSError) as exc:
            return Limit(name, None, f"could not probe: {exc}")
        finally:
            _probing.active = False
    if isinstance(exit_, UnrecoverableException):
        return Limit(name, True, "the VP stopped at the UD2, as a CPU shuts down")
    if isinstance(exit_, IoPortIntercept) and exit_.port == _REACHED:
        return Limit(
            name,
            False,
            f"the host's KVM delivered #UD through IVT entry 6, past IDTR.limit {_REAL_IVT_SHORT:#x} "
            "(a CPU shuts down): the guest runs on from whatever such an entry holds",
        )
    return Limit(name, None, f"inconclusive: {type(exit_).__name__} at RIP {exit_.rip:#x}")  # type: ignore[attr-defined]


# kind of install_intercept -> (name in the report, parameter)
_INTERCEPT_PROBES: list[tuple[str, str, dict[str, int]]] = [
    ("port IO intercept", "io_port", {"port": 0x80}),
    ("MSR intercept (all MSRs)", "msr", {}),
    ("CPUID intercept", "cpuid", {"leaf": 0}),
    ("exception intercept #DB (1)", "exception", {"vector": 1}),
    ("exception intercept #BP (3)", "exception", {"vector": 3}),
    ("exception intercept #UD (6)", "exception", {"vector": 6}),
    ("exception intercept #GP (13)", "exception", {"vector": 13}),
    ("exception intercept #PF (14)", "exception", {"vector": 14}),
]


def _intercept_limits() -> list[Limit]:
    limits = []
    with Mshv() as hv, hv.create_partition(lapic=False) as partition:
        for name, kind, parameter in _INTERCEPT_PROBES:
            try:
                partition.install_intercept(kind, **parameter)
            except MshvError as exc:
                status = f"HV_STATUS_{exc.hv_status.name}" if exc.hv_status is not None else str(exc)
                limits.append(Limit(name, False, f"HvCallInstallIntercept answered {status}"))
            else:
                limits.append(Limit(name, True, "HvCallInstallIntercept accepted it"))
    return limits


def _tsc_limit() -> Limit:
    """Whether a TSC write from the VMM sticks (some KVMs ignore host-initiated TSC writes)."""
    jump = 1 << 40
    with Mshv() as hv, hv.create_partition(lapic=False) as partition:
        vp = partition.create_vp(0)
        before = vp.reg_read("tsc")
        assert isinstance(before, int)
        vp.reg_write("tsc", before + jump)
        after = vp.reg_read("tsc")
        assert isinstance(after, int)
    works = abs(after - (before + jump)) < jump // 2
    return Limit("TSC writes", works, f"wrote {before + jump:#x}, read back {after:#x}")


# Features checked by cpu_feature_hiding: (name, property, Hyper-V bit, CPUID leaf, register, bit),
# the CPUID bits from the Intel SDM's CPUID tables.
_FEATURES0, _XSAVE = (
    lib.HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0,
    lib.HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES,
)
_HIDDEN_FEATURES = [
    ("SSE3", _FEATURES0, lib.HV_PROC_FEATURE0_SSE3_BIT, 1, "ecx", 0),
    ("POPCNT", _FEATURES0, lib.HV_PROC_FEATURE0_POPCNT_BIT, 1, "ecx", 23),
    ("XSAVE", _XSAVE, lib.HV_PROC_XSAVE_FEATURE_XSAVE_BIT, 1, "ecx", 26),
    ("AVX", _XSAVE, lib.HV_PROC_XSAVE_FEATURE_AVX_BIT, 1, "ecx", 28),
    ("AVX2", _XSAVE, lib.HV_PROC_XSAVE_FEATURE_AVX2_BIT, 7, "ebx", 5),
]  # fmt: skip


@functools.cache
def cpu_feature_hiding() -> Limit:
    """Whether CPU features a partition disables (MSHV_CREATE_PARTITION v2 pt_cpu_fbanks,
    pt_disabled_xsave) are gone from its guest's CPUID; probed once per process with every
    feature disabled, on features the host offers. A KVM whose guests run user code on the
    hardware may give them the hardware's features whatever the VMM's CPUID says: the guest
    then sees and can use them, and the partition's properties say it has them."""
    name = "disabled CPU features hidden from the guest"
    every = 2**64 - 1
    try:
        with Mshv() as hv:
            offered = [f for f in _HIDDEN_FEATURES if hv.get_property(f[1]) >> f[2] & 1]
            with hv.create_partition(
                lapic=False, disabled_cpu_features=[every, every], disabled_xsave=every
            ) as pt:
                vp = pt.create_vp(0)
                shown = [f[0] for f in offered if getattr(vp.get_cpuid(f[3]), f[4]) >> f[5] & 1]
    except (MshvError, OSError) as exc:
        return Limit(name, None, f"could not probe: {exc}")
    checked = ", ".join(f[0] for f in offered)
    if not offered:
        return Limit(name, None, "inconclusive: the host offers none of the features the probe checks")
    if shown:
        return Limit(
            name,
            False,
            f"with every feature disabled the guest's CPUID still shows {', '.join(shown)} (of {checked}): "
            "the guest keeps them, and the partition's feature properties say so",
        )
    return Limit(name, True, f"with every feature disabled the guest's CPUID shows none of {checked}")


# The read-tracking probe: real-mode code at entry_gpa("real") reads one page and writes another.
_READ_PAGE, _WRITTEN_PAGE = 0x7000, 0x8000
_READ_THEN_WRITE = bytes(
    [0xA0, 0x00, 0x70, 0xA2, 0x00, 0x80] + list(_OUT_REACHED_HLT)
)  # mov 0x7000, %al; mov %al, 0x8000; out %al, $REACHED; hlt


@functools.cache
def read_access_tracking() -> Limit:
    """Whether a guest page that is only read gets its accessed bit (page access tracking,
    :mod:`mshv.dirty`); probed once per process. The hypervisor marks pages read or written;
    the emulator has KVM's dirty log, which sees writes only, so there "accessed" means written.
    The control: the page the probe guest writes must show as accessed, else inconclusive."""
    name = "guest reads marked accessed"
    with _lock:
        _probing.active = True
        try:
            with (
                Mshv() as hv,
                GuestMemory(_MEMORY_SIZE) as mem,
                hv.create_partition(lapic=False) as partition,
            ):
                entry = entry_gpa("real")
                mem.write(entry, _READ_THEN_WRITE)
                partition.map_memory(mem, 0)
                vp = partition.create_vp(0)
                vp.set_registers(real_mode_registers(rip=entry))  # type: ignore[arg-type]
                partition.enable_dirty_tracking()
                exit_ = vp.run()
                accessed = partition.accessed_pages(_READ_PAGE, 2, clear=False)
        except (MshvError, OSError) as exc:
            return Limit(name, None, f"could not probe: {exc}")
        finally:
            _probing.active = False
    if not (isinstance(exit_, IoPortIntercept) and exit_.port == _REACHED):
        return Limit(name, None, f"inconclusive: the probe guest stopped with {type(exit_).__name__}")
    if _WRITTEN_PAGE not in accessed:
        detail = f"inconclusive: the page the guest wrote ({_WRITTEN_PAGE:#x}) is not accessed either"
        return Limit(name, None, detail)
    if _READ_PAGE in accessed:
        return Limit(name, True, f"the page the probe guest read ({_READ_PAGE:#x}) is marked accessed")
    why = " (the emulator: KVM's dirty log sees writes only)" if backend.select().name == "emulator" else ""
    return Limit(
        name,
        False,
        f"the page the probe guest only read ({_READ_PAGE:#x}) is not marked accessed, the one it wrote "
        f"is: on this backend accessed means written{why}",
    )


@functools.cache
def probe_limits() -> tuple[Limit, ...]:
    """Every probe, once per process: instructions, intercepts, TSC writes, feature hiding,
    read access tracking."""
    limits = [instruction_limit(mode, op) for mode, op in _INSTRUCTION_PROBES]
    limits.append(real_mode_idt_limit())
    limits.append(cpu_feature_hiding())
    limits.append(read_access_tracking())
    for probe in (_intercept_limits, lambda: [_tsc_limit()]):
        try:
            limits += probe()
        except (MshvError, OSError) as exc:
            limits.append(Limit(getattr(probe, "__name__", "probe"), None, f"could not probe: {exc}"))
    return tuple(limits)


def _code_at(vp: Vp, header: InterceptHeader) -> bytes:
    """The bytes at the intercept's RIP (up to 15, within one mapped region), or b"" when unmapped."""
    linear = (header.cs.base + header.rip) if header.mode != "long" else header.rip
    translation = vp.translate_gva(linear)
    if translation.result != TranslateResult.SUCCESS:
        return b""
    region = vp.partition.region_at(translation.gpa)
    if region is None:
        return b""
    start = region.offset + translation.gpa - region.gpa
    return region.memory.read(start, min(15, region.gpa + region.size - translation.gpa))


def _short_ivt_cause(vp: Vp) -> str | None:
    """In real mode: the VP's IVT does not hold every vector and the host's KVM ignores the
    real-mode IDT limit (:func:`real_mode_idt_limit`), so any exception or interrupt past the
    limit went on through the IVT where a CPU would have shut down."""
    idtr = vp.reg_read("idtr")
    if not isinstance(idtr, Table) or idtr.limit >= _REAL_IVT_FULL:
        return None
    limit = real_mode_idt_limit()
    if limit.works is not False:
        return None
    return (
        f"the VP runs in real mode with IDTR.limit {idtr.limit:#x}, and the host's KVM ignores that "
        "limit: an exception or interrupt past it jumps through the IVT entry anyway, where a CPU "
        "shuts down (#GP, #DF, triple fault); if the guest took one, this stop is where that led "
        f"(a probe guest shows it: {limit.name}, `mshv info`)"
    )


def host_cause(vp: Vp, intercept: UnrecoverableException) -> str | None:
    """Why ``intercept`` is likely the host's doing, or None: the VP stopped at an instruction
    that the probes found the backend cannot run in the VP's mode (see :func:`instruction_limit`),
    or in real mode with a short IVT that the host's KVM does not enforce.
    """
    if getattr(_probing, "active", False):
        return None  # a probe's own guest: it is being measured
    cause = _instruction_cause(vp, intercept.header)
    if cause is None and intercept.header.mode == "real":
        try:
            cause = _short_ivt_cause(vp)
        except (MshvError, ValueError):
            return None
    return cause


def _instruction_cause(vp: Vp, header: InterceptHeader) -> str | None:
    """The VP stopped at an instruction a probe found the backend cannot run in its mode."""
    try:
        code = _code_at(vp, header)
    except (MshvError, ValueError):
        return None
    if not code:
        return None
    bits = 64 if header.mode == "long" else 32 if header.cs.default_big else 16
    instr = iced.Decoder(bits, code, ip=header.rip).decode()
    op = _MNEMONICS.get(instr.mnemonic)
    if op is None or (header.mode, op) not in _INSTRUCTION_PROBES:
        return None
    limit = instruction_limit(header.mode, op)
    if limit.works is not False:
        return None
    text = iced.Formatter(iced.FormatterSyntax.GAS).format(instr)
    return (
        f"the host's KVM cannot run `{text}` in {header.mode} mode (a probe guest doing {limit.name} "
        "stops the same way; `mshv info` lists the backend's limits): likely not the guest's fault"
    )
