"""Partition and host properties as the Microsoft Hypervisor answers them (issue 11, items 1-2).

Host properties on /dev/mshv (target HV_PARTITION_ID_SELF) through HvCallGetPartitionProperty
(0x44) and HvCallGetPartitionPropertyEx (0x101); a child partition's properties on its fd
before and after HvCallInitializePartition, with the statuses of the rules: early properties
only before initialize, the others only after, read-only ones, banked ones only through 0x101,
values out of range. The host's answers are checked against KVM by tests/emulator/props_client.c.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from guest import compile_c

from mshv import HvPartitionProperty, HvStatus, Mshv, MshvError, Partition, limits
from mshv._abi import lib
from mshv.hvcall import HvcallInput, hvcall

HERE = Path(__file__).resolve().parent
P = HvPartitionProperty

HOST_PLAIN = [
    P.PROCESSOR_FEATURES0,
    P.PROCESSOR_FEATURES1,
    P.PROCESSOR_XSAVE_FEATURES,
    P.PHYSICAL_ADDRESS_WIDTH,
    P.PROCESSOR_CLOCK_FREQUENCY,
    P.PROCESSOR_VENDOR,
]
BANKED = [P.VMM_CAPABILITIES, P.ASSIGNABLE_SYNTHETIC_PROC_FEATURES]
READ_ONLY = [
    P.PROCESSOR_VENDOR,
    P.PROCESSOR_XSAVE_FEATURES,
    P.XSAVE_STATES,
    P.MAX_XSAVE_DATA_SIZE,
    P.PROCESSOR_CLOCK_FREQUENCY,
    P.PROCESSOR_FEATURES0,
    P.PROCESSOR_FEATURES1,
]
# (code, a valid value) for the writable properties
EARLY = [(P.PRIVILEGE_FLAGS, 0x1234), (P.SYNTHETIC_PROC_FEATURES, 0xBFB), (P.PHYSICAL_ADDRESS_WIDTH, 36)]
LATE = [
    (P.TIME_FREEZE, 1),
    (P.PROCESSORS_PER_SOCKET, 2),
    (P.GPA_PAGE_ACCESS_TRACKING, 1),
    (P.UNIMPLEMENTED_MSR_ACTION, 1),
]
# Bits of hv_partition_synthetic_processor_features bank 0 the emulator implements: hypervisor
# present, hv1, VP runtime, reference counter, SynIC, synthetic timers, interrupt control,
# hypercall MSRs, VP index, reference TSC, frequency MSRs.
ASSIGNABLE = 0xBFF
QEMU_SYNTHETIC = 0x6400FFB  # QEMU 11.1.3 sets it without reading the assignable set


def fails_with(status: str, fn: Callable[..., object], *args: int) -> MshvError:
    """Call fn(*args) and check it raises MshvError with HV status ``status``."""
    with pytest.raises(MshvError) as info:
        fn(*args)
    assert info.value.hv_status == getattr(HvStatus, status), info.value
    return info.value


def get_ex(fd: int, code: int) -> bytes:
    """HvCallGetPartitionPropertyEx, arg 0, a whole output page as rust-vmm asks."""
    data = HvcallInput("struct hv_input_get_partition_property_ex")
    data.header.property_code = int(code)
    size = lib.HV_PARTITION_PROPERTY_EX_MAX_VAR_SIZE
    return hvcall(fd, lib.HVCALL_GET_PARTITION_PROPERTY_EX, data.to_bytes(), size).output


def u64(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at : at + 8], "little")


@pytest.fixture
def fresh(hv: Mshv) -> Iterator[Partition]:
    """A created, not yet initialized partition."""
    with hv.create_partition(initialize=False) as pt:
        yield pt


@pytest.fixture
def ready(hv: Mshv) -> Iterator[Partition]:
    with hv.create_partition() as pt:
        yield pt


# ---- host properties (/dev/mshv) ---------------------------------------------------------


@pytest.fixture(scope="module")
def kvm_view(tmp_path_factory: pytest.TempPathFactory, preload_env: dict[str, str]) -> dict[str, str]:
    client = compile_c(HERE / "props_client.c", tmp_path_factory.mktemp("props"))
    proc = subprocess.run([client], env=preload_env, capture_output=True, text=True, timeout=120)
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


@pytest.mark.parametrize("code", HOST_PLAIN, ids=lambda c: c.name)
def test_host_property_through_0x44_and_0x101(kvm_view: dict[str, str], code: int) -> None:
    """/dev/mshv answers every host property through both calls with the same value."""
    key = f"{int(code):#x}"
    assert kvm_view[f"host.{key}.ret"] == "0", kvm_view[f"host.{key}.status"]
    assert kvm_view[f"host_ex.{key}.ret"] == "0", kvm_view[f"host_ex.{key}.status"]
    assert kvm_view[f"host.{key}.value"] == kvm_view[f"host_ex.{key}.value"]


def test_host_feature_bits_are_what_kvm_offers(kvm_view: dict[str, str]) -> None:
    """PROCESSOR_FEATURES0/1 and PROCESSOR_XSAVE_FEATURES bits equal the CPUID bits of a vCPU
    given KVM_GET_SUPPORTED_CPUID's table (what KVM_GET_CPUID2 then reads: the guest's CPUID)."""
    names = sorted({k.split(".")[1] for k in kvm_view if k.startswith("bit.")})
    assert len(names) >= 15
    wrong = [n for n in names if kvm_view[f"bit.{n}.hv"] != kvm_view[f"bit.{n}.kvm"]]
    assert wrong == []
    assert any(kvm_view[f"bit.{n}.kvm"] == "1" for n in names)  # not vacuous


def test_host_physical_address_width_is_kvm_maxphyaddr(kvm_view: dict[str, str]) -> None:
    code = f"{int(P.PHYSICAL_ADDRESS_WIDTH):#x}"
    assert int(kvm_view[f"host.{code}.value"], 0) == int(kvm_view["kvm.phys_bits"])


def test_host_clock_frequency_is_kvm_tsc_in_hz(kvm_view: dict[str, str]) -> None:
    """PROCESSOR_CLOCK_FREQUENCY is the TSC frequency KVM_GET_TSC_KHZ reports, in Hz."""
    code = f"{int(P.PROCESSOR_CLOCK_FREQUENCY):#x}"
    assert int(kvm_view[f"host.{code}.value"], 0) == int(kvm_view["kvm.tsc_khz"]) * 1000


def test_host_vendor_is_the_cpuid_vendor(kvm_view: dict[str, str]) -> None:
    code = f"{int(P.PROCESSOR_VENDOR):#x}"
    expected = {
        "AuthenticAMD": lib.HV_PROCESSOR_VENDOR_AMD,
        "HygonGenuine": lib.HV_PROCESSOR_VENDOR_HYGON,
    }.get(kvm_view["kvm.vendor"], lib.HV_PROCESSOR_VENDOR_INTEL)
    assert int(kvm_view[f"host.{code}.value"], 0) == expected


def test_partition_xsave_layout_is_kvms(kvm_view: dict[str, str]) -> None:
    """XSAVE_STATES are components KVM supports, x87 and SSE included; MAX_XSAVE_DATA_SIZE is
    their compacted size from KVM's CPUID 0xD, at most the 4096 bytes QEMU passes."""
    states = int(kvm_view["pt.states.value"], 0)
    assert states & 3 == 3
    assert states & ~int(kvm_view["kvm.xcr0"], 0) == 0
    size = int(kvm_view["pt.size.value"], 0)
    assert size == int(kvm_view["kvm.size_of_states"]) and 576 <= size <= 4096


