"""pytest plugin: guest code as unit tests (loaded through the ``pytest11`` entry point ``mshv``).

Fixtures (every name starts with ``mshv_``, so none hides a project's own):

- ``mshv_device``: an open :class:`~mshv.Mshv` on the backend in use.
- ``mshv_partition``: a created, initialized partition without a LAPIC (HLT exits),
  closed after the test.
- ``mshv_memory``: 256 KiB of guest memory mapped at GPA 0 of ``mshv_partition``.
- ``mshv_mode``: "real", "protected", "long"; a test that uses it (or ``mshv_vp``) runs
  once per mode; ``@pytest.mark.parametrize("mshv_mode", ["long"])`` picks modes.
- ``mshv_vp``: VP 0 of ``mshv_partition``, registers set for ``mshv_mode`` (flat segments,
  a GDT, page tables: :func:`mshv.testing.start_vp`), RIP at a HLT at
  :func:`mshv.testing.entry_gpa`.
- ``mshv_guest``: a factory, ``mshv_guest(source, mode=...)`` assembles ``source`` for
  the mode, loads it into a partition of its own and returns a :class:`Guest` ready to run.

Marker ``@pytest.mark.mshv_requires("capability", ...)`` skips the test, naming what is
missing, unless the backend has every capability (probed: :mod:`mshv.capabilities`).
A missing backend is never a skip: the fixtures raise :class:`~mshv.BackendUnavailable`.
Exit sequences are checked with :func:`mshv.exits.assert_exits`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mshv.device import Mshv
    from mshv.exits import Exit
    from mshv.intercepts import Intercept
    from mshv.memory import GuestMemory
    from mshv.partition import Partition
    from mshv.registers import RegisterValue
    from mshv.vp import Vp

# Nothing of mshv is imported at load time: the entry point loads this module into every
# pytest run of an environment that has python-mshv, and most of those never run a guest.

__all__ = ["MODES", "Guest", "GuestFactory"]

MODES = ("real", "protected", "long")
_MEMORY_SIZE = 0x40000  # room for mshv.testing.start_vp in every mode
_HLT = b"\xf4"
_MARKER = "mshv_requires"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(*capabilities): skip unless the mshv backend in use has each capability, probed "
        "once per run (mshv.capabilities: kernel, exception_intercepts, iret_in_protected_mode, ...)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Mark a test skipped when its ``mshv_requires`` names a capability the backend lacks.

    A wrapper, so the mark is there before pytest's own skipping runs: the skip is then
    reported at the test, like any skip mark.
    """
    reason = _missing_capability(item)
    if reason is not None:
        item.add_marker(pytest.mark.skip(reason=reason))
    return (yield)


def _missing_capability(item: pytest.Item) -> str | None:
    from mshv.capabilities import describe, probe

    for marker in item.iter_markers(name=_MARKER):
        if not marker.args or marker.kwargs or not all(isinstance(a, str) for a in marker.args):
            pytest.fail(f"use @pytest.mark.{_MARKER}('capability', ...), not {marker}", pytrace=False)
        for name in marker.args:
            try:
                what, found = describe(name), probe(name)
            except ValueError as exc:  # no such capability
                pytest.fail(f"{_MARKER}({name!r}): {exc}", pytrace=False)
            if not found.available:
                return f"{_MARKER}({name!r}): the backend lacks {what}: {found.detail}"
    return None


