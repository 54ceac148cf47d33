"""mshv.snapshot: a guest changes every register class, MSRs and memory; restore brings back the
snapshot's values, class by class, restore after restore; the file format; refusals."""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import random
import re
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from mshv import (
    GuestMemory,
    IoPortIntercept,
    Mshv,
    MshvError,
    Partition,
    RunLoop,
    Segment,
    Snapshot,
    SnapshotFormatError,
    SnapshotMismatch,
    Table,
    UnrecoverableException,
    Vp,
    _abi_nocc,
)
from mshv import limits as limits_mod
from mshv import snapshot as snapshot_mod
from mshv._abi import ffi as compiled_ffi
from mshv._abi import lib
from mshv.dirty import PageAccess
from mshv.registers import RegisterValue
from mshv.regpage import PACKED
from mshv.runloop import native_available
from mshv.snapshot_registers import REGISTER_CLASSES, PartitionFeatures, registers_for
from mshv.state import LapicState
from mshv.testing import (
    PAGED_CODE_GPA,
    assemble,
    entry_gpa,
    long_mode_registers,
    partition_with_one_vp,
    protected_mode_registers,
    segment_descriptor,
)

MEMORY_SIZE = 0x400000  # 4 MiB at GPA 0
PDPT, LAPIC_PD, PML4_B, GDT, IDT = 0x3000, 0x5000, 0x6000, 0x7000, 0x7800
FXSAVE_AREA, DATA, COUNTER = 0x32000, 0x100000, 0x20000
DATA_PAGES = 64
LAPIC_GPA = 0xFEE00000
# Synthetic features a partition grants (SYNTHETIC_PROC_FEATURES bits), so every class exists.
SYNTHETIC = sum(
    1 << getattr(lib, f"HV_SYNTHETIC_PROC_FEATURE_{name}_BIT")
    for name in (
        "HYPERVISOR_PRESENT", "HV1", "ACCESS_PARTITION_REFERENCE_COUNTER", "ACCESS_SYNIC_REGS",
        "ACCESS_SYNTHETIC_TIMER_REGS", "ACCESS_INTR_CTRL_REGS", "ACCESS_HYPERCALL_REGS", "ACCESS_VP_INDEX",
        "ACCESS_PARTITION_REFERENCE_TSC",
    )
)  # fmt: skip
FPU = (
    "fp_control_status",
    "xmm_control_status",
    *(f"fp_mmx{i}" for i in range(8)),
    *(f"xmm{i}" for i in range(16)),
)

# (MSR, value) the guest writes; each is a register of the "msrs" class.
GUEST_MSRS = {
    "pat": (0x277, 0x0007010600070106),
    "sysenter_cs": (0x174, 0x10),
    "sysenter_esp": (0x175, 0x1234000),
    "sysenter_eip": (0x176, 0x5678000),
    "star": (0xC0000081, 0x0023001000000000),
    "lstar": (0xC0000082, 0x4000),
    "cstar": (0xC0000083, 0x5000),
    "sfmask": (0xC0000084, 0x4700),
    "kernel_gs_base": (0xC0000102, 0x12345000),
    "msr_mtrr_def_type": (0x2FF, 0xC06),
    "msr_mtrr_phys_base0": (0x200, 0x100006),
    "msr_mtrr_phys_mask0": (0x201, 0xFFFFF00800),
    "msr_mtrr_fix64k00000": (0x250, 0x0606060606060606),
    "msr_mtrr_fix4kf8000": (0x26F, 0x0505050505050505),
    "tsc_adjust": (0x3B, 0x100000),
}
# (MSR, value) of the synthetic registers the guest writes when the partition answers them.
GUEST_SYNTHETIC_MSRS = {
    "guest_os_id": (0x40000000, 0x8100000000001234),
    "hypercall": (0x40000001, 0x3F001),
    "reference_tsc": (0x40000021, 0x3B001),
    "vp_assist_page": (0x40000073, 0x3C001),
    "scontrol": (0x40000080, 1),
    "siefp": (0x40000082, 0x3D001),
    "simp": (0x40000083, 0x3E001),
    "sint0": (0x40000090, 0x50),
    "stimer0_config": (0x400000B0, 0x20003),  # enabled, periodic, SINT2 (a SINT of 0 disables it)
    "stimer0_count": (0x400000B1, 10_000_000),
}
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
GPR_VALUES = {name: 0x1111111111111111 * (i + 1) & (1 << 64) - 1 for i, name in enumerate(GPRS)}
# The architectural registers the guest changes (the rest of the class it leaves alone).
CHANGED = (
    *GPRS, "rsp", "rip", "rflags", "ds", "es", "fs", "gs", "ss", "gdtr", "idtr",
    "cr0", "cr2", "cr3", "cr4", "cr8", "xfem", "dr0", "dr1", "dr2", "dr3", "dr6", "dr7", "efer",
)  # fmt: skip


def _wrmsr(msr: int, value: int) -> str:
    return f"mov ${msr:#x}, %ecx; mov ${value & 0xFFFFFFFF:#x}, %eax; mov ${value >> 32:#x}, %edx; wrmsr\n"


