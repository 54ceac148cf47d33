"""Guest memory: host memory a partition maps at a guest physical address.

``GuestMemory`` owns one host mapping (anonymous, memfd, or hugetlbfs 2 MiB
pages) and exposes it as bytes and through the buffer protocol. Closed while a
partition maps it (see ``Partition.map_memory``), it is freed only when the
last region is unmapped, so the guest never sees freed host memory; closed
while a view of it is alive, it refuses (BufferError), as ``mmap`` does.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
import weakref
from typing import Any

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv.errors import MshvError

__all__ = ["GpaRangeError", "GuestMemory", "HUGE_PAGE_SIZE", "PAGE_SIZE"]

PAGE_SIZE: int = lib.MSHV_HV_PAGE_SIZE
HUGE_PAGE_SIZE = 2 * 1024 * 1024
_MAP_HUGE_2MB = 21 << lib.MAP_HUGE_SHIFT  # log2(2 MiB) in the MAP_HUGE field


_HUGEPAGES_SYSFS = "/sys/kernel/mm/hugepages/hugepages-2048kB"


def _hugepage_count(name: str) -> int | None:
    try:
        with open(f"{_HUGEPAGES_SYSFS}/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _hugepage_advice(size: int) -> str:
    """Why a hugetlb mapping of ``size`` bytes failed, and how to reserve the pages (hugetlb
    reserves at mmap time, so ENOMEM there means too few free 2 MiB pages)."""
    wanted = size // HUGE_PAGE_SIZE
    free, total = _hugepage_count("free_hugepages"), _hugepage_count("nr_hugepages")
    text = f"{wanted} pages of 2 MiB wanted, {'?' if free is None else free} free"
    target = wanted if total is None or free is None else total + max(wanted - free, 0)
    return (
        f"{text}: reserve 2 MiB hugetlb pages as root first, e.g. sysctl vm.nr_hugepages={target} "
        f"(or echo {target} > /proc/sys/vm/nr_hugepages)"
    )


class GpaRangeError(ValueError):
    """A guest-physical range that does not lie below ``1 << width``, the partition's
    physical address width (property PHYSICAL_ADDRESS_WIDTH): the hypervisor maps no GPA
    beyond it. Raised by ``Partition.map_memory`` before the request reaches the kernel."""

    def __init__(self, gpa: int, size: int, width: int) -> None:
        self.gpa, self.size, self.width = gpa, size, width
        super().__init__(
            f"gpa range {gpa:#x}+{size:#x} ends at {gpa + size:#x}, beyond the partition's "
            f"{width}-bit guest physical address space (GPAs below {1 << width:#x}; "
            "partition property PHYSICAL_ADDRESS_WIDTH)"
        )


def _free_unclosed(ptr: Any, size: int, fd: int) -> None:
    warnings.warn(f"unclosed GuestMemory of {size:#x} bytes", ResourceWarning, stacklevel=1)
    _kernel.munmap(ptr, size)
    if fd >= 0:
        _kernel.close(fd)


class GuestMemory:
    """Host memory for a guest: ``size`` bytes, page aligned, zero filled.

    Args:
        size: bytes; a multiple of 4 KiB (2 MiB with ``hugepages``).
        hugepages: back it with 2 MiB hugetlb pages (reserve them in
            /proc/sys/vm/nr_hugepages first).
        memfd: back it with a memfd (shareable by fd) instead of anonymous memory.

    Example:
        >>> mem = GuestMemory(0x10000)
        >>> mem.write(0x100, b"\\xf4")
        >>> mem.read(0x100, 1)
        b'\\xf4'
        >>> mem.close()
    """

    def __init__(self, size: int, *, hugepages: bool = False, memfd: bool = False) -> None:
        align = HUGE_PAGE_SIZE if hugepages else PAGE_SIZE
        if not isinstance(size, int) or size <= 0 or size % align:
            raise ValueError(f"size must be a positive multiple of {align:#x}, got {size!r}")
        self.size = size
        self.hugepages = hugepages
        #: The size of the host pages behind this memory: 2 MiB (hugetlb) or 4 KiB.
        self.page_size: int = HUGE_PAGE_SIZE if hugepages else PAGE_SIZE
        self._fd = -1
        self._mapped_by = 0  # regions currently mapping this memory
        self._closed = False  # close() was called; the memory is freed once _mapped_by is 0
        flags = lib.MAP_SHARED
        if memfd:
            self._fd = lib.mshv_memfd_create(
                b"mshv-guest", lib.MFD_CLOEXEC | (lib.MFD_HUGETLB if hugepages else 0)
            )
            if self._fd < 0:
                raise OSError(ffi.errno, f"memfd_create: {os.strerror(ffi.errno)}")
            if lib.mshv_ftruncate(self._fd, size) < 0:
                err = ffi.errno
                _kernel.close(self._fd)
                raise OSError(err, f"ftruncate({size:#x}): {os.strerror(err)}")
        else:
            flags |= lib.MAP_ANONYMOUS | ((lib.MAP_HUGETLB | _MAP_HUGE_2MB) if hugepages else 0)
        try:
            self._ptr: Any = _kernel.mmap(size, lib.PROT_READ | lib.PROT_WRITE, flags, self._fd, 0)
        except OSError as exc:
            if self._fd >= 0:
                _kernel.close(self._fd)
            if hugepages and exc.errno == errno.ENOMEM:
                raise MshvError(errno.ENOMEM, "mmap", details=_hugepage_advice(size)) from None
            raise
        self._buffer: Any = ffi.buffer(self._ptr, size)
        self._address = int(ffi.cast("uintptr_t", self._ptr))
        # Backstop only: memory never closed is freed when collected, with a ResourceWarning.
        # (A region that maps it keeps it referenced, so mapped memory is never collected.)
        self._finalizer = weakref.finalize(self, _free_unclosed, self._ptr, size, self._fd)

    # -- lifetime -------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the memory may still back a mapped region)."""
        return self._closed

    def close(self) -> None:
        """End the use of the memory from Python and free it, or, while a partition maps it,
        free it when the last region is unmapped. A second call does nothing.

        Raises:
            BufferError: a view of it (:meth:`view`, or a memoryview of one) is still alive;
                release it first. Nothing was changed.
        """
        if self._closed:
            return
        # Our own reference and getrefcount's argument: any more is a live export (a
        # memoryview holds the buffer object until it and every slice of it are released).
        if sys.getrefcount(self._buffer) > 2:
            raise BufferError(f"cannot close {self!r}: a view of it is still alive (release it first)")
        self._closed = True
        self._buffer = None
        if not self._mapped_by:
            self._free()

    def _free(self) -> None:
        self._finalizer.detach()
        _kernel.munmap(self._ptr, self.size)
        self._ptr = None
        if self._fd >= 0:
            _kernel.close(self._fd)
            self._fd = -1

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "hugetlb" if self.hugepages else ("memfd" if self._fd >= 0 else "anonymous")
        return f"<GuestMemory size={self.size:#x} {kind} mapped_by={self._mapped_by} closed={self._closed}>"

    # -- access ---------------------------------------------------------------------------
    def _live(self) -> Any:
        if self._closed:
            raise ValueError("I/O on closed GuestMemory")
        return self._buffer

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"range {offset:#x}+{length:#x} is outside {self.size:#x} bytes")

    @property
    def address(self) -> int:
        """The host virtual address (hva) of byte 0."""
        self._live()
        return self._address

    @property
    def fd(self) -> int:
        """The memfd backing this memory, or -1 for anonymous memory."""
        return self._fd

    def read(self, offset: int, length: int) -> bytes:
        """Return ``length`` bytes at ``offset``."""
        buf = self._live()
        self._check(offset, length)
        return bytes(buf[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``."""
        buf = self._live()
        self._check(offset, len(data))
        buf[offset : offset + len(data)] = data

    def load_file(self, offset: int, path: str | os.PathLike[str]) -> int:
        """Copy a file's contents to ``offset``; returns its size."""
        with open(path, "rb") as f:
            data = f.read()
        self.write(offset, data)
        return len(data)

    def view(self) -> memoryview:
        """A writable memoryview of the whole memory (valid until close)."""
        return memoryview(self._live())

    def __buffer__(self, flags: int) -> memoryview:  # PEP 688 (Python 3.12+)
        return memoryview(self._live())

    # -- bookkeeping for regions ------------------------------------------------------------
    def _acquire(self) -> int:
        """Count one more region mapping this memory; returns its address (the map path's hva)."""
        self._live()
        self._mapped_by += 1
        return self._address

    def _release(self) -> None:
        """Count one region fewer; the last one frees memory that was closed meanwhile."""
        self._mapped_by -= 1
        if self._closed and not self._mapped_by:
            self._free()
