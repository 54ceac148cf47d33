# cython: language_level=3
"""Native twins of hot API calls: map and unmap guest memory, read and write registers.

:class:`MemoryCalls` does what ``Partition._map_memory`` and ``Partition._unmap_memory``
do (the pure-Python twins, used when this extension is not built): the same checks on
plain ints, one MSHV_SET_GUEST_MEMORY through the kernel table with the GIL released,
the same region bookkeeping. Any argument it does not take on the fast path (another
type, a failed check) goes to the twin, which raises the error the API documents, so
each message is written once.

:class:`RegisterCalls` does what ``mshv._regcalls.py_get_registers``/``py_set_registers``
do: HvCallGetVpRegisters/HvCallSetVpRegisters through MSHV_ROOT_HVCALL, chunked, with the
GIL released around each table call; names it has no entry for and values other than plain
ints are resolved and checked by the same Python functions the twins use.
"""

from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset

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
            if g + s > pt._gpa_limit:  # beyond the physical address width: the twin raises
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


cdef class RegisterCalls:
    """The register calls of :mod:`mshv._regcalls` in C.

    Args:
        table: address of the kernel table (``mshv_kernel_table()``).
        spec: ``{name or number: (name, number, kind)}`` of the known registers.
        resolve: ``resolve(key) -> (name, number, kind)`` for any other key (or raises).
        fields: ``fields(name, kind, value) -> ints`` checks a value (or raises).
        error: ``error(errno, status, reps done, code, names, first, total, vp_index)``,
            the exception of a failed call (errno 0: fewer reps done than names).
        segment_type: :class:`mshv.Segment`.
        table_type: :class:`mshv.Table`.
    """

    def __cinit__(self, uintptr_t table, dict spec, object resolve, object fields, object error,
                  object segment_type, object table_type):
        self._table = <mshv_kernel_table *>table
        self._spec = spec
        self._resolve = resolve
        self._fields = fields
        self._error = error
        self._segment = segment_type
        self._table_type = table_type

    cdef list _specs(self, object keys):
        cdef list specs = []
        for key in keys:
            cls = type(key)
            # only keys of exactly str or int: a bool or float equal to a number is no register
            found = self._spec.get(key) if (cls is str or cls is int) else None
            specs.append(self._resolve(key) if found is None else found)
        return specs

    cdef int _call(self, int fd, uint16_t code, int count, void *inp, size_t in_sz, void *out,
                   size_t out_sz, mshv_root_hvcall *args, int *err) noexcept:
        cdef int rc
        memset(args, 0, sizeof(args[0]))
        args.code = code
        args.reps = <uint16_t>count
        args.in_sz = <uint16_t>in_sz
        args.out_sz = <uint16_t>out_sz
        args.in_ptr = <uint64_t><uintptr_t>inp
        args.out_ptr = <uint64_t><uintptr_t>out
        with nogil:  # see mshv._regcalls: the kernel may wait for a run on this VP to end
            rc = self._table.ioctl(fd, MSHV_ROOT_HVCALL, args)
            err[0] = errno
        return rc

    def get(self, int fd, uint32_t vp_index, object names):
        """Read registers of VP ``vp_index`` through ``fd``: {lower-case name: value}."""
        cdef list specs = self._specs(names)
        cdef Py_ssize_t total = len(specs), start, count, i
        cdef uint64_t inbuf[512]   # one page each, 8-aligned
        cdef uint64_t outbuf[512]
        cdef hv_input_get_vp_registers *inp = <hv_input_get_vp_registers *>inbuf
        cdef hv_register_value *out = <hv_register_value *>outbuf
        cdef size_t header = <char *>&inp.names[0] - <char *>inp, in_sz
        cdef mshv_root_hvcall args
        cdef int rc, err = 0
        cdef dict result = {}
        cdef tuple spec
        for start in range(0, total, HV_GET_VP_REGISTERS_BATCH_MAX):
            count = min(<Py_ssize_t>HV_GET_VP_REGISTERS_BATCH_MAX, total - start)
            in_sz = header + sizeof(uint32_t) * count
            memset(inbuf, 0, in_sz)
            inp.vp_index = vp_index
            for i in range(count):
                inp.names[i] = (<tuple>specs[start + i])[1]
            rc = self._call(fd, HVCALL_GET_VP_REGISTERS, <int>count, inbuf, in_sz, outbuf,
                            sizeof(hv_register_value) * count, &args, &err)
            if rc < 0 or args.reps != count:
                names = [(<tuple>s)[0] for s in specs[start:start + count]]
                raise self._error(err if rc < 0 else 0, args.status, args.reps, HVCALL_GET_VP_REGISTERS,
                                  names, start, total, vp_index)
            for i in range(count):
                spec = <tuple>specs[start + i]
                kind = spec[2]
                if kind == "int":
                    value = out[i].reg64
                elif kind == "segment":
                    value = _tuple_new(self._segment, (out[i].segment.base, out[i].segment.limit,
                                                       out[i].segment.selector, out[i].segment.attributes))
                elif kind == "table":
                    value = _tuple_new(self._table_type, (out[i].table.base, out[i].table.limit))
                else:  # "wide": 128 bits
                    value = (<object>out[i].reg128.high_part << 64) | out[i].reg128.low_part
                result[spec[0]] = value
        return result

    def set(self, int fd, uint32_t vp_index, object values, object collect=frozenset()):
        """Write registers of VP ``vp_index`` through ``fd``; every value is checked before the
        first hypercall, so bad input changes nothing. Returns {name: value} of the registers
        written whose names are in ``collect``."""
        cdef list specs = []
        cdef list items = []
        cdef dict collected = {}
        for key, value in values.items():
            cls = type(key)
            found = self._spec.get(key) if (cls is str or cls is int) else None
            specs.append(self._resolve(key) if found is None else found)
            items.append(value)
        cdef Py_ssize_t total = len(specs), start, count, i
        # every element packed (and so checked) before the first call; zeroed reserved fields
        cdef bytearray packed = bytearray(<Py_ssize_t>sizeof(hv_register_assoc) * total)
        cdef hv_register_assoc *elements = <hv_register_assoc *><char *>packed
        cdef uint64_t inbuf[512]
        cdef hv_input_set_vp_registers *inp = <hv_input_set_vp_registers *>inbuf
        cdef size_t header = <char *>&inp.elements[0] - <char *>inp, in_sz
        cdef mshv_root_hvcall args
        cdef int rc, err = 0
        cdef tuple spec
        for i in range(total):
            spec = <tuple>specs[i]
            kind = spec[2]
            value = items[i]
            elements[i].name = spec[1]
            if spec[0] in collect:
                collected[spec[0]] = value
            if kind == "int" and type(value) is int and value >= 0 and value <= 0xFFFFFFFFFFFFFFFF:
                elements[i].value.reg64 = value
                continue
            fields = self._fields(spec[0], kind, value)  # the checks, and their errors
            if kind == "int":
                elements[i].value.reg64 = fields[0]
            elif kind == "wide":
                elements[i].value.reg128.low_part = fields[0]
                elements[i].value.reg128.high_part = fields[1]
            elif kind == "segment":
                elements[i].value.segment.base = fields[0]
                elements[i].value.segment.limit = fields[1]
                elements[i].value.segment.selector = fields[2]
                elements[i].value.segment.attributes = fields[3]
            else:  # "table": (limit, base)
                elements[i].value.table.limit = fields[0]
                elements[i].value.table.base = fields[1]
        for start in range(0, total, HV_SET_VP_REGISTERS_BATCH_MAX):
            count = min(<Py_ssize_t>HV_SET_VP_REGISTERS_BATCH_MAX, total - start)
            in_sz = header + sizeof(hv_register_assoc) * count
            memset(inbuf, 0, header)
            inp.vp_index = vp_index
            memcpy(&inp.elements[0], &elements[start], sizeof(hv_register_assoc) * count)
            rc = self._call(fd, HVCALL_SET_VP_REGISTERS, <int>count, inbuf, in_sz, NULL, 0, &args, &err)
            if rc < 0 or args.reps != count:
                names = [(<tuple>s)[0] for s in specs[start:start + count]]
                raise self._error(err if rc < 0 else 0, args.status, args.reps, HVCALL_SET_VP_REGISTERS,
                                  names, start, total, vp_index)
        return collected
