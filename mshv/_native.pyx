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

:class:`RunCalls` does what ``Vp.run`` and ``Vp.complete_registers`` do per exit in
Python: one MSHV_RUN_VP through the kernel table with the GIL released, the decode of
a port IO or memory intercept straight from the ``hv_message`` into its intercept
object (the same values ``mshv.intercepts.decode`` reads), and a completion written
into the VP register page. Anything else goes to those Python functions. It also does
``Vp.get_registers``/``set_registers`` (the register page's pending classes and copy
handled in C) through the VP's :class:`RegisterCalls`.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Values
from cpython.list cimport PyList_GET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from mshv.x86._cpu cimport in_rax

_tuple_new = tuple.__new__

cdef extern from "Python.h":
    dict _PyDict_NewPresized(Py_ssize_t minused)
cdef tuple _NO_ARGS = ()

cdef extern from *:
    """
    /* A new instance of the tuple subclass t (a NamedTuple) holding the n new references in
     * items, made as tuple_subtype_new (CPython Objects/tupleobject.c) makes one: t->tp_alloc,
     * then the items set in place; NULL, the items released, when one of them is NULL (its
     * exception set) or the allocation fails. */
    static PyObject *mshv_tuple_of(PyObject *t, Py_ssize_t n, PyObject **items)
    {
        PyObject *o = NULL;
        Py_ssize_t i;

        for (i = 0; i < n; i++)
            if (items[i] == NULL)
                goto fail;
        o = ((PyTypeObject *)t)->tp_alloc((PyTypeObject *)t, n);
        if (o == NULL)
            goto fail;
        for (i = 0; i < n; i++)
            PyTuple_SET_ITEM(o, i, items[i]);
        return o;
    fail:
        for (i = 0; i < n; i++)
            Py_XDECREF(items[i]);
        return NULL;
    }

    /* A segment register as t(base, limit, selector, attributes), t a NamedTuple. */
    static PyObject *mshv_segment_of(PyObject *t, unsigned long long base, unsigned long limit,
                                     unsigned long selector, unsigned long attributes)
    {
        PyObject *items[4] = {
            PyLong_FromUnsignedLongLong(base), PyLong_FromUnsignedLong(limit),
            PyLong_FromUnsignedLong(selector), PyLong_FromUnsignedLong(attributes),
        };
        return mshv_tuple_of(t, 4, items);
    }

    /* A table register as t(base, limit), t a NamedTuple. */
    static PyObject *mshv_table_of(PyObject *t, unsigned long long base, unsigned long limit)
    {
        PyObject *items[2] = {PyLong_FromUnsignedLongLong(base), PyLong_FromUnsignedLong(limit)};
        return mshv_tuple_of(t, 2, items);
    }

    /* An exact int's value when it is a register number (0..2**32-1), else -1 (no error set:
     * PyLong_AsLongLongAndOverflow sets none for an int). */
    static long long mshv_number_of(PyObject *key)
    {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(key, &overflow);

        return overflow || n < 0 || n > 0xFFFFFFFFLL ? -1 : n;
    }
    """
    object mshv_segment_of(object t, unsigned long long base, unsigned long limit, unsigned long selector,
                           unsigned long attributes)
    object mshv_table_of(object t, unsigned long long base, unsigned long limit)
    long long mshv_number_of(object key)

cdef extern from *:
    """
    #include <structmember.h>
    /* The offset of the __slots__ member `name` of instances of type t (a member descriptor
     * holding an object, T_OBJECT_EX: what a slots dataclass field is), or -1 with TypeError
     * set. */
    static Py_ssize_t mshv_slot_offset(PyObject *t, PyObject *name)
    {
        PyObject *d = PyObject_GetAttr(t, name);
        Py_ssize_t offset = -1;

        if (d == NULL)
            return -1;
        if (Py_TYPE(d) == &PyMemberDescr_Type &&
            ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX)
            offset = ((PyMemberDescrObject *)d)->d_member->offset;
        else
            PyErr_Format(PyExc_TypeError, "%R.%U is not a slot", t, name);
        Py_DECREF(d);
        return offset;
    }

    /* Store v in the slot at `offset` of o, as the member descriptor's setter does
     * (PyMember_SetOne, T_OBJECT_EX), without finding the descriptor by name first. */
    static inline void mshv_slot_set(PyObject *o, Py_ssize_t offset, PyObject *v)
    {
        PyObject **slot = (PyObject **)((char *)o + offset);
        PyObject *old = *slot;

        Py_INCREF(v);
        *slot = v;
        Py_XDECREF(old);
    }
    """
    Py_ssize_t mshv_slot_offset(object t, object name) except -1
    void mshv_slot_set(object o, Py_ssize_t offset, object v)

