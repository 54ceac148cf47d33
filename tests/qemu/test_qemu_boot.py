"""QEMU as a client: Debian sid's QEMU 11 boots our guest with -accel kvm and -accel mshv.

QEMU is fetched privately (tests/tools/qemu_sid.py); if the archive cannot be
reached the tests fail with the reason. The guest (guest.S) prints over COM1,
reads the HPET, takes PIT interrupts through the IOAPIC and ends through
isa-debug-exit. Under ``-accel mshv`` QEMU's /dev/mshv is the emulator
(``LD_PRELOAD=$(mshv emulator --preload-path)``) and the guest must print
exactly what it prints under ``-accel kvm``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from qemu_boot import EXIT_STATUS, EXPECTED_SERIAL, Boot, boot, build_guest  # noqa: E402
from qemu_sid import SidQemu, check_runs, fetch_qemu  # noqa: E402


@pytest.fixture(scope="module")
def sid_qemu() -> SidQemu:
    """sid's QEMU in the cache (fetched if needed); a failure to fetch fails the test."""
    assert os.path.exists("/dev/kvm"), "/dev/kvm is missing: both accelerators need it"
    return fetch_qemu()


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_guest(tmp_path_factory.mktemp("qemu-guest"))


@pytest.fixture(scope="module")
def kvm_boot(sid_qemu: SidQemu, kernel: Path) -> Boot:
    return boot(sid_qemu, kernel, "kvm", kernel.parent)


def test_sid_qemu_is_the_tested_version(sid_qemu: SidQemu) -> None:
    """The client under test is QEMU 11 (spec'd call sequence); a new major needs a new look."""
    assert check_runs(sid_qemu).startswith("QEMU emulator version 11."), sid_qemu.version


def test_guest_under_kvm_prints_the_expected_serial_and_exit_code(kvm_boot: Boot) -> None:
    assert kvm_boot.returncode == EXIT_STATUS, kvm_boot.describe()
    assert kvm_boot.serial == EXPECTED_SERIAL, kvm_boot.describe()


def test_guest_under_mshv_on_the_emulator_matches_kvm(
    sid_qemu: SidQemu, kernel: Path, kvm_boot: Boot
) -> None:
    mshv_boot = boot(sid_qemu, kernel, "mshv", kernel.parent)
    assert mshv_boot.serial == kvm_boot.serial, mshv_boot.describe()
    assert mshv_boot.returncode == EXIT_STATUS, mshv_boot.describe()
