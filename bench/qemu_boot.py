"""QEMU boot time: the QEMU test's guest under -accel kvm and -accel mshv on the emulator.

Run from a checkout (it uses tests/qemu and tests/tools)::

    python bench/qemu_boot.py [--rounds N] [--json FILE]

Each round boots the guest of tests/qemu/guest.S once under each accelerator,
the two in alternating order, with Debian sid's QEMU (fetched privately, see
tests/tools/qemu_sid.py); a boot counts only if its serial output and exit
status are the expected ones. The time of a boot is QEMU's wall time from
start to exit: firmware, multiboot load, the guest's five 100 Hz PIT ticks and
QEMU's shutdown. The report gives each accelerator's median and the median of
the per-round ratios mshv/kvm (the host's speed drifts, so each mshv boot is
compared with the kvm boot of its own round). Issue 11's goal: within 1.5x.

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


def _checked(result: Boot) -> float:
    if result.returncode != EXIT_STATUS or result.serial != EXPECTED_SERIAL:
        raise BootFailed(result.describe())
    return result.seconds


def run_rounds(rounds: int, tmp: Path) -> dict[str, Any]:
    """Boot under both accelerators ``rounds`` times, alternating which goes first."""
    qemu = fetch_qemu()
    kernel = build_guest(tmp)
    samples: list[dict[str, float]] = []
    for n in range(rounds):
        order = ACCELS if n % 2 == 0 else ACCELS[::-1]
        sample = {accel: _checked(boot(qemu, kernel, accel, tmp)) for accel in order}
        samples.append(sample)
        print(f"round {n + 1}/{rounds}: kvm {sample['kvm']:.2f} s, mshv {sample['mshv']:.2f} s", flush=True)
    medians = {accel: statistics.median(s[accel] for s in samples) for accel in ACCELS}
    ratio = statistics.median(s["mshv"] / s["kvm"] for s in samples)
    return {
        "machine": {"host": platform.node(), "kernel": platform.release(), "cpu": platform.processor()},
        "qemu": check_runs(qemu),
        "qemu_package": qemu.version,
        "rounds": samples,
        "median_s": medians,
        "ratio_mshv_to_kvm": ratio,
        "ratio_of_medians": medians["mshv"] / medians["kvm"],
        "goal": GOAL,
        "goal_met": ratio <= GOAL,
    }


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
    print(f"{report['qemu']}")
    print(f"median boot: kvm {report['median_s']['kvm']:.2f} s, mshv {report['median_s']['mshv']:.2f} s")
    print(f"ratio mshv/kvm (median of rounds): {report['ratio_mshv_to_kvm']:.2f}x (goal <= {GOAL}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
