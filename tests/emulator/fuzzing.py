"""Running fuzz_client.c: seeds, processes side by side, and what a clean run looks like.

Used by test_fuzz.py (fixed seeds, the plain library) and test_sanitized.py (fresh
seeds, the ASan+UBSan library). A fresh seed comes from ``os.urandom`` unless
``$MSHV_FUZZ_SEED`` replays one; every seed a run used is printed and named in a
failure, with the command line that replays it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

SEED_ENV = "MSHV_FUZZ_SEED"


def fresh_seed() -> int:
    """``$MSHV_FUZZ_SEED`` (decimal or 0x hex) when set, else 63 random bits from os.urandom."""
    replay = os.environ.get(SEED_ENV)
    if replay:
        return int(replay, 0)
    return int.from_bytes(os.urandom(8), "little") >> 1


@dataclass
class FuzzRun:
    """One fuzz_client process: its seed, exit code and output."""

    seed: int
    ops: int
    args: list[str]
    returncode: int | None
    out: str
    err: str

    def results(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.out.splitlines() if "=" in line)

    def calls(self) -> int:
        """The client's calls into the emulator that returned (ok + errors)."""
        res = self.results()
        return int(res.get("ok", 0)) + int(res.get("errors", 0))

    def replay(self, fuzzer: str, lib: str) -> str:
        command = " ".join([fuzzer, str(self.seed), str(self.ops), *self.args])
        return f"{SEED_ENV}={self.seed} (LD_PRELOAD={lib} {command}; FUZZ_TRACE=1 lists each op)"

    def problem(self) -> str | None:
        """What is wrong with this run, or None when it is clean."""
        if self.returncode is None:
            return "timed out"
        if self.returncode != 0:
            return f"exit {self.returncode}"
        res = self.results()
        fds0, fds1 = res["fds"].split("/")
        maps0, maps1 = res["maps"].split("/")
        if fds0 != fds1 or ("fdcheck" not in self.args and maps0 != maps1):
            return f"fds {fds0}->{fds1}, maps {maps0}->{maps1} after closing everything"
        if res["weird_errno"] != "0":
            return f"{res['weird_errno']} errno(s) the driver cannot give"
        if int(res["ops"]) != self.ops:
            return f"ran {res['ops']} of {self.ops} operations"
        if not (
            int(res["ok"]) > 0
            and int(res["errors"]) > 0
            and int(res["runs"]) > 0
            and int(res["messages"]) > 0
        ):
            return f"the run exercised too little: {res}"
        return None


def run_fuzzers(
    fuzzer: str,
    env: dict[str, str],
    seeds: list[int],
    ops: int,
    timeout: float,
    args: list[str] | None = None,
) -> list[FuzzRun]:
    """Run one fuzz_client per seed side by side (they mostly wait for guests and timers);
    ``args``: ["fdcheck"] counts fds but not mappings at each teardown."""
    args = list(args or [])
    procs = {
        seed: subprocess.Popen(
            [fuzzer, str(seed), str(ops), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    }
    runs = []
    for seed, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            code = None
        runs.append(FuzzRun(seed, ops, args, code, out, err))
    return runs


def failures(runs: list[FuzzRun], fuzzer: str, lib: str) -> list[str]:
    """One paragraph per run that is not clean: seed, replay line, problem, output tail."""
    found = []
    for run in runs:
        problem = run.problem()
        if problem is not None:
            replay = run.replay(fuzzer, lib)
            found.append(f"seed {run.seed}: {problem}; replay: {replay}\n{run.out[-1500:]}{run.err[-4000:]}")
    return found
