"""mshv/x86/stringio.py: INS/OUTS (with and without REP) completed over guest memory, in real,
protected and long mode, by real guests; the guest checks what it got and reports by OUT."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, Partition, Vp
from mshv.testing import assemble, entry_gpa, start_vp
from mshv.x86.stringio import GuestAccessError

ENTRY = 0x10000
REAL_ENTRY = 0x1000  # real mode: IP is 16 bits, CS base 0
CONSOLE = 0xE9


def start(partition: Partition, memory: GuestMemory, asm: str, mode: str) -> Vp:
    return start_vp(partition, memory, assemble(asm, mode=mode, base=entry_gpa(mode)), mode=mode)


def run(vp: Vp, read_port: Callable[[int, int], int] | None = None) -> tuple[bytearray, list[int], int]:
    """Run to HLT: string IO through complete_string_io, OUTs to CONSOLE as bytes, others as values."""
    console, values, strings = bytearray(), [], 0

    def write_port(port: int, size: int, value: int) -> None:
        assert port == CONSOLE
        console.extend(value.to_bytes(size, "little"))

    while True:
        exit_ = vp.run()
        if isinstance(exit_, HaltIntercept):
            return console, values, strings
        assert isinstance(exit_, IoPortIntercept), exit_
        if exit_.string:
            strings += 1
            vp.complete_string_io(exit_, read_port=read_port, write_port=write_port)
        elif exit_.is_write:
            values.append(exit_.value)
            vp.complete_io(exit_)
        else:
            raise AssertionError(f"unexpected IN {exit_}")


def test_rep_outsb_real_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov $msg, %si
        mov $13, %cx
        mov ${CONSOLE:#x}, %dx
        cld
        rep outsb
        mov %si, %ax
        out %ax, $0x10
        mov %cx, %ax
        out %ax, $0x10
        hlt
    msg: .ascii "Hello, world!"
    """, "real")  # fmt: skip
    console, values, strings = run(vp)
    assert bytes(console) == b"Hello, world!"
    msg = REAL_ENTRY + memory.read(REAL_ENTRY, 0x100).index(b"Hello")
    assert values == [msg + 13, 0]
    assert strings == 1


def test_rep_insw_protected_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, """
        mov $0x20000, %edi
        mov $4, %ecx
        mov $0x60, %dx
        cld
        rep insw
        mov %edi, %eax
        out %eax, $0x10           # EDI after: 0x20008
        mov %ecx, %eax
        out %eax, $0x10           # ECX after: 0
        mov $0x20000, %esi
        xor %eax, %eax
        mov $4, %ecx
    1:  movzwl (%esi), %ebx
        add %ebx, %eax
        add $2, %esi
        loop 1b
        out %eax, $0x10           # the sum of what INS stored
        hlt
    """, "protected")  # fmt: skip
    reads = iter([0x1111, 0x2222, 0x3333, 0x14444])  # the last one is cut to the access size

    def read_port(port: int, size: int) -> int:
        assert (port, size) == (0x60, 2)
        return next(reads)

    _, values, strings = run(vp, read_port)
    assert values == [0x20008, 0, 0x1111 + 0x2222 + 0x3333 + 0x4444]
    assert memory.read(0x20000, 8) == bytes.fromhex("1111222233334444")
    assert strings == 1


