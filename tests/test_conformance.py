"""The ABI we compiled equals the real kernel's: Debian sid's linux-libc-dev (7.2).

A probe is compiled against the real linux/mshv.h (and misc/mrvl_cn10k_dpi.h,
the other 0xB8 driver): it prints every struct's size and field offsets and
every constant (macros and enum members) the real headers define. Each must
equal what ``python -m mshv abi --json`` reports: 0 mismatches, 0 missing.
If the header cannot be downloaded, the test fails with the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tools.kernel_headers import fetch_include_dir  # noqa: E402

HEADERS = ("linux/mshv.h", "misc/mrvl_cn10k_dpi.h")
PRELUDE = "#include <sys/ioctl.h>\n#include <stddef.h>\n#include <stdio.h>\n"


@pytest.fixture(scope="module")
def real_include() -> Path:
    return fetch_include_dir()


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # Run outside the checkout, so the installed package answers, not the source tree.
    out = subprocess.run(
        [sys.executable, "-m", "mshv", "abi", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path_factory.mktemp("abi"),
    ).stdout
    return dict(json.loads(out))


def _preprocess(include: Path, header: str) -> str:
    return subprocess.run(
        ["cc", "-E", "-P", f"-I{include}", "-x", "c", "-"],
        input=f"#include <sys/ioctl.h>\n#include <{header}>\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _declared(include: Path, header: str) -> tuple[dict[str, list[str]], list[str]]:
    """Structs (with their fields) and constant names the real header declares."""
    raw = (include / header).read_text()
    own_structs = set(re.findall(r"^struct (\w+) \{", raw, re.M))
    macros = [m for m in re.findall(r"^#define (\w+)\s+\S", raw, re.M) if not m.startswith("_")]
    text = _preprocess(include, header)
    structs: dict[str, list[str]] = {}
    for name, body in re.findall(r"struct (\w+) \{(.*?)\}", text, re.S):
        if name in own_structs:
            fields = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;", body)
            structs[name] = fields
    enums = []
    for body in re.findall(r"enum(?:\s+\w+)?\s*\{(.*?)\}", text, re.S):
        enums += [m for m in re.findall(r"^\s*(\w+)", body, re.M) if m.isupper()]
    names = [n for n in macros + enums if n.isupper() or "_" in n]
    return structs, sorted(set(n for n in names if not n.endswith("_H")))


def _probe(include: Path, tmp: Path, structs: dict[str, list[str]], consts: list[str]) -> dict[str, Any]:
    lines = [PRELUDE] + [f"#include <{h}>" for h in HEADERS] + ["int main(void) {", 'printf("{\\"s\\":{");']
    for i, (name, fields) in enumerate(sorted(structs.items())):
        sep = "," if i else ""
        lines.append(f'printf("{sep}\\"{name}\\":{{\\"size\\":%zu,\\"fields\\":{{", sizeof(struct {name}));')
        for j, field in enumerate(fields):
            fsep = "," if j else ""
            lines.append(f'printf("{fsep}\\"{field}\\":%zu", offsetof(struct {name}, {field}));')
        lines.append('printf("}}");')
    lines.append('printf("},\\"c\\":{");')
    for i, name in enumerate(consts):
        sep = "," if i else ""
        lines.append(f'printf("{sep}\\"{name}\\":%llu", (unsigned long long)({name}));')
    lines += ['printf("}}\\n");', "return 0; }"]
    src = tmp / "probe.c"
    src.write_text("\n".join(lines))
    exe = tmp / "probe"
    subprocess.run(["cc", f"-I{include}", str(src), "-o", str(exe)], check=True)
    return dict(json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout))


def test_abi_equals_real_kernel_header(real_include: Path, ours: dict[str, Any], tmp_path: Path) -> None:
    structs: dict[str, list[str]] = {}
    consts: list[str] = []
    for header in HEADERS:
        s, c = _declared(real_include, header)
        structs.update(s)
        consts += c
    assert "mshv_create_partition_v2" in structs and "MSHV_ROOT_HVCALL" in consts  # parsed for real
    real = _probe(real_include, tmp_path, structs, consts)
    missing: list[str] = []
    mismatches: list[str] = []
    for name, info in real["s"].items():
        mine = ours["structs"].get(name)
        if mine is None:
            missing.append(f"struct {name}")
            continue
        if mine["size"] != info["size"]:
            mismatches.append(f"sizeof(struct {name}): ours {mine['size']}, kernel {info['size']}")
        for field, offset in info["fields"].items():
            if field not in mine["fields"]:
                missing.append(f"struct {name}.{field}")
            elif mine["fields"][field] != offset:
                mismatches.append(f"{name}.{field}: ours {mine['fields'][field]}, kernel {offset}")
        extra = set(mine["fields"]) - set(info["fields"])
        if extra:
            mismatches.append(f"struct {name}: fields the kernel lacks: {sorted(extra)}")
    for name, value in real["c"].items():
        if name not in ours["constants"]:
            missing.append(name)
        elif ours["constants"][name] != value:
            mismatches.append(f"{name}: ours {ours['constants'][name]:#x}, kernel {value:#x}")
    assert (missing, mismatches) == ([], [])
    assert len(real["s"]) >= 20 and len(real["c"]) >= 70  # the parse found the header's contents


def test_report_names_its_header(ours: dict[str, Any]) -> None:
    assert ours["source"].split(":", 1)[0] in ("system", "bundled")
    assert ours["source"].endswith("linux/mshv.h")
