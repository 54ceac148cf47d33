"""mshv/intercepts.py: every message type decodes to its typed object; unknown types stay raw.

The messages are built here field by field (the layouts come from the compiled
ABI), so each decoder is checked against values it could not have guessed.
"""

from __future__ import annotations

from typing import Any

import pytest

from mshv import (
    HvMessageType,
    InterruptionDeliverable,
    InvalidVpRegisterValue,
    IoPortIntercept,
    MemoryIntercept,
    OpaqueIntercept,
    SintDeliverable,
    SipiIntercept,
    TimerExpired,
    UnknownIntercept,
    UnsupportedFeature,
)
from mshv._abi import ffi, lib
from mshv.intercepts import decode


def _message(mtype: int, payload_type: str) -> tuple[Any, Any]:
    msg = ffi.new("struct hv_message *")
    msg.header.message_type = mtype
    msg.header.payload_size = ffi.sizeof(payload_type)
    return msg, ffi.cast(f"{payload_type} *", msg.payload)


def _fill_header(h: Any) -> None:
    h.vp_index = 3
    h.instruction_length_cr8 = 2 | (5 << lib.HV_X64_INTERCEPT_CR8_SHIFT)
    h.intercept_access_type = lib.HV_INTERCEPT_ACCESS_WRITE
    h.execution_state = lib.HV_X64_EXECUTION_STATE_CR0_PE | 3
    h.cs_segment.selector = 0x1B
    h.rip = 0x401000
    h.rflags = 0x202


def _raw(msg: Any) -> bytes:
    return bytes(ffi.buffer(msg))


def test_io_port_intercept_fields() -> None:
    msg, p = _message(lib.HVMSG_X64_IO_PORT_INTERCEPT, "struct hv_x64_io_port_intercept_message")
    _fill_header(p.header)
    p.port_number = 0x3F8
    p.access_info = 2 | lib.HV_X64_IO_PORT_ACCESS_INFO_STRING_OP | lib.HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX
    p.rax, p.rcx, p.rsi, p.rdi = 0x1234_5678, 9, 0x2000, 0x3000
    p.instruction_byte_count = 2
    p.instruction_bytes[0:2] = [0xF3, 0x6F]
    io = decode(_raw(msg))
    assert isinstance(io, IoPortIntercept)
    assert (io.port, io.size, io.string, io.rep, io.is_write) == (0x3F8, 2, True, True, True)
    assert (io.value, io.rcx, io.rsi, io.rdi, io.instruction_bytes) == (
        0x5678,
        9,
        0x2000,
        0x3000,
        b"\xf3\x6f",
    )
    h = io.header
    assert (h.vp_index, h.instruction_length, h.cr8, h.cpl, h.mode) == (3, 2, 5, 3, "protected")
    assert (h.rip, h.next_rip, h.cs.selector, h.rflags) == (0x401000, 0x401002, 0x1B, 0x202)
    assert io.next_rip == 0x401002 and io.header is h  # built once, at first access
    assert io.completion_rax(0xABCD) == 0x1234_ABCD


@pytest.mark.parametrize(
    ("size", "rax", "value", "merged"),
    [
        (1, 0xFFFF_FFFF_1234_5678, 0x1AB, 0xFFFF_FFFF_1234_56AB),  # AL: the rest of RAX kept
        (2, 0xFFFF_FFFF_1234_5678, 0x1_ABCD, 0xFFFF_FFFF_1234_ABCD),  # AX
        (4, 0xFFFF_FFFF_1234_5678, 0x1_ABCD_EF01, 0xABCD_EF01),  # EAX: zero-extended into RAX
    ],
)
def test_an_in_merges_its_value_by_access_size(size: int, rax: int, value: int, merged: int) -> None:
    msg, p = _message(lib.HVMSG_X64_IO_PORT_INTERCEPT, "struct hv_x64_io_port_intercept_message")
    _fill_header(p.header)
    p.header.intercept_access_type = lib.HV_INTERCEPT_ACCESS_READ
    p.access_info, p.rax = size, rax
    io = decode(_raw(msg))
    assert isinstance(io, IoPortIntercept) and not io.is_write and io.size == size
    assert io.completion_rax(value) == merged


@pytest.mark.parametrize("mtype", ["UNMAPPED_GPA", "GPA_INTERCEPT", "UNACCEPTED_GPA"])
def test_memory_intercepts(mtype: str) -> None:
    msg, p = _message(getattr(lib, f"HVMSG_{mtype}"), "struct hv_x64_memory_intercept_message")
    _fill_header(p.header)
    p.guest_physical_address, p.guest_virtual_address = 0xFEE0_0000, 0x7000
    p.memory_access_info = lib.HV_X64_MEMORY_ACCESS_INFO_GVA_VALID
    m = decode(_raw(msg))
    assert isinstance(m, MemoryIntercept) and m.message_type == HvMessageType[mtype]
    assert (m.gpa, m.gva, m.gva_valid, m.is_write) == (0xFEE0_0000, 0x7000, True, True)
    assert m.next_rip == m.header.next_rip == 0x401002 and m.header.cpl == 3


def test_sipi_deliverable_and_sint_messages() -> None:
    msg, p = _message(lib.HVMSG_X64_SIPI_INTERCEPT, "struct hv_x64_sipi_intercept_message")
    _fill_header(p.header)
    p.target_vp_index, p.interrupt_vector = 2, 0x9A
    sipi = decode(_raw(msg))
    assert isinstance(sipi, SipiIntercept) and (sipi.target_vp_index, sipi.vector, sipi.rip) == (
        2,
        0x9A,
        0x401000,
    )

    msg, p = _message(
        lib.HVMSG_X64_INTERRUPTION_DELIVERABLE, "struct hv_x64_interruption_deliverable_message"
    )
    _fill_header(p.header)
    p.deliverable_type = 2
    deliverable = decode(_raw(msg))
    assert isinstance(deliverable, InterruptionDeliverable) and deliverable.deliverable_type == 2

    msg, p = _message(lib.HVMSG_SYNIC_SINT_DELIVERABLE, "struct hv_x64_sint_deliverable_message")
    _fill_header(p.header)
    p.deliverable_sints = 0b1000_0001
    sint = decode(_raw(msg))
    assert isinstance(sint, SintDeliverable) and sint.deliverable_sints == 0x81


def test_messages_without_an_intercept_header() -> None:
    msg, p = _message(lib.HVMSG_TIMER_EXPIRED, "struct hv_timer_message_payload")
    p.timer_index, p.expiration_time, p.delivery_time = 1, 1000, 1005
    timer = decode(_raw(msg))
    assert isinstance(timer, TimerExpired) and (
        timer.timer_index,
        timer.expiration_time,
        timer.delivery_time,
    ) == (
        1,
        1000,
        1005,
    )
    msg, p = _message(lib.HVMSG_INVALID_VP_REGISTER_VALUE, "struct hv_x64_invalid_vp_register_message")
    p.vp_index = 7
    assert decode(_raw(msg)) == InvalidVpRegisterValue(HvMessageType.INVALID_VP_REGISTER_VALUE, _raw(msg), 7)
    msg, p = _message(lib.HVMSG_UNSUPPORTED_FEATURE, "struct hv_x64_unsupported_feature_message")
    p.vp_index, p.feature_code, p.feature_parameter = 1, lib.HV_UNSUPPORTED_FEATURE_TASK_SWITCH_TSS, 0x28
    feature = decode(_raw(msg))
    assert isinstance(feature, UnsupportedFeature) and (feature.feature_code, feature.feature_parameter) == (
        lib.HV_UNSUPPORTED_FEATURE_TASK_SWITCH_TSS,
        0x28,
    )
    msg, p = _message(lib.HVMSG_OPAQUE_INTERCEPT, "struct hv_opaque_intercept_message")
    p.vp_index = 4
    opaque = decode(_raw(msg))
    assert isinstance(opaque, OpaqueIntercept) and opaque.vp_index == 4


