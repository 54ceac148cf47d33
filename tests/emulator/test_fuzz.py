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

from pathlib import Path

import pytest
from fuzzing import failures, run_fuzzers
from guest import compile_c

HERE = Path(__file__).resolve().parent
SEEDS = [1, 2, 3, 4, 5]
OPS = 2000


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> str:
    return compile_c(HERE / "fuzz_client.c", tmp_path_factory.mktemp("fuzz"))


def test_fuzz_seeds(fuzzer: str, preload_env: dict[str, str], emu_lib: str) -> None:
    """mshv_dev_ioctl, mshv_partition_ioctl, mshv_vp_ioctl, mshv_vp_mmap and the
    release paths under 5 seeds x 2,000 random operations (run side by side):
    every process exits 0 (no SIGSEGV/SIGABRT/SIGBUS, no hang), every failure is
    an errno the driver can give, the guests ran and produced intercepts, and fd
    and mapping counts are back where they started. (Fresh seeds, 300,000 calls,
    under ASan and UBSan: test_sanitized.py.)"""
    runs = run_fuzzers(fuzzer, preload_env, SEEDS, OPS, timeout=240)
    assert not (bad := failures(runs, fuzzer, emu_lib)), "\n".join(bad)


def test_fuzz_runs_past_its_mapping_table(fuzzer: str, preload_env: dict[str, str], emu_lib: str) -> None:
    """Seeds whose runs used to map more than the client's 256-entry table holds before the
    end: the client then unmapped the guest RAM and register pages it had just mapped and
    went on writing them (SIGSEGV in guest_load or op_regs after ~4,300 and ~5,200 ops).
    Its mappings now last until a teardown every 1,000 operations, which also checks the fd
    and mapping counts each time."""
    runs = run_fuzzers(fuzzer, preload_env, [7, 9], 6000, timeout=240)
    assert not (bad := failures(runs, fuzzer, emu_lib)), "\n".join(bad)
