"""Dirty-page tracking: which guest pages did the guest write since the last look?

The guest fills three pages, reports, then writes one more. The VMM reads (and
clears) the dirty pages after each step, the way live migration copies only
what changed.

Run: python examples/dirty_pages.py
"""

from __future__ import annotations

from mshv import HaltIntercept, IoPortIntercept
from mshv.testing import assemble, partition_with_one_vp

GUEST = """
    movb $1, 0x3000
    movw $2, 0x5000
    movl $3, 0x9000
    out %al, $0x10              # step 1 done
    movb $4, 0x5000
    hlt
"""


def main() -> None:
    with partition_with_one_vp(assemble(GUEST), lapic=False) as (partition, vp, _memory):
        partition.enable_dirty_tracking()
        partition.dirty_pages(0, 16)  # start from a clean slate
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept)
        vp.complete_io(exit_)
        print("step 1 dirty:", [hex(gpa) for gpa in partition.dirty_pages(0, 16)])
        assert isinstance(vp.run(), HaltIntercept)
        print("step 2 dirty:", [hex(gpa) for gpa in partition.dirty_pages(0, 16)])


if __name__ == "__main__":
    main()
