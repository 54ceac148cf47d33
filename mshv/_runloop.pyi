"""Types of the Cython run loop (mshv/_runloop.pyx); use :class:`mshv.runloop.RunLoop`."""

from collections.abc import Callable, Mapping

KINDS: dict[str, int]

class NativeEngine:
    exits: int
    def __init__(
        self,
        fd: int,
        table: int,
        page: int,
        kick: int,
        take_request: Callable[[], bool],
        complete: Callable[[Mapping[str, int]], None],
    ) -> None: ...
    def close(self) -> None: ...
    def add_port(
        self, slot: int, first: int, last: int, kind: int, output: bytearray | None = None
    ) -> None: ...
    def add_mmio(self, slot: int, gpa: int, size: int, kind: int, data: bytearray | None = None) -> None: ...
    def remove(self, slot: int) -> bool: ...
    def feed(self, slot: int, data: bytes) -> None: ...
    def pending(self, slot: int) -> int: ...
    def take(self, slot: int, size: int) -> bytes: ...
    def hits(self, slot: int) -> int: ...
    def run(
        self,
        max_exits: int,
        stop_types: tuple[int, ...],
        stop_ports: tuple[int, ...],
        deadline: float,
        stop_on_halt: bool,
        slow: Callable[[int, bytes], bool],
    ) -> tuple[str, int, bytes | None]: ...
