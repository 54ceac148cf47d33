"""Typed errors: MshvError carries errno, the failed operation and the HV status by name.

``HvStatus`` is built at import from the HV_STATUS_* constants the C compiler
resolved (ioctl_defs/hvdefs.py), so no status number is written in Python.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

from mshv._abi import lib
from mshv._enums import build_enum

__all__ = ["HvStatus", "MshvError", "hv_result_to_errno", "hv_status_name"]

HvStatus: Any = build_enum("HvStatus", lib, "HV_STATUS_")
HvStatus.__doc__ = "Hyper-V hypercall status codes (HV_STATUS_*), open to unknown values."

# The kernel's hv_status_infos table (drivers/hv/hv_common.c, Linux 7.2), by name.
# A status listed twice there maps by its first entry; unknown statuses give EIO.
_STATUS_ERRNO: dict[str, int] = {
    "SUCCESS": 0,
    "INVALID_HYPERCALL_CODE": _errno.EINVAL,
    "INVALID_HYPERCALL_INPUT": _errno.EINVAL,
    "INVALID_ALIGNMENT": _errno.EIO,
    "INVALID_PARAMETER": _errno.EINVAL,
    "ACCESS_DENIED": _errno.EIO,
    "INVALID_PARTITION_STATE": _errno.EIO,
    "OPERATION_DENIED": _errno.EIO,
    "UNKNOWN_PROPERTY": _errno.EIO,
    "PROPERTY_VALUE_OUT_OF_RANGE": _errno.EIO,
    "INSUFFICIENT_MEMORY": _errno.ENOMEM,
    "INVALID_PARTITION_ID": _errno.EINVAL,
    "INVALID_VP_INDEX": _errno.EINVAL,
    "NOT_FOUND": _errno.EIO,
    "INVALID_PORT_ID": _errno.EINVAL,
    "INVALID_CONNECTION_ID": _errno.EINVAL,
    "INSUFFICIENT_BUFFERS": _errno.EIO,
    "NOT_ACKNOWLEDGED": _errno.EIO,
    "INVALID_VP_STATE": _errno.EIO,
    "NO_RESOURCES": _errno.EIO,
    "PROCESSOR_FEATURE_NOT_SUPPORTED": _errno.EIO,
    "INVALID_LP_INDEX": _errno.EINVAL,
    "INVALID_REGISTER_VALUE": _errno.EINVAL,
    "OPERATION_FAILED": _errno.EIO,
    "INSUFFICIENT_ROOT_MEMORY": _errno.ENOMEM,
    "INSUFFICIENT_CONTIGUOUS_MEMORY": _errno.ENOMEM,
    "TIME_OUT": _errno.EIO,
    "CALL_PENDING": _errno.EIO,
    "INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY": _errno.ENOMEM,
    "VTL_ALREADY_ENABLED": _errno.EIO,
}

_HV_RESULT_NO_HYPERCALL_PAGE = (1 << 64) - 1  # hv_do_hypercall's U64_MAX


def hv_result_to_errno(result: int) -> int:
    """Return the errno Linux gives for a hypercall result (``hv_result_to_errno``).

    Args:
        result: the hypercall result; only its low 16 bits (the status) count,
            except the codeless all-ones value, which means no hypercall page.
    """
    if result == _HV_RESULT_NO_HYPERCALL_PAGE:
        return _errno.EOPNOTSUPP
    status = HvStatus(result & 0xFFFF)
    return _STATUS_ERRNO.get(status.name, _errno.EIO)


def hv_status_name(status: int) -> str:
    """Return the kernel's name for a status, e.g. ``HV_STATUS_INVALID_PARAMETER``."""
    return f"HV_STATUS_{HvStatus(status).name}"


class MshvError(OSError):
    """A failed /dev/mshv operation.

    Attributes:
        errno: the errno the kernel (or emulator) returned.
        op: the ioctl or call that failed, e.g. ``MSHV_SET_GUEST_MEMORY``.
        hv_status: for a passthrough hypercall, the ``HvStatus`` it returned, else None.
        details: the key arguments, for the message.
        reps_done: for a failed rep hypercall, the reps it completed, else None.
    """

    op: str
    hv_status: Any
    details: str
    #: For a failed rep hypercall: how many reps the hypervisor completed (the failed rep's index).
    reps_done: int | None = None

    def __init__(self, err: int, op: str, hv_status: int | None = None, details: str = "") -> None:
        status = None if hv_status is None else HvStatus(hv_status)
        text = f"{op}: {os.strerror(err) if err else 'hypercall failed'}"
        if status is not None:
            text += f" ({hv_status_name(status)})"
        if details:
            text += f" [{details}]"
        super().__init__(err, text)
        self.op = op
        self.hv_status = status
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.errno, self.op, self.hv_status, self.details),
            {"reps_done": self.reps_done},
        )
