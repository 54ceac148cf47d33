"""MSHV_ROOT_HVCALL passthrough rules (mshv_ioctl_passthru_hvcall, mshv_passthru_hvcall_allowed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import compile_c

HERE = Path(__file__).resolve().parent

HV_STATUS_INVALID_HYPERCALL_INPUT = 0x3
HV_STATUS_INVALID_PARTITION_STATE = 0x7
HV_STATUS_OPERATION_DENIED = 0x8
HV_STATUS_UNKNOWN_PROPERTY = 0x9
HV_STATUS_INVALID_VP_STATE = 0x15


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, preload_env) -> dict[str, str]:
    client = compile_c(HERE / "run_client.c", tmp_path_factory.mktemp("hvc"), ["-Wno-unused-parameter"])
    proc = subprocess.run(
        [client, "hvcall_checks"], env=preload_env, capture_output=True, text=True, timeout=300
    )
    assert "setup-failed" not in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.partition("=")[::2] for line in proc.stdout.splitlines())


def test_success_writes_back(out):
    """mshv_ioctl_passthru_hvcall: success returns 0 with status 0, reps 0 for a
    simple call, and the output (MAX_XSAVE_DATA_SIZE, at most 4096 for QEMU)."""
    assert out["ok.ret"] == "0" and out["ok.status"] == "0" and out["ok.reps"] == "0"
    assert 576 <= int(out["ok.value"]) <= 4096


@pytest.mark.parametrize(
    "key", ["status_set", "in_ptr0", "in_sz7", "rsvd", "in_sz4097", "out_sz0", "out_sz4097"]
)
def test_argument_checks(out, key):
    """mshv_ioctl_passthru_hvcall steps 2-3: status≠0, in_ptr 0, in_sz<8 or >4096, rsvd≠0,
    out_ptr with out_sz 0 or >4096 are EINVAL before any hypercall (nothing written back)."""
    assert out[f"{key}.errno"] == "EINVAL"
    assert out[f"{key}.reps"] == "0"


def test_status_not_written_on_check_failure(out):
    """mshv_ioctl_passthru_hvcall step 2: an argument rejected by the checks is not
    touched (the caller's nonzero status is left as it was)."""
    assert out["status_set.status"] == "0x1"


def test_out_sz_ignored_without_out_ptr(out):
    """mshv_ioctl_passthru_hvcall step 3: out_sz is ignored when out_ptr is 0."""
    assert out["no_out.errno"] == "0"
    assert out["no_out_big_sz.errno"] == "0"


def test_allow_lists(out):
    """mshv_passthru_hvcall_allowed: ReadGpa on a partition fd, GetVpState on a VP
    fd, GetVpRegisters on /dev/mshv are EINVAL; SetPartitionProperty (async) is EINVAL
    from a VP fd or /dev/mshv (mshv_hvcall_is_async) and works from the partition fd."""
    assert out["not_allowed.errno"] == "EINVAL"
    assert out["not_allowed_vp.errno"] == "EINVAL"
    assert out["dev_regs.errno"] == "EINVAL"
    assert out["set_from_vp.errno"] == "EINVAL"
    assert out["set_from_dev.errno"] == "EINVAL"
    assert out["set_from_pt.errno"] == "0"


def test_efault(out):
    """mshv_ioctl_passthru_hvcall: an unreadable argument or input is EFAULT with nothing
    written back; an unwritable output is EFAULT after status was written."""
    assert out["arg_efault.errno"] == "EFAULT"
    assert out["in_efault.errno"] == "EFAULT" and out["in_efault.status"] == "0"
    assert out["out_efault.errno"] == "EFAULT"


def test_failed_status_errno_and_untouched_output(out):
    """hv_result_to_errno and mshv_ioctl_passthru_hvcall: UNKNOWN_PROPERTY is EIO, status
    written back, the output buffer untouched."""
    assert out["unknown_prop.errno"] == "EIO"
    assert int(out["unknown_prop.status"], 0) == HV_STATUS_UNKNOWN_PROPERTY
    assert out["unknown_prop.out_untouched"] == "1"


def test_rep_count_on_simple_call(out):
    """A rep count on a simple hypercall: HV_STATUS_INVALID_HYPERCALL_INPUT (EINVAL)."""
    assert out["simple_with_reps.errno"] == "EINVAL"
    assert int(out["simple_with_reps.status"], 0) == HV_STATUS_INVALID_HYPERCALL_INPUT


def test_partition_properties(out):
    """SetPartitionProperty: GPA_PAGE_ACCESS_TRACKING = 1 reads back 1; an early property
    after INITIALIZE is refused by the hypervisor (INVALID_PARTITION_STATE → EIO)."""
    assert out["tracking.value"] == "1"
    assert out["early_after_init.errno"] == "EIO"
    assert int(out["early_after_init.status"], 0) == HV_STATUS_INVALID_PARTITION_STATE


def test_device_host_properties(out):
    """mshv_dev_ioctl ROOT_HVCALL (mshv_self_passthru_hvcalls): /dev/mshv reads the host's
    PROCESSOR_FEATURES0 (from KVM_GET_SUPPORTED_CPUID) before any partition exists."""
    assert out["dev_features0.errno"] == "0"
    assert int(out["dev_features0.value"], 0) != 0


def test_install_intercept(out):
    """HvCallInstallIntercept: IO ports succeed (always intercepted); CPUID cannot be
    delivered by KVM, so it is refused with OPERATION_DENIED (EIO)."""
    assert out["intercept_io.errno"] == "0"
    assert out["intercept_cpuid.errno"] == "EIO"
    assert int(out["intercept_cpuid.status"], 0) == HV_STATUS_OPERATION_DENIED


def test_synic_not_emulated(out):
    """HvCallSignalEventDirect: no SynIC is emulated, so the target's SynIC is never
    enabled: INVALID_VP_STATE (EIO), never a silent success."""
    assert out["signal_event.errno"] == "EIO"
    assert int(out["signal_event.status"], 0) == HV_STATUS_INVALID_VP_STATE
