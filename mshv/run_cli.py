"""``mshv run IMAGE``: boot a guest image from the command line (see :mod:`mshv.machine`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mshv.boot import BootImage, ImageError, load_image
from mshv.boot.loaders import FORMATS
from mshv.machine import DEFAULT_MEMORY, Machine, RunReport
from mshv.snapshot import Snapshot

__all__ = ["add_run_parser", "latency_histogram"]

USAGE_EXIT_CODE = 2
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _memory_size(text: str) -> int:
    """``-m`` values: bytes, or a number with K/M/G (QEMU's default unit is MiB)."""
    text = text.strip().upper().removesuffix("B")
    try:
        if text and text[-1] in _UNITS:
            return int(float(text[:-1]) * _UNITS[text[-1]])
        return int(text) * _UNITS["M"]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r}") from None


def _address(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r}") from None


def add_run_parser(sub: Any) -> None:
    """Add the ``run`` subcommand to the ``mshv`` parser."""
    p = sub.add_parser("run", help="boot a guest image: multiboot ELF, bzImage or flat binary")
    p.add_argument("image", type=Path, nargs="?", help="the guest image (not with --resume)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="image format (default: by contents)")
    p.add_argument("-m", "--memory", type=_memory_size, default=DEFAULT_MEMORY,
                   help="guest RAM, e.g. 64M or 1G (a bare number is MiB; default 128M)")  # fmt: skip
    p.add_argument("--vps", type=int, default=1, help="virtual processors (more than one needs the LAPIC)")
    p.add_argument("--no-lapic", action="store_true", help="no LAPIC: HLT ends the run")
    p.add_argument("--timeout", type=float, default=None, help="seconds before the run is stopped (exit 124)")
    p.add_argument("--cmdline", default="", help="the kernel command line (multiboot, bzImage)")
    p.add_argument("--entry", type=_address, help="flat images: the entry point")
    p.add_argument("--load", type=_address, help="flat images: the load address (default: the entry)")
    p.add_argument("--mode", choices=("real", "protected", "long"), default="protected",
                   help="flat images: the CPU mode at the entry")  # fmt: skip
    p.add_argument("--trace", action="store_true", help="print exits by kind and a RUN_VP latency histogram")
    p.add_argument(
        "--snapshot-at",
        type=_address,
        metavar="PORT",
        help="each guest OUT to PORT saves a snapshot of the machine (past the OUT) to --snapshot-file",
    )
    p.add_argument(
        "--snapshot-file",
        type=Path,
        default=Path("mshv-run.snap"),
        metavar="FILE",
        help="where --snapshot-at saves (default: mshv-run.snap)",
    )
    p.add_argument("--resume", type=Path, metavar="FILE",
                   help="start from a snapshot --snapshot-at saved instead of booting an image")  # fmt: skip
    p.set_defaults(func=_cmd_run)


def latency_histogram(latency_ns: list[int]) -> list[tuple[int, int]]:
    """(upper bound in ns, count) per power-of-two bucket, for the buckets that hold samples."""
    buckets: dict[int, int] = {}
    for ns in latency_ns:
        bound = 1 << max(ns, 1).bit_length()
        buckets[bound] = buckets.get(bound, 0) + 1
    return sorted(buckets.items())


def _print_trace(report: RunReport) -> None:
    err = sys.stderr
    print(f"exits: {sum(report.exits.values())}", file=err)
    for kind, count in report.exits.most_common():
        print(f"  {kind:<24} {count}", file=err)
    histogram = latency_histogram(report.latency_ns)
    if histogram:
        peak = max(count for _, count in histogram)
        print("RUN_VP round trip (guest time included):", file=err)
        for bound, count in histogram:
            bar = "#" * max(1, round(40 * count / peak))
            print(f"  < {bound / 1000:>10.1f} us  {count:>8}  {bar}", file=err)


def _image(args: argparse.Namespace) -> BootImage | Snapshot:
    """The image to boot, or with --resume the snapshot to start from."""
    if (args.image is None) == (args.resume is None):
        raise ValueError("give either an image or --resume FILE")
    if args.resume is not None:
        return Snapshot.load(args.resume)
    return load_image(
        args.image.read_bytes(), args.memory, fmt=args.format, cmdline=args.cmdline,
        load_gpa=args.load, entry=args.entry, mode=args.mode,
    )  # fmt: skip


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        image = _image(args)
        at = None if args.snapshot_at is None else (args.snapshot_at, args.snapshot_file)
        lapic = False if args.no_lapic else None
        machine = Machine(
            image, memory_size=args.memory, vps=args.vps, lapic=lapic, trace=args.trace, snapshot_at=at
        )
    except (OSError, ImageError, ValueError) as exc:
        print(f"mshv run: {exc}", file=sys.stderr)
        return USAGE_EXIT_CODE
    report = machine.run(timeout=args.timeout)
    sys.stdout.flush()
    if report.reason != "exit":
        print(f"mshv run: {report.message}", file=sys.stderr)
    if args.trace:
        _print_trace(report)
    return report.exit_code
