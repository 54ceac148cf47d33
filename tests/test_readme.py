"""The README's Python example runs as written, on the available backend."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(backend_ready: None) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    exit_ = namespace["exit_"]
    assert type(exit_).__name__ == "HaltIntercept"
    assert namespace["vp"].exits == 4  # type: ignore[attr-defined]  # OUT, IN, OUT, HLT
