"""A VP run loop that serves common exits itself: MSHV_RUN_VP -> dispatch -> complete -> resume.

``RunLoop(vp)`` runs a VP until a stop condition. Handlers registered on it
finish exits without returning to the caller: a port range backed by a buffer,
a port that counts, an MMIO range backed by a bytearray, and Python callbacks.
Completions go through the VP's register page (RIP, RAX and GPRs with their
``dirty`` class bits, applied by the next MSHV_RUN_VP), so a port IO costs no
hypercall; the loop borrows the page and, where it is not valid, completes
through ``Vp.complete_registers``. ``stop()`` and ``deadline`` kick the thread
out of MSHV_RUN_VP (``Vp.interrupt``), so a guest that makes no exits stops too.
The loop is the Cython extension ``mshv._runloop`` when it was built, else its
pure-Python twin ``mshv._pyloop``; both behave the same.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mshv import _kick, _pyloop
from mshv._abi import ffi, lib
from mshv.handlers import (
    MAX_PORT,
    UNHANDLED,
    Handler,
    IoFn,
    IoHandler,
    MmioBytes,
    MmioFn,
    MmioHandler,
    PortBuffer,
    PortCounter,
    check_int,
)
from mshv.intercepts import Intercept, IoPortIntercept, MemoryIntercept, decode
from mshv.x86.mmio import UnsupportedInstruction, emulate_mmio

if TYPE_CHECKING:
    from mshv._runloop import NativeEngine
    from mshv.vp import Vp

__all__ = [
    "UNHANDLED", "Handler", "IoHandler", "MmioBytes", "MmioHandler", "PortBuffer", "PortCounter",
    "RunLoop", "RunResult", "native_available",
]  # fmt: skip


def _load_native() -> Any:
    try:
        return importlib.import_module("mshv._runloop")
    except ImportError as exc:  # built without Cython or a C compiler
        return exc


_NATIVE = _load_native()


def native_available() -> bool:
    """True when the Cython loop ``mshv._runloop`` was built and imports."""
    return not isinstance(_NATIVE, ImportError)


@dataclass(frozen=True)
class RunResult:
    """Why :meth:`RunLoop.run` returned.

    Attributes:
        reason: "halt", "max_exits", "message_type", "port", "deadline", "stopped",
            "unhandled" or "signal".
        exits: intercepts in this call.
        intercept: for "halt", "message_type", "port" and "unhandled", the typed intercept
            the VP stays at (complete it before the next run); else None.
    """

    reason: str
    exits: int
    intercept: Intercept | None = None


class RunLoop:
    """Run a VP and serve its exits (MSHV_RUN_VP in a loop; completions through the register page).

    Args:
        vp: the VP to run. The loop borrows its register page.
        native: None picks the Cython loop when it was built, else the pure-Python
            one; True requires the Cython loop (ImportError without it); False
            forces pure Python.

    Example:
        >>> from mshv.testing import assemble, partition_with_one_vp
        >>> code = assemble("mov $3, %cx; 1: mov $0x41, %al; out %al, $0xe9; loop 1b; hlt")
        >>> with partition_with_one_vp(code, lapic=False) as (pt, vp, mem), RunLoop(vp) as loop:
        ...     console = loop.port_buffer(0xE9)
        ...     result = loop.run()
        ...     (result.reason, result.exits, bytes(console.output))
        ('halt', 4, b'AAA')
    """

    stop_on_halt: bool = True

    def __init__(self, vp: Vp, *, native: bool | None = None) -> None:
        if native is None:
            native = native_available()
        if native and isinstance(_NATIVE, ImportError):
            raise ImportError(f"the Cython run loop mshv._runloop is not built: {_NATIVE}") from _NATIVE
        self.vp = vp
        self.stop_on_halt = True
        self._handlers: dict[int, Handler] = {}
        self._next_slot = 1
        self._engine: NativeEngine | _pyloop.PyEngine
        page = vp.register_page
        run = vp._run_state
        # The engine refers to the VP's fd, page, run state and completion, never to this
        # loop: the handler callback is handed to each run() (no loop <-> engine cycle).
        if native:
            table = int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
            address = page.address if page is not None else 0
            self._engine = _NATIVE.NativeEngine(
                vp.fd, table, address, run.word_address, run.take_request, vp.complete_registers
            )
            self._kinds: dict[str, int] = _NATIVE.KINDS
        else:
            raw = page.raw if page is not None else None
            self._engine = _pyloop.PyEngine(vp.fd, raw, run.word, run.take_request, vp.complete_registers)
            self._kinds = _pyloop.KINDS
        self.native = bool(native)
        self._closed = False

    # -- lifetime -------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Drop the handlers; the VP itself stays open."""
        if self._closed:
            return
        self._engine.close()
        self._closed = True

    def __enter__(self) -> RunLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "native" if self.native else "python"
        return f"<RunLoop vp={self.vp.index} {kind} exits={self.exits} closed={self._closed}>"

    @property
    def exits(self) -> int:
        """Intercepts seen by this loop over all runs."""
        return int(self._engine.exits)

    @property
    def counters(self) -> dict[str, int]:
        """Exits completed by each registered handler, by handler name."""
        return {h.name: h.exits for h in self._handlers.values()}

    # -- handlers -------------------------------------------------------------------------
    def _slot(self) -> int:
        if self._closed:
            raise ValueError("the run loop is closed")
        slot, self._next_slot = self._next_slot, self._next_slot + 1
        return slot

    def _check_free(self, ports: tuple[int, int] | None, gpas: tuple[int, int] | None) -> None:
        for h in self._handlers.values():
            if h.overlaps(ports, gpas):
                what = f"ports {ports[0]:#x}-{ports[1]:#x}" if ports else f"GPAs {gpas[0]:#x}+{gpas[1]:#x}"  # type: ignore[index]
                raise ValueError(f"{what} overlap {h.name}")

    def _add(self, handler: Handler) -> Any:
        self._handlers[handler._slot] = handler
        return handler

    def port_buffer(self, first_port: int, last_port: int | None = None, data: bytes = b"") -> PortBuffer:
        """Serve ports first_port..last_port from bytes: OUT appends to ``.output``, IN reads ``data``
        then what :meth:`PortBuffer.feed` adds (0s when empty), access size bytes, little-endian.
        """
        first = check_int(first_port, "first_port", 0, MAX_PORT)
        last = first if last_port is None else check_int(last_port, "last_port", first, MAX_PORT)
        self._check_free((first, last), None)
        handler = PortBuffer(self._engine, self._slot(), first, last)
        self._engine.add_port(handler._slot, first, last, self._kinds["buffer"], handler.output)
        handler.feed(data)
        result: PortBuffer = self._add(handler)
        return result

    def port_counter(self, port: int) -> PortCounter:
        """Count accesses to ``port``: OUT is discarded, IN reads 0."""
        port = check_int(port, "port", 0, MAX_PORT)
        self._check_free((port, port), None)
        handler = PortCounter(self._engine, self._slot(), port)
        self._engine.add_port(handler._slot, port, port, self._kinds["counter"])
        result: PortCounter = self._add(handler)
        return result

    def mmio_bytes(self, gpa: int, data: bytearray) -> MmioBytes:
        """Serve GPAs gpa..gpa+len(data)-1 from ``data`` (held: it cannot be resized until removed).

        MOV between a register or an immediate and memory is done natively; any
        other instruction through :func:`mshv.x86.mmio.emulate_mmio` in Python.
        """
        if not isinstance(data, bytearray):
            raise TypeError(f"data must be a bytearray, not {type(data).__name__}")
        if not data:
            raise ValueError("data must not be empty")
        gpa = check_int(gpa, "gpa", 0, (1 << 64) - len(data))
        self._check_free(None, (gpa, len(data)))
        handler = MmioBytes(self._engine, self._slot(), gpa, data)
        self._engine.add_mmio(handler._slot, gpa, len(data), self._kinds["bytes"], data)
        result: MmioBytes = self._add(handler)
        return result

    def on_io(self, port: int, fn: IoFn) -> IoHandler:
        """Call ``fn(port, size, value)`` for IN/OUT on ``port`` (slow path: Python per exit).

        For OUT, ``value`` is the value written; for IN it is None and ``fn`` returns
        the value read (None reads as 0). Returning :data:`UNHANDLED` leaves the exit
        to the caller: ``run()`` returns "unhandled". INS/OUTS call ``fn`` per element.
        """
        port = check_int(port, "port", 0, MAX_PORT)
        if not callable(fn):
            raise TypeError("fn must be callable")
        self._check_free((port, port), None)
        handler = IoHandler(self._engine, self._slot(), port, fn)
        self._engine.add_port(handler._slot, port, port, self._kinds["python"])
        result: IoHandler = self._add(handler)
        return result

    def on_mmio(self, gpa: int, size: int, fn: MmioFn) -> MmioHandler:
        """Call ``fn(gpa, size, value)`` for guest accesses to gpa..gpa+size-1 (slow path).

        The instruction is emulated by :func:`mshv.x86.mmio.emulate_mmio`: for a write
        ``value`` is the value written; for a read it is None and ``fn`` returns the
        value. Returning :data:`UNHANDLED` leaves the exit to the caller.
        """
        size = check_int(size, "size", 1, 1 << 64)
        gpa = check_int(gpa, "gpa", 0, (1 << 64) - size)
        if not callable(fn):
            raise TypeError("fn must be callable")
        self._check_free(None, (gpa, size))
        handler = MmioHandler(self._engine, self._slot(), gpa, size, fn)
        self._engine.add_mmio(handler._slot, gpa, size, self._kinds["python"])
        result: MmioHandler = self._add(handler)
        return result

    def remove(self, handler: Handler) -> None:
        """Remove a handler (not while the loop runs); its ``exits`` stays readable."""
        if self._handlers.get(handler._slot) is not handler:
            raise ValueError(f"{handler!r} is not registered on this loop")
        final = handler.exits
        self._engine.remove(handler._slot)
        handler._final = final
        del self._handlers[handler._slot]

    # -- running --------------------------------------------------------------------------
    def run(
        self,
        *,
        max_exits: int | None = None,
        stop_on: Iterable[int] = (),
        stop_ports: Iterable[int] = (),
        deadline: float | None = None,
    ) -> RunResult:
        """Run the VP, serving exits, until a stop condition (MSHV_RUN_VP per exit, GIL released).

        Checked before each MSHV_RUN_VP: a :meth:`stop` (or ``Vp.interrupt``) request
        ("stopped"), ``max_exits`` exits in this call ("max_exits"), ``deadline``
        ("deadline"). Checked per exit, before any handler: HLT when :attr:`stop_on_halt`
        ("halt"), a message type in ``stop_on`` ("message_type"), an IO port in
        ``stop_ports`` ("port"). An exit no handler takes returns "unhandled". In those
        four cases the VP stays at the intercept: complete it (e.g. ``vp.complete_io``)
        and call ``run()`` to resume.

        A stop request or a deadline reached while the guest runs without exits kicks the
        thread out of MSHV_RUN_VP. Any other signal that interrupts MSHV_RUN_VP runs the
        Python signal handlers: an exception from one propagates; otherwise ``run()``
        returns "signal" (or "stopped" if the handler called :meth:`stop`). An exception
        from a handler callback stops the loop and propagates too (the VP stays at that
        intercept).

        Args:
            max_exits: stop after this many exits (None: no limit).
            stop_on: message types (:class:`HvMessageType`) to return at.
            stop_ports: IO ports to return at.
            deadline: a ``time.monotonic()`` time.

        Raises:
            MshvError: MSHV_RUN_VP failed.
            ValueError: the loop or the VP is closed.
            RuntimeError: the loop or the VP is already running.
        """
        if self._closed:
            raise ValueError("the run loop is closed")
        vp = self.vp
        if vp.closed:
            raise ValueError(f"VP {vp.index} is closed")
        limit = -1 if max_exits is None else check_int(max_exits, "max_exits", 0, (1 << 63) - 1)
        types = tuple(check_int(int(t), "stop_on type", 0, 0xFFFFFFFF) for t in stop_on)
        ports = tuple(check_int(p, "stop port", 0, MAX_PORT) for p in stop_ports)
        until = -1.0 if deadline is None else max(0.0, float(deadline))
        watched = None if deadline is None else until  # the watchdog's deadline, if any
        before = self._engine.exits
        run = vp._run_state
        try:
            # raises: a run is already in progress
            with run.entered(f"VP {vp.index}", _kick._native_id()), _kick.watching(run, watched):
                vp._last_exit = None  # the VP runs on: the exit it was at is no longer current
                reason, exits, raw = self._engine.run(
                    limit, types, ports, until, bool(self.stop_on_halt), self._slow
                )
        finally:
            vp.exits += int(self._engine.exits - before)
        intercept = decode(raw) if raw is not None else None
        vp._last_exit = intercept  # the loop completed every other exit: none is pending
        return RunResult(reason, int(exits), intercept)

    def stop(self) -> None:
        """Make the running (or the next) :meth:`run` return "stopped"; safe from any thread.

        ``Vp.interrupt`` on the loop's VP: the thread is kicked out of MSHV_RUN_VP if
        it is in it, so a guest that makes no exits stops too. From another thread it
        returns once the loop took the request.
        """
        self.vp.interrupt()

    # -- the slow path (called by the engine) ---------------------------------------------
    def _slow(self, slot: int, raw: bytes) -> bool:
        """Serve one exit in Python for handler ``slot``; False leaves it unhandled."""
        handler = self._handlers[slot]
        intercept = decode(raw)
        self.vp._last_exit = intercept  # the exit the handler completes
        if isinstance(intercept, IoPortIntercept) and intercept.string:
            return handler.string_io(self.vp, intercept)
        if isinstance(intercept, IoPortIntercept) and isinstance(handler, IoHandler):
            return self._python_io(handler, intercept)
        if not isinstance(intercept, MemoryIntercept):
            return False
        if isinstance(handler, MmioBytes):
            read, write = handler.read, handler.write
        elif isinstance(handler, MmioHandler):
            read, write = _mmio_calls(handler.fn)
        else:
            return False
        try:
            emulate_mmio(self.vp, intercept, read=read, write=write)
        except (UnsupportedInstruction, _Declined):
            return False
        return True

    def _python_io(self, handler: IoHandler, intercept: IoPortIntercept) -> bool:
        written = intercept.value if intercept.is_write else None
        value = handler.fn(intercept.port, intercept.size, written)
        if value is UNHANDLED:
            return False
        values = {"rip": intercept.next_rip}
        if not intercept.is_write:
            values["rax"] = intercept.completion_rax(int(value or 0))  # the callback's value, by size
        self.vp.complete_registers(values)
        return True


class _Declined(Exception):
    """An MMIO callback returned UNHANDLED inside emulate_mmio (nothing was changed)."""


def _mmio_calls(fn: MmioFn) -> tuple[Any, Any]:
    def read(gpa: int, size: int) -> int:
        value = fn(gpa, size, None)
        if value is UNHANDLED:
            raise _Declined
        return int(value or 0) & ((1 << (8 * size)) - 1)

    def write(gpa: int, size: int, value: int) -> None:
        if fn(gpa, size, value) is UNHANDLED:
            raise _Declined

    return read, write
