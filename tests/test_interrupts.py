"""mshv/interrupts.py: irqfd + MSI routes, assert_interrupt and ioeventfd doorbells, seen by real guests.

The interrupt guest runs in 32-bit protected mode set up from Python (flat GDT,
no paging) on a partition with a LAPIC. It loads an IDT whose vector 0x40 gate
leads to ``good`` and every other gate to ``bad``, software-enables its LAPIC,
reports "ready" on port 0x10 and waits in STI; HLT. The handler EOIs and
reports the vector on port 0x11; it never returns (the host KVM these tests run on cannot
execute IRET outside real mode; ``mshv.limits`` probes that), so the test stops running the VP there.
"""

from __future__ import annotations

import errno

import pytest

from mshv import GuestMemory, IoPortIntercept, MemoryIntercept, Mshv, MshvError, Partition, Vp
from mshv.interrupts import EventFd, InterruptType, MsiRoute
from mshv.testing import CODE_GPA, assemble, protected_mode_registers

VECTOR = 0x40
GSI = 5

LAPIC_GUEST = r"""
    lidt idt_desc
    movl $0x1ff, 0xfee000f0     # SVR: APIC software-enabled, spurious vector 0xff
    mov $1, %al
    out %al, $0x10              # ready
    sti
    hlt
1:  jmp 1b
good:
    movl $0, 0xfee000b0         # EOI
    mov $0x40, %al
    out %al, $0x11
    cli
    hlt
bad:
    mov $0xee, %al
    out %al, $0x12
    cli
    hlt
.balign 8
idt:
.rept 0x40
    .word bad, 0x08, 0x8e00, 0
.endr
    .word good, 0x08, 0x8e00, 0
.rept 256 - 0x41
    .word bad, 0x08, 0x8e00, 0
.endr
idt_desc:
    .word 256 * 8 - 1
    .long idt
"""

DOORBELL_GUEST = """
    movl $0xabcd, 0xd0000000    # ioeventfd, any value: no exit
    movl $0x1234, 0xd0000010    # ioeventfd, datamatch 0x1234: no exit
    movl $0x5678, 0xd0000010    # no match: a memory intercept
    mov $1, %al
    out %al, $0x10              # the VMM closes the first doorbell here
    movl $0xabcd, 0xd0000000    # now an ordinary memory intercept
    hlt
"""


def _lapic_partition(hv: Mshv, mem: GuestMemory) -> tuple[Partition, Vp]:
    pt = hv.create_partition(lapic=True)
    mem.write(CODE_GPA, assemble(LAPIC_GUEST, mode="protected"))
    pt.map_memory(mem, 0)
    vp = pt.create_vp(0)
    vp.set_registers(protected_mode_registers(mem, CODE_GPA))  # type: ignore[arg-type]
    ready = vp.run()
    assert isinstance(ready, IoPortIntercept) and (ready.port, ready.value) == (0x10, 1)
    vp.complete_io(ready)
    return pt, vp


def _handler_report(vp: Vp) -> tuple[int, int]:
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept)
    return exit_.port, exit_.value


def test_irqfd_with_msi_route_runs_the_guest_handler(hv: Mshv) -> None:
    with GuestMemory(0x10000) as mem, EventFd() as ev:
        pt, vp = _lapic_partition(hv, mem)
        with pt:
            pt.set_msi_routing({GSI: MsiRoute(vector=VECTOR, apic_id=0)})
            with pytest.raises(ValueError):  # refused before the kernel: the table stays
                pt.set_msi_routing({GSI: MsiRoute(vector=VECTOR), 4096: MsiRoute(vector=1)})
            irqfd = pt.irqfd(ev, GSI)
            assert not irqfd.closed and irqfd.gsi == GSI
            ev.signal()
            assert _handler_report(vp) == (0x11, VECTOR)
            assert ev.read() == 0  # the irqfd consumed the signal
            irqfd.close()
            assert irqfd.closed
            irqfd.close()  # idempotent


def test_assert_interrupt_runs_the_guest_handler(hv: Mshv) -> None:
    with GuestMemory(0x10000) as mem:
        pt, vp = _lapic_partition(hv, mem)
        with pt:
            with pytest.raises(ValueError):
                pt.assert_interrupt(0x100)
            pt.assert_interrupt(VECTOR, 0, delivery=InterruptType.FIXED)
            assert _handler_report(vp) == (0x11, VECTOR)
            assert vp.get_lapic().spurious == 0x1FF


