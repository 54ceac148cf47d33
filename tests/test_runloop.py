"""mshv/runloop.py: the run loop serves real guests' exits; every test runs on both loops.

``native=True`` is the Cython loop (mshv._runloop): if the extension did not
build, RunLoop raises ImportError and the test FAILS. ``native=False`` is the
pure-Python twin. Both must give the same results.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mshv import (
    GuestMemory,
    HaltIntercept,
    HvMessageType,
    IoPortIntercept,
    Mshv,
    MshvError,
    RunLoop,
    RunResult,
    Vp,
)
from mshv.runloop import UNHANDLED
from mshv.testing import CODE_GPA, assemble, long_mode_registers, partition_with_one_vp

LONG_ENTRY = 0x10000
MMIO_GPA = 0x100000  # above the guest's memory: every access is an MMIO intercept


@pytest.fixture(params=[True, False], ids=["cython", "python"])
def native(request: pytest.FixtureRequest, backend_ready: None) -> bool:
    return bool(request.param)


@contextlib.contextmanager
def real_mode(asm: str, native: bool) -> Iterator[tuple[Vp, RunLoop]]:
    code = assemble(asm)
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem), RunLoop(vp, native=native) as loop:
        assert loop.native is native
        yield vp, loop


@contextlib.contextmanager
def long_mode(asm: str, native: bool) -> Iterator[tuple[Vp, RunLoop]]:
    code = assemble(asm, mode="long", base=LONG_ENTRY)
    with Mshv() as hv, GuestMemory(0x40000) as mem:
        with hv.create_partition(lapic=False) as pt:
            mem.write(LONG_ENTRY, code)
            pt.map_memory(mem, 0)
            vp = pt.create_vp(0)
            vp.set_registers(long_mode_registers(mem, LONG_ENTRY))  # type: ignore[arg-type]
            with RunLoop(vp, native=native) as loop:
                assert loop.native is native
                yield vp, loop


def test_out_loop_counts_exactly(native: bool) -> None:
    asm = "mov $1000, %cx; 1: out %al, $0x80; loop 1b; hlt"
    with real_mode(asm, native) as (vp, loop):
        counter = loop.port_counter(0x80)
        first = loop.run(max_exits=300)
        assert (first.reason, first.exits, first.intercept) == ("max_exits", 300, None)
        assert counter.count == 300
        rest = loop.run()
        assert rest.reason == "halt" and isinstance(rest.intercept, HaltIntercept)
        assert rest.exits == 701  # 700 OUTs and the HLT
        assert counter.count == 1000 and loop.exits == 1001 and vp.exits == 1001
        assert loop.counters == {"port_counter(0x80)": 1000}
        assert vp.reg_read("rcx") & 0xFFFF == 0


def test_console_port_buffer_collects_a_long_mode_string(native: bool) -> None:
    asm = """
        lea msg(%rip), %rsi
    1:  lodsb
        test %al, %al
        jz 2f
        out %al, $0xe9
        jmp 1b
    2:  mov $0x12345678, %eax
        out %eax, $0xe9           # a 4-byte OUT appends 4 bytes, little-endian
        hlt
    msg: .asciz "hello from the run loop\\n"
    """
    with long_mode(asm, native) as (_vp, loop):
        console = loop.port_buffer(0xE9)
        result = loop.run()
        assert result.reason == "halt"
        assert bytes(console.output) == b"hello from the run loop\n" + bytes.fromhex("78563412")
        assert console.exits == 25 and result.exits == 26


def test_in_reads_queued_bytes_that_the_guest_echoes(native: bool) -> None:
    asm = """
        mov $0x1200, %ax
        in $0x60, %al             # 'x'; AH is kept
        out %ax, $0x61
        in $0x60, %ax             # 'yz'
        out %ax, $0x61
        in $0x60, %al             # '!' (fed later)
        out %al, $0x61
        mov $0xab, %al
        in $0x60, %al             # queue empty: 0
        out %al, $0x61
        mov $0xffffffff, %eax
        in $0x61, %eax            # the echo port's IN reads its own (empty) queue: 0
        out %eax, $0x61
        hlt
    """
    with real_mode(asm, native) as (_vp, loop):
        source = loop.port_buffer(0x60, data=b"xyz")
        echo = loop.port_buffer(0x61)
        source.feed(b"!")
        assert source.pending == 4
        result = loop.run()
        assert result.reason == "halt"
        assert bytes(echo.output) == b"x\x12" + b"yz" + b"!" + b"\x00" + b"\x00" * 4
        assert source.pending == 0 and source.exits == 4 and echo.exits == 6


def test_mmio_bytes_in_long_mode(native: bool) -> None:
    # No REX- or 0x66-prefixed MMIO *write* here: the emulator locates a finished write by
    # its address alone and reports it without its prefix (48 89 4b 08 as 89 4b 08).
    asm = f"""
        mov ${MMIO_GPA:#x}, %rbx
        mov 4(%rbx), %eax             # read 4 bytes (8B)
        out %eax, $0x62
        mov $0x1122334455667788, %rcx
        mov %ecx, 8(%rbx)             # 32-bit write (89); see the note below on REX writes
        movb $0x5a, (%rbx)            # immediate byte write (C6)
        mov 16(%rbx), %r9             # 64-bit read into R9 (REX.WR 8B)
        mov %r9d, %eax
        out %eax, $0x62
        add %ecx, 24(%rbx)            # not a MOV: emulated in Python (mshv.x86.mmio)
        mov $0x1122334455667788, %rdx
        mov 4(%rbx), %dx              # 16-bit read (66 8B): RDX's other bits kept
        mov 6(%rbx), %dh              # byte read into a high-byte register
        mov $-1, %rsi
        mov 8(%rbx), %esi             # 32-bit read in 64-bit code: RSI's upper half cleared
        hlt
    """
    data = bytearray(range(32))
    with long_mode(asm, native) as (vp, loop):
        device = loop.mmio_bytes(MMIO_GPA, data)
        out = loop.port_buffer(0x62)
        result = loop.run()
        assert result.reason == "halt"
        assert bytes(out.output) == bytes(range(4, 8)) + bytes(range(16, 20))
        assert data[0] == 0x5A
        assert data[8:16] == bytes.fromhex("887766550c0d0e0f")
        assert int.from_bytes(data[24:28], "little") == (0x1B1A1918 + 0x55667788) & 0xFFFFFFFF
        assert vp.reg_read("r9") == int.from_bytes(bytes(range(16, 24)), "little")
        assert vp.reg_read("rdx") == 0x1122334455660604
        assert vp.reg_read("rsi") == 0x55667788
        assert device.exits == 8 and result.exits == 11


def test_mmio_bytes_moves_across_the_end_of_the_bytes(native: bool) -> None:
    """A MOV that runs past the end of an MMIO bytes range reads 0s there and drops the bytes
    written there (handlers.bytes_read/bytes_write); one that fits is served whole, every size."""
    asm = f"""
        mov ${MMIO_GPA:#x}, %rbx
        mov $0x8877665544332211, %rcx
        mov %ecx, 4(%rbx)             # 4 bytes at 4 of 6: two land, two are dropped
        mov 3(%rbx), %eax             # 4 bytes at 3 of 6: 0s from 6 on
        out %eax, $0x62
        mov 5(%rbx), %dx              # 2 bytes at 5 of 6: 0s past the end
        mov %edx, %eax
        out %eax, $0x62
        movb $0x77, 5(%rbx)           # the last byte, whole
        mov (%rbx), %rax              # 8 bytes at 0 of 6
        out %eax, $0x62
        shr $32, %rax
        out %eax, $0x62
        hlt
    """
    data = bytearray(b"\xa0\xa1\xa2\xa3\xa4\xa5")
    with long_mode(asm, native) as (_vp, loop):
        device = loop.mmio_bytes(MMIO_GPA, data)
        out = loop.port_buffer(0x62)
        result = loop.run()
        assert result.reason == "halt", result
        assert data == bytearray(b"\xa0\xa1\xa2\xa3\x11\x77")
        words = [int.from_bytes(out.output[i : i + 4], "little") for i in range(0, 16, 4)]
        assert words == [0x0022_11A3, 0x0022, 0xA3A2_A1A0, 0x0000_7711], [hex(w) for w in words]
        assert device.exits == 5


def test_mmio_bytes_in_real_mode(native: bool) -> None:
    asm = """
        mov $0x2000, %ax
        mov %ax, %ds                  # DS base 0x20000: unmapped, so MMIO
        movb $0x99, (0x10)            # C6 with a 16-bit displacement
        mov (0x20), %bx               # 16-bit read
        mov %bx, %ax
        out %ax, $0x30
        mov $0x77, %ah
        mov %ah, (0x11)               # AH: a high-byte register
        mov $0xcafe, %dx
        mov (0x24), %dl               # byte read merges into DX
        mov %dx, %ax
        out %ax, $0x30
        mov (0x28), %ebx              # 32-bit read outside 64-bit code: RBX's upper half kept
        hlt
    """
    data = bytearray(0x40)
    data[0x20:0x22] = b"\x34\x12"
    data[0x24] = 0x5B
    data[0x28:0x2C] = b"\x01\x02\x03\x04"
    with real_mode(asm, native) as (vp, loop):
        vp.set_registers({"rbx": 0xAAAAAAAA_00000000})
        device = loop.mmio_bytes(0x20000, data)
        out = loop.port_buffer(0x30)
        result = loop.run()
        assert result.reason == "halt"
        assert (data[0x10], data[0x11]) == (0x99, 0x77)
        assert bytes(out.output) == b"\x34\x12" + b"\x5b\xca"
        assert vp.reg_read("rbx") == 0xAAAAAAAA_04030201
        assert device.exits == 5


def test_unhandled_exit_returns_the_intercept_and_run_resumes(native: bool) -> None:
    asm = """
        mov $0x42, %al
        out %al, $0x70                # no handler
        in $0x71, %al                 # no handler: the caller supplies the value
        out %al, $0x80
        hlt
    """
    with real_mode(asm, native) as (vp, loop):
        echo = loop.port_buffer(0x80)
        first = loop.run()
        assert first.reason == "unhandled" and first.exits == 1
        assert isinstance(first.intercept, IoPortIntercept)
        assert (first.intercept.port, first.intercept.value, first.intercept.is_write) == (0x70, 0x42, True)
        again = loop.run(max_exits=1)  # not completed: the VP is still at the OUT
        assert again.reason == "unhandled" and isinstance(again.intercept, IoPortIntercept)
        with pytest.raises(ValueError, match="stale"):
            vp.complete_io(first.intercept)  # the same OUT, but an exit before the last one
        vp.complete_io(again.intercept)
        second = loop.run()
        assert second.reason == "unhandled" and isinstance(second.intercept, IoPortIntercept)
        assert (second.intercept.port, second.intercept.is_write) == (0x71, False)
        vp.complete_io(second.intercept, 0x33)
        assert loop.run().reason == "halt"
        assert bytes(echo.output) == b"\x33"


def test_the_vp_sees_what_the_loop_completed(native: bool) -> None:
    """One register page, the VP's: after the loop completed an exit, the VP reads its registers
    as the loop left them, and completes the exit the loop stopped at through that page."""
    asm = "out %al, $0x80; mov $5, %al; out %al, $0x81; hlt"
    with real_mode(asm, native) as (vp, loop):
        loop.port_counter(0x80)
        assert loop.run(max_exits=1).reason == "max_exits"
        assert vp.reg_read("rip") == CODE_GPA + 2  # the loop's completion, not yet applied by a run
        at_port = loop.run(stop_ports=[0x81])
        assert at_port.reason == "port" and isinstance(at_port.intercept, IoPortIntercept)
        page = vp.register_page
        assert page is not None and page.valid and page.dirty == 0
        vp.complete_io(at_port.intercept)
        assert page.dirty  # through the VP's page: no hypercall
        assert vp.reg_read("rip") == at_port.intercept.next_rip
        assert loop.run().reason == "halt" and vp.exits == 3


def test_a_vp_without_a_register_page_completes_by_hypercall(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the VP has no register page (SNP partitions: mshv_vp_mmap gives ENODEV), both loops
    complete through Vp.complete_registers, i.e. by hypercall, with the same results."""

    def no_page(vp: Vp) -> None:
        raise MshvError(errno.ENODEV, "mmap", details="no register page")

    monkeypatch.setattr("mshv.vp.RegisterPage", no_page)
    asm = "mov $0x41, %al; out %al, $0xe9; in $0x60, %al; out %al, $0xe9; out %al, $0x70; hlt"
    with real_mode(asm, native) as (vp, loop):
        assert vp.register_page is None
        console = loop.port_buffer(0xE9)
        loop.port_buffer(0x60, data=b"Z")
        at_port = loop.run(stop_ports=[0x70])
        assert at_port.reason == "port" and isinstance(at_port.intercept, IoPortIntercept)
        assert bytes(console.output) == b"AZ" and at_port.exits == 4
        vp.complete_io(at_port.intercept)
        assert vp.reg_read("rip") == at_port.intercept.next_rip
        assert loop.run().reason == "halt"


def test_stop_on_message_type_and_port(native: bool) -> None:
    asm = "out %al, $0x80; out %al, $0x81; out %al, $0x80; hlt"
    with real_mode(asm, native) as (vp, loop):
        counter = loop.port_counter(0x80)
        at_port = loop.run(stop_ports=[0x81])
        assert at_port.reason == "port" and isinstance(at_port.intercept, IoPortIntercept)
        assert at_port.intercept.port == 0x81 and counter.count == 1
        vp.complete_io(at_port.intercept)
        loop.stop_on_halt = False
        at_halt = loop.run(stop_on=[HvMessageType.X64_HALT])
        assert at_halt.reason == "message_type" and isinstance(at_halt.intercept, HaltIntercept)
        assert counter.count == 2


def test_stop_from_another_thread(native: bool) -> None:
    asm = "1: out %al, $0x80; jmp 1b"
    with real_mode(asm, native) as (_vp, loop):
        counter = loop.port_counter(0x80)
        timer = threading.Timer(0.2, loop.stop)
        timer.start()
        try:
            result = loop.run()
        finally:
            timer.cancel()
        assert result.reason == "stopped" and result.exits > 0
        assert counter.count == result.exits
        assert loop.run(max_exits=5) == RunResult("max_exits", 5, None)  # resumes


def test_python_handlers_and_their_exception(native: bool) -> None:
    asm = """
        mov $0x10, %al
        out %al, $0x72                # Python OUT handler
        in $0x72, %al                 # Python IN handler: 0x05
        out %al, $0x80
        movw $0x1234, (0x3000)        # an MMIO callback at 0x30000 (DS base 0x2d000)
        mov (0x3004), %ax
        out %ax, $0x80
        out %al, $0x73                # this handler raises
        hlt
    """
    seen: list[tuple[str, int, int, int | None]] = []

    def io(port: int, size: int, value: int | None) -> int | None:
        seen.append(("io", port, size, value))
        return None if value is not None else 0x05

    def device(gpa: int, size: int, value: int | None) -> int | None:
        seen.append(("mmio", gpa, size, value))
        return 0xBEEF if value is None else None

    def boom(port: int, size: int, value: int | None) -> None:
        raise RuntimeError(f"boom at {port:#x}")

    with real_mode("mov $0x2d00, %bx; mov %bx, %ds\n" + asm, native) as (_vp, loop):
        loop.on_io(0x72, io)
        loop.on_mmio(0x30000, 0x1000, device)
        out = loop.port_buffer(0x80)
        failing = loop.on_io(0x73, boom)
        with pytest.raises(RuntimeError, match="boom at 0x73"):
            loop.run()
        assert seen == [("io", 0x72, 1, 0x10), ("io", 0x72, 1, None),
                        ("mmio", 0x30000, 2, 0x1234), ("mmio", 0x30004, 2, None)]  # fmt: skip
        assert bytes(out.output) == b"\x05" + b"\xef\xbe"
        assert loop.exits == 7 and failing.exits == 0
        loop.remove(failing)  # the loop is usable again; the VP is still at the OUT
        result = loop.run()
        assert result.reason == "unhandled" and isinstance(result.intercept, IoPortIntercept)
        assert result.intercept.port == 0x73
        declined = loop.on_io(0x73, lambda port, size, value: UNHANDLED)
        assert loop.run().reason == "unhandled" and declined.exits == 0


def test_deadline_stops(native: bool) -> None:
    with real_mode("1: out %al, $0x80; jmp 1b", native) as (_vp, loop):
        counter = loop.port_counter(0x80)
        result = loop.run(deadline=time.monotonic() + 0.2)
        assert result.reason == "deadline" and result.exits > 0 and counter.count == result.exits


class _Alarm(Exception):
    pass


def test_signal_interrupts_a_guest_that_makes_no_exits(native: bool, thread_alarms: Any) -> None:
    def raising(signum: int, frame: object) -> None:
        raise _Alarm(signum)

    def quiet(signum: int, frame: object) -> None:
        fired.append(signum)

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, raising)
    try:
        with real_mode("jmp .", native) as (_vp, loop):
            with thread_alarms(0.2, 0.2):
                with pytest.raises(_Alarm):
                    loop.run()
                signal.signal(signal.SIGALRM, quiet)
                result = loop.run()
            assert (result.reason, result.exits, fired[:1]) == ("signal", 0, [signal.SIGALRM])
            signal.signal(signal.SIGALRM, lambda signum, frame: loop.stop())
            with thread_alarms(0.1):
                assert loop.run().reason == "stopped"
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_handler_registration_rules(native: bool) -> None:
    with real_mode("hlt", native) as (_vp, loop):
        loop.port_buffer(0x60, 0x6F)
        with pytest.raises(ValueError, match="overlap port_buffer"):
            loop.port_counter(0x65)
        with pytest.raises(ValueError):
            loop.port_counter(0x10000)
        with pytest.raises(TypeError):
            loop.mmio_bytes(MMIO_GPA, b"\0" * 16)  # type: ignore[arg-type]
        data = bytearray(16)
        device = loop.mmio_bytes(MMIO_GPA, data)
        with pytest.raises(BufferError):
            data.extend(b"\0")  # held while registered
        loop.remove(device)
        data.extend(b"\0")
        assert loop.run().reason == "halt"
    assert loop.closed
    with pytest.raises(ValueError, match="closed"):
        loop.run()


@pytest.mark.parametrize("name", ["mshv.runloop", "mshv.regpage"])
def test_docstring_examples_run(name: str, backend_ready: None) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_string_io_on_registered_ports_is_completed_over_guest_memory(native: bool) -> None:
    asm = """
        mov $msg, %si
        mov $5, %cx
        mov $0xe9, %dx
        rep outsb                     # port_buffer: the console gets the string
        mov $0x3000, %di
        mov $4, %cx
        rep insb                      # port_buffer: the fed bytes land at 0x3000
        mov 0x3000, %eax
        out %eax, $0xe9               # the guest echoes them
        mov $0x80, %dx
        mov $3, %cx
        rep outsw                     # on_io: one call per element
        insw                          # on_io without REP: one element
        mov 0x3004, %ax
        out %ax, $0xe9
        movw $0xffff, 0x3010
        mov $0x3010, %di
        mov $0x81, %dx
        mov $2, %cx
        rep insb                      # port_counter: reads 0s, counts one exit
        mov 0x3010, %ax
        out %ax, $0xe9
        mov $0x70, %dx
        outsb                         # no handler: "unhandled"
        hlt
    msg: .ascii "hello, string io"
    """
    seen: list[tuple[int, int, int | None]] = []

    def io(port: int, size: int, value: int | None) -> int | None:
        seen.append((port, size, value))
        return 0xBEEF if value is None else None

    with real_mode(asm, native) as (vp, loop):
        console = loop.port_buffer(0xE9, data=b"echo")
        loop.on_io(0x80, io)
        counter = loop.port_counter(0x81)
        result = loop.run()
        assert result.reason == "unhandled" and isinstance(result.intercept, IoPortIntercept)
        assert (result.intercept.port, result.intercept.string) == (0x70, True)
        assert bytes(console.output) == b"hello" + b"echo" + b"\xef\xbe" + b"\0\0"
        assert console.pending == 0 and console.exits == 5
        assert seen == [(0x80, 2, 0x202C), (0x80, 2, 0x7473), (0x80, 2, 0x6972), (0x80, 2, None)]  # ", stri"
        assert counter.count == 1
        assert vp.reg_read("rsi") == 0x1000 + assemble(asm).index(b"hello") + 11
        vp.complete_string_io(
            result.intercept, write_port=lambda port, size, value: seen.append((port, size, value))
        )
        assert seen[-1] == (0x70, 1, ord("n"))
        assert loop.run().reason == "halt"
