"""Two-byte (0F xx) instructions on MMIO: the intercept the emulator reports names the whole
instruction, prefixes included, and mshv.x86.mmio.emulate_mmio completes it.

KVM completes an MMIO write before the exit and leaves RIP past the instruction, so the
emulator finds where the instruction began (emulator/x86decode.c). A REX.W prefix must not be
dropped there: 48 0F C3 0B (MOVNTI [rbx], rcx) is not 0F C3 0B (MOVNTI [rbx], ecx). Reads and
read-modify-writes (XADD, BTS, BT, group 8 with imm8) exit before the access, with RIP at the
instruction, and are checked here too.
"""

from __future__ import annotations

import pytest

from mshv import GuestMemory, HaltIntercept, MemoryIntercept, Mshv
from mshv.testing import assemble, entry_gpa, start_vp
from mshv.x86.mmio import UnsupportedInstruction, emulate_mmio

MMIO = 0xE0000  # no RAM there (RAM is 0..0x40000); below 1 MiB
VALUE = 0x1122334455667788
LOW = VALUE & 0xFFFFFFFF


class Device:
    """Eight bytes of MMIO at MMIO, with every access logged as (kind, gpa, size, value)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.log: list[tuple[str, int, int, int]] = []

    def read(self, gpa: int, size: int) -> int:
        value = (self.value >> 8 * (gpa - MMIO)) & ((1 << 8 * size) - 1)
        self.log.append(("read", gpa, size, value))
        return value

    def write(self, gpa: int, size: int, value: int) -> None:
        shift, mask = 8 * (gpa - MMIO), (1 << 8 * size) - 1
        self.value = (self.value & ~(mask << shift)) | (value << shift)
        self.log.append(("write", gpa, size, value))


def run_on_mmio(source: str, mode: str, device: Device) -> tuple[list[MemoryIntercept], dict[str, int]]:
    """Run ``source`` (then HLT) with its memory operand on ``device``; the intercepts and the
    registers at the HLT."""
    code = assemble(f"{source}\nhlt", mode=mode, base=entry_gpa(mode))
    intercepts: list[MemoryIntercept] = []
    with GuestMemory(0x40000) as memory, Mshv() as hv, hv.create_partition(lapic=False) as pt:
        pt.map_memory(memory, 0)
        vp = start_vp(pt, memory, code, mode=mode)
        while not isinstance(exit_ := vp.run(), HaltIntercept):
            assert isinstance(exit_, MemoryIntercept), exit_
            intercepts.append(exit_)
            emulate_mmio(vp, exit_, read=device.read, write=device.write)
            assert len(intercepts) < 8, intercepts
        regs = {name: vp.reg_read(name) for name in ("rax", "rcx", "rdx", "rflags")}
    return intercepts, regs


@pytest.mark.parametrize(
    ("mode", "source", "encoding", "written"),
    [
        ("long", "movnti %rcx, (%rbx)", "48 0f c3 0b", (8, VALUE)),
        ("long", "movnti %ecx, (%rbx)", "0f c3 0b", (4, LOW)),
        ("long", "movnti %rcx, 8(%rbx)", "48 0f c3 4b 08", (8, VALUE)),
        ("long", "movnti %r9, (%rbx)", "4c 0f c3 0b", (8, VALUE)),
        ("protected", "movnti %ecx, (%ebx)", "0f c3 0b", (4, LOW)),
    ],
)
def test_movnti_store_is_reported_whole(mode, source, encoding, written):
    """MOVNTI to MMIO: the intercept's instruction is MOVNTI's full encoding (length and
    bytes: REX.W kept), and the device sees one write of the operand's size."""
    if mode == "long":
        setup = f"mov ${MMIO:#x}, %ebx\nmov ${VALUE:#x}, %rcx\nmov %rcx, %r9\n"
    else:
        setup = f"mov ${MMIO:#x}, %ebx\nmov ${VALUE & 0xFFFFFFFF:#x}, %ecx\n"
    device = Device(0)
    intercepts, _ = run_on_mmio(setup + source, mode, device)
    assert len(intercepts) == 1
    (intercept,) = intercepts
    length = len(bytes.fromhex(encoding))
    assert intercept.is_write
    assert intercept.header.instruction_length == length
    assert intercept.instruction_bytes[:length] == bytes.fromhex(encoding)
    size, value = written
    offset = 8 if "8(" in source else 0
    assert device.log == [("write", MMIO + offset, size, value)]


@pytest.mark.parametrize(
    ("source", "encoding", "device_after", "rcx_after", "cf"),
    [
        # XADD: the device gets the sum, RCX the old value (a 32-bit one zero-extended)
        (f"mov ${VALUE:#x}, %rcx\nxadd %rcx, (%rbx)", "48 0f c1 0b", VALUE + 5, 5, 0),
        (f"mov ${VALUE:#x}, %rcx\nxadd %ecx, (%rbx)", "0f c1 0b", LOW + 5, 5, 0),
        # BTS with a register bit offset: bit 40 of the quadword
        ("mov $40, %ecx\nbts %rcx, (%rbx)", "48 0f ab 0b", 5 | 1 << 40, 40, 0),
        # group 8 (0F BA) with imm8: BTS bit 33; BT bit 2 (CF = 1, nothing written)
        ("mov $7, %ecx\nbtsq $33, (%rbx)", "48 0f ba 2b 21", 5 | 1 << 33, 7, 0),
        ("mov $7, %ecx\nbtq $2, (%rbx)", "48 0f ba 23 02", 5, 7, 1),
    ],
)
def test_read_modify_write_two_byte(source, encoding, device_after, rcx_after, cf):
    """XADD, BTS and group 8 (0F BA with imm8) with REX.W on MMIO in long mode: the intercept
    (RIP at the instruction) has the full encoding, and emulate_mmio leaves the device, RCX
    and CF as the CPU would."""
    device = Device(5)
    intercepts, regs = run_on_mmio(f"mov ${MMIO:#x}, %ebx\n{source}", "long", device)
    (intercept,) = intercepts
    length = len(bytes.fromhex(encoding))
    assert intercept.header.instruction_length == length
    assert intercept.instruction_bytes[:length] == bytes.fromhex(encoding)
    assert (device.value, regs["rcx"], regs["rflags"] & 1) == (device_after, rcx_after, cf)


@pytest.mark.parametrize(
    ("source", "encoding"),
    [("cmpxchg %rcx, (%rbx)", "48 0f b1 0b"), ("lock cmpxchgb %cl, (%rbx)", "f0 0f b0 0b")],
)
def test_cmpxchg_is_reported_whole(source, encoding):
    """CMPXCHG (0F B0/B1) on MMIO: the intercept names the whole instruction, prefixes
    included; emulate_mmio does not emulate it and says so by name, having touched nothing."""
    code = assemble(f"mov ${MMIO:#x}, %ebx\n{source}\nhlt", mode="long", base=entry_gpa("long"))
    device = Device(5)
    with GuestMemory(0x40000) as memory, Mshv() as hv, hv.create_partition(lapic=False) as pt:
        pt.map_memory(memory, 0)
        vp = start_vp(pt, memory, code, mode="long")
        intercept = vp.run()
        assert isinstance(intercept, MemoryIntercept), intercept
        length = len(bytes.fromhex(encoding))
        assert intercept.header.instruction_length == length
        assert intercept.instruction_bytes[:length] == bytes.fromhex(encoding)
        with pytest.raises(UnsupportedInstruction) as info:
            emulate_mmio(vp, intercept, read=device.read, write=device.write)
        assert info.value.mnemonic == "CMPXCHG"
    assert device.log == []
