"""A seccomp filter that limits ioctl to the requests a process using the binding sends.

What it covers: **ioctl only**. A request number is allowed when the binding or
the emulator sends it; the numbers that share the 0xB8 range with the root
driver's (the VTL driver's and the Marvell CN10K DPI driver's, ``mshv abi
--collisions``) are refused with their own action; every other ioctl is refused
with the filter's default action. Every other system call that libseccomp knows
on this architecture gets one action, ``other_syscalls`` (allow by default): a
Python program's other system calls depend on the program, so they are left to
the caller, or to a container runtime's own profile. System calls newer than
the installed libseccomp's table fall to the refusal too, and so, when the filter
is installed in process, do calls made through another ABI (``int $0x80``: a
32-bit ``ioctl`` would otherwise bypass the rules; an OCI runtime chooses its own
action for those).

Allowed requests, all numbers read from ``mshv._abi`` or ``termios``:

* ``mshv``: every mshv_root ioctl the binding issues (``mshv.abi.ROOT_IOCTLS``).
* ``kvm``: the /dev/kvm requests the emulator issues (ioctl_defs/kvm_requests.py),
  when the emulator is the backend. It makes them as raw system calls, so the
  filter sees them; the emulator's own /dev/mshv calls are function calls, not
  system calls.
* ``process``: what CPython itself sends to ordinary fds: TCGETS (isatty),
  TIOCGWINSZ (terminal size), FIOCLEX/FIONCLEX (os.set_inheritable), FIONBIO
  (socket.setblocking).

A request is compared on its low 32 bits, as the kernel reads it
(``SYSCALL_DEFINE3(ioctl, unsigned int, fd, unsigned int, cmd, ...)`` in
fs/ioctl.c), so setting the upper bits does not slip past a rule. libseccomp
builds the BPF (through the ``pyseccomp`` binding: ``pip install
'python-mshv[seccomp]'``); :meth:`Profile.oci` writes the same rules as the
``linux.seccomp`` document of the OCI runtime spec (runc, Docker).
"""

from __future__ import annotations

import errno as errno_mod
import tempfile
import termios
from dataclasses import dataclass
from typing import Any

from mshv import abi
from mshv._abi import lib

__all__ = [
    "ALLOW",
    "DEFAULT_COLLISION",
    "DEFAULT_UNLISTED_IOCTL",
    "Action",
    "IoctlRequest",
    "Profile",
    "SeccompUnavailable",
    "collision_requests",
    "install",
    "kvm_requests",
    "load_libseccomp",
    "mshv_requests",
    "other_syscalls",
    "process_requests",
    "profile",
]

#: The kernel reads an ioctl request as an unsigned int: compare the low 32 bits.
REQUEST_MASK = 0xFFFF_FFFF
_PROCESS_IOCTLS = ("TCGETS", "TIOCGWINSZ", "FIOCLEX", "FIONCLEX", "FIONBIO")
_MAX_SYSCALL_NR = 1024  # past every native table libseccomp has (x86_64 ends below 512)


class SeccompUnavailable(RuntimeError):
    """libseccomp or its Python binding is missing; the message says what to install."""


def load_libseccomp() -> Any:
    """Import the libseccomp binding (``pyseccomp``), or raise SeccompUnavailable saying why."""
    try:
        import pyseccomp
    except ImportError:
        raise SeccompUnavailable(
            "the libseccomp binding is not installed: pip install 'python-mshv[seccomp]' (pyseccomp)"
        ) from None
    except RuntimeError as exc:  # pyseccomp raises this when it cannot find libseccomp.so
        raise SeccompUnavailable(
            f"libseccomp is not installed ({exc}): install it, e.g. apt-get install libseccomp2"
        ) from None
    return pyseccomp