def test_host_banked_properties_through_0x101(hv: Mshv) -> None:
    """VMM_CAPABILITIES and ASSIGNABLE_SYNTHETIC_PROC_FEATURES: bank_count u16 at 0, reserved,
    bank 0 at byte 8 (hv_partition_property_vmm_capabilities' shape)."""
    caps = get_ex(hv.fd, P.VMM_CAPABILITIES)
    assert int.from_bytes(caps[0:2], "little") == 1 and caps[2:8] == bytes(6)
    assert u64(caps, 8) == lib.HV_VMM_CAP_ASSIGNABLE_SYNTHETIC_PROC_FEATURES
    assignable = get_ex(hv.fd, P.ASSIGNABLE_SYNTHETIC_PROC_FEATURES)
    assert int.from_bytes(assignable[0:2], "little") == 1 and assignable[2:8] == bytes(6)
    assert u64(assignable, 8) == ASSIGNABLE
    assert assignable[16:] == bytes(len(assignable) - 16)


@pytest.mark.parametrize("code", BANKED, ids=lambda c: c.name)
def test_banked_property_through_0x44_is_invalid_parameter(hv: Mshv, code: int) -> None:
    fails_with("INVALID_PARAMETER", hv.get_property, code)


@pytest.mark.parametrize("code", [P.XSAVE_STATES, P.TIME_FREEZE, P.SYNTHETIC_PROC_FEATURES, 0x7FFF0001])
def test_host_answers_only_host_properties(hv: Mshv, code: int) -> None:
    """Child-partition properties and unknown codes on /dev/mshv: UNKNOWN_PROPERTY."""
    fails_with("UNKNOWN_PROPERTY", hv.get_property, code)