def test_ioeventfd_doorbells_consume_matching_writes(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem, EventFd() as any_ev, EventFd() as dm_ev:
        mem.write(CODE_GPA, assemble(DOORBELL_GUEST, mode="protected"))
        partition.map_memory(mem, 0)
        vp = partition.create_vp(0)
        vp.set_registers(protected_mode_registers(mem, CODE_GPA))  # type: ignore[arg-type]
        doorbell = partition.ioeventfd(any_ev, 0xD000_0000, size=4)
        matched = partition.ioeventfd(dm_ev, 0xD000_0010, size=4, datamatch=0x1234)
        assert "datamatch=0x1234" in repr(matched)

        miss = vp.run()
        assert isinstance(miss, MemoryIntercept) and miss.is_write and miss.gpa == 0xD000_0010
        assert (any_ev.read(), dm_ev.read()) == (1, 1)
        vp.skip(miss)

        ready = vp.run()
        assert isinstance(ready, IoPortIntercept) and ready.port == 0x10
        vp.complete_io(ready)
        doorbell.close()

        again = vp.run()
        assert isinstance(again, MemoryIntercept) and again.gpa == 0xD000_0000
        assert any_ev.read() == 0
        with pytest.raises(MshvError) as info:  # the same binding twice
            partition.ioeventfd(dm_ev, 0xD000_0010, size=4, datamatch=0x1234)
        assert info.value.errno == errno.EEXIST
        partition.close()
        assert matched.closed  # the kernel dropped it with the partition fd
        matched.close()


def test_msi_route_encodes_address_and_data_as_the_kernel_decodes_them() -> None:
    # as mshv_irq.c's mshv_copy_girq_info decodes an MSI: vector data[7:0], delivery
    # data[10:8], level data bit 15, APIC id address_lo[19:12], logical address_lo bit 2
    # (literals kept to prove the layout)
    route = MsiRoute(0x41, apic_id=3, level=True, logical=True, delivery=InterruptType.LOWESTPRIORITY)
    assert (route.address_lo, route.data) == (0xFEE03004, 0x8141)
    assert MsiRoute.decode(route.address_lo, route.data) == route
    assert (MsiRoute(0x30).address_lo, MsiRoute(0x30).data) == (0xFEE00000, 0x30)


def test_eventfd_counts_and_closes() -> None:
    ev = EventFd(initval=2)
    ev.signal(3)
    assert ev.read() == 5 and ev.read() == 0
    ev.close()
    ev.close()
    assert ev.closed and "closed=True" in repr(ev)
    with pytest.raises(ValueError, match="closed"):
        ev.signal()
    with pytest.raises(ValueError):
        EventFd(initval=-1)


def test_bad_interrupt_input_raises_before_the_kernel(partition: Partition) -> None:
    with EventFd() as ev, EventFd() as other:
        with pytest.raises(TypeError):
            partition.irqfd("3", GSI)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            partition.irqfd(ev, -1)
        with pytest.raises(ValueError):
            MsiRoute(vector=256)
        with pytest.raises(ValueError):
            MsiRoute(vector=1, apic_id=256)
        with pytest.raises(TypeError):
            partition.set_msi_routing({1: "route"})  # type: ignore[dict-item]
        with pytest.raises(ValueError):
            partition.ioeventfd(ev, 0xD000_0000, size=3)
        with pytest.raises(ValueError):
            partition.ioeventfd(ev, 0xD000_0000, size=1, datamatch=0x100)
        closed = EventFd()
        closed.close()
        with pytest.raises(ValueError, match="closed"):
            partition.irqfd(closed, GSI)

        first = partition.irqfd(ev, GSI)
        with pytest.raises(MshvError) as busy:  # this eventfd is already bound (§3.5 step d)
            partition.irqfd(ev, GSI + 1)
        assert busy.value.errno == errno.EBUSY
        partition.set_msi_routing({GSI + 1: MsiRoute(vector=0x41)})  # edge-triggered
        with pytest.raises(MshvError) as edge:  # resample needs a level-triggered route
            partition.irqfd(other, GSI + 1, resample=ev)
        assert edge.value.errno == errno.EINVAL
        with pytest.raises(MshvError) as no_lapic:  # nothing to deliver to
            partition.assert_interrupt(VECTOR)
        assert no_lapic.value.errno == errno.EINVAL and no_lapic.value.hv_status is not None
        first.close()  # the failures above left the first binding in place
        partition.close()
        with pytest.raises(ValueError, match="closed"):
            partition.irqfd(ev, GSI)
        with pytest.raises(ValueError, match="closed"):
            partition.assert_interrupt(VECTOR)


def test_docstring_examples_run() -> None:
    import doctest

    import mshv.interrupts

    result = doctest.testmod(mshv.interrupts)
    assert result.attempted >= 1 and result.failed == 0