@dataclass(frozen=True)
class Action:
    """What the filter does with a call: ``allow``, ``log``, ``trap``, ``kill_process``,
    ``kill_thread``, or ``errno`` (fail with :attr:`errno`)."""

    kind: str
    errno: int = 0

    _KINDS = ("allow", "log", "trap", "kill_process", "kill_thread", "errno")

    def __post_init__(self) -> None:
        if self.kind not in self._KINDS:
            raise ValueError(
                f"unknown seccomp action {self.kind!r}: expected one of {', '.join(self._KINDS)}"
            )
        if (self.kind == "errno") != (self.errno > 0) or not 0 <= self.errno < 4096:
            raise ValueError(f"seccomp action {self.kind!r} with errno {self.errno}")

    @classmethod
    def fail(cls, code: int) -> Action:
        """The action that fails the call with errno ``code`` (e.g. ``errno.EPERM``)."""
        return cls("errno", code)

    @classmethod
    def parse(cls, text: str) -> Action:
        """Read ``allow``, ``log``, ``trap``, ``kill`` (the process), ``kill-thread``, or an
        errno by name or number (``EPERM``, ``errno:ENOTTY``, ``25``)."""
        word = text.strip().lower().replace("-", "_")
        if word == "kill":
            return cls("kill_process")
        if word in cls._KINDS and word != "errno":
            return cls(word)
        name = text.strip().split(":", 1)[1] if word.startswith("errno:") else text.strip()
        if name.isdigit():
            return cls.fail(int(name))
        code = getattr(errno_mod, name.upper(), None)
        if not isinstance(code, int):
            raise ValueError(
                f"unknown seccomp action {text!r}: allow, log, trap, kill, kill-thread or an errno"
            )
        return cls.fail(code)

    def __str__(self) -> str:
        if self.kind == "errno":
            return f"errno:{errno_mod.errorcode.get(self.errno, str(self.errno))}"
        return self.kind.replace("_", "-")

    def libseccomp_value(self, sc: Any) -> int:
        """The action's value for libseccomp (``sc`` is the binding from :func:`load_libseccomp`)."""
        if self.kind == "errno":
            return int(sc.ERRNO(self.errno))
        return int(getattr(sc, self.kind.upper()))

    def oci(self) -> dict[str, Any]:
        """The action as OCI fields: ``{"action": "SCMP_ACT_...", "errnoRet": N}``."""
        if self.kind == "errno":
            return {"action": "SCMP_ACT_ERRNO", "errnoRet": self.errno}
        return {"action": f"SCMP_ACT_{self.kind.upper()}"}


#: Let the call through.
ALLOW = Action("allow")
#: The default for the colliding 0xB8 requests: fail with EPERM, told apart from ENOTTY.
DEFAULT_COLLISION = Action.fail(errno_mod.EPERM)
#: The default for any other ioctl: ENOTTY, the kernel's answer to a request a driver does
#: not know (CPython's os.set_inheritable then falls back to fcntl).
DEFAULT_UNLISTED_IOCTL = Action.fail(errno_mod.ENOTTY)


@dataclass(frozen=True)
class IoctlRequest:
    """One ioctl request number, its C name, and why it is in the profile
    (``mshv``, ``kvm``, ``process`` or ``collision``)."""

    name: str
    number: int
    group: str


def mshv_requests() -> list[IoctlRequest]:
    """Every mshv_root ioctl the binding issues."""
    return [IoctlRequest(i.name, i.number, "mshv") for i in abi.ioctls() if i.root]


def kvm_requests() -> list[IoctlRequest]:
    """The /dev/kvm requests the emulator issues (ioctl_defs/kvm_requests.py)."""
    found = []
    for name in sorted(dir(lib)):
        value = getattr(lib, name)
        if name.startswith("KVM_") and isinstance(value, int) and (value >> 8) & 0xFF == lib.KVMIO:
            found.append(IoctlRequest(name, value, "kvm"))
    return found


def process_requests() -> list[IoctlRequest]:
    """The requests CPython itself sends to ordinary fds (numbers from ``termios``)."""
    return [IoctlRequest(name, getattr(termios, name), "process") for name in _PROCESS_IOCTLS]


def collision_requests() -> list[IoctlRequest]:
    """The 0xB8 numbers a root-partition client must never send (``abi.never_send``)."""
    return [IoctlRequest(i.name, i.number, "collision") for i in abi.never_send()]


def _emulator_is_backend() -> bool:
    from mshv import backend

    return backend.select().name == "emulator"


