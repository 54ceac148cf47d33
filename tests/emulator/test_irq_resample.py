"""Irqfd RESAMPLE and APIC EOI messages seen by a running guest (irq_resample.c).

The guest (32-bit protected mode, where kvm_pvm cannot IRET, so handlers drop the
frame, STI and jump) software-enables its LAPIC, reports "ready" on port 0x10 and
then idles with IF=1, reporting on port 0x11 (eax = interrupts taken so far).
Handlers for vectors 0x50, 0x60 and 0x70 count the interrupt, STI (so only the
LAPIC's in-service priority holds a second interrupt of the same vector back),
report on port 0x20 (eax = count, ecx = vector) and 0x21, write the LAPIC EOI
register, report on 0x22 and go back to idling.

Routes (MSHV_SET_MSI_ROUTING, all to APIC 0, fixed): GSI 0x50 -> vector 0x50
level-triggered (a resampler's GSI equals its vector: mshv_notify_acked_gsi), GSI 7
-> vector 0x60 level-triggered, GSI 8 -> vector 0x70 edge-triggered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import FLAT_GDT_IDT_RESET, PM32_ENTRY, assemble, compile_c

HERE = Path(__file__).resolve().parent

GUEST = (
    PM32_ENTRY
    + r"""
    mov $idt, %edi
    mov $256, %ecx
1:  mov $bad, %eax
    call gate
    add $8, %edi
    loop 1b
    mov $idt + 0x50 * 8, %edi
    mov $vec50, %eax
    call gate
    mov $idt + 0x60 * 8, %edi
    mov $vec60, %eax
    call gate
    mov $idt + 0x70 * 8, %edi
    mov $vec70, %eax
    call gate
    lidt idt_desc
    movl $0x1ff, 0xfee000f0     # SVR: APIC software-enabled, spurious vector 0xff
    xor %ebx, %ebx              # interrupts taken
    mov $1, %al
    out %al, $0x10              # ready
idle:
    sti
    mov %ebx, %eax
    out %eax, $0x11
    jmp idle
gate:                           # 32-bit interrupt gate at (%edi) for handler %eax
    mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    ret
vec50:
    mov $0x50, %ecx
    jmp handler
vec60:
    mov $0x60, %ecx
    jmp handler
vec70:
    mov $0x70, %ecx
handler:
    add $12, %esp               # drop EIP, CS, EFLAGS: no IRET on this KVM
    inc %ebx
    sti
    mov %ebx, %eax
    out %eax, $0x20             # in the handler (ecx = vector)
    out %eax, $0x21             # still before the EOI
    movl $0, 0xfee000b0         # EOI
    out %eax, $0x22             # after the EOI
    jmp idle
bad:
    mov $0xee, %al
    out %al, $0x12
    cli
    hlt
"""
    + FLAT_GDT_IDT_RESET
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, emu_lib: str) -> list[str]:
    tmp = tmp_path_factory.mktemp("irq_resample")
    exe = compile_c(HERE / "irq_resample.c", tmp)
    image = tmp / "guest.bin"
    image.write_bytes(assemble(GUEST, tmp, 16))
    return [exe, emu_lib, str(image)]


def run_case(client: list[str], case: str) -> str:
    """Run one case; exit code 3 means this host's KVM cannot show an EOI (see below)."""
    exe, lib, image = client
    proc = subprocess.run([exe, lib, case, image], capture_output=True, text=True, timeout=300)
    if proc.returncode == 3:
        # The checks before the guest's first EOI passed (RESAMPLE accepted on the
        # level route, refused on the edge one, the level interrupt delivered,
        # resamplefd still quiet). Then the LAPIC reported the delivered vector as
        # not in service: kvm_pvm (these machines' KVM) never sets ISR, so the
        # guest's EOI is invisible to KVM (no KVM_EXIT_IOAPIC_EOI, measured with a
        # raw KVM program too) and to the emulator. On a KVM that tracks ISR the
        # case runs to the end and must pass.
        pytest.xfail("host KVM does not track LAPIC ISR, EOIs are unobservable: " + proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{case}: ok" in proc.stdout
    return proc.stdout


def test_resample_signalled_by_eoi(client: list[str]) -> None:
    """mshv_irqfd_assign with RESAMPLE on a level route + mshv_notify_acked_gsi +
    mshv_irqfd_resampler_ack: the guest's EOI of vector 0x50 (== GSI 0x50) signals the
    resamplefd, never earlier, and RUN_VP never returns that EOI; a second irqfd signal
    while 0x50 is in service is taken only after the EOI; a re-assertion after the
    resample interrupts again; after deassign nothing is injected or resampled."""
    out = run_case(client, "resample")
    handlers = [line for line in out.splitlines() if line.startswith("handler ")]
    assert handlers == [
        "handler vector=0x50 count=1",
        "handler vector=0x50 count=2",
        "handler vector=0x50 count=3",
    ]


def test_unclaimed_eoi_is_returned(client: list[str]) -> None:
    """mshv_intercept_isr: an HVMSG_X64_APIC_EOI (0x80010004) that no resampler claims
    (level route GSI 7 -> vector 0x60) wakes RUN_VP with vp_index 0 and vector 0x60;
    the next RUN_VP continues after the guest's EOI write."""
    out = run_case(client, "eoi_message")
    assert "eoi_message type=0x80010004 vp=0 vector=0x60 size=8" in out


def test_edge_eoi_is_silent(client: list[str]) -> None:
    """The hypervisor reports EOIs of level-triggered interrupts only (WHvRunVpExitReasonX64ApicEoi:
    "an APIC EOI of a level-triggered interrupt"): an edge route's EOI and an edge
    HvCallAssertVirtualInterrupt of a level route's vector give no message and no
    resample; the same vector asserted level-triggered is resampled."""
    out = run_case(client, "edge_eoi_silent")
    handlers = [line for line in out.splitlines() if line.startswith("handler ")]
    assert handlers == [
        "handler vector=0x70 count=1",
        "handler vector=0x50 count=2",
        "handler vector=0x50 count=3",
    ]


def test_routes_before_vp(client: list[str]) -> None:
    """mshv_notify_acked_gsi does not depend on when the route was set: SET_MSI_ROUTING
    and IRQFD before CREATE_VP (and before the guest enables its APIC) still resample."""
    run_case(client, "routes_before_vp")
