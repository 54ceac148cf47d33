"""mshv/partition.py: partition properties and the fd conventions every fd owner shares."""

from __future__ import annotations

from mshv import EventFd, HvPartitionProperty, Mshv, MshvError, Partition


def test_every_property_code_can_be_asked_for(partition: Partition) -> None:
    """HvPartitionProperty holds property codes only (not the HV_PARTITION_PROPERTY_ARG_* masks):
    each one reaches the hypervisor, which answers a value or a typed refusal."""
    assert not [m.name for m in HvPartitionProperty if m.name.startswith("ARG_")]
    answered = 0
    for code in HvPartitionProperty:
        try:
            partition.get_property(code)
            answered += 1
        except MshvError as exc:
            assert exc.hv_status is not None, (code, exc)
    assert answered > 0


def test_fd_owners_offer_fd_and_fileno(hv: Mshv, partition: Partition) -> None:
    vp = partition.create_vp(0)
    for owner in (hv, partition, vp):
        assert owner.fileno() == owner.fd >= 0
    with EventFd() as ev:
        assert ev.fd == ev.fileno() >= 0
