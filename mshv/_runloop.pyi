"""Types of the Cython run loop (mshv/_runloop.pyx); use :class:`mshv.runloop.RunLoop`."""

from collections.abc import Callable

KINDS: dict[str, int]

class NativeEngine:
    exits: int
    def __init__(
        self,
        fd: int,
        table: int,
        page: int,
        slow: Callable[[int, bytes], bool],
        complete: Callable[[int, int | None], None],
    ) -> None: ...
    def close(self) -> None: ...
    def add_port(
        self, slot: int, first: int, last: int, kind: int, output: bytearray | None = None
    ) -> None: ...
    def add_mmio(self, slot: int, gpa: int, size: int, kind: int, data: bytearray | None = None) -> None: ...
    def remove(self, slot: int) -> bool: ...
    def feed(self, slot: int, data: bytes) -> None: ...
    def pending(self, slot: int) -> int: ...
    def hits(self, slot: int) -> int: ...
    def stop(self) -> None: ...
    def run(
        self,
        max_exits: int,
        stop_types: tuple[int, ...],
        stop_ports: tuple[int, ...],
        deadline: float,
        stop_on_halt: bool,
    ) -> tuple[str, int, bytes | None]: ...
