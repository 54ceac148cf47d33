"""Handlers registered on a :class:`mshv.runloop.RunLoop`: what serves an exit, and its counters.

Each handler is made by a RunLoop method (``port_buffer``, ``port_counter``,
``mmio_bytes``, ``on_io``, ``on_mmio``) and reads its state from the loop's
engine, the Cython one or its pure-Python twin. A handler refers to that engine,
not to the loop that holds the handler, so the two form no reference cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from mshv._pyloop import PyEngine
    from mshv._runloop import NativeEngine
    from mshv.intercepts import IoPortIntercept
    from mshv.vp import Vp

    Engine: TypeAlias = NativeEngine | PyEngine

__all__ = [
    "MAX_PORT", "UNHANDLED", "Handler", "IoFn", "IoHandler", "MmioBytes", "MmioFn", "MmioHandler",
    "PortBuffer", "PortCounter", "bytes_read", "bytes_write", "check_int",
]  # fmt: skip

IoFn = Callable[[int, int, "int | None"], Any]  # (port, size, value written or None) -> value read
MmioFn = Callable[[int, int, "int | None"], Any]  # (gpa, size, value written or None) -> value read
UNHANDLED: Any = object()  # a callback returns this to leave the exit to the caller of run()
MAX_PORT = 0xFFFF


class Handler:
    """A handler registered on a RunLoop; pass it to :meth:`RunLoop.remove`.

    Attributes:
        name: what it serves, e.g. ``port_counter(0x80)``.
        ports: (first, last) port it serves, or None.
        gpas: (gpa, size) it serves, or None.
    """

    kind = "python"

    def __init__(
        self,
        engine: Engine,
        slot: int,
        name: str,
        *,
        ports: tuple[int, int] | None = None,
        gpas: tuple[int, int] | None = None,
    ) -> None:
        self._engine = engine
        self._slot = slot
        self._final: int | None = None
        self.name = name
        self.ports = ports
        self.gpas = gpas

    @property
    def exits(self) -> int:
        """Exits this handler completed."""
        if self._final is not None:
            return self._final
        return int(self._engine.hits(self._slot))

    def overlaps(self, ports: tuple[int, int] | None, gpas: tuple[int, int] | None) -> bool:
        """True if this handler serves any of ``ports`` (first, last) or ``gpas`` (gpa, size)."""
        if ports is not None and self.ports is not None:
            return ports[0] <= self.ports[1] and self.ports[0] <= ports[1]
        if gpas is not None and self.gpas is not None:
            return gpas[0] < self.gpas[0] + self.gpas[1] and self.gpas[0] < gpas[0] + gpas[1]
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} exits={self.exits}>"

    def string_io(self, vp: Vp, intercept: IoPortIntercept) -> bool:
        """Complete an INS/OUTS on this handler's port over guest memory (the loops' Python
        fallback, :func:`mshv.x86.stringio.complete_string_io`); False leaves it unhandled."""
        try:
            vp.complete_string_io(intercept, read_port=self._port_read, write_port=self._port_write)
        except _Declined:
            return False
        return True

    def _port_read(self, port: int, size: int) -> int:
        raise _Declined

    def _port_write(self, port: int, size: int, value: int) -> None:
        raise _Declined


class _Declined(Exception):
    """A port callback returned UNHANDLED during an INS/OUTS (no register was changed)."""


class PortBuffer(Handler):
    """Ports backed by bytes: OUT appends to :attr:`output`, IN reads the input queue (0s when empty)."""

    kind = "buffer"

    def __init__(self, engine: Engine, slot: int, first_port: int, last_port: int) -> None:
        name = f"port_buffer({first_port:#x}-{last_port:#x})"
        super().__init__(engine, slot, name, ports=(first_port, last_port))
        self.first_port = first_port
        self.last_port = last_port
        self._output = bytearray()

    @property
    def output(self) -> bytearray:
        """Bytes the guest wrote (each OUT adds its access size, little-endian)."""
        return self._output

    def feed(self, data: bytes) -> None:
        """Queue ``data`` for the guest's IN."""
        self._engine.feed(self._slot, bytes(data))

    @property
    def pending(self) -> int:
        """Bytes queued and not yet read by the guest."""
        return int(self._engine.pending(self._slot))

    def _port_read(self, port: int, size: int) -> int:
        return int.from_bytes(self._engine.take(self._slot, size).ljust(size, b"\0"), "little")

    def _port_write(self, port: int, size: int, value: int) -> None:
        self._output.extend(value.to_bytes(size, "little"))


