"""The hypercall pages of the emulator's MSHV_ROOT_HVCALL (emulator/hvcall.c): what a
handler sees past the input and what comes back past its output are zeros, never a
previous call's bytes (mshv_ioctl_passthru_hvcall hands the hypercall one input and one
output page per call)."""

from __future__ import annotations

import struct

from mshv import Partition
from mshv._abi import ffi, lib

_NAMES_AT = ffi.offsetof("struct hv_input_get_vp_registers", "names")
_VALUE = ffi.sizeof("union hv_register_value")


def _get(partition: Partition, names: list[int], reps: int, in_names: int, output_size: int) -> bytes:
    """HvCallGetVpRegisters of VP 0: ``reps`` names of which ``in_names`` are in the input."""
    data = bytearray(_NAMES_AT + 4 * in_names)  # partition id, vp_index 0, input_vtl 0
    struct.pack_into(f"<{in_names}I", data, _NAMES_AT, *names[:in_names])
    result = partition.hvcall(lib.HVCALL_GET_VP_REGISTERS, bytes(data), output_size, reps)
    assert result.reps == reps
    return result.output


def test_input_past_in_sz_reads_as_zero_not_the_last_call(partition: Partition) -> None:
    vp = partition.create_vp(0)
    vp.set_registers({"rax": 0x1234_5678, "rbx": 0x9ABC})
    rax, rbx = lib.HV_X64_REGISTER_RAX, lib.HV_X64_REGISTER_RBX
    first = _get(partition, [rax, rbx], 2, 2, 2 * _VALUE)
    assert struct.unpack_from("<QQ", first, 0)[0] == 0x1234_5678
    assert struct.unpack_from("<QQ", first, _VALUE)[0] == 0x9ABC
    # the second name lies past in_sz: name 0 (HV_REGISTER_EXPLICIT_SUSPEND), not RBX from
    # the call before
    suspend = _get(partition, [lib.HV_REGISTER_EXPLICIT_SUSPEND], 1, 1, _VALUE)
    assert struct.unpack_from("<Q", suspend)[0] != 0x9ABC
    second = _get(partition, [rax, rbx], 2, 1, 2 * _VALUE)
    assert struct.unpack_from("<Q", second, 0)[0] == 0x1234_5678
    assert second[_VALUE:] == suspend


def test_output_past_what_the_handler_wrote_is_zero(partition: Partition) -> None:
    vp = partition.create_vp(0)
    vp.set_registers({"rax": 1, "rbx": 2, "rcx": 3})
    names = [lib.HV_X64_REGISTER_RAX, lib.HV_X64_REGISTER_RBX, lib.HV_X64_REGISTER_RCX]
    assert struct.unpack("<QQQQQQ", _get(partition, names, 3, 3, 3 * _VALUE))[::2] == (1, 2, 3)
    one = _get(partition, names, 1, 1, 3 * _VALUE)  # one value written, three asked back
    assert struct.unpack_from("<Q", one, 0)[0] == 1
    assert one[_VALUE:] == bytes(2 * _VALUE)
