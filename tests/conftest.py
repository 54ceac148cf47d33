"""Fixtures for the Python API tests: they run real guests on the available backend.

No machine here has /dev/mshv, so the backend is the emulator on /dev/kvm. A
missing /dev/kvm FAILS these tests: it is never a reason to skip.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest

from mshv import GuestMemory, Mshv, Partition

# Subprocesses the tests start (``python -m mshv ...``, test scripts) must import the
# installed package, as this process does, not the source tree of the checkout they
# run in: with PYTHONSAFEPATH, ``-m`` and a script's directory are not put first on
# sys.path. (The source tree has no compiled parts unless installed in place.)
os.environ["PYTHONSAFEPATH"] = "1"


@pytest.fixture(scope="session")
def backend_ready() -> None:
    if not os.path.exists("/dev/mshv"):
        assert os.path.exists("/dev/kvm"), "neither /dev/mshv nor /dev/kvm: the tests need one of them"


@pytest.fixture
def hv(backend_ready: None) -> Iterator[Mshv]:
    with Mshv() as device:
        yield device


@pytest.fixture
def partition(hv: Mshv) -> Iterator[Partition]:
    with hv.create_partition(lapic=False) as pt:
        yield pt


@pytest.fixture
def memory(partition: Partition) -> Iterator[GuestMemory]:
    """256 KiB of guest memory mapped at GPA 0 of ``partition`` (room for mshv.testing.start_vp)."""
    with GuestMemory(0x40000) as mem:
        partition.map_memory(mem, 0)
        yield mem
        partition.close()


@contextlib.contextmanager
def _alarms_to_this_thread(first: float, period: float | None = None) -> Iterator[None]:
    """SIGALRM sent to the calling thread (pthread_kill) after ``first`` seconds, then every
    ``period``. Thread-directed, as a kick is: a process-directed signal (setitimer) that arrives
    while the emulator's RUN_VP code runs with signals blocked may be taken by another thread of
    the process (the kernel's complete_signal picks a thread that does not block it)."""
    target, stop = threading.get_ident(), threading.Event()

    def send() -> None:
        wait = first
        while not stop.wait(wait):
            signal.pthread_kill(target, signal.SIGALRM)
            if period is None:
                return
            wait = period

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


@pytest.fixture
def thread_alarms() -> Callable[..., contextlib.AbstractContextManager[None]]:
    """``thread_alarms(first, period=None)``: SIGALRM to the calling thread, see
    :func:`_alarms_to_this_thread`."""
    return _alarms_to_this_thread
