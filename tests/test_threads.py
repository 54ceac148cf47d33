"""4 VPs of one partition run in 4 threads, each its own guest loop to completion.

cffi releases the GIL around RUN_VP, so the VPs run concurrently; each thread
completes its own VP's intercepts (hypercalls on that VP's fd) and must see
only its own guest's values.
"""

from __future__ import annotations

import threading

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, Partition
from mshv.testing import CODE_GPA, assemble, real_mode_registers

VPS = 4
LOOPS = 200

# BX holds the VP's number (set from Python); each OUT reports BX * 0x1000 + counter.
GUEST = f"""
    xor %cx, %cx
1:  mov %bx, %ax
    shl $12, %ax
    add %cx, %ax
    out %ax, $0x10
    inc %cx
    cmp ${LOOPS}, %cx
    jne 1b
    hlt
"""


def test_four_vps_in_four_threads(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem:
        mem.write(CODE_GPA, assemble(GUEST))
        partition.map_memory(mem, 0)
        vps = [partition.create_vp(i) for i in range(VPS)]
        for i, vp in enumerate(vps):
            vp.set_registers({**real_mode_registers(rsp=0x8000 - 0x800 * i), "rbx": i})  # type: ignore[arg-type]
        results: dict[int, list[int]] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(VPS)

        def drive(index: int) -> None:
            vp, seen = vps[index], []
            try:
                start.wait()
                while isinstance(exit_ := vp.run(), IoPortIntercept):
                    seen.append(exit_.value)
                    vp.complete_io(exit_)
                assert isinstance(exit_, HaltIntercept) and exit_.header.vp_index == index
                results[index] = seen
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(VPS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        assert results == {i: [(i << 12) + n for n in range(LOOPS)] for i in range(VPS)}
        assert [vp.exits for vp in vps] == [LOOPS + 1] * VPS
        partition.close()
