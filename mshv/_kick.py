"""Bringing a thread back from MSHV_RUN_VP: who runs a VP, interrupt requests, deadlines.

The kernel's RUN_VP returns EINTR when a signal is pending for the thread in it
(``mshv_run_vp_with_hyp_scheduler``), and the emulator's does the same. So the
kick is a signal sent to that one thread (``mshv_kick_thread``: tgkill of
SIGRTMIN, whose handler does nothing and is installed in C without SA_RESTART;
see build_ext/vp_kick.py). Each VP has one :class:`RunState`, shared by
``Vp.run`` and the run loops:

* an interrupt request is a word the runner checks before every RUN_VP, so a
  request made just before the thread enters RUN_VP is not lost, and one made
  while no run is in progress stops the next run at once;
* a signal can still land between that check and the ioctl (inside RUN_VP it
  stays pending, on the kernel and on the emulator alike), so a kick is
  repeated every :data:`KICK_RETRY` seconds until the run noticed it;
* a kicker counts itself in before it reads the runner's thread id and out after its
  signal is sent, and a runner leaving waits for the kickers counted in: no kick is
  sent to a thread after its run left, so none lands in a later run.

Deadlines (``vp.run(timeout=...)``, ``RunLoop.run(deadline=...)``) are kept by
one watchdog thread, which kicks a run past its deadline until it ends.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from mshv._abi import ffi, lib

__all__ = ["KICK_RETRY", "RunState", "deadline_after", "install", "unwatch", "watch", "watching"]

#: Seconds between two kicks of a run that has not come back yet.
KICK_RETRY = 0.01
#: Seconds between two looks of :meth:`RunState.interrupt` at whether the run took the request.
_POLL = 0.0005

_native_id = threading.get_native_id
_install_lock = threading.Lock()
_install_problem: str | None = "not installed yet"


def install() -> None:
    """Install the kick's signal handler, once per process (a VP's creation calls it).

    A problem (the signal already has another handler) is kept and raised by
    :func:`require` when a kick is needed, not here: running VPs does not need it.
    """
    global _install_problem
    if _install_problem is None:
        return
    with _install_lock:
        if _install_problem is None:
            return
        try:
            rc = lib.mshv_kick_install()
        except RuntimeError as exc:  # the ABI snapshot's stand-in: main thread only
            _install_problem = str(exc)
            return
        signo = lib.mshv_kick_signal()
        if rc == 0:
            _install_problem = None
        elif rc > 0:
            _install_problem = (
                f"signal {signo} (SIGRTMIN), which mshv kicks VP threads with, already has a handler "
                "of the program's own; mshv does not replace it"
            )
        else:
            _install_problem = f"sigaction({signo}) failed: {os.strerror(ffi.errno)}"


def require() -> None:
    """Raise RuntimeError when the kick cannot be sent (see :func:`install`)."""
    if _install_problem is not None:
        install()
        if _install_problem is not None:
            raise RuntimeError(f"cannot interrupt a running VP: {_install_problem}")


def deadline_after(timeout: float) -> float:
    """The ``time.monotonic()`` deadline ``timeout`` seconds from now (checked: a number >= 0)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not 0 <= timeout < math.inf:
        raise ValueError(f"timeout must be >= 0 seconds and finite, got {timeout}")
    return time.monotonic() + timeout


def already_running(what: str, tid: int, me: int) -> RuntimeError:
    """The refusal of a second runner of ``what``: its run is in thread ``tid``, the caller is ``me``."""
    where = "this thread" if tid == me else f"thread {tid}"
    return RuntimeError(f"{what} is already running in {where}")


class RunState:
    """One VP's run bookkeeping. It refers to no Vp, so a watchdog or kicker never keeps one alive.

    Who runs the VP and whether an interrupt is requested live in C memory (``struct
    mshv_run_owner``, build_ext/vp_kick.py), shared with the Cython run path, which enters and
    leaves a run there with atomic steps. Kickers count themselves in before they read the
    runner's tid and out after their signal is sent; a runner leaving waits for them.

    Attributes:
        word: ``int *``, nonzero while an interrupt is requested and not yet taken; the
            Cython loop reads it through its address.
        owner_address: the address of the ``struct mshv_run_owner``, for C code.
        kicks: signals sent to this VP's runs so far (more than one per request means a
            kick arrived before RUN_VP was entered, or was lost, and was repeated).
    """

    __slots__ = ("word", "owner_address", "kicks", "_owner", "_lock")

    def __init__(self) -> None:
        self._owner: Any = ffi.new("struct mshv_run_owner *")
        self.word: Any = ffi.addressof(self._owner[0], "request")
        self.owner_address = int(ffi.cast("uintptr_t", self._owner))
        self.kicks = 0
        self._lock = threading.Lock()  # kickers among themselves (the count of kicks)

    @property
    def word_address(self) -> int:
        """The address of :attr:`word`, for C code."""
        return int(ffi.cast("uintptr_t", self.word))

    @property
    def tid(self) -> int:
        """The kernel thread id of the thread inside a run of the VP, 0 when none."""
        return int(self._owner.tid)

    @tid.setter
    def tid(self, value: int) -> None:
        self._owner.tid = value

    # -- the runner's side -------------------------------------------------------------------
    @contextlib.contextmanager
    def entered(self, what: str, tid: int) -> Iterator[None]:
        """:meth:`enter` for thread ``tid`` around a ``with`` block, and :meth:`leave` after it.
        The enter is inside the ``try``: a signal's Python handler may raise as soon as it
        returns, and the run is left all the same. A run of this thread's own already in
        progress (a run loop handler) is refused first, so it is never left here."""
        if self.tid == tid:
            raise already_running(what, tid, tid)
        try:
            self.enter(what, tid)  # raises: a run is in progress in another thread
            yield
        finally:
            if self.tid == tid:  # this call entered (another thread's run is not left)
                self.leave()

    def enter(self, what: str, tid: int = 0) -> None:
        """Record the calling thread (its kernel id ``tid``, found when 0) as the one running the
        VP; refuses a second runner."""
        me = tid or _native_id()
        running = lib.mshv_run_enter(self._owner, me)
        if running:
            raise already_running(what, running, me)

    def leave(self) -> None:
        """The run is over: no kick is sent to this thread for it any more. A kick in flight
        is sent before this returns, so none reaches the thread's next run."""
        lib.mshv_run_leave(self._owner)

    def take_request(self) -> bool:
        """Take a pending interrupt request (True)."""
        return bool(lib.mshv_run_take_request(self._owner))

    # -- the kicker's side -------------------------------------------------------------------
    @contextlib.contextmanager
    def _counted_in(self) -> Iterator[int]:
        """A kicker's turn: the runner's tid (0: none), which it may kick until the block ends;
        a runner leaving meanwhile waits for it."""
        with self._lock:
            tid = lib.mshv_run_kick_begin(self._owner)
            try:
                yield tid
            finally:
                lib.mshv_run_kick_end(self._owner)

    def kick(self) -> None:
        """Send one kick to the thread in a run of the VP, if there is one (not this thread)."""
        with self._counted_in() as tid:
            if tid and tid != _native_id():
                lib.mshv_kick_thread(tid)  # ESRCH (the thread is gone) is harmless
                self.kicks += 1

    def interrupt(self, *, until_left: bool = False) -> None:
        """Request an interrupt and kick the run in progress until it took the request
        (``until_left``: until the run is over). Returns at once when no run is in progress
        (the request then stops the next run) or when the caller is the running thread."""
        lib.mshv_run_request(self._owner)  # before tid is read: a runner entering now sees it
        me = _native_id()
        next_kick = 0.0
        while True:
            with self._counted_in() as tid:
                if not tid or tid == me:
                    return
                if self.word[0]:
                    now = time.monotonic()
                    if now >= next_kick:
                        lib.mshv_kick_thread(tid)
                        self.kicks += 1
                        next_kick = now + KICK_RETRY
                elif not until_left:
                    return
            time.sleep(_POLL)


class _Watchdog:
    """One daemon thread that kicks runs past their deadline, every KICK_RETRY, until they end."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._due: dict[RunState, float] = {}
        self._wake = math.inf  # when the thread looks next
        self._thread: threading.Thread | None = None

    def watch(self, state: RunState, deadline: float) -> None:
        with self._cond:
            self._due[state] = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mshv-watchdog", daemon=True)
                self._thread.start()
            elif deadline < self._wake:
                self._cond.notify()

    def unwatch(self, state: RunState) -> None:
        with self._cond:
            self._due.pop(state, None)

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                late = [state for state, deadline in self._due.items() if deadline <= now]
                for state in late:
                    state.kick()
                later = [deadline for deadline in self._due.values() if deadline > now]
                self._wake = now + KICK_RETRY if late else min(later, default=math.inf)
                self._cond.wait(None if self._wake == math.inf else self._wake - now)

    def _forget_thread(self) -> None:  # in a forked child: the thread is not there
        self._cond = threading.Condition(threading.Lock())
        self._due.clear()
        self._wake = math.inf
        self._thread = None


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._forget_thread)


def watch(state: RunState, deadline: float) -> None:
    """Kick the runs of ``state`` once ``time.monotonic()`` passes ``deadline``, until :func:`unwatch`."""
    require()
    _WATCHDOG.watch(state, deadline)


def unwatch(state: RunState) -> None:
    """Stop watching ``state``'s deadline (its run is over)."""
    _WATCHDOG.unwatch(state)


@contextlib.contextmanager
def watching(state: RunState, deadline: float | None) -> Iterator[None]:
    """:func:`watch` ``state`` until the ``with`` block ends; nothing when ``deadline`` is None."""
    if deadline is None:
        yield
        return
    watch(state, deadline)
    try:
        yield
    finally:
        unwatch(state)
