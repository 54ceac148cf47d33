"""Fill ABI structs the one safe way: zeroed by ffi.new, fields set by name, reserved left alone.

The kernel rejects any non-zero reserved byte with EINVAL (mshv_field_nonzero),
so a wrapper never names a reserved field: :func:`new` refuses to.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mshv._abi import ffi

__all__ = ["is_reserved", "new"]

_RESERVED = re.compile(r"^(rsvd|reserved|pad|padding)\w*$|^\w*_rsvd\d*$")


def is_reserved(field: str) -> bool:
    """True for fields the kernel requires to be zero (rsvd, reserved, pt_rsvd1, ...)."""
    return bool(_RESERVED.match(field))


@functools.cache
def _settable(ctype: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """(pointer type, settable fields, reserved fields) of a struct, computed once per type."""
    names = [name for name, _ in ffi.typeof(ctype).fields or []]
    reserved = frozenset(n for n in names if is_reserved(n))
    return f"{ctype} *", frozenset(names) - reserved, reserved


def new(ctype: str, **values: Any) -> Any:
    """Return ``ffi.new(ctype + " *")`` with the named fields set.

    Raises:
        TypeError: a field is unknown to the struct, or is a reserved field.
    """
    pointer, settable, reserved = _settable(ctype)
    obj = ffi.new(pointer)
    for name, value in values.items():
        if name not in settable:
            if name in reserved:
                raise TypeError(f"{ctype}.{name} is reserved and must stay zero")
            raise TypeError(f"{ctype} has no field {name!r}")
        setattr(obj, name, value)
    return obj
