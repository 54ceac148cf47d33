"""Exit latency: one guest, four exit kinds, every driver, ns per exit, against C.

The guest loops on one access (`out`, `in`, an MMIO read, an MMIO write) in
64-bit mode. Drivers: the raw KVM loop in C, the /dev/mshv C client (its own
process; register page or hypercall completion), the Cython RunLoop, the
pure-Python RunLoop, and plain ``vp.run()`` + completion.

The C client runs each of its rounds right after a round of a raw KVM loop in
its own process and one of that loop's floor (bench/c/bench_kvm.h: what an
emulator of /dev/mshv on KVM cannot leave out), and reports the medians of the
per-round ratios (``ratio_to_kvm``, ``floor_ratio_to_kvm``).

``ratio_to_c`` is to C driving the *same VP* from inside this process
(bench/c/inproc.c: MSHV_RUN_VP through the kernel table, register-page
completion), one C round right before each Python round, as the median of the
per-round ratios: the host's speed drifts between phases, and C measured
minutes earlier in another process can land in a different one.
``ratio_to_c_client`` is to the separate C client, ``ratio_to_kvm`` to the raw
KVM loop.
"""

from __future__ import annotations

from typing import Any

import pytest
from _support import (
    EXIT_KINDS,
    IN_VALUE,
    MMIO_GPA,
    MMIO_VALUE,
    PORT,
    CBaselines,
    CResult,
    InProcessC,
    exits_per_round,
    guest_image,
    long_mode_vp,
    paired_c,
)
from _support import record as record_case

from mshv import IoPortIntercept, MemoryIntercept, Vp


def _c_cases(cbase: CBaselines, kind: str) -> dict[str, Any]:
    n, rounds = exits_per_round()
    image = str(guest_image(kind))
    kvm = cbase.get(f"c_kvm_{kind}", [image, kind, str(n), str(rounds)], mshv=False)
    out = {"kvm": kvm}
    for how in ("regpage", "hvcall"):
        out[how] = cbase.get(f"c_mshv_{kind}_{how}", ["exits", image, kind, str(n), str(rounds), how])
    return out


@pytest.mark.parametrize("kind", EXIT_KINDS)
def bench_c_baselines(kind: str, cbase: CBaselines) -> None:
    """Run the C baselines of ``kind`` (raw KVM; mshv client, both completions)."""
    c = _c_cases(cbase, kind)
    assert c["kvm"].median_ns > 0 and c["regpage"].median_ns > 0


def _complete(vp: Vp, kind: str, exit_: Any) -> None:
    """The mshv completion a Python VMM writes: results and RIP past the instruction."""
    if kind == "out":
        assert isinstance(exit_, IoPortIntercept)
        vp.complete_io(exit_)
    elif kind == "in":
        assert isinstance(exit_, IoPortIntercept)
        vp.complete_io(exit_, IN_VALUE)
    elif kind == "mmio_read":  # the VMM knows its guest: mov (%rbx), %eax
        assert isinstance(exit_, MemoryIntercept)
        vp.complete_registers({"rip": exit_.next_rip, "rax": MMIO_VALUE})
    else:
        assert isinstance(exit_, MemoryIntercept)
        vp.complete_registers({"rip": exit_.next_rip})


class _PairedC:
    """C rounds on the same VP, one before each Python round (pytest-benchmark's setup)."""

    def __init__(self, vp: Vp, kind: str, n: int) -> None:
        self.vp, self.kind, self.n = vp, kind, n
        self.timer = InProcessC()
        self.samples: list[float] = []

    def round(self) -> None:
        self.samples.append(self.timer.exits_ns(self.vp, self.kind, self.n) / self.n)

    def result(self, rounds: int) -> CResult:
        return paired_c(f"c_inproc_{self.kind}", "exit", self.samples, rounds)


def _record(benchmark: Any, cbase: CBaselines, kind: str, impl: str, n: int, paired: CResult) -> None:
    c = _c_cases(cbase, kind)
    record_case(benchmark, case=f"exit_{kind}_{impl}", group=f"exit_{kind}", impl=impl, unit="exit",
                per=n, c=paired, paired=True, kind=kind)  # fmt: skip
    median_ns = benchmark.extra_info["median_ns"]
    benchmark.extra_info["ratio_to_c_client"] = median_ns / c["regpage"].median_ns
    benchmark.extra_info["ratio_to_kvm"] = median_ns / c["kvm"].median_ns


@pytest.mark.parametrize("kind", EXIT_KINDS)
def bench_exit_python_run(benchmark: Any, kind: str, cbase: CBaselines) -> None:
    """``vp.run()`` + completion in Python (``complete_io`` uses the register page)."""
    n, rounds = exits_per_round()
    with long_mode_vp(kind) as (_pt, vp, _mem):
        paired = _PairedC(vp, kind, n)

        def run_n() -> None:
            for _ in range(n):
                _complete(vp, kind, vp.run())

        benchmark.pedantic(run_n, setup=paired.round, rounds=rounds, warmup_rounds=1)
    _record(benchmark, cbase, kind, "python_run", n, paired.result(rounds))


def _runloop(vp: Vp, native: bool, kind: str) -> tuple[Any, Any]:
    """A RunLoop whose native handler serves the guest of ``kind`` with no Python per exit, and
    the handler.

    The IN queue holds a byte for every exit of the case (its warm-up round included) and one
    more, so each IN is served from it, as C serves IN_VALUE: an empty queue takes another path.
    """
    from mshv.runloop import RunLoop

    loop = RunLoop(vp, native=native)  # native=True fails loudly if the extension is missing
    handler: Any
    if kind == "out":
        handler = loop.port_counter(PORT)
    elif kind == "in":
        n, rounds = exits_per_round()
        handler = loop.port_buffer(PORT, data=bytes([IN_VALUE]) * (n * (rounds + 1) + 1))
    else:
        handler = loop.mmio_bytes(MMIO_GPA, bytearray(MMIO_VALUE.to_bytes(8, "little")))
    return loop, handler


@pytest.mark.parametrize("kind", EXIT_KINDS)
@pytest.mark.parametrize("native", [True, False], ids=["cython", "pure"])
def bench_exit_runloop(benchmark: Any, kind: str, native: bool, cbase: CBaselines) -> None:
    """``RunLoop.run(max_exits=n)`` with a native handler: no Python per exit (Cython)."""
    n, rounds = exits_per_round()
    with long_mode_vp(kind) as (_pt, vp, _mem):
        loop, handler = _runloop(vp, native, kind)
        paired = _PairedC(vp, kind, n)

        def run_n() -> None:
            result = loop.run(max_exits=n)
            assert result.exits == n, result

        benchmark.pedantic(run_n, setup=paired.round, rounds=rounds, warmup_rounds=1)
        if kind == "in":  # every IN of every round read a queued byte
            assert handler.pending == 1, handler.pending
    _record(benchmark, cbase, kind, "runloop_cython" if native else "runloop_pure", n, paired.result(rounds))
