"""Emulate the instruction behind a MemoryIntercept (MMIO), the way a VMM must on mshv.

The hypervisor stops the VP with RIP at the faulting instruction and hands over
its bytes; the VMM decodes it (here with the iced-x86 package), performs the
access against its device model, writes back the registers and RFLAGS it changed
and moves RIP past the instruction. Real, protected and long mode (16/32/64-bit
code, operand- and address-size prefixes) are handled.

Handled, with the memory operand on MMIO (RFLAGS exact per instruction):

- MOV (ModRM and moffs forms, immediates), MOVZX, MOVSX, MOVSXD, MOVNTI, XCHG;
- ADD, ADC, SUB, SBB, AND, OR, XOR with memory as destination or source, CMP, TEST;
- INC, DEC, NEG, NOT, XADD;
- BT, BTS, BTR, BTC with an immediate or a register bit offset;
- MOVS, STOS, LODS, CMPS, SCAS with or without REP/REPE/REPNE (:mod:`mshv.x86._string`).

Anything else raises :class:`UnsupportedInstruction` naming it, before any access.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv.intercepts import MemoryIntercept
from mshv.x86._alu import add, logic, sign_extend, sub
from mshv.x86._operands import Operands, operand_problem
from mshv.x86._string import emulate_string, is_string
from mshv.x86.cpu import ARITHMETIC_FLAGS, CF, code_bits

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = ["MmioRead", "MmioWrite", "UnsupportedInstruction", "emulate_mmio"]

MmioRead = Callable[[int, int], int]  # (gpa, size) -> value
MmioWrite = Callable[[int, int, int], None]  # (gpa, size, value)

_MNEMONICS = {v: k for k, v in vars(iced.Mnemonic).items() if isinstance(v, int) and not k.startswith("_")}
M = iced.Mnemonic


class UnsupportedInstruction(NotImplementedError):
    """The MMIO instruction is not one this emulator handles; the VP was not changed.

    Attributes:
        mnemonic: iced-x86's mnemonic ("BSWAP", ...), or None when the bytes do not decode.
        instruction_bytes: the instruction's bytes (all the intercept gave when undecodable).
        rip: where the instruction is.
    """

    def __init__(self, reason: str, mnemonic: str | None, instruction_bytes: bytes, rip: int) -> None:
        name = mnemonic or "an undecodable instruction"
        super().__init__(
            f"MMIO by {name} ({reason}; bytes {instruction_bytes.hex(' ')}) at RIP {rip:#x} is not emulated"
        )
        self.mnemonic = mnemonic
        self.instruction_bytes = instruction_bytes
        self.rip = rip


def _unsupported(instr: Any, intercept: MemoryIntercept, reason: str) -> UnsupportedInstruction:
    return UnsupportedInstruction(
        reason, _MNEMONICS.get(instr.mnemonic), intercept.instruction_bytes[: instr.len], intercept.header.rip
    )


# -- one function per instruction class; each gets the operands and does the whole instruction ----


def _move(op: Operands) -> None:  # MOV, MOVZX, MOVNTI: the value, zero-extended to the destination
    op.put(0, op.value(1))


def _move_signed(op: Operands) -> None:  # MOVSX, MOVSXD
    op.put(0, sign_extend(op.value(1), op.memory_size))


def _exchange(op: Operands) -> None:  # XCHG: memory is read, then written with the register
    first, second = op.value(0), op.value(1)
    op.put(0, second)
    op.put(1, first)


def _arithmetic(op: Operands) -> None:  # ADD ADC SUB SBB CMP: flags CF PF AF ZF SF OF
    mnemonic = op.instr.mnemonic
    carry = 1 if mnemonic in (M.ADC, M.SBB) and op.regs.get("rflags") & CF else 0
    compute = add if mnemonic in (M.ADD, M.ADC) else sub
    result, flags = compute(op.value(0), op.value(1), carry, op.size(0))
    if mnemonic != M.CMP:
        op.put(0, result)
    op.set_flags(flags, ARITHMETIC_FLAGS)


_LOGIC: dict[int, Callable[[int, int], int]] = {
    M.AND: lambda a, b: a & b,
    M.TEST: lambda a, b: a & b,
    M.OR: lambda a, b: a | b,
    M.XOR: lambda a, b: a ^ b,
}


def _logic(op: Operands) -> None:  # AND OR XOR TEST: CF OF AF clear, PF ZF SF from the result
    result, flags = logic(_LOGIC[op.instr.mnemonic](op.value(0), op.value(1)), op.size(0))
    if op.instr.mnemonic != M.TEST:
        op.put(0, result)
    op.set_flags(flags, ARITHMETIC_FLAGS)


def _unary(op: Operands) -> None:  # INC DEC (CF kept), NEG (CF: operand nonzero), NOT (no flags)
    mnemonic, size, value = op.instr.mnemonic, op.size(0), op.value(0)
    if mnemonic == M.NOT:
        op.put(0, ~value)
        return
    if mnemonic == M.NEG:
        result, flags = sub(0, value, 0, size)
        written = ARITHMETIC_FLAGS
    else:
        result, flags = (add if mnemonic == M.INC else sub)(value, 1, 0, size)
        written = ARITHMETIC_FLAGS & ~CF
    op.put(0, result)
    op.set_flags(flags, written)


def _exchange_add(op: Operands) -> None:  # XADD: memory gets the sum, the register the old value
    old = op.value(0)
    result, flags = add(old, op.value(1), 0, op.size(0))
    op.put(0, result)
    op.put(1, old)
    op.set_flags(flags, ARITHMETIC_FLAGS)


def _bit(op: Operands) -> None:
    """BT BTS BTR BTC: CF is the bit; OF SF AF PF (undefined in the SDM) and ZF are left as they were.

    With a register bit offset the CPU accesses the operand-sized word holding the bit
    (KVM's fetch_bit_operand moves the address the same way), and that word is what the
    intercept's GPA names: the bit within it is the offset modulo the operand width.
    """
    mnemonic, width = op.instr.mnemonic, 8 * op.size(0)
    value = op.value(0)
    bit = op.value(1) % width
    if mnemonic == M.BTS:
        op.put(0, value | (1 << bit))
    elif mnemonic == M.BTR:
        op.put(0, value & ~(1 << bit))
    elif mnemonic == M.BTC:
        op.put(0, value ^ (1 << bit))
    op.set_flags(CF if value >> bit & 1 else 0, CF)


_HANDLERS: dict[int, Callable[[Operands], None]] = {
    M.MOV: _move, M.MOVZX: _move, M.MOVNTI: _move,
    M.MOVSX: _move_signed, M.MOVSXD: _move_signed,
    M.XCHG: _exchange, M.XADD: _exchange_add,
    M.ADD: _arithmetic, M.ADC: _arithmetic, M.SUB: _arithmetic, M.SBB: _arithmetic, M.CMP: _arithmetic,
    M.AND: _logic, M.OR: _logic, M.XOR: _logic, M.TEST: _logic,
    M.INC: _unary, M.DEC: _unary, M.NEG: _unary, M.NOT: _unary,
    M.BT: _bit, M.BTS: _bit, M.BTR: _bit, M.BTC: _bit,
}  # fmt: skip


def emulate_mmio(vp: Vp, intercept: MemoryIntercept, *, read: MmioRead, write: MmioWrite) -> None:
    """Complete ``intercept`` on ``vp``: perform its access through ``read``/``write``, advance RIP.

    The registers and RFLAGS the instruction changes are written back with RIP in one
    completion (the register page when it holds the intercept's state, else one
    hypercall). A string instruction is done whole (REP: up to RCX elements), its RAM
    side through the partition's regions; ``read``/``write`` see each MMIO element.

    Raises:
        UnsupportedInstruction: the instruction is not handled (nothing was accessed or changed).
        GuestAccessError: a string instruction's address does not translate or its RAM side is
            not mapped (nothing was changed; a REPE/REPNE CMPS/SCAS stops at that element).
    """
    bits = code_bits(intercept.header.execution_state, intercept.header.cs.attributes)
    instr = iced.Decoder(bits, intercept.instruction_bytes, ip=intercept.header.rip).decode()
    if instr.code == iced.Code.INVALID:
        raise UnsupportedInstruction(
            "the bytes do not decode", None, intercept.instruction_bytes, intercept.header.rip
        )
    if is_string(instr):
        emulate_string(vp, intercept, instr, read, write)
        return
    handler = _HANDLERS.get(instr.mnemonic)
    if handler is None:
        raise _unsupported(instr, intercept, str(instr))
    problem = operand_problem(instr)
    if problem is not None:
        raise _unsupported(instr, intercept, f"{instr}: {problem}")
    operands = Operands(vp, intercept, instr, bits, read, write)
    handler(operands)
    operands.complete()
