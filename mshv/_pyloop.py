"""The pure-Python twin of the Cython run loop (``mshv._runloop.NativeEngine``).

Same interface and behaviour, used when the extension was not built or when
``RunLoop(vp, native=False)`` asks for it. It peeks at the ``hv_message``
through cffi instead of decoding it into objects, finishes buffer and counter
ports and simple MOVs on byte-backed MMIO through the VP's register page (or
through the VP's ``complete_registers`` when the page is not valid), and hands
everything else (INS/OUTS included) to ``slow``.
"""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv._msgread import PAYLOAD_OFFSET, Reader
from mshv.errors import MshvError
from mshv.handlers import bytes_read, bytes_write
from mshv.x86._mov import decode_mov
from mshv.x86.cpu import code_bits, in_rax, merge_gpr, replaces_gpr

__all__ = ["KINDS", "PyEngine"]

KINDS = {"buffer": 1, "counter": 2, "bytes": 3, "python": 4}
_BUFFER, _COUNTER, _BYTES, _PYTHON = KINDS.values()
MAX_PORT_ENTRIES, MAX_MMIO_ENTRIES, MAX_STOP_TYPES, MAX_STOP_PORTS = 64, 32, 32, 64

_RUN_VP = lib.MSHV_RUN_VP
_HALT = lib.HVMSG_X64_HALT
_IO = lib.HVMSG_X64_IO_PORT_INTERCEPT
_MEMORY = (lib.HVMSG_UNMAPPED_GPA, lib.HVMSG_GPA_INTERCEPT)
_WRITE = lib.HV_INTERCEPT_ACCESS_WRITE
_NO_LIMIT = 1 << 64  # above any exit count: run() with no max_exits
_STRING = lib.HV_X64_IO_PORT_ACCESS_INFO_STRING_OP
_SIZE_MASK = lib.HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK
_SIZE_SHIFT = lib.HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
_LEN_MASK = lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK
_LEN_SHIFT = lib.HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT
_WITH_MESSAGE = ("halt", "message_type", "port", "unhandled")
_DIRTY_IP = 1 << lib.HV_X64_REGISTER_CLASS_IP
_DIRTY_IP_GENERAL = _DIRTY_IP | 1 << lib.HV_X64_REGISTER_CLASS_GENERAL
_ioctl_raw = _kernel.ioctl_raw
_EINTR = errno.EINTR
# What a port IO exit needs, in offset order: one struct.unpack_from of the payload.
_IO_FIELDS = Reader(
    "struct hv_x64_io_port_intercept_message",
    ["header.instruction_length_cr8", "header.intercept_access_type", "header.rip", "port_number",
     "access_info", "rax"],
)  # fmt: skip
_read_io = _IO_FIELDS.read
# What a memory exit needs for a MOV, in offset order (as the Cython loop's _mmio_bytes reads them).
_MEMORY_FIELDS = Reader(
    "struct hv_x64_memory_intercept_message",
    ["header.intercept_access_type", "header.execution_state", "header.cs_segment.attributes",
     "header.rip", "instruction_byte_count", "guest_physical_address", "instruction_bytes"],
)  # fmt: skip
_read_memory = _MEMORY_FIELDS.read
_MOV_CACHE_SIZE = 256  # the MOV sites a guest's MMIO comes from: a few
# (unpack_from, pack_into) of a little-endian integer of each MOV size: a third of the time of
# int.from_bytes of a slice, and of a slice assignment of int.to_bytes
_LITTLE_ENDIAN = {c.size: (c.unpack_from, c.pack_into) for c in map(struct.Struct, ("<B", "<H", "<I", "<Q"))}


def _index(ctype: str, field: str, width: int) -> int:
    """Where ``field`` of ``ctype`` is in a memoryview of the struct cast to ``width``-byte items."""
    offset: int = ffi.offsetof(ctype, field)
    assert offset % width == 0, (ctype, field)
    return offset // width


