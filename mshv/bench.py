"""``mshv bench``: run the benchmark suites of bench/ and report them against C.

The suites are pytest-benchmark files (bench/bench_*.py) that also run the C
baselines (bench/c/*.c, compiled at run time with gcc) in the same session.
This module runs them in a subprocess with a progress display on stderr,
merges pytest-benchmark's JSON with the C results into one report, prints a
table (backend, kernel, CPU, each case's median and ratio to C), writes the
report as JSON and draws a PNG (see :mod:`mshv._bench_plot`).

The suites and C sources live in bench/ of the source tree and are installed
with the package as ``mshv/bench_suite`` (with the headers as ``mshv/include``).
$MSHV_BENCH_DIR, an in-place build's bench/, or a checkout around the current
directory take precedence over the installed copy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from mshv import abi
from mshv import backend as backend_mod

__all__ = [
    "SUITES",
    "Comparison",
    "comparisons",
    "find_bench_dir",
    "format_ratio",
    "machine_info",
    "parse_only",
    "parse_sizes",
    "run_bench",
]

#: What ``mshv bench --only`` can select, and the pytest node ids each runs.
SUITES: dict[str, tuple[str, ...]] = {
    "exits": ("bench_exits.py",),
    "map": ("bench_memory.py::bench_map_unmap_4k", "bench_memory.py::bench_map_unmap_2m"),
    "touch": ("bench_memory.py::bench_first_touch",),
    "bitmap": ("bench_memory.py::bench_dirty_bitmap",),
    "regs": ("bench_registers.py",),
    "snapshot": ("bench_snapshot.py",),
}
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_MAX_MAP_SIZE = 64 << 30

_MISSING_PLUGIN = (
    "mshv bench needs pytest-benchmark: pip install 'python-mshv[bench]' (or pip install pytest-benchmark)"
)


def find_bench_dir() -> Path:
    """The bench/ directory of a python-mshv source tree.

    Raises:
        FileNotFoundError: no tree found; the message says where it looked.
    """
    candidates: list[Path] = []
    if os.environ.get("MSHV_BENCH_DIR"):
        candidates.append(Path(os.environ["MSHV_BENCH_DIR"]))
    candidates.append(Path(__file__).resolve().parent.parent / "bench")
    cwd = Path.cwd().resolve()
    candidates += [d / "bench" for d in (cwd, *cwd.parents)] + [cwd]
    candidates.append(Path(__file__).resolve().parent / "bench_suite")
    for path in candidates:
        if (path / "bench_exits.py").is_file() and (path / "c" / "mshv_client.c").is_file():
            return path
    raise FileNotFoundError(
        "mshv bench found no benchmark suites: the installed mshv/bench_suite is missing "
        "(reinstall python-mshv) and no checkout's bench/ was found; set MSHV_BENCH_DIR=<checkout>/bench"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(quick: bool) -> dict[str, Any]:
    """Backend, kernel, CPU and Python of this run."""
    chosen = backend_mod.select()
    return {
        "backend": chosen.name,
        "backend_reason": chosen.reason,
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "quick": quick,
    }


def parse_only(text: str) -> list[str]:
    """``--only exits,map``: the suites named (of :data:`SUITES`), in the order given."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in SUITES:
            raise ValueError(f"unknown {name!r}: choose from {', '.join(SUITES)} (comma-separated)")
    if not names:
        raise ValueError(f"name at least one of {', '.join(SUITES)}")
    return list(dict.fromkeys(names))


