"""The emulator library: a plain C shared library built from emulator/*.c.

It has no Python inside. setuptools builds it as an Extension named
``mshv.libmshv_emu`` and ``EmulatorBuildExt`` gives it the file name
``mshv/libmshv_emu.so``, so it can be both dlopen()ed by the binding and
named in LD_PRELOAD by any other /dev/mshv client.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Extension
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent.parent
EXT_NAME = "mshv.libmshv_emu"
LIB_FILENAME = "libmshv_emu.so"

CFLAGS = [
    "-std=gnu11",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
    "-fvisibility=hidden",
    "-D_GNU_SOURCE",
]


def emulator_extension() -> Extension | None:
    """Return the Extension for the emulator, or None while it has no sources."""
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "emulator").glob("*.c"))
    if not sources:
        return None
    return Extension(
        EXT_NAME,
        sources=sources,
        include_dirs=["emulator", "ioctl_defs/include/bundled", "ioctl_defs/include"],
        extra_compile_args=CFLAGS,
        extra_link_args=["-lpthread", "-ldl"],
        depends=sorted(str(p.relative_to(ROOT)) for p in (ROOT / "emulator").glob("*.h")),
    )


class EmulatorBuildExt(build_ext):
    """build_ext that names the emulator library libmshv_emu.so and exports no PyInit."""

    def get_ext_filename(self, fullname: str) -> str:
        # distutils asks with the full dotted name and, from get_ext_fullpath, with its last part.
        if fullname == EXT_NAME:
            return str(Path(*EXT_NAME.split(".")[:-1]) / LIB_FILENAME)
        if fullname == EXT_NAME.rsplit(".", 1)[-1]:
            return LIB_FILENAME
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext: Extension) -> list[str]:
        if ext.name == EXT_NAME:
            return []
        return super().get_export_symbols(ext)
