"""A build without a C compiler installs the pure-Python package, and it runs guests.

The checkout is installed with ``pip install --no-build-isolation --no-deps
--target`` while CC, CXX and LDSHARED are /bin/false, so every compile and link
fails (build_ext/nocc.py). The result must hold no compiled file, use the ABI
snapshot (``mshv._abi_nocc``) and the pure-Python run loop, and run real guests
on the emulator library of this test's own install, named by
MSHV_EMULATOR_LIBRARY (an install without a compiler has none of its own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mshv import abi, backend

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.o", "*_cache", ".benchmarks",
    "_abi.c", "_runloop.c", "_native.c",
)  # fmt: skip
NO_COMPILER = {"CC": "/bin/false", "CXX": "/bin/false", "LDSHARED": "/bin/false"}

RUNLOOP_SCRIPT = """
import mshv._abi
from mshv import abi
from mshv.runloop import RunLoop, native_available
from mshv.testing import assemble, partition_with_one_vp

code = assemble(
    "mov $3, %cx; 1: mov $0x41, %al; out %al, $0xe9; loop 1b;"
    "mov $5, %cx; 2: out %al, $0x80; loop 2b; hlt"
)
with partition_with_one_vp(code, lapic=False) as (pt, vp, mem), RunLoop(vp) as loop:
    console = loop.port_buffer(0xE9)
    ticks = loop.port_counter(0x80)
    result = loop.run()
    print(abi.abi_build(), mshv._abi.__file__, native_available(), loop.native)
    print(result.reason, result.exits, bytes(console.output), ticks.count)
    from mshv import partition
    print("maps in", "C" if partition._memory_calls else "Python")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout, pip-installed without a C compiler into a fresh --target directory."""
    tmp = tmp_path_factory.mktemp("nocc")
    source, target = tmp / "src", tmp / "target"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-v", "--no-build-isolation", "--no-deps", "--no-index",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **NO_COMPILER},
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # The build really could not compile: one warning for each compiled part it left out.
    for part in (
        "mshv._abi (cffi API mode) is not compiled",
        "mshv._runloop (Cython) is not compiled",
        "mshv._native (Cython) is not compiled",
        "mshv/libmshv_emu.so (the /dev/mshv emulator) is not built",
    ):
        assert output.count(f"WARNING: python-mshv: {part} (no working C compiler") == 1, output
    assert "no working C compiler: /bin/false cannot compile a C file" in output
    return target


def _run(installed: Path, *args: str, emulator: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MSHV_EMULATOR_LIBRARY", "MSHV_BACKEND")}
    env["PYTHONPATH"] = str(installed)
    if emulator:
        env["MSHV_EMULATOR_LIBRARY"] = backend.emulator_library_path()
    return subprocess.run(
        [sys.executable, *args], cwd=installed.parent, capture_output=True, text=True, env=env, timeout=120
    )


def test_install_has_no_compiled_file(installed: Path) -> None:
    package = installed / "mshv"
    assert sorted(p.name for p in installed.rglob("*") if p.suffix in (".so", ".o")) == []
    for name in ("_abi.py", "_abi_nocc.py", "_abi_snapshot.py", "_pyloop.py"):
        assert (package / name).is_file(), name
    assert (package / "_abi_snapshot.py").read_text() == (ROOT / "ioctl_defs" / "abi_snapshot.py").read_text()


def test_info_reports_the_snapshot_abi(installed: Path, backend_ready: None) -> None:
    proc = _run(installed, "-m", "mshv", "info")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "abi:           snapshot (pure Python, cffi ABI mode: built without a C compiler)" in lines
    assert "header:        snapshot:bundled:ioctl_defs/include/bundled/linux/mshv.h" in lines
    assert "backend:       emulator (no /dev/mshv; /dev/kvm works)" in lines
    lib_line = f"emulator:      {backend.emulator_library_path()} (from $MSHV_EMULATOR_LIBRARY)"
    assert lib_line in lines
    assert "  MSHV_GET_VP_STATE              vp         supported" in lines  # probed through the emulator


def test_without_an_emulator_the_message_names_the_override(installed: Path, backend_ready: None) -> None:
    proc = _run(installed, "-m", "mshv", "info", emulator=False)
    assert proc.returncode == 1
    assert "the emulator library is missing at" in proc.stdout
    assert "set MSHV_EMULATOR_LIBRARY=/path/to/libmshv_emu.so" in proc.stdout


def test_demo_runs_a_long_mode_guest(installed: Path, backend_ready: None) -> None:
    proc = _run(installed, "-m", "mshv", "demo", "--loops", "2000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == [
        "backend: emulator (no /dev/mshv; /dev/kvm works)",
        "console: hello from a long-mode guest",
        "mmio doubler: wrote 1..5, read back [2, 4, 6, 8, 10]",
    ]
    assert "OUT loop: 2000 exits" in lines[3] and lines[3].endswith("(pure Python run + complete)")


def test_runloop_is_the_python_twin_and_runs_a_guest(installed: Path, backend_ready: None) -> None:
    proc = _run(installed, "-c", RUNLOOP_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build, abi_file, native_built, native_used = proc.stdout.splitlines()[0].split()
    assert (build, native_built, native_used) == ("snapshot", "False", "False")
    assert Path(abi_file) == installed / "mshv" / "_abi.py"
    assert proc.stdout.splitlines()[1:] == ["halt 9 b'AAA' 5", "maps in Python"]


INTERRUPT_SCRIPT = """
import threading, time
from mshv import abi
from mshv.runloop import RunLoop
from mshv.testing import assemble, partition_with_one_vp

