"""What the backend in use can do, by name (the pytest plugin's ``mshv_requires`` marker asks here).

Each name maps to one fact found on the running backend, never assumed from the host: the
backend capabilities read which backend :func:`mshv.backend.select` chose, and every other
one is a probe of :mod:`mshv.limits` (once per process), which stays their only source.
A backend that cannot be used at all raises :class:`mshv.BackendUnavailable`: that is
never an answer of "not available".

Names: ``kernel``, ``emulator``, ``exception_intercepts``, ``cpuid_intercepts``,
``msr_intercepts``, ``tsc_writes``, ``read_access_tracking``, and ``<op>_in_<mode>_mode``
for an instruction that :func:`mshv.limits.instruction_limit` probes (e.g. ``iret_in_protected_mode``).

Example:
    >>> from mshv.capabilities import probe
    >>> probe("emulator").available != probe("kernel").available
    True
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from mshv import backend, limits

__all__ = ["CAPABILITIES", "INSTRUCTION_CAPABILITY", "Capability", "describe", "probe"]


@dataclass(frozen=True)
class Capability:
    """One capability of the backend in use: whether it has it, and what the probe saw."""

    name: str
    available: bool
    detail: str


def _backend_is(name: str) -> tuple[bool, str]:
    chosen = backend.select()
    return chosen.name == name, f"the backend is the {chosen.name}: {chosen.reason}"


def _limit(name: str) -> Callable[[], tuple[bool, str]]:
    """The probe of :func:`mshv.limits.probe_limits` called ``name``."""

    def answer() -> tuple[bool, str]:
        found = {limit.name: limit for limit in limits.probe_limits()}
        if name not in found:  # renamed there, or its probe group failed: say which
            raise RuntimeError(f"mshv.limits.probe_limits() has no {name!r}; it has: {list(found.values())}")
        return _verdict(found[name])

    return answer


def _verdict(limit: limits.Limit) -> tuple[bool, str]:
    if limit.works is None:  # an inconclusive probe establishes nothing
        return False, f"the probe was inconclusive: {limit.detail}"
    return limit.works, limit.detail


# name -> (what it is, how it is found)
CAPABILITIES: dict[str, tuple[str, Callable[[], tuple[bool, str]]]] = {
    "kernel": (
        "/dev/mshv through libc (the kernel's driver, or an emulator preloaded in its place)",
        lambda: _backend_is("kernel"),
    ),
    "emulator": ("the package's emulator of /dev/mshv in process", lambda: _backend_is("emulator")),
    "exception_intercepts": ("exception intercepts (#BP probed)", _limit("exception intercept #BP (3)")),
    "cpuid_intercepts": ("CPUID intercepts", _limit("CPUID intercept")),
    "msr_intercepts": ("MSR intercepts (all MSRs)", _limit("MSR intercept (all MSRs)")),
    "tsc_writes": ("TSC writes from the VMM that stick", _limit("TSC writes")),
    "read_access_tracking": (
        "guest reads set a page's accessed bit (mshv.dirty), not only writes",
        _limit("guest reads marked accessed"),
    ),
}
INSTRUCTION_CAPABILITY = re.compile(r"(?P<op>\w+?)_in_(?P<mode>real|protected|long)_mode")


def describe(name: str) -> str:
    """What capability ``name`` is (ValueError for a name that is none)."""
    if name in CAPABILITIES:
        return CAPABILITIES[name][0]
    match = INSTRUCTION_CAPABILITY.fullmatch(name)
    if match is None:
        known = ", ".join(CAPABILITIES)
        raise ValueError(
            f"no mshv capability {name!r}; known: {known}, and <op>_in_<mode>_mode for an instruction "
            "mshv.limits.instruction_limit probes"
        )
    return f"{match['op']} in {match['mode']} mode"


@functools.cache
def probe(name: str) -> Capability:
    """Whether the backend in use has capability ``name``; found once per process.

    Raises:
        ValueError: no such capability (or no probe for that instruction in that mode).
        BackendUnavailable: no backend can be used.
    """
    describe(name)
    if name in CAPABILITIES:
        available, detail = CAPABILITIES[name][1]()
    else:
        match = INSTRUCTION_CAPABILITY.fullmatch(name)
        assert match is not None  # describe() accepted it
        available, detail = _verdict(limits.instruction_limit(match["mode"], match["op"]))
    return Capability(name, available, detail)
