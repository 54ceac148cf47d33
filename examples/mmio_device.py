"""MMIO device: a 64-bit guest talks to a tiny "adder" device at GPA 0x100000.

The guest writes two operands to the device registers and reads back their sum.
GPA 0x100000 has no memory, so each access stops the VP with a MemoryIntercept;
mshv.x86.mmio.emulate_mmio decodes the instruction and calls the device model.

Run: python examples/mmio_device.py
"""

from __future__ import annotations

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, MemoryIntercept, Mshv
from mshv.testing import assemble, long_mode_registers
from mshv.x86.mmio import emulate_mmio

ENTRY = 0x10000
DEVICE = 0x100000  # registers: +0 operand a, +4 operand b, +8 sum (read-only)

GUEST = f"""
    mov ${DEVICE:#x}, %rbx
    movl $40, (%rbx)            # a = 40
    movl $2, 4(%rbx)            # b = 2
    mov 8(%rbx), %eax           # sum
    out %eax, $0x10             # report it
    hlt
"""


class Adder:
    """The device model: two operand registers and their sum."""

    def __init__(self) -> None:
        self.regs = {0: 0, 4: 0}

    def read(self, gpa: int, size: int) -> int:
        return sum(self.regs.values()) if gpa - DEVICE == 8 else self.regs.get(gpa - DEVICE, 0)

    def write(self, gpa: int, size: int, value: int) -> None:
        print(f"  device write: register +{gpa - DEVICE} = {value}")
        self.regs[gpa - DEVICE] = value


def main() -> None:
    device = Adder()
    with Mshv() as hv, GuestMemory(0x40000) as memory:
        with hv.create_partition(lapic=False) as partition:
            memory.write(ENTRY, assemble(GUEST, mode="long", base=ENTRY))
            partition.map_memory(memory, 0)
            vp = partition.create_vp(0)
            vp.set_registers(long_mode_registers(memory, ENTRY))  # type: ignore[arg-type]
            while not isinstance(exit_ := vp.run(), HaltIntercept):
                if isinstance(exit_, MemoryIntercept):
                    emulate_mmio(vp, exit_, read=device.read, write=device.write)
                elif isinstance(exit_, IoPortIntercept):
                    print(f"guest read the sum: {exit_.value}")
                    vp.complete_io(exit_)
                else:
                    raise RuntimeError(f"unexpected exit {exit_}")


if __name__ == "__main__":
    main()
