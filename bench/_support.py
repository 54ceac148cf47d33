"""What the benchmark suites share: C baselines, guest code, partitions, recorded ratios.

The C baselines (bench/c/*.c) are compiled at run time with gcc into a cache
directory keyed by the sources' hash, and run once per session: each prints
JSON lines (bench/c/bench_common.h). The /dev/mshv client runs under
LD_PRELOAD of the emulator library when the backend is the emulator, and
directly on a root host (the kernel's /dev/mshv).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mshv import GuestMemory, Mshv, Partition, Vp, backend
from mshv._abi import ffi as abi_ffi
from mshv._abi import lib as abi_lib
from mshv.testing import assemble, long_mode_registers

BENCH_DIR = Path(__file__).resolve().parent
C_DIR = BENCH_DIR / "c"


def _include_root() -> Path:
    """ioctl_defs/include of a checkout, else the copy installed as mshv/include."""
    checkout = BENCH_DIR.parent / "ioctl_defs" / "include"
    if (checkout / "mshv_hvdefs.h").is_file():
        return checkout
    import mshv

    return Path(mshv.__file__).resolve().parent / "include"


INCLUDE_ROOT = _include_root()
INCLUDE_DIRS = [INCLUDE_ROOT / "bundled", INCLUDE_ROOT]

QUICK = os.environ.get("MSHV_BENCH_QUICK", "") == "1"

# Guest layout; the C side has the same numbers in bench_common.h.
CODE_GPA = 0x10000
RAM_SIZE = 0x40000
MMIO_GPA = 0x100000
TOUCH_GPA = 0x10000000
MAP_GPA = 0x100000000
IN_VALUE = 0x5A
MMIO_VALUE = 0x1234
PORT = 0x80

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def _selected_sizes() -> list[int] | None:
    """The map sizes ``mshv bench --sizes`` chose (MSHV_BENCH_SIZES, bytes, comma-separated)."""
    text = os.environ.get("MSHV_BENCH_SIZES", "").strip()
    return sorted({int(size) for size in text.split(",")}) if text else None


_SIZES = _selected_sizes()
# 4 KiB pages: 4 KiB ... 1 GiB in powers of 4, and 2 MiB; 2 MiB pages: 2 MiB ... 1 GiB
MAP_SIZES_4K = [4 * KIB * 4**i for i in range(10)] + [2 * MIB] if _SIZES is None else _SIZES
MAP_SIZES_2M = (
    [2 * MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, GIB]
    if _SIZES is None
    else [size for size in _SIZES if size % (2 * MIB) == 0]
)

GUESTS = {
    "out": f"mov ${PORT:#x}, %dx\n1: out %al, %dx\njmp 1b",
    "in": f"mov ${PORT:#x}, %dx\n1: in %dx, %al\njmp 1b",
    "mmio_read": f"mov ${MMIO_GPA:#x}, %rbx\n1: mov (%rbx), %eax\njmp 1b",
    "mmio_write": f"mov ${MMIO_GPA:#x}, %rbx\n1: mov %eax, (%rbx)\njmp 1b",
    "touch": f"mov ${TOUCH_GPA:#x}, %rbx\n1: movb $1, (%rbx)\nout %al, ${PORT:#x}\njmp 1b",
}
EXIT_KINDS = ["out", "in", "mmio_read", "mmio_write"]


def exits_per_round() -> tuple[int, int]:
    """(exits per round, rounds) for the exit-latency cases."""
    return (1000, 5) if QUICK else (20000, 9)


def cache_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"mshv-bench-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def guest_image(kind: str) -> Path:
    """The flat binary of guest ``kind`` (64-bit code at CODE_GPA), cached by source."""
    source = GUESTS[kind]
    path = cache_dir() / f"guest-{kind}-{hashlib.sha256(source.encode()).hexdigest()[:12]}.bin"
    if not path.exists():
        path.write_bytes(assemble(source, mode="long", base=CODE_GPA))
    return path


def compile_c(name: str, *, shared: bool = False) -> Path:
    """gcc bench/c/<name>.c (an executable, or a shared library) into the cache.

    The cache key covers the source and every header it may include.
    """
    sources = [C_DIR / f"{name}.c", *sorted(C_DIR.glob("*.h"))]
    sources += sorted(p for d in INCLUDE_DIRS for p in d.rglob("*.h"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    exe = cache_dir() / f"{name}-{digest.hexdigest()[:16]}{'.so' if shared else ''}"
    if not exe.exists():
        cmd = [os.environ.get("CC", "gcc"), "-O2", "-Wall", "-Wextra", "-Werror"]
        cmd += ["-shared", "-fPIC"] if shared else []
        cmd += [f"-I{d}" for d in INCLUDE_DIRS] + ["-o", f"{exe}.tmp", str(sources[0])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        os.replace(f"{exe}.tmp", exe)
    return exe


@dataclass
class CResult:
    """One C baseline: median ns per exit or per call, its samples, and what else it reported
    (the exit cases: their paired raw KVM median and ratios, see bench/c/mshv_client.c)."""

    case: str
    unit: str
    median_ns: float
    samples_ns: list[float] = field(default_factory=list)
    paired: dict[str, float] = field(default_factory=dict)


class CBaselines:
    """Runs each C baseline once per session and remembers the result."""

    def __init__(self) -> None:
        self.results: dict[str, CResult] = {}
        self.notes: list[str] = []

    def _run(self, exe: Path, args: list[str], mshv: bool) -> CResult:
        env = dict(os.environ)
        chosen = backend.select()
        if mshv and chosen.name == "emulator":
            env["LD_PRELOAD"] = backend.emulator_library_path()
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{exe.name} {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        case, unit, median, samples = (data.pop(k) for k in ("case", "unit", "median_ns", "samples_ns"))
        paired = {key: float(value) for key, value in data.items()}
        result = CResult(case, unit, float(median), samples, paired)
        self.results[result.case] = result
        return result

    def get(self, case: str, args: list[str], *, mshv: bool = True) -> CResult:
        """The result of C ``case`` (``c_kvm_*`` run kvm_exits, the rest mshv_client)."""
        if case not in self.results:
            exe = compile_c("mshv_client" if mshv else "kvm_exits")
            self._run(exe, args, mshv)
        return self.results[case]

    def to_json(self) -> dict[str, Any]:
        return {"results": {k: vars(v) for k, v in self.results.items()}, "notes": self.notes}


def paired_c(case: str, unit: str, samples_ns: list[float], rounds: int) -> CResult:
    """The C rounds run before each measured Python round (the warm-up round's C round goes)."""
    kept = samples_ns[-rounds:]
    return CResult(case, unit, statistics.median(kept), kept)


class InProcessC:
    """The C timers of bench/c/inproc.c, loaded into this process.

    They call /dev/mshv through mshv._abi's kernel table, so the C and Python
    sides use the same backend in the same process, and a bench can run a C
    round right before each Python round (the host's speed drifts by phases).
    """

    def __init__(self) -> None:
        from cffi import FFI

        self._ffi = FFI()
        self._ffi.cdef(
            "long long bench_map_unmap_ns(void *table, int pt_fd, unsigned long long uaddr,"
            " unsigned long long size, unsigned long long gpa);"
            "long long bench_exits_ns(void *table, int vp_fd, void *register_page, int kind, int n);"
            "long long bench_touch_ns(void *table, int pt_fd, int vp_fd, void *register_page,"
            " unsigned long long gpa, unsigned long long size);"
            "long long bench_regs_ns(void *table, int fd, unsigned int vp_index, int set,"
            " const unsigned int *names, void *values, int n);"
            "long long bench_run_ns(void *table, int vp_fd, void *register_page);"
            "long long bench_bitmap_ns(void *table, int pt_fd, unsigned long long gpa,"
            " unsigned long long npages, void *bitmap);"
            "struct bench_region_copy { void *dst; const void *src; const void *bitmap;"
            " unsigned long long npages; };"
            "long long bench_restore_ns(void *table, const int *fds, void *const *batches,"
            " const int *counts, int nbatches, int copy_at, const struct bench_region_copy *copies,"
            " int ncopies, void *page_dst, const void *page_src, unsigned long long page_len);"
        )
        self._lib = self._ffi.dlopen(str(compile_c("inproc", shared=True)))
        self._table = self._ffi.cast("void *", int(abi_ffi.cast("uintptr_t", abi_lib.mshv_kernel_table())))

    def map_unmap_ns(self, pt_fd: int, uaddr: int, size: int, gpa: int) -> int:
        """ns for one map + unmap, timed in C."""
        ns = int(self._lib.bench_map_unmap_ns(self._table, pt_fd, uaddr, size, gpa))
        if ns < 0:
            raise OSError(-ns, f"C map/unmap of {size:#x} bytes at {gpa:#x}: {os.strerror(-ns)}")
        return ns

    def exits_ns(self, vp: Vp, kind: str, n: int) -> int:
        """ns for ``n`` exits of ``vp`` running the guest of ``kind``, driven and timed in C."""
        ns = int(self._lib.bench_exits_ns(self._table, vp.fd, self._page(vp), EXIT_KINDS.index(kind), n))
        if ns < 0:
            raise OSError(-ns, f"C exits of the {kind} guest: {os.strerror(-ns)}")
        return ns

    def touch_ns(self, pt: Partition, vp: Vp, gpa: int, size: int) -> int:
        """ns for the run in which the "touch" guest first writes fresh memory mapped at ``gpa``."""
        ns = int(self._lib.bench_touch_ns(self._table, pt.fd, vp.fd, self._page(vp), gpa, size))
        if ns < 0:
            raise OSError(-ns, f"C first touch of {size:#x} bytes at {gpa:#x}: {os.strerror(-ns)}")
        return ns

    def run(self, vp: Vp) -> Callable[[], int]:
        """``timer()``: ns for one MSHV_RUN_VP of ``vp`` that ends in the bench's OUT (completed
        after), timed in C."""
        fd, page = vp.fd, self._page(vp)

        def timer() -> int:
            ns = int(self._lib.bench_run_ns(self._table, fd, page))
            if ns < 0:
                raise OSError(-ns, f"C run of VP {vp.index}: {os.strerror(-ns)}")
            return ns

        return timer

    def bitmap(self, pt: Partition, gpa: int, npages: int) -> Callable[[], int]:
        """``timer()``: ns for one read and clear of the dirty bits of ``npages`` pages from
        ``gpa`` (MSHV_GET_GPAP_ACCESS_BITMAP), timed in C."""
        bitmap = self._ffi.new("unsigned char[]", (npages + 7) // 8)

        def timer() -> int:
            ns = int(self._lib.bench_bitmap_ns(self._table, pt.fd, gpa, npages, bitmap))
            if ns < 0:
                raise OSError(-ns, f"C dirty bitmap of {npages} pages at {gpa:#x}: {os.strerror(-ns)}")
            return ns

        return timer

    def regs(self, vp: Vp, names: list[int]) -> Callable[[str], int]:
        """``timer(op)``: ns for one batch of ``names`` on ``vp``, read ("get") or written back
        ("set": the values read when the timer was made), timed in C."""
        count = len(names)
        c_names = self._ffi.new("unsigned int[]", names)
        values = self._ffi.new("unsigned char[]", 16 * count)  # union hv_register_value[count]

        def timer(op: str) -> int:
            set_ = op == "set"
            ns = int(self._lib.bench_regs_ns(self._table, vp.fd, vp.index, set_, c_names, values, count))
            if ns < 0:
                raise OSError(-ns, f"C register {op} of {count} names: {os.strerror(-ns)}")
            return ns

        timer("get")
        return timer

    def restore(self, pt: Partition, snap: Any) -> Callable[[], int]:
        """``timer()``: ns for a dirty-page restore of ``snap`` into ``pt`` made of the calls its
        restore program has ready (mshv.snapshot._Program: one VP whose register page takes the
        packed registers; ``pt.restore(snap)`` once first), issued and timed in C."""
        from mshv import regpage

        program = pt._restore_program
        vps = program.live_vps(pt, snap) if program is not None else None
        page = vps[0].register_page if vps is not None and len(vps) == 1 else None
        if program is None or page is None or program.plans[0].packed is None:
            raise ValueError("restore the snapshot once first (one VP, registers packed for its page)")

        def pointer(cdata: Any) -> Any:  # a cdata of mshv._abi's ffi, as a void * of this one
            return self._ffi.cast("void *", int(abi_ffi.cast("uintptr_t", cdata)))

        batches = [program.read_frozen, program.freeze, program.bitmaps, program.vp_calls, program.thaw]
        steps = self._ffi.new("void *[]", [pointer(batch.steps()) for batch in batches])
        counts = self._ffi.new("int[]", [len(batch) for batch in batches])
        sources = [self._ffi.from_buffer(snap.memory[index]) for index, _bitmap, _npages in program.dirty]
        copies = self._ffi.new("struct bench_region_copy[]", [
            (self._ffi.cast("void *", program.regions[index].memory.address + program.regions[index].offset),
             source, pointer(bitmap), npages)
            for (index, bitmap, npages), source in zip(program.dirty, sources, strict=True)
        ])  # fmt: skip
        packed = self._ffi.from_buffer(program.plans[0].packed)
        page_dst = self._ffi.cast("void *", page.address + abi_ffi.offsetof("struct hv_vp_register_page",
                                                                            regpage.PACKED[0]))  # fmt: skip
        fds = pointer(program.fds)

        def timer() -> int:
            ns = int(self._lib.bench_restore_ns(self._table, fds, steps, counts, len(batches), 3, copies,
                                                len(sources), page_dst, packed, len(packed)))  # fmt: skip
            if ns < 0:
                raise OSError(-ns, f"C restore: {os.strerror(-ns)}")
            return ns

        return timer

    def _page(self, vp: Vp) -> Any:
        page = vp.register_page
        if page is None:
            raise OSError(errno.ENODEV, "the C timers complete through the register page")
        return self._ffi.cast("void *", page.address)


def _rounds_ns(benchmark: Any, per: int) -> list[float]:
    """The Python rounds of ``benchmark``, in order, in ns per ``per`` operations."""
    return [t * 1e9 / per for t in benchmark.stats.stats.data]


def _paired_ratio(case: str, rounds_ns: list[float], baseline_ns: list[float]) -> float:
    """The median of the per-round ratios of ``rounds_ns`` to ``baseline_ns`` (one baseline
    round run right before each Python round, in order)."""
    if len(baseline_ns) != len(rounds_ns):
        raise ValueError(f"{case}: {len(baseline_ns)} baseline rounds for {len(rounds_ns)} Python rounds")
    return statistics.median(p / q for p, q in zip(rounds_ns, baseline_ns, strict=True))


def record(benchmark: Any, *, case: str, group: str, impl: str, unit: str, per: int,
           c: CResult | None, paired: bool = False, **extra: Any) -> None:  # fmt: skip
    """Store the case's median (ns per ``unit``) and its ratio to the C baseline in the JSON.

    ``paired``: ``c.samples_ns`` holds one C round run right before each Python round (in
    order), so ``ratio_to_c`` is the median of the per-round ratios, which cancels the host's
    drift between rounds; ``ratio_of_medians`` is kept beside it.
    """
    median_ns = benchmark.stats.stats.median * 1e9 / per
    info = benchmark.extra_info
    info.update(case=case, group=group, impl=impl, unit=unit, median_ns=median_ns, **extra)
    if c is None:
        return
    info.update(c_case=c.case, c_median_ns=c.median_ns, ratio_to_c=median_ns / c.median_ns)
    info["ratio_of_medians"] = info["ratio_to_c"]
    rounds_ns = _rounds_ns(benchmark, per)
    if paired:
        info["ratio_to_c"] = _paired_ratio(case, rounds_ns, c.samples_ns)
    # Minimum over rounds: less sensitive to the host's slow phases (shared 2-CPU machine),
    # which can hit the C process and the Python process at different times.
    if c.samples_ns:
        info["ratio_min_to_c"] = min(rounds_ns) / min(c.samples_ns)


def record_python_floor(benchmark: Any, floor_ns: list[float]) -> None:
    """Store the Python floor of a paired case: its C rounds, each timed from Python around
    the one call that runs it (the call and its return, cold after the system calls, and the
    timer: what a Python caller pays on top of C whatever the binding). ``ratio_to_python_floor``
    is the median of the per-round ratios, as ``ratio_to_c`` is."""
    info = benchmark.extra_info
    info["python_floor_ns"] = statistics.median(floor_ns)
    info["ratio_to_python_floor"] = _paired_ratio(info["case"], _rounds_ns(benchmark, 1), floor_ns)


@contextmanager
def long_mode_vp(kind: str) -> Iterator[tuple[Partition, Vp, GuestMemory]]:
    """A partition with RAM at GPA 0 and VP 0 in 64-bit mode at guest ``kind``'s code."""
    with Mshv() as hv, GuestMemory(RAM_SIZE) as mem:
        pt = hv.create_partition(lapic=False)
        try:
            mem.write(CODE_GPA, guest_image(kind).read_bytes())
            pt.map_memory(mem, 0)
            vp = pt.create_vp(0)
            vp.set_registers(long_mode_registers(mem, CODE_GPA))  # type: ignore[arg-type]
            yield pt, vp, mem
        finally:
            pt.close()


NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
FREE_HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")


@contextmanager
def hugepages(
    count: int,
    notes: list[str],
    *,
    reserve: bool,
    nr_path: Path = NR_HUGEPAGES,
    free_path: Path = FREE_HUGEPAGES,
) -> Iterator[bool]:
    """Whether ``count`` free 2 MiB hugetlb pages are there for the session.

    The host's setting is changed only with ``reserve`` (``mshv bench --reserve-hugepages``,
    root): then the missing pages are added to vm.nr_hugepages for the session and the old
    value is put back afterwards. Without it, too few free pages is a note, and the 2 MiB
    cases are skipped.
    """
    try:
        old, free = int(nr_path.read_text()), int(free_path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"hugetlb: cannot read the free 2 MiB page count: {exc}")
        yield False
        return
    missing = count - free
    if missing <= 0:
        yield True
        return
    if not reserve:
        notes.append(
            f"hugetlb: {count} free 2 MiB pages needed, {free} free: the 2 MiB cases were skipped "
            "(mshv bench --reserve-hugepages reserves them for the run, as root, and restores "
            "vm.nr_hugepages)"
        )
        yield False
        return
    try:
        nr_path.write_text(f"{old + missing}\n")
        ok = int(nr_path.read_text()) >= old + missing  # the kernel may find fewer free pages
    except OSError as exc:
        notes.append(f"hugetlb: cannot reserve {missing} more 2 MiB pages: {exc}")
        yield False
        return
    if not ok:
        notes.append(f"hugetlb: asked for {old + missing} 2 MiB pages, got {nr_path.read_text().strip()}")
    try:
        yield ok
    finally:
        nr_path.write_text(f"{old}\n")
