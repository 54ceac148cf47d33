"""The ABI as facts: cffi declarations of linux/mshv.h, the Hyper-V definitions, the KVM requests.

One module per C header, each defining the four strings that
``build_ext.abi_builder`` joins (the pyca/cryptography layout):

* ``INCLUDES``: C text placed first in the generated source (``#include`` lines).
* ``TYPES``: cffi declarations of types and constants. Every number is written
  as ``#define NAME ...`` so the C compiler supplies it; structs end in ``...;``
  so the compiler supplies their layout.
* ``FUNCTIONS``: cffi declarations of functions.
* ``CUSTOMIZATIONS``: C text (small static helpers) appended to the source.

``MODULES`` is the order in which they are joined.
"""

from __future__ import annotations

MODULES = ("mshv_uapi", "hvdefs", "b8_neighbours", "kvm_requests")

INCLUDE_DIR = "include"
BUNDLED_UAPI_DIR = "include/bundled"
FALLBACK_DIR = "include/fallback"  # searched after the system (-idirafter)
