"""Interrupts: an eventfd wired to the guest's LAPIC through an irqfd and an MSI route.

A 32-bit protected-mode guest (segments set from Python) loads an IDT, enables
its local APIC and waits in HLT. The VMM routes GSI 5 to vector 0x40 on APIC 0,
binds an eventfd to GSI 5 and signals it: the guest's handler runs and reports
the vector on port 0x11. Then the same vector is injected directly with
HvCallAssertVirtualInterrupt (Partition.assert_interrupt).

Run: python examples/interrupts.py
"""

from __future__ import annotations

from mshv import EventFd, GuestMemory, IoPortIntercept, Mshv, MsiRoute, Vp
from mshv.testing import CODE_GPA, assemble, protected_mode_registers

GUEST = r"""
    lidt idt_desc
    movl $0x1ff, 0xfee000f0     # LAPIC SVR: software-enabled
wait:
    mov $1, %al
    out %al, $0x10              # "ready"
    sti
    hlt
1:  jmp 1b
handler:                        # vector 0x40; no IRET here: report, then wait again
    movl $0, 0xfee000b0         # EOI
    mov $0x40, %al
    out %al, $0x11
    mov $0x9000, %esp           # drop the interrupt frame
    jmp wait
.balign 8
idt:
.rept 0x40
    .quad 0
.endr
    .word handler, 0x08, 0x8e00, 0   # vector 0x40: 32-bit interrupt gate
idt_desc:
    .word 0x41 * 8 - 1
    .long idt
"""


def expect_port(vp: Vp, port: int) -> int:
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept) and exit_.port == port, exit_
    vp.complete_io(exit_)
    return exit_.value


def main() -> None:
    with Mshv() as hv, GuestMemory(0x10000) as memory, EventFd() as doorbell:
        with hv.create_partition(lapic=True) as partition:
            memory.write(CODE_GPA, assemble(GUEST, mode="protected"))
            partition.map_memory(memory, 0)
            vp = partition.create_vp(0)
            vp.set_registers(protected_mode_registers(memory, CODE_GPA, rsp=0x9000))  # type: ignore[arg-type]
            partition.set_msi_routing({5: MsiRoute(vector=0x40, apic_id=0)})
            irqfd = partition.irqfd(doorbell, gsi=5)

            expect_port(vp, 0x10)
            doorbell.signal()
            print(f"irqfd + MSI route: the guest handled vector {expect_port(vp, 0x11):#x}")

            expect_port(vp, 0x10)
            partition.assert_interrupt(0x40, apic_id=0)
            print(f"assert_interrupt: the guest handled vector {expect_port(vp, 0x11):#x}")
            irqfd.close()


if __name__ == "__main__":
    main()
