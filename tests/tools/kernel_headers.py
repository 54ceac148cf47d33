"""Fetch Debian sid's linux-libc-dev and unpack it into a cache, never into the system.

``python tests/tools/kernel_headers.py`` prints the include directory. The
package is downloaded with ``apt-get download`` using a private sources list
and state directory (the machine's own apt configuration is not touched), then
unpacked with ``dpkg -x``. The result is cached per package version under
``$MSHV_CACHE_DIR`` (default ``~/.cache/python-mshv``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "linux-libc-dev"
SUITE = "sid"
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class HeaderFetchError(RuntimeError):
    """The real header could not be fetched; the message says which step failed and why."""


def cache_dir() -> Path:
    """Where downloads and unpacked trees are kept between runs."""
    return Path(os.environ.get("MSHV_CACHE_DIR", Path.home() / ".cache" / "python-mshv"))


def _apt_options(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::sourcelist={root / 'sources.list'}",
        "-o", "Dir::Etc::sourceparts=/dev/null",
        "-o", f"Dir::State={root / 'state'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip


def _run(args: list[str], cwd: Path, step: str) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HeaderFetchError(f"{step}: {exc}") from exc
    if proc.returncode != 0:
        raise HeaderFetchError(f"{step} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def fetch_include_dir() -> Path:
    """Return an include directory holding sid's linux/mshv.h, downloading it if needed."""
    root = cache_dir() / "apt"
    for sub in ("state/lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    signed = f"[signed-by={KEYRING}] " if os.path.exists(KEYRING) else ""
    (root / "sources.list").write_text(f"deb {signed}{MIRROR} {SUITE} main\n")
    opts = _apt_options(root)
    _run(["apt-get", *opts, "update"], root, "apt-get update (private sid sources list)")
    version = _run(["apt-cache", *opts, "show", "--no-all-versions", PACKAGE], root, "apt-cache show")
    ver = next((ln.split(":", 1)[1].strip() for ln in version.splitlines() if ln.startswith("Version:")), "")
    if not ver:
        raise HeaderFetchError(f"apt-cache show {PACKAGE}: no Version field")
    tree = cache_dir() / f"{PACKAGE}_{ver}"
    header = tree / "usr" / "include" / "linux" / "mshv.h"
    if header.exists():
        return tree / "usr" / "include"
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", *opts, "download", f"{PACKAGE}={ver}"], debs, f"apt-get download {PACKAGE}={ver}")
    deb = next(debs.glob(f"{PACKAGE}_*{ver.split(':')[-1]}*.deb"), None)
    if deb is None:
        raise HeaderFetchError(f"apt-get download left no {PACKAGE} .deb in {debs}")
    _run(["dpkg", "-x", str(deb), str(tree)], debs, f"dpkg -x {deb.name}")
    if not header.exists():
        raise HeaderFetchError(f"{deb.name} has no usr/include/linux/mshv.h")
    return tree / "usr" / "include"


if __name__ == "__main__":
    try:
        print(fetch_include_dir())
    except HeaderFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
