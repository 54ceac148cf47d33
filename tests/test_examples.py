"""examples/: each script runs as ``python examples/<name>.py`` and prints what its guest did."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Each line is the text printed, or a pattern for a line that varies from run to run (a rate).
EXPECTED: dict[str, list[str | re.Pattern[str]]] = {
    "hello_guest.py": ["Hello from a real-mode guest!", "guest halted after 30 exits"],
    "mmio_device.py": [
        "  device write: register +0 = 40",
        "  device write: register +4 = 2",
        "guest read the sum: 42",
    ],
    "interrupts.py": [
        "irqfd + MSI route: the guest handled vector 0x40",
        "assert_interrupt: the guest handled vector 0x40",
    ],
    "dirty_pages.py": ["step 1 dirty: ['0x3000', '0x5000', '0x9000']", "step 2 dirty: ['0x5000']"],
    "run_loop.py": [
        "hello through RunLoop",
        "stopped on halt after 1024 exits; ticks counted: 1000",
        "status register: 0x600d",
    ],
    "snapshot_fuzz.py": [
        "crash after 4418 executions: input b'FUZZ'",
        "the guest's run counter read [1] after each run (a reset before every input)",
        re.compile(r"\d+ executions per second \(run \+ restore\)"),
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path, backend_ready: None) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines, expected = proc.stdout.splitlines(), EXPECTED[name]
    assert len(lines) == len(expected), proc.stdout
    for line, want in zip(lines, expected, strict=True):
        assert want.fullmatch(line) if isinstance(want, re.Pattern) else line == want, (line, want)


def test_mshv_examples_lists_and_runs_them(tmp_path: Path, backend_ready: None) -> None:
    """``mshv examples`` finds the examples wherever the package is (they ship with it)."""
    listing = subprocess.run(
        [sys.executable, "-m", "mshv", "examples"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    assert sorted(line.split()[0] for line in listing.stdout.splitlines()[1:] if line.strip()) == sorted(
        name.removesuffix(".py") for name in EXPECTED
    ), listing.stdout
    run = subprocess.run(
        [sys.executable, "-m", "mshv", "examples", "hello_guest"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.splitlines() == EXPECTED["hello_guest.py"], (
        run.stdout + run.stderr
    )
    missing = subprocess.run(
        [sys.executable, "-m", "mshv", "examples", "nope"], cwd=tmp_path, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "hello_guest" in missing.stderr, missing.stderr