with partition_with_one_vp(assemble("1: jmp 1b"), lapic=False) as (pt, vp, mem):
    try:
        vp.run(timeout=0.05)
    except TimeoutError:
        print("timeout")
    with RunLoop(vp, native=False) as loop:
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(loop.run().reason))
        thread.start()
        time.sleep(0.05)
        vp.interrupt()
        thread.join(30)
        print(abi.abi_build(), outcome[0], loop.run(deadline=time.monotonic() + 0.05).reason)
"""


def test_a_vp_that_never_exits_is_stopped_without_a_compiler(installed: Path, backend_ready: None) -> None:
    """Without C the kick's handler is a Python one (installed from the main thread) and the
    kick is libc's tgkill: timeout, interrupt and deadline still bring the run back."""
    proc = _run(installed, "-c", INTERRUPT_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["timeout", "snapshot stopped deadline"]


SNAPSHOT_SCRIPT = """
from mshv import abi
from mshv.testing import assemble, partition_with_one_vp

code = assemble("mov $0x77, %ax; incw (0x3000); out %al, $0x10; hlt")
with partition_with_one_vp(code, lapic=False) as (pt, vp, mem):
    snap = pt.snapshot()
    for _ in range(3):
        exit_ = vp.run()
        print(abi.abi_build(), exit_.port, vp.reg_read("rax") & 0xFFFF, mem.read(0x3000, 2).hex())
        pt.restore(snap)
        print(vp.reg_read("rax"), mem.read(0x3000, 2).hex())
print("restored in one call:", pt._restore_program._native is not None)
"""


def test_a_snapshot_restores_without_a_compiler(installed: Path, backend_ready: None) -> None:
    """The restore runs through the twins of build_ext/call_batch.py and, for its dirty-page
    restores, of build_ext/restore_program.py (one call)."""
    proc = _run(installed, "-c", SNAPSHOT_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["snapshot 16 119 0100", "0 0000"] * 3 + ["restored in one call: True"]


FAILED_RESTORE_SCRIPT = """
import errno
from mshv import MshvError
from mshv._abi import lib
from mshv.testing import assemble, partition_with_one_vp

code = assemble("incw (0x3000); out %al, $0x10; hlt")
with partition_with_one_vp(code, lapic=False) as (pt, vp, mem):
    snap = pt.snapshot()
    vp.run()
    pt.restore(snap)
    program = pt._restore_program
    for slot in (1, 0):  # the VP's calls fail; then the TIME_FREEZE read
        vp.run()
        fd = program.fds[slot]
        program.fds[slot] = -1
        try:
            pt.restore(snap)
        except MshvError as exc:
            frozen = pt.get_property(lib.HV_PARTITION_PROPERTY_TIME_FREEZE)
            print(slot, errno.errorcode[exc.errno], exc.hv_status, frozen, mem.read(0x3000, 2).hex())
        finally:
            program.fds[slot] = fd
        pt.restore(snap)
        print(mem.read(0x3000, 2).hex(), program._native is not None)
"""


def test_a_failed_restore_without_a_compiler_raises_and_thaws(installed: Path, backend_ready: None) -> None:
    """The twin of build_ext/restore_program.py stops where the C one does: a VP call failing
    after the pages came back (time thawed), a TIME_FREEZE read failing before anything."""
    proc = _run(installed, "-c", FAILED_RESTORE_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "1 EBADF None 0 0000",  # the dirty page was copied before the VP calls failed
        "0000 True",
        "0 EBADF None 0 0100",  # nothing was copied
        "0000 True",
    ]


def test_examples_ship_with_the_package(installed: Path, backend_ready: None) -> None:
    """The installed package carries examples/ (as mshv/examples): ``mshv examples`` runs them."""
    assert (installed / "mshv" / "examples" / "hello_guest.py").is_file()
    proc = _run(installed, "-m", "mshv", "examples", "hello_guest")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["Hello from a real-mode guest!", "guest halted after 30 exits"]


def test_abi_report_equals_the_compiled_one(installed: Path) -> None:
    proc = _run(installed, "-m", "mshv", "abi", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    compiled = abi.abi_report()
    assert report["source"] == "snapshot:bundled:ioctl_defs/include/bundled/linux/mshv.h"
    assert report["structs"] == compiled["structs"]
    assert report["constants"] == compiled["constants"]


def test_bench_says_it_needs_the_compiled_abi(installed: Path) -> None:
    """The C baselines need a C compiler and the C kernel table: a clear refusal, no traceback."""
    proc = _run(installed, "-m", "mshv", "bench", "--quick")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "mshv bench needs the compiled mshv._abi" in proc.stderr and "Traceback" not in proc.stderr