def guest_source(synthetic: bool) -> str:
    """Exit 0x10 (the snapshot point), then change every class and memory, then exit 0x11.
    An OUT to 0x12 follows: reaching it means a stale completion moved RIP past 0x11."""
    msrs = "".join(_wrmsr(msr, value) for msr, value in GUEST_MSRS.values())
    synth = "".join(_wrmsr(msr, value) for msr, value in GUEST_SYNTHETIC_MSRS.values()) if synthetic else ""
    gprs = "".join(f"mov ${value:#x}, %{name}\n" for name, value in GPR_VALUES.items())
    return f"""
    out %al, $0x10
    lgdt gdt_desc(%rip)
    lidt idt_desc(%rip)
    mov $0x18, %ax
    mov %ax, %ds; mov %ax, %es; mov %ax, %fs; mov %ax, %gs; mov %ax, %ss
    mov %cr0, %rax; or $((1 << 16) | (1 << 18)), %rax; mov %rax, %cr0
    mov $0xdead000, %rax; mov %rax, %cr2
    mov ${PML4_B:#x}, %rax; mov %rax, %cr3
    mov %cr4, %rax; or $4, %rax; mov %rax, %cr4
    mov $5, %eax; mov %rax, %cr8
    xor %ecx, %ecx; xor %edx, %edx; mov $3, %eax; xsetbv
    mov $0x1000, %rax; mov %rax, %db0
    mov $0x2000, %rax; mov %rax, %db1
    mov $0x3000, %rax; mov %rax, %db2
    mov $0x4000, %rax; mov %rax, %db3
    mov $0xffff0ff1, %rax; mov %rax, %db6
    mov $0x700, %rax; mov %rax, %db7
    mov $0xc0000080, %ecx; rdmsr; or $1, %eax; wrmsr
    {msrs}
    {synth}
    fxrstor {FXSAVE_AREA:#x}
    mov ${LAPIC_GPA:#x}, %rbx
    movl $0x1ff, 0xf0(%rbx)
    movl $0x10040, 0x320(%rbx)
    movl $0xb, 0x3e0(%rbx)
    movl $0x10000000, 0x380(%rbx)
    incq {COUNTER:#x}
    mov ${DATA:#x}, %rdi
    mov ${DATA_PAGES}, %ecx
1:  mov %rcx, (%rdi)
    add $4096, %rdi
    loop 1b
    {gprs}
    mov $0x9000, %rsp
    stc; std
    out %al, $0x11
    out %al, $0x12
gdt_desc: .word 31
    .quad {GDT:#x}
idt_desc: .word 0xfff
    .quad {IDT:#x}
"""


def _fxsave_area() -> bytes:
    area = bytearray(512)
    area[0:2] = (0x27F).to_bytes(2, "little")  # FCW
    area[24:28] = (0x9FA0).to_bytes(4, "little")  # MXCSR
    for i in range(8):
        area[32 + 16 * i : 42 + 16 * i] = bytes([i + 1] * 10)  # ST0-7
    for i in range(16):
        area[160 + 16 * i : 176 + 16 * i] = bytes([0x40 + i] * 16)  # XMM0-15
    return bytes(area)


@dataclass
class Guest:
    partition: Partition
    vp: Vp
    memory: GuestMemory
    synthetic: bool  # the partition answers the synthetic registers (the guest writes them)


def _answers_synthetic(vp: Vp) -> bool:
    try:
        vp.get_registers(["scontrol", "guest_os_id"])
    except Exception:
        return False
    return True


def _setup_memory(mem: GuestMemory, code: bytes) -> dict[str, Any]:
    regs: dict[str, Any] = long_mode_registers(mem, PAGED_CODE_GPA)
    regs["cr0"] |= (1 << 1) | (1 << 5)  # MP | NE
    regs["cr4"] |= (1 << 9) | (1 << 10) | (1 << 18)  # OSFXSR | OSXMMEXCPT | OSXSAVE
    mem.write(PDPT + 3 * 8, (LAPIC_PD | 3).to_bytes(8, "little"))  # 3-4 GiB: the LAPIC page
    mem.write(LAPIC_PD, b"".join(((0xC0000000 + (i << 21)) | 0x83).to_bytes(8, "little") for i in range(512)))
    mem.write(PML4_B, (PDPT | 3).to_bytes(8, "little"))  # a second PML4 for the guest's CR3
    descriptors = [Segment.flat(0x8, code=True, long_mode=True), Segment.flat(0x10, code=False)]
    mem.write(GDT, bytes(8) + b"".join(segment_descriptor(s) for s in descriptors))
    mem.write(GDT + 24, segment_descriptor(Segment.flat(0x18, code=False)))
    mem.write(FXSAVE_AREA, _fxsave_area())
    mem.write(PAGED_CODE_GPA, code)
    return regs


@pytest.fixture
def guest(backend_ready: None) -> Iterator[Guest]:
    """A LAPIC partition granting the synthetic registers, VP 0 at the guest's first exit (0x10)."""
    with Mshv() as hv, GuestMemory(MEMORY_SIZE) as mem:
        pt = hv.create_partition(initialize=False)
        try:
            pt.set_property(lib.HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES, SYNTHETIC)
            pt.initialize()
            pt.map_memory(mem, 0)
            vp = pt.create_vp(0)
            synthetic = _answers_synthetic(vp)
            code = assemble(guest_source(synthetic), mode="long", base=PAGED_CODE_GPA)
            vp.set_registers(_setup_memory(mem, code))
            exit_ = vp.run()
            assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10, exit_
            vp.complete_io(exit_)  # pending in the register page: the snapshot must see it
            yield Guest(pt, vp, mem, synthetic)
        finally:
            pt.close()


def _lapic_fields(vp: Vp) -> dict[str, Any]:
    lapic = vp.get_lapic()
    return {f.name: getattr(lapic, f.name) for f in fields(lapic) if f.name != "counter_value"}


def _registers(vp: Vp, snap: Snapshot, klass: str) -> dict[str, RegisterValue]:
    names = [name for name in snap.vps[vp.index].registers[klass] if name != "tsc"]
    return vp.get_registers(names)


def _expected(snap: Snapshot, vp: Vp, klass: str) -> dict[str, RegisterValue]:
    return {n: v for n, v in snap.vps[vp.index].registers[klass].items() if n != "tsc"}


def _run_to_0x11(vp: Vp) -> IoPortIntercept:
    return _run_to(vp, 0x11)


def _run_to(vp: Vp, port: int) -> IoPortIntercept:
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept) and exit_.port == port, exit_
    return exit_


