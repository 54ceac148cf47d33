"""mshv/__main__.py: the ``mshv`` command's exits, output and refusals."""

from __future__ import annotations

import os
import subprocess
import sys


def _mshv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mshv", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_an_unavailable_backend_is_one_line_and_exit_2() -> None:
    env = dict(os.environ, MSHV_BACKEND="kernel")
    if os.path.exists("/dev/mshv"):
        env["MSHV_BACKEND"] = "no-such-backend"
    proc = _mshv("demo", "--loops", "10", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("mshv: ") and "MSHV_BACKEND" in proc.stderr


def test_a_closed_pipe_ends_the_output_quietly() -> None:
    """``mshv abi | head``: the reader goes away, the command stops without a traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mshv", "abi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"source:")
    proc.stdout.close()  # as head does after its lines
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr
