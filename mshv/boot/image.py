"""What a loader produces: the pieces of a guest image and how the boot VP starts."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BootImage", "ImageError", "Placement", "E820_RAM", "E820_RESERVED"]

E820_RAM = 1  # e820 / multiboot memory map type: usable RAM
E820_RESERVED = 2


class ImageError(ValueError):
    """The image is not in the format asked for, or does not fit the guest's memory."""


@dataclass(frozen=True)
class Placement:
    """``data`` goes to guest physical address ``gpa``; ``size`` bytes are reserved
    (``size`` > ``len(data)`` zero-fills the rest, e.g. an ELF segment's .bss)."""

    gpa: int
    data: bytes
    size: int

    @property
    def end(self) -> int:
        """The first GPA after this piece."""
        return self.gpa + self.size


@dataclass
class BootImage:
    """An image ready to copy into guest memory.

    Attributes:
        kind: "multiboot", "bzimage" or "flat".
        mode: the boot VP's mode: "protected" (32-bit, paging off) or "long".
        entry: the boot VP's first RIP.
        placements: what to write where in guest memory.
        registers: extra boot-VP registers the format defines (e.g. multiboot's
            EAX/EBX, the Linux boot protocol's RSI).
    """

    kind: str
    mode: str
    entry: int
    placements: list[Placement] = field(default_factory=list)
    registers: dict[str, int] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """The first GPA above every placement: the guest needs at least this much memory."""
        return max((p.end for p in self.placements), default=0)

    def check_fits(self, memory_size: int) -> None:
        """Raise :class:`ImageError` if a placement lies beyond ``memory_size`` bytes of RAM."""
        for p in self.placements:
            if p.end > memory_size:
                raise ImageError(
                    f"{self.kind} image needs guest memory up to {p.end:#x}, "
                    f"but the guest has {memory_size:#x} bytes (use -m)"
                )
