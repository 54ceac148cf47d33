"""Expected exit sequences: run a VP, complete each exit the way a VMM would, compare.

:func:`assert_exits` runs the VP once per expectation. An exit that matches is
completed so the guest goes on: an OUT or an MMIO write is acknowledged, an IN,
an MMIO read or a RDMSR gets the value the expectation gives, RIP moves past the
instruction. The first exit that does not match stops the run with an
``AssertionError`` whose message is a table: expected and got, one row per
exit, with the RIP of each.

Example:
    >>> from mshv.exits import Halt, IoPort, assert_exits
    >>> from mshv.testing import assemble, partition_with_one_vp
    >>> code = assemble("mov $0x42, %al; out %al, $0x10; in $0x11, %al; out %al, $0x12; hlt")
    >>> with partition_with_one_vp(code, lapic=False) as (pt, vp, mem):
    ...     got = assert_exits(vp, [
    ...         IoPort(0x10, write=True, value=0x42),
    ...         IoPort(0x11, write=False, value=0x5A),   # the IN reads 0x5A
    ...         IoPort(0x12, write=True, value=0x5A),
    ...         Halt(),
    ...     ])
    ...     [type(exit).__name__ for exit in got]
    ['IoPortIntercept', 'IoPortIntercept', 'IoPortIntercept', 'HaltIntercept']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, ClassVar

from mshv.intercepts import (
    ExceptionIntercept,
    HaltIntercept,
    Intercept,
    IoPortIntercept,
    MemoryIntercept,
    MsrIntercept,
    UnrecoverableException,
)
from mshv.x86.mmio import emulate_mmio

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = [
    "Exit",
    "GuestException",
    "Halt",
    "IoPort",
    "Mmio",
    "Msr",
    "Unrecoverable",
    "assert_exits",
    "observed",
]

_U32 = (1 << 32) - 1


_DECIMAL = frozenset({"size", "vector"})  # shown in decimal; other numbers in hex


def _show(value: object, name: str = "") -> str:
    if isinstance(value, int) and not isinstance(value, bool) and name not in _DECIMAL:
        return f"{value:#x}"
    return repr(value)


@dataclass(frozen=True)
class Exit:
    """An expected exit. Fields left None are not checked; ``rip`` (keyword only) is the
    RIP of the intercepted instruction."""

    intercept_type: ClassVar[type[Intercept]] = Intercept
    rip: int | None = field(default=None, kw_only=True)

    def __str__(self) -> str:
        names = [f.name for f in fields(self) if f.name != "rip"] + ["rip"]  # RIP last
        shown = [f"{n}={_show(getattr(self, n), n)}" for n in names if getattr(self, n) is not None]
        return f"{type(self).__name__}({', '.join(shown)})"

    def check(self) -> None:
        """Raise ValueError when the expectation cannot be used (e.g. a read without its value)."""

    def mismatches(self, got: Intercept) -> list[str]:
        """What differs between this expectation and ``got`` (empty: it matches).

        Only the fields the intercept itself carries are compared here; values that only
        completing the exit reveals (an MMIO access's size and value) are compared by
        :meth:`complete`.
        """
        seen = observed(got)
        if not isinstance(got, self.intercept_type) or seen is None:
            return [f"expected {type(self).__name__}, got {type(seen or got).__name__}"]
        differ = []
        for f in fields(self):
            want, have = getattr(self, f.name), getattr(seen, f.name)
            if want is not None and have is not None and want != have:
                differ.append(f"{f.name}: expected {_show(want, f.name)}, got {_show(have, f.name)}")
        return differ

    def complete(self, vp: Vp, got: Intercept) -> list[str]:
        """Complete ``got`` (already matched) on ``vp``; returns mismatches found on the way."""
        return []


@dataclass(frozen=True)
class IoPort(Exit):
    """IN or OUT on ``port``. OUT (``write=True``): ``value`` is what the guest must write.
    IN: ``value`` is what the guest reads (required). ``size`` in bytes (1, 2, 4)."""

    intercept_type: ClassVar[type[Intercept]] = IoPortIntercept
    port: int
    write: bool
    value: int | None = None
    size: int | None = None

    def check(self) -> None:
        if not self.write and self.value is None:
            raise ValueError(f"{self}: an IN needs the value it reads")

    def mismatches(self, got: Intercept) -> list[str]:
        differ = Exit.mismatches(self, got)
        if not differ and isinstance(got, IoPortIntercept) and got.string:
            differ.append("a string instruction (INS/OUTS): complete it with Vp.complete_string_io")
        return differ

    def complete(self, vp: Vp, got: Intercept) -> list[str]:
        assert isinstance(got, IoPortIntercept)
        vp.complete_io(got, None if got.is_write else self.value)
        return []


@dataclass(frozen=True)
class Mmio(Exit):
    """A memory intercept at ``gpa`` (no memory there). A write must write ``value``; a read
    reads ``value`` (required). ``size`` in bytes. The instruction is emulated
    (:func:`mshv.x86.mmio.emulate_mmio`); its first access is the one compared."""

    intercept_type: ClassVar[type[Intercept]] = MemoryIntercept
    gpa: int
    write: bool
    value: int | None = None
    size: int | None = None

    def check(self) -> None:
        if not self.write and self.value is None:
            raise ValueError(f"{self}: a read needs the value it returns")

    def complete(self, vp: Vp, got: Intercept) -> list[str]:
        assert isinstance(got, MemoryIntercept)
        accesses: list[tuple[int, int, int | None]] = []

        def read(gpa: int, size: int) -> int:
            accesses.append((gpa, size, None))
            return (self.value or 0) & ((1 << (8 * size)) - 1)

        def write(gpa: int, size: int, value: int) -> None:
            accesses.append((gpa, size, value))

        emulate_mmio(vp, got, read=read, write=write)
        if not accesses:
            return ["the instruction made no MMIO access"]
        _gpa, size, value = accesses[0]
        differ = []
        if self.size is not None and size != self.size:
            differ.append(f"size: expected {self.size}, got {size}")  # bytes, in decimal
        if self.write and self.value is not None and value != self.value:
            differ.append(f"value: expected {_show(self.value)}, got {_show(value)}")
        return differ


@dataclass(frozen=True)
class Msr(Exit):
    """RDMSR or WRMSR of ``msr`` (MSR intercepts installed). WRMSR: ``value`` is EDX:EAX
    as written; RDMSR: ``value`` is what the guest reads (required)."""

    intercept_type: ClassVar[type[Intercept]] = MsrIntercept
    msr: int
    write: bool
    value: int | None = None

    def check(self) -> None:
        if not self.write and self.value is None:
            raise ValueError(f"{self}: a RDMSR needs the value it reads")

    def complete(self, vp: Vp, got: Intercept) -> list[str]:
        assert isinstance(got, MsrIntercept)
        if self.write:
            vp.skip(got)
        else:
            value = self.value or 0
            vp.set_registers({"rax": value & _U32, "rdx": (value >> 32) & _U32, "rip": got.next_rip})
        return []


@dataclass(frozen=True)
class Halt(Exit):
    """HLT on a partition without a LAPIC. The VP is left as the exit left it."""

    intercept_type: ClassVar[type[Intercept]] = HaltIntercept


@dataclass(frozen=True)
class GuestException(Exit):
    """An intercepted exception (exception intercepts installed). The VP is left as the
    exit left it, at the instruction: move RIP yourself before running it again."""

    intercept_type: ClassVar[type[Intercept]] = ExceptionIntercept
    vector: int
    error_code: int | None = None


@dataclass(frozen=True)
class Unrecoverable(Exit):
    """The VP cannot go on (e.g. a triple fault)."""

    intercept_type: ClassVar[type[Intercept]] = UnrecoverableException


def observed(got: Intercept) -> Exit | None:
    """``got`` in the vocabulary of the expectations, for comparing and printing (None when
    there is no expectation type for it)."""
    rip = getattr(got, "rip", None)
    if isinstance(got, IoPortIntercept):
        return IoPort(got.port, got.is_write, got.value if got.is_write else None, got.size, rip=rip)
    if isinstance(got, MemoryIntercept):
        return Mmio(got.gpa, got.is_write, rip=rip)  # size and value: known once emulated
    if isinstance(got, MsrIntercept):
        value = ((got.rdx & _U32) << 32) | (got.rax & _U32)
        return Msr(got.msr, got.is_write, value if got.is_write else None, rip=rip)
    if isinstance(got, ExceptionIntercept):
        return GuestException(got.vector, got.error_code, rip=rip)
    if isinstance(got, HaltIntercept):
        return Halt(rip=rip)
    if isinstance(got, UnrecoverableException):
        return Unrecoverable(rip=rip)
    return None


def _got_text(got: Intercept) -> str:
    seen = observed(got)
    if seen is None:
        return repr(got)
    text = str(replace(seen, rip=None))  # RIP has a column of its own
    host_limit = getattr(got, "host_limit", None)
    return f"{text} [{host_limit}]" if host_limit else text


def _table(expected: Sequence[Exit], got: list[Intercept], failing: int, why: list[str]) -> str:
    rows = [("#", "expected", "got", "rip", "")]
    for i, want in enumerate(expected):
        if i < len(got):
            have = got[i]
            rip = getattr(have, "rip", None)
            where = "-" if rip is None else _show(rip)
            note = "<- " + "; ".join(why) if i == failing else "ok"
            rows.append((str(i + 1), str(want), _got_text(have), where, note))
        else:
            rows.append((str(i + 1), str(want), "(not run)", "", ""))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in rows]  # fmt: skip
    head = f"exit {failing + 1} of {len(expected)} differs: {'; '.join(why)}"
    return "\n".join([head, *(line.rstrip() for line in lines)])


def assert_exits(vp: Vp, expected: Sequence[Exit]) -> list[Intercept]:
    """Run ``vp`` once per expectation, check each exit and complete it; returns the exits.

    Raises:
        AssertionError: an exit differs; the message tables expected against got, RIP in hex.
        ValueError: an expectation lacks what completing it needs (a read without its value).
    """
    __tracebackhide__ = True  # pytest shows the failure at the caller's line
    for want in expected:
        if not isinstance(want, Exit):
            raise TypeError(f"expected a sequence of mshv.exits.Exit, got {type(want).__name__}")
        want.check()
    got: list[Intercept] = []
    for i, want in enumerate(expected):
        exit_ = vp.run()
        got.append(exit_)
        why = want.mismatches(exit_) or want.complete(vp, exit_)
        if why:
            raise AssertionError(_table(expected, got, i, why))
    return got