# The slots RunCalls fills, in the order of its offset arrays (mshv.intercepts: X64Intercept,
# then IoPortIntercept's or MemoryIntercept's own).
_X64_SLOTS = ("message_type", "raw", "_header", "_header_values", "next_rip", "is_write")
_IO_SLOTS = _X64_SLOTS + ("port", "size", "string", "rep", "rax", "_string_fields")
_MEMORY_SLOTS = _X64_SLOTS + ("gpa", "gva", "gva_valid", "instruction_bytes", "cache_type")
assert len(_IO_SLOTS) == 12 and len(_MEMORY_SLOTS) == 11  # the sizes of RunCalls' arrays


cdef int _slot_offsets(object cls, tuple names, Py_ssize_t *out) except -1:
    """The slot offsets of ``names`` in instances of ``cls``, into ``out``."""
    for i, name in enumerate(names):
        out[i] = mshv_slot_offset(cls, name)
    return 0


cdef extern from *:
    """
    #include <pthread.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    /* The calling thread's kernel id (gettid), asked once per thread; a forked child's
     * one thread asks again. */
    static __thread long mshv_tid_cache;
    static void mshv_tid_forget(void) { mshv_tid_cache = 0; }
    static long mshv_thread_id(void)
    {
        if (!mshv_tid_cache)
            mshv_tid_cache = syscall(SYS_gettid);
        return mshv_tid_cache;
    }
    static int mshv_tid_atfork(void) { return pthread_atfork(NULL, NULL, mshv_tid_forget); }
    """
    long mshv_thread_id() nogil
    int mshv_tid_atfork()

if mshv_tid_atfork() != 0:
    raise ImportError("mshv._native: pthread_atfork failed")


def thread_id():
    """``threading.get_native_id()`` without a system call after the thread's first."""
    return mshv_thread_id()
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
        cdef object width
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
            width = pt._gpa_width  # kept once read (Partition.physical_address_width)
            if g + s > (pt._gpa_limit if width is None else 1 << width):
                return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        except OverflowError:  # beyond 62 bits: the twin says which check fails
            return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        if memory._closed:  # the twin raises
            return self._map_checked(pt, memory, gpa, size, offset, writable, executable)
        # GuestMemory._acquire, its live check made above
        memory._mapped_by += 1
        hva = <uint64_t>memory._address + o
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
        with pt._page_writers:  # not while a restore copies into it (mshv.snapshot)
            if self._set_guest_memory(<int>fd, s, g, hva, 1 << MSHV_SET_MEM_BIT_UNMAP, &err) < 0:
                raise self._error("unmap", g, s, err)
            # found again: the GIL was released, another thread may have changed the list meanwhile
            for i in range(len(regions)):
                if regions[i] is region:
                    del regions[i]
                    break
            if memory._closed:  # the last region frees it: GuestMemory._release
                memory._release()
            else:
                memory._mapped_by -= 1


# The value kinds of mshv.registers._SPEC. Both sides hold interned literals, so a kind is
# found by identity; equality is the fallback.
cdef str KIND_INT = "int"
cdef str KIND_WIDE = "wide"
cdef str KIND_SEGMENT = "segment"
cdef str KIND_TABLE = "table"
cdef enum:
    K_INT, K_WIDE, K_SEGMENT, K_TABLE
cdef tuple KIND_NAMES = (KIND_INT, KIND_WIDE, KIND_SEGMENT, KIND_TABLE)  # by K_*


cdef int _kind(object kind) except -1:
    if kind is KIND_INT:
        return K_INT
    if kind is KIND_WIDE:
        return K_WIDE
    if kind is KIND_SEGMENT:
        return K_SEGMENT
    if kind is KIND_TABLE:
        return K_TABLE
    if kind == KIND_INT:
        return K_INT
    if kind == KIND_WIDE:
        return K_WIDE
    if kind == KIND_SEGMENT:
        return K_SEGMENT
    if kind == KIND_TABLE:
        return K_TABLE
    raise ValueError(f"unknown register kind {kind!r}")


cdef inline size_t _slot(uint32_t number, int shift) noexcept:
    """``number``'s first slot in a table of 2**(32 - shift): the top bits of its Fibonacci hash
    (Knuth, TAOCP 6.4). The low bits would put every class's first register (0x40000, 0x50000,
    0x60000, ...) in the same slot: a product's low bits depend on the number's low bits only."""
    return <uint32_t>(number * 2654435761U) >> shift


