"""Tests of ioctl_defs/hvdefs.py and include/mshv_hvdefs.h.

The cdef must name every #define, struct and union of the header, and the
compiled module must show the layouts and numbers of the Hyper-V TLFS and the
kernel's include/hyperv/hv*.h. The literals below are those numbers, kept here
on purpose: they prove the header right.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "ioctl_defs" / "include" / "mshv_hvdefs.h"
GUARD = "MSHV_HVDEFS_H"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ioctl_defs import hvdefs, mshv_uapi  # noqa: E402


def _header_text() -> str:
    return HEADER.read_text()


def _header_defines() -> list[str]:
    names = re.findall(r"^#define\s+([A-Za-z_][A-Za-z_0-9]*)", _header_text(), re.M)
    return [n for n in names if n != GUARD]


def _header_aggregates() -> list[tuple[str, str]]:
    return re.findall(r"^(struct|union)\s+([a-z_][a-z_0-9]*)\s*\{", _header_text(), re.M)


def _cdef_aggregate_bodies() -> dict[str, str]:
    bodies = {}
    for kind, name, body in re.findall(
        r"^(struct|union)\s+([a-z_0-9]+)\s*\{(.*?)^\};", hvdefs.TYPES, re.M | re.S
    ):
        bodies[f"{kind} {name}"] = body
    return bodies


# --- (a) the cdef declares everything the header defines ------------------


def test_header_has_content() -> None:
    assert len(_header_defines()) > 400
    assert len(_header_aggregates()) > 40


def test_cdef_names_every_define() -> None:
    declared = set(re.findall(r"^#define\s+([A-Za-z_0-9]+)\s+\.\.\.$", hvdefs.TYPES, re.M))
    missing = [n for n in _header_defines() if n not in declared]
    assert missing == []


def test_cdef_defines_are_all_in_header() -> None:
    declared = re.findall(r"^#define\s+([A-Za-z_0-9]+)", hvdefs.TYPES, re.M)
    extra = sorted(set(declared) - set(_header_defines()))
    assert extra == []


def test_cdef_declares_every_struct_and_union() -> None:
    bodies = _cdef_aggregate_bodies()
    missing = [f"{k} {n}" for k, n in _header_aggregates() if f"{k} {n}" not in bodies]
    assert missing == []


def test_cdef_aggregates_end_with_ellipsis() -> None:
    for name, body in _cdef_aggregate_bodies().items():
        assert body.rstrip().endswith("...;"), name


def test_cdef_has_numbers_only_as_array_lengths() -> None:
    text = re.sub(r"/\*.*?\*/", "", hvdefs.TYPES, flags=re.S)
    text = re.sub(r"\[\d+\]", "[]", text)
    text = re.sub(r"__u(8|16|32|64)", "", text)
    text = re.sub(r"[A-Za-z_][A-Za-z_0-9]*", "", text)
    assert re.findall(r"\d+", text) == []


def test_includes_names_the_header() -> None:
    assert '#include "mshv_hvdefs.h"' in hvdefs.INCLUDES


# --- (b) the compiled module shows the spec's facts -----------------------


def _scratch_module(tmp: Path) -> ModuleType:
    """Build a throw-away cffi module from ioctl_defs when mshv._abi is absent."""
    import cffi

    inc = ROOT / "ioctl_defs" / "include"
    ffi = cffi.FFI()
    ffi.cdef(mshv_uapi.TYPES + hvdefs.TYPES)
    ffi.set_source(
        "_hvdefs_scratch",
        mshv_uapi.INCLUDES + hvdefs.INCLUDES,
        include_dirs=[str(inc / "bundled"), str(inc)],
        extra_compile_args=["-Wno-address-of-packed-member"],
    )
    ffi.compile(tmpdir=str(tmp), verbose=False)
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module("_hvdefs_scratch")
    finally:
        sys.path.remove(str(tmp))


@pytest.fixture(scope="module")
def abi(tmp_path_factory: pytest.TempPathFactory) -> Any:
    try:
        from mshv import _abi
    except ImportError:
        _abi = _scratch_module(tmp_path_factory.mktemp("hvdefs_cffi"))
    return _abi


@pytest.mark.parametrize(
    ("ctype", "size"),
    [
        ("struct hv_message", 256),
        ("struct hv_message_header", 16),
        ("struct hv_register_assoc", 32),
        ("union hv_register_value", 16),
        ("struct hv_x64_segment_register", 16),
        ("struct hv_x64_table_register", 16),
        ("struct hv_x64_intercept_message_header", 40),
        ("struct hv_x64_io_port_intercept_message", 128),
        ("struct hv_x64_memory_intercept_message", 80),
        ("struct hv_x64_halt_message", 40),
        ("struct hv_input_get_vp_registers", 16),
        ("struct hv_input_set_vp_registers", 16),
        ("struct hv_local_interrupt_controller_state", 176),
        ("struct hv_synthetic_timers_state", 200),
        ("struct hv_vp_register_page", 696),
    ],
)
def test_sizes(abi: Any, ctype: str, size: int) -> None:
    assert abi.ffi.sizeof(ctype) == size


@pytest.mark.parametrize(
    ("ctype", "field", "offset"),
    [
        ("struct hv_register_assoc", "value", 16),
        ("struct hv_x64_segment_register", "selector", 12),
        ("struct hv_x64_segment_register", "attributes", 14),
        ("struct hv_x64_table_register", "limit", 6),
        ("struct hv_x64_table_register", "base", 8),
        ("struct hv_message_header", "payload_size", 4),
        ("struct hv_message_header", "message_flags", 5),
        ("struct hv_message_header", "sender", 8),
        ("struct hv_message", "payload", 16),
        ("struct hv_x64_intercept_message_header", "intercept_access_type", 5),
        ("struct hv_x64_intercept_message_header", "execution_state", 6),
        ("struct hv_x64_intercept_message_header", "cs_segment", 8),
        ("struct hv_x64_intercept_message_header", "rip", 24),
        ("struct hv_x64_intercept_message_header", "rflags", 32),
        ("struct hv_x64_io_port_intercept_message", "port_number", 40),
        ("struct hv_x64_io_port_intercept_message", "access_info", 42),
        ("struct hv_x64_io_port_intercept_message", "rax", 48),
        ("struct hv_x64_io_port_intercept_message", "instruction_bytes", 56),
        ("struct hv_x64_io_port_intercept_message", "ds_segment", 72),
        ("struct hv_x64_io_port_intercept_message", "es_segment", 88),
        ("struct hv_x64_io_port_intercept_message", "rcx", 104),
        ("struct hv_x64_io_port_intercept_message", "rdi", 120),
        ("struct hv_x64_memory_intercept_message", "cache_type", 40),
        ("struct hv_x64_memory_intercept_message", "memory_access_info", 45),
        ("struct hv_x64_memory_intercept_message", "guest_virtual_address", 48),
        ("struct hv_x64_memory_intercept_message", "guest_physical_address", 56),
        ("struct hv_x64_memory_intercept_message", "instruction_bytes", 64),
        ("struct hv_vp_register_page", "dirty", 4),
        ("struct hv_vp_register_page", "rax", 8),
        ("struct hv_vp_register_page", "rip", 136),
        ("struct hv_vp_register_page", "rflags", 144),
        ("struct hv_vp_register_page", "reserved", 152),
        ("struct hv_vp_register_page", "xmm0", 160),
        ("struct hv_vp_register_page", "es", 256),
        ("struct hv_vp_register_page", "cr0", 352),
        ("struct hv_vp_register_page", "efer", 384),
        ("struct hv_vp_register_page", "dr7", 392),
        ("struct hv_vp_register_page", "pending_interruption", 400),
        ("struct hv_vp_register_page", "interrupt_state", 408),
        ("struct hv_vp_register_page", "instruction_emulation_hints", 416),
        ("struct hv_vp_register_page", "xfem", 424),
        ("struct hv_vp_register_page", "reserved1", 432),
        ("struct hv_vp_register_page", "interrupt_vectors", 688),
    ],
)
def test_offsets(abi: Any, ctype: str, field: str, offset: int) -> None:
    assert abi.ffi.offsetof(ctype, field) == offset


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HV_STATUS_SUCCESS", 0x0),
        ("HV_STATUS_INVALID_PARAMETER", 0x5),
        ("HV_STATUS_INSUFFICIENT_MEMORY", 0xB),
        ("HV_STATUS_INVALID_REGISTER_VALUE", 0x50),
        ("HV_STATUS_CALL_PENDING", 0x79),
        ("HV_STATUS_INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY", 0x83),
        ("HV_PARTITION_ID_SELF", 0xFFFFFFFFFFFFFFFF),
        ("HV_HYP_PAGE_SIZE", 4096),
        ("HVCALL_GET_PARTITION_PROPERTY", 0x44),
        ("HVCALL_SET_PARTITION_PROPERTY", 0x45),
        ("HVCALL_INSTALL_INTERCEPT", 0x4D),
        ("HVCALL_GET_VP_REGISTERS", 0x50),
        ("HVCALL_SET_VP_REGISTERS", 0x51),
        ("HVCALL_TRANSLATE_VIRTUAL_ADDRESS", 0x52),
        ("HVCALL_CLEAR_VIRTUAL_INTERRUPT", 0x56),
        ("HVCALL_REGISTER_INTERCEPT_RESULT", 0x91),
        ("HVCALL_ASSERT_VIRTUAL_INTERRUPT", 0x94),
        ("HVCALL_SIGNAL_EVENT_DIRECT", 0xC0),
        ("HVCALL_POST_MESSAGE_DIRECT", 0xC1),
        ("HVCALL_GET_GPA_PAGES_ACCESS_STATES", 0xC9),
        ("HVCALL_GET_VP_STATE", 0xE3),
        ("HVCALL_SET_VP_STATE", 0xE4),
        ("HVCALL_GET_VP_CPUID_VALUES", 0xF4),
        ("HVCALL_GET_PARTITION_PROPERTY_EX", 0x101),
        ("HVMSG_NONE", 0),
        ("HVMSG_UNMAPPED_GPA", 0x80000000),
        ("HVMSG_GPA_INTERCEPT", 0x80000001),
        ("HVMSG_X64_IO_PORT_INTERCEPT", 0x80010000),
        ("HVMSG_X64_HALT", 0x80010007),
        ("HVMSG_X64_SIPI_INTERCEPT", 0x80010009),
        ("HV_X64_REGISTER_RAX", 0x20000),
        ("HV_X64_REGISTER_RIP", 0x20010),
        ("HV_X64_REGISTER_RFLAGS", 0x20011),
        ("HV_X64_REGISTER_XMM15", 0x3000F),
        ("HV_X64_REGISTER_CR8", 0x40004),
        ("HV_X64_REGISTER_DR7", 0x50005),
        ("HV_X64_REGISTER_TR", 0x60007),
        ("HV_X64_REGISTER_GDTR", 0x70001),
        ("HV_X64_REGISTER_EFER", 0x80001),
        ("HV_X64_REGISTER_SFMASK", 0x8000B),
        ("HV_REGISTER_EXPLICIT_SUSPEND", 0x0),
        ("HV_REGISTER_PENDING_INTERRUPTION", 0x10002),
        ("HV_X64_REGISTER_DELIVERABILITY_NOTIFICATIONS", 0x10006),
        ("HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES", 0x00010001),
        ("HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING", 0x00050005),
        ("HV_PARTITION_PROPERTY_XSAVE_STATES", 0x00060007),
        ("HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE", 0x00060008),
        ("HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0", 0x0006000A),
        ("HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1", 0x0006000B),
        ("HV_PARTITION_PROPERTY_VMM_CAPABILITIES", 0x00090007),
        ("HV_X64_REGISTER_CLASS_GENERAL", 0),
        ("HV_X64_REGISTER_CLASS_FLAGS", 4),
        ("HV_INTERCEPT_ACCESS_READ", 0),
        ("HV_INTERCEPT_ACCESS_WRITE", 1),
        ("HV_INTERCEPT_ACCESS_EXECUTE", 2),
        ("HV_MESSAGE_SIZE", 256),
        ("HV_MESSAGE_PAYLOAD_QWORD_COUNT", 30),
    ],
)
def test_numbers(abi: Any, name: str, value: int) -> None:
    assert getattr(abi.lib, name) == value


def test_segment_attribute_bits(abi: Any) -> None:
    """A 64-bit code segment (type 0xB, S, P, L) reads back through the masks."""
    lib = abi.lib
    attrs = 0xB | lib.HV_X64_SEGMENT_ATTR_S_MASK | lib.HV_X64_SEGMENT_ATTR_P_MASK
    attrs |= lib.HV_X64_SEGMENT_ATTR_L_MASK
    assert attrs == 0x209B
    seg = abi.ffi.new("struct hv_x64_segment_register *", {"attributes": attrs})
    assert (seg.attributes & lib.HV_X64_SEGMENT_ATTR_L_MASK) >> lib.HV_X64_SEGMENT_ATTR_L_SHIFT == 1
    assert seg.attributes & lib.HV_X64_SEGMENT_ATTR_DPL_MASK == 0


def test_io_access_info_bits(abi: Any) -> None:
    lib = abi.lib
    info = 4 | lib.HV_X64_IO_PORT_ACCESS_INFO_STRING_OP | lib.HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX
    assert info == 0x1C
    assert info & lib.HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK == 4


def test_register_value_views_share_bytes(abi: Any) -> None:
    val = abi.ffi.new("union hv_register_value *")
    val.reg128.low_part = 0x1122334455667788
    val.reg128.high_part = 0x99AABBCCDDEEFF00
    assert val.reg64 == 0x1122334455667788
    assert val.reg32 == 0x55667788
    assert val.segment.base == 0x1122334455667788
    assert val.segment.limit == 0xDDEEFF00
    assert val.segment.selector == 0xBBCC
    assert val.table.base == 0x99AABBCCDDEEFF00
