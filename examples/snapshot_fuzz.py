"""Snapshot fuzzing: run a guest parser on input after input, resetting the partition between runs.

The guest parses a length-prefixed input the host places in its memory: it copies it into a
buffer, counts its runs in memory, and checks the input against a 4-byte magic one byte at a
time, reporting how many bytes matched (its "coverage") on port 0xF0. All four matching
makes it execute UD2 with no IDT: the VP stops with an unrecoverable exception, the crash the
fuzzer looks for. After each input, ``partition.restore(snapshot)`` puts back the guest's
memory (only the pages it wrote, plus the input the host wrote) and its registers, so every
input runs on the same machine state: the guest's run counter reads 1 every time.

A small coverage-guided loop mutates one byte of the best input so far and keeps the inputs
that match more bytes, until the crash.

Run: python examples/snapshot_fuzz.py
"""

from __future__ import annotations

import random
import time

from mshv import GuestMemory, IoPortIntercept, Mshv, UnrecoverableException
from mshv.testing import PAGED_CODE_GPA, assemble, long_mode_registers

INPUT_GPA, BUFFER_GPA, RUNS_GPA = 0x30000, 0x40000, 0x50000
MAGIC = b"FUZZ"
REPORT_PORT = 0xF0

GUEST = f"""
    incq {RUNS_GPA:#x}                  # runs since the snapshot
    mov {INPUT_GPA:#x}, %ecx            # the input: u32 length, then its bytes
    lea {INPUT_GPA + 4:#x}, %rsi
    mov ${BUFFER_GPA:#x}, %rdi
    rep movsb                           # copy it into the parse buffer
    xor %eax, %eax                      # bytes of the magic matched
    mov ${BUFFER_GPA:#x}, %rsi
    cmpb ${MAGIC[0]}, 0(%rsi); jne done; inc %eax
    cmpb ${MAGIC[1]}, 1(%rsi); jne done; inc %eax
    cmpb ${MAGIC[2]}, 2(%rsi); jne done; inc %eax
    cmpb ${MAGIC[3]}, 3(%rsi); jne done
    ud2                                 # the bug: no IDT, so the VP cannot go on
done:
    out %al, ${REPORT_PORT:#x}
"""


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One byte of ``data`` replaced by a random one."""
    position = rng.randrange(len(data))
    return data[:position] + bytes([rng.randrange(256)]) + data[position + 1 :]


def main() -> None:
    rng = random.Random(2026)
    code = assemble(GUEST, mode="long", base=PAGED_CODE_GPA)
    with Mshv() as hv, GuestMemory(0x100000) as memory, hv.create_partition(lapic=False) as partition:
        memory.write(PAGED_CODE_GPA, code)
        partition.map_memory(memory, 0)
        vp = partition.create_vp(0)
        vp.set_registers(long_mode_registers(memory, PAGED_CODE_GPA))  # type: ignore[arg-type]
        snapshot = partition.snapshot()  # the machine state every input starts from

        best, best_depth, executions, crash = b"AAAA", -1, 0, None
        runs_seen: set[int] = set()
        start = time.perf_counter()
        while crash is None:
            candidate = mutate(best, rng) if best_depth >= 0 else best
            memory.write(INPUT_GPA, len(candidate).to_bytes(4, "little") + candidate)
            exit_ = vp.run()
            executions += 1
            runs_seen.add(int.from_bytes(memory.read(RUNS_GPA, 8), "little"))
            if isinstance(exit_, UnrecoverableException):
                crash = candidate
            else:
                assert isinstance(exit_, IoPortIntercept) and exit_.port == REPORT_PORT, exit_
                if exit_.value > best_depth:
                    best, best_depth = candidate, exit_.value
            partition.restore(snapshot, host_written=[(INPUT_GPA, 4 + len(candidate))])
        elapsed = time.perf_counter() - start

    print(f"crash after {executions} executions: input {crash!r}")
    print(f"the guest's run counter read {sorted(runs_seen)} after each run (a reset before every input)")
    print(f"{executions / elapsed:.0f} executions per second (run + restore)")


if __name__ == "__main__":
    main()
