"""Types of mshv/_native.pyx (map/unmap and register calls in C); use :class:`mshv.Partition`
and :class:`mshv.Vp`."""

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
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

class RegisterCalls:
    def __init__(
        self,
        table: int,
        spec: dict[Any, tuple[str, int, str]],
        resolve: Callable[[Any], tuple[str, int, str]],
        fields: Callable[[str, str, Any], tuple[int, ...]],
        error: Callable[[int, int, int, int, list[str], int, int, int], BaseException],
        segment_type: type,
        table_type: type,
    ) -> None: ...
    def get(self, fd: int, vp_index: int, names: Iterable[Any]) -> dict[str, Any]: ...
    def set(
        self, fd: int, vp_index: int, values: Mapping[Any, Any], collect: AbstractSet[str] = ...
    ) -> dict[str, Any]: ...

def thread_id() -> int: ...

class RunCalls:
    def __init__(
        self,
        table: int,
        fd: int,
        keep: Any,
        run_address: int,
        state: Any,
        page: int,
        slots: dict[str, int],
        io_type: type,
        memory_type: type,
        mtypes: dict[int, Any],
        decode: Callable[[bytes], Any],
        regs: RegisterCalls | None = None,
        index: int = 0,
    ) -> None: ...
    def get_registers(self, names: Iterable[Any]) -> dict[str, Any]: ...
    def set_registers(self, values: Mapping[Any, Any]) -> None: ...
    def close(self) -> None: ...
    def enter(self, run: Any, what: str) -> None: ...
    def leave(self, run: Any) -> None: ...
    def run(self) -> Any: ...
    def run_owned(self, what: str) -> Any: ...
    def complete_io(self, intercept: Any, value: int | None) -> bool: ...
    def complete(self, values: Mapping[str, int]) -> bool: ...
