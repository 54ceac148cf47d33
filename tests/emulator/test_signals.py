"""Signals during MSHV_RUN_VP are never lost (signal_client.c, issue 12 item 1).

The kernel's RUN_VP returns EINTR whenever a signal is pending for its thread
(mshv_run_vp_with_hyp_scheduler: the interruptible wait; the root scheduler's
signal_pending checks before each dispatch). The emulator's RUN_VP runs its own
code before and between KVM_RUNs; a signal landing there must still end the
call with EINTR, not run the handler and leave the next KVM_RUN waiting on a
halted guest.

The emulator keeps that in two ways (emulator/signals.c): under LD_PRELOAD it wraps the
client's handlers, so RUN_VP blocks nothing; dlopen()ed in-process (the Python binding's
way) it blocks signals while its own code runs. Both are tested with thread-directed
signals. Process-directed signals are tested under LD_PRELOAD only: in-process, one that
arrives while the block is up can go to another thread of the client.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from guest import assemble, compile_c

HERE = Path(__file__).resolve().parent
SIGNALS = 800
MAX_DELAY_NS = 60_000

GUEST = r"""
start:
    cli
1:  hlt
    jmp 1b
.org 0x10000
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("signals")
    exe = compile_c(HERE / "signal_client.c", tmp, ["-lrt"])
    image = tmp / "guest.bin"
    image.write_bytes(assemble(GUEST, tmp, 16))
    return exe, str(image)


@pytest.fixture(params=["preload", "inproc"])
def way_env(request: pytest.FixtureRequest, emu_lib: str, preload_env: dict[str, str]) -> dict[str, str]:
    """How the client reaches the emulator: LD_PRELOAD, or dlopen() and its entry points."""
    if request.param == "preload":
        return preload_env
    env = dict(os.environ)
    env["MSHV_EMU_INPROC"] = emu_lib
    first = os.environ.get("MSHV_EMU_PRELOAD_FIRST")
    if first:
        env["LD_PRELOAD"] = first
    return env


def _rounds(client: tuple[str, str], mode: str, env: dict[str, str]) -> dict[str, str]:
    """Run signal_client's ``mode`` (swallow, reenter or divert) with a fresh seed; its key=value
    counts, after the checks every mode shares: all rounds ran, none ended another way,
    most signals landed inside RUN_VP (the rest before the ioctl, lost on the kernel
    too), and every handler saw its signal's siginfo. ``out["report"]`` has the seed and
    the client's output."""
    exe, image = client
    seed = int.from_bytes(os.urandom(4), "little")
    proc = subprocess.run(
        [exe, mode, image, str(SIGNALS), str(MAX_DELAY_NS), str(seed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert out["signals"] == str(SIGNALS)
    assert out["other"] == "0", proc.stdout
    assert int(out["ok"]) >= SIGNALS // 2, proc.stdout
    assert out["siginfo_lost"] == "0", proc.stdout  # each handler saw its timer's siginfo
    out["report"] = f"seed {seed}: {proc.stdout}"
    return out


def test_no_signal_swallowed_in_run_vp(client: tuple[str, str], way_env: dict[str, str]) -> None:
    """800 one-shot SIGALRMs at random delays (1 ns - 60 us) after the timer is armed, each
    into a RUN_VP on a VP halted with IF=0 on a LAPIC partition: every one whose handler
    ran inside RUN_VP ends that RUN_VP with EINTR (none is followed by RUN_VP waiting on
    until the 100 ms watchdog signal). Without the fix, the ones whose handler ran in the
    emulator's own code (before or between KVM_RUNs) were swallowed."""
    out = _rounds(client, "swallow", way_env)
    assert out["swallowed"] == "0", out["report"]


def test_a_handler_may_use_the_vp_its_signal_interrupted(
    client: tuple[str, str], way_env: dict[str, str]
) -> None:
    """The same rounds with a handler that reads the VP's RIP through its fd. The kernel runs
    a handler when RUN_VP has returned, so the VP is free then: all 800 reads succeed. Before,
    under LD_PRELOAD, the handler ran inside the emulator's RUN_VP, which holds the VP's lock,
    and the first read waited on it for ever (the client hung)."""
    out = _rounds(client, "reenter", way_env)
    assert out["swallowed"] == "0", out["report"]
    assert (out["handler_reads"], out["handler_read_failures"]) == (str(SIGNALS), "0"), out["report"]


def test_process_directed_signal_ends_the_leaders_run_vp(
    client: tuple[str, str], preload_env: dict[str, str]
) -> None:
    """800 process-directed SIGALRMs (SIGEV_SIGNAL) while the thread group leader is in
    RUN_VP on a halted VP and a second thread sleeps with SIGALRM unblocked. The kernel
    gives such a signal to the leader when it does not block it (complete_signal), and the
    leader's RUN_VP, which blocks nothing, returns EINTR. An emulator that blocked signals
    while its own RUN_VP code ran let the kernel hand some of them to the sleeping thread,
    and the leader's RUN_VP went on waiting."""
    out = _rounds(client, "divert", preload_env)
    assert (out["swallowed"], out["diverted"]) == ("0", "0"), out["report"]


def test_wrapped_handlers_keep_the_clients_view_and_semantics(
    client: tuple[str, str], preload_env: dict[str, str]
) -> None:
    """Under LD_PRELOAD the kernel holds the emulator's wrapper for a client's handler, yet
    sigaction()/signal() report the client's own action, and delivery keeps its semantics:
    siginfo, sa_mask, SA_RESETHAND, BSD signal(), SIG_IGN, EINVAL for SIGKILL. A vfork child
    that resets a handler before exec (posix_spawn, Python's subprocess) leaves the parent's
    alone: before, it reset the parent's record too, and the parent died of its next signal."""
    exe, _ = client
    proc = subprocess.run([exe, "handlers"], env=preload_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "handlers=ok" in proc.stdout
    assert "kernel_handler_is_clients=0" in proc.stdout, proc.stdout
