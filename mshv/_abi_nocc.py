"""``mshv._abi`` without a C compiler: cffi's ABI mode over the committed ABI snapshot.

``mshv/_abi.py`` re-exports ``ffi`` and ``lib`` from here; Python's import
system only reaches it when no compiled ``mshv._abi`` extension sits beside it
(extension modules are found before source files). ``ffi`` declares the
snapshot that ``python -m build_ext.abi_snapshot`` wrote from the compiled
module (ioctl_defs/abi_snapshot.py, installed as ``mshv._abi_snapshot``), so
every size, offset and constant is still the C compiler's.

``lib`` offers what the package uses of the compiled ``lib``: every constant,
the kernel table of build_ext/kernel_table.py and Python twins of the page
copy of build_ext/page_copy.py, the call batch of build_ext/call_batch.py and the restore of
build_ext/restore_program.py. As in C, the five calls
(``mshv_open`` ... ``mshv_close``) are fixed functions that call through a
table, which ``mshv_kernel_use_libc``/``mshv_kernel_use_library`` point at
libc's or the emulator library's functions: callers may keep a reference to
``lib.mshv_ioctl`` (the run path does) and still follow a later switch.
There is no C table for the Cython run loop: it is never built without a
compiler, and ``mshv_kernel_table()`` says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from cffi import FFI  # type: ignore[import-untyped]  # cffi ships no type hints

__all__ = ["SnapshotLib", "ffi", "lib"]

_LIBC_CDEF = """
int open(const char *path, int flags, ...);
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int close(int fd);
int memfd_create(const char *name, unsigned int flags);
int ftruncate(int fd, long length);
int madvise(void *addr, size_t length, int advice);
int tgkill(int tgid, int tid, int sig);
"""

_EMULATOR_CDEF = """
int mshv_emu_open(const char *path, int flags);
int mshv_emu_ioctl(int fd, unsigned long request, void *arg);
void *mshv_emu_mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int mshv_emu_munmap(void *addr, size_t length);
int mshv_emu_close(int fd);
"""

_TABLE = ("open", "ioctl", "mmap", "munmap", "close")


def _snapshot() -> ModuleType:
    """The generated snapshot: installed as ``mshv._abi_snapshot``, or ioctl_defs/ of a checkout."""
    try:
        return importlib.import_module("mshv._abi_snapshot")
    except ModuleNotFoundError:
        path = Path(__file__).resolve().parent.parent / "ioctl_defs" / "abi_snapshot.py"
        spec = importlib.util.spec_from_file_location("mshv._abi_snapshot", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ImportError(f"no compiled mshv._abi and no ABI snapshot at {path}") from None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


_SNAPSHOT = _snapshot()

ffi = FFI()
ffi.cdef(_SNAPSHOT.TYPES)
ffi.cdef(_SNAPSHOT.PACKED_TYPES, packed=True)
ffi.cdef(_LIBC_CDEF + _EMULATOR_CDEF)

_libc: Any = ffi.dlopen(None)
_CONSTANTS = re.findall(r"^#define (\w+) ", _SNAPSHOT.TYPES, re.M)
_HEADER = ffi.new("char[]", f"snapshot:{_SNAPSHOT.HEADER}".encode())
_REASON = ffi.new(
    "char[]", f"mshv._abi not compiled (no C compiler); layouts from {_SNAPSHOT.GENERATOR}".encode()
)


def _libc_ioctl(fd: int, request: int, arg: Any) -> int:
    # libc's ioctl is variadic: cffi passes a variadic argument only as cdata.
    return int(_libc.ioctl(fd, request, ffi.cast("void *", arg)))


_RUN_OWNER_LOCK = threading.Lock()  # the mshv_run_* steps below, one at a time


def _kick_handler(signum: int, frame: object) -> None:
    """The kick's handler without C: the EINTR the signal causes is all it is for."""


