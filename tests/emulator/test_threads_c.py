"""VPs on threads from C under LD_PRELOAD (threads_client.c).

- 4 VPs of one partition, each driven by its own thread that maps its own guest
  memory, creates its own VP and runs a real-mode loop of OUTs to a per-VP port with
  per-VP values; every exit's port, value and size is checked, then the HALT.
- RUN_VP in one thread and GET_VP_REGISTERS (the hypercall on the VP fd) in another:
  serialized by the VP mutex as mshv_vp_ioctl does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import assemble, compile_c

HERE = Path(__file__).resolve().parent
EXITS = 1000
SPIN_RIP = 0x80

GUEST = r"""
start:
    mov %cs:0x100, %dx          # port
    mov %cs:0x104, %eax         # first value
    mov %cs:0x108, %ecx         # number of OUTs
1:  out %eax, %dx
    inc %eax
    dec %ecx
    jnz 1b
    hlt
.org 0x80
spin:
    out %al, $0x50
    cli
2:  hlt
    jmp 2b
.org 0x100
    .long 0, 0, 0
.org 0x10000
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("threads_c")
    exe = compile_c(HERE / "threads_client.c", tmp)
    image = tmp / "guest.bin"
    image.write_bytes(assemble(GUEST, tmp, 16))
    return exe, str(image)


def run_case(client: tuple[str, str], env: dict[str, str], *args: str) -> dict[str, str]:
    exe, image = client
    proc = subprocess.run(
        [exe, args[0], image, *args[1:]], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def test_four_vps_four_threads(client: tuple[str, str], preload_env: dict[str, str]) -> None:
    """mshv_partition_ioctl_create_vp and mshv_vp_ioctl_run_vp from 4 threads at once:
    each thread's SET_GUEST_MEMORY, CREATE_VP, register hypercalls and 1,000 RUN_VP
    round trips see only its own VP's exits (port 0x1000+i, values (i+1)<<24 + k,
    4-byte OUT), then HALT."""
    out = run_case(client, preload_env, "four_vps", str(EXITS))
    for i in range(4):
        assert out.get(f"vp{i}.error") is None, out[f"vp{i}.error"]
        assert out[f"vp{i}.exits"] == str(EXITS)
        assert out[f"vp{i}.halted"] == "1"


def test_run_vp_serializes_get_registers(client: tuple[str, str], preload_env: dict[str, str]) -> None:
    """mshv_vp_ioctl: every VP ioctl holds vp_mutex, RUN_VP included. Thread A sits in
    RUN_VP (LAPIC partition, the guest halted with IF=0: A is seen sleeping inside the
    emulator's KVM_RUN), thread B's HVCALL_GET_VP_REGISTERS
    on the same VP fd blocks (seen waiting on a futex) and returns only after A's
    RUN_VP ends with EINTR (a signal), reading the RIP RUN_VP left."""
    out = run_case(client, preload_env, "run_vs_get")  # SIGALRM after 60 s if B never blocks
    assert out["first.type"] == "0x80010000"
    assert out["first.port"] == "0x50"
    # A inside KVM_RUN and B waiting on the VP mutex at the same moment, neither returned
    assert out["blocked.order"] == "0"
    assert out["run.ret"] == "-1"
    assert out["run.errno"] == "EINTR"
    assert out["get.ret"] == "0"
    # past the OUT (2 bytes) and CLI: at the HLT or past it (the halted VP)
    assert out["get.rip"] in (hex(SPIN_RIP + 3), hex(SPIN_RIP + 4)), out["get.rip"]
    assert out["after.rip"] == out["get.rip"]
