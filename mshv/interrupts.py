"""Interrupts into a partition: eventfds, irqfd, ioeventfd, MSI routes, asserted interrupts.

A VMM raises a guest interrupt three ways, all on the partition fd:

- an :class:`EventFd` bound to a GSI with MSHV_IRQFD (``Partition.irqfd``);
  writing the eventfd asserts the MSI the GSI is routed to by
  MSHV_SET_MSI_ROUTING (``Partition.set_msi_routing`` with :class:`MsiRoute`);
- directly, with HvCallAssertVirtualInterrupt (``Partition.assert_interrupt``);
- and the other way round, MSHV_IOEVENTFD turns a guest MMIO write into an
  eventfd signal with no intercept (``Partition.ioeventfd``, a doorbell).

Handles returned by ``irqfd``/``ioeventfd`` undo the binding on ``close()``.
The kernel drops every binding when the partition fd closes
(mshv_partition_release), so a handle reads as closed once its partition is.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mshv import _cstruct, _kernel
from mshv._abi import ffi, lib
from mshv._enums import build_enum
from mshv.hvcall import HvcallInput, hvcall

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mshv.partition import Partition

__all__ = [
    "EventFd",
    "InterruptType",
    "Ioeventfd",
    "Irqfd",
    "MsiRoute",
    "assert_interrupt",
    "assign_ioeventfd",
    "assign_irqfd",
    "set_msi_routing",
]

InterruptType: Any = build_enum(
    "InterruptType", lib, "HV_X64_INTERRUPT_TYPE_", exclude=("HV_X64_INTERRUPT_TYPE_MAXIMUM",)
)
InterruptType.__doc__ = "Delivery types of an interrupt (HV_X64_INTERRUPT_TYPE_*)."

_MAX_GUEST_IRQS = 4096  # MSHV_MAX_GUEST_IRQS (drivers/hv/mshv_root.h); not in the uapi header
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_IOEVENTFD_SIZES = (0, 1, 2, 4, 8)


def _int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo:#x}..{hi:#x}, got {value:#x}")
    return value


class EventFd:
    """An eventfd (``os.eventfd``) to bind with irqfd/ioeventfd; non-blocking by default.

    Example:
        >>> with EventFd() as ev:
        ...     ev.signal(2)
        ...     ev.signal()
        ...     (ev.read(), ev.read())
        (3, 0)
    """

    def __init__(self, initval: int = 0, *, nonblocking: bool = True) -> None:
        _int("initval", initval, 0, _U32)
        flags = os.EFD_CLOEXEC | (os.EFD_NONBLOCK if nonblocking else 0)
        self._fd = os.eventfd(initval, flags)
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    @property
    def closed(self) -> bool:
        """True once the eventfd is closed."""
        return self._fd < 0

    def fileno(self) -> int:
        """The eventfd's fd."""
        if self._fd < 0:
            raise ValueError("EventFd is closed")
        return self._fd

    @property
    def fd(self) -> int:
        """The eventfd's fd (as Partition and Vp name theirs)."""
        return self.fileno()

    def signal(self, value: int = 1) -> None:
        """Add ``value`` to the counter (eventfd write)."""
        os.eventfd_write(self.fileno(), _int("value", value, 1, _U64 - 1))

    def read(self) -> int:
        """Return the counter and reset it to 0 (eventfd read); 0 when nothing is pending."""
        try:
            return os.eventfd_read(self.fileno())
        except BlockingIOError:
            return 0

    def close(self) -> None:
        """Close the eventfd; bindings made with it are dropped by the kernel (HUP)."""
        if self._fd >= 0:
            self._finalizer.detach()
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> EventFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EventFd fd={self._fd} closed={self.closed}>"


def _eventfd(name: str, value: EventFd | int) -> int:
    if isinstance(value, EventFd):
        return value.fileno()
    return _int(name, value, 0, (1 << 31) - 1)


