"""Fetch Debian sid's qemu-system-x86 with its whole dependency closure into a private root.

``python tests/tools/qemu_sid.py`` prints the QEMU version and the command line
that runs it. The package and every package it depends on (sid's libc6
included: sid's glibc is newer than an older host's) are downloaded and
unpacked by :mod:`debian_sid` into one tree,
``$MSHV_CACHE_DIR/qemu-sid/<version>/root``; nothing is installed into the
system. QEMU runs through that tree's own dynamic loader::

    ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path ROOT/usr/lib/x86_64-linux-gnu \\
        ROOT/usr/bin/qemu-system-x86_64 -L ROOT/usr/share/qemu -L ROOT/usr/share/seabios ...

The tree is built once per sid version (in a temporary directory renamed into
place when complete), so a second call only asks the archive for the version.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from debian_sid import SidApt, SidFetchError, cache_dir, cache_lock, run_step, unpack  # noqa: E402

PACKAGE = "qemu-system-x86"
COMPLETE = ".complete"  # written last: lists the unpacked packages

# Relative to the root; the first that exists is used.
LOADERS = ("usr/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2")
LIBRARY_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")
FIRMWARE_DIRS = ("usr/share/qemu", "usr/share/seabios", "usr/lib/ipxe/qemu")
MODULE_DIR = "usr/lib/x86_64-linux-gnu/qemu"
BINARY = "usr/bin/qemu-system-x86_64"

QemuFetchError = SidFetchError


@dataclass(frozen=True)
class SidQemu:
    """An unpacked sid QEMU: how to run it from its private root."""

    root: Path
    version: str  # the Debian package version, e.g. 1:11.1.3+ds-1

    @property
    def loader(self) -> Path:
        """sid's dynamic loader inside the root."""
        for rel in LOADERS:
            if (self.root / rel).exists():
                return self.root / rel
        raise QemuFetchError(f"no ld-linux-x86-64.so.2 under {self.root}")

    def library_path(self) -> str:
        """The ``--library-path`` for the loader: the root's library directories."""
        return ":".join(str(self.root / d) for d in LIBRARY_DIRS if (self.root / d).is_dir())

    def command(self, *args: str) -> list[str]:
        """The argv that runs qemu-system-x86_64 ``args`` from the root, firmware from the root."""
        firmware: list[str] = []
        for rel in FIRMWARE_DIRS:
            if (self.root / rel).is_dir():
                firmware += ["-L", str(self.root / rel)]
        binary = str(self.root / BINARY)
        return [str(self.loader), "--library-path", self.library_path(), binary, *firmware, *args]

    def environment(self, preload: str | None = None) -> dict[str, str]:
        """The process environment for :meth:`command`: QEMU's module directory, LD_PRELOAD if given."""
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
        env["QEMU_MODULE_DIR"] = str(self.root / MODULE_DIR)
        if preload:
            env["LD_PRELOAD"] = preload
        return env


def fetch_qemu() -> SidQemu:
    """Return sid's QEMU unpacked into the cache, downloading it if sid has a version not cached yet.

    Raises:
        SidFetchError: the archive could not be reached, or a package could not be
            resolved, downloaded or unpacked; the message names the step.
    """
    with cache_lock():
        apt = SidApt()
        version = apt.version(PACKAGE)
        home = cache_dir() / "qemu-sid" / version.replace(":", "_")
        qemu = SidQemu(home / "root", version)
        if (qemu.root / COMPLETE).exists():
            return qemu
        packages = apt.closure(PACKAGE)
        debs = apt.download(packages, cache_dir() / "debs")
        partial = home / f"root.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for deb in debs:
            unpack(deb, partial)
        (partial / COMPLETE).write_text("".join(f"{name} {ver}\n" for name, ver in packages))
        shutil.rmtree(qemu.root, ignore_errors=True)
        partial.rename(qemu.root)
    check_runs(qemu)
    return qemu


def check_runs(qemu: SidQemu) -> str:
    """Run ``qemu-system-x86_64 --version`` from the root; return its first line."""
    out = run_step(qemu.command("--version"), qemu.root, "qemu-system-x86_64 --version (sid's loader)")
    return out.splitlines()[0] if out else ""


if __name__ == "__main__":
    try:
        found = fetch_qemu()
    except SidFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(check_runs(found))
    print(" ".join(found.command()))
