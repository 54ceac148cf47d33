"""The call batch (build_ext/call_batch.py, its no-compiler twin, mshv._batch) that a snapshot
restore issues its calls through: steps run in order, the first failure stops the batch and
names itself, a hypercall short of its reps counts as failed, and the Python errors equal those
of the same calls made one by one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mshv import Vp, _abi_nocc, backend
from mshv._abi import ffi as compiled_ffi
from mshv._abi import lib
from mshv._batch import CallBatch, fds_array
from mshv.errors import HvStatus, MshvError
from mshv.hvcall import hvcall
from mshv.registers import EncodedRegisters, encode_registers, encoded_chunk_error, set_encoded_registers
from mshv.testing import assemble, partition_with_one_vp

ROOT_HVCALL = lib.MSHV_ROOT_HVCALL
SET_REGISTERS = lib.HVCALL_SET_VP_REGISTERS
NO_SUCH_REGISTER = 0x7FFF0001


@pytest.fixture
def vp(backend_ready: None) -> Iterator[Vp]:
    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        vp.set_registers({"rax": 0, "rbx": 0, "rcx": 0})
        yield vp


@pytest.fixture(params=["C", "no-compiler twin"])
def abi(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(ffi, lib) of the compiled module, or of the twin with its table on the emulator library
    the compiled module loaded (so both reach the same partitions)."""
    if request.param == "C":
        return compiled_ffi, lib
    twin = _abi_nocc.SnapshotLib()
    err = _abi_nocc.ffi.new("char[256]")
    path = backend.emulator_library_path().encode()
    assert twin.mshv_kernel_use_library(path, err, 256) == 0, _abi_nocc.ffi.string(err)
    return _abi_nocc.ffi, twin


def _with_bad_name(encoded: EncodedRegisters, element: int) -> EncodedRegisters:
    """``encoded`` with register ``element``'s name replaced by one no hypervisor has."""
    data = bytearray(encoded.inputs[0])
    at = compiled_ffi.offsetof("struct hv_input_set_vp_registers", "elements")
    at += element * compiled_ffi.sizeof("struct hv_register_assoc")
    data[at : at + 4] = NO_SUCH_REGISTER.to_bytes(4, "little")
    return encoded._replace(inputs=(bytes(data),))


def _set_step(ffi: Any, keep: list[Any], data: bytes, reps: int, expected: int) -> dict[str, Any]:
    """A SET_VP_REGISTERS step on slot 0 whose argument asks ``reps`` reps; the batch expects ``expected``."""
    source = ffi.new("unsigned char[]", data)
    init = ffi.new("struct mshv_root_hvcall *")
    init.code, init.reps, init.in_sz = SET_REGISTERS, reps, len(data)
    init.in_ptr = int(ffi.cast("uintptr_t", source))
    arg = ffi.new("struct mshv_root_hvcall *")
    keep += [source, init, arg]
    size = ffi.sizeof("struct mshv_root_hvcall")
    return {"slot": 0, "reps": expected, "request": ROOT_HVCALL, "arg": arg, "init": init, "size": size}


def test_steps_run_in_order_and_the_first_failure_stops_the_batch(vp: Vp, abi: tuple[Any, Any]) -> None:
    ffi, lib_ = abi
    keep: list[Any] = []
    good = encode_registers(0, {"rax": 0x11, "rbx": 0x22})
    bad = _with_bad_name(encode_registers(0, {"rax": 0x33}), 0)
    later = encode_registers(0, {"rcx": 0x44})
    steps = ffi.new(
        "struct mshv_batch_step[]",
        [_set_step(ffi, keep, e.inputs[0], e.counts[0], e.counts[0]) for e in (good, bad, later)],
    )
    fds = ffi.new("int[]", [vp.fd])
    assert lib_.mshv_call_batch(steps, 3, fds) == 1
    failed_errno = ffi.errno
    with pytest.raises(MshvError) as alone:
        hvcall(vp.fd, SET_REGISTERS, bad.inputs[0], reps=1)
    assert failed_errno == alone.value.errno != 0
    assert ffi.cast("struct mshv_root_hvcall *", steps[1].arg).status == HvStatus.INVALID_PARAMETER
    assert vp.get_registers(["rax", "rbx", "rcx"]) == {"rax": 0x11, "rbx": 0x22, "rcx": 0}
    assert lib_.mshv_call_batch(steps + 2, 1, fds) == 1  # a run from a later step
    assert vp.reg_read("rcx") == 0x44
    assert lib_.mshv_call_batch(steps, 0, fds) == 0


