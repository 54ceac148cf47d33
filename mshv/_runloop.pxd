# cython: language_level=3
"""The contract of the Cython run loop: C declarations (no numbers) and the engine's state."""

from cpython.buffer cimport Py_buffer
from cpython.pythread cimport PyThread_type_lock
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# -- the kernel table (struct written at build time from build_ext/kernel_table.py) ----------
cdef extern from "mshv_kernel_table.h" nogil:
    struct mshv_kernel_table:
        int (*ioctl)(int fd, unsigned long request, void *arg) nogil

# -- linux/mshv.h, the header mshv._abi was compiled against -------------------------------
cdef extern from "<sys/ioctl.h>":
    pass

cdef extern from "linux/mshv.h" nogil:
    unsigned long MSHV_RUN_VP
    struct mshv_run_vp:
        pass

# -- Hyper-V definitions (ioctl_defs/include/mshv_hvdefs.h) ----------------------------------
cdef extern from "mshv_hvdefs.h" nogil:
    uint32_t HVMSG_X64_IO_PORT_INTERCEPT
    uint32_t HVMSG_X64_HALT
    uint32_t HVMSG_UNMAPPED_GPA
    uint32_t HVMSG_GPA_INTERCEPT
    int HV_INTERCEPT_ACCESS_WRITE
    int HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK
    int HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT
    int HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK
    int HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
    int HV_X64_IO_PORT_ACCESS_INFO_STRING_OP
    int HV_X64_EXECUTION_STATE_CR0_PE
    int HV_X64_EXECUTION_STATE_EFER_LMA
    int HV_X64_SEGMENT_ATTR_L_MASK
    int HV_X64_SEGMENT_ATTR_DB_MASK
    int HV_X64_REGISTER_CLASS_GENERAL
    int HV_X64_REGISTER_CLASS_IP
    int HV_MESSAGE_SIZE

    struct hv_message_header:
        uint32_t message_type

    struct hv_message:
        hv_message_header header
        uint64_t payload[1]

    struct hv_x64_segment_register:
        uint16_t attributes

    struct hv_x64_intercept_message_header:
        uint8_t instruction_length_cr8
        uint8_t intercept_access_type
        uint16_t execution_state
        hv_x64_segment_register cs_segment
        uint64_t rip

    struct hv_x64_io_port_intercept_message:
        hv_x64_intercept_message_header header
        uint16_t port_number
        uint8_t access_info
        uint64_t rax

    struct hv_x64_memory_intercept_message:
        hv_x64_intercept_message_header header
        uint8_t instruction_byte_count
        uint64_t guest_physical_address
        uint8_t instruction_bytes[16]

    struct hv_vp_register_page:
        uint8_t isvalid
        uint32_t dirty
        uint64_t rax
        uint64_t rip


# -- the engine's own C state ----------------------------------------------------------------
cdef enum:
    MAX_PORT_ENTRIES = 64
    MAX_MMIO_ENTRIES = 32
    MAX_STOP_TYPES = 32
    MAX_STOP_PORTS = 64

cdef enum HandlerKind:
    KIND_BUFFER = 1     # port range backed by an output bytearray and an input queue
    KIND_COUNTER = 2    # port that counts: OUT discarded, IN reads 0
    KIND_BYTES = 3      # MMIO range backed by a bytearray
    KIND_PYTHON = 4     # a Python callback (slow path)

cdef enum Reason:     # what _dispatch and _loop return (index into _REASONS)
    R_CONTINUE = 0
    R_HALT
    R_MAX_EXITS
    R_MESSAGE_TYPE
    R_PORT
    R_DEADLINE
    R_STOPPED
    R_UNHANDLED
    R_SIGNAL
    # what the loop's GIL-free part hands to the part with the GIL (never returned by run())
    N_DISPATCH = 100    # an exit that needs Python: _dispatch serves it
    N_REQUEST           # the interrupt request word is set: take_request()
    N_EINTR             # RUN_VP was interrupted by a signal: run the Python handlers
    N_ERROR             # RUN_VP failed (errno in _err)

cdef struct PortEntry:
    uint16_t first
    uint16_t last
    int kind
    int slot            # the handle's id, shared with mshv.runloop
    uint64_t hits
    PyObject *output    # KIND_BUFFER: the bytearray OUT appends to (a reference kept in _objects)
    unsigned char *inq  # KIND_BUFFER: input queue (malloc'd), read from inq_pos
    size_t inq_len
    size_t inq_pos

cdef struct MmioEntry:
    uint64_t gpa
    uint64_t size
    int kind
    int slot
    uint64_t hits
    Py_buffer view      # KIND_BYTES: the bytearray, held (it cannot be resized while registered)
    bint has_view

cdef struct MovInsn:    # a simple MOV between a GPR or an immediate and memory
    int is_write
    int size            # bytes: 1, 2, 4, 8
    int reg             # 0-15, or -1 for an immediate source
    int shift           # 8 for AH/CH/DH/BH
    uint64_t imm
    int length


cdef class NativeEngine:
    cdef int _fd
    cdef mshv_kernel_table *_table
    cdef hv_vp_register_page *_page
    cdef mshv_run_vp *_run
    cdef PortEntry _ports[MAX_PORT_ENTRIES]
    cdef int _nports
    cdef int _last_port         # index of the entry that matched last (a one-entry cache)
    cdef MmioEntry _mmio[MAX_MMIO_ENTRIES]
    cdef int _nmmio
    cdef uint32_t _stop_types[MAX_STOP_TYPES]
    cdef int _nstop_types
    cdef uint16_t _stop_ports[MAX_STOP_PORTS]
    cdef int _nstop_ports
    cdef bint _stop_on_halt
    cdef int *_kick             # the VP's interrupt request word (mshv._kick.RunState.word)
    cdef bint _running
    cdef bint _closed
    cdef readonly uint64_t exits
    cdef dict _objects          # slot -> the Python object its C entry points to (kept alive)
    cdef object _slow           # slow(slot, raw) -> bool: Python handlers; set for the time of run()
    cdef object _take_request   # take_request() -> bool: the VP's RunState takes a request
    cdef object _complete       # Vp.complete_registers(values): when the register page is not valid
    cdef PyThread_type_lock _inq_lock  # guards the ports' input queues: the loop reads them without the GIL
    cdef int _err               # errno of a failed RUN_VP (N_ERROR)

    cdef void _release(self) noexcept
    cdef PortEntry *_port_slot(self, int slot) except NULL
    cdef int _find_port(self, uint16_t port) noexcept nogil
    cdef int _find_mmio(self, uint64_t gpa) noexcept nogil
    cdef int _loop(self, int64_t max_exits, double deadline) except -1
    cdef int _fast(self, int64_t max_exits, double deadline, int64_t *n) noexcept nogil
    cdef int _dispatch_nogil(self) noexcept nogil
    cdef bint _past(self, double deadline) noexcept nogil
    cdef int _dispatch(self) except -1
    cdef int _io(self, hv_message *msg) except -1
    cdef int _memory(self, hv_message *msg) except -1
    cdef void _buffer_in(self, PortEntry *e, int size, uint64_t *value) noexcept nogil
    cdef int _buffer_out(self, PortEntry *e, int size, uint64_t value) except -1
    cdef int _complete_io(self, uint64_t next_rip, bint set_rax, uint64_t rax) except -1
    cdef bint _mmio_bytes(self, MmioEntry *e, hv_message *msg) noexcept nogil
    cdef void _page_io(self, uint64_t next_rip, bint set_rax, uint64_t rax) noexcept nogil
    cdef int _python(self, int slot, hv_message *msg, uint64_t *hits) except -1
