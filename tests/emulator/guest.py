"""Shared helpers for the emulator tests: the library path, guest code, C clients.

Three functions, nothing else:

- ``emu_lib_path()``: the emulator library to test (``$MSHV_EMU_LIB``, else the
  ``libmshv_emu.so`` of the installed ``mshv`` package, else one built from
  ``emulator/*.c`` into a cache directory with the flags of build_ext/emulator.py).
- ``assemble(source, tmp_path, mode=16, base=0)``: GNU ``as`` + ``ld`` + ``objcopy``
  to a flat binary that starts at guest address ``base``.
- ``compile_c(source_path, tmp_path, extra=[])``: a C client compiled with gcc against
  the bundled ``<linux/mshv.h>``; returns the executable's path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIRS = [ROOT / "ioctl_defs" / "include" / "bundled", ROOT / "ioctl_defs" / "include"]
LIB_FILENAME = "libmshv_emu.so"

_built_lib: str | None = None


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}{proc.stderr}")


def _installed_lib() -> str | None:
    """The library inside the installed mshv package, found without importing it."""
    spec = importlib.util.find_spec("mshv")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / LIB_FILENAME
        if path.is_file():
            return str(path)
    return None


def _build_lib() -> str:
    """Build emulator/*.c with the package's flags into a cache keyed by source hash."""
    global _built_lib
    if _built_lib is not None:
        return _built_lib
    sources = sorted((ROOT / "emulator").glob("*.c"))
    headers = sorted((ROOT / "emulator").glob("*.h")) + sorted((ROOT / "ioctl_defs" / "include").rglob("*.h"))
    digest = hashlib.sha256()
    for path in sources + headers:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"mshv-emu-build-{os.getuid()}"
    cache.mkdir(exist_ok=True)
    lib = cache / f"{digest.hexdigest()[:16]}-{LIB_FILENAME}"
    if not lib.is_file():
        from build_ext.emulator import CFLAGS  # noqa: PLC0415 (ROOT is on sys.path below)

        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        cmd = ["gcc", *CFLAGS, "-g", "-fPIC", "-shared", "-Iemulator"]
        cmd += [f"-I{d}" for d in INCLUDE_DIRS]
        cmd += [str(s) for s in sources] + ["-o", str(tmp), "-lpthread", "-ldl"]
        _run(cmd, cwd=ROOT)
        tmp.rename(lib)
    _built_lib = str(lib)
    return _built_lib


def emu_lib_path() -> str:
    """Path of the emulator library under test (see the module docstring for the order)."""
    env = os.environ.get("MSHV_EMU_LIB")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"MSHV_EMU_LIB={env} does not exist")
        return env
    installed = _installed_lib()
    if installed:
        return installed
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return _build_lib()


def assemble(source: str, tmp_path: Path, mode: int | str = 16, base: int = 0) -> bytes:
    """Assemble guest code to a flat binary.

    Args:
        source: GNU as source (AT&T unless it says ``.intel_syntax noprefix``).
        tmp_path: directory for the intermediate files.
        mode: 16, 32 or 64 (or "code16"/".code32"/...): the ``.codeNN`` directive prepended.
        base: guest address of the first byte (the ``.text`` link address).

    Returns:
        The bytes of all loaded sections, from ``base`` on.
    """
    bits = int(str(mode).lstrip(".").removeprefix("code"))
    if bits not in (16, 32, 64):
        raise ValueError(f"mode must be 16, 32 or 64, not {mode!r}")
    tmp_path = Path(tmp_path)
    stem = "guest_" + hashlib.sha256(f"{bits}:{base}:{source}".encode()).hexdigest()[:12]
    src = tmp_path / f"{stem}.S"
    obj, elf, out = (tmp_path / f"{stem}{ext}" for ext in (".o", ".elf", ".bin"))
    src.write_text(f".code{bits}\n.text\n{source}\n")
    _run(["as", "--64", "-o", str(obj), str(src)])
    _run(["ld", "-m", "elf_x86_64", "-N", "-e", "0", f"-Ttext={base:#x}", "-o", str(elf), str(obj)])
    _run(["objcopy", "-O", "binary", str(elf), str(out)])
    return out.read_bytes()


def compile_c(source_path: str | Path, tmp_path: Path, extra: list[str] | None = None) -> str:
    """Compile a C client (bundled <linux/mshv.h> first on the include path).

    Args:
        source_path: the .c file.
        tmp_path: where the executable goes.
        extra: more gcc arguments (sources, -D, -l...).

    Returns:
        The executable's path.
    """
    source_path = Path(source_path)
    exe = Path(tmp_path) / source_path.stem
    cmd = ["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
    cmd += [f"-I{d}" for d in INCLUDE_DIRS]
    cmd += [str(source_path), *(extra or []), "-o", str(exe), "-lpthread", "-ldl"]
    _run(cmd)
    return str(exe)


# The head of the 32-bit LAPIC guests: from the reset vector's jump to `start` (real mode),
# load the GDT of FLAT_GDT_IDT_RESET, enter protected mode, flat data segments, stack at 0x9000.
PM32_ENTRY = """start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl gdt_desc
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $pm32
.code32
pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x9000, %esp
"""


# The tail of the 32-bit LAPIC guests (test_irq_guest.py, test_irq_resample.py): a flat GDT
# (code 0x08, data 0x10), the IDT descriptor (IDT at 0x1000), and the reset vector at 0xfff0
# jumping to `start` in the 64 KiB image that the clients alias below 4 GiB.
FLAT_GDT_IDT_RESET = """.balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    # 0x08: code, flat 4 GiB
    .quad 0x00cf92000000ffff    # 0x10: data, flat 4 GiB
gdt_desc:
    .word 23
    .long gdt
idt_desc:
    .word 256 * 8 - 1
    .long idt
.set idt, 0x1000
.org 0xfff0
.code16
    ljmp $0, $start             # reset vector (the 64 KiB are aliased below 4 GiB)
.org 0x10000
"""
