"""mshv/registers.py and mshv/_regcalls.py: values of every kind survive a round trip through
the VP, and bad names, types and ranges are refused before any hypercall (property-based, on
the backend; derandomized, so CI sees the same examples every run). Every test runs twice:
through the C calls of mshv._native and through their pure-Python twins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mshv import Partition, Segment, Table, Vp
from mshv._abi import lib
from mshv.registers import _BY_NAME, register
from mshv.testing import assemble, partition_with_one_vp

GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
U128 = st.integers(min_value=0, max_value=(1 << 128) - 1)
U16 = st.integers(min_value=0, max_value=0xFFFF)


@pytest.fixture(autouse=True, params=["native", "python"])
def calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs through the C calls (mshv._native, built here) and their Python twins."""
    from mshv import _regcalls
    from mshv import vp as vp_module

    if request.param == "native":
        assert _regcalls._NATIVE is not None, "mshv._native is not built in this install"
        assert getattr(vp_module, "get_registers") == _regcalls._NATIVE.get  # noqa: B009  (not re-exported)
        assert vp_module._REGISTERS_IN_C  # Vp's calls go through its RunCalls
    else:
        monkeypatch.setattr(vp_module, "_REGISTERS_IN_C", False)
        monkeypatch.setattr(vp_module, "get_registers", _regcalls.py_get_registers)
        monkeypatch.setattr(vp_module, "set_registers", _regcalls.py_set_registers)
    param: str = request.param
    return param


@pytest.fixture(scope="module")
def vp() -> Iterator[Vp]:
    with partition_with_one_vp(assemble("hlt"), lapic=False) as (_pt, vp, _mem):
        yield vp


@settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.dictionaries(st.sampled_from(GPRS), U64, min_size=1))
def test_gprs_round_trip(vp: Vp, values: dict[str, int]) -> None:
    vp.set_registers(values)  # type: ignore[arg-type]
    assert vp.get_registers(list(values)) == values


@settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(xmm=st.lists(U128, min_size=6, max_size=6))
def test_xmm_round_trip(vp: Vp, xmm: list[int]) -> None:
    values = {f"xmm{i}": v for i, v in enumerate(xmm)}
    vp.set_registers(values)  # type: ignore[arg-type]
    assert vp.get_registers(list(values)) == values


@settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    base=st.integers(0, 0xFFFF0),
    limit=st.integers(0, 0xFFFF),
    table_base=U64,
    table_limit=st.integers(0, 0xFFFF),
)
def test_segment_and_table_round_trip(
    vp: Vp, base: int, limit: int, table_base: int, table_limit: int
) -> None:
    data = Segment(base=base, limit=limit, selector=base >> 4, attributes=0x93)
    gdtr = Table(base=table_base & 0xFFFF_FFFF, limit=table_limit)
    vp.set_registers({"fs": data, "gdtr": gdtr})
    got = vp.get_registers(["fs", "gdtr"])
    assert got["gdtr"] == gdtr
    fs = got["fs"]
    assert isinstance(fs, Segment) and (fs.base, fs.limit, fs.selector) == (base, limit, base >> 4)
    assert fs.present and fs.type == 3


@settings(derandomize=True)
@given(name=st.text(min_size=1, max_size=12).filter(lambda s: s.lower() not in _BY_NAME))
def test_unknown_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError):
        register(name)


@pytest.mark.parametrize("number", [-1, 1 << 32, 1 << 70])
def test_register_numbers_beyond_32_bits_are_value_errors(vp: Vp, number: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        vp.get_registers([number])
    with pytest.raises(ValueError, match="32-bit"):
        vp.set_registers({number: 0})


@settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    bad=st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=1 << 64),
        st.text(max_size=3),
        st.floats(allow_nan=False),
        st.booleans(),
    )
)
def test_bad_values_change_nothing(vp: Vp, bad: object) -> None:
    vp.set_registers({"rbx": 0x1234, "rcx": 0x99})
    with pytest.raises((TypeError, ValueError)):
        vp.set_registers({"rcx": 5, "rbx": bad})  # type: ignore[dict-item]
    assert vp.get_registers(["rbx", "rcx"]) == {"rbx": 0x1234, "rcx": 0x99}


