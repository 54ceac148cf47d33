"""mshv/x86/cpu.py and its C twin mshv/x86/_cpu.pxd: the code size, the GPR-write rule and the
IN->RAX merge, each written once per language. The rules are checked directly, and both run
loops (the Cython one uses the C twin, the pure-Python one cpu.py) are run over the same
guests: IN of every size into a RAX with other bits set, and MMIO loads of every size that
must leave the same registers as the same loads from RAM (the CPU's result)."""

from __future__ import annotations

import pytest

from mshv import GuestMemory, Mshv, RunLoop, Segment
from mshv._abi import lib
from mshv.intercepts import InterceptHeader
from mshv.testing import assemble, entry_gpa, start_vp
from mshv.x86.cpu import code_bits, in_rax, merge_gpr, replaces_gpr

LMA, PE = lib.HV_X64_EXECUTION_STATE_EFER_LMA, lib.HV_X64_EXECUTION_STATE_CR0_PE
CS_L, CS_D = lib.HV_X64_SEGMENT_ATTR_L_MASK, lib.HV_X64_SEGMENT_ATTR_DB_MASK
RAM_DATA, MMIO_DATA = 0x30000, 0xE0000


@pytest.mark.parametrize(
    ("state", "attributes", "bits"),
    [
        (0, 0, 16), (0, CS_D, 16), (0, CS_L, 16),  # real mode: CS.L/CS.D do not count
        (PE, 0, 16), (PE, CS_D, 32),  # protected mode: CS.D
        (PE | LMA, CS_L, 64), (PE | LMA, CS_D, 32), (PE | LMA, 0, 16),  # long: 64-bit or compatibility
    ],
)  # fmt: skip
def test_code_bits(state: int, attributes: int, bits: int) -> None:
    assert code_bits(state, attributes) == bits
    header = InterceptHeader(0, 0, 0, 0, state, Segment(0, 0xFFFF, 0, attributes), 0, 2)
    assert (header.mode == "long") == (bits == 64)


def test_register_write_rules() -> None:
    old = 0x1122334455667788
    assert in_rax(old, 1, 0xAA) == 0x11223344556677AA
    assert in_rax(old, 2, 0xBBCC) == 0x112233445566BBCC
    assert in_rax(old, 4, 0xDDEEFF00) == 0xDDEEFF00  # zero-extended
    assert merge_gpr(old, 0x99, 1, 8, 64) == 0x1122334455669988  # AH
    assert merge_gpr(old, 0xABCD, 2, 0, 16) == 0x112233445566ABCD
    assert merge_gpr(old, 0x01020304, 4, 0, 64) == 0x01020304  # zero-extended in 64-bit code
    assert merge_gpr(old, 0x01020304, 4, 0, 32) == 0x1122334401020304  # kept outside it
    assert merge_gpr(old, 1 << 70 | 5, 8, 0, 64) == 5
    assert [replaces_gpr(size, bits) for size, bits in ((8, 64), (4, 64), (4, 32), (2, 64), (1, 64))] == [
        True, True, False, False, False,
    ]  # fmt: skip


def _guest(mode: str) -> str:
    """INs of 1, 2, 4 bytes into a RAX holding other bits (results parked in EBX/EBP/R8), then
    loads of 1 (into CL and DH), 2 and 4 bytes (8 in long mode) from the data window."""
    wide = mode == "long"
    preset = "$0x1122334455667788" if wide else "$0x11223344"
    acc, park = ("%rax", ("%r8", "%r9", "%r10")) if wide else ("%eax", ("%ebx", "%ebp", "%esp"))
    mem = {"real": "(%di)", "protected": "(%edi)", "long": "(%rdi)"}[mode]
    lines = [f"mov {preset}, {acc}", "in $0x60, %al", f"mov {acc}, {park[0]}",
             f"mov {preset}, {acc}", "in $0x60, %ax", f"mov {acc}, {park[1]}",
             f"mov {preset}, {acc}", "in $0x60, %eax", f"mov {acc}, {park[2]}",
             f"movb 1{mem}, %cl", f"movb 2{mem}, %dh", f"movw 4{mem}, %si", f"movl 8{mem}, %edx"]  # fmt: skip
    if wide:
        lines += [f"movl 12{mem}, %r11d", f"movq 16{mem}, %r12"]
    return "\n".join(lines + ["hlt"])


def _run(mode: str, native: bool, on_mmio: bool) -> dict[str, int]:
    data = bytearray(range(0x80, 0xA0))
    with Mshv() as hv, GuestMemory(0x40000) as memory, hv.create_partition(lapic=False) as pt:
        pt.map_memory(memory, 0)
        vp = start_vp(pt, memory, assemble(_guest(mode), mode=mode, base=entry_gpa(mode)), mode=mode)
        base = MMIO_DATA if on_mmio else RAM_DATA
        memory.write(RAM_DATA, bytes(data))
        start = {name: 0x0102030405060708 if mode == "long" else 0x05060708 for name in ("rcx", "rdx", "rsi")}
        if mode == "real":
            vp.set_registers({**start, "rdi": 0, "ds": Segment(base, 0xFFFF, base >> 4, 0x93)})
        else:
            vp.set_registers({**start, "rdi": base})
        with RunLoop(vp, native=native) as loop:
            assert loop.native is native
            loop.port_buffer(0x60, data=b"\xaa" + b"\xbb\xcc" + b"\xdd\xee\xff\x99")
            if on_mmio:
                device = loop.mmio_bytes(MMIO_DATA, data)
            assert loop.run().reason == "halt"
            if on_mmio:
                assert device.exits == (6 if mode == "long" else 4)
        names = ["rbx", "rbp", "rsp", "r8", "r9", "r10", "rcx", "rdx", "rsi", "r11", "r12"]
        values = vp.get_registers(names if mode == "long" else names[:3] + names[6:9])
        return {name: int(value) for name, value in values.items()}  # type: ignore[call-overload]


@pytest.mark.parametrize("native", [True, False], ids=["cython", "python"])
@pytest.mark.parametrize("mode", ["real", "protected", "long"])
def test_both_loops_merge_in_and_mmio_loads_alike(mode: str, native: bool) -> None:
    emulated = _run(mode, native, on_mmio=True)
    if mode == "long":
        assert (emulated["r8"], emulated["r9"], emulated["r10"]) == (
            0x11223344556677AA, 0x112233445566CCBB, 0x99FFEEDD)  # fmt: skip
    else:
        assert (emulated["rbx"] & 0xFFFFFFFF, emulated["rbp"] & 0xFFFFFFFF, emulated["rsp"] & 0xFFFFFFFF) == (
            0x112233AA, 0x1122CCBB, 0x99FFEEDD)  # fmt: skip
    cpu = _run(mode, native, on_mmio=False)
    assert emulated == cpu