# The message type as item 0.. of the run buffer seen as uint32s (hv_message starts it), and the
# register page's isvalid (bytes), dirty (uint32s), rax and rip (uint64s): memoryview items are
# read and written without a cffi call each.
_TYPE_AT = (
    ffi.offsetof("struct hv_message", "header") + ffi.offsetof("struct hv_message_header", "message_type")
) // 4
_PAGE = "struct hv_vp_register_page"
_ISVALID, _DIRTY, _RAX, _RIP = (
    _index(_PAGE, "isvalid", 1),
    _index(_PAGE, "dirty", 4),
    _index(_PAGE, "rax", 8),
    _index(_PAGE, "rip", 8),
)


def _check_signals() -> None:
    """Entering a Python function runs pending signal handlers (their exception propagates)."""


@dataclass(slots=True)
class _Entry:
    slot: int
    first: int
    last: int
    kind: int
    hits: int = 0
    output: bytearray | None = None
    inq: bytearray = field(default_factory=bytearray)
    inq_pos: int = 0
    view: memoryview | None = None  # held on an MMIO bytearray: no resize while registered
    data: bytearray | None = None
    # MMIO bytes: read(gpa, size) and write(gpa, size, value) for the MOV, made once
    read: Callable[[int, int], int] | None = None
    write: Callable[[int, int, int], None] | None = None


def _byte_access(
    data: bytearray, first: int
) -> tuple[Callable[[int, int], int], Callable[[int, int, int], None]]:
    """read(gpa, size) and write(gpa, size, value) of the bytes ``data`` at GPA ``first``: within
    ``data`` in one frame, across its end through handlers.bytes_read/bytes_write (the rule there)."""
    end = len(data)  # fixed: the registered bytearray is held by a memoryview

    def read(gpa: int, size: int) -> int:
        offset = gpa - first
        if offset + size <= end:
            return int.from_bytes(data[offset : offset + size], "little")
        return bytes_read(data, offset, size)

    def write(gpa: int, size: int, value: int) -> None:
        offset = gpa - first
        if offset + size <= end and value >> (8 * size) == 0:
            data[offset : offset + size] = value.to_bytes(size, "little")
        else:
            bytes_write(data, offset, size, value)

    return read, write


