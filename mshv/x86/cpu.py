"""The x86 CPU facts every emulation path shares: code size, register-write rules, RFLAGS bits.

Each rule is written here once for Python. The Cython run loop uses the C twin in
``mshv/x86/_cpu.pxd`` (same names, same rules); the tests run both loops over the
same guests.
"""

from __future__ import annotations

from mshv._abi import lib

__all__ = [
    "AF",
    "ARITHMETIC_FLAGS",
    "CF",
    "DF",
    "OF",
    "PF",
    "SF",
    "ZF",
    "code_bits",
    "in_rax",
    "merge_gpr",
    "replaces_gpr",
]

# EFLAGS bits (Intel SDM vol. 1, 3.4.3 "EFLAGS Register")
CF = 1 << 0  #: carry
PF = 1 << 2  #: parity of the result's low byte (set: even)
AF = 1 << 4  #: carry or borrow out of bit 3
ZF = 1 << 6  #: zero
SF = 1 << 7  #: sign
DF = 1 << 10  #: direction: string instructions step down
OF = 1 << 11  #: signed overflow
ARITHMETIC_FLAGS = CF | PF | AF | ZF | SF | OF  #: the status flags an ALU instruction writes

_MASK64 = (1 << 64) - 1
_LMA, _PE = lib.HV_X64_EXECUTION_STATE_EFER_LMA, lib.HV_X64_EXECUTION_STATE_CR0_PE
_CS_L, _CS_D = lib.HV_X64_SEGMENT_ATTR_L_MASK, lib.HV_X64_SEGMENT_ATTR_DB_MASK


def code_bits(execution_state: int, cs_attributes: int) -> int:
    """The code size at an intercept: 64, 32 or 16.

    64 in 64-bit mode (EFER.LMA and CS.L), else 32 in protected or compatibility mode
    (CR0.PE) with CS.D set, else 16 (real mode, or a 16-bit code segment). The inputs
    are the intercept header's ``execution_state`` and CS ``attributes``
    (``hv_x64_intercept_message_header``).
    """
    if execution_state & _LMA and cs_attributes & _CS_L:
        return 64
    if execution_state & _PE and cs_attributes & _CS_D:
        return 32
    return 16


def replaces_gpr(size: int, bits: int) -> bool:
    """Whether writing ``size`` bytes to a GPR replaces all 64 bits: a 64-bit write, or a 32-bit
    one in 64-bit code (it zero-extends)."""
    return size == 8 or (size == 4 and bits == 64)


def merge_gpr(old: int, value: int, size: int, shift: int, bits: int) -> int:
    """A 64-bit GPR after an instruction writes ``size`` bytes of ``value`` to it.

    An 8-bit (``shift`` 8: AH/CH/DH/BH) or 16-bit write keeps the other bits; a 32-bit
    write zero-extends in 64-bit code (``bits`` 64) and keeps the upper half otherwise;
    a 64-bit write replaces the register (Intel SDM vol. 1, 3.4.1.1).
    """
    if replaces_gpr(size, bits):
        return value & ((1 << (8 * size)) - 1)
    field = ((1 << (8 * size)) - 1) << shift
    return (old & ~field & _MASK64) | ((value << shift) & field)


def in_rax(rax: int, size: int, value: int) -> int:
    """RAX after an IN of ``size`` bytes read ``value``: AL/AX merged, EAX zero-extended.

    The architectural register write of IN AL/AX/EAX, as KVM's complete_fast_pio_in
    does it: 1 and 2 bytes keep RAX's other bits, 4 bytes clear the upper half.
    """
    if size == 4:
        return value & 0xFFFFFFFF
    mask = 0xFF if size == 1 else 0xFFFF
    return (rax & ~mask & _MASK64) | (value & mask)
