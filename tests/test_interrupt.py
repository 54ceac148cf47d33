"""Stopping a VP that never exits: Vp.interrupt(), vp.run(timeout=...), RunLoop.stop() and deadline.

The kick is a signal to the thread inside MSHV_RUN_VP, which then returns EINTR, as the
kernel's RUN_VP does on any signal. Guests here spin ("jmp .") or halt with the LAPIC on
(the hypervisor keeps the VP inside RUN_VP): no exit ever brings them back by itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mshv import IoPortIntercept, RunLoop, Vp
from mshv._abi import lib
from mshv.runloop import native_available
from mshv.testing import assemble, partition_with_one_vp

SPIN = assemble("1: jmp 1b")
HALTED = assemble("cli; hlt; jmp .")  # LAPIC on: HLT stays inside the hypervisor
# The hypervisor answers the reference-time MSR itself: the VP stays inside RUN_VP, and the
# emulator runs code of its own between KVM_RUNs, where a signal can land.
READING_TIME = assemble(f"1: mov ${lib.HV_X64_MSR_TIME_REF_COUNT:#x}, %ecx; rdmsr; jmp 1b")
# ECX counts down from 2**18 (real mode runs emulated on some hosts: a fraction of a second),
# long enough to be stopped midway; then OUT reports it.
COUNTDOWN = assemble("mov $0x40000, %ecx; 1: dec %ecx; jnz 1b; mov %ecx, %eax; out %eax, $0x10; hlt")
GUEST_WAIT = 30.0  # seconds a joined thread may take before the test calls it hung


@pytest.fixture(
    params=[(SPIN, False), (HALTED, True), (READING_TIME, True)], ids=["spinning", "halted", "rdmsr"]
)
def stuck_vp(request: pytest.FixtureRequest, backend_ready: None) -> Iterator[Vp]:
    code, lapic = request.param
    with partition_with_one_vp(code, lapic=lapic) as (_pt, vp, _mem):
        yield vp


@contextlib.contextmanager
def in_thread(fn: Callable[[], object]) -> Iterator[list[object]]:
    """Run ``fn`` in a thread; the list gets what it returned or raised once it is joined."""
    outcome: list[object] = []

    def body() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=body, daemon=True)  # a hung VP must not hang the test run
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(GUEST_WAIT)
        assert not thread.is_alive(), "the thread running the VP did not come back"


def test_run_timeout_stops_a_guest_that_never_exits(stuck_vp: Vp) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="VP 0"):
        stuck_vp.run(timeout=0.1)
    assert 0.1 <= time.monotonic() - start < GUEST_WAIT
    with pytest.raises(TimeoutError):
        stuck_vp.run(timeout=0)  # already expired: no RUN_VP is made
    assert stuck_vp.exits == 0


def test_a_timed_out_run_resumes_where_it_stopped(backend_ready: None) -> None:
    with partition_with_one_vp(COUNTDOWN) as (_pt, vp, _mem):
        with pytest.raises(TimeoutError):
            vp.run(timeout=0.01)
        midway = vp.reg_read("rcx")
        assert isinstance(midway, int) and 0 < midway < 0x40000
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and out.value == 0


def test_interrupt_from_another_thread(stuck_vp: Vp) -> None:
    with in_thread(stuck_vp.run) as outcome:
        time.sleep(0.1)  # most likely inside RUN_VP by now; if not, the request waits for it
        stuck_vp.interrupt()
    (result,) = outcome
    assert isinstance(result, InterruptedError) and "VP 0" in str(result)


def test_an_interrupt_before_the_run_stops_the_next_run(backend_ready: None) -> None:
    """No lost wake-up: a request made while no run is in progress stops the next one at once."""
    with partition_with_one_vp(assemble("out %al, $0x10; hlt")) as (_pt, vp, _mem):
        vp.interrupt()
        with pytest.raises(InterruptedError):
            vp.run()
        assert vp.exits == 0
        out = vp.run()  # the request was used up
        assert isinstance(out, IoPortIntercept)
        vp.interrupt()
        with pytest.raises(InterruptedError):
            vp.run()
        with pytest.raises(ValueError, match="stale"):
            vp.complete_io(out)  # a run came in between: the VP may have moved on


def test_many_interrupts_are_never_lost(stuck_vp: Vp) -> None:
    """Interrupts racing with the thread entering RUN_VP: each one brings the run back."""
    for i in range(200):
        with in_thread(stuck_vp.run) as outcome:
            if i % 2:
                time.sleep(0.001)
            stuck_vp.interrupt()
        assert len(outcome) == 1 and isinstance(outcome[0], InterruptedError), (i, outcome)


def test_many_timeouts_are_never_lost(stuck_vp: Vp) -> None:
    for _ in range(100):
        with pytest.raises(TimeoutError):
            stuck_vp.run(timeout=0.002)


def test_close_from_another_thread_brings_the_run_back(stuck_vp: Vp) -> None:
    with in_thread(stuck_vp.run) as outcome:
        time.sleep(0.1)
        stuck_vp.partition.close()
    (result,) = outcome
    assert isinstance(result, InterruptedError)
    assert stuck_vp.closed and stuck_vp.partition.closed


def test_a_vp_cannot_be_closed_by_its_own_run(backend_ready: None) -> None:
    """A Python handler inside the run loop may not close the VP the loop is using."""
    with partition_with_one_vp(assemble("out %al, $0x10; hlt")) as (_pt, vp, _mem), RunLoop(vp) as loop:
        loop.on_io(0x10, lambda port, size, value: vp.close())
        with pytest.raises(RuntimeError, match="its own run"):
            loop.run()
        assert not vp.closed


def test_run_argument_checks(backend_ready: None) -> None:
    with partition_with_one_vp(SPIN) as (_pt, vp, _mem):
        with pytest.raises(ValueError):
            vp.run(timeout=-1)
        with pytest.raises(TypeError):
            vp.run(timeout="1")  # type: ignore[arg-type]


# -- the run loops (both: the Cython one and its pure-Python twin) ----------------------------------


@pytest.fixture(params=[True, False], ids=["cython", "python"])
def native(request: pytest.FixtureRequest, backend_ready: None) -> bool:
    return bool(request.param)


def test_loop_stop_from_another_thread_without_exits(stuck_vp: Vp, native: bool) -> None:
    with RunLoop(stuck_vp, native=native) as loop:
        with in_thread(loop.run) as outcome:
            time.sleep(0.1)
            loop.stop()
        (result,) = outcome
        assert getattr(result, "reason", result) == "stopped"
        assert loop.run(max_exits=0).reason == "max_exits"  # the request was used up


def test_loop_deadline_without_exits(stuck_vp: Vp, native: bool) -> None:
    with RunLoop(stuck_vp, native=native) as loop:
        start = time.monotonic()
        with in_thread(lambda: loop.run(deadline=start + 0.1)) as outcome:
            pass
        (result,) = outcome
        assert (getattr(result, "reason", result), getattr(result, "exits", None)) == ("deadline", 0)
        assert 0.1 <= time.monotonic() - start < GUEST_WAIT


def test_vp_interrupt_stops_a_loop(stuck_vp: Vp, native: bool) -> None:
    with RunLoop(stuck_vp, native=native) as loop:
        with in_thread(loop.run) as outcome:
            time.sleep(0.1)
            stuck_vp.interrupt()
        (result,) = outcome
        assert getattr(result, "reason", result) == "stopped"


def test_a_handler_may_interrupt_its_own_loop(backend_ready: None, native: bool) -> None:
    asm = "1: out %al, $0x10; jmp 1b"
    with partition_with_one_vp(assemble(asm)) as (_pt, vp, _mem), RunLoop(vp, native=native) as loop:
        seen: list[int] = []

        def once(port: int, size: int, value: int | None) -> None:
            seen.append(port)
            vp.interrupt()  # from the running thread: returns at once

        loop.on_io(0x10, once)
        result = loop.run()
        assert (result.reason, result.exits, seen) == ("stopped", 1, [0x10])


@contextlib.contextmanager
def _runner_sides(
    which: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Callable[[Any, str], None], Callable[[Any], None]]]:
    """``(enter(state, what), leave(state))``: RunState's own (on the compiled run owner steps,
    or on their Python twins of a build without a compiler), or the C ones ``Vp.run`` uses
    (RunCalls.enter/leave, on the same owner)."""
    if which in ("python", "python-twins"):
        if which == "python-twins":
            from mshv import _abi_nocc, _kick

            monkeypatch.setattr(_kick, "lib", _abi_nocc.lib)
        yield (lambda state, what: state.enter(what)), (lambda state: state.leave())
        return
    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        native = vp._native
        if native is None:
            pytest.fail("the compiled run path (mshv._native) is missing")
        yield native.enter, native.leave


RUNNER_SIDES = pytest.mark.parametrize(
    "which", ["python", "python-twins", "C"] if native_available() else ["python", "python-twins"]
)


@RUNNER_SIDES
def test_no_kick_reaches_a_run_after_it_left(
    which: str, monkeypatch: pytest.MonkeyPatch, backend_ready: None
) -> None:
    """A kick in flight when its run ends finishes before ``leave()`` returns, so it cannot land
    in the thread's next run (of any VP) as a stray EINTR: the runner's leave and the kicker's
    send are ordered (the kicker counts itself in before it reads the runner's tid, the runner
    waits for it). The send is slowed down here to hold the race open."""
    from mshv import _kick

    events: list[str] = []
    started = threading.Event()

    class SlowKick:
        def __init__(self, lib: Any) -> None:
            self._lib = lib

        def mshv_kick_thread(self, tid: int) -> int:
            events.append("kick sent")
            started.set()
            time.sleep(0.05)
            events.append("kick done")
            return 0

        def __getattr__(self, name: str) -> Any:  # the run owner's steps: the real ones
            return getattr(self._lib, name)

    with _runner_sides(which, monkeypatch) as (_enter, leave):
        monkeypatch.setattr(_kick, "lib", SlowKick(_kick.lib))
        state = _kick.RunState()
        state.tid = threading.get_native_id() + 1  # a run in progress on some other thread
        kicker = threading.Thread(target=state.kick)
        kicker.start()
        assert started.wait(5)
        leave(state)
        events.append("left")
        kicker.join()
        assert events == ["kick sent", "kick done", "left"]
        state.kick()  # after the run left: nothing is sent
        assert events == ["kick sent", "kick done", "left"] and state.kicks == 1


@RUNNER_SIDES
def test_a_second_runner_is_refused(which: str, monkeypatch: pytest.MonkeyPatch, backend_ready: None) -> None:
    from mshv import _kick

    with _runner_sides(which, monkeypatch) as (enter, leave):
        state = _kick.RunState()
        enter(state, "VP 0")
        with pytest.raises(RuntimeError, match="VP 0 is already running in this thread"):
            enter(state, "VP 0")
        assert state.tid == threading.get_native_id()
        state.tid += 1  # another thread's run
        with pytest.raises(RuntimeError, match=f"VP 0 is already running in thread {state.tid}"):
            enter(state, "VP 0")
        leave(state)
        assert state.tid == 0
        enter(state, "VP 0")
        leave(state)


class _Alarm(Exception):
    pass


def test_a_python_signal_handler_raising_in_a_run_leaves_the_vp_runnable(thread_alarms: Any) -> None:
    """A signal whose Python handler raises (Ctrl-C's KeyboardInterrupt) ends ``vp.run()`` with
    that exception, and the run is left: the next run is not refused as one in progress (the
    handler runs as soon as RUN_VP has returned EINTR, before any Python code of the run)."""
    import signal

    def raising(signum: int, frame: object) -> None:
        raise _Alarm(signum)

    previous = signal.signal(signal.SIGALRM, raising)
    try:
        with partition_with_one_vp(SPIN, lapic=False) as (_pt, vp, _mem):
            for _ in range(3):
                with thread_alarms(0.05), pytest.raises(_Alarm):
                    vp.run()
                assert vp._run_state.tid == 0 and vp.last_exit is None
            with pytest.raises(TimeoutError):
                vp.run(timeout=0.05)
    finally:
        signal.signal(signal.SIGALRM, previous)


RUNS_THAT_ENTER_IN_PYTHON = ["vp.run(timeout)", "RunLoop(native=False)"] + (
    ["RunLoop(native=True)"] if native_available() else []
)


@pytest.mark.parametrize("how", RUNS_THAT_ENTER_IN_PYTHON)
def test_an_exception_right_after_enter_leaves_the_vp_runnable(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs that enter from Python: a signal whose Python handler raises (Ctrl-C) as soon as
    ``RunState.enter`` returns, simulated here, ends the run with that exception and leaves it
    (before: the VP stayed entered and every later run was refused as one in progress)."""
    from mshv import _kick

    real_enter = _kick.RunState.enter

    def enter_then_interrupted(state: Any, what: str, tid: int = 0) -> None:
        real_enter(state, what, tid)
        raise KeyboardInterrupt

    with partition_with_one_vp(assemble("out %al, $0x10; jmp .-2"), lapic=False) as (_pt, vp, _mem):

        def run() -> Any:
            if how == "vp.run(timeout)":
                return vp.run(timeout=5)
            with RunLoop(vp, native=how == "RunLoop(native=True)") as loop:
                loop.port_counter(0x10)
                return loop.run(max_exits=3)

        monkeypatch.setattr(_kick.RunState, "enter", enter_then_interrupted)
        with pytest.raises(KeyboardInterrupt):
            run()
        assert vp._run_state.tid == 0
        monkeypatch.undo()
        result = run()  # not refused as a run in progress
        if how == "vp.run(timeout)":
            assert isinstance(result, IoPortIntercept) and result.port == 0x10
        else:
            assert (result.reason, result.exits) == ("max_exits", 3)
