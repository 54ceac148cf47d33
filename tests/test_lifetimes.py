"""Lifetimes: closing in any order, views that outlive close(), objects dropped without close().

Dropped objects must be freed by reference counting alone: every test that drops objects
runs with the cycle collector disabled, so a reference cycle between owners shows up as
fds, mappings or memory that stay behind.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import warnings
import weakref
from collections.abc import Iterator

import pytest

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, Mshv, RunLoop
from mshv.testing import assemble, start_vp

CODE = assemble("mov $0x42, %al; out %al, $0x10; hlt")
MiB = 1024 * 1024


@contextlib.contextmanager
def no_cycle_collector() -> Iterator[None]:
    """Disable the cycle collector (what is dropped is freed by reference counts alone) and
    silence the backstops' ResourceWarnings (dropping without close() is what is tested)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            yield
    finally:
        if enabled:
            gc.enable()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mapped(address: int) -> bool:
    """True while ``address`` lies in a mapping of this process (/proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return True
    return False


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- closing in the natural `with` order (issue 13, item 3) ---------------------------------------


def test_the_natural_with_order_closes_cleanly(backend_ready: None) -> None:
    with Mshv() as hv, hv.create_partition(lapic=False) as pt, GuestMemory(0x100000) as mem:
        pt.map_memory(mem, 0)
        vp = start_vp(pt, mem, CODE, mode="real")
        assert isinstance(vp.run(), IoPortIntercept)
        address = mem.address
    assert mem.closed and pt.closed and hv.closed and vp.closed
    assert not mapped(address)  # the deferred free happened when the partition unmapped it


def test_the_natural_with_order_keeps_the_error_of_the_block(backend_ready: None) -> None:
    with pytest.raises(KeyError, match="from the block"):
        with Mshv() as hv, hv.create_partition(lapic=False) as pt, GuestMemory(0x100000) as mem:
            pt.map_memory(mem, 0)
            raise KeyError("from the block")
    assert mem.closed and pt.closed


def test_memory_closed_while_mapped_is_freed_only_when_unmapped(backend_ready: None) -> None:
    """close() while a region maps the memory ends its use from Python; the host mapping stays
    until the last region is gone, so the guest never sees freed memory."""
    with Mshv() as hv, hv.create_partition(lapic=False) as pt:
        mem = GuestMemory(0x10000)
        region = pt.map_memory(mem, 0)
        vp = start_vp(pt, mem, assemble("mov (0x3000), %al; out %al, $0x10; hlt"), mode="real")
        mem.write(0x3000, b"\x5a")
        mem.close()
        assert mem.closed and "mapped_by=1" in repr(mem)
        with pytest.raises(ValueError, match="closed"):
            mem.read(0, 1)
        assert mapped(region.hva)
        exit_ = vp.run()  # the guest still reads its memory
        assert isinstance(exit_, IoPortIntercept) and exit_.value == 0x5A
        vp.complete_io(exit_)
        assert isinstance(vp.run(), HaltIntercept)
        pt.unmap_memory(region)
        assert not mapped(region.hva) and "mapped_by=0" in repr(mem)


# -- views that outlive close() (issue 12, item 8) ---------------------------------------------------


def test_close_refuses_while_a_view_is_alive() -> None:
    mem = GuestMemory(0x4000)
    view = mem.view()
    view[0] = 7
    with pytest.raises(BufferError, match="view"):
        mem.close()
    assert not mem.closed and view[0] == 7  # still usable, nothing was freed
    part = view[0x1000:0x2000]
    view.release()
    with pytest.raises(BufferError):
        mem.close()  # a slice of it is still alive
    part.release()
    mem.close()
    assert mem.closed
    with pytest.raises(ValueError, match="closed"):
        mem.view()


def test_close_while_mapped_refuses_a_view_too(backend_ready: None) -> None:
    with Mshv() as hv, hv.create_partition(lapic=False) as pt:
        mem = GuestMemory(0x4000)
        pt.map_memory(mem, 0)
        view = mem.view()
        with pytest.raises(BufferError):
            mem.close()
        assert not mem.closed
        view.release()
        mem.close()
    assert mem.closed and "mapped_by=0" in repr(mem)


# -- dropped objects are freed by reference counting (issue 12, item 9) ----------------------------


def _dropped_cycle(size: int = 0x40000, touch: bool = False, loop: bool | None = None) -> None:
    """Create, map, run and drop a partition: nothing is closed."""
    hv = Mshv()
    pt = hv.create_partition(lapic=False)
    mem = GuestMemory(size)
    if touch:
        mem.write(0, bytes(size))  # every page resident
    pt.map_memory(mem, 0)
    vp = start_vp(pt, mem, CODE, mode="real")
    if loop is not None:
        run_loop = RunLoop(vp, native=loop)
        run_loop.port_counter(0x10)
        assert run_loop.run().reason == "halt"
    else:
        assert isinstance(vp.run(), IoPortIntercept)


@pytest.mark.parametrize("loop", [None, True, False], ids=["vp_run", "cython_loop", "python_loop"])
def test_fds_do_not_grow_over_1000_dropped_cycles(backend_ready: None, loop: bool | None) -> None:
    with no_cycle_collector():
        _dropped_cycle(loop=loop)  # first-use allocations (e.g. the emulator's) come before
        before = open_fds()
        for _ in range(1000):
            _dropped_cycle(loop=loop)
        growth = open_fds() - before
    assert growth <= 0, f"{growth} fds held after 1000 dropped cycles"


def test_rss_does_not_grow_with_dropped_8mib_guests(backend_ready: None) -> None:
    with no_cycle_collector():
        _dropped_cycle(8 * MiB, touch=True)
        before = rss_bytes()
        for _ in range(100):
            _dropped_cycle(8 * MiB, touch=True)
        growth = rss_bytes() - before
    assert growth < 64 * MiB, f"RSS grew by {growth / MiB:.0f} MiB over 100 dropped 8 MiB guests"


def test_a_dropped_partition_releases_its_memory(backend_ready: None) -> None:
    with no_cycle_collector(), Mshv() as hv:
        mem = GuestMemory(0x10000)
        pt = hv.create_partition(lapic=False)
        pt.map_memory(mem, 0)
        vp = start_vp(pt, mem, CODE, mode="real")
        assert isinstance(vp.run(), IoPortIntercept)
        del pt, vp
        assert "mapped_by=0" in repr(mem)
        mem.close()
        assert mem.closed


def test_a_dropped_vp_does_not_keep_its_partition_from_closing(backend_ready: None) -> None:
    """The partition holds its VPs weakly: a VP dropped without close() is freed at once (its
    backstop closes it), and the partition's close() still closes the VPs that are alive."""
    with no_cycle_collector(), Mshv() as hv, hv.create_partition(lapic=False) as pt:
        dropped = weakref.ref(pt.create_vp(0))
        assert dropped() is None and list(pt.vps) == []
        kept = pt.create_vp(1)
        assert list(pt.vps) == [1]
    assert kept.closed


