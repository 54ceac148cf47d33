"""Build script: the cffi ABI module, the emulator library, the Cython run loop.

Metadata lives in pyproject.toml; this file only wires up the compiled parts.
Without a working C compiler (``build_ext/nocc.py`` probes it) nothing is
compiled: the package installs as pure Python with the ABI snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_ext.emulator import emulator_extension  # noqa: E402
from build_ext.nocc import SnapshotBuildPy, probe_toolchain  # noqa: E402
from build_ext.runloop import RunloopBuildExt, native_extension, runloop_extension  # noqa: E402


def _extensions(python_headers: bool) -> list:
    exts = []
    emulator = emulator_extension()
    if emulator is not None:
        exts.append(emulator)
    if python_headers:
        exts.append(runloop_extension())  # optional: without it, the pure-Python loop is used
        exts.append(native_extension())  # optional: without it, Partition maps in Python
    return exts


def _compiled_parts() -> dict[str, Any]:
    toolchain = probe_toolchain()
    SnapshotBuildPy.toolchain = toolchain
    if toolchain.c_problem is not None:
        return {}
    parts: dict[str, Any] = {
        "ext_modules": _extensions(toolchain.python_problem is None),
        "cmdclass": {"build_ext": RunloopBuildExt, "build_py": SnapshotBuildPy},
    }
    if toolchain.python_problem is None:
        parts["cffi_modules"] = ["build_ext/abi_builder.py:ffibuilder"]
    return parts


setup(**{"cmdclass": {"build_py": SnapshotBuildPy}, **_compiled_parts()})
