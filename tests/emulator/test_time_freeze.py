"""TIME_FREEZE on the emulator: the partition reference time stops while frozen and resumes
from the frozen value; KVM's guest TSC and LAPIC timer are set back by the time spent frozen
where this host's KVM lets them be (probed first: some hosts ignore host-initiated TSC writes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from guest import assemble, compile_c
from test_synthetic_regs import num, run_case

HERE = Path(__file__).resolve().parent

INVALID_PARTITION_STATE = 0x7
TICKS_PER_MS = 10_000  # the reference counter counts 100 ns


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "synthetic_client.c", tmp_path_factory.mktemp("freeze"))


@pytest.fixture(scope="module")
def freeze(client, preload_env) -> dict[str, str]:
    return run_case(client, preload_env, "freeze")


def test_reference_time_stops_while_frozen(freeze):
    """TIME_FREEZE = 1: REFERENCE_TIME and TIME_REF_COUNT hold still for the 200 ms frozen."""
    assert num(freeze, "frozen_property") == 1
    a, b = num(freeze, "frozen.property0"), num(freeze, "frozen.register0")
    c, d = num(freeze, "frozen.property1"), num(freeze, "frozen.register1")
    assert a == b == c == d > 0


def test_reference_time_resumes_from_frozen_value(freeze):
    """TIME_FREEZE = 0 resumes from the frozen value: 100 ms after the thaw the counter is
    about 100 ms past it, not 300 ms (the frozen 200 ms do not count)."""
    frozen = num(freeze, "frozen.register1")
    thawed = num(freeze, "thawed.register")
    assert 90 * TICKS_PER_MS <= thawed - frozen < 200 * TICKS_PER_MS
    assert num(freeze, "thawed.property") >= thawed


def test_reference_time_set_only_while_frozen(freeze):
    """REFERENCE_TIME set: INVALID_PARTITION_STATE while time runs; while frozen it sets the
    counter, which resumes from there at thaw."""
    assert num(freeze, "set_running.status") == INVALID_PARTITION_STATE
    assert num(freeze, "set_frozen.status") == 0
    assert num(freeze, "set_frozen.register") == 123456789
    assert 123456789 < num(freeze, "set_thawed.register") < 123456789 + 200 * TICKS_PER_MS


@pytest.fixture(scope="module")
def host_tsc(client) -> dict[str, str]:
    """The host KVM itself, without the emulator: do TSC offset / MSR writes take effect?"""
    return run_case(client, dict(os.environ), "host_tsc_offset")


TSC_GUEST = "rdtsc\n out %al, $0x10\n rdtsc\n out %al, $0x11\n hlt\n"


def test_guest_tsc_across_freeze(client, preload_env, tmp_path, host_tsc):
    """A real-mode guest reads the TSC before and after a 300 ms freeze: the TSC is set back
    by the time frozen, so the two reads are far less than 300 ms apart."""
    image = tmp_path / "tsc.bin"
    image.write_bytes(assemble(TSC_GUEST, tmp_path, 16))
    out = run_case(client, preload_env, "freeze_tsc", str(image))
    delta, per_ms = num(out, "tsc.delta"), num(out, "tsc.per_ms")
    assert per_ms > 0
    if host_tsc["offset.took"] != "1" and host_tsc["msr.took"] != "1":
        pytest.xfail(
            "host KVM ignores host-initiated TSC changes (KVM_VCPU_TSC_OFFSET and KVM_SET_MSRS "
            f"MSR_IA32_TSC both accepted without effect: {host_tsc}); the guest TSC ran on "
            f"through the freeze ({delta} ticks)"
        )
    assert delta < 150 * per_ms, (delta, per_ms)


def test_lapic_timer_across_freeze(client, preload_env):
    """A counting LAPIC timer (masked, one-shot, divide by 1) keeps its current count across a
    300 ms freeze: KVM_SET_LAPIC restarts it from the count taken at freeze. Probed first:
    does this KVM take a current count written with KVM_SET_LAPIC at all?"""
    out = run_case(client, preload_env, "freeze_lapic")
    before, after = num(out, "lapic.before"), num(out, "lapic.after")
    written, read = num(out, "probe.written"), num(out, "probe.read")
    assert before > 0
    if not (written - 50_000_000 <= read <= written):
        pytest.xfail(
            f"host KVM does not restart the LAPIC timer from a written current count "
            f"(KVM_SET_LAPIC TMCCT {written:#x} read back {read:#x})"
        )
    # 300 ms at the 1 GHz APIC bus would be 3e8 counts; allow 100 ms of slack
    assert 0 <= before - after < 100_000_000, (before, after)
