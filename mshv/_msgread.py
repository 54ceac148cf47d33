"""Fast readers of hv_message payloads: one ``struct.unpack_from`` per message.

A ``Reader`` is built at import from the compiled ABI: the offsets and sizes of
the fields it reads come from ``mshv._abi.ffi`` (the C compiler), so no layout
is written here. Reading through cffi cdata costs a Python call per field; the
run path decodes every exit, so the hot message types use these instead.
"""

from __future__ import annotations

import operator
import struct
from typing import Any

from mshv._abi import ffi

__all__ = ["PAYLOAD_OFFSET", "Reader"]

PAYLOAD_OFFSET: int = ffi.offsetof("struct hv_message", "payload")
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _leaf(ctype: Any, path: str) -> tuple[int, Any]:
    offset = 0
    for name in path.split("."):
        field = dict(ctype.fields)[name]
        offset += field.offset
        ctype = field.type
    return offset, ctype


class Reader:
    """Reads the named fields of ``ctype`` (dotted paths to integers or byte arrays) from a buffer.

    ``read(buf, base)`` returns their values in the order the paths were given.
    When the paths are in offset order, :attr:`struct` also packs them: the bytes
    between and around them are zero, and with ``size`` the packed bytes are
    padded to that many (e.g. ``ffi.sizeof(ctype)``, for a whole element).
    """

    def __init__(self, ctype: str, paths: list[str], size: int = 0) -> None:
        leaves = sorted((*_leaf(ffi.typeof(ctype), path), index) for index, path in enumerate(paths))
        fmt, pos = "<", 0
        order = []
        for offset, ftype, index in leaves:
            if offset < pos:
                raise ValueError(f"{ctype}: field {paths[index]} overlaps the one before it")
            if offset > pos:
                fmt += f"{offset - pos}x"
            width = ffi.sizeof(ftype)
            fmt += f"{width}s" if ftype.kind == "array" else _INT_CODES[width]
            pos = offset + width
            order.append(index)
        if size > pos:
            fmt += f"{size - pos}x"
        self._struct = struct.Struct(fmt)
        #: The ``struct.Struct`` of the fields (in offset order; packs them when :attr:`in_order`).
        self.struct = self._struct
        #: True when the paths were given in offset order: then ``read`` is the bare
        #: ``struct.unpack_from`` (the run path's readers are built that way).
        self.in_order = order == sorted(order)
        if self.in_order:
            self.read = self._struct.unpack_from  # type: ignore[method-assign,assignment]
            return
        # values come out sorted by offset; put them back in the caller's order
        inverse = [0] * len(order)
        for sorted_pos, index in enumerate(order):
            inverse[index] = sorted_pos
        # (itemgetter of one index returns the bare value, not a 1-tuple)
        self._reorder = operator.itemgetter(*inverse) if len(inverse) > 1 else tuple

    def read(self, buf: bytes | bytearray | memoryview, base: int = 0) -> tuple[Any, ...]:
        """The fields' values, in the order of the paths given to the constructor."""
        values = self._struct.unpack_from(buf, base)
        result: tuple[Any, ...] = self._reorder(values)
        return result
