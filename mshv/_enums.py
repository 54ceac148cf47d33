"""IntEnums built from the compiled ABI by name prefix, open to unknown values."""

from __future__ import annotations

import enum
from typing import Any, cast


class OpenIntEnum(enum.IntEnum):
    """An IntEnum that represents values it has no name for instead of raising.

    ``HvStatus(0x1234)`` gives a pseudo-member named ``UNKNOWN_0x1234``: a status
    or message type the kernel adds later must never crash a decoder.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value:#x}"
        member._value_ = value
        return member


def names_with_prefix(lib: object, prefix: str, exclude: tuple[str, ...] = ()) -> dict[str, int]:
    """Map NAME (prefix stripped) to value for every integer constant of lib named prefix*."""
    found: dict[str, int] = {}
    for name in sorted(dir(lib)):
        if not name.startswith(prefix) or name.startswith(exclude):
            continue
        value = getattr(lib, name)
        if isinstance(value, int):
            found[name[len(prefix) :]] = value
    return found


def build_enum(enum_name: str, lib: object, prefix: str, exclude: tuple[str, ...] = ()) -> Any:
    """Build an OpenIntEnum from the constants of lib named prefix* (first name wins)."""
    members: dict[str, int] = {}
    seen: set[int] = set()
    for name, value in names_with_prefix(lib, prefix, exclude).items():
        if value in seen:
            continue  # an alias: IntEnum would make it one anyway
        seen.add(value)
        members[name] = value
    return cast(Any, OpenIntEnum)(enum_name, members, module="mshv")
