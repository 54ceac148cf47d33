"""Emulate the instruction behind a MemoryIntercept (MMIO), the way a VMM must on mshv.

The hypervisor stops the VP with RIP at the faulting instruction and hands
over its bytes; the VMM decodes it (here with the iced-x86 package), performs
the access against its device model, writes back only the registers that
changed and moves RIP past the instruction.

Supported: MOV between a register or an immediate and memory, MOVZX, MOVSX,
MOVSXD, the read-modify-write forms ADD/SUB/AND/OR/XOR with a memory
destination (their RFLAGS result is not computed), and STOS/MOVS with or without
REP (:mod:`mshv._mmio_string`), in real, protected and long mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv._mmio_string import emulate_string, is_string
from mshv.intercepts import MemoryIntercept
from mshv.regpage import GPRS

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = ["MmioRead", "MmioWrite", "UnsupportedInstruction", "emulate_mmio"]

MmioRead = Callable[[int, int], int]  # (gpa, size) -> value
MmioWrite = Callable[[int, int, int], None]  # (gpa, size, value)

_REG_NAMES = {
    v: k.lower() for k, v in vars(iced.Register).items() if isinstance(v, int) and not k.startswith("_")
}
# The 64-bit GPRs the register page holds (iced's names, lower case, are the HV names)
_PAGE_GPRS = frozenset(GPRS)
_HIGH_BYTE = {iced.Register.AH, iced.Register.CH, iced.Register.DH, iced.Register.BH}
_ALU: dict[int, Callable[[int, int], int]] = {
    iced.Mnemonic.ADD: lambda a, b: a + b,
    iced.Mnemonic.SUB: lambda a, b: a - b,
    iced.Mnemonic.AND: lambda a, b: a & b,
    iced.Mnemonic.OR: lambda a, b: a | b,
    iced.Mnemonic.XOR: lambda a, b: a ^ b,
}
_MEMORY = iced.OpKind.MEMORY
_REGISTER = iced.OpKind.REGISTER


class UnsupportedInstruction(NotImplementedError):
    """The MMIO instruction is not one this emulator handles; the VP was not changed."""


def _bitness(intercept: MemoryIntercept) -> int:
    mode = intercept.header.mode
    if mode == "long":
        return 64
    if mode == "protected" and intercept.header.cs.default_big:
        return 32
    return 16


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


class _Regs:
    """Registers read lazily from the VP; writes are collected and applied once.

    GPRs come from the register page when it holds this intercept's state (no
    hypercall); anything else, or a VP without a valid page, is read by hypercall.
    """

    def __init__(self, vp: Vp) -> None:
        self.vp = vp
        self.page = vp._completion_page()
        self.values: dict[str, int] = {}
        self.changed: dict[str, int] = {}

    def _full(self, reg: int) -> tuple[str, int, int]:
        info = iced.RegisterInfo(reg)  # type: ignore[arg-type]
        shift = 8 if reg in _HIGH_BYTE else 0
        return _REG_NAMES[info.full_register], info.size, shift

    def read(self, reg: int) -> int:
        name, size, shift = self._full(reg)
        if name not in self.values:
            if self.page is not None and name in _PAGE_GPRS:
                value = self.page.read(name)
            else:
                read = self.vp.reg_read(name)
                assert isinstance(read, int)
                value = read
            self.values[name] = value
        return (self.values[name] >> shift) & _mask(size)

    def write(self, reg: int, value: int, bitness: int) -> None:
        name, size, shift = self._full(reg)
        full = self.read(iced.RegisterInfo(reg).full_register)  # type: ignore[arg-type]
        if size == 4 and bitness == 64:
            new = value & _mask(4)  # a 32-bit write zero-extends in long mode
        else:
            field = _mask(size) << shift
            new = (full & ~field & _mask(8)) | ((value & _mask(size)) << shift)
        self.values[name] = new
        self.changed[name] = new


def _operand_value(instr: Any, index: int, regs: _Regs) -> int:
    kind = instr.op_kind(index)
    if kind == _REGISTER:
        return regs.read(instr.op_register(index))
    return int(instr.immediate(index))


def _sign_extend(value: int, size: int) -> int:
    bit = 1 << (8 * size - 1)
    return (value & (bit - 1)) - (value & bit)


def emulate_mmio(vp: Vp, intercept: MemoryIntercept, *, read: MmioRead, write: MmioWrite) -> None:
    """Complete ``intercept`` on ``vp``: perform its access through ``read``/``write``, advance RIP.

    A STOS/MOVS is done whole (REP: RCX elements), its RAM side through the partition's
    regions; ``read``/``write`` see each MMIO element.

    Raises:
        UnsupportedInstruction: the instruction is not handled (nothing was changed).
        GuestAccessError: a STOS/MOVS address does not translate or its RAM side is not
            mapped (nothing was changed).
    """
    bitness = _bitness(intercept)
    decoder = iced.Decoder(bitness, intercept.instruction_bytes, ip=intercept.header.rip)
    instr = decoder.decode()
    if instr.code == iced.Code.INVALID:
        raise UnsupportedInstruction(f"cannot decode {intercept.instruction_bytes.hex()}")
    if is_string(instr):
        emulate_string(vp, intercept, instr, read, write)
        return
    size = iced.MemorySizeExt.size(instr.memory_size)
    gpa = intercept.gpa
    regs = _Regs(vp)
    mnemonic = instr.mnemonic
    if mnemonic == iced.Mnemonic.MOV and instr.op0_kind == _MEMORY:
        write(gpa, size, _operand_value(instr, 1, regs) & _mask(size))
    elif mnemonic == iced.Mnemonic.MOV and instr.op1_kind == _MEMORY:
        regs.write(instr.op0_register, read(gpa, size), bitness)
    elif mnemonic == iced.Mnemonic.MOVZX and instr.op1_kind == _MEMORY:
        regs.write(instr.op0_register, read(gpa, size), bitness)
    elif mnemonic in (iced.Mnemonic.MOVSX, iced.Mnemonic.MOVSXD) and instr.op1_kind == _MEMORY:
        regs.write(instr.op0_register, _sign_extend(read(gpa, size), size), bitness)
    elif mnemonic in _ALU and instr.op0_kind == _MEMORY:
        operand = _operand_value(instr, 1, regs)
        write(gpa, size, _ALU[mnemonic](read(gpa, size), operand) & _mask(size))
    else:
        raise UnsupportedInstruction(f"MMIO by {instr} is not emulated")
    regs.changed["rip"] = intercept.header.rip + instr.len
    vp.complete_registers(regs.changed)
