"""mshv/testing.py: the helpers give the same partition a VMM library gives."""

from __future__ import annotations

import inspect

from mshv import HaltIntercept, IoPortIntercept, Mshv, PartitionFlag
from mshv.testing import assemble, partition_with_one_vp


def test_lapic_defaults_agree() -> None:
    """create_partition and partition_with_one_vp both default to the hypervisor's LAPIC on, as
    rust-vmm's Mshv::create_vm, QEMU's and Cloud Hypervisor's partitions have it."""
    helper = inspect.signature(partition_with_one_vp).parameters["lapic"].default
    device = inspect.signature(Mshv.create_partition).parameters["lapic"].default
    assert helper is device is True


def test_the_helper_partition_has_a_lapic_unless_asked(backend_ready: None) -> None:
    code = assemble("mov $7, %al; out %al, $0x10; hlt")
    with partition_with_one_vp(code) as (pt, vp, _mem):
        assert pt.flags & PartitionFlag.LAPIC
        assert vp.get_lapic().apic_id == 0  # the LAPIC's state exists
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and out.value == 7
    with partition_with_one_vp(code, lapic=False) as (pt, vp, _mem):
        assert not pt.flags & PartitionFlag.LAPIC
        vp.complete_io(vp.run())  # type: ignore[arg-type]
        assert isinstance(vp.run(), HaltIntercept)  # HLT reaches the VMM only without a LAPIC
