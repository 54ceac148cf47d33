"""``mshv demo``: a 64-bit guest talks to a port-IO console and an MMIO device.

It creates a partition on the available backend, maps memory, builds page
tables from Python, runs a long-mode guest and serves its exits: characters on
port 0xE9 are printed, an MMIO "doubler" device at GPA 0x100000 answers reads
with twice the last value written, and a tight OUT loop measures exits/s.
"""

from __future__ import annotations

import time

from mshv.device import Mshv
from mshv.intercepts import HaltIntercept, IoPortIntercept, MemoryIntercept
from mshv.memory import GuestMemory
from mshv.testing import assemble, long_mode_registers
from mshv.x86.mmio import emulate_mmio

__all__ = ["run_demo"]

ENTRY = 0x10000
MMIO_BASE = 0x100000
CONSOLE_PORT = 0xE9
LOOP_PORT = 0x80
RESULT_PORT = 0xEA

GUEST = f"""
    lea msg(%rip), %rsi
1:  lodsb
    test %al, %al
    jz 2f
    out %al, ${CONSOLE_PORT:#x}
    jmp 1b
2:  mov ${MMIO_BASE:#x}, %rbx
    mov $1, %ecx
3:  mov %ecx, (%rbx)            # MMIO write: the value
    mov 4(%rbx), %eax           # MMIO read: the device doubles it
    out %eax, ${RESULT_PORT:#x}
    inc %ecx
    cmp $6, %ecx
    jne 3b
    mov ${{loops}}, %ecx
4:  out %al, ${LOOP_PORT:#x}
    dec %ecx
    jnz 4b
    hlt
msg: .asciz "hello from a long-mode guest\\n"
"""


def run_demo(loops: int = 20000, echo: bool = True) -> dict[str, float]:
    """Run the demo guest; returns what it measured (exits, seconds, exits_per_second)."""
    code = assemble(GUEST.replace("{loops}", str(loops)), mode="long", base=ENTRY)
    device_value = 0
    results: list[int] = []

    def mmio_read(gpa: int, size: int) -> int:
        return device_value * 2 if gpa == MMIO_BASE + 4 else 0

    def mmio_write(gpa: int, size: int, value: int) -> None:
        nonlocal device_value
        if gpa == MMIO_BASE:
            device_value = value

    console = []
    with Mshv() as hv, GuestMemory(0x40000) as mem:
        if echo:
            print(f"backend: {hv.backend.name} ({hv.backend.reason})")
        with hv.create_partition(lapic=False) as pt:
            mem.write(ENTRY, code)
            pt.map_memory(mem, 0)
            vp = pt.create_vp(0)
            vp.set_registers(long_mode_registers(mem, ENTRY))  # type: ignore[arg-type]
            loop_exits = 0
            start = loop_start = time.perf_counter()
            while True:
                exit_ = vp.run()
                if isinstance(exit_, HaltIntercept):
                    break
                if isinstance(exit_, MemoryIntercept):
                    emulate_mmio(vp, exit_, read=mmio_read, write=mmio_write)
                elif isinstance(exit_, IoPortIntercept) and exit_.port == CONSOLE_PORT:
                    console.append(chr(exit_.value))
                    vp.complete_io(exit_)
                elif isinstance(exit_, IoPortIntercept) and exit_.port == RESULT_PORT:
                    results.append(exit_.value)
                    vp.complete_io(exit_)
                elif isinstance(exit_, IoPortIntercept) and exit_.port == LOOP_PORT:
                    if loop_exits == 0:
                        loop_start = time.perf_counter()
                    loop_exits += 1
                    vp.complete_io(exit_)
                else:
                    raise RuntimeError(f"unexpected exit: {exit_}")
            end = time.perf_counter()
            total_exits = vp.exits
    loop_seconds = end - loop_start
    stats = {
        "exits": float(total_exits),
        "seconds": end - start,
        "loop_exits": float(loop_exits),
        "exits_per_second": loop_exits / loop_seconds if loop_seconds > 0 else 0.0,
    }
    if echo:
        print(f"console: {''.join(console).rstrip()}")
        print(f"mmio doubler: wrote 1..5, read back {results}")
        print(
            f"{total_exits} exits in {stats['seconds']:.3f} s; OUT loop: {loop_exits} exits, "
            f"{stats['exits_per_second']:.0f} exits/s (pure Python run + complete)"
        )
    if results != [2, 4, 6, 8, 10] or "hello from a long-mode guest" not in "".join(console):
        raise RuntimeError(f"demo guest misbehaved: console={''.join(console)!r} results={results}")
    return stats
