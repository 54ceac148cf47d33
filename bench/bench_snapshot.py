"""Snapshot restore: a 64 MiB guest with 1% of its pages dirtied, restored page by page (the dirty
pages GPA access tracking reports) against a full-copy restore of the same snapshot.

Each round runs the guest (it writes one word in each of 163 pages spread over its memory,
then exits), restores with ``full=True`` (timed by hand, untimed by pytest-benchmark), runs
the guest and restores its dirty pages WARM_RESTORES times untimed (the full copy leaves the
caches cold, which a run-restore loop never sees: on this kind of host one such round was not
enough; the first restore after the full copy is kept apart, in
``extra_info["first_restore_after_full_copy_us"]``), runs it again and restores the dirty
pages only (the timed call): the full-copy round right before each measured round, as the C
rounds of the other suites, since the host's speed drifts. The ratio is the median of the per-round ratios
(dirty-page / full-copy restore time). Right before the timed restore, each round also runs the
guest and restores its dirty pages through the same prepared calls issued from C
(bench/c/inproc.c), without Python: ``extra_info["c_restore_us"]`` and the note give that
floor and the per-round ratio to it.

Then, in a second pass of the same rounds, each step of a dirty-page restore is timed on its
own (freeze and thaw, the dirty bitmap, the page copies, each call of the VP batch,
REFERENCE_TIME): ``extra_info["phases_us"]`` and a note say where the time goes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from _support import MIB, QUICK, CBaselines, CResult, InProcessC, paired_c, record

from mshv import GuestMemory, IoPortIntercept, Mshv, Partition, Vp, snapshot
from mshv.memory import PAGE_SIZE
from mshv.testing import PAGED_CODE_GPA, assemble, long_mode_registers

GUEST_SIZE = 64 * MIB
FIRST_PAGE = 0x20000 // PAGE_SIZE  # above the page tables and the code
DIRTY_PAGES = GUEST_SIZE // PAGE_SIZE // 100  # 1%
WARM_RESTORES = 4  # run + dirty-page restore rounds between a full copy and the timed restore
STRIDE = (GUEST_SIZE // PAGE_SIZE - FIRST_PAGE) // DIRTY_PAGES
GUEST = f"""
    mov ${FIRST_PAGE * PAGE_SIZE:#x}, %rdi
    mov ${DIRTY_PAGES}, %ecx
1:  incq (%rdi)
    add ${STRIDE * PAGE_SIZE:#x}, %rdi
    loop 1b
    out %al, $0x80
"""


def _dirty_the_pages(vp: Vp) -> None:
    exit_ = vp.run()
    if not (isinstance(exit_, IoPortIntercept) and exit_.port == 0x80):
        raise RuntimeError(f"the guest stopped with {exit_!r}")


def _ns(fn: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


_STATE_NAMES = {code: name for name, code in snapshot._STATE_TYPES.items()}


def _vp_call_labels(snap: snapshot.Snapshot) -> list[str]:
    """What each step of the restore's VP batch is, in its order (mshv.snapshot._Program)."""
    assert snap._plans is not None
    labels = []
    for index, plan in snap._plans.items():
        labels += [f"vp{index} registers (SET_VP_REGISTERS)"] * len(plan.registers.inputs)
        labels += [f"vp{index} state blob {_STATE_NAMES[blob.state_type]}" for blob in plan.blobs]
        labels += [f"vp{index} events (SET_VP_REGISTERS)"] * len(plan.events.inputs)
    return labels + ["REFERENCE_TIME"] * bool(snap._reference_input)


def _phases(pt: Partition, vp: Vp, snap: snapshot.Snapshot) -> dict[str, int]:
    """One dirty-page restore, step by step: the batches of mshv.snapshot._Program.run, and each
    call of the VP batch on its own."""
    program = pt._restore_program
    assert program is not None and program.live_vps(pt, snap) == [vp]
    fds = program.fds
    times = {"freeze (get + set)": _ns(lambda: (program.read_frozen.run(fds), program.freeze.run(fds)))}
    times["dirty bitmap (get + clear)"] = _ns(lambda: program.bitmaps.run(fds))
    times[f"copy {DIRTY_PAGES} pages"] = _ns(lambda: program._copy_memory(snap, True, []))
    page = vp.register_page
    assert page is not None
    for step, label in enumerate(_vp_call_labels(snap)):
        ns = _ns(lambda: program.vp_calls.run(fds, start=step, stop=step + 1))  # noqa: B023
        times[label] = times.get(label, 0) + ns
    times["thaw"] = _ns(lambda: program.thaw.run(fds))
    times["register page copy of GPRs, RIP, RFLAGS"] = _ns(lambda: snapshot._write_page(vp, program.plans[0]))
    pt._snapshot_base = (snap, *program.layout)  # (what restore() leaves behind)
    return times


def bench_snapshot_restore(benchmark: Any, cbase: CBaselines) -> None:
    """Restore of a 64 MiB guest with 1% of its pages dirtied: dirty pages only vs a full copy."""
    rounds = 5 if QUICK else 41
    code = assemble(GUEST, mode="long", base=PAGED_CODE_GPA)
    full_ns: list[float] = []
    after_full_ns: list[float] = []
    c_ns: list[float] = []
    with Mshv() as hv, GuestMemory(GUEST_SIZE) as mem, hv.create_partition() as pt:
        mem.write(PAGED_CODE_GPA, code)
        pt.map_memory(mem, 0)
        vp = pt.create_vp(0)
        vp.set_registers(long_mode_registers(mem, PAGED_CODE_GPA))  # type: ignore[arg-type]
        snap = pt.snapshot()
        pt.restore(snap)  # encodes the restore's inputs once
        c_restore = InProcessC().restore(pt, snap)

        def full_copy_round() -> None:  # untimed by pytest-benchmark: timed here
            _dirty_the_pages(vp)
            full_ns.append(float(_ns(lambda: pt.restore(snap, full=True))))
            # dirty-page restores between: the full copy leaves the caches cold, which a
            # fuzzing loop (run, restore, run...) never sees; the first one is kept apart
            _dirty_the_pages(vp)
            after_full_ns.append(float(_ns(lambda: pt.restore(snap))))
            for _ in range(WARM_RESTORES - 1):
                _dirty_the_pages(vp)
                pt.restore(snap)
            _dirty_the_pages(vp)
            c_ns.append(float(c_restore()))  # the same calls and copies from C: the floor
            _dirty_the_pages(vp)

        benchmark.pedantic(lambda: pt.restore(snap), setup=full_copy_round, rounds=rounds, warmup_rounds=1)
        phases: dict[str, list[int]] = {}
        for _ in range(rounds):
            _dirty_the_pages(vp)
            for name, ns in _phases(pt, vp, snap).items():
                phases.setdefault(name, []).append(ns)
    kept = full_ns[-rounds:]  # (the warm-up round's goes)
    full = CResult("restore_full_copy_64M (Python)", "call", statistics.median(kept), kept)
    record(benchmark, case="snapshot_restore_1pct_64M", group="snapshot", impl="python", unit="call", per=1,
           c=full, paired=True, size=GUEST_SIZE, dirty_pages=DIRTY_PAGES)  # fmt: skip
    info = benchmark.extra_info
    info["phases_us"] = {name: statistics.median(ns) / 1000 for name, ns in phases.items()}
    info["speedup_vs_full_copy"] = 1 / info["ratio_to_c"]
    info["first_restore_after_full_copy_us"] = statistics.median(after_full_ns[-rounds:]) / 1000
    c = paired_c("c_inproc_restore_1pct_64M", "call", c_ns, rounds)
    cbase.results[c.case] = c
    python_ns = [t * 1e9 for t in benchmark.stats.stats.data]
    info["c_restore_us"] = c.median_ns / 1000
    info["ratio_to_c_restore"] = statistics.median(
        p / q for p, q in zip(python_ns, c.samples_ns, strict=True)
    )
    steps = ", ".join(f"{name} {us:.1f}" for name, us in info["phases_us"].items())
    cold = info["first_restore_after_full_copy_us"]
    cbase.notes.append(
        f"snapshot: restore of a 64 MiB guest with {DIRTY_PAGES} dirty pages (1%): "
        f"{info['median_ns'] / 1000:.0f} µs, {info['speedup_vs_full_copy']:.1f}x faster than a full-copy "
        f"restore ({full.median_ns / 1000:.0f} µs; its row's baseline column is that restore, not C); "
        f"the first restore after each full copy (cold caches): {cold:.0f} µs. "
        f"The same calls and page copies issued from C: {info['c_restore_us']:.0f} µs "
        f"(Python/C per round, median: {info['ratio_to_c_restore']:.2f}x). "
        f"Steps (µs, medians): {steps}"
    )
