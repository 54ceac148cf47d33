"""The guest's CPUID on the emulator, as the Microsoft Hypervisor presents it (issue 11).

Hypervisor leaves (TLFS "Feature and Interface Discovery"): "Microsoft Hv" at 0x40000000,
"Hv#1" at 0x40000001 and the Hv#1 leaves up to 0x40000006 when the partition's
SYNTHETIC_PROC_FEATURES grant hypervisor_present and hv1 (the kernel's hvhdk.h:
hypervisor_present "CPUID leaves 0x40000000 and 0x40000001 are supported", hv1 "CPUID leaves
0x40000000 - 0x40000006"); 0x40000003 is the privilege mask the guest can use, and nothing
of KVM's own leaves ("KVMKVMKVM") shows. CPUID 0x80000008 follows PHYSICAL_ADDRESS_WIDTH.

Real guest code reads the leaves in real, protected and long mode; what it reads is compared
with the TLFS values and with HvCallGetVpCpuidValues.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest

from mshv import (
    GpaRangeError,
    GuestMemory,
    HaltIntercept,
    HvPartitionProperty,
    Mshv,
    Partition,
    Vp,
    _kernel,
)
from mshv._abi import lib
from mshv.partition import _set_guest_memory
from mshv.testing import assemble, entry_gpa, start_vp

P = HvPartitionProperty
MODES = ["real", "protected", "long"]
RESULTS = 0x9000  # where the guest stores each leaf's EAX, EBX, ECX, EDX
MEMORY = 0x40000

QEMU_SYNTHETIC = 0x6400FFB  # QEMU 11.1.3's SYNTHETIC_PROC_FEATURES (set before initialize)
# hypervisor_present (bit 0) and hv1 (bit 1) only
PRESENT_HV1 = (1 << lib.HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT) | (
    1 << lib.HV_SYNTHETIC_PROC_FEATURE_HV1_BIT
)
HV_LEAVES = [0x40000000 + n for n in range(7)]
BEYOND = [0x40000007, 0x40000010, 0x400000FF]  # above the maximum hypervisor leaf


def _words(text: bytes) -> tuple[int, ...]:
    return struct.unpack("<3I", text)


def guest_source(leaves: list[int]) -> str:
    """CPUID each leaf (subleaf 0) and store EAX, EBX, ECX, EDX at RESULTS + 16 * i; HLT."""
    lines = []
    for i, leaf in enumerate(leaves):
        at = RESULTS + 16 * i
        lines += [f"mov ${leaf:#x}, %eax", "xor %ecx, %ecx", "cpuid"]
        lines += [f"movl %{r}, {at + 4 * n:#x}" for n, r in enumerate(("eax", "ebx", "ecx", "edx"))]
    return "\n".join([*lines, "hlt"])


@pytest.fixture
def device() -> Iterator[Mshv]:
    with Mshv() as hv:
        yield hv


def new_partition(device: Mshv, **early: int) -> Partition:
    """An initialized partition without LAPIC (HLT exits) with the early properties given."""
    pt = device.create_partition(lapic=False, initialize=False)
    for name, value in early.items():
        pt.set_property(P[name], value)
    pt.initialize()
    return pt


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    """Guest RAM for one partition (closed after the partition that maps it)."""
    with GuestMemory(MEMORY) as mem:
        yield mem


def guest_reads(
    pt: Partition, memory: GuestMemory, mode: str, leaves: list[int]
) -> tuple[Vp, dict[int, tuple[int, int, int, int]]]:
    """Run guest code that reads ``leaves`` on a new VP 0 of ``pt``; the VP (the partition holds
    its VPs weakly: keep it to ask it more) and its results by leaf."""
    code = assemble(guest_source(leaves), mode=mode, base=entry_gpa(mode))
    pt.map_memory(memory, 0)
    vp = start_vp(pt, memory, code, mode=mode)
    exit_ = vp.run()
    assert isinstance(exit_, HaltIntercept), exit_
    raw = memory.read(RESULTS, 16 * len(leaves))
    return vp, {leaf: struct.unpack_from("<4I", raw, 16 * i) for i, leaf in enumerate(leaves)}


def hypercall_view(vp: Vp, leaves: list[int]) -> dict[int, tuple[int, int, int, int]]:
    """HvCallGetVpCpuidValues for ``leaves`` on ``vp``."""
    return {leaf: tuple(vp.get_cpuid(leaf)) for leaf in leaves}  # type: ignore[misc]


def host_phys_bits(device: Mshv) -> int:
    return device.get_property(P.PHYSICAL_ADDRESS_WIDTH)


@pytest.mark.parametrize("mode", MODES)
def test_qemu_flow_shows_the_microsoft_hypervisor(device, memory, mode):
    """SYNTHETIC_PROC_FEATURES = 0x6400ffb before initialize (QEMU 11.1.3): the guest reads
    "Microsoft Hv" with maximum leaf 0x40000006 (hv1), "Hv#1", the hypervisor-present bit
    CPUID.1:ECX[31], and no KVM leaf; GetVpCpuidValues gives the same for every leaf."""
    leaves = [1, *HV_LEAVES, *BEYOND]
    with new_partition(device, SYNTHETIC_PROC_FEATURES=QEMU_SYNTHETIC) as pt:
        vp, seen = guest_reads(pt, memory, mode, leaves)
        assert seen == hypercall_view(vp, leaves)
    assert seen[1][2] & lib.HYPERV_HYPERVISOR_PRESENT_BIT
    eax, *signature = seen[0x40000000]
    assert eax == 0x40000006
    assert tuple(signature) == _words(b"Microsoft Hv")
    assert seen[0x40000001] == (*_words(b"Hv#1\0\0\0\0\0\0\0\0")[:1], 0, 0, 0)
    assert seen[0x40000002] == (0, 0, 0, 0)  # no Windows build to report
    assert seen[0x40000006] == (0, 0, 0, 0)  # no hardware feature claimed


def test_qemu_flow_features_are_what_the_guest_can_use(device, memory):
    """0x40000003 for QEMU's 0x6400ffb: of the registers it grants, the ones the emulator gives
    the guest in full: the reference counter, VP index, reference TSC page and frequency MSRs
    (EAX bits 1, 6, 9, 11; EDX bit 8 frequency MSRs). Not the hypercall MSRs (no hypercall
    page is filled and guest hypercalls are not answered), SynIC (no message or event is ever
    delivered), synthetic timers (they never expire), APIC access MSRs (not implemented). No
    hypercall privilege in EBX. 0x40000004: no recommendation, spinlock retries "never
    notify", the host's MAXPHYADDR; 0x40000005: the VP limit."""
    leaves = [0x40000003, 0x40000004, 0x40000005]
    with new_partition(device, SYNTHETIC_PROC_FEATURES=QEMU_SYNTHETIC) as pt:
        _vp, seen = guest_reads(pt, memory, "long", leaves)
    eax, ebx, ecx, edx = seen[0x40000003]
    assert eax == (
        lib.HV_MSR_TIME_REF_COUNT_AVAILABLE
        | lib.HV_MSR_VP_INDEX_AVAILABLE
        | lib.HV_MSR_REFERENCE_TSC_AVAILABLE
        | lib.HV_ACCESS_FREQUENCY_MSRS
    )
    assert eax & lib.HV_MSR_HYPERCALL_AVAILABLE == 0
    assert (ebx, ecx, edx) == (0, 0, lib.HV_FEATURE_FREQUENCY_MSRS_AVAILABLE)
    assert seen[0x40000004] == (0, lib.HYPERV_SPINLOCK_NEVER_NOTIFY, host_phys_bits(device), 0)
    max_vps = seen[0x40000005][0]
    assert seen[0x40000005][1:] == (0, 0, 0)
    with new_partition(device) as pt:  # the limit is the one CREATE_VP enforces (MSHV_MAX_VPS)
        pt.create_vp(max_vps - 1)
        with pytest.raises(ValueError, match=f"0..{max_vps - 1}"):
            pt.create_vp(max_vps)