def test_snapshot_holds_every_class_the_partition_grants(guest: Guest) -> None:
    snap = guest.partition.snapshot()
    regs = snap.vps[0].registers
    assert set(regs) == set(REGISTER_CLASSES)
    assert regs["architectural"]["rip"] == PAGED_CODE_GPA + 2  # the completion pending in the page
    assert {"rax", "rip", "cs", "gdtr", "cr3", "efer", "dr7", "xfem"} <= set(regs["architectural"])
    assert set(GUEST_MSRS) | {"tsc", "apic_base"} <= set(regs["msrs"])
    assert {"pending_interruption", "interrupt_state", "internal_activity_state"} <= set(regs["events"])
    assert {"xsave", "lapic", "simp", "siefp", "synthetic_timers"} == set(snap.vps[0].blobs)
    # A register the partition grants is either captured or named with the status it got;
    # architectural registers and MSRs are always captured.
    granted = (
        set(GUEST_SYNTHETIC_MSRS) | {f"sint{i}" for i in range(16)} | {f"stimer{i}_count" for i in range(4)}
    )
    captured = set(regs["synthetic"]) | set(regs["synic"]) | set(regs["timers"])
    assert granted <= captured | {key.removeprefix("vp0.") for key in snap.unavailable}
    assert not [key for key in snap.unavailable if key.removeprefix("vp0.") in regs["architectural"]]
    assert guest.synthetic == ("scontrol" in regs["synic"])
    if guest.synthetic:  # (the emulator answers them once its synthetic registers landed)
        assert snap.unavailable == {}
    assert snap.reference_time is not None and snap.reference_time > 0
    assert guest.partition.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE) == 0  # thawed after


def test_restore_brings_back_every_class_fifty_times(guest: Guest) -> None:
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    shadow = lib.HV_X64_INTERRUPT_STATE_INTERRUPT_SHADOW
    vp.set_registers({"interrupt_state": shadow})  # as if stopped right after STI: an event to restore
    snap = pt.snapshot()
    assert snap.read_register(0, "interrupt_state") == shadow
    fpu, lapic = vp.get_registers(FPU), _lapic_fields(vp)
    for round_ in range(50):
        _run_to_0x11(vp)
        assert vp.reg_read("interrupt_state") == 0
        # the guest really changed each class
        changed = _registers(vp, snap, "architectural")
        assert [n for n in CHANGED if changed[n] == snap.read_register(0, n)] == []
        msrs = _registers(vp, snap, "msrs")
        assert {n: msrs[n] for n in GUEST_MSRS} == {n: v for n, (_, v) in GUEST_MSRS.items()}
        assert vp.get_registers(FPU) != fpu and _lapic_fields(vp) != lapic
        assert mem.read(COUNTER, 8) == (1).to_bytes(8, "little")
        if guest.synthetic:
            synth = {
                k: v for c in ("synthetic", "synic", "timers") for k, v in _registers(vp, snap, c).items()
            }
            written = {n: value for n, (_, value) in GUEST_SYNTHETIC_MSRS.items()}
            assert {n: synth[n] for n in GUEST_SYNTHETIC_MSRS} == written
        pt.restore(snap)
        for klass in REGISTER_CLASSES:
            assert _registers(vp, snap, klass) == _expected(snap, vp, klass), (round_, klass)
        assert vp.get_registers(FPU) == fpu, round_
        assert _lapic_fields(vp) == lapic, round_
        assert bytes(mem.view()) == snap.memory[0], round_
        for name, blob in snap.vps[0].blobs.items():
            if name != "lapic":  # (its timer's current count runs)
                assert vp.get_state(_STATE[name])[: len(blob)] == blob, (round_, name)


_STATE = {
    "xsave": lib.MSHV_VP_STATE_XSAVE,
    "lapic": lib.MSHV_VP_STATE_LAPIC,
    "simp": lib.MSHV_VP_STATE_SIMP,
    "siefp": lib.MSHV_VP_STATE_SIEFP,
    "synthetic_timers": lib.MSHV_VP_STATE_SYNTHETIC_TIMERS,
}


