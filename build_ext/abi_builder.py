"""Build ``mshv._abi``: the cffi API-mode module joined from ioctl_defs/, the kernel table and its C helpers.

``build_ffi()`` imports each module of ``ioctl_defs.MODULES`` plus ``build_ext.kernel_table``,
``build_ext.vp_kick``, ``build_ext.page_copy``, ``build_ext.call_batch`` and ``build_ext.restore_program``
(which calls the two before it), joins their
TYPES+FUNCTIONS into the cdef and their INCLUDES+CUSTOMIZATIONS into the C source, and
compiles against the header that ``header_choice.choose_uapi_header`` picks. ``mshv_abi_header()`` in the
module reports that choice at run time.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ioctl_defs  # noqa: E402
from build_ext import call_batch, header_choice, kernel_table, page_copy, restore_program, vp_kick  # noqa: E402

CFLAGS = [
    "-std=gnu11",
    "-Wall",
    "-Wno-unused-function",
    "-Wno-unused-variable",
    "-Wno-address-of-packed-member",
]


def _modules() -> list[ModuleType]:
    mods = [importlib.import_module(f"ioctl_defs.{name}") for name in ioctl_defs.MODULES]
    return mods + [kernel_table, vp_kick, page_copy, call_batch, restore_program]


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_ffi() -> FFI:
    """Return the FFI builder for ``mshv._abi``."""
    modules = _modules()
    uapi = importlib.import_module("ioctl_defs.mshv_uapi")
    choice = header_choice.choose_uapi_header(uapi.TYPES)
    include_dirs = list(choice.include_dirs) + [str(ROOT / "ioctl_defs" / ioctl_defs.INCLUDE_DIR)]
    cdef = "\n".join(m.TYPES + m.FUNCTIONS for m in modules)
    cdef += "\nconst char *mshv_abi_header(void);\nconst char *mshv_abi_header_reason(void);\n"
    source = "\n".join(m.INCLUDES for m in modules)
    source += "\n".join(m.CUSTOMIZATIONS for m in modules)
    source += (
        f"\nstatic const char *mshv_abi_header(void) {{ return {_c_string(choice.source)}; }}\n"
        f"static const char *mshv_abi_header_reason(void) {{ return {_c_string(choice.reason)}; }}\n"
    )
    ffi = FFI()
    ffi.cdef(cdef)
    ffi.set_source(
        "mshv._abi",
        source,
        include_dirs=include_dirs,
        extra_compile_args=CFLAGS + ["-idirafter", str(ROOT / "ioctl_defs" / ioctl_defs.FALLBACK_DIR)],
        libraries=["dl"],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
