"""mshv/vp.py: run real guest code and complete its intercepts the mshv way."""

from __future__ import annotations

import pytest

from mshv import (
    GuestMemory,
    HaltIntercept,
    IoPortIntercept,
    MemoryIntercept,
    MshvError,
    Partition,
    Segment,
    regpage,
)
from mshv.testing import CODE_GPA, assemble, partition_with_one_vp, real_mode_registers

ECHO = """
    mov $0x42, %al
    out %al, $0x10          # OUT: the VMM sees 0x42
    in $0x11, %al           # IN: the VMM supplies a value
    out %al, $0x12          # OUT it back: the guest saw the value
    mov $0x1234, %ax
    out %ax, $0x14          # 16-bit OUT
    hlt
"""


def test_port_io_echo_in_real_mode(backend_ready: None) -> None:
    with partition_with_one_vp(assemble(ECHO), lapic=False) as (_pt, vp, _mem):
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and out.is_write
        assert (out.port, out.size, out.value) == (0x10, 1, 0x42)
        assert out.header.rip == CODE_GPA + 2  # RIP *at* the OUT (after the 2-byte mov)
        assert out.header.instruction_length == 2 and out.header.mode == "real"
        assert out.instruction_bytes[:2] == b"\xe6\x10"
        vp.complete_io(out)

        inp = vp.run()
        assert isinstance(inp, IoPortIntercept) and not inp.is_write
        assert (inp.port, inp.size, inp.header.rip) == (0x11, 1, CODE_GPA + 4)
        vp.complete_io(inp, 0x5A)

        back = vp.run()
        assert isinstance(back, IoPortIntercept)
        assert (back.port, back.value) == (0x12, 0x5A)
        vp.complete_io(back)

        wide = vp.run()
        assert isinstance(wide, IoPortIntercept)
        assert (wide.port, wide.size, wide.value) == (0x14, 2, 0x1234)
        vp.complete_io(wide)

        halt = vp.run()
        assert isinstance(halt, HaltIntercept)
        assert vp.exits == 5


MMIO = """
    mov $0x100, %bx
    mov %bx, %ds            # DS base 0x1000: the MMIO page at GPA 0x20000 is DS:0x1F000
    mov $0x2000, %ax
    mov %ax, %ds            # DS base 0x20000
    movb $0x99, (0x10)      # MMIO write of 0x99 to GPA 0x20010
    movb (0x20), %al        # MMIO read from GPA 0x20020
    out %al, $0x30
    hlt
"""


def test_mmio_read_and_write_surface_as_memory_intercepts(backend_ready: None) -> None:
    with partition_with_one_vp(assemble(MMIO), lapic=False) as (_pt, vp, _mem):
        write = vp.run()
        assert isinstance(write, MemoryIntercept) and write.is_write
        assert write.gpa == 0x20010
        assert write.instruction_bytes[:1] == b"\xc6"  # movb $imm8, moffs
        vp.skip(write)  # a device would record the 0x99 here

        read = vp.run()
        assert isinstance(read, MemoryIntercept) and not read.is_write
        assert read.gpa == 0x20020
        vp.set_registers({"rax": 0x77, "rip": read.header.next_rip})

        out = vp.run()
        assert isinstance(out, IoPortIntercept) and (out.port, out.value) == (0x30, 0x77)


def test_register_batches_round_trip_200_names(backend_ready: None) -> None:
    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        gprs = [
            "rax",
            "rbx",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "rbp",
            "r8",
            "r9",
            "r10",
            "r11",
            "r12",
            "r13",
            "r14",
            "r15",
        ]
        values = {name: 0x1111_0000_0000 + i for i, name in enumerate(gprs)}
        vp.set_registers(values)
        names = (gprs * 14)[:200]
        got = vp.get_registers(names)
        assert {n: got[n] for n in gprs} == values
        cs = vp.reg_read("cs")
        assert isinstance(cs, Segment) and cs.selector == 0 and cs.present


