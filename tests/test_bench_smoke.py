"""``mshv bench --quick`` runs every bench and writes its report: it checks execution, never timings."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

KINDS = ["out", "in", "mmio_read", "mmio_write"]
SIZES_4K = [4096 * 4**i for i in range(10)] + [2 << 20]
SIZES_2M = [2 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30]


def _expected(hugetlb: bool) -> tuple[set[str], set[str]]:
    cases = {f"exit_{k}_python_run" for k in KINDS}
    cases |= {f"map_4k_{s}" for s in SIZES_4K} | {"touch_2097152", "bitmap_1073741824"}
    cases |= {f"regs_{op}_{n}" for op in ("get", "set") for n in (1, 16, 200)}
    cases |= {"snapshot_restore_1pct_64M"}  # (its baseline is a full-copy restore)
    if hugetlb:
        cases |= {f"map_2m_{s}" for s in SIZES_2M}
    if importlib.util.find_spec("mshv.runloop") is not None:
        cases |= {"exit_out_runloop_pure"}
    if importlib.util.find_spec("mshv._runloop") is not None:
        cases |= {"exit_out_runloop_cython"}
    c = {f"c_kvm_{k}" for k in KINDS} | {f"c_mshv_{k}_{how}" for k in KINDS for how in ("regpage", "hvcall")}
    c |= {f"c_map_4k_{s}" for s in SIZES_4K} | {"c_touch_2097152", "c_bitmap_1073741824"}
    c |= {f"c_regs_{op}_{n}" for op in ("get", "set") for n in (1, 16, 200)}
    if hugetlb:
        c |= {f"c_map_2m_{s}" for s in SIZES_2M}
    return cases, c


def test_bench_quick_writes_every_case(tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    has_plot = importlib.util.find_spec("matplotlib") is not None
    cmd = [sys.executable, "-m", "mshv", "bench", "--quick", "--json", str(out_json)]
    cmd += ["--plot", str(out_png)]
    # From a directory outside the checkout and without MSHV_BENCH_DIR: the suites and
    # headers installed with the package are what runs, as after a plain pip install.
    env = {k: v for k, v in os.environ.items() if k != "MSHV_BENCH_DIR"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backend:" in proc.stdout and "ratio" in proc.stdout

    report = json.loads(out_json.read_text())
    assert report["machine"]["backend"] in ("emulator", "kernel")
    hugetlb = not any(n.startswith("hugetlb") for n in report["notes"])
    cases, c_cases = _expected(hugetlb)
    assert cases <= set(report["cases"]), sorted(cases - set(report["cases"]))
    assert c_cases <= set(report["c"]), sorted(c_cases - set(report["c"]))
    for name, case in report["cases"].items():
        assert case["median_ns"] > 0, name
        assert case["ratio_to_c"] > 0 and case["c_median_ns"] > 0, name
    for name, result in report["c"].items():
        assert result["median_ns"] > 0, name
    for name, case in report["cases"].items():  # map+unmap: also against C called from Python
        if name.startswith("map_"):
            assert case["python_floor_ns"] > 0 and case["ratio_to_python_floor"] > 0, name
    for kind in KINDS:  # the client's exit rounds were paired with raw KVM rounds in its process
        for how in ("regpage", "hvcall"):
            result = report["c"][f"c_mshv_{kind}_{how}"]
            assert result["kvm_median_ns"] > 0 and result["ratio_to_kvm"] > 0, result
            assert result["floor_ratio_to_kvm"] > 0, result
    growth = {"4k_python", "4k_c"} | ({"2m_python", "2m_c"} if hugetlb else set())
    assert growth <= set(report["growth"]) and "map+unmap cost by region size" in proc.stdout
    if has_plot:
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed" in proc.stderr


def test_map_growth_fit_ignores_a_slow_round() -> None:
    """The per-size fit: fixed cost and per-4-KiB cost of a line, one outlier size ignored."""
    from mshv.bench import map_growth

    sizes = [4096 * 4**i for i in range(8)]
    cases = {
        f"map_4k_{size}": {"group": "map_4k", "size": size, "median_ns": 30_000 + 2.0 * size / 4096,
                           "c_median_ns": 28_000 + 1.5 * size / 4096}
        for size in sizes
    }  # fmt: skip
    cases["map_4k_4096"]["median_ns"] = 160_000  # a round in the host's slow phase
    growth = map_growth(cases)
    assert set(growth) == {"4k_python", "4k_c"}
    python, c = growth["4k_python"], growth["4k_c"]
    assert (python["per_4k_ns"], python["fixed_ns"]) == pytest.approx((2.0, 30_000))
    assert (c["per_4k_ns"], c["fixed_ns"]) == pytest.approx((1.5, 28_000))


def test_bench_without_a_compiler_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from mshv.bench import bench_problem, run_bench

    monkeypatch.setenv("CC", "no-such-cc-for-mshv")
    problem = bench_problem() or ""
    assert problem.startswith("mshv bench compiles its C baselines with no-such-cc-for-mshv")
    assert run_bench(quick=True) == 2


def _support() -> Any:
    bench = Path(__file__).resolve().parent.parent / "bench"
    sys.path.insert(0, str(bench))
    try:
        import _support
    finally:
        sys.path.remove(str(bench))
    return _support


def test_hugepages_are_reserved_only_when_asked_and_restored(tmp_path: Path) -> None:
    """No silent write of vm.nr_hugepages: without ``reserve`` the count is left alone (and the
    note says which flag asks for it); with it, it is raised for the run and put back after."""
    nr, free = tmp_path / "nr_hugepages", tmp_path / "free_hugepages"
    nr.write_text("3\n")
    free.write_text("1\n")
    support = _support()
    notes: list[str] = []
    with support.hugepages(4, notes, reserve=False, nr_path=nr, free_path=free) as ok:
        assert not ok and nr.read_text() == "3\n"
    assert any("--reserve-hugepages" in n for n in notes), notes
    notes.clear()
    with support.hugepages(4, notes, reserve=True, nr_path=nr, free_path=free) as ok:
        assert ok and int(nr.read_text()) == 3 + 3  # the 3 missing pages on top of the old count
    assert int(nr.read_text()) == 3 and not notes


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mshv", "bench", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_only_and_sizes_select_the_cases(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = _bench("--quick", "--only", "map", "--sizes", "4K,2M", "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    cases = set(report["cases"])
    assert {"map_4k_4096", "map_4k_2097152"} <= cases, cases
    assert cases <= {"map_4k_4096", "map_4k_2097152", "map_2m_2097152"}, cases  # nothing else ran
    assert not any(name.startswith(("c_kvm", "c_regs", "c_touch", "c_bitmap")) for name in report["c"])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--only", "exits,disk"], "--only: unknown 'disk'"), (["--sizes", "3K"], "--sizes: 3K is not")],
)
def test_bad_selections_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _bench("--quick", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


class _Axes:
    """Records what a panel draws (bars and their labels, texts)."""

    def __init__(self) -> None:
        self.bars: dict[str, list[float]] = {}
        self.texts: list[str] = []

    def bar(self, xs: list[float], ys: list[float], width: float, label: str = "", **kw: Any) -> None:
        self.bars.setdefault(label, []).extend(ys)

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        self.texts.append(s)

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def test_the_plot_draws_what_the_table_says() -> None:
    """The exit panel's numbers are the table's: each driver's median, the C it is compared
    with, and the ratio, all read from one place (it once drew 20.7 µs beside a C client's
    7 µs while the table said 0.98x of the in-process C)."""
    from mshv._bench_plot import _exit_panel
    from mshv.bench import format_table

    case = {"group": "exit_out", "impl": "runloop_cython", "unit": "exit", "median_ns": 20_700.0,
            "c_case": "c_inproc_out", "c_median_ns": 21_100.0, "ratio_to_c": 0.981}  # fmt: skip
    report = {
        "machine": {
            "backend": "emulator",
            "backend_reason": "r",
            "kernel": "k",
            "cpu": "c",
            "cpus": 2,
            "python": "3",
            "quick": True,
        },
        "cases": {"exit_out_runloop_cython": case},
        "c": {
            "c_kvm_out": {"median_ns": 7_300.0, "unit": "exit"},
            "c_mshv_out_regpage": {"median_ns": 7_900.0, "unit": "exit"},
        },
        "growth": {},
        "notes": [],
    }
    table = format_table(report).splitlines()
    row = next(line for line in table if line.startswith("exit_out_runloop_cython"))
    assert "20.70 µs" in row and "21.10 µs" in row and "0.98x" in row, row
    ax = _Axes()
    _exit_panel(ax, report)
    assert ax.bars["Cython RunLoop"] == [20.7]
    assert ax.bars["C on the same VP (what the ratio compares with)"] == [21.1]
    assert "0.98x" in ax.texts


def test_the_table_shows_each_ratio_beside_its_floor() -> None:
    """A C client exit case that paired its rounds with raw KVM rounds keeps that ratio and its
    floor (the separate raw KVM run, minutes away, is not divided in); one that did not gets the
    ratio to the separate run. A map+unmap case shows its ratio to C and to C called from
    Python."""
    from mshv.bench import build_report, format_table

    c = {
        "results": {
            "c_kvm_out": {"case": "c_kvm_out", "unit": "exit", "median_ns": 7_000.0},
            "c_mshv_out_regpage": {
                "unit": "exit", "median_ns": 9_000.0,
                "paired": {"kvm_median_ns": 8_000.0, "ratio_to_kvm": 1.125, "floor_ratio_to_kvm": 1.05},
            },
            "c_mshv_out_hvcall": {"unit": "exit", "median_ns": 10_500.0},
        },
        "notes": [],
    }  # fmt: skip
    machine = {"backend": "emulator", "backend_reason": "r", "kernel": "k", "cpu": "c", "cpus": 2,
               "python": "3", "quick": True}  # fmt: skip
    bench = {
        "benchmarks": [
            {"stats": {"rounds": 5}, "extra_info": {
                "case": "map_4k_4096", "group": "map_4k", "impl": "python", "unit": "call",
                "median_ns": 80_000.0, "c_case": "c_inproc_map_4k_4096", "c_median_ns": 70_000.0,
                "ratio_to_c": 1.14, "python_floor_ns": 77_000.0, "ratio_to_python_floor": 1.03}},
        ]
    }  # fmt: skip
    report = build_report(machine, bench, c)
    assert report["c"]["c_mshv_out_regpage"]["ratio_to_kvm"] == 1.125
    assert report["c"]["c_mshv_out_hvcall"]["ratio_to_kvm"] == 1.5
    table = format_table(report).splitlines()
    row = next(line for line in table if line.startswith("c_mshv_out_regpage"))
    assert row.split()[-2:] == ["1.12x", "1.05x"], row
    row = next(line for line in table if line.startswith("map_4k_4096"))  # its ratio, then to the floor
    assert row.split()[-2:] == ["1.14x", "1.03x"], row
