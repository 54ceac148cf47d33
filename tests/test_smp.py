"""An application processor started by INIT/SIPI (issue 12: SMP AP start).

On a LAPIC partition the hypervisor handles INIT and STARTUP IPIs itself: an AP's
RUN_VP waits until its SIPI arrives, then the AP runs from vector << 12 in real
mode, and RUN_VP returns its first intercept. KVM_RUN returns EAGAIN at the moment
the SIPI is taken (kvm_arch_vcpu_ioctl_run, kvm_apic_accept_events); the emulator
used to pass that EAGAIN out of RUN_VP.
"""

from __future__ import annotations

import threading

from mshv import GuestMemory, IoPortIntercept, Mshv
from mshv.testing import assemble, entry_gpa, start_vp

BSP = """
    movl $0x000c4500, 0xfee00300    # INIT to all excluding self
    movl $0x000c4608, 0xfee00300    # STARTUP, vector 8: 0800:0000
    mov $0x42, %al
    out %al, $0x80
1:  hlt
    jmp 1b
"""

AP = """
    mov $0x99, %al
    out %al, $0x81
1:  cli
    hlt
    jmp 1b
"""


def test_ap_started_by_init_sipi_runs_from_the_vector(backend_ready: None) -> None:
    """VP 1's RUN_VP, entered before VP 0 sends INIT and SIPI (vector 8), returns the AP's
    first intercept: its OUT at 0800:0000 in real mode, not an error."""
    with Mshv() as hv, GuestMemory(0x40000) as mem:
        pt = hv.create_partition(lapic=True)
        try:
            pt.map_memory(mem, 0)
            mem.write(0x8000, assemble(AP, mode="real", base=0))
            bsp = start_vp(pt, mem, assemble(BSP, mode="protected", base=entry_gpa("protected")),
                           mode="protected")  # fmt: skip
            ap = pt.create_vp(1)
            results: list[object] = []

            def run_ap() -> None:
                try:
                    results.append(ap.run(timeout=30))
                except Exception as exc:  # the failure is the test's result
                    results.append(exc)

            thread = threading.Thread(target=run_ap)
            thread.start()
            out = bsp.run(timeout=30)
            assert isinstance(out, IoPortIntercept) and (out.port, out.value) == (0x80, 0x42)
            thread.join(60)
            assert not thread.is_alive()
            first = results[0]
            assert isinstance(first, IoPortIntercept), first
            assert (first.port, first.value) == (0x81, 0x99)
            assert first.header.mode == "real"
            assert first.header.cs.selector == 0x800 and first.header.cs.base == 0x8000
            assert first.header.rip == 2  # after the 2-byte mov
        finally:
            pt.close()