def test_advertised_registers_work_for_the_guest(device, memory):
    """Every MSR 0x40000003 advertises answers the guest's RDMSR (no #GP): VP_RUNTIME,
    TIME_REF_COUNT, VP_INDEX, REFERENCE_TSC, TSC_FREQUENCY, APIC_FREQUENCY."""
    msrs = [
        (lib.HV_MSR_VP_RUNTIME_AVAILABLE, lib.HV_X64_MSR_VP_RUNTIME),
        (lib.HV_MSR_TIME_REF_COUNT_AVAILABLE, lib.HV_X64_MSR_TIME_REF_COUNT),
        (lib.HV_MSR_VP_INDEX_AVAILABLE, lib.HV_X64_MSR_VP_INDEX),
        (lib.HV_MSR_REFERENCE_TSC_AVAILABLE, lib.HV_X64_MSR_REFERENCE_TSC),
        (lib.HV_ACCESS_FREQUENCY_MSRS, lib.HV_X64_MSR_TSC_FREQUENCY),
        (lib.HV_ACCESS_FREQUENCY_MSRS, lib.HV_X64_MSR_APIC_FREQUENCY),
    ]
    every = (1 << 12) - 1  # hypervisor_present .. access_frequency_regs
    source = "\n".join(
        [f"mov ${msr:#x}, %ecx\nrdmsr\nmovl %eax, {RESULTS + 4 * i:#x}" for i, (_, msr) in enumerate(msrs)]
        + ["mov $0x40000003, %eax\ncpuid\nmovl %eax, 0x8ff0\nhlt"]
    )
    with new_partition(device, SYNTHETIC_PROC_FEATURES=every) as pt:
        pt.map_memory(memory, 0)
        vp = start_vp(pt, memory, assemble(source, mode="long", base=entry_gpa("long")), mode="long")
        exit_ = vp.run()
        assert isinstance(exit_, HaltIntercept), exit_  # a #GP would not end at the HLT
        privileges = int.from_bytes(memory.read(0x8FF0, 4), "little")
        tsc_hz = int.from_bytes(memory.read(RESULTS + 16, 4), "little")
    for bit, _ in msrs:
        assert privileges & bit, hex(privileges)
    assert tsc_hz != 0  # TSC_FREQUENCY low half: the frequency in Hz
    assert privileges & (lib.HV_MSR_SYNIC_AVAILABLE | lib.HV_MSR_SYNTIMER_AVAILABLE) == 0
    assert privileges & (lib.HV_MSR_APIC_ACCESS_AVAILABLE | lib.HV_MSR_HYPERCALL_AVAILABLE) == 0


