"""Boot our multiboot guest (guest.S) under Debian sid's QEMU, with -accel kvm or -accel mshv.

Shared by tests/qemu/test_qemu_boot.py and bench/qemu_boot.py:

- ``build_guest(tmp)``: assemble guest.S with GNU as (through gcc's preprocessor) and
  link it with ld into a 32-bit multiboot ELF for ``-kernel``.
- ``boot(qemu, kernel, accel, tmp)``: run QEMU once (q35, COM1 into a file,
  isa-debug-exit) and return what it printed and its exit status. ``accel="mshv"``
  runs it with ``LD_PRELOAD`` of the emulator library that
  ``mshv emulator --preload-path`` names, so QEMU's ``/dev/mshv`` is the emulator.
- ``EXPECTED_SERIAL`` and ``EXIT_STATUS``: what a correct boot prints and returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from qemu_sid import SidQemu  # noqa: E402

GUEST_SOURCE = Path(__file__).resolve().parent / "guest.S"

TICKS = 5  # PIT interrupts the guest waits for (100 Hz)
EXIT_VALUE = 0x21  # written to isa-debug-exit at the end
FAULT_VALUE = 0x3E  # written on an unexpected vector
EXIT_STATUS = (EXIT_VALUE << 1) | 1  # isa-debug-exit: QEMU exits with (value << 1) | 1
FAULT_STATUS = (FAULT_VALUE << 1) | 1
DEBUG_EXIT_DEVICE = "isa-debug-exit,iobase=0xf4,iosize=0x04"

EXPECTED_SERIAL = (
    "multiboot ok\n"
    "hpet period 10000000 fs\n"  # QEMU's HPET counts at 100 MHz
    + "".join(f"tick {n}\n" for n in range(1, TICKS + 1))
    + f"hpet advanced at least {(TICKS - 1) * 10} ms\n"
    "done\n"
)

DONE_LINE = "done\n"
BOOT_TIMEOUT_S = 120.0


POLL_S = 0.005  # how often a running boot's serial file is looked at


@dataclass(frozen=True)
class Boot:
    """One QEMU run: its exit status, the guest's serial output, QEMU's stderr, wall times.

    ``seconds`` is from start to exit; ``first_output_s`` and ``done_s`` are when the
    serial file was first seen non-empty and first seen ending in "done" (None if
    never): firmware and load before the first, the guest between them, QEMU's
    shutdown after the second (each to within the poll interval).
    """

    accel: str
    returncode: int
    serial: str
    stderr: str
    seconds: float
    first_output_s: float | None = None
    done_s: float | None = None

    def describe(self) -> str:
        """Everything a failed assertion should show."""
        return (
            f"-accel {self.accel}: exit status {self.returncode} after {self.seconds:.1f} s\n"
            f"--- serial ---\n{self.serial}--- QEMU stderr ---\n{self.stderr}"
        )


class BootTimeout(AssertionError):
    """QEMU did not exit in time; the message holds its output so far."""


def build_guest(tmp: Path) -> Path:
    """Assemble and link guest.S into a 32-bit multiboot ELF; return its path."""
    tmp.mkdir(parents=True, exist_ok=True)
    obj, elf = tmp / "guest.o", tmp / "guest.elf"
    defines = [f"-DTICKS={TICKS}", f"-DEXIT_VALUE={EXIT_VALUE:#x}", f"-DFAULT_VALUE={FAULT_VALUE:#x}"]
    _run(["gcc", "-m32", "-c", *defines, str(GUEST_SOURCE), "-o", str(obj)])
    _run(["ld", "-m", "elf_i386", "-N", "-e", "_start", "-Ttext=0x100000", "-o", str(elf), str(obj)])
    return elf


def preload_path() -> str:
    """The emulator library, as a user gets it: ``mshv emulator --preload-path``."""
    proc = subprocess.run(
        [sys.executable, "-m", "mshv", "emulator", "--preload-path"], capture_output=True, text=True
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"mshv emulator --preload-path failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


def qemu_args(kernel: Path, accel: str, serial: Path) -> list[str]:
    """The QEMU arguments of one boot (the same for every accelerator but ``-accel``)."""
    return [
        "-machine", "q35", "-accel", accel, "-m", "64", "-nodefaults", "-display", "none",
        "-no-reboot", "-serial", f"file:{serial}", "-device", DEBUG_EXIT_DEVICE, "-kernel", str(kernel),
    ]  # fmt: skip


def boot(
    qemu: SidQemu,
    kernel: Path,
    accel: str,
    tmp: Path,
    timeout: float = BOOT_TIMEOUT_S,
    tracer: Path | None = None,
) -> Boot:
    """Boot ``kernel`` once under ``-accel accel`` ("kvm" or "mshv", the latter on the emulator).

    ``tracer`` (see :func:`build_tracer`) is preloaded before the emulator to log its ioctls.

    Raises:
        BootTimeout: QEMU still ran after ``timeout`` seconds (it is killed).
    """
    if accel not in ("kvm", "mshv"):
        raise ValueError(f"accel must be kvm or mshv, not {accel!r}")
    serial = tmp / f"serial-{accel}-{os.getpid()}-{time.monotonic_ns()}.txt"
    preload = [str(tracer)] if tracer else []
    preload += [preload_path()] if accel == "mshv" else []
    env = qemu.environment(" ".join(preload) or None)
    argv = qemu.command(*qemu_args(kernel, accel, serial))
    log = tmp / f"{serial.stem}.log"
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        finished, first_output, done = _watch(proc, serial, start, timeout)
    result = Boot(
        accel, proc.returncode, _read(serial), _read(log), time.monotonic() - start, first_output, done
    )
    if not finished:
        raise BootTimeout(f"QEMU did not exit within {timeout:.0f} s; killed.\n{result.describe()}")
    return result


def _watch(
    proc: subprocess.Popen[bytes], serial: Path, start: float, timeout: float
) -> tuple[bool, float | None, float | None]:
    """Wait for QEMU to exit, noting when its serial output starts and ends.

    Returns:
        (exited by itself, first output time, "done" time); after ``timeout``
        seconds QEMU's process group is killed and the first is False.
    """
    first_output = done = None
    while proc.poll() is None:
        now = time.monotonic() - start
        if now > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False, first_output, done
        if done is None:
            text = _read(serial)
            if text and first_output is None:
                first_output = now
            if text.endswith(DONE_LINE):
                done = now
        time.sleep(POLL_S)
    return True, first_output, done


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")


TRACE_SOURCE = Path(__file__).resolve().parent / "hvcall_trace.c"
INCLUDE_ROOT = Path(__file__).resolve().parents[2] / "ioctl_defs" / "include"


def build_tracer(tmp: Path) -> Path:
    """Compile hvcall_trace.c, the LD_PRELOAD tracer of /dev/mshv ioctls; return the .so."""
    lib = tmp / "hvcall_trace.so"
    includes = [f"-I{INCLUDE_ROOT / 'bundled'}", f"-I{INCLUDE_ROOT}"]
    _run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", *includes, str(TRACE_SOURCE), "-o", str(lib)])
    return lib


def main(argv: list[str] | None = None) -> int:
    """Boot the guest once and print what happened (the reproduction of the test's boots)."""
    import argparse
    import tempfile

    from qemu_sid import fetch_qemu

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--accel", choices=("kvm", "mshv"), default="mshv")
    parser.add_argument("--trace", metavar="FILE", help="log every /dev/mshv ioctl and hypercall to FILE")
    parser.add_argument("--timeout", type=float, default=BOOT_TIMEOUT_S)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mshv-qemu-") as tmp_name:
        tmp = Path(tmp_name)
        qemu, kernel = fetch_qemu(), build_guest(tmp)
        tracer = None
        if args.trace:
            tracer = build_tracer(tmp)
            os.environ["MSHV_TRACE_FILE"] = str(Path(args.trace).resolve())
            Path(args.trace).write_text("")
        result = boot(qemu, kernel, args.accel, tmp, args.timeout, tracer=tracer)
    print(result.describe())
    ok = result.returncode == EXIT_STATUS and result.serial == EXPECTED_SERIAL
    print("boot matches the expected serial output and exit status" if ok else "boot FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
