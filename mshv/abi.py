"""The compiled ABI as data: struct layouts, constants, ioctl numbers and their collisions.

Everything here is read from ``mshv._abi`` (what the C compiler resolved from
ioctl_defs/); ``python -m mshv abi --json`` prints :func:`abi_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mshv._abi as _abi_module
from mshv._abi import ffi, lib

__all__ = ["Collision", "IoctlInfo", "abi_build", "abi_report", "collisions", "ioctls"]

# Constants of the ABI, by prefix: mshv uapi, Hyper-V definitions, the other 0xB8 driver.
ABI_PREFIXES = ("MSHV_", "HV_", "HVCALL_", "HVMSG_", "DPI_")
_NOT_ABI_STRUCTS = frozenset({"mshv_kernel_table"})

# Which driver and fd kind each ioctl of the 0xB8 range belongs to
# (drivers/hv/mshv_root_main.c, drivers/hv/mshv_vtl_main.c, drivers/misc/mrvl_cn10k_dpi.c).
ROOT_IOCTLS: dict[str, str] = {
    "MSHV_CREATE_PARTITION": "mshv_root: /dev/mshv",
    "MSHV_ROOT_HVCALL": "mshv_root: /dev/mshv (>=6.19), partition fd, VP fd",
    "MSHV_INITIALIZE_PARTITION": "mshv_root: partition fd",
    "MSHV_CREATE_VP": "mshv_root: partition fd",
    "MSHV_SET_GUEST_MEMORY": "mshv_root: partition fd",
    "MSHV_IRQFD": "mshv_root: partition fd",
    "MSHV_IOEVENTFD": "mshv_root: partition fd",
    "MSHV_SET_MSI_ROUTING": "mshv_root: partition fd",
    "MSHV_GET_GPAP_ACCESS_BITMAP": "mshv_root: partition fd",
    "MSHV_RUN_VP": "mshv_root: VP fd",
    "MSHV_GET_VP_STATE": "mshv_root: VP fd",
    "MSHV_SET_VP_STATE": "mshv_root: VP fd",
}
OTHER_IOCTLS: dict[str, str] = {
    "MSHV_CHECK_EXTENSION": "mshv_vtl: /dev/mshv of a VTL2 kernel",
    "MSHV_CREATE_VTL": "mshv_vtl: /dev/mshv of a VTL2 kernel",
    "MSHV_ADD_VTL0_MEMORY": "mshv_vtl: VTL fd",
    "MSHV_SET_POLL_FILE": "mshv_vtl: VTL fd",
    "MSHV_RETURN_TO_LOWER_VTL": "mshv_vtl: VTL fd",
    "MSHV_GET_VP_REGISTERS": "mshv_vtl: VTL fd",
    "MSHV_SET_VP_REGISTERS": "mshv_vtl: VTL fd",
    "MSHV_SINT_SIGNAL_EVENT": "mshv_vtl: /dev/mshv_sint (VMBus)",
    "MSHV_SINT_POST_MESSAGE": "mshv_vtl: /dev/mshv_sint (VMBus)",
    "MSHV_SINT_SET_EVENTFD": "mshv_vtl: /dev/mshv_sint (VMBus)",
    "MSHV_SINT_PAUSE_MESSAGE_STREAM": "mshv_vtl: /dev/mshv_sint (VMBus)",
    "MSHV_HVCALL_SETUP": "mshv_vtl: /dev/mshv_hvcall",
    "MSHV_HVCALL": "mshv_vtl: /dev/mshv_hvcall",
    "DPI_MPS_MRRS_CFG": "mrvl_cn10k_dpi: Marvell CN10K DPI PF device (uapi/misc/mrvl_cn10k_dpi.h)",
    "DPI_ENGINE_CFG": "mrvl_cn10k_dpi: Marvell CN10K DPI PF device (uapi/misc/mrvl_cn10k_dpi.h)",
}

_DIRECTIONS = {0: "_IO", 1: "_IOW", 2: "_IOR", 3: "_IOWR"}


def constants() -> dict[str, int]:
    """Every integer constant of the ABI by C name."""
    out: dict[str, int] = {}
    for name in sorted(dir(lib)):
        if name.startswith(ABI_PREFIXES):
            value = getattr(lib, name)
            if isinstance(value, int):
                out[name] = value
    return out


def _struct_names() -> list[str]:
    _typedefs, structs, unions = ffi.list_types()
    return sorted(set(structs) | set(unions))


def _kind(name: str) -> str:
    _typedefs, structs, _unions = ffi.list_types()
    return "struct" if name in structs else "union"


def structs() -> dict[str, dict[str, Any]]:
    """Every struct and union of the ABI: ``{name: {"size": N, "fields": {field: offset}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name in _struct_names():
        if name in _NOT_ABI_STRUCTS:
            continue
        ctype = ffi.typeof(f"{_kind(name)} {name}")
        fields = {fname: field.offset for fname, field in (ctype.fields or [])}
        out[name] = {"size": ffi.sizeof(ctype), "fields": fields}
    return out


def abi_build() -> str:
    """Which ``mshv._abi`` is in use: ``"compiled"`` (the cffi extension) or ``"snapshot"``.

    The snapshot (cffi ABI mode over ioctl_defs/abi_snapshot.py) stands in where the
    package was built without a C compiler; see ``mshv._abi_nocc``.
    """
    return "snapshot" if str(_abi_module.__file__).endswith(".py") else "compiled"


def abi_report() -> dict[str, Any]:
    """The document ``mshv abi --json`` prints."""
    return {
        "source": ffi.string(lib.mshv_abi_header()).decode(),
        "structs": structs(),
        "constants": constants(),
    }


@dataclass(frozen=True)
class IoctlInfo:
    """One ioctl number decoded: direction, type, command number, argument size, owner."""

    name: str
    number: int
    direction: str
    type: int
    nr: int
    size: int
    owner: str

    @property
    def root(self) -> bool:
        """True for the mshv_root driver's own ioctls."""
        return self.name in ROOT_IOCTLS


def ioctls() -> list[IoctlInfo]:
    """Every ioctl number of type 0xB8 the ABI declares, decoded."""
    found = []
    for name, value in constants().items():
        if name not in ROOT_IOCTLS and name not in OTHER_IOCTLS:
            continue
        found.append(
            IoctlInfo(
                name=name,
                number=value,
                direction=_DIRECTIONS[(value >> 30) & 3],
                type=(value >> 8) & 0xFF,
                nr=value & 0xFF,
                size=(value >> 16) & 0x3FFF,
                owner=ROOT_IOCTLS.get(name) or OTHER_IOCTLS[name],
            )
        )
    return sorted(found, key=lambda i: (i.nr, i.number, i.name))


@dataclass(frozen=True)
class Collision:
    """Ioctls that share a 32-bit number (``exact``) or only type and command number."""

    exact: bool
    members: tuple[IoctlInfo, ...]


def collisions() -> list[Collision]:
    """Exact number collisions, then shared (type, nr) pairs that differ in size or direction."""
    infos = ioctls()
    out: list[Collision] = []
    by_number: dict[int, list[IoctlInfo]] = {}
    by_nr: dict[tuple[int, int], list[IoctlInfo]] = {}
    for info in infos:
        by_number.setdefault(info.number, []).append(info)
        by_nr.setdefault((info.type, info.nr), []).append(info)
    for group in by_number.values():
        if len(group) > 1:
            out.append(Collision(True, tuple(group)))
    for group in by_nr.values():
        if len({i.number for i in group}) > 1:
            out.append(Collision(False, tuple(group)))
    return out


def never_send() -> list[IoctlInfo]:
    """The 0xB8 numbers a root-partition client must never send (not the root driver's)."""
    return [info for info in ioctls() if not info.root]
