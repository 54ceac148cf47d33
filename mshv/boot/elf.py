"""ELF program headers: the loadable segments of a 32- or 64-bit x86 executable."""

from __future__ import annotations

import struct

from mshv.boot.image import ImageError, Placement

__all__ = ["is_elf", "load_segments"]

ELF_MAGIC = b"\x7fELF"
PT_LOAD = 1
EM_386, EM_X86_64 = 3, 62
# (ELF header after e_ident, program header) per ELF class; both headers list
# type, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum, ...
_CLASSES = {
    1: (struct.Struct("<HHIIIIIHHHHHH"), struct.Struct("<IIIIIIII")),  # ELFCLASS32
    2: (struct.Struct("<HHIQQQIHHHHHH"), struct.Struct("<IIQQQQQQ")),  # ELFCLASS64
}


def is_elf(image: bytes) -> bool:
    """True if ``image`` starts with the ELF magic."""
    return image[:4] == ELF_MAGIC


def _phdrs(image: bytes, ei_class: int) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """The entry point and (type, file offset, paddr, filesz, memsz) of each program header."""
    ehdr, phdr = _CLASSES[ei_class]
    _, machine, _, entry, phoff, _, _, _, phentsize, phnum, *_ = ehdr.unpack_from(image, 16)
    if machine not in (EM_386, EM_X86_64):
        raise ImageError(f"ELF machine {machine} is not x86")
    headers = []
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + phdr.size > len(image):
            raise ImageError("ELF program headers run past the end of the file")
        v = phdr.unpack_from(image, at)
        if ei_class == 1:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
            headers.append((v[0], v[1], v[3], v[4], v[5]))
        else:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
            headers.append((v[0], v[2], v[4], v[5], v[6]))
    return entry, headers


def load_segments(image: bytes) -> tuple[list[Placement], int]:
    """The PT_LOAD segments at their physical addresses, and the entry point.

    Raises:
        ImageError: not an ELF, not x86, no loadable segment, or a segment past the file.
    """
    if not is_elf(image) or len(image) < 64:
        raise ImageError("not an ELF file")
    ei_class = image[4]
    if ei_class not in _CLASSES:
        raise ImageError(f"unknown ELF class {ei_class}")
    entry, headers = _phdrs(image, ei_class)
    placements = []
    for p_type, offset, paddr, filesz, memsz in headers:
        if p_type != PT_LOAD or memsz == 0:
            continue
        if offset + filesz > len(image) or filesz > memsz:
            raise ImageError(f"ELF segment at {paddr:#x} runs past the end of the file")
        placements.append(Placement(paddr, image[offset : offset + filesz], memsz))
    if not placements:
        raise ImageError("the ELF has no loadable segment")
    return placements, entry
