"""The Python view of the synthetic registers and of the register page before the first run:
``Vp.get_registers``/``set_registers`` with the synthetic names, ``Vp.register_page``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mshv import HvPartitionProperty, HvStatus, Mshv, MshvError, Vp

FEATURES = 0x6400FFB  # what QEMU 11.1.3 sets: synthetic MSRs, SynIC, timers, no VP_RUNTIME


@pytest.fixture
def vp(backend_ready: None) -> Iterator[Vp]:
    with Mshv() as hv, hv.create_partition(initialize=False) as pt:
        pt.set_property(HvPartitionProperty.SYNTHETIC_PROC_FEATURES, FEATURES)
        pt.initialize()
        yield pt.create_vp(0)


def test_synthetic_registers_by_name(vp: Vp) -> None:
    """The names QEMU puts first (HYPERCALL, SCONTROL, SIEFP, SIMP, SINTx, PENDING_EVENT0)
    read their reset values and round-trip; PENDING_EVENT0 is 128 bits wide."""
    reset = vp.get_registers(["hypercall", "guest_os_id", "scontrol", "siefp", "simp", "sint0", "sversion"])
    assert reset == {
        "hypercall": 0,
        "guest_os_id": 0,
        "scontrol": 0,
        "siefp": 0,
        "simp": 0,
        "sint0": 0x10000,
        "sversion": 1,
    }
    values = {
        "guest_os_id": 0x8100000000000000,
        "hypercall": 0x3001,
        "scontrol": 1,
        "simp": 0x4001,
        "sint5": 0x10033,
        "stimer2_config": 0x5000B,
        "pending_event0": 0,
        "deliverability_notifications": 0,
    }
    vp.set_registers(values)
    assert vp.get_registers(list(values)) == values


def test_intermediate_cr3_is_cr3(vp: Vp) -> None:
    """INTERMEDIATE_CR3 (what rust-vmm's set_sregs writes) is CR3 without a nested hypervisor."""
    vp.set_registers({"intermediate_cr3": 0x7000})
    assert vp.get_registers(["cr3"]) == {"cr3": 0x7000}


def test_vp_runtime_is_gated(vp: Vp) -> None:
    """QEMU's feature set leaves out access_vp_run_time_reg (bit 2): VP_RUNTIME does not exist
    for the partition, a typed error naming HV_STATUS_INVALID_PARAMETER."""
    with pytest.raises(MshvError) as info:
        vp.get_registers(["vp_runtime"])
    assert info.value.hv_status == HvStatus.INVALID_PARAMETER


def test_read_only_register_is_refused(vp: Vp) -> None:
    with pytest.raises(MshvError) as info:
        vp.set_registers({"vp_index": 3})
    assert info.value.hv_status == HvStatus.INVALID_PARAMETER


def test_register_page_valid_before_the_first_run(backend_ready: None) -> None:
    """From CREATE_VP on the register page is version 1, valid, and shows the reset state;
    a SetVpRegisters shows in it, and a page write marked dirty is what GetVpRegisters reads."""
    with Mshv() as hv, hv.create_partition(lapic=False) as pt:
        vp = pt.create_vp(0)
        page = vp.register_page
        assert page is not None and page.valid
        assert page.raw.version == 1 and page.dirty == 0
        assert page.read("rip") == 0xFFF0
        vp.set_registers({"rax": 0x1234, "cr0": 0x60000010})
        assert page.read("rax") == 0x1234 and page.read("cr0") == 0x60000010
        page.write("rbx", 0x5678)
        assert vp.get_registers(["rbx"]) == {"rbx": 0x5678}
        assert page.dirty == 0


def test_info_says_who_answers_the_guest(backend_ready: None) -> None:
    """`mshv info` on the emulator says how the guest sees the synthetic MSRs on this host."""
    env = dict(os.environ, MSHV_BACKEND="emulator")
    out = subprocess.run(
        [sys.executable, "-m", "mshv", "info"], env=env, capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("synthetic:"))
    assert "emulator" in line and "KVM's Hyper-V emulation" in line
