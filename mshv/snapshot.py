"""Partition snapshots: capture guest memory, every VP's state and the reference time; put them back.

``partition.snapshot()`` (:func:`take`) captures, time frozen around it (TIME_FREEZE 1, then 0;
REFERENCE_TIME read while frozen), every mapped region's memory; each VP's registers in the
classes of :mod:`mshv.snapshot_registers`, read through ``Vp.get_registers`` (so a completion
still pending in the register page is part of them), and its state blobs; and REFERENCE_TIME.
``partition.restore(snap)`` (:func:`restore`) writes them back, time frozen around it, copying
only the pages the guest wrote since the snapshot or its last restore: GPA access tracking
(MSHV_GET_GPAP_ACCESS_BITMAP, dirty bits read and cleared) finds them. The hypervisor tracks
the guest's writes only: ranges the host wrote are named in ``host_written`` (or ``full``).
A register the partition grants but refuses to read is named in :attr:`Snapshot.unavailable`.
"""

from __future__ import annotations

import functools
import struct
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any, NoReturn

from mshv import _cstruct, _kernel, dirty, regpage
from mshv._abi import ffi, lib
from mshv._batch import CallBatch, fds_array, hvcall_error
from mshv.errors import HvStatus, MshvError
from mshv.hvcall import HvcallInput, hvcall
from mshv.memory import PAGE_SIZE
from mshv.registers import EncodedRegisters, RegisterValue, encode_registers, encoded_chunk_error
from mshv.snapshot_registers import (
    PAGE_REGISTERS,
    REGISTER_CLASSES,
    PartitionFeatures,
    blobs_for,
    registers_for,
)
from mshv.state import aligned_state_buffer, state_buffer_size

if TYPE_CHECKING:
    from mshv.partition import MemoryRegion, Partition
    from mshv.vp import Vp

__all__ = [
    "RegionLayout",
    "Snapshot",
    "SnapshotFormatError",
    "SnapshotMismatch",
    "VpSnapshot",
    "restore",
    "take",
]

_STATE_TYPES = {
    "xsave": lib.MSHV_VP_STATE_XSAVE,
    "lapic": lib.MSHV_VP_STATE_LAPIC,
    "simp": lib.MSHV_VP_STATE_SIMP,
    "siefp": lib.MSHV_VP_STATE_SIEFP,
    "synthetic_timers": lib.MSHV_VP_STATE_SYNTHETIC_TIMERS,
}
_FEATURE_PROPERTIES = {
    "synthetic": lib.HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES,
    "processor0": lib.HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0,
    "processor1": lib.HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1,
    "xsave": lib.HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES,
    "xsave_size": lib.HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE,
}
_PAGE_SET = frozenset(PAGE_REGISTERS)
# The statuses that mean "this partition has no such register/property" (an invalid name is
# INVALID_PARAMETER in the TLFS); any other failure (a running VP: INVALID_VP_STATE) is raised.
_NOT_THERE = frozenset(
    {HvStatus.INVALID_PARAMETER, HvStatus.ACCESS_DENIED, HvStatus.OPERATION_DENIED,
     HvStatus.PROCESSOR_FEATURE_NOT_SUPPORTED, HvStatus.UNKNOWN_PROPERTY}
)  # fmt: skip
_U64 = struct.Struct("<Q")


class SnapshotMismatch(ValueError):
    """A snapshot does not fit the partition it is restored into.

    Attributes:
        what: what differs: "regions", "vps" or a feature ("synthetic", "processor0", ...).
        expected: the snapshot's value; found: the partition's.
    """

    def __init__(self, what: str, expected: object, found: object) -> None:
        super().__init__(
            f"snapshot does not fit this partition: {what} differ: snapshot {expected}, partition {found}"
        )
        self.what = what
        self.expected = expected
        self.found = found


class SnapshotFormatError(ValueError):
    """A snapshot file that cannot be read: not one, another format version, corrupt or cut short."""


@dataclass(frozen=True)
class RegionLayout:
    """One mapped region as a snapshot records it (what a restore compares)."""

    gpa: int
    size: int
    writable: bool
    executable: bool

    def __str__(self) -> str:
        perms = "r" + ("w" if self.writable else "-") + ("x" if self.executable else "-")
        return f"{self.gpa:#x}+{self.size:#x} {perms}"


