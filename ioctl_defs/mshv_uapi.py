"""cffi declarations of Linux 7.2 ``include/uapi/linux/mshv.h``, root and VTL parts.

The VTL driver's part (``mshv_vtl_*``, MSHV_CHECK_EXTENSION, MSHV_SINT_* ...) is
declared too: its numbers share the 0xB8 range, and ``mshv abi --collisions``
reports where they collide with the root driver's.
"""

from __future__ import annotations

# <sys/ioctl.h> first: the kernel's header uses _IOW/_IOR without including them.
INCLUDES = """
#include <sys/ioctl.h>
#include <linux/mshv.h>
"""

TYPES = """
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;

#define MSHV_IOCTL ...

#define MSHV_PT_BIT_LAPIC ...
#define MSHV_PT_BIT_X2APIC ...
#define MSHV_PT_BIT_GPA_SUPER_PAGES ...
#define MSHV_PT_BIT_CPU_AND_XSAVE_FEATURES ...
#define MSHV_PT_BIT_NESTED_VIRTUALIZATION ...
#define MSHV_PT_BIT_SMT_ENABLED_GUEST ...
#define MSHV_PT_BIT_COUNT ...
#define MSHV_PT_FLAGS_MASK ...
#define MSHV_PT_ISOLATION_NONE ...
#define MSHV_PT_ISOLATION_COUNT ...
#define MSHV_NUM_CPU_FEATURES_BANKS ...

struct mshv_create_partition {
    __u64 pt_flags;
    __u64 pt_isolation;
    ...;
};

struct mshv_create_partition_v2 {
    __u64 pt_flags;
    __u64 pt_isolation;
    __u16 pt_num_cpu_fbanks;
    __u8 pt_rsvd[6];
    __u64 pt_cpu_fbanks[2];
    __u64 pt_rsvd1[2];
    __u64 pt_disabled_xsave;
    ...;
};

#define MSHV_CREATE_PARTITION ...

struct mshv_create_vp {
    __u32 vp_index;
    ...;
};

#define MSHV_SET_MEM_BIT_WRITABLE ...
#define MSHV_SET_MEM_BIT_EXECUTABLE ...
#define MSHV_SET_MEM_BIT_UNMAP ...
#define MSHV_SET_MEM_BIT_COUNT ...
#define MSHV_SET_MEM_FLAGS_MASK ...
#define MSHV_HV_PAGE_SIZE ...

struct mshv_user_mem_region {
    __u64 size;
    __u64 guest_pfn;
    __u64 userspace_addr;
    __u8 flags;
    __u8 rsvd[7];
    ...;
};

#define MSHV_IRQFD_BIT_DEASSIGN ...
#define MSHV_IRQFD_BIT_RESAMPLE ...
#define MSHV_IRQFD_BIT_COUNT ...
#define MSHV_IRQFD_FLAGS_MASK ...

struct mshv_user_irqfd {
    __s32 fd;
    __s32 resamplefd;
    __u32 gsi;
    __u32 flags;
    ...;
};

#define MSHV_IOEVENTFD_BIT_DATAMATCH ...
#define MSHV_IOEVENTFD_BIT_PIO ...
#define MSHV_IOEVENTFD_BIT_DEASSIGN ...
#define MSHV_IOEVENTFD_BIT_COUNT ...
#define MSHV_IOEVENTFD_FLAGS_MASK ...

struct mshv_user_ioeventfd {
    __u64 datamatch;
    __u64 addr;
    __u32 len;
    __s32 fd;
    __u32 flags;
    __u8 rsvd[4];
    ...;
};

struct mshv_user_irq_entry {
    __u32 gsi;
    __u32 address_lo;
    __u32 address_hi;
    __u32 data;
    ...;
};

struct mshv_user_irq_table {
    __u32 nr;
    __u32 rsvd;
    struct mshv_user_irq_entry entries[];
    ...;
};

#define MSHV_GPAP_ACCESS_TYPE_ACCESSED ...
#define MSHV_GPAP_ACCESS_TYPE_DIRTY ...
#define MSHV_GPAP_ACCESS_TYPE_COUNT ...
#define MSHV_GPAP_ACCESS_OP_NOOP ...
#define MSHV_GPAP_ACCESS_OP_CLEAR ...
#define MSHV_GPAP_ACCESS_OP_SET ...
#define MSHV_GPAP_ACCESS_OP_COUNT ...

struct mshv_gpap_access_bitmap {
    __u8 access_type;
    __u8 access_op;
    __u8 rsvd[6];
    __u64 page_count;
    __u64 gpap_base;
    __u64 bitmap_ptr;
    ...;
};

struct mshv_root_hvcall {
    __u16 code;
    __u16 reps;
    __u16 in_sz;
    __u16 out_sz;
    __u16 status;
    __u8 rsvd[6];
    __u64 in_ptr;
    __u64 out_ptr;
    ...;
};

#define MSHV_INITIALIZE_PARTITION ...
#define MSHV_CREATE_VP ...
#define MSHV_SET_GUEST_MEMORY ...
#define MSHV_IRQFD ...
#define MSHV_IOEVENTFD ...
#define MSHV_SET_MSI_ROUTING ...
#define MSHV_GET_GPAP_ACCESS_BITMAP ...
#define MSHV_ROOT_HVCALL ...

#define MSHV_RUN_VP_BUF_SZ ...
#define MSHV_VP_MMAP_OFFSET_REGISTERS ...
#define MSHV_VP_MMAP_OFFSET_INTERCEPT_MESSAGE ...
#define MSHV_VP_MMAP_OFFSET_GHCB ...
#define MSHV_VP_MMAP_OFFSET_COUNT ...

struct mshv_run_vp {
    __u8 msg_buf[256];
    ...;
};

#define MSHV_VP_STATE_LAPIC ...
#define MSHV_VP_STATE_XSAVE ...
#define MSHV_VP_STATE_SIMP ...
#define MSHV_VP_STATE_SIEFP ...
#define MSHV_VP_STATE_SYNTHETIC_TIMERS ...
#define MSHV_VP_STATE_COUNT ...

struct mshv_get_set_vp_state {
    __u8 type;
    __u8 rsvd[3];
    __u32 buf_sz;
    __u64 buf_ptr;
    ...;
};

#define MSHV_RUN_VP ...
#define MSHV_GET_VP_STATE ...
#define MSHV_SET_VP_STATE ...

/* the mshv_vtl driver's part of the header */
#define MSHV_CAP_CORE_API_STABLE ...
#define MSHV_CAP_REGISTER_PAGE ...
#define MSHV_CAP_VTL_RETURN_ACTION ...
#define MSHV_CAP_DR6_SHARED ...
#define MSHV_MAX_RUN_MSG_SIZE ...

struct mshv_vp_registers {
    __u32 count;
    __u32 reserved;
    __u64 regs_ptr;
    ...;
};

struct mshv_vtl_set_eventfd {
    __s32 fd;
    __u32 flag;
    ...;
};

struct mshv_vtl_signal_event {
    __u32 connection_id;
    __u32 flag;
    ...;
};

struct mshv_vtl_sint_post_msg {
    __u64 message_type;
    __u32 connection_id;
    __u32 payload_size;
    __u64 payload_ptr;
    ...;
};

struct mshv_vtl_ram_disposition {
    __u64 start_pfn;
    __u64 last_pfn;
    ...;
};

struct mshv_vtl_set_poll_file {
    __u32 cpu;
    __u32 fd;
    ...;
};

struct mshv_vtl_hvcall_setup {
    __u64 bitmap_array_size;
    __u64 allow_bitmap_ptr;
    ...;
};

struct mshv_vtl_hvcall {
    __u64 control;
    __u64 input_size;
    __u64 input_ptr;
    __u64 status;
    __u64 output_size;
    __u64 output_ptr;
    ...;
};

struct mshv_sint_mask {
    __u8 mask;
    __u8 reserved[7];
    ...;
};

#define MSHV_CHECK_EXTENSION ...
#define MSHV_CREATE_VTL ...
#define MSHV_ADD_VTL0_MEMORY ...
#define MSHV_SET_POLL_FILE ...
#define MSHV_RETURN_TO_LOWER_VTL ...
#define MSHV_GET_VP_REGISTERS ...
#define MSHV_SET_VP_REGISTERS ...
#define MSHV_SINT_SIGNAL_EVENT ...
#define MSHV_SINT_POST_MESSAGE ...
#define MSHV_SINT_SET_EVENTFD ...
#define MSHV_SINT_PAUSE_MESSAGE_STREAM ...
#define MSHV_HVCALL_SETUP ...
#define MSHV_HVCALL ...
"""

FUNCTIONS = ""

CUSTOMIZATIONS = ""