class Guest:
    """Guest code in a partition of its own: assembled, loaded at the mode's entry, VP 0
    ready to run it. Closing it closes the partition, then the memory."""

    def __init__(self, source: str, *, mode: str, memory_size: int | None, lapic: bool) -> None:
        from mshv.testing import assemble, entry_gpa, partition_with_one_vp

        self.mode = mode
        self.entry = entry_gpa(mode)
        self.code = assemble(source, mode=mode, base=self.entry)
        self._stack = contextlib.ExitStack()
        setup = partition_with_one_vp(self.code, mode=mode, memory_size=memory_size, lapic=lapic)
        self.partition, self.vp, self.memory = self._stack.enter_context(setup)

    def __repr__(self) -> str:
        return f"<Guest mode={self.mode} entry={self.entry:#x} code={len(self.code)} bytes vp={self.vp!r}>"

    def run(self) -> Intercept:
        """Run VP 0 to its next exit (``Vp.run``)."""
        return self.vp.run()

    def assert_exits(self, expected: Sequence[Exit]) -> list[Intercept]:
        """:func:`mshv.exits.assert_exits` on VP 0."""
        __tracebackhide__ = True
        from mshv.exits import assert_exits

        return assert_exits(self.vp, expected)

    def run_to_halt(self, ins: Mapping[int, int] | None = None, *, max_exits: int = 10_000) -> list[int]:
        """Run until HLT, answering each IN from ``ins`` (port: value); returns the values
        the guest wrote with OUT, in order.

        Raises:
            AssertionError: an exit other than port IO or HLT, an IN on a port ``ins``
                lacks, or more than ``max_exits`` exits.
        """
        from mshv.intercepts import HaltIntercept, IoPortIntercept

        ins = ins or {}
        outs: list[int] = []
        for _ in range(max_exits):
            exit_ = self.vp.run()
            if isinstance(exit_, HaltIntercept):
                return outs
            if not isinstance(exit_, IoPortIntercept) or exit_.string:
                raise AssertionError(f"expected port IO or HLT, got {exit_!r}")
            if exit_.is_write:
                outs.append(exit_.value)
            elif exit_.port not in ins:
                raise AssertionError(f"IN from port {exit_.port:#x} at RIP {exit_.rip:#x}, which ins lacks")
            self.vp.complete_io(exit_, None if exit_.is_write else ins[exit_.port])
        raise AssertionError(f"no HLT within {max_exits} exits (OUT values so far: {[hex(v) for v in outs]})")

    def reg(self, name: str) -> RegisterValue:
        """Read one register of VP 0."""
        return self.vp.reg_read(name)

    def read(self, gpa: int, size: int) -> bytes:
        """Read ``size`` bytes of guest memory at ``gpa`` (memory is mapped at GPA 0)."""
        return self.memory.read(gpa, size)

    def close(self) -> None:
        """Close the partition, then free its memory (idempotent)."""
        self._stack.close()


GuestFactory = Callable[..., Guest]


@pytest.fixture
def mshv_device() -> Iterator[Mshv]:
    """An open Mshv; a backend that cannot be used fails the test (BackendUnavailable)."""
    from mshv.device import Mshv

    with Mshv() as device:
        yield device


@pytest.fixture
def mshv_partition(mshv_device: Mshv) -> Iterator[Partition]:
    """A created and initialized partition without a LAPIC (HLT exits), closed after."""
    with mshv_device.create_partition(lapic=False) as partition:
        yield partition


@pytest.fixture
def mshv_memory(mshv_partition: Partition) -> Iterator[GuestMemory]:
    """256 KiB of guest memory mapped at GPA 0 of ``mshv_partition``."""
    from mshv.memory import GuestMemory

    with GuestMemory(_MEMORY_SIZE) as memory:
        mshv_partition.map_memory(memory, 0)
        yield memory
        mshv_partition.close()  # unmaps it, so it can be freed


@pytest.fixture(params=MODES)
def mshv_mode(request: pytest.FixtureRequest) -> str:
    """The CPU mode of the test: each of "real", "protected", "long" in turn."""
    mode: str = request.param
    return mode


@pytest.fixture
def mshv_vp(mshv_partition: Partition, mshv_memory: GuestMemory, mshv_mode: str) -> Vp:
    """VP 0 set up for ``mshv_mode``, at a HLT at ``mshv.testing.entry_gpa(mshv_mode)``."""
    from mshv.testing import start_vp

    return start_vp(mshv_partition, mshv_memory, _HLT, mode=mshv_mode)


@pytest.fixture
def mshv_guest() -> Iterator[GuestFactory]:
    """A factory: ``mshv_guest(source, *, mode, memory_size=None, lapic=False) -> Guest``.

    ``memory_size`` defaults to 64 KiB in real mode and 256 KiB otherwise; every guest
    made is closed after the test.
    """
    guests: list[Guest] = []

    def make(source: str, *, mode: str, memory_size: int | None = None, lapic: bool = False) -> Guest:
        guest = Guest(source, mode=mode, memory_size=memory_size, lapic=lapic)
        guests.append(guest)
        return guest

    yield make
    for guest in reversed(guests):
        guest.close()