# ---- child partition: values ------------------------------------------------------------


def test_partition_defaults_before_initialize(hv: Mshv, fresh: Partition) -> None:
    """Every property reads before initialize: defaults and the host's values."""
    assert fresh.get_property(P.PRIVILEGE_FLAGS) == 0
    assert fresh.get_property(P.SYNTHETIC_PROC_FEATURES) == 0
    assert fresh.get_property(P.UNIMPLEMENTED_MSR_ACTION) == lib.HV_UNIMPLEMENTED_MSR_ACTION_FAULT
    assert fresh.get_property(P.TIME_FREEZE) == 0
    assert fresh.get_property(P.PROCESSORS_PER_SOCKET) == 1
    assert fresh.get_property(P.GPA_PAGE_ACCESS_TRACKING) == 0
    for code in HOST_PLAIN:
        assert fresh.get_property(code) == hv.get_property(code), code.name


def test_partition_features_are_host_minus_disabled(hv: Mshv) -> None:
    """PROCESSOR_FEATURES0/1 and PROCESSOR_XSAVE_FEATURES of a v2 partition: the host's set
    minus the disabled banks of MSHV_CREATE_PARTITION."""
    host0, host1 = hv.get_property(P.PROCESSOR_FEATURES0), hv.get_property(P.PROCESSOR_FEATURES1)
    host_xsave = hv.get_property(P.PROCESSOR_XSAVE_FEATURES)
    # the lowest bit each host mask has
    off0, off1, offx = host0 & -host0, host1 & -host1, host_xsave & -host_xsave
    assert off0 and off1
    kept = []  # a bit the host's KVM keeps giving the guest stays enabled: the guest has it
    with hv.create_partition(disabled_cpu_features=[off0, off1], disabled_xsave=offx) as pt:
        for code, host, off in ((P.PROCESSOR_FEATURES0, host0, off0), (P.PROCESSOR_FEATURES1, host1, off1),
                                (P.PROCESSOR_XSAVE_FEATURES, host_xsave, offx)):  # fmt: skip
            value = pt.get_property(code)
            assert value in (host & ~off, host), code.name
            kept += [code.name] if value == host else []
    if kept:
        assert limits.cpu_feature_hiding().works is False, kept


def test_xsave_disabled_leaves_x87_and_sse(hv: Mshv) -> None:
    """pt_disabled_xsave with the xsave bit: XSAVE_STATES x87|SSE, MAX_XSAVE_DATA_SIZE 576
    (legacy area and XSAVE header), and the XSAVE blob has that size. (A KVM that keeps XSAVE for
    the guest: test_xsave_state.py checks the properties say so.)"""
    hiding = limits.cpu_feature_hiding()
    if hiding.works is False:
        pytest.xfail(f"the host's KVM cannot take XSAVE away from a guest: {hiding.detail}")
    with hv.create_partition(disabled_cpu_features=[0, 0], disabled_xsave=~0 & (2**64 - 1)) as pt:
        assert pt.get_property(P.PROCESSOR_XSAVE_FEATURES) == 0
        assert pt.get_property(P.XSAVE_STATES) == 3
        assert pt.get_property(P.MAX_XSAVE_DATA_SIZE) == 576
        assert len(pt.create_vp(0).get_xsave()) == 576


