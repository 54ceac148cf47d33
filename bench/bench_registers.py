"""Register batches: HvCallGetVpRegisters / HvCallSetVpRegisters of 1, 16 and 200 names.

The names are every register the backend reads (and, for set, writes back)
on a fresh VP, in HV_X64_REGISTER_* order, repeated to fill 200 when there
are fewer; Python goes through ``Vp.get_registers``/``set_registers`` (which
chunk by the hypercall limits), C through MSHV_ROOT_HVCALL with the same
names and the same chunking.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from _support import QUICK, CBaselines, record

from mshv import HvRegister, Mshv, MshvError, Vp

BATCHES = [1, 16, 200]


class _Batch(Mapping[int, Any]):
    """Register values in batch order, names repeated as in the batch (a dict would fold them)."""

    def __init__(self, names: list[int], values: dict[str, Any]) -> None:
        self._names = names
        self._by_number = {int(HvRegister[k.upper()]): v for k, v in values.items()}

    def __getitem__(self, number: int) -> Any:
        return self._by_number[number]

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
        c = cbase.get(f"c_regs_{op}_{count}", ["regs", op, str(rounds), *map(hex, names)])
        if op == "get":
            benchmark.pedantic(vp.get_registers, args=(names,), rounds=rounds, warmup_rounds=1)
        else:
            values = _Batch(names, vp.get_registers(names))
            benchmark.pedantic(vp.set_registers, args=(values,), rounds=rounds, warmup_rounds=1)
    record(benchmark, case=f"regs_{op}_{count}", group=f"regs_{op}", impl="python", unit="call", per=1, c=c,
           count=count)  # fmt: skip
