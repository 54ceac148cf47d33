"""Fixtures shared by the emulator tests (helpers live in guest.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guest import emu_lib_path  # noqa: E402


@pytest.fixture(scope="session")
def kvm() -> str:
    """/dev/kvm must be usable: a missing /dev/kvm FAILS the test, never skips it."""
    path = "/dev/kvm"
    assert os.path.exists(path), "/dev/kvm is missing: the emulator needs KVM"
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    os.close(fd)
    return path


@pytest.fixture(scope="session")
def emu_lib(kvm: str) -> str:
    """Path of the emulator library (MSHV_EMU_LIB, installed mshv, or built from source)."""
    return emu_lib_path()


@pytest.fixture(scope="session")
def preload_env(emu_lib: str) -> dict[str, str]:
    """Environment for a subprocess that runs under LD_PRELOAD=<emulator library>.

    ``$MSHV_EMU_PRELOAD_FIRST`` goes before it (test_sanitized.py: the ASan runtime, which
    must come first in the process's library list).
    """
    env = dict(os.environ)
    first = os.environ.get("MSHV_EMU_PRELOAD_FIRST")
    env["LD_PRELOAD"] = f"{first}:{emu_lib}" if first else emu_lib
    return env
