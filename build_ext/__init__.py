"""How python-mshv compiles: header choice, the cffi module, the emulator library."""
