"""A small PC-like machine around a partition: boot an image, serve port-IO devices,
stop on a debug exit, a halt, an error or a timeout. ``mshv run`` is its command line.

Example:
    >>> import io
    >>> from mshv.boot import flat_image
    >>> from mshv.machine import Machine
    >>> from mshv.testing import assemble
    >>> code = assemble("mov $0x3f8, %dx; mov $'k', %al; out %al, %dx; mov $3, %al; out %al, $0xf4",
    ...                 mode="protected", base=0x100000)
    >>> serial = io.BytesIO()
    >>> report = Machine(flat_image(code, load_gpa=0x100000, entry=0x100000), serial=serial).run(timeout=10)
    >>> (report.reason, report.exit_code, serial.getvalue())
    ('exit', 7, b'k')
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from mshv.boot import BootImage
from mshv.device import Mshv, PartitionFlag
from mshv.devices import DebugExit, GuestExit, Uart16550
from mshv.intercepts import HaltIntercept, Intercept, IoPortIntercept, MemoryIntercept, UnrecoverableException
from mshv.memory import GuestMemory
from mshv.partition import Partition
from mshv.snapshot import Snapshot
from mshv.testing import long_mode_registers, protected_mode_registers, real_mode_registers
from mshv.vp import Vp
from mshv.x86.mmio import emulate_mmio

__all__ = ["DEFAULT_MEMORY", "Machine", "PortDevice", "RunReport"]

DEFAULT_MEMORY = 128 << 20
FLAT_STACK = 0x8000  # a flat image's initial RSP (multiboot and Linux set their own)
TIMEOUT_EXIT_CODE = 124  # what timeout(1) returns


class PortDevice(Protocol):
    """A device on port IO: its ``ports`` and how it answers IN and OUT."""

    ports: range

    def read(self, port: int, size: int) -> int: ...

    def write(self, port: int, size: int, value: int) -> None: ...


@dataclass
class RunReport:
    """How a :meth:`Machine.run` ended.

    Attributes:
        reason: "exit" (the guest wrote the debug-exit port), "halt" (HLT without a
            LAPIC), "timeout" or "error".
        exit_code: the process exit code ``mshv run`` returns: the guest's for "exit",
            0 for "halt", 124 for "timeout", 1 for "error".
        message: what happened, in words.
        exits: intercepts per kind ("io", "mmio", "halt", ...), all VPs.
        latency_ns: RUN_VP round-trip times (guest time included), collected with ``trace``.
    """

    reason: str
    exit_code: int
    message: str
    exits: Counter[str] = field(default_factory=Counter)
    latency_ns: list[int] = field(default_factory=list)


class _Stop(Exception):
    def __init__(self, reason: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.reason, self.exit_code, self.message = reason, exit_code, message


class Machine:
    """Boot ``image`` in a partition with ``memory_size`` bytes at GPA 0 and ``vps`` VPs.

    Devices: a 16550 UART at COM1 writing to ``serial`` and isa-debug-exit at port 0xF4.
    Ports no device claims read as all ones and ignore writes; so does unmapped MMIO.

    Args:
        lapic: the hypervisor emulates each VP's LAPIC (needed for interrupts and for
            more than one VP); without it HLT ends the run.
        trace: record every exit's kind and RUN_VP round-trip time.
    """

    def __init__(
        self,
        image: BootImage | Snapshot,
        *,
        memory_size: int = DEFAULT_MEMORY,
        vps: int = 1,
        lapic: bool | None = None,
        serial: BinaryIO | None = None,
        trace: bool = False,
        snapshot_at: tuple[int, Path] | None = None,
    ) -> None:
        if isinstance(image, Snapshot):  # resume: the snapshot decides memory, VPs and LAPIC
            if len(image.layout) != 1 or image.layout[0].gpa != 0:
                raise ValueError(f"not a snapshot of `mshv run` (one region at GPA 0): {image.layout}")
            memory_size, vps = image.layout[0].size, len(image.vps)
            lapic = bool(image.features.flags & PartitionFlag.LAPIC)
        else:
            image.check_fits(memory_size)
        if vps < 1:
            raise ValueError(f"a machine needs at least one VP, got {vps}")
        self.image = image
        self.memory_size = memory_size
        self.vps = vps
        self.lapic = vps > 1 if lapic is None else lapic
        if vps > 1 and not self.lapic:
            raise ValueError("more than one VP needs the LAPIC (application processors start by SIPI)")
        if snapshot_at is not None and vps > 1:
            raise ValueError("--snapshot-at needs a single VP (the others would be running)")
        self.snapshot_at = snapshot_at
        self.snapshots_taken = 0
        self.trace = trace
        self.uart = Uart16550(serial if serial is not None else sys.stdout.buffer)
        self.devices: list[PortDevice] = [self.uart, DebugExit()]
        self._ports = {port: dev for dev in self.devices for port in dev.ports}
        self._lock = threading.Lock()
        self._done = threading.Event()  # set with the report: any VP's end ends the run
        self._report: RunReport | None = None
        self._exits: Counter[str] = Counter()
        self._latency: list[int] = []
        self._partition: Partition | None = None

    # -- setup ----------------------------------------------------------------------------
    def _boot(self, partition: Partition, memory: GuestMemory, vps: list[Vp]) -> None:
        """Load the image and set the boot VP up, or put the snapshot back."""
        image = self.image
        if isinstance(image, Snapshot):
            partition.restore(image, full=True)
            return
        for p in image.placements:
            memory.write(p.gpa, p.data)
        if image.mode == "real":
            regs = real_mode_registers(rip=image.entry, rsp=FLAT_STACK)
        elif image.mode == "protected":
            regs = protected_mode_registers(memory, image.entry, rsp=FLAT_STACK)
        else:
            regs = long_mode_registers(memory, image.entry, rsp=FLAT_STACK)
        regs.update(image.registers)
        vps[0].set_registers(regs)  # type: ignore[arg-type]

    # -- running --------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> RunReport:
        """Boot and run until the guest exits, halts, fails, or ``timeout`` seconds pass."""
        self._report = None
        self._done.clear()
        with Mshv() as hv, GuestMemory(self.memory_size) as memory:
            with hv.create_partition(lapic=self.lapic) as partition:
                partition.map_memory(memory, 0)
                vps = [partition.create_vp(i) for i in range(self.vps)]
                self._boot(partition, memory, vps)
                self._partition = partition
                threads = [threading.Thread(target=self._vp_thread, args=(vp,), daemon=True) for vp in vps]
                for t in threads:
                    t.start()
                self._done.wait(timeout)
                if self._report is None:
                    self._finish(_Stop("timeout", TIMEOUT_EXIT_CODE, f"no exit after {timeout} s"))
                for vp in vps:
                    vp.interrupt()
                for t in threads:
                    t.join()
                self._partition = None
        report = self._report
        assert report is not None
        report.exits, report.latency_ns = self._exits, self._latency
        return report

    def _finish(self, stop: _Stop) -> None:
        with self._lock:
            if self._report is None:
                self._report = RunReport(stop.reason, stop.exit_code, stop.message)
        self._done.set()

    def _vp_thread(self, vp: Vp) -> None:
        try:
            while self._report is None:
                start = time.perf_counter_ns()
                try:
                    intercept = vp.run(interruptible=True)
                except InterruptedError:
                    continue  # a kick: look at _report again
                if self.trace:
                    self._latency.append(time.perf_counter_ns() - start)
                self._serve(vp, intercept)
        except GuestExit as exc:
            self._finish(_Stop("exit", exc.code, str(exc)))
        except _Stop as stop:
            self._finish(stop)
        except Exception as exc:  # a failing VP ends the machine with the reason
            self._finish(_Stop("error", 1, f"VP {vp.index}: {type(exc).__name__}: {exc}"))

    def _serve(self, vp: Vp, intercept: Intercept) -> None:
        if isinstance(intercept, IoPortIntercept):
            self._count("io")
            self._serve_io(vp, intercept)
        elif isinstance(intercept, MemoryIntercept):
            self._count("mmio")
            emulate_mmio(vp, intercept, read=self._unclaimed_read, write=self._unclaimed_write)
        elif isinstance(intercept, HaltIntercept):
            self._count("halt")
            raise _Stop("halt", 0, f"VP {vp.index} halted")
        elif isinstance(intercept, UnrecoverableException) and intercept.host_limit:
            self._count("unrecoverable_exception")
            raise _Stop(
                "error", 1, f"VP {vp.index} stopped at RIP {intercept.rip:#x}: {intercept.host_limit}"
            )
        else:
            self._count(type(intercept).__name__)
            raise _Stop("error", 1, f"VP {vp.index} stopped: {intercept!r}")

    def _serve_io(self, vp: Vp, intercept: IoPortIntercept) -> None:
        device = self._ports.get(intercept.port)
        read = device.read if device is not None else self._unclaimed_read
        write = device.write if device is not None else self._unclaimed_write
        if intercept.string:
            vp.complete_string_io(intercept, read_port=read, write_port=write)
        elif intercept.is_write:
            write(intercept.port, intercept.size, intercept.value)
            vp.complete_io(intercept)
            if self.snapshot_at is not None and intercept.port == self.snapshot_at[0]:
                self._take_snapshot(self.snapshot_at[1])
        else:
            vp.complete_io(intercept, read(intercept.port, intercept.size))

    def _take_snapshot(self, path: Path) -> None:
        """The guest wrote the snapshot port: capture the machine past that OUT, save it."""
        assert self._partition is not None
        self._partition.snapshot().save(path)
        self.snapshots_taken += 1

    def _count(self, kind: str) -> None:
        if self.trace:
            self._exits[kind] += 1

    @staticmethod
    def _unclaimed_read(address: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    @staticmethod
    def _unclaimed_write(address: int, size: int, value: int) -> None:
        return None
