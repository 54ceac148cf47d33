"""The guest's XSAVE state on the emulator: what the guest can use is what the partition says
and what MSHV_GET/SET_VP_STATE XSAVE and a snapshot carry.

The hypervisor's partition properties PROCESSOR_XSAVE_FEATURES, XSAVE_STATES and
MAX_XSAVE_DATA_SIZE describe the guest's XSAVE features and the compacted XSAVE area
(mshv_vp_ioctl_get_set_state sizes the XSAVE blob from the last two), and the guest's CPUID
shows the same features. A guest here reads its CPUID, sets XCR0 = x87|SSE|AVX, drops to
CPL 3 and loads YMM0/YMM1 (upper halves included); the host reads them from the XSAVE blob,
writes new ones, and the guest stores what it has.

Host dependence: some KVMs run a guest's supervisor code in their instruction emulator,
which has no VEX instructions, so the AVX part runs at CPL 3; a KVM that cannot run AVX
in a guest at all is found by ``kvm_xsave_probe.c`` on raw KVM, and the AVX tests then
xfail with its finding (never on the emulator's own answer). Some KVMs also give a guest
CPU features its VMM's KVM_SET_CPUID2 cleared (the guest runs them natively either way):
then a disabled feature cannot be hidden, the partition's properties say the guest has it,
and ``mshv.limits.cpu_feature_hiding`` names the limit.
"""

from __future__ import annotations

import errno
import struct
import subprocess
from pathlib import Path

import pytest
from guest import compile_c

from mshv import GuestMemory, HvPartitionProperty, IoPortIntercept, Mshv, MshvError, Partition, Vp
from mshv import limits as limits_mod
from mshv._abi import lib
from mshv.intercepts import Intercept
from mshv.testing import PAGED_CODE_GPA, assemble, long_mode_registers

P = HvPartitionProperty
HERE = Path(__file__).resolve().parent
MEMORY = 0x40000
CPUID_AT = 0x8000  # the guest stores EAX, EBX, ECX, EDX of each CPUID_LEAVES entry here
CPUID_LEAVES = [(1, 0), (7, 0), (0xD, 0), (0xD, 1), (0x80000001, 0)]
YMM_A, YMM_B, YMM_OUT = 0x9000, 0x9040, 0x9100  # two YMM values each (64 bytes); the guest's store
PATTERN = bytes(0x10 + i for i in range(64))  # at YMM_A, as kvm_xsave_probe.c writes it
PATTERN_B = bytes(0xB0 + i for i in range(64))
XSTATE_BV, XCOMP_BV = 512, 520  # XSAVE header (SDM 13.4.2)
YMM_BIT = lib.HV_X64_XFEM_AVX
X87_SSE = lib.HV_X64_XFEM_LEGACY_X87 | lib.HV_X64_XFEM_LEGACY_SSE


def _cpuid_stores() -> str:
    lines = []
    for i, (leaf, subleaf) in enumerate(CPUID_LEAVES):
        at = CPUID_AT + 16 * i
        lines += [f"mov ${leaf:#x}, %eax", f"mov ${subleaf:#x}, %ecx", "cpuid"]
        lines += [f"movl %{r}, {at + 4 * n:#x}" for n, r in enumerate(("eax", "ebx", "ecx", "edx"))]
    return "\n".join(lines)


# Exits: 0x10 after XSETBV; 0x11 with YMM0/1 = YMM_A (and each time round the loop); 0x12 after
# storing YMM0/1 at YMM_OUT; 0x13 after loading YMM_B; then back to 0x11.
GUEST = f"""
    {_cpuid_stores()}
    lgdt gdt_desc(%rip)
    mov %cr4, %rax; or $((1 << 9) | (1 << 10) | (1 << 18)), %rax; mov %rax, %cr4  # OSFXSR OSXMMEXCPT OSXSAVE
    xor %ecx, %ecx; xor %edx, %edx; mov $7, %eax; xsetbv
    out %al, $0x10
    pushq $0x1b                  # SS: user data
    pushq $0x7000
    pushq $0x3002                # IOPL 3: OUT at CPL 3
    pushq $0x23                  # CS: user code, 64-bit
    lea user(%rip), %rax
    push %rax
    iretq
user:
    vmovdqu {YMM_A:#x}, %ymm0
    vmovdqu {YMM_A + 32:#x}, %ymm1
1:  out %al, $0x11
    vmovdqu %ymm0, {YMM_OUT:#x}
    vmovdqu %ymm1, {YMM_OUT + 32:#x}
    out %al, $0x12
    vmovdqu {YMM_B:#x}, %ymm0
    vmovdqu {YMM_B + 32:#x}, %ymm1
    out %al, $0x13
    jmp 1b
.align 8
gdt: .quad 0, 0x00209a0000000000, 0x00cf92000000ffff, 0x00cff2000000ffff, 0x0020fa0000000000
gdt_desc: .word 5 * 8 - 1
    .quad gdt
"""


