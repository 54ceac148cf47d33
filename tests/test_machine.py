"""`mshv run` and mshv.machine: real guest images booted on the backend, with their
serial output and exit codes checked (multiboot ELF, a synthetic bzImage, flat)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mshv.boot import ImageError, flat_image, load_image
from mshv.machine import Machine
from mshv.testing import assemble

HERE = Path(__file__).resolve().parent / "machine"
BZ_LOAD = 0x1000000  # the synthetic bzImage's pref_address (16 MiB)


def _build(cmds: list[list[str]]) -> None:
    for cmd in cmds:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{cmd[0]}: {proc.stderr}"


@pytest.fixture(scope="module")
def multiboot_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mb")
    obj, elf = out / "g.o", out / "g.elf"
    _build([
        ["as", "--32", "-o", str(obj), str(HERE / "multiboot_guest.S")],
        ["ld", "-m", "elf_i386", "-T", str(HERE / "multiboot_guest.ld"), "-o", str(elf), str(obj)],
    ])  # fmt: skip
    return elf


def synthetic_bzimage(entry64: bytes, *, version: int = 0x020F, xloadflags: int = 1) -> bytes:
    """A bzImage with one setup sector and a protected-mode kernel whose 64-bit
    entry (offset 0x200) is ``entry64``: just enough for the 64-bit boot protocol."""
    boot = bytearray(1024)  # boot sector + 1 setup sector
    boot[0x1F1] = 1  # setup_sects
    struct.pack_into("<H", boot, 0x1FE, 0xAA55)
    boot[0x200:0x202] = b"\xeb\x66"  # jmp over the header: the header ends at 0x268
    boot[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", boot, 0x206, version)
    boot[0x211] = 1  # LOADED_HIGH
    struct.pack_into("<I", boot, 0x230, 0x200000)  # kernel_alignment
    boot[0x234] = 1  # relocatable
    struct.pack_into("<H", boot, 0x236, xloadflags)
    struct.pack_into("<I", boot, 0x238, 255)  # cmdline_size
    struct.pack_into("<Q", boot, 0x258, BZ_LOAD)  # pref_address
    struct.pack_into("<I", boot, 0x260, 0x10000)  # init_size
    return bytes(boot) + bytes(0x200) + entry64


@pytest.fixture(scope="module")
def bzimage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    entry = assemble((HERE / "bzimage_guest.S").read_text(), mode="long", base=BZ_LOAD + 0x200)
    path = tmp_path_factory.mktemp("bz") / "bzImage"
    path.write_bytes(synthetic_bzimage(entry))
    return path


def mshv_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mshv", "run", *args], capture_output=True, text=True, timeout=timeout
    )


# -- the command line ---------------------------------------------------------------------
def test_multiboot_elf_boots(multiboot_elf: Path) -> None:
    """A multiboot v1 ELF gets EAX = magic, EBX = the boot information (command line,
    memory size), prints over the COM1 UART and ends through isa-debug-exit."""
    proc = mshv_run(str(multiboot_elf), "-m", "64M", "--cmdline", "console=ttyS0 quiet", "--timeout", "60")
    assert proc.stdout == (
        f"hello from a multiboot guest\ncmdline: console=ttyS0 quiet\nmem_upper: {(64 << 10) - 1024:08x}\n"
    ), proc.stderr
    assert proc.returncode == (0x21 << 1) | 1


def test_bzimage_64bit_boot_protocol(bzimage: Path) -> None:
    """The 64-bit boot protocol: RSI = boot_params with the command line pointer, the
    e820 map (3 entries) and type_of_loader 0xff; the kernel enters at load + 0x200."""
    proc = mshv_run(str(bzimage), "-m", "64M", "--cmdline", "root=/dev/vda", "--timeout", "60")
    assert proc.stdout == "linux boot: cmdline=root=/dev/vda e820=3 loader=ff\n", proc.stderr
    assert proc.returncode == (0x11 << 1) | 1


def test_flat_binary_with_entry(tmp_path: Path) -> None:
    code = assemble("mov $0x3f8, %dx; mov $'F', %al; out %al, %dx; mov $5, %al; out %al, $0xf4",
                    mode="long", base=0x200000)  # fmt: skip
    path = tmp_path / "flat.bin"
    path.write_bytes(code)
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x200000", "--mode", "long", "--timeout", "60")
    assert (proc.stdout, proc.returncode) == ("F", 11), proc.stderr


def test_halt_without_lapic_ends_the_run(tmp_path: Path) -> None:
    path = tmp_path / "hlt.bin"
    path.write_bytes(assemble("hlt", mode="protected", base=0x100000))
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x100000", "--no-lapic", "--timeout", "60")
    assert proc.returncode == 0 and "VP 0 halted" in proc.stderr


def test_timeout_stops_a_guest_that_never_exits(tmp_path: Path) -> None:
    """A guest spinning without exits is stopped by --timeout: exit 124, like timeout(1)."""
    path = tmp_path / "spin.bin"
    path.write_bytes(assemble("1: jmp 1b", mode="protected", base=0x100000))
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x100000", "--timeout", "1", timeout=60)
    assert proc.returncode == 124 and "no exit after 1.0 s" in proc.stderr


def test_two_vps_ap_started_by_init_sipi(tmp_path: Path) -> None:
    """`--vps 2`: the BSP sends INIT and a STARTUP IPI (vector 8) through the LAPIC's ICR;
    VP 1, waiting in RUN_VP on its own thread, starts at 0800:0000 in real mode, prints on
    COM1 and sets a flag the BSP waits for; then the BSP prints and exits (0x21)."""
    path = tmp_path / "smp.bin"
    path.write_bytes(assemble((HERE / "smp_guest.S").read_text(), mode="protected", base=0x100000))
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x100000", "--vps", "2", "--timeout", "60")
    assert proc.stdout == "AP up\nBSP saw the AP\n", proc.stderr
    assert proc.returncode == (0x21 << 1) | 1, proc.stderr


def test_an_ap_ending_the_machine_ends_the_run(tmp_path: Path) -> None:
    """The run ends when any VP ends it, not only VP 0: here the AP writes isa-debug-exit
    (0x33) while the BSP spins without exits. `mshv run` exits with the AP's code at once,
    long before its --timeout (the subprocess would time out first)."""
    guest = """
        mov $ap, %esi
        mov $0x8000, %edi
        mov $(ap_end - ap), %ecx
        rep movsb
        movl $0x000c4500, 0xfee00300  # INIT
        movl $0x000c4608, 0xfee00300  # STARTUP: the AP at 0800:0000
    1:  jmp 1b
        .code16
    ap: mov $0x33, %al
        out %al, $0xf4
    ap_end:
        .code32
    """
    path = tmp_path / "ap_exit.bin"
    path.write_bytes(assemble(guest, mode="protected", base=0x100000))
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x100000", "--vps", "2", "--timeout", "3600",
                    timeout=60)  # fmt: skip
    assert proc.returncode == (0x33 << 1) | 1, proc.stderr


def test_trace_counts_exits_and_draws_latency(multiboot_elf: Path) -> None:
    proc = mshv_run(str(multiboot_elf), "-m", "16M", "--trace", "--timeout", "60")
    assert proc.returncode == 0x43, proc.stderr
    lines = proc.stderr.splitlines()
    total = int(lines[0].removeprefix("exits: "))
    io_exits = int(next(line.split()[1] for line in lines if line.strip().startswith("io ")))
    # every character: an LSR poll and a THR write, plus the hex digits and the exit
    assert io_exits == total and total > 2 * len("hello from a multiboot guest")
    bars = [line for line in lines if " us " in line and "#" in line]
    assert sum(int(line.split()[3]) for line in bars) == total


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "auto"], "neither a multiboot header nor a bzImage"),
        (["--format", "flat"], "a flat image needs an entry point"),
        (["--format", "flat", "--entry", "0x100000", "-m", "1M"], "larger than 1 MiB"),
        (["--format", "flat", "--entry", "0x7000000", "-m", "64M"], "use -m"),
    ],
)
def test_refusals_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x90" * 64)
    proc = mshv_run(str(path), *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


# -- the loaders ----------------------------------------------------------------------------
def test_bzimage_refuses_old_protocol_and_32bit_only_kernels() -> None:
    with pytest.raises(ImageError, match="2.12"):
        load_image(synthetic_bzimage(b"", version=0x020B), 64 << 20)
    with pytest.raises(ImageError, match="XLF_KERNEL_64"):
        load_image(synthetic_bzimage(b"", xloadflags=0), 64 << 20)


def test_multiboot_kernel_inside_the_boot_area_is_refused() -> None:
    header = struct.pack("<III", 0x1BADB002, 0x10000, (-(0x1BADB002 + 0x10000)) & 0xFFFFFFFF)
    # address fields: header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr
    image = header + struct.pack("<5I", 0x8000, 0x8000, 0, 0, 0x8020) + bytes(64)
    with pytest.raises(ImageError, match="boot area"):
        load_image(image, 64 << 20)


def test_machine_in_process_reports_exits() -> None:
    code = assemble(
        "mov $0x3f8, %dx; mov $'m', %al; out %al, %dx; out %al, $0xf4", mode="protected", base=0x100000
    )
    serial = io.BytesIO()
    report = Machine(flat_image(code, load_gpa=0x100000, entry=0x100000), serial=serial, trace=True).run(10)
    assert (report.reason, report.exit_code, serial.getvalue()) == ("exit", (ord("m") << 1 | 1) & 0xFF, b"m")
    assert report.exits == {"io": 2} and len(report.latency_ns) == 2


def test_host_limit_is_named(tmp_path: Path) -> None:
    """Where the host KVM cannot run the guest's instruction (INT n in long mode on some
    hosts, see `mshv info`), `mshv run` says so; where it can, the guest's handler runs."""
    from mshv.limits import instruction_limit

    guest = """
        lgdt gdtr(%rip)
        lidt idtr(%rip)
        lea handler(%rip), %rax
        mov %ax, idt + 0x80 * 16
        movw $0x8, idt + 0x80 * 16 + 2
        movw $0x8e00, idt + 0x80 * 16 + 4
        shr $16, %rax
        mov %ax, idt + 0x80 * 16 + 6
        int $0x80
    handler:
        mov $9, %al
    1:  out %al, $0xf4
        jmp 1b
    gdtr: .word 15
        .quad gdt
    idtr: .word 256 * 16 - 1
        .quad idt
        .align 8
    gdt: .quad 0, 0x00209a0000000000  # null, 64-bit code at selector 0x8
        .align 16
    idt: .fill 256 * 16, 1, 0
    """
    path = tmp_path / "int.bin"
    path.write_bytes(assemble(guest, mode="long", base=0x100000))
    proc = mshv_run(str(path), "--format", "flat", "--entry", "0x100000", "--mode", "long", "--timeout", "60")
    if instruction_limit("long", "int").works is False:
        assert proc.returncode == 1 and "host's KVM cannot run `int $0x80`" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == (9 << 1) | 1, proc.stderr


