"""Run one instruction twice in the same guest: its memory operand in RAM, where the CPU does
the work, and on MMIO, where mshv.x86.mmio.emulate_mmio does it. The two outcomes (registers,
RFLAGS, the data bytes) must be equal: the CPU is the oracle.

The data window (0x1000 bytes) is at RAM_DATA in RAM and at MMIO_DATA on MMIO, where a
byte-array device answers the emulator's accesses. Code names the window through base
registers: ``mem(reg)`` gives the operand for the mode. In real mode the window is reached
through DS/ES bases (the register holds the offset in it); in protected and long mode the
register holds the address, so it differs between the runs by MMIO_DATA - RAM_DATA.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import TracebackType

from hypothesis import strategies as st

from mshv import GuestMemory, HaltIntercept, MemoryIntercept, Mshv, Partition, Segment, Vp
from mshv.testing import assemble, entry_gpa, start_vp
from mshv.x86.cpu import ARITHMETIC_FLAGS
from mshv.x86.mmio import emulate_mmio

RAM_DATA = 0x30000  # in the 0x40000 bytes of RAM; 64 KiB-aligned: a real-mode segment base
MMIO_DATA = 0xE0000  # no RAM there; below 1 MiB, so real mode reaches it too
WINDOW = 0x1000
GPRS = ("rax", "rcx", "rdx", "rbx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
INITIAL_RFLAGS = 0x2  # bit 1 is always set
RFLAGS_VISIBLE = ARITHMETIC_FLAGS | (1 << 10)  # the status flags and DF
#: RFLAGS inputs: bit 1 and any of the status flags (never TF or IF)
INPUT_FLAGS = st.integers(0, ARITHMETIC_FLAGS).map(lambda f: INITIAL_RFLAGS | (f & ARITHMETIC_FLAGS))


@functools.lru_cache(maxsize=1024)
def _code(asm: str, mode: str) -> bytes:
    return assemble(f"{asm}\nhlt", mode=mode, base=entry_gpa(mode))


class Device:
    """MMIO backed by bytes: reads and writes are logged as (kind, offset, size, value)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.log: list[tuple[str, int, int, int]] = []

    def read(self, gpa: int, size: int) -> int:
        offset = gpa - MMIO_DATA
        assert 0 <= offset and offset + size <= WINDOW, f"read outside the window at {gpa:#x}"
        value = int.from_bytes(self.data[offset : offset + size], "little")
        self.log.append(("read", offset, size, value))
        return value

    def write(self, gpa: int, size: int, value: int) -> None:
        offset = gpa - MMIO_DATA
        assert 0 <= offset and offset + size <= WINDOW, f"write outside the window at {gpa:#x}"
        self.data[offset : offset + size] = value.to_bytes(size, "little")
        self.log.append(("write", offset, size, value))


@dataclass
class Outcome:
    """What one run left: GPRs (pointer registers as offsets into the window), RFLAGS, the data."""

    registers: dict[str, int]
    rflags: int
    data: bytes
    intercepts: int = 0
    log: list[tuple[str, int, int, int]] = field(default_factory=list)


