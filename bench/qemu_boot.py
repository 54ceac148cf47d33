"""QEMU boot time: the QEMU test's guest under -accel kvm and -accel mshv on the emulator.

Run from a checkout (it uses tests/qemu and tests/tools)::

    python bench/qemu_boot.py [--rounds N] [--json FILE]

Each round boots the guest of tests/qemu/guest.S once under each accelerator,
the two in alternating order, with Debian sid's QEMU (fetched privately, see
tests/tools/qemu_sid.py); a boot counts only if its serial output and exit
status are the expected ones. The time of a boot is QEMU's wall time from
start to exit: firmware, multiboot load, the guest's five 100 Hz PIT ticks and
QEMU's shutdown. Each boot is also split at its first serial byte and at its
"done" line (the harness polls the serial file): firmware and multiboot load,
the guest itself, QEMU's shutdown. The report gives each accelerator's medians
and the median of the per-round ratios mshv/kvm (the host's speed drifts, so
each mshv boot is compared with the kvm boot of its own round). Issue 11's goal:
the total within 1.5x.

It is not part of ``mshv bench`` (whose suites need neither the network nor
QEMU), and the emulator's answers to QEMU are what tests/qemu checks: this only
times them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT / "tests" / "qemu"))
sys.path.insert(0, str(CHECKOUT / "tests" / "tools"))

from qemu_boot import EXIT_STATUS, EXPECTED_SERIAL, Boot, boot, build_guest  # noqa: E402
from qemu_sid import SidFetchError, check_runs, fetch_qemu  # noqa: E402

GOAL = 1.5  # issue 11: -accel mshv within 1.5x of -accel kvm
ACCELS = ("kvm", "mshv")


class BootFailed(RuntimeError):
    """A boot printed the wrong output or exit status: it is not timed."""


PHASES = ("total", "firmware", "guest", "shutdown")


def _phases(result: Boot) -> dict[str, float]:
    """A checked boot's wall times: total, and split at its first serial byte and its "done"."""
    if result.returncode != EXIT_STATUS or result.serial != EXPECTED_SERIAL:
        raise BootFailed(result.describe())
    if result.first_output_s is None or result.done_s is None:
        raise BootFailed(f"the serial output was not seen while QEMU ran\n{result.describe()}")
    return {
        "total": result.seconds,
        "firmware": result.first_output_s,
        "guest": result.done_s - result.first_output_s,
        "shutdown": result.seconds - result.done_s,
    }


def run_rounds(rounds: int, tmp: Path) -> dict[str, Any]:
    """Boot under both accelerators ``rounds`` times, alternating which goes first."""
    qemu = fetch_qemu()
    kernel = build_guest(tmp)
    samples: list[dict[str, dict[str, float]]] = []
    for n in range(rounds):
        order = ACCELS if n % 2 == 0 else ACCELS[::-1]
        sample = {accel: _phases(boot(qemu, kernel, accel, tmp)) for accel in order}
        samples.append(sample)
        print(
            f"round {n + 1}/{rounds}: " + ", ".join(_fmt(accel, sample[accel]) for accel in ACCELS),
            flush=True,
        )
    medians = {a: {p: statistics.median(s[a][p] for s in samples) for p in PHASES} for a in ACCELS}
    ratios = {p: statistics.median(s["mshv"][p] / s["kvm"][p] for s in samples) for p in PHASES}
    return {
        "machine": {"host": platform.node(), "kernel": platform.release(), "cpu": platform.processor()},
        "qemu": check_runs(qemu),
        "qemu_package": qemu.version,
        "rounds": samples,
        "median_s": medians,
        "ratio_mshv_to_kvm": ratios,
        "goal": GOAL,
        "goal_met": ratios["total"] <= GOAL,
    }


def _fmt(accel: str, phases: dict[str, float]) -> str:
    return f"{accel} {phases['total']:.2f} s (" + " + ".join(f"{phases[p]:.3f}" for p in PHASES[1:]) + ")"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="QEMU boot time under -accel kvm and -accel mshv (emulator)")
    parser.add_argument("--rounds", type=int, default=5, help="boots per accelerator (default 5)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="mshv-qemu-bench-") as tmp:
        try:
            report = run_rounds(args.rounds, Path(tmp))
        except (SidFetchError, BootFailed) as exc:
            print(f"qemu_boot: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(report["qemu"])
    print("phase      kvm (s)   mshv (s)  mshv/kvm (median of rounds)")
    for phase in PHASES:
        kvm, mshv = (report["median_s"][accel][phase] for accel in ACCELS)
        print(f"{phase:<9} {kvm:8.3f}  {mshv:8.3f}  {report['ratio_mshv_to_kvm'][phase]:6.2f}x")
    print(f"goal: total within {GOAL}x: {'met' if report['goal_met'] else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