def test_restore_copies_only_dirtied_pages_and_clears_them(guest: Guest) -> None:
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    snap = pt.snapshot()
    _run_to_0x11(vp)
    mem.write(0x200000, b"host")  # the host's write: the hypervisor does not track it
    pt.restore(snap)
    assert mem.read(DATA, 8) == bytes(8) and mem.read(COUNTER, 8) == bytes(8)  # guest pages: back
    assert mem.read(0x200000, 4) == b"host"  # not dirty, so not copied: incremental
    states = pt.gpa_access_states(0, MEMORY_SIZE // 0x1000)
    assert not [i for i, s in enumerate(states) if s & PageAccess.DIRTY]  # cleared by the restore
    _run_to_0x11(vp)
    pt.restore(snap, host_written=[(0x200000, 4)])
    assert mem.read(0x200000, 4) == bytes(4)
    mem.write(0x300000, b"host")
    pt.restore(snap, full=True)
    assert bytes(mem.view()) == snap.memory[0]


# Pages a guest writes: runs that cross a 64-page word of the bitmap, single pages, the last one.
SCATTERED_PAGES = (0x3E, 0x3F, 0x40, 0x41, 0x7F, *range(0xA0, 0xC6), 0xE1, 0xFF)


def test_restore_copies_runs_across_bitmap_words_and_the_last_page(backend_ready: None) -> None:
    writes = "".join(f"incq {page * 0x1000 + 8:#x}\n" for page in SCATTERED_PAGES)
    code = assemble(writes + "out %al, $0x80", mode="long", base=entry_gpa("long"))
    with partition_with_one_vp(code, mode="long", memory_size=0x100000) as (pt, vp, mem):
        for page in range(0x20, 0x100):
            mem.write(page * 0x1000, page.to_bytes(2, "little") * 8)
        snap = pt.snapshot()
        exit_ = vp.run()
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x80, exit_
        assert all(mem.read(p * 0x1000 + 8, 8) != snap.read(p * 0x1000 + 8, 8) for p in SCATTERED_PAGES)
        mem.write(0x90 * 0x1000, b"host")  # not the guest's: not dirty, not copied
        pt.restore(snap)
        restored = bytearray(snap.memory[0])
        restored[0x90 * 0x1000 : 0x90 * 0x1000 + 4] = b"host"
        assert bytes(mem.view()) == bytes(restored)


@pytest.mark.parametrize("compiled", [True, False], ids=["C", "no-compiler twin"])
def test_bitmap_page_copy_copies_exactly_the_set_pages(compiled: bool) -> None:
    """lib.mshv_copy_bitmap_pages (and mshv._abi_nocc's twin): LSB-first bits, runs across words,
    bits past ``npages`` in the last byte ignored."""
    ffi, lib_ = (compiled_ffi, lib) if compiled else (_abi_nocc.ffi, _abi_nocc.lib)
    rng = random.Random(15)
    for npages in (1, 7, 63, 64, 65, 128, 129, 300, 511, 512, 513, 2000):
        for density in (0.0, 0.002, 0.1, 0.5, 0.9, 1.0):
            bitmap = bytearray(1 if rng.random() < density else 0 for _ in range(npages))
            packed = bytearray((npages + 7) // 8)
            for i, bit in enumerate(bitmap):
                packed[i // 8] |= bit << (i % 8)
            if npages % 8:
                packed[-1] |= 0xFF << (npages % 8) & 0xFF
            src = bytes(rng.randrange(256) for _ in range(npages * 16))
            dst = bytearray(npages * 16)
            copied = lib_.mshv_copy_bitmap_pages(
                ffi.from_buffer(dst), ffi.from_buffer(src), ffi.from_buffer(bytes(packed)), npages, 16
            )
            expected = b"".join(
                src[i * 16 : i * 16 + 16] if bit else bytes(16) for i, bit in enumerate(bitmap)
            )
            assert (copied, bytes(dst)) == (sum(bitmap), expected), (npages, density)


def test_restore_after_dirty_bits_were_consumed_copies_everything(guest: Guest) -> None:
    """Reading (and clearing) the dirty pages between snapshot and restore loses the restore's
    record of what changed: the next restore copies all pages instead of missing some."""
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    snap = pt.snapshot()
    _run_to_0x11(vp)
    assert DATA in pt.dirty_pages(0, MEMORY_SIZE // 0x1000)
    pt.restore(snap)
    assert bytes(mem.view()) == snap.memory[0]


def test_restore_drops_a_completion_written_after_the_snapshot(guest: Guest) -> None:
    pt, vp = guest.partition, guest.vp
    snap = pt.snapshot()
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x11
    vp.complete_io(exit_)  # RIP past the OUT, pending in the register page
    pt.restore(snap)
    page = vp.register_page
    assert page is not None and page.dirty == 0
    names = ("rip", "rflags", *GPRS, "rsp")
    assert {name: page.read(name) for name in names} == {name: snap.read_register(0, name) for name in names}
    _run_to_0x11(vp)  # from the snapshot's RIP again, not from 0x12


def test_restore_drops_register_page_writes_made_after_the_snapshot(guest: Guest) -> None:
    """Every class the register page can carry to the next run (here SEGMENT) is dropped."""
    pt, vp = guest.partition, guest.vp
    snap = pt.snapshot()
    page = vp.register_page
    assert page is not None
    page.raw.cs.selector = 0x28  # no such descriptor: the guest would not get far with it
    page.raw.dirty |= 1 << lib.HV_X64_REGISTER_CLASS_SEGMENT
    pt.restore(snap)
    exit_ = vp.run()
    assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x11, exit_
    assert exit_.header.cs == snap.read_register(0, "cs")


def test_restore_switches_between_snapshots(guest: Guest) -> None:
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    first = pt.snapshot()
    _run_to_0x11(vp)
    second = pt.snapshot()
    pt.restore(first)
    assert bytes(mem.view()) == first.memory[0] and vp.reg_read("rip") == PAGED_CODE_GPA + 2
    pt.restore(second)
    assert bytes(mem.view()) == second.memory[0] and mem.read(COUNTER, 8) == (1).to_bytes(8, "little")
    assert _registers(vp, second, "msrs") == _expected(second, vp, "msrs")


def test_reference_time_goes_back_and_time_stays_frozen_if_it_was(guest: Guest) -> None:
    pt = guest.partition
    snap = pt.snapshot()
    assert snap.reference_time is not None
    time.sleep(0.05)
    before = pt.get_property(lib.HV_PARTITION_PROPERTY_REFERENCE_TIME)
    assert before > snap.reference_time + 400_000  # 40 ms in 100 ns units
    pt.restore(snap)
    after = pt.get_property(lib.HV_PARTITION_PROPERTY_REFERENCE_TIME)
    assert snap.reference_time <= after < before
    pt.set_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE, 1)
    pt.restore(snap)
    assert pt.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE) == 1
    assert pt.get_property(lib.HV_PARTITION_PROPERTY_REFERENCE_TIME) == snap.reference_time


def test_tsc_goes_back(guest: Guest) -> None:
    tsc = limits_mod.probe_limits()
    ignored = [limit for limit in tsc if limit.name == "TSC writes" and limit.works is False]
    if ignored:
        pytest.xfail(f"this host ignores TSC writes from the VMM: {ignored[0].detail}")
    pt, vp = guest.partition, guest.vp
    snap = pt.snapshot()
    time.sleep(0.05)
    before = vp.reg_read("tsc")
    pt.restore(snap)
    after = vp.reg_read("tsc")
    assert isinstance(before, int) and isinstance(after, int)
    assert snap.read_register(0, "tsc") <= after < before


@pytest.mark.parametrize("native", [True, False] if native_available() else [False])
def test_run_loop_keeps_working_across_restores(native: bool, backend_ready: None) -> None:
    source = """
        lea msg(%rip), %rsi
    1:  lodsb
        test %al, %al
        jz 2f
        out %al, $0xe9
        jmp 1b
    2:  mov $100, %ecx
    3:  out %al, $0x80
        incq 0x20000
        dec %ecx
        jnz 3b
        out %al, $0x11
        hlt
    msg: .asciz "hi"
    """
    code = assemble(source, mode="long", base=PAGED_CODE_GPA)
    with Mshv() as hv, GuestMemory(0x100000) as mem, hv.create_partition(lapic=False) as pt:
        pt.map_memory(mem, 0)
        mem.write(PAGED_CODE_GPA, code)
        vp = pt.create_vp(0)
        vp.set_registers(long_mode_registers(mem, PAGED_CODE_GPA))  # type: ignore[arg-type]
        with RunLoop(vp, native=native) as loop:
            console, ticks = loop.port_buffer(0xE9), loop.port_counter(0x80)
            snap = pt.snapshot()
            for round_ in range(1, 11):
                result = loop.run(stop_ports=[0x11])
                assert (result.reason, mem.read(0x20000, 8)) == ("port", (100).to_bytes(8, "little"))
                # every run prints "hi" again; the half runs below count 50 ticks each
                assert (bytes(console.output), ticks.count) == (b"hi" * (2 * round_ - 1), 150 * round_ - 50)
                pt.restore(snap)
                # stop half-way: the loop's last completion is still pending in the register page
                assert loop.run(max_exits=52).reason == "max_exits"
                pt.restore(snap)
            assert vp.reg_read("rip") == PAGED_CODE_GPA and mem.read(0x20000, 8) == bytes(8)


def test_save_load_round_trip_into_a_new_partition(guest: Guest, tmp_path: Path) -> None:
    pt = guest.partition
    snap = pt.snapshot()
    path = tmp_path / "guest.snap"
    snap.save(path)
    loaded = Snapshot.load(path)
    assert loaded.layout == snap.layout and loaded.memory == snap.memory
    assert loaded.reference_time == snap.reference_time and loaded.features == snap.features
    assert loaded.unavailable == snap.unavailable
    assert loaded.vps[0].registers == snap.vps[0].registers and loaded.vps[0].blobs == snap.vps[0].blobs
    assert path.stat().st_size < MEMORY_SIZE // 8  # sparse and compressed
    with Mshv() as hv, GuestMemory(MEMORY_SIZE) as mem:
        other = hv.create_partition(initialize=False)
        try:
            other.set_property(lib.HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES, SYNTHETIC)
            other.initialize()
            other.map_memory(mem, 0)
            other_vp = other.create_vp(0)
            other.restore(loaded)
            assert bytes(mem.view()) == snap.memory[0]
            for klass in REGISTER_CLASSES:
                assert _registers(other_vp, snap, klass) == _expected(snap, other_vp, klass), klass
            _run_to_0x11(other_vp)
            assert mem.read(COUNTER, 8) == (1).to_bytes(8, "little")
            other.restore(loaded)  # now incremental
            assert bytes(mem.view()) == snap.memory[0]
        finally:
            other.close()


@contextlib.contextmanager
def _partition(
    hv: Mshv, memory: list[tuple[GuestMemory, int, bool]], vps: int, **flags: Any
) -> Iterator[Partition]:
    """A partition with ``memory`` mapped and ``vps`` VPs, held for the block (a partition
    holds its VPs weakly: a VP nobody keeps is closed)."""
    with hv.create_partition(**flags) as pt:
        for mem, gpa, writable in memory:
            pt.map_memory(mem, gpa, writable=writable)
        held = [pt.create_vp(i) for i in range(vps)]
        yield pt
        del held


def test_restore_into_another_layout_is_refused(backend_ready: None) -> None:
    with Mshv() as hv, GuestMemory(0x40000) as a, GuestMemory(0x80000) as b:
        with _partition(hv, [(a, 0, True)], 1) as pt:
            snap = pt.snapshot()
        cases = [
            ([(b, 0, True)], 1, {}, "regions", "0x0+0x80000"),  # memory size
            ([(a, 0x100000, True)], 1, {}, "regions", "0x100000+0x40000"),  # GPA
            ([(a, 0, False)], 1, {}, "regions", "r-x"),  # permissions
            ([(a, 0, True)], 2, {}, "vps", "[0, 1]"),  # VP count
            ([(a, 0, True)], 1, {"lapic": False}, "flags", "0x0"),  # partition features
        ]
        for memory, vps, flags, what, shown in cases:
            with _partition(hv, memory, vps, **flags) as pt:
                with pytest.raises(SnapshotMismatch) as info:
                    pt.restore(snap)
                assert info.value.what == what and shown in str(info.value), str(info.value)


def test_a_vp_created_after_a_restore_makes_the_next_one_refuse(backend_ready: None) -> None:
    """The restore made ready for the VPs there were is not reused once another exists."""
    with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
        snap = pt.snapshot()
        pt.restore(snap)
        extra = pt.create_vp(1)
        with pytest.raises(SnapshotMismatch) as info:
            pt.restore(snap)
        assert info.value.what == "vps" and "[0, 1]" in str(info.value)
        extra.close()


def test_read_only_regions_come_back_from_host_writes(backend_ready: None) -> None:
    """The guest cannot write a read-only region, so only a full restore or the host's named
    ranges copy it back; the writable region next to it is restored page by page."""
    with Mshv() as hv, GuestMemory(0x40000) as ram, GuestMemory(0x10000) as rom:
        rom.write(0, b"firmware")
        with _partition(hv, [(ram, 0, True), (rom, 0x100000, False)], 1) as pt:
            snap = pt.snapshot()
            assert [r.writable for r in snap.layout] == [True, False]
            assert snap.read(0x100000, 8) == b"firmware"
            rom.write(0, b"patched!")
            pt.restore(snap)
            assert rom.read(0, 8) == b"patched!"  # not the guest's write: not tracked
            pt.restore(snap, host_written=[(0x100000, 8)])
            assert rom.read(0, 8) == b"firmware"
            rom.write(0, b"patched!")
            ram.write(0x1000, b"host")
            pt.restore(snap, full=True)
            assert (rom.read(0, 8), ram.read(0x1000, 4)) == (b"firmware", bytes(4))
            with pytest.raises(ValueError, match="not inside one mapped region"):
                pt.restore(snap, host_written=[(0x200000, 8)])


def test_two_vps_each_get_their_own_state_back(backend_ready: None) -> None:
    with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 2) as pt:
        vps = pt.vps
        for vp in vps.values():
            vp.set_registers({"rax": 0x100 + vp.index, "cs": Segment(0, 0xFFFF, 0x10 * vp.index, 0x9B)})
        snap = pt.snapshot()
        for vp in vps.values():
            vp.set_registers({"rax": 0, "gdtr": Table(0x1000, 7)})
        pt.restore(snap)
        for vp in vps.values():
            assert vp.get_registers(["rax", "cs", "gdtr"]) == {
                "rax": 0x100 + vp.index,
                "cs": Segment(0, 0xFFFF, 0x10 * vp.index, 0x9B),
                "gdtr": snap.read_register(vp.index, "gdtr"),
            }


def test_restore_into_a_closed_vp_says_so_and_calls_nothing(backend_ready: None) -> None:
    """A restore keeps its calls made ready between restores (mshv.snapshot._Program), fds
    included: once a VP is closed and its fd number taken by another open, the restore must
    refuse, not send the VP's calls to that fd."""
    with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
        vp = pt.vps[0]
        snap = pt.snapshot()
        pt.restore(snap)
        number = vp.fd
        vp.close()
        with Mshv() as other:
            assert other.fd == number  # the lowest free fd
            with pytest.raises(ValueError, match="closed"):
                pt.restore(snap)


def test_a_snapshot_restored_once_is_freed_when_dropped(guest: Guest) -> None:
    """What a restore keeps for the next one does not keep the snapshot (all its memory) alive
    once the partition has moved on to another and the caller dropped it."""
    pt = guest.partition
    first = pt.snapshot()
    pt.restore(first)
    gone = weakref.ref(first)
    pt.snapshot()
    gc.disable()
    try:
        del first
        assert gone() is None
    finally:
        gc.enable()


@pytest.fixture(params=[True, False], ids=["one call", "batch by batch"])
def restore_in_one_call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """A dirty-page restore as one lib.mshv_restore, or batch by batch from Python (the way of
    every restore that is not dirty-page only)."""
    monkeypatch.setattr(snapshot_mod, "_RESTORE_IN_ONE_CALL", request.param)
    return bool(request.param)


def _restore_program(pt: Partition, snap: Snapshot) -> Any:
    program = pt._restore_program
    assert program is not None and program.live_vps(pt, snap) is not None
    return program


def test_a_restore_whose_vp_call_fails_raises_it_and_thaws_time(
    guest: Guest, restore_in_one_call: bool
) -> None:
    """A call failing between the freeze and the thaw: its error, time thawed, and the next
    restore copies every page (the dirty bits were consumed)."""
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    snap = pt.snapshot()
    pt.restore(snap)
    _run_to_0x11(vp)
    program = _restore_program(pt, snap)
    vp_fd = program.fds[1]
    program.fds[1] = -1  # every VP call fails: EBADF
    try:
        with pytest.raises(MshvError) as failed:
            pt.restore(snap)
    finally:
        program.fds[1] = vp_fd
    assert failed.value.errno == errno.EBADF
    assert pt.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE) == 0
    assert pt._snapshot_base is None  # not incremental next time
    mem.write(DATA, b"not the snapshot's")  # a host write: only a full copy brings it back
    pt.restore(snap)
    assert bytes(mem.view()) == snap.memory[0]
    assert vp.get_registers(["rip"])["rip"] == snap.read_register(0, "rip")


