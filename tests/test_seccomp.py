"""mshv.seccomp: the ioctl filter, installed for real in child processes on the emulator.

A seccomp filter cannot be removed, so every test that loads one does it in a
fresh interpreter (``_run_child``), which reports what its ioctls answered as
JSON. The same child first probes without a filter, so each refusal is shown
to come from the filter and not from the device.
"""

from __future__ import annotations

import errno
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mshv import abi, seccomp
from mshv.__main__ import main
from mshv._abi import lib

ROOT = Path(__file__).resolve().parent.parent

# Runs in the child. argv[1] is JSON: {"install": {profile options} | None, "oci": bool,
# "drop": [names to remove from the allowed list], "demo": bool, "guest": bool, "thread": bool}.
CHILD = r"""
import ctypes, dataclasses, errno, fcntl, json, os, sys, termios, threading
import pyseccomp
from mshv import seccomp
from mshv._abi import lib

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
SYS_ioctl = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "ioctl")
null = os.open("/dev/null", os.O_RDONLY)
pipe_r, pipe_w = os.pipe()


def raw_ioctl(fd, request):
    # the raw system call, so the upper 32 bits of the request reach the filter as given
    buf = ctypes.create_string_buffer(64)
    ret = libc.syscall(ctypes.c_long(SYS_ioctl), ctypes.c_long(fd), ctypes.c_ulong(request), buf)
    return "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]


def probe():
    return {
        "collision": raw_ioctl(null, lib.DPI_MPS_MRRS_CFG),
        "collision_high_bits": raw_ioctl(null, lib.DPI_MPS_MRRS_CFG | 1 << 32),
        "vtl_collision": raw_ioctl(null, lib.MSHV_CREATE_VTL),
        "unlisted": raw_ioctl(pipe_r, termios.FIONREAD),
        "process": raw_ioctl(null, termios.FIOCLEX),
    }


def options(raw):
    out = dict(raw)
    for key in ("collision", "unlisted_ioctl", "other_syscalls"):
        if key in out:
            out[key] = seccomp.Action.parse(out[key])
    return out


def load_oci(doc):
    # what runc does with linux.seccomp: the default action, then one rule per name and entry
    def act(entry, action_key, errno_key):
        name = entry[action_key]
        if name == "SCMP_ACT_ERRNO":
            return pyseccomp.ERRNO(entry[errno_key])
        return getattr(pyseccomp, name.removeprefix("SCMP_ACT_"))
    flt = pyseccomp.SyscallFilter(act(doc, "defaultAction", "defaultErrnoRet"))
    ops = {"SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ, "SCMP_CMP_EQ": pyseccomp.EQ}
    for entry in doc["syscalls"]:
        conds = [pyseccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))
                 for a in entry.get("args", [])]
        for name in entry["names"]:
            flt.add_rule(act(entry, "action", "errnoRet"), name, *conds)
    flt.load()


report = {"before": probe()}
thread_report = {}
if cfg.get("thread"):
    go = threading.Event()
    def worker():
        go.wait()
        thread_report.update(probe())
    t = threading.Thread(target=worker)
    t.start()
if cfg.get("install") is not None:
    chosen = seccomp.profile(**options(cfg["install"]))
    drop = set(cfg.get("drop", []))
    chosen = dataclasses.replace(chosen, allowed=tuple(r for r in chosen.allowed if r.name not in drop))
    if cfg.get("oci"):
        load_oci(chosen.oci())
    else:
        chosen.install(all_threads=cfg.get("all_threads", True))
if cfg.get("thread"):
    go.set()
    t.join()
    report["thread"] = thread_report
report["after"] = probe()
if cfg.get("demo"):
    from mshv.demo import run_demo
    run_demo(loops=200)
if cfg.get("guest"):
    from mshv import HaltIntercept, MshvError
    from mshv.testing import assemble, partition_with_one_vp
    try:
        with partition_with_one_vp(assemble("mov $0x42, %al; hlt"), lapic=False) as (pt, vp, mem):
            exit_ = vp.run()
            report["guest"] = {"halted": isinstance(exit_, HaltIntercept), "rax": vp.regs.rax}
    except MshvError as exc:
        report["guest"] = {"errno": errno.errorcode[exc.errno], "op": exc.op}
print("REPORT " + json.dumps(report))
"""


