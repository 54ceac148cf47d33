"""Which /dev/mshv ioctls the backend handles, found without side effects.

Every mshv_root ioctl with an argument copies it in before any other check, so
an ioctl sent with a NULL argument answers EFAULT when it is handled and ENOTTY
when it is not (mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl). MSHV_RUN_VP is not probed: it runs
the VP before it touches its argument. The partition and VP used for probing
are created and closed here.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv.errors import MshvError

__all__ = ["ProbeResult", "probe_ioctls"]


@dataclass(frozen=True)
class ProbeResult:
    """One ioctl probed: its name, the fd kind it was sent to, and what that showed."""

    name: str
    fd_kind: str
    verdict: str


def _probe(fd: int, name: str, fd_kind: str) -> ProbeResult:
    try:
        _kernel.ioctl(fd, getattr(lib, name), ffi.NULL)
    except MshvError as exc:
        if exc.errno == errno.EFAULT:
            return ProbeResult(name, fd_kind, "supported")
        if exc.errno == errno.ENOTTY:
            return ProbeResult(name, fd_kind, "not supported (ENOTTY)")
        return ProbeResult(name, fd_kind, f"answered {errno.errorcode.get(exc.errno or 0, exc.errno)}")
    return ProbeResult(name, fd_kind, "accepted a NULL argument (unexpected)")


def probe_ioctls() -> list[ProbeResult]:
    """Probe the device, partition and VP ioctls of the selected backend."""
    from mshv import backend

    results: list[ProbeResult] = []
    dev = _kernel.open_path(backend.select().device_path, lib.O_RDWR | lib.O_CLOEXEC)
    try:
        for name in ("MSHV_CREATE_PARTITION", "MSHV_ROOT_HVCALL"):
            results.append(_probe(dev, name, "device"))
        args = ffi.new("struct mshv_create_partition *")
        pt = _kernel.ioctl(dev, lib.MSHV_CREATE_PARTITION, args)
    finally:
        _kernel.close(dev)
    try:
        for name in (
            "MSHV_CREATE_VP",
            "MSHV_SET_GUEST_MEMORY",
            "MSHV_IRQFD",
            "MSHV_IOEVENTFD",
            "MSHV_SET_MSI_ROUTING",
            "MSHV_GET_GPAP_ACCESS_BITMAP",
            "MSHV_ROOT_HVCALL",
        ):
            results.append(_probe(pt, name, "partition"))
        _kernel.ioctl(pt, lib.MSHV_INITIALIZE_PARTITION)
        results.append(ProbeResult("MSHV_INITIALIZE_PARTITION", "partition", "supported"))
        vp_arg = ffi.new("struct mshv_create_vp *")
        vp = _kernel.ioctl(pt, lib.MSHV_CREATE_VP, vp_arg)
        try:
            for name in ("MSHV_GET_VP_STATE", "MSHV_SET_VP_STATE", "MSHV_ROOT_HVCALL"):
                results.append(_probe(vp, name, "vp"))
        finally:
            _kernel.close(vp)
    finally:
        _kernel.close(pt)
    return results