def test_a_thaw_failing_after_a_failed_call_is_raised_with_it(
    guest: Guest, restore_in_one_call: bool
) -> None:
    """As a ``with`` block whose exit fails: the thaw's error, the first failure its context."""
    pt, vp = guest.partition, guest.vp
    snap = pt.snapshot()
    pt.restore(snap)
    _run_to_0x11(vp)
    program = _restore_program(pt, snap)
    thaw_input = program.thaw._specs[0][4]  # the prepared struct mshv_root_hvcall
    code, vp_fd = thaw_input.code, program.fds[1]
    thaw_input.code, program.fds[1] = 0xFFFF, -1  # a code off the allow-list: EINVAL
    try:
        with pytest.raises(MshvError) as failed:
            pt.restore(snap)
    finally:
        thaw_input.code, program.fds[1] = code, vp_fd
    assert failed.value.errno == errno.EINVAL
    context = failed.value.__context__
    assert isinstance(context, MshvError) and context.errno == errno.EBADF
    assert pt.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE) == 1  # the thaw failed
    pt.set_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE, 0)


def test_a_restore_that_cannot_read_time_freeze_fails_before_any_call(
    guest: Guest, restore_in_one_call: bool
) -> None:
    """TIME_FREEZE read failing with an errno (no hypercall status): nothing frozen, nothing copied."""
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    snap = pt.snapshot()
    pt.restore(snap)
    _run_to_0x11(vp)
    dirtied = bytes(mem.view())
    program = _restore_program(pt, snap)
    fds = list(program.fds)
    program.fds[0] = -1
    try:
        with pytest.raises(MshvError) as failed:
            pt.restore(snap)
    finally:
        program.fds[0] = fds[0]
    assert failed.value.errno == errno.EBADF and failed.value.hv_status is None
    assert "HVCALL_GET_PARTITION_PROPERTY" in str(failed.value)
    assert bytes(mem.view()) == dirtied != snap.memory[0]
    assert pt.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE) == 0