cdef int _entry_from_spec(reg_entry *e, tuple spec) except -1:
    """A spec (name, number, kind) of mshv.registers as a reg_entry; the name is borrowed from
    ``spec``, which the caller keeps alive while it uses ``e``."""
    e.name = <PyObject *>spec[0]
    e.number = spec[1]
    e.kind = _kind(spec[2])
    return 0


cdef reg_entry *_plan_memory(reg_entry *small, Py_ssize_t total) except NULL:
    """Room for a call's plan of ``total`` entries: ``small`` (SMALL_PLAN entries on the
    caller's stack) when it fits, else memory the caller frees with PyMem_Free."""
    if total <= SMALL_PLAN:
        return small
    cdef reg_entry *plan = <reg_entry *>PyMem_Malloc(sizeof(reg_entry) * total)
    if plan == NULL:
        raise MemoryError()
    return plan


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
        self._index()

    def __dealloc__(self):
        free(self._entries)
        free(self._numbers)

    cdef int _index(self) except -1:
        """``spec`` in C: an entry per key; the names in a dict of their own, the numbers in an
        open-addressing table (an int key a caller built is another object than the dict's,
        which a dict compares through Python)."""
        cdef size_t size = 16, h
        cdef Py_ssize_t i = 0
        cdef tuple spec
        self._shift = 28
        while size < 2 * len(self._spec):
            size *= 2
            self._shift -= 1
        self._entries = <reg_entry *>calloc(len(self._spec) + 1, sizeof(reg_entry))
        self._numbers = <uint32_t *>calloc(size, sizeof(uint32_t))
        if self._entries == NULL or self._numbers == NULL:
            raise MemoryError()
        self._mask = size - 1
        self._names = {}
        for key, value in self._spec.items():
            spec = <tuple?>value
            _entry_from_spec(&self._entries[i], spec)
            if type(key) is str:
                self._names[key] = i
            elif type(key) is int:
                if key != spec[1]:
                    raise ValueError(f"register number {key} has the spec {spec!r}")
                h = _slot(self._entries[i].number, self._shift)
                while self._numbers[h] != 0:
                    h = (h + 1) & self._mask
                self._numbers[h] = <uint32_t>(i + 1)
            i += 1
        return 0

    cdef object _entry_of(self, object key, reg_entry *e):
        """``key``'s register into ``e``. None when the tables have it; else the spec that
        ``self._resolve`` made (it raises for no register), which holds ``e.name`` and which
        the caller keeps for as long as it uses ``e``."""
        cdef long long n
        cdef size_t h
        cdef uint32_t i
        cdef PyObject *found
        cls = type(key)
        if cls is int:
            n = mshv_number_of(key)
            if n >= 0:
                h = _slot(<uint32_t>n, self._shift)
                while self._numbers[h] != 0:
                    i = self._numbers[h] - 1
                    if self._entries[i].number == n:
                        e[0] = self._entries[i]
                        return None
                    h = (h + 1) & self._mask
        elif cls is str:  # only keys of exactly str or int: a bool or float equal to a number is no register
            found = PyDict_GetItemWithError(self._names, key)
            if found != NULL:
                e[0] = self._entries[<Py_ssize_t><object>found]
                return None
        spec = <tuple?>self._resolve(key)  # any other key: it raises unless it names a register
        _entry_from_spec(e, spec)
        return spec

    cdef list _plan(self, list keys, reg_entry *plan, Py_ssize_t total):
        """The register of each of the first ``total`` of ``keys`` into ``plan``; returns the
        specs that hold their names (None when the tables had every key)."""
        cdef list keep = None
        cdef Py_ssize_t i
        for i in range(total):
            spec = self._entry_of(keys[i], &plan[i])
            if spec is not None:
                if keep is None:
                    keep = []
                keep.append(spec)
        return keep

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

    cdef object _failed(self, int rc, int err, mshv_root_hvcall *args, uint16_t code, reg_entry *plan,
                        Py_ssize_t start, Py_ssize_t count, Py_ssize_t total, uint32_t vp_index):
        """The exception of a call of ``plan[start:start + count]`` that failed (rc < 0) or did
        fewer reps than names."""
        names = [<object>plan[i].name for i in range(start, start + count)]
        return self._error(err if rc < 0 else 0, args.status, args.reps, code, names, start, total, vp_index)

    cdef dict _get(self, int fd, uint32_t vp_index, object names):
        cdef list keys = names if type(names) is list else list(names)
        cdef Py_ssize_t total = len(keys)
        cdef reg_entry small[SMALL_PLAN]
        cdef reg_entry *plan = _plan_memory(small, total)
        try:
            keep = self._plan_read(keys, plan, total)  # holds the names of plan's entries it made
            return self._read(fd, vp_index, plan, total)
        finally:
            if plan != small:
                PyMem_Free(plan)

    cdef list _plan_read(self, list keys, reg_entry *plan, Py_ssize_t total):
        """``_plan`` for a read, remembered for the next: a caller reads the same registers again
        and again, through the same key objects (a list kept, or literals, which are constants
        of their code object). Keys of exactly str or int only, whose register cannot change."""
        cdef tuple last = self._last_keys
        cdef Py_ssize_t i
        if last is not None and len(last) == total:
            i = 0
            while i < total and PyList_GET_ITEM(keys, i) == PyTuple_GET_ITEM(last, i):
                i += 1
            if i == total:
                memcpy(plan, self._last_plan, sizeof(reg_entry) * total)
                return self._last_keep
        keep = self._plan(keys, plan, total)
        if total > SMALL_PLAN:
            return keep
        for i in range(total):
            cls = type(keys[i])
            if cls is not str and cls is not int:
                return keep
        last = tuple(keys)
        memcpy(self._last_plan, plan, sizeof(reg_entry) * total)
        self._last_keys = last
        self._last_keep = keep
        return keep

    cdef dict _read(self, int fd, uint32_t vp_index, reg_entry *plan, Py_ssize_t total):
        """HvCallGetVpRegisters of the registers of ``plan``: {name: value}."""
        cdef Py_ssize_t start = 0, count, i
        cdef uint64_t inbuf[512]   # one page each, 8-aligned
        cdef uint64_t outbuf[512]
        cdef hv_input_get_vp_registers *inp = <hv_input_get_vp_registers *>inbuf
        cdef hv_register_value *out = <hv_register_value *>outbuf
        cdef hv_register_value *v
        cdef size_t header = <char *>&inp.names[0] - <char *>inp, in_sz
        cdef mshv_root_hvcall args
        cdef int rc, err = 0, kind
        cdef dict result = _PyDict_NewPresized(total)  # no resizing on the way
        while start < total:  # chunks of HV_GET_VP_REGISTERS_BATCH_MAX
            count = min(<Py_ssize_t>HV_GET_VP_REGISTERS_BATCH_MAX, total - start)
            in_sz = header + sizeof(uint32_t) * count
            memset(inbuf, 0, in_sz)
            inp.vp_index = vp_index
            for i in range(count):
                inp.names[i] = plan[start + i].number
            rc = self._call(fd, HVCALL_GET_VP_REGISTERS, <int>count, inbuf, in_sz, outbuf,
                            sizeof(hv_register_value) * count, &args, &err)
            if rc < 0 or args.reps != count:
                raise self._failed(rc, err, &args, HVCALL_GET_VP_REGISTERS, plan, start, count, total, vp_index)
            for i in range(count):
                kind = plan[start + i].kind
                v = &out[i]
                if kind == K_INT:
                    value = v.reg64
                elif kind == K_SEGMENT:
                    value = mshv_segment_of(self._segment, v.segment.base, v.segment.limit, v.segment.selector,
                                            v.segment.attributes)
                elif kind == K_TABLE:
                    value = mshv_table_of(self._table_type, v.table.base, v.table.limit)
                else:  # 128 bits
                    value = (<object>v.reg128.high_part << 64) | v.reg128.low_part
                result[<object>plan[start + i].name] = value
            start += count
        return result

    cdef bint _pack(self, hv_register_value *v, int kind, object value) except -1:
        """``value`` into ``v`` when it is of the kind's exact type and in range: True; else
        False, and the caller asks ``self._fields`` (which raises, or converts a subclass)."""
        cdef tuple t
        try:
            if kind == K_INT:
                if type(value) is not int:
                    return False
                v.reg64 = value
            elif kind == K_WIDE:
                if type(value) is not int:
                    return False
                v.reg128.high_part = value >> 64  # a negative or too big value: OverflowError
                v.reg128.low_part = value & 0xFFFFFFFFFFFFFFFF
            elif kind == K_SEGMENT:
                if type(value) is not self._segment:
                    return False
                t = <tuple>value  # (base, limit, selector, attributes)
                if not (type(t[0]) is int and type(t[1]) is int and type(t[2]) is int and type(t[3]) is int):
                    return False
                v.segment.base = t[0]
                v.segment.limit = t[1]
                v.segment.selector = t[2]
                v.segment.attributes = t[3]
            else:
                if type(value) is not self._table_type:
                    return False
                t = <tuple>value  # (base, limit)
                if not (type(t[0]) is int and type(t[1]) is int):
                    return False
                v.table.base = t[0]
                v.table.limit = t[1]
        except OverflowError:  # out of range: the Python check names the field
            memset(v, 0, sizeof(v[0]))
            return False
        return True

    cdef int _fill(self, hv_register_assoc *e, reg_entry *reg, object value) except -1:
        """One element: the register ``reg`` and ``value``, checked (reserved fields stay zero)."""
        cdef int kind = reg.kind
        e.name = reg.number
        if self._pack(&e.value, kind, value):
            return 0
        fields = self._fields(<object>reg.name, KIND_NAMES[kind], value)  # the checks, and their errors
        if kind == K_INT:
            e.value.reg64 = fields[0]
        elif kind == K_WIDE:
            e.value.reg128.low_part = fields[0]
            e.value.reg128.high_part = fields[1]
        elif kind == K_SEGMENT:
            e.value.segment.base = fields[0]
            e.value.segment.limit = fields[1]
            e.value.segment.selector = fields[2]
            e.value.segment.attributes = fields[3]
        else:  # (limit, base)
            e.value.table.limit = fields[0]
            e.value.table.base = fields[1]
        return 0

    cdef dict _set(self, int fd, uint32_t vp_index, object values, object collect):
        cdef list keys = list(values)  # a mapping's keys, in order (a dict would fold repeated names)
        cdef Py_ssize_t total = len(keys)
        cdef list items
        cdef reg_entry small[SMALL_PLAN]
        cdef reg_entry *plan = _plan_memory(small, total)
        try:
            keep = self._plan(keys, plan, total)  # holds the names of plan's entries it made
            items = PyDict_Values(values) if type(values) is dict else _values_of(values, keys)
            return self._write(fd, vp_index, plan, items, collect)
        finally:
            if plan != small:
                PyMem_Free(plan)

    cdef dict _write(self, int fd, uint32_t vp_index, reg_entry *plan, list items, object collect):
        """HvCallSetVpRegisters of ``items`` to the registers of ``plan``, every value checked
        first; returns {name: value} of those whose names are in ``collect``."""
        cdef Py_ssize_t total = len(items), start = 0, count, i
        cdef uint64_t inbuf[512]
        cdef hv_input_set_vp_registers *inp = <hv_input_set_vp_registers *>inbuf
        cdef size_t header = <char *>&inp.elements[0] - <char *>inp, in_sz
        cdef bint one_chunk = total <= HV_SET_VP_REGISTERS_BATCH_MAX
        cdef bytearray packed = None
        cdef hv_register_assoc *elements
        cdef mshv_root_hvcall args
        cdef int rc, err = 0
        cdef dict collected = {}
        cdef bint collecting = bool(collect)  # once: a truth test per register adds up
        # every element packed (and so checked) before the first call; reserved fields zero
        if one_chunk:  # straight into the input
            memset(inbuf, 0, header + sizeof(hv_register_assoc) * total)
            elements = &inp.elements[0]
        else:
            packed = bytearray(<Py_ssize_t>sizeof(hv_register_assoc) * total)
            elements = <hv_register_assoc *><char *>packed
        for i in range(total):
            self._fill(&elements[i], &plan[i], items[i])
            if collecting and <object>plan[i].name in collect:
                collected[<object>plan[i].name] = items[i]
        while start < total:  # chunks of HV_SET_VP_REGISTERS_BATCH_MAX
            count = min(<Py_ssize_t>HV_SET_VP_REGISTERS_BATCH_MAX, total - start)
            in_sz = header + sizeof(hv_register_assoc) * count
            if not one_chunk:
                memset(inbuf, 0, header)
                memcpy(&inp.elements[0], &elements[start], sizeof(hv_register_assoc) * count)
            inp.vp_index = vp_index
            rc = self._call(fd, HVCALL_SET_VP_REGISTERS, <int>count, inbuf, in_sz, NULL, 0, &args, &err)
            if rc < 0 or args.reps != count:
                raise self._failed(rc, err, &args, HVCALL_SET_VP_REGISTERS, plan, start, count, total, vp_index)
            start += count
        return collected

    def get(self, int fd, uint32_t vp_index, object names):
        """Read registers of VP ``vp_index`` through ``fd``: {lower-case name: value}."""
        return self._get(fd, vp_index, names)

    def set(self, int fd, uint32_t vp_index, object values, object collect=frozenset()):
        """Write registers of VP ``vp_index`` through ``fd``; every value is checked before the
        first hypercall, so bad input changes nothing. Returns {name: value} of the registers
        written whose names are in ``collect``."""
        return self._set(fd, vp_index, values, collect)


