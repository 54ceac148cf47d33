"""The ABI when the cffi extension ``mshv._abi`` was not compiled: the snapshot, in ABI mode.

Python finds an extension module before a source file of the same name, so
this file is only imported where no compiled ``mshv/_abi.*.so`` exists (a
build without a C compiler); see ``mshv._abi_nocc``.
"""

from __future__ import annotations

from mshv._abi_nocc import ffi, lib

__all__ = ["ffi", "lib"]
