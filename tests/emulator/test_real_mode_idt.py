"""A real-mode exception past IDTR.limit: a CPU shuts down (#GP, #DF, triple fault; Intel SDM
vol. 2, INT n "Real-Address Mode Exceptions": #GP "if the interrupt vector number is outside
the IDT limits"). A KVM that delivers real-mode events itself (``__emulate_int_real``, when the
host cannot run real mode natively) does not check the limit and jumps through the IVT entry
anyway; the guest then runs whatever that entry points to, e.g. zeroed memory, one emulated
instruction at a time, for many seconds before it stops. That is the host's doing, and
mshv.limits says so: the probe ``real_mode_idt_limit`` (``mshv info``) and
``UnrecoverableException.host_limit``.
"""

from __future__ import annotations

import struct

import pytest

from mshv import GuestMemory, IoPortIntercept, Mshv, UnrecoverableException
from mshv.testing import CODE_GPA, assemble, start_vp

REACHED, FELL_THROUGH = 0x11, 0x12
HANDLER = CODE_GPA + 0x40  # the code's .org 0x40
UD_ENTRY = 6 * 4  # IVT entry of #UD: offset, segment


def real_guest(ivt_limit: int, handler: str) -> bytes:
    """Real mode: load an IVT at 0 with ``ivt_limit``, UD2; ``handler`` at HANDLER."""
    return assemble(
        f"""
    lidt ivt_desc
    ud2
    out %al, ${FELL_THROUGH:#x}
    hlt
ivt_desc: .word {ivt_limit:#x}
    .long 0
.org 0x40
    {handler}
""",
        mode="real",
    )


def run_real(code: bytes, ud_handler: int | None) -> object:
    """Run ``code`` in real mode with the IVT's #UD entry pointing at ``ud_handler``."""
    with GuestMemory(0x40000) as memory, Mshv() as hv, hv.create_partition(lapic=False) as pt:
        pt.map_memory(memory, 0)
        if ud_handler is not None:
            memory.write(UD_ENTRY, struct.pack("<HH", ud_handler, 0))
        vp = start_vp(pt, memory, code, mode="real")
        return vp.run()


def test_the_probe_agrees_with_an_independent_guest() -> None:
    """IDTR.limit 0x17 (vectors 0-5): UD2 reaches the #UD entry's handler only on a host that
    ignores the limit; where the limit holds, the VP stops (shutdown)."""
    from mshv.limits import probe_limits, real_mode_idt_limit

    limit = real_mode_idt_limit()
    assert limit.works is not None, limit.detail
    exit_ = run_real(real_guest(0x17, f"out %al, ${REACHED:#x}\nhlt"), HANDLER)
    if limit.works:
        assert isinstance(exit_, UnrecoverableException), exit_
    else:
        assert isinstance(exit_, IoPortIntercept) and exit_.port == REACHED, exit_
        assert "past IDTR.limit 0x17" in limit.detail
    assert limit in probe_limits()  # `mshv info` lists it


def test_a_stop_after_a_fault_past_the_ivt_names_the_host() -> None:
    """A real-mode guest with an empty IVT (limit 0) takes #UD. Where the host checks the limit,
    that is a triple fault at the UD2, the guest's own (no host limit named). Where it does not,
    the guest jumps through the #UD entry; here it points at an instruction this KVM cannot
    emulate in real mode, so the run stops at once, and host_limit names the unchecked limit."""
    from mshv.limits import real_mode_idt_limit

    limit = real_mode_idt_limit()
    assert limit.works is not None, limit.detail
    code = real_guest(0, "popcnt %ax, %bx\nhlt")
    exit_ = run_real(code, HANDLER)
    if limit.works:
        assert isinstance(exit_, UnrecoverableException), exit_
        assert exit_.rip == CODE_GPA + code.index(b"\x0f\x0b")
        assert exit_.host_limit is None, exit_.host_limit
        return
    if not isinstance(exit_, UnrecoverableException):
        pytest.xfail(f"this host's KVM ran the #UD handler's POPCNT in real mode ({exit_!r}): nothing stops")
    assert exit_.rip == HANDLER
    assert exit_.host_limit is not None, exit_
    assert "IDTR.limit 0x0" in exit_.host_limit and "real-mode IDT limit" in exit_.host_limit