def _fill_with_cffi(value: object, out: object) -> None:
    """Set a union hv_register_value field by field through cffi (the reference)."""
    if isinstance(value, Segment):
        seg = out.segment  # type: ignore[attr-defined]
        seg.base, seg.limit, seg.selector, seg.attributes = value
    elif isinstance(value, Table):
        out.table.base, out.table.limit = value.base, value.limit  # type: ignore[attr-defined]
    elif isinstance(value, int) and value >> 64:
        out.reg128.low_part, out.reg128.high_part = value & ((1 << 64) - 1), value >> 64  # type: ignore[attr-defined]
    else:
        out.reg64 = value  # type: ignore[attr-defined]


# The codec packs values with struct layouts derived from the compiler's offsets; here the
# same values go through cffi field by field, and the bytes must be identical.
@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    value64=U64,
    value128=st.integers(min_value=1 << 64, max_value=(1 << 128) - 1),
    segment=st.builds(Segment, U64, st.integers(0, (1 << 32) - 1), U16, U16),
    table=st.builds(Table, U64, U16),
)
def test_codec_bytes_equal_cffi_fields(value64: int, value128: int, segment: Segment, table: Table) -> None:
    from mshv._abi import ffi
    from mshv.registers import _decode, _encode

    for name, value in (("rax", value64), ("xmm3", value128), ("cs", segment), ("gdtr", table)):
        number = register(name)[1]
        assoc = ffi.new("struct hv_register_assoc *")
        assoc.name = number
        _fill_with_cffi(value, assoc.value)
        assert _encode(name, number, value) == bytes(ffi.buffer(assoc)), name
        union_bytes = bytes(ffi.buffer(ffi.addressof(assoc.value)))
        assert _decode(name, b"\xee" * 16 + union_bytes, 16) == value, name


def test_regs_follows_python_attribute_conventions(vp: Vp) -> None:
    """``vp.regs``: an unknown name is an AttributeError (so hasattr is False), dir() lists registers."""
    assert not hasattr(vp.regs, "foo")
    with pytest.raises(AttributeError, match="no register 'foo'"):
        vp.regs.foo = 1
    assert hasattr(vp.regs, "rip")
    names = dir(vp.regs)
    assert {"rip", "rax", "cr0", "cs", "gdtr", "xmm0"} <= set(names) and names == sorted(names)
    vp.regs.rbx = 0x1234
    assert vp.regs.rbx == 0x1234


def test_a_failing_batch_names_the_register(vp: Vp) -> None:
    """The hypervisor stops a batch at the first bad register; the error says which one."""
    from mshv import HvStatus, MshvError

    with pytest.raises(MshvError) as info:
        vp.get_registers(["rax", 0x7FFF_FFF0, "rbx"])
    assert info.value.hv_status == HvStatus.INVALID_PARAMETER
    assert "register unknown_0x7ffffff0" in str(info.value) and "1 of 3 done" in str(info.value)
    with pytest.raises(MshvError) as info:
        vp.set_registers({"rax": 1, "rbx": 2, "cr0": 1 << 40})
    assert "cr0" in str(info.value) and "2 of 3 done" in str(info.value), str(info.value)
    with pytest.raises(MshvError) as info:  # in the second chunk of 256: counted from the batch's start
        vp.get_registers(["rax"] * 300 + [0x7FFF_FFF0])
    assert "300 of 301 done" in str(info.value), str(info.value)


# -- one register per call (the fast path of get_registers/set_registers, reg_read/reg_write) --
ONE_OF_EACH_KIND = [
    ("rax", 0xFEDC_BA98_7654_3210),
    ("xmm5", (0x1122_3344_5566_7788 << 64) | 0x99AA_BBCC_DDEE_FF00),
    ("fs", Segment(base=0x12340, limit=0xFFFF, selector=0x1234, attributes=0x93)),
    ("gdtr", Table(base=0xFFFF_8000_0000_1000 & 0xFFFF_FFFF, limit=0x7F)),
]


@pytest.mark.parametrize(("name", "value"), ONE_OF_EACH_KIND, ids=[n for n, _ in ONE_OF_EACH_KIND])
def test_one_register_of_each_kind_round_trips_alone(vp: Vp, name: str, value: object) -> None:
    from mshv import HvRegister

    number = int(HvRegister[name.upper()])
    vp.set_registers({name: value})  # type: ignore[dict-item]
    assert vp.get_registers([name]) == {name: value}
    assert vp.reg_read(name) == value
    for key in (number, HvRegister[name.upper()], name.upper()):  # by number, enum member, other case
        assert vp.get_registers([key]) == {name: value}
        assert vp.reg_read(key) == value
    vp.reg_write(number, value)
    assert vp.get_registers((name,)) == {name: value}


