"""mshv/device.py: the device handle, backend choice and create_partition options."""

from __future__ import annotations

import errno

import pytest

from mshv import Mshv, MshvError, PartitionFlag


def test_backend_is_reported(hv: Mshv) -> None:
    assert hv.backend.name in ("kernel", "emulator")
    assert "closed=False" in repr(hv)


def test_create_partition_v1_and_v2(hv: Mshv) -> None:
    with hv.create_partition(lapic=True) as pt:
        assert pt.initialized and pt.flags & PartitionFlag.LAPIC
    with hv.create_partition(lapic=False, disabled_cpu_features=[0, 0], disabled_xsave=0) as pt:
        assert pt.flags & PartitionFlag.CPU_AND_XSAVE_FEATURES


def test_create_partition_checks_its_arguments(hv: Mshv) -> None:
    with pytest.raises(ValueError):
        hv.create_partition(isolation=1)
    with pytest.raises(ValueError):
        hv.create_partition(disabled_cpu_features=[0])


def test_initialize_twice_is_fine(hv: Mshv) -> None:
    with hv.create_partition(initialize=False) as pt:
        pt.initialize()
        pt.initialize()
        assert pt.initialized


def test_closed_device_raises_value_error() -> None:
    hv = Mshv()
    hv.close()
    with pytest.raises(ValueError):
        hv.create_partition()


def test_partitions_outlive_the_device_fd(hv: Mshv) -> None:
    pt = hv.create_partition()
    hv.close()
    vp = pt.create_vp(0)
    assert vp.index == 0
    pt.close()


def test_kernel_errors_carry_errno_and_op(hv: Mshv) -> None:
    from mshv import _kernel
    from mshv._abi import ffi, lib

    with pytest.raises(MshvError) as info:
        _kernel.ioctl(hv.fd, lib.MSHV_CREATE_PARTITION, ffi.NULL)
    assert info.value.errno == errno.EFAULT and info.value.op == "MSHV_CREATE_PARTITION"
