"""mshv/dirty.py: the pages a real guest wrote come back as dirty GPAs, once per clear."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from mshv import GuestMemory, HaltIntercept, MshvError, Partition, backend, dirty, limits
from mshv._abi import ffi
from mshv.capabilities import probe
from mshv.dirty import PageAccess
from mshv.testing import CODE_GPA, assemble, real_mode_registers

WRITER = """
    movb $1, 0x3000
    movw $2, 0x5010
    movl $3, 0x9ffc
    hlt
"""
WRITTEN = [0x3000, 0x5000, 0x9000]


@pytest.fixture
def mem(partition: Partition) -> Iterator[GuestMemory]:
    with GuestMemory(0x10000) as memory:
        yield memory
        partition.close()  # unmaps the memory before it is freed


def _run_writer(partition: Partition, mem: GuestMemory) -> None:
    mem.write(CODE_GPA, assemble(WRITER))
    partition.map_memory(mem, 0)
    vp = partition.create_vp(0)
    vp.set_registers(real_mode_registers())  # type: ignore[arg-type]
    partition.enable_dirty_tracking()
    assert partition.dirty_pages(0, 16) == []  # the host's own writes are not the guest's
    assert isinstance(vp.run(), HaltIntercept)


def test_dirty_pages_are_the_pages_the_guest_wrote(partition: Partition, mem: GuestMemory) -> None:
    _run_writer(partition, mem)
    assert partition.dirty_pages(0, 16, clear=False) == WRITTEN
    states = partition.gpa_access_states(0x3000, 3)
    assert states == [
        PageAccess.ACCESSED | PageAccess.DIRTY,
        PageAccess(0),
        PageAccess.ACCESSED | PageAccess.DIRTY,
    ]
    assert partition.dirty_pages(0, 16) == WRITTEN  # read and clear
    assert partition.dirty_pages(0, 16) == []
    assert partition.dirty_pages(0x5000, 1, clear=False) == []
    assert mem.read(0x9FFC, 4) == (3).to_bytes(4, "little")


def test_dirty_bitmap_is_the_kernels_bitmap_read_and_cleared(partition: Partition, mem: GuestMemory) -> None:
    _run_writer(partition, mem)
    bitmap = bytes(ffi.buffer(dirty.dirty_bitmap(partition.fd, 0, 16)))
    assert bitmap == bytes([1 << 3 | 1 << 5, 1 << (9 - 8)])  # pages 3, 5 and 9, LSB first
    assert bytes(ffi.buffer(dirty.dirty_bitmap(partition.fd, 0, 16))) == bytes(2)


def test_accessed_pages_and_their_clear(partition: Partition, mem: GuestMemory) -> None:
    _run_writer(partition, mem)
    accessed = partition.accessed_pages(0, 16, clear=False)
    assert set(WRITTEN) <= set(accessed)
    assert partition.accessed_pages(0, 16) == accessed
    assert partition.accessed_pages(0, 16, clear=False) == []


def test_clearing_accessed_keeps_dirty(partition: Partition, mem: GuestMemory) -> None:
    """The hypervisor keeps the two bits apart: accessed_pages(clear=True) resets accessed
    only (it used the ioctl, whose ACCESSED + CLEAR resets dirty too, so a migration's next
    dirty_pages() lost the pages)."""
    _run_writer(partition, mem)
    assert set(WRITTEN) <= set(partition.accessed_pages(0, 16))
    assert partition.dirty_pages(0, 16, clear=False) == WRITTEN
    assert partition.gpa_access_states(0x3000, 1) == [PageAccess.DIRTY]
    assert partition.dirty_pages(0, 16) == WRITTEN


READER = """
    movb 0x7000, %al
    movb %al, 0x8000
    hlt