cdef object _DICT_GETITEM = dict.__getitem__


cdef list _values_of(object values, list keys):
    """``[values[key] for key in keys]``. A dict subclass that keeps dict's ``__getitem__`` is
    read with dict's own lookup: its type's subscript slot is the generic one, a method call
    per key. A key it lacks still goes through ``values[key]`` (``__missing__``, KeyError)."""
    cdef PyObject *found
    if not (isinstance(values, dict) and type(values).__getitem__ is _DICT_GETITEM):
        return [values[key] for key in keys]
    found_values = []
    for key in keys:
        found = PyDict_GetItemWithError(values, key)
        found_values.append(<object>found if found != NULL else values[key])
    return found_values


cdef inline object _new_slots(object cls):
    """An instance of the slots dataclass ``cls`` with no field set (object.__new__)."""
    return (<PyTypeObject *>cls).tp_new(cls, <PyObject *>_NO_ARGS, NULL)


cdef inline mshv_run_owner *_owner_of(object run):
    """The C side of RunState ``run``."""
    return <mshv_run_owner *><uintptr_t>run.owner_address


cdef int _enter(mshv_run_owner *o, str what) except -1:
    """Make the calling thread the runner of ``o``; RuntimeError when a run is in progress."""
    cdef long me = mshv_thread_id()
    cdef long tid = mshv_run_enter(o, me)
    if tid:
        from mshv._kick import already_running
        raise already_running(what, tid, me)
    return 0


