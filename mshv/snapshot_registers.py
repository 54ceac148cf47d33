"""What a snapshot holds of a VP: one list of registers per class, gated by the partition's features.

A register is captured only where the partition grants it: the synthetic, SynIC and timer
registers by SYNTHETIC_PROC_FEATURES (the guest's privilege mask), the MSRs of optional CPU
features by PROCESSOR_FEATURES0/1 and PROCESSOR_XSAVE_FEATURES, INTERNAL_ACTIVITY_STATE by the
hypervisor's LAPIC. That is how rust-vmm's ``get_partition_supported_msrs`` and QEMU's
``msr_supported`` (target/i386/mshv/msr.c) choose the MSRs they move, so a hypercall never
names a register the partition lacks.

The x87/SSE/AVX registers are not listed: the XSAVE state blob (MSHV_GET_VP_STATE XSAVE)
holds all of them (FCW..FDP, MXCSR, ST0-7, XMM0-15 and the AVX upper halves) in one call.
Read-only registers (MTRR_CAP, VP_INDEX, TIME_REF_COUNT, VP_RUNTIME, SVERSION) and EOM, whose
write re-delivers a message, are not listed either: a restore cannot write them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mshv._abi import lib
from mshv.regpage import GPRS

__all__ = [
    "PAGE_REGISTERS", "REGISTER_CLASSES", "STATE_BLOBS", "PartitionFeatures", "blobs_for", "registers_for",
]  # fmt: skip

#: The register classes of a snapshot, in the order a restore writes them ("events" last:
#: after the LAPIC and XSAVE blobs, as QEMU puts the MP state after the LAPIC).
REGISTER_CLASSES = ("architectural", "msrs", "synthetic", "synic", "timers", "events")
#: The VP state blobs (MSHV_GET/SET_VP_STATE), in restore order.
STATE_BLOBS = ("xsave", "lapic", "simp", "siefp", "synthetic_timers")
#: The registers the VP register page holds (restored through ``Vp.set_registers``).
PAGE_REGISTERS = (*GPRS, "rip", "rflags")

_SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr")
_ARCHITECTURAL = (
    *PAGE_REGISTERS, *_SEGMENTS, "gdtr", "idtr",
    "cr0", "cr2", "cr3", "cr4", "cr8", "efer", "xfem",
    "dr0", "dr1", "dr2", "dr3", "dr6", "dr7",
)  # fmt: skip

# (register, gate): a gate is None (always) or alternatives of (feature field, bit).
_Gate = tuple[tuple[str, int], ...] | None
_F0, _F1, _XS, _SYN = "processor0", "processor1", "xsave", "synthetic"
_CET = ((_F1, lib.HV_PROC_FEATURE1_CET_SS_BIT), (_F1, lib.HV_PROC_FEATURE1_CET_IBT_BIT))
_CET_SS = ((_F1, lib.HV_PROC_FEATURE1_CET_SS_BIT),)
_MTRR_VARIABLE = 8  # the variable-range MTRR pairs rust-vmm and QEMU move
_MTRR_FIXED = ("fix64k00000", "fix16k80000", "fix16ka0000") + tuple(
    f"fix4k{base}" for base in ("c0000", "c8000", "d0000", "d8000", "e0000", "e8000", "f0000", "f8000")
)
_MSRS: tuple[tuple[str, _Gate], ...] = (
    ("apic_base", None),  # first: the rest are one run of plain MSRs (one KVM ioctl on the emulator)
    ("tsc", None),
    ("tsc_adjust", ((_F1, lib.HV_PROC_FEATURE1_TSC_ADJUST_BIT),)),  # after TSC: a TSC write moves it
    ("pat", None),
    ("sysenter_cs", None), ("sysenter_eip", None), ("sysenter_esp", None),
    ("star", None), ("lstar", None), ("cstar", None), ("sfmask", None), ("kernel_gs_base", None),
    ("msr_mtrr_def_type", None),
    *((f"msr_mtrr_phys_{kind}{i}", None) for i in range(_MTRR_VARIABLE) for kind in ("base", "mask")),
    *((f"msr_mtrr_{name}", None) for name in _MTRR_FIXED),
    ("debug_ctl", None),
    ("msr_ia32_misc_enable", None),
    ("tsc_aux", ((_F0, lib.HV_PROC_FEATURE0_RDTSCP_BIT),)),
    ("spec_ctrl", ((_F0, lib.HV_PROC_FEATURE0_IBRS_BIT),)),
    ("u_xss", ((_XS, lib.HV_PROC_XSAVE_FEATURE_XSAVE_SUPERVISOR_BIT),)),
    ("bndcfgs", ((_XS, lib.HV_PROC_XSAVE_FEATURE_MPX_BIT),)),
    ("u_cet", _CET), ("s_cet", _CET),
    ("ssp", _CET_SS), ("pl0_ssp", _CET_SS), ("pl1_ssp", _CET_SS), ("pl2_ssp", _CET_SS), ("pl3_ssp", _CET_SS),
    ("interrupt_ssp_table_addr", _CET_SS),
)  # fmt: skip
_HYPERCALL_REGS = ((_SYN, lib.HV_SYNTHETIC_PROC_FEATURE_ACCESS_HYPERCALL_REGS_BIT),)
# GUEST_OS_ID, HYPERCALL and REFERENCE_TSC are partition-wide: QEMU, Cloud Hypervisor and
# OpenVMM move them through VP 0 only (the first VP here).
_PARTITION_WIDE = frozenset({"guest_os_id", "hypercall", "reference_tsc"})
_SYNTHETIC: tuple[tuple[str, _Gate], ...] = (
    ("guest_os_id", _HYPERCALL_REGS),  # before HYPERCALL: its enable bit needs a guest OS id
    ("hypercall", _HYPERCALL_REGS),
    ("reference_tsc", ((_SYN, lib.HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_TSC_BIT),)),
    ("vp_assist_page", ((_SYN, lib.HV_SYNTHETIC_PROC_FEATURE_ACCESS_INTR_CTRL_REGS_BIT),)),
)
_SYNIC_REGS = ((_SYN, lib.HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNIC_REGS_BIT),)
_SYNIC_NAMES = ("scontrol", "simp", "siefp", *(f"sint{i}" for i in range(16)))
_SYNIC = tuple((name, _SYNIC_REGS) for name in _SYNIC_NAMES)
_TIMER_REGS = ((_SYN, lib.HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNTHETIC_TIMER_REGS_BIT),)
_TIMERS = tuple((f"stimer{i}_{part}", _TIMER_REGS) for i in range(4) for part in ("config", "count"))
_LAPIC = (("flags", lib.MSHV_PT_BIT_LAPIC),)
_EVENTS: tuple[tuple[str, _Gate], ...] = (
    ("pending_interruption", None),
    ("interrupt_state", None),
    ("pending_event0", None),
    ("pending_event1", None),
    ("deliverability_notifications", None),
    ("internal_activity_state", _LAPIC),  # settable only with the hypervisor's LAPIC
)
_CLASSES: dict[str, tuple[tuple[str, _Gate], ...]] = {
    "architectural": tuple((name, None) for name in _ARCHITECTURAL),
    "msrs": _MSRS,
    "synthetic": _SYNTHETIC,
    "synic": _SYNIC,
    "timers": _TIMERS,
    "events": _EVENTS,
}
_BLOB_GATES: dict[str, _Gate] = {
    "xsave": None,
    "lapic": _LAPIC,
    "simp": _SYNIC_REGS,
    "siefp": _SYNIC_REGS,
    "synthetic_timers": _TIMER_REGS,
}


@dataclass(frozen=True)
class PartitionFeatures:
    """The partition properties that decide which registers exist (0 where one cannot be read)."""

    flags: int = 0  #: the MSHV_CREATE_PARTITION flags (``mshv.PartitionFlag``)
    synthetic: int = 0  #: SYNTHETIC_PROC_FEATURES
    processor0: int = 0  #: PROCESSOR_FEATURES0
    processor1: int = 0  #: PROCESSOR_FEATURES1
    xsave: int = 0  #: PROCESSOR_XSAVE_FEATURES
    xsave_size: int = 0  #: MAX_XSAVE_DATA_SIZE

    def grants(self, gate: _Gate) -> bool:
        """True when the gate is open (no gate, or one of its feature bits is set)."""
        return gate is None or any(getattr(self, field) >> bit & 1 for field, bit in gate)


def registers_for(features: PartitionFeatures, first_vp: bool) -> dict[str, tuple[str, ...]]:
    """The registers of each class the partition grants, in restore order; the partition-wide
    synthetic registers only on the first VP."""
    return {
        klass: tuple(
            name
            for name, gate in entries
            if features.grants(gate) and (first_vp or name not in _PARTITION_WIDE)
        )
        for klass, entries in _CLASSES.items()
    }


def blobs_for(features: PartitionFeatures) -> tuple[str, ...]:
    """The VP state blobs the partition has (LAPIC with the hypervisor's LAPIC, SynIC pages and
    timers where SYNTHETIC_PROC_FEATURES grants them), in restore order."""
    return tuple(name for name in STATE_BLOBS if features.grants(_BLOB_GATES[name]))
