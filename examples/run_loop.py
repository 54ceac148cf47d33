"""Run loop: a long-mode guest prints through a port and counts on another, with no Python
per exit (the Cython loop serves both ports natively), and reports back through MMIO bytes.

RunLoop returns to Python only for exits no handler takes; here that is the final HLT.

Run: python examples/run_loop.py
"""

from __future__ import annotations

from mshv import RunLoop
from mshv.testing import PAGED_CODE_GPA, assemble, partition_with_one_vp

CONSOLE, TICK, STATUS = 0xE9, 0x80, 0x100000  # STATUS: 8 bytes of MMIO the loop serves

GUEST = f"""
    lea msg(%rip), %rsi
1:  lodsb                       # print the message, one OUT per byte
    test %al, %al
    jz 2f
    out %al, ${CONSOLE:#x}
    jmp 1b
2:  mov $1000, %ecx             # 1000 ticks
3:  out %al, ${TICK:#x}
    dec %ecx
    jnz 3b
    mov ${STATUS:#x}, %rbx
    movl $0x600d, (%rbx)        # MMIO write: status
    hlt
msg: .asciz "hello through RunLoop\\n"
"""


def main() -> None:
    code = assemble(GUEST, mode="long", base=PAGED_CODE_GPA)
    with partition_with_one_vp(code, mode="long", lapic=False) as (_partition, vp, _memory):
        loop = RunLoop(vp)  # the Cython loop when built, else its pure-Python twin
        console = loop.port_buffer(CONSOLE)
        ticks = loop.port_counter(TICK)
        status = bytearray(8)
        loop.mmio_bytes(STATUS, status)
        result = loop.run()
        print(console.output.decode().rstrip())
        print(f"stopped on {result.reason} after {result.exits} exits; ticks counted: {ticks.count}")
        print(f"status register: {int.from_bytes(status[:4], 'little'):#x}")


if __name__ == "__main__":
    main()
