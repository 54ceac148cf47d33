"""The VP run path in C (mshv/_native.pyx RunCalls): ``Vp.run``'s RUN_VP + decode and the
register page write of ``Vp.complete_registers``, against their Python twins.

This install builds mshv._native (test_native.py asserts it too); a build without a compiler
runs the Python twins only (tests/test_no_compiler.py).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
import threading
import time
from typing import Any

import pytest

from mshv import HaltIntercept, IoPortIntercept, MemoryIntercept, _native
from mshv.intercepts import decode
from mshv.regpage import GPRS
from mshv.testing import assemble, entry_gpa, partition_with_one_vp

MMIO = 0x30000000


def _all_fields(intercept: Any) -> dict[str, Any]:
    """Every dataclass field, the ones left out of == included, and the header; not the
    header's source (the values Python's decode read, or None: the C decode leaves it in raw)."""
    values = {f.name: getattr(intercept, f.name) for f in dataclasses.fields(intercept)}
    del values["_header_values"]
    return {"type": type(intercept), "header": intercept.header, **values}


def test_vp_run_goes_through_the_c_run_path() -> None:
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        assert isinstance(vp._native, _native.RunCalls)
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10 and vp.exits == 1
        vp.complete_io(exit_)
        assert isinstance(vp.run(), HaltIntercept)


GUESTS = {
    "out": "mov $0x1234, %ax; out %al, $0x10; out %ax, $0x11; mov $0x89abcdef, %eax; out %eax, $0x12; hlt",
    "in": "mov $0x3f8, %dx; inb %dx, %al; inw %dx, %ax; inl %dx, %eax; hlt",
    "string": "mov $0x3f8, %dx; mov $3, %rcx; mov $0x2000, %rsi; rep outsb; hlt",
    "mmio": f"mov ${MMIO:#x}, %rbx; mov (%rbx), %eax; movw $7, 2(%rbx); mov %cl, (%ebx); mov (%rbx), %r9; "
    "hlt",
}


@pytest.mark.parametrize("guest", GUESTS)
def test_the_c_decode_equals_the_python_decode(guest: str) -> None:
    """Each exit decoded in C has the type, fields and header mshv.intercepts.decode gives it."""
    code = assemble(GUESTS[guest], mode="long", base=entry_gpa("long"))
    with partition_with_one_vp(code, mode="long", lapic=False) as (_pt, vp, _mem):
        kinds = []
        for _ in range(8):
            exit_ = vp._native.run()
            assert not isinstance(exit_, int), f"MSHV_RUN_VP failed: errno {exit_}"
            if isinstance(exit_, IoPortIntercept | MemoryIntercept):
                assert exit_._header_values is None  # the C decode leaves the header in raw
            assert _all_fields(exit_) == _all_fields(decode(exit_.raw))
            kinds.append(type(exit_))
            if isinstance(exit_, HaltIntercept):
                break
            vp._last_exit = exit_
            if isinstance(exit_, IoPortIntercept) and exit_.string:
                vp.complete_string_io(exit_, write_port=lambda port, size, value: None)
            elif isinstance(exit_, IoPortIntercept):
                vp.complete_io(exit_, None if exit_.is_write else 0x5A)
            else:
                vp.skip(exit_)
        assert kinds[-1] is HaltIntercept and len(kinds) > 1
        assert {IoPortIntercept: guest != "mmio", MemoryIntercept: guest == "mmio"} == {
            t: t in kinds for t in (IoPortIntercept, MemoryIntercept)
        }


def test_the_c_page_write_takes_only_what_the_page_can_hold() -> None:
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        native, page = vp._native, vp.register_page
        assert page is not None
        exit_ = vp.run()
        page.raw.isvalid = 0  # as where the page holds no intercept's state
        assert native.complete({"rip": 1}) is False and page.dirty == 0
        page.raw.isvalid = 1
        # the Python way decides these: a Mapping that is no dict, unknown names, bad values
        for values in ({"cr0": 1}, {"rax": -1}, {"rax": 1 << 64}, {"rax": 1.0}, {"rip": True}):
            assert native.complete(values) is False and page.dirty == 0, values
        assert native.complete(dict.fromkeys(GPRS, 0)) is True
        assert page.dirty == 1 << 0  # HV_X64_REGISTER_CLASS_GENERAL only
        assert native.complete({"rip": exit_.next_rip, "rflags": 0x202, "r15": (1 << 64) - 1}) is True
        read = (page.read("rip"), page.read("rflags"), page.read("r15"))
        assert read == (exit_.next_rip, 0x202, (1 << 64) - 1)
        assert isinstance(vp.run(), HaltIntercept)
        assert vp.get_registers(["rflags", "r15", "rax"]) == {"rflags": 0x202, "r15": (1 << 64) - 1, "rax": 0}


IN_GUEST = (
    "mov $0x1122334455667788, %rax; mov $0x3f8, %dx; inb %dx, %al; inw %dx, %ax; inl %dx, %eax; "
    "mov %rax, %rbx; mov $0x1122334455667788, %rax; outb %al, %dx; hlt"
)


@pytest.mark.parametrize("way", ["C", "Python"])
def test_complete_io_merges_an_in_by_size_both_ways(way: str) -> None:
    """IN AL and AX keep RAX's other bits, IN EAX zero-extends, RIP moves on: the C page write
    (RunCalls.complete_io) and the Python one give the guest the same registers."""
    code = assemble(IN_GUEST, mode="long", base=entry_gpa("long"))
    with partition_with_one_vp(code, mode="long", lapic=False) as (_pt, vp, _mem):
        calls: list[bool] = []
        native = vp._native
        if way == "Python":
            vp._native = None
        else:
            real = native.complete_io
            vp._native = _Spy(native, lambda *a: calls.append(real(*a)) or calls[-1])
        seen = []
        for value in (0xAB, 0xCDEF, 0x89ABCDEF):
            exit_ = vp.run()
            assert isinstance(exit_, IoPortIntercept) and not exit_.is_write, exit_
            vp.complete_io(exit_, value)
            seen.append(vp.get_registers(["rax"])["rax"])
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.is_write and exit_.value == 0x88
        vp.complete_io(exit_)
        assert isinstance(vp.run(), HaltIntercept)
        assert seen == [0x11223344556677AB, 0x112233445566CDEF, 0x89ABCDEF]
        assert vp.get_registers(["rbx"])["rbx"] == 0x89ABCDEF
        assert calls == ([True] * 4 if way == "C" else [])
        vp._native = native


class _Spy:
    """A RunCalls whose ``complete_io`` is replaced (a cdef class's methods cannot be patched)."""

    def __init__(self, native: Any, complete_io: Any) -> None:
        self._native, self.complete_io = native, complete_io

    def __getattr__(self, name: str) -> Any:
        return getattr(self._native, name)


def test_the_c_io_completion_leaves_the_python_way_every_call_it_does_not_take() -> None:
    """RunCalls.complete_io writes nothing and says False for what Vp.complete_io must refuse or
    send by hypercall: an IN without a value or with one that does not fit, an OUT with one, a
    bool, a string IO, a page that holds no intercept's state."""
    code = assemble("mov $0x3f8, %dx; inw %dx, %ax; hlt", mode="long", base=entry_gpa("long"))
    with partition_with_one_vp(code, mode="long", lapic=False) as (_pt, vp, _mem):
        native, page = vp._native, vp.register_page
        assert page is not None
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.size == 2
        for value in (None, 0x10000, -1, True, 1.0, 1 << 64):
            assert native.complete_io(exit_, value) is False and page.dirty == 0, value
        assert native.complete_io(dataclasses.replace(exit_, is_write=True), 5) is False
        assert native.complete_io(dataclasses.replace(exit_, string=True), 5) is False
        page.raw.isvalid = 0
        assert native.complete_io(exit_, 5) is False and page.dirty == 0
        page.raw.isvalid = 1
        with pytest.raises(ValueError, match="2-byte IN reads"):
            vp.complete_io(exit_, 0x10000)
        assert native.complete_io(exit_, 0xBEEF) is True
        assert page.read("rax") & 0xFFFF == 0xBEEF and page.read("rip") == exit_.next_rip
        assert isinstance(vp.run(), HaltIntercept)
        assert vp.get_registers(["rax"])["rax"] & 0xFFFF == 0xBEEF


def test_a_closed_vp_forgets_its_c_run_path() -> None:
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        exit_ = vp.run()
        native = vp._native
        vp.close()
        assert vp._native is None
        assert native.complete({"rip": 0}) is False  # the page is unmapped: never written
        assert native.complete_io(exit_, None) is False
        with pytest.raises(ValueError, match="closed"):
            native.run()


def test_an_interrupt_request_stops_the_c_run_before_run_vp(monkeypatch: pytest.MonkeyPatch) -> None:
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        vp.interrupt()  # no run in progress: the next run stops before its RUN_VP
        assert vp._native.run() == -1 and vp.exits == 0
        with pytest.raises(InterruptedError):
            vp.run()
        assert isinstance(vp.run(), IoPortIntercept) and vp.exits == 1


def test_thread_id_is_the_kernel_thread_id() -> None:
    ids: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: ids.append((_native.thread_id(), threading.get_native_id())))
    thread.start()
    thread.join()
    assert _native.thread_id() == threading.get_native_id()
    assert ids[0][0] == ids[0][1] != _native.thread_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's one thread has an id of its own
        os.write(write, b"1" if _native.thread_id() == threading.get_native_id() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.close(write)


@pytest.mark.parametrize("kind", ["out", "in", "mmio"])
def test_the_cython_loop_serves_c_exits_without_the_gil(kind: str) -> None:
    """While another thread holds the GIL (a libc call through ctypes.PyDLL keeps it), the
    Cython loop goes on serving port counter, port buffer IN and MMIO-bytes exits. A loop that
    takes the GIL after each exit makes at most one exit meanwhile."""
    from mshv.runloop import RunLoop

    guests = {
        "out": "1: out %al, $0x80; jmp 1b",
        "in": "1: in $0x80, %al; jmp 1b",
        "mmio": f"mov ${MMIO:#x}, %rbx; 1: mov (%rbx), %eax; mov %eax, 4(%rbx); jmp 1b",
    }
    code = assemble(guests[kind], mode="long", base=entry_gpa("long"))
    usleep = ctypes.PyDLL(None).usleep  # PyDLL: the call holds the GIL
    with (
        partition_with_one_vp(code, mode="long", lapic=False) as (_pt, vp, _mem),
        RunLoop(vp, native=True) as loop,
    ):
        if kind == "out":
            handler: Any = loop.port_counter(0x80)
        elif kind == "in":
            handler = loop.port_buffer(0x80, data=bytes(1 << 20))
        else:
            handler = loop.mmio_bytes(MMIO, bytearray(8))
        seen: list[int] = []

        def hold_the_gil() -> None:
            while handler.exits < 10:  # the loop is running
                time.sleep(0.001)
            seen.append(handler.exits)
            usleep(300_000)
            seen.append(handler.exits)
            loop.stop()

        holder = threading.Thread(target=hold_the_gil)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(30)  # no forced switch: the holder keeps the GIL from read to read
        try:
            holder.start()
            result = loop.run(deadline=time.monotonic() + 30)
        finally:
            holder.join()
            sys.setswitchinterval(interval)
        assert result.reason == "stopped"
        assert seen[1] - seen[0] >= 2, seen


def test_the_pure_loops_byte_access_follows_handlers_bytes_rules() -> None:
    """mshv._pyloop's MMIO-bytes read/write agree with handlers.bytes_read/bytes_write, also
    across the end of the bytes (0s read, bytes past the end dropped) and for wide values."""
    from mshv._pyloop import _byte_access
    from mshv.handlers import bytes_read, bytes_write

    base = 0x1000
    for offset in range(0, 10):
        for size in (1, 2, 4, 8):
            for value in (0, 0x1122334455667788, (1 << 64) - 1, 1 << 70):
                ours, theirs = bytearray(range(1, 9)), bytearray(range(1, 9))
                read, write = _byte_access(ours, base)
                assert read(base + offset, size) == bytes_read(theirs, offset, size)
                write(base + offset, size, value)
                bytes_write(theirs, offset, size, value)
                assert ours == theirs, (offset, size, hex(value))


def test_run_owned_leaves_the_run_whatever_it_gave() -> None:
    """``RunCalls.run_owned`` (``Vp.run``'s one call): enter, RUN_VP, decode, leave. A run that
    made no exit is left too (a signal's Python handler may raise as soon as it returns), and a
    refused or failed run leaves nothing entered."""
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        native, state, me = vp._native, vp._run_state, threading.get_native_id()
        exit_ = native.run_owned("VP 0")
        assert isinstance(exit_, IoPortIntercept) and state.tid == 0
        state.tid = me + 1  # another thread's run
        with pytest.raises(RuntimeError, match=f"VP 0 is already running in thread {me + 1}"):
            native.run_owned("VP 0")
        assert state.tid == me + 1
        state.tid = 0
        vp.interrupt()  # no run in progress: the next one stops before its RUN_VP
        assert native.run_owned("VP 0") == -1 and state.tid == 0
        assert state.take_request()
        native.close()
        with pytest.raises(ValueError, match="closed"):
            native.run_owned("VP 0")
        assert state.tid == 0


def test_last_exit_is_the_intercept_the_vp_stopped_at() -> None:
    with partition_with_one_vp(assemble("out %al, $0x10; hlt"), lapic=False) as (_pt, vp, _mem):
        assert vp.last_exit is None
        exit_ = vp.run()
        assert vp.last_exit is exit_ and isinstance(exit_, IoPortIntercept)
        vp.interrupt()
        with pytest.raises(InterruptedError):
            vp.run()
        assert vp.last_exit is None  # the run failed: the VP is at no intercept a completion takes
        with pytest.raises(ValueError):
            vp.complete_io(exit_)


def test_the_c_decode_refuses_an_intercept_type_without_plain_slots() -> None:
    """RunCalls writes the intercept fields into their slots by offset, found once when it is
    made: a type whose field is not a plain slot is refused then, not written wrongly later."""

    class Odd(IoPortIntercept):
        rax = property(lambda self: 0)  # type: ignore[assignment]  # where IoPortIntercept has a slot

    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        from mshv import vp as vp_module

        with pytest.raises(TypeError, match="rax is not a slot"):
            _native.RunCalls(
                _native_table(), vp.fd, vp._run_buf, 0, vp._run_state, 0, {}, Odd, MemoryIntercept,
                {}, decode,
            )  # fmt: skip
        assert vp_module._run_calls(vp) is not None  # the library's own types are taken


def _native_table() -> int:
    from mshv._abi import ffi, lib

    return int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
