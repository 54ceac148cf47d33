"""Build script: the cffi ABI module, the emulator library, the Cython run loop.

Metadata lives in pyproject.toml; this file only wires up the compiled parts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_ext.emulator import emulator_extension  # noqa: E402
from build_ext.runloop import RunloopBuildExt, runloop_extension  # noqa: E402


def _extensions() -> list:
    exts = []
    emulator = emulator_extension()
    if emulator is not None:
        exts.append(emulator)
    exts.append(runloop_extension())  # optional: without it, the pure-Python loop is used
    return exts


setup(
    cffi_modules=["build_ext/abi_builder.py:ffibuilder"],
    ext_modules=_extensions(),
    cmdclass={"build_ext": RunloopBuildExt},
)
