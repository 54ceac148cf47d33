"""Linux bzImage through the 64-bit boot protocol (the kernel's
Documentation/arch/x86/boot.rst): the protected-mode kernel is placed at its
preferred or aligned address, a zero page (struct boot_params) carries the
setup header, the e820 map and the command line, and the boot VP enters
``startup_64`` (load address + 0x200) in long mode with RSI = the zero page."""

from __future__ import annotations

import struct

from mshv.boot.image import BootImage, ImageError, Placement

__all__ = ["is_bzimage", "bzimage_image"]

HDRS = b"HdrS"
MIN_VERSION = 0x020C  # 2.12: xloadflags, the 64-bit entry
XLF_KERNEL_64 = 1 << 0
LOADED_HIGH = 1 << 0
CAN_USE_HEAP = 1 << 7
LOADER_UNDEFINED = 0xFF  # type_of_loader: a boot loader with no assigned id
STARTUP_64_OFFSET = 0x200
SECTOR = 512
ZERO_PAGE_GPA = 0x7000  # struct boot_params, 4 KiB
CMDLINE_GPA = 0x20000
E820_MAX = 128

# offsets in struct boot_params (the setup header starts at 0x1f1)
SETUP_SECTS = 0x1F1
BOOT_FLAG = 0x1FE
HEADER = 0x202
VERSION = 0x206
TYPE_OF_LOADER = 0x210
LOADFLAGS = 0x211
HEAP_END_PTR = 0x224
CMD_LINE_PTR = 0x228
KERNEL_ALIGNMENT = 0x230
RELOCATABLE = 0x234
XLOADFLAGS = 0x236
CMDLINE_SIZE = 0x238
PREF_ADDRESS = 0x258
INIT_SIZE = 0x260
E820_ENTRIES = 0x1E8
E820_TABLE = 0x2D0
E820_ENTRY = struct.Struct("<QQI")


def is_bzimage(image: bytes) -> bool:
    """True if ``image`` carries a Linux setup header ("HdrS" at 0x202)."""
    return len(image) > HEADER + 4 and image[HEADER : HEADER + 4] == HDRS


def _load_address(image: bytes, memory_size: int, needed: int) -> int:
    pref = struct.unpack_from("<Q", image, PREF_ADDRESS)[0]
    if pref + needed <= memory_size:
        return int(pref)
    if not image[RELOCATABLE]:
        raise ImageError(f"the kernel needs memory up to {pref + needed:#x} and is not relocatable (use -m)")
    align = struct.unpack_from("<I", image, KERNEL_ALIGNMENT)[0] or 0x200000
    address = (0x100000 + align - 1) // align * align
    if address + needed > memory_size:
        raise ImageError(f"the kernel needs memory up to {address + needed:#x} (use -m)")
    return address


def bzimage_image(
    image: bytes, memory_map: list[tuple[int, int, int]], memory_size: int, cmdline: str = ""
) -> BootImage:
    """Load a bzImage for the 64-bit boot protocol.

    Raises:
        ImageError: no setup header, a protocol older than 2.12, no 64-bit entry, a
            command line longer than the kernel takes, or too little memory.
    """
    if not is_bzimage(image):
        raise ImageError('not a bzImage (no "HdrS" setup header at 0x202)')
    version = struct.unpack_from("<H", image, VERSION)[0]
    if version < MIN_VERSION:
        raise ImageError(f"boot protocol {version >> 8}.{version & 0xFF} has no 64-bit entry (2.12+ needed)")
    if not struct.unpack_from("<H", image, XLOADFLAGS)[0] & XLF_KERNEL_64:
        raise ImageError("the kernel has no 64-bit entry point (xloadflags XLF_KERNEL_64 clear)")
    setup_sects = image[SETUP_SECTS] or 4
    kernel = image[(setup_sects + 1) * SECTOR :]
    init_size = struct.unpack_from("<I", image, INIT_SIZE)[0]
    load = _load_address(image, memory_size, max(init_size, len(kernel)))
    raw_cmdline = cmdline.encode() + b"\0"
    if len(raw_cmdline) > struct.unpack_from("<I", image, CMDLINE_SIZE)[0] + 1:
        raise ImageError("the command line is longer than the kernel's cmdline_size")
    if len(memory_map) > E820_MAX:
        raise ImageError(f"more than {E820_MAX} e820 entries")

    zero_page = bytearray(4096)
    header_end = HEADER + image[0x201]  # the setup header's length: the jump at 0x200
    zero_page[SETUP_SECTS:header_end] = image[SETUP_SECTS:header_end]
    zero_page[TYPE_OF_LOADER] = LOADER_UNDEFINED
    zero_page[LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP
    struct.pack_into("<H", zero_page, HEAP_END_PTR, 0xFE00)
    struct.pack_into("<I", zero_page, CMD_LINE_PTR, CMDLINE_GPA)
    zero_page[E820_ENTRIES] = len(memory_map)
    for i, (base, length, kind) in enumerate(memory_map):
        E820_ENTRY.pack_into(zero_page, E820_TABLE + i * E820_ENTRY.size, base, length, kind)
    if struct.unpack_from("<H", zero_page, BOOT_FLAG)[0] != 0xAA55:
        raise ImageError("the setup header's boot_flag is not 0xAA55")
    return BootImage(
        kind="bzimage",
        mode="long",
        entry=load + STARTUP_64_OFFSET,
        placements=[
            Placement(ZERO_PAGE_GPA, bytes(zero_page), len(zero_page)),
            Placement(CMDLINE_GPA, raw_cmdline, len(raw_cmdline)),
            Placement(load, kernel, max(init_size, len(kernel))),
        ],
        registers={"rsi": ZERO_PAGE_GPA},
    )