def test_a_batch_reads_values_of_exact_types_in_every_key_form(vp: Vp) -> None:
    """A batch of every key form (name, number, enum member, other case; the last two found by
    mshv.registers._resolve), longer than the C calls keep on the stack, gives the lower-case
    names and values of exactly int, Segment and Table (a plain tuple would compare equal)."""
    from mshv import HvRegister

    for name, value in ONE_OF_EACH_KIND:
        vp.set_registers({name: value})  # type: ignore[dict-item]
    keys: list[str | int] = []
    for name, _ in ONE_OF_EACH_KIND:
        keys += [name, int(HvRegister[name.upper()]), HvRegister[name.upper()], name.upper()]
    got = vp.get_registers(keys * 20)  # 320 keys
    assert got == dict(ONE_OF_EACH_KIND)
    assert [type(got[name]) for name, _ in ONE_OF_EACH_KIND] == [int, int, Segment, Table]
    assert all(type(name) is str for name in got)
    fs = got["fs"]
    assert isinstance(fs, Segment) and (fs.selector, fs.present) == (0x1234, True)


def test_reads_through_one_list_follow_its_changes(vp: Vp) -> None:
    """The same list read again reads what it names now: the C calls remember the keys they
    resolved last (by identity), so an item replaced in place, a new int object, a key of
    another type and another length each resolve again."""
    import gc

    from mshv import HvRegister

    vp.set_registers({"rax": 1, "rbx": 2, "rcx": 3})
    keys: list[str | int] = ["rax", "rbx"]
    assert vp.get_registers(keys) == {"rax": 1, "rbx": 2}
    assert vp.get_registers(keys) == {"rax": 1, "rbx": 2}
    keys[1] = "rcx"
    assert vp.get_registers(keys) == {"rax": 1, "rcx": 3}
    keys[0] = int(str(int(HvRegister.RBX)))  # an int object made now
    assert vp.get_registers(keys) == {"rbx": 2, "rcx": 3}
    keys[0] = HvRegister.RAX
    assert vp.get_registers(keys) == {"rax": 1, "rcx": 3}
    keys.append("RBX")
    assert vp.get_registers(keys) == {"rax": 1, "rcx": 3, "rbx": 2}
    # names resolved by mshv.registers._resolve (another case) outlive the call that made them
    upper = ["RAX", "RCX"]
    assert vp.get_registers(upper) == {"rax": 1, "rcx": 3}
    gc.collect()
    assert vp.get_registers(upper) == {"rax": 1, "rcx": 3}


@pytest.mark.parametrize("key", [True, 1.0, b"rax", None, ("rax",)], ids=repr)
def test_one_register_keys_that_name_no_register_are_value_errors(vp: Vp, key: object) -> None:
    """A bool or float equal to a register number is no register name (register() refuses it)."""
    with pytest.raises(ValueError):
        vp.get_registers([key])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        vp.reg_read(key)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        vp.reg_write(key, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "bad", "error"),
    [
        ("rbx", -1, ValueError), ("rbx", 1 << 64, ValueError), ("rbx", True, TypeError),
        ("rbx", 1.0, TypeError), ("rbx", Segment(), TypeError), ("xmm1", 1 << 128, ValueError),
        ("xmm1", -1, ValueError), ("fs", 0, TypeError), ("gdtr", Segment(), TypeError),
        ("fs", Segment(limit=1 << 32), ValueError), ("fs", Segment(selector=-1), ValueError),
        ("fs", Segment(base="0"), TypeError), ("gdtr", Table(limit=1 << 16), ValueError),  # type: ignore[arg-type]
        ("gdtr", Table(base=1 << 64), ValueError), ("fs", Segment(attributes=True), TypeError),
        ("gdtr", Table(limit=True), TypeError), ("xmm1", True, TypeError), ("xmm1", 1.0, TypeError),
    ],
)  # fmt: skip
def test_one_bad_value_changes_nothing(vp: Vp, name: str, bad: object, error: type[Exception]) -> None:
    before = vp.reg_read(name)
    with pytest.raises(error):
        vp.set_registers({name: bad})  # type: ignore[dict-item]
    with pytest.raises(error):
        vp.reg_write(name, bad)  # type: ignore[arg-type]
    assert vp.reg_read(name) == before


