"""Runs of MSRs and debug registers in one Get/SetVpRegisters: the emulator moves each run with
one KVM ioctl (regs.c emu_reg_get_run/emu_reg_set_run) and keeps the hypercall's rep rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mshv import HvStatus, Mshv, MshvError, Vp
from mshv._abi import ffi, lib
from mshv.hvcall import hvcall
from mshv.registers import encode_registers

MSRS = {
    "sysenter_cs": 0x10, "sysenter_esp": 0x2000, "sysenter_eip": 0x3000, "star": 0x23001000000000,
    "lstar": 0x4000, "cstar": 0x5000, "sfmask": 0x4700, "kernel_gs_base": 0x6000, "pat": 0x0007040600070106,
    "msr_mtrr_def_type": 0xC06, "msr_mtrr_phys_base0": 0x100006, "msr_mtrr_fix64k00000": 0x0606060606060606,
}  # fmt: skip
DRS = {"dr0": 0x1000, "dr1": 0x2000, "dr2": 0x3000, "dr3": 0x4000, "dr6": 0xFFFF0FF1, "dr7": 0x700}
# MSRs of features a KVM may lack (MPX, CET): KVM refuses to read or write them there.
MAYBE_REFUSED = ("bndcfgs", "u_cet", "s_cet", "pl0_ssp", "interrupt_ssp_table_addr")


@pytest.fixture
def vp(kvm: str) -> Iterator[Vp]:
    with Mshv() as hv, hv.create_partition() as pt:
        yield pt.create_vp(0)


def _refused_msr(vp: Vp) -> str:
    """An MSR register this KVM refuses (xfail when it has them all)."""
    for name in MAYBE_REFUSED:
        try:
            vp.get_registers([name])
        except MshvError:
            return name
    pytest.xfail(f"this KVM implements every one of {MAYBE_REFUSED}: no MSR to be refused")


def test_a_run_of_msrs_and_debug_registers_round_trips(vp: Vp) -> None:
    values = {**MSRS, "rax": 7, **DRS, "rbx": 9}
    vp.set_registers(values)
    assert vp.get_registers(list(values)) == values
    assert vp.get_registers(["dr7", "dr0"]) == {"dr7": 0x700, "dr0": 0x1000}  # any order


def test_a_refused_msr_in_a_run_stops_the_batch_there(vp: Vp) -> None:
    refused = _refused_msr(vp)
    with pytest.raises(MshvError) as info:
        vp.set_registers({"sysenter_cs": 0x10, "star": 0x20, refused: 1, "lstar": 0x30, "rax": 5})
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 2)
    assert refused in str(info.value)
    # the registers before the refused one took effect; none after it
    assert vp.get_registers(["sysenter_cs", "star", "lstar", "rax"]) == {
        "sysenter_cs": 0x10, "star": 0x20, "lstar": 0, "rax": 0,
    }  # fmt: skip
    with pytest.raises(MshvError) as info:
        vp.get_registers(["sysenter_cs", "star", refused, "lstar"])
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 2)


def test_a_debug_register_run_keeps_the_ones_it_does_not_name(vp: Vp) -> None:
    """Only a run naming all six starts from nothing; six names with one repeated do not."""
    vp.set_registers(DRS)
    vp.set_registers({"dr0": 0x11, "dr1": 0x22})
    assert vp.get_registers(list(DRS)) == {**DRS, "dr0": 0x11, "dr1": 0x22}
    encoded = encode_registers(0, {"dr0": 0x33, "dr1": 0x44, "dr2": 0x55, "dr6": 0xFFFF0FF0, "dr7": 0x400})
    data = bytearray(encoded.inputs[0])
    dr0 = data[-5 * 32 : -4 * 32]  # the first element again, in place of nothing: six names
    hvcall(vp.fd, lib.HVCALL_SET_VP_REGISTERS, bytes(data) + bytes(dr0), 0, reps=6)
    assert vp.get_registers(list(DRS)) == {
        "dr0": 0x33, "dr1": 0x44, "dr2": 0x55, "dr3": DRS["dr3"], "dr6": 0xFFFF0FF0, "dr7": 0x400,
    }  # fmt: skip


PENDING_NMI = 1 | (2 << 1) | (2 << 16)  # HV_X64_PENDING_INTERRUPTION: pending, type NMI, vector 2
MASKED_SHADOW = 3  # HV_X64_INTERRUPT_STATE: interrupt shadow, NMI masked


@pytest.mark.parametrize("order", ["pending first", "state first"])
def test_the_two_event_registers_set_together_both_take(vp: Vp, order: str) -> None:
    values = {"pending_interruption": PENDING_NMI, "interrupt_state": MASKED_SHADOW}
    if order == "state first":
        values = dict(reversed(values.items()))
    vp.set_registers(values)
    assert vp.get_registers(list(values)) == values
    vp.set_registers({name: 0 for name in values})
    assert vp.get_registers(list(values)) == {name: 0 for name in values}


def test_a_bad_second_event_register_leaves_the_first_set(vp: Vp) -> None:
    """Set together or one by one, the rep rules hold: the first took effect, the second is named."""
    with pytest.raises(MshvError) as info:
        vp.set_registers({"interrupt_state": MASKED_SHADOW, "pending_interruption": 1 | (7 << 1)})
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 1)
    assert vp.get_registers(["interrupt_state", "pending_interruption"]) == {
        "interrupt_state": MASKED_SHADOW, "pending_interruption": 0,
    }  # fmt: skip
    with pytest.raises(MshvError) as info:
        vp.set_registers({"interrupt_state": 1 << 5, "pending_interruption": PENDING_NMI})
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 0)
    assert vp.reg_read("pending_interruption") == 0


def test_a_refused_debug_register_run_applies_none_of_it(vp: Vp) -> None:
    with pytest.raises(MshvError) as info:
        vp.set_registers({"rax": 3, "dr0": 0x10, "dr1": 0x20, "dr7": 1 << 40})  # DR7 bits 63:32 are 0
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 1)
    assert vp.get_registers(["rax", "dr0", "dr1"]) == {"rax": 3, "dr0": 0, "dr1": 0}


def test_reserved_fields_stop_a_run_at_that_register(vp: Vp) -> None:
    """An element with reserved fields set is refused where it stands, even inside a run."""
    encoded = encode_registers(0, {"sysenter_cs": 0x10, "star": 0x20, "lstar": 0x30})
    data = bytearray(encoded.inputs[0])
    header = ffi.offsetof("struct hv_input_set_vp_registers", "elements")
    second = header + ffi.sizeof("struct hv_register_assoc")
    data[second + ffi.offsetof("struct hv_register_assoc", "reserved1")] = 1
    with pytest.raises(MshvError) as info:
        hvcall(vp.fd, lib.HVCALL_SET_VP_REGISTERS, bytes(data), 0, reps=3)
    assert (info.value.hv_status, info.value.reps_done) == (HvStatus.INVALID_PARAMETER, 1)
    assert vp.get_registers(["sysenter_cs", "star", "lstar"]) == {"sysenter_cs": 0x10, "star": 0, "lstar": 0}
