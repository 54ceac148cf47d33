"""The PNG of ``mshv bench``: exit latency per driver, and map+unmap cost against region size.

matplotlib is an optional extra (``pip install 'python-mshv[bench]'``); without
it :func:`plot_report` raises :class:`PlotUnavailable` with that advice.
"""

from __future__ import annotations

import importlib
from typing import Any

from mshv.bench import comparisons, format_ratio

__all__ = ["PlotUnavailable", "plot_report"]

# The C baselines drawn beside each exit kind (from report["c"], as the table's C section).
_C_DRIVERS = [
    ("raw KVM (C)", "c_kvm_{kind}"),
    ("mshv C client, reg page", "c_mshv_{kind}_regpage"),
    ("mshv C client, hypercall", "c_mshv_{kind}_hvcall"),
]
# The Python drivers (report["cases"] by impl, as the table's case rows), each drawn with the
# C it is compared with and the ratio, all from mshv.bench.comparisons.
_PY_DRIVERS = [
    ("Cython RunLoop", "runloop_cython"),
    ("pure-Python RunLoop", "runloop_pure"),
    ("vp.run() + complete", "python_run"),
]
_PAIRED_C = "C on the same VP (what the ratio compares with)"
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


def _exit_bars(report: dict[str, Any], kind: str) -> list[tuple[str, float, str | None]]:
    """The bars of one exit kind: (label, µs, ratio text or None), from the table's sources."""
    bars: list[tuple[str, float, str | None]] = []
    for label, pattern in _C_DRIVERS:
        entry = report["c"].get(pattern.format(kind=kind))
        if entry:
            bars.append((label, entry["median_ns"] / 1000, None))
    rows = {row.impl: row for row in comparisons(report) if row.group == f"exit_{kind}"}
    for label, impl in _PY_DRIVERS:
        row = rows.get(impl)
        if row is None:
            continue
        ratio = format_ratio(row.ratio) if row.ratio is not None else None
        bars.append((label, row.median_ns / 1000, ratio))
        if row.c_median_ns is not None:
            bars.append((_PAIRED_C, row.c_median_ns / 1000, None))
    return bars


def _exit_panel(ax: Any, report: dict[str, Any]) -> None:
    per_kind = {kind: _exit_bars(report, kind) for kind in _KINDS}
    if not any(per_kind.values()):
        _not_run(ax, "exit latency")
        return
    width = 0.8 / max(len(bars) for bars in per_kind.values())
    colors: dict[str, str] = {}
    palette = [f"C{i}" for i in range(10)]
    for k, kind in enumerate(_KINDS):
        bars = per_kind[kind]
        for i, (label, value, ratio) in enumerate(bars):
            x = k + (i - len(bars) / 2 + 0.5) * width
            first = label not in colors
            color = colors.setdefault(label, "0.6" if label == _PAIRED_C else palette[len(colors) % 10])
            ax.bar([x], [value], width, label=label if first else "_nolegend_", color=color)
            if ratio is not None:
                ax.text(x, value, ratio, ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(range(len(_KINDS)), [k.replace("_", " ") for k in _KINDS])
    ax.set_ylabel("µs per exit (median)")
    ax.set_title("Exit latency per driver; ratio to the grey C bar after it (as in the table)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def _not_run(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not in this run (mshv bench --only)", ha="center", transform=ax.transAxes)
    ax.set_axis_off()


def _map_panel(ax: Any, report: dict[str, Any]) -> None:
    if not any(str(v.get("group", "")).startswith("map_") for v in report["cases"].values()):
        _not_run(ax, "map + unmap")
        return
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