class _HeldCheck:
    """mshv.snapshot's ``lib``, noting whether each mshv_restore ran with the partition's page
    writers lock held by the calling thread."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.held: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(lib, name)

    def mshv_restore(self, *args: Any) -> int:
        self.held.append(self.partition._page_writers._is_owned())  # type: ignore[attr-defined]
        return int(lib.mshv_restore(*args))


def test_a_vp_does_not_unmap_its_register_page_while_a_restore_writes_it(
    guest: Guest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lib.mshv_restore writes the register pages with the GIL released (cffi): a VP closing
    in another thread meanwhile waits for it before its page is unmapped."""
    pt, vp = guest.partition, guest.vp
    snap = pt.snapshot()
    check = _HeldCheck(pt)
    monkeypatch.setattr(snapshot_mod, "lib", check)
    live_vps = snapshot_mod._Program.live_vps
    checked_held: list[bool] = []

    def checked(program: Any, partition: Partition, snap: Snapshot) -> Any:
        checked_held.append(partition._page_writers._is_owned())  # type: ignore[attr-defined]
        return live_vps(program, partition, snap)

    monkeypatch.setattr(snapshot_mod._Program, "live_vps", checked)
    pt.restore(snap)  # made ready
    _run_to_0x11(vp)
    pt.restore(snap)
    assert check.held == [True, True] and checked_held == [True]  # from the checks to the call
    pt._page_writers.acquire()  # as the restore's call holds it
    closer = threading.Thread(target=vp.close)
    try:
        closer.start()
        closer.join(0.2)
        assert closer.is_alive() and vp.register_page is not None  # waiting: the page is mapped
    finally:
        pt._page_writers.release()
    closer.join(10)
    assert not closer.is_alive() and vp.closed and vp.register_page is None