class Oracle:
    """A partition with 256 KiB of RAM at GPA 0 and one VP in ``mode``, reused for every run."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.hv = Mshv()
        self.partition: Partition = self.hv.create_partition(lapic=False)
        self.memory = GuestMemory(0x40000)
        self.partition.map_memory(self.memory, 0)
        self.vp: Vp = start_vp(self.partition, self.memory, _code("nop", mode), mode=mode)
        self.start = self.vp.get_registers(["cs", "ds", "es", "ss", "rsp"])

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.partition.close()
        self.memory.close()
        self.hv.close()

    def mem(self, reg: str, displacement: int = 0) -> str:
        """The AT&T memory operand ``displacement(%reg)`` at the mode's address size."""
        names = {"real": {"rbx": "bx", "rsi": "si", "rdi": "di", "rbp": "bp"}, "protected": {}, "long": {}}
        name = names[self.mode].get(reg, reg)
        if self.mode == "protected":
            name = "e" + reg[1:]
        return f"{displacement}(%{name})"

    def start_at(
        self,
        asm: str,
        registers: dict[str, int],
        base: int = MMIO_DATA,
        pointers: tuple[str, ...] = ("rbx",),
        rflags: int = INITIAL_RFLAGS,
    ) -> dict[str, object]:
        """Put ``asm`` (then HLT) at the entry and set the VP to run it with the window at
        ``base``: every GPR zero but ``registers``, ``pointers`` offset by the base. Returns
        the registers set."""
        self.memory.write(entry_gpa(self.mode), _code(asm, self.mode))
        add = 0 if self.mode == "real" else base
        gprs = [name for name in GPRS if self.mode == "long" or not name[1:].isdigit()]
        values: dict[str, object] = dict.fromkeys(gprs, 0)
        values.update(registers)
        values.update({name: registers.get(name, 0) + add for name in pointers})
        values.update(self.start, rip=entry_gpa(self.mode), rflags=rflags)
        if self.mode == "real":
            segment = Segment(base=base, limit=0xFFFF, selector=base >> 4, attributes=0x93)
            values.update(ds=segment, es=segment)
        self.vp.set_registers(values)  # type: ignore[arg-type]
        return values

    def run(
        self,
        asm: str,
        registers: dict[str, int],
        data: bytes,
        *,
        on_mmio: bool,
        pointers: tuple[str, ...] = ("rbx",),
        rflags: int = INITIAL_RFLAGS,
    ) -> Outcome:
        """Run ``asm`` (then HLT) with ``registers`` set and the window holding ``data``.

        ``pointers`` hold offsets into the window: the base (RAM_DATA or MMIO_DATA) is added
        before the run and taken off after, except in real mode where DS and ES point there.
        """
        base = MMIO_DATA if on_mmio else RAM_DATA
        self.memory.write(RAM_DATA, data.ljust(WINDOW, b"\0"))
        device = Device(data.ljust(WINDOW, b"\0"))
        add = 0 if self.mode == "real" else base
        values = self.start_at(asm, registers, base, pointers, rflags)
        intercepts = 0
        while not isinstance(exit_ := self.vp.run(), HaltIntercept):
            assert isinstance(exit_, MemoryIntercept), f"unexpected {exit_!r}"
            assert on_mmio, f"an MMIO exit in the RAM run: {exit_!r}"
            intercepts += 1
            emulate_mmio(self.vp, exit_, read=device.read, write=device.write)
        names = [name for name in values if name in GPRS]
        out = self.vp.get_registers([*names, "rflags"])
        gprs = {name: int(out[name]) for name in names}  # type: ignore[call-overload]
        for name in pointers:
            gprs[name] = (gprs[name] - add) & ((1 << 64) - 1)
        window = bytes(device.data) if on_mmio else self.memory.read(RAM_DATA, WINDOW)
        return Outcome(gprs, int(out["rflags"]), window, intercepts, device.log)  # type: ignore[call-overload]

    def compare(
        self,
        asm: str,
        registers: dict[str, int],
        data: bytes,
        *,
        pointers: tuple[str, ...] = ("rbx",),
        rflags: int = INITIAL_RFLAGS,
        flags_mask: int = RFLAGS_VISIBLE,
    ) -> tuple[Outcome, Outcome]:
        """Run ``asm`` on RAM then on MMIO and assert the same registers, flags and data."""
        cpu = self.run(asm, registers, data, on_mmio=False, pointers=pointers, rflags=rflags)
        emulated = self.run(asm, registers, data, on_mmio=True, pointers=pointers, rflags=rflags)
        context = f"{asm!r} in {self.mode} mode with {registers}, rflags {rflags:#x}"
        assert emulated.intercepts >= 1, f"{context}: never reached MMIO"
        assert emulated.registers == cpu.registers, f"{context}: registers"
        assert hex(emulated.rflags & flags_mask) == hex(cpu.rflags & flags_mask), f"{context}: RFLAGS"
        assert emulated.data == cpu.data, f"{context}: data"
        return cpu, emulated


_SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q"}
_LEGACY = {"rax": "a", "rcx": "c", "rdx": "d", "rbx": "b"}


def sizes(mode: str) -> tuple[int, ...]:
    """The operand sizes a mode has: 8 bytes only in long mode."""
    return (1, 2, 4, 8) if mode == "long" else (1, 2, 4)


def suffix(size: int) -> str:
    """The AT&T operand-size suffix for ``size`` bytes."""
    return _SUFFIX[size]


def register(name: str, size: int) -> str:
    """The AT&T name of the ``size``-byte part of 64-bit register ``name`` (rcx, 2 -> %cx)."""
    if name in _LEGACY:
        letter = _LEGACY[name]
        return "%" + {1: f"{letter}l", 2: f"{letter}x", 4: f"e{letter}x", 8: name}[size]
    if name[1:].isdigit():
        return "%" + {1: f"{name}b", 2: f"{name}w", 4: f"{name}d", 8: name}[size]
    return "%" + {1: f"{name[1:]}l", 2: name[1:], 4: f"e{name[1:]}", 8: name}[size]


def register_value(mode: str, value: int) -> int:
    """``value`` as a register input: 64 bits in long mode, else 32 (the upper half of a GPR
    is not architecturally defined outside 64-bit mode)."""
    return value & ((1 << 64) - 1 if mode == "long" else (1 << 32) - 1)
