"""Fetch Debian sid's linux-libc-dev and unpack it into a cache, never into the system.

``python tests/tools/kernel_headers.py`` prints the include directory. The
package is downloaded and unpacked by :mod:`debian_sid` (private apt sources,
state and cache; ``dpkg -x``), cached per package version under
``$MSHV_CACHE_DIR`` (default ``~/.cache/python-mshv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from debian_sid import SidApt, SidFetchError, cache_dir, cache_lock, unpack  # noqa: E402

PACKAGE = "linux-libc-dev"

# The name the conformance test and older callers know.
HeaderFetchError = SidFetchError


def fetch_include_dir() -> Path:
    """Return an include directory holding sid's linux/mshv.h, downloading it if needed."""
    with cache_lock():
        apt = SidApt()
        version = apt.version(PACKAGE)
        tree = cache_dir() / f"{PACKAGE}_{version}"
        header = tree / "usr" / "include" / "linux" / "mshv.h"
        if header.exists():
            return tree / "usr" / "include"
        (deb,) = apt.download([(PACKAGE, version)], cache_dir() / "debs")
        unpack(deb, tree)
        if not header.exists():
            raise SidFetchError(f"{deb.name} has no usr/include/linux/mshv.h")
        return tree / "usr" / "include"


if __name__ == "__main__":
    try:
        print(fetch_include_dir())
    except SidFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
