"""A virtual processor: registers, VP state, run and intercepts.

Created by ``Partition.create_vp``; owns its VP fd and the mapping of its
register page. ``run()`` issues MSHV_RUN_VP with the GIL released and returns
the typed intercept. The VP stops with RIP *at* the intercepted instruction:
complete it (write results, move RIP past it) before the next run, e.g. with
:meth:`Vp.complete_io`. :meth:`Vp.interrupt` brings a run back from another
thread, and ``run(timeout=...)`` bounds one.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mshv import _cstruct, _kernel, _kick, _regcalls, intercept_config, state, translate
from mshv._abi import ffi, lib
from mshv._owner import FdOwner
from mshv._regcalls import get_registers, set_registers
from mshv.errors import MshvError
from mshv.intercept_config import CpuidValues
from mshv.intercepts import (
    Intercept,
    IoPortIntercept,
    MemoryIntercept,
    UnrecoverableException,
    decode,
    run_path_types,
)
from mshv.registers import RegisterAttributes, RegisterValue
from mshv.regpage import GPRS, RegisterPage
from mshv.state import LapicState, SyntheticTimer
from mshv.translate import GvaTranslation, TranslateFlag
from mshv.x86 import stringio
from mshv.x86.cpu import in_rax

if TYPE_CHECKING:
    from mshv.partition import Partition

__all__ = ["Vp"]


_RUN_VP = lib.MSHV_RUN_VP
_EINTR = errno.EINTR
_ioctl_raw = _kernel.ioctl_raw
_monotonic = time.monotonic
_thread_id = _kick._native_id  # the kernel thread id (mshv._native caches it per thread)
# The register page's writable classes and the registers each one holds (hv_vp_register_page).
_PAGE_CLASSES = (
    (1 << lib.HV_X64_REGISTER_CLASS_GENERAL, GPRS),
    (1 << lib.HV_X64_REGISTER_CLASS_IP, ("rip",)),
    (1 << lib.HV_X64_REGISTER_CLASS_FLAGS, ("rflags",)),
)
_PAGE_WRITABLE = frozenset(GPRS) | {"rip", "rflags"}
_IN_LIMITS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}
# Vp.get_registers/set_registers through the VP's RunCalls (mshv._native) when it is built;
# tests turn it off to run the pure-Python twins.
_REGISTERS_IN_C = _regcalls._NATIVE is not None


class Vp(FdOwner):
    """One VP of a partition (MSHV_CREATE_VP). Use ``Partition.create_vp`` to make one.

    The VP maps its register page when it is created and owns that mapping; the
    run loops and completions borrow it. Closing the VP fd does not delete the VP:
    its index stays taken until the partition is destroyed (mshv_vp_release).
    """

    def __init__(self, partition: Partition, index: int, fd: int) -> None:
        self.partition = partition  # a child keeps its parent alive; the parent holds it weakly
        self.index = index
        self._what = f"VP {index}"
        self._run_buf = ffi.new("struct mshv_run_vp *")
        self._run_view = memoryview(ffi.buffer(self._run_buf))
        self.exits = 0
        self._last_exit: Intercept | None = None  # what completions accept
        self._run_state = _kick.RunState()
        self._page: RegisterPage | None = None
        self._native: Any = None  # mshv._native.RunCalls: run() and completions in C, when built
        self._own(fd)
        try:
            self._page = _map_register_page(self)
            self._native = _run_calls(self)
        except BaseException:
            self.close()
            raise
        _kick.install()

    def __enter__(self) -> Vp:
        return self

    def _close_children(self) -> None:
        """Bring a run in another thread back first (it must not touch the fd or the page
        after this), then unmap the register page."""
        run = self._run_state
        if run.tid and run.tid == _kick._native_id():
            raise RuntimeError(f"{self._what} cannot be closed from its own run (a run loop handler)")
        if run.tid:
            _kick.require()
        run.interrupt(until_left=True)  # also stops a run that starts now, before the fd closes
        if self._native is not None:
            self._native.close()  # it holds the page's address: forgotten before the unmap
            self._native = None
        if self._page is not None:
            with self.partition._page_writers:  # not while a restore writes the page
                self._page._close()
                self._page = None

    @property
    def register_page(self) -> RegisterPage | None:
        """The VP's register page (mapped at creation); None where the backend has none (SNP)."""
        return self._page

    def __repr__(self) -> str:
        return f"<Vp index={self.index} exits={self.exits} closed={self.closed}>"

    # -- registers ------------------------------------------------------------------------
    @property
    def regs(self) -> Any:
        """Registers by attribute: ``vp.regs.rip``; each access is one hypercall."""
        return RegisterAttributes(self)

    def get_registers(self, names: Iterable[str | int]) -> dict[str, RegisterValue]:
        """Read registers by name (HvCallGetVpRegisters, chunked by 256).

        Values written through the register page since the last run (a completion)
        are returned as written: they are the VP's registers from the next run on.
        """
        native = self._native
        if native is not None and _REGISTERS_IN_C:  # the same, with the page's dirty classes read in C
            values: dict[str, RegisterValue] = native.get_registers(names)
            return values
        values = get_registers(self._live(), self.index, names)
        pending = self._pending_page_writes()
        if pending:
            for name in pending.keys() & values.keys():
                values[name] = pending[name]
        return values

    def set_registers(self, values: Mapping[str | int, RegisterValue]) -> None:
        """Write registers by name (HvCallSetVpRegisters, chunked by 127).

        The register page's copy of those it holds (GPRs, RIP, RFLAGS) is updated too:
        a completion through the page writes a whole register class back, which then
        carries these values instead of undoing them.
        """
        native = self._native
        if native is not None and _REGISTERS_IN_C:  # the same, with the page's copy written in C
            native.set_registers(values)
            return
        mirrored = set_registers(self._live(), self.index, values, _PAGE_WRITABLE)
        page = self._page
        if mirrored and page is not None:
            page.write_all(mirrored, mark_dirty=False)  # type: ignore[arg-type]  # checked above

    def complete_registers(self, values: Mapping[str, int]) -> None:
        """Write GPRs, ``rip`` and ``rflags`` to take effect at the next run.

        The one completion path (complete_io, skip, the string IO and MMIO helpers and
        both run loops' fallbacks use it): through the register page while it holds the
        last intercept's state (no hypercall), else by HvCallSetVpRegisters.
        """
        native = self._native
        if native is not None and native.complete(values):  # the page write in C
            return
        page = self._page
        if page is not None and page.write_all(values, only_if_valid=True):
            return
        self.set_registers(values)  # type: ignore[arg-type]

    def _completion_page(self) -> RegisterPage | None:
        """The register page, when it holds the last intercept's state (``isvalid``)."""
        page = self._page
        return page if page is not None and page.valid else None

    def _pending_page_writes(self) -> dict[str, int]:
        """The registers written through the page (dirty classes) that no run has applied yet."""
        page = self._page
        if page is None:
            return {}
        dirty = page.dirty
        if not dirty:
            return {}
        return {name: page.read(name) for bit, names in _PAGE_CLASSES if dirty & bit for name in names}

    def reg_read(self, name: str | int) -> RegisterValue:
        """Read one register."""
        return next(iter(self.get_registers([name]).values()))

    def reg_write(self, name: str | int, value: RegisterValue) -> None:
        """Write one register."""
        self.set_registers({name: value})

    # -- running --------------------------------------------------------------------------
    @property
    def last_exit(self) -> Intercept | None:
        """The intercept the VP stopped at in its last run, which the completions accept;
        None before the first run, while a run is in progress, and after a failed one."""
        return self._last_exit

    def run(self, *, interruptible: bool = False, timeout: float | None = None) -> Intercept:
        """Run the VP until its next intercept (MSHV_RUN_VP; the GIL is released).

        Args:
            interruptible: raise InterruptedError when any signal interrupts the run;
                by default the run is resumed after Python's signal handlers ran.
            timeout: seconds; raise TimeoutError if no intercept came by then (the VP
                is kicked out of MSHV_RUN_VP and resumes where it was at the next run).

        Raises:
            InterruptedError: :meth:`interrupt` was called during the run or before it.
            TimeoutError: ``timeout`` passed.
            MshvError: MSHV_RUN_VP failed.
            RuntimeError: the VP is already running in another thread.
        """
        native = self._native
        if native is None or timeout is not None:
            return self._run(interruptible, timeout)
        # the C run path without a timeout: enter, RUN_VP, the decode and leave in one call
        if self._fd < 0:
            self._live()  # raises
        self._last_exit = None  # once the VP runs on, the exit it was at is no longer current
        exit_: Intercept | int = native.run_owned(self._what)  # raises: a run is already in progress
        while isinstance(exit_, int):  # no exit: an interrupt request, a signal or an error
            self._not_run(exit_, interruptible)
            exit_ = native.run_owned(self._what)
        # self._exited(exit_), inline: right after a run every Python call runs cold
        self.exits += 1
        self._last_exit = exit_
        if exit_.__class__ is UnrecoverableException:
            self._name_host_limit(exit_)
        return exit_

    def _exited(self, exit_: Intercept) -> Intercept:
        """Count the exit ``exit_``, keep it as the one the VP is at, and name a host limit."""
        self.exits += 1
        self._last_exit = exit_
        if exit_.__class__ is UnrecoverableException:
            self._name_host_limit(exit_)
        return exit_

    def _name_host_limit(self, exit_: UnrecoverableException) -> None:
        """Name the host's limit behind ``exit_``, if it is one."""
        from mshv import limits

        exit_.host_limit = limits.host_cause(self, exit_)

    def _not_run(self, err: int, interruptible: bool) -> None:
        """What a C run that made no exit means: raise, or return to run again."""
        if err < 0:  # an interrupt request was pending: no RUN_VP was made
            if self._run_state.take_request():
                raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}: interrupted")
            return
        if err != _EINTR:
            raise MshvError(err, "MSHV_RUN_VP", details=self._what)
        if interruptible and not self._run_state.word[0]:
            raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}")

    def _run(self, interruptible: bool, timeout: float | None) -> Intercept:
        """run() with a timeout, or without the C run path."""
        fd = self._live()
        deadline = None if timeout is None else _kick.deadline_after(timeout)
        run = self._run_state
        word, run_buf, native = run.word, self._run_buf, self._native
        # raises: a run is already in progress
        with run.entered(self._what, _thread_id()), _kick.watching(run, deadline):
            self._last_exit = None  # once the VP runs on, the exit it was at is no longer current
            while True:
                # a request is checked before every RUN_VP (one made as the thread gets here is
                # not lost), and before the deadline
                if deadline is not None:
                    if word[0] and run.take_request():
                        raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}: interrupted")
                    if _monotonic() >= deadline:
                        passed = f"MSHV_RUN_VP on {self._what}: {timeout} s passed"
                        raise TimeoutError(errno.ETIMEDOUT, passed)
                if native is not None:
                    exit_ = native.run()  # RUN_VP and the decode in C; -1: a request, no RUN_VP
                    if exit_.__class__ is not int:
                        break
                    err = exit_
                    if err < 0:
                        if run.take_request():
                            raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}: interrupted")
                        continue
                else:
                    if word[0] and run.take_request():
                        raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}: interrupted")
                    if _ioctl_raw(fd, _RUN_VP, run_buf) >= 0:  # one table call; no Python frame per exit
                        exit_ = decode(self._run_view.tobytes())
                        break
                    err = _kernel.errno()
                if err != _EINTR:
                    raise MshvError(err, "MSHV_RUN_VP", details=self._what)
                if interruptible and not word[0]:
                    raise InterruptedError(_EINTR, f"MSHV_RUN_VP on {self._what}")
        return self._exited(exit_)

    def interrupt(self) -> None:
        """Bring the run of this VP in progress back from MSHV_RUN_VP, from any thread.

        The thread in the run is sent a signal, as often as needed, until the run took
        the request: ``run()`` raises InterruptedError and a :class:`~mshv.RunLoop` returns
        "stopped"; the VP resumes where it was at its next run. Returns once the run took
        it; with no run in progress, or from the running thread itself (a run loop
        handler), it returns at once and the next run is the one that stops, before its
        first MSHV_RUN_VP. Does nothing on a closed VP.
        """
        if self.closed:
            return
        run = self._run_state
        if run.tid and run.tid != _kick._native_id():
            _kick.require()
        run.interrupt()

    def _check_last_exit(self, intercept: Intercept) -> None:
        """Refuse an intercept that is not this VP's last exit (another VP's, or a stale one)."""
        if intercept is self._last_exit:
            return
        header = getattr(intercept, "header", None)
        owner = getattr(header, "vp_index", self.index)
        what = type(intercept).__name__
        if header is not None:
            what += f" at rip={header.rip:#x}"
        if owner != self.index:
            raise ValueError(f"the {what} is an intercept of VP {owner}, not of {self._what}")
        raise ValueError(f"the {what} is not the last exit of {self._what} (a stale intercept)")

    def complete_io(self, intercept: IoPortIntercept, value: int | None = None) -> None:
        """Complete the (non-string) port IO intercept the VP stopped at, the mshv way.

        For IN, ``value`` (what the port read, at most the access size) is merged into
        RAX by access size; RIP moves past the instruction. Both go through the register
        page when it is valid (no hypercall), else through one HvCallSetVpRegisters.

        Raises:
            ValueError: ``intercept`` is not this VP's last exit, or a string IO (see
                :meth:`complete_string_io`); an IN without a value, a value that does not
                fit the access size, or an OUT with one.
            TypeError: ``value`` is not an int.
        """
        native = self._native
        if native is not None and intercept is self._last_exit and native.complete_io(intercept, value):
            return  # the page write in C
        if intercept is not self._last_exit:
            self._check_last_exit(intercept)
        if intercept.string:
            raise ValueError("an INS/OUTS intercept is completed by complete_string_io")
        if intercept.is_write:
            if value is not None:
                raise ValueError(f"an OUT takes no value (got {value!r}): the guest wrote one")
            self.complete_registers({"rip": intercept.next_rip})
            return
        if value is None:
            raise ValueError("an IN needs the value read from the port")
        if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"an IN's value must be an int, not {type(value).__name__}")
        size = intercept.size
        limit = _IN_LIMITS[size]
        if not 0 <= value <= limit:
            raise ValueError(f"a {size}-byte IN reads 0..{limit:#x}, got {value:#x}")
        self.complete_registers({"rip": intercept.next_rip, "rax": in_rax(intercept.rax, size, value)})

    def complete_string_io(
        self,
        intercept: IoPortIntercept,
        *,
        read_port: Callable[[int, int], int] | None = None,
        write_port: Callable[[int, int, int], None] | None = None,
    ) -> int:
        """Perform a whole INS/OUTS over guest memory and move RIP past it; see :mod:`mshv.x86.stringio`.

        Raises:
            ValueError: ``intercept`` is not this VP's last exit.
        """
        self._check_last_exit(intercept)
        return stringio.complete_string_io(self, intercept, read_port=read_port, write_port=write_port)

    def skip(self, intercept: Intercept) -> None:
        """Move RIP past the intercepted instruction without other effects.

        Raises:
            ValueError: ``intercept`` is not this VP's last exit, or has no instruction.
        """
        header = getattr(intercept, "header", None)
        if header is None:
            raise ValueError(f"{type(intercept).__name__} has no instruction to skip")
        self._check_last_exit(intercept)
        self.complete_registers({"rip": header.next_rip})

    # -- VP state -------------------------------------------------------------------------
    def get_state(self, state_type: int, size: int = 4096) -> bytes:
        """Read a VP state blob (MSHV_GET_VP_STATE) into a page-aligned buffer; returns its bytes.

        A buffer that is too small is grown to the size the kernel asks for.
        """
        data, _ = self._state(state_type, size, None)
        return data

    def set_state(self, state_type: int, data: bytes) -> None:
        """Write a VP state blob (MSHV_SET_VP_STATE)."""
        self._state(state_type, state.state_buffer_size(len(data)), data)

    def _state(self, state_type: int, size: int, data: bytes | None) -> tuple[bytes, int]:
        fd = self._live()
        if not 0 <= state_type < lib.MSHV_VP_STATE_COUNT:
            raise ValueError(f"unknown VP state type {state_type}")
        for _attempt in range(2):
            if size <= 0 or size % 4096:
                raise ValueError(f"VP state buffer size must be a multiple of 4096, got {size}")
            raw, aligned = state.aligned_state_buffer(size)  # raw owns the memory
            if data is not None:
                ffi.memmove(aligned, data, len(data))
            args = _cstruct.new(
                "struct mshv_get_set_vp_state",
                type=state_type,
                buf_sz=size,
                buf_ptr=ffi.cast("uint64_t", aligned),
            )
            req = lib.MSHV_SET_VP_STATE if data is not None else lib.MSHV_GET_VP_STATE
            try:
                _kernel.ioctl(fd, req, args, details=f"vp={self.index} type={state_type} size={size}")
            except MshvError as exc:
                if exc.errno == errno.EINVAL and args.buf_sz > size:
                    size = int(args.buf_sz)  # the kernel wrote back the size it needs
                    continue
                raise
            used = int(args.buf_sz)
            return bytes(ffi.buffer(aligned, min(used, size))), used
        raise MshvError(errno.EINVAL, "MSHV_GET_VP_STATE", None, f"size kept growing past {size}")

    # -- typed VP state (mshv.state) ------------------------------------------------------------
    def get_lapic(self) -> LapicState:
        """Read the local APIC (MSHV_GET_VP_STATE, LAPIC)."""
        return state.get_lapic(self)

    def set_lapic(self, lapic: LapicState) -> None:
        """Write the local APIC (MSHV_SET_VP_STATE, LAPIC)."""
        state.set_lapic(self, lapic)

    def get_xsave(self) -> bytes:
        """Read the compacted XSAVE area (MSHV_GET_VP_STATE, XSAVE)."""
        return state.get_xsave(self)

    def set_xsave(self, data: bytes) -> None:
        """Write the compacted XSAVE area (MSHV_SET_VP_STATE, XSAVE)."""
        state.set_xsave(self, data)

    def get_simp(self) -> bytes:
        """Read the SynIC message page (MSHV_GET_VP_STATE, SIMP)."""
        return state.get_simp(self)

    def set_simp(self, page: bytes) -> None:
        """Write the SynIC message page (MSHV_SET_VP_STATE, SIMP)."""
        state.set_simp(self, page)

    def get_siefp(self) -> bytes:
        """Read the SynIC event-flags page (MSHV_GET_VP_STATE, SIEFP)."""
        return state.get_siefp(self)

    def set_siefp(self, page: bytes) -> None:
        """Write the SynIC event-flags page (MSHV_SET_VP_STATE, SIEFP)."""
        state.set_siefp(self, page)

    def get_synthetic_timers(self) -> list[SyntheticTimer]:
        """Read the four synthetic timers (MSHV_GET_VP_STATE, SYNTHETIC_TIMERS)."""
        return state.get_synthetic_timers(self)

    def set_synthetic_timers(self, timers: list[SyntheticTimer]) -> None:
        """Write the four synthetic timers (MSHV_SET_VP_STATE, SYNTHETIC_TIMERS)."""
        state.set_synthetic_timers(self, timers)

    # -- translation and CPUID ----------------------------------------------------------------
    def translate_gva(self, gva: int, flags: int = TranslateFlag.VALIDATE_READ) -> GvaTranslation:
        """Translate a guest virtual address (HvCallTranslateVirtualAddress): (result, gpa)."""
        return translate.translate_gva(self._live(), self.index, gva, flags)

    def set_cpuid_result(self, leaf: int, subleaf: int | None = None, **registers: Any) -> None:
        """Set this VP's CPUID results (HvCallRegisterInterceptResult); before its first run."""
        intercept_config.set_cpuid_result(self._live(), self.index, leaf, subleaf, **registers)

    def get_cpuid(self, leaf: int, subleaf: int = 0) -> CpuidValues:
        """What CPUID ``leaf``/``subleaf`` returns on this VP (HvCallGetVpCpuidValues)."""
        return intercept_config.get_cpuid(self._live(), self.index, leaf, subleaf)


