"""A rust-vmm mshv-ioctls 0.7 VMM (Cloud Hypervisor's road) creates and sets up a partition.

tests/emulator/rustvmm_road.c makes the calls of ``Mshv::make_default_partition_create_arg``,
``make_default_synthetic_features_mask``, ``create_vm_with_args``, ``MshvVm::init`` and
Cloud Hypervisor's VM setup and boot in their order; each must succeed. Issue 11: the
emulator did not answer 0x101 ASSIGNABLE_SYNTHETIC_PROC_FEATURES, so such a VMM could not
create a partition.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent

STEPS = [
    "open",
    "host_features0",
    "host_features1",
    "assignable",
    "create_partition",
    "set_synthetic",
    "initialize",
    "set_msr_action",
    "freeze",
    "pt_xsave_features",
    "pt_features0",
    "pt_features1",
    "pt_synthetic",
    "msi_routing",
    "guest_memory",
    "create_vp",
    "per_socket",
    "get_clock",
    "set_clock",
    "get_clock_again",
    "thaw",
    "vmm_caps",
    "host_ipa_limit",
    "max_xsave",
    "clock_frequency",
    "msr_action",
]


@pytest.fixture(scope="module")
def road(tmp_path_factory: pytest.TempPathFactory, preload_env: dict[str, str]) -> dict[str, str]:
    client = compile_c(HERE / "rustvmm_road.c", tmp_path_factory.mktemp("rv"))
    proc = subprocess.run([client], env=preload_env, capture_output=True, text=True, timeout=120)
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


@pytest.mark.parametrize("step", STEPS)
def test_step_succeeds(road: dict[str, str], step: str) -> None:
    """Every call of the road returns 0 (an unwrap() or ? in the Rust code)."""
    assert road[f"{step}.errno"] == "0", f"{step}: status {road.get(f'{step}.status')}"
    assert int(road[f"{step}.ret"]) >= 0


def test_synthetic_mask_is_default_and_assignable(road: dict[str, str]) -> None:
    """make_default_synthetic_features_mask ANDs its default with bank 0 of 0x90009; the
    partition reads the mask back after initialize (get_msr_index_list)."""
    default = 0x0020_0040_0640_0FFB  # rust-vmm 0.7's default bits 0,1,3-11,22,25,26,38,53
    assignable = int(road["assignable.value"], 0)
    assert assignable != 0
    assert int(road["synthetic_mask"], 0) == default & assignable
    assert int(road["pt_synthetic.value"], 0) == default & assignable


def test_partition_features_are_the_host_minus_disabled(road: dict[str, str]) -> None:
    """The v2 disabled banks (~host, reserved bit 63, nested_virt) leave the host's set."""
    assert int(road["pt_features0.value"], 0) == int(road["host_features0.value"], 0)
    nested_virt = 1 << 6
    assert int(road["pt_features1.value"], 0) == int(road["host_features1.value"], 0) & ~nested_virt


def test_register_page_maps(road: dict[str, str]) -> None:
    assert road["register_page.ok"] == "1"


def test_clock_set_while_frozen_reads_back(road: dict[str, str]) -> None:
    """get_clock/set_clock (REFERENCE_TIME) on the frozen partition: the set value reads back."""
    assert int(road["get_clock_again.value"], 0) == int(road["clock_set_to"], 0)


def test_mshv_ioctls_hardware_test_values(road: dict[str, str]) -> None:
    """mshv-ioctls' tests: vmm caps one bank, host IPA limit nonzero, MAX_XSAVE_DATA_SIZE and
    the clock frequency read, UNIMPLEMENTED_MSR_ACTION reads 1 back, and PRIVILEGE_FLAGS set
    after initialize is HV_STATUS_INVALID_PARTITION_STATE (test_set_partition_property_invalid)."""
    assert road["vmm_caps.bank_count"] == "1"
    assert 32 <= int(road["host_ipa_limit.value"], 0) <= 52
    assert 576 <= int(road["max_xsave.value"], 0) <= 4096
    assert int(road["clock_frequency.value"], 0) > 0
    assert int(road["msr_action.value"], 0) == 1
    assert road["privilege_after_init.ret"] == "-1"
    assert int(road["privilege_after_init.status"], 0) == 0x7
