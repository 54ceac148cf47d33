"""isa-debug-exit: a port the guest writes to end the run with an exit code, as QEMU's
``-device isa-debug-exit,iobase=0xf4,iosize=0x04`` does (code = value << 1 | 1)."""

from __future__ import annotations

__all__ = ["DebugExit", "GuestExit", "DEBUG_EXIT_PORT"]

DEBUG_EXIT_PORT = 0xF4


class GuestExit(Exception):
    """The guest asked to end the run; ``code`` is the process exit code it chose."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the guest wrote the debug-exit port: exit code {code}")
        self.code = code


class DebugExit:
    """Ports ``base`` .. ``base + size - 1``; a write raises :class:`GuestExit`."""

    def __init__(self, base: int = DEBUG_EXIT_PORT, size: int = 4) -> None:
        self.base = base
        self.ports = range(base, base + size)

    def __repr__(self) -> str:
        return f"<DebugExit ports={self.base:#x}-{self.ports[-1]:#x}>"

    def read(self, port: int, size: int) -> int:
        """Reads return 0."""
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        """End the run with exit code ``(value << 1) | 1`` (QEMU's rule, so code 0 is never made)."""
        raise GuestExit(((value << 1) | 1) & 0xFF)