@dataclass
class VpSnapshot:
    """One VP's captured state: registers by class (name -> value) and state blobs (name -> bytes)."""

    index: int
    registers: dict[str, dict[str, RegisterValue]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


class Snapshot:
    """A partition's captured state (see :mod:`mshv.snapshot`); made by ``Partition.snapshot()``
    or :meth:`load`, put back by ``Partition.restore()``.

    Attributes:
        layout: the mapped regions, by GPA; memory: each region's bytes, in that order.
        vps: the VPs' state by index; reference_time: REFERENCE_TIME (100 ns units).
        features: the partition properties that decided the register set.
        unavailable: what the partition refused to hand over ("vp0.pending_event0" -> status).
    """

    def __init__(
        self,
        layout: tuple[RegionLayout, ...],
        memory: tuple[bytes, ...],
        vps: dict[int, VpSnapshot],
        reference_time: int | None,
        features: PartitionFeatures,
        unavailable: dict[str, str],
    ) -> None:
        if len(layout) != len(memory) or any(len(m) != r.size for r, m in zip(layout, memory, strict=True)):
            raise ValueError("memory must hold one bytes object of the region's size per region")
        self.layout = layout
        self.memory = memory
        self.vps = vps
        self.reference_time = reference_time
        self.features = features
        self.unavailable = unavailable
        self._origin: weakref.ref[Partition] | None = None
        self._plans: dict[int, _VpPlan] | None = None  # the restore's inputs, encoded once
        self._reference_input = b""

    def __repr__(self) -> str:
        size = sum(r.size for r in self.layout)
        return f"<Snapshot regions={len(self.layout)} memory={size:#x} vps={sorted(self.vps)}>"

    def read(self, gpa: int, size: int) -> bytes:
        """The guest memory at ``gpa`` as the snapshot holds it (one region)."""
        for region, data in zip(self.layout, self.memory, strict=True):
            if region.gpa <= gpa and gpa + size <= region.gpa + region.size:
                return data[gpa - region.gpa : gpa - region.gpa + size]
        raise ValueError(f"{gpa:#x}+{size:#x} is not inside one region of the snapshot")

    def read_register(self, vp_index: int, name: str) -> RegisterValue:
        """The value the snapshot holds for register ``name`` of VP ``vp_index`` (any class)."""
        for registers in self.vps[vp_index].registers.values():
            if name in registers:
                return registers[name]
        raise KeyError(f"the snapshot holds no register {name!r} of VP {vp_index}")

    def save(self, path: str | PathLike[str]) -> None:
        """Write the snapshot to ``path`` in the format of :mod:`mshv.snapshot_file`."""
        from mshv import snapshot_file  # (it imports this module)

        snapshot_file.save(self, path)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Snapshot:
        """Read a snapshot file; raises :class:`SnapshotFormatError` for a file it cannot trust."""
        from mshv import snapshot_file

        return snapshot_file.load(path)


# -- capture -------------------------------------------------------------------------------
def _features(partition: Partition, unavailable: dict[str, str]) -> PartitionFeatures:
    values: dict[str, int] = {"flags": partition.flags}
    for name, code in _FEATURE_PROPERTIES.items():
        try:
            values[name] = partition.get_property(code)
        except MshvError as exc:
            if exc.hv_status not in _NOT_THERE:
                raise
            values[name] = 0
            unavailable[f"property.{name}"] = _reason(exc)
    return PartitionFeatures(**values)


def _reason(exc: MshvError) -> str:
    return exc.hv_status.name if exc.hv_status is not None else f"errno {exc.errno}"


def _read_registers(vp: Vp, names: tuple[str, ...], unavailable: dict[str, str]) -> dict[str, RegisterValue]:
    """Read ``names``; a register the hypervisor refuses (the batch stops at it) is left out."""
    wanted = list(names)
    while True:
        try:
            return vp.get_registers(wanted)
        except MshvError as exc:
            if exc.hv_status not in _NOT_THERE or exc.reps_done is None or exc.reps_done >= len(wanted):
                raise
            unavailable[f"vp{vp.index}.{wanted[exc.reps_done]}"] = _reason(exc)
            del wanted[exc.reps_done]


def _capture_vp(vp: Vp, features: PartitionFeatures, first: bool, unavailable: dict[str, str]) -> VpSnapshot:
    state = VpSnapshot(vp.index)
    for klass, names in registers_for(features, first).items():
        state.registers[klass] = _read_registers(vp, names, unavailable)
    for name in blobs_for(features):
        try:
            state.blobs[name] = vp.get_state(_STATE_TYPES[name])
        except MshvError as exc:
            if exc.hv_status not in _NOT_THERE:
                raise
            unavailable[f"vp{vp.index}.{name}"] = _reason(exc)
    return state


def take(partition: Partition) -> Snapshot:
    """Capture ``partition`` (see :mod:`mshv.snapshot`); its VPs must not be running (a VP's
    register calls wait for its MSHV_RUN_VP to return: the VP fd's mutex, mshv_vp_ioctl).

    Raises:
        MshvError: a call the snapshot cannot do without failed (e.g. a VP is running).
    """
    with _FrozenTime(partition.fd, read_time=True) as time:
        unavailable: dict[str, str] = {}
        features = _features(partition, unavailable)
        vps = partition.vps
        first = min(vps, default=0)
        states = {i: _capture_vp(vp, features, i == first, unavailable) for i, vp in sorted(vps.items())}
        regions = sorted(partition.regions, key=lambda r: r.gpa)
        if not _tracking_on(partition):
            partition.enable_dirty_tracking()
        for region in regions:
            if region.writable:  # the pages written before now are in the copy: clear their bits
                dirty.dirty_pages(partition.fd, region.gpa, region.size // PAGE_SIZE)
        memory = tuple(bytes(_region_view(region)) for region in regions)
        layout = tuple(RegionLayout(r.gpa, r.size, r.writable, r.executable) for r in regions)
        snap = Snapshot(layout, memory, states, time.reference_time, features, unavailable)
    snap._origin = weakref.ref(partition)
    partition._snapshot_base = (snap, tuple(partition.regions), tuple(partition.vps))
    return snap


def _tracking_on(partition: Partition) -> bool:
    try:
        return bool(partition.get_property(lib.HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING))
    except MshvError:
        return False


def _region_view(region: MemoryRegion) -> memoryview:
    return region.memory.view()[region.offset : region.offset + region.size]


# -- time ------------------------------------------------------------------------------------
def _property_input(code: int, value: int | None = None) -> bytes:
    if value is None:
        data = HvcallInput("struct hv_input_get_partition_property")
    else:
        data = HvcallInput("struct hv_input_set_partition_property")
        data.header.property_value = value
    data.header.property_code = code
    return data.to_bytes()


_GET_FROZEN = _property_input(lib.HV_PARTITION_PROPERTY_TIME_FREEZE)
_GET_REFERENCE_TIME = _property_input(lib.HV_PARTITION_PROPERTY_REFERENCE_TIME)
_FREEZE = _property_input(lib.HV_PARTITION_PROPERTY_TIME_FREEZE, 1)
_THAW = _property_input(lib.HV_PARTITION_PROPERTY_TIME_FREEZE, 0)
_GET_SIZE = ffi.sizeof("struct hv_output_get_partition_property")


def _get(fd: int, data: bytes) -> int:
    return int(_U64.unpack_from(hvcall(fd, lib.HVCALL_GET_PARTITION_PROPERTY, data, _GET_SIZE).output)[0])


class _FrozenTime:
    """TIME_FREEZE = 1 for the block, then 0 unless time was already frozen before it
    (OpenVMM's freeze_time/thaw_time keep the same rule); with ``read_time``, reads
    REFERENCE_TIME while frozen. The three TIME_FREEZE calls are hypercalls one by one here,
    a restore's prepared batches in :class:`_PreparedFrozenTime`."""

    def __init__(self, fd: int, read_time: bool = False) -> None:
        self.fd = fd
        self.was_frozen = False
        self.read_time = read_time
        self.reference_time: int | None = None

    def _read_frozen(self) -> int:
        return _get(self.fd, _GET_FROZEN)

    def _freeze(self) -> None:
        hvcall(self.fd, lib.HVCALL_SET_PARTITION_PROPERTY, _FREEZE)

    def _thaw(self) -> None:
        hvcall(self.fd, lib.HVCALL_SET_PARTITION_PROPERTY, _THAW)

    def __enter__(self) -> _FrozenTime:
        try:
            self.was_frozen = bool(self._read_frozen())
        except MshvError as exc:  # a hypervisor that cannot read TIME_FREEZE back
            if exc.hv_status is None:
                raise
        if not self.was_frozen:
            self._freeze()
        if self.read_time:
            self.reference_time = _get(self.fd, _GET_REFERENCE_TIME)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.was_frozen:
            self._thaw()


# -- restore ----------------------------------------------------------------------------------
class _StateWrite:
    """One MSHV_SET_VP_STATE of a restore, made once: the blob in a page-aligned buffer of whole
    pages, as ``Vp.set_state`` lays it out."""

    def __init__(self, state_type: int, data: bytes) -> None:
        self.state_type = state_type
        self.size = state_buffer_size(len(data))
        self._raw, aligned = aligned_state_buffer(self.size)
        ffi.memmove(aligned, data, len(data))
        self.address = int(ffi.cast("uintptr_t", aligned))

    def args(self) -> Any:
        """The ioctl's argument as made ready (the call batch copies it before each call: the
        kernel writes the size it used back into it, mshv_vp_ioctl_get_set_state)."""
        return _cstruct.new(
            "struct mshv_get_set_vp_state", type=self.state_type, buf_sz=self.size, buf_ptr=self.address
        )

    def error(self, vp_index: int) -> Callable[[int], MshvError]:
        """The error of the call failing with an errno, as ``_kernel.ioctl`` raises it."""
        name, details = _kernel.ioctl_name(lib.MSHV_SET_VP_STATE), f"vp={vp_index} type={self.state_type}"
        return lambda err: MshvError(err, name, details=details)


@dataclass
class _VpPlan:
    """One VP's restore, encoded once per snapshot: hypercall inputs and blobs in order."""

    registers: EncodedRegisters  # every class but the events; the page's registers last
    page: dict[str, int]  # GPRs, RIP, RFLAGS: the register page's copy of them
    packed: bytes | None  # the same, packed for RegisterPage.write_packed when it holds them all
    blobs: tuple[_StateWrite, ...]
    events: EncodedRegisters


def _plan(state: VpSnapshot) -> _VpPlan:
    batch: dict[str | int, RegisterValue] = {}
    page: dict[str, int] = {}
    for klass in REGISTER_CLASSES[:-1]:
        for name, value in state.registers.get(klass, {}).items():
            if name in _PAGE_SET and isinstance(value, int):
                page[name] = value
            else:
                batch[name] = value
    batch.update(page)  # after the rest, where a second call used to set them
    events: dict[str | int, RegisterValue] = {}
    events.update(state.registers.get("events", {}).items())
    blobs = tuple(_StateWrite(_STATE_TYPES[name], data) for name, data in state.blobs.items())
    registers, events_input = encode_registers(state.index, batch), encode_registers(state.index, events)
    return _VpPlan(registers, page, regpage.pack(page), blobs, events_input)


_Written = list[tuple[int, tuple[int, int]]]  # host-written ranges: (region index, (offset, size))


def _add_registers(calls: CallBatch, slot: int, encoded: EncodedRegisters) -> None:
    for chunk, (data, count) in enumerate(zip(encoded.inputs, encoded.counts, strict=True)):
        error = encoded_chunk_error(encoded, chunk)
        calls.add_hvcall(slot, lib.HVCALL_SET_VP_REGISTERS, data, reps=count, error=error)


class _Program:
    """A restore of one snapshot into one partition, made ready (mshv._batch): TIME_FREEZE 1,
    each writable region's dirty bits read and cleared, (the page copies,) each VP's registers,
    state blobs and pending events, REFERENCE_TIME, TIME_FREEZE 0, and the fds they go to.
    Valid while the partition keeps the same regions and VP objects (:meth:`live_vps`; creating
    a VP drops it);
    ``layout`` is what the partition's ``_snapshot_base`` holds beside the snapshot."""

    def __init__(self, partition: Partition, snap: Snapshot, mapped: list[MemoryRegion], vps: dict[int, Vp]):
        assert snap._plans is not None
        self.snap = weakref.ref(snap)  # (the partition's _snapshot_base keeps the last one alive)
        self.layout = (tuple(mapped), tuple(vps))
        self.mapped = list(mapped)
        self.regions = sorted(mapped, key=lambda r: r.gpa)
        order = list(snap._plans)
        self.vps = tuple((weakref.ref(vps[i]), vps[i].fd) for i in order)
        self.plans = tuple(snap._plans[i] for i in order)
        fd = partition.fd
        self.fds = fds_array([fd] + [vps[i].fd for i in order])
        get, set_ = lib.HVCALL_GET_PARTITION_PROPERTY, lib.HVCALL_SET_PARTITION_PROPERTY
        self.read_frozen = CallBatch()
        self.frozen = self.read_frozen.add_hvcall(
            0, get, _GET_FROZEN, output_size=_GET_SIZE, error=hvcall_error(get)
        )
        self.freeze = CallBatch()
        self.freeze.add_hvcall(0, set_, _FREEZE, error=hvcall_error(set_))
        self.bitmaps = CallBatch()  # each writable region's dirty bits, read and cleared
        self.dirty: list[tuple[int, Any, int]] = []  # (region index, bitmap, pages)
        for index, region in enumerate(self.regions):
            if region.writable:
                npages = region.size // PAGE_SIZE
                arg, bitmap = dirty.bitmap_request(lib.MSHV_GPAP_ACCESS_TYPE_DIRTY, region.gpa, npages)
                error = functools.partial(dirty.bitmap_error, fd, gpa=region.gpa, npages=npages)
                self.bitmaps.add_ioctl(0, lib.MSHV_GET_GPAP_ACCESS_BITMAP, arg, error)
                self.dirty.append((index, bitmap, npages))
        self.vp_calls = CallBatch()  # each VP's registers, blobs, events; REFERENCE_TIME
        for slot, (index, plan) in enumerate(zip(order, self.plans, strict=True), start=1):
            _add_registers(self.vp_calls, slot, plan.registers)
            for blob in plan.blobs:
                self.vp_calls.add_ioctl(slot, lib.MSHV_SET_VP_STATE, blob.args(), blob.error(index))
            _add_registers(self.vp_calls, slot, plan.events)
        if snap._reference_input:
            self.vp_calls.add_hvcall(0, set_, snap._reference_input, error=hvcall_error(set_))
        self.thaw = CallBatch()
        self.thaw.add_hvcall(0, set_, _THAW, error=hvcall_error(set_))
        self._native: _OneCallProgram | None = None  # made at the first restore in one call

    def live_vps(self, partition: Partition, snap: Snapshot) -> list[Vp] | None:
        """The VPs to restore, if this program still fits ``partition`` and ``snap``; else None."""
        if snap is not self.snap() or partition._regions != self.mapped:
            return None  # (a VP created since dropped the program: Partition.create_vp)
        live = []
        for ref, fd in self.vps:
            vp = ref()
            if vp is None or vp._fd != fd:
                return None
            live.append(vp)
        return live

    def run(self, snap: Snapshot, vps: list[Vp], incremental: bool, written: _Written) -> None:
        """The restore: time frozen (unless it already was), pages, VPs, REFERENCE_TIME, thaw.
        A dirty-page restore is one library call (:meth:`_run_in_one_call`)."""
        if incremental and _RESTORE_IN_ONE_CALL:
            if written:  # (no call reads guest memory: the order is free)
                self._copy_written(snap, written)
            self._run_in_one_call(snap, vps)
            return
        with _PreparedFrozenTime(self):
            self.bitmaps.run(self.fds)
            self._copy_memory(snap, incremental, written)
            for vp in vps:  # what the register page would carry to the next run is dropped
                page = vp.register_page
                if page is not None:
                    page.raw.dirty = 0
            self.vp_calls.run(self.fds)
        for vp, plan in zip(vps, self.plans, strict=True):
            _write_page(vp, plan)

    def _run_in_one_call(self, snap: Snapshot, vps: list[Vp]) -> None:
        """:meth:`run` of a dirty-page restore as one ``lib.mshv_restore`` (build_ext/restore_program.py):
        right after a guest run, the same steps issued from Python took 1.4-1.8x as long."""
        native = self._native
        if native is None:
            native = self._native = _OneCallProgram(self, snap, vps)
        outcome = native.outcome
        # cffi releases the GIL; restore() holds the partition's page writers lock, so no VP
        # unmaps its register page and no region goes (Partition.unmap_memory) meanwhile
        if lib.mshv_restore(native.program, self.fds, outcome) != lib.MSHV_RESTORE_DONE:
            self._raise(outcome)
        for slot in native.unpacked:  # the register pages the call did not write
            _write_page(vps[slot], self.plans[slot])

    def _raise(self, outcome: Any) -> NoReturn:
        """The error of the step ``lib.mshv_restore`` stopped at, as :meth:`run` raises it: a
        thaw that failed after it is raised with the first failure as its context."""
        batches = {
            lib.MSHV_RESTORE_READ_FROZEN: self.read_frozen,
            lib.MSHV_RESTORE_FREEZE: self.freeze,
            lib.MSHV_RESTORE_BITMAPS: self.bitmaps,
            lib.MSHV_RESTORE_VP_CALLS: self.vp_calls,
            lib.MSHV_RESTORE_THAW: self.thaw,
        }
        error = batches[outcome.batch].error(outcome.step, outcome.err)
        if outcome.thaw_err >= 0:
            thaw_error = self.thaw.error(0, outcome.thaw_err)
            thaw_error.__context__ = error
            raise thaw_error
        raise error

    def _copy_memory(self, snap: Snapshot, incremental: bool, written: _Written) -> None:
        """The snapshot's pages back: only those the guest dirtied when ``incremental``, else all
        (the dirty bits were read and cleared either way, so the next restore starts here). The
        dirty pages are copied in C, one memcpy per run (build_ext/page_copy.py)."""
        if incremental:
            for index, bitmap, npages in self.dirty:
                dst = ffi.from_buffer(_region_view(self.regions[index]), require_writable=True)
                lib.mshv_copy_bitmap_pages(
                    dst, ffi.from_buffer(snap.memory[index]), bitmap, npages, PAGE_SIZE
                )
        else:
            for region, data in zip(self.regions, snap.memory, strict=True):
                _region_view(region)[:] = data
        self._copy_written(snap, written)

    def _copy_written(self, snap: Snapshot, written: _Written) -> None:
        """The snapshot's bytes back over the ranges the host wrote."""
        for index, (offset, size) in written:
            _region_view(self.regions[index])[offset : offset + size] = snap.memory[index][
                offset : offset + size
            ]


#: A dirty-page restore as one ``lib.mshv_restore`` (tests switch it off to compare both ways).
_RESTORE_IN_ONE_CALL = True


class _OneCallProgram:
    """The ``struct mshv_restore_program`` of a :class:`_Program`, and what its pointers point
    at. It holds no reference to the snapshot's memory (the program's snapshot is weak): the
    source addresses are used only while that snapshot is the one restored, alive."""

    def __init__(self, program: _Program, snap: Snapshot, vps: list[Vp]) -> None:
        self.outcome = ffi.new("struct mshv_restore_outcome *")
        regions = ffi.new("struct mshv_restore_region[]", max(1, len(program.dirty)))
        for entry, (index, bitmap, npages) in zip(regions, program.dirty, strict=False):
            region = program.regions[index]
            entry.dst = ffi.cast("void *", region.memory.address + region.offset)
            # the address only: a bytes object does not move, and no reference stays behind
            entry.src = ffi.cast("void *", int(ffi.cast("uintptr_t", ffi.from_buffer(snap.memory[index]))))
            entry.bitmap, entry.npages = bitmap, npages
        self.pages: list[tuple[Any, Any]] = []  # (register page cdata, packed registers)
        self.unpacked: list[int] = []  # VPs whose page :func:`_write_page` writes after the call
        offset = ffi.offsetof("struct hv_vp_register_page", regpage.PACKED[0])
        for slot, (vp, plan) in enumerate(zip(vps, program.plans, strict=True)):
            page = vp.register_page
            if page is not None:
                packed = plan.packed if regpage._PACKED_ONE_BLOCK else None
                self.pages.append((page.raw, ffi.from_buffer(packed) if packed is not None else ffi.NULL))
                if packed is None:
                    self.unpacked.append(slot)
        pages = ffi.new("struct mshv_restore_page[]", max(1, len(self.pages)))
        for entry, (raw, packed) in zip(pages, self.pages, strict=False):
            entry.page, entry.packed = raw, packed
            entry.offset, entry.size = offset, 8 * len(regpage.PACKED)
        self.regions, self.page_entries = regions, pages
        self.program = ffi.new("struct mshv_restore_program *", {
            "read_frozen": program.read_frozen.steps(), "frozen": program.frozen,
            "freeze": program.freeze.steps(),
            "bitmaps": program.bitmaps.steps(), "nbitmaps": len(program.bitmaps),
            "nregions": len(program.dirty), "regions": regions,
            "vp_calls": program.vp_calls.steps(), "nvp_calls": len(program.vp_calls),
            "npages": len(self.pages), "pages": pages,
            "thaw": program.thaw.steps(),
        })  # fmt: skip


class _PreparedFrozenTime(_FrozenTime):
    """:class:`_FrozenTime` through a restore program's prepared TIME_FREEZE calls."""

    def __init__(self, program: _Program) -> None:
        super().__init__(int(program.fds[0]))
        self.program = program

    def _read_frozen(self) -> int:
        self.program.read_frozen.run(self.program.fds)
        return int(_U64.unpack_from(ffi.buffer(self.program.frozen))[0])

    def _freeze(self) -> None:
        self.program.freeze.run(self.program.fds)

    def _thaw(self) -> None:
        self.program.thaw.run(self.program.fds)


def _write_page(vp: Vp, plan: _VpPlan) -> None:
    """The register page's copy of the GPRs, RIP and RFLAGS brought in step with what the
    restore set, as ``Vp.set_registers`` does (the hypervisor does not update the page)."""
    page = vp.register_page
    if page is None:
        return
    if plan.packed is not None:
        page.write_packed(plan.packed, mark_dirty=False)
    else:
        page.write_all(plan.page, mark_dirty=False)


def _check_fits(partition: Partition, snap: Snapshot, regions: list[MemoryRegion]) -> None:
    layout = tuple(RegionLayout(r.gpa, r.size, r.writable, r.executable) for r in regions)
    if layout != snap.layout:
        raise SnapshotMismatch("regions", [str(r) for r in snap.layout], [str(r) for r in layout])
    if sorted(partition.vps) != sorted(snap.vps):
        raise SnapshotMismatch("vps", sorted(snap.vps), sorted(partition.vps))
    if snap._origin is not None and snap._origin() is partition:
        return
    found = _features(partition, {})
    for name in ("flags", *_FEATURE_PROPERTIES):
        if getattr(found, name) != getattr(snap.features, name):
            raise SnapshotMismatch(name, hex(getattr(snap.features, name)), hex(getattr(found, name)))
    snap._origin = weakref.ref(partition)


def restore(
    partition: Partition, snap: Snapshot, *, full: bool = False, host_written: Iterable[tuple[int, int]] = ()
) -> None:
    """Put ``snap`` back into ``partition`` (see :mod:`mshv.snapshot`); its VPs must not be running.

    Args:
        full: copy every page, not only those written since the snapshot or its last restore.
        host_written: (gpa, size) ranges the host wrote since then (the hypervisor tracks only
            the guest's writes); copied back too.

    Raises:
        SnapshotMismatch: the partition's regions, VPs or features differ from the snapshot's.
        MshvError: a call of the restore failed (e.g. a VP is running).
    """
    with partition._page_writers:  # from the checks on: no VP or region goes meanwhile
        program = partition._restore_program
        vps = program.live_vps(partition, snap) if program is not None else None
        if program is None or vps is None:
            mapped, by_index = partition.regions, partition.vps
            if partition._snapshot_base != (snap, tuple(mapped), tuple(by_index)):
                _check_fits(partition, snap, sorted(mapped, key=lambda r: r.gpa))
            if snap._plans is None:
                snap._plans = {index: _plan(vp) for index, vp in snap.vps.items()}
                if snap.reference_time is not None:
                    code = lib.HV_PARTITION_PROPERTY_REFERENCE_TIME
                    snap._reference_input = _property_input(code, snap.reference_time)
            program = partition._restore_program = _Program(partition, snap, mapped, by_index)
            vps = [by_index[index] for index in snap._plans]
        written = [_check_range(snap, gpa, size) for gpa, size in host_written] if host_written else []
        # the last snapshot or restore was this one, here: the dirty bits say what changed since
        state = (snap, *program.layout)
        incremental = partition._snapshot_base == state and not full
        partition._snapshot_base = None  # until this restore completes
        if not incremental and not _tracking_on(partition):
            partition.enable_dirty_tracking()
        program.run(snap, vps, incremental, written)
        partition._snapshot_base = state


def _check_range(snap: Snapshot, gpa: int, size: int) -> tuple[int, tuple[int, int]]:
    """(region index, (offset, size)) of a host-written range; it must lie in one region."""
    for index, region in enumerate(snap.layout):
        if region.gpa <= gpa and gpa + size <= region.gpa + region.size and size >= 0:
            return index, (gpa - region.gpa, size)
    raise ValueError(f"host_written range {gpa:#x}+{size:#x} is not inside one mapped region")
