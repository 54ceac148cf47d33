"""Fixtures for the x86 emulation tests (helpers live in x86_guest.py): one guest per CPU mode,
kept for the module, that runs an instruction against RAM (the CPU computes the result) and
against MMIO (mshv.x86.mmio.emulate_mmio computes it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from x86_guest import Oracle  # noqa: E402


@pytest.fixture(scope="module", params=["real", "protected", "long"])
def oracle(request: pytest.FixtureRequest) -> Iterator[Oracle]:
    """A guest in each CPU mode; a missing /dev/kvm (and /dev/mshv) FAILS, never skips."""
    assert os.path.exists("/dev/mshv") or os.path.exists("/dev/kvm"), "the tests need /dev/mshv or /dev/kvm"
    with Oracle(request.param) as guest:
        yield guest


@pytest.fixture(scope="module")
def long_oracle() -> Iterator[Oracle]:
    """A long-mode guest only (64-bit operands, REX registers)."""
    with Oracle("long") as guest:
        yield guest