@dataclass(frozen=True)
class Profile:
    """The filter's rules: allowed ioctl requests, refused ones, and the three actions.

    ``unlisted_ioctl`` is also the filter's default action, so it applies to any
    system call that no rule names (see the module docstring).

    Example:
        >>> from mshv.seccomp import profile
        >>> chosen = profile(kvm=True)
        >>> chosen.count("mshv"), chosen.count("collision")
        (12, 14)
        >>> str(chosen.collision), chosen.oci()["defaultAction"]
        ('errno:EPERM', 'SCMP_ACT_ERRNO')
    """

    allowed: tuple[IoctlRequest, ...]
    refused: tuple[IoctlRequest, ...]
    collision: Action
    unlisted_ioctl: Action
    other_syscalls: Action

    def __post_init__(self) -> None:
        for label, action in (("collision", self.collision), ("unlisted_ioctl", self.unlisted_ioctl)):
            if action.kind == "allow":
                raise ValueError(f"the {label} action must refuse the call, not allow it")
        clash = {r.number & REQUEST_MASK for r in self.allowed} & {
            r.number & REQUEST_MASK for r in self.refused
        }
        if clash:
            raise ValueError(f"requests both allowed and refused: {', '.join(hex(n) for n in sorted(clash))}")

    def count(self, group: str) -> int:
        """How many distinct request numbers of ``group`` the profile lists."""
        return len({r.number for r in self.allowed + self.refused if r.group == group})

    def _ioctl_rules(self) -> list[tuple[Action, int]]:
        """(action, request) for each distinct number; none where the action is the default."""
        rules: dict[int, Action] = {}
        for req in self.allowed:
            rules[req.number & REQUEST_MASK] = ALLOW
        for req in self.refused:
            rules[req.number & REQUEST_MASK] = self.collision
        return [(a, n) for n, a in sorted(rules.items()) if a != self.unlisted_ioctl]

    def build(self) -> Any:
        """Build the filter in libseccomp; returns its ``SyscallFilter`` (not yet loaded)."""
        sc = load_libseccomp()
        flt = sc.SyscallFilter(self.unlisted_ioctl.libseccomp_value(sc))
        flt.set_attr(sc.Attr.ACT_BADARCH, self.unlisted_ioctl.libseccomp_value(sc))
        try:
            flt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)  # a binary tree over ~370 syscalls (libseccomp >= 2.5)
        except OSError:
            pass
        if self.other_syscalls != self.unlisted_ioctl:
            for _name, nr in other_syscalls(sc):
                flt.add_rule(self.other_syscalls.libseccomp_value(sc), nr)
        for action, number in self._ioctl_rules():
            condition = sc.Arg(1, sc.MASKED_EQ, REQUEST_MASK, number)
            flt.add_rule(action.libseccomp_value(sc), "ioctl", condition)
        return flt

    def install(self, *, all_threads: bool = True) -> None:
        """Load the filter into this process: every thread (``all_threads``, SECCOMP_FILTER_FLAG_TSYNC)
        or the calling thread and the threads it starts later. It cannot be removed; it also sets
        no_new_privs (setuid programs run afterwards do not gain privileges)."""
        sc = load_libseccomp()
        flt = self.build()
        flt.set_attr(sc.Attr.CTL_TSYNC, 1 if all_threads else 0)
        flt.load()

    def bpf(self) -> bytes:
        """The filter as the BPF program libseccomp loads (``seccomp_export_bpf``)."""
        return self._export("export_bpf")

    def pfc(self) -> str:
        """The filter in libseccomp's readable pseudo code (``seccomp_export_pfc``)."""
        return self._export("export_pfc").decode()

    def _export(self, method: str) -> bytes:
        flt = self.build()
        with tempfile.TemporaryFile() as out:
            getattr(flt, method)(out)
            out.seek(0)
            return out.read()

    def oci(self) -> dict[str, Any]:
        """The profile as an OCI runtime-spec ``linux.seccomp`` object (``docker --security-opt
        seccomp=FILE`` takes it as well): one ``ioctl`` entry per request number."""
        sc = load_libseccomp()
        default = self.unlisted_ioctl.oci()
        doc: dict[str, Any] = {"defaultAction": default["action"]}
        if "errnoRet" in default:
            doc["defaultErrnoRet"] = default["errnoRet"]
        doc["architectures"] = [_arch_name(sc)]
        syscalls: list[dict[str, Any]] = []
        if self.other_syscalls != self.unlisted_ioctl:
            names = sorted(name for name, _nr in other_syscalls(sc))
            syscalls.append({"names": names, **self.other_syscalls.oci()})
        for action, number in self._ioctl_rules():
            arg = {"index": 1, "value": REQUEST_MASK, "valueTwo": number, "op": "SCMP_CMP_MASKED_EQ"}
            syscalls.append({"names": ["ioctl"], **action.oci(), "args": [arg]})
        doc["syscalls"] = syscalls
        return doc

    def describe(self) -> str:
        """A readable listing: the actions, then each request with its number and group."""
        lines = [
            f"ioctl requests allowed: {len({r.number for r in self.allowed})} "
            f"(mshv {self.count('mshv')}, kvm {self.count('kvm')}, process {self.count('process')})",
            f"colliding 0xB8 requests refused with {self.collision}: {self.count('collision')}",
            f"any other ioctl (and any syscall libseccomp does not know): {self.unlisted_ioctl}",
            f"every other syscall: {self.other_syscalls}",
            "",
        ]
        for req in self.allowed:
            lines.append(f"  allow    {req.number:#010x}  {req.name:<32} {req.group}")
        for req in self.refused:
            lines.append(f"  refuse   {req.number:#010x}  {req.name:<32} {req.group}")
        return "\n".join(lines)


