# cython: language_level=3
"""The contract of mshv._native: C declarations (no numbers) and the state of its call objects."""

from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

# -- the kernel table (struct written at build time from build_ext/kernel_table.py) ----------
cdef extern from "mshv_kernel_table.h" nogil:
    struct mshv_kernel_table:
        int (*ioctl)(int fd, unsigned long request, void *arg) nogil

# -- who runs a VP (struct and steps written at build time from build_ext/vp_kick.py) -------
cdef extern from "mshv_run_owner.h" nogil:
    struct mshv_run_owner:
        int request
        long tid
    long mshv_run_enter(mshv_run_owner *o, long me)
    int mshv_run_leave_begin(mshv_run_owner *o)
    void mshv_run_wait_kickers(mshv_run_owner *o)

# -- linux/mshv.h, the header mshv._abi was compiled against -------------------------------
cdef extern from "<sys/ioctl.h>":
    pass

cdef extern from "linux/mshv.h" nogil:
    unsigned long MSHV_SET_GUEST_MEMORY
    int MSHV_SET_MEM_BIT_WRITABLE
    int MSHV_SET_MEM_BIT_EXECUTABLE
    int MSHV_SET_MEM_BIT_UNMAP
    int MSHV_HV_PAGE_SIZE

    unsigned long MSHV_ROOT_HVCALL
    unsigned long MSHV_RUN_VP

    struct mshv_run_vp:
        pass

    struct mshv_user_mem_region:
        uint64_t size
        uint64_t guest_pfn
        uint64_t userspace_addr
        uint8_t flags

    struct mshv_root_hvcall:
        uint16_t code
        uint16_t reps
        uint16_t in_sz
        uint16_t out_sz
        uint16_t status
        uint64_t in_ptr
        uint64_t out_ptr

# -- Hyper-V definitions (ioctl_defs/include/mshv_hvdefs.h) ----------------------------------
cdef extern from "mshv_hvdefs.h" nogil:
    uint16_t HVCALL_GET_VP_REGISTERS
    uint16_t HVCALL_SET_VP_REGISTERS
    int HV_GET_VP_REGISTERS_BATCH_MAX
    int HV_SET_VP_REGISTERS_BATCH_MAX

    struct hv_u128:
        uint64_t low_part
        uint64_t high_part

    struct hv_x64_segment_register:
        uint64_t base
        uint32_t limit
        uint16_t selector
        uint16_t attributes

    uint32_t HVMSG_X64_IO_PORT_INTERCEPT
    uint32_t HVMSG_UNMAPPED_GPA
    uint32_t HVMSG_GPA_INTERCEPT
    uint32_t HVMSG_UNACCEPTED_GPA
    int HV_MESSAGE_SIZE
    int HV_INTERCEPT_ACCESS_WRITE
    int HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK
    int HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT
    int HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK
    int HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT
    int HV_X64_IO_PORT_ACCESS_INFO_STRING_OP
    int HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX
    int HV_X64_MEMORY_ACCESS_INFO_GVA_VALID
    int HV_X64_REGISTER_CLASS_GENERAL
    int HV_X64_REGISTER_CLASS_IP
    int HV_X64_REGISTER_CLASS_FLAGS

    struct hv_message_header:
        uint32_t message_type

    struct hv_message:
        hv_message_header header
        uint64_t payload[1]

    struct hv_x64_intercept_message_header:
        uint32_t vp_index
        uint8_t instruction_length_cr8
        uint8_t intercept_access_type
        uint16_t execution_state
        hv_x64_segment_register cs_segment
        uint64_t rip
        uint64_t rflags

    struct hv_x64_io_port_intercept_message:
        hv_x64_intercept_message_header header
        uint16_t port_number
        uint8_t access_info
        uint64_t rax

    struct hv_x64_memory_intercept_message:
        hv_x64_intercept_message_header header
        uint32_t cache_type
        uint8_t instruction_byte_count
        uint8_t memory_access_info
        uint64_t guest_virtual_address
        uint64_t guest_physical_address
        uint8_t instruction_bytes[16]

    struct hv_vp_register_page:
        uint8_t isvalid
        uint32_t dirty
        uint64_t rax
        uint64_t rip
        uint64_t rflags

    struct hv_x64_table_register:
        uint16_t limit
        uint64_t base

    union hv_register_value:
        hv_u128 reg128
        uint64_t reg64
        hv_x64_segment_register segment
        hv_x64_table_register table

    struct hv_register_assoc:
        uint32_t name
        hv_register_value value

    struct hv_input_get_vp_registers:
        uint32_t vp_index
        uint32_t names[1]         # a flexible array in C

    struct hv_input_set_vp_registers:
        uint32_t vp_index
        hv_register_assoc elements[1]  # a flexible array in C


