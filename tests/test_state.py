"""mshv/state.py: typed VP state blobs round-trip, and bad state is refused without changing the VP."""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Iterator

import pytest

from mshv import HvPartitionProperty, LapicState, Mshv, MshvError, Partition, SyntheticTimer, Vp
from mshv._abi import ffi

XCOMP_BV = 520  # compacted XSAVE header: XSTATE_BV @512, XCOMP_BV @520 (SDM 13.4.2)
XMM0 = 160  # legacy area: XMM0..15 from byte 160, 16 bytes each (SDM 10.5.1)


@pytest.fixture
def lapic_vp(hv: Mshv) -> Iterator[Vp]:
    with hv.create_partition(lapic=True) as pt:
        yield pt.create_vp(0)


def test_lapic_state_round_trips(lapic_vp: Vp) -> None:
    lapic = lapic_vp.get_lapic()
    assert lapic.apic_id == 0 and lapic.version & 0xFF != 0  # the APIC version register
    assert lapic.pending_vectors == [] and lapic.in_service_vectors == []
    changed = dataclasses.replace(
        lapic, spurious=0x1FF, lvt_lint0=0x10000 | 0x31, lvt_timer=0x10000 | 0x32, ldr=0x0100_0000
    )
    lapic_vp.set_lapic(changed)
    assert lapic_vp.get_lapic() == changed
    assert lapic_vp.partition.create_vp(1).get_lapic().apic_id == 1 << 24  # the xAPIC ID register


def test_lapic_state_encoding() -> None:
    state = LapicState(apic_id=5, irr=[0, 0, 1 << 1, 0, 0, 0, 0, 1 << 31], isr=[1] + [0] * 7)
    data = state.to_bytes()
    assert len(data) == ffi.sizeof("struct hv_local_interrupt_controller_state") == 176
    assert LapicState.from_bytes(data) == state
    assert state.pending_vectors == [0x41, 0xFF] and state.in_service_vectors == [0]
    assert LapicState(icr_high=2, icr_low=0x4041).icr == (2 << 32) | 0x4041
    with pytest.raises(ValueError):
        LapicState.from_bytes(data[:100])


def test_bad_lapic_state_changes_nothing(lapic_vp: Vp) -> None:
    before = lapic_vp.get_lapic()
    with pytest.raises(TypeError):
        lapic_vp.set_lapic("lapic")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lapic_vp.set_lapic(dataclasses.replace(before, isr=[0] * 7))
    with pytest.raises(ValueError):
        lapic_vp.set_lapic(dataclasses.replace(before, spurious=1 << 32))
    with pytest.raises(TypeError):
        lapic_vp.set_lapic(dataclasses.replace(before, ldr="0"))  # type: ignore[arg-type]
    assert lapic_vp.get_lapic() == before


def test_no_lapic_state_without_a_lapic(partition: Partition) -> None:
    vp = partition.create_vp(0)
    with pytest.raises(MshvError) as info:
        vp.get_lapic()
    assert info.value.errno == errno.EINVAL and info.value.op == "MSHV_GET_VP_STATE"


def test_xsave_round_trips_and_matches_the_registers(partition: Partition) -> None:
    vp = partition.create_vp(0)
    xsave = vp.get_xsave()
    assert len(xsave) == partition.get_property(HvPartitionProperty.MAX_XSAVE_DATA_SIZE)
    assert int.from_bytes(xsave[XCOMP_BV : XCOMP_BV + 8], "little") >> 63 == 1  # compacted
    vp.reg_write("xmm1", 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210)
    xsave = vp.get_xsave()
    assert xsave[XMM0 + 16 : XMM0 + 32] == (0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210).to_bytes(16, "little")

    edited = bytearray(xsave)
    edited[XMM0 : XMM0 + 16] = (0xAA55).to_bytes(16, "little")
    edited[512] |= 1 << 1  # XSTATE_BV: the SSE state is in the area
    vp.set_xsave(bytes(edited))
    assert vp.reg_read("xmm0") == 0xAA55
    assert vp.get_xsave()[XMM0 : XMM0 + 16] == (0xAA55).to_bytes(16, "little")


def test_bad_xsave_is_refused(partition: Partition) -> None:
    vp = partition.create_vp(0)
    vp.reg_write("xmm2", 7)
    standard = bytearray(vp.get_xsave())
    standard[XCOMP_BV + 7] &= 0x7F  # not compacted: the hypervisor refuses it
    with pytest.raises(MshvError) as info:
        vp.set_xsave(bytes(standard))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        vp.set_xsave(b"")
    with pytest.raises(TypeError):
        vp.set_xsave("xsave")  # type: ignore[arg-type]
    assert vp.reg_read("xmm2") == 7


def test_synic_pages_round_trip(partition: Partition) -> None:
    vp = partition.create_vp(0)
    assert vp.get_simp() == bytes(4096) and vp.get_siefp() == bytes(4096)
    simp = bytes(range(256)) * 16
    siefp = b"\x5a" * 4096
    vp.set_simp(simp)
    vp.set_siefp(siefp)
    assert (vp.get_simp(), vp.get_siefp()) == (simp, siefp)
    with pytest.raises(ValueError):
        vp.set_simp(b"\x00" * 100)
    with pytest.raises(TypeError):
        vp.set_siefp([0] * 4096)  # type: ignore[arg-type]
    assert vp.get_simp() == simp


def test_synthetic_timers_round_trip(partition: Partition) -> None:
    vp = partition.create_vp(0)
    assert vp.get_synthetic_timers() == [SyntheticTimer()] * 4
    timers = [
        SyntheticTimer(
            flags=1, config=0x31 << 4 | 1, count=1000 * (i + 1), adjustment=i, undelivered_exp_time=9
        )
        for i in range(4)
    ]
    vp.set_synthetic_timers(timers)
    got = vp.get_synthetic_timers()
    assert got == timers and got[0].enabled
    with pytest.raises(ValueError):
        vp.set_synthetic_timers(timers[:3])
    with pytest.raises(ValueError):
        vp.set_synthetic_timers([SyntheticTimer(flags=1 << 32)] * 4)
    with pytest.raises(TypeError):
        vp.set_synthetic_timers([None] * 4)  # type: ignore[list-item]
    assert vp.get_synthetic_timers() == timers


def test_closed_vp_state_raises(partition: Partition) -> None:
    vp = partition.create_vp(0)
    vp.close()
    with pytest.raises(ValueError, match="closed"):
        vp.get_xsave()
    with pytest.raises(ValueError, match="closed"):
        vp.set_synthetic_timers([SyntheticTimer()] * 4)
