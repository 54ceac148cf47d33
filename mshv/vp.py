"""A virtual processor: registers, VP state, run and intercepts.

Created by ``Partition.create_vp``; owns its VP fd. ``run()`` issues
MSHV_RUN_VP with the GIL released and returns the typed intercept. The VP
stops with RIP *at* the intercepted instruction: complete it (write results,
move RIP past it) before the next run, e.g. with :meth:`complete_io`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mshv import _cstruct, _kernel, intercept_config, state, translate
from mshv._abi import ffi, lib
from mshv._owner import FdOwner
from mshv.errors import MshvError
from mshv.intercept_config import CpuidValues
from mshv.intercepts import Intercept, IoPortIntercept, UnrecoverableException, decode
from mshv.registers import RegisterAttributes, RegisterValue, get_registers, register, set_registers
from mshv.regpage import GPRS, RegisterPage
from mshv.state import LapicState, SyntheticTimer
from mshv.translate import GvaTranslation, TranslateFlag
from mshv.x86 import stringio

if TYPE_CHECKING:
    from mshv.partition import Partition

__all__ = ["Vp"]


_RUN_VP = lib.MSHV_RUN_VP
_ioctl_raw = _kernel.ioctl_raw
# The register page's writable classes and the registers each one holds (hv_vp_register_page).
_PAGE_CLASSES = (
    (1 << lib.HV_X64_REGISTER_CLASS_GENERAL, GPRS),
    (1 << lib.HV_X64_REGISTER_CLASS_IP, ("rip",)),
    (1 << lib.HV_X64_REGISTER_CLASS_FLAGS, ("rflags",)),
)
_PAGE_WRITABLE = frozenset(GPRS) | {"rip", "rflags"}


class Vp(FdOwner):
    """One VP of a partition (MSHV_CREATE_VP). Use ``Partition.create_vp`` to make one.

    Closing the VP fd does not delete the VP: its index stays taken until the
    partition is destroyed (mshv_vp_release).
    """

    def __init__(self, partition: Partition, index: int, fd: int) -> None:
        self.partition = partition
        self.index = index
        self._what = f"VP {index}"
        self._run_buf = ffi.new("struct mshv_run_vp *")
        self._run_view = memoryview(ffi.buffer(self._run_buf))
        self.exits = 0
        self._page: RegisterPage | None = None
        self._page_missing = False
        # The page holds the whole GPR class: once registers were set by hypercall since
        # the last intercept, writing it back would undo them, so completion falls back.
        self._page_current = False
        self._own(fd)

    def __enter__(self) -> Vp:
        return self

    def _close_children(self) -> None:
        if self._page is not None:
            self._page.close()
            self._page = None

    @property
    def register_page(self) -> RegisterPage | None:
        """The VP's register page, mapped at first use; None where the backend has none (SNP)."""
        if self._page is None and not self._page_missing:
            try:
                self._page = RegisterPage(self)
            except MshvError as exc:
                if exc.errno not in (errno.ENODEV, errno.EINVAL):
                    raise
                self._page_missing = True
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
        values = get_registers(self._live(), self.index, names)
        pending = self._pending_page_writes()
        if pending:
            for name in pending.keys() & values.keys():
                values[name] = pending[name]
        return values

    def set_registers(self, values: Mapping[str | int, RegisterValue]) -> None:
        """Write registers by name (HvCallSetVpRegisters, chunked by 127).

        Register-page writes still pending (a completion) go in the same call, so the
        page's register classes cannot later overwrite what is written here.
        """
        fd = self._live()
        pending = self._pending_page_writes()
        if pending:
            merged: dict[str | int, RegisterValue] = {}
            merged.update(pending)
            merged.update({register(name)[0]: value for name, value in values.items()})
            values = merged
        self._page_current = False
        set_registers(fd, self.index, values)
        if pending and self._page is not None:
            self._page.raw.dirty = 0  # applied by the hypercall

    def complete_registers(self, values: Mapping[str, int]) -> None:
        """Write GPRs, ``rip`` and ``rflags`` to take effect at the next run: through the
        register page when it holds this intercept's state (no hypercall), else by hypercall.
        """
        page = self._current_page() if values.keys() <= _PAGE_WRITABLE else None
        if page is not None and page.write_all(values, only_if_valid=True):
            return
        self.set_registers(values)  # type: ignore[arg-type]

    def _current_page(self) -> RegisterPage | None:
        """The register page, unless a hypercall wrote registers since the last intercept.

        Whether the page holds that intercept's state (``isvalid``) is for the caller to check
        (the page's ``only_if_valid`` writes do it in the same call).
        """
        if not self._page_current:
            return None
        return self._page if self._page is not None else self.register_page

    def _completion_page(self) -> RegisterPage | None:
        """The register page, when it holds this intercept's state and no hypercall wrote since."""
        page = self._current_page()
        return page if page is not None and page.valid else None

    def _pending_page_writes(self) -> dict[str, int]:
        """The registers written through the page (dirty classes) that no run has applied yet."""
        page = self._page
        if page is None or page.closed:
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
    def run(self, *, interruptible: bool = False) -> Intercept:
        """Run the VP until its next intercept (MSHV_RUN_VP; the GIL is released).

        Args:
            interruptible: raise InterruptedError when a signal interrupts the run;
                by default the run is resumed.
        """
        fd = self._live()
        run_buf = self._run_buf
        while _ioctl_raw(fd, _RUN_VP, run_buf) < 0:  # one table call; no Python frame per exit
            err = _kernel.errno()
            if err != errno.EINTR:
                raise MshvError(err, "MSHV_RUN_VP", details=self._what)
            if interruptible:
                raise InterruptedError(errno.EINTR, f"MSHV_RUN_VP on VP {self.index}")
        self.exits += 1
        self._page_current = True
        result = decode(self._run_view.tobytes())
        if result.__class__ is UnrecoverableException:  # name the host's limit, if it is one
            from mshv import limits

            result.host_limit = limits.host_cause(self, result)
        return result

    def complete_io(self, intercept: IoPortIntercept, value: int | None = None) -> None:
        """Complete a (non-string) port IO intercept the mshv way.

        For IN, ``value`` is merged into RAX by access size; RIP moves past the
        instruction. Both go through the register page when it is valid (no
        hypercall), else through one HvCallSetVpRegisters.
        """
        if intercept.is_write:
            rax = None
        elif value is None:
            raise ValueError("an IN needs the value read from the port")
        else:
            rax = intercept.completion_rax(value)
        rip = intercept.next_rip
        page = self._current_page()
        if page is not None and page.complete(rip, rax, only_if_valid=True):
            return
        regs: dict[str | int, RegisterValue] = {"rip": rip}
        if rax is not None:
            regs["rax"] = rax
        self.set_registers(regs)

    def complete_string_io(
        self,
        intercept: IoPortIntercept,
        *,
        read_port: Callable[[int, int], int] | None = None,
        write_port: Callable[[int, int, int], None] | None = None,
    ) -> int:
        """Perform a whole INS/OUTS over guest memory and move RIP past it; see :mod:`mshv.x86.stringio`."""
        return stringio.complete_string_io(self, intercept, read_port=read_port, write_port=write_port)

    def skip(self, intercept: Intercept) -> None:
        """Move RIP past the intercepted instruction without other effects."""
        header = getattr(intercept, "header", None)
        if header is None:
            raise ValueError(f"{type(intercept).__name__} has no instruction to skip")
        self.reg_write("rip", header.next_rip)

    # -- VP state -------------------------------------------------------------------------
    def get_state(self, state_type: int, size: int = 4096) -> bytes:
        """Read a VP state blob (MSHV_GET_VP_STATE) into a page-aligned buffer; returns its bytes.

        A buffer that is too small is grown to the size the kernel asks for.
        """
        data, _ = self._state(state_type, size, None)
        return data

    def set_state(self, state_type: int, data: bytes) -> None:
        """Write a VP state blob (MSHV_SET_VP_STATE)."""
        size = max(4096, -(-len(data) // 4096) * 4096)
        self._state(state_type, size, data)

    def _state(self, state_type: int, size: int, data: bytes | None) -> tuple[bytes, int]:
        fd = self._live()
        if not 0 <= state_type < lib.MSHV_VP_STATE_COUNT:
            raise ValueError(f"unknown VP state type {state_type}")
        for _attempt in range(2):
            if size <= 0 or size % 4096:
                raise ValueError(f"VP state buffer size must be a multiple of 4096, got {size}")
            raw = ffi.new("unsigned char[]", size + 4096)
            aligned = ffi.cast("unsigned char *", (int(ffi.cast("uintptr_t", raw)) + 4095) & ~4095)
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
