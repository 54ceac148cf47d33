"""The operands of one non-string instruction that touched MMIO: registers, immediates, the access.

:class:`Operands` reads each operand once (GPRs from the register page when it holds
the intercept's state, the MMIO operand through the device's ``read``), collects
the register, RFLAGS and memory writes, and applies the registers in one
completion with RIP past the instruction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import iced_x86 as iced

from mshv.intercepts import MemoryIntercept
from mshv.regpage import GPRS
from mshv.x86._linear import next_rip
from mshv.x86.cpu import merge_gpr

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = ["Operands", "Registers", "operand_problem"]

_REG_NAMES = {
    v: k.lower() for k, v in vars(iced.Register).items() if isinstance(v, int) and not k.startswith("_")
}
_ON_PAGE = frozenset(GPRS) | {"rflags"}  # what the register page holds (iced's GPR names are the HV names)
_HIGH_BYTE = frozenset((iced.Register.AH, iced.Register.CH, iced.Register.DH, iced.Register.BH))
_IMMEDIATES = frozenset((
    iced.OpKind.IMMEDIATE8, iced.OpKind.IMMEDIATE16, iced.OpKind.IMMEDIATE32, iced.OpKind.IMMEDIATE64,
    iced.OpKind.IMMEDIATE8TO16, iced.OpKind.IMMEDIATE8TO32, iced.OpKind.IMMEDIATE8TO64,
    iced.OpKind.IMMEDIATE32TO64,
))  # fmt: skip
_MEMORY = iced.OpKind.MEMORY
_REGISTER = iced.OpKind.REGISTER


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def operand_problem(instr: Any) -> str | None:
    """Why ``instr``'s operands cannot be emulated here, or None: one memory operand, the
    others general-purpose registers or immediates."""
    kinds = [instr.op_kind(i) for i in range(instr.op_count)]
    if kinds.count(_MEMORY) != 1:
        return "no single explicit memory operand"
    for index, kind in enumerate(kinds):
        if kind == _REGISTER and not iced.RegisterExt.is_gpr(instr.op_register(index)):
            return f"operand {index} is not a general-purpose register"
        if kind not in (_MEMORY, _REGISTER) and kind not in _IMMEDIATES:
            return f"operand {index} is neither a register, an immediate nor memory"
    return None


class Registers:
    """GPRs and RFLAGS read lazily from the VP; writes are collected and applied once.

    They come from the register page when it holds this intercept's state (no
    hypercall); otherwise they are read by hypercall.
    """

    def __init__(self, vp: Vp, bits: int) -> None:
        self.vp = vp
        self.bits = bits
        self.page = vp._completion_page()
        self.values: dict[str, int] = {}
        self.changed: dict[str, int] = {}

    def get(self, name: str) -> int:
        """The 64-bit register ``name`` ("rax", "rflags", ...)."""
        if name not in self.values:
            if self.page is not None and name in _ON_PAGE:
                value = self.page.read(name)
            else:
                read = self.vp.reg_read(name)
                assert isinstance(read, int)
                value = read
            self.values[name] = value
        return self.values[name]

    def set(self, name: str, value: int) -> None:
        """Write the 64-bit register ``name``."""
        self.values[name] = self.changed[name] = value

    def read(self, reg: int) -> int:
        """The value of GPR ``reg`` (an iced Register: RAX, EAX, AX, AH, ...)."""
        info = iced.RegisterInfo(reg)  # type: ignore[arg-type]
        shift = 8 if reg in _HIGH_BYTE else 0
        return (self.get(_REG_NAMES[info.full_register]) >> shift) & _mask(info.size)

    def write(self, reg: int, value: int) -> None:
        """Write ``value`` to GPR ``reg`` as the instruction would (see :func:`merge_gpr`)."""
        info = iced.RegisterInfo(reg)  # type: ignore[arg-type]
        name = _REG_NAMES[info.full_register]
        shift = 8 if reg in _HIGH_BYTE else 0
        self.set(name, merge_gpr(self.get(name), value, info.size, shift, self.bits))


class Operands:
    """Operand values of ``instr`` (at ``intercept``) and the writes it makes.

    Args:
        vp: the VP stopped at the intercept.
        intercept: the MemoryIntercept; its GPA is where the memory operand is.
        instr: the decoded instruction (``operand_problem(instr)`` is None).
        bits: the code size.
        read: ``read(gpa, size) -> value`` of the device model.
        write: ``write(gpa, size, value)`` of the device model.
    """

    def __init__(
        self,
        vp: Vp,
        intercept: MemoryIntercept,
        instr: Any,
        bits: int,
        read: Callable[[int, int], int],
        write: Callable[[int, int, int], None],
    ) -> None:
        self.vp, self.intercept, self.instr = vp, intercept, instr
        self.regs = Registers(vp, bits)
        self.memory_size = iced.MemorySizeExt.size(instr.memory_size)
        self._read, self._write = read, write
        self._loaded: int | None = None

    def size(self, index: int) -> int:
        """The size in bytes of operand ``index`` (an immediate has its destination's size)."""
        kind = self.instr.op_kind(index)
        if kind == _REGISTER:
            return int(iced.RegisterInfo(self.instr.op_register(index)).size)
        if kind == _MEMORY:
            return int(self.memory_size)
        return self.size(0)

    def value(self, index: int) -> int:
        """Operand ``index`` zero-extended from its size (the memory operand is read once)."""
        kind = self.instr.op_kind(index)
        if kind == _REGISTER:
            return self.regs.read(self.instr.op_register(index))
        if kind == _MEMORY:
            if self._loaded is None:
                self._loaded = int(self._read(self.intercept.gpa, self.memory_size)) & _mask(self.memory_size)
            return self._loaded
        return int(self.instr.immediate(index)) & _mask(self.size(index))

    def put(self, index: int, value: int) -> None:
        """Store ``value`` into operand ``index`` (a register, or the device for memory)."""
        if self.instr.op_kind(index) == _MEMORY:
            self._write(self.intercept.gpa, self.memory_size, value & _mask(self.memory_size))
        else:
            self.regs.write(self.instr.op_register(index), value)

    def set_flags(self, flags: int, written: int) -> None:
        """Set the status flags in ``written`` to their bits in ``flags``."""
        self.regs.set("rflags", (self.regs.get("rflags") & ~written) | (flags & written))

    def complete(self) -> None:
        """Apply the register writes and move RIP past the instruction, in one completion."""
        changed = dict(self.regs.changed)
        changed["rip"] = next_rip(self.intercept.header, self.instr.len)
        self.vp.complete_registers(changed)
