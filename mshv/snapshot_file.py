"""The snapshot file format (``Snapshot.save`` / ``Snapshot.load``), version 1.

All integers are little-endian. A file is a header and sections::

    header (32 bytes)
      0  magic            8 bytes  b"MSHVSNAP"
      8  version          u32      1
     12  section count    u32
     16  file size        u64      the whole file, header included
     24  reserved         u32      0
     28  header CRC32     u32      of bytes 0..27
    section (24-byte header, then the payload)
      0  tag              4 bytes  ASCII, below
      4  index            u32      the VP index or the region number; 0 for META
      8  payload size     u64
     16  payload CRC32    u32      of the payload as stored
     20  flags            u32      bit 0: the payload's page data is zlib-compressed

Sections:

- ``META`` (one, first): UTF-8 JSON: ``layout`` (``[gpa, size, writable, executable]`` per
  region, by GPA), ``reference_time`` (or null), ``features`` (the properties that chose the
  register set, :class:`~mshv.snapshot_registers.PartitionFeatures`), ``unavailable``, and
  ``vps``: per VP index, ``registers`` by class and name, each value an int, or
  ``{"segment": [base, limit, selector, attributes]}`` or ``{"table": [base, limit]}``; and
  ``blobs``, the names of the VP's state blobs.
- ``XSAV``, ``LAPI``, ``SIMP``, ``SIEF``, ``STIM`` (index = VP): that VP's XSAVE, LAPIC,
  SIMP page, SIEFP page and synthetic timers blob, as MSHV_GET_VP_STATE returned them.
- ``MEMR`` (index = region number): the region's pages, sparse: u64 page count, then a bitmap
  of the pages stored (bit i of byte i // 8, least significant first; a page of zeros is not
  stored), then the stored pages one after the other (zlib-compressed when flag bit 0 is set).

Loading checks the magic, the version, the header and every section's CRC32, the sizes, and
that every region and listed blob has its section; anything else is a SnapshotFormatError.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from os import PathLike
from typing import Any

from mshv.memory import PAGE_SIZE
from mshv.registers import RegisterValue, Segment, Table
from mshv.snapshot import RegionLayout, Snapshot, SnapshotFormatError, VpSnapshot
from mshv.snapshot_registers import REGISTER_CLASSES, STATE_BLOBS, PartitionFeatures

__all__ = ["MAGIC", "VERSION", "load", "save"]

MAGIC = b"MSHVSNAP"
VERSION = 1
_HEADER = struct.Struct("<8sIIQI")  # magic, version, sections, file size, reserved (+ CRC32)
_SECTION = struct.Struct("<4sIQII")  # tag, index, payload size, CRC32, flags
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ZLIB = 1
_BLOB_TAGS = {
    "xsave": b"XSAV", "lapic": b"LAPI", "simp": b"SIMP", "siefp": b"SIEF", "synthetic_timers": b"STIM",
}  # fmt: skip
_TAG_BLOBS = {tag: name for name, tag in _BLOB_TAGS.items()}
_ZERO_PAGE = bytes(PAGE_SIZE)


# -- writing ------------------------------------------------------------------------------------
def _value_json(value: RegisterValue) -> Any:
    if isinstance(value, Segment):
        return {"segment": list(value)}
    if isinstance(value, Table):
        return {"table": [value.base, value.limit]}
    return value


def _meta(snap: Snapshot) -> bytes:
    meta = {
        "layout": [[r.gpa, r.size, r.writable, r.executable] for r in snap.layout],
        "reference_time": snap.reference_time,
        "features": vars(snap.features),
        "unavailable": snap.unavailable,
        "vps": {
            str(index): {
                "registers": {
                    klass: {name: _value_json(value) for name, value in regs.items()}
                    for klass, regs in vp.registers.items()
                },
                "blobs": list(vp.blobs),
            }
            for index, vp in snap.vps.items()
        },
    }
    return json.dumps(meta, sort_keys=True).encode()


def _memory_payload(data: bytes) -> bytes:
    npages = len(data) // PAGE_SIZE
    bitmap = bytearray((npages + 7) // 8)
    stored = []
    for page in range(npages):
        # a bytes slice, compared with one memcmp (a memoryview slice compares element by element)
        chunk = data[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        if chunk != _ZERO_PAGE:
            bitmap[page // 8] |= 1 << (page % 8)
            stored.append(chunk)
    return _U64.pack(npages) + bytes(bitmap) + zlib.compress(b"".join(stored), 1)


def _section(tag: bytes, index: int, payload: bytes, flags: int = 0) -> bytes:
    return _SECTION.pack(tag, index, len(payload), zlib.crc32(payload), flags) + payload


def save(snap: Snapshot, path: str | PathLike[str]) -> None:
    """Write ``snap`` to ``path`` (through a temporary file renamed over it)."""
    sections = [_section(b"META", 0, _meta(snap))]
    for index, vp in snap.vps.items():
        sections += [_section(_BLOB_TAGS[name], index, data) for name, data in vp.blobs.items()]
    sections += [_section(b"MEMR", i, _memory_payload(data), _ZLIB) for i, data in enumerate(snap.memory)]
    size = _HEADER.size + _U32.size + sum(len(s) for s in sections)
    header = _HEADER.pack(MAGIC, VERSION, len(sections), size, 0)
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(header + _U32.pack(zlib.crc32(header)))
        for section in sections:
            f.write(section)
    os.replace(tmp, path)


# -- reading ------------------------------------------------------------------------------------
def _fail(path: str | PathLike[str], why: str) -> SnapshotFormatError:
    return SnapshotFormatError(f"{os.fspath(path)}: {why}")


def _sections(path: str | PathLike[str], data: bytes) -> list[tuple[bytes, int, memoryview, int]]:
    head = _HEADER.size + _U32.size
    if len(data) < head or data[:8] != MAGIC:
        raise _fail(path, "not a python-mshv snapshot (no MSHVSNAP header)")
    magic, version, count, size, _reserved = _HEADER.unpack_from(data)
    if version != VERSION:
        raise _fail(path, f"snapshot format version {version}; this python-mshv reads version {VERSION}")
    if _U32.unpack_from(data, _HEADER.size)[0] != zlib.crc32(data[: _HEADER.size]):
        raise _fail(path, "header checksum mismatch (corrupt file)")
    if size != len(data):
        raise _fail(path, f"file is {len(data)} bytes, its header says {size} (truncated or extended)")
    found, offset, view = [], head, memoryview(data)
    for number in range(count):
        if offset + _SECTION.size > len(data):
            raise _fail(path, f"section {number} header runs past the end of the file")
        tag, index, length, crc, flags = _SECTION.unpack_from(data, offset)
        offset += _SECTION.size
        payload = view[offset : offset + length]
        if len(payload) != length:
            raise _fail(path, f"section {number} ({tag!r}) runs past the end of the file")
        if zlib.crc32(payload) != crc:
            raise _fail(path, f"section {number} ({tag.decode(errors='replace')} {index}) checksum mismatch")
        found.append((tag, index, payload, flags))
        offset += length
    if offset != len(data):
        raise _fail(path, f"{len(data) - offset} bytes after the last section")
    return found


def _value(value: Any) -> RegisterValue:
    if isinstance(value, dict) and "segment" in value:
        return Segment(*value["segment"])
    if isinstance(value, dict) and "table" in value:
        base, limit = value["table"]
        return Table(base=base, limit=limit)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a register value: {value!r}")
    return value


def _memory(payload: memoryview, flags: int, size: int) -> bytes:
    npages = _U64.unpack_from(payload)[0]
    if npages * PAGE_SIZE != size:
        raise ValueError(f"{npages} pages for a region of {size:#x} bytes")
    nbytes = (npages + 7) // 8
    bitmap = bytes(payload[8 : 8 + nbytes])
    pages = bytes(payload[8 + nbytes :])
    if flags & _ZLIB:
        pages = zlib.decompress(pages)
    stored = [page for page in range(npages) if bitmap[page // 8] >> (page % 8) & 1]
    if len(pages) != len(stored) * PAGE_SIZE:
        raise ValueError(f"{len(pages)} bytes of pages for {len(stored)} stored pages")
    memory = bytearray(size)
    for n, page in enumerate(stored):
        memory[page * PAGE_SIZE : (page + 1) * PAGE_SIZE] = pages[n * PAGE_SIZE : (n + 1) * PAGE_SIZE]
    return bytes(memory)


def _build(sections: list[tuple[bytes, int, memoryview, int]]) -> Snapshot:
    if not sections or sections[0][0] != b"META":
        raise ValueError("the first section is not META")
    meta = json.loads(bytes(sections[0][2]))
    layout = tuple(RegionLayout(int(g), int(s), bool(w), bool(x)) for g, s, w, x in meta["layout"])
    regions: dict[int, bytes] = {}
    blobs: dict[tuple[int, str], bytes] = {}
    for tag, index, payload, flags in sections[1:]:
        if tag == b"MEMR" and index < len(layout) and index not in regions:
            regions[index] = _memory(payload, flags, layout[index].size)
        elif tag in _TAG_BLOBS and (index, _TAG_BLOBS[tag]) not in blobs:
            blobs[index, _TAG_BLOBS[tag]] = bytes(payload)
        else:
            raise ValueError(f"unexpected section {tag!r} {index}")
    missing = [str(layout[i]) for i in range(len(layout)) if i not in regions]
    if missing:
        raise ValueError(f"no memory section for region(s) {', '.join(missing)}")
    vps = {}
    for key, entry in meta["vps"].items():
        index = int(key)
        registers = {
            klass: {name: _value(value) for name, value in entry["registers"][klass].items()}
            for klass in REGISTER_CLASSES
            if klass in entry["registers"]
        }
        names = [name for name in STATE_BLOBS if name in entry["blobs"]]
        lost = [name for name in names if (index, name) not in blobs]
        if lost or len(names) != len(entry["blobs"]):
            raise ValueError(f"VP {index}: blobs {entry['blobs']} listed, sections missing for {lost}")
        vps[index] = VpSnapshot(index, registers, {name: blobs[index, name] for name in names})
    features = PartitionFeatures(**{name: int(value) for name, value in meta["features"].items()})
    unavailable = {str(k): str(v) for k, v in meta["unavailable"].items()}
    reference = meta["reference_time"]
    memory = tuple(regions[i] for i in range(len(layout)))
    return Snapshot(layout, memory, vps, None if reference is None else int(reference), features, unavailable)


def load(path: str | PathLike[str]) -> Snapshot:
    """Read a snapshot file written by :func:`save`.

    Raises:
        SnapshotFormatError: not a snapshot file, another format version, a checksum or size
            that does not match, or contents that do not make a snapshot.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    sections = _sections(path, data)
    try:
        return _build(sections)
    except (ValueError, KeyError, TypeError, zlib.error) as exc:  # json.JSONDecodeError is a ValueError
        raise _fail(path, f"contents do not make a snapshot: {exc}") from None
