"""mshv/hvcall.py: MSHV_ROOT_HVCALL passthrough, its size checks and the kernel's allow-lists."""

from __future__ import annotations

import errno

import pytest

from mshv import Mshv, MshvError, Partition
from mshv._abi import lib
from mshv.hvcall import PASSTHROUGH_HVCALLS, hvcall_name


def test_the_allow_lists_are_public_and_by_fd_kind() -> None:
    assert set(PASSTHROUGH_HVCALLS) == {"device", "partition", "vp"}
    assert lib.HVCALL_GET_VP_REGISTERS in PASSTHROUGH_HVCALLS["partition"]
    assert lib.HVCALL_SET_PARTITION_PROPERTY in PASSTHROUGH_HVCALLS["partition"]
    assert lib.HVCALL_SET_PARTITION_PROPERTY not in PASSTHROUGH_HVCALLS["vp"]  # asynchronous: pt fd only
    assert PASSTHROUGH_HVCALLS["device"] == {
        lib.HVCALL_GET_PARTITION_PROPERTY,
        lib.HVCALL_GET_PARTITION_PROPERTY_EX,
    }
    assert lib.HVCALL_READ_GPA not in PASSTHROUGH_HVCALLS["partition"]
    assert hvcall_name(lib.HVCALL_READ_GPA) == "HVCALL_READ_GPA"


def test_a_code_off_the_allow_list_is_named(partition: Partition) -> None:
    with pytest.raises(MshvError) as info:
        partition.hvcall(lib.HVCALL_READ_GPA, bytes(16))
    text = str(info.value)
    assert info.value.errno == errno.EINVAL
    assert "HVCALL_READ_GPA" in text and "not on the partition fd's allow-list" in text, text
    assert "mshv.hvcall.PASSTHROUGH_HVCALLS" in text and "HVCALL_GET_VP_REGISTERS" in text


def test_a_refusal_on_the_list_is_not_blamed_on_the_list(hv: Mshv, partition: Partition) -> None:
    with pytest.raises(MshvError) as info:  # on the list; the hypervisor refuses the property
        partition.get_property(0x7FFF_FFFF)
    assert "allow-list" not in str(info.value) and info.value.hv_status is not None