def _run_child(tmp_path: Path, **cfg: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        cwd=tmp_path,  # not the checkout: import the installed package
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    return proc, json.loads(lines[0].removeprefix("REPORT ")) if lines else None


_UNFILTERED = {
    "collision": "ENOTTY",
    "collision_high_bits": "ENOTTY",
    "vtl_collision": "ENOTTY",
    "unlisted": "ok",
    "process": "ok",
}


# ---- what the profile lists ------------------------------------------------------------------


def test_mshv_requests_are_every_root_ioctl_of_the_abi() -> None:
    chosen = seccomp.profile(kvm=False)
    mshv = {r.name: r.number for r in chosen.allowed if r.group == "mshv"}
    assert mshv == {name: getattr(lib, name) for name in abi.ROOT_IOCTLS}
    assert chosen.count("mshv") == len(abi.ROOT_IOCTLS) == 12 and chosen.count("kvm") == 0


def _kvm_request_macros() -> set[str]:
    """The names <linux/kvm.h> defines as ioctl requests (_IO*(KVMIO, ...)), from the preprocessor."""
    out = subprocess.run(
        ["gcc", "-E", "-dM", "-x", "c", "-"], input="#include <linux/kvm.h>\n", capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"^#define (KVM_\w+) _IO(?:R|W|WR)?\(KVMIO\b", out.stdout, re.M))


def test_kvm_requests_are_the_ones_the_emulator_sources_issue() -> None:
    requests = _kvm_request_macros()
    named: set[str] = set()
    for path in (ROOT / "emulator").glob("*.[ch]"):
        code = re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)
        named |= set(re.findall(r"\bKVM_\w+\b", code)) & requests
    listed = {r.name for r in seccomp.kvm_requests()}
    missing, unused = sorted(named - listed), sorted(listed - named)
    assert listed == named, f"ioctl_defs/kvm_requests.py misses {missing} and lists unused {unused}"
    assert {"KVM_RUN", "KVM_CREATE_VM", "KVM_SET_USER_MEMORY_REGION"} <= named


def test_collisions_are_refused_and_never_allowed() -> None:
    chosen = seccomp.profile(kvm=True)
    assert {r.number for r in chosen.refused} == {i.number for i in abi.never_send()}
    assert chosen.count("collision") == 14  # 15 names, MSHV_SET_POLL_FILE == MSHV_SINT_PAUSE_MESSAGE_STREAM
    assert not {r.number for r in chosen.allowed} & {r.number for r in chosen.refused}
    assert chosen.count("kvm") == len(seccomp.kvm_requests()) and chosen.count("process") == 5


def test_a_profile_that_allows_a_colliding_request_is_refused() -> None:
    chosen = seccomp.profile(kvm=False)
    dpi = next(r for r in chosen.refused if r.name == "DPI_ENGINE_CFG")
    with pytest.raises(ValueError, match="both allowed and refused"):
        seccomp.Profile(
            chosen.allowed + (dpi,), chosen.refused, chosen.collision, chosen.unlisted_ioctl, seccomp.ALLOW
        )
    with pytest.raises(ValueError, match="collision action must refuse"):
        seccomp.profile(kvm=False, collision=seccomp.ALLOW)


def test_action_parse() -> None:
    assert seccomp.Action.parse("EPERM") == seccomp.Action.fail(errno.EPERM)
    assert seccomp.Action.parse("errno:enotty") == seccomp.Action.fail(errno.ENOTTY)
    assert seccomp.Action.parse("25") == seccomp.Action.fail(25)
    assert seccomp.Action.parse("kill") == seccomp.Action("kill_process")
    assert seccomp.Action.parse("kill-thread") == seccomp.Action("kill_thread")
    assert str(seccomp.Action.parse("log")) == "log" and str(seccomp.DEFAULT_COLLISION) == "errno:EPERM"
    with pytest.raises(ValueError, match="unknown seccomp action"):
        seccomp.Action.parse("deny")
    with pytest.raises(ValueError):
        seccomp.Action("errno", 0)


# ---- the OCI document ------------------------------------------------------------------------


