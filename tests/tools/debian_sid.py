"""Download packages from Debian sid and unpack them into a cache, never into the system.

apt runs with a private sources list (naming sid), a private state and cache
directory and an empty dpkg status file, so the machine's own apt configuration,
its package lists and its installed packages are neither read nor touched. A
package is fetched with ``apt-get download`` and unpacked with ``dpkg -x``;
nothing is installed. Everything lives under ``$MSHV_CACHE_DIR`` (default
``~/.cache/python-mshv``), and a lock file serialises concurrent users of it.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "sid"
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# One line of `apt-get install -s`: "Inst libc6 (2.43-7 Debian:unstable [amd64])".
_SIMULATED_INSTALL = re.compile(r"^Inst (\S+) \((\S+) ")


class SidFetchError(RuntimeError):
    """A package could not be fetched; the message says which step failed and why."""


def cache_dir() -> Path:
    """Where downloads and unpacked trees are kept between runs."""
    return Path(os.environ.get("MSHV_CACHE_DIR", Path.home() / ".cache" / "python-mshv"))


@contextmanager
def cache_lock() -> Iterator[None]:
    """Hold the cache's lock: one fetch at a time, across processes."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_step(args: list[str], cwd: Path, step: str) -> str:
    """Run one command of a fetch; its failure raises SidFetchError naming ``step``."""
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SidFetchError(f"{step}: {exc}") from exc
    if proc.returncode != 0:
        raise SidFetchError(f"{step} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


class SidApt:
    """apt-get and apt-cache on a private sid sources list, state and cache."""

    def __init__(self) -> None:
        self.root = cache_dir() / "apt"
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        signed = f"[signed-by={KEYRING}] " if os.path.exists(KEYRING) else ""
        (self.root / "sources.list").write_text(f"deb {signed}{MIRROR} {SUITE} main\n")
        (self.root / "status").write_text("")  # nothing installed: resolve whole closures
        self.options = [
            "-o", f"Dir::Etc::sourcelist={self.root / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=/dev/null",
            "-o", "Dir::Etc::preferences=/dev/null",
            "-o", "Dir::Etc::preferencesparts=/dev/null",
            "-o", f"Dir::State={self.root / 'state'}",
            "-o", f"Dir::State::status={self.root / 'status'}",
            "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", "APT::Install-Recommends=0",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip
        self._updated = False

    def update(self) -> None:
        """Refresh the private package lists from the sid archive (once per object)."""
        if not self._updated:
            run_step(
                # --error-on=any: an unreachable archive is an error, not a warning
                ["apt-get", *self.options, "update", "--error-on=any"],
                self.root,
                "apt-get update (private sid sources list)",
            )
            self._updated = True

    def version(self, package: str) -> str:
        """The version sid offers of ``package``."""
        self.update()
        shown = run_step(
            ["apt-cache", *self.options, "show", "--no-all-versions", package], self.root, "apt-cache show"
        )
        for line in shown.splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
        raise SidFetchError(f"apt-cache show {package}: no Version field")

    def closure(self, package: str) -> list[tuple[str, str]]:
        """``package`` and its whole Depends/Pre-Depends closure as (name, version), sid's libc6 included."""
        self.update()
        out = run_step(
            ["apt-get", *self.options, "install", "--simulate", "--no-install-recommends", package],
            self.root,
            f"apt-get install --simulate {package} (resolving its dependencies)",
        )
        found = [m.groups() for m in map(_SIMULATED_INSTALL.match, out.splitlines()) if m]
        if not any(name == package for name, _ in found):
            raise SidFetchError(f"resolving {package} listed no {package}:\n{out[-2000:]}")
        return [(name, version) for name, version in found]

    def download(self, packages: list[tuple[str, str]], into: Path) -> list[Path]:
        """``apt-get download`` each (name, version) into ``into``; return the .deb paths in order."""
        into.mkdir(parents=True, exist_ok=True)
        missing = [
            f"{name}={version}" for name, version in packages if _deb_path(into, name, version) is None
        ]
        if missing:
            run_step(
                ["apt-get", *self.options, "download", *missing], into, f"apt-get download ({len(missing)})"
            )
        debs = [(name, _deb_path(into, name, version)) for name, version in packages]
        absent = [name for name, deb in debs if deb is None]
        if absent:
            raise SidFetchError(f"apt-get download left no .deb of {', '.join(absent)} in {into}")
        return [deb for _, deb in debs if deb is not None]


def _deb_path(into: Path, name: str, version: str) -> Path | None:
    """The .deb ``apt-get download`` left for (name, version), if any (an epoch's ':' becomes %3a)."""
    return next(into.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"), None)


def unpack(deb: Path, tree: Path) -> None:
    """``dpkg -x`` one package into ``tree`` (no maintainer scripts run, nothing installed)."""
    run_step(["dpkg", "-x", str(deb), str(tree)], deb.parent, f"dpkg -x {deb.name}")