def test_hypervisor_present_without_hv1(device, memory):
    """hypervisor_present alone: 0x40000000 says "Microsoft Hv" with maximum leaf 0x40000001,
    whose interface signature is not "Hv#1"."""
    present = 1 << lib.HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT
    leaves = [0x40000000, 0x40000001]
    with new_partition(device, SYNTHETIC_PROC_FEATURES=present) as pt:
        vp, seen = guest_reads(pt, memory, "protected", leaves)
        assert seen == hypercall_view(vp, leaves)
    assert seen[0x40000000] == (0x40000001, *_words(b"Microsoft Hv"))
    assert seen[0x40000001] == (0, 0, 0, 0)


def test_hv1_without_register_privileges(device, memory):
    """hypervisor_present and hv1 only: the Hv#1 leaves are there, and 0x40000003 grants the
    guest nothing (no register privilege, no frequency MSRs)."""
    leaves = [0x40000000, 0x40000001, 0x40000003]
    with new_partition(device, SYNTHETIC_PROC_FEATURES=PRESENT_HV1) as pt:
        vp, seen = guest_reads(pt, memory, "long", leaves)
        assert seen == hypercall_view(vp, leaves)
    assert seen[0x40000000][0] == 0x40000006
    assert seen[0x40000001][0] == lib.HYPERV_CPUID_SIGNATURE_EAX
    assert seen[0x40000003] == (0, 0, 0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_no_synthetic_features_no_hypervisor(device, memory, mode):
    """A partition whose VMM never set SYNTHETIC_PROC_FEATURES (value 0): no hypervisor-present
    bit and no hypervisor leaf, KVM's included; the guest and GetVpCpuidValues agree."""
    leaves = [1, *HV_LEAVES, 0x40000100]
    with new_partition(device) as pt:
        assert pt.get_property(P.SYNTHETIC_PROC_FEATURES) == 0
        vp, seen = guest_reads(pt, memory, mode, leaves)
        assert seen == hypercall_view(vp, leaves)
    assert seen[1][2] & lib.HYPERV_HYPERVISOR_PRESENT_BIT == 0
    for leaf in (0x40000000, 0x40000100):
        assert tuple(seen[leaf][1:]) not in (_words(b"KVMKVMKVM\0\0\0"), _words(b"Microsoft Hv"))


def test_registered_result_wins_over_the_hypervisor_leaf(device, memory):
    """A VMM's HvCallRegisterInterceptResult for 0x40000003 (before the first run) overrides
    the masked bits of the default; the guest and GetVpCpuidValues see the result."""
    with new_partition(device, SYNTHETIC_PROC_FEATURES=QEMU_SYNTHETIC) as pt:
        pt.map_memory(memory, 0)
        code = assemble(guest_source([0x40000003]), mode="protected", base=entry_gpa("protected"))
        vp = start_vp(pt, memory, code, mode="protected")
        default = vp.get_cpuid(0x40000003)
        vp.set_cpuid_result(
            0x40000003, ebx=(0x1234, 0xFFFF), edx=(0, lib.HV_FEATURE_FREQUENCY_MSRS_AVAILABLE)
        )
        wanted = (default.eax, 0x1234, default.ecx, default.edx & ~lib.HV_FEATURE_FREQUENCY_MSRS_AVAILABLE)
        assert tuple(vp.get_cpuid(0x40000003)) == wanted
        assert isinstance(vp.run(), HaltIntercept)
        assert struct.unpack("<4I", memory.read(RESULTS, 16)) == wanted


@pytest.mark.parametrize("mode", MODES)
def test_physical_address_width_shows_in_0x80000008(device, memory, mode):
    """PHYSICAL_ADDRESS_WIDTH set below the host's MAXPHYADDR (early property): the guest's
    CPUID 0x80000008 EAX[7:0] says that width, as GetVpCpuidValues does; unset, the host's."""
    host = host_phys_bits(device)
    with new_partition(device, PHYSICAL_ADDRESS_WIDTH=36) as pt:
        vp, seen = guest_reads(pt, memory, mode, [0x80000008])
        assert seen == hypercall_view(vp, [0x80000008])
    assert seen[0x80000008][0] & 0xFF == 36
    with GuestMemory(MEMORY) as other, new_partition(device) as pt:
        assert guest_reads(pt, other, mode, [0x80000008])[1][0x80000008][0] & 0xFF == host


def test_physical_address_width_limits_guest_memory(device):
    """The width the guest is told is the width mapped memory must fit in: with
    PHYSICAL_ADDRESS_WIDTH 36, a region ending at 2^36 maps and one above it does not
    (EINVAL, as for a GPA beyond the host's MAXPHYADDR)."""
    host = host_phys_bits(device)
    assert host > 36, f"host MAXPHYADDR {host}: nothing to check above 36 bits"
    with (
        GuestMemory(0x1000) as a,
        GuestMemory(0x1000) as b,
        new_partition(device, PHYSICAL_ADDRESS_WIDTH=36) as pt,
    ):
        pt.map_memory(a, (1 << 36) - 0x1000)
        with pytest.raises(GpaRangeError):  # map_memory checks first (tests/test_gpa_width.py)
            pt.map_memory(b, 1 << 36)
        hva = b._acquire()
        try:  # the request itself
            assert _set_guest_memory(pt.fd, 0x1000, (1 << 36) // 0x1000, hva, 1) < 0
            assert _kernel.errno() == errno.EINVAL
        finally:
            b._release()