NOTHING_FOR_THE_COLLECTOR = """
import gc, warnings
warnings.simplefilter("ignore", ResourceWarning)
from mshv import EventFd, GuestMemory, Mshv, RunLoop
from mshv.testing import assemble, start_vp

code = assemble("out %al, $0x10; mov %ds:(0x3000), %al; in $0x11, %al; hlt")


def scenario(native):
    hv = Mshv()  # the process's first: the backend is chosen here
    pt = hv.create_partition(lapic=False)
    mem = GuestMemory(0x40000)
    pt.map_memory(mem, 0)
    vp = start_vp(pt, mem, code, mode="real")
    other = pt.create_vp(1)
    loop = RunLoop(vp, native=native)
    loop.port_buffer(0x10)
    loop.on_io(0x11, lambda port, size, value: 3)
    assert loop.run().reason == "halt"
    irq = pt.irqfd(EventFd(), 5)
    view = mem.view()
    view.release()
    regs = other.regs


gc.disable()
gc.collect()
gc.set_debug(gc.DEBUG_SAVEALL)
for native in (False, True):
    scenario(native)
print(gc.collect(), sorted({type(o).__name__ for o in gc.garbage}))
"""


def test_dropped_objects_leave_nothing_for_the_cycle_collector(backend_ready: None) -> None:
    """A whole session dropped without close(), the process's first Mshv() included: the cycle
    collector finds nothing (every owner, loop and handler was freed by reference counting)."""
    proc = subprocess.run(
        [sys.executable, "-c", NOTHING_FOR_THE_COLLECTOR], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "0 []"
