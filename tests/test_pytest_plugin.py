"""mshv/pytest_plugin.py, mshv/exits.py, mshv/capabilities.py: the pytest plugin, run by pytest.

Each test writes a small test project into pytester's empty directory (no conftest) and
runs pytest on it: in process, or in a fresh interpreter where the point is that the
entry point alone brings the plugin in.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import mshv.pytest_plugin
from mshv import ExceptionIntercept, GuestMemory, HaltIntercept, IoPortIntercept, Partition, backend, limits
from mshv._abi import ffi, lib
from mshv.capabilities import CAPABILITIES, probe
from mshv.exits import GuestException, Halt, IoPort, Msr, Unrecoverable, assert_exits, observed
from mshv.intercepts import decode
from mshv.testing import PAGED_CODE_GPA, assemble, entry_gpa, start_vp

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"

ECHO = """
ECHO = '''
    mov $0x42, %al
    out %al, $0x10
    in $0x11, %al
    out %al, $0x12
    hlt
'''
"""


# Plugins the inner runs do not need (hypothesis's costs seconds per session).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, "--strict-markers", "-rs", *args)


def test_the_entry_point_loads_the_plugin(pytestconfig: pytest.Config) -> None:
    points = [ep for ep in entry_points(group="pytest11") if ep.name == "mshv"]
    assert [ep.value for ep in points] == ["mshv.pytest_plugin"]
    assert pytestconfig.pluginmanager.get_plugin("mshv") is mshv.pytest_plugin


def test_an_installed_plugin_needs_no_conftest(pytester: pytest.Pytester) -> None:
    """A fresh interpreter in a directory with one test file: the fixtures are just there."""
    pytester.makepyfile(
        ECHO
        + """
from mshv.exits import Halt, IoPort

def test_echo(mshv_guest):
    mshv_guest(ECHO, mode="long").assert_exits(
        [IoPort(0x10, write=True, value=0x42), IoPort(0x11, write=False, value=7),
         IoPort(0x12, write=True, value=7), Halt()])
"""
    )
    assert not list(pytester.path.glob("**/conftest.py"))
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)


def test_fixtures_in_each_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ECHO
        + """
import pytest
from mshv import HaltIntercept
from mshv.exits import Halt, IoPort
from mshv.testing import entry_gpa

opened = []

def test_vp(mshv_vp, mshv_memory, mshv_partition, mshv_mode):
    assert mshv_vp.partition is mshv_partition and mshv_partition.initialized
    assert mshv_partition.region_at(0).memory is mshv_memory
    assert mshv_vp.reg_read("rip") == entry_gpa(mshv_mode)
    exit_ = mshv_vp.run()
    assert isinstance(exit_, HaltIntercept)
    assert exit_.header.mode == mshv_mode and exit_.rip == entry_gpa(mshv_mode)
    opened.append(mshv_partition)

def test_guest(mshv_guest, mshv_mode):
    guest = mshv_guest(ECHO, mode=mshv_mode)
    got = guest.assert_exits([IoPort(0x10, write=True, value=0x42, size=1),
                              IoPort(0x11, write=False, value=0x5A),
                              IoPort(0x12, write=True, value=0x5A), Halt()])
    assert {exit_.header.mode for exit_ in got} == {mshv_mode}
    assert guest.reg("rax") & 0xFF == 0x5A and guest.read(guest.entry, 2) == guest.code[:2]
    opened.append(guest.partition)

@pytest.mark.parametrize("mshv_mode", ["long"])
def test_one_mode(mshv_vp, mshv_mode):
    assert mshv_vp.run().header.mode == "long"

def test_everything_was_closed():
    assert len(opened) == 6 and all(partition.closed for partition in opened)
"""
    )
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=3 + 3 + 1 + 1)
    result.stdout.fnmatch_lines(
        ["*test_vp?real? PASSED*", "*test_vp?protected? PASSED*", "*test_vp?long? PASSED*"]
    )


def test_a_wrong_exit_sequence_is_a_readable_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ECHO
        + """
from mshv.exits import Halt, IoPort, Mmio

def test_wrong_port(mshv_guest):
    mshv_guest(ECHO, mode="real").assert_exits(
        [IoPort(0x10, write=True, value=0x42), IoPort(0x11, write=False, value=0x5A),
         IoPort(0x13, write=True, value=0x5B), Halt()])

def test_wrong_kind(mshv_guest):
    mshv_guest(ECHO, mode="protected").assert_exits([Halt()])

