"""MshvError, HvStatus and the kernel's status-to-errno mapping (hv_result_to_errno)."""

from __future__ import annotations

import errno
import pickle

import pytest

from mshv import HvStatus, MshvError, hv_result_to_errno, hv_status_name


@pytest.mark.parametrize(
    ("status_name", "expected"),
    [
        ("SUCCESS", 0),
        ("INVALID_HYPERCALL_CODE", errno.EINVAL),
        ("INVALID_PARAMETER", errno.EINVAL),
        ("ACCESS_DENIED", errno.EIO),
        ("INVALID_PARTITION_STATE", errno.EIO),
        ("INSUFFICIENT_MEMORY", errno.ENOMEM),
        ("INVALID_VP_INDEX", errno.EINVAL),
        ("UNKNOWN_PROPERTY", errno.EIO),
        ("INVALID_REGISTER_VALUE", errno.EINVAL),
        ("INSUFFICIENT_ROOT_MEMORY", errno.ENOMEM),
        ("CALL_PENDING", errno.EIO),
    ],
)
def test_status_to_errno_follows_hv_status_infos(status_name: str, expected: int) -> None:
    assert hv_result_to_errno(HvStatus[status_name]) == expected


def test_status_numbers_come_from_the_compiler() -> None:
    # Spot checks against include/hyperv/hvgdk_mini.h and hv_status_infos (hv_common.c).
    assert HvStatus.INVALID_PARAMETER == 5
    assert HvStatus.INSUFFICIENT_MEMORY == 0xB
    assert hv_status_name(5) == "HV_STATUS_INVALID_PARAMETER"


def test_unknown_status_is_representable_and_maps_to_eio() -> None:
    status = HvStatus(0x7FFE)
    assert int(status) == 0x7FFE and status.name == "UNKNOWN_0x7ffe"
    assert hv_result_to_errno(0x7FFE) == errno.EIO


def test_only_low_16_bits_of_a_result_are_the_status() -> None:
    assert hv_result_to_errno((12 << 32) | int(HvStatus.INVALID_PARAMETER)) == errno.EINVAL


def test_no_hypercall_page_result_is_eopnotsupp() -> None:
    assert hv_result_to_errno((1 << 64) - 1) == errno.EOPNOTSUPP


def test_mshv_error_is_an_oserror_with_op_and_status() -> None:
    err = MshvError(errno.EINVAL, "MSHV_ROOT_HVCALL", HvStatus.INVALID_PARAMETER, "code=0x50")
    assert isinstance(err, OSError)
    assert err.errno == errno.EINVAL and err.op == "MSHV_ROOT_HVCALL"
    assert err.hv_status is HvStatus.INVALID_PARAMETER
    assert "HV_STATUS_INVALID_PARAMETER" in str(err) and "code=0x50" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert (again.errno, again.op, again.hv_status) == (err.errno, err.op, err.hv_status)


def test_mshv_error_without_status() -> None:
    err = MshvError(errno.ENOENT, "MSHV_SET_GUEST_MEMORY")
    assert err.hv_status is None and "No such file or directory" in str(err)