def test_bad_register_input_changes_nothing(backend_ready: None) -> None:
    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        vp.reg_write("rbx", 7)
        with pytest.raises(TypeError):
            vp.set_registers({"rbx": 8, "cs": 5})
        with pytest.raises(ValueError):
            vp.set_registers({"rbx": 9, "rcx": 1 << 64})
        with pytest.raises(ValueError):
            vp.set_registers({"rbx": 10, "no_such_register": 1})
        assert vp.reg_read("rbx") == 7


def test_closed_vp_raises_value_error(partition: Partition) -> None:
    vp = partition.create_vp(0)
    vp.close()
    vp.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        vp.run()


def test_duplicate_vp_index_is_eexist(partition: Partition) -> None:
    partition.create_vp(3)
    with pytest.raises(MshvError) as info:
        partition.create_vp(3)
    assert info.value.errno == 17 and info.value.op == "MSHV_CREATE_VP"


def test_vp_index_is_checked_before_the_kernel(partition: Partition) -> None:
    with pytest.raises(ValueError):
        partition.create_vp(256)
    with pytest.raises(TypeError):
        partition.create_vp("0")  # type: ignore[arg-type]


def test_real_mode_registers_are_applied(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem:
        mem.write(CODE_GPA, assemble("hlt"))
        partition.map_memory(mem, 0)
        vp = partition.create_vp(0)
        vp.set_registers(real_mode_registers(rip=CODE_GPA))  # type: ignore[arg-type]
        assert vp.regs.rip == CODE_GPA
        assert isinstance(vp.run(), HaltIntercept)
        partition.close()


def test_complete_io_keeps_registers_set_since_the_intercept(backend_ready: None) -> None:
    """complete_io goes through the register page, but never undoes a register set by hypercall."""
    code = assemble("in $0x11, %al; out %al, $0x12; mov %bl, %al; out %al, $0x13; hlt")
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem):
        inp = vp.run()
        assert isinstance(inp, IoPortIntercept) and not inp.is_write
        vp.set_registers({"rbx": 0x33})
        vp.complete_io(inp, 0x5A)
        echo = vp.run()
        assert isinstance(echo, IoPortIntercept) and echo.value == 0x5A
        vp.complete_io(echo)  # through the page: nothing was set since this intercept
        bl = vp.run()
        assert isinstance(bl, IoPortIntercept) and (bl.port, bl.value) == (0x13, 0x33)
        assert vp.register_page is not None and vp.register_page.valid


def test_page_completion_is_seen_by_reads_and_kept_by_later_writes(backend_ready: None) -> None:
    """A completion through the register page is a deferred write: a hypercall read sees it,
    and a hypercall write in between is kept in the page's copy, so the page's whole-class
    write-back at the next run carries it instead of undoing it."""
    code = assemble("in $0x11, %al; mov %bl, %ah; out %ax, $0x12; hlt")
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem):
        inp = vp.run()
        assert isinstance(inp, IoPortIntercept)
        vp.complete_io(inp, 0x5A)  # through the page: RAX and RIP pending for the next run
        assert vp.register_page is not None and vp.register_page.dirty
        assert vp.get_registers(["rip"])["rip"] == inp.header.next_rip
        assert vp.reg_read("rax") & 0xFF == 0x5A
        vp.set_registers({"rbx": 0x33})
        assert vp.register_page.read("rbx") == 0x33  # the page's copy is the VP's value
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and (out.port, out.value) == (0x12, 0x335A)


def test_bad_page_completion_changes_nothing(backend_ready: None) -> None:
    """complete_registers through the register page checks every value before writing any."""
    code = assemble("mov $7, %ax; out %al, $0x10; hlt")
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem):
        out = vp.run()
        assert isinstance(out, IoPortIntercept)
        page = vp.register_page
        assert page is not None and page.valid and page.dirty == 0
        for bad in ({"rip": out.next_rip, "rax": -1}, {"rip": out.next_rip, "rbx": 1 << 64},
                    {"rip": out.next_rip, "rcx": "1"}, {"rip": out.next_rip, "rdx": True}):  # fmt: skip
            with pytest.raises((TypeError, ValueError)):
                vp.complete_registers(bad)  # type: ignore[arg-type]
            assert page.dirty == 0 and page.read("rip") == out.header.rip
        vp.complete_registers({"rip": out.next_rip, "rbx": 9})
        assert isinstance(vp.run(), HaltIntercept) and vp.reg_read("rbx") == 9