def test_wrong_mmio_value(mshv_guest):
    mshv_guest("movw $0x1234, 0x100000; hlt", mode="long").assert_exits(
        [Mmio(0x100000, write=True, value=0x1235, size=4), Halt()])
"""
    )
    result = _run(pytester)
    result.assert_outcomes(failed=3)
    why = "port: expected 0x13, got 0x12; value: expected 0x5b, got 0x5a"
    out_42, in_11 = "IoPort(port=0x10, write=True, value=0x42", "IoPort(port=0x11, write=False"
    result.stdout.fnmatch_lines(
        [
            f"E * exit 3 of 4 differs: {why}",
            "E * #  expected * got * rip",
            f"E * 1  {out_42}) * {out_42}, size=1) * 0x1002  ok",
            f"E * 2  {in_11}, value=0x5a) * {in_11}, size=1) * 0x1004  ok",
            "E * 3  IoPort(port=0x13, write=True, value=0x5b) "
            f"* IoPort(port=0x12, write=True, value=0x5a, size=1) * 0x1006  <- {why}",
            "E * 4  Halt() * (not run)",
            "test_a_wrong_exit_sequence_is_a_readable_table.py:*: AssertionError",  # at the test's line
        ]
    )
    why = "expected Halt, got IoPort"
    result.stdout.fnmatch_lines(
        [f"E * exit 1 of 1 differs: {why}", f"E * 1  Halt() * {out_42}, size=1) * 0x10002  <- {why}"]
    )
    why = "size: expected 4, got 2; value: expected 0x1235, got 0x1234"
    mmio = "Mmio(gpa=0x100000, write=True"
    result.stdout.fnmatch_lines(
        [
            f"E * exit 1 of 2 differs: {why}",
            f"E * 1  {mmio}, value=0x1235, size=4) * {mmio}) * 0x10000  <- {why}",
        ]
    )


CAPABILITY_TESTS = """
import pytest

@pytest.mark.mshv_requires("{lacking}")
def test_lacking():
    raise AssertionError("must not run")

@pytest.mark.mshv_requires("{having}")
def test_having():
    pass

@pytest.fixture
def not_set_up():
    raise AssertionError("a skipped test's fixtures must not be set up")

@pytest.mark.mshv_requires("{having}", "{lacking}")
def test_lacking_one_of_two(not_set_up):
    raise AssertionError("must not run")
