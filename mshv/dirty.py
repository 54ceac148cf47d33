"""Which guest pages were written (dirty) or touched (accessed): for live migration and snapshots.

The hypervisor keeps an accessed and a dirty bit per guest page once the
partition property GPA_PAGE_ACCESS_TRACKING is 1 (:func:`enable_tracking`).
:func:`dirty_pages` and :func:`accessed_pages` read them through
MSHV_GET_GPAP_ACCESS_BITMAP and return the **guest physical addresses** of the
pages found (page-aligned GPAs, ascending). :func:`gpa_access_states` reads
the raw per-page states with HvCallGetGpaPagesAccessStates.

Reading without clearing uses the hypercall, not the ioctl: the ioctl's
"no-op" is carried out as "set" by the kernel, so it would mark every page in
the range. Clearing "accessed" uses the hypercall too: the ioctl's ACCESSED +
CLEAR also clears the dirty bits (mshv_partition_ioctl_get_gpap_access_bitmap:
"not accessed implies not dirty"), while the hypervisor keeps the two apart,
and so does :func:`accessed_pages`.

"Accessed" means read or written on the hypervisor. A backend that cannot see
guest reads (the emulator: KVM logs writes only) says so in
:func:`mshv.limits.read_access_tracking` (capability ``read_access_tracking``,
``mshv info``); there "accessed" means written, or set through an operation.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv.errors import MshvError
from mshv.hvcall import HvcallInput, hvcall
from mshv.memory import PAGE_SIZE

if TYPE_CHECKING:
    from mshv.partition import Partition

__all__ = [
    "PageAccess",
    "accessed_pages",
    "dirty_bitmap",
    "dirty_pages",
    "enable_tracking",
    "gpa_access_states",
]

_BATCH = lib.HV_HYP_PAGE_SIZE // ffi.sizeof("hv_gpa_page_access_state")  # one output page
_MAX_PAGES = (1 << 32) - 1  # the kernel passes page_count to the hypervisor as a u32


class PageAccess(enum.IntFlag):
    """The state of one guest page (HV_GPA_PAGE_ACCESS_STATE_*)."""

    ACCESSED = lib.HV_GPA_PAGE_ACCESS_STATE_ACCESSED
    DIRTY = lib.HV_GPA_PAGE_ACCESS_STATE_DIRTY


def enable_tracking(partition: Partition, enabled: bool = True) -> None:
    """Switch dirty/accessed tracking on or off (partition property GPA_PAGE_ACCESS_TRACKING)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, not {type(enabled).__name__}")
    partition.set_property(lib.HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING, int(enabled))


