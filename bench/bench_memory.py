"""Guest memory: map+unmap per call by region size and page size, first touch, dirty bitmap.

Map+unmap is MSHV_SET_GUEST_MEMORY twice on memory that is never touched, at a
GPA no guest uses; Python goes through ``Partition.map_memory``/``unmap_memory``
and C through the ioctl, on the same backend in the same session. Sizes are
4 KiB ... 1 GiB in powers of 4 (and 2 MiB); with 2 MiB hugetlb pages, 2 MiB ...
1 GiB. Hugetlb pages are reserved for the session when possible; when they
cannot be, those cases are skipped and the reason is in the JSON notes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _support import (
    GIB,
    MAP_GPA,
    MAP_SIZES_2M,
    MAP_SIZES_4K,
    MIB,
    QUICK,
    RAM_SIZE,
    TOUCH_GPA,
    CBaselines,
    InProcessC,
    guest_image,
    long_mode_vp,
    paired_c,
    record,
    record_python_floor,
)

from mshv import GuestMemory, HvPartitionProperty, IoPortIntercept, Mshv


def _rounds(size: int) -> int:
    return (5 if size >= 256 * MIB else 15) if QUICK else (21 if size >= 256 * MIB else 101)


def _map_case(benchmark: Any, cbase: CBaselines, size: int, huge: bool) -> None:
    pages = "2m" if huge else "4k"
    rounds = _rounds(size)
    # The standalone C client (its own process), for the table...
    cbase.get(f"c_map_{pages}_{size}", ["map", str(size), str(int(huge)), str(rounds)])
    c_inproc = InProcessC()
    c_samples: list[float] = []
    floor_samples: list[float] = []  # the same C round, timed from Python around its call
    with Mshv() as hv, GuestMemory(size, hugepages=huge) as mem, GuestMemory(RAM_SIZE) as ram:
        with hv.create_partition(lapic=False) as pt:
            # The same partition as the C client's: RAM at GPA 0 and one VP (a vCPU makes
            # every memslot change dearer in KVM: it must be kicked and its MMU zapped).
            pt.map_memory(ram, 0)
            _vp = pt.create_vp(0)  # held: a partition holds its VPs weakly
            pt_fd, address = pt.fd, mem.address  # read once: no property call in the timed call

            def c_round() -> None:  # untimed by pytest-benchmark: timed in C, and from Python
                start = time.perf_counter_ns()
                c_samples.append(float(c_inproc.map_unmap_ns(pt_fd, address, size, MAP_GPA)))
                floor_samples.append(float(time.perf_counter_ns() - start))

            def map_unmap() -> None:
                pt.unmap_memory(pt.map_memory(mem, MAP_GPA))

            benchmark.pedantic(map_unmap, setup=c_round, rounds=rounds, warmup_rounds=1)
    # ...and the ratio against C interleaved round by round with Python in this process: the
    # host's memslot cost drifts between phases, and separate runs land in different ones.
    c = paired_c(f"c_inproc_map_{pages}_{size}", "call", c_samples, rounds)
    cbase.results[c.case] = c
    record(benchmark, case=f"map_{pages}_{size}", group=f"map_{pages}", impl="python", unit="call",
           per=1, c=c, paired=True, size=size, pages=pages)  # fmt: skip
    benchmark.extra_info["per_gib_ns"] = benchmark.extra_info["median_ns"] * GIB / size
    record_python_floor(benchmark, floor_samples[-rounds:])


@pytest.mark.parametrize("size", MAP_SIZES_4K)
def bench_map_unmap_4k(benchmark: Any, size: int, cbase: CBaselines) -> None:
    """Map + unmap of ``size`` bytes of anonymous memory (4 KiB pages)."""
    _map_case(benchmark, cbase, size, huge=False)


@pytest.mark.parametrize("size", MAP_SIZES_2M)
def bench_map_unmap_2m(benchmark: Any, size: int, cbase: CBaselines, hugetlb: bool) -> None:
    """Map + unmap of ``size`` bytes of 2 MiB hugetlb memory."""
    if not hugetlb:
        pytest.skip("no 2 MiB hugetlb pages could be reserved (see the notes)")
    _map_case(benchmark, cbase, size, huge=True)


TOUCH_SIZE = 2 * MIB


def bench_first_touch(benchmark: Any, cbase: CBaselines) -> None:
    """RUN_VP in which the guest first writes a freshly mapped region (one OUT exit included).

    The ratio is to C doing the same on the same VP in this process, one C round right
    before each Python round (bench/c/inproc.c); the separate C client stays in the table.
    The floor is a C run of a region mapped from Python, timed from Python around its call.
    """
    rounds = 15 if QUICK else 101
    args = ["touch", str(guest_image("touch")), str(TOUCH_SIZE), str(rounds)]
    client = cbase.get(f"c_touch_{TOUCH_SIZE}", args)
    c_inproc = InProcessC()
    c_samples: list[float] = []
    floor_samples: list[float] = []
    with long_mode_vp("touch") as (pt, vp, _mem):
        state: dict[str, Any] = {}
        c_run = c_inproc.run(vp)

        def c_floor_round() -> None:  # a C run of fresh memory, timed from Python around its call
            with GuestMemory(TOUCH_SIZE) as mem:
                region = pt.map_memory(mem, TOUCH_GPA)
                start = time.perf_counter_ns()
                c_run()
                floor_samples.append(float(time.perf_counter_ns() - start))
                assert mem.read(0, 1) == b"\x01"
                pt.unmap_memory(region)

        def setup() -> None:
            c_samples.append(float(c_inproc.touch_ns(pt, vp, TOUCH_GPA, TOUCH_SIZE)))
            c_floor_round()
            state["mem"] = GuestMemory(TOUCH_SIZE)
            state["region"] = pt.map_memory(state["mem"], TOUCH_GPA)

        def teardown() -> None:
            exit_ = vp.last_exit
            assert isinstance(exit_, IoPortIntercept) and state["mem"].read(0, 1) == b"\x01"
            vp.complete_io(exit_)
            pt.unmap_memory(state["region"])
            state["mem"].close()

        # vp.run itself is timed, as the C side times its RUN_VP: no wrapper of the bench's own
        benchmark.pedantic(vp.run, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=1)
    c = paired_c(f"c_inproc_touch_{TOUCH_SIZE}", "call", c_samples, rounds)
    record(benchmark, case=f"touch_{TOUCH_SIZE}", group="touch", impl="python", unit="call", per=1, c=c,
           paired=True, size=TOUCH_SIZE)  # fmt: skip
    benchmark.extra_info["ratio_to_c_client"] = benchmark.extra_info["median_ns"] / client.median_ns
    record_python_floor(benchmark, floor_samples[-rounds:])


BITMAP_SIZE = GIB


def bench_dirty_bitmap(benchmark: Any, cbase: CBaselines) -> None:
    """``Partition.dirty_pages`` (MSHV_GET_GPAP_ACCESS_BITMAP, dirty, clear) over a 1 GiB region
    with tracking on, against C reading the bitmap on the same partition, one C round right
    before each Python round (bench/c/inproc.c); the separate C client stays in the table."""
    rounds = 5 if QUICK else 31
    npages = BITMAP_SIZE // 4096
    client = cbase.get(f"c_bitmap_{BITMAP_SIZE}", ["bitmap", str(BITMAP_SIZE), str(rounds)])
    c_samples: list[float] = []
    with Mshv() as hv, GuestMemory(BITMAP_SIZE) as mem, hv.create_partition(lapic=False) as pt:
        pt.map_memory(mem, MAP_GPA)
        pt.set_property(HvPartitionProperty.GPA_PAGE_ACCESS_TRACKING, 1)
        c_timer = InProcessC().bitmap(pt, MAP_GPA, npages)

        def c_round() -> None:  # untimed by pytest-benchmark: timed in C
            c_samples.append(float(c_timer()))

        benchmark.pedantic(pt.dirty_pages, args=(MAP_GPA, npages), setup=c_round, rounds=rounds,
                           warmup_rounds=1)  # fmt: skip
    c = paired_c(f"c_inproc_bitmap_{BITMAP_SIZE}", "call", c_samples, rounds)
    cbase.results[c.case] = c
    record(benchmark, case=f"bitmap_{BITMAP_SIZE}", group="bitmap", impl="python", unit="call", per=1, c=c,
           paired=True, size=BITMAP_SIZE)  # fmt: skip
    benchmark.extra_info["ratio_to_c_client"] = benchmark.extra_info["median_ns"] / client.median_ns
