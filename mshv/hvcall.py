"""MSHV_ROOT_HVCALL: pass one hypercall through to the hypervisor.

The kernel checks the sizes (in 8..4096 bytes, out up to 4096), writes the
partition id over input bytes 0-7, and always writes back ``status`` and
``reps``; the output is copied back only on success (mshv_ioctl_passthru_hvcall).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv._enums import names_with_prefix
from mshv._msgread import Reader
from mshv.errors import HvStatus, MshvError

__all__ = [
    "IN_AT",
    "OUT_AT",
    "PASSTHROUGH_HVCALLS",
    "REPS_AT",
    "CallBuffer",
    "HvcallInput",
    "HvcallResult",
    "args_then",
    "failure",
    "give_buffer",
    "hvcall",
    "hvcall_name",
    "take_buffer",
    "written_back",
]

_MAX_BYTES = lib.MSHV_HV_PAGE_SIZE
_MIN_INPUT = 8  # the partition id the kernel writes


def _codes(*names: str) -> frozenset[int]:
    return frozenset(int(getattr(lib, f"HVCALL_{name}")) for name in names)


# The kernel's mshv_passthru_hvcalls[] (partition and VP fds) and mshv_self_passthru_hvcalls[]
# (/dev/mshv, Linux >= 6.19), checked by mshv_passthru_hvcall_allowed (drivers/hv/mshv_root_main.c);
# SET_PARTITION_PROPERTY is asynchronous, which the kernel allows from a partition fd only
# (mshv_hvcall_is_async).
_PT_AND_VP = (
    "GET_PARTITION_PROPERTY", "GET_PARTITION_PROPERTY_EX", "INSTALL_INTERCEPT", "GET_VP_REGISTERS",
    "SET_VP_REGISTERS", "TRANSLATE_VIRTUAL_ADDRESS", "CLEAR_VIRTUAL_INTERRUPT", "REGISTER_INTERCEPT_RESULT",
    "ASSERT_VIRTUAL_INTERRUPT", "GET_GPA_PAGES_ACCESS_STATES", "SIGNAL_EVENT_DIRECT", "POST_MESSAGE_DIRECT",
    "GET_VP_CPUID_VALUES",
)  # fmt: skip
#: The hypercall codes MSHV_ROOT_HVCALL passes through, by the kind of fd it is issued on
#: ("device" is /dev/mshv, for the root partition's own properties). Any other code is EINVAL.
PASSTHROUGH_HVCALLS: Mapping[str, frozenset[int]] = MappingProxyType(
    {
        "device": _codes("GET_PARTITION_PROPERTY", "GET_PARTITION_PROPERTY_EX"),
        "partition": _codes(*_PT_AND_VP, "SET_PARTITION_PROPERTY"),
        "vp": _codes(*_PT_AND_VP),
    }
)
_HVCALL_NAMES: dict[int, str] = {}


def hvcall_name(code: int) -> str:
    """The C name of a hypercall code, e.g. ``HVCALL_GET_VP_REGISTERS`` (or its hex when unknown)."""
    if not _HVCALL_NAMES:
        for name, value in names_with_prefix(lib, "HVCALL_").items():
            _HVCALL_NAMES.setdefault(value, f"HVCALL_{name}")
    return _HVCALL_NAMES.get(code, f"hypercall {code:#x}")


def failure(err: int, code: int, status: int, done: int, reps: int, fd_kind: str = "") -> MshvError:
    """The MshvError of a failed MSHV_ROOT_HVCALL (errno ``err``, the ``status`` and reps ``done``
    it wrote back, of ``reps`` asked); an EINVAL before any hypercall for a code off the fd's
    allow-list says so and names the list."""
    detail = f"{hvcall_name(code)} ({code:#x}) reps={done}/{reps}"
    allowed = PASSTHROUGH_HVCALLS.get(fd_kind, frozenset().union(*PASSTHROUGH_HVCALLS.values()))
    if err == errno.EINVAL and not status and code not in allowed:
        where = f"the {fd_kind} fd's" if fd_kind else "any fd's"
        names = ", ".join(sorted(hvcall_name(c) for c in allowed))
        detail += (
            f"; {hvcall_name(code)} is not on {where} allow-list (mshv.hvcall.PASSTHROUGH_HVCALLS: {names})"
        )
    exc = MshvError(err, "MSHV_ROOT_HVCALL", status or None, detail)
    exc.reps_done = done
    return exc


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


class HvcallResult(NamedTuple):
    """What a passed-through hypercall returned: its status, reps completed and output bytes."""

    status: HvStatus
    reps: int
    output: bytes


# A call buffer: struct mshv_root_hvcall at 0, the input after it (8-aligned, as the args
# are), the output a page later. Calls reuse them through a pool; every call packs the whole
# argument struct again (status and rsvd zero, the pointers included) before the table call.
_ARGS = Reader(
    "struct mshv_root_hvcall",
    ["code", "reps", "in_sz", "out_sz", "status", "in_ptr", "out_ptr"],
    size=ffi.sizeof("struct mshv_root_hvcall"),
)
_ARGS_SIZE = ffi.sizeof("struct mshv_root_hvcall")
#: Where a call buffer's input starts (right after its struct mshv_root_hvcall).
IN_AT: int = -(-_ARGS_SIZE // 8) * 8
#: Where a call buffer's output starts.
OUT_AT: int = IN_AT + _MAX_BYTES
_RESULT = Reader("struct mshv_root_hvcall", ["reps", "status"])  # written back, even on failure
#: The offset of ``reps`` in struct mshv_root_hvcall (the kernel writes back the reps done).
REPS_AT: int = ffi.offsetof("struct mshv_root_hvcall", "reps")
_ROOT_HVCALL = lib.MSHV_ROOT_HVCALL
_ioctl_raw = _kernel.ioctl_raw
_STATUS: dict[int, Any] = {int(member): member for member in HvStatus}
_UINTPTR = ffi.typeof("uintptr_t")
_tuple_new = tuple.__new__


class CallBuffer(NamedTuple):
    """One reusable call buffer: the bytes, the ``struct mshv_root_hvcall *`` the table call
    takes, and the addresses of its input (:data:`IN_AT`) and output (:data:`OUT_AT`)."""

    buf: bytearray
    view: memoryview
    args: Any
    in_ptr: int
    out_ptr: int


# Buffers not in use. list.pop and list.append are atomic under the GIL, so a thread whose
# call runs with the GIL released never shares its buffer with another thread's call.
_POOL: list[CallBuffer] = []


def take_buffer() -> CallBuffer:
    """A call buffer for this thread's next call; give it back with :func:`give_buffer`."""
    try:
        return _POOL.pop()
    except IndexError:
        buf = bytearray(OUT_AT + _MAX_BYTES)
        args = ffi.from_buffer("struct mshv_root_hvcall *", buf)  # keeps buf exported: never resized
        addr = int(ffi.cast(_UINTPTR, args))
        values = (buf, memoryview(buf), args, addr + IN_AT, addr + OUT_AT)
        call: CallBuffer = _tuple_new(CallBuffer, values)
        return call


