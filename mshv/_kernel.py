"""The one road to the kernel: calls through the kernel table in ``mshv._abi``.

Every /dev/mshv open, ioctl, mmap, munmap and close in the package goes through
these functions. The table points at libc (a real /dev/mshv) or at the
emulator library; ``mshv.backend`` decides which, once per process. cffi
releases the GIL around each call, so a blocking ioctl (RUN_VP) does not hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mshv._abi import ffi, lib
from mshv.errors import MshvError

__all__ = ["close", "errno", "ioctl", "ioctl_raw", "mmap", "munmap", "open_path", "set_guest_memory_raw"]

_IOCTL_NAMES: dict[int, str] = {}


def ioctl_name(request: int) -> str:
    """Return the C name of an ioctl number (the first name the ABI gives it)."""
    if not _IOCTL_NAMES:
        for name in sorted(dir(lib)):
            if name.startswith("MSHV_"):
                value = getattr(lib, name)
                if isinstance(value, int) and (value >> 8) & 0xFF == lib.MSHV_IOCTL and value > 0xFF:
                    _IOCTL_NAMES.setdefault(value, name)
    return _IOCTL_NAMES.get(request, f"ioctl {request:#x}")


def open_path(path: str, flags: int) -> int:
    """Open ``path`` through the kernel table; returns the fd."""
    fd = int(lib.mshv_open(path.encode(), flags))
    if fd < 0:
        raise MshvError(ffi.errno, "open", details=path)
    return fd


#: The bare table call, for the run path where a Python frame per exit counts: returns
#: the ioctl's result, -1 with :func:`errno` set on failure (the caller raises MshvError).
ioctl_raw: Callable[[int, int, Any], int] = lib.mshv_ioctl


def errno() -> int:
    """errno of the last call through the kernel table in this thread."""
    value: int = ffi.errno
    return value


def ioctl(fd: int, request: int, arg: Any = ffi.NULL, details: str | Callable[[], str] = "") -> int:
    """Issue one ioctl through the kernel table; returns its non-negative result.

    ``details`` (the key arguments, for the error message) may be a callable,
    so hot paths format nothing unless the call fails.
    """
    ret = int(lib.mshv_ioctl(fd, request, arg))
    if ret < 0:
        err = ffi.errno
        text = details() if callable(details) else details
        raise MshvError(err, ioctl_name(request), details=text)
    return ret


#: MSHV_SET_GUEST_MEMORY with the struct filled in C (reserved bytes zero): the benchmarked
#: map path's one call, ``(fd, size, guest_pfn, userspace_addr, flags)``; returns -1 with
#: :func:`errno` set on failure (the caller raises MshvError).
set_guest_memory_raw: Callable[[int, int, int, int, int], int] = lib.mshv_set_guest_memory


def mmap(length: int, prot: int, flags: int, fd: int, offset: int) -> Any:
    """Map ``length`` bytes of fd at ``offset``; returns a ``void *`` cdata."""
    addr = lib.mshv_mmap(ffi.NULL, length, prot, flags, fd, offset)
    if int(ffi.cast("intptr_t", addr)) == -1:
        raise MshvError(ffi.errno, "mmap", details=f"fd={fd} offset={offset:#x} length={length:#x}")
    return addr


def munmap(addr: Any, length: int) -> None:
    """Unmap a mapping made by :func:`mmap` (or any address range)."""
    if lib.mshv_munmap(addr, length) < 0:
        raise MshvError(ffi.errno, "munmap", details=f"length={length:#x}")


def close(fd: int) -> None:
    """Close an fd through the kernel table."""
    if lib.mshv_close(fd) < 0:
        raise MshvError(ffi.errno, "close", details=f"fd={fd}")
