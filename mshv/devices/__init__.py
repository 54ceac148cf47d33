"""Port-IO device models for guests booted with ``mshv run`` (or any run loop).

A device answers ``read(port, size)`` and ``write(port, size, value)`` for the
ports in its ``ports`` range.

Example:
    >>> import io
    >>> from mshv.devices import Uart16550
    >>> out = io.BytesIO()
    >>> uart = Uart16550(out)
    >>> uart.write(0x3F8, 1, ord("A"))
    >>> (out.getvalue(), hex(uart.read(0x3FD, 1)))
    (b'A', '0x60')
"""

from __future__ import annotations

from mshv.devices.debug_exit import DebugExit, GuestExit
from mshv.devices.uart import Uart16550

__all__ = ["DebugExit", "GuestExit", "Uart16550"]
