# cython: language_level=3
"""The Cython run loop: MSHV_RUN_VP -> decode -> dispatch -> complete -> resume, in C.

``NativeEngine`` is driven by :class:`mshv.runloop.RunLoop`; use that. Per exit
it calls MSHV_RUN_VP through the kernel table with the GIL released, decodes the
``hv_message`` in C and finishes port IO (buffer and counter ports) and simple
MOV-to/from-memory MMIO (byte-backed ranges) itself: the results go into the
VP register page (RAX/GPRs, RIP, dirty class bits), which the next MSHV_RUN_VP
applies, so no hypercall and no Python object is made per exit. Between such
exits the loop runs without the GIL. It takes the GIL only for exits it cannot
finish in C (Python handlers, INS/OUTS, other instructions, output to a port
buffer's bytearray), where the page is not valid (``Vp.complete_registers``),
for a signal (Python's handlers run) and to stop. An exception raised in Python
stops the loop and propagates out of ``run()``. Before each MSHV_RUN_VP it reads
the VP's interrupt request word (``Vp.interrupt``).
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
)
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memmove, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from mshv.errors import MshvError
from mshv.x86._cpu cimport code_bits, in_rax, merge_gpr

_REASONS = ("continue", "halt", "max_exits", "message_type", "port", "deadline", "stopped",
            "unhandled", "signal")
KINDS = {"buffer": KIND_BUFFER, "counter": KIND_COUNTER, "bytes": KIND_BYTES, "python": KIND_PYTHON}


cdef int _decode_mov(const uint8_t *b, int n, int bits, MovInsn *out) noexcept nogil:
    """Decode MOV r/m,r (88/89), MOV r,r/m (8A/8B) or MOV r/m,imm (C6/C7) with a memory operand.

    Returns 0 and fills ``out``, or -1 for anything else (the caller falls back to Python).
    """
    cdef int i = 0, opsize16 = 0, addr = bits, rex = 0, op, modrm, mod, reg, rm, size, isize, k
    cdef uint64_t imm = 0
    while i < n:
        if b[i] == 0x66:
            opsize16 = 1
        elif b[i] == 0x67:
            addr = 16 if bits == 32 else 32
        elif b[i] not in (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65):
            break
        i += 1
    if bits == 64 and i < n and (b[i] & 0xF0) == 0x40:
        rex = b[i]
        i += 1
    if i + 2 > n:
        return -1
    op = b[i]
    modrm = b[i + 1]
    i += 2
    if op not in (0x88, 0x89, 0x8A, 0x8B, 0xC6, 0xC7):
        return -1
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    if mod == 3:
        return -1
    if addr == 16:
        if (mod == 0 and rm == 6) or mod == 2:
            i += 2
        elif mod == 1:
            i += 1
    else:
        if rm == 4:
            if i >= n:
                return -1
            if mod == 0 and (b[i] & 7) == 5:
                i += 4
            i += 1
        if (mod == 0 and rm == 5) or mod == 2:
            i += 4
        elif mod == 1:
            i += 1
    if op in (0x88, 0x8A, 0xC6):
        size = 1
    elif rex & 8:
        size = 8
    elif (bits == 16) != (opsize16 == 1):
        size = 2
    else:
        size = 4
    out.is_write = op in (0x88, 0x89, 0xC6, 0xC7)
    out.size = size
    out.reg = -1
    out.shift = 0
    out.imm = 0
    if op == 0xC6 or op == 0xC7:
        if reg != 0:
            return -1
        isize = 4 if size == 8 else size
        if i + isize > n:
            return -1
        for k in range(isize):
            imm |= (<uint64_t>b[i + k]) << (8 * k)
        if size == 8 and (imm >> 31) & 1:
            imm |= 0xFFFFFFFF00000000ULL  # imm32 sign-extends to 64 bits
        out.imm = imm
        i += isize
    else:
        out.reg = reg | ((rex & 4) << 1)
        if size == 1 and rex == 0 and 4 <= out.reg < 8:
            out.reg -= 4  # AH, CH, DH, BH: bits 8-15 of RAX, RCX, RDX, RBX
            out.shift = 8
    if i > n:
        return -1
    out.length = i
    return 0


cdef class NativeEngine:
    """The C state and loop behind :class:`mshv.runloop.RunLoop` (native=True).

    Args:
        fd: the VP fd.
        table: address of the kernel table (``mshv_kernel_table()``).
        page: address of the VP's mapped register page (borrowed), or 0 to complete
            through ``complete``.
        kick: address of the VP's interrupt request word (``RunState.word``).
        take_request: ``take_request() -> bool`` takes a pending request (``RunState``).
        complete: ``complete(values)`` completes an exit where the page is not valid
            (``Vp.complete_registers``).
    """

    def __cinit__(self, int fd, uintptr_t table, uintptr_t page, uintptr_t kick, object take_request,
                  object complete):
        self._run = <mshv_run_vp *>calloc(1, sizeof(mshv_run_vp))
        if self._run == NULL:
            raise MemoryError()
        self._fd = fd
        self._table = <mshv_kernel_table *>table
        self._page = <hv_vp_register_page *>page
        self._kick = <int *>kick
        self._take_request = take_request
        self._complete = complete
        self._objects = {}
        self._stop_on_halt = True
        self._inq_lock = PyThread_allocate_lock()
        if self._inq_lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._release()
        free(self._run)
        self._run = NULL
        if self._inq_lock != NULL:
            PyThread_free_lock(self._inq_lock)
            self._inq_lock = NULL

    cdef void _release(self) noexcept:
        cdef int i
        for i in range(self._nports):
            free(self._ports[i].inq)
        for i in range(self._nmmio):
            if self._mmio[i].has_view:
                PyBuffer_Release(&self._mmio[i].view)
        self._nports = self._nmmio = 0

    def close(self):
        """Drop every handler and the buffers it holds; the engine cannot run afterwards."""
        if self._running:
            raise RuntimeError("the run loop is running: stop() it first")
        self._release()
        self._objects.clear()
        self._closed = True

    def _editable(self):
        if self._closed:
            raise ValueError("the run loop is closed")
        if self._running:
            raise RuntimeError("handlers cannot change while the loop runs")

    # -- handlers ----------------------------------------------------------------------------
    def add_port(self, int slot, int first, int last, int kind, object output=None):
        """Serve ports first..last with a native handler (KIND_BUFFER, KIND_COUNTER, KIND_PYTHON)."""
        self._editable()
        if self._nports >= MAX_PORT_ENTRIES:
            raise ValueError(f"at most {MAX_PORT_ENTRIES} port handlers")
        cdef PortEntry *e = &self._ports[self._nports]
        memset(e, 0, sizeof(PortEntry))
        e.first, e.last, e.kind, e.slot = first, last, kind, slot
        if kind == KIND_BUFFER:
            if type(output) is not bytearray:
                raise TypeError("a port buffer's output must be a bytearray")
            self._objects[slot] = output
            e.output = <PyObject *>output
        self._nports += 1

    def add_mmio(self, int slot, uint64_t gpa, uint64_t size, int kind, object data=None):
        """Serve GPAs gpa..gpa+size-1 (KIND_BYTES with a bytearray, or KIND_PYTHON)."""
        self._editable()
        if self._nmmio >= MAX_MMIO_ENTRIES:
            raise ValueError(f"at most {MAX_MMIO_ENTRIES} MMIO handlers")
        cdef MmioEntry *e = &self._mmio[self._nmmio]
        memset(e, 0, sizeof(MmioEntry))
        e.gpa, e.size, e.kind, e.slot = gpa, size, kind, slot
        if kind == KIND_BYTES:
            PyObject_GetBuffer(data, &e.view, PyBUF_WRITABLE)  # holds it: no resize while mapped
            e.has_view = True
            self._objects[slot] = data
        self._nmmio += 1

    def remove(self, int slot):
        """Remove the handler registered under ``slot``; returns True if there was one."""
        self._editable()
        cdef int i
        for i in range(self._nports):
            if self._ports[i].slot == slot:
                free(self._ports[i].inq)
                memmove(&self._ports[i], &self._ports[i + 1], (self._nports - i - 1) * sizeof(PortEntry))
                self._nports -= 1
                self._last_port = 0
                self._objects.pop(slot, None)
                return True
        for i in range(self._nmmio):
            if self._mmio[i].slot == slot:
                if self._mmio[i].has_view:
                    PyBuffer_Release(&self._mmio[i].view)
                memmove(&self._mmio[i], &self._mmio[i + 1], (self._nmmio - i - 1) * sizeof(MmioEntry))
                self._nmmio -= 1
                self._objects.pop(slot, None)
                return True
        return False

    cdef PortEntry *_port_slot(self, int slot) except NULL:
        cdef int i
        for i in range(self._nports):
            if self._ports[i].slot == slot:
                return &self._ports[i]
        raise KeyError(slot)

    def feed(self, int slot, const uint8_t[:] data not None):
        """Queue bytes for the guest's IN on a buffer port."""
        cdef PortEntry *e = self._port_slot(slot)
        cdef size_t left = e.inq_len - e.inq_pos, n = data.shape[0]
        cdef unsigned char *q
        if n == 0:
            return
        cdef const uint8_t *src = &data[0]
        with nogil:  # the loop reads the queue without the GIL
            PyThread_acquire_lock(self._inq_lock, WAIT_LOCK)
            left = e.inq_len - e.inq_pos
            if e.inq_pos:
                memmove(e.inq, e.inq + e.inq_pos, left)
                e.inq_pos, e.inq_len = 0, left
            q = <unsigned char *>realloc(e.inq, left + n)
            if q != NULL:
                memcpy(q + left, src, n)
                e.inq, e.inq_len = q, left + n
            PyThread_release_lock(self._inq_lock)
        if q == NULL:
            raise MemoryError()

    def pending(self, int slot):
        """Bytes still queued for IN on a buffer port."""
        cdef PortEntry *e = self._port_slot(slot)
        cdef size_t left
        with nogil:
            PyThread_acquire_lock(self._inq_lock, WAIT_LOCK)
            left = e.inq_len - e.inq_pos
            PyThread_release_lock(self._inq_lock)
        return left

    def take(self, int slot, size_t size):
        """Pop up to ``size`` bytes queued on a buffer port (INS, completed in Python)."""
        cdef PortEntry *e = self._port_slot(slot)
        cdef size_t n
        with nogil:
            PyThread_acquire_lock(self._inq_lock, WAIT_LOCK)
        try:
            n = min(size, e.inq_len - e.inq_pos)
            data = PyBytes_FromStringAndSize(<char *>e.inq + e.inq_pos, n) if n else b""
            e.inq_pos += n
        finally:
            PyThread_release_lock(self._inq_lock)
        return data

    def hits(self, int slot):
        """Exits the handler under ``slot`` completed."""
        cdef int i
        for i in range(self._nports):
            if self._ports[i].slot == slot:
                return self._ports[i].hits
        for i in range(self._nmmio):
            if self._mmio[i].slot == slot:
                return self._mmio[i].hits
        raise KeyError(slot)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, int64_t max_exits, tuple stop_types, tuple stop_ports, double deadline,
            bint stop_on_halt, object slow):
        """Run until a stop condition; returns (reason, exits, raw message or None).

        ``max_exits`` < 0 and ``deadline`` < 0 mean none; ``deadline`` is CLOCK_MONOTONIC seconds.
        ``slow(slot, raw) -> bool`` serves the exits of Python handlers (held for this call only).
        """
        if self._closed:
            raise ValueError("the run loop is closed")
        if self._running:
            raise RuntimeError("the run loop is already running")
        if len(stop_types) > MAX_STOP_TYPES or len(stop_ports) > MAX_STOP_PORTS:
            raise ValueError(f"at most {MAX_STOP_TYPES} message types and {MAX_STOP_PORTS} ports")
        cdef int i
        for i in range(len(stop_types)):
            self._stop_types[i] = stop_types[i]
        for i in range(len(stop_ports)):
            self._stop_ports[i] = stop_ports[i]
        self._nstop_types, self._nstop_ports = len(stop_types), len(stop_ports)
        self._stop_on_halt = stop_on_halt
        cdef uint64_t start = self.exits
        cdef int reason
        self._running = True
        self._slow = slow
        try:
            reason = self._loop(max_exits, deadline)
        finally:
            self._running = False
            self._slow = None
        raw = None
        if reason in (R_HALT, R_MESSAGE_TYPE, R_PORT, R_UNHANDLED):
            raw = PyBytes_FromStringAndSize(<char *>self._run, HV_MESSAGE_SIZE)
        return _REASONS[reason], self.exits - start, raw

    cdef int _loop(self, int64_t max_exits, double deadline) except -1:
        cdef int64_t n = 0
        cdef int r
        while True:
            with nogil:  # until an exit or a stop needs Python
                r = self._fast(max_exits, deadline, &n)
            if r == N_DISPATCH:
                r = self._dispatch()
                if r != R_CONTINUE:
                    return r
            elif r == N_REQUEST:
                if self._take_request():
                    return R_STOPPED
            elif r == N_EINTR:
                PyErr_CheckSignals()  # runs Python signal handlers; their exception propagates
                if self._kick[0] and self._take_request():
                    return R_STOPPED
                if self._past(deadline):
                    return R_DEADLINE
                return R_SIGNAL
            elif r == N_ERROR:
                raise MshvError(self._err, "MSHV_RUN_VP", None, f"fd={self._fd}")
            else:
                return r

    cdef int _fast(self, int64_t max_exits, double deadline, int64_t *n) noexcept nogil:
        """The loop without the GIL: RUN_VP and the exits C finishes, until a stop reason or an N_*."""
        cdef int r
        while True:
            if self._kick[0]:  # before every RUN_VP: no request is lost
                return N_REQUEST
            if 0 <= max_exits <= n[0]:
                return R_MAX_EXITS
            if self._past(deadline):
                return R_DEADLINE
            if self._table.ioctl(self._fd, MSHV_RUN_VP, self._run) < 0:
                self._err = errno
                return N_EINTR if self._err == EINTR else N_ERROR
            self.exits += 1
            n[0] += 1
            r = self._dispatch_nogil()
            if r != R_CONTINUE:
                return r

    cdef int _dispatch_nogil(self) noexcept nogil:
        """_dispatch for the exits C finishes, changing nothing when it returns N_DISPATCH."""
        cdef hv_message *msg = <hv_message *>self._run
        cdef uint32_t mtype = msg.header.message_type
        cdef hv_x64_io_port_intercept_message *io
        cdef hv_x64_memory_intercept_message *m
        cdef hv_vp_register_page *p = self._page
        cdef PortEntry *e
        cdef MmioEntry *me
        cdef int i, size
        cdef uint64_t value = 0, next_rip
        if mtype == HVMSG_X64_HALT and self._stop_on_halt:
            return R_HALT
        for i in range(self._nstop_types):
            if mtype == self._stop_types[i]:
                return R_MESSAGE_TYPE
        if mtype == HVMSG_X64_IO_PORT_INTERCEPT:
            io = <hv_x64_io_port_intercept_message *>msg.payload
            for i in range(self._nstop_ports):
                if io.port_number == self._stop_ports[i]:
                    return R_PORT
            i = self._find_port(io.port_number)
            if i < 0:
                return R_UNHANDLED
            e = &self._ports[i]
            if (e.kind == KIND_PYTHON or io.access_info & HV_X64_IO_PORT_ACCESS_INFO_STRING_OP or p == NULL
                    or not p.isvalid):
                return N_DISPATCH
            size = (io.access_info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK) >> \
                HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
            next_rip = io.header.rip + ((io.header.instruction_length_cr8 &
                                         HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK) >>
                                        HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT)
            if io.header.intercept_access_type == HV_INTERCEPT_ACCESS_WRITE:
                if e.kind == KIND_BUFFER:
                    return N_DISPATCH  # the bytearray grows: with the GIL
                e.hits += 1
                self._page_io(next_rip, False, 0)
                return R_CONTINUE
            if e.kind == KIND_BUFFER:
                PyThread_acquire_lock(self._inq_lock, WAIT_LOCK)
                self._buffer_in(e, size, &value)
                PyThread_release_lock(self._inq_lock)
            e.hits += 1
            self._page_io(next_rip, True, in_rax(io.rax, size, value))
            return R_CONTINUE
        if mtype == HVMSG_UNMAPPED_GPA or mtype == HVMSG_GPA_INTERCEPT:
            m = <hv_x64_memory_intercept_message *>msg.payload
            i = self._find_mmio(m.guest_physical_address)
            if i < 0:
                return R_UNHANDLED
            me = &self._mmio[i]
            if me.kind == KIND_BYTES and self._mmio_bytes(me, msg):
                me.hits += 1
                return R_CONTINUE
            return N_DISPATCH
        return R_UNHANDLED

    cdef bint _past(self, double deadline) noexcept nogil:
        """True when a deadline (>= 0, CLOCK_MONOTONIC seconds) has passed."""
        cdef timespec now
        if deadline < 0:
            return False
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec + now.tv_nsec * 1e-9 >= deadline

    cdef int _dispatch(self) except -1:
        cdef hv_message *msg = <hv_message *>self._run
        cdef uint32_t mtype = msg.header.message_type
        cdef int i
        if mtype == HVMSG_X64_HALT and self._stop_on_halt:
            return R_HALT
        for i in range(self._nstop_types):
            if mtype == self._stop_types[i]:
                return R_MESSAGE_TYPE
        if mtype == HVMSG_X64_IO_PORT_INTERCEPT:
            return self._io(msg)
        if mtype == HVMSG_UNMAPPED_GPA or mtype == HVMSG_GPA_INTERCEPT:
            return self._memory(msg)
        return R_UNHANDLED

    cdef int _find_port(self, uint16_t port) noexcept nogil:
        cdef int i = self._last_port
        if i < self._nports and self._ports[i].first <= port <= self._ports[i].last:
            return i
        for i in range(self._nports):
            if self._ports[i].first <= port <= self._ports[i].last:
                self._last_port = i
                return i
        return -1

    cdef int _find_mmio(self, uint64_t gpa) noexcept nogil:
        cdef int i
        for i in range(self._nmmio):
            if self._mmio[i].gpa <= gpa and gpa - self._mmio[i].gpa < self._mmio[i].size:
                return i
        return -1

    cdef int _io(self, hv_message *msg) except -1:
        cdef hv_x64_io_port_intercept_message *io = <hv_x64_io_port_intercept_message *>msg.payload
        cdef uint16_t port = io.port_number
        cdef int i, size
        cdef uint64_t mask, value = 0, next_rip
        cdef PortEntry *e
        for i in range(self._nstop_ports):
            if port == self._stop_ports[i]:
                return R_PORT
        i = self._find_port(port)
        if i < 0:
            return R_UNHANDLED
        e = &self._ports[i]
        if e.kind == KIND_PYTHON or io.access_info & HV_X64_IO_PORT_ACCESS_INFO_STRING_OP:
            return self._python(e.slot, msg, &e.hits)  # INS/OUTS: Handler.string_io in Python
        size = (io.access_info & HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK) >> \
            HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
        mask = (1ULL << (8 * size)) - 1
        next_rip = io.header.rip + ((io.header.instruction_length_cr8 &
                                     HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK) >>
                                    HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT)
        if io.header.intercept_access_type == HV_INTERCEPT_ACCESS_WRITE:
            if e.kind == KIND_BUFFER:
                self._buffer_out(e, size, io.rax & mask)
            e.hits += 1
            return self._complete_io(next_rip, False, 0)
        if e.kind == KIND_BUFFER:
            with nogil:
                PyThread_acquire_lock(self._inq_lock, WAIT_LOCK)
                self._buffer_in(e, size, &value)
                PyThread_release_lock(self._inq_lock)
        e.hits += 1
        return self._complete_io(next_rip, True, in_rax(io.rax, size, value))

    cdef int _buffer_out(self, PortEntry *e, int size, uint64_t value) except -1:
        cdef object out = <object>e.output
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(out)
        cdef char *dst
        cdef int i
        PyByteArray_Resize(out, n + size)
        dst = PyByteArray_AS_STRING(out) + n
        for i in range(size):
            dst[i] = <char>((value >> (8 * i)) & 0xFF)
        return 0

    cdef void _buffer_in(self, PortEntry *e, int size, uint64_t *value) noexcept nogil:
        cdef int i
        value[0] = 0
        for i in range(size):
            if e.inq_pos >= e.inq_len:
                break
            value[0] |= (<uint64_t>e.inq[e.inq_pos]) << (8 * i)
            e.inq_pos += 1

    cdef void _page_io(self, uint64_t next_rip, bint set_rax, uint64_t rax) noexcept nogil:
        """Complete a port IO through the register page (the caller checked it is valid)."""
        cdef hv_vp_register_page *p = self._page
        cdef uint32_t dirty = 1U << HV_X64_REGISTER_CLASS_IP
        p.rip = next_rip
        if set_rax:
            p.rax = rax
            dirty |= 1U << HV_X64_REGISTER_CLASS_GENERAL
        p.dirty |= dirty

    cdef int _complete_io(self, uint64_t next_rip, bint set_rax, uint64_t rax) except -1:
        cdef hv_vp_register_page *p = self._page
        if p != NULL and p.isvalid:
            self._page_io(next_rip, set_rax, rax)
            return R_CONTINUE
        if set_rax:
            self._complete({"rip": next_rip, "rax": rax})
        else:
            self._complete({"rip": next_rip})
        return R_CONTINUE

    cdef int _memory(self, hv_message *msg) except -1:
        cdef hv_x64_memory_intercept_message *m = <hv_x64_memory_intercept_message *>msg.payload
        cdef int i = self._find_mmio(m.guest_physical_address)
        cdef MmioEntry *e
        if i < 0:
            return R_UNHANDLED
        e = &self._mmio[i]
        if e.kind == KIND_BYTES and self._mmio_bytes(e, msg):
            e.hits += 1
            return R_CONTINUE
        return self._python(e.slot, msg, &e.hits)

    cdef bint _mmio_bytes(self, MmioEntry *e, hv_message *msg) noexcept nogil:
        """Finish a simple MOV on a byte-backed range through the register page; False: not simple."""
        cdef hv_x64_memory_intercept_message *m = <hv_x64_memory_intercept_message *>msg.payload
        cdef hv_vp_register_page *p = self._page
        cdef MovInsn insn
        cdef int bits, k
        cdef uint64_t *gprs
        cdef uint64_t off, value = 0
        cdef uint8_t *data = <uint8_t *>e.view.buf
        cdef uint32_t dirty = 1U << HV_X64_REGISTER_CLASS_IP
        if p == NULL or not p.isvalid:
            return False
        bits = code_bits(m.header.execution_state, m.header.cs_segment.attributes)
        if _decode_mov(m.instruction_bytes, m.instruction_byte_count, bits, &insn) < 0:
            return False
        if insn.is_write != (m.header.intercept_access_type == HV_INTERCEPT_ACCESS_WRITE):
            return False
        gprs = <uint64_t *>&p.rax  # RAX..R15 in encoding order
        off = m.guest_physical_address - e.gpa
        if insn.is_write:
            value = insn.imm if insn.reg < 0 else gprs[insn.reg] >> insn.shift
            for k in range(insn.size):
                if off + k < <uint64_t>e.view.len:
                    data[off + k] = (value >> (8 * k)) & 0xFF
        else:
            for k in range(insn.size):
                if off + k < <uint64_t>e.view.len:
                    value |= (<uint64_t>data[off + k]) << (8 * k)
            gprs[insn.reg] = merge_gpr(gprs[insn.reg], value, insn.size, insn.shift, bits)
            dirty |= 1U << HV_X64_REGISTER_CLASS_GENERAL
        p.rip = m.header.rip + <uint64_t>insn.length
        p.dirty |= dirty
        return True

    cdef int _python(self, int slot, hv_message *msg, uint64_t *hits) except -1:
        raw = PyBytes_FromStringAndSize(<char *>msg, HV_MESSAGE_SIZE)
        if self._slow(slot, raw):
            hits[0] += 1
            return R_CONTINUE
        return R_UNHANDLED
