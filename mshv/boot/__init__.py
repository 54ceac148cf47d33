"""Guest images a partition can boot: multiboot v1 ELF, Linux bzImage, flat binaries.

Each loader turns an image into a :class:`BootImage`: the bytes to place in guest
memory, where, and the boot VP's registers. :func:`load_image` picks the loader
from the image's contents.

Example:
    >>> from mshv.boot import flat_image
    >>> image = flat_image(b"\\xf4", load_gpa=0x10000, entry=0x10000)
    >>> (image.kind, hex(image.entry), image.mode)
    ('flat', '0x10000', 'protected')
"""

from __future__ import annotations

from mshv.boot.image import BootImage, ImageError, Placement
from mshv.boot.loaders import flat_image, load_image, memory_map

__all__ = ["BootImage", "ImageError", "Placement", "flat_image", "load_image", "memory_map"]
