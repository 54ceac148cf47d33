"""The VP register page: a VP's registers in shared memory, read and written without a hypercall.

The page is an mmap of the VP fd at offset MSHV_VP_MMAP_OFFSET_REGISTERS pages
(``struct hv_vp_register_page``). After each intercept the hypervisor fills it
(GPRs, RIP, RFLAGS, XMM0-5, segments, control registers) and sets ``isvalid``;
a VMM writes a register into it and sets that register's class bit in
``dirty`` (GENERAL, IP, XMM, SEGMENT, FLAGS), and the next MSHV_RUN_VP applies
it. Completing a port IO this way costs no hypercall. Each VP maps its page
once, at creation (``Vp.register_page``), and owns that mapping.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mshv import _kernel
from mshv._abi import ffi, lib

if TYPE_CHECKING:
    from mshv.vp import Vp

__all__ = ["GPRS", "PACKED", "RegisterPage", "pack"]

#: The 64-bit GPRs the page holds, in x86 register-number order (ModRM reg 0..15).
GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi") + tuple(f"r{i}" for i in range(8, 16))
_CLASS = {name: lib.HV_X64_REGISTER_CLASS_GENERAL for name in GPRS}
_CLASS["rip"] = lib.HV_X64_REGISTER_CLASS_IP
_CLASS["rflags"] = lib.HV_X64_REGISTER_CLASS_FLAGS
_BIT = {name: 1 << cls for name, cls in _CLASS.items()}
_READ_ONLY = ("cr0", "cr3", "cr4", "cr8", "efer", "dr7", "xfem")
_MASK64 = (1 << 64) - 1
#: The registers :meth:`RegisterPage.write_packed` writes at once, in the page's order.
PACKED = (*GPRS, "rip", "rflags")
_PACKED = struct.Struct(f"<{len(PACKED)}Q")
_PACKED_DIRTY = sum({_BIT[name] for name in PACKED})
_PACKED_AT = [ffi.offsetof("struct hv_vp_register_page", name) for name in PACKED]
_PACKED_ONE_BLOCK = _PACKED_AT == list(range(_PACKED_AT[0], _PACKED_AT[0] + 8 * len(PACKED), 8))


def pack(values: Mapping[str, int]) -> bytes | None:
    """``values`` packed for :meth:`RegisterPage.write_packed` (each checked), or None unless
    they are exactly the registers of :data:`PACKED`."""
    if values.keys() != set(PACKED):
        return None
    for name in PACKED:
        value = values[name]
        if type(value) is not int or not 0 <= value <= _MASK64:
            _check_value(name, value)
    return _PACKED.pack(*(values[name] for name in PACKED))


class RegisterPage:
    """One VP's register page, mapped read/write (mmap of the VP fd, MSHV_VP_MMAP_OFFSET_REGISTERS).

    The VP maps it when it is created and unmaps it when it is closed: get it as
    :attr:`Vp.register_page <mshv.Vp.register_page>`; completions and the run loops
    borrow that one mapping. Reads see the state of the last intercept while
    :attr:`valid` is set. Writes (GPRs, RIP, RFLAGS) mark their class dirty; the
    next MSHV_RUN_VP applies them.

    Raises:
        MshvError: the backend has no register page (ENODEV on SNP partitions).

    Example:
        >>> from mshv.testing import assemble, partition_with_one_vp
        >>> code = assemble("mov $7, %ax; out %al, $0x10; hlt")
        >>> with partition_with_one_vp(code, lapic=False) as (pt, vp, mem):
        ...     exit = vp.run()
        ...     page = vp.register_page
        ...     page.write("rip", exit.header.next_rip)
        ...     (page.valid, page.read("rax") & 0xFFFF)
        ...     type(vp.run()).__name__
        (True, 7)
        'HaltIntercept'
    """

    def __init__(self, vp: Vp) -> None:
        self.size: int = lib.MSHV_HV_PAGE_SIZE
        prot = lib.PROT_READ | lib.PROT_WRITE
        offset = lib.MSHV_VP_MMAP_OFFSET_REGISTERS * self.size
        self._addr: Any = _kernel.mmap(self.size, prot, lib.MAP_SHARED, vp.fd, offset)
        self._page: Any = ffi.cast("struct hv_vp_register_page *", self._addr)
        self._finalizer = weakref.finalize(self, _kernel.munmap, self._addr, self.size)

    # -- lifetime (the VP's) --------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the VP that owns the page was closed (the page is unmapped)."""
        return self._page is None

    def _close(self) -> None:
        """Unmap the page (munmap); idempotent. Only its VP calls this, when it closes (the
        run loops hold the page's address while the VP is open)."""
        if self._page is None:
            return
        self._page = None
        self._finalizer()

    def __repr__(self) -> str:
        if self._page is None:
            return "<RegisterPage closed=True>"
        return f"<RegisterPage valid={self.valid} dirty={self.dirty:#x} closed=False>"

    def _live(self) -> Any:
        if self._page is None:
            raise ValueError("the register page is closed")
        return self._page

    # -- access ---------------------------------------------------------------------------
    @property
    def address(self) -> int:
        """The host address of the mapping (for C code such as the Cython run loop)."""
        self._live()
        return int(ffi.cast("uintptr_t", self._addr))

    @property
    def raw(self) -> Any:
        """The ``struct hv_vp_register_page *`` cdata (valid until the VP is closed)."""
        return self._live()

    @property
    def valid(self) -> bool:
        """True when the hypervisor filled the page at the last intercept (``isvalid``)."""
        return bool(self._live().isvalid)

    @property
    def dirty(self) -> int:
        """The class bits (1 << HV_X64_REGISTER_CLASS_*) the next MSHV_RUN_VP will apply."""
        return int(self._live().dirty)

    def read(self, name: str) -> int:
        """Return a GPR, ``rip``, ``rflags`` or a read-only control register from the page."""
        page = self._live()
        if name not in _CLASS and name not in _READ_ONLY:
            raise ValueError(f"the register page has no 64-bit register {name!r}")
        return int(getattr(page, name))

    def write(self, name: str, value: int) -> None:
        """Write a GPR, ``rip`` or ``rflags`` and mark its class dirty for the next MSHV_RUN_VP."""
        self.write_all({name: value})

    def write_all(
        self, values: Mapping[str, int], *, only_if_valid: bool = False, mark_dirty: bool = True
    ) -> bool:
        """Write GPRs, ``rip`` and ``rflags`` (all checked before the first is written) and mark
        their classes dirty for the next MSHV_RUN_VP.

        With ``only_if_valid``, nothing is written and False is returned when the page does
        not hold the last intercept's state (:attr:`valid` is clear) or ``values`` name a
        register it does not hold (the caller writes them by hypercall). With ``mark_dirty``
        False, only the page's copy changes (the VP already holds the values: the VP's
        ``set_registers`` keeps the page in step this way).
        """
        page = self._page
        if page is None:
            raise ValueError("the register page is closed")
        if only_if_valid and not page.isvalid:
            return False
        dirty = 0
        for name, value in values.items():  # every value is checked before the first is written
            bit = _BIT.get(name)
            if bit is None:
                if only_if_valid:
                    return False
                raise ValueError(f"{name!r} cannot be written through the register page")
            if type(value) is not int or not 0 <= value <= _MASK64:
                _check_value(name, value)
            dirty |= bit
        for name, value in values.items():
            setattr(page, name, value)
        if mark_dirty:
            page.dirty |= dirty
        return True

    def write_packed(self, data: bytes, *, mark_dirty: bool = True) -> None:
        """Write every register of :data:`PACKED` from ``data`` (made by :func:`pack`) in one
        copy; ``mark_dirty`` as for :meth:`write_all`."""
        page = self._live()
        if len(data) != _PACKED.size:
            raise ValueError(f"packed registers are {_PACKED.size} bytes, got {len(data)}")
        if _PACKED_ONE_BLOCK:
            ffi.memmove(ffi.addressof(page, PACKED[0]), data, len(data))
        else:
            for name, value in zip(PACKED, _PACKED.unpack(data), strict=True):
                setattr(page, name, value)
        if mark_dirty:
            page.dirty |= _PACKED_DIRTY


def _check_value(name: str, value: object) -> None:
    """Raise the error for a value the page cannot hold (an int subclass in range is fine)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int, not {type(value).__name__}")
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name} is 64 bits: {value:#x} does not fit")
