"""Types of mshv/_native.pyx (map/unmap in C); use :meth:`mshv.Partition.map_memory`."""

from collections.abc import Callable
from typing import Any

class MemoryCalls:
    def __init__(
        self,
        table: int,
        memory_type: type,
        region_type: type,
        map_checked: Callable[..., Any],
        unmap_checked: Callable[..., Any],
        error: Callable[[str, int, int, int], BaseException],
    ) -> None: ...
    def map(
        self,
        pt: Any,
        memory: Any,
        gpa: int,
        size: int | None,
        offset: int,
        writable: bool,
        executable: bool,
    ) -> Any: ...
    def unmap(self, pt: Any, region: Any) -> None: ...
