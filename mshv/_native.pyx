# cython: language_level=3
"""Native twins of hot Partition calls: map and unmap guest memory without Python frames.

:class:`MemoryCalls` does what ``Partition._map_memory`` and ``Partition._unmap_memory``
do (the pure-Python twins, used when this extension is not built): the same checks on
plain ints, one MSHV_SET_GUEST_MEMORY through the kernel table with the GIL released,
the same region bookkeeping. Any argument it does not take on the fast path (another
type, a failed check) goes to the twin, which raises the error the API documents, so
each message is written once.
"""

from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.string cimport memset

_tuple_new = tuple.__new__
# GPAs and sizes the fast path takes: their sums cannot overflow a long long.
cdef long long LIMIT = 1LL << 62


cdef class MemoryCalls:
    """Partition.map_memory/unmap_memory in C (see :mod:`mshv.partition`).

    Args:
        table: address of the kernel table (``mshv_kernel_table()``).
        memory_type: :class:`mshv.GuestMemory`.
        region_type: :class:`mshv.MemoryRegion`.
        map_checked: ``map_checked(pt, memory, gpa, size, offset, writable, executable)``,
            the pure-Python map.
        unmap_checked: ``unmap_checked(pt, region)``, the pure-Python unmap.
        error: ``error(what, gpa, size, errno)``, the MshvError of a failed call.
    """

    def __cinit__(self, uintptr_t table, object memory_type, object region_type, object map_checked,
                  object unmap_checked, object error):
        self._table = <mshv_kernel_table *>table
        self._memory_type = memory_type
        self._region_type = region_type
        self._map_checked = map_checked
        self._unmap_checked = unmap_checked
        self._error = error

    cdef int _set_guest_memory(self, int fd, uint64_t size, uint64_t gpa, uint64_t hva, uint8_t flags,
                               int *err) noexcept:
        # mshv_partition_ioctl_set_memory: the struct zeroed (rsvd must be 0), one ioctl. The GIL
        # is released around it: the kernel pins and maps a region's pages (a large one takes
        # long), KVM waits for the vCPUs to leave the guest before a memslot changes.
        cdef mshv_user_mem_region region
        cdef int rc
        memset(&region, 0, sizeof(region))
        region.size = size
        region.guest_pfn = gpa // MSHV_HV_PAGE_SIZE
        region.userspace_addr = hva
        region.flags = flags
        with nogil:
            rc = self._table.ioctl(fd, MSHV_SET_GUEST_MEMORY, &region)
            err[0] = errno
        return rc

    def map(self, object pt, object memory, object gpa, object size, object offset, object writable,
            object executable):
        """``pt.map_memory(memory, gpa, size=size, offset=offset, ...)``; returns the region."""
        cdef long long fd = pt._fd
        cdef long long g, o, s, m, huge, page = MSHV_HV_PAGE_SIZE
        cdef uint64_t hva
        cdef uint8_t flags
        cdef int err = 0
        cdef list regions = pt._regions
        cdef object other
        cdef long long og
        if (fd < 0 or type(gpa) is not int or type(offset) is not int
                or (size is not None and type(size) is not int) or not isinstance(memory, self._memory_type)):
            return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        m = memory.size
        huge = memory.page_size
        try:
            g = gpa
            o = offset
            s = m - o if size is None else size
            if (g < 0 or g % page or o < 0 or o % page or s <= 0 or s % page or o > m - s
                    or (huge != page and (g % huge or o % huge or s % huge))
                    or g > LIMIT or s > LIMIT):
                return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
            for other in regions:  # MemoryRegions: tuples (memory, gpa, size, ...)
                og = (<tuple>other)[1]
                if g < og + <long long>(<tuple>other)[2] and og < g + s:
                    return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        except OverflowError:  # beyond 62 bits: the twin says which check fails
            return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        hva = memory._acquire() + o
        flags = ((1 << MSHV_SET_MEM_BIT_WRITABLE) if writable else 0) | (
            (1 << MSHV_SET_MEM_BIT_EXECUTABLE) if executable else 0)
        if self._set_guest_memory(<int>fd, s, g, hva, flags, &err) < 0:
            memory._release()
            raise self._error("map", g, s, err)
        region = _tuple_new(self._region_type, (memory, gpa, s, offset, writable, executable, hva))
        regions.append(region)
        return region

    def unmap(self, object pt, object region):
        """``pt.unmap_memory(region)``."""
        cdef long long fd = pt._fd
        cdef list regions = pt._regions
        cdef int err = 0
        cdef bint found = False
        for other in regions:
            if other is region:
                found = True
                break
        if fd < 0 or not found or type(region) is not self._region_type:
            return self._unmap_checked(pt, region)
        memory, g, s, hva = (<tuple>region)[0], (<tuple>region)[1], (<tuple>region)[2], (<tuple>region)[6]
        if self._set_guest_memory(<int>fd, s, g, hva, 1 << MSHV_SET_MEM_BIT_UNMAP, &err) < 0:
            raise self._error("unmap", g, s, err)
        # found again: the GIL was released, another thread may have changed the list meanwhile
        for i in range(len(regions)):
            if regions[i] is region:
                del regions[i]
                break
        memory._release()
