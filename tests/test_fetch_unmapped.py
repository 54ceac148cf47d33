"""An instruction fetch from a GPA no region maps stops the VP with UNMAPPED_GPA (issue 12 item 7).

The hypervisor reports it as HVMSG_UNMAPPED_GPA with access type execute
(HV_INTERCEPT_ACCESS_EXECUTE) and the GPA fetched from, the VP stopped at the
instruction; every UNMAPPED_GPA goes to the VMM (mshv_vp_handle_intercept). The
emulator used to turn it into UNRECOVERABLE_EXCEPTION (KVM's instruction
emulator cannot fetch from MMIO and gives KVM_EXIT_INTERNAL_ERROR).
"""

from __future__ import annotations

import threading
import time

from mshv import HvMessageType, MemoryIntercept
from mshv.testing import assemble, entry_gpa, partition_with_one_vp


def _unmapped_fetch(out: object, gpa: int) -> MemoryIntercept:
    assert isinstance(out, MemoryIntercept), out
    assert out.message_type is HvMessageType.UNMAPPED_GPA, out
    assert out.is_execute and not out.is_write
    assert out.header.access_type == 2  # HV_INTERCEPT_ACCESS_EXECUTE
    assert out.gpa == gpa
    return out


def test_far_jump_to_unmapped_gpa_real_mode(backend_ready: None) -> None:
    """ljmp 0x3000:0x10 with 64 KiB of memory at GPA 0: the fetch at GPA 0x30010 is
    UNMAPPED_GPA/execute, the VP at 3000:0010 (the instruction it could not fetch)."""
    with partition_with_one_vp(assemble("ljmp $0x3000, $0x10"), lapic=False) as (_pt, vp, _mem):
        out = _unmapped_fetch(vp.run(), 0x30010)
        assert out.header.rip == 0x10 and out.header.cs.base == 0x30000
        assert out.header.instruction_length == 0
        # the VP stays there: running again reports the same fetch
        _unmapped_fetch(vp.run(), 0x30010)


def test_instruction_running_into_an_unmapped_page(backend_ready: None) -> None:
    """A 4-byte mov whose first two bytes are the last of the 64 KiB at GPA 0: the fetch of
    the rest is UNMAPPED_GPA/execute at GPA 0x10000, the VP at the instruction (0FFF:000E)."""
    with partition_with_one_vp(assemble("ljmp $0x0fff, $0x000e"), lapic=False) as (_pt, vp, mem):
        mem.write(0xFFFE, b"\x66\xb8")  # mov $imm32, %eax: 4 more bytes at 0x10000
        out = _unmapped_fetch(vp.run(), 0x10000)
        assert out.header.rip == 0xE and out.header.cs.base == 0xFFF0
        assert out.gva_valid and out.gva == 0x10000


def test_jump_to_unmapped_gpa_long_mode(backend_ready: None) -> None:
    """Long mode, identity paging, 256 KiB of memory: jmp *%rax to 0x100000 is an
    UNMAPPED_GPA/execute at GPA 0x100000 with RIP 0x100000 (GVA valid, the same)."""
    code = assemble("mov $0x100000, %rax\njmp *%rax", mode="long", base=entry_gpa("long"))
    with partition_with_one_vp(code, mode="long", lapic=False) as (_pt, vp, _mem):
        out = _unmapped_fetch(vp.run(), 0x100000)
        assert out.header.rip == 0x100000 and out.header.mode == "long"
        assert out.gva_valid and out.gva == 0x100000


def test_memory_unmapped_under_a_running_vp(backend_ready: None) -> None:
    """A VP spinning in guest memory on its own thread while the VMM unmaps that memory
    (as a teardown does): its RUN_VP returns UNMAPPED_GPA/execute at the spin loop's
    GPA, not UNRECOVERABLE_EXCEPTION."""
    with partition_with_one_vp(assemble("1: jmp 1b"), lapic=False) as (pt, vp, _mem):
        results: list[object] = []
        thread = threading.Thread(target=lambda: results.append(vp.run()))
        thread.start()
        time.sleep(0.2)  # the guest is spinning (no exits)
        assert thread.is_alive()
        for region in pt.regions:
            pt.unmap_memory(region)
        thread.join(30)
        assert not thread.is_alive()
        out = _unmapped_fetch(results[0], 0x1000)
        assert out.header.rip == 0x1000