class PyEngine:
    """The loop behind :class:`mshv.runloop.RunLoop` (native=False); see NativeEngine."""

    def __init__(
        self,
        fd: int,
        page: Any,
        kick: Any,
        take_request: Callable[[], bool],
        complete: Callable[[Mapping[str, int]], None],
    ) -> None:
        self._fd = fd
        self._page = page  # the VP's struct hv_vp_register_page * (borrowed), or None
        self._kick = kick  # the VP's interrupt request word (int[1])
        self._kick_view = memoryview(ffi.buffer(kick)).cast("i")  # the same word, read without cffi
        self._take_request = take_request
        self._complete = complete  # Vp.complete_registers: where the page is not valid
        self._slow: Callable[[int, bytes], bool] | None = None  # set for the time of run()
        self._buf = ffi.new("struct mshv_run_vp *")
        self._msg = ffi.cast("struct hv_message *", self._buf)
        self._io = ffi.cast("struct hv_x64_io_port_intercept_message *", self._msg.payload)
        self._view = memoryview(ffi.buffer(self._buf))  # the message is at offset 0
        self._words = self._view.cast("I")
        # the page as bytes, uint32s and uint64s (None: no page)
        self._page_views: tuple[memoryview, memoryview, memoryview] | None = None
        if page is not None:
            raw = memoryview(ffi.buffer(page, lib.MSHV_HV_PAGE_SIZE))
            self._page_views = (raw, raw.cast("I"), raw.cast("Q"))
        self._last_port: _Entry | None = None  # the entries that matched last (one-entry caches)
        self._last_mmio: _Entry | None = None
        # (instruction bytes, count, execution state, CS attributes) -> the MOV as _decode_mov makes it
        self._movs: dict[tuple[bytes, int, int, int], tuple[Any, ...]] = {}
        self._ports: list[_Entry] = []
        self._mmio: list[_Entry] = []
        self._running = False
        self._closed = False
        self.exits = 0

    def close(self) -> None:
        if self._running:
            raise RuntimeError("the run loop is running: stop() it first")
        for entry in self._mmio:
            if entry.view is not None:
                entry.view.release()
        self._ports.clear()
        self._mmio.clear()
        self._closed = True

    def _editable(self) -> None:
        if self._closed:
            raise ValueError("the run loop is closed")
        if self._running:
            raise RuntimeError("handlers cannot change while the loop runs")

    # -- handlers ----------------------------------------------------------------------------
    def add_port(self, slot: int, first: int, last: int, kind: int, output: bytearray | None = None) -> None:
        self._editable()
        if len(self._ports) >= MAX_PORT_ENTRIES:
            raise ValueError(f"at most {MAX_PORT_ENTRIES} port handlers")
        if kind == _BUFFER and type(output) is not bytearray:
            raise TypeError("a port buffer's output must be a bytearray")
        self._ports.append(_Entry(slot, first, last, kind, output=output))

    def add_mmio(self, slot: int, gpa: int, size: int, kind: int, data: bytearray | None = None) -> None:
        self._editable()
        if len(self._mmio) >= MAX_MMIO_ENTRIES:
            raise ValueError(f"at most {MAX_MMIO_ENTRIES} MMIO handlers")
        entry = _Entry(slot, gpa, gpa + size - 1, kind, data=data)
        if kind == _BYTES and data is not None:
            entry.view = memoryview(data)
            entry.read, entry.write = _byte_access(data, gpa)
        self._mmio.append(entry)

    def remove(self, slot: int) -> bool:
        self._editable()
        for table in (self._ports, self._mmio):
            for i, entry in enumerate(table):
                if entry.slot == slot:
                    if entry.view is not None:
                        entry.view.release()
                    del table[i]
                    self._last_port = self._last_mmio = None
                    return True
        return False

    def _entry(self, slot: int) -> _Entry:
        for entry in self._ports + self._mmio:
            if entry.slot == slot:
                return entry
        raise KeyError(slot)

    def feed(self, slot: int, data: bytes) -> None:
        entry = self._entry(slot)
        del entry.inq[: entry.inq_pos]
        entry.inq_pos = 0
        entry.inq += data

    def pending(self, slot: int) -> int:
        entry = self._entry(slot)
        return len(entry.inq) - entry.inq_pos

    def take(self, slot: int, size: int) -> bytes:
        entry = self._entry(slot)
        chunk = bytes(entry.inq[entry.inq_pos : entry.inq_pos + size])
        entry.inq_pos += len(chunk)
        return chunk

    def hits(self, slot: int) -> int:
        return self._entry(slot).hits

    # -- the loop ----------------------------------------------------------------------------
    def run(
        self,
        max_exits: int,
        stop_types: tuple[int, ...],
        stop_ports: tuple[int, ...],
        deadline: float,
        stop_on_halt: bool,
        slow: Callable[[int, bytes], bool],
    ) -> tuple[str, int, bytes | None]:
        if self._closed:
            raise ValueError("the run loop is closed")
        if self._running:
            raise RuntimeError("the run loop is already running")
        if len(stop_types) > MAX_STOP_TYPES or len(stop_ports) > MAX_STOP_PORTS:
            raise ValueError(f"at most {MAX_STOP_TYPES} message types and {MAX_STOP_PORTS} ports")
        start = self.exits
        self._running = True
        self._slow = slow
        try:
            reason = self._loop(
                max_exits, frozenset(stop_types), frozenset(stop_ports), deadline, stop_on_halt
            )
        finally:
            self._running = False
            self._slow = None
        raw = bytes(ffi.buffer(self._msg, lib.HV_MESSAGE_SIZE)) if reason in _WITH_MESSAGE else None
        return reason, self.exits - start, raw

    def _loop(
        self,
        max_exits: int,
        stop_types: frozenset[int],
        stop_ports: frozenset[int],
        deadline: float,
        stop_on_halt: bool,
    ) -> str:
        # self.exits counts every exit as it comes (a Python handler may read it); the limit is
        # the count to stop at
        stop_at = self.exits + max_exits if max_exits >= 0 else _NO_LIMIT
        timed = deadline >= 0
        fd, buf, words, kick, view = self._fd, self._buf, self._words, self._kick_view, self._view
        memory, movs, run_vp, payload = _MEMORY, self._movs, _RUN_VP, PAYLOAD_OFFSET
        ioctl, io_type, halt, write = _ioctl_raw, _IO, _HALT, _WRITE
        # the register page as isvalid (bytes), dirty (uint32s) and registers (uint64s); with no
        # page, one zero byte at isvalid: the page is never valid
        valid, dirty_words, q = self._page_views or (memoryview(bytes(_ISVALID + 1)), None, None)
        while True:
            if kick[0] and self._take_request():  # before every RUN_VP: no request is lost
                return "stopped"
            if self.exits >= stop_at:
                return "max_exits"
            if timed and time.monotonic() >= deadline:
                return "deadline"
            if ioctl(fd, run_vp, buf) < 0:
                err = _kernel.errno()
                if err != _EINTR:
                    raise MshvError(err, "MSHV_RUN_VP", details=f"fd={fd}")
                _check_signals()
                if kick[0] and self._take_request():
                    return "stopped"
                if timed and time.monotonic() >= deadline:
                    return "deadline"
                return "signal"
            self.exits += 1
            mtype = words[_TYPE_AT]
            if mtype == halt and stop_on_halt:
                return "halt"
            if stop_types and mtype in stop_types:
                return "message_type"
            if mtype == io_type:  # buffer and counter ports are served here, the rest in _python
                length_cr8, access, rip, port, info, rax = _read_io(view, payload)
                if stop_ports and port in stop_ports:
                    return "port"
                e = self._last_port
                if e is None or not e.first <= port <= e.last:
                    e = self._find_port(port)
                    if e is None:
                        return "unhandled"
                if e.kind == _PYTHON or info & _STRING:  # INS/OUTS: Handler.string_io in Python
                    reason = self._python(e)
                    if reason is not None:
                        return reason
                    continue
                size = (info & _SIZE_MASK) >> _SIZE_SHIFT
                next_rip = rip + ((length_cr8 & _LEN_MASK) >> _LEN_SHIFT)
                e.hits += 1
                if access == write:
                    if e.output is not None:
                        e.output += (rax & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                    if valid[_ISVALID]:  # as the Cython loop's _complete_io
                        q[_RIP] = next_rip  # type: ignore[index]
                        dirty_words[_DIRTY] |= _DIRTY_IP  # type: ignore[index]
                    else:
                        self._complete({"rip": next_rip})
                    continue
                if e.kind != _BUFFER:
                    rax = in_rax(rax, size, 0)
                elif size == 1 and e.inq_pos < len(e.inq):  # IN AL of a byte: in_rax's AL case, no slice
                    rax = rax & ~0xFF | e.inq[e.inq_pos]
                    e.inq_pos += 1
                else:
                    inq, pos = e.inq, e.inq_pos
                    chunk = inq[pos : pos + size]
                    e.inq_pos = pos + len(chunk)
                    rax = in_rax(rax, size, int.from_bytes(chunk, "little"))
                if valid[_ISVALID]:
                    q[_RIP] = next_rip  # type: ignore[index]
                    q[_RAX] = rax  # type: ignore[index]
                    dirty_words[_DIRTY] |= _DIRTY_IP_GENERAL  # type: ignore[index]
                else:
                    self._complete({"rip": next_rip, "rax": rax})
                continue
            elif mtype in memory:  # a MOV on a byte-backed range is done here, the rest in _python
                access, state, cs, rip, count, gpa, code = _read_memory(view, payload)
                e = self._last_mmio
                if e is None or not e.first <= gpa <= e.last:
                    e = self._find_mmio(gpa)
                    if e is None:
                        return "unhandled"
                if e.kind == _BYTES and valid[_ISVALID]:
                    mov = movs.get((code, count, state, cs))
                    if mov is None:
                        mov = self._decode_mov(code, count, state, cs)
                    if mov[0] == (access == write):  # (None,) when it is no simple MOV
                        # as the Cython loop's _mmio_bytes: the MOV through the register page
                        is_write, size, at, shift, imm, length, mask, bits, whole, unpack, pack = mov
                        data, offset = e.data, gpa - e.first
                        if is_write:
                            value = (imm if at < 0 else q[at] >> shift) & mask  # type: ignore[index]
                            if offset + size <= len(data):  # type: ignore[arg-type]  # what e.write does, without its frame
                                pack(data, offset, value)
                            else:
                                e.write(gpa, size, value)  # type: ignore[misc]
                            dirty = _DIRTY_IP
                        else:
                            if offset + size <= len(data):  # type: ignore[arg-type]  # what e.read does, without its frame
                                value = unpack(data, offset)[0]
                            else:
                                value = e.read(gpa, size)  # type: ignore[misc]
                            # merge_gpr, its whole-register case without its frame
                            q[at] = value & mask if whole else merge_gpr(q[at], value, size, shift, bits)  # type: ignore[index]
                            dirty = _DIRTY_IP_GENERAL
                        q[_RIP] = rip + length  # type: ignore[index]
                        dirty_words[_DIRTY] |= dirty  # type: ignore[index]
                        e.hits += 1
                        continue
                reason = self._python(e)
            else:
                reason = "unhandled"
            if reason is not None:
                return reason

    def _decode_mov(self, code: bytes, count: int, state: int, cs: int) -> tuple[Any, ...]:
        """mshv.x86._mov.decode_mov of the instruction at a memory intercept, as the loop uses it:
        (is_write, size, the register's item in the page's uint64s or -1 for an immediate,
        shift, imm, length, the size's mask, the code size, whether a load replaces the whole
        register (replaces_gpr, merge_gpr's first case), the size's little-endian unpack_from
        and pack_into), or (None,) for no simple MOV."""
        if len(self._movs) >= _MOV_CACHE_SIZE:
            self._movs.clear()
        bits = code_bits(state, cs)
        insn = decode_mov(code[:count], bits)
        mov: tuple[Any, ...] = (None,)
        if insn is not None:
            is_write, size, reg, shift, imm, length = insn
            at = _RAX + reg if reg >= 0 else -1
            mask = (1 << (8 * size)) - 1
            mov = (is_write, size, at, shift, imm, length, mask, bits, replaces_gpr(size, bits),
                   *_LITTLE_ENDIAN[size])  # fmt: skip
        self._movs[(code, count, state, cs)] = mov
        return mov

    def _find_port(self, port: int) -> _Entry | None:
        for e in self._ports:
            if e.first <= port <= e.last:
                self._last_port = e
                return e
        return None

    def _find_mmio(self, gpa: int) -> _Entry | None:
        for e in self._mmio:
            if e.first <= gpa <= e.last:
                self._last_mmio = e
                return e
        return None

    def _python(self, e: _Entry) -> str | None:
        assert self._slow is not None  # set while run() runs
        if self._slow(e.slot, bytes(ffi.buffer(self._msg, lib.HV_MESSAGE_SIZE))):
            e.hits += 1
            return None
        return "unhandled"