"""


def test_guest_reads_are_accessed_where_the_backend_says_so(partition: Partition, mem: GuestMemory) -> None:
    """A page the guest only reads is accessed on the hypervisor. The emulator cannot see
    reads (KVM logs writes only): capability read_access_tracking and mshv.limits say
    so, and ``mshv info`` lists it. Either way, what the backend claims is what it does."""
    mem.write(CODE_GPA, assemble(READER))
    partition.map_memory(mem, 0)
    vp = partition.create_vp(0)
    vp.set_registers(real_mode_registers())  # type: ignore[arg-type]
    partition.enable_dirty_tracking()
    assert isinstance(vp.run(), HaltIntercept)
    accessed = partition.accessed_pages(0x7000, 2, clear=False)
    assert 0x8000 in accessed
    capability = probe("read_access_tracking")
    assert capability.available == (0x7000 in accessed), capability
    if backend.select().name == "emulator":
        assert not capability.available and "writes only" in capability.detail
    assert limits.read_access_tracking().works is capability.available  # `mshv info` lists it


def test_gpa_access_state_operations_apply_after_reading(partition: Partition, mem: GuestMemory) -> None:
    _run_writer(partition, mem)
    before = partition.gpa_access_states(0x6000, 2, set_dirty=True)
    assert before == [PageAccess(0), PageAccess(0)]
    assert partition.dirty_pages(0x6000, 2, clear=False) == [0x6000, 0x7000]
    partition.gpa_access_states(0, 16, clear_dirty=True, clear_accessed=True)
    assert partition.dirty_pages(0, 16, clear=False) == []


def test_a_range_larger_than_one_hypercall_is_batched(partition: Partition, mem: GuestMemory) -> None:
    _run_writer(partition, mem)
    states = partition.gpa_access_states(0, 5000)  # 4096 pages per call, then 904
    assert len(states) == 5000
    assert [i * 0x1000 for i, s in enumerate(states) if s & PageAccess.DIRTY] == WRITTEN


def test_page_lists_are_the_pages_whose_state_says_so(partition: Partition) -> None:
    """accessed_pages and dirty_pages(clear=False) list exactly the pages gpa_access_states
    marks, across hypercall batches, at the range's first and last pages; the states are the
    PageAccess values of their bits."""
    import random

    rng = random.Random(5)
    npages = 4096 + 300  # two hypercalls
    with GuestMemory(npages * 0x1000) as big:
        partition.map_memory(big, 0)
        partition.enable_dirty_tracking()
        partition.gpa_access_states(0, npages, clear_dirty=True, clear_accessed=True)
        picked = {0, 4095, 4096, npages - 1, *rng.sample(range(npages), 40)}
        for page in sorted(picked):
            dirty_too = rng.random() < 0.5
            partition.gpa_access_states(page * 0x1000, 1, set_accessed=True, set_dirty=dirty_too)
        states = partition.gpa_access_states(0, npages)
        assert {type(s) for s in states} == {PageAccess}
        assert [i for i, s in enumerate(states) if s] == sorted(picked)
        assert all(s in (PageAccess.ACCESSED, PageAccess.ACCESSED | PageAccess.DIRTY) for s in states if s)
        dirty = [i * 0x1000 for i, s in enumerate(states) if s & PageAccess.DIRTY]
        accessed = [i * 0x1000 for i, s in enumerate(states) if s & PageAccess.ACCESSED]
        assert partition.dirty_pages(0, npages, clear=False) == dirty
        assert partition.accessed_pages(0, npages, clear=False) == accessed
        assert partition.accessed_pages(0x1000, npages - 1) == [gpa for gpa in accessed if gpa]
        assert partition.accessed_pages(0, npages, clear=False) == ([0] if 0 in picked else [])
        partition.close()


def test_tracking_must_be_enabled(partition: Partition, mem: GuestMemory) -> None:
    partition.map_memory(mem, 0)
    with pytest.raises(MshvError) as info:
        partition.dirty_pages(0, 16)
    assert info.value.errno == errno.EIO and info.value.op == "MSHV_GET_GPAP_ACCESS_BITMAP"
    assert "enable_dirty_tracking()" in str(info.value)  # says what to do, not just EIO
    partition.enable_dirty_tracking()
    partition.enable_dirty_tracking(False)
    with pytest.raises(MshvError) as info:
        partition.gpa_access_states(0, 16)
    assert "enable_dirty_tracking()" in str(info.value)


def test_bad_ranges_raise_before_the_kernel(partition: Partition) -> None:
    partition.enable_dirty_tracking()
    with pytest.raises(ValueError):
        partition.dirty_pages(0x1001, 1)
    with pytest.raises(ValueError):
        partition.dirty_pages(0, 0)
    with pytest.raises(ValueError):
        partition.accessed_pages(0, 1 << 32)
    with pytest.raises(ValueError):
        partition.gpa_access_states((1 << 64) - 0x1000, 2)
    with pytest.raises(TypeError):
        partition.dirty_pages("0", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        partition.enable_dirty_tracking(1)  # type: ignore[arg-type]
    partition.close()
    with pytest.raises(ValueError, match="closed"):
        partition.dirty_pages(0, 1)


def test_set_pages_are_the_gpas_of_the_set_bits() -> None:
    """mshv.dirty turns the kernel's LSB-first bitmap into GPAs: bit i of byte j is page 8j + i."""
    sparse = bytearray(4096)
    sparse[0], sparse[100], sparse[4095] = 0b0000_0101, 0b1000_0000, 0b0100_0000
    assert dirty._set_pages(ffi.from_buffer(bytes(sparse)), 4096 * 8, 0x10_0000) == [
        0x10_0000,
        0x10_0000 + 2 * 0x1000,
        0x10_0000 + (100 * 8 + 7) * 0x1000,
        0x10_0000 + (4095 * 8 + 6) * 0x1000,
    ]
    assert dirty._set_pages(ffi.from_buffer(bytes(64)), 64 * 8, 0) == []