def test_outsd_without_rep_keeps_rcx(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov $0x20000, %esi
        movl $0x64636261, (%esi)
        mov $7, %ecx
        mov ${CONSOLE:#x}, %dx
        outsl
        outsl
        mov %esi, %eax
        out %eax, $0x10
        mov %ecx, %eax
        out %eax, $0x10
        hlt
    """, "protected")  # fmt: skip
    memory.write(0x20004, b"efgh")
    console, values, strings = run(vp)
    assert bytes(console) == b"abcdefgh"
    assert values == [0x20008, 7]
    assert strings == 2


def test_std_rep_outsb_goes_backwards(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov $msg + 4, %si
        mov $5, %cx
        mov ${CONSOLE:#x}, %dx
        std
        rep outsb
        cld
        mov %si, %ax
        out %ax, $0x10
        hlt
    msg: .ascii "olleh"
    """, "real")  # fmt: skip
    console, values, _ = run(vp)
    assert bytes(console) == b"hello"
    msg = REAL_ENTRY + memory.read(REAL_ENTRY, 0x100).index(b"olleh")
    assert values == [msg - 1]


def test_16_bit_index_wraps_and_keeps_upper_bits(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        movb $0x41, 0xffff
        movb $0x42, 0x0000
        movb $0x43, 0x0001
        mov $0x1230ffff, %esi
        mov $3, %cx
        mov ${CONSOLE:#x}, %dx
        rep outsb
        mov %esi, %eax
        out %eax, $0x10
        hlt
    """, "real")  # fmt: skip
    console, values, _ = run(vp)
    assert bytes(console) == b"ABC"
    assert values == [0x12300002]


def test_long_mode_rep_outsb_across_a_page_boundary(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov $0x200ffa, %rsi
        mov $12, %rcx
        mov ${CONSOLE:#x}, %dx
        rep outsb
        mov %rsi, %rax
        out %eax, $0x10
        hlt
    """, "long")  # fmt: skip
    # linear 0x200000 and 0x201000 become 4 KiB pages mapped out of order: 0x31000, then 0x30000
    pd, pt = 0x4000, 0x5000  # long_mode_registers' PD (tables at 0x2000) and a new PT
    memory.write(pd + 8, (pt | 0x3).to_bytes(8, "little"))
    memory.write(pt, (0x31000 | 0x3).to_bytes(8, "little") + (0x30000 | 0x3).to_bytes(8, "little"))
    memory.write(0x31FFA, b"across")
    memory.write(0x30000, b" pages")
    console, values, _ = run(vp)
    assert bytes(console) == b"across pages"
    assert values == [0x201006]


def test_unmapped_source_raises_and_changes_nothing(partition: Partition, memory: GuestMemory) -> None:
    # The string is mapped when the guest runs OUTS (the emulator's KVM reads it first) and
    # unmapped before the VMM completes it: what mshv shows for a source that is not RAM.
    with GuestMemory(0x1000) as data:
        region = partition.map_memory(data, 0x50000)
        data.write(0x10, b"gone")
        vp = start(partition, memory, f"""
            mov $0x5000, %ax
            mov %ax, %ds                # DS base 0x50000
            mov $0x10, %si
            mov $4, %cx
            mov ${CONSOLE:#x}, %dx
            rep outsb
            hlt
        """, "real")  # fmt: skip
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.string and exit_.rep
        assert (exit_.rcx, exit_.rsi, exit_.ds.base) == (4, 0x10, 0x50000)
        partition.unmap_memory(region)
        calls: list[int] = []
        with pytest.raises(GuestAccessError, match="0x50010") as info:
            vp.complete_string_io(exit_, write_port=lambda port, size, value: calls.append(value))
        assert (info.value.linear, info.value.gpa) == (0x50010, 0x50010)
        assert calls == []
        assert vp.get_registers(["rip", "rcx", "rsi"]) == {"rip": exit_.rip, "rcx": 4, "rsi": 0x10}
        with pytest.raises(TypeError, match="OUTS needs write_port"):
            vp.complete_string_io(exit_, read_port=lambda port, size: 0)
        partition.close()


def test_untranslatable_destination_raises_and_changes_nothing(
    partition: Partition, memory: GuestMemory
) -> None:
    vp = start(partition, memory, """
        mov $0x200ff0, %rdi
        mov $0x20, %rcx
        mov $0x60, %dx
        rep insb
        hlt
    """, "long")  # fmt: skip
    pd, pt = 0x4000, 0x5000
    memory.write(pd + 8, (pt | 0x3).to_bytes(8, "little"))
    memory.write(pt, (0x30000 | 0x3).to_bytes(8, "little") + (0x31000 | 0x3).to_bytes(8, "little"))
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept) and exit_.string and not exit_.is_write
    memory.write(pt + 8, bytes(8))  # the second page is not present any more
    memory.write(0x30FF0, b"\xaa" * 16)
    reads: list[int] = []
    with pytest.raises(GuestAccessError, match="0x201000 does not translate for write"):
        vp.complete_string_io(exit_, read_port=lambda port, size: reads.append(port) or 0x55)
    assert reads == []
    assert memory.read(0x30FF0, 16) == b"\xaa" * 16
    assert vp.get_registers(["rip", "rcx", "rdi"]) == {"rip": exit_.rip, "rcx": 0x20, "rdi": 0x200FF0}