def test_oci_document_has_one_masked_rule_per_request() -> None:
    chosen = seccomp.profile(kvm=True)
    doc = chosen.oci()
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == errno.ENOTTY
    assert doc["architectures"] == ["SCMP_ARCH_X86_64"]
    others, *ioctls = doc["syscalls"]
    assert (
        others["action"] == "SCMP_ACT_ALLOW" and "ioctl" not in others["names"] and "read" in others["names"]
    )
    allowed = {e["args"][0]["valueTwo"] for e in ioctls if e["action"] == "SCMP_ACT_ALLOW"}
    refused = {e["args"][0]["valueTwo"] for e in ioctls if e["action"] == "SCMP_ACT_ERRNO"}
    assert allowed == {r.number for r in chosen.allowed}
    assert len(allowed) == chosen.count("mshv") + chosen.count("kvm") + chosen.count("process")
    assert refused == {r.number for r in chosen.refused}
    assert all(e["errnoRet"] == errno.EPERM for e in ioctls if e["action"] == "SCMP_ACT_ERRNO")
    for entry in ioctls:
        assert entry["names"] == ["ioctl"]
        assert entry["args"] == [
            {
                "index": 1,
                "value": seccomp.REQUEST_MASK,
                "valueTwo": entry["args"][0]["valueTwo"],
                "op": "SCMP_CMP_MASKED_EQ",
            }
        ]


def test_cli_prints_the_profile_and_its_oci_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seccomp", "--backend", "emulator", "--oci", "--collision", "kill"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == seccomp.profile(kvm=True, collision=seccomp.Action("kill_process")).oci()
    assert main(["seccomp", "--backend", "kernel"]) == 0
    text = capsys.readouterr().out
    assert "ioctl requests allowed: 17 (mshv 12, kvm 0, process 5)" in text
    assert re.search(r"refuse\s+0x4008b801\s+DPI_MPS_MRRS_CFG", text)
    with pytest.raises(SystemExit):
        main(["seccomp", "--unlisted-ioctl", "allow-all"])


def test_bpf_is_built_by_libseccomp(tmp_path: Path) -> None:
    out = tmp_path / "filter.bpf"
    assert main(["seccomp", "--backend", "emulator", "--bpf", str(out)]) == 0
    program = out.read_bytes()
    assert program == seccomp.profile(kvm=True).bpf()
    # a call through the 32-bit ABI (int $0x80) gets the refusal, not libseccomp's default kill
    assert f"# invalid architecture action\naction ERRNO({errno.ENOTTY});" in seccomp.profile(kvm=True).pfc()
    assert len(program) % 8 == 0 and len(program) > 8 * 53  # struct sock_filter: 8 bytes; 53 ioctl rules


# ---- installed, in child processes -----------------------------------------------------------


def test_demo_runs_under_the_filter_and_collisions_are_refused(tmp_path: Path) -> None:
    proc, report = _run_child(tmp_path, install={}, demo=True)
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    assert report["before"] == _UNFILTERED
    assert report["after"] == {
        "collision": "EPERM",
        "collision_high_bits": "EPERM",  # compared on the low 32 bits, as the kernel reads it
        "vtl_collision": "EPERM",
        "unlisted": "ENOTTY",  # FIONREAD works on a pipe, but the binding never sends it
        "process": "ok",
    }
    assert "console: hello from a long-mode guest" in proc.stdout
    assert "read back [2, 4, 6, 8, 10]" in proc.stdout


def test_collision_action_kill_ends_the_process(tmp_path: Path) -> None:
    proc, report = _run_child(tmp_path, install={"collision": "kill"})
    assert proc.returncode == -signal.SIGSYS, proc.stdout + proc.stderr
    assert report is None


def test_the_emulators_kvm_ioctls_go_through_the_filter(tmp_path: Path) -> None:
    proc, report = _run_child(tmp_path, install={"unlisted_ioctl": "ENOANO"}, guest=True)
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    assert report["guest"] == {"halted": True, "rax": 0x42}
    proc, report = _run_child(tmp_path, install={"unlisted_ioctl": "ENOANO"}, drop=["KVM_RUN"], guest=True)
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    assert report["guest"] == {"errno": "ENOANO", "op": "MSHV_RUN_VP"}


def test_oci_document_loaded_as_runc_does_runs_the_demo(tmp_path: Path) -> None:
    proc, report = _run_child(tmp_path, install={"collision": "EACCES"}, oci=True, demo=True)
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    assert report["before"] == _UNFILTERED
    assert report["after"]["collision"] == "EACCES" and report["after"]["unlisted"] == "ENOTTY"
    assert "console: hello from a long-mode guest" in proc.stdout


@pytest.mark.parametrize("all_threads", [True, False])
def test_all_threads_covers_a_thread_started_before(tmp_path: Path, all_threads: bool) -> None:
    proc, report = _run_child(tmp_path, install={}, all_threads=all_threads, thread=True)
    assert proc.returncode == 0 and report is not None, proc.stdout + proc.stderr
    assert report["after"]["collision"] == "EPERM"
    assert report["thread"]["collision"] == ("EPERM" if all_threads else "ENOTTY")