@pytest.mark.parametrize("compiled", [True, False], ids=["C", "no-compiler twin"])
def test_bitmap_pages_lists_exactly_the_set_pages(compiled: bool) -> None:
    """lib.mshv_bitmap_pages (and mshv._abi_nocc's twin): the set pages in order, across words,
    bits past ``npages`` in the last byte ignored; ``cap`` of them written, all of them counted."""
    import random

    from mshv import _abi_nocc

    ffi_, lib_ = (ffi, dirty.lib) if compiled else (_abi_nocc.ffi, _abi_nocc.lib)
    rng = random.Random(21)
    for npages in (1, 7, 63, 64, 65, 128, 129, 300, 511, 512, 513, 2000, 4096 * 8):
        for density in (0.0, 0.001, 0.1, 0.5, 1.0):
            expected = [i for i in range(npages) if rng.random() < density]
            packed = bytearray((npages + 7) // 8)
            for i in expected:
                packed[i // 8] |= 1 << (i % 8)
            if npages % 8:
                packed[-1] |= 0xFF << (npages % 8) & 0xFF
            bitmap = ffi_.from_buffer(bytes(packed))
            assert lib_.mshv_bitmap_pages(bitmap, npages, ffi_.NULL, 0) == len(expected)
            pages = ffi_.new("uint64_t[]", len(expected) + 1)
            half = len(expected) // 2
            assert lib_.mshv_bitmap_pages(bitmap, npages, pages, half) == len(expected)
            assert list(pages[0 : half + 1]) == expected[:half] + [0], (npages, density)
            assert lib_.mshv_bitmap_pages(bitmap, npages, pages, len(expected)) == len(expected)
            assert list(pages[0 : len(expected)]) == expected, (npages, density)


def test_a_bitmap_over_regions_and_batches_sees_every_guest_write(partition: Partition) -> None:
    """One MSHV_GET_GPAP_ACCESS_BITMAP over two regions and many batches of pages (the kernel
    makes one hypercall per batch) reports the guest's writes in each region and batch."""
    from mshv.testing import PAGED_CODE_GPA, long_mode_registers

    far = 0x10000000  # a 32 MiB region: 8192 pages, beyond the first batches of the range
    written = [0x20000, far + 0x3000, far + 0x1000000, far + 0x1FFF000]
    source = "".join(f"movb $1, {gpa:#x}\n" for gpa in written) + "hlt"
    code = assemble(source, mode="long", base=PAGED_CODE_GPA)
    with GuestMemory(0x40000) as low, GuestMemory(0x2000000) as high:
        low.write(PAGED_CODE_GPA, code)
        partition.map_memory(low, 0)
        partition.map_memory(high, far)
        vp = partition.create_vp(0)
        vp.set_registers(long_mode_registers(low, PAGED_CODE_GPA))  # type: ignore[arg-type]
        partition.enable_dirty_tracking()
        assert isinstance(vp.run(), HaltIntercept)
        pages = (far + 0x2000000) // 0x1000
        dirty = partition.dirty_pages(0, pages)
        assert [gpa for gpa in dirty if gpa >= 0x20000] == written, [hex(g) for g in dirty]
        assert partition.dirty_pages(0, pages) == []
        partition.close()


def _bitmap_ioctl(partition: Partition, access_type: int, op: int, gpa: int, npages: int) -> list[int]:
    """MSHV_GET_GPAP_ACCESS_BITMAP with any type and op (the Python API asks for CLEAR only)."""
    from mshv import _cstruct, _kernel
    from mshv._abi import ffi, lib

    bitmap = ffi.new("unsigned char[]", (npages + 7) // 8)
    arg = _cstruct.new(
        "struct mshv_gpap_access_bitmap", access_type=access_type, access_op=op, page_count=npages,
        gpap_base=gpa // 0x1000, bitmap_ptr=ffi.cast("uint64_t", bitmap),
    )  # fmt: skip
    _kernel.ioctl(partition.fd, lib.MSHV_GET_GPAP_ACCESS_BITMAP, arg)
    bits = bytes(ffi.buffer(bitmap))
    return [gpa + i * 0x1000 for i in range(npages) if bits[i // 8] >> (i % 8) & 1]


def test_the_bitmap_agrees_with_the_page_states_page_by_page(partition: Partition) -> None:
    """The bitmap ioctl against HvCallGetGpaPagesAccessStates (one state per page), for every
    type and op, over random windows: unaligned and byte-aligned, across two regions and the hole
    between them."""
    import random

    from mshv._abi import lib

    rng = random.Random(7)
    dirty_t, accessed_t = lib.MSHV_GPAP_ACCESS_TYPE_DIRTY, lib.MSHV_GPAP_ACCESS_TYPE_ACCESSED
    clear, set_, noop = (
        lib.MSHV_GPAP_ACCESS_OP_CLEAR,
        lib.MSHV_GPAP_ACCESS_OP_SET,
        lib.MSHV_GPAP_ACCESS_OP_NOOP,
    )
    with GuestMemory(0x41000) as low, GuestMemory(0x83000) as high:
        partition.map_memory(low, 0)  # 65 pages
        partition.map_memory(high, 0x100000)  # 131 pages after a hole
        partition.enable_dirty_tracking()
        span = (0x100000 + 0x83000) // 0x1000 + 8
        for _ in range(60):
            for page in rng.sample(range(span), 40):  # a random state to start from
                partition.gpa_access_states(page * 0x1000, 1, set_dirty=rng.random() < 0.5,
                                            set_accessed=rng.random() < 0.5)  # fmt: skip
            # half the windows start on a whole byte of the bitmap: the emulator copies a region's
            # whole 64-page words of state there
            first = rng.randrange(span - 1) if rng.random() < 0.5 else rng.randrange(0, span - 1, 8)
            count = rng.randrange(1, span - first + 1)
            access_type, op = rng.choice([dirty_t, accessed_t]), rng.choice([clear, set_, noop])
            before = partition.gpa_access_states(0, span)
            wanted = PageAccess.DIRTY if access_type == dirty_t else PageAccess.ACCESSED
            expected = [(first + i) * 0x1000 for i in range(count) if before[first + i] & wanted]
            got = _bitmap_ioctl(partition, access_type, op, first * 0x1000, count)
            assert got == expected, (first, count, access_type, op)
            after = partition.gpa_access_states(0, span)
            mapped = [p < 0x41 or 0x100 <= p < 0x100 + 0x83 for p in range(span)]
            for page in range(span):
                state = before[page]
                if mapped[page] and first <= page < first + count:
                    if op == clear:  # (ACCESSED clears both: not accessed implies not dirty)
                        state &= ~(
                            PageAccess.DIRTY | (PageAccess.ACCESSED if access_type == accessed_t else 0)
                        )
                    else:  # SET, and NOOP, which the kernel carries out as SET
                        state |= PageAccess.ACCESSED | (PageAccess.DIRTY if access_type == dirty_t else 0)
                assert after[page] == state, (page, first, count, access_type, op)
        partition.close()
