"""mshv/backend.py: the backend is chosen by opening /dev/mshv, so the road a root host takes
(libc's open/ioctl/mmap on /dev/mshv) can be run here with the emulator preloaded under libc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mshv import backend

TESTS = Path(__file__).resolve().parent

#: The Python API test modules (everything that talks to the backend through mshv's API), run a
#: second time through libc + LD_PRELOAD by test_api_tests_pass_through_libc_and_ld_preload.
API_TEST_MODULES = [
    "test_device.py",
    "test_dirty.py",
    "test_hvcall.py",
    "test_intercept_config.py",
    "test_interrupt.py",
    "test_interrupts.py",
    "test_lifetimes.py",
    "test_memory.py",
    "test_mmio_string.py",
    "test_modes.py",
    "test_native.py",
    "test_partition.py",
    "test_registers.py",
    "test_runloop.py",
    "test_snapshot.py",
    "test_state.py",
    "test_stringio.py",
    "test_testing.py",
    "test_threads.py",
    "test_vp.py",
]

SCRIPT = """
from mshv import HaltIntercept, IoPortIntercept, backend
from mshv._abi import lib
from mshv.testing import assemble, partition_with_one_vp

with partition_with_one_vp(assemble("mov $0x42, %al; out %al, $0x10; hlt"), lapic=False) as (pt, vp, mem):
    out = vp.run()
    assert isinstance(out, IoPortIntercept) and out.value == 0x42, out
    vp.complete_io(out)
    assert isinstance(vp.run(), HaltIntercept)
chosen = backend.current()
print(chosen.name, "|", chosen.reason)
"""


def _preloaded(**extra: str) -> dict[str, str]:
    if os.path.exists("/dev/mshv"):
        pytest.xfail("this host has a real /dev/mshv: the preloaded emulator would not be what runs")
    env = dict(os.environ, LD_PRELOAD=backend.emulator_library_path())
    env.pop("MSHV_BACKEND", None)
    env.update(extra)
    return env


@pytest.mark.parametrize("forced", ["kernel", ""], ids=["MSHV_BACKEND=kernel", "auto"])
def test_a_preloaded_emulator_is_the_kernel_backend(forced: str, backend_ready: None) -> None:
    """Under LD_PRELOAD the device opens through libc: the kernel backend is chosen and runs a guest."""
    env = _preloaded(**({"MSHV_BACKEND": forced} if forced else {}))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    name, reason = proc.stdout.strip().split(" | ")
    assert name == "kernel" and "/dev/mshv opens" in reason, proc.stdout
    assert "LD_PRELOAD" in reason, reason


def test_without_the_device_kernel_is_refused_with_the_reason(backend_ready: None) -> None:
    if os.path.exists("/dev/mshv"):
        pytest.xfail("this host has a real /dev/mshv")
    env = dict(os.environ, MSHV_BACKEND="kernel")
    env.pop("LD_PRELOAD", None)
    code = "from mshv import backend\ntry:\n    backend.select()\n"
    code += "except backend.BackendUnavailable as e:\n    print(e)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "MSHV_BACKEND=kernel" in proc.stdout and "No such file or directory" in proc.stdout, proc.stdout
    assert "LD_PRELOAD" in proc.stdout  # the other way to get a /dev/mshv here


REPORT_PLUGIN = """
def pytest_terminal_summary(terminalreporter):
    from mshv import backend
    chosen = backend.current()
    terminalreporter.write_line(f"mshv backend: {chosen.name if chosen else None}")
"""


def test_api_tests_pass_through_libc_and_ld_preload(backend_ready: None, tmp_path: Path) -> None:
    """CI's second run of the API tests: MSHV_BACKEND=kernel with the emulator preloaded, so every
    call takes libc's open/ioctl/mmap on /dev/mshv, exactly as on a root host."""
    assert sorted(p.name for p in TESTS.glob("test_*.py") if p.name in API_TEST_MODULES) == API_TEST_MODULES
    (tmp_path / "mshv_backend_report.py").write_text(REPORT_PLUGIN)
    env = _preloaded(MSHV_BACKEND="kernel")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mshv_backend_report", "-x"]
    cmd += [str(TESTS / name) for name in API_TEST_MODULES]
    proc = subprocess.run(cmd, cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "mshv backend: kernel" in proc.stdout, proc.stdout[-2000:]  # libc + the preload, not in process
    assert " passed" in proc.stdout and " failed" not in proc.stdout, proc.stdout[-2000:]
