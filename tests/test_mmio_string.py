"""mshv/x86/_string.py through mshv.x86.mmio.emulate_mmio: STOS and MOVS (REP or not) on MMIO, by
real guests in real, protected and long mode; the guest reports what it sees by OUT."""

from __future__ import annotations

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, MemoryIntercept, Partition, Vp
from mshv.testing import assemble, entry_gpa, start_vp
from mshv.x86.mmio import emulate_mmio

ENTRY = 0x10000
REAL_ENTRY = 0x1000
MMIO = 0xE0000  # below 1 MiB (reachable in real mode) and above the 0x40000 bytes of RAM


def start(partition: Partition, memory: GuestMemory, asm: str, mode: str) -> Vp:
    return start_vp(partition, memory, assemble(asm, mode=mode, base=entry_gpa(mode)), mode=mode)


class Device:
    """MMIO that logs writes and reads back gpa-derived bytes (byte k of gpa g is (g + k) & 0xFF)."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self.intercepts = 0

    def read(self, gpa: int, size: int) -> int:
        self.reads.append((gpa, size))
        return int.from_bytes(bytes((gpa + k) & 0xFF for k in range(size)), "little")

    def write(self, gpa: int, size: int, value: int) -> None:
        self.writes.append((gpa, size, value))


def run(vp: Vp, device: Device) -> list[int]:
    """Run to HLT: MMIO through emulate_mmio, OUT values collected."""
    outs: list[int] = []
    while True:
        exit_ = vp.run()
        if isinstance(exit_, HaltIntercept):
            return outs
        if isinstance(exit_, MemoryIntercept):
            device.intercepts += 1
            emulate_mmio(vp, exit_, read=device.read, write=device.write)
        else:
            assert isinstance(exit_, IoPortIntercept) and exit_.is_write and not exit_.string, exit_
            outs.append(exit_.value)
            vp.complete_io(exit_)


def test_rep_stosb_real_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov ${MMIO >> 4:#x}, %ax
        mov %ax, %es
        mov $0x10, %di
        mov $5, %cx
        mov $0x5a, %al
        cld
        rep stosb
        mov %di, %ax
        out %ax, $0x10
        mov %cx, %ax
        out %ax, $0x10
        hlt
    """, "real")  # fmt: skip
    device = Device()
    assert run(vp, device) == [0x15, 0]
    assert device.writes == [(MMIO + 0x10 + i, 1, 0x5A) for i in range(5)]
    assert device.intercepts == 1


def test_rep_stosd_protected_mode_backwards_then_plain_stosw(
    partition: Partition, memory: GuestMemory
) -> None:
    vp = start(partition, memory, f"""
        mov ${MMIO + 0xC:#x}, %edi
        mov $4, %ecx
        mov $0xcafe0001, %eax
        std
        rep stosl
        cld
        mov %edi, %eax
        out %eax, $0x10
        mov $0x7777, %ax
        mov $0x99, %ecx
        stosw                     # no REP: one element, ECX kept
        mov %edi, %eax
        out %eax, $0x10
        mov %ecx, %eax
        out %eax, $0x10
        hlt
    """, "protected")  # fmt: skip
    device = Device()
    assert run(vp, device) == [MMIO - 4, MMIO - 2, 0x99]
    assert device.writes == [(MMIO + 0xC - 4 * i, 4, 0xCAFE0001) for i in range(4)] + [(MMIO - 4, 2, 0x7777)]
    assert device.intercepts == 2


def test_rep_movsb_mmio_to_ram(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov ${MMIO + 0x40:#x}, %esi
        mov $0x20000, %edi
        mov $8, %ecx
        rep movsb
        mov %esi, %eax
        out %eax, $0x10
        mov %edi, %eax
        out %eax, $0x10
        mov 0x20000, %eax         # the guest reads back what the copy stored
        out %eax, $0x10
        mov 0x20004, %eax
        out %eax, $0x10
        hlt
    """, "protected")  # fmt: skip
    device = Device()
    outs = run(vp, device)
    assert memory.read(0x20000, 8) == bytes(range(0x40, 0x48))
    assert outs == [MMIO + 0x48, 0x20008, 0x43424140, 0x47464544]
    assert device.reads == [(MMIO + 0x40 + i, 1) for i in range(8)]
    assert device.writes == []


def test_movsb_ram_to_mmio_real_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov ${MMIO >> 4:#x}, %ax
        mov %ax, %es
        mov $msg, %si
        xor %di, %di
        movsb                     # one byte, then the rest with REP
        mov $3, %cx
        rep movsb
        mov %si, %ax
        out %ax, $0x10
        mov %di, %ax
        out %ax, $0x10
        hlt
    msg: .ascii "mmio"
    """, "real")  # fmt: skip
    device = Device()
    outs = run(vp, device)
    msg = REAL_ENTRY + memory.read(REAL_ENTRY, 0x100).index(b"mmio")
    assert outs == [msg + 4, 4]
    assert device.writes == [(MMIO + i, 1, b) for i, b in enumerate(b"mmio")]
    assert device.intercepts == 2


def test_rep_movsq_ram_to_mmio_long_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = start(partition, memory, f"""
        mov $0x20000, %rsi
        mov ${MMIO:#x}, %rdi
        mov $3, %rcx
        rep movsq
        mov %rsi, %rax
        out %eax, $0x10
        mov %rcx, %rax
        out %eax, $0x10
        hlt
    """, "long")  # fmt: skip
    values = [0x1122334455667788, 0x99AABBCCDDEEFF00, 0x0123456789ABCDEF]
    memory.write(0x20000, b"".join(v.to_bytes(8, "little") for v in values))
    device = Device()
    assert run(vp, device) == [0x20018, 0]
    assert device.writes == [(MMIO + 8 * i, 8, v) for i, v in enumerate(values)]
