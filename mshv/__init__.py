"""python-mshv: script Microsoft Hypervisor guest partitions through Linux's /dev/mshv.

On a machine without /dev/mshv, the package's emulator runs the same ABI on
/dev/kvm (see :mod:`mshv.backend`).
"""

from __future__ import annotations

from mshv.backend import Backend, BackendUnavailable
from mshv.device import Mshv, PartitionFlag
from mshv.dirty import PageAccess
from mshv.errors import HvStatus, MshvError, hv_result_to_errno, hv_status_name
from mshv.intercept_config import CpuidValues, InterceptAccessMask, InterceptType
from mshv.intercepts import (
    ApicEoi,
    CpuidIntercept,
    ExceptionIntercept,
    HaltIntercept,
    HvMessageType,
    Intercept,
    InterceptAccess,
    InterceptHeader,
    InterruptionDeliverable,
    InvalidVpRegisterValue,
    IoPortIntercept,
    MemoryIntercept,
    MsrIntercept,
    OpaqueIntercept,
    SintDeliverable,
    SipiIntercept,
    TimerExpired,
    UnknownIntercept,
    UnrecoverableException,
    UnsupportedFeature,
)
from mshv.interrupts import EventFd, InterruptType, Ioeventfd, Irqfd, MsiRoute
from mshv.memory import GpaRangeError, GuestMemory
from mshv.partition import HvPartitionProperty, MemoryRegion, Partition
from mshv.registers import HvRegister, Segment, Table
from mshv.regpage import RegisterPage
from mshv.runloop import RunLoop, RunResult
from mshv.snapshot import Snapshot, SnapshotFormatError, SnapshotMismatch
from mshv.state import LapicState, SyntheticTimer
from mshv.translate import GvaTranslation, TranslateFlag, TranslateResult
from mshv.vp import Vp
from mshv.x86.stringio import GuestAccessError

__all__ = [
    "ApicEoi",
    "Backend",
    "BackendUnavailable",
    "CpuidIntercept",
    "ExceptionIntercept",
    "GpaRangeError",
    "GuestMemory",
    "HaltIntercept",
    "HvMessageType",
    "HvPartitionProperty",
    "HvRegister",
    "HvStatus",
    "Intercept",
    "InterceptHeader",
    "IoPortIntercept",
    "MemoryIntercept",
    "MemoryRegion",
    "Mshv",
    "MshvError",
    "MsrIntercept",
    "Partition",
    "PartitionFlag",
    "Segment",
    "Table",
    "UnknownIntercept",
    "UnrecoverableException",
    "Vp",
    "hv_result_to_errno",
    "hv_status_name",
    "CpuidValues",
    "EventFd",
    "GvaTranslation",
    "InterceptAccess",
    "InterceptAccessMask",
    "InterceptType",
    "InterruptType",
    "Ioeventfd",
    "Irqfd",
    "LapicState",
    "MsiRoute",
    "PageAccess",
    "SyntheticTimer",
    "TranslateFlag",
    "TranslateResult",
    "RunLoop",
    "RunResult",
    "RegisterPage",
    "GuestAccessError",
    "InterruptionDeliverable",
    "InvalidVpRegisterValue",
    "OpaqueIntercept",
    "SintDeliverable",
    "SipiIntercept",
    "TimerExpired",
    "UnsupportedFeature",
    "Snapshot",
    "SnapshotFormatError",
    "SnapshotMismatch",
]
__version__ = "0.1.0.dev0"
