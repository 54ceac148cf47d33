"""The /dev/mshv handle: create partitions, read host (root partition) properties.

Example:
    >>> from mshv import Mshv
    >>> with Mshv() as hv:
    ...     with hv.create_partition() as pt:
    ...         pt.initialized
    True
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from mshv import _cstruct, _kernel, backend
from mshv._abi import lib
from mshv._owner import FdOwner
from mshv.partition import Partition, _get_property

__all__ = ["Mshv", "PartitionFlag"]


class PartitionFlag(enum.IntFlag):
    """Creation flags of MSHV_CREATE_PARTITION (1 << MSHV_PT_BIT_*)."""

    LAPIC = 1 << lib.MSHV_PT_BIT_LAPIC
    X2APIC = 1 << lib.MSHV_PT_BIT_X2APIC
    GPA_SUPER_PAGES = 1 << lib.MSHV_PT_BIT_GPA_SUPER_PAGES
    CPU_AND_XSAVE_FEATURES = 1 << lib.MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES
    NESTED_VIRTUALIZATION = 1 << lib.MSHV_PT_BIT_NESTED_VIRTUALIZATION
    SMT_ENABLED_GUEST = 1 << lib.MSHV_PT_BIT_SMT_ENABLED_GUEST


class Mshv(FdOwner):
    """An open /dev/mshv (the kernel's, or the emulator's: see :mod:`mshv.backend`).

    Partitions do not depend on this fd: they keep working after ``close()``.
    """

    _what = "Mshv"

    def __init__(self) -> None:
        self.backend = backend.select()
        self._own(_kernel.open_path(self.backend.device_path, lib.O_RDWR | lib.O_CLOEXEC))

    def __enter__(self) -> Mshv:
        return self

    def __repr__(self) -> str:
        return f"<Mshv backend={self.backend.name} closed={self.closed}>"

    def create_partition(
        self,
        *,
        lapic: bool = True,
        x2apic: bool = False,
        gpa_super_pages: bool = False,
        nested_virtualization: bool = False,
        smt_enabled_guest: bool = False,
        isolation: int = 0,
        disabled_cpu_features: Sequence[int] | None = None,
        disabled_xsave: int | None = None,
        initialize: bool = True,
    ) -> Partition:
        """Create a partition (MSHV_CREATE_PARTITION) and, by default, initialize it.

        Args:
            lapic: the hypervisor emulates each VP's local APIC (HLT and
                interrupts are handled inside it). On by default, as in rust-vmm's
                ``Mshv::create_vm`` and the partitions QEMU and Cloud Hypervisor create
                (``mshv.testing.partition_with_one_vp`` agrees). Without it, HLT
                comes back from ``Vp.run()`` as a HaltIntercept.
            disabled_cpu_features, disabled_xsave: the v2 struct's processor
                feature banks (2 x 64 bits) and xsave mask to disable; giving
                either selects the v2 layout.
            initialize: call :meth:`Partition.initialize`; pass False to set
                early properties first.
        """
        flags = PartitionFlag(0)
        for wanted, flag in (
            (lapic, PartitionFlag.LAPIC),
            (x2apic, PartitionFlag.X2APIC),
            (gpa_super_pages, PartitionFlag.GPA_SUPER_PAGES),
            (nested_virtualization, PartitionFlag.NESTED_VIRTUALIZATION),
            (smt_enabled_guest, PartitionFlag.SMT_ENABLED_GUEST),
        ):
            if wanted:
                flags |= flag
        if isolation != lib.MSHV_PT_ISOLATION_NONE:
            raise ValueError(f"isolation {isolation} is not supported (only MSHV_PT_ISOLATION_NONE)")
        arg: Any
        if disabled_cpu_features is None and disabled_xsave is None:
            arg = _cstruct.new("struct mshv_create_partition", pt_flags=int(flags), pt_isolation=isolation)
        else:
            banks = list(disabled_cpu_features or [0] * lib.MSHV_NUM_CPU_FEATURES_BANKS)
            if len(banks) != lib.MSHV_NUM_CPU_FEATURES_BANKS:
                raise ValueError(f"disabled_cpu_features needs {lib.MSHV_NUM_CPU_FEATURES_BANKS} banks")
            flags |= PartitionFlag.CPU_AND_XSAVE_FEATURES
            arg = _cstruct.new(
                "struct mshv_create_partition_v2",
                pt_flags=int(flags),
                pt_isolation=isolation,
                pt_num_cpu_fbanks=lib.MSHV_NUM_CPU_FEATURES_BANKS,
                pt_cpu_fbanks=banks,
                pt_disabled_xsave=disabled_xsave or 0,
            )
        fd = _kernel.ioctl(self.fd, lib.MSHV_CREATE_PARTITION, arg, details=f"flags={int(flags):#x}")
        partition = Partition(fd, int(flags))
        if initialize:
            try:
                partition.initialize()
            except BaseException:
                partition.close()
                raise
        return partition

    def get_property(self, code: int) -> int:
        """Read a property of the root partition itself (MSHV_ROOT_HVCALL on /dev/mshv, ≥6.19)."""
        return _get_property(self.fd, code)