cdef void _leave(mshv_run_owner *o) noexcept:
    """The run of ``o`` is over: tid 0, then a wait (without the GIL) for a kick in flight."""
    if mshv_run_leave_begin(o):
        with nogil:
            mshv_run_wait_kickers(o)


cdef class RunCalls:
    """One VP's run path in C: ``Vp.run``'s MSHV_RUN_VP and decode, ``Vp.complete_registers``'s
    register page write (see :mod:`mshv.vp`).

    Args:
        table: address of the kernel table (``mshv_kernel_table()``).
        fd: the VP fd.
        keep: the cffi object behind ``run_address`` (kept alive).
        run_address: address of the VP's ``struct mshv_run_vp`` (the message lands there).
        state: the VP's ``mshv._kick.RunState``: who runs it, and its interrupt request word.
        page: address of the VP's mapped register page, or 0 where it has none.
        slots: ``{name: index}`` of the page's writable registers: 0-15 the GPRs in
            encoding order, 16 ``rip``, 17 ``rflags``.
        io_type: :class:`mshv.IoPortIntercept`.
        memory_type: :class:`mshv.MemoryIntercept`.
        mtypes: ``{number: HvMessageType member}`` of the message types decoded here.
        decode: ``mshv.intercepts.decode(raw)``, for every other message type.
        regs: the :class:`RegisterCalls` behind :meth:`get_registers`/:meth:`set_registers`
            (None: the VP takes the Python way).
        index: the VP's index.
    """

    def __cinit__(self, uintptr_t table, int fd, object keep, uintptr_t run_address, object state,
                  uintptr_t page, dict slots, object io_type, object memory_type, dict mtypes, object decode,
                  RegisterCalls regs=None, uint32_t index=0):
        self._table = <mshv_kernel_table *>table
        self._fd = fd
        self._keep = keep
        self._run = <mshv_run_vp *>run_address
        self._state = state
        self._owner = <mshv_run_owner *><uintptr_t>state.owner_address
        self._kick = &self._owner.request
        self._page = <hv_vp_register_page *>page
        self._slots = slots
        self._io_type = io_type
        self._memory_type = memory_type
        _slot_offsets(io_type, _IO_SLOTS, self._io_at)
        _slot_offsets(memory_type, _MEMORY_SLOTS, self._memory_at)
        self._mtypes = mtypes
        self._decode = decode
        self._regs = regs
        self._index = index

    def get_registers(self, object names):
        """``Vp.get_registers``: the registers by HvCallGetVpRegisters, with the values a
        completion wrote into the register page since the last run (its dirty classes) in
        place of the hypercall's: they are the VP's registers from the next run on."""
        cdef hv_vp_register_page *p
        cdef uint32_t dirty, bit
        cdef uint64_t *gprs
        cdef int i
        if self._fd < 0 or self._regs is None:
            raise ValueError("the VP is closed")
        values = self._regs._get(self._fd, self._index, names)
        p = self._page  # read again: the GIL was released, the VP may have closed meanwhile
        if p == NULL or not p.dirty:
            return values
        dirty = p.dirty
        gprs = <uint64_t *>&p.rax  # RAX..R15 in encoding order
        for name, slot in self._slots.items():
            i = slot
            bit = HV_X64_REGISTER_CLASS_GENERAL if i < 16 else (
                HV_X64_REGISTER_CLASS_IP if i == 16 else HV_X64_REGISTER_CLASS_FLAGS)
            if dirty & (1U << bit) and name in values:
                values[name] = gprs[i] if i < 16 else (p.rip if i == 16 else p.rflags)
        return values

    def set_registers(self, object values):
        """``Vp.set_registers``: the registers by HvCallSetVpRegisters (every value checked
        first), then the register page's copy of those it holds (GPRs, RIP, RFLAGS), not
        marked dirty: a completion through the page writes whole classes back, which then
        carry these values instead of undoing them."""
        cdef hv_vp_register_page *p
        cdef uint64_t *gprs
        cdef int i
        if self._fd < 0 or self._regs is None:
            raise ValueError("the VP is closed")
        mirrored = self._regs._set(self._fd, self._index, values, self._slots)
        p = self._page  # read again: the GIL was released, the VP may have closed meanwhile
        if p == NULL or not mirrored:
            return
        gprs = <uint64_t *>&p.rax
        for name, value in (<dict>mirrored).items():
            i = self._slots[name]
            if i < 16:
                gprs[i] = value
            elif i == 16:
                p.rip = value
            else:
                p.rflags = value

    def close(self):
        """Forget the fd and the register page (the VP is closing: the page is unmapped next)."""
        self._fd = -1
        self._page = NULL

    def enter(self, object run, str what):
        """``run.enter(what)`` (mshv._kick.RunState) for the calling thread, in C: the same
        ``tid``, set by the same atomic step, the same refusal of a second runner."""
        _enter(self._owner if run is self._state else _owner_of(run), what)

    def leave(self, object run):
        """``run.leave()`` (mshv._kick.RunState), in C: ``tid`` 0, then a wait (without the
        GIL) for a kick still being sent, so none reaches the thread's next run."""
        _leave(self._owner if run is self._state else _owner_of(run))

    def run(self):
        """One MSHV_RUN_VP with the GIL released: the decoded intercept, or the errno (an int);
        -1 and no RUN_VP while an interrupt request is pending (the caller takes it)."""
        return self._run_once()

    def run_owned(self, str what):
        """``enter(state, what)``, ``run()``, then ``leave(state)``, in one call (``Vp.run``).
        The run is left whatever ``run()`` gave: a signal's Python handler, which runs once
        this returns, may raise before the caller could leave it."""
        _enter(self._owner, what)
        try:
            return self._run_once()
        finally:
            _leave(self._owner)

    cdef object _run_once(self):
        cdef int rc, err = 0
        if self._fd < 0:
            raise ValueError("the VP is closed")
        if self._kick[0]:
            return -1
        with nogil:
            rc = self._table.ioctl(self._fd, MSHV_RUN_VP, self._run)
            if rc < 0:
                err = errno
        if rc < 0:
            return err
        cdef hv_message *msg = <hv_message *>self._run
        raw = PyBytes_FromStringAndSize(<char *>msg, HV_MESSAGE_SIZE)
        cdef uint32_t mtype = msg.header.message_type
        if mtype == HVMSG_X64_IO_PORT_INTERCEPT:
            return self._io(msg, raw)
        if mtype == HVMSG_UNMAPPED_GPA or mtype == HVMSG_GPA_INTERCEPT or mtype == HVMSG_UNACCEPTED_GPA:
            return self._memory(msg, raw)
        return self._decode(raw)

    cdef object _intercept(self, object kind, Py_ssize_t *at, hv_message *msg,
                           hv_x64_intercept_message_header *h, object raw):
        """A new ``kind`` with the fields every x64 intercept has (mshv.intercepts.X64Intercept),
        written into its slots at the offsets ``at`` (``_X64_SLOTS`` order)."""
        o = _new_slots(kind)
        mshv_slot_set(o, at[0], self._mtypes[msg.header.message_type])
        mshv_slot_set(o, at[1], raw)
        mshv_slot_set(o, at[2], None)
        mshv_slot_set(o, at[3], None)  # X64Intercept.header reads raw at first access
        mshv_slot_set(o, at[4], h.rip + ((h.instruction_length_cr8 & HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK) >>
                                         HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT))
        mshv_slot_set(o, at[5], h.intercept_access_type == HV_INTERCEPT_ACCESS_WRITE)
        return o

    cdef object _io(self, hv_message *msg, object raw):
        # mshv.intercepts._io: the same fields, the same values (_IO_SLOTS order)
        cdef hv_x64_io_port_intercept_message *m = <hv_x64_io_port_intercept_message *>msg.payload
        cdef uint8_t info = m.access_info
        cdef Py_ssize_t *at = self._io_at
        o = self._intercept(self._io_type, at, msg, &m.header, raw)
        mshv_slot_set(o, at[6], m.port_number)
        mshv_slot_set(o, at[7], (info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK) >>
                      HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT)
        mshv_slot_set(o, at[8], (info & HV_X64_IO_PORT_ACCESS_INFO_STRING_OP) != 0)
        mshv_slot_set(o, at[9], (info & HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX) != 0)
        mshv_slot_set(o, at[10], m.rax)
        mshv_slot_set(o, at[11], None)
        return o

    cdef object _memory(self, hv_message *msg, object raw):
        # mshv.intercepts._memory: the same fields, the same values (_MEMORY_SLOTS order)
        cdef hv_x64_memory_intercept_message *m = <hv_x64_memory_intercept_message *>msg.payload
        cdef int count = m.instruction_byte_count
        cdef Py_ssize_t *at = self._memory_at
        o = self._intercept(self._memory_type, at, msg, &m.header, raw)
        mshv_slot_set(o, at[6], m.guest_physical_address)
        mshv_slot_set(o, at[7], m.guest_virtual_address)
        mshv_slot_set(o, at[8], (m.memory_access_info & HV_X64_MEMORY_ACCESS_INFO_GVA_VALID) != 0)
        mshv_slot_set(o, at[9], PyBytes_FromStringAndSize(<char *>m.instruction_bytes, 16 if count > 16 else count))
        mshv_slot_set(o, at[10], m.cache_type)
        return o

    def complete_io(self, object intercept, object value):
        """``Vp.complete_io`` through the register page: RIP past the instruction and, for an IN,
        ``value`` merged into RAX by access size (``mshv.x86._cpu.in_rax``); True.

        False, with nothing written, unless the page holds the last intercept's state, the
        intercept is an exactly-typed port IO that is no string IO, and ``value`` is None for
        an OUT, an int that fits the access size for an IN; ``Vp.complete_io`` then takes the
        Python way (its checks raise the error of a bad call).
        """
        cdef hv_vp_register_page *p = self._page
        cdef uint64_t rip, v
        if (p == NULL or not p.isvalid or type(intercept) is not self._io_type
                or intercept.string is not False):
            return False
        try:
            rip = intercept.next_rip
            if intercept.is_write:
                if value is not None:
                    return False
                p.rip = rip
                p.dirty |= 1U << HV_X64_REGISTER_CLASS_IP
                return True
            if type(value) is not int or value < 0:
                return False
            v = value
            size = intercept.size
            if (size != 1 and size != 2 and size != 4) or v >> (8 * size):  # it does not fit
                return False
            p.rax = in_rax(intercept.rax, size, v)
        except OverflowError:
            return False
        p.rip = rip
        p.dirty |= (1U << HV_X64_REGISTER_CLASS_IP) | (1U << HV_X64_REGISTER_CLASS_GENERAL)
        return True

    def complete(self, object values):
        """Write ``{name: value}`` into the register page and mark their classes dirty: True.

        False, with nothing written, unless the page holds the last intercept's state
        (``isvalid``), ``values`` is a dict of the page's writable registers and every value
        is an int of 0..2**64-1; ``Vp.complete_registers`` then takes the Python way, which
        raises the error of a bad value or writes by hypercall.
        """
        cdef hv_vp_register_page *p = self._page
        cdef uint64_t vals[18]
        cdef int index[18]
        cdef int n = 0, k, i
        cdef uint32_t dirty = 0
        cdef uint64_t *gprs
        if p == NULL or not p.isvalid or type(values) is not dict or len(<dict>values) > 18:
            return False
        for name, value in (<dict>values).items():
            slot = self._slots.get(name)
            if slot is None or type(value) is not int or value < 0:
                return False
            try:
                vals[n] = <uint64_t>value
            except OverflowError:
                return False
            index[n] = <int>slot
            n += 1
        gprs = <uint64_t *>&p.rax  # RAX..R15 in encoding order
        for k in range(n):
            i = index[k]
            if i < 16:
                gprs[i] = vals[k]
                dirty |= 1U << HV_X64_REGISTER_CLASS_GENERAL
            elif i == 16:
                p.rip = vals[k]
                dirty |= 1U << HV_X64_REGISTER_CLASS_IP
            else:
                p.rflags = vals[k]
                dirty |= 1U << HV_X64_REGISTER_CLASS_FLAGS
        p.dirty |= dirty
        return True