@dataclass(frozen=True)
class MsiRoute:
    """Where an MSI goes: ``vector`` on the APIC ``apic_id``, as an x86 MSI address/data pair.

    ``address_lo`` and ``data`` are encoded the way the kernel decodes a route
    (mshv_copy_girq_info): vector in data bits 0-7, delivery type in bits 8-10,
    level trigger in bit 15; APIC id in address bits 12-19, logical mode in bit 2.
    """

    vector: int
    apic_id: int = 0
    level: bool = False
    logical: bool = False
    delivery: int = InterruptType.FIXED

    def __post_init__(self) -> None:
        _int("vector", self.vector, 0, lib.HV_MSI_DATA_VECTOR_MASK)
        id_max = lib.HV_MSI_ADDRESS_DESTINATION_ID_MASK >> lib.HV_MSI_ADDRESS_DESTINATION_ID_SHIFT
        _int("apic_id", self.apic_id, 0, id_max)
        mode_max = lib.HV_MSI_DATA_DELIVERY_MODE_MASK >> lib.HV_MSI_DATA_DELIVERY_MODE_SHIFT
        _int("delivery", int(self.delivery), 0, mode_max)

    @property
    def address_lo(self) -> int:
        """The MSI address (low 32 bits; the high half is always 0)."""
        return int(
            lib.HV_MSI_ADDRESS_BASE
            | (self.apic_id << lib.HV_MSI_ADDRESS_DESTINATION_ID_SHIFT)
            | (lib.HV_MSI_ADDRESS_DESTINATION_MODE_LOGICAL if self.logical else 0)
        )

    @property
    def data(self) -> int:
        """The MSI data word."""
        return int(
            self.vector
            | (int(self.delivery) << lib.HV_MSI_DATA_DELIVERY_MODE_SHIFT)
            | (lib.HV_MSI_DATA_TRIGGER_MODE_LEVEL if self.level else 0)
        )

    @classmethod
    def decode(cls, address_lo: int, data: int) -> MsiRoute:
        """The route an MSI address/data pair describes (what the kernel reads from it)."""
        return cls(
            vector=data & lib.HV_MSI_DATA_VECTOR_MASK,
            apic_id=(address_lo & lib.HV_MSI_ADDRESS_DESTINATION_ID_MASK)
            >> lib.HV_MSI_ADDRESS_DESTINATION_ID_SHIFT,
            level=bool(data & lib.HV_MSI_DATA_TRIGGER_MODE_LEVEL),
            logical=bool(address_lo & lib.HV_MSI_ADDRESS_DESTINATION_MODE_LOGICAL),
            delivery=InterruptType(
                (data & lib.HV_MSI_DATA_DELIVERY_MODE_MASK) >> lib.HV_MSI_DATA_DELIVERY_MODE_SHIFT
            ),
        )


def set_msi_routing(fd: int, routes: Mapping[int, MsiRoute]) -> None:
    """Replace the partition's GSI routing table (MSHV_SET_MSI_ROUTING); ``{}`` clears it."""
    if not hasattr(routes, "items"):
        raise TypeError(f"routes must map GSI -> MsiRoute, not {type(routes).__name__}")
    items = sorted(routes.items())
    if len(items) > _MAX_GUEST_IRQS:
        raise ValueError(f"at most {_MAX_GUEST_IRQS} routes, got {len(items)}")
    for gsi, route in items:
        _int("gsi", gsi, 0, _MAX_GUEST_IRQS - 1)
        if not isinstance(route, MsiRoute):
            raise TypeError(f"GSI {gsi}: expected an MsiRoute, not {type(route).__name__}")
    offset = ffi.offsetof("struct mshv_user_irq_table", "entries")
    buf = ffi.new("unsigned char[]", offset + len(items) * ffi.sizeof("struct mshv_user_irq_entry"))
    table = ffi.cast("struct mshv_user_irq_table *", buf)  # zeroed: rsvd and address_hi stay 0
    table.nr = len(items)
    entries = ffi.cast("struct mshv_user_irq_entry *", buf + offset)
    for i, (gsi, route) in enumerate(items):
        entries[i].gsi, entries[i].address_lo, entries[i].data = gsi, route.address_lo, route.data
    _kernel.ioctl(fd, lib.MSHV_SET_MSI_ROUTING, table, details=f"nr={len(items)}")


class _Binding:
    """An eventfd binding on a partition; closed by ``close()`` or with the partition."""

    def __init__(self, partition: Partition, eventfd: EventFd | int) -> None:
        self.partition = partition
        self.eventfd = eventfd
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once undone, or once the partition (which drops every binding) is closed."""
        return self._closed or self.partition.closed

    def _undo(self, fd: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Undo the binding (a second call, or one after the partition closed, does nothing)."""
        if self.closed:
            return
        self._closed = True
        if isinstance(self.eventfd, EventFd) and self.eventfd.closed:
            return  # the kernel dropped the binding when the eventfd closed (HUP)
        self._undo(self.partition.fd)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Irqfd(_Binding):
    """An eventfd bound to a GSI (MSHV_IRQFD); ``close()`` deassigns it."""

    def __init__(self, partition: Partition, eventfd: EventFd | int, gsi: int, resample: Any) -> None:
        super().__init__(partition, eventfd)
        self.gsi = gsi
        self.resample = resample

    def _undo(self, fd: int) -> None:
        _irqfd(fd, _eventfd("eventfd", self.eventfd), self.gsi, lib.MSHV_IRQFD_BIT_DEASSIGN, -1)

    def __repr__(self) -> str:
        return f"<Irqfd gsi={self.gsi} eventfd={self.eventfd!r} closed={self.closed}>"


