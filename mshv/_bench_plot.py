"""The PNG of ``mshv bench``: exit latency per driver, and map+unmap cost against region size.

matplotlib is an optional extra (``pip install 'python-mshv[bench]'``); without
it :func:`plot_report` raises :class:`PlotUnavailable` with that advice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PlotUnavailable", "plot_report"]

_EXIT_DRIVERS = [  # (label, where the median is: ("c", case pattern) or ("py", impl))
    ("raw KVM (C)", "c", "c_kvm_{kind}"),
    ("mshv C client, reg page", "c", "c_mshv_{kind}_regpage"),
    ("mshv C client, hypercall", "c", "c_mshv_{kind}_hvcall"),
    ("Cython RunLoop", "py", "exit_{kind}_runloop_cython"),
    ("pure-Python RunLoop", "py", "exit_{kind}_runloop_pure"),
    ("vp.run() + complete", "py", "exit_{kind}_python_run"),
]
_KINDS = ["out", "in", "mmio_read", "mmio_write"]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed: pip install 'python-mshv[bench]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _exit_panel(ax: Any, report: dict[str, Any]) -> None:
    width = 0.8 / len(_EXIT_DRIVERS)
    for i, (label, where, pattern) in enumerate(_EXIT_DRIVERS):
        table = report["c"] if where == "c" else report["cases"]
        xs, ys = [], []
        for k, kind in enumerate(_KINDS):
            entry = table.get(pattern.format(kind=kind))
            if entry:
                xs.append(k + (i - len(_EXIT_DRIVERS) / 2 + 0.5) * width)
                ys.append(entry["median_ns"] / 1000)
        if xs:
            ax.bar(xs, ys, width, label=label)
    ax.set_xticks(range(len(_KINDS)), [k.replace("_", " ") for k in _KINDS])
    ax.set_ylabel("µs per exit (median)")
    ax.set_title("Exit latency per driver")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _map_panel(ax: Any, report: dict[str, Any]) -> None:
    styles = {"4k": ("tab:blue", "4 KiB pages"), "2m": ("tab:orange", "2 MiB hugetlb pages")}
    for pages, (color, label) in styles.items():
        py = sorted(
            (v["size"], v["median_ns"], v.get("c_median_ns"))
            for v in report["cases"].values()
            if v.get("group") == f"map_{pages}"
        )
        if not py:
            continue
        sizes = [s for s, _, _ in py]
        ax.plot(sizes, [m / 1000 for _, m, _ in py], "o-", color=color, label=f"Python, {label}")
        c_points = [(s, c / 1000) for s, _, c in py if c]
        ax.plot([s for s, _ in c_points], [c for _, c in c_points], "s--", color=color, label=f"C, {label}")
        fit = report.get("growth", {}).get(f"{pages}_python")
        if fit:  # the robust line fit of the Python side (mshv.bench.map_growth)
            line = [(fit["fixed_ns"] + fit["per_4k_ns"] * s / 4096) / 1000 for s in sizes]
            text = f"fit: {fit['fixed_ns'] / 1000:.1f} µs + {fit['per_4k_ns']:.2f} ns per 4 KiB"
            ax.plot(sizes, line, ":", color=color, alpha=0.7, label=text)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20, 1 << 30]
    ax.set_xticks(ticks, ["4 KiB", "64 KiB", "1 MiB", "16 MiB", "256 MiB", "1 GiB"])
    ax.set_xlabel("region size")
    ax.set_ylabel("µs per map + unmap (median)")
    ax.set_title("MSHV_SET_GUEST_MEMORY map + unmap")
    ax.legend(fontsize=8)
    ax.grid(which="both", alpha=0.3)


def plot_report(report: dict[str, Any], path: str) -> None:
    """Draw the two panels of ``report`` (from ``mshv.bench.build_report``) into PNG ``path``."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    _exit_panel(left, report)
    _map_panel(right, report)
    m = report["machine"]
    fig.suptitle(f"python-mshv bench: {m['backend']} backend, {m['kernel']}, {m['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
