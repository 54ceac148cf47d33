"""RUN_VP end to end: guests assembled here, run through run_client.c under LD_PRELOAD.

The client is a plain /dev/mshv VMM: it completes every intercept the mshv way
(results written, RIP = rip + instruction_length) and the guest echoes what it saw.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import assemble, compile_c

HERE = Path(__file__).resolve().parent

HVMSG_UNMAPPED_GPA = 0x80000000
HVMSG_UNRECOVERABLE_EXCEPTION = 0x80000021
HVMSG_X64_IO_PORT_INTERCEPT = 0x80010000
HVMSG_X64_HALT = 0x80010007
ACCESS_READ, ACCESS_WRITE, ACCESS_EXECUTE = 0, 1, 2

RESET = """
.org 0xfff0                 # reset vector F000:FFF0 (the first 64 KiB are aliased there)
    ljmp $0, $start
.org 0x10000
"""

TRACE_GUEST = (
    """
start:
    mov $0x42, %al
    out %al, $0x10          # 0x00: OUT imm8, AL
    mov $0x1234, %ax
    mov $0x20, %dx
    out %ax, %dx            # 0x0a: OUT DX, AX
    in $0x60, %al           # 0x0b: IN, the VMM supplies the value
    out %al, $0x61          # 0x0d: echo what the guest saw
    mov $0x2000, %ax
    mov %ax, %ds
    movb %ds:0x10, %al      # 0x14: MMIO read, GPA 0x20010 (no region)
    out %al, $0x62          # 0x17: echo
    movb $0x99, %ds:0x14    # 0x19: MMIO write, GPA 0x20014
    xor %ax, %ax
    mov %ax, %ds
    mov $msg, %si
    mov $5, %cx
    mov $0x63, %dx
    rep outsb               # 0x2b: string IO
    mov %cx, %ax
    out %al, $0x64          # 0x2f: CX after the REP
    mov %si, %ax
    out %ax, $0x65          # 0x33: SI after the REP
    hlt                     # 0x35
msg: .ascii "hello"
"""
    + RESET
)

SIGNAL_GUEST = (
    """
start:
1:  jmp 1b
.org 0x10
    mov $1, %al
    out %al, $0x70
    hlt
"""
    + RESET
)

LONG_MODE_GUEST = """
    mov $0x1122334455667788, %rax
    out %eax, $0x10             # 0x1000a
    mov $0x200010, %rbx
    mov (%rbx), %ecx            # 0x10013: MMIO read through the page tables
    mov %ecx, %eax
    out %eax, $0x11             # 0x10017: echo
    movl $0xabcd, 0x200020      # 0x10019: MMIO write, 11 bytes (SIB, disp32, imm32)
    hlt
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "run_client.c", tmp_path_factory.mktemp("run"), ["-Wno-unused-parameter"])


def run_case(client: str, env: dict[str, str], *args: str) -> dict[str, str]:
    proc = subprocess.run([client, *args], env=env, capture_output=True, text=True, timeout=300)
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def num(out: dict[str, str], key: str) -> int:
    return int(out[key], 0)


def trace(client, env, tmp_path, regpage: bool) -> dict[str, str]:
    image = tmp_path / "trace.bin"
    image.write_bytes(assemble(TRACE_GUEST, tmp_path, 16))
    return run_case(client, env, "trace", str(image), "0", "0x5a", "0x77", "1" if regpage else "0")