def test_snapshot_at_a_port_and_resume(tmp_path: Path) -> None:
    """--snapshot-at PORT saves the machine as it stands past the guest's OUT to PORT;
    --resume starts a new machine from that file and runs only what came after."""
    code = assemble(
        """
        mov $0x3f8, %dx
        mov $'a', %al
        out %al, %dx
        out %al, $0x99          # the snapshot point
        mov $0x3f8, %dx
        incl counter
        mov counter, %eax
        add $'0', %al
        out %al, %dx
        mov $5, %al
    1:  out %al, $0xf4
        jmp 1b
    counter: .long 0
        """,
        mode="protected",
        base=0x100000,
    )
    image, snap = tmp_path / "g.bin", tmp_path / "g.snap"
    image.write_bytes(code)
    args = ["--format", "flat", "--entry", "0x100000", "-m", "4M", "--timeout", "60"]
    first = mshv_run(str(image), *args, "--snapshot-at", "0x99", "--snapshot-file", str(snap))
    assert (first.stdout, first.returncode) == ("a1", 11), first.stderr
    for _ in range(2):  # the counter in the snapshot's memory is 0 each time
        resumed = mshv_run("--resume", str(snap), "--timeout", "60")
        assert (resumed.stdout, resumed.returncode) == ("1", 11), resumed.stderr
    both = mshv_run(str(image), "--resume", str(snap))
    assert both.returncode == 2 and "either an image or --resume" in both.stderr
