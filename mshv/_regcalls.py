"""HvCallGetVpRegisters/HvCallSetVpRegisters: the calls behind ``Vp.get_registers``/``set_registers``.

:func:`get_registers` and :func:`set_registers` are the C versions in ``mshv._native``
when that extension is built, else the pure-Python twins here; both take register
names or numbers (:func:`mshv.registers.register`), check every value before the
first hypercall, chunk to the hypercall limits (256 names per GET, 127 per SET) and
check ``reps`` after each call. The twins pack into reused call buffers
(:func:`mshv.hvcall.take_buffer`), one struct per single-register call.

The table call runs with the GIL released (cffi's default, and ``with nogil`` in C):
HvCallGetVpRegisters/HvCallSetVpRegisters are synchronous in the hypervisor, but on a
VP fd the kernel first takes the VP's mutex (mshv_vp_ioctl), which MSHV_RUN_VP holds
for a whole run, so a register call from another thread waits for that run to return,
and must not hold up the other Python threads meanwhile.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from mshv import _kernel
from mshv._abi import ffi, lib
from mshv._msgread import Reader
from mshv.errors import MshvError
from mshv.hvcall import IN_AT, OUT_AT, REPS_AT, args_then, failure, give_buffer, take_buffer, written_back
from mshv.registers import (
    _ASSOC,
    _ASSOC_SIZE,
    _INT,
    _SET_HEADER,
    _SPEC,
    _VALUE_SIZE,
    RegisterValue,
    Segment,
    Table,
    _batch_error,
    _decode,
    _fields,
    _resolve,
)

__all__ = ["get_registers", "set_registers"]

_GET_MAX = lib.HV_GET_VP_REGISTERS_BATCH_MAX
_SET_MAX = lib.HV_SET_VP_REGISTERS_BATCH_MAX
_HVCALL_GET = lib.HVCALL_GET_VP_REGISTERS
_HVCALL_SET = lib.HVCALL_SET_VP_REGISTERS
_OPS = {_HVCALL_GET: "HvCallGetVpRegisters", _HVCALL_SET: "HvCallSetVpRegisters"}
_NONE: frozenset[str] = frozenset()


def _call_error(
    err: int, status: int, done: int, code: int, names: list[str], first: int, total: int, vp_index: int
) -> MshvError:
    """The MshvError of a register call of the chunk ``names`` (from batch index ``first`` of
    ``total``) that failed with errno ``err``, or, with ``err`` 0, that succeeded with fewer
    reps ``done`` than names. (The C calls raise what this returns, too.)"""
    count = len(names)
    if err == 0:
        failed = names[done] if done < count else "?"
        return MshvError(errno.EIO, _OPS[code], None, f"stopped at register {failed}: {done} of {count} done")
    return _batch_error(failure(err, code, status, done, count), names, first, total, vp_index)


# A call buffer's layout (mshv.hvcall): struct mshv_root_hvcall, then the input from IN_AT on
# (the header up to its array, then the array), the output from OUT_AT on. The single-register
# calls pack the arguments, the header and the one element with one struct.
_GET_NAMES_AT = IN_AT + ffi.offsetof("struct hv_input_get_vp_registers", "names")
_SET_ELEMENTS_AT = IN_AT + ffi.offsetof("struct hv_input_set_vp_registers", "elements")
_NAME_SIZE = ffi.sizeof("__u32")
_NAME = next(code for code in "IL" if struct.calcsize("<" + code) == _NAME_SIZE)  # __u32, standard size
# The inputs' headers (partition_id, vp_index, input_vtl, reserved) up to their arrays.
_GET_HEADER = Reader("struct hv_input_get_vp_registers", ["vp_index"], _GET_NAMES_AT - IN_AT).struct
_GET_CALL = args_then(_GET_HEADER)
_GET_ONE = args_then(_GET_HEADER, struct.Struct("<" + _NAME))
_GET_ONE_IN = _GET_NAMES_AT - IN_AT + _NAME_SIZE
_SET_CALL = args_then(_SET_HEADER)
_SET_ONE = {kind: args_then(_SET_HEADER, assoc) for kind, assoc in _ASSOC.items()}
_SET_ONE_IN = _SET_ELEMENTS_AT - IN_AT + _ASSOC_SIZE
_MASK64 = (1 << 64) - 1
_REPS = struct.Struct("<H").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_ioctl_raw = _kernel.ioctl_raw
_ROOT_HVCALL = lib.MSHV_ROOT_HVCALL


def _get_one(fd: int, vp_index: int, key: str | int) -> tuple[str, RegisterValue]:
    """Read one register: (its lower-case name, its value)."""
    cls = key.__class__
    spec = _SPEC.get(key) if cls is str or cls is int else None
    name, number, kind = _resolve(key) if spec is None else spec
    call = take_buffer()
    buf = call.buf
    try:
        _GET_ONE.pack_into(buf, 0, _HVCALL_GET, 1, _GET_ONE_IN, _VALUE_SIZE, 0, call.in_ptr, call.out_ptr,
                           vp_index, number)  # fmt: skip
        failed = _ioctl_raw(fd, _ROOT_HVCALL, call.args) < 0
        done = _REPS(buf, REPS_AT)[0]
        if failed or done != 1:
            err = _kernel.errno() if failed else 0
            raise _call_error(err, written_back(buf)[1], done, _HVCALL_GET, [name], 0, 1, vp_index)
        value = _U64(buf, OUT_AT)[0] if kind == _INT else _decode(name, buf, OUT_AT)
    finally:
        give_buffer(call)
    return name, value


def _set_one(
    fd: int, vp_index: int, key: str | int, value: RegisterValue, collect: AbstractSet[str]
) -> dict[str, RegisterValue]:
    """Write one register (its value checked first); returns {name: value} if ``collect`` names it."""
    cls = key.__class__
    spec = _SPEC.get(key) if cls is str or cls is int else None
    name, number, kind = _resolve(key) if spec is None else spec
    plain = kind == _INT and value.__class__ is int
    if plain and not 0 <= value <= _MASK64:  # type: ignore[operator]
        raise ValueError(f"{name} is 64 bits: {value:#x} does not fit")
    fields = (value,) if plain else _fields(name, kind, value)
    call = take_buffer()
    buf = call.buf
    try:
        _SET_ONE[kind].pack_into(buf, 0, _HVCALL_SET, 1, _SET_ONE_IN, 0, 0, call.in_ptr, 0, vp_index, number,
                                 *fields)  # fmt: skip
        failed = _ioctl_raw(fd, _ROOT_HVCALL, call.args) < 0
        done = _REPS(buf, REPS_AT)[0]
        if failed or done != 1:
            err = _kernel.errno() if failed else 0
            raise _call_error(err, written_back(buf)[1], done, _HVCALL_SET, [name], 0, 1, vp_index)
    finally:
        give_buffer(call)
    return {name: value} if name in collect else {}


def _specs(keys: Iterable[str | int]) -> list[tuple[str, int, str]]:
    specs = []
    for key in keys:
        cls = key.__class__
        spec = _SPEC.get(key) if cls is str or cls is int else None
        specs.append(_resolve(key) if spec is None else spec)
    return specs


def py_get_registers(fd: int, vp_index: int, names: Iterable[str | int]) -> dict[str, RegisterValue]:
    """Read registers of VP ``vp_index`` through ``fd``: {lower-case name: value} (the Python twin)."""
    if (names.__class__ is list or names.__class__ is tuple) and len(names) == 1:
        name, value = _get_one(fd, vp_index, names[0])
        return {name: value}
    specs = _specs(names)
    total = len(specs)
    result: dict[str, RegisterValue] = {}
    call = take_buffer()
    buf = call.buf
    try:
        for start in range(0, total, _GET_MAX):
            chunk = specs[start : start + _GET_MAX] if total > _GET_MAX else specs
            count = len(chunk)
            in_size = _GET_NAMES_AT - IN_AT + _NAME_SIZE * count
            _GET_CALL.pack_into(buf, 0, _HVCALL_GET, count, in_size, _VALUE_SIZE * count, 0, call.in_ptr,
                                call.out_ptr, vp_index)  # fmt: skip
            struct.pack_into(f"<{count}{_NAME}", buf, _GET_NAMES_AT, *[number for _, number, _ in chunk])
            failed = _ioctl_raw(fd, _ROOT_HVCALL, call.args) < 0
            done, status = written_back(buf)
            if failed or done != count:
                err = _kernel.errno() if failed else 0
                stopped = [name for name, _, _ in chunk]
                raise _call_error(err, status, done, _HVCALL_GET, stopped, start, total, vp_index)
            # every value's low 64 bits at once: an int register is just that
            words = struct.unpack_from(f"<{2 * count}Q", buf, OUT_AT)
            for i, (name, _, kind) in enumerate(chunk):
                result[name] = words[2 * i] if kind == _INT else _decode(name, buf, OUT_AT + i * _VALUE_SIZE)
    finally:
        give_buffer(call)
    return result


def py_set_registers(
    fd: int, vp_index: int, values: Mapping[str | int, RegisterValue], collect: AbstractSet[str] = _NONE
) -> dict[str, RegisterValue]:
    """Write registers of VP ``vp_index`` through ``fd``, every value checked before the first
    hypercall, so bad input changes nothing (the Python twin). Returns {name: value} of the
    registers written whose names are in ``collect`` (the last value of a name given twice)."""
    if values.__class__ is dict and len(values) == 1:
        for key, value in values.items():
            return _set_one(fd, vp_index, key, value, collect)
    specs = _specs(values)
    total = len(specs)
    elements = bytearray(_ASSOC_SIZE * total)
    collected: dict[str, RegisterValue] = {}
    for i, ((name, number, kind), value) in enumerate(zip(specs, values.values(), strict=True)):
        _ASSOC[kind].pack_into(elements, i * _ASSOC_SIZE, number, *_fields(name, kind, value))
        if name in collect:
            collected[name] = value
    view = memoryview(elements)
    call = take_buffer()
    buf = call.buf
    try:
        for start in range(0, total, _SET_MAX):
            count = min(_SET_MAX, total - start)
            in_size = _SET_ELEMENTS_AT - IN_AT + _ASSOC_SIZE * count
            _SET_CALL.pack_into(buf, 0, _HVCALL_SET, count, in_size, 0, 0, call.in_ptr, 0, vp_index)
            first, end = start * _ASSOC_SIZE, (start + count) * _ASSOC_SIZE
            buf[_SET_ELEMENTS_AT : IN_AT + in_size] = view[first:end]
            failed = _ioctl_raw(fd, _ROOT_HVCALL, call.args) < 0
            done, status = written_back(buf)
            if failed or done != count:
                err = _kernel.errno() if failed else 0
                names = [name for name, _, _ in specs[start : start + count]]
                raise _call_error(err, status, done, _HVCALL_SET, names, start, total, vp_index)
    finally:
        give_buffer(call)
    return collected


def _native_calls() -> Any:
    """The C calls (``mshv._native.RegisterCalls``) when the extension was built, else None."""
    try:
        from mshv._native import RegisterCalls

        table = int(ffi.cast("uintptr_t", lib.mshv_kernel_table()))
    except (ImportError, NotImplementedError):  # not built, or the snapshot ABI (no C table)
        return None
    return RegisterCalls(table, _SPEC, _resolve, _fields, _call_error, Segment, Table)


_NATIVE = _native_calls()
#: ``get_registers(fd, vp_index, names)``: {lower-case name: value} of VP ``vp_index`` (in C when built).
get_registers: Callable[[int, int, Iterable[str | int]], dict[str, RegisterValue]] = (
    py_get_registers if _NATIVE is None else _NATIVE.get
)
#: ``set_registers(fd, vp_index, {name: value}, collect)``: every value checked first (in C when
#: built); returns {name: value} of those written whose names are in ``collect``.
set_registers: Callable[
    [int, int, Mapping[str | int, RegisterValue], AbstractSet[str]], dict[str, RegisterValue]
] = py_set_registers if _NATIVE is None else _NATIVE.set
