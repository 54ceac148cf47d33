"""Helpers for scripts and tests: assemble guest code, get a partition with one VP at it.

``assemble`` runs GNU ``as``/``ld``/``objcopy`` (binutils must be installed).

Example:
    >>> from mshv.testing import assemble, partition_with_one_vp
    >>> code = assemble("mov $0x42, %al; out %al, $0x10; hlt", mode="real")
    >>> with partition_with_one_vp(code, mode="real") as (pt, vp, mem):
    ...     exit = vp.run()
    ...     (exit.port, exit.value)
    (16, 66)
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mshv.device import Mshv
from mshv.memory import GuestMemory
from mshv.partition import Partition
from mshv.registers import Segment, Table
from mshv.vp import Vp

__all__ = [
    "CODE_GPA",
    "PAGED_CODE_GPA",
    "assemble",
    "entry_gpa",
    "start_vp",
    "long_mode_registers",
    "partition_with_one_vp",
    "protected_mode_registers",
    "real_mode_registers",
    "segment_descriptor",
]

CODE_GPA = 0x1000  # real mode code: below 64 KiB, so CS base 0 reaches it
PAGED_CODE_GPA = 0x10000  # protected/long mode code: above the GDT (0x500) and page tables (0x2000)
_MODES = {"real": ".code16", "protected": ".code32", "long": ".code64"}


def assemble(source: str, *, mode: str = "real", base: int = CODE_GPA) -> bytes:
    """Assemble AT&T-syntax ``source`` into a flat binary linked to run at ``base``.

    Args:
        mode: "real" (16-bit), "protected" (32-bit) or "long" (64-bit).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
    with tempfile.TemporaryDirectory(prefix="mshv-asm-") as tmp:
        src, obj, elf, out = (Path(tmp) / n for n in ("g.S", "g.o", "g.elf", "g.bin"))
        src.write_text(f"{_MODES[mode]}\n.globl _start\n_start:\n{source}\n")
        for cmd in (
            ["as", "--64", "-o", str(obj), str(src)],
            ["ld", "-m", "elf_x86_64", "-Ttext", hex(base), "-e", "_start", "-o", str(elf), str(obj)],
            ["objcopy", "-O", "binary", "-j", ".text", "-j", ".data", str(elf), str(out)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()}")
        return out.read_bytes()


def real_mode_registers(rip: int = CODE_GPA, rsp: int = 0x8000) -> dict[str, object]:
    """Registers for a 16-bit real-mode VP running at ``rip`` with every segment at 0."""
    data = Segment(base=0, limit=0xFFFF, selector=0, attributes=0x93)
    return {
        "cs": Segment(base=0, limit=0xFFFF, selector=0, attributes=0x9B),
        "ds": data, "es": data, "ss": data, "fs": data, "gs": data,
        "rip": rip, "rsp": rsp, "rflags": 0x2,
        "idtr": Table(base=0, limit=0x3FF),
    }  # fmt: skip


def long_mode_registers(
    mem: GuestMemory, entry: int, *, page_tables: int = 0x2000, rsp: int = 0x8000
) -> dict[str, object]:
    """Write identity-mapped page tables for the first 1 GiB (2 MiB pages) into ``mem`` at
    ``page_tables`` (3 pages: PML4, PDPT, PD) and return the registers of a 64-bit VP at ``entry``.
    """
    pml4, pdpt, pd = page_tables, page_tables + 0x1000, page_tables + 0x2000
    present_rw = 0x3
    mem.write(pml4, (pdpt | present_rw).to_bytes(8, "little"))
    mem.write(pdpt, (pd | present_rw).to_bytes(8, "little"))
    large = 0x80  # PS: a 2 MiB page
    mem.write(pd, b"".join(((i << 21) | present_rw | large).to_bytes(8, "little") for i in range(512)))
    data = Segment.flat(0x10, code=False)
    return {
        "cr3": pml4,
        "cr4": 1 << 5,  # PAE
        "efer": (1 << 8) | (1 << 10),  # LME | LMA
        "cr0": (1 << 0) | (1 << 4) | (1 << 31),  # PE | ET | PG
        "cs": Segment.flat(0x8, code=True, long_mode=True),
        "ds": data, "es": data, "ss": data, "fs": data, "gs": data,
        "rip": entry, "rsp": rsp, "rflags": 0x2,
    }  # fmt: skip


def segment_descriptor(seg: Segment) -> bytes:
    """The 8-byte GDT descriptor of ``seg`` (the attribute word is the descriptor's bits 40-55)."""
    limit = seg.limit >> 12 if seg.attributes & (1 << 15) else seg.limit  # G: 4 KiB units
    value = (
        (limit & 0xFFFF)
        | ((seg.base & 0xFFFFFF) << 16)
        | ((seg.attributes & 0xF0FF) << 40)
        | (((limit >> 16) & 0xF) << 48)
        | ((seg.base >> 24) << 56)
    )
    return value.to_bytes(8, "little")


def protected_mode_registers(
    mem: GuestMemory, entry: int, *, gdt: int = 0x500, rsp: int = 0x8000
) -> dict[str, object]:
    """Write a flat GDT (null, code 0x08, data 0x10) into ``mem`` at ``gdt`` and return the
    registers of a 32-bit protected-mode VP (paging off) at ``entry``; interrupts and
    exceptions can be delivered through an IDT the guest loads.
    """
    code, data = Segment.flat(0x8, code=True), Segment.flat(0x10, code=False)
    mem.write(gdt, bytes(8) + segment_descriptor(code) + segment_descriptor(data))
    return {
        "gdtr": Table(base=gdt, limit=3 * 8 - 1),
        "cr0": (1 << 0) | (1 << 4),  # PE | ET
        "cs": code,
        "ds": data, "es": data, "ss": data, "fs": data, "gs": data,
        "rip": entry, "rsp": rsp, "rflags": 0x2,
    }  # fmt: skip


def entry_gpa(mode: str) -> int:
    """Where :func:`start_vp` puts a guest's code in ``mode`` (link it there with ``assemble``)."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
    return CODE_GPA if mode == "real" else PAGED_CODE_GPA


def start_vp(partition: Partition, memory: GuestMemory, code: bytes, *, mode: str, index: int = 0) -> Vp:
    """Copy ``code`` to :func:`entry_gpa` in ``memory`` (mapped at GPA 0), create VP ``index``
    and set it up to run the code in ``mode``: flat segments, and for "protected" a GDT at 0x500,
    for "long" identity-mapped page tables at 0x2000 (memory must cover 0x10000 + the code).
    """
    entry = entry_gpa(mode)
    memory.write(entry, code)
    vp = partition.create_vp(index)
    if mode == "real":
        regs = real_mode_registers(rip=entry)
    elif mode == "protected":
        regs = protected_mode_registers(memory, entry)
    else:
        regs = long_mode_registers(memory, entry)
    vp.set_registers(regs)  # type: ignore[arg-type]
    return vp


@contextlib.contextmanager
def partition_with_one_vp(
    code: bytes,
    *,
    mode: str = "real",
    memory_size: int | None = None,
    lapic: bool = True,
) -> Iterator[tuple[Partition, Vp, GuestMemory]]:
    """A partition with memory at GPA 0 and VP 0 ready to run ``code`` in ``mode``.

    ``code`` must be linked at :func:`entry_gpa` (``assemble(..., mode=mode, base=entry_gpa(mode))``;
    ``assemble``'s default base is right for real mode). The memory is 64 KiB in real mode and
    256 KiB otherwise unless ``memory_size`` says.

    ``lapic`` defaults to True, as in :meth:`Mshv.create_partition` (and rust-vmm's
    ``Mshv::create_vm``): the hypervisor emulates the VP's local APIC, and a HLT waits inside
    it for an interrupt. Pass ``lapic=False`` for a guest that ends on HLT: without a LAPIC,
    HLT comes back from ``run()`` as a :class:`~mshv.HaltIntercept`.
    """
    size = memory_size or (0x10000 if mode == "real" else 0x40000)
    with Mshv() as hv, GuestMemory(size) as mem:
        pt = hv.create_partition(lapic=lapic)
        try:
            pt.map_memory(mem, 0)
            vp = start_vp(pt, mem, code, mode=mode)
            yield pt, vp, mem
        finally:
            pt.close()