def _run_calls(vp: Vp) -> Any:
    """``vp``'s run path in C (``mshv._native.RunCalls``) when the extension was built, else None."""
    try:
        from mshv._native import RunCalls

        table = int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
    except (ImportError, NotImplementedError):  # not built, or the snapshot ABI (no C table)
        return None
    page = vp.register_page
    run = vp._run_state
    return RunCalls(
        table, vp.fd, vp._run_buf, int(ffi.cast("uintptr_t", vp._run_buf)), run,
        page.address if page is not None else 0, _PAGE_SLOTS,
        IoPortIntercept, MemoryIntercept, run_path_types(), decode, _regcalls._NATIVE, vp.index,
    )  # fmt: skip


try:
    from mshv._native import thread_id as _thread_id
except ImportError:  # not built
    pass

# The register page's writable registers as RunCalls numbers them: GPRs 0-15, rip, rflags.
_PAGE_SLOTS = {name: index for index, name in enumerate((*GPRS, "rip", "rflags"))}


def _map_register_page(vp: Vp) -> RegisterPage | None:
    """Map ``vp``'s register page, as rust-vmm's create_vcpu does; None where the backend has
    none (mshv_vp_mmap: ENODEV on SNP partitions; EINVAL from older emulators)."""
    try:
        return RegisterPage(vp)
    except MshvError as exc:
        if exc.errno not in (errno.ENODEV, errno.EINVAL):
            raise
        return None
