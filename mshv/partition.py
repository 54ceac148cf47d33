"""A guest partition: initialize, VPs, guest memory regions, properties, interrupts.

Created by ``Mshv.create_partition``; owns its partition fd. ``close()`` closes
the VPs, unmaps the memory regions and then closes the fd. A VP keeps its
partition alive; the partition holds its VPs weakly, so nothing forms a cycle.
"""

from __future__ import annotations

import functools
import struct
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mshv import _cstruct, _kernel, dirty, intercept_config, interrupts, snapshot
from mshv._abi import ffi, lib
from mshv._enums import build_enum
from mshv._owner import FdOwner
from mshv.dirty import PageAccess
from mshv.errors import MshvError
from mshv.hvcall import HvcallInput, HvcallResult, hvcall
from mshv.interrupts import EventFd, Ioeventfd, Irqfd, MsiRoute
from mshv.memory import HUGE_PAGE_SIZE, PAGE_SIZE, GpaRangeError, GuestMemory
from mshv.snapshot import Snapshot
from mshv.vp import Vp

__all__ = ["HvPartitionProperty", "MemoryRegion", "Partition"]

# Property codes only: the HV_PARTITION_PROPERTY_ARG_* masks split a code's argument, they are no codes.
HvPartitionProperty: Any = build_enum(
    "HvPartitionProperty", lib, "HV_PARTITION_PROPERTY_", exclude=("HV_PARTITION_PROPERTY_ARG_",)
)
_WRITABLE = 1 << lib.MSHV_SET_MEM_BIT_WRITABLE
_EXECUTABLE = 1 << lib.MSHV_SET_MEM_BIT_EXECUTABLE
_UNMAP = 1 << lib.MSHV_SET_MEM_BIT_UNMAP
_set_guest_memory = _kernel.set_guest_memory_raw
_tuple_new = tuple.__new__
_MAX_VPS = 256  # MSHV_MAX_VPS (drivers/hv/mshv_root.h); not part of the uapi header


class MemoryRegion(NamedTuple):
    """One guest memory mapping: ``size`` bytes of ``memory`` at ``offset`` shown at ``gpa``.

    ``hva`` is the host virtual address of its first byte. (A NamedTuple: immutable, and
    cheap to create on the map path, which the benchmarks time against C.)
    """

    memory: GuestMemory
    gpa: int
    size: int
    offset: int
    writable: bool
    executable: bool
    hva: int

    def __repr__(self) -> str:
        perms = "r" + ("w" if self.writable else "-") + ("x" if self.executable else "-")
        pages = "2 MiB" if self.page_size == HUGE_PAGE_SIZE else "4 KiB"
        return f"<MemoryRegion gpa={self.gpa:#x} size={self.size:#x} {perms} {pages} pages>"

    @property
    def page_size(self) -> int:
        """The size of the host pages backing the region: 2 MiB (hugetlb memory) or 4 KiB.

        ``map_memory`` maps 2 MiB-backed memory only where each 2 MiB page can back a guest
        large page (GPA, offset and size in whole 2 MiB pages).
        """
        return self.memory.page_size