cdef class MemoryCalls:
    cdef mshv_kernel_table *_table
    cdef object _memory_type    # mshv.memory.GuestMemory
    cdef object _region_type    # mshv.partition.MemoryRegion
    cdef object _map_checked    # the pure-Python map (Partition._map_memory): raises the exact error
    cdef object _unmap_checked  # the pure-Python unmap (Partition._unmap_memory)
    cdef object _error          # _error(what, gpa, size, errno) -> the MshvError of a failed call

    cdef int _set_guest_memory(self, int fd, uint64_t size, uint64_t gpa, uint64_t hva, uint8_t flags,
                               int *err) noexcept


# A call of up to this many registers keeps its reg_entry array on the stack, and a read of
# up to this many is remembered (RegisterCalls._last_plan).
cdef enum:
    SMALL_PLAN = 64


# One register of a call, as RegisterCalls uses it: a spec (name, number, kind) in C.
cdef struct reg_entry:
    PyObject *name           # the lower-case name (borrowed: from a spec someone holds)
    uint32_t number          # its HV register number
    int kind                 # K_INT, K_WIDE, K_SEGMENT or K_TABLE


cdef class RegisterCalls:
    cdef mshv_kernel_table *_table
    cdef dict _spec          # mshv.registers._SPEC: {name or number: (name, number, kind)}
    cdef reg_entry *_entries  # one per key of _spec (names borrowed: _spec holds them)
    cdef dict _names         # _spec's name keys alone: {name: index into _entries}
    cdef uint32_t *_numbers  # _spec's number keys in an open-addressing table: index + 1 (0: empty)
    cdef size_t _mask        # table size - 1
    cdef int _shift          # 32 - log2(table size)
    cdef object _resolve     # mshv.registers._resolve(key) -> (name, number, kind), or raises
    cdef object _fields      # mshv.registers._fields(name, kind, value) -> checked ints, or raises
    cdef object _error       # mshv._regcalls._call_error(...) -> the MshvError of a failed call
    cdef object _segment     # mshv.registers.Segment
    cdef object _table_type  # mshv.registers.Table
    cdef tuple _last_keys    # the keys of the last read planned (exact str and int only), or None
    cdef list _last_keep     # ... the specs that hold the names of its plan (None: none needed)
    cdef reg_entry _last_plan[SMALL_PLAN]  # ... and its plan

    cdef int _index(self) except -1
    cdef object _entry_of(self, object key, reg_entry *e)
    cdef list _plan(self, list keys, reg_entry *plan, Py_ssize_t total)
    cdef list _plan_read(self, list keys, reg_entry *plan, Py_ssize_t total)
    cdef int _call(self, int fd, uint16_t code, int count, void *inp, size_t in_sz, void *out,
                   size_t out_sz, mshv_root_hvcall *args, int *err) noexcept
    cdef object _failed(self, int rc, int err, mshv_root_hvcall *args, uint16_t code, reg_entry *plan,
                        Py_ssize_t start, Py_ssize_t count, Py_ssize_t total, uint32_t vp_index)
    cdef dict _get(self, int fd, uint32_t vp_index, object names)
    cdef dict _read(self, int fd, uint32_t vp_index, reg_entry *plan, Py_ssize_t total)
    cdef bint _pack(self, hv_register_value *v, int kind, object value) except -1
    cdef int _fill(self, hv_register_assoc *e, reg_entry *reg, object value) except -1
    cdef dict _set(self, int fd, uint32_t vp_index, object values, object collect)
    cdef dict _write(self, int fd, uint32_t vp_index, reg_entry *plan, list items, object collect)


cdef class RunCalls:
    cdef mshv_kernel_table *_table
    cdef int _fd                      # the VP fd; -1 once closed
    cdef mshv_run_vp *_run            # the VP's struct mshv_run_vp (borrowed from _run_owner)
    cdef object _keep                 # the cffi object behind _run (kept alive)
    cdef int *_kick                   # the VP's interrupt request word (mshv._kick.RunState.word)
    cdef object _state                # the VP's mshv._kick.RunState
    cdef mshv_run_owner *_owner       # its C side (the request word is its first field)
    cdef hv_vp_register_page *_page   # the VP's register page (borrowed), NULL when none or closed
    cdef dict _slots                  # register name -> index: 0-15 GPRs, 16 rip, 17 rflags
    cdef object _io_type              # mshv.intercepts.IoPortIntercept
    cdef object _memory_type          # mshv.intercepts.MemoryIntercept
    cdef Py_ssize_t _io_at[12]        # slot offsets in an IoPortIntercept (_IO_SLOTS order)
    cdef Py_ssize_t _memory_at[11]    # slot offsets in a MemoryIntercept (_MEMORY_SLOTS order)
    cdef dict _mtypes                 # message type number -> its HvMessageType member
    cdef object _decode               # mshv.intercepts.decode: every other message type
    cdef RegisterCalls _regs          # Vp.get_registers/set_registers in C; None without them
    cdef uint32_t _index              # the VP's index

    cdef object _run_once(self)
    cdef object _intercept(self, object kind, Py_ssize_t *at, hv_message *msg,
                           hv_x64_intercept_message_header *h, object raw)
    cdef object _io(self, hv_message *msg, object raw)
    cdef object _memory(self, hv_message *msg, object raw)