PARTITION_PLAIN = HOST_PLAIN + [P.XSAVE_STATES, P.MAX_XSAVE_DATA_SIZE, P.UNIMPLEMENTED_MSR_ACTION]


@pytest.mark.parametrize("code", PARTITION_PLAIN, ids=lambda c: c.name)
def test_partition_property_through_0x101_and_vp_fd(ready: Partition, code: int) -> None:
    """0x101 gives a plain property's value in its first 8 bytes; a VP fd reads its partition's."""
    value = ready.get_property(code)
    assert u64(get_ex(ready.fd, code)) == value
    vp = ready.create_vp(0)
    data = HvcallInput("struct hv_input_get_partition_property")
    data.header.property_code = int(code)
    assert u64(hvcall(vp.fd, lib.HVCALL_GET_PARTITION_PROPERTY, data.to_bytes(), 8).output) == value


# ---- child partition: set rules -----------------------------------------------------------


@pytest.mark.parametrize(("code", "value"), EARLY, ids=lambda c: getattr(c, "name", str(c)))
def test_early_property_set_before_initialize(fresh: Partition, code: int, value: int) -> None:
    fresh.set_property(code, value)
    assert fresh.get_property(code) == value
    fresh.initialize()
    assert fresh.get_property(code) == value


@pytest.mark.parametrize(("code", "value"), EARLY, ids=lambda c: getattr(c, "name", str(c)))
def test_early_property_after_initialize_is_invalid_partition_state(
    fresh: Partition, code: int, value: int
) -> None:
    """TLFS HvCallInitializePartition: early properties are frozen (rust-vmm's hardware test:
    PRIVILEGE_FLAGS = 0 after initialize gives 0x7). The value stays."""
    before = fresh.get_property(code)
    fresh.initialize()
    fails_with("INVALID_PARTITION_STATE", fresh.set_property, code, value)
    assert fresh.get_property(code) == before


@pytest.mark.parametrize(("code", "value"), LATE, ids=lambda c: getattr(c, "name", str(c)))
def test_late_property_before_initialize_is_invalid_partition_state(
    fresh: Partition, code: int, value: int
) -> None:
    """Only early properties may be set before initialize (TLFS hv_partition_property_code)."""
    fails_with("INVALID_PARTITION_STATE", fresh.set_property, code, value)
    fresh.initialize()
    fresh.set_property(code, value)
    assert fresh.get_property(code) == value


@pytest.mark.parametrize("code", READ_ONLY, ids=lambda c: c.name)
def test_read_only_property_set_is_access_denied(fresh: Partition, code: int) -> None:
    value = fresh.get_property(code)
    fails_with("ACCESS_DENIED", fresh.set_property, code, value ^ 1)
    fresh.initialize()
    fails_with("ACCESS_DENIED", fresh.set_property, code, value ^ 1)
    assert fresh.get_property(code) == value


@pytest.mark.parametrize("code", BANKED, ids=lambda c: c.name)
def test_banked_property_set_is_invalid_parameter(ready: Partition, code: int) -> None:
    fails_with("INVALID_PARAMETER", ready.set_property, code, 0)
    fails_with("INVALID_PARAMETER", ready.get_property, code)


def test_unknown_property_on_partition(ready: Partition) -> None:
    fails_with("UNKNOWN_PROPERTY", ready.get_property, 0x7FFF0001)
    fails_with("UNKNOWN_PROPERTY", ready.set_property, 0x7FFF0001, 0)
    fails_with("UNKNOWN_PROPERTY", ready.get_property, P.DEBUG_CHANNEL_ID)


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (P.TIME_FREEZE, 2),
        (P.UNIMPLEMENTED_MSR_ACTION, 2),
        (P.GPA_PAGE_ACCESS_TRACKING, 2),
        (P.PROCESSORS_PER_SOCKET, 0),
        (P.PROCESSORS_PER_SOCKET, 257),
    ],
    ids=str,
)
def test_late_value_out_of_range(ready: Partition, code: int, value: int) -> None:
    before = ready.get_property(code)
    fails_with("PROPERTY_VALUE_OUT_OF_RANGE", ready.set_property, code, value)
    assert ready.get_property(code) == before