def test_a_failing_single_register_is_named(vp: Vp) -> None:
    from mshv import HvStatus, MshvError

    with pytest.raises(MshvError) as info:
        vp.reg_read(0x7FFF_FFF0)
    assert info.value.hv_status == HvStatus.INVALID_PARAMETER and info.value.reps_done == 0
    assert "register unknown_0x7ffffff0 on VP 0: 0 of 1 done" in str(info.value), str(info.value)
    with pytest.raises(MshvError) as info:
        vp.set_registers({"cr0": 1 << 40})
    assert "register cr0 on VP 0: 0 of 1 done" in str(info.value), str(info.value)


def test_reused_call_buffers_are_refilled_whole(vp: Vp) -> None:
    """Calls reuse buffers (mshv.hvcall's pool): every byte a call sends is written again, so
    garbage left in a buffer (here: all ones) reaches no reserved field the kernel checks."""
    from mshv import hvcall

    calls = [hvcall.take_buffer() for _ in range(4)]
    for call in calls:
        call.buf[:] = b"\xff" * len(call.buf)
        hvcall.give_buffer(call)
    vp.set_registers({"rax": 1, "rbx": 2})
    vp.set_registers({"rcx": 3})
    assert vp.get_registers(["rax", "rbx", "rcx"]) == {"rax": 1, "rbx": 2, "rcx": 3}
    assert vp.reg_read("rbx") == 2
    assert vp.partition.get_property(lib.HV_PARTITION_PROPERTY_PROCESSOR_VENDOR) >= 0


