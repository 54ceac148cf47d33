"""MSHV_GET/SET_VP_STATE (mshv_vp_ioctl_get_set_state, mshv_vp_ioctl_get_set_state_pfn)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    return compile_c(HERE / "run_client.c", tmp_path_factory.mktemp("vps"), ["-Wno-unused-parameter"])


def run_case(client: str, env: dict[str, str], *args: str) -> dict[str, str]:
    proc = subprocess.run([client, *args], env=env, capture_output=True, text=True, timeout=300)
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


def test_xsave_compacted_roundtrip(client, preload_env):
    """mshv_vp_ioctl_get_set_state, XSAVE (behaviour #9): compacted form with XCOMP_BV
    bit 63, buf_sz written back = MAX_XSAVE_DATA_SIZE ≤ 4096; XMM0 set by register is in
    the blob, XMM1 changed in the blob reads back by register."""
    out = run_case(client, preload_env, "vpstate", "0")
    assert out["xsave_get.errno"] == "0"
    assert 576 <= int(out["xsave_get.buf_sz"]) <= 4096
    assert out["xsave.xcomp_bit63"] == "1" and out["xsave.xcomp_sse"] == "1"
    assert out["xsave.xmm0_ok"] == "1"
    assert out["xsave_set.errno"] == "0"
    assert int(out["xsave_set.xmm1"], 0) == 0x5C5C5C5C5C5C5C5C


def test_lapic_roundtrip(client, preload_env):
    """LAPIC state on a LAPIC partition: buf_sz 4096, hv_local_interrupt_controller_state
    round trip through KVM_GET/SET_LAPIC."""
    out = run_case(client, preload_env, "vpstate", "1")
    assert out["lapic_get.errno"] == "0" and out["lapic_get.buf_sz"] == "4096"
    assert int(out["lapic.version"], 0) & 0xFF != 0
    assert out["lapic_set.errno"] == "0"
    assert int(out["lapic.lint0"], 0) == 0x700 and int(out["lapic.spurious"], 0) == 0x1FF


def test_lapic_without_lapic(client, preload_env):
    """LAPIC state on a partition created without MSHV_PT_BIT_LAPIC: the VP has no
    interrupt controller, INVALID_PARAMETER → EINVAL (after buf_sz was written back)."""
    out = run_case(client, preload_env, "vpstate", "0")
    assert out["lapic_get.errno"] == "EINVAL" and out["lapic_get.buf_sz"] == "4096"


def test_stored_states(client, preload_env):
    """SIMP round trip (4096); SYNTHETIC_TIMERS is 200 bytes and buf_sz reads 200."""
    out = run_case(client, preload_env, "vpstate", "0")
    assert out["simp.ret"] == "0" and out["simp.same"] == "1"
    assert out["timers_set.buf_sz"] == "200" and out["timers_get.buf_sz"] == "200"
    assert out["timers.same"] == "1" and out["timers.rest_zero"] == "1"


def test_checks(client, preload_env):
    """mshv_vp_ioctl_get_set_state steps 2-3 (behaviour #10): zero, unaligned or
    misaligned sizes/pointers and an unknown type are EINVAL without buf_sz write-back;
    a range outside user space is EFAULT (access_ok)."""
    out = run_case(client, preload_env, "vpstate", "0")
    assert out["sz0.errno"] == "EINVAL" and out["sz0.buf_sz"] == "0"
    assert out["sz100.errno"] == "EINVAL" and out["sz100.buf_sz"] == "100"
    assert out["misaligned.errno"] == "EINVAL" and out["misaligned.buf_sz"] == "4096"
    assert out["badtype.errno"] == "EINVAL"
    assert out["access_ok.errno"] == "EFAULT" and out["access_ok.buf_sz"] == "4096"
