# cython: language_level=3
"""The C twin of mshv/x86/cpu.py for the Cython run loop: the same rules, inline, no GIL.

Change a rule in both files; tests/test_runloop.py runs both loops over the same guests.
"""

from libc.stdint cimport uint16_t, uint64_t


cdef extern from "mshv_hvdefs.h" nogil:
    int HV_X64_EXECUTION_STATE_CR0_PE
    int HV_X64_EXECUTION_STATE_EFER_LMA
    int HV_X64_SEGMENT_ATTR_L_MASK
    int HV_X64_SEGMENT_ATTR_DB_MASK


cdef inline int code_bits(uint16_t execution_state, uint16_t cs_attributes) noexcept nogil:
    """cpu.code_bits: 64 (EFER.LMA and CS.L), 32 (CR0.PE and CS.D) or 16."""
    if (execution_state & HV_X64_EXECUTION_STATE_EFER_LMA) and (cs_attributes & HV_X64_SEGMENT_ATTR_L_MASK):
        return 64
    if (execution_state & HV_X64_EXECUTION_STATE_CR0_PE) and (cs_attributes & HV_X64_SEGMENT_ATTR_DB_MASK):
        return 32
    return 16


cdef inline uint64_t merge_gpr(uint64_t old, uint64_t value, int size, int shift, int bits) noexcept nogil:
    """cpu.merge_gpr: 8/16-bit writes keep the rest, a 32-bit one zero-extends in 64-bit code."""
    cdef uint64_t field
    if size == 8:
        return value
    if size == 4 and bits == 64:
        return value & 0xFFFFFFFFULL
    field = ((1ULL << (8 * size)) - 1) << shift
    return (old & ~field) | ((value << shift) & field)


cdef inline uint64_t in_rax(uint64_t rax, int size, uint64_t value) noexcept nogil:
    """cpu.in_rax: IN AL/AX keeps RAX's other bits, IN EAX zero-extends (complete_fast_pio_in)."""
    cdef uint64_t mask
    if size == 4:
        return value & 0xFFFFFFFFULL
    mask = 0xFF if size == 1 else 0xFFFF
    return (rax & ~mask) | (value & mask)
