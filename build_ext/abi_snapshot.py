"""Write ``ioctl_defs/abi_snapshot.py``: the compiled ABI as a complete cdef for cffi's ABI mode.

``python -m build_ext.abi_snapshot`` (run where a C compiler works) compiles
``mshv._abi`` from ioctl_defs/ against the bundled header into a temporary
directory, reads back what the compiler decided (every constant's value, every
struct's and union's size, alignment and field offsets and types) and writes
them as cffi declarations with no ``...`` left. A build without a C compiler
installs that file and ``mshv._abi_nocc`` builds its ABI-mode ffi from it, so
the values still come from the C compiler, once, on the developer's machine.

cffi's ABI mode lays structs out itself with natural alignment. Each struct is
emitted in the ``TYPES`` cdef when that reproduces the compiler's layout, else
in ``PACKED_TYPES`` (declared with ``packed=True``: the Hyper-V structs are
``__packed`` in C); a struct that neither reproduces is an error here, never a
silent difference. ``--check`` exits 1 when the committed file is stale;
tests/test_abi_snapshot.py checks the same against the installed ``mshv._abi``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_PATH = ROOT / "ioctl_defs" / "abi_snapshot.py"
GENERATOR = "python -m build_ext.abi_snapshot"


def compiled_abi() -> tuple[Any, Any]:
    """Compile ``mshv._abi`` from ioctl_defs/ (bundled header) in a temp dir; return its ffi and lib."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from build_ext.abi_builder import build_ffi

    saved = os.environ.get("MSHV_HEADER")
    os.environ["MSHV_HEADER"] = "bundled"  # the committed snapshot must not depend on this host
    try:
        builder = build_ffi()
    finally:
        if saved is None:
            del os.environ["MSHV_HEADER"]
        else:
            os.environ["MSHV_HEADER"] = saved
    with tempfile.TemporaryDirectory() as tmp:
        path = builder.compile(tmpdir=tmp)
        spec = importlib.util.spec_from_file_location("mshv._abi", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)  # runs PyInit; not put in sys.modules
        spec.loader.exec_module(module)
    return module.ffi, module.lib


def header_source(ffi: Any, lib: Any) -> str:
    """The header the compiled module used, with paths inside the checkout made relative."""
    source = str(ffi.string(lib.mshv_abi_header()).decode())
    return source.replace(str(ROOT) + os.sep, "")


def _kind_names(ffi: Any) -> list[tuple[str, str]]:
    _typedefs, structs, unions = ffi.list_types()
    return sorted([("struct", n) for n in structs] + [("union", n) for n in unions], key=lambda k: k[1])


def _member(ffi: Any, name: str, field: Any) -> str:
    decl = ffi.getctype(field.type, name)
    return f"{decl} : {field.bitsize};" if field.bitsize >= 0 else f"{decl};"