def parse_sizes(text: str) -> list[int]:
    """``--sizes 4K,64K,2M,1G``: map+unmap region sizes in bytes (K/M/G are KiB/MiB/GiB)."""
    sizes = []
    for token in (t.strip() for t in text.split(",")):
        match = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", token, re.IGNORECASE)
        size = int(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0
        if not 0 < size <= _MAX_MAP_SIZE or size % 4096:
            raise ValueError(
                f"{token or repr(token)} is not a size in whole 4 KiB pages up to 64G (e.g. 4K, 64K, 2M, 1G)"
            )
        sizes.append(size)
    return sorted(set(sizes))


def _run_suites(
    bench_dir: Path, options: dict[str, Any], tmp: Path
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    bench_json, c_json = tmp / "pytest-benchmark.json", tmp / "c.json"
    env = dict(os.environ, MSHV_BENCH_C_JSON=str(c_json), MSHV_BENCH_PROGRESS="1")
    env["MSHV_BENCH_QUICK"] = "1" if options["quick"] else "0"
    env["MSHV_BENCH_RESERVE_HUGEPAGES"] = "1" if options["reserve_hugepages"] else "0"
    if options["sizes"]:
        env["MSHV_BENCH_SIZES"] = ",".join(str(size) for size in options["sizes"])
    cmd = [sys.executable, "-m", "pytest", "-qq", "--benchmark-quiet", f"--benchmark-json={bench_json}"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(bench_dir), "-c", str(bench_dir / "pytest.ini")]
    if options["only"]:
        cmd += [str(bench_dir / node) for name in options["only"] for node in SUITES[name]]
    else:
        cmd.append(str(bench_dir))
    # pytest's own output goes to stderr with the progress lines: stdout is the table.
    proc = subprocess.run(cmd, cwd=bench_dir, env=env, stdout=sys.stderr)
    bench = json.loads(bench_json.read_text()) if bench_json.exists() else {"benchmarks": []}
    c = json.loads(c_json.read_text()) if c_json.exists() else {"results": {}, "notes": []}
    return proc.returncode, bench, c


def build_report(machine: dict[str, Any], bench: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """One report: machine, Python cases (median, ratio to C), C baselines, notes."""
    cases: dict[str, Any] = {}
    for entry in bench.get("benchmarks", []):
        info = dict(entry.get("extra_info", {}))
        if "case" in info:
            info["rounds"] = entry["stats"]["rounds"]
            cases[info.pop("case")] = info
    c_results = c.get("results", {})
    for name, result in c_results.items():
        result.update(result.pop("paired", {}))  # the client's own raw KVM rounds and ratios
        exit_case = name.startswith("c_mshv_") and name.endswith(("_regpage", "_hvcall"))
        if exit_case and "ratio_to_kvm" not in result:
            kind = name[len("c_mshv_") :].rsplit("_", 1)[0]
            kvm = c_results.get(f"c_kvm_{kind}")
            if kvm:
                result["ratio_to_kvm"] = result["median_ns"] / kvm["median_ns"]
    return {
        "machine": machine,
        "cases": cases,
        "c": c_results,
        "growth": map_growth(cases),
        "notes": c.get("notes", []),
    }


def _theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of a robust line fit: the median of pairwise slopes (Theil-Sen).

    The host's memslot cost drifts between phases, so one slow round can pull a
    least-squares line far off; the median of slopes ignores it.
    """
    slopes = [
        (y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1 :] if x2 != x1
    ]
    slope = statistics.median(slopes)
    return statistics.median(y - slope * x for x, y in points), slope


def map_growth(cases: dict[str, Any]) -> dict[str, Any]:
    """How map+unmap cost grows with region size, per page kind and side (Python, C).

    For each, a fit ``cost = fixed + per_4k * (size / 4 KiB)`` over the measured sizes.
    """
    growth: dict[str, Any] = {}
    for pages in ("4k", "2m"):
        rows = [r for r in cases.values() if r.get("group") == f"map_{pages}" and "size" in r]
        if len(rows) < 2:
            continue
        for side, key in (("python", "median_ns"), ("c", "c_median_ns")):
            points = [(r["size"] / 4096, r[key]) for r in rows if key in r]
            if len(points) >= 2:
                fixed, per_4k = _theil_sen(points)
                growth[f"{pages}_{side}"] = {"fixed_ns": fixed, "per_4k_ns": per_4k, "sizes": len(points)}
    return growth


class Comparison(NamedTuple):
    """One Python case against its C baseline: what the table prints and the plot draws."""

    case: str
    group: str
    impl: str
    unit: str
    median_ns: float
    c_case: str
    c_median_ns: float | None  # the C the ratio compares with (paired rounds where there are)
    ratio: float | None
    floor_ratio: float | None = None  # to the same C timed from Python (map+unmap), if measured


def comparisons(report: dict[str, Any]) -> list[Comparison]:
    """The report's Python cases with their C baselines and ratios, in report order."""
    return [
        Comparison(
            name,
            r.get("group", ""),
            r.get("impl", ""),
            r["unit"],
            r["median_ns"],
            r.get("c_case", ""),
            r.get("c_median_ns"),
            r.get("ratio_to_c"),
            r.get("ratio_to_python_floor"),
        )  # fmt: skip
        for name, r in report["cases"].items()
    ]


def format_ratio(ratio: float) -> str:
    """A ratio as the table and the plot show it: ``0.98x``."""
    return f"{ratio:.2f}x"


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:9.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:9.2f} µs"
    return f"{ns:9.0f} ns"


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    m = report["machine"]
    lines = [
        f"backend: {m['backend']} ({m['backend_reason']})",
        f"kernel:  {m['kernel']}",
        f"cpu:     {m['cpu']} ({m['cpus']} cpus)   python {m['python']}   quick={m['quick']}",
        "",
        f"{'C baseline':<34} {'median':>12} {'per':<5} {'vs raw KVM':>10} {'its floor':>10}",
    ]
    for name, r in report["c"].items():
        ratio = f"{r['ratio_to_kvm']:9.2f}x" if "ratio_to_kvm" in r else ""
        floor = f"{r['floor_ratio_to_kvm']:9.2f}x" if "floor_ratio_to_kvm" in r else ""
        line = f"{name:<34} {_fmt_ns(r['median_ns']):>12} {r['unit']:<5} {ratio:>10} {floor:>10}"
        lines.append(line.rstrip())
    header = f"{'case':<34} {'median':>12} {'per':<5} {'C baseline':<30} {'C median':>12} {'ratio':>7}"
    lines += ["", f"{header} {'to C called from Python':>24}"]
    for row in comparisons(report):
        c_med = _fmt_ns(row.c_median_ns) if row.c_median_ns is not None else ""
        ratio = format_ratio(row.ratio) if row.ratio is not None else ""
        floor = format_ratio(row.floor_ratio) if row.floor_ratio is not None else ""
        median = _fmt_ns(row.median_ns)
        line = f"{row.case:<34} {median:>12} {row.unit:<5} {row.c_case:<30} {c_med:>12} {ratio:>7}"
        lines.append(f"{line} {floor:>24}".rstrip())
    if report.get("growth"):
        lines += ["", "map+unmap cost by region size (Theil-Sen fit: fixed + per 4 KiB of region)"]
        for name, g in report["growth"].items():
            per_gib = g["per_4k_ns"] * (1 << 18)
            lines.append(
                f"{name:<34} {_fmt_ns(g['fixed_ns']):>12} call + {g['per_4k_ns']:8.2f} ns/4 KiB "
                f"({_fmt_ns(per_gib).strip()}/GiB), {g['sizes']} sizes"
            )
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def bench_problem() -> str | None:
    """Why ``mshv bench`` cannot run in this install, or None when it can."""
    if importlib.util.find_spec("pytest_benchmark") is None:
        return _MISSING_PLUGIN
    if abi.abi_build() != "compiled":
        return (
            "mshv bench needs the compiled mshv._abi: its in-process C baseline calls /dev/mshv "
            "through the C kernel table, and this install uses the ABI snapshot (it was built "
            "without a C compiler). Reinstall python-mshv where a C compiler works."
        )
    compiler = os.environ.get("CC", "gcc").split()[0]
    if shutil.which(compiler) is None:
        return f"mshv bench compiles its C baselines with {compiler}, not on PATH: install gcc or set CC"
    return None


def run_bench(
    quick: bool = False,
    json_path: str | None = None,
    plot_path: str | None = None,
    *,
    only: list[str] | None = None,
    sizes: list[int] | None = None,
    reserve_hugepages: bool = False,
) -> int:
    """Run the suites, print the table, write the JSON report and the plot; returns an exit code.

    Args:
        only: run these suites of :data:`SUITES` (default: all).
        sizes: the map+unmap region sizes in bytes (default: 4 KiB ... 1 GiB).
        reserve_hugepages: raise vm.nr_hugepages for the run when too few 2 MiB pages are
            free (root), and restore it afterwards; without it the host is left alone and
            the 2 MiB cases are skipped with a note.
    """
    problem = bench_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        bench_dir = find_bench_dir()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    machine = machine_info(quick)
    options = {"quick": quick, "only": only, "sizes": sizes, "reserve_hugepages": reserve_hugepages}
    with tempfile.TemporaryDirectory(prefix="mshv-bench-") as tmp:
        code, bench, c = _run_suites(bench_dir, options, Path(tmp))
    report = build_report(machine, bench, c)
    print(format_table(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    if plot_path:
        from mshv._bench_plot import PlotUnavailable, plot_report

        try:
            plot_report(report, plot_path)
        except PlotUnavailable as exc:
            print(f"mshv bench: no plot: {exc}", file=sys.stderr)
    if code != 0:
        print(f"mshv bench: the suites failed (pytest exit status {code})", file=sys.stderr)
    return code
