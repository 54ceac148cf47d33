"""Synthetic registers on the emulator: the synthetic MSRs, SynIC, synthetic timers and event
registers through HvCallGet/SetVpRegisters, MSHV_GET/SET_VP_STATE and the guest's RDMSR/WRMSR.

The values, scopes, reset values, read-only rules and gates are the TLFS's (hypervisor
"Partition Properties", "Virtual Processor Properties", "Timers", "Inter-Partition
Communication"); the hypervisor's status for a refused register is not documented, and the
emulator answers HV_STATUS_INVALID_PARAMETER (what the TLFS gives for an invalid register name).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import assemble, compile_c

HERE = Path(__file__).resolve().parent

INVALID_PARAMETER = 0x5
FEATURES_ALL = 0x6400FFF  # QEMU 11.1.3's SYNTHETIC_PROC_FEATURES plus VP_RUNTIME (bit 2)

# register codes (hvgdk_mini.h) the guest test sets by hypercall before the guest runs
SINT1 = 0xA0001
GUEST_OS_ID = 0x90002


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "synthetic_client.c", tmp_path_factory.mktemp("synthetic"))


def run_case(client: str, env: dict[str, str], *args: str) -> dict[str, str]:
    proc = subprocess.run([client, *args], env=env, capture_output=True, text=True, timeout=300)
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


def num(out: dict[str, str], key: str) -> int:
    assert key in out, f"{key} missing: {out}"
    return int(out[key], 0)


@pytest.fixture(scope="module")
def regs(client, preload_env) -> dict[str, str]:
    return run_case(client, preload_env, "regs")


RESET = {
    "hypercall": 0,
    "guest_os_id": 0,
    "reference_tsc": 0,
    "vp_runtime": 0,
    "vp_assist_page": 0,
    "scontrol": 0,
    "sversion": 1,
    "siefp": 0,
    "simp": 0,
    "eom": 0,
    "sint0": 0x10000,
    "sint15": 0x10000,
    "stimer0_config": 0,
    "stimer3_count": 0,
    "pending_event0": 0,
    "pending_event1": 0,
    "deliverability": 0,
    "activity": 0,
    "hints": 0,
}


@pytest.mark.parametrize("vp", [0, 1])
@pytest.mark.parametrize("name", sorted(RESET))
def test_reset_values(regs, vp, name):
    """A new VP reads the TLFS reset values: SINTx masked (0x10000), SVERSION 1, the rest 0;
    on a LAPIC partition a VP other than 0 waits for its SIPI (INTERNAL_ACTIVITY_STATE
    startup_suspend), as CH and QEMU rely on when they boot SMP guests."""
    wanted = 1 if (vp, name) == (1, "activity") else RESET[name]
    assert num(regs, f"reset{vp}.{name}.get") == 0
    assert num(regs, f"reset{vp}.{name}.value") == wanted


def test_vp_index_and_time(regs):
    """VP_INDEX is the VP's index; TIME_REF_COUNT counts 100 ns from partition creation and
    agrees with the REFERENCE_TIME property."""
    assert num(regs, "reset0.vp_index.value") == 0 and num(regs, "reset1.vp_index.value") == 1
    t0, t1, prop, t2 = (num(regs, f"time.{k}") for k in ("t0", "t1", "property", "t2"))
    assert 0 < t0 < t1 <= prop <= t2
    assert 400_000 <= t1 - t0 < 50_000_000  # slept 50 ms: at least 40 ms in 100 ns units


ROUND_TRIP = {
    "guest_os_id": 0x8100000000000001,
    "hypercall": 0x7001,
    "reference_tsc": 0x8001,
    "vp_assist_page": 0x9001,
    "scontrol": 1,
    "siefp": 0xA001,
    "simp": 0xB001,
    "sint2": 0x20051,
    "sint3_low_vector_masked": 0x10005,
    "stimer0_config": 0x2000B,
    "stimer0_count": 10_000_000,
    "stimer3_count": 12345,
    "deliverability_sints": 0x0004000000000000,
    "deliverability_zero": 0,
    "pending_event0_zero": 0,
    "hints_zero": 0,
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip(regs, name):
    """SetVpRegisters then GetVpRegisters gives the value back (no side effects on a set)."""
    assert num(regs, f"rt.{name}.set") == 0
    assert num(regs, f"rt.{name}.get") == 0
    assert num(regs, f"rt.{name}.value") == ROUND_TRIP[name]


def test_eom_write_reads_zero(regs):
    """EOM accepts a write (rust-vmm's hardware test gets and sets it) and reads 0."""
    assert num(regs, "rt.eom.set") == 0 and num(regs, "rt.eom.value") == 0


def test_scope(regs):
    """GUEST_OS_ID, HYPERCALL and REFERENCE_TSC are partition-wide (VP 1 sees VP 0's writes);
    SINTx, SIMP and the synthetic timers are per VP."""
    assert num(regs, "vp1.hypercall.value") == 0x7001
    assert num(regs, "vp1.guest_os_id.value") == 0x8100000000000001
    assert num(regs, "vp1.reference_tsc.value") == 0x8001
    assert num(regs, "vp1.sint2.value") == 0x10000
    assert num(regs, "vp1.simp.value") == 0
    assert num(regs, "vp1.stimer0_config.value") == 0


@pytest.mark.parametrize("name", ["vp_index", "time_ref_count", "vp_runtime", "sversion"])
def test_read_only(regs, name):
    """HvCallSetVpRegisters cannot modify a read-only register: INVALID_PARAMETER (EINVAL)."""
    assert num(regs, f"ro.{name}.set") == INVALID_PARAMETER
    assert regs[f"ro.{name}.set_errno"] == "EINVAL"


def test_refused_values(regs):
    """Reserved SINT bits, NMI deliverability notification on a LAPIC partition's VP 0
    (rust-vmm's hardware test: 0x5), and emulation hints this partition cannot have are
    refused; a refused write changes nothing."""
    assert num(regs, "bad.sint_reserved.set") == INVALID_PARAMETER
    assert num(regs, "bad.deliverability_nmi.set") == INVALID_PARAMETER
    assert num(regs, "bad.hints.set") == INVALID_PARAMETER
    assert num(regs, "after_bad.sint4.value") == 0x10000


def test_set_has_no_guest_side_effects(regs):
    """HvCallSetVpRegisters performs no side effects: zeroing GUEST_OS_ID by hypercall leaves
    HYPERCALL's enable bit (a guest WRMSR of 0 would clear it, test_guest_msr_rules)."""
    assert num(regs, "no_side_effect.hypercall.value") == 0x7001


def test_timers_one_store_with_vp_state(regs):
    """STIMERn_CONFIG/COUNT are the config/count of MSHV_GET/SET_VP_STATE SYNTHETIC_TIMERS."""
    assert num(regs, "state.timer0_config") == 0x2000B
    assert num(regs, "state.timer0_count") == 10_000_000
    assert num(regs, "state.stimer1_config.value") == 0x3000B
    assert num(regs, "state.stimer1_count.value") == 777


def test_simp_page_overlay(regs):
    """With SIMP enabled at a GPA, the VP state SIMP page is the guest page there (both ways);
    disabled, the page keeps its contents outside guest memory."""
    assert num(regs, "simp.guest_byte") == 0x5A
    assert num(regs, "simp.state_byte7") == 0x77 and num(regs, "simp.state_byte100") == 0x5A
    assert num(regs, "simp_off.state_byte7") == 0x77


def test_pending_event(regs):
    """PENDING_EVENT0 with an exception event (#GP, error code 0x18) reads back and is what
    the VP will take: PENDING_INTERRUPTION shows the same exception. Event types the emulator
    cannot deliver (memory intercept) are refused."""
    assert num(regs, "event.set") == 0
    low = 1 | 1 << 8 | 13 << 16 | 0x18 << 32
    assert num(regs, "event.value") == low
    interruption = num(regs, "event.interruption.value")
    assert interruption & 1 and (interruption >> 1) & 7 == 3  # pending, exception
    assert (interruption >> 16) & 0xFFFF == 13 and interruption >> 32 == 0x18
    assert num(regs, "event_memory_intercept.set") == INVALID_PARAMETER


def test_intermediate_crs_alias_the_crs(regs):
    """Without a nested hypervisor INTERMEDIATE_CR0/3/4/8 are CR0/3/4/8 (rust-vmm >= 0.6.6
    writes the guest's CRs through them)."""
    assert num(regs, "icr.cr3.value") == 0x5000
    assert num(regs, "icr.intermediate_cr4.value") == 0x20
    assert num(regs, "icr.intermediate_cr0.value") == num(regs, "icr.cr0.value")
    assert num(regs, "icr.cr8.value") == 3


@pytest.mark.parametrize(
    "name",
    sorted(set(RESET) - {"pending_event0", "pending_event1", "deliverability", "activity", "hints"})
    + ["vp_index", "time_ref_count"],
)
def test_gated_by_synthetic_proc_features(regs, name):
    """A synthetic register whose SYNTHETIC_PROC_FEATURES bit is clear does not exist for the
    partition: Get/SetVpRegisters fail with INVALID_PARAMETER."""
    assert num(regs, f"bare.{name}.get") == INVALID_PARAMETER


def test_gate_bits_are_separate(regs):
    """Bit 4 (access_synic_regs) grants the SynIC registers only: not the synthetic timers
    (bit 5) nor GUEST_OS_ID (bit 7); the event registers need no bit."""
    assert num(regs, "synic_only.sint0.get") == 0
    assert num(regs, "synic_only.stimer0_config.get") == INVALID_PARAMETER
    assert num(regs, "synic_only.guest_os_id.get") == INVALID_PARAMETER
    assert num(regs, "bare.set_hypercall.set") == INVALID_PARAMETER
    assert num(regs, "bare.set_sint0.set") == INVALID_PARAMETER
    assert num(regs, "bare.pending_event0.get") == 0


# ---- the guest's view ---------------------------------------------------------------------

GP_HANDLER = {
    # 64-bit: drop the error code, step over the 2-byte RDMSR/WRMSR, flag it, IRETQ
    64: "add $8, %rsp\n addq $2, (%rsp)\n mov $1, %edi\n iretq\n",
    # 32-bit: no IRET on this KVM outside real mode: unwind the frame and jump back
    32: "add $4, %esp\n pop %ebx\n add $2, %ebx\n add $4, %esp\n popf\n mov $1, %edi\n jmp *%ebx\n",
}


def guest_source(ops: list[tuple[str, int, int]], mode: int) -> str:
    """RDMSR/WRMSR in order; after each, OUT to 0xE0 reports EAX, EDX and EDI (1 = #GP)."""
    lines = ["start:"]
    for op, msr, value in ops:
        lines += ["xor %edi, %edi", f"mov ${msr:#x}, %ecx"]
        if op == "wr":
            lines += [f"mov ${value & 0xFFFFFFFF:#x}, %eax", f"mov ${value >> 32:#x}, %edx", "wrmsr"]
        else:
            lines += ["xor %eax, %eax", "xor %edx, %edx", "rdmsr"]
        lines.append("out %al, $0xe0")
    lines += ["hlt", ".org 0x800", GP_HANDLER[mode]]
    return "\n".join(lines)


# (op, msr, value written); what each access must give follows in EXPECT
GUEST_OPS = [
    ("rd", 0x40000081, 0),  # 0 SVERSION = 1
    ("wr", 0x40000081, 5),  # 1 SVERSION is read-only: #GP
    ("rd", 0x40000002, 0),  # 2 VP_INDEX = 0
    ("wr", 0x40000001, 0x5001),  # 3 HYPERCALL enable while GUEST_OS_ID is 0 ...
    ("rd", 0x40000001, 0),  # 4 ... keeps enable 0
    ("wr", 0x40000000, 0x1234),  # 5 GUEST_OS_ID
    ("wr", 0x40000001, 0x5001),  # 6 HYPERCALL enable now sticks
    ("rd", 0x40000001, 0),  # 7
    ("rd", 0x40000091, 0),  # 8 SINT1: what the VMM set by hypercall
    ("wr", 0x40000092, 0x05),  # 9 SINT2 vector 5, unmasked: #GP
    ("wr", 0x40000092, 0x10005),  # 10 masked with vector 5: fine
    ("wr", 0x40000090, 0x31),  # 11 SINT0 vector 0x31, unmasked
    ("wr", 0x40000080, 1),  # 12 SCONTROL enable
    ("wr", 0x40000083, 0x7001),  # 13 SIMP at 0x7000
    ("wr", 0x400000B0, 0x9),  # 14 STIMER0 enable + auto_enable, no SINT: stays disabled
    ("wr", 0x400000B2, 0x2000B),  # 15 STIMER1 enable, periodic, SINT 2
    ("wr", 0x400000B1, 1000),  # 16 STIMER0_COUNT != 0 with auto_enable: enabled
    ("wr", 0x40000020, 7),  # 17 TIME_REF_COUNT is read-only: #GP
    ("rd", 0x40000020, 0),  # 18 TIME_REF_COUNT
    ("wr", 0x40000021, 0x9001),  # 19 REFERENCE_TSC enable at 0x9000
    ("wr", 0x40000073, 0xA001),  # 20 VP_ASSIST_PAGE
    ("rd", 0x40000200, 0),  # 21 an MSR nobody implements: UNIMPLEMENTED_MSR_ACTION
    ("wr", 0x40000200, 1),  # 22 the same, written
    ("wr", 0x40000000, 0),  # 23 GUEST_OS_ID 0: the hypercall page goes off
    ("rd", 0x40000001, 0),  # 24
    ("rd", 0x40000022, 0),  # 25 TSC frequency (Hz), access_frequency_regs
]


def guest_image(tmp_path: Path, mode: int) -> str:
    image = tmp_path / f"msr{mode}.bin"
    image.write_bytes(assemble(guest_source(GUEST_OPS, mode), tmp_path, mode, base=0x10000))
    return str(image)


@pytest.mark.parametrize("mode", [64, 32])
@pytest.mark.parametrize("action", [0, 1])
def test_guest_msr_rules(client, preload_env, tmp_path, mode, action):
    """Real guest code (64-bit long mode and 32-bit protected mode, #GP through the IDT) reads
    and writes the synthetic MSRs with the TLFS rules, and the VMM's GetVpRegisters then shows
    what the guest left; an MSR nobody implements follows UNIMPLEMENTED_MSR_ACTION (0: #GP,
    1: reads 0, writes ignored)."""
    out = run_case(
        client,
        preload_env,
        "guest_msr",
        guest_image(tmp_path, mode),
        str(mode),
        hex(FEATURES_ALL),
        str(action),
        "0",
        f"{SINT1:#x}=0x10042",
    )
    assert num(out, "end.type") == 0x80010007 or num(out, "end.type") > 0, out  # the final HLT
    assert num(out, "ops") == len(GUEST_OPS), out

    def op(i: int) -> tuple[int, int, int]:
        return num(out, f"op{i}.eax"), num(out, f"op{i}.edx"), num(out, f"op{i}.fault")

    assert op(0) == (1, 0, 0)
    assert op(1)[2] == 1
    assert op(2) == (0, 0, 0)
    assert op(4)[:2] == (0x5000, 0) and op(3)[2] == 0
    assert op(7)[:2] == (0x5001, 0)
    assert op(8) == (0x10042, 0, 0)
    assert op(9)[2] == 1 and op(10)[2] == 0 and op(11)[2] == 0
    assert op(17)[2] == 1
    assert op(18)[2] == 0 and op(18)[0] | op(18)[1] << 32 > 0
    unimplemented = op(21)
    if action == 0:
        assert unimplemented[2] == 1 and op(22)[2] == 1
    else:
        assert unimplemented == (0, 0, 0) and op(22)[2] == 0
    assert op(24)[:2] == (0x5000, 0)  # GUEST_OS_ID 0 disabled the hypercall page
    assert op(25)[2] == 0 and op(25)[0] | op(25)[1] << 32 > 1_000_000
    # the VMM's view is what the guest wrote
    assert num(out, "after.guest_os_id.value") == 0
    assert num(out, "after.hypercall.value") == 0x5000
    assert num(out, "after.sint1.value") == 0x10042
    assert num(out, "after.sint0.value") == 0x31
    assert num(out, "after.scontrol.value") == 1
    assert num(out, "after.simp.value") == 0x7001
    assert num(out, "after.stimer0_config.value") == 0x9  # enabled by the COUNT write
    assert num(out, "after.stimer0_count.value") == 1000
    assert num(out, "after.stimer1_config.value") == 0x2000B
    assert num(out, "after.reference_tsc.value") == 0x9001
    assert num(out, "after.reftsc_page_sequence") == 0  # sequence 0: use TIME_REF_COUNT
    assert num(out, "after.vp_assist_page.value") == 0xA001


def test_guest_msr_gated_and_intercepted(client, preload_env, tmp_path):
    """With no SYNTHETIC_PROC_FEATURES the synthetic MSRs are not there for the guest: with an
    MSR intercept installed every access becomes an HVMSG_X64_MSR_INTERCEPT for the VMM."""
    ops = [("rd", 0x40000081, 0), ("wr", 0x40000000, 0x1234)]
    image = tmp_path / "gated.bin"
    image.write_bytes(assemble(guest_source(ops, 64), tmp_path, 64, base=0x10000))
    out = run_case(client, preload_env, "guest_msr", str(image), "64", "0", "0", "1")
    assert num(out, "intercept0.msr") == 0x40000081 and num(out, "intercept0.access") == 0
    assert num(out, "op0.eax") == 0xABC and num(out, "op0.fault") == 0
    assert num(out, "intercept1.msr") == 0x40000000 and num(out, "intercept1.access") == 1
    assert num(out, "after.guest_os_id.get") == INVALID_PARAMETER


def test_guest_msr_gated_faults(client, preload_env, tmp_path):
    """No SYNTHETIC_PROC_FEATURES, no intercept, UNIMPLEMENTED_MSR_ACTION 0: #GP."""
    ops = [("rd", 0x40000081, 0)]
    image = tmp_path / "gated_gp.bin"
    image.write_bytes(assemble(guest_source(ops, 64), tmp_path, 64, base=0x10000))
    out = run_case(client, preload_env, "guest_msr", str(image), "64", "0", "0", "0")
    assert num(out, "op0.fault") == 1


@pytest.mark.parametrize("vp", [0, 1])
def test_qemu_boot_puts(client, preload_env, vp):
    """QEMU 11.1.3 -accel mshv's boot-time puts with its SYNTHETIC_PROC_FEATURES (0x6400ffb):
    the MSR batch (HYPERCALL, GUEST_OS_ID, REFERENCE_TSC on vCPU 0 only; SCONTROL, SIEFP, SIMP;
    the MTRRs) and the event batch ending in PENDING_EVENT0 complete every element both ways
    (QEMU errors out on reps short of the count)."""
    out = run_case(client, preload_env, "qemu_puts")
    count = num(out, f"vp{vp}.msrs.count")
    assert count == (46 if vp == 0 else 43)
    assert num(out, f"vp{vp}.msrs.set") == 0 and num(out, f"vp{vp}.msrs.set_reps") == count
    assert num(out, f"vp{vp}.msrs.get") == 0 and num(out, f"vp{vp}.msrs.get_reps") == count
    assert num(out, f"vp{vp}.events.set") == 0 and num(out, f"vp{vp}.events.set_reps") == 3
    assert num(out, f"vp{vp}.events.get") == 0 and num(out, f"vp{vp}.events.get_reps") == 3
