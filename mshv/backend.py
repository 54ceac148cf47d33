"""Which /dev/mshv the process talks to: the kernel's, or the KVM-backed emulator.

Chosen once per process, at the first use: ``MSHV_BACKEND=kernel|emulator``
forces a choice; otherwise the kernel when /dev/mshv *opens* (through libc's
open, so an emulator preloaded with ``LD_PRELOAD=$(mshv emulator
--preload-path)`` counts: that is the call path a root host takes), else the
emulator in process when /dev/mshv does not exist and /dev/kvm works. A
/dev/mshv that exists but does not open is an error, never a silent switch to
the emulator. The emulator's entry points pass every fd and path that is not
theirs through to the real system calls, so choosing it is safe for the rest
of the process.

The emulator library is the package's own ``mshv/libmshv_emu.so`` unless
``MSHV_EMULATOR_LIBRARY=/path/to/libmshv_emu.so`` names another one: an
emulator built elsewhere, for an install made without a C compiler (which has
no emulator of its own).
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv.errors import MshvError

__all__ = [
    "Backend",
    "BackendUnavailable",
    "current",
    "emulator_library_path",
    "emulator_overridden",
    "emulator_synthetic_view",
    "select",
]

DEVICE_PATH = "/dev/mshv"
KVM_PATH = "/dev/kvm"
EMULATOR_LIBRARY_ENV = "MSHV_EMULATOR_LIBRARY"


class BackendUnavailable(RuntimeError):
    """Neither /dev/mshv nor the emulator can be used; the message says why and what to do."""


@dataclass(frozen=True)
class Backend:
    """The backend in use: ``name`` is "kernel" or "emulator"; ``reason`` says why."""

    name: str
    reason: str
    device_path: str = DEVICE_PATH


_current: Backend | None = None


def emulator_library_path() -> str:
    """Absolute path of the emulator library (also usable with LD_PRELOAD).

    ``$MSHV_EMULATOR_LIBRARY`` when set, else the package's own ``libmshv_emu.so``.
    """
    override = os.environ.get(EMULATOR_LIBRARY_ENV, "").strip()
    if override:
        return str(Path(override).resolve())
    return str(Path(__file__).resolve().parent / "libmshv_emu.so")


def emulator_overridden() -> bool:
    """True when ``$MSHV_EMULATOR_LIBRARY`` names the emulator library."""
    return bool(os.environ.get(EMULATOR_LIBRARY_ENV, "").strip())


def emulator_synthetic_view() -> str:
    """How a guest on this host sees the synthetic (Hyper-V) MSRs: through the emulator or KVM."""
    view = ctypes.CDLL(emulator_library_path()).mshv_emu_synthetic_view
    view.restype = ctypes.c_char_p
    return bytes(view()).decode()


def _kvm_problem() -> str | None:
    if not os.path.exists(KVM_PATH):
        return f"{KVM_PATH} does not exist (load kvm_intel/kvm_amd, or run where KVM is available)"
    if not os.access(KVM_PATH, os.R_OK | os.W_OK):
        return f"{KVM_PATH} is not readable and writable by this user (add the user to the kvm group)"
    path = emulator_library_path()
    if emulator_overridden() and not os.path.isfile(path):
        return f"{EMULATOR_LIBRARY_ENV} names {path}, which is not a file"
    if not os.path.isfile(path):
        return (
            f"the emulator library is missing at {path} (this install was built without a C compiler, "
            f"or is damaged): reinstall python-mshv where gcc works, or set "
            f"{EMULATOR_LIBRARY_ENV}=/path/to/libmshv_emu.so to an emulator built elsewhere"
        )
    return None


def _use_emulator(reason: str) -> Backend:
    problem = _kvm_problem()
    if problem is not None:
        raise BackendUnavailable(f"cannot use the emulator: {problem}")
    err = ffi.new("char[]", 512)
    if lib.mshv_kernel_use_library(emulator_library_path().encode(), err, 512) < 0:
        raise BackendUnavailable(f"cannot load the emulator: {ffi.string(err).decode()}")
    return Backend("emulator", reason)


# open() errors that mean "there is no such device here" (anything else is a device that refuses)
_NO_DEVICE = (errno.ENOENT, errno.ENODEV, errno.ENXIO)


def _open_device() -> MshvError | None:
    """Open and close /dev/mshv through libc's open (the kernel table's libc road); the error,
    or None when it opened. A preloaded emulator answers this open like the kernel would."""
    lib.mshv_kernel_use_libc()
    try:
        fd = _kernel.open_path(DEVICE_PATH, lib.O_RDWR | lib.O_CLOEXEC)
    except MshvError as exc:
        return exc.with_traceback(None)  # its frames would hold the caller's (a reference cycle)
    _kernel.close(fd)
    return None


def _opens_reason() -> str:
    preload = os.environ.get("LD_PRELOAD", "").strip()
    return f"{DEVICE_PATH} opens" + (f" (LD_PRELOAD={preload})" if preload else "")


def _choose() -> Backend:
    forced = os.environ.get("MSHV_BACKEND", "").strip().lower()
    if forced == "kernel":
        error = _open_device()
        if error is not None:
            raise BackendUnavailable(
                f"MSHV_BACKEND=kernel but {DEVICE_PATH} does not open ({os.strerror(error.errno or 0)}): "
                "this is not a Hyper-V root partition with the mshv_root driver loaded, and no emulator "
                "is preloaded (LD_PRELOAD=$(mshv emulator --preload-path)); unset MSHV_BACKEND to use "
                "the emulator in process"
            )
        return Backend("kernel", f"forced by MSHV_BACKEND=kernel; {_opens_reason()}")
    if forced == "emulator":
        return _use_emulator("forced by MSHV_BACKEND=emulator")
    if forced:
        raise BackendUnavailable(f"MSHV_BACKEND={forced!r}: expected 'kernel' or 'emulator'")
    error = _open_device()
    if error is None:
        return Backend("kernel", _opens_reason())
    if error.errno not in _NO_DEVICE:
        raise BackendUnavailable(
            f"{DEVICE_PATH} exists but does not open ({os.strerror(error.errno or 0)}): run as a user "
            "that may open it (root), or set MSHV_BACKEND=emulator to use the emulator"
        )
    try:
        return _use_emulator(f"no {DEVICE_PATH}; {KVM_PATH} works")
    except BackendUnavailable as exc:
        raise BackendUnavailable(
            f"no backend: {DEVICE_PATH} does not exist (not a Hyper-V root partition) and {exc}"
        ) from None


def select() -> Backend:
    """Choose the backend if not yet chosen, and return it."""
    global _current
    if _current is None:
        _current = _choose()
    return _current


def current() -> Backend | None:
    """The backend chosen so far, or None before the first use."""
    return _current