def test_packed_page_write_sets_every_gpr_rip_and_rflags(backend_ready: None) -> None:
    """regpage.pack + RegisterPage.write_packed: all of PACKED in one copy, applied at the next run
    when marked dirty; pack refuses a partial set (None) and bad values (as write_all does)."""
    code = assemble("out %al, $0x10; hlt; mov %bx, %ax; out %ax, $0x11; hlt")
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem):
        out = vp.run()
        assert isinstance(out, IoPortIntercept)
        page = vp.register_page
        assert page is not None
        values = {name: page.read(name) for name in regpage.PACKED}
        values.update({"rip": out.next_rip + 1, "rbx": 0x4242, "r15": 1 << 63})  # past the HLT
        packed = regpage.pack(values)
        assert packed is not None and regpage.pack({"rip": 1}) is None
        with pytest.raises(ValueError):
            regpage.pack({**values, "rax": 1 << 64})
        page.write_packed(packed)
        assert page.dirty and {name: page.read(name) for name in regpage.PACKED} == values
        second = vp.run()
        assert isinstance(second, IoPortIntercept) and (second.port, second.value) == (0x11, 0x4242)
        assert vp.reg_read("r15") == 1 << 63


def test_completions_refuse_another_vps_or_a_stale_intercept(partition: Partition) -> None:
    with GuestMemory(0x10000) as mem:
        mem.write(CODE_GPA, assemble("out %al, $0x10; out %al, $0x11; hlt"))
        partition.map_memory(mem, 0)
        a, b = partition.create_vp(0), partition.create_vp(1)
        for vp in (a, b):
            vp.set_registers(real_mode_registers())  # type: ignore[arg-type]
        a_out, b_out = a.run(), b.run()
        assert isinstance(a_out, IoPortIntercept) and isinstance(b_out, IoPortIntercept)
        with pytest.raises(ValueError, match="intercept of VP 1, not of VP 0"):
            a.complete_io(b_out)
        with pytest.raises(ValueError, match="intercept of VP 1, not of VP 0"):
            a.skip(b_out)
        a.complete_io(a_out)
        second = a.run()
        assert isinstance(second, IoPortIntercept) and second.port == 0x11
        for stale in (lambda: a.complete_io(a_out), lambda: a.skip(a_out)):
            with pytest.raises(ValueError, match="not the last exit of VP 0"):
                stale()
        assert a.reg_read("rip") == second.header.rip  # nothing was changed
        a.complete_io(second)
        assert isinstance(a.run(), HaltIntercept)
        b.complete_io(b_out)
        partition.close()


def test_complete_io_refuses_values_that_do_not_fit(backend_ready: None) -> None:
    code = assemble("in $0x11, %al; in $0x12, %ax; out %ax, $0x13; hlt")
    with partition_with_one_vp(code) as (_pt, vp, _mem):
        inp = vp.run()
        assert isinstance(inp, IoPortIntercept) and inp.size == 1
        for bad in (-1, 2**70, 0x100):
            with pytest.raises(ValueError, match="1-byte IN"):
                vp.complete_io(inp, bad)
        for wrong in ("1", 1.0, True):
            with pytest.raises(TypeError):
                vp.complete_io(inp, wrong)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="needs the value"):
            vp.complete_io(inp)
        vp.complete_io(inp, 0xFF)
        wide = vp.run()
        assert isinstance(wide, IoPortIntercept) and wide.size == 2
        with pytest.raises(ValueError, match="2-byte IN"):
            vp.complete_io(wide, 0x10000)
        vp.complete_io(wide, 0xBEEF)
        out = vp.run()
        assert isinstance(out, IoPortIntercept) and out.value == 0xBEEF
        with pytest.raises(ValueError, match="OUT takes no value"):
            vp.complete_io(out, 1)
