"""The build without a C compiler: probe the toolchain, install the ABI snapshot.

``probe_toolchain()`` asks the compiler setuptools would use (``$CC``,
``$LDSHARED`` ... as ``customize_compiler`` reads them) to build a tiny shared
library, then a tiny file that includes ``<Python.h>``. setup.py builds:

* everything (as always) when both work;
* only the emulator library when C works but Python's headers are missing;
* nothing compiled otherwise: the wheel is pure Python and ``mshv._abi`` is the
  snapshot (``mshv/_abi.py`` -> ``mshv._abi_nocc``).

``SnapshotBuildPy`` always installs ioctl_defs/abi_snapshot.py as
``mshv/_abi_snapshot.py`` and prints one warning per part the build skips.
"""

from __future__ import annotations

import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_SOURCE = Path("ioctl_defs") / "abi_snapshot.py"
SNAPSHOT_MODULE = Path("mshv") / "_abi_snapshot.py"


@dataclass(frozen=True)
class Toolchain:
    """What the build can compile: ``None`` where it works, else the reason it does not."""

    c_problem: str | None
    python_problem: str | None

    def skipped(self) -> list[str]:
        """One warning for each compiled part the build leaves out."""
        out = []
        c_or_py = self.c_problem or self.python_problem
        if c_or_py:
            out.append(
                f"mshv._abi (cffi API mode) is not compiled ({c_or_py}); "
                "the package uses the ABI snapshot ioctl_defs/abi_snapshot.py in cffi ABI mode"
            )
            out.append(
                f"mshv._runloop (Cython) is not compiled ({c_or_py}); mshv.runloop uses its pure-Python loop"
            )
            out.append(
                f"mshv._native (Cython) is not compiled ({c_or_py}); "
                "mshv.partition maps and mshv.vp runs in Python"
            )
        if self.c_problem:
            out.append(
                f"mshv/libmshv_emu.so (the /dev/mshv emulator) is not built ({self.c_problem}); "
                "without /dev/mshv, set MSHV_EMULATOR_LIBRARY=/path/to/libmshv_emu.so built elsewhere"
            )
        return out


def _try_build(source: str, tmp: Path, include_dirs: list[str]) -> str | None:
    from distutils.ccompiler import new_compiler
    from distutils.errors import CCompilerError, DistutilsError
    from distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    path = tmp / "probe.c"
    path.write_text(source)
    step, program = "compile a C file", compiler.compiler_so[0]
    try:
        objects = compiler.compile([str(path)], output_dir=str(tmp), include_dirs=include_dirs)
        step, program = "link a shared library", compiler.linker_so[0]
        compiler.link_shared_object(objects, str(tmp / "probe.so"))
    except (CCompilerError, DistutilsError, OSError) as exc:
        missing = "No such file" in str(exc) or isinstance(exc, FileNotFoundError)
        return f"{program} not found" if missing else f"{program} cannot {step}"
    return None


def probe_toolchain() -> Toolchain:
    """Try the C compiler and linker, then Python's headers, the way build_ext would use them."""
    with tempfile.TemporaryDirectory(prefix="mshv-cc-probe-") as tmp:
        c_problem = _try_build("int mshv_probe(void) { return 0; }\n", Path(tmp), [])
        if c_problem is not None:
            return Toolchain(f"no working C compiler: {c_problem}", None)
        python_problem = _try_build(
            "#include <Python.h>\nint mshv_probe(void) { return Py_IsInitialized(); }\n",
            Path(tmp),
            [sysconfig.get_paths()["include"]],
        )
    if python_problem is not None:
        return Toolchain(None, f"Python's C headers are missing: {python_problem}")
    return Toolchain(None, None)


class SnapshotBuildPy(build_py):
    """build_py that also installs the ABI snapshot and warns about what the build skipped."""

    toolchain = Toolchain(None, None)  # set by setup.py from probe_toolchain()

    def run(self) -> None:
        for warning in self.toolchain.skipped():
            print(f"WARNING: python-mshv: {warning}", file=sys.stderr)
        super().run()
        target = Path(self.build_lib) / SNAPSHOT_MODULE
        self.mkpath(str(target.parent))
        self.copy_file(str(ROOT / SNAPSHOT_SOURCE), str(target), preserve_mode=False)
