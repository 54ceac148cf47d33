"""A 16550A UART on port IO (COM1 at 0x3F8 by default): what the guest transmits goes
to a byte stream. Receive is always empty and no interrupt is raised: enough for a
console that polls LSR or just writes THR."""

from __future__ import annotations

from typing import BinaryIO

__all__ = ["Uart16550", "COM1"]

COM1 = 0x3F8

# register offsets from the base port
RBR_THR_DLL = 0  # receive buffer / transmit holding / divisor latch low (DLAB)
IER_DLM = 1  # interrupt enable / divisor latch high (DLAB)
IIR_FCR = 2  # interrupt identification (read) / FIFO control (write)
LCR = 3  # line control; bit 7 is DLAB
MCR = 4  # modem control; bit 4 is loopback
LSR = 5  # line status
MSR = 6  # modem status
SCR = 7  # scratch

LCR_DLAB = 0x80
IIR_NO_INTERRUPT = 0x01
IIR_FIFOS_ENABLED = 0xC0
FCR_ENABLE_FIFO = 0x01
LSR_THR_EMPTY = 0x20  # THRE: the guest may write THR
LSR_TRANSMITTER_EMPTY = 0x40  # TEMT
MSR_CTS_DSR_DCD = 0xB0  # the other end is there and ready


class Uart16550:
    """The registers of one 16550A at ``base`` (8 ports); transmitted bytes go to ``output``.

    Args:
        output: a binary stream (``sys.stdout.buffer``, ``io.BytesIO``...); flushed at
            each newline.
        base: the first port.
    """

    def __init__(self, output: BinaryIO, base: int = COM1) -> None:
        self.output = output
        self.base = base
        self.ports = range(base, base + 8)
        self.transmitted = 0
        self._regs = {IER_DLM: 0, LCR: 0, MCR: 0, SCR: 0, RBR_THR_DLL: 0}
        self._divisor = [0x01, 0x00]  # 115200 baud
        self._fifo = False

    def __repr__(self) -> str:
        return f"<Uart16550 base={self.base:#x} transmitted={self.transmitted}>"

    @property
    def _dlab(self) -> bool:
        return bool(self._regs[LCR] & LCR_DLAB)

    def read(self, port: int, size: int) -> int:
        """The guest's IN from ``port`` (byte registers: wider reads repeat nothing)."""
        offset = port - self.base
        if offset in (RBR_THR_DLL, IER_DLM) and self._dlab:
            return self._divisor[offset]
        if offset == RBR_THR_DLL:
            return 0  # nothing received
        if offset == IIR_FCR:
            return IIR_NO_INTERRUPT | (IIR_FIFOS_ENABLED if self._fifo else 0)
        if offset == LSR:
            return LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY
        if offset == MSR:
            return MSR_CTS_DSR_DCD
        return self._regs.get(offset, 0)

    def write(self, port: int, size: int, value: int) -> None:
        """The guest's OUT to ``port``: a THR write transmits the low byte."""
        offset, byte = port - self.base, value & 0xFF
        if offset in (RBR_THR_DLL, IER_DLM) and self._dlab:
            self._divisor[offset] = byte
        elif offset == RBR_THR_DLL:
            self.transmitted += 1
            self.output.write(bytes((byte,)))
            if byte == 0x0A:
                self.output.flush()
        elif offset == IIR_FCR:
            self._fifo = bool(byte & FCR_ENABLE_FIFO)
        elif offset in self._regs:
            self._regs[offset] = byte
