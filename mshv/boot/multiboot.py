"""Multiboot v1 (the Multiboot Specification 0.6.96): what QEMU's ``-kernel`` boots for
32-bit kernels. The loader finds the multiboot header in the image's first 8 KiB,
places the ELF's loadable segments (or, with the header's address fields, the raw
image) and writes the boot information structure the kernel reads through EBX."""

from __future__ import annotations

import struct

from mshv.boot.elf import load_segments
from mshv.boot.image import BootImage, ImageError, Placement

__all__ = ["HEADER_MAGIC", "BOOTLOADER_MAGIC", "find_header", "multiboot_image"]

HEADER_MAGIC = 0x1BADB002  # in the kernel's multiboot header
BOOTLOADER_MAGIC = 0x2BADB002  # in EAX at the kernel's entry
SEARCH_BYTES = 8192
FLAG_ADDRESS_FIELDS = 1 << 16  # header_addr .. entry_addr are valid (the "a.out kludge")
SUPPORTED_FLAGS = (1 << 0) | (1 << 1) | FLAG_ADDRESS_FIELDS  # align modules, memory info

# boot information structure: flags and the fields this loader fills
INFO_MEMORY = 1 << 0  # mem_lower, mem_upper
INFO_CMDLINE = 1 << 2
INFO_MMAP = 1 << 6
INFO_LOADER_NAME = 1 << 9
INFO_SIZE = 88
MMAP_ENTRY = struct.Struct("<IQQI")  # size (of the rest: 20), base_addr, length, type

# where the boot information lives in guest memory (below the 640 KiB hole, above the
# GDT at 0x500 and the page tables at 0x2000)
INFO_GPA = 0x9000
MMAP_GPA = 0x9100
LOADER_NAME_GPA = 0x9800
CMDLINE_GPA = 0xA000
CMDLINE_MAX = 0x1000
LOADER_NAME = b"python-mshv\0"


def find_header(image: bytes) -> tuple[int, int] | None:
    """The multiboot header's file offset and flags, or None if the image has none."""
    for offset in range(0, min(len(image), SEARCH_BYTES) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", image, offset)
        if magic == HEADER_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return offset, flags
    return None


def _address_fields_image(image: bytes, offset: int) -> tuple[list[Placement], int]:
    header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<5I", image, offset + 12)
    if load_addr > header_addr:
        raise ImageError(f"multiboot load_addr {load_addr:#x} is above header_addr {header_addr:#x}")
    start = offset - (header_addr - load_addr)
    if start < 0:
        raise ImageError("multiboot header_addr/load_addr point before the start of the file")
    end = len(image) - start + load_addr if load_end == 0 else load_end
    if end < load_addr or start + (end - load_addr) > len(image):
        raise ImageError(f"multiboot load_end_addr {load_end:#x} lies beyond the file")
    data = image[start : start + (end - load_addr)]
    size = max(len(data), (bss_end or end) - load_addr)
    return [Placement(load_addr, data, size)], entry


def boot_information(memory_map: list[tuple[int, int, int]], cmdline: bytes) -> list[Placement]:
    """The boot information structure, its memory map, loader name and command line."""
    if len(cmdline) >= CMDLINE_MAX:
        raise ImageError(f"the command line is longer than {CMDLINE_MAX - 1} bytes")
    mmap = b"".join(
        MMAP_ENTRY.pack(MMAP_ENTRY.size - 4, base, length, kind) for base, length, kind in memory_map
    )
    if MMAP_GPA + len(mmap) > LOADER_NAME_GPA:
        raise ImageError("the memory map does not fit its slot")
    lower = next((length for base, length, _ in memory_map if base == 0), 0) // 1024
    upper = next((length for base, length, _ in memory_map if base == 0x100000), 0) // 1024
    info = bytearray(INFO_SIZE)
    flags = INFO_MEMORY | INFO_CMDLINE | INFO_MMAP | INFO_LOADER_NAME
    struct.pack_into("<III", info, 0, flags, lower, upper)
    struct.pack_into("<I", info, 16, CMDLINE_GPA)
    struct.pack_into("<II", info, 44, len(mmap), MMAP_GPA)
    struct.pack_into("<I", info, 64, LOADER_NAME_GPA)
    return [
        Placement(INFO_GPA, bytes(info), INFO_SIZE),
        Placement(MMAP_GPA, mmap, len(mmap)),
        Placement(LOADER_NAME_GPA, LOADER_NAME, len(LOADER_NAME)),
        Placement(CMDLINE_GPA, cmdline + b"\0", len(cmdline) + 1),
    ]


def multiboot_image(image: bytes, memory_map: list[tuple[int, int, int]], cmdline: str = "") -> BootImage:
    """Load a multiboot v1 kernel: a 32-bit protected-mode VP at its entry, paging off,
    EAX = the boot loader magic and EBX = the boot information's GPA.

    Raises:
        ImageError: no multiboot header, flags this loader cannot honour (video mode),
            or a malformed ELF.
    """
    found = find_header(image)
    if found is None:
        raise ImageError(f"no multiboot header in the first {SEARCH_BYTES} bytes")
    offset, flags = found
    unsupported = flags & 0xFFFF & ~SUPPORTED_FLAGS
    if unsupported:
        raise ImageError(f"multiboot header asks for flags {unsupported:#x} this loader does not provide")
    if flags & FLAG_ADDRESS_FIELDS:
        placements, entry = _address_fields_image(image, offset)
    else:
        placements, entry = load_segments(image)
    low_end = CMDLINE_GPA + CMDLINE_MAX
    for p in placements:
        if p.gpa < low_end:
            raise ImageError(
                f"the kernel loads at {p.gpa:#x}, inside the loader's boot area below {low_end:#x}"
            )
    placements += boot_information(memory_map, cmdline.encode())
    return BootImage(
        kind="multiboot",
        mode="protected",
        entry=entry,
        placements=placements,
        registers={"rax": BOOTLOADER_MAGIC, "rbx": INFO_GPA},
    )
