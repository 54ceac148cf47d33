"""mshv/intercept_config.py and mshv/translate.py: intercepts, CPUID results and GVA translation.

What the emulator does (emulator/hypercalls.c, emu_hc_install_intercept): IO ports
always exit; an MSR intercept covers the MSRs KVM does not implement; a CPUID
intercept is refused with HV_STATUS_OPERATION_DENIED (KVM cannot trap CPUID),
and CPUID is shaped with registered results instead; exception intercepts
are accepted for #DB and #BP only.
"""

from __future__ import annotations

import errno

import pytest

from mshv import (
    CpuidValues,
    ExceptionIntercept,
    GuestMemory,
    HaltIntercept,
    HvStatus,
    InterceptAccess,
    InterceptAccessMask,
    IoPortIntercept,
    MshvError,
    MsrIntercept,
    Partition,
    TranslateFlag,
    TranslateResult,
    Vp,
)
from mshv._abi import lib
from mshv.intercept_config import get_cpuid
from mshv.testing import PAGED_CODE_GPA, assemble, start_vp

ENTRY = PAGED_CODE_GPA
UNKNOWN_MSR = 0x1234  # no MSR of KVM's: its accesses reach user space

MSR_GUEST = f"""
    mov ${UNKNOWN_MSR:#x}, %ecx
    rdmsr                       # the VMM supplies edx:eax
    out %eax, $0x10
    mov %edx, %eax
    out %eax, $0x11
    mov ${UNKNOWN_MSR + 1:#x}, %ecx
    mov $0x11112222, %eax
    mov $0x33334444, %edx
    wrmsr                       # the VMM sees edx:eax
    hlt
"""

CPUID_GUEST = """
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    out %eax, $0x10
    mov %ecx, %eax
    out %eax, $0x11
    hlt
"""


def _vp_at(partition: Partition, mem: GuestMemory, source: str, mode: str) -> Vp:
    return start_vp(partition, mem, assemble(source, mode=mode, base=ENTRY), mode=mode)


def _outs(vp: Vp) -> list[int]:
    values = []
    while isinstance(exit_ := vp.run(), IoPortIntercept):
        values.append(exit_.value)
        vp.complete_io(exit_)
    assert isinstance(exit_, HaltIntercept)
    return values


def test_msr_intercept_read_and_write(partition: Partition, memory: GuestMemory) -> None:
    vp = _vp_at(partition, memory, MSR_GUEST, "long")
    partition.install_intercept("msr")
    read = vp.run()
    assert isinstance(read, MsrIntercept) and read.msr == UNKNOWN_MSR
    assert read.header.access_type == lib.HV_INTERCEPT_ACCESS_READ
    assert read.header.rip == ENTRY + 5 and read.header.instruction_length == 2
    vp.set_registers({"rax": 0xAABBCCDD, "rdx": 0x11223344, "rip": read.header.next_rip})
    eax = vp.run()
    assert isinstance(eax, IoPortIntercept) and (eax.port, eax.value) == (0x10, 0xAABBCCDD)
    vp.complete_io(eax)
    edx = vp.run()
    assert isinstance(edx, IoPortIntercept) and (edx.port, edx.value) == (0x11, 0x11223344)
    vp.complete_io(edx)
    write = vp.run()
    assert isinstance(write, MsrIntercept) and write.msr == UNKNOWN_MSR + 1
    assert write.header.access_type == lib.HV_INTERCEPT_ACCESS_WRITE
    # typed: a WRMSR is a write, never to be completed as a read (issue 13, item 1)
    assert (read.is_read, read.is_write, read.is_execute) == (True, False, False)
    assert (write.is_read, write.is_write, write.is_execute) == (False, True, False)
    assert write.header.access_type == InterceptAccess.WRITE and write.access is InterceptAccess.WRITE
    assert read.header.access_type is InterceptAccess.READ
    assert (write.rdx, write.rax) == (0x33334444, 0x11112222)
    vp.skip(write)
    assert isinstance(vp.run(), HaltIntercept)


def test_cpuid_intercept_is_refused_and_results_shape_cpuid(
    partition: Partition, memory: GuestMemory
) -> None:
    vp = _vp_at(partition, memory, CPUID_GUEST, "protected")
    with pytest.raises(MshvError) as info:  # KVM has no CPUID exit: emu_hc_install_intercept
        partition.install_intercept("cpuid", leaf=1)
    assert info.value.errno == errno.EIO and info.value.hv_status == HvStatus.OPERATION_DENIED
    host = vp.get_cpuid(1)
    vp.set_cpuid_result(1, eax=0x0001_2345, ecx=(0x8000_0000, 0x8000_0000))
    expected = CpuidValues(0x0001_2345, host.ebx, host.ecx | 0x8000_0000, host.edx)
    assert vp.get_cpuid(1) == expected
    assert _outs(vp) == [expected.eax, expected.ecx]  # what the guest's CPUID returned


def test_cpuid_results_after_the_first_run_are_refused(partition: Partition, memory: GuestMemory) -> None:
    vp = _vp_at(partition, memory, CPUID_GUEST, "protected")
    vp.set_cpuid_result(1, eax=0x0001_2345)
    assert _outs(vp)[0] == 0x0001_2345
    vp.set_registers({"rip": ENTRY})
    with pytest.raises(MshvError) as late:  # KVM refuses a new CPUID once the VP ran
        vp.set_cpuid_result(1, eax=0)
    assert late.value.hv_status == HvStatus.OPERATION_DENIED
    assert _outs(vp)[0] == 0x0001_2345  # and the VP still runs with the old results