def test_a_hypercall_short_of_its_reps_fails_with_errno_0(vp: Vp, abi: tuple[Any, Any]) -> None:
    """The call went through (the hypervisor did 2 reps), but the step expected 3."""
    ffi, lib_ = abi
    keep: list[Any] = []
    data = encode_registers(0, {"rax": 0x55, "rbx": 0x66}).inputs[0]
    steps = ffi.new("struct mshv_batch_step[]", [_set_step(ffi, keep, data, 2, 3)])
    ffi.errno = 1234
    assert lib_.mshv_call_batch(steps, 1, ffi.new("int[]", [vp.fd])) == 0
    assert ffi.errno == 0
    assert ffi.cast("struct mshv_root_hvcall *", steps[0].arg).reps == 2
    assert vp.get_registers(["rax", "rbx"]) == {"rax": 0x55, "rbx": 0x66}


def test_each_step_starts_from_its_argument_as_made_ready(vp: Vp) -> None:
    """The kernel writes status and reps back into the argument and refuses a nonzero status on
    entry (mshv_ioctl_passthru_hvcall): a batch run twice must not hand it the first run's."""
    batch = CallBatch()
    encoded = encode_registers(0, {"rax": 1})
    batch.add_hvcall(0, SET_REGISTERS, encoded.inputs[0], reps=1, error=encoded_chunk_error(encoded, 0))
    bad = _with_bad_name(encode_registers(0, {"rbx": 2}), 0)
    batch.add_hvcall(0, SET_REGISTERS, bad.inputs[0], reps=1, error=encoded_chunk_error(bad, 0))
    fds = fds_array([vp.fd])
    for _ in range(3):
        with pytest.raises(MshvError) as failed:
            batch.run(fds)
        assert failed.value.hv_status == HvStatus.INVALID_PARAMETER
        batch.run(fds, stop=1)  # the first step alone, again and again


def test_batch_errors_equal_the_one_by_one_errors(vp: Vp) -> None:
    encoded = _with_bad_name(encode_registers(0, {"rax": 1, "rbx": 2, "rcx": 3}), 1)
    with pytest.raises(MshvError) as alone:
        set_encoded_registers(vp.fd, encoded)
    batch = CallBatch()
    batch.add_hvcall(0, SET_REGISTERS, encoded.inputs[0], reps=3, error=encoded_chunk_error(encoded, 0))
    with pytest.raises(MshvError) as batched:
        batch.run(fds_array([vp.fd]))
    got, want = batched.value, alone.value
    assert (got.errno, got.hv_status, got.reps_done) == (want.errno, want.hv_status, want.reps_done)
    assert str(got) == str(want)
    assert "register rbx on VP 0: 1 of 3 done" in str(got)
    assert vp.reg_read("rax") == 1 and vp.reg_read("rcx") == 0


def test_reps_short_error_names_the_register_it_stopped_at() -> None:
    encoded = encode_registers(0, {"rax": 1, "rbx": 2, "rcx": 3})
    error = encoded_chunk_error(encoded, 0)(0, 0, 2)
    assert (error.errno, error.op) == (5, "HvCallSetVpRegisters")
    assert "stopped at register rcx: 2 of 3 done" in str(error)