@pytest.mark.parametrize("regpage", [False, True], ids=["set_vp_registers", "register_page"])
def test_port_io(client, preload_env, tmp_path, regpage):
    """mshv_vp_ioctl_run_vp (hv_x64_io_port_intercept_message): OUT and IN give
    X64_IO_PORT_INTERCEPT with RIP *at* the instruction, its length and bytes; the
    VMM's RAX/RIP (by SET_VP_REGISTERS or the register page) are what the guest sees."""
    out = trace(client, preload_env, tmp_path, regpage)
    # OUT imm8, AL
    assert num(out, "exit0.type") == HVMSG_X64_IO_PORT_INTERCEPT
    assert num(out, "exit0.rip") == 0x2 and num(out, "exit0.len") == 2
    assert out["exit0.bytes"] == "e610"
    assert num(out, "exit0.port") == 0x10 and num(out, "exit0.size") == 1
    assert num(out, "exit0.access") == ACCESS_WRITE
    assert num(out, "exit0.value") == 0x42
    assert out["exit0.msg_page_same"] == "1"
    assert num(out, "exit0.regpage_rip") == 0x2 and out["exit0.regpage_valid"] == "1"
    assert num(out, "exit0.cs_selector") == 0
    # OUT DX, AX
    assert num(out, "exit1.rip") == 0xA and num(out, "exit1.len") == 1
    assert num(out, "exit1.port") == 0x20 and num(out, "exit1.size") == 2
    assert num(out, "exit1.value") == 0x1234
    # IN AL, imm8: RAX as before the IN, then the guest echoes the VMM's value
    assert num(out, "exit2.rip") == 0xB and num(out, "exit2.len") == 2
    assert num(out, "exit2.access") == ACCESS_READ
    assert num(out, "exit2.port") == 0x60 and out["exit2.bytes"] == "e460"
    assert num(out, "exit2.rax") == 0x1234
    assert num(out, "exit3.port") == 0x61 and num(out, "exit3.value") == 0x5A


@pytest.mark.parametrize("regpage", [False, True], ids=["set_vp_registers", "register_page"])
def test_mmio(client, preload_env, tmp_path, regpage):
    """mshv_vp_ioctl_run_vp: an access to a GPA no region maps is UNMAPPED_GPA with the
    GPA, READ/WRITE and the instruction bytes at RIP; a read completed by the VMM is what
    the guest loads. A write KVM has already retired is still reported at its start."""
    out = trace(client, preload_env, tmp_path, regpage)
    assert num(out, "exit4.type") == HVMSG_UNMAPPED_GPA
    assert num(out, "exit4.gpa") == 0x20010 and num(out, "exit4.access") == ACCESS_READ
    assert num(out, "exit4.rip") == 0x14 and num(out, "exit4.len") == 3
    assert out["exit4.bytes"].startswith("a01000")
    assert num(out, "exit5.port") == 0x62 and num(out, "exit5.value") == 0x77
    assert num(out, "exit6.type") == HVMSG_UNMAPPED_GPA
    assert num(out, "exit6.gpa") == 0x20014 and num(out, "exit6.access") == ACCESS_WRITE
    assert num(out, "exit6.rip") == 0x19 and num(out, "exit6.len") == 5
    assert out["exit6.bytes"].startswith("c606140099")


def test_rep_outsb(client, preload_env, tmp_path):
    """mshv_vp_ioctl_run_vp: REP OUTSB is one IO intercept with string_op and rep_prefix,
    RIP at the instruction and RCX/RSI as the guest set them; the VMM emulates all of it."""
    out = trace(client, preload_env, tmp_path, False)
    assert num(out, "exit7.port") == 0x63
    assert out["exit7.string"] == "1" and out["exit7.rep"] == "1"
    assert num(out, "exit7.rip") == 0x2B and num(out, "exit7.len") == 2
    assert out["exit7.bytes"] == "f36e"
    assert num(out, "exit7.rcx") == 5 and num(out, "exit7.rsi") == 0x36
    assert bytes.fromhex(out["exit7.data"]) == b"hello"
    assert num(out, "exit8.value") == 0  # CX after the VMM completed the REP
    assert num(out, "exit9.value") == 0x3B  # SI advanced by 5


def test_halt(client, preload_env, tmp_path):
    """mshv_vp_ioctl_run_vp: HLT on a partition without LAPIC gives X64_HALT, with RIP at
    the HLT (the VP stays there) and instruction length 1."""
    out = trace(client, preload_env, tmp_path, False)
    assert num(out, "exit10.type") == HVMSG_X64_HALT
    assert num(out, "exit10.rip") == 0x35 and num(out, "exit10.len") == 1
    assert num(out, "exit10.regpage_rip") == 0x35


