"""Choose a loader by the image's contents; the guest's memory map; flat images."""

from __future__ import annotations

from mshv.boot.bzimage import bzimage_image, is_bzimage
from mshv.boot.image import E820_RAM, E820_RESERVED, BootImage, ImageError, Placement
from mshv.boot.multiboot import find_header, multiboot_image

__all__ = ["FORMATS", "flat_image", "load_image", "memory_map"]

FORMATS = ("auto", "multiboot", "bzimage", "flat")
LOW_RAM_END = 0x9FC00  # conventional memory below the EBDA and the 640 KiB hole
HIGH_RAM = 0x100000


def memory_map(memory_size: int) -> list[tuple[int, int, int]]:
    """(base, length, type) ranges a PC-style guest of ``memory_size`` bytes sees."""
    if memory_size <= HIGH_RAM:
        raise ImageError(f"guest memory must be larger than 1 MiB, got {memory_size:#x}")
    return [
        (0, LOW_RAM_END, E820_RAM),
        (LOW_RAM_END, HIGH_RAM - LOW_RAM_END, E820_RESERVED),
        (HIGH_RAM, memory_size - HIGH_RAM, E820_RAM),
    ]


def flat_image(data: bytes, *, load_gpa: int, entry: int, mode: str = "protected") -> BootImage:
    """A raw binary copied to ``load_gpa`` and entered at ``entry`` in ``mode``
    ("real", "protected" or "long")."""
    if mode not in ("real", "protected", "long"):
        raise ImageError(f"mode must be real, protected or long, got {mode!r}")
    if mode == "real" and entry >= 0x10000:
        raise ImageError(f"a real-mode entry must lie below 64 KiB, got {entry:#x}")
    return BootImage(kind="flat", mode=mode, entry=entry, placements=[Placement(load_gpa, data, len(data))])


def load_image(
    image: bytes,
    memory_size: int,
    *,
    fmt: str = "auto",
    cmdline: str = "",
    load_gpa: int | None = None,
    entry: int | None = None,
    mode: str = "protected",
) -> BootImage:
    """Turn ``image`` into a :class:`BootImage` for a guest with ``memory_size`` bytes of RAM.

    ``fmt`` "auto" picks multiboot when the image has a multiboot header, bzImage when
    it has a Linux setup header, and otherwise refuses (a flat binary needs ``fmt="flat"``
    with ``entry``). A flat image loads at ``load_gpa`` (default: ``entry``).

    Raises:
        ImageError: the format is unknown or the image does not fit.
    """
    if fmt not in FORMATS:
        raise ImageError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "auto":
        if find_header(image) is not None:
            fmt = "multiboot"
        elif is_bzimage(image):
            fmt = "bzimage"
        else:
            raise ImageError("neither a multiboot header nor a bzImage setup header: for a flat binary "
                             "give the format flat and an entry point")  # fmt: skip
    ram = memory_map(memory_size)
    if fmt == "multiboot":
        booted = multiboot_image(image, ram, cmdline)
    elif fmt == "bzimage":
        booted = bzimage_image(image, ram, memory_size, cmdline)
    else:
        if entry is None:
            raise ImageError("a flat image needs an entry point")
        booted = flat_image(image, load_gpa=entry if load_gpa is None else load_gpa, entry=entry, mode=mode)
    booted.check_fits(memory_size)
    return booted