def _check_range(gpa: int, npages: int) -> None:
    for name, value in (("gpa", gpa), ("npages", npages)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if gpa < 0 or gpa % PAGE_SIZE:
        raise ValueError(f"gpa must be a non-negative multiple of {PAGE_SIZE:#x}, got {gpa:#x}")
    if not 0 < npages <= _MAX_PAGES or gpa + npages * PAGE_SIZE > 1 << 64:
        raise ValueError(f"npages must be 1..{_MAX_PAGES} within the 64-bit GPA space, got {npages}")


def _bitmap(fd: int, access_type: int, gpa: int, npages: int) -> list[int]:
    return _set_pages(_raw_bitmap(fd, access_type, gpa, npages), npages, gpa)


def _raw_bitmap(fd: int, access_type: int, gpa: int, npages: int) -> Any:
    """MSHV_GET_GPAP_ACCESS_BITMAP with CLEAR: the ``unsigned char[]`` the kernel wrote."""
    arg, bitmap = bitmap_request(access_type, gpa, npages)
    if _kernel.ioctl_raw(fd, lib.MSHV_GET_GPAP_ACCESS_BITMAP, arg) < 0:
        raise bitmap_error(fd, _kernel.errno(), gpa, npages)
    return bitmap


def bitmap_request(access_type: int, gpa: int, npages: int) -> tuple[Any, Any]:
    """The argument of MSHV_GET_GPAP_ACCESS_BITMAP (``access_type`` + CLEAR) for ``npages`` pages
    from ``gpa``, and the ``unsigned char[]`` the kernel writes the bits into."""
    _check_range(gpa, npages)
    bitmap = ffi.new("unsigned char[]", (npages + 7) // 8)
    arg = ffi.new(  # the fields set by cffi in one call; the reserved bytes stay zero
        "struct mshv_gpap_access_bitmap *",
        {
            "access_type": access_type,
            "access_op": lib.MSHV_GPAP_ACCESS_OP_CLEAR,
            "page_count": npages,
            "gpap_base": gpa // PAGE_SIZE,
            "bitmap_ptr": ffi.cast("uint64_t", bitmap),
        },
    )
    return arg, bitmap


def bitmap_error(fd: int, err: int, gpa: int, npages: int) -> MshvError:
    """The error of a failed MSHV_GET_GPAP_ACCESS_BITMAP (errno ``err``) on partition ``fd``."""
    name = _kernel.ioctl_name(lib.MSHV_GET_GPAP_ACCESS_BITMAP)
    exc = MshvError(err, name, details=f"gpa={gpa:#x} npages={npages}")
    return _explained(fd, exc)


def _tracking_on(fd: int) -> bool | None:
    """The partition property GPA_PAGE_ACCESS_TRACKING, or None when it cannot be read."""
    from mshv.partition import _get_property  # (partition imports this module)

    try:
        return bool(_get_property(fd, lib.HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING))
    except MshvError:
        return None


def _explained(fd: int, exc: MshvError) -> MshvError:
    """``exc``, saying what to do when it failed because tracking is off (a bare EIO otherwise)."""
    if _tracking_on(fd) is not False:
        return exc
    hint = "page access tracking is off: call Partition.enable_dirty_tracking() first"
    details = f"{exc.details}; {hint}" if exc.details else hint
    return MshvError(exc.errno or 0, exc.op, exc.hv_status, details)


def _set_pages(bitmap: Any, npages: int, gpa: int) -> list[int]:
    """GPAs of the set bits of an LSB-first bitmap of ``npages`` pages (an ``unsigned char[]``
    cdata) starting at ``gpa``, listed in C (``lib.mshv_bitmap_pages``, build_ext/page_copy.py):
    a clean 1 GiB bitmap costs microseconds, where scanning its 32 KiB in Python takes hundreds."""
    count = lib.mshv_bitmap_pages(bitmap, npages, ffi.NULL, 0)
    if not count:
        return []
    pages = ffi.new("uint64_t[]", count)
    lib.mshv_bitmap_pages(bitmap, npages, pages, count)
    return [gpa + page * PAGE_SIZE for page in ffi.unpack(pages, count)]


class _StateCache(dict[int, PageAccess]):
    """Each state byte's PageAccess, made at its first sight: an IntFlag made per page costs
    about a microsecond, most of a large read's time."""

    def __missing__(self, value: int) -> PageAccess:
        state = self[value] = PageAccess(value)
        return state


_STATES = _StateCache()


def _read_states(fd: int, gpa: int, npages: int, flags: int) -> bytes:
    """The state byte of each of ``npages`` pages from ``gpa``, the ``flags`` (HV_GPA_PAGE_ACCESS_*)
    applied after: one hypercall per output page, its ``reps`` checked."""
    states = bytearray()
    for first in range(0, npages, _BATCH):
        count = min(_BATCH, npages - first)
        data = HvcallInput("struct hv_input_get_gpa_pages_access_state")
        data.header.flags = flags
        data.header.hv_gpa_page_number = gpa // PAGE_SIZE + first
        try:
            res = hvcall(fd, lib.HVCALL_GET_GPA_PAGES_ACCESS_STATES, data.to_bytes(), count, reps=count)
        except MshvError as exc:
            raise _explained(fd, exc) from None
        if res.reps != count:
            raise MshvError(0, "HvCallGetGpaPagesAccessStates", int(res.status), f"reps {res.reps}/{count}")
        states += res.output
    return bytes(states)


#: For each state bit, the translation of a state byte to 1 if it has the bit, else 0.
_MATCHING = {
    bit: bytes(1 if value & bit else 0 for value in range(256))
    for bit in (lib.HV_GPA_PAGE_ACCESS_STATE_ACCESSED, lib.HV_GPA_PAGE_ACCESS_STATE_DIRTY)
}


def _states_matching(fd: int, gpa: int, npages: int, state: int, flags: int = 0) -> list[int]:
    """GPAs of the pages whose state has a bit of ``state``, ``flags`` applied after the read."""
    _check_range(gpa, npages)
    marks = _read_states(fd, gpa, npages, flags).translate(_MATCHING[state])
    pages: list[int] = []
    index = marks.find(1)  # (memchr: the pages that do not match are skipped in C)
    while index >= 0:
        pages.append(gpa + index * PAGE_SIZE)
        index = marks.find(1, index + 1)
    return pages


def dirty_pages(fd: int, gpa: int, npages: int, clear: bool = True) -> list[int]:
    """GPAs of the pages in ``npages`` pages from ``gpa`` that the guest wrote.

    With ``clear`` (MSHV_GET_GPAP_ACCESS_BITMAP, DIRTY + CLEAR) the dirty bits
    are reset after they are read; without it (HvCallGetGpaPagesAccessStates)
    nothing changes.
    """
    if not clear:
        return _states_matching(fd, gpa, npages, lib.HV_GPA_PAGE_ACCESS_STATE_DIRTY)
    return _bitmap(fd, lib.MSHV_GPAP_ACCESS_TYPE_DIRTY, gpa, npages)


def dirty_bitmap(fd: int, gpa: int, npages: int) -> Any:
    """The dirty bits of ``npages`` pages from ``gpa``, read and reset (MSHV_GET_GPAP_ACCESS_BITMAP,
    DIRTY + CLEAR), as the kernel writes them: bit ``i`` (LSB first) of an ``unsigned char[]``
    cdata is page ``i``. :func:`dirty_pages` with the addresses instead."""
    return _raw_bitmap(fd, lib.MSHV_GPAP_ACCESS_TYPE_DIRTY, gpa, npages)


def accessed_pages(fd: int, gpa: int, npages: int, clear: bool = True) -> list[int]:
    """GPAs of the pages in ``npages`` pages from ``gpa`` that the guest accessed.

    With ``clear`` the accessed bits are reset after they are read, and the
    dirty bits are left alone (HvCallGetGpaPagesAccessStates with only
    CLEAR_ACCESSED; the ioctl's ACCESSED + CLEAR would reset them too); without
    it nothing changes.
    """
    flags = lib.HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED if clear else 0
    return _states_matching(fd, gpa, npages, lib.HV_GPA_PAGE_ACCESS_STATE_ACCESSED, flags)


def gpa_access_states(
    fd: int,
    gpa: int,
    npages: int,
    *,
    clear_accessed: bool = False,
    set_accessed: bool = False,
    clear_dirty: bool = False,
    set_dirty: bool = False,
) -> list[PageAccess]:
    """The access state of each of ``npages`` pages from ``gpa`` (HvCallGetGpaPagesAccessStates).

    The ``clear_*``/``set_*`` operations are applied after the states are
    read. Calls are batched by one output page and ``reps`` is checked.
    """
    _check_range(gpa, npages)
    flags = 0
    for wanted, flag in (
        (clear_accessed, lib.HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED),
        (set_accessed, lib.HV_GPA_PAGE_ACCESS_SET_ACCESSED),
        (clear_dirty, lib.HV_GPA_PAGE_ACCESS_CLEAR_DIRTY),
        (set_dirty, lib.HV_GPA_PAGE_ACCESS_SET_DIRTY),
    ):
        if wanted:
            flags |= flag
    return list(map(_STATES.__getitem__, _read_states(fd, gpa, npages, flags)))