def _end(ffi: Any, field: Any) -> int:
    """Where a field ends (a flexible array member ends where it starts)."""
    if field.bitsize >= 0:
        return int(field.offset + (field.bitshift + field.bitsize + 7) // 8)
    return int(
        field.offset
        + (0 if field.type.kind == "array" and field.type.length is None else ffi.sizeof(field.type))
    )


def _declaration(ffi: Any, kind: str, name: str) -> str:
    """``kind name { ... };`` with every field; overlapping fields of a struct become an anonymous union.

    cffi lists the members of an anonymous union as fields of the struct that holds it,
    each at the union's offset, so a field that starts before the previous ones end is
    one more member of that union.
    """
    groups: list[list[str]] = []
    group_end = 0
    for fname, field in ffi.typeof(f"{kind} {name}").fields or []:
        member = _member(ffi, fname, field)
        if kind == "struct" and groups and field.bitsize < 0 and field.offset < group_end:
            groups[-1].append(member)
        else:
            groups.append([member])
        group_end = max(group_end, _end(ffi, field)) if kind == "struct" else 0
    lines = [f"{kind} {name} {{"]
    for group in groups:
        if len(group) == 1:
            lines.append(f"    {group[0]}")
        else:
            lines.append("    union {")
            lines += [f"        {m}" for m in group]
            lines.append("    };")
    lines.append("};")
    return "\n".join(lines)


def _layout(ffi: Any, kind: str, name: str) -> tuple[Any, ...]:
    ctype = ffi.typeof(f"{kind} {name}")
    fields = tuple((f, x.type.cname, x.offset, x.bitsize, x.bitshift) for f, x in ctype.fields or [])
    return ffi.sizeof(ctype), ffi.alignof(ctype), fields


def _typedefs(ffi: Any) -> str:
    typedefs, _structs, _unions = ffi.list_types()
    return "\n".join(f"typedef {ffi.getctype(ffi.typeof(n), n)};" for n in sorted(typedefs))


def _constants(lib: Any) -> str:
    lines = []
    for name in sorted(dir(lib)):
        value = getattr(lib, name)
        if isinstance(value, int):
            lines.append(f"#define {name} {'-' if value < 0 else ''}{abs(value):#x}")
    return "\n".join(lines)


def abi_ffi(types: str, packed_types: str) -> FFI:
    """An ABI-mode FFI declaring the two cdefs of a snapshot (the second one packed)."""
    out = FFI()
    out.cdef(types)
    out.cdef(packed_types, packed=True)
    return out


def split_layouts(ffi: Any) -> tuple[str, str]:
    """The struct/union declarations as (natural, packed) cdef text, each reproducing ``ffi``'s layout."""
    items = _kind_names(ffi)
    decls = {name: _declaration(ffi, kind, name) for kind, name in items}
    typedefs = _typedefs(ffi)
    natural = abi_ffi(typedefs + "\n" + "\n".join(decls.values()), "")
    packed_names = {n for k, n in items if _layout(natural, k, n) != _layout(ffi, k, n)}
    trial = abi_ffi(
        typedefs + "\n" + "\n".join(d for n, d in decls.items() if n not in packed_names),
        "\n".join(d for n, d in decls.items() if n in packed_names),
    )
    wrong = [f"{k} {n}" for k, n in items if _layout(trial, k, n) != _layout(ffi, k, n)]
    if wrong:
        raise SystemExit(
            f"{GENERATOR}: neither natural nor packed layout reproduces the compiler's for "
            f"{', '.join(wrong)}; teach the generator explicit padding"
        )
    natural_text = "\n\n".join(d for n, d in decls.items() if n not in packed_names)
    packed_text = "\n\n".join(d for n, d in decls.items() if n in packed_names)
    return natural_text, packed_text


def render(ffi: Any, lib: Any) -> str:
    """The text of ioctl_defs/abi_snapshot.py for a compiled ``mshv._abi`` (its ``ffi`` and ``lib``)."""
    natural, packed = split_layouts(ffi)
    types = f"{_typedefs(ffi)}\n\n{_constants(lib)}\n\n{natural}\n"
    return (
        f"# Generated by `{GENERATOR}` from the compiled mshv._abi. DO NOT EDIT:\n"
        "# change ioctl_defs/ and regenerate (tests/test_abi_snapshot.py fails until you do).\n"
        '"""The ABI of ``mshv._abi`` as complete cffi declarations for ABI mode (no C compiler).\n\n'
        "``TYPES`` holds the typedefs, every constant with the value the C compiler gave it and\n"
        "the structs whose natural layout is the compiler's; ``PACKED_TYPES`` the rest, to be\n"
        "declared with ``ffi.cdef(PACKED_TYPES, packed=True)``.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        f"GENERATOR = {json.dumps(GENERATOR)}\n"
        f"HEADER = {json.dumps(header_source(ffi, lib))}\n\n"
        f'TYPES = """\n{types}"""\n\n'
        f'PACKED_TYPES = """\n{packed}\n"""\n'
    )


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, compare) ioctl_defs/abi_snapshot.py."""
    parser = argparse.ArgumentParser(prog=GENERATOR, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed snapshot is stale")
    args = parser.parse_args(argv)
    text = render(*compiled_abi())
    current = SNAPSHOT_PATH.read_text() if SNAPSHOT_PATH.exists() else ""
    if args.check:
        if text != current:
            print(f"{SNAPSHOT_PATH} is stale: run `{GENERATOR}`", file=sys.stderr)
            return 1
        print(f"{SNAPSHOT_PATH} is up to date")
        return 0
    SNAPSHOT_PATH.write_text(text)
    print(f"wrote {SNAPSHOT_PATH} ({'unchanged' if text == current else 'changed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
