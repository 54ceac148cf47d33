"""Calls made ready once and issued together by one C call (``lib.mshv_call_batch``,
build_ext/call_batch.py): a snapshot restore's fixed sequence of hypercalls and ioctls.

A step names its fd by slot (the caller passes the fds at each run), holds its
argument struct as made ready, and knows how to describe its own failure: the
error a run raises is the one the same call made alone raises.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any

from mshv._abi import ffi, lib
from mshv.errors import MshvError
from mshv.hvcall import failure

__all__ = ["CallBatch", "HvcallError", "IoctlError", "fds_array", "hvcall_error"]

_MAX_BYTES = lib.MSHV_HV_PAGE_SIZE
_ROOT_HVCALL = lib.MSHV_ROOT_HVCALL
_HVCALL_ARGS = "struct mshv_root_hvcall"

#: The error of a failed hypercall step from (errno, status, reps done); errno 0 means the call
#: succeeded short of the reps it was given.
HvcallError = Callable[[int, int, int], MshvError]
#: The error of a failed ioctl step from its errno.
IoctlError = Callable[[int], MshvError]


def hvcall_error(code: int, reps: int = 0) -> HvcallError:
    """The error :func:`mshv.hvcall.hvcall` raises when ``code`` fails; a call short of its
    ``reps`` (errno 0) is EIO, naming the reps done."""

    def error(err: int, status: int, done: int) -> MshvError:
        return failure(err or errno.EIO, code, status, done, reps)

    return error


class CallBatch:
    """Steps for one ``mshv_call_batch``, added in the order they run; :meth:`run` issues them."""

    def __init__(self) -> None:
        self._specs: list[tuple[int, int, int, Any, Any, int]] = []
        self._errors: list[Callable[[int], MshvError]] = []
        self._keep: list[Any] = []  # the memory the steps point at
        self._steps: Any = None

    def __len__(self) -> int:
        return len(self._specs)

    def add_ioctl(self, slot: int, request: int, init: Any, error: IoctlError) -> None:
        """An ioctl on fd ``slot`` with a copy of ``init`` (a struct pointer cdata, kept alive)."""
        arg = ffi.new(ffi.typeof(init))
        self._keep += [init, arg]
        self._specs.append((slot, 0, request, arg, init, ffi.sizeof(init[0])))
        self._errors.append(error)
        self._steps = None

    def add_hvcall(
        self, slot: int, code: int, data: bytes, *, reps: int = 0, output_size: int = 0, error: HvcallError
    ) -> Any:
        """MSHV_ROOT_HVCALL of ``code`` with input ``data`` on fd ``slot``; it fails unless it
        completes ``reps`` reps. Returns the ``unsigned char[]`` its output lands in (or None).
        ``error`` makes the MshvError (see :data:`HvcallError`)."""
        if not 8 <= len(data) <= _MAX_BYTES or not 0 <= output_size <= _MAX_BYTES:
            raise ValueError(f"hypercall sizes out of range: input {len(data)}, output {output_size}")
        source = ffi.new("unsigned char[]", data)
        output = ffi.new("unsigned char[]", output_size) if output_size else None
        init = ffi.new(f"{_HVCALL_ARGS} *")
        init.code, init.reps, init.in_sz, init.out_sz = code, reps, len(data), output_size
        init.in_ptr = int(ffi.cast("uintptr_t", source))
        init.out_ptr = int(ffi.cast("uintptr_t", output)) if output is not None else 0
        arg = ffi.new(f"{_HVCALL_ARGS} *")
        self._keep += [source, output, init, arg]
        self._specs.append((slot, reps, _ROOT_HVCALL, arg, init, ffi.sizeof(_HVCALL_ARGS)))
        self._errors.append(lambda err: error(err, arg.status, arg.reps))
        self._steps = None
        return output

    def steps(self) -> Any:
        """The ``struct mshv_batch_step[]`` cdata of the steps, for a C caller (kept by the batch
        until a step is added)."""
        steps = self._steps
        if steps is None:
            steps = self._steps = ffi.new("struct mshv_batch_step[]", [_step(s) for s in self._specs])
        return steps

    def error(self, index: int, err: int) -> MshvError:
        """The error of step ``index`` failing with errno ``err``, as :meth:`run` raises it."""
        return self._errors[index](err)

    def run(self, fds: Any, start: int = 0, stop: int | None = None) -> None:
        """Issue steps ``start``..``stop`` (all by default) with ``fds`` (an ``int[]`` cdata, one
        fd per slot); stops at the first that fails and raises its error."""
        stop = len(self._specs) if stop is None else stop
        done = lib.mshv_call_batch(self.steps() + start, stop - start, fds)
        if done != stop - start:
            raise self.error(start + done, ffi.errno)


def _step(spec: tuple[int, int, int, Any, Any, int]) -> dict[str, Any]:
    slot, reps, request, arg, init, size = spec
    return {"slot": slot, "reps": reps, "request": request, "arg": arg, "init": init, "size": size}


def fds_array(fds: Sequence[int]) -> Any:
    """The ``int[]`` cdata :meth:`CallBatch.run` takes."""
    return ffi.new("int[]", list(fds))
