"""What the hypervisor hands to the VMM, and the CPUID values it answers by itself.

- :func:`install_intercept` (HvCallInstallIntercept) asks for an intercept
  message on port IO, MSR accesses, CPUID or an exception vector; ``Vp.run()``
  then returns ``IoPortIntercept``, ``MsrIntercept``, ``CpuidIntercept`` or
  ``ExceptionIntercept``.
- :func:`set_cpuid_result` (HvCallRegisterInterceptResult) makes the
  hypervisor answer CPUID with the VMM's values, with no exit; register them
  before the VP first runs. :func:`get_cpuid` (HvCallGetVpCpuidValues) reads
  what a VP's CPUID returns.

On the emulator (KVM cannot trap CPUID), a CPUID intercept is refused with
HV_STATUS_OPERATION_DENIED and CPUID is shaped with :func:`set_cpuid_result`;
MSR intercepts cover the MSRs KVM does not implement itself; exception
intercepts exist for #DB (1) and #BP (3) only, and only where the host's KVM
hands them to user space (refused with OPERATION_DENIED elsewhere, e.g. on a
paravirtual kvm_pvm host). CPUID results must be registered before a VP's
first run: KVM freezes CPUID then (OPERATION_DENIED afterwards).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from mshv._abi import ffi, lib
from mshv._enums import build_enum
from mshv.hvcall import HvcallInput, hvcall
from mshv.intercepts import InterceptAccess

__all__ = [
    "CpuidValues",
    "InterceptAccess",
    "InterceptAccessMask",
    "InterceptType",
    "get_cpuid",
    "install_intercept",
    "set_cpuid_result",
]

InterceptType: Any = build_enum(
    "InterceptType",
    lib,
    "HV_INTERCEPT_TYPE_",
    exclude=("HV_INTERCEPT_TYPE_MAX", "HV_INTERCEPT_TYPE_INVALID", "HV_INTERCEPT_TYPE_RESERVED"),
)
InterceptType.__doc__ = "Intercept types of HvCallInstallIntercept (HV_INTERCEPT_TYPE_*)."


class InterceptAccessMask(enum.IntFlag):
    """Which accesses an installed intercept covers (HV_INTERCEPT_ACCESS_MASK_*): what
    :func:`install_intercept` takes. What one intercept reports is an :class:`InterceptAccess`."""

    READ = lib.HV_INTERCEPT_ACCESS_MASK_READ
    WRITE = lib.HV_INTERCEPT_ACCESS_MASK_WRITE
    EXECUTE = lib.HV_INTERCEPT_ACCESS_MASK_EXECUTE


_RW = InterceptAccessMask.READ | InterceptAccessMask.WRITE
_ALL = _RW | InterceptAccessMask.EXECUTE
# kind -> (intercept type, parameter name and its bit width, default access)
_KINDS: dict[str, tuple[int, str | None, int, InterceptAccessMask]] = {
    "io_port": (lib.HV_INTERCEPT_TYPE_X64_IO_PORT, "port", 16, _RW),
    "msr": (lib.HV_INTERCEPT_TYPE_X64_MSR, None, 0, _RW),
    "msr_index": (lib.HV_INTERCEPT_TYPE_X64_MSR_INDEX, "msr", 32, _RW),
    "cpuid": (lib.HV_INTERCEPT_TYPE_X64_CPUID, "leaf", 32, InterceptAccessMask.EXECUTE),
    "exception": (lib.HV_INTERCEPT_TYPE_EXCEPTION, "vector", 5, InterceptAccessMask.EXECUTE),
}
_PARAM_FIELD = {"port": "io_port", "msr": "msr_index", "leaf": "cpuid_index", "vector": "exception_vector"}
_U32 = (1 << 32) - 1


def _int(name: str, value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= limit:
        raise ValueError(f"{name} must be in 0..{limit:#x}, got {value:#x}")
    return value


def _mask(access: int | InterceptAccess | None, default: InterceptAccessMask) -> int:
    """The install mask ``access`` stands for: a mask (InterceptAccessMask or int), or the bit of one
    InterceptAccess (READ is 0 as an access type, but the READ bit as a mask)."""
    if access is None:
        return int(default)
    if isinstance(access, InterceptAccess):
        return int(access.mask)
    mask = _int("access", access, int(_ALL))
    if not mask:
        raise ValueError("access must name at least one of READ, WRITE, EXECUTE")
    return mask


def install_intercept(
    fd: int, kind: str, *, access: int | InterceptAccess | None = None, **parameter: int
) -> None:
    """Install an intercept for the whole partition (HvCallInstallIntercept).

    Args:
        kind: "io_port" (needs ``port``), "msr" (every MSR), "msr_index"
            (needs ``msr``), "cpuid" (needs ``leaf``) or "exception" (needs ``vector``, 0-31).
        access: an :class:`InterceptAccessMask` (or one :class:`InterceptAccess`,
            meaning its bit); by default READ|WRITE for ports and MSRs, EXECUTE
            for CPUID and exceptions.

    Raises:
        ValueError, TypeError: unknown kind, missing/extra/out-of-range parameter.
        MshvError: the hypervisor refused (e.g. OPERATION_DENIED).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    itype, pname, bits, default_access = _KINDS[kind]
    expected = {pname} if pname else set()
    if set(parameter) != expected:
        raise ValueError(
            f"{kind} intercept takes {sorted(expected) or 'no parameter'}, got {sorted(parameter)}"
        )
    mask = _mask(access, default_access)
    data = HvcallInput("struct hv_input_install_intercept")
    data.header.access_type = mask
    data.header.intercept_type = itype
    if pname:
        setattr(
            data.header.intercept_parameter,
            _PARAM_FIELD[pname],
            _int(pname, parameter[pname], (1 << bits) - 1),
        )
    hvcall(fd, lib.HVCALL_INSTALL_INTERCEPT, data.to_bytes())


