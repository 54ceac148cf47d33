# The cffi API-mode module built by build_ext/abi_builder.py; its members are C declarations.
from typing import Any

ffi: Any
lib: Any
