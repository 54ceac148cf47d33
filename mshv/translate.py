"""Guest virtual to guest physical addresses, walked by the hypervisor in a VP's current mode.

``translate_gva`` wraps HvCallTranslateVirtualAddress: the hypervisor walks the
VP's page tables (CR3, paging mode) with the access checks ``flags`` ask for
and says whether, and to which GPA, the address translates.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple, cast

from mshv._abi import ffi, lib
from mshv._enums import OpenIntEnum
from mshv.hvcall import HvcallInput, hvcall
from mshv.memory import PAGE_SIZE

__all__ = ["GvaTranslation", "TranslateFlag", "TranslateResult", "translate_gva"]

_PREFIX = "HV_TRANSLATE_GVA_"


def _members(names: tuple[str, ...]) -> dict[str, int]:
    return {name: int(getattr(lib, _PREFIX + name)) for name in names}


class TranslateFlag(enum.IntFlag):
    """Control flags of HvCallTranslateVirtualAddress (HV_TRANSLATE_GVA_*)."""

    VALIDATE_READ = lib.HV_TRANSLATE_GVA_VALIDATE_READ
    VALIDATE_WRITE = lib.HV_TRANSLATE_GVA_VALIDATE_WRITE
    VALIDATE_EXECUTE = lib.HV_TRANSLATE_GVA_VALIDATE_EXECUTE
    PRIVILEGE_EXEMPT = lib.HV_TRANSLATE_GVA_PRIVILEGE_EXEMPT
    SET_PAGE_TABLE_BITS = lib.HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS
    TLB_FLUSH_INHIBIT = lib.HV_TRANSLATE_GVA_TLB_FLUSH_INHIBIT
    SUPERVISOR_ACCESS = lib.HV_TRANSLATE_GVA_SUPERVISOR_ACCESS
    USER_ACCESS = lib.HV_TRANSLATE_GVA_USER_ACCESS
    ENFORCE_SMAP = lib.HV_TRANSLATE_GVA_ENFORCE_SMAP
    OVERRIDE_SMAP = lib.HV_TRANSLATE_GVA_OVERRIDE_SMAP
    SHADOW_STACK = lib.HV_TRANSLATE_GVA_SHADOW_STACK


TranslateResult: Any = cast(Any, OpenIntEnum)(
    "TranslateResult",
    _members(
        (
            "SUCCESS",
            "PAGE_NOT_PRESENT",
            "PRIVILEGE_VIOLATION",
            "INVALID_PAGE_TABLE_FLAGS",
            "GPA_UNMAPPED",
            "GPA_NO_READ_ACCESS",
            "GPA_NO_WRITE_ACCESS",
            "GPA_ILLEGAL_OVERLAY_ACCESS",
            "INTERCEPT",
            "GPA_UNACCEPTED",
        )
    ),
    module="mshv",
)
TranslateResult.__doc__ = "Result codes of HvCallTranslateVirtualAddress (HV_TRANSLATE_GVA_*)."


class GvaTranslation(NamedTuple):
    """A translation: its result code and the GPA (page GPA + the GVA's page offset).

    ``gpa`` is what the hypervisor wrote: meaningful for SUCCESS and the GPA_* results.
    """

    result: Any  # a TranslateResult (open to codes this version has no name for)
    gpa: int

    def __repr__(self) -> str:
        return f"GvaTranslation(result={getattr(self.result, 'name', self.result)}, gpa={self.gpa:#x})"


def translate_gva(
    fd: int, vp_index: int, gva: int, flags: int = TranslateFlag.VALIDATE_READ
) -> GvaTranslation:
    """Translate ``gva`` on VP ``vp_index`` (HvCallTranslateVirtualAddress)."""
    for name, value in (("gva", gva), ("flags", flags), ("vp_index", vp_index)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= gva < 1 << 64:
        raise ValueError(f"gva must be a 64-bit address, got {gva:#x}")
    known = 0
    for flag in TranslateFlag:
        known |= int(flag)
    if int(flags) & ~known or int(flags) < 0:
        raise ValueError(f"unknown translate flags {int(flags):#x}")
    data = HvcallInput("struct hv_input_translate_virtual_address")
    data.header.vp_index = vp_index
    data.header.control_flags = int(flags)
    data.header.gva_page = gva // PAGE_SIZE
    out_type = "struct hv_output_translate_virtual_address"
    res = hvcall(fd, lib.HVCALL_TRANSLATE_VIRTUAL_ADDRESS, data.to_bytes(), ffi.sizeof(out_type))
    out = ffi.from_buffer(f"{out_type} *", res.output)
    result = TranslateResult(int(out.translation_result.result_code))
    return GvaTranslation(result, int(out.gpa_page) * PAGE_SIZE + gva % PAGE_SIZE)
