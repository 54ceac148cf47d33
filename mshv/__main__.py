"""Command line: ``python -m mshv`` (also installed as ``mshv``)."""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mshv import abi as abi_mod
from mshv import backend as backend_mod
from mshv import probe
from mshv import seccomp as seccomp_mod
from mshv.run_cli import add_run_parser

_ABI_BUILDS = {
    "compiled": "compiled (cffi API mode, {path})",
    "snapshot": "snapshot (pure Python, cffi ABI mode: built without a C compiler)",
}


def _cmd_info(args: argparse.Namespace) -> int:
    import mshv._abi
    from mshv._abi import ffi, lib

    print(f"kernel:        {platform.system()} {platform.release()} ({platform.machine()})")
    print(f"abi:           {_ABI_BUILDS[abi_mod.abi_build()].format(path=mshv._abi.__file__)}")
    print(f"header:        {ffi.string(lib.mshv_abi_header()).decode()}")
    reason = ffi.string(lib.mshv_abi_header_reason()).decode()
    if reason:
        print(f"               ({reason})")
    try:
        chosen = backend_mod.select()
    except backend_mod.BackendUnavailable as exc:
        print(f"backend:       none: {exc}")
        return 1
    print(f"backend:       {chosen.name} ({chosen.reason})")
    if chosen.name == "emulator":
        override = f" (from ${backend_mod.EMULATOR_LIBRARY_ENV})" if backend_mod.emulator_overridden() else ""
        print(f"emulator:      {backend_mod.emulator_library_path()}{override}")
        print(f"synthetic:     {backend_mod.emulator_synthetic_view()}")
    print("ioctl support (probed with a NULL argument: EFAULT = handled, ENOTTY = unknown):")
    for result in probe.probe_ioctls():
        print(f"  {result.name:<30} {result.fd_kind:<10} {result.verdict}")
    _print_limits()
    return 0


# Verdict words by kind of limit: (works, does not, inconclusive); upper case marks a limit.
_VERDICTS = {"intercept": ("accepted", "REFUSED"), "TSC writes": ("applied", "IGNORED")}


def _print_limits() -> None:
    from mshv import limits

    print("backend limits (probed on this backend: tiny guests, hypercalls, a TSC write):")
    for limit in limits.probe_limits():
        kind = next((k for k in _VERDICTS if k in limit.name), "")
        yes, no = _VERDICTS.get(kind, ("works", "FAILS"))
        verdict = "inconclusive" if limit.works is None else yes if limit.works else no
        print(f"  {limit.name:<44} {verdict:<12} {limit.detail}")


