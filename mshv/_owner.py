"""The lifetime every fd-owning object shares: close(), closed, context manager, backstop.

``FdOwner`` holds one fd. ``close()`` is idempotent: it runs ``_close_children``
(a partition closes its VPs and unmaps its regions there), then closes the fd
through the kernel table. A ``weakref.finalize`` backstop closes an fd that
was never closed and warns with ResourceWarning; it is never the normal path.
Owners refer to their parent, never a parent to its children (or only weakly),
so a dropped owner is freed by reference counting, without the cycle collector.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

from mshv import _kernel

__all__ = ["FdOwner"]


def _backstop_close(fd: int, what: str, after: Callable[[], None] | None) -> None:
    warnings.warn(f"unclosed {what} (fd {fd})", ResourceWarning, stacklevel=1)
    _kernel.close(fd)
    if after is not None:
        after()


class FdOwner:
    """Base of Mshv, Partition and Vp: owns one fd from the moment it exists."""

    _what = "object"

    def _own(self, fd: int, after_backstop: Callable[[], None] | None = None) -> None:
        """Own ``fd`` from now on. ``after_backstop`` runs after the backstop closed it; it
        must not refer to this object (a finalizer that did would keep it alive)."""
        self._fd = fd
        self._finalizer = weakref.finalize(self, _backstop_close, fd, self._what, after_backstop)

    @property
    def closed(self) -> bool:
        """True once the fd is closed."""
        return self._fd < 0

    @property
    def fd(self) -> int:
        """The fd this object owns."""
        return self._live()

    def fileno(self) -> int:
        """The fd this object owns (as files and sockets name it)."""
        return self._live()

    def _live(self) -> int:
        if self._fd < 0:
            raise ValueError(f"{self._what} is closed")
        return self._fd

    def _close_children(self) -> None:
        """Close what depends on this fd; called once, before the fd is closed."""

    def close(self) -> None:
        """Close the fd (after the objects that depend on it). A second call does nothing."""
        if self._fd < 0:
            return
        self._close_children()
        self._finalizer.detach()
        fd, self._fd = self._fd, -1
        _kernel.close(fd)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