"""


def test_a_capability_marker_skips_naming_it_or_runs(pytester: pytest.Pytester) -> None:
    """On this host the backend is one of kernel/emulator and not the other: the marker skips
    for the other, naming it, and runs for the one in use."""
    having = backend.select().name
    lacking = "kernel" if having == "emulator" else "emulator"
    pytester.makepyfile(CAPABILITY_TESTS.format(lacking=lacking, having=having))
    result = _run(pytester)
    result.assert_outcomes(passed=1, skipped=2)
    lacks = CAPABILITIES[lacking][0]
    reason = f"mshv_requires('{lacking}'): the backend lacks {lacks}: the backend is the {having}"
    result.stdout.fnmatch_lines(
        [f"SKIPPED [[]1[]] test_a_capability_marker_skips_naming_it_or_runs.py:*: {reason}: *"]
    )


PROBED = ("exception_intercepts", "cpuid_intercepts", "msr_intercepts", "tsc_writes")
INSTRUCTIONS = ("int_in_real_mode", "iret_in_protected_mode", "int_in_long_mode")


def test_a_probed_capability_follows_mshv_limits(pytester: pytest.Pytester) -> None:
    """Whatever this host answers, the marker skips exactly when mshv.limits found the
    capability missing, and says what the probe saw."""
    limits_by_name = {limit.name: limit for limit in limits.probe_limits()}
    assert probe("exception_intercepts").detail == limits_by_name["exception intercept #BP (3)"].detail
    assert probe("int_in_long_mode").available is bool(limits.instruction_limit("long", "int").works)
    names = PROBED + INSTRUCTIONS
    pytester.makepyfile(
        "import pytest\n"
        + "".join(f"@pytest.mark.mshv_requires('{n}')\ndef test_{n}():\n    pass\n" for n in names)
    )
    result = _run(pytester, "-v")
    for name in names:
        found = probe(name)
        if found.available:
            result.stdout.fnmatch_lines([f"*::test_{name} PASSED*"])
        else:
            escaped = found.detail.replace("[", "[[]")
            result.stdout.fnmatch_lines(
                [f"SKIPPED [[]1[]] *: mshv_requires('{name}'): the backend lacks *: {escaped}"]
            )
    assert result.parseoutcomes().get("passed", 0) == sum(probe(n).available for n in names)


def test_an_unknown_capability_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.mshv_requires('warp_drive')\ndef test_name():\n    pass\n"
        "@pytest.mark.mshv_requires('frobnicate_in_long_mode')\ndef test_instruction():\n    pass\n"
        "@pytest.mark.mshv_requires()\ndef test_nothing():\n    pass\n"
    )
    result = _run(pytester)
    result.assert_outcomes(errors=3)
    known = ", ".join(CAPABILITIES) + ", and <op>_in_<mode>_mode"
    result.stdout.fnmatch_lines(
        [
            f"mshv_requires('warp_drive'): no mshv capability 'warp_drive'; known: {known} *",
            "mshv_requires('frobnicate_in_long_mode'): no probe for 'frobnicate' in 'long' mode*",
            "use @pytest.mark.mshv_requires('capability', ...), not *",
        ],
        consecutive=False,
    )


def test_a_missing_backend_fails_and_never_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSHV_BACKEND", "emulator")
    monkeypatch.setenv("MSHV_EMULATOR_LIBRARY", str(pytester.path / "no-such-libmshv_emu.so"))
    pytester.makepyfile(
        "import pytest\n"
        "def test_fixture(mshv_device):\n    pass\n"
        "@pytest.mark.mshv_requires('msr_intercepts')\ndef test_marker():\n    pass\n"
        "@pytest.mark.mshv_requires('kernel')\ndef test_kernel_marker():\n    pass\n"
    )
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        ["*BackendUnavailable: cannot use the emulator: MSHV_EMULATOR_LIBRARY names *"]
    )


def test_readme_pytest_example_runs_and_its_failure_reads_as_shown(pytester: pytest.Pytester) -> None:
    text = README.read_text()
    section = text.split("## Testing guest code with pytest", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    pytester.makepyfile(test_guest=example)
    result = _run(pytester, "-v")
    expected = {"passed": 5, "skipped": 0}  # the marker in the example asks for a capability
    result.assert_outcomes(**expected)  # the emulator has, so it runs

    shown = re.findall(r"```text\n(.*?)```", section, re.S)[0].splitlines()
    pytester.makepyfile(test_guest=example.replace("out %al, $0x12", "out %al, $0x13"))
    failing = _run(pytester, "-k", "test_echo_in_every_mode and real")
    failing.assert_outcomes(failed=1, deselected=4)
    failing.stdout.fnmatch_lines([f"*{line.strip()}" for line in shown if line.strip()])


# -- mshv.exits without pytester ---------------------------------------------------------------

MSR = 0x1234  # no MSR of KVM's: with MSR intercepts installed its accesses exit
MSR_GUEST = f"""
    mov ${MSR:#x}, %ecx
    rdmsr
    out %eax, $0x10
    mov %edx, %eax
    out %eax, $0x11
    mov $0x11112222, %eax
    mov $0x33334444, %edx
    wrmsr
    hlt
"""


def test_msr_expectations_answer_rdmsr_and_check_wrmsr(partition: Partition, memory: GuestMemory) -> None:
    vp = start_vp(partition, memory, assemble(MSR_GUEST, mode="long", base=PAGED_CODE_GPA), mode="long")
    partition.install_intercept("msr")
    got = assert_exits(
        vp,
        [
            Msr(MSR, write=False, value=0xAABBCCDD_00112233, rip=PAGED_CODE_GPA + 5),
            IoPort(0x10, write=True, value=0x00112233),
            IoPort(0x11, write=True, value=0xAABBCCDD),
            Msr(MSR, write=True, value=0x33334444_11112222),
            Halt(),
        ],
    )
    assert [type(exit_).__name__ for exit_ in got][-1] == "HaltIntercept"
    vp.reg_write("rip", PAGED_CODE_GPA)  # again: a wrong WRMSR value is named
    with pytest.raises(AssertionError, match=r"value: expected 0x3333444411112223, got 0x3333444411112222"):
        assert_exits(vp, [Msr(MSR, write=False, value=1), IoPort(0x10, write=True), IoPort(0x11, write=True),
                          Msr(MSR, write=True, value=0x33334444_11112223)])  # fmt: skip


@pytest.mark.parametrize("mode", ["protected", "long"])
def test_a_triple_fault_is_unrecoverable(partition: Partition, memory: GuestMemory, mode: str) -> None:
    """#UD with an empty IDT: #GP, #DF, then shutdown. (Not in real mode: KVM emulates real-mode
    event delivery, and some hosts take long to reach the shutdown there.)"""
    code = assemble("lidt idt\nud2\nidt: .word 0\n.long 0, 0", mode=mode, base=entry_gpa(mode))
    vp = start_vp(partition, memory, code, mode=mode)
    ud2 = entry_gpa(mode) + code.index(b"\x0f\x0b")
    [exit_] = assert_exits(vp, [Unrecoverable(rip=ud2)])
    assert exit_.header.mode == mode  # type: ignore[attr-defined]


def _exception_message(vector: int, error_code: int, rip: int) -> bytes:
    """An HVMSG_X64_EXCEPTION_INTERCEPT as the hypervisor writes it (hv_x64_exception_intercept_message)."""
    msg = ffi.new("struct hv_message *")
    msg.header.message_type = lib.HVMSG_X64_EXCEPTION_INTERCEPT
    payload = ffi.cast("struct hv_x64_exception_intercept_message *", msg.payload)
    payload.exception_vector, payload.error_code, payload.header.rip = vector, error_code, rip
    return bytes(ffi.buffer(msg))


def test_guest_exception_expectations_compare_vector_and_error_code() -> None:
    got = decode(_exception_message(13, 0x18, 0x10004))
    assert isinstance(got, ExceptionIntercept)
    assert observed(got) == GuestException(13, 0x18, rip=0x10004)
    assert GuestException(13).mismatches(got) == []
    assert GuestException(13, 0x18, rip=0x10004).mismatches(got) == []
    assert GuestException(14, 0x18).mismatches(got) == ["vector: expected 14, got 13"]
    assert GuestException(13, 0).mismatches(got) == ["error_code: expected 0x0, got 0x18"]
    assert Halt().mismatches(got) == ["expected Halt, got GuestException"]


def test_a_breakpoint_is_a_guest_exception_where_the_backend_intercepts_it(
    partition: Partition, memory: GuestMemory
) -> None:
    if not probe("exception_intercepts").available:
        pytest.xfail(f"the backend refuses exception intercepts: {probe('exception_intercepts').detail}")
    vp = start_vp(
        partition, memory, assemble("nop; int3; hlt", mode="protected", base=PAGED_CODE_GPA), mode="protected"
    )
    partition.install_intercept("exception", vector=3)
    [bp] = assert_exits(vp, [GuestException(3, rip=PAGED_CODE_GPA + 1)])
    vp.reg_write("rip", bp.rip + 1)  # type: ignore[attr-defined]
    assert isinstance(vp.run(), HaltIntercept)


def test_reads_without_their_value_are_refused_before_the_vp_runs(
    partition: Partition, memory: GuestMemory
) -> None:
    vp = start_vp(partition, memory, assemble("in $0x11, %al; hlt"), mode="real")
    with pytest.raises(ValueError, match="an IN needs the value it reads"):
        assert_exits(vp, [IoPort(0x11, write=False), Halt()])
    with pytest.raises(TypeError, match="mshv.exits.Exit"):
        assert_exits(vp, [IoPortIntercept])  # type: ignore[list-item]
    assert vp.exits == 0


def test_run_to_halt_answers_ins_and_collects_outs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

def test_sum(mshv_guest):
    guest = mshv_guest("in $0x11, %al; add $1, %al; out %al, $0x12; out %al, $0x13; hlt", mode="real")
    assert guest.run_to_halt({0x11: 41}) == [42, 42]

def test_unknown_in(mshv_guest):
    guest = mshv_guest("in $0x11, %al; hlt", mode="real")
    with pytest.raises(AssertionError, match="IN from port 0x11 at RIP 0x1000, which ins lacks"):
        guest.run_to_halt()

def test_runaway(mshv_guest):
    guest = mshv_guest("1: out %al, $0x10; jmp 1b", mode="long")
    with pytest.raises(AssertionError, match="no HLT within 5 exits"):
        guest.run_to_halt(max_exits=5)

def test_other_exit(mshv_guest):
    guest = mshv_guest("movb $1, 0x100000; hlt", mode="long")
    with pytest.raises(AssertionError, match="expected port IO or HLT, got MemoryIntercept"):
        guest.run_to_halt()
"""
    )
    _run(pytester).assert_outcomes(passed=4)