def test_a_region_is_not_unmapped_while_a_restore_copies_into_it(backend_ready: None) -> None:
    """unmap_memory waits for a restore in another thread (its page copy runs without the GIL),
    through the C path and the Python twin alike."""
    for in_c in (True, False):
        with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
            region = pt.regions[0]
            unmap = pt.unmap_memory if in_c else functools.partial(pt._unmap_memory)
            pt._page_writers.acquire()  # as a restore holds it
            unmapper = threading.Thread(target=unmap, args=(region,))
            try:
                unmapper.start()
                unmapper.join(0.2)
                assert unmapper.is_alive() and pt.regions == [region], in_c  # waiting, still mapped
            finally:
                pt._page_writers.release()
            unmapper.join(10)
            assert not unmapper.is_alive() and pt.regions == [], in_c


def test_a_dirty_page_restore_in_one_call_equals_the_batches(guest: Guest) -> None:
    """The same guest run, restored one way then the other: the same memory, registers and page."""
    pt, vp, mem = guest.partition, guest.vp, guest.memory
    snap = pt.snapshot()
    pt.restore(snap)
    seen = []
    for in_c in (True, False, True):
        snapshot_mod._RESTORE_IN_ONE_CALL = in_c
        try:
            _run_to_0x11(vp)
            assert bytes(mem.view()) != snap.memory[0]
            page = vp.register_page
            assert page is not None
            page.write_all({"rax": 0x1234}, mark_dirty=True)  # a completion the restore drops
            mem.write(0x90000, b"host")  # not the guest's: back only as a host-written range
            pt.restore(snap, host_written=[(0x90000, 4)])
        finally:
            snapshot_mod._RESTORE_IN_ONE_CALL = True
        assert bytes(mem.view()) == snap.memory[0]
        assert page.dirty == 0
        seen.append((vp.get_registers(list(PACKED)), page.read("rax"), page.read("rip")))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] == snap.read_register(0, "rax") and seen[0][2] == snap.read_register(0, "rip")


def test_restore_brings_back_the_lapic_timer_count(backend_ready: None) -> None:
    """The LAPIC state a restore sets while time is frozen holds until the thaw: the timer
    counts on from the snapshot's current count, not from the one it had before the restore."""
    with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
        vp = pt.vps[0]
        lapic = vp.get_lapic()
        lapic.spurious |= 0x100  # software-enabled
        lapic.lvt_timer = 0x10030  # masked, one-shot, vector 0x30: it counts, nothing fires
        lapic.divide_configuration = 0xB  # divide by 1
        lapic.initial_count = lapic.counter_value = 0xFFFFFFFF  # about 4.3 s at 1 GHz
        vp.set_lapic(lapic)
        snap = pt.snapshot()
        at_snapshot = LapicState.from_bytes(snap.vps[0].blobs["lapic"]).counter_value
        time.sleep(0.2)
        before = vp.get_lapic().counter_value
        assert 0 < before < at_snapshot  # it counted down meanwhile
        pt.restore(snap)
        after = vp.get_lapic().counter_value
        assert after > (at_snapshot + before) // 2, (at_snapshot, before, after)


WINDOW = 0x200000  # VA 2 MiB, the remapping guests' window: identity-mapped, later PA 0


def _remapping_guest(remap: str, mode: str) -> bytes:
    """A guest that reads the window, stops at port 0x10 (where the snapshot is taken), remaps
    the window with ``remap`` unless RCX is 1, reads it again into RBX and stops at port 0x11."""
    r = "r" if mode == "long" else "e"  # the register names of the mode
    return assemble(
        f"""
        mov ${WINDOW:#x}, %{r}di
        mov (%{r}di), %{r}ax
        out %al, $0x10
        cmp $1, %{r}cx
        je 1f
        {remap}
    1:  mov (%{r}di), %{r}bx
        out %al, $0x11
        """,
        mode=mode,
        base=PAGED_CODE_GPA,
    )


@contextlib.contextmanager
def _window_partition(code: bytes) -> Iterator[tuple[Partition, GuestMemory, Vp]]:
    """A partition of one VP running ``code``, 0x1111 in the window's identity-mapped page and
    0x2222 at PA 0 (what a remapped window reads)."""
    with Mshv() as hv, GuestMemory(MEMORY_SIZE) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
        mem.write(PAGED_CODE_GPA, code)
        mem.write(WINDOW, (0x1111).to_bytes(8, "little"))
        mem.write(0, (0x2222).to_bytes(8, "little"))
        yield pt, mem, pt.vps[0]


def test_restore_brings_back_the_guest_page_tables(backend_ready: None) -> None:
    """A guest that remaps a page after the snapshot sees the snapshot's mapping after the
    restore: the page tables are guest memory the restore copies back, and no translation the
    remapped entry left behind (TLB, the host's shadow of the tables) outlives the restore."""
    pd_entry = 0x4000 + 8  # the window's PD entry (long_mode_registers' tables)
    remap = f"movq $0x83, %rdx; mov %rdx, {pd_entry:#x}; invlpg (%rdi)"  # 2 MiB page at PA 0
    with _window_partition(_remapping_guest(remap, "long")) as (pt, mem, vp):
        vp.set_registers(long_mode_registers(mem, PAGED_CODE_GPA))
        for round_ in range(3):
            vp.complete_io(_run_to(vp, 0x10))
            if round_ == 0:
                snap = pt.snapshot()
            window_read = _remap_then_restore(pt, vp, snap)
            assert window_read == 0x1111, f"round {round_}: the remapped window outlived the restore"
            pt.restore(snap)
            vp.set_registers({"rip": PAGED_CODE_GPA})  # from the top: the snapshot's mapping read first