def test_unknown_types_stay_raw() -> None:
    msg = ffi.new("struct hv_message *")
    msg.header.message_type = 0x8FFF_0001
    msg.payload[0] = 0x1122
    unknown = decode(_raw(msg))
    assert isinstance(unknown, UnknownIntercept)
    assert int(unknown.message_type) == 0x8FFF_0001 and unknown.message_type.name == "UNKNOWN_0x8fff0001"
    assert unknown.raw[16:18] == b"\x22\x11"


def test_a_message_must_be_256_bytes() -> None:
    with pytest.raises(ValueError):
        decode(b"\0" * 255)


@pytest.mark.parametrize(
    ("access", "flags"),
    [("READ", (True, False, False)), ("WRITE", (False, True, False)), ("EXECUTE", (False, False, True))],
)
@pytest.mark.parametrize(
    ("mtype", "payload"),
    [
        ("X64_IO_PORT_INTERCEPT", "struct hv_x64_io_port_intercept_message"),
        ("UNMAPPED_GPA", "struct hv_x64_memory_intercept_message"),
        ("X64_MSR_INTERCEPT", "struct hv_x64_msr_intercept_message"),
        ("X64_CPUID_INTERCEPT", "struct hv_x64_cpuid_intercept_message"),
        ("X64_EXCEPTION_INTERCEPT", "struct hv_x64_exception_intercept_message"),
        ("X64_HALT", "struct hv_x64_intercept_message_header"),
        ("UNRECOVERABLE_EXCEPTION", "struct hv_x64_intercept_message_header"),
        ("X64_SIPI_INTERCEPT", "struct hv_x64_sipi_intercept_message"),
    ],
)
def test_every_intercept_says_read_write_or_execute(
    mtype: str, payload: str, access: str, flags: tuple[bool, bool, bool]
) -> None:
    """is_read/is_write/is_execute come from the header's access type (0/1/2), typed."""
    from mshv import InterceptAccess

    msg, p = _message(getattr(lib, f"HVMSG_{mtype}"), payload)
    header = p if payload.endswith("header") else p.header
    _fill_header(header)
    header.intercept_access_type = getattr(lib, f"HV_INTERCEPT_ACCESS_{access}")
    x = decode(_raw(msg))
    assert (x.is_read, x.is_write, x.is_execute) == flags  # type: ignore[attr-defined]
    assert x.access is InterceptAccess[access]  # type: ignore[attr-defined]
    assert x.header.access_type is InterceptAccess[access]  # type: ignore[attr-defined]


def test_reprs_show_addresses_in_hex_and_only_what_the_access_has() -> None:
    msg, p = _message(lib.HVMSG_X64_IO_PORT_INTERCEPT, "struct hv_x64_io_port_intercept_message")
    _fill_header(p.header)
    p.port_number, p.access_info, p.rax = 0x3F8, 1, 0x41
    plain = repr(decode(_raw(msg)))
    assert "rip=0x401000" in plain and "port=0x3f8" in plain and "rax=0x41" in plain
    assert "cs=Segment(base=0x0, limit=0x0, selector=0x1b" in plain
    for string_only in ("rcx=", "rsi=", "rdi=", " ds=", " es=", "instruction_bytes="):
        assert string_only not in plain  # a plain OUT has no string operands
    p.access_info = 1 | lib.HV_X64_IO_PORT_ACCESS_INFO_STRING_OP
    assert "rsi=0x0" in repr(decode(_raw(msg)))

    msg, p = _message(lib.HVMSG_UNMAPPED_GPA, "struct hv_x64_memory_intercept_message")
    _fill_header(p.header)
    p.guest_physical_address = 0x3000_0000
    memory = repr(decode(_raw(msg)))
    assert "gpa=0x30000000" in memory and "message_type=UNMAPPED_GPA" in memory


def test_translation_and_cpuid_reprs_are_hex() -> None:
    from mshv import CpuidValues, GvaTranslation, TranslateResult

    assert (
        repr(GvaTranslation(TranslateResult.SUCCESS, 0x3000_0000))
        == "GvaTranslation(result=SUCCESS, gpa=0x30000000)"
    )
    assert (
        repr(CpuidValues(1, 0x4D53_4854, 0, 0x10))
        == "CpuidValues(eax=0x1, ebx=0x4d534854, ecx=0x0, edx=0x10)"
    )