give_buffer: Callable[[CallBuffer], None] = _POOL.append


def args_then(*parts: struct.Struct) -> struct.Struct:
    """One ``struct.Struct`` that packs a call buffer's struct mshv_root_hvcall (code, reps,
    in_sz, out_sz, status, in_ptr, out_ptr) and then, from :data:`IN_AT` on, ``parts``
    one after the other (little-endian formats from :class:`mshv._msgread.Reader`)."""
    fmt = _ARGS.struct.format + (f"{IN_AT - _ARGS_SIZE}x" if IN_AT > _ARGS_SIZE else "")
    return struct.Struct(fmt + "".join(part.format.lstrip("<") for part in parts))


def written_back(buf: bytearray) -> tuple[int, int]:
    """(reps done, status): what the kernel wrote back into a call buffer's arguments."""
    done, status = _RESULT.read(buf, 0)
    return done, status


def hvcall(
    fd: int, code: int, data: bytes, output_size: int = 0, reps: int = 0, *, fd_kind: str = ""
) -> HvcallResult:
    """Issue hypercall ``code`` through MSHV_ROOT_HVCALL on a device, partition or VP fd.

    Args:
        fd: the fd to issue it on (the allow-list depends on the fd kind).
        code: the hypercall code (``HVCALL_*``).
        data: the input; bytes 0-7 are replaced by the partition id.
        output_size: bytes of output to receive (0 for none).
        reps: the rep count for a rep hypercall, 0 for a simple one.
        fd_kind: "device", "partition" or "vp" when known: an error for a code off that
            fd's allow-list (:data:`PASSTHROUGH_HVCALLS`) names the list.

    Raises:
        ValueError: a size is outside the kernel's limits (checked before the call).
        MshvError: the ioctl failed; ``hv_status`` holds the hypercall status.
    """
    in_size = len(data)
    if not _MIN_INPUT <= in_size <= _MAX_BYTES:
        raise ValueError(f"hypercall input must be {_MIN_INPUT}..{_MAX_BYTES} bytes, got {in_size}")
    if not 0 <= output_size <= _MAX_BYTES:
        raise ValueError(f"hypercall output must be 0..{_MAX_BYTES} bytes, got {output_size}")
    if not 0 <= reps <= 0xFFFF or not 0 <= code <= 0xFFFF:
        raise ValueError(f"code and reps are 16-bit: code={code:#x} reps={reps}")
    call = take_buffer()
    buf = call.buf
    try:
        out_ptr = call.out_ptr if output_size else 0
        _ARGS.struct.pack_into(buf, 0, code, reps, in_size, output_size, 0, call.in_ptr, out_ptr)
        buf[IN_AT : IN_AT + in_size] = data
        failed = _ioctl_raw(fd, _ROOT_HVCALL, call.args) < 0
        done, status = _RESULT.read(buf, 0)
        if failed:
            raise failure(_kernel.errno(), code, status, done, reps, fd_kind)
        output = call.view[OUT_AT : OUT_AT + output_size].tobytes()
    finally:
        give_buffer(call)
    member = _STATUS.get(status)
    values = (HvStatus(status) if member is None else member, done, output)
    result: HvcallResult = _tuple_new(HvcallResult, values)  # skips NamedTuple argument parsing
    return result