def test_partition_cpuid_results_reach_every_vp(partition: Partition, memory: GuestMemory) -> None:
    vps = [partition.create_vp(i) for i in range(2)]
    partition.set_cpuid_result(0x4000_0000, subleaf=0, ebx=0x4D53_4854)
    assert [vp.get_cpuid(0x4000_0000).ebx for vp in vps] == [0x4D53_4854] * 2


def test_exception_intercepts_are_delivered_or_refused(partition: Partition, memory: GuestMemory) -> None:
    """An exception intercept is never accepted and then left undelivered.

    The emulator probes whether this KVM hands a guest #BP to user space
    (mainline VMX/SVM does; the paravirtual kvm_pvm of these machines does
    not) and refuses the intercept with OPERATION_DENIED where it cannot.
    """
    partition.install_intercept("io_port", port=0x3F8)
    with pytest.raises(MshvError) as ud:  # KVM cannot hand #UD to user space at all
        partition.install_intercept("exception", vector=6)
    assert ud.value.errno == errno.EIO and ud.value.hv_status == HvStatus.OPERATION_DENIED
    vp = _vp_at(partition, memory, "nop; int3; mov $7, %al; out %al, $0x10; hlt", "protected")
    try:
        partition.install_intercept("exception", vector=3)
    except MshvError as refused:
        assert refused.errno == errno.EIO and refused.hv_status == HvStatus.OPERATION_DENIED
        return
    bp = vp.run()
    assert isinstance(bp, ExceptionIntercept) and bp.vector == 3 and bp.header.rip == ENTRY + 1
    vp.reg_write("rip", bp.header.rip + 1)
    assert _outs(vp) == [7]


def test_translate_gva_in_long_mode(partition: Partition, memory: GuestMemory) -> None:
    vp = _vp_at(partition, memory, "hlt", "long")
    assert vp.translate_gva(ENTRY + 0x123) == (TranslateResult.SUCCESS, ENTRY + 0x123)
    result, gpa = vp.translate_gva(0x100000 + 8, TranslateFlag.VALIDATE_READ | TranslateFlag.VALIDATE_WRITE)
    assert (result, gpa) == (TranslateResult.GPA_UNMAPPED, 0x100008)  # mapped GVA, no memory
    assert vp.translate_gva(1 << 31).result == TranslateResult.PAGE_NOT_PRESENT  # past the 1 GiB map


def test_bad_intercept_input_raises_before_the_hypervisor(partition: Partition) -> None:
    vp = partition.create_vp(0)
    with pytest.raises(ValueError):
        partition.install_intercept("syscall")
    with pytest.raises(ValueError):
        partition.install_intercept("io_port")  # no port
    with pytest.raises(ValueError):
        partition.install_intercept("msr", msr=0x10)  # "msr" covers every MSR
    with pytest.raises(ValueError):
        partition.install_intercept("io_port", port=0x10000)
    with pytest.raises(ValueError):
        partition.install_intercept("exception", vector=32)
    with pytest.raises(ValueError):
        partition.install_intercept("io_port", port=0x10, access=0)
    with pytest.raises(TypeError):
        partition.install_intercept("io_port", port="0x10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        vp.set_cpuid_result("1", eax=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        vp.set_cpuid_result(1, eax=1 << 32)
    with pytest.raises(ValueError):
        vp.translate_gva(1 << 64)
    with pytest.raises(ValueError):
        vp.translate_gva(0, flags=1 << 40)
    with pytest.raises(MshvError) as info:  # a VP that does not exist
        get_cpuid(partition.fd, 7, 1)
    assert info.value.hv_status == HvStatus.INVALID_VP_INDEX
    vp.close()
    with pytest.raises(ValueError, match="closed"):
        vp.get_cpuid(1)
    with pytest.raises(ValueError, match="closed"):
        vp.translate_gva(0)


def test_the_install_mask_is_a_type_of_its_own(partition: Partition, memory: GuestMemory) -> None:
    """InterceptAccessMask (1/2/4) is what install_intercept takes; InterceptAccess (0/1/2) is what an
    intercept reports. An InterceptAccess given to install_intercept means its mask bit."""
    assert {int(m) for m in InterceptAccessMask} == {
        lib.HV_INTERCEPT_ACCESS_MASK_READ,
        lib.HV_INTERCEPT_ACCESS_MASK_WRITE,
        lib.HV_INTERCEPT_ACCESS_MASK_EXECUTE,
    }
    assert {int(a) for a in InterceptAccess} == {
        lib.HV_INTERCEPT_ACCESS_READ,
        lib.HV_INTERCEPT_ACCESS_WRITE,
        lib.HV_INTERCEPT_ACCESS_EXECUTE,
    }
    assert InterceptAccess.WRITE.mask is InterceptAccessMask.WRITE
    assert not issubclass(InterceptAccessMask, type(InterceptAccess.READ))
    vp = _vp_at(partition, memory, MSR_GUEST, "long")
    partition.install_intercept("msr", access=InterceptAccess.WRITE)  # the WRITE bit, not 1 == READ
    partition.install_intercept(
        "io_port", port=0x10, access=InterceptAccessMask.READ | InterceptAccessMask.WRITE
    )
    with pytest.raises(TypeError):
        partition.install_intercept("msr", access="write")  # type: ignore[arg-type]
    read = vp.run()  # the emulator reports every unknown MSR (its MSR intercepts cover them)
    assert isinstance(read, MsrIntercept) and read.is_read