@pytest.fixture(scope="module")
def guest_code() -> bytes:
    return assemble(GUEST, mode="long", base=PAGED_CODE_GPA)


@pytest.fixture(scope="module")
def kvm_probe(kvm: str, guest_code: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """kvm_xsave_probe.c's findings on raw KVM with the same guest."""
    tmp = tmp_path_factory.mktemp("kvm_xsave_probe")
    exe = compile_c(HERE / "kvm_xsave_probe.c", tmp)
    (tmp / "guest.bin").write_bytes(guest_code)
    proc = subprocess.run([exe, str(tmp / "guest.bin")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def _host_runs_avx(kvm_probe: dict[str, str]) -> None:
    """xfail when raw KVM does not run this guest's AVX at all (a limit of the host, not ours)."""
    if kvm_probe.get("avx.ran") != "1":
        pytest.xfail(
            "the host's KVM does not run AVX in a guest at CPL 3 (kvm_xsave_probe: "
            f"xsetbv={kvm_probe.get('avx.xsetbv')}, {kvm_probe.get('avx.exit', 'no exit recorded')})"
        )


def _guest_vp(pt: Partition, mem: GuestMemory, code: bytes) -> Vp:
    """VP 0 of ``pt`` at the guest's entry in long mode, its pages user-accessible (CPL 3)."""
    pt.map_memory(mem, 0)
    regs = long_mode_registers(mem, PAGED_CODE_GPA)
    for table in (0x2000, 0x3000):  # PML4[0], PDPT[0]
        entry = int.from_bytes(mem.read(table, 8), "little")
        mem.write(table, (entry | 4).to_bytes(8, "little"))
    pd = mem.read(0x4000, 4096)
    mem.write(0x4000, b"".join((int.from_bytes(pd[i : i + 8], "little") | 4).to_bytes(8, "little")
                               for i in range(0, 4096, 8)))  # fmt: skip
    mem.write(YMM_A, PATTERN)
    mem.write(PAGED_CODE_GPA, code)
    vp = pt.create_vp(0)
    vp.set_registers(regs)  # type: ignore[arg-type]
    return vp


def _run_to(vp: Vp, port: int) -> Intercept:
    """Run to the next exit; an OUT to ``port`` is completed and returned, anything else returned."""
    exit_ = vp.run()
    if isinstance(exit_, IoPortIntercept) and exit_.port == port:
        vp.complete_io(exit_)
    return exit_


Cpuid = dict[tuple[int, int], tuple[int, int, int, int]]


def _guest_cpuid(mem: GuestMemory) -> Cpuid:
    """What the guest's CPUID gave it, by (leaf, subleaf): EAX, EBX, ECX, EDX."""
    out = {}
    for i, key in enumerate(CPUID_LEAVES):
        eax, ebx, ecx, edx = struct.unpack("<4I", mem.read(CPUID_AT + 16 * i, 16))
        out[key] = (eax, ebx, ecx, edx)
    return out


def _compacted_size(vp: Vp, states: int) -> int:
    """SDM 13.4.3: 576, then each component in index order, 64-aligned where 0xD.i ECX[1] says."""
    offset = 576
    for i in range(2, 63):
        if states >> i & 1:
            sub = vp.get_cpuid(0xD, i)
            if sub.ecx & 2:
                offset = (offset + 63) & ~63
            offset += sub.eax
    return offset


# ---- the partition's XSAVE properties and the guest's CPUID ---------------------------------------

# (name, property, Hyper-V bit, CPUID leaf, subleaf, register index in EAX..EDX, bit): the SDM's CPUID
# bits, written out here independently of the emulator's table.
FEATURE_BITS = [
    ("XSAVE", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_XSAVE_BIT, 1, 0, 2, 26),
    ("AVX", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_AVX_BIT, 1, 0, 2, 28),
    ("FMA", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_FMA_BIT, 1, 0, 2, 12),
    ("AVX2", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_AVX2_BIT, 7, 0, 1, 5),
    ("AVX512F", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_AVX512_BIT, 7, 0, 1, 16),
    ("GFNI", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_GFNI_BIT, 7, 0, 2, 8),
    ("XSAVEOPT", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_XSAVEOPT_BIT, 0xD, 1, 0, 0),
    ("XSAVEC", P.PROCESSOR_XSAVE_FEATURES, lib.HV_PROC_XSAVE_FEATURE_XSAVE_COMP_BIT, 0xD, 1, 0, 1),
    ("SSE3", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_SSE3_BIT, 1, 0, 2, 0),
    ("SSE4.2", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_SSE4_2_BIT, 1, 0, 2, 20),
    ("POPCNT", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_POPCNT_BIT, 1, 0, 2, 23),
    ("BMI2", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_BMI2_BIT, 7, 0, 1, 8),
    ("LAHF_SAHF", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_LAHF_SAHF_BIT, 0x80000001, 0, 2, 0),
    ("LZCNT", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_LZCNT_BIT, 0x80000001, 0, 2, 5),
    ("PAGE_1GB", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_PAGE_1GB_BIT, 0x80000001, 0, 3, 26),
    ("RDTSCP", P.PROCESSOR_FEATURES0, lib.HV_PROC_FEATURE0_RDTSCP_BIT, 0x80000001, 0, 3, 27),
    ("TSC_DEADLINE", P.PROCESSOR_FEATURES1, lib.HV_PROC_FEATURE1_TSC_DEADLINE_TMR_BIT, 1, 0, 2, 24),
]


def _feature_mismatches(pt: Partition, cpuid: Cpuid) -> list[str]:
    wrong = []
    for name, code, hv_bit, leaf, subleaf, reg, bit in FEATURE_BITS:
        told = cpuid[(leaf, subleaf)][reg] >> bit & 1
        if pt.get_property(code) >> hv_bit & 1 != told:
            wrong.append(f"{name}: guest CPUID {told}")
    return wrong


def _run_cpuid_part(pt: Partition, mem: GuestMemory, code: bytes) -> tuple[Vp, Cpuid]:
    """Run the guest to 0x10 (its XSETBV with XCR0 = 7 took); the VP and the CPUID it read."""
    vp = _guest_vp(pt, mem, code)
    exit_ = _run_to(vp, 0x10)
    assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10, exit_
    return vp, _guest_cpuid(mem)


def test_features_are_what_the_guest_cpuid_says(hv: Mshv, guest_code: bytes) -> None:
    """Each PROCESSOR_XSAVE_FEATURES / PROCESSOR_FEATURES0 bit equals the CPUID bit the guest
    itself reads (the partition does not lack what the guest is told it has, nor the reverse)."""
    with hv.create_partition() as pt, GuestMemory(MEMORY) as mem:
        _, cpuid = _run_cpuid_part(pt, mem, guest_code)
        assert _feature_mismatches(pt, cpuid) == []
        assert cpuid[(1, 0)][2] >> 26 & 1, "the guest's XSETBV worked, so its CPUID must show XSAVE"


def test_xsave_states_are_the_guests_xcr0_components(hv: Mshv, guest_code: bytes) -> None:
    """XSAVE_STATES is exactly what the guest's CPUID 0xD.0 lets it put in XCR0, and
    MAX_XSAVE_DATA_SIZE is their compacted size (SDM 13.4.3 with the guest's CPUID 0xD.i), the
    size of the XSAVE blob."""
    with hv.create_partition() as pt, GuestMemory(MEMORY) as mem:
        vp, cpuid = _run_cpuid_part(pt, mem, guest_code)
        eax, _, _, edx = cpuid[(0xD, 0)]
        states = pt.get_property(P.XSAVE_STATES)
        assert states == (edx << 32 | eax)
        assert states & YMM_BIT, "the guest set XCR0 = 7, so YMM is a component it uses"
        size = pt.get_property(P.MAX_XSAVE_DATA_SIZE)
        assert size == _compacted_size(vp, states) <= 4096
        blob = vp.get_xsave()
        assert len(blob) == size
        assert int.from_bytes(blob[XCOMP_BV : XCOMP_BV + 8], "little") == (1 << 63) | states


# ---- YMM state through MSHV_GET/SET_VP_STATE and snapshots --------------------------------------------


def _ymm_offset(xsave: bytes) -> int:
    """Offset of component 2 (YMM_Hi128) in a compacted XSAVE area: the first after the legacy
    area and header (576, a multiple of 64) when XCOMP_BV has it."""
    xcomp = int.from_bytes(xsave[XCOMP_BV : XCOMP_BV + 8], "little")
    assert xcomp >> 63 and xcomp & YMM_BIT, f"XCOMP_BV {xcomp:#x}: no YMM component"
    return 576


def _start_avx(pt: Partition, mem: GuestMemory, code: bytes, kvm_probe: dict[str, str]) -> Vp:
    """VP 0 at exit 0x11 with YMM0/1 = PATTERN; xfail when raw KVM cannot run the guest's AVX."""
    vp = _guest_vp(pt, mem, code)
    exit_ = _run_to(vp, 0x10)
    assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x10, exit_
    exit_ = _run_to(vp, 0x11)
    if not (isinstance(exit_, IoPortIntercept) and exit_.port == 0x11):
        _host_runs_avx(kvm_probe)
        raise AssertionError(f"raw KVM runs the guest's AVX, the emulator stopped at {exit_}")
    return vp


def test_ymm_in_get_xsave_and_set_xsave_restores_it(
    hv: Mshv, guest_code: bytes, kvm_probe: dict[str, str]
) -> None:
    """MSHV_GET_VP_STATE XSAVE holds the YMM registers the guest loaded (XSTATE_BV bit 2, the
    upper halves in component 2); MSHV_SET_VP_STATE with new values is what the guest then has."""
    with hv.create_partition() as pt, GuestMemory(MEMORY) as mem:
        vp = _start_avx(pt, mem, guest_code, kvm_probe)
        xsave = bytearray(vp.get_xsave())
        assert int.from_bytes(xsave[XSTATE_BV : XSTATE_BV + 8], "little") & YMM_BIT
        ymm = _ymm_offset(bytes(xsave))
        assert xsave[160:192] == PATTERN[0:16] + PATTERN[32:48]  # XMM0, XMM1
        assert xsave[ymm : ymm + 32] == PATTERN[16:32] + PATTERN[48:64]  # YMM0, YMM1 upper halves
        new = bytes(0xC0 + i for i in range(64))
        xsave[160:192] = new[0:16] + new[32:48]
        xsave[ymm : ymm + 32] = new[16:32] + new[48:64]
        vp.set_xsave(bytes(xsave))
        exit_ = _run_to(vp, 0x12)
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x12, exit_
        assert mem.read(YMM_OUT, 64) == new


def test_snapshot_restore_brings_back_ymm(hv: Mshv, guest_code: bytes, kvm_probe: dict[str, str]) -> None:
    """Partition.snapshot() at YMM0/1 = A, the guest loads B, restore: the guest stores A again,
    upper halves included."""
    with hv.create_partition() as pt, GuestMemory(MEMORY) as mem:
        mem.write(YMM_B, PATTERN_B)
        vp = _start_avx(pt, mem, guest_code, kvm_probe)
        snap = pt.snapshot()
        for _ in range(2):
            for port in (0x12, 0x13, 0x11):  # round the loop: YMM0/1 = B at 0x13 and still at 0x11
                exit_ = _run_to(vp, port)
                assert isinstance(exit_, IoPortIntercept) and exit_.port == port, exit_
            exit_ = _run_to(vp, 0x12)
            assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x12, exit_
            assert mem.read(YMM_OUT, 64) == PATTERN_B  # the guest has B now
            pt.restore(snap)
            assert mem.read(YMM_OUT, 64) == bytes(64)  # memory as at the snapshot
            exit_ = _run_to(vp, 0x12)
            assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x12, exit_
            assert mem.read(YMM_OUT, 64) == PATTERN
            _run_to(vp, 0x13)
            _run_to(vp, 0x11)


def test_set_xsave_reads_the_blobs_own_xcomp_bv(
    hv: Mshv, guest_code: bytes, kvm_probe: dict[str, str]
) -> None:
    """MSHV_SET_VP_STATE XSAVE takes a compacted area as XRSTOR does (SDM 13.8): XCOMP_BV says
    which components it holds and where, a component it lacks is set to its initial state, and
    what XRSTOR faults on is EINVAL: XSTATE_BV outside XCOMP_BV, header bytes 16-63 not zero."""
    with hv.create_partition() as pt, GuestMemory(MEMORY) as mem:
        vp = _start_avx(pt, mem, guest_code, kvm_probe)
        full = vp.get_xsave()
        new = bytes(0x90 + i for i in range(64))
        small = bytearray(full[:576] + bytes(256))  # x87, SSE, YMM: 576 + 256 bytes
        small[XSTATE_BV : XSTATE_BV + 8] = (X87_SSE | YMM_BIT).to_bytes(8, "little")
        small[XCOMP_BV : XCOMP_BV + 8] = ((1 << 63) | X87_SSE | YMM_BIT).to_bytes(8, "little")
        small[160:192] = new[0:16] + new[32:48]
        small[576:608] = new[16:32] + new[48:64]
        no_ymm = bytearray(small)
        no_ymm[XCOMP_BV : XCOMP_BV + 8] = ((1 << 63) | X87_SSE).to_bytes(8, "little")  # XSTATE_BV has YMM
        reserved = bytearray(small)
        reserved[XSTATE_BV + 16] = 1
        for refused in (no_ymm, reserved):
            with pytest.raises(MshvError) as info:
                vp.set_xsave(bytes(refused))
            assert info.value.errno == errno.EINVAL
        assert vp.get_xsave() == full  # nothing taken from a refused area
        vp.set_xsave(bytes(small))
        exit_ = _run_to(vp, 0x12)
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x12, exit_
        assert mem.read(YMM_OUT, 64) == new
        legacy = bytearray(small[:576])  # x87 and SSE only: YMM's upper halves to their initial 0
        legacy[XSTATE_BV : XSTATE_BV + 8] = X87_SSE.to_bytes(8, "little")
        legacy[XCOMP_BV : XCOMP_BV + 8] = ((1 << 63) | X87_SSE).to_bytes(8, "little")
        for port in (0x13, 0x11):
            _run_to(vp, port)
        vp.set_xsave(bytes(legacy))
        exit_ = _run_to(vp, 0x12)
        assert isinstance(exit_, IoPortIntercept) and exit_.port == 0x12, exit_
        assert mem.read(YMM_OUT, 64) == new[0:16] + bytes(16) + new[32:48] + bytes(16)


# ---- features the VMM disables --------------------------------------------------------------------------

DISABLED_XSAVE = (1 << lib.HV_PROC_XSAVE_FEATURE_AVX_BIT) | (1 << lib.HV_PROC_XSAVE_FEATURE_AVX2_BIT)
EVERY = 2**64 - 1


def test_disabled_features_are_hidden_or_reported(hv: Mshv, guest_code: bytes) -> None:
    """Every processor feature disabled, and AVX and AVX2 (MSHV_CREATE_PARTITION v2 pt_cpu_fbanks,
    pt_disabled_xsave): the properties and the guest's CPUID agree bit for bit, XSAVE_STATES is
    still the guest's XCR0 components, and features the host offered are gone from the guest's
    CPUID; those the host's KVM cannot take away stay enabled in the properties too."""
    offered = {code: hv.get_property(code) for code in {f[1] for f in FEATURE_BITS}}
    with hv.create_partition(disabled_cpu_features=[EVERY, EVERY], disabled_xsave=DISABLED_XSAVE) as pt, \
            GuestMemory(MEMORY) as mem:  # fmt: skip
        vp = _guest_vp(pt, mem, guest_code)
        exit_ = vp.run()
        cpuid = _guest_cpuid(mem)
        assert _feature_mismatches(pt, cpuid) == []
        eax, _, _, edx = cpuid[(0xD, 0)]
        assert pt.get_property(P.XSAVE_STATES) == (edx << 32 | eax)
        if isinstance(exit_, IoPortIntercept) and exit_.port == 0x10:  # XSETBV(7) took: YMM usable
            assert pt.get_property(P.XSAVE_STATES) & YMM_BIT
        disabled = [
            (name, cpuid[(leaf, sub)][reg] >> bit & 1)
            for name, code, hv_bit, leaf, sub, reg, bit in FEATURE_BITS
            if offered[code] >> hv_bit & 1
            and (code != P.PROCESSOR_XSAVE_FEATURES or DISABLED_XSAVE >> hv_bit & 1)
        ]
        assert disabled, "the host offers none of the features checked"
        kept = [name for name, shown in disabled if shown]
        if kept:
            assert limits_mod.cpu_feature_hiding().works is False, kept
        assert len(kept) < len(disabled), f"no disabled feature was hidden: {kept}"


def test_disabled_avx_is_hidden_from_the_guest(
    hv: Mshv, guest_code: bytes, kvm_probe: dict[str, str]
) -> None:
    """A partition without AVX: the guest's CPUID shows no AVX, XSAVE_STATES has no YMM, and
    the guest's XSETBV with YMM does not take. xfails on a KVM that cannot hide AVX (checked on
    raw KVM, and ``mshv.limits.cpu_feature_hiding`` must say so too)."""
    hiding = limits_mod.cpu_feature_hiding()
    if kvm_probe["hide.avx_still_shown"] == "1":
        assert hiding.works is False, hiding
        pytest.xfail(f"the host's KVM cannot hide AVX from a guest: {hiding.detail}")
    assert hiding.works is True, hiding
    with hv.create_partition(disabled_cpu_features=[0, 0], disabled_xsave=DISABLED_XSAVE) as pt, \
            GuestMemory(MEMORY) as mem:  # fmt: skip
        vp = _guest_vp(pt, mem, guest_code)
        exit_ = vp.run()
        cpuid = _guest_cpuid(mem)
        assert not cpuid[(1, 0)][2] >> 28 & 1 and not cpuid[(7, 0)][1] >> 5 & 1
        assert not pt.get_property(P.XSAVE_STATES) & YMM_BIT
        assert not (isinstance(exit_, IoPortIntercept) and exit_.port == 0x10), "XSETBV(7) took"


def test_xsave_disabled_leaves_x87_and_sse_or_reports_the_limit(hv: Mshv) -> None:
    """Every XSAVE feature disabled: XSAVE_STATES x87|SSE and a 576-byte blob where KVM hides
    XSAVE; where it cannot, the properties say what the guest keeps and the blob covers it."""
    with hv.create_partition(disabled_cpu_features=[0, 0], disabled_xsave=2**64 - 1) as pt:
        vp = pt.create_vp(0)
        guest_xcr0 = vp.get_cpuid(0xD, 0).edx << 32 | vp.get_cpuid(0xD, 0).eax
        states = pt.get_property(P.XSAVE_STATES)
        size = pt.get_property(P.MAX_XSAVE_DATA_SIZE)
        assert len(vp.get_xsave()) == size == _compacted_size(vp, states)
        if vp.get_cpuid(1).ecx >> 26 & 1:  # the guest still has XSAVE: KVM could not hide it
            assert limits_mod.cpu_feature_hiding().works is False
            assert pt.get_property(P.PROCESSOR_XSAVE_FEATURES) >> lib.HV_PROC_XSAVE_FEATURE_XSAVE_BIT & 1
            assert states == guest_xcr0
        else:
            assert pt.get_property(P.PROCESSOR_XSAVE_FEATURES) == 0
            assert states == X87_SSE and size == 576
