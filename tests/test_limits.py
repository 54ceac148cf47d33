"""mshv/limits.py: what the backend cannot do is probed, listed by ``mshv info``, and named in
an UnrecoverableException the host's KVM caused. Each probe's verdict is checked against a guest
written here independently (GNU as, not the probe's hand-encoded bytes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mshv import GuestMemory, HaltIntercept, IoPortIntercept, MshvError, Partition, UnrecoverableException, Vp
from mshv.testing import PAGED_CODE_GPA, assemble, start_vp

REACHED, FELL_THROUGH = 0x11, 0x12


def protected_idt_guest(instruction: str, vector: int) -> str:
    """32-bit: ``instruction`` with an IDT whose ``vector`` is an interrupt gate to ``handler``
    (linked at PAGED_CODE_GPA, so the handler's offset is 0x1_xxxx: low word handler - _start)."""
    return f"""
    lidt idt_desc
    {instruction}
    out %al, ${FELL_THROUGH:#x}
    hlt
handler:
    out %al, ${REACHED:#x}
    hlt
.p2align 3
idt: .fill {vector}, 8, 0
    .word handler - _start, 0x8
    .byte 0, 0x8e
    .word 1
idt_desc: .word {vector + 1} * 8 - 1
    .long idt
"""


def long_idt_guest(instruction: str, vector: int) -> str:
    """64-bit: a GDT with a 64-bit code segment (the gate's selector) and a 16-byte gate."""
    return f"""
    lgdt gdt_desc(%rip)
    lidt idt_desc(%rip)
    {instruction}
    out %al, ${FELL_THROUGH:#x}
    hlt
handler:
    out %al, ${REACHED:#x}
    hlt
.p2align 3
gdt: .quad 0, 0x00209a0000000000, 0x0000920000000000
gdt_desc: .word 23
    .quad gdt
.p2align 4
idt: .fill {vector} * 2, 8, 0
    .word handler - _start, 0x8
    .byte 0, 0x8e
    .word 1
    .long 0, 0
idt_desc: .word {vector + 1} * 16 - 1
    .quad idt
"""


PROTECTED_IRET = f"""
    push $0x2                   # EFLAGS
    push $0x8                   # CS
    push $target                # EIP
    iret
    out %al, ${FELL_THROUGH:#x}
    hlt
target:
    out %al, ${REACHED:#x}
    hlt
"""
LONG_INT = long_idt_guest("int $0x20", 0x20)
CASES = {
    ("protected", "int"): protected_idt_guest("int $0x20", 0x20),
    ("protected", "iret"): PROTECTED_IRET,
    ("long", "int"): LONG_INT,
}
CONTROLS = {"protected": protected_idt_guest("ud2", 6), "long": long_idt_guest("ud2", 6)}


def _outcome(vp: Vp) -> str:
    exit_ = vp.run()
    if isinstance(exit_, IoPortIntercept) and exit_.port == REACHED:
        return "works"
    assert isinstance(exit_, UnrecoverableException), f"neither reached nor unrecoverable: {exit_}"
    return "fails"


@pytest.mark.parametrize(("mode", "op"), sorted(CASES))
def test_instruction_probes_agree_with_an_independent_guest(
    partition: Partition, memory: GuestMemory, mode: str, op: str
) -> None:
    from mshv.limits import instruction_limit

    vp = start_vp(partition, memory, assemble(CASES[mode, op], mode=mode, base=PAGED_CODE_GPA), mode=mode)
    limit = instruction_limit(mode, op)
    assert limit.works is not None, limit.detail
    assert _outcome(vp) == ("works" if limit.works else "fails"), limit


@pytest.mark.parametrize("mode", sorted(CONTROLS))
def test_the_independent_guests_idt_is_sound(partition: Partition, memory: GuestMemory, mode: str) -> None:
    """The control: a #UD (UD2) goes through an IDT built the same way to the handler, so when
    INT n does not, the host (not the test's IDT) is what stops it."""
    vp = start_vp(partition, memory, assemble(CONTROLS[mode], mode=mode, base=PAGED_CODE_GPA), mode=mode)
    assert _outcome(vp) == "works"


def test_intercept_and_tsc_probes_agree_with_the_api(partition: Partition, memory: GuestMemory) -> None:
    from mshv.limits import probe_limits

    limits = {limit.name: limit for limit in probe_limits()}
    try:
        partition.install_intercept("cpuid", leaf=0)
        cpuid_accepted = True
    except MshvError:
        cpuid_accepted = False
    assert limits["CPUID intercept"].works is cpuid_accepted, limits["CPUID intercept"]
    vp = partition.create_vp(0)
    before = vp.reg_read("tsc")
    assert isinstance(before, int)
    vp.reg_write("tsc", before + (1 << 40))
    after = vp.reg_read("tsc")
    assert isinstance(after, int)
    applied = abs(after - (before + (1 << 40))) < 1 << 39
    assert limits["TSC writes"].works is applied, limits["TSC writes"]


def test_mshv_info_lists_the_backend_limits(backend_ready: None) -> None:
    proc = subprocess.run([sys.executable, "-m", "mshv", "info"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    section = proc.stdout.split("backend limits", 1)
    assert len(section) == 2, proc.stdout
    lines = section[1].splitlines()[1:]
    for name in (
        "INT n in protected mode",
        "INT n in long mode",
        "IRET in protected mode",
        "CPUID intercept",
        "exception intercept #BP (3)",
        "TSC writes",
        "disabled CPU features hidden from the guest",
        "guest reads marked accessed",
    ):
        line = next((line for line in lines if line.strip().startswith(name)), None)
        assert line is not None, (name, proc.stdout)
        verdict = line.split(name, 1)[1].split()[0]
        assert verdict in ("works", "FAILS", "accepted", "REFUSED", "applied", "IGNORED", "inconclusive"), (
            line
        )


def test_an_unrecoverable_exception_names_the_host_limit(partition: Partition, memory: GuestMemory) -> None:
    from mshv.limits import instruction_limit

    if instruction_limit("long", "int").works:
        pytest.xfail("this host's KVM runs INT n in long mode: there is no host limit to name")
    vp = start_vp(partition, memory, assemble(LONG_INT, mode="long", base=PAGED_CODE_GPA), mode="long")
    exit_ = vp.run()
    assert isinstance(exit_, UnrecoverableException)
    assert exit_.host_limit is not None and "int $0x20" in exit_.host_limit, exit_
    assert "long mode" in exit_.host_limit and "host_limit=" in repr(exit_)


def test_a_guest_crash_is_not_blamed_on_the_host(partition: Partition, memory: GuestMemory) -> None:
    """A triple fault (#UD with no IDT) is the guest's own: no host limit is named."""
    vp = start_vp(partition, memory, assemble("ud2", mode="long", base=PAGED_CODE_GPA), mode="long")
    exit_ = vp.run()
    assert isinstance(exit_, UnrecoverableException) and exit_.host_limit is None, exit_
    assert not isinstance(exit_, HaltIntercept)
