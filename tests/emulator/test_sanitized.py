"""The emulator built with AddressSanitizer and UndefinedBehaviorSanitizer, under its C clients.

The library is built here from emulator/*.c with build_ext's flags plus
``-fsanitize=address,undefined -fno-sanitize-recover=undefined`` (any report
aborts the process), and preloaded after the ASan runtime (which must come
first in a process's library list). Besides a control that the sanitizers are live:

- every test module that drives a C client (core, run, props, synthetic,
  threads, gpap, irq, hvcall, register page, vpstate, rust-vmm road...) runs
  again in a pytest subprocess against the sanitized library
  (``MSHV_EMU_LIB``, ``MSHV_EMU_PRELOAD_FIRST``); their own assertions apply;
- a fuzz pass: fuzz_client.c processes side by side, at least 300,000 calls
  in all, seeded fresh on each run from os.urandom. The seeds are printed
  (``pytest -s`` shows them; they are in the report of a failure too) and
  ``MSHV_FUZZ_SEED=<seed>`` replays one: it then seeds the first process.

ASan's leak check stays off: the clients exit without freeing their own
allocations. fuzz_client.c counts lost fds instead (its mapping count is
left out here: ASan's allocator maps memory as it goes; the plain runs of
test_fuzz.py count mappings).
``allocator_may_return_null=1``: the emulator sizes buffers from client
input, as the kernel does, and answers ENOMEM when that fails;
``max_allocation_size_mb=256`` makes larger ones fail, as the kernel's vzalloc
of page_count bytes fails past free memory (under ASan a multi-GiB buffer
costs seconds of shadow mapping, and the fuzzer's watchdog saw that as a
hang). The watchdog waits 60 s here (FUZZ_HANG_SECONDS), for loaded hosts.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fuzzing import SEED_ENV, failures, fresh_seed, run_fuzzers
from guest import INCLUDE_DIRS, ROOT, compile_c

HERE = Path(__file__).resolve().parent
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
ASAN_OPTIONS = ":".join(
    [
        "halt_on_error=1",
        "detect_leaks=0",
        "allocator_may_return_null=1",
        "max_allocation_size_mb=256",
        "abort_on_error=0",
    ]
)
UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1"

# The modules whose tests run the emulator in C clients (their fixtures preload_env or
# emu_lib: under LD_PRELOAD, or dlopen()ed), found by name so a new one is covered too;
# the fuzzer runs below with its own seeds.
CLIENT_MODULES = sorted(
    path.name
    for path in HERE.glob("test_*.py")
    if path.name not in ("test_sanitized.py", "test_fuzz.py")
    and any(fixture in path.read_text() for fixture in ("preload_env", "emu_lib"))
)

# The fuzz pass: FUZZ_PROCS processes x FUZZ_OPS operations (about 1.5 calls each).
FUZZ_PROCS = 8
FUZZ_OPS = 28_000
FUZZ_MIN_CALLS = 300_000


def _runtime(name: str) -> str:
    path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    assert os.path.isabs(path) and os.path.isfile(path), (
        f"gcc has no {name} (install libasan/libubsan): {path!r}"
    )
    return path


@pytest.fixture(scope="module")
def sanitized_lib(kvm: str) -> str:
    """emulator/*.c built with ASan and UBSan, cached by source hash like guest.py's build."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from build_ext.emulator import CFLAGS  # noqa: PLC0415

    sources = sorted((ROOT / "emulator").glob("*.c"))
    headers = sorted((ROOT / "emulator").glob("*.h")) + sorted((ROOT / "ioctl_defs" / "include").rglob("*.h"))
    digest = hashlib.sha256(" ".join(CFLAGS + SANITIZE).encode())
    for path in sources + headers:
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"mshv-emu-build-{os.getuid()}"
    cache.mkdir(exist_ok=True)
    lib = cache / f"{digest.hexdigest()[:16]}-asan-ubsan-libmshv_emu.so"
    if not lib.is_file():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        cmd = ["gcc", *CFLAGS, "-O1", "-g", *SANITIZE, "-fPIC", "-shared", "-Iemulator"]
        cmd += [f"-I{d}" for d in INCLUDE_DIRS]
        cmd += [str(s) for s in sources] + ["-o", str(tmp), "-lpthread", "-ldl"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"sanitized build failed:\n{proc.stdout}{proc.stderr}"
        tmp.rename(lib)
    return str(lib)


@pytest.fixture(scope="module")
def sanitized_env(sanitized_lib: str) -> dict[str, str]:
    """Environment for a C client under the ASan runtime and the sanitized emulator."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = f"{_runtime('libasan.so')}:{sanitized_lib}"
    env["ASAN_OPTIONS"] = ASAN_OPTIONS
    env["UBSAN_OPTIONS"] = UBSAN_OPTIONS
    return env


def test_sanitized_library_is_instrumented(
    sanitized_lib: str, sanitized_env: dict[str, str], tmp_path: Path
) -> None:
    """The control: the library carries the sanitizers' checks, and ASan is live in a client
    run with this environment (a heap overflow in a client's memcpy aborts it), so the silence of
    the other tests means something."""
    image = Path(sanitized_lib).read_bytes()
    assert b"__asan_report_" in image and b"__ubsan_handle_" in image
    src = tmp_path / "overflow.c"
    src.write_text(
        "#include <stdlib.h>\n#include <string.h>\n#include <fcntl.h>\n#include <unistd.h>\n"
        'int main(void) { int fd = open("/dev/mshv", O_RDWR); char *p = malloc(8), d[16];\n'
        "  memcpy(d, p, 9 + (fd < 0)); close(fd); return d[0] & 0; }\n"
    )
    exe = compile_c(src, tmp_path, ["-fno-builtin"])
    proc = subprocess.run([exe], env=sanitized_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "heap-buffer-overflow" in proc.stderr, proc.stderr[-2000:]


def test_client_modules_are_found() -> None:
    assert {"test_core_rules.py", "test_run_guest.py", "test_threads_c.py"} <= set(CLIENT_MODULES)


def test_c_clients_under_asan_ubsan(sanitized_lib: str) -> None:
    """Every C-client test module, again, with the sanitized emulator (MSHV_EMU_LIB): the
    pytest subprocess runs under the ASan runtime (LD_PRELOAD), so clients that dlopen()
    the library inherit it, and preload_env puts it before the library for the others.
    Each test passes (or xfails as it does without sanitizers), and no sanitizer report
    aborts a client."""
    asan = _runtime("libasan.so")
    env = dict(os.environ)
    env.update(
        MSHV_EMU_LIB=sanitized_lib,
        MSHV_EMU_PRELOAD_FIRST=asan,
        LD_PRELOAD=asan,
        ASAN_OPTIONS=ASAN_OPTIONS,
        UBSAN_OPTIONS=UBSAN_OPTIONS,
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    cmd += [str(HERE / m) for m in CLIENT_MODULES]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    report = proc.stdout[-8000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert " passed" in proc.stdout and "Sanitizer" not in report and "runtime error:" not in report, report


def test_fuzz_under_asan_ubsan(sanitized_lib: str, sanitized_env: dict[str, str], tmp_path: Path) -> None:
    """At least 300,000 random calls from fuzz_client.c, fresh seeds each run (printed;
    MSHV_FUZZ_SEED replays), against the sanitized emulator: no sanitizer report, crash,
    hang, odd errno, or fd or mapping left behind."""
    fuzzer = compile_c(HERE / "fuzz_client.c", tmp_path)
    base = fresh_seed()
    seeds = [(base + i) & (2**63 - 1) for i in range(FUZZ_PROCS)]
    print(f"fuzz seeds: {seeds} ({FUZZ_OPS} operations each; replay one with {SEED_ENV}=<seed>)")
    env = dict(sanitized_env, FUZZ_HANG_SECONDS="60")
    runs = run_fuzzers(fuzzer, env, seeds, FUZZ_OPS, timeout=900, args=["fdcheck"])
    bad = failures(runs, fuzzer, f"{sanitized_env['LD_PRELOAD']} ASAN_OPTIONS={ASAN_OPTIONS}")
    assert not bad, f"seeds {seeds}:\n" + "\n".join(bad)
    calls = sum(run.calls() for run in runs)
    print(f"fuzz calls: {calls}")
    assert calls >= FUZZ_MIN_CALLS, f"only {calls} calls (seeds {seeds})"
