"""RUN_VP never fails with ENOSPC (issue 12 item 6).

The driver's RUN_VP has no ENOSPC. The emulator's KVM_RUN could return it on a KVM
with shadow paging (no TDP, e.g. kvm_pvm): the VM's shadow-page cap
(n_max_mmu_pages, 64 for a small guest) filled up with roots the vCPUs pin (the
current one and up to KVM_MMU_NUM_PREV_ROOTS cached ones each), which KVM never
zaps. Here 32 VPs each switch among 4 page-table trees of their own: 128 roots.
"""

from __future__ import annotations

import threading

from mshv import GuestMemory, IoPortIntercept, Mshv
from mshv.testing import assemble, entry_gpa, long_mode_registers

VPS = 32
TREES = 4  # page-table trees per VP (PML4, PDPT, PD: 3 pages each)
RUNS = 40

SWITCH = "".join(f"lea {k * 0x3000:#x}(%rbx), %rax\nmov %rax, %cr3\nout %al, $0x10\n" for k in range(TREES))


def test_32_vps_switching_cr3_never_get_enospc(backend_ready: None) -> None:
    """32 long-mode VPs on their own threads, each loading CR3 with 4 trees of its own in
    turn (an OUT after each): every RUN_VP returns the OUT, none fails (on a KVM with
    shadow paging, the VPs past the cap's worth of roots failed with ENOSPC)."""
    code = assemble("1:\n" + SWITCH + "jmp 1b", mode="long", base=entry_gpa("long"))
    failures: list[tuple[int, int, BaseException]] = []
    done = [0] * VPS
    with Mshv() as hv, GuestMemory(0x400000) as mem:
        pt = hv.create_partition(lapic=False)
        try:
            pt.map_memory(mem, 0)
            mem.write(entry_gpa("long"), code)
            vps = []
            for i in range(VPS):
                base = 0x100000 + i * TREES * 0x3000
                for k in range(1, TREES):  # the other trees: identity maps of their own
                    long_mode_registers(mem, entry_gpa("long"), page_tables=base + k * 0x3000)
                regs = long_mode_registers(mem, entry_gpa("long"), page_tables=base)
                regs["rbx"] = base
                vp = pt.create_vp(i)
                vp.set_registers(regs)  # type: ignore[arg-type]
                vps.append(vp)

            def runner(i: int) -> None:
                for k in range(RUNS):
                    try:
                        out = vps[i].run(timeout=60)
                        assert isinstance(out, IoPortIntercept) and out.port == 0x10, out
                        vps[i].complete_io(out)
                        done[i] += 1
                    except Exception as exc:  # collected: the test's result
                        failures.append((i, k, exc))

            threads = [threading.Thread(target=runner, args=(i,)) for i in range(VPS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            pt.close()
    assert not failures, f"{len(failures)} of {VPS * RUNS} runs failed, first: {failures[0]}"
    assert done == [RUNS] * VPS
