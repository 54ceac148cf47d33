"""cffi declarations of the other driver on ioctl type 0xB8: Marvell CN10K DPI.

Its two ioctls share command numbers 1 and 2 with MSHV_CREATE_VP and
MSHV_SET_GUEST_MEMORY (different sizes, so different 32-bit numbers).
"""

from __future__ import annotations

INCLUDES = """
#include <misc/mrvl_cn10k_dpi.h>
"""

TYPES = """
#define DPI_MAX_ENGINES ...
#define DPI_MAGIC_NUM ...
#define DPI_MPS_MRRS_CFG ...
#define DPI_ENGINE_CFG ...

struct dpi_mps_mrrs_cfg {
    __u16 max_read_req_sz;
    __u16 max_payload_sz;
    __u16 port;
    __u16 reserved;
    ...;
};

struct dpi_engine_cfg {
    __u64 fifo_mask;
    __u16 molr[6];
    __u16 update_molr;
    __u16 reserved;
    ...;
};
"""

FUNCTIONS = ""

CUSTOMIZATIONS = ""
