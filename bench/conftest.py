"""Session fixtures of the benchmark suites: the C baselines and hugetlb pages.

At the end of the session the C results and notes are written as JSON to
$MSHV_BENCH_C_JSON (``mshv bench`` reads them next to pytest-benchmark's JSON).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import MAP_SIZES_2M, CBaselines, hugepages  # noqa: E402

_BASELINES = CBaselines()


@pytest.fixture(scope="session")
def cbase() -> CBaselines:
    """The session's C baselines (each runs once, on first use)."""
    return _BASELINES


@pytest.fixture(scope="session")
def hugetlb() -> Iterator[bool]:
    """2 MiB pages for the largest hugetlb case (plus slack); reserved for the session only when
    MSHV_BENCH_RESERVE_HUGEPAGES=1 (``mshv bench --reserve-hugepages``)."""
    reserve = os.environ.get("MSHV_BENCH_RESERVE_HUGEPAGES") == "1"
    count = max(MAP_SIZES_2M, default=0) // (2 << 20) + 8
    with hugepages(count, _BASELINES.notes, reserve=reserve) as ok:
        yield ok


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    out = os.environ.get("MSHV_BENCH_C_JSON")
    if out:
        Path(out).write_text(json.dumps(_BASELINES.to_json(), indent=1))


def pytest_collection_finish(session: Any) -> None:
    _PROGRESS["total"] = len(session.items)


_PROGRESS: dict[str, int] = {"total": 0, "done": 0}


def pytest_runtest_logreport(report: Any) -> None:
    """With MSHV_BENCH_PROGRESS=1: one line per case on stderr (``mshv bench``'s progress)."""
    if os.environ.get("MSHV_BENCH_PROGRESS") != "1":
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _PROGRESS["done"] += 1
        name = report.nodeid.split("::", 1)[-1]
        outcome = report.outcome if report.outcome != "passed" else "ok"
        if report.skipped and isinstance(report.longrepr, tuple):
            outcome = f"skipped: {report.longrepr[2]}"
        print(f"[{_PROGRESS['done']:3d}/{_PROGRESS['total']}] {name} {outcome}", file=sys.stderr, flush=True)
