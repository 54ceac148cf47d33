"""The Example sections of the public docstrings run, on the available backend."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "mshv.device", "mshv.memory", "mshv.testing", "mshv.seccomp", "mshv.exits", "mshv.capabilities",
    "mshv.boot", "mshv.devices", "mshv.machine",
]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, backend_ready: None) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
