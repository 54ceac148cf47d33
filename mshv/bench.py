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
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mshv import abi
from mshv import backend as backend_mod

__all__ = ["find_bench_dir", "machine_info", "run_bench"]

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


def _run_suites(bench_dir: Path, quick: bool, tmp: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    bench_json, c_json = tmp / "pytest-benchmark.json", tmp / "c.json"
    env = dict(os.environ, MSHV_BENCH_C_JSON=str(c_json), MSHV_BENCH_PROGRESS="1")
    env["MSHV_BENCH_QUICK"] = "1" if quick else "0"
    cmd = [sys.executable, "-m", "pytest", "-qq", "--benchmark-quiet", f"--benchmark-json={bench_json}"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(bench_dir), "-c", str(bench_dir / "pytest.ini")]
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
        if name.startswith("c_mshv_") and name.endswith(("_regpage", "_hvcall")):
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
        f"{'C baseline':<34} {'median':>12} {'per':<5} {'vs raw KVM':>10}",
    ]
    for name, r in report["c"].items():
        ratio = f"{r['ratio_to_kvm']:9.2f}x" if "ratio_to_kvm" in r else ""
        lines.append(f"{name:<34} {_fmt_ns(r['median_ns']):>12} {r['unit']:<5} {ratio:>10}")
    lines += ["", f"{'case':<34} {'median':>12} {'per':<5} {'C baseline':<30} {'C median':>12} {'ratio':>7}"]
    for name, r in report["cases"].items():
        c_med = _fmt_ns(r["c_median_ns"]) if "c_median_ns" in r else ""
        ratio = f"{r['ratio_to_c']:6.2f}x" if "ratio_to_c" in r else ""
        lines.append(
            f"{name:<34} {_fmt_ns(r['median_ns']):>12} {r['unit']:<5} {r.get('c_case', ''):<30} "
            f"{c_med:>12} {ratio:>7}"
        )
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


def run_bench(quick: bool = False, json_path: str | None = None, plot_path: str | None = None) -> int:
    """Run the suites, print the table, write the JSON report and the plot; returns an exit code."""
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
    with tempfile.TemporaryDirectory(prefix="mshv-bench-") as tmp:
        code, bench, c = _run_suites(bench_dir, quick, Path(tmp))
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
