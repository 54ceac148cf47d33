"""Choose the <linux/mshv.h> to compile against: the system's when complete, else ours.

A real root host ships the kernel's header in /usr/include (linux-libc-dev or
kernel-headers); we use it there so the binding is built against the running
distribution's ABI. When it is missing, or too old to declare everything in
``ioctl_defs.mshv_uapi`` (a 6.15 header lacks the v2 create-partition struct,
for example), the bundled header under ioctl_defs/include/bundled is used.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DIR = ROOT / "ioctl_defs" / "include" / "bundled"


@dataclass(frozen=True)
class HeaderChoice:
    """Which header the build uses and the include directories that select it."""

    source: str  # "system:<path>" or "bundled:<path>", reported by `mshv info`
    include_dirs: tuple[str, ...]
    reason: str


def _declared_names(cdef: str) -> tuple[list[str], list[str]]:
    structs = re.findall(r"^struct (\w+) \{", cdef, re.M)
    constants = re.findall(r"^#define (\w+) \.\.\.", cdef, re.M)
    return structs, constants


def _probe_source(cdef: str) -> str:
    structs, constants = _declared_names(cdef)
    lines = ["#include <sys/ioctl.h>", "#include <linux/mshv.h>", "unsigned long probe[] = {"]
    lines += [f"\tsizeof(struct {name})," for name in structs]
    lines += [f"\t(unsigned long)({name})," for name in constants]
    lines.append("};")
    return "\n".join(lines) + "\n"


def _compiles(source: str, include_dirs: tuple[str, ...]) -> tuple[bool, str]:
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.c"
        path.write_text(source)
        args = [cc, "-c", str(path), "-o", str(Path(tmp) / "probe.o")]
        args += [f"-I{d}" for d in include_dirs]
        proc = subprocess.run(args, capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr


def _system_header_path() -> str | None:
    cc = os.environ.get("CC", "cc")
    proc = subprocess.run(
        [cc, "-E", "-M", "-x", "c", "-"],
        input="#include <linux/mshv.h>\n",
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None
    for token in proc.stdout.replace("\\\n", " ").split():
        if token.endswith("linux/mshv.h"):
            return token
    return None


def choose_uapi_header(cdef: str) -> HeaderChoice:
    """Return the header to build against, given the uapi cdef it must satisfy.

    MSHV_HEADER=bundled forces the bundled header (used by tests that compare both).
    """
    bundled = HeaderChoice(f"bundled:{BUNDLED_DIR / 'linux' / 'mshv.h'}", (str(BUNDLED_DIR),), "")
    if os.environ.get("MSHV_HEADER") == "bundled":
        return HeaderChoice(bundled.source, bundled.include_dirs, "forced by MSHV_HEADER=bundled")
    system = _system_header_path()
    if system is None:
        return HeaderChoice(bundled.source, bundled.include_dirs, "no system <linux/mshv.h>")
    ok, err = _compiles(_probe_source(cdef), ())
    if not ok:
        first = err.strip().splitlines()[0] if err.strip() else "probe failed"
        return HeaderChoice(bundled.source, bundled.include_dirs, f"system header incomplete: {first}")
    return HeaderChoice(f"system:{system}", (), "system header declares the whole ABI")