def _cmd_abi(args: argparse.Namespace) -> int:
    if args.json:
        json.dump(abi_mod.abi_report(), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    if args.collisions:
        _print_collisions()
        return 0
    report = abi_mod.abi_report()
    print(f"source: {report['source']}")
    for name, info in report["structs"].items():
        print(f"struct {name} ({info['size']} bytes)")
        for field, offset in info["fields"].items():
            print(f"  {offset:5d}  {field}")
    print("constants:")
    for name, value in report["constants"].items():
        print(f"  {name:<48} {value:#x}")
    return 0


def _fmt(info: abi_mod.IoctlInfo) -> str:
    return (
        f"{info.name:<32} {info.number:#010x}  {info.direction}(0x{info.type:02X}, {info.nr:#04x}, "
        f"{info.size} B)  {info.owner}"
    )


def _print_collisions() -> None:
    found = abi_mod.collisions()
    print("Identical ioctl numbers (two definitions, one 32-bit number):")
    for c in (c for c in found if c.exact):
        for info in c.members:
            print(f"  {_fmt(info)}")
        print()
    print("Shared type and command number, different size or direction (distinct numbers):")
    for c in (c for c in found if not c.exact):
        for info in c.members:
            print(f"  {_fmt(info)}")
        print()
    print("A root-partition client must never send these (they are ENOTTY on mshv_root fds,")
    print("and on their own devices they mean something else):")
    for info in abi_mod.never_send():
        print(f"  {_fmt(info)}")


def _cmd_emulator(args: argparse.Namespace) -> int:
    if args.preload_path:
        print(backend_mod.emulator_library_path())
        return 0
    print("usage: mshv emulator --preload-path", file=sys.stderr)
    return 2


def _cmd_bench(args: argparse.Namespace) -> int:
    from mshv.bench import run_bench

    return run_bench(
        quick=args.quick,
        json_path=args.json,
        plot_path=args.plot,
        only=args.only,
        sizes=args.sizes,
        reserve_hugepages=args.reserve_hugepages,
    )


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser that raises ValueError with the message to show."""

    def check(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def examples_dir() -> Path | None:
    """Where the examples are: the installed package's ``mshv/examples`` (shipped with it), else
    the ``examples/`` of the checkout the package runs from."""
    package = Path(__file__).resolve().parent
    for path in (package / "examples", package.parent / "examples"):
        if (path / "hello_guest.py").is_file():
            return path
    return None


def _cmd_examples(args: argparse.Namespace) -> int:
    where = examples_dir()
    if where is None:
        print(
            "mshv: no examples found (the installed package has no mshv/examples): reinstall", file=sys.stderr
        )
        return 2
    scripts = {path.stem: path for path in sorted(where.glob("*.py")) if not path.name.startswith("_")}
    if args.path:
        print(where)
        return 0
    if args.name is None:
        print(f"examples in {where} (run one: mshv examples NAME):")
        for name, path in scripts.items():
            summary = (ast.get_docstring(ast.parse(path.read_text())) or "").splitlines()
            print(f"  {name:<14} {summary[0] if summary else ''}")
        return 0
    script = scripts.get(args.name.removesuffix(".py"))
    if script is None:
        print(f"mshv: no example {args.name!r}; there are: {', '.join(scripts)}", file=sys.stderr)
        return 2
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mshv.demo import run_demo

    run_demo(loops=args.loops)
    return 0


def _cmd_seccomp(args: argparse.Namespace) -> int:
    kvm = {"auto": None, "kernel": False, "emulator": True}[args.backend]
    try:
        chosen = seccomp_mod.profile(
            kvm=kvm, collision=args.collision, unlisted_ioctl=args.unlisted_ioctl, other_syscalls=args.others
        )
        if args.oci:
            json.dump(chosen.oci(), sys.stdout, indent=1)
            print()
        elif args.bpf:
            with open(args.bpf, "wb") as out:
                out.write(chosen.bpf())
        elif args.pfc:
            print(chosen.pfc(), end="")
        else:
            print(chosen.describe())
    except (seccomp_mod.SeccompUnavailable, backend_mod.BackendUnavailable) as exc:
        print(f"mshv seccomp: {exc}", file=sys.stderr)
        return 1
    return 0


def _seccomp_action(text: str) -> seccomp_mod.Action:
    try:
        return seccomp_mod.Action.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_seccomp_parser(sub: Any) -> None:
    p = sub.add_parser("seccomp", help="a seccomp filter allowing only the ioctls the binding sends")
    p.add_argument(
        "--backend",
        choices=("auto", "kernel", "emulator"),
        default="auto",
        help="emulator: also allow its /dev/kvm requests (auto: the backend this host selects)",
    )
    actions = "allow, log, trap, kill, kill-thread or an errno such as EPERM"
    p.add_argument(
        "--collision",
        type=_seccomp_action,
        default=seccomp_mod.DEFAULT_COLLISION,
        metavar="ACTION",
        help=f"for the colliding 0xB8 requests ({actions}; default EPERM)",
    )
    p.add_argument(
        "--unlisted-ioctl",
        type=_seccomp_action,
        default=seccomp_mod.DEFAULT_UNLISTED_IOCTL,
        metavar="ACTION",
        help="for any other ioctl, and the filter's default (default ENOTTY)",
    )
    p.add_argument(
        "--others",
        type=_seccomp_action,
        default=seccomp_mod.ALLOW,
        metavar="ACTION",
        help="for every other system call (default allow)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--oci", action="store_true", help="print the OCI/Docker seccomp JSON")
    out.add_argument("--pfc", action="store_true", help="print libseccomp's pseudo filter code")
    out.add_argument("--bpf", metavar="FILE", help="write the BPF program libseccomp built")
    p.set_defaults(func=_cmd_seccomp)


def _bench_parse(name: str) -> Callable[[str], Any]:
    """mshv.bench's parser ``name``, imported when used (mshv.bench is not needed otherwise)."""

    def parse(text: str) -> Any:
        from mshv import bench

        return getattr(bench, name)(text)

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mshv`` command."""
    parser = argparse.ArgumentParser(prog="mshv", description="Python binding to /dev/mshv")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="backend, kernel, header, ioctl support, the backend's limits")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("abi", help="the compiled ABI: structs, constants, ioctl collisions")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="machine-readable structs and constants")
    group.add_argument("--collisions", action="store_true", help="ioctl numbers shared in the 0xB8 range")
    p.set_defaults(func=_cmd_abi)
    p = sub.add_parser("demo", help="run a long-mode guest with a port-IO console and an MMIO device")
    p.add_argument("--loops", type=int, default=20000, help="OUT exits to time")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("bench", help="benchmark exits, memory mapping and registers against C baselines")
    p.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw exit latency and map cost (needs matplotlib)")
    p.add_argument("--only", metavar="SUITES", type=_checked(_bench_parse("parse_only")),
                   help="run only these, comma-separated: exits, map, touch, bitmap, regs")  # fmt: skip
    p.add_argument("--sizes", metavar="SIZES", type=_checked(_bench_parse("parse_sizes")),
                   help="map+unmap region sizes, comma-separated, e.g. 4K,64K,2M,1G")  # fmt: skip
    p.add_argument("--reserve-hugepages", action="store_true",
                   help="raise vm.nr_hugepages for the 2 MiB cases if too few are free (root); "
                   "the old value is restored afterwards")  # fmt: skip
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("examples", help="list the example scripts, or run one")
    p.add_argument("name", nargs="?", help="the example to run (e.g. hello_guest)")
    p.add_argument("--path", action="store_true", help="print the directory of the examples")
    p.set_defaults(func=_cmd_examples)
    add_run_parser(sub)
    p = sub.add_parser("emulator", help="the /dev/mshv emulator library")
    p.add_argument("--preload-path", action="store_true", help="print the LD_PRELOAD library path")
    p.set_defaults(func=_cmd_emulator)
    _add_seccomp_parser(sub)
    return parser


def _stdout_closed() -> int:
    """The reader of stdout went away (``mshv abi | head``): stop quietly, like a Unix tool.

    stdout is pointed at /dev/null so the interpreter's final flush has nowhere to fail.
    """
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mshv`` command.

    A backend that cannot be used is one line on stderr and exit status 2, not a traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()
    except backend_mod.BackendUnavailable as exc:
        print(f"mshv: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    return status


if __name__ == "__main__":
    sys.exit(main())
