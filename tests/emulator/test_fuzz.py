"""The emulator under random client input (fuzz_client.c, under LD_PRELOAD).

The rule (every handler in mshv_root_main.c copies in and checks first): whatever a
client passes — pointers, sizes, struct fields, ioctl numbers, hypercall codes,
inputs and rep counts, register names and values, VP state, mmap offsets, call
order, closes while another thread is inside RUN_VP — the answer is an errno or
an HV status: never a crash, a hang, or an fd or mapping left behind once every
handle is closed.

fuzz_client.c exits 0 when clean; a crash kills it with a signal, its watchdog
exits 3 on a hang, and 4 when /proc/self/fd or /proc/self/maps does not return
to the count taken after a warm-up cycle. A failing seed reproduces with
``LD_PRELOAD=<lib> fuzz_client <seed> <ops>`` (FUZZ_TRACE=1 prints each operation).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent
SEEDS = (1, 2, 3, 4, 5)
OPS = 2000


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> str:
    return compile_c(HERE / "fuzz_client.c", tmp_path_factory.mktemp("fuzz"))


def parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_fuzz_seeds(fuzzer: str, preload_env: dict[str, str]) -> None:
    """mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl, mshv_vp_mmap and the
    release paths under 5 seeds x 2,000 random operations (run side by side):
    every process exits 0 (no SIGSEGV/SIGABRT/SIGBUS, no hang), every failure is
    an errno the driver can give, the guests ran and produced intercepts, and fd
    and mapping counts are back where they started."""
    procs = {
        seed: subprocess.Popen(
            [fuzzer, str(seed), str(OPS)],
            env=preload_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in SEEDS
    }
    failures = []
    for seed, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append(f"seed {seed}: timed out\n{out}{err[-2000:]}")
            continue
        if proc.returncode != 0:
            failures.append(f"seed {seed}: exit {proc.returncode}\n{out}{err[-2000:]}")
            continue
        res = parse(out)
        fds0, fds1 = res["fds"].split("/")
        maps0, maps1 = res["maps"].split("/")
        assert (fds0, maps0) == (fds1, maps1), f"seed {seed}: {res}"
        assert res["weird_errno"] == "0", f"seed {seed}: {err}"
        assert int(res["ops"]) == OPS
        assert int(res["ok"]) > 0 and int(res["errors"]) > 0, res
        assert int(res["runs"]) > 0 and int(res["messages"]) > 0, res
    assert not failures, "\n".join(failures)