class Partition(FdOwner):
    """A guest partition (an MSHV_CREATE_PARTITION fd).

    ``close()`` closes the VPs, unmaps every region, then closes the partition fd.
    """

    _what = "partition"

    def __init__(self, fd: int, flags: int) -> None:
        self.flags = flags
        self.initialized = False
        # Weak: a VP refers to its partition, so a strong reference back would form a cycle.
        self._vps: weakref.WeakValueDictionary[int, Vp] = weakref.WeakValueDictionary()
        self._regions: list[MemoryRegion] = []
        self._gpa_width: int | None = None  # physical_address_width, once initialized
        # The snapshot guest memory equals but for the pages the guest dirtied since, with the
        # regions and VP indexes then (mshv.snapshot); None once something else consumed the
        # dirty bits.
        self._snapshot_base: tuple[Snapshot, tuple[MemoryRegion, ...], tuple[int, ...]] | None = None
        self._restore_program: snapshot._Program | None = None  # the last restore's calls, made ready
        # Held by a restore from its checks to the end of its C call, which writes the VPs'
        # register pages and the guest memory without the GIL; a VP unmaps its page and a
        # region is unmapped under it (Vp._close_children, unmap_memory).
        self._page_writers = threading.RLock()
        # The backstop closes the fd, then gives the memory back (the kernel dropped the regions
        # with the partition): a dropped partition leaves no GuestMemory counted as mapped.
        self._own(fd, after_backstop=functools.partial(_release_all, self._regions))

    def _close_children(self) -> None:
        for vp in list(self._vps.values()):
            vp.close()
        for region in list(self._regions):
            self.unmap_memory(region)

    def __enter__(self) -> Partition:
        return self

    def __repr__(self) -> str:
        return (
            f"<Partition flags={self.flags:#x} initialized={self.initialized} vps={sorted(self._vps)} "
            f"regions={len(self._regions)} closed={self.closed}>"
        )

    # -- setup ----------------------------------------------------------------------------
    def initialize(self) -> None:
        """Initialize the partition (MSHV_INITIALIZE_PARTITION); a second call does nothing."""
        _kernel.ioctl(self._live(), lib.MSHV_INITIALIZE_PARTITION)
        self.initialized = True

    def create_vp(self, index: int = 0) -> Vp:
        """Create VP ``index`` (MSHV_CREATE_VP); it starts suspended, in the reset state."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"VP index must be an int, not {type(index).__name__}")
        if not 0 <= index < _MAX_VPS:
            raise ValueError(f"VP index must be 0..{_MAX_VPS - 1}, got {index}")
        arg = _cstruct.new("struct mshv_create_vp", vp_index=index)
        fd = _kernel.ioctl(self._live(), lib.MSHV_CREATE_VP, arg, details=f"vp_index={index}")
        vp = Vp(self, index, fd)
        self._vps[index] = vp
        self._restore_program = None  # made for the VPs there were: a restore checks anew
        return vp

    @property
    def vps(self) -> dict[int, Vp]:
        """The VPs created through this object and still alive, by index."""
        return dict(self._vps)

    # -- memory ---------------------------------------------------------------------------
    @property
    def regions(self) -> list[MemoryRegion]:
        """The regions mapped through this object."""
        return list(self._regions)

    @property
    def physical_address_width(self) -> int:
        """The partition's guest-physical address bits (property PHYSICAL_ADDRESS_WIDTH, what its
        guests' CPUID 0x80000008 shows): :meth:`map_memory` refuses GPAs from ``1 << width`` on
        with :class:`GpaRangeError`. 64 when the property cannot be read. An early property: it
        is read once the partition is initialized, and kept."""
        width = self._gpa_width
        if width is not None:
            return width
        try:
            width = _get_property(self._live(), lib.HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH)
        except MshvError:
            return 64
        if not 0 < width <= 64:
            return 64
        if self.initialized:
            self._gpa_width = width
        return width

    @property
    def _gpa_limit(self) -> int:
        """The first GPA beyond :attr:`physical_address_width` (mshv._native's map asks here
        until ``_gpa_width`` is kept)."""
        return 1 << self.physical_address_width

    def region_at(self, gpa: int) -> MemoryRegion | None:
        """The region mapped through this object that holds guest physical address ``gpa``, or None."""
        for region in self._regions:
            if region.gpa <= gpa < region.gpa + region.size:
                return region
        return None

    def map_memory(
        self,
        memory: GuestMemory,
        gpa: int,
        *,
        size: int | None = None,
        offset: int = 0,
        writable: bool = True,
        executable: bool = True,
    ) -> MemoryRegion:
        """Map ``size`` bytes of ``memory`` (from ``offset``) at guest physical address ``gpa``.

        Wraps MSHV_SET_GUEST_MEMORY. Alignment, bounds and overlap with this
        partition's regions are checked before the kernel sees the request.
        """
        if _memory_calls is not None:  # the same, in C (mshv._native)
            region: MemoryRegion = _memory_calls.map(self, memory, gpa, size, offset, writable, executable)
            return region
        return self._map_memory(memory, gpa, size, offset, writable, executable)

    def _map_memory(
        self, memory: GuestMemory, gpa: int, size: int | None, offset: int, writable: bool, executable: bool
    ) -> MemoryRegion:
        """map_memory in Python (the twin of ``mshv._native.MemoryCalls.map``, which hands it
        every call it does not take itself)."""
        fd = self._live()
        if not isinstance(memory, GuestMemory):
            raise TypeError(
                f"map_memory maps a GuestMemory, not {type(memory).__name__}: allocate GuestMemory(size) "
                "and write your bytes into it"
            )
        if size is None:
            size = memory.size - offset
        if gpa < 0 or gpa % PAGE_SIZE or offset < 0 or offset % PAGE_SIZE:
            raise ValueError(f"gpa {gpa:#x} and offset {offset:#x} must be {PAGE_SIZE:#x}-aligned")
        if size <= 0 or size % PAGE_SIZE or offset + size > memory.size:
            raise ValueError(f"size {size:#x} at offset {offset:#x} must be page-sized within {memory!r}")
        huge = memory.page_size
        if huge != PAGE_SIZE and (gpa % huge or offset % huge or size % huge):
            # The driver asks for a 2 MiB guest page only where the GFN, the pages left and the
            # host page all line up on 2 MiB, else maps 4 KiB pages (mshv_chunk_stride,
            # drivers/hv/mshv_regions.c); kernels <= 6.18 refuse other sizes with EINVAL.
            raise ValueError(
                f"hugetlb memory is mapped in whole 2 MiB pages: gpa {gpa:#x}, offset {offset:#x} and "
                f"size {size:#x} must be multiples of 2 MiB ({huge:#x}), else its large pages are lost "
                "(use GuestMemory(hugepages=False) for 4 KiB mappings)"
            )
        end = gpa + size
        for other in self._regions:
            if gpa < other.gpa + other.size and other.gpa < end:
                raise ValueError(f"gpa range {gpa:#x}+{size:#x} overlaps {other!r}")
        # HvCallMapGpaPages maps no GPA beyond the partition's physical address width
        if end > self._gpa_limit:
            raise GpaRangeError(gpa, size, self.physical_address_width)
        hva = memory._acquire() + offset
        try:
            flags = (_WRITABLE if writable else 0) | (_EXECUTABLE if executable else 0)
            if _set_guest_memory(fd, size, gpa // PAGE_SIZE, hva, flags) < 0:
                raise _memory_error("map", gpa, size, _kernel.errno())
        except BaseException:
            memory._release()
            raise
        # tuple.__new__: the NamedTuple constructor's argument parsing is most of its cost
        values = (memory, gpa, size, offset, writable, executable, hva)
        region: MemoryRegion = _tuple_new(MemoryRegion, values)
        self._regions.append(region)
        return region

    def unmap_memory(self, region: MemoryRegion) -> None:
        """Unmap a region made by :meth:`map_memory` (MSHV_SET_GUEST_MEMORY with UNMAP)."""
        if _memory_calls is not None:  # the same, in C (mshv._native)
            _memory_calls.unmap(self, region)
            return
        self._unmap_memory(region)

    def _unmap_memory(self, region: MemoryRegion) -> None:
        """unmap_memory in Python (the twin of ``mshv._native.MemoryCalls.unmap``)."""
        fd = self._live()
        if region not in self._regions:
            raise ValueError(f"{region!r} is not mapped in this partition")
        memory, gpa, size, _offset, _writable, _executable, hva = region
        with self._page_writers:  # not while a restore copies into it
            if _set_guest_memory(fd, size, gpa // PAGE_SIZE, hva, _UNMAP) < 0:
                raise _memory_error("unmap", gpa, size, _kernel.errno())
            self._regions.remove(region)
            memory._release()

    # -- hypercalls -----------------------------------------------------------------------
    def hvcall(self, code: int, data: bytes, output_size: int = 0, reps: int = 0) -> HvcallResult:
        """Pass hypercall ``code`` through (MSHV_ROOT_HVCALL on the partition fd)."""
        return hvcall(self._live(), code, data, output_size, reps, fd_kind="partition")

    def get_property(self, code: int) -> int:
        """Read a partition property (HvCallGetPartitionProperty)."""
        return _get_property(self._live(), code)

    def set_property(self, code: int, value: int) -> None:
        """Write a partition property (HvCallSetPartitionProperty)."""
        data = HvcallInput("struct hv_input_set_partition_property")
        data.header.property_code = int(code)
        data.header.property_value = value
        hvcall(self._live(), lib.HVCALL_SET_PARTITION_PROPERTY, data.to_bytes())

    # -- interrupts (mshv.interrupts) -----------------------------------------------------
    def irqfd(self, eventfd: EventFd | int, gsi: int, resample: EventFd | int | None = None) -> Irqfd:
        """Bind ``eventfd`` to ``gsi`` (MSHV_IRQFD); the handle's ``close()`` deassigns it."""
        return interrupts.assign_irqfd(self, eventfd, gsi, resample)

    def ioeventfd(
        self, eventfd: EventFd | int, gpa: int, size: int = 0, datamatch: int | None = None
    ) -> Ioeventfd:
        """Turn guest MMIO writes to ``gpa`` into ``eventfd`` signals (MSHV_IOEVENTFD)."""
        return interrupts.assign_ioeventfd(self, eventfd, gpa, size, datamatch)

    def set_msi_routing(self, routes: Mapping[int, MsiRoute]) -> None:
        """Replace the GSI -> MSI routing table (MSHV_SET_MSI_ROUTING)."""
        interrupts.set_msi_routing(self._live(), routes)

    def assert_interrupt(self, vector: int, apic_id: int = 0, **control: Any) -> None:
        """Assert ``vector`` on APIC ``apic_id`` (HvCallAssertVirtualInterrupt); see
        :func:`mshv.interrupts.assert_interrupt` for ``delivery``, ``level``, ``logical``."""
        interrupts.assert_interrupt(self._live(), vector, apic_id, **control)

    # -- dirty and accessed pages (mshv.dirty) ----------------------------------------------
    def enable_dirty_tracking(self, enabled: bool = True) -> None:
        """Switch page access tracking on (property GPA_PAGE_ACCESS_TRACKING)."""
        self._snapshot_base = None
        dirty.enable_tracking(self, enabled)

    def dirty_pages(self, gpa: int, npages: int, clear: bool = True) -> list[int]:
        """GPAs of the pages the guest wrote (MSHV_GET_GPAP_ACCESS_BITMAP); see :mod:`mshv.dirty`."""
        if clear:
            self._snapshot_base = None  # the next restore cannot rely on the dirty bits
        return dirty.dirty_pages(self._live(), gpa, npages, clear)

    def accessed_pages(self, gpa: int, npages: int, clear: bool = True) -> list[int]:
        """GPAs of the pages the guest accessed (HvCallGetGpaPagesAccessStates); clearing them
        leaves the dirty bits alone. See :mod:`mshv.dirty`."""
        return dirty.accessed_pages(self._live(), gpa, npages, clear)

    def gpa_access_states(self, gpa: int, npages: int, **ops: bool) -> list[PageAccess]:
        """Per-page access states (HvCallGetGpaPagesAccessStates); ``ops``: clear_/set_ accessed/dirty."""
        if ops.get("clear_dirty") or ops.get("clear_accessed"):
            self._snapshot_base = None
        return dirty.gpa_access_states(self._live(), gpa, npages, **ops)

    # -- snapshots (mshv.snapshot) ------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Capture guest memory, every VP's state and the reference time, time frozen around it
        (switches GPA access tracking on); see :mod:`mshv.snapshot`."""
        self._live()
        return snapshot.take(self)

    def restore(
        self, snap: Snapshot, *, full: bool = False, host_written: Iterable[tuple[int, int]] = ()
    ) -> None:
        """Put ``snap`` back, copying only the pages the guest wrote since (unless ``full``);
        ``host_written``: (gpa, size) ranges the host wrote. See :func:`mshv.snapshot.restore`."""
        self._live()
        snapshot.restore(self, snap, full=full, host_written=host_written)

    # -- intercepts (mshv.intercept_config) ---------------------------------------------------
    def install_intercept(self, kind: str, *, access: int | None = None, **parameter: int) -> None:
        """Install an intercept (HvCallInstallIntercept): "io_port", "msr", "cpuid", "exception"..."""
        intercept_config.install_intercept(self._live(), kind, access=access, **parameter)

    def set_cpuid_result(self, leaf: int, subleaf: int | None = None, **registers: Any) -> None:
        """Set CPUID results for every VP (HvCallRegisterInterceptResult, HV_ANY_VP)."""
        intercept_config.set_cpuid_result(self._live(), lib.HV_ANY_VP, leaf, subleaf, **registers)


def _release_all(regions: list[MemoryRegion]) -> None:
    """Give back the memory of every region of a partition its backstop closed."""
    while regions:
        regions.pop().memory._release()


def _get_property(fd: int, code: int) -> int:
    data = HvcallInput("struct hv_input_get_partition_property")
    data.header.property_code = int(code)
    out_size = ffi.sizeof("struct hv_output_get_partition_property")
    res = hvcall(fd, lib.HVCALL_GET_PARTITION_PROPERTY, data.to_bytes(), out_size)
    return int(struct.unpack_from("<Q", res.output)[0])


def _memory_error(what: str, gpa: int, size: int, err: int) -> MshvError:
    """The MshvError of a failed MSHV_SET_GUEST_MEMORY."""
    return MshvError(err, "MSHV_SET_GUEST_MEMORY", details=f"{what} gpa={gpa:#x} size={size:#x}")


def _native_memory_calls() -> Any:
    """Map and unmap in C (``mshv._native``) when the extension was built, else None."""
    try:
        from mshv._native import MemoryCalls

        table = int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
    except (ImportError, NotImplementedError):  # not built, or the snapshot ABI (no C table)
        return None
    return MemoryCalls(
        table, GuestMemory, MemoryRegion, Partition._map_memory, Partition._unmap_memory, _memory_error
    )


_memory_calls = _native_memory_calls()
