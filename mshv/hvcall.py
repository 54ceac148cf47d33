"""MSHV_ROOT_HVCALL: pass one hypercall through to the hypervisor.

The kernel checks the sizes (in 8..4096 bytes, out up to 4096), writes the
partition id over input bytes 0-7, and always writes back ``status`` and
``reps``; the output is copied back only on success (kernel-behaviour.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mshv import _cstruct, _kernel
from mshv._abi import ffi, lib
from mshv.errors import HvStatus, MshvError

__all__ = ["HvcallInput", "HvcallResult", "hvcall"]

_MAX_BYTES = lib.MSHV_HV_PAGE_SIZE
_MIN_INPUT = 8  # the partition id the kernel writes


class HvcallInput:
    """A zeroed hypercall input: a header struct followed by ``count`` array elements.

    ``header`` is the struct (fields set by name; bytes 0-7, the partition id,
    are the kernel's to fill), ``array`` the elements of type ``element``
    starting at the header's field ``array_field``.
    """

    def __init__(self, header: str, array_field: str = "", element: str = "", count: int = 0) -> None:
        offset = ffi.offsetof(header, array_field) if array_field else ffi.sizeof(header)
        size = max(ffi.sizeof(header), offset + (ffi.sizeof(element) * count if element else 0))
        self._buf = ffi.new("unsigned char[]", size)
        self.header: Any = ffi.cast(f"{header} *", self._buf)
        self.array: Any = ffi.cast(f"{element} *", self._buf + offset) if element else None

    def to_bytes(self) -> bytes:
        """The input as the hypercall receives it."""
        return bytes(ffi.buffer(self._buf))


@dataclass(frozen=True)
class HvcallResult:
    """What a passed-through hypercall returned: its status, reps completed and output bytes."""

    status: HvStatus
    reps: int
    output: bytes


def hvcall(fd: int, code: int, data: bytes, output_size: int = 0, reps: int = 0) -> HvcallResult:
    """Issue hypercall ``code`` through MSHV_ROOT_HVCALL on a device, partition or VP fd.

    Args:
        fd: the fd to issue it on (the allow-list depends on the fd kind).
        code: the hypercall code (``HVCALL_*``).
        data: the input; bytes 0-7 are replaced by the partition id.
        output_size: bytes of output to receive (0 for none).
        reps: the rep count for a rep hypercall, 0 for a simple one.

    Raises:
        ValueError: a size is outside the kernel's limits (checked before the call).
        MshvError: the ioctl failed; ``hv_status`` holds the hypercall status.
    """
    if not _MIN_INPUT <= len(data) <= _MAX_BYTES:
        raise ValueError(f"hypercall input must be {_MIN_INPUT}..{_MAX_BYTES} bytes, got {len(data)}")
    if not 0 <= output_size <= _MAX_BYTES:
        raise ValueError(f"hypercall output must be 0..{_MAX_BYTES} bytes, got {output_size}")
    if not 0 <= reps <= 0xFFFF or not 0 <= code <= 0xFFFF:
        raise ValueError(f"code and reps are 16-bit: code={code:#x} reps={reps}")
    in_buf = ffi.new("unsigned char[]", data)
    out_buf = ffi.new("unsigned char[]", output_size) if output_size else ffi.NULL
    args = _cstruct.new(
        "struct mshv_root_hvcall",
        code=code,
        reps=reps,
        in_sz=len(data),
        out_sz=output_size,
        in_ptr=ffi.cast("uint64_t", in_buf),
        out_ptr=ffi.cast("uint64_t", out_buf),
    )
    try:
        _kernel.ioctl(fd, lib.MSHV_ROOT_HVCALL, args)
    except MshvError as exc:
        status = int(args.status) or None  # written back even on failure
        detail = f"code={code:#x} reps={args.reps}/{reps}"
        raise MshvError(exc.errno or 0, exc.op, status, detail) from None
    output = bytes(ffi.buffer(out_buf, output_size)) if output_size else b""
    return HvcallResult(HvStatus(args.status), int(args.reps), output)
