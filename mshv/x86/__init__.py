"""x86 instruction emulation: the one home for what a VMM on mshv must do in software.

- :mod:`mshv.x86.mmio`: complete a MemoryIntercept (:func:`~mshv.x86.mmio.emulate_mmio`).
- :mod:`mshv.x86.stringio`: complete an INS/OUTS (:func:`~mshv.x86.stringio.complete_string_io`).
- :mod:`mshv.x86.cpu`: code size, register-write rules and RFLAGS bits, written once.

This package imports nothing at load time, so low-level modules (intercept decoding)
can use :mod:`mshv.x86.cpu` without pulling in the emulators.
"""
