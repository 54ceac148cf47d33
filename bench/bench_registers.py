"""Register batches: HvCallGetVpRegisters / HvCallSetVpRegisters of 1, 16 and 200 names.

The names are every register the backend reads (and, for set, writes back)
on a fresh VP, in HV_X64_REGISTER_* order, repeated to fill 200 when there
are fewer; Python goes through ``Vp.get_registers``/``set_registers`` (which
chunk by the hypercall limits), C through MSHV_ROOT_HVCALL with the same
names and the same chunking (a set takes a dict, or a mapping that keeps the
repeats when there are). The ratio is to C doing the same on the same VP
in this process, one C round right before each Python round
(bench/c/inproc.c); the separate C client stays in the table.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _support import QUICK, CBaselines, InProcessC, paired_c, record, record_python_floor

from mshv import HvRegister, Mshv, MshvError, Vp

BATCHES = [1, 16, 200]


class _Batch(dict[int, Any]):
    """Register values by number, iterated in batch order with the names repeated as in the
    batch (a plain dict would fold them). A lookup is the dict's own, in C: the bench's
    container should not charge a Python call per name to the library."""

    def __init__(self, names: list[int], values: dict[str, Any]) -> None:
        super().__init__({int(HvRegister[k.upper()]): v for k, v in values.items()})
        keys = {key: key for key in dict.keys(self)}
        self._names = [keys[name] for name in names]  # the dict's own key objects, as a dict iterates

    def __iter__(self) -> Iterator[int]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _usable(vp: Vp, write: bool) -> list[int]:
    found = []
    for reg in HvRegister:
        try:
            value = vp.get_registers([int(reg)])
            if write:
                vp.set_registers({int(reg): next(iter(value.values()))})
        except (MshvError, TypeError, ValueError):
            continue
        found.append(int(reg))
    return found


@pytest.mark.parametrize("op", ["get", "set"])
@pytest.mark.parametrize("count", BATCHES)
def bench_registers(benchmark: Any, op: str, count: int, cbase: CBaselines) -> None:
    """One batch of ``count`` registers, read or written (the values they already hold)."""
    rounds = 15 if QUICK else 201
    with Mshv() as hv, hv.create_partition(lapic=False) as pt:
        vp = pt.create_vp(0)
        names = list(itertools.islice(itertools.cycle(_usable(vp, op == "set")), count))
        client = cbase.get(f"c_regs_{op}_{count}", ["regs", op, str(rounds), *map(hex, names)])
        c_timer = InProcessC().regs(vp, names)
        c_samples: list[float] = []
        floor_samples: list[float] = []  # the same C round, timed from Python around its call

        def c_round() -> None:  # untimed by pytest-benchmark: timed in C, and from Python
            start = time.perf_counter_ns()
            c_samples.append(float(c_timer(op)))
            floor_samples.append(float(time.perf_counter_ns() - start))

        if op == "get":
            call: Any = vp.get_registers
            arg: Any = names
        elif len(set(names)) == count:  # a dict, as callers pass
            call, arg = vp.set_registers, dict(zip(names, vp.get_registers(names).values(), strict=True))
        else:  # names repeated to fill the batch: a dict would fold them
            call, arg = vp.set_registers, _Batch(names, vp.get_registers(names))
        benchmark.pedantic(call, args=(arg,), setup=c_round, rounds=rounds, warmup_rounds=1)
    c = paired_c(f"c_inproc_regs_{op}_{count}", "call", c_samples, rounds)
    cbase.results[c.case] = c
    record(benchmark, case=f"regs_{op}_{count}", group=f"regs_{op}", impl="python", unit="call", per=1, c=c,
           paired=True, count=count)  # fmt: skip
    benchmark.extra_info["ratio_to_c_client"] = benchmark.extra_info["median_ns"] / client.median_ns
    record_python_floor(benchmark, floor_samples[-rounds:])