def other_syscalls(sc: Any) -> list[tuple[str, int]]:
    """(name, number) of every native system call in libseccomp's table but ioctl."""
    found = []
    for nr in range(_MAX_SYSCALL_NR):
        try:
            name = sc.resolve_syscall(sc.Arch.NATIVE, nr).decode()
        except ValueError:
            continue
        if name != "ioctl":
            found.append((name, nr))
    return found


def _arch_name(sc: Any) -> str:
    native = sc.system_arch()
    for name in dir(sc.Arch):
        if name != "NATIVE" and getattr(sc.Arch, name) == native:
            return f"SCMP_ARCH_{name}"
    raise SeccompUnavailable(f"libseccomp's native architecture {native:#x} has no OCI name")


def profile(
    *,
    kvm: bool | None = None,
    collision: Action = DEFAULT_COLLISION,
    unlisted_ioctl: Action = DEFAULT_UNLISTED_IOCTL,
    other_syscalls: Action = ALLOW,
) -> Profile:
    """The profile for this process's needs.

    Args:
        kvm: allow the emulator's /dev/kvm requests; None (default): when the selected
            backend is the emulator.
        collision: what a colliding 0xB8 request gets (default: fail with EPERM).
        unlisted_ioctl: what any other ioctl gets (default: fail with ENOTTY, the kernel's
            answer to a request a driver does not know).
        other_syscalls: what every other system call gets (default: allow).

    Raises:
        BackendUnavailable: ``kvm`` is None and no backend can be selected.
        ValueError: an action that refuses nothing where a refusal is needed.
    """
    if kvm is None:
        kvm = _emulator_is_backend()
    allowed = mshv_requests() + (kvm_requests() if kvm else []) + process_requests()
    return Profile(tuple(allowed), tuple(collision_requests()), collision, unlisted_ioctl, other_syscalls)


def install(
    *,
    kvm: bool | None = None,
    collision: Action = DEFAULT_COLLISION,
    unlisted_ioctl: Action = DEFAULT_UNLISTED_IOCTL,
    other_syscalls: Action = ALLOW,
    all_threads: bool = True,
) -> Profile:
    """Build :func:`profile` with these arguments, load it into this process (see
    :meth:`Profile.install` for ``all_threads``), and return it.

    Raises:
        SeccompUnavailable: libseccomp or pyseccomp is missing.
        OSError: the kernel refused the filter (errno from ``seccomp_load``).
    """
    chosen = profile(
        kvm=kvm, collision=collision, unlisted_ioctl=unlisted_ioctl, other_syscalls=other_syscalls
    )
    chosen.install(all_threads=all_threads)
    return chosen
