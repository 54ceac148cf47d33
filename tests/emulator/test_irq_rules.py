"""MSHV_SET_MSI_ROUTING, MSHV_IRQFD and MSHV_IOEVENTFD rules on the emulator.

Each test runs one case of the C client irq_rules.c (compiled at test time, the
emulator dlopen()ed in process); the case asserts every errno and eventfd count
itself and prints the mismatches.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> list[str]:
    exe = compile_c(HERE / "irq_rules.c", tmp_path_factory.mktemp("irq_rules"))
    return [exe, emu_lib]


def run_case(client: list[str], case: str) -> None:
    proc = subprocess.run([*client, case], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"{case}: ok"


def test_routing_header_checks(client: list[str]) -> None:
    """mshv_partition_ioctl_set_msi_routing: header EFAULT, nr > 4096 / rsvd EINVAL
    before the entries are read, entries EFAULT."""
    run_case(client, "routing_header_checks")


def test_routing_entry_checks(client: list[str]) -> None:
    """mshv_update_routing_table: gsi >= 4096, address_hi != 0, duplicate GSI -> EINVAL."""
    run_case(client, "routing_entry_checks")


def test_routing_full_and_qemu_tables(client: list[str]) -> None:
    """mshv_update_routing_table: 4096 routes, QEMU's 24 all-zero routes, nr = 0."""
    run_case(client, "routing_full_and_qemu_tables")


def test_routing_replace_atomic(client: list[str]) -> None:
    """mshv_update_routing_table: whole-table swap; a failed update keeps the old
    table; nr = 0 clears (seen through mshv_irqfd_assign's level check)."""
    run_case(client, "routing_replace_atomic")


def test_irqfd_flags_and_fds(client: list[str]) -> None:
    """mshv_set_unset_irqfd / mshv_irqfd_assign / mshv_irqfd_deassign: flags mask,
    EBADF / EINVAL for fds that are not eventfds, deassign of nothing = 0."""
    run_case(client, "irqfd_flags_and_fds")


def test_irqfd_ebusy_and_deassign(client: list[str]) -> None:
    """mshv_irqfd_assign: unrouted GSIs accepted, EBUSY for a bound eventfd;
    mshv_irqfd_deassign matches (eventfd, gsi)."""
    run_case(client, "irqfd_ebusy_and_deassign")


def test_irqfd_resample_order(client: list[str]) -> None:
    """mshv_irqfd_assign (2026 fix): RESAMPLE needs a level-triggered route,
    checked after EBUSY."""
    run_case(client, "irqfd_resample_order")


def test_irqfd_consumes_signals(client: list[str]) -> None:
    """mshv_irqfd_wakeup consumes each signal; mshv_irqfd_assign injects a pending
    count without reading it; mshv_irqfd_shutdown (>= 7.0) clears the counter."""
    run_case(client, "irqfd_consumes_signals")


def test_irqfd_hup_detaches(client: list[str]) -> None:
    """mshv_irqfd_wakeup EPOLLHUP: a closed eventfd is detached, no EBUSY after."""
    run_case(client, "irqfd_hup_detaches")


def test_irqfd_no_lapic(client: list[str]) -> None:
    """mshv_irqfd_assign / mshv_update_routing_table on a partition without LAPIC."""
    run_case(client, "irqfd_no_lapic")


def test_irqfd_release_on_close(client: list[str]) -> None:
    """mshv_partition_release -> mshv_eventfd_release: irqfds detach at partition
    fd close while a VP fd keeps the partition alive."""
    run_case(client, "irqfd_release_on_close")


def test_ioeventfd_checks(client: list[str]) -> None:
    """mshv_set_unset_ioeventfd / mshv_assign_ioeventfd: flags, rsvd, PIO
    EOPNOTSUPP, len, wrap, EBADF / EINVAL; mshv_deassign_ioeventfd ENOENT."""
    run_case(client, "ioeventfd_checks")


def test_ioeventfd_collisions(client: list[str]) -> None:
    """ioeventfd_check_collision: same addr and len with a wildcard or equal
    datamatch -> EEXIST; len 0 is a length of its own."""
    run_case(client, "ioeventfd_collisions")


def test_ioeventfd_deassign_exact(client: list[str]) -> None:
    """mshv_deassign_ioeventfd: eventfd, addr, len, wildcard-ness and datamatch
    must all match, else ENOENT."""
    run_case(client, "ioeventfd_deassign_exact")


def test_ioeventfd_no_lapic(client: list[str]) -> None:
    """mshv_assign_ioeventfd on a partition without LAPIC."""
    run_case(client, "ioeventfd_no_lapic")


def test_ioeventfd_release_on_close(client: list[str]) -> None:
    """mshv_partition_release -> mshv_eventfd_release drops the ioeventfds."""
    run_case(client, "ioeventfd_release_on_close")