def test_threads_reading_registers_at_once_each_see_their_own(partition: Partition) -> None:
    """Four threads write and read their own VP's registers at the same time: the call buffers
    they share a pool of are never in two calls at once (the GIL is released during each)."""
    import threading

    vps = [partition.create_vp(i) for i in range(4)]
    errors: list[BaseException] = []

    def drive(index: int) -> None:
        target = vps[index]
        try:
            for n in range(300):
                value = (index << 32) | n
                target.reg_write("r9", value)
                assert target.reg_read("r9") == value
                target.set_registers({"r10": value, "r11": ~value & 0xFFFF_FFFF_FFFF_FFFF})
                assert target.get_registers(["r10", "r11"]) == {
                    "r10": value,
                    "r11": ~value & 0xFFFF_FFFF_FFFF_FFFF,
                }
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(vps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


class _Repeated(Mapping[str, int]):
    """Values in order, names repeated (a dict would fold them): a batch longer than a chunk."""

    def __init__(self, items: list[tuple[str, int]]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> int:
        return next(v for k, v in reversed(self._items) if k == key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Any:
        return iter(self._items)

    def values(self) -> Any:
        return iter(v for _, v in self._items)


def test_batches_longer_than_a_hypercall_are_chunked(vp: Vp) -> None:
    """300 writes (127 per HvCallSetVpRegisters) land in order; 300 reads (256 per GET) too."""
    items = [(GPRS[i % len(GPRS)], i) for i in range(300)]
    vp.set_registers(_Repeated(items))  # type: ignore[arg-type]
    last = {name: value for name, value in items}
    assert vp.get_registers([name for name, _ in items]) == last
    with pytest.raises(ValueError, match="rdx is 64 bits"):  # checked before the first chunk goes
        vp.set_registers(_Repeated([*((n, 0) for n, _ in items[:200]), ("rdx", -1)]))  # type: ignore[arg-type]
    assert vp.get_registers(GPRS) == {name: last[name] for name in GPRS}


class _Doubling(dict[str, int]):
    """A dict subclass with its own lookup: every value reads twice what it holds."""

    def __getitem__(self, key: str) -> int:
        return 2 * super().__getitem__(key)

    def values(self) -> Any:
        return [self[key] for key in self]


class _NamesInOrder(dict[str, int]):
    """A dict subclass that keeps dict's lookup, iterated in a batch order of its own with a
    name repeated and one name it does not hold (``__missing__`` gives that value)."""

    def __init__(self, names: list[str], values: dict[str, int], missing: dict[str, int]) -> None:
        super().__init__(values)
        self._names, self._missing = names, missing

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __missing__(self, key: str) -> int:
        return self._missing[key]

    def values(self) -> Any:
        return [self[key] for key in self._names]


def test_dict_subclasses_are_read_through_their_own_lookup(vp: Vp) -> None:
    """An OrderedDict, a dict subclass with its own ``__getitem__``, and one that keeps dict's
    (read with dict's lookup in C) with repeated names and a ``__missing__``: each value is the
    one the mapping gives for its name."""
    from collections import OrderedDict

    vp.set_registers(OrderedDict([("rbx", 1), ("rcx", 2)]))  # type: ignore[arg-type]
    assert vp.get_registers(["rbx", "rcx"]) == {"rbx": 1, "rcx": 2}
    vp.set_registers(_Doubling(rbx=5, rcx=6))  # type: ignore[arg-type]
    assert vp.get_registers(["rbx", "rcx"]) == {"rbx": 10, "rcx": 12}
    batch = _NamesInOrder(["rbx", "rdx", "rbx", "r9"], {"rbx": 7, "rdx": 8}, {"r9": 9})
    vp.set_registers(batch)  # type: ignore[arg-type]
    assert vp.get_registers(["rbx", "rdx", "r9"]) == {"rbx": 7, "rdx": 8, "r9": 9}
    with pytest.raises(KeyError):  # a name neither held nor supplied
        vp.set_registers(_NamesInOrder(["rbx", "r10"], {"rbx": 1}, {}))  # type: ignore[arg-type]
    assert vp.get_registers(["rbx"]) == {"rbx": 7}  # nothing was written


def test_a_set_updates_the_register_page_copy(vp: Vp) -> None:
    """Vp.set_registers also writes the page's copy of the GPRs, RIP and RFLAGS it sets (from
    what the call layer resolved), in every key form, the last of a repeated name winning."""
    from mshv import HvRegister

    page = vp.register_page
    assert page is not None
    vp.set_registers({"rbx": 0x11, int(HvRegister.RCX): 0x22, "RDX": 0x33, "cr2": 0x44, "rip": 0x1000})
    assert [page.read(n) for n in ("rbx", "rcx", "rdx", "rip")] == [0x11, 0x22, 0x33, 0x1000]
    vp.set_registers(_Repeated([("r8", 1), ("cr2", 5), ("r8", 2)]))  # type: ignore[arg-type]
    assert page.read("r8") == 2 == vp.reg_read("r8")
    assert page.dirty == 0  # a copy of what the hypercall wrote: nothing for the next run to apply


class _Number(int):
    """An int subclass: a value the checks accept (as they accept IntEnum members)."""


def test_int_subclass_values_are_written(vp: Vp) -> None:
    vp.set_registers(
        {"rbx": _Number(7), "xmm2": _Number(1 << 100), "fs": Segment(_Number(0x1000), 0xFFFF, 0, 0x93)}
    )
    got = vp.get_registers(["rbx", "xmm2", "fs"])
    assert got == {"rbx": 7, "xmm2": 1 << 100, "fs": Segment(0x1000, 0xFFFF, 0, 0x93)}
    assert vp.register_page is not None and vp.register_page.read("rbx") == 7


def test_reads_see_the_page_writes_of_dirty_classes_only(backend_ready: None) -> None:
    """A completion written into the register page (GPRs, RIP, RFLAGS, by class) is what a
    read returns until the next run applies it; classes not marked dirty come from the VP."""
    code = assemble("in $0x11, %al; hlt")
    with partition_with_one_vp(code, lapic=False) as (_pt, vp, _mem):
        inp = vp.run()
        page = vp.register_page
        assert page is not None and page.valid and page.dirty == 0
        vp.set_registers({"rdx": 0x77})
        page.write_all({"rip": inp.header.next_rip}, only_if_valid=True)  # IP class only
        page.raw.rdx = 0x55  # a page copy of a class that is not dirty: not the VP's value
        got = vp.get_registers(["rip", "rdx", "rflags", "cr0"])
        assert got["rip"] == inp.header.next_rip and got["rdx"] == 0x77
        page.write_all({"rax": 0x5A, "rflags": 0x2})  # GENERAL and FLAGS too
        got = vp.get_registers(["rax", "rdx", "rflags", "rip"])
        assert got == {"rax": 0x5A, "rdx": 0x55, "rflags": 0x2, "rip": inp.header.next_rip}


def test_every_register_number_names_its_register(vp: Vp) -> None:
    """A number key finds the register it numbers (the C calls look numbers up in a table of
    their own): a value out of range is refused, before any hypercall, under that name."""
    from mshv.registers import _BY_NUMBER, _kind

    for number, (name, _) in _BY_NUMBER.items():
        bad = -1 if _kind(name) in ("int", "wide") else 0  # 0 is no Segment or Table
        with pytest.raises((ValueError, TypeError), match=f"^{name}( |\\.| takes)"):
            vp.set_registers({number: bad})
