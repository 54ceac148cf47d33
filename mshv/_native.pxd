# cython: language_level=3
"""The contract of mshv._native: C declarations (no numbers) and the state of its call objects."""

from libc.stdint cimport uint8_t, uint64_t

# -- the kernel table (struct written at build time from build_ext/kernel_table.py) ----------
cdef extern from "mshv_kernel_table.h" nogil:
    struct mshv_kernel_table:
        int (*ioctl)(int fd, unsigned long request, void *arg) nogil

# -- linux/mshv.h, the header mshv._abi was compiled against -------------------------------
cdef extern from "<sys/ioctl.h>":
    pass

cdef extern from "linux/mshv.h" nogil:
    unsigned long MSHV_SET_GUEST_MEMORY
    int MSHV_SET_MEM_BIT_WRITABLE
    int MSHV_SET_MEM_BIT_EXECUTABLE
    int MSHV_SET_MEM_BIT_UNMAP
    int MSHV_HV_PAGE_SIZE

    struct mshv_user_mem_region:
        uint64_t size
        uint64_t guest_pfn
        uint64_t userspace_addr
        uint8_t flags


cdef class MemoryCalls:
    cdef mshv_kernel_table *_table
    cdef object _memory_type    # mshv.memory.GuestMemory
    cdef object _region_type    # mshv.partition.MemoryRegion
    cdef object _map_checked    # the pure-Python map (Partition._map_memory): raises the exact error
    cdef object _unmap_checked  # the pure-Python unmap (Partition._unmap_memory)
    cdef object _error          # _error(what, gpa, size, errno) -> the MshvError of a failed call

    cdef int _set_guest_memory(self, int fd, uint64_t size, uint64_t gpa, uint64_t hva, uint8_t flags,
                               int *err) noexcept