def _irqfd(fd: int, efd: int, gsi: int, bit: int | None, resample_fd: int) -> None:
    arg = _cstruct.new(
        "struct mshv_user_irqfd",
        fd=efd,
        resamplefd=max(resample_fd, 0),
        gsi=gsi,
        flags=0 if bit is None else 1 << bit,
    )
    what = "deassign" if bit == lib.MSHV_IRQFD_BIT_DEASSIGN else "assign"
    _kernel.ioctl(fd, lib.MSHV_IRQFD, arg, details=f"{what} fd={efd} gsi={gsi}")


def assign_irqfd(
    partition: Partition, eventfd: EventFd | int, gsi: int, resample: EventFd | int | None = None
) -> Irqfd:
    """Bind ``eventfd`` to ``gsi`` (MSHV_IRQFD): each signal asserts the GSI's MSI route.

    With ``resample`` (level-triggered routes only), the kernel signals that
    eventfd when the guest EOIs the vector.
    """
    fd = partition.fd
    efd = _eventfd("eventfd", eventfd)
    _int("gsi", gsi, 0, _U32)
    if resample is None:
        _irqfd(fd, efd, gsi, None, -1)
    else:
        _irqfd(fd, efd, gsi, lib.MSHV_IRQFD_BIT_RESAMPLE, _eventfd("resample", resample))
    return Irqfd(partition, eventfd, gsi, resample)


class Ioeventfd(_Binding):
    """A guest MMIO doorbell (MSHV_IOEVENTFD); ``close()`` deassigns it."""

    def __init__(
        self, partition: Partition, eventfd: EventFd | int, gpa: int, size: int, datamatch: int | None
    ) -> None:
        super().__init__(partition, eventfd)
        self.gpa = gpa
        self.size = size
        self.datamatch = datamatch

    def _undo(self, fd: int) -> None:
        efd = _eventfd("eventfd", self.eventfd)
        _ioeventfd(fd, efd, self.gpa, self.size, self.datamatch, deassign=True)

    def __repr__(self) -> str:
        match = "any" if self.datamatch is None else f"{self.datamatch:#x}"
        return f"<Ioeventfd gpa={self.gpa:#x} size={self.size} datamatch={match} closed={self.closed}>"


def _ioeventfd(fd: int, efd: int, gpa: int, size: int, datamatch: int | None, deassign: bool) -> None:
    flags = (0 if datamatch is None else 1 << lib.MSHV_IOEVENTFD_BIT_DATAMATCH) | (
        1 << lib.MSHV_IOEVENTFD_BIT_DEASSIGN if deassign else 0
    )
    arg = _cstruct.new(
        "struct mshv_user_ioeventfd", datamatch=datamatch or 0, addr=gpa, len=size, fd=efd, flags=flags
    )
    what = "deassign" if deassign else "assign"
    _kernel.ioctl(fd, lib.MSHV_IOEVENTFD, arg, details=f"{what} gpa={gpa:#x} len={size}")


def assign_ioeventfd(
    partition: Partition, eventfd: EventFd | int, gpa: int, size: int = 0, datamatch: int | None = None
) -> Ioeventfd:
    """Make a guest MMIO write to ``gpa`` signal ``eventfd`` instead of exiting (MSHV_IOEVENTFD).

    Args:
        size: the write size that matches (1, 2, 4, 8), or 0 for any size.
        datamatch: only a write of this value matches; None matches any value.
    """
    fd = partition.fd
    efd = _eventfd("eventfd", eventfd)
    if size not in _IOEVENTFD_SIZES or isinstance(size, bool):
        raise ValueError(f"size must be one of {_IOEVENTFD_SIZES}, got {size!r}")
    _int("gpa", gpa, 0, _U64 - size)
    if datamatch is not None:
        _int("datamatch", datamatch, 0, (1 << (8 * (size or 8))) - 1)
    _ioeventfd(fd, efd, gpa, size, datamatch, deassign=False)
    return Ioeventfd(partition, eventfd, gpa, size, datamatch)


def assert_interrupt(
    fd: int,
    vector: int,
    apic_id: int = 0,
    *,
    delivery: int = InterruptType.FIXED,
    level: bool = False,
    logical: bool = False,
) -> None:
    """Assert ``vector`` on the APIC ``apic_id`` (HvCallAssertVirtualInterrupt)."""
    _int("vector", vector, 0, lib.HV_MSI_DATA_VECTOR_MASK)
    _int("apic_id", apic_id, 0, _U32)
    _int("delivery", int(delivery), 0, lib.HV_X64_INTERRUPT_TYPE_MAXIMUM - 1)
    data = HvcallInput("struct hv_input_assert_virtual_interrupt")
    data.header.control = (
        int(delivery)
        | (lib.HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED if level else 0)
        | (lib.HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE if logical else 0)
    )
    data.header.dest_addr = apic_id
    data.header.vector = vector
    hvcall(fd, lib.HVCALL_ASSERT_VIRTUAL_INTERRUPT, data.to_bytes())
