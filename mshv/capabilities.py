"""What the backend in use can do, probed on it once per process (the pytest plugin's
``mshv_requires`` marker asks here).

Nothing is assumed from the host: the backend capabilities read which backend
:func:`mshv.backend.select` chose, and the intercept capabilities ask the
hypervisor (HvCallInstallIntercept on a partition of their own, closed after).
A backend that cannot be used at all raises :class:`mshv.BackendUnavailable`:
that is never an answer of "not available".

Example:
    >>> from mshv.capabilities import probe
    >>> probe("emulator").available != probe("kernel").available
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from mshv import backend
from mshv.device import Mshv
from mshv.errors import MshvError

__all__ = ["CAPABILITIES", "Capability", "probe"]


@dataclass(frozen=True)
class Capability:
    """One probed capability: its name, whether the backend has it, and what the probe saw."""

    name: str
    available: bool
    detail: str


def _backend_is(name: str) -> tuple[bool, str]:
    chosen = backend.select()
    return chosen.name == name, f"the backend is the {chosen.name}: {chosen.reason}"


def _intercept_accepted(kind: str, **parameter: int) -> tuple[bool, str]:
    """Whether HvCallInstallIntercept accepts ``kind`` (a refusal names its HV status)."""
    with Mshv() as hv, hv.create_partition(lapic=False) as partition:
        try:
            partition.install_intercept(kind, **parameter)
        except MshvError as exc:
            if exc.hv_status is None:  # not the hypervisor's answer: a real failure
                raise
            return False, f"HvCallInstallIntercept answered HV_STATUS_{exc.hv_status.name}"
    return True, "HvCallInstallIntercept accepted it"


# name -> (what it is, its probe)
CAPABILITIES: dict[str, tuple[str, Callable[[], tuple[bool, str]]]] = {
    "kernel": ("the kernel's /dev/mshv driver (a Hyper-V root partition)", lambda: _backend_is("kernel")),
    "emulator": ("the package's emulator of /dev/mshv on /dev/kvm", lambda: _backend_is("emulator")),
    "exception_intercepts": (
        "exception intercepts (#BP probed)",
        lambda: _intercept_accepted("exception", vector=3),
    ),
    "cpuid_intercepts": ("CPUID intercepts", lambda: _intercept_accepted("cpuid", leaf=0)),
    "msr_intercepts": ("MSR intercepts (all MSRs)", lambda: _intercept_accepted("msr")),
}


@functools.cache
def probe(name: str) -> Capability:
    """Probe capability ``name`` (one of :data:`CAPABILITIES`) once per process.

    Raises:
        ValueError: no such capability.
        BackendUnavailable: no backend can be used.
    """
    if name not in CAPABILITIES:
        raise ValueError(f"no mshv capability {name!r}; known: {', '.join(CAPABILITIES)}")
    available, detail = CAPABILITIES[name][1]()
    return Capability(name, available, detail)
