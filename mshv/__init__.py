"""python-mshv: script Microsoft Hypervisor guest partitions through Linux's /dev/mshv.

On a machine without /dev/mshv, the package's emulator runs the same ABI on
/dev/kvm (see :mod:`mshv.backend`).
"""

from __future__ import annotations

from mshv.backend import Backend, BackendUnavailable
from mshv.errors import HvStatus, MshvError, hv_result_to_errno, hv_status_name

__all__ = [
    "Backend",
    "BackendUnavailable",
    "HvStatus",
    "MshvError",
    "hv_result_to_errno",
    "hv_status_name",
]
__version__ = "0.1.0.dev0"