def test_signal_eintr_then_resume(client, preload_env, tmp_path):
    """mshv_run_vp_with_hyp_scheduler (its signal_pending path): a signal with no
    intercept in flight gives EINTR (not restarted) and leaves EXPLICIT_SUSPEND set; the
    next RUN_VP resumes the VP and clears it."""
    image = tmp_path / "sig.bin"
    image.write_bytes(assemble(SIGNAL_GUEST, tmp_path, 16))
    out = run_case(client, preload_env, "signal", str(image), "0x10")
    assert out["run1.errno"] == "EINTR"
    assert out["explicit_suspend"] == "1"
    assert out["rip_after_eintr_in_loop"] == "1"
    assert out["run2.errno"] == "0"
    assert num(out, "run2.type") == HVMSG_X64_IO_PORT_INTERCEPT
    assert num(out, "run2.port") == 0x70
    assert out["explicit_suspend2"] == "0"


def test_long_mode_guest(client, preload_env, tmp_path):
    """mshv_vp_ioctl_run_vp in 64-bit mode (page tables built by the test, CR0/CR4/EFER/CS
    set in one SET_VP_REGISTERS batch): 64-bit RAX in the IO intercept, EFER_LMA in the
    execution state, MMIO through the page tables, TRANSLATE_VIRTUAL_ADDRESS results."""
    image = tmp_path / "lm.bin"
    image.write_bytes(assemble(LONG_MODE_GUEST, tmp_path, 64, base=0x10000))
    out = run_case(client, preload_env, "longmode", str(image))
    assert out["setup.errno"] == "0" and num(out, "setup.reps") == 11
    assert num(out, "efer") & 0x500 == 0x500
    assert out["xlate.status"] == "0"
    assert num(out, "xlate.result") == 0 and num(out, "xlate.gpa_page") == 0x10  # SUCCESS
    assert num(out, "xlate2.result") == 1  # PAGE_NOT_PRESENT
    assert num(out, "xlate3.result") == 4  # GPA_UNMAPPED
    assert num(out, "exit0.type") == HVMSG_X64_IO_PORT_INTERCEPT
    assert num(out, "exit0.rip") == 0x1000A and num(out, "exit0.len") == 2
    assert num(out, "exit0.size") == 4 and num(out, "exit0.rax") == 0x1122334455667788
    assert num(out, "exit0.execution_state") & 0x14 == 0x14  # CR0_PE | EFER_LMA
    assert num(out, "exit0.cs_attributes") == 0xA09B
    assert num(out, "exit1.type") == HVMSG_UNMAPPED_GPA
    assert num(out, "exit1.gpa") == 0x200010 and num(out, "exit1.access") == ACCESS_READ
    assert num(out, "exit1.rip") == 0x10013 and out["exit1.bytes"] == "8b0b"
    assert num(out, "exit2.rax") == 0xC0FFEE  # the VMM's MMIO value reached the guest
    assert num(out, "exit3.gpa") == 0x200020 and num(out, "exit3.access") == ACCESS_WRITE
    assert num(out, "exit3.rip") == 0x10019 and num(out, "exit3.len") == 11


IN_GUEST = (
    """
start:
    in $0x60, %al
    out %al, $0x61
    hlt
"""
    + RESET
)


def test_in_not_completed_runs_again(client, preload_env, tmp_path):
    """mshv semantics (mshv_vp_ioctl_run_vp: RIP stays at the intercepted instruction): a RUN_VP
    after an IN intercept that the VMM did not complete re-executes the IN (same intercept again);
    once completed (RAX, RIP + length) the guest sees the VMM's value."""
    image = tmp_path / "in.bin"
    image.write_bytes(assemble(IN_GUEST, tmp_path, 16))
    out = run_case(client, preload_env, "in_repeat", str(image))
    for i in (0, 1):
        assert num(out, f"run{i}.port") == 0x60 and num(out, f"run{i}.rip") == 0
        assert num(out, f"run{i}.access") == ACCESS_READ
    assert num(out, "echo.port") == 0x61 and num(out, "echo.value") == 0x33