class PortCounter(Handler):
    """A port that counts accesses: OUT is discarded, IN reads 0."""

    kind = "counter"

    def __init__(self, engine: Engine, slot: int, port: int) -> None:
        super().__init__(engine, slot, f"port_counter({port:#x})", ports=(port, port))
        self.port = port

    @property
    def count(self) -> int:
        """Accesses so far (an INS/OUTS counts once, whatever its RCX)."""
        return self.exits

    def _port_read(self, port: int, size: int) -> int:
        return 0

    def _port_write(self, port: int, size: int, value: int) -> None:
        pass


class MmioBytes(Handler):
    """GPAs backed by a bytearray; bytes past its end read as 0 and drop writes."""

    kind = "bytes"

    def __init__(self, engine: Engine, slot: int, gpa: int, data: bytearray) -> None:
        name = f"mmio_bytes({gpa:#x}+{len(data):#x})"
        super().__init__(engine, slot, name, gpas=(gpa, len(data)))
        self.gpa = gpa
        self.data = data

    def read(self, gpa: int, size: int) -> int:
        """The little-endian value of ``size`` bytes at ``gpa`` (0s past the end)."""
        return bytes_read(self.data, gpa - self.gpa, size)

    def write(self, gpa: int, size: int, value: int) -> None:
        """Store ``size`` bytes of ``value`` at ``gpa``, little-endian (dropped past the end)."""
        bytes_write(self.data, gpa - self.gpa, size, value)


class IoHandler(Handler):
    """A Python callback ``fn(port, size, value)`` for a port; see :meth:`RunLoop.on_io`."""

    def __init__(self, engine: Engine, slot: int, port: int, fn: IoFn) -> None:
        name = f"on_io({port:#x}, {getattr(fn, '__name__', 'fn')})"
        super().__init__(engine, slot, name, ports=(port, port))
        self.port = port
        self.fn = fn

    def _port_read(self, port: int, size: int) -> int:
        value = self.fn(port, size, None)
        if value is UNHANDLED:
            raise _Declined
        return int(value or 0)

    def _port_write(self, port: int, size: int, value: int) -> None:
        if self.fn(port, size, value) is UNHANDLED:
            raise _Declined


class MmioHandler(Handler):
    """A Python callback ``fn(gpa, size, value)`` for a GPA range; see :meth:`RunLoop.on_mmio`."""

    def __init__(self, engine: Engine, slot: int, gpa: int, size: int, fn: MmioFn) -> None:
        name = f"on_mmio({gpa:#x}+{size:#x}, {getattr(fn, '__name__', 'fn')})"
        super().__init__(engine, slot, name, gpas=(gpa, size))
        self.gpa = gpa
        self.size = size
        self.fn = fn


def bytes_read(data: bytearray, offset: int, size: int) -> int:
    """The little-endian value of ``size`` bytes of ``data`` at ``offset`` (0s past the end)."""
    return int.from_bytes(bytes(data[offset : offset + size]).ljust(size, b"\0"), "little")


def bytes_write(data: bytearray, offset: int, size: int, value: int) -> None:
    """Store ``size`` bytes of ``value`` into ``data`` at ``offset`` (dropped past the end)."""
    chunk = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")[: max(0, len(data) - offset)]
    data[offset : offset + len(chunk)] = chunk


def check_int(value: object, what: str, low: int, high: int) -> int:
    """Return ``value`` if it is an int in [low, high]; TypeError / ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in [{low:#x}, {high:#x}], got {value:#x}")
    return value