def test_physical_address_width_range(hv: Mshv, fresh: Partition) -> None:
    """PHYSICAL_ADDRESS_WIDTH: 32 up to the host's MAXPHYADDR."""
    host = hv.get_property(P.PHYSICAL_ADDRESS_WIDTH)
    assert fresh.get_property(P.PHYSICAL_ADDRESS_WIDTH) == host
    fails_with("PROPERTY_VALUE_OUT_OF_RANGE", fresh.set_property, P.PHYSICAL_ADDRESS_WIDTH, 31)
    fails_with("PROPERTY_VALUE_OUT_OF_RANGE", fresh.set_property, P.PHYSICAL_ADDRESS_WIDTH, host + 1)
    fresh.set_property(P.PHYSICAL_ADDRESS_WIDTH, 32)
    assert fresh.get_property(P.PHYSICAL_ADDRESS_WIDTH) == 32


def test_synthetic_features_reserved_bits_refused(fresh: Partition) -> None:
    """Bits hv_partition_synthetic_processor_features reserves (12, 63) are refused."""
    for bit in (12, 17, 63):
        fails_with("PROPERTY_VALUE_OUT_OF_RANGE", fresh.set_property, P.SYNTHETIC_PROC_FEATURES, 1 << bit)
    assert fresh.get_property(P.SYNTHETIC_PROC_FEATURES) == 0


def test_synthetic_features_beyond_assignable_are_kept(fresh: Partition) -> None:
    """QEMU 11.1.3's mask (it never reads 0x90009) is accepted and read back."""
    fresh.set_property(P.SYNTHETIC_PROC_FEATURES, QEMU_SYNTHETIC)
    fresh.initialize()
    assert fresh.get_property(P.SYNTHETIC_PROC_FEATURES) == QEMU_SYNTHETIC


def test_unimplemented_msr_action_round_trips(ready: Partition) -> None:
    """rust-vmm's test_set_property: 1 then 0 read back."""
    for value in (1, 0, 1):
        ready.set_property(P.UNIMPLEMENTED_MSR_ACTION, value)
        assert ready.get_property(P.UNIMPLEMENTED_MSR_ACTION) == value


# ---- TIME_FREEZE and REFERENCE_TIME -------------------------------------------------------


def wait_ticks(pt: Partition, after: int) -> int:
    """Spin until the reference time passes ``after`` (100 ns units) and return it."""
    for _ in range(1_000_000):
        now = pt.get_property(P.REFERENCE_TIME)
        if now > after:
            return now
    raise AssertionError("REFERENCE_TIME does not advance")


def test_reference_time_stops_while_frozen(ready: Partition) -> None:
    start = ready.get_property(P.REFERENCE_TIME)
    wait_ticks(ready, start)
    ready.set_property(P.TIME_FREEZE, 1)
    assert ready.get_property(P.TIME_FREEZE) == 1
    frozen = ready.get_property(P.REFERENCE_TIME)
    for _ in range(1000):
        assert ready.get_property(P.REFERENCE_TIME) == frozen
    ready.set_property(P.TIME_FREEZE, 0)
    assert ready.get_property(P.TIME_FREEZE) == 0
    assert wait_ticks(ready, frozen) > frozen


def test_reference_time_set_only_while_frozen(ready: Partition) -> None:
    """REFERENCE_TIME set while running: INVALID_PARTITION_STATE; while frozen the value reads
    back and time resumes from it on thaw."""
    fails_with("INVALID_PARTITION_STATE", ready.set_property, P.REFERENCE_TIME, 10**9)
    assert ready.get_property(P.REFERENCE_TIME) < 10**9
    ready.set_property(P.TIME_FREEZE, 1)
    ready.set_property(P.REFERENCE_TIME, 10**9)
    assert ready.get_property(P.REFERENCE_TIME) == 10**9
    ready.set_property(P.TIME_FREEZE, 0)
    resumed = wait_ticks(ready, 10**9)
    assert 10**9 < resumed < 10**9 + 10**8  # resumes from the set value, not from the host's


def test_time_freeze_twice_keeps_the_frozen_value(ready: Partition) -> None:
    ready.set_property(P.TIME_FREEZE, 1)
    frozen = ready.get_property(P.REFERENCE_TIME)
    ready.set_property(P.TIME_FREEZE, 1)
    assert ready.get_property(P.REFERENCE_TIME) == frozen