class SnapshotLib:
    """The compiled ``lib``'s names, for the snapshot ABI: constants and the kernel table.

    The table's calls (``mshv_open``, ``mshv_ioctl``, ``mshv_mmap``, ``mshv_munmap``,
    ``mshv_close``) go through the functions :meth:`mshv_kernel_use_libc` and
    :meth:`mshv_kernel_use_library` install.
    """

    def __init__(self) -> None:
        for name in _CONSTANTS:
            setattr(self, name, getattr(_libc, name))
        self._library: Any = None  # the dlopen()ed emulator, kept loaded
        self._open: Any = None
        self._ioctl: Any = None
        self._mmap: Any = None
        self._munmap: Any = None
        self._close: Any = None
        self.mshv_kernel_use_libc()

    def mshv_kernel_use_libc(self) -> int:
        """Point the kernel table at libc (a real /dev/mshv)."""
        self._open, self._ioctl, self._mmap = _libc.open, _libc_ioctl, _libc.mmap
        self._munmap, self._close = _libc.munmap, _libc.close
        return 0

    def mshv_kernel_use_library(self, path: bytes, err: Any, errlen: int) -> int:
        """Point the kernel table at a library's ``mshv_emu_{open,ioctl,mmap,munmap,close}``.

        Like the C version, returns -1 with the reason in ``err`` (a ``char[errlen]``).
        """
        try:
            library = ffi.dlopen(path.decode())
            calls = [getattr(library, f"mshv_emu_{name}") for name in _TABLE]
        except (OSError, AttributeError) as exc:
            message = str(exc).encode()[: errlen - 1] + b"\0"
            ffi.memmove(err, message, len(message))
            return -1
        self._library = library
        self._open, self._ioctl, self._mmap, self._munmap, self._close = calls
        return 0

    def mshv_open(self, path: bytes, flags: int) -> int:
        """open(2) through the kernel table."""
        return int(self._open(path, flags))

    def mshv_ioctl(self, fd: int, request: int, arg: Any) -> int:
        """ioctl(2) through the kernel table."""
        return int(self._ioctl(fd, request, arg))

    def mshv_mmap(self, addr: Any, length: int, prot: int, flags: int, fd: int, offset: int) -> Any:
        """mmap(2) through the kernel table."""
        return self._mmap(addr, length, prot, flags, fd, offset)

    def mshv_munmap(self, addr: Any, length: int) -> int:
        """munmap(2) through the kernel table."""
        return int(self._munmap(addr, length))

    def mshv_close(self, fd: int) -> int:
        """close(2) through the kernel table."""
        return int(self._close(fd))

    def mshv_kernel_table(self) -> Any:
        """The C table the Cython run loop reads: there is none without a C compiler."""
        raise NotImplementedError("the snapshot ABI has no C kernel table (mshv._abi was not compiled)")

    def mshv_set_guest_memory(
        self, fd: int, size: int, guest_pfn: int, userspace_addr: int, flags: int
    ) -> int:
        """MSHV_SET_GUEST_MEMORY with a zeroed ``struct mshv_user_mem_region`` (reserved bytes zero)."""
        region = ffi.new("struct mshv_user_mem_region *")
        region.size = size
        region.guest_pfn = guest_pfn
        region.userspace_addr = userspace_addr
        region.flags = flags
        return int(self._ioctl(fd, self.MSHV_SET_GUEST_MEMORY, region))

    def mshv_memfd_create(self, name: bytes, flags: int) -> int:
        """memfd_create(2) from libc (guest memory backing, not a /dev/mshv call)."""
        return int(_libc.memfd_create(name, flags))

    def mshv_ftruncate(self, fd: int, length: int) -> int:
        """ftruncate(2) from libc."""
        return int(_libc.ftruncate(fd, length))

    def mshv_madvise(self, addr: Any, length: int, advice: int) -> int:
        """madvise(2) from libc."""
        return int(_libc.madvise(addr, length, advice))

    def mshv_copy_bitmap_pages(self, dst: Any, src: Any, bitmap: Any, npages: int, page_size: int) -> int:
        """Copy the pages set in an LSB-first page bitmap from ``src`` to ``dst``, one slice per run
        of set pages (build_ext/page_copy.py); returns the number of pages copied."""
        bits = int.from_bytes(ffi.buffer(bitmap, (npages + 7) // 8), "little") & ((1 << npages) - 1)
        to, data = ffi.buffer(dst, npages * page_size), ffi.buffer(src, npages * page_size)
        copied = 0
        while bits:
            first = (bits & -bits).bit_length() - 1
            rest = bits >> first
            count = (rest ^ (rest + 1)).bit_length() - 1  # the run's set bits
            start, end = first * page_size, (first + count) * page_size
            to[start:end] = data[start:end]
            bits &= ~(((1 << count) - 1) << first)
            copied += count
        return copied

    def mshv_bitmap_pages(self, bitmap: Any, npages: int, pages: Any, cap: int) -> int:
        """The numbers of the pages set in an LSB-first page bitmap, in order, the first ``cap``
        into ``pages`` (build_ext/page_copy.py); returns how many are set."""
        bits = int.from_bytes(ffi.buffer(bitmap, (npages + 7) // 8), "little") & ((1 << npages) - 1)
        found = 0
        while bits:
            low = bits & -bits
            if found < cap:
                pages[found] = low.bit_length() - 1
            bits ^= low
            found += 1
        return found

    def mshv_call_batch(self, steps: Any, count: int, fds: Any) -> int:
        """Issue the steps of a call batch in order (build_ext/call_batch.py): ``count`` when all
        succeeded, else the failed step's index (errno 0 for a hypercall short of its reps)."""
        for index in range(count):
            step = steps[index]
            ffi.memmove(step.arg, step.init, step.size)
            if self._ioctl(fds[step.slot], step.request, step.arg) < 0:
                return index
            if step.request == self.MSHV_ROOT_HVCALL:
                if ffi.cast("struct mshv_root_hvcall *", step.arg).reps != step.reps:
                    ffi.errno = 0
                    return index
        return count

    def mshv_restore(self, program: Any, fds: Any, outcome: Any) -> int:
        """A dirty-page snapshot restore in one call (build_ext/restore_program.py): the same
        batches, copies and rules; returns MSHV_RESTORE_DONE or the batch that failed."""
        p = program
        outcome.batch, outcome.step, outcome.err, outcome.thaw_err = self.MSHV_RESTORE_DONE, 0, 0, -1
        was_frozen = False
        if self.mshv_call_batch(p.read_frozen, 1, fds) == 1:
            was_frozen = int.from_bytes(ffi.buffer(p.frozen, 8), "little") != 0
        elif ffi.cast("struct mshv_root_hvcall *", p.read_frozen[0].arg).status == 0:
            return _restore_failed(outcome, self.MSHV_RESTORE_READ_FROZEN, 0)
        if not was_frozen and self.mshv_call_batch(p.freeze, 1, fds) != 1:
            return _restore_failed(outcome, self.MSHV_RESTORE_FREEZE, 0)
        done = self.mshv_call_batch(p.bitmaps, p.nbitmaps, fds)
        if done != p.nbitmaps:
            _restore_failed(outcome, self.MSHV_RESTORE_BITMAPS, done)
        else:
            for r in p.regions[0 : p.nregions]:
                self.mshv_copy_bitmap_pages(r.dst, r.src, r.bitmap, r.npages, self.MSHV_HV_PAGE_SIZE)
            for page in p.pages[0 : p.npages]:
                page.page.dirty = 0
            done = self.mshv_call_batch(p.vp_calls, p.nvp_calls, fds)
            if done != p.nvp_calls:
                _restore_failed(outcome, self.MSHV_RESTORE_VP_CALLS, done)
        if not was_frozen and self.mshv_call_batch(p.thaw, 1, fds) != 1:
            if outcome.batch == self.MSHV_RESTORE_DONE:
                return _restore_failed(outcome, self.MSHV_RESTORE_THAW, 0)
            outcome.thaw_err = ffi.errno
        if outcome.batch != self.MSHV_RESTORE_DONE:
            return int(outcome.batch)
        for page in p.pages[0 : p.npages]:
            if page.packed != ffi.NULL:
                ffi.memmove(ffi.cast("char *", page.page) + page.offset, page.packed, page.size)
        return int(self.MSHV_RESTORE_DONE)

    def mshv_kick_signal(self) -> int:
        """The signal that kicks a VP thread out of MSHV_RUN_VP (build_ext/vp_kick.py): SIGRTMIN."""
        return int(signal.SIGRTMIN)

    def mshv_kick_install(self) -> int:
        """Install the kick's do-nothing handler: 0 done, 1 the signal has another handler.

        Without C it is a Python handler (Python's C-level handler interrupts system calls,
        and the Python one does nothing), and ``signal.signal`` works in the main thread only.
        """
        current = signal.getsignal(signal.SIGRTMIN)
        if current is _kick_handler:
            return 0
        if current not in (signal.SIG_DFL, signal.SIG_IGN, None):
            return 1
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "without a compiled mshv._abi the kick's handler is installed with signal.signal, "
                "which works in the main thread only: create a VP there first"
            )
        signal.signal(signal.SIGRTMIN, _kick_handler)
        return 0

    def mshv_kick_thread(self, tid: int) -> int:
        """tgkill(2) of the kick signal to thread ``tid`` of this process."""
        return int(_libc.tgkill(os.getpid(), tid, signal.SIGRTMIN))

    # -- who runs a VP (build_ext/vp_kick.py): one lock makes each step atomic, as the C
    # atomics do
    def mshv_run_enter(self, owner: Any, me: int) -> int:
        """Make thread ``me`` the runner: 0, or the tid of the runner already there."""
        with _RUN_OWNER_LOCK:
            if owner.tid:
                return int(owner.tid)
            owner.tid = me
            return 0

    def mshv_run_leave(self, owner: Any) -> None:
        """The run is over: tid 0, then wait until no kicker is in."""
        with _RUN_OWNER_LOCK:
            owner.tid = 0
        while owner.kicking:
            time.sleep(0)  # a kicker in another thread sends its kick

    def mshv_run_take_request(self, owner: Any) -> int:
        """Take a pending interrupt request: 1 if there was one."""
        with _RUN_OWNER_LOCK:
            taken, owner.request = owner.request, 0
        return 1 if taken else 0

    def mshv_run_request(self, owner: Any) -> None:
        """Request an interrupt."""
        owner.request = 1

    def mshv_run_kick_begin(self, owner: Any) -> int:
        """A kicker comes in: the tid of the runner now (0: none)."""
        with _RUN_OWNER_LOCK:
            owner.kicking += 1
            return int(owner.tid)

    def mshv_run_kick_end(self, owner: Any) -> None:
        """The kicker is done."""
        with _RUN_OWNER_LOCK:
            owner.kicking -= 1

    def mshv_abi_header(self) -> Any:
        """``"snapshot:<header>"``: the header the snapshot was generated from."""
        return _HEADER

    def mshv_abi_header_reason(self) -> Any:
        """Why the snapshot is in use and which command wrote it."""
        return _REASON

    def __getattr__(self, name: str) -> Any:  # only reached for names no constant or call has
        raise AttributeError(f"the snapshot ABI has no {name!r} (regenerate: {_SNAPSHOT.GENERATOR})")


lib = SnapshotLib()


def _restore_failed(outcome: Any, batch: int, step: int) -> int:
    """Note in ``outcome`` where a restore stopped, with errno as the call left it."""
    outcome.batch, outcome.step, outcome.err = batch, step, ffi.errno
    return batch