def _remap_then_restore(pt: Partition, vp: Vp, snap: Snapshot) -> int:
    """The remapping guests below, from their snapshot point: they remap the window (it reads
    0x2222), the snapshot is restored, and they read the window again without remapping it;
    returns what it reads then."""
    _run_to_0x11(vp)
    assert vp.reg_read("rbx") == 0x2222  # the remapped window
    pt.restore(snap)
    vp.set_registers({"rcx": 1})
    _run_to_0x11(vp)
    return int(vp.reg_read("rbx"))


def test_restore_reloads_the_pae_pdptrs_from_the_restored_memory(backend_ready: None) -> None:
    """With legacy PAE paging the CPU holds the four PDPTEs in registers, loaded by MOV CR3: a
    guest that switches its PDPT after the snapshot sees the snapshot's PDPT after the restore,
    though CR3 itself comes back unchanged."""
    pdpt, pd_a, pd_b = 0x2000, 0x3000, 0x4000
    # PDPTE 0 -> PD B, which maps the window to PA 0; the CR3 load reloads the PDPTEs
    remap = f"movl ${pd_b | 1:#x}, {pdpt:#x}; mov %cr3, %edx; mov %edx, %cr3"
    with _window_partition(_remapping_guest(remap, "protected")) as (pt, mem, vp):
        large = 0x83  # present, writable, 2 MiB page
        mem.write(pdpt, (pd_a | 1).to_bytes(8, "little"))
        mem.write(pd_a, struct.pack("<2Q", 0 | large, WINDOW | large))
        mem.write(pd_b, struct.pack("<2Q", 0 | large, 0 | large))
        registers = protected_mode_registers(mem, PAGED_CODE_GPA)
        registers.update(cr3=pdpt, cr4=1 << 5, cr0=int(registers["cr0"]) | 1 << 31)  # PAE, PG
        vp.set_registers(registers)
        exit_ = vp.run()
        if isinstance(exit_, UnrecoverableException):
            pytest.xfail(f"this host's KVM cannot run a guest with legacy PAE paging: {exit_!r}")
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10, exit_
        vp.complete_io(exit_)
        snap = pt.snapshot()
        assert _remap_then_restore(pt, vp, snap) == 0x1111, (
            "the PDPTEs loaded after the snapshot outlived the restore"
        )


def test_partition_wide_registers_come_from_the_first_vp_only() -> None:
    features = PartitionFeatures(synthetic=SYNTHETIC)
    first, other = registers_for(features, first_vp=True), registers_for(features, first_vp=False)
    assert {"guest_os_id", "hypercall", "reference_tsc"} <= set(first["synthetic"])
    assert set(other["synthetic"]) == {"vp_assist_page"}
    assert first["synic"] == other["synic"] and len(first["synic"]) == 19
    assert registers_for(PartitionFeatures(), first_vp=True)["synic"] == ()  # not granted: not asked


# -- the file: corrupt, wrong version, cut short, not one ----------------------------------------
@pytest.fixture
def saved(tmp_path: Path, backend_ready: None) -> Path:
    with Mshv() as hv, GuestMemory(0x40000) as mem, _partition(hv, [(mem, 0, True)], 1) as pt:
        mem.write(0x1000, b"some guest bytes")
        path = tmp_path / "s.snap"
        pt.snapshot().save(path)
    return path


def _rewrite_header(data: bytearray, **fields_: int) -> None:
    magic, version, count, size, reserved = struct.unpack_from("<8sIIQI", data)
    values = {"version": version, "count": count, "size": size, **fields_}
    struct.pack_into("<8sIIQI", data, 0, magic, values["version"], values["count"], values["size"], reserved)
    struct.pack_into("<I", data, 28, zlib.crc32(bytes(data[:28])))


def test_load_round_trips_memory(saved: Path) -> None:
    assert Snapshot.load(saved).read(0x1000, 16) == b"some guest bytes"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.__setitem__(slice(0, 8), b"NOTASNAP"), "not a python-mshv snapshot"),
        (lambda d: _rewrite_header(d, version=2), "format version 2; this python-mshv reads version 1"),
        (lambda d: d.__setitem__(12, d[12] ^ 1), "header checksum mismatch"),
        (lambda d: d.__setitem__(-5, d[-5] ^ 0x40), "checksum mismatch"),
        (lambda d: d.__delitem__(slice(-100, None)), "truncated"),
        (lambda d: d.__delitem__(slice(-100, None)) or _rewrite_header(d, size=len(d)), "past the end"),
        (lambda d: d.__delitem__(slice(20, None)), "not a python-mshv snapshot"),
    ],
    ids=["magic", "version", "header-crc", "section-crc", "truncated", "cut-section", "tiny"],
)
def test_a_bad_file_is_refused(saved: Path, damage: Any, message: str) -> None:
    data = bytearray(saved.read_bytes())
    damage(data)
    saved.write_bytes(bytes(data))
    with pytest.raises(SnapshotFormatError, match=message):
        Snapshot.load(saved)


def test_a_file_with_consistent_checksums_but_bad_contents_is_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    tag, index, length, _crc, flags = struct.unpack_from("<4sIQII", data, 32)
    assert tag == b"META"
    meta = bytes(data[56 : 56 + length]).replace(b'"layout"', b'"layoot"')
    new = bytearray(data[:32]) + struct.pack("<4sIQII", tag, index, len(meta), zlib.crc32(meta), flags) + meta
    new += data[56 + length :]
    _rewrite_header(new, size=len(new))
    saved.write_bytes(bytes(new))
    with pytest.raises(SnapshotFormatError, match="contents do not make a snapshot"):
        Snapshot.load(saved)


def test_readme_snapshot_example_runs(backend_ready: None, tmp_path: Path, monkeypatch: Any) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    block = next(b for b in blocks if "partition.snapshot()" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, str(readme), "exec"), namespace)  # noqa: S102 - our own README
    assert Snapshot.load(tmp_path / "guest.snap").read(0x20000, 8) == bytes(8)
