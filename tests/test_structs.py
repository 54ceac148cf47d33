"""Every ABI struct starts zeroed, and a filled struct keeps its reserved fields zero.

The kernel rejects a non-zero reserved byte with EINVAL (mshv_field_nonzero);
mshv._cstruct.new is how every wrapper fills a struct.
"""

from __future__ import annotations

import pytest

from mshv import _cstruct
from mshv._abi import ffi
from mshv.abi import structs

STRUCTS = sorted(structs())
_UNIONS = set(ffi.list_types()[2])
# Reserved bytes are a struct's: in a union every member overlaps the others.
STRUCTS_ONLY = [name for name in STRUCTS if name not in _UNIONS]


def _ctype(name: str) -> str:
    return f"union {name}" if name in _UNIONS else f"struct {name}"


def test_every_struct_is_declared() -> None:
    assert {"mshv_user_mem_region", "mshv_root_hvcall", "mshv_create_partition_v2"} <= set(STRUCTS)


@pytest.mark.parametrize("name", STRUCTS)
def test_new_struct_is_all_zero(name: str) -> None:
    obj = ffi.new(f"{_ctype(name)} *")
    assert bytes(ffi.buffer(obj)) == bytes(ffi.sizeof(obj[0]))


@pytest.mark.parametrize("name", STRUCTS_ONLY)
def test_filling_every_field_leaves_reserved_bytes_zero(name: str) -> None:
    ctype = ffi.typeof(_ctype(name))
    values = {}
    for field, info in ctype.fields or []:
        if _cstruct.is_reserved(field):
            continue
        if info.type.kind == "primitive":
            unsigned = info.type.cname.startswith(("unsigned", "uint", "__u"))
            values[field] = (1 << (8 * ffi.sizeof(info.type))) - 1 if unsigned else -1
    obj = _cstruct.new(_ctype(name), **values)
    raw = bytes(ffi.buffer(obj))
    for field, info in ctype.fields or []:
        if _cstruct.is_reserved(field):
            size = ffi.sizeof(info.type)
            assert raw[info.offset : info.offset + size] == bytes(size), field


def test_a_wrapper_cannot_name_a_reserved_field() -> None:
    with pytest.raises(TypeError, match="reserved"):
        _cstruct.new("struct mshv_user_mem_region", rsvd=[1] * 7)
    with pytest.raises(TypeError, match="no field"):
        _cstruct.new("struct mshv_user_mem_region", not_a_field=1)