class CpuidValues(NamedTuple):
    """What CPUID returns for one leaf/subleaf."""

    eax: int
    ebx: int
    ecx: int
    edx: int

    def __repr__(self) -> str:
        return f"CpuidValues(eax={self.eax:#x}, ebx={self.ebx:#x}, ecx={self.ecx:#x}, edx={self.edx:#x})"


CpuidRegister = int | tuple[int, int] | None


def set_cpuid_result(
    fd: int,
    vp_index: int,
    leaf: int,
    subleaf: int | None = None,
    *,
    eax: CpuidRegister = None,
    ebx: CpuidRegister = None,
    ecx: CpuidRegister = None,
    edx: CpuidRegister = None,
) -> None:
    """Make CPUID ``leaf`` (``subleaf``, or any) answer the given values (HvCallRegisterInterceptResult).

    Each register is None (left as the hypervisor computes it), an int (replaced
    whole) or ``(value, mask)`` (only the mask's bits replaced). ``vp_index``
    may be ``HV_ANY_VP`` for every VP. Register before the VP first runs.
    """
    _int("vp_index", vp_index, _U32)
    data = HvcallInput("struct hv_input_register_intercept_result")
    data.header.vp_index = vp_index
    data.header.intercept_type = lib.HV_INTERCEPT_TYPE_X64_CPUID
    params = data.header.parameters.cpuid
    params.input.eax = _int("leaf", leaf, _U32)
    if subleaf is not None:
        params.input.ecx = _int("subleaf", subleaf, _U32)
        params.input.subleaf_specific = 1
    for name, reg in (("eax", eax), ("ebx", ebx), ("ecx", ecx), ("edx", edx)):
        value, mask = (0, 0) if reg is None else reg if isinstance(reg, tuple) else (reg, _U32)
        setattr(params.result, name, _int(name, value, _U32))
        setattr(params.result, f"{name}_mask", _int(f"{name} mask", mask, _U32))
    hvcall(fd, lib.HVCALL_REGISTER_INTERCEPT_RESULT, data.to_bytes())


def get_cpuid(fd: int, vp_index: int, leaf: int, subleaf: int = 0) -> CpuidValues:
    """What CPUID ``leaf``/``subleaf`` returns on VP ``vp_index``, registered results applied.

    Wraps HvCallGetVpCpuidValues (one rep).
    """
    _int("vp_index", vp_index, _U32)
    data = HvcallInput(
        "struct hv_input_get_vp_cpuid_values", "cpuid_leaf_info", "struct hv_cpuid_leaf_info", 1
    )
    data.header.vp_index = vp_index
    data.header.flags = lib.HV_GET_VP_CPUID_VALUES_APPLY_REGISTERED_VALUES
    data.array[0].eax = _int("leaf", leaf, _U32)
    data.array[0].ecx = _int("subleaf", subleaf, _U32)
    out_type = "struct hv_output_get_vp_cpuid_values"
    res = hvcall(fd, lib.HVCALL_GET_VP_CPUID_VALUES, data.to_bytes(), ffi.sizeof(out_type), reps=1)
    out = ffi.from_buffer(f"{out_type} *", res.output)
    return CpuidValues(int(out.eax), int(out.ebx), int(out.ecx), int(out.edx))
