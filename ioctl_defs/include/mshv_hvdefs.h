/* SPDX-License-Identifier: MIT */
/*
 * mshv_hvdefs.h - the Microsoft Hypervisor definitions a /dev/mshv client
 * needs on x86_64: status codes, hypercall codes and their input/output
 * blocks, register names and value layouts, hv_message and the intercept
 * payloads it carries, the VP register page and the VP state blobs.
 *
 * Facts only. Names and numbers follow the Linux kernel's include/hyperv/
 * headers (hvgdk_mini.h, hvgdk.h, hvhdk.h, hvhdk_mini.h) and the uapi
 * variants of those headers that Microsoft's mshv tree ships; the layout and
 * wording here are this project's own. Every bitfield of those headers is a
 * whole integer here, with a _SHIFT/_MASK (or single-bit) #define per field,
 * so that cffi and the emulator see exactly the same bytes.
 *
 * Include after <linux/types.h> and <linux/mshv.h>.
 */
#ifndef MSHV_HVDEFS_H
#define MSHV_HVDEFS_H

#include <stddef.h>
#include <linux/types.h>

/* ------------------------------------------------------------------------
 * Hypercall status (low 16 bits of a hypercall result)
 * ------------------------------------------------------------------------ */
#define HV_STATUS_SUCCESS				0x0
#define HV_STATUS_INVALID_HYPERCALL_CODE		0x2
#define HV_STATUS_INVALID_HYPERCALL_INPUT		0x3
#define HV_STATUS_INVALID_ALIGNMENT			0x4
#define HV_STATUS_INVALID_PARAMETER			0x5
#define HV_STATUS_ACCESS_DENIED				0x6
#define HV_STATUS_INVALID_PARTITION_STATE		0x7
#define HV_STATUS_OPERATION_DENIED			0x8
#define HV_STATUS_UNKNOWN_PROPERTY			0x9
#define HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE		0xA
#define HV_STATUS_INSUFFICIENT_MEMORY			0xB
#define HV_STATUS_INVALID_PARTITION_ID			0xD
#define HV_STATUS_INVALID_VP_INDEX			0xE
#define HV_STATUS_NOT_FOUND				0x10
#define HV_STATUS_INVALID_PORT_ID			0x11
#define HV_STATUS_INVALID_CONNECTION_ID			0x12
#define HV_STATUS_INSUFFICIENT_BUFFERS			0x13
#define HV_STATUS_NOT_ACKNOWLEDGED			0x14
#define HV_STATUS_INVALID_VP_STATE			0x15
#define HV_STATUS_NO_RESOURCES				0x1D
#define HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED	0x20
#define HV_STATUS_INVALID_LP_INDEX			0x41
#define HV_STATUS_INVALID_REGISTER_VALUE		0x50
#define HV_STATUS_OPERATION_FAILED			0x71
#define HV_STATUS_INSUFFICIENT_ROOT_MEMORY		0x73
#define HV_STATUS_INSUFFICIENT_CONTIGUOUS_MEMORY	0x75
#define HV_STATUS_TIME_OUT				0x78
#define HV_STATUS_CALL_PENDING				0x79
#define HV_STATUS_INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY	0x83
#define HV_STATUS_VTL_ALREADY_ENABLED			0x86

/* ------------------------------------------------------------------------
 * Pages, partitions, VPs
 * ------------------------------------------------------------------------ */
#define HV_HYP_PAGE_SHIFT		12
#define HV_HYP_PAGE_SIZE		(1UL << HV_HYP_PAGE_SHIFT)
#define HV_HYP_PAGE_MASK		(~(HV_HYP_PAGE_SIZE - 1))
#define HV_HYP_LARGE_PAGE_SHIFT		21

#define HV_PARTITION_ID_INVALID		((__u64)0)
#define HV_PARTITION_ID_SELF		((__u64)-1)
#define HV_VP_INDEX_SELF		((__u32)-2)
#define HV_ANY_VP			((__u32)-1)

/* union hv_input_vtl, kept as one byte */
#define HV_NORMAL_VTL				0
#define HV_INPUT_VTL_TARGET_VTL_MASK		0x0F
#define HV_INPUT_VTL_USE_TARGET_VTL		0x10

/* ------------------------------------------------------------------------
 * Hypercall codes
 * ------------------------------------------------------------------------ */
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE		0x0002
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST		0x0003
#define HVCALL_GET_LOGICAL_PROCESSOR_RUN_TIME		0x0004
#define HVCALL_NOTIFY_LONG_SPIN_WAIT			0x0008
#define HVCALL_SEND_IPI					0x000b
#define HVCALL_ENABLE_VP_VTL				0x000f
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX		0x0013
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX		0x0014
#define HVCALL_SEND_IPI_EX				0x0015
#define HVCALL_CREATE_PARTITION				0x0040
#define HVCALL_INITIALIZE_PARTITION			0x0041
#define HVCALL_FINALIZE_PARTITION			0x0042
#define HVCALL_DELETE_PARTITION				0x0043
#define HVCALL_GET_PARTITION_PROPERTY			0x0044
#define HVCALL_SET_PARTITION_PROPERTY			0x0045
#define HVCALL_GET_PARTITION_ID				0x0046
#define HVCALL_DEPOSIT_MEMORY				0x0048
#define HVCALL_WITHDRAW_MEMORY				0x0049
#define HVCALL_MAP_GPA_PAGES				0x004b
#define HVCALL_UNMAP_GPA_PAGES				0x004c
#define HVCALL_INSTALL_INTERCEPT			0x004d
#define HVCALL_CREATE_VP				0x004e
#define HVCALL_DELETE_VP				0x004f
#define HVCALL_GET_VP_REGISTERS				0x0050
#define HVCALL_SET_VP_REGISTERS				0x0051
#define HVCALL_TRANSLATE_VIRTUAL_ADDRESS		0x0052
#define HVCALL_READ_GPA					0x0053
#define HVCALL_WRITE_GPA				0x0054
#define HVCALL_CLEAR_VIRTUAL_INTERRUPT			0x0056
#define HVCALL_DELETE_PORT				0x0058
#define HVCALL_DISCONNECT_PORT				0x005b
#define HVCALL_POST_MESSAGE				0x005c
#define HVCALL_SIGNAL_EVENT				0x005d
#define HVCALL_POST_DEBUG_DATA				0x0069
#define HVCALL_RETRIEVE_DEBUG_DATA			0x006a
#define HVCALL_RESET_DEBUG_SESSION			0x006b
#define HVCALL_MAP_STATS_PAGE				0x006c
#define HVCALL_UNMAP_STATS_PAGE				0x006d
#define HVCALL_SET_SYSTEM_PROPERTY			0x006f
#define HVCALL_ADD_LOGICAL_PROCESSOR			0x0076
#define HVCALL_GET_SYSTEM_PROPERTY			0x007b
#define HVCALL_MAP_DEVICE_INTERRUPT			0x007c
#define HVCALL_UNMAP_DEVICE_INTERRUPT			0x007d
#define HVCALL_RETARGET_INTERRUPT			0x007e
#define HVCALL_NOTIFY_PARTITION_EVENT			0x0087
#define HVCALL_NOTIFY_PORT_RING_EMPTY			0x008b
#define HVCALL_REGISTER_INTERCEPT_RESULT		0x0091
#define HVCALL_ASSERT_VIRTUAL_INTERRUPT			0x0094
#define HVCALL_CREATE_PORT				0x0095
#define HVCALL_CONNECT_PORT				0x0096
#define HVCALL_START_VP					0x0099
#define HVCALL_GET_VP_ID_FROM_APIC_ID			0x009a
#define HVCALL_FLUSH_GUEST_PHYSICAL_ADDRESS_SPACE	0x00af
#define HVCALL_FLUSH_GUEST_PHYSICAL_ADDRESS_LIST	0x00b0
#define HVCALL_SIGNAL_EVENT_DIRECT			0x00c0
#define HVCALL_POST_MESSAGE_DIRECT			0x00c1
#define HVCALL_DISPATCH_VP				0x00c2
#define HVCALL_GET_GPA_PAGES_ACCESS_STATES		0x00c9
#define HVCALL_ACQUIRE_SPARSE_SPA_PAGE_HOST_ACCESS	0x00d7
#define HVCALL_RELEASE_SPARSE_SPA_PAGE_HOST_ACCESS	0x00d8
#define HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY	0x00db
#define HVCALL_MAP_VP_STATE_PAGE			0x00e1
#define HVCALL_UNMAP_VP_STATE_PAGE			0x00e2
#define HVCALL_GET_VP_STATE				0x00e3
#define HVCALL_SET_VP_STATE				0x00e4
#define HVCALL_IMPORT_ISOLATED_PAGES			0x00ef
#define HVCALL_COMPLETE_ISOLATED_IMPORT			0x00f1
#define HVCALL_ISSUE_SNP_PSP_GUEST_REQUEST		0x00f2
#define HVCALL_GET_VP_CPUID_VALUES			0x00f4
#define HVCALL_GET_PARTITION_PROPERTY_EX		0x0101
#define HVCALL_MMIO_READ				0x0106
#define HVCALL_MMIO_WRITE				0x0107

/* Rep-hypercall limits that follow from a one-page input block. */
#define HV_GET_VP_REGISTERS_BATCH_MAX			256
#define HV_SET_VP_REGISTERS_BATCH_MAX			127

/* ------------------------------------------------------------------------
 * Partition properties (HVCALL_GET/SET_PARTITION_PROPERTY[_EX])
 * ------------------------------------------------------------------------ */
#define HV_PARTITION_PROPERTY_PRIVILEGE_FLAGS				0x00010000
#define HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES			0x00010001
#define HV_PARTITION_PROPERTY_SUSPEND					0x00020000
#define HV_PARTITION_PROPERTY_CPU_RESERVE				0x00020001
#define HV_PARTITION_PROPERTY_CPU_CAP					0x00020002
#define HV_PARTITION_PROPERTY_CPU_WEIGHT				0x00020003
#define HV_PARTITION_PROPERTY_CPU_GROUP_ID				0x00020004
#define HV_PARTITION_PROPERTY_INTEGRATED_SCHEDULER_ENABLED		0x00020005
#define HV_PARTITION_PROPERTY_TIME_FREEZE				0x00030003
#define HV_PARTITION_PROPERTY_REFERENCE_TIME				0x00030005
#define HV_PARTITION_PROPERTY_DEBUG_CHANNEL_ID				0x00040000
#define HV_PARTITION_PROPERTY_VIRTUAL_TLB_PAGE_COUNT			0x00050000
#define HV_PARTITION_PROPERTY_VSM_CONFIG				0x00050001
#define HV_PARTITION_PROPERTY_ZERO_MEMORY_ON_RESET			0x00050002
#define HV_PARTITION_PROPERTY_PROCESSORS_PER_SOCKET			0x00050003
#define HV_PARTITION_PROPERTY_NESTED_TLB_SIZE				0x00050004
#define HV_PARTITION_PROPERTY_GPA_PAGE_ACCESS_TRACKING			0x00050005
#define HV_PARTITION_PROPERTY_VSM_PERMISSIONS_DIRTY_SINCE_LAST_QUERY	0x00050006
#define HV_PARTITION_PROPERTY_SGX_LAUNCH_CONTROL_CONFIG			0x00050007
#define HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL0		0x00050008
#define HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL1		0x00050009
#define HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL2		0x0005000a
#define HV_PARTITION_PROPERTY_DEFAULT_SGX_LAUNCH_CONTROL3		0x0005000b
#define HV_PARTITION_PROPERTY_ISOLATION_STATE				0x0005000c
#define HV_PARTITION_PROPERTY_ISOLATION_CONTROL				0x0005000d
#define HV_PARTITION_PROPERTY_ALLOCATION_ID				0x0005000e
#define HV_PARTITION_PROPERTY_MONITORING_ID				0x0005000f
#define HV_PARTITION_PROPERTY_IMPLEMENTED_PHYSICAL_ADDRESS_BITS		0x00050010
#define HV_PARTITION_PROPERTY_NON_ARCHITECTURAL_CORE_SHARING		0x00050011
#define HV_PARTITION_PROPERTY_HYPERCALL_DOORBELL_PAGE			0x00050012
#define HV_PARTITION_PROPERTY_ISOLATION_POLICY				0x00050014
#define HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION			0x00050017
#define HV_PARTITION_PROPERTY_SEV_VMGEXIT_OFFLOADS			0x00050022
#define HV_PARTITION_PROPERTY_PROCESSOR_VENDOR				0x00060000
#define HV_PARTITION_PROPERTY_PROCESSOR_FEATURES_DEPRECATED		0x00060001
#define HV_PARTITION_PROPERTY_PROCESSOR_XSAVE_FEATURES			0x00060002
#define HV_PARTITION_PROPERTY_PROCESSOR_CL_FLUSH_SIZE			0x00060003
#define HV_PARTITION_PROPERTY_ENLIGHTENMENT_MODIFICATIONS		0x00060004
#define HV_PARTITION_PROPERTY_COMPATIBILITY_VERSION			0x00060005
#define HV_PARTITION_PROPERTY_PHYSICAL_ADDRESS_WIDTH			0x00060006
#define HV_PARTITION_PROPERTY_XSAVE_STATES				0x00060007
#define HV_PARTITION_PROPERTY_MAX_XSAVE_DATA_SIZE			0x00060008
#define HV_PARTITION_PROPERTY_PROCESSOR_CLOCK_FREQUENCY			0x00060009
#define HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0			0x0006000a
#define HV_PARTITION_PROPERTY_PROCESSOR_FEATURES1			0x0006000b
#define HV_PARTITION_PROPERTY_GUEST_OS_ID				0x00070000
#define HV_PARTITION_PROPERTY_PROCESSOR_VIRTUALIZATION_FEATURES		0x00080000
#define HV_PARTITION_PROPERTY_VMM_CAPABILITIES				0x00090007
/* Only in rust-vmm/mshv's hv-headers/hvhdk_mini.h (read by its
 * make_default_synthetic_features_mask); not in the Linux headers or TLFS. */
#define HV_PARTITION_PROPERTY_ASSIGNABLE_SYNTHETIC_PROC_FEATURES	0x00090009

/* Values of HV_PARTITION_PROPERTY_UNIMPLEMENTED_MSR_ACTION */
#define HV_UNIMPLEMENTED_MSR_ACTION_FAULT		0
#define HV_UNIMPLEMENTED_MSR_ACTION_IGNORE_WRITE_READ_ZERO	1

/* Bank sizes of the feature properties */
#define HV_PARTITION_PROCESSOR_FEATURES_BANKS		2
#define HV_PARTITION_SYNTHETIC_PROCESSOR_FEATURES_BANKS	1
#define HV_PARTITION_VMM_CAPABILITIES_BANK_COUNT	1

/*
 * Bits of HV_PARTITION_PROPERTY_SYNTHETIC_PROC_FEATURES bank 0
 * (union hv_partition_synthetic_processor_features in the kernel's hvhdk.h):
 * the ones that grant a guest its synthetic registers.
 */
#define HV_SYNTHETIC_PROC_FEATURE_HYPERVISOR_PRESENT_BIT		0
#define HV_SYNTHETIC_PROC_FEATURE_HV1_BIT				1
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_RUN_TIME_REG_BIT		2
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_COUNTER_BIT	3
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNIC_REGS_BIT			4
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_SYNTHETIC_TIMER_REGS_BIT	5
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_INTR_CTRL_REGS_BIT		6
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_HYPERCALL_REGS_BIT		7
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_INDEX_BIT			8
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_PARTITION_REFERENCE_TSC_BIT	9
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_GUEST_IDLE_REG_BIT		10
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_FREQUENCY_REGS_BIT		11
#define HV_SYNTHETIC_PROC_FEATURE_DIRECT_SYNTHETIC_TIMERS_BIT		22

/*
 * The other bits the union names on x86_64 (the hvhdk.h copy in rust-vmm/mshv's
 * hv-headers); bits named nowhere are reserved.
 */
#define HV_SYNTHETIC_PROC_FEATURE_ENABLE_EXTENDED_GVA_RANGES_FOR_FLUSH_VA_LIST_BIT	15
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_VSM_BIT	16
#define HV_SYNTHETIC_PROC_FEATURE_FAST_HYPERCALL_OUTPUT_BIT	18
#define HV_SYNTHETIC_PROC_FEATURE_START_VIRTUAL_PROCESSOR_BIT	20
#define HV_SYNTHETIC_PROC_FEATURE_EXTENDED_PROCESSOR_MASKS_BIT	24
#define HV_SYNTHETIC_PROC_FEATURE_TB_FLUSH_HYPERCALLS_BIT	25
#define HV_SYNTHETIC_PROC_FEATURE_SYNTHETIC_CLUSTER_IPI_BIT	26
#define HV_SYNTHETIC_PROC_FEATURE_NOTIFY_LONG_SPIN_WAIT_BIT	27
#define HV_SYNTHETIC_PROC_FEATURE_QUERY_NUMA_DISTANCE_BIT	28
#define HV_SYNTHETIC_PROC_FEATURE_SIGNAL_EVENTS_BIT	29
#define HV_SYNTHETIC_PROC_FEATURE_RETARGET_DEVICE_INTERRUPT_BIT	30
#define HV_SYNTHETIC_PROC_FEATURE_RESTORE_TIME_BIT	31
#define HV_SYNTHETIC_PROC_FEATURE_ENLIGHTENED_VMCS_BIT	32
#define HV_SYNTHETIC_PROC_FEATURE_NESTED_DEBUG_CTL_BIT	33
#define HV_SYNTHETIC_PROC_FEATURE_SYNTHETIC_TIME_UNHALTED_TIMER_BIT	34
#define HV_SYNTHETIC_PROC_FEATURE_IDLE_SPEC_CTRL_BIT	35
#define HV_SYNTHETIC_PROC_FEATURE_WAKE_VPS_BIT	37
#define HV_SYNTHETIC_PROC_FEATURE_ACCESS_VP_REGS_BIT	38
#define HV_SYNTHETIC_PROC_FEATURE_MANAGEMENT_VTL_SYNIC_SUPPORT_BIT	40
#define HV_SYNTHETIC_PROC_FEATURE_PROXY_INTERRUPT_DOORBELL_SUPPORT_BIT	41
#define HV_SYNTHETIC_PROC_FEATURE_MMIO_HYPERCALLS_BIT	43
#define HV_SYNTHETIC_PROC_FEATURE_MAP_PARTITION_EVENT_LOG_BUFFER_BIT	45
#define HV_SYNTHETIC_PROC_FEATURE_LOWER_VTL_GUEST_REQUEST_SUPPORT_BIT	46
#define HV_SYNTHETIC_PROC_FEATURE_PROXY_INTERRUPT_REDIRECT_SUPPORT_BIT	47
#define HV_SYNTHETIC_PROC_FEATURE_INSTALL_INTERCEPT_BIT	48
#define HV_SYNTHETIC_PROC_FEATURE_PIN_GPA_PAGE_RANGE_SUPPORT_BIT	50
#define HV_SYNTHETIC_PROC_FEATURE_HEAT_HINT_BENEFICIAL_SUPPORT_BIT	51
#define HV_SYNTHETIC_PROC_FEATURE_RING_BUFFER_MESSAGE_PORT_SUPPORT_BIT	52
#define HV_SYNTHETIC_PROC_FEATURE_FLUSH_GUEST_PHYSICAL_ADDRESS_SPACE_BIT	53

/* ------------------------------------------------------------------------
 * Register names (HVCALL_GET/SET_VP_REGISTERS), x86_64
 * ------------------------------------------------------------------------ */
/* Suspend and state registers */
#define HV_REGISTER_EXPLICIT_SUSPEND			0x00000000
#define HV_REGISTER_INTERCEPT_SUSPEND			0x00000001
#define HV_REGISTER_INSTRUCTION_EMULATION_HINTS		0x00000002
#define HV_REGISTER_DISPATCH_SUSPEND			0x00000003
#define HV_REGISTER_INTERNAL_ACTIVITY_STATE		0x00000004

/* Hypervisor version and feature leaves (128-bit values) */
#define HV_REGISTER_HYPERVISOR_VERSION			0x00000100
#define HV_REGISTER_PRIVILEGES_AND_FEATURES_INFO	0x00000200
#define HV_REGISTER_FEATURES_INFO			0x00000201
#define HV_REGISTER_IMPLEMENTATION_LIMITS_INFO		0x00000202
#define HV_REGISTER_HARDWARE_FEATURES_INFO		0x00000203
#define HV_REGISTER_CPU_MANAGEMENT_FEATURES_INFO	0x00000204
#define HV_REGISTER_SVM_FEATURES_INFO			0x00000205
#define HV_REGISTER_SKIP_LEVEL_FEATURES_INFO		0x00000206
#define HV_REGISTER_NESTED_VIRT_FEATURES_INFO		0x00000207
#define HV_REGISTER_IPT_FEATURES_INFO			0x00000208

/* Guest crash registers */
#define HV_REGISTER_GUEST_CRASH_P0			0x00000210
#define HV_REGISTER_GUEST_CRASH_P1			0x00000211
#define HV_REGISTER_GUEST_CRASH_P2			0x00000212
#define HV_REGISTER_GUEST_CRASH_P3			0x00000213
#define HV_REGISTER_GUEST_CRASH_P4			0x00000214
#define HV_REGISTER_GUEST_CRASH_CTL			0x00000215

/* Interrupt and event state */
#define HV_REGISTER_PENDING_INTERRUPTION		0x00010002
#define HV_REGISTER_INTERRUPT_STATE			0x00010003
#define HV_REGISTER_PENDING_EVENT0			0x00010004
#define HV_REGISTER_PENDING_EVENT1			0x00010005
#define HV_REGISTER_DELIVERABILITY_NOTIFICATIONS	0x00010006
#define HV_X64_REGISTER_DELIVERABILITY_NOTIFICATIONS	0x00010006
#define HV_X64_REGISTER_PENDING_DEBUG_EXCEPTION		0x00010007

/* General purpose registers */
#define HV_X64_REGISTER_RAX		0x00020000
#define HV_X64_REGISTER_RCX		0x00020001
#define HV_X64_REGISTER_RDX		0x00020002
#define HV_X64_REGISTER_RBX		0x00020003
#define HV_X64_REGISTER_RSP		0x00020004
#define HV_X64_REGISTER_RBP		0x00020005
#define HV_X64_REGISTER_RSI		0x00020006
#define HV_X64_REGISTER_RDI		0x00020007
#define HV_X64_REGISTER_R8		0x00020008
#define HV_X64_REGISTER_R9		0x00020009
#define HV_X64_REGISTER_R10		0x0002000A
#define HV_X64_REGISTER_R11		0x0002000B
#define HV_X64_REGISTER_R12		0x0002000C
#define HV_X64_REGISTER_R13		0x0002000D
#define HV_X64_REGISTER_R14		0x0002000E
#define HV_X64_REGISTER_R15		0x0002000F
#define HV_X64_REGISTER_RIP		0x00020010
#define HV_X64_REGISTER_RFLAGS		0x00020011

/* Floating point and vector registers */
#define HV_X64_REGISTER_XMM0		0x00030000
#define HV_X64_REGISTER_XMM1		0x00030001
#define HV_X64_REGISTER_XMM2		0x00030002
#define HV_X64_REGISTER_XMM3		0x00030003
#define HV_X64_REGISTER_XMM4		0x00030004
#define HV_X64_REGISTER_XMM5		0x00030005
#define HV_X64_REGISTER_XMM6		0x00030006
#define HV_X64_REGISTER_XMM7		0x00030007
#define HV_X64_REGISTER_XMM8		0x00030008
#define HV_X64_REGISTER_XMM9		0x00030009
#define HV_X64_REGISTER_XMM10		0x0003000A
#define HV_X64_REGISTER_XMM11		0x0003000B
#define HV_X64_REGISTER_XMM12		0x0003000C
#define HV_X64_REGISTER_XMM13		0x0003000D
#define HV_X64_REGISTER_XMM14		0x0003000E
#define HV_X64_REGISTER_XMM15		0x0003000F
#define HV_X64_REGISTER_FP_MMX0		0x00030010
#define HV_X64_REGISTER_FP_MMX1		0x00030011
#define HV_X64_REGISTER_FP_MMX2		0x00030012
#define HV_X64_REGISTER_FP_MMX3		0x00030013
#define HV_X64_REGISTER_FP_MMX4		0x00030014
#define HV_X64_REGISTER_FP_MMX5		0x00030015
#define HV_X64_REGISTER_FP_MMX6		0x00030016
#define HV_X64_REGISTER_FP_MMX7		0x00030017
#define HV_X64_REGISTER_FP_CONTROL_STATUS	0x00030018
#define HV_X64_REGISTER_XMM_CONTROL_STATUS	0x00030019

/* Control registers */
#define HV_X64_REGISTER_CR0		0x00040000
#define HV_X64_REGISTER_CR2		0x00040001
#define HV_X64_REGISTER_CR3		0x00040002
#define HV_X64_REGISTER_CR4		0x00040003
#define HV_X64_REGISTER_CR8		0x00040004
#define HV_X64_REGISTER_XFEM		0x00040005
#define HV_X64_REGISTER_INTERMEDIATE_CR0	0x00041000
/* INTERMEDIATE_CR3 is given by the project spec; the kernel headers searched
 * list CR0, CR4 and CR8 only. */
#define HV_X64_REGISTER_INTERMEDIATE_CR3	0x00041002
#define HV_X64_REGISTER_INTERMEDIATE_CR4	0x00041003
#define HV_X64_REGISTER_INTERMEDIATE_CR8	0x00041004

/* Debug registers */
#define HV_X64_REGISTER_DR0		0x00050000
#define HV_X64_REGISTER_DR1		0x00050001
#define HV_X64_REGISTER_DR2		0x00050002
#define HV_X64_REGISTER_DR3		0x00050003
#define HV_X64_REGISTER_DR6		0x00050004
#define HV_X64_REGISTER_DR7		0x00050005

/* Segment and table registers */
#define HV_X64_REGISTER_ES		0x00060000
#define HV_X64_REGISTER_CS		0x00060001
#define HV_X64_REGISTER_SS		0x00060002
#define HV_X64_REGISTER_DS		0x00060003
#define HV_X64_REGISTER_FS		0x00060004
#define HV_X64_REGISTER_GS		0x00060005
#define HV_X64_REGISTER_LDTR		0x00060006
#define HV_X64_REGISTER_TR		0x00060007
#define HV_X64_REGISTER_IDTR		0x00070000
#define HV_X64_REGISTER_GDTR		0x00070001

/* Virtualized MSRs */
#define HV_X64_REGISTER_TSC		0x00080000
#define HV_X64_REGISTER_EFER		0x00080001
#define HV_X64_REGISTER_KERNEL_GS_BASE	0x00080002
#define HV_X64_REGISTER_APIC_BASE	0x00080003
#define HV_X64_REGISTER_PAT		0x00080004
#define HV_X64_REGISTER_SYSENTER_CS	0x00080005
#define HV_X64_REGISTER_SYSENTER_EIP	0x00080006
#define HV_X64_REGISTER_SYSENTER_ESP	0x00080007
#define HV_X64_REGISTER_STAR		0x00080008
#define HV_X64_REGISTER_LSTAR		0x00080009
#define HV_X64_REGISTER_CSTAR		0x0008000A
#define HV_X64_REGISTER_SFMASK		0x0008000B
#define HV_X64_REGISTER_INITIAL_APIC_ID	0x0008000C

/* Cache control MSRs */
#define HV_X64_REGISTER_MSR_MTRR_CAP		0x0008000D
#define HV_X64_REGISTER_MSR_MTRR_DEF_TYPE	0x0008000E
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE0	0x00080010
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE1	0x00080011
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE2	0x00080012
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE3	0x00080013
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE4	0x00080014
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE5	0x00080015
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE6	0x00080016
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE7	0x00080017
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE8	0x00080018
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASE9	0x00080019
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASEA	0x0008001A
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASEB	0x0008001B
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASEC	0x0008001C
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASED	0x0008001D
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASEE	0x0008001E
#define HV_X64_REGISTER_MSR_MTRR_PHYS_BASEF	0x0008001F
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK0	0x00080040
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK1	0x00080041
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK2	0x00080042
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK3	0x00080043
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK4	0x00080044
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK5	0x00080045
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK6	0x00080046
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK7	0x00080047
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK8	0x00080048
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASK9	0x00080049
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKA	0x0008004A
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKB	0x0008004B
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKC	0x0008004C
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKD	0x0008004D
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKE	0x0008004E
#define HV_X64_REGISTER_MSR_MTRR_PHYS_MASKF	0x0008004F
#define HV_X64_REGISTER_MSR_MTRR_FIX64K00000	0x00080070
#define HV_X64_REGISTER_MSR_MTRR_FIX16K80000	0x00080071
#define HV_X64_REGISTER_MSR_MTRR_FIX16KA0000	0x00080072
#define HV_X64_REGISTER_MSR_MTRR_FIX4KC0000	0x00080073
#define HV_X64_REGISTER_MSR_MTRR_FIX4KC8000	0x00080074
#define HV_X64_REGISTER_MSR_MTRR_FIX4KD0000	0x00080075
#define HV_X64_REGISTER_MSR_MTRR_FIX4KD8000	0x00080076
#define HV_X64_REGISTER_MSR_MTRR_FIX4KE0000	0x00080077
#define HV_X64_REGISTER_MSR_MTRR_FIX4KE8000	0x00080078
#define HV_X64_REGISTER_MSR_MTRR_FIX4KF0000	0x00080079
#define HV_X64_REGISTER_MSR_MTRR_FIX4KF8000	0x0008007A

/* Other MSRs */
#define HV_X64_REGISTER_TSC_AUX			0x0008007B
#define HV_X64_REGISTER_BNDCFGS			0x0008007C
#define HV_X64_REGISTER_DEBUG_CTL		0x0008007D
#define HV_X64_REGISTER_SGX_LAUNCH_CONTROL0	0x00080080
#define HV_X64_REGISTER_SGX_LAUNCH_CONTROL1	0x00080081
#define HV_X64_REGISTER_SGX_LAUNCH_CONTROL2	0x00080082
#define HV_X64_REGISTER_SGX_LAUNCH_CONTROL3	0x00080083
#define HV_X64_REGISTER_SPEC_CTRL		0x00080084
#define HV_X64_REGISTER_PRED_CMD		0x00080085
#define HV_X64_REGISTER_VIRT_SPEC_CTRL		0x00080086
#define HV_X64_REGISTER_U_XSS			0x0008008B
#define HV_X64_REGISTER_U_CET			0x0008008C
#define HV_X64_REGISTER_S_CET			0x0008008D
#define HV_X64_REGISTER_SSP			0x0008008E
#define HV_X64_REGISTER_PL0_SSP			0x0008008F
#define HV_X64_REGISTER_PL1_SSP			0x00080090
#define HV_X64_REGISTER_PL2_SSP			0x00080091
#define HV_X64_REGISTER_PL3_SSP			0x00080092
#define HV_X64_REGISTER_INTERRUPT_SSP_TABLE_ADDR	0x00080093
#define HV_X64_REGISTER_TSC_ADJUST		0x00080096
#define HV_X64_REGISTER_MSR_IA32_MISC_ENABLE	0x000800A0
#define HV_X64_REGISTER_IA32_FEATURE_CONTROL	0x000800A1

/* APIC registers (x2APIC MSR offsets) */
#define HV_X64_REGISTER_APIC_ID			0x00084802
#define HV_X64_REGISTER_APIC_VERSION		0x00084803

/* Hypervisor-defined (synthetic) registers */
#define HV_REGISTER_VP_RUNTIME			0x00090000
#define HV_X64_REGISTER_HYPERCALL		0x00090001
#define HV_REGISTER_GUEST_OS_ID			0x00090002
#define HV_REGISTER_VP_INDEX			0x00090003
#define HV_REGISTER_TIME_REF_COUNT		0x00090004
#define HV_REGISTER_CPU_MANAGEMENT_VERSION	0x00090007
#define HV_X64_REGISTER_SYNTHETIC_EOI		0x00090010
#define HV_X64_REGISTER_SYNTHETIC_ICR		0x00090011
#define HV_X64_REGISTER_SYNTHETIC_TPR		0x00090012
#define HV_REGISTER_VP_ASSIST_PAGE		0x00090013
#define HV_REGISTER_VP_ROOT_SIGNAL_COUNT	0x00090014
#define HV_REGISTER_REFERENCE_TSC		0x00090017
#define HV_X64_REGISTER_GHCB			0x00090019
#define HV_X64_REGISTER_REG_PAGE		0x0009001C
#define HV_X64_REGISTER_EMULATED_TIMER_PERIOD	0x00090030
#define HV_X64_REGISTER_EMULATED_TIMER_CONTROL	0x00090031
#define HV_X64_REGISTER_PM_TIMER_ASSIST		0x00090032

/* SynIC registers */
#define HV_REGISTER_SINT0		0x000A0000
#define HV_REGISTER_SINT1		0x000A0001
#define HV_REGISTER_SINT2		0x000A0002
#define HV_REGISTER_SINT3		0x000A0003
#define HV_REGISTER_SINT4		0x000A0004
#define HV_REGISTER_SINT5		0x000A0005
#define HV_REGISTER_SINT6		0x000A0006
#define HV_REGISTER_SINT7		0x000A0007
#define HV_REGISTER_SINT8		0x000A0008
#define HV_REGISTER_SINT9		0x000A0009
#define HV_REGISTER_SINT10		0x000A000A
#define HV_REGISTER_SINT11		0x000A000B
#define HV_REGISTER_SINT12		0x000A000C
#define HV_REGISTER_SINT13		0x000A000D
#define HV_REGISTER_SINT14		0x000A000E
#define HV_REGISTER_SINT15		0x000A000F
#define HV_REGISTER_SCONTROL		0x000A0010
#define HV_REGISTER_SVERSION		0x000A0011
#define HV_REGISTER_SIEFP		0x000A0012
#define HV_REGISTER_SIMP		0x000A0013
#define HV_REGISTER_EOM			0x000A0014
#define HV_REGISTER_SIRBP		0x000A0015

/* Synthetic timer registers */
#define HV_REGISTER_STIMER0_CONFIG	0x000B0000
#define HV_REGISTER_STIMER0_COUNT	0x000B0001
#define HV_REGISTER_STIMER1_CONFIG	0x000B0002
#define HV_REGISTER_STIMER1_COUNT	0x000B0003
#define HV_REGISTER_STIMER2_CONFIG	0x000B0004
#define HV_REGISTER_STIMER2_COUNT	0x000B0005
#define HV_REGISTER_STIMER3_CONFIG	0x000B0006
#define HV_REGISTER_STIMER3_COUNT	0x000B0007

/* VSM */
#define HV_REGISTER_VSM_VP_STATUS	0x000D0003

/* Intercept control registers */
#define HV_X64_REGISTER_CR_INTERCEPT_CONTROL			0x000E0000
#define HV_X64_REGISTER_CR_INTERCEPT_CR0_MASK			0x000E0001
#define HV_X64_REGISTER_CR_INTERCEPT_CR4_MASK			0x000E0002
#define HV_X64_REGISTER_CR_INTERCEPT_IA32_MISC_ENABLE_MASK	0x000E0003

/* Hyper-V synthetic MSR numbers (what the guest's RDMSR/WRMSR names) */
#define HV_X64_MSR_GUEST_OS_ID		0x40000000
#define HV_X64_MSR_HYPERCALL		0x40000001
#define HV_X64_MSR_VP_INDEX		0x40000002
#define HV_X64_MSR_RESET		0x40000003
#define HV_X64_MSR_VP_RUNTIME		0x40000010
#define HV_X64_MSR_TIME_REF_COUNT	0x40000020
#define HV_X64_MSR_REFERENCE_TSC	0x40000021
#define HV_X64_MSR_TSC_FREQUENCY	0x40000022
#define HV_X64_MSR_APIC_FREQUENCY	0x40000023
#define HV_X64_MSR_EOI			0x40000070
#define HV_X64_MSR_ICR			0x40000071
#define HV_X64_MSR_TPR			0x40000072
#define HV_X64_MSR_VP_ASSIST_PAGE	0x40000073
#define HV_X64_MSR_SCONTROL		0x40000080
#define HV_X64_MSR_SVERSION		0x40000081
#define HV_X64_MSR_SIEFP		0x40000082
#define HV_X64_MSR_SIMP			0x40000083
#define HV_X64_MSR_EOM			0x40000084
#define HV_X64_MSR_SIRBP		0x40000085
#define HV_X64_MSR_SINT0		0x40000090
#define HV_X64_MSR_SINT15		0x4000009F
#define HV_X64_MSR_STIMER0_CONFIG	0x400000B0
#define HV_X64_MSR_STIMER0_COUNT	0x400000B1
#define HV_X64_MSR_STIMER3_COUNT	0x400000B7
#define HV_X64_MSR_GUEST_IDLE		0x400000F0
#define HV_X64_MSR_CRASH_P0		0x40000100
#define HV_X64_MSR_CRASH_CTL		0x40000105

/* Synthetic interrupt controller */
#define HV_SYNIC_SINT_COUNT		16
#define HV_SYNIC_STIMER_COUNT		4
#define HV_SYNIC_VERSION_1		0x1
#define HV_SYNIC_FIRST_VALID_VECTOR	16
#define HV_SYNIC_CONTROL_ENABLE		(1ULL << 0)
#define HV_SYNIC_SIMP_ENABLE		(1ULL << 0)
#define HV_SYNIC_SIEFP_ENABLE		(1ULL << 0)
#define HV_SYNIC_SINT_MASKED		(1ULL << 16)
#define HV_SYNIC_SINT_AUTO_EOI		(1ULL << 17)
#define HV_SYNIC_SINT_VECTOR_MASK	0xFF
#define HV_SYNIC_INTERCEPTION_SINT_INDEX	0
#define HV_SYNIC_IOMMU_FAULT_SINT_INDEX		1
#define HV_SYNIC_VMBUS_SINT_INDEX		2
#define HV_SYNIC_FIRST_UNUSED_SINT_INDEX	5
#define HV_SYNIC_DOORBELL_SINT_INDEX		HV_SYNIC_FIRST_UNUSED_SINT_INDEX

/* ------------------------------------------------------------------------
 * Register value layouts
 * ------------------------------------------------------------------------ */
struct hv_u128 {
	__u64 low_part;
	__u64 high_part;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_u128) == 16, "hv_u128 is 16 bytes");

/* Segment register; `attributes` holds the access-rights bits below. */
struct hv_x64_segment_register {
	__u64 base;
	__u32 limit;
	__u16 selector;
	__u16 attributes;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_segment_register) == 16,
	       "segment register is 16 bytes");

#define HV_X64_SEGMENT_ATTR_TYPE_SHIFT		0
#define HV_X64_SEGMENT_ATTR_TYPE_MASK		0x000F
#define HV_X64_SEGMENT_ATTR_S_SHIFT		4
#define HV_X64_SEGMENT_ATTR_S_MASK		0x0010
#define HV_X64_SEGMENT_ATTR_DPL_SHIFT		5
#define HV_X64_SEGMENT_ATTR_DPL_MASK		0x0060
#define HV_X64_SEGMENT_ATTR_P_SHIFT		7
#define HV_X64_SEGMENT_ATTR_P_MASK		0x0080
#define HV_X64_SEGMENT_ATTR_RESERVED_MASK	0x0F00
#define HV_X64_SEGMENT_ATTR_AVL_SHIFT		12
#define HV_X64_SEGMENT_ATTR_AVL_MASK		0x1000
#define HV_X64_SEGMENT_ATTR_L_SHIFT		13
#define HV_X64_SEGMENT_ATTR_L_MASK		0x2000
#define HV_X64_SEGMENT_ATTR_DB_SHIFT		14
#define HV_X64_SEGMENT_ATTR_DB_MASK		0x4000
#define HV_X64_SEGMENT_ATTR_G_SHIFT		15
#define HV_X64_SEGMENT_ATTR_G_MASK		0x8000

/* Descriptor-table register (IDTR/GDTR). */
struct hv_x64_table_register {
	__u16 pad[3];
	__u16 limit;
	__u64 base;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_table_register) == 16,
	       "table register is 16 bytes");

/* x87/MMX register: 64-bit mantissa, then exponent (15 bits) and sign. */
struct hv_x64_fp_register {
	__u64 mantissa;
	__u64 exponent_sign;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_fp_register) == 16, "fp register is 16 bytes");
#define HV_X64_FP_REGISTER_BIASED_EXPONENT_MASK		0x7FFFULL
#define HV_X64_FP_REGISTER_SIGN_SHIFT			15
#define HV_X64_FP_REGISTER_SIGN_MASK			0x8000ULL

/*
 * FP control/status. In 32-bit mode last_fp_rip carries EIP in bits 0-31
 * and CS in bits 32-47.
 */
struct hv_x64_fp_control_status_register {
	__u16 fp_control;
	__u16 fp_status;
	__u8 fp_tag;
	__u8 reserved;
	__u16 last_fp_op;
	__u64 last_fp_rip;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_fp_control_status_register) == 16,
	       "fp control/status is 16 bytes");
#define HV_X64_FP_LAST_FP_EIP_MASK		0x00000000FFFFFFFFULL
#define HV_X64_FP_LAST_FP_CS_SHIFT		32
#define HV_X64_FP_LAST_FP_CS_MASK		0x0000FFFF00000000ULL

/*
 * XMM control/status. In 32-bit mode last_fp_rdp carries the data pointer
 * in bits 0-31 and DS in bits 32-47.
 */
struct hv_x64_xmm_control_status_register {
	__u64 last_fp_rdp;
	__u32 xmm_status_control;
	__u32 xmm_status_control_mask;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_xmm_control_status_register) == 16,
	       "xmm control/status is 16 bytes");
#define HV_X64_XMM_LAST_FP_DP_MASK		0x00000000FFFFFFFFULL
#define HV_X64_XMM_LAST_FP_DS_SHIFT		32
#define HV_X64_XMM_LAST_FP_DS_MASK		0x0000FFFF00000000ULL

/* Suspend registers (explicit, intercept, dispatch): bit 0 = suspended */
#define HV_SUSPEND_REGISTER_SUSPENDED		(1ULL << 0)

/* Internal activity register */
#define HV_INTERNAL_ACTIVITY_STARTUP_SUSPEND	(1ULL << 0)
#define HV_INTERNAL_ACTIVITY_HALT_SUSPEND	(1ULL << 1)
#define HV_INTERNAL_ACTIVITY_IDLE_SUSPEND	(1ULL << 2)

/* Interrupt state register (HV_REGISTER_INTERRUPT_STATE) */
#define HV_X64_INTERRUPT_STATE_INTERRUPT_SHADOW	(1ULL << 0)
#define HV_X64_INTERRUPT_STATE_NMI_MASKED	(1ULL << 1)

/* Pending interruption register (HV_REGISTER_PENDING_INTERRUPTION) */
#define HV_X64_PENDING_INTERRUPTION_PENDING			(1ULL << 0)
#define HV_X64_PENDING_INTERRUPTION_TYPE_SHIFT			1
#define HV_X64_PENDING_INTERRUPTION_TYPE_MASK			(0x7ULL << 1)
#define HV_X64_PENDING_INTERRUPTION_DELIVER_ERROR_CODE		(1ULL << 4)
#define HV_X64_PENDING_INTERRUPTION_INSTRUCTION_LENGTH_SHIFT	5
#define HV_X64_PENDING_INTERRUPTION_INSTRUCTION_LENGTH_MASK	(0xFULL << 5)
#define HV_X64_PENDING_INTERRUPTION_NESTED_EVENT		(1ULL << 9)
#define HV_X64_PENDING_INTERRUPTION_VECTOR_SHIFT		16
#define HV_X64_PENDING_INTERRUPTION_VECTOR_MASK			(0xFFFFULL << 16)
#define HV_X64_PENDING_INTERRUPTION_ERROR_CODE_SHIFT		32
#define HV_X64_PENDING_INTERRUPTION_ERROR_CODE_MASK		(0xFFFFFFFFULL << 32)

/* Interruption types (pending interruption type, deliverable type) */
#define HV_X64_PENDING_INTERRUPT		0
#define HV_X64_PENDING_NMI			2
#define HV_X64_PENDING_EXCEPTION		3

/*
 * Pending event registers (HV_REGISTER_PENDING_EVENT0/1), 128 bits. Bits
 * below are of low_part; for an exception event high_part is the exception
 * parameter.
 */
#define HV_X64_PENDING_EVENT_PENDING			(1ULL << 0)
#define HV_X64_PENDING_EVENT_TYPE_SHIFT			1
#define HV_X64_PENDING_EVENT_TYPE_MASK			(0x7ULL << 1)
#define HV_X64_PENDING_EVENT_DELIVER_ERROR_CODE		(1ULL << 8)
#define HV_X64_PENDING_EVENT_VECTOR_SHIFT		16
#define HV_X64_PENDING_EVENT_VECTOR_MASK		(0xFFFFULL << 16)
#define HV_X64_PENDING_EVENT_ERROR_CODE_SHIFT		32
#define HV_X64_PENDING_EVENT_ERROR_CODE_MASK		(0xFFFFFFFFULL << 32)

/* XFEM / XSAVE state-component bits (union hv_x64_xsave_xfem_register) */
#define HV_X64_XFEM_LEGACY_X87			(1ULL << 0)
#define HV_X64_XFEM_LEGACY_SSE			(1ULL << 1)
#define HV_X64_XFEM_AVX				(1ULL << 2)
#define HV_X64_XFEM_MPX_BNDREG			(1ULL << 3)
#define HV_X64_XFEM_MPX_BNDCSR			(1ULL << 4)
#define HV_X64_XFEM_AVX_512_OP_MASK		(1ULL << 5)
#define HV_X64_XFEM_AVX_512_ZMMHI		(1ULL << 6)
#define HV_X64_XFEM_AVX_512_ZMM16_31		(1ULL << 7)
#define HV_X64_XFEM_PASID			(1ULL << 10)
#define HV_X64_XFEM_CET_U			(1ULL << 11)
#define HV_X64_XFEM_CET_S			(1ULL << 12)
#define HV_X64_XFEM_XTILE_CFG			(1ULL << 17)
#define HV_X64_XFEM_XTILE_DATA			(1ULL << 18)

/* One register value as the register hypercalls carry it (16 bytes). */
union hv_register_value {
	struct hv_u128 reg128;
	__u64 reg64;
	__u32 reg32;
	__u16 reg16;
	__u8 reg8;
	struct hv_x64_fp_register fp;
	struct hv_x64_fp_control_status_register fp_control_status;
	struct hv_x64_xmm_control_status_register xmm_control_status;
	struct hv_x64_segment_register segment;
	struct hv_x64_table_register table;
	__u64 explicit_suspend;
	__u64 intercept_suspend;
	__u64 dispatch_suspend;
	__u64 internal_activity;
	__u64 interrupt_state;
	__u64 pending_interruption;
	struct hv_u128 pending_event;
};
_Static_assert(sizeof(union hv_register_value) == 16, "register value is 16 bytes");

/* One name/value pair (SET_VP_REGISTERS input element). */
struct hv_register_assoc {
	__u32 name;
	__u32 reserved1;
	__u64 reserved2;
	union hv_register_value value;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_register_assoc) == 32, "register assoc is 32 bytes");
_Static_assert(offsetof(struct hv_register_assoc, value) == 16,
	       "register assoc value at 16");

/* GET_VP_REGISTERS input: this header, then __u32 names[reps]. */
struct hv_input_get_vp_registers {
	__u64 partition_id;
	__u32 vp_index;
	__u8 input_vtl;
	__u8 rsvd_z8;
	__u16 rsvd_z16;
	__u32 names[];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_get_vp_registers) == 16,
	       "get vp registers header is 16 bytes");

/* SET_VP_REGISTERS input: this header, then hv_register_assoc[reps]. */
struct hv_input_set_vp_registers {
	__u64 partition_id;
	__u32 vp_index;
	__u8 input_vtl;
	__u8 rsvd_z8;
	__u16 rsvd_z16;
	struct hv_register_assoc elements[];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_set_vp_registers) == 16,
	       "set vp registers header is 16 bytes");

/* GET_VP_REGISTERS output: one hv_register_value per name. */
struct hv_output_get_vp_registers {
	union hv_register_value values[1];
};

/* ------------------------------------------------------------------------
 * Partition property hypercalls
 * ------------------------------------------------------------------------ */
struct hv_input_get_partition_property {
	__u64 partition_id;
	__u32 property_code;
	__u32 padding;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_get_partition_property) == 16,
	       "get property input is 16 bytes");

struct hv_output_get_partition_property {
	__u64 property_value;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_output_get_partition_property) == 8,
	       "get property output is 8 bytes");

struct hv_input_set_partition_property {
	__u64 partition_id;
	__u32 property_code;
	__u32 padding;
	__u64 property_value;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_set_partition_property) == 24,
	       "set property input is 24 bytes");

/*
 * Argument of GET_PARTITION_PROPERTY_EX (union hv_partition_property_arg):
 * bits 0-31 arg or vp_index, bits 56-63 object type.
 */
#define HV_PARTITION_PROPERTY_ARG_VALUE_MASK		0x00000000FFFFFFFFULL
#define HV_PARTITION_PROPERTY_ARG_OBJECT_TYPE_SHIFT	56
#define HV_PARTITION_PROPERTY_ARG_OBJECT_TYPE_MASK	(0xFFULL << 56)

struct hv_input_get_partition_property_ex {
	__u64 partition_id;
	__u32 property_code;
	__u32 padding;
	__u64 arg;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_get_partition_property_ex) == 24,
	       "get property ex input is 24 bytes");

/* Room left in a page after the _EX input header. */
#define HV_PARTITION_PROPERTY_EX_MAX_VAR_SIZE	(4096 - 24)

/* Value of HV_PARTITION_PROPERTY_VMM_CAPABILITIES (one bank). */
struct hv_partition_property_vmm_capabilities {
	__u16 bank_count;
	__u16 reserved[3];
	__u64 capabilities;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_partition_property_vmm_capabilities) == 16,
	       "vmm capabilities is 16 bytes");
#define HV_VMM_CAP_MAP_GPA_PRESERVE_ADJUSTABLE		(1ULL << 0)
#define HV_VMM_CAP_VMM_CAN_PROVIDE_OVERLAY_GPFN		(1ULL << 1)
#define HV_VMM_CAP_VP_AFFINITY_PROPERTY			(1ULL << 2)
#define HV_VMM_CAP_ASSIGNABLE_SYNTHETIC_PROC_FEATURES	(1ULL << 4)
#define HV_VMM_CAP_VMM_ENABLE_INTEGRATED_SCHEDULER	(1ULL << 6)

/*
 * Value of HV_PARTITION_PROPERTY_ASSIGNABLE_SYNTHETIC_PROC_FEATURES: the banked
 * shape of the VMM capabilities (bank count, then the masks), one bank of
 * union hv_partition_synthetic_processor_features (rust-vmm/mshv reads bank 0
 * at byte 8 in make_default_synthetic_features_mask).
 */
struct hv_partition_property_assignable_synthetic_proc_features {
	__u16 bank_count;
	__u16 reserved[3];
	__u64 features[HV_PARTITION_SYNTHETIC_PROCESSOR_FEATURES_BANKS];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_partition_property_assignable_synthetic_proc_features) == 16,
	       "assignable synthetic features is 16 bytes");

union hv_partition_property_ex {
	__u8 buffer[HV_PARTITION_PROPERTY_EX_MAX_VAR_SIZE];
	struct hv_partition_property_vmm_capabilities vmm_capabilities;
	struct hv_partition_property_assignable_synthetic_proc_features assignable_synthetic_proc_features;
};

struct hv_output_get_partition_property_ex {
	union hv_partition_property_ex property_value;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_output_get_partition_property_ex) == 4072,
	       "get property ex output fills the rest of a page");

/* ------------------------------------------------------------------------
 * HVCALL_INSTALL_INTERCEPT
 * ------------------------------------------------------------------------ */
#define HV_INTERCEPT_TYPE_X64_IO_PORT			0x00000000
#define HV_INTERCEPT_TYPE_X64_MSR			0x00000001
#define HV_INTERCEPT_TYPE_X64_CPUID			0x00000002
#define HV_INTERCEPT_TYPE_EXCEPTION			0x00000003
#define HV_INTERCEPT_TYPE_RESERVED0			0x00000004
#define HV_INTERCEPT_TYPE_MMIO				0x00000005
#define HV_INTERCEPT_TYPE_X64_GLOBAL_CPUID		0x00000006
#define HV_INTERCEPT_TYPE_X64_APIC_SMI			0x00000007
#define HV_INTERCEPT_TYPE_HYPERCALL			0x00000008
#define HV_INTERCEPT_TYPE_X64_APIC_INIT_SIPI		0x00000009
#define HV_INTERCEPT_MC_UPDATE_PATCH_LEVEL_MSR_READ	0x0000000A
#define HV_INTERCEPT_TYPE_X64_APIC_WRITE		0x0000000B
#define HV_INTERCEPT_TYPE_X64_MSR_INDEX			0x0000000C
#define HV_INTERCEPT_TYPE_MAX				0x0000000D
#define HV_INTERCEPT_TYPE_INVALID			0xFFFFFFFF

/* access_type mask of the install-intercept input */
#define HV_INTERCEPT_ACCESS_MASK_NONE		0x00
#define HV_INTERCEPT_ACCESS_MASK_READ		0x01
#define HV_INTERCEPT_ACCESS_MASK_WRITE		0x02
#define HV_INTERCEPT_ACCESS_MASK_EXECUTE	0x04

/* The 8-byte parameter; which member applies depends on the type. */
union hv_intercept_parameters {
	__u64 as_uint64;
	__u16 io_port;
	__u32 cpuid_index;
	__u32 apic_write_mask;
	__u16 exception_vector;
	__u32 msr_index;
};
_Static_assert(sizeof(union hv_intercept_parameters) == 8,
	       "intercept parameters are 8 bytes");

struct hv_input_install_intercept {
	__u64 partition_id;
	__u32 access_type;
	__u32 intercept_type;
	union hv_intercept_parameters intercept_parameter;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_install_intercept) == 24,
	       "install intercept input is 24 bytes");

/* ------------------------------------------------------------------------
 * HVCALL_TRANSLATE_VIRTUAL_ADDRESS
 * ------------------------------------------------------------------------ */
#define HV_TRANSLATE_GVA_VALIDATE_READ		0x0001
#define HV_TRANSLATE_GVA_VALIDATE_WRITE		0x0002
#define HV_TRANSLATE_GVA_VALIDATE_EXECUTE	0x0004
#define HV_TRANSLATE_GVA_PRIVILEGE_EXEMPT	0x0008
#define HV_TRANSLATE_GVA_SET_PAGE_TABLE_BITS	0x0010
#define HV_TRANSLATE_GVA_TLB_FLUSH_INHIBIT	0x0020
#define HV_TRANSLATE_GVA_SUPERVISOR_ACCESS	0x0040
#define HV_TRANSLATE_GVA_USER_ACCESS		0x0080
#define HV_TRANSLATE_GVA_ENFORCE_SMAP		0x0100
#define HV_TRANSLATE_GVA_OVERRIDE_SMAP		0x0200
#define HV_TRANSLATE_GVA_SHADOW_STACK		0x0400
#define HV_TRANSLATE_GVA_INPUT_VTL_MASK		0xFF00000000000000ULL

/* result_code values */
#define HV_TRANSLATE_GVA_SUCCESS			0
#define HV_TRANSLATE_GVA_PAGE_NOT_PRESENT		1
#define HV_TRANSLATE_GVA_PRIVILEGE_VIOLATION		2
#define HV_TRANSLATE_GVA_INVALID_PAGE_TABLE_FLAGS	3
#define HV_TRANSLATE_GVA_GPA_UNMAPPED			4
#define HV_TRANSLATE_GVA_GPA_NO_READ_ACCESS		5
#define HV_TRANSLATE_GVA_GPA_NO_WRITE_ACCESS		6
#define HV_TRANSLATE_GVA_GPA_ILLEGAL_OVERLAY_ACCESS	7
#define HV_TRANSLATE_GVA_INTERCEPT			8
#define HV_TRANSLATE_GVA_GPA_UNACCEPTED			9

struct hv_input_translate_virtual_address {
	__u64 partition_id;
	__u32 vp_index;
	__u32 padding;
	__u64 control_flags;
	__u64 gva_page;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_translate_virtual_address) == 32,
	       "translate input is 32 bytes");

/* result_flags: cache type in bits 0-7, overlay page in bit 8 */
#define HV_TRANSLATE_GVA_RESULT_CACHE_TYPE_MASK		0x000000FF
#define HV_TRANSLATE_GVA_RESULT_OVERLAY_PAGE		0x00000100

struct hv_translate_gva_result {
	__u32 result_code;
	__u32 result_flags;
} __attribute__((packed));

struct hv_output_translate_virtual_address {
	struct hv_translate_gva_result translation_result;
	__u64 gpa_page;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_output_translate_virtual_address) == 16,
	       "translate output is 16 bytes");

/* Cache types (memory intercept cache_type, translate result) */
#define HV_CACHE_TYPE_UNCACHED		0
#define HV_CACHE_TYPE_WRITE_COMBINING	1
#define HV_CACHE_TYPE_WRITE_THROUGH	4
#define HV_CACHE_TYPE_WRITE_PROTECTED	5
#define HV_CACHE_TYPE_WRITE_BACK	6

/* ------------------------------------------------------------------------
 * HVCALL_ASSERT_VIRTUAL_INTERRUPT / HVCALL_CLEAR_VIRTUAL_INTERRUPT
 * ------------------------------------------------------------------------ */
#define HV_X64_INTERRUPT_TYPE_FIXED		0x0000
#define HV_X64_INTERRUPT_TYPE_LOWESTPRIORITY	0x0001
#define HV_X64_INTERRUPT_TYPE_SMI		0x0002
#define HV_X64_INTERRUPT_TYPE_REMOTEREAD	0x0003
#define HV_X64_INTERRUPT_TYPE_NMI		0x0004
#define HV_X64_INTERRUPT_TYPE_INIT		0x0005
#define HV_X64_INTERRUPT_TYPE_SIPI		0x0006
#define HV_X64_INTERRUPT_TYPE_EXTINT		0x0007
#define HV_X64_INTERRUPT_TYPE_LOCALINT0		0x0008
#define HV_X64_INTERRUPT_TYPE_LOCALINT1		0x0009
#define HV_X64_INTERRUPT_TYPE_MAXIMUM		0x000A

/*
 * hv_interrupt_control, one __u64: interrupt type in bits 0-31, then
 * level-triggered (bit 32) and logical destination mode (bit 33).
 */
#define HV_INTERRUPT_CONTROL_TYPE_MASK			0x00000000FFFFFFFFULL
#define HV_INTERRUPT_CONTROL_LEVEL_TRIGGERED		(1ULL << 32)
#define HV_INTERRUPT_CONTROL_LOGICAL_DEST_MODE		(1ULL << 33)

struct hv_input_assert_virtual_interrupt {
	__u64 partition_id;
	__u64 control;
	__u64 dest_addr;
	__u32 vector;
	__u8 target_vtl;
	__u8 rsvd_z0;
	__u16 rsvd_z1;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_assert_virtual_interrupt) == 32,
	       "assert interrupt input is 32 bytes");

/*
 * An x86 MSI as mshv_copy_girq_info decodes a MSHV_SET_MSI_ROUTING entry
 * (union hv_msi_address_register / hv_msi_data_register): address_lo holds
 * the 0xFEE base, the destination APIC id and the logical-destination bit;
 * data holds the vector, the delivery mode (an HV_X64_INTERRUPT_TYPE_*) and
 * the trigger mode (bit 15 set: level-triggered).
 */
#define HV_MSI_ADDRESS_BASE			0xFEE00000U
#define HV_MSI_ADDRESS_DESTINATION_MODE_LOGICAL	(1U << 2)
#define HV_MSI_ADDRESS_DESTINATION_ID_SHIFT	12
#define HV_MSI_ADDRESS_DESTINATION_ID_MASK	(0xFFU << 12)
#define HV_MSI_DATA_VECTOR_MASK			0xFFU
#define HV_MSI_DATA_DELIVERY_MODE_SHIFT		8
#define HV_MSI_DATA_DELIVERY_MODE_MASK		(0x7U << 8)
#define HV_MSI_DATA_LEVEL_ASSERT		(1U << 14)
#define HV_MSI_DATA_TRIGGER_MODE_LEVEL		(1U << 15)

/*
 * The kernel headers carry no input block for ClearVirtualInterrupt; the
 * hypercall takes the partition id only (the passthrough's 8-byte minimum).
 */
struct hv_input_clear_virtual_interrupt {
	__u64 partition_id;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_clear_virtual_interrupt) == 8,
	       "clear interrupt input is 8 bytes");

/* ------------------------------------------------------------------------
 * HVCALL_REGISTER_INTERCEPT_RESULT
 * ------------------------------------------------------------------------ */
struct hv_register_x64_cpuid_result_input {
	__u32 eax;
	__u32 ecx;
	__u8 subleaf_specific;
	__u8 always_override;
	__u16 padding;
} __attribute__((packed));

struct hv_register_x64_cpuid_result_output {
	__u32 eax;
	__u32 eax_mask;
	__u32 ebx;
	__u32 ebx_mask;
	__u32 ecx;
	__u32 ecx_mask;
	__u32 edx;
	__u32 edx_mask;
} __attribute__((packed));

struct hv_register_x64_cpuid_result_parameters {
	struct hv_register_x64_cpuid_result_input input;
	struct hv_register_x64_cpuid_result_output result;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_register_x64_cpuid_result_parameters) == 44,
	       "cpuid result parameters are 44 bytes");

struct hv_register_x64_msr_result_parameters {
	__u32 msr_index;
	__u32 access_type;
	__u32 action;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_register_x64_msr_result_parameters) == 12,
	       "msr result parameters are 12 bytes");

union hv_register_intercept_result_parameters {
	struct hv_register_x64_cpuid_result_parameters cpuid;
	struct hv_register_x64_msr_result_parameters msr;
} __attribute__((packed));

struct hv_input_register_intercept_result {
	__u64 partition_id;
	__u32 vp_index;
	__u32 intercept_type;
	union hv_register_intercept_result_parameters parameters;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_register_intercept_result) == 60,
	       "register intercept result input is 60 bytes");

/* ------------------------------------------------------------------------
 * HVCALL_GET_GPA_PAGES_ACCESS_STATES
 * ------------------------------------------------------------------------ */
/* flags of the input (union hv_gpa_page_access_state_flags) */
#define HV_GPA_PAGE_ACCESS_CLEAR_ACCESSED	(1ULL << 0)
#define HV_GPA_PAGE_ACCESS_SET_ACCESSED		(1ULL << 1)
#define HV_GPA_PAGE_ACCESS_CLEAR_DIRTY		(1ULL << 2)
#define HV_GPA_PAGE_ACCESS_SET_DIRTY		(1ULL << 3)

struct hv_input_get_gpa_pages_access_state {
	__u64 partition_id;
	__u64 flags;
	__u64 hv_gpa_page_number;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_get_gpa_pages_access_state) == 24,
	       "gpa access state input is 24 bytes");

/* Output: one byte per page (union hv_gpa_page_access_state). */
typedef __u8 hv_gpa_page_access_state;
#define HV_GPA_PAGE_ACCESS_STATE_ACCESSED	0x01
#define HV_GPA_PAGE_ACCESS_STATE_DIRTY		0x02

/* ------------------------------------------------------------------------
 * HVCALL_SIGNAL_EVENT_DIRECT / HVCALL_POST_MESSAGE_DIRECT
 * ------------------------------------------------------------------------ */
struct hv_input_signal_event_direct {
	__u64 target_partition;
	__u32 target_vp;
	__u8 target_vtl;
	__u8 target_sint;
	__u16 flag_number;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_signal_event_direct) == 16,
	       "signal event input is 16 bytes");

struct hv_output_signal_event_direct {
	__u8 newly_signaled;
	__u8 reserved[7];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_output_signal_event_direct) == 8,
	       "signal event output is 8 bytes");

#define HV_MESSAGE_SIZE			256
#define HV_MESSAGE_PAYLOAD_BYTE_COUNT	240
#define HV_MESSAGE_PAYLOAD_QWORD_COUNT	30

struct hv_input_post_message_direct {
	__u64 partition_id;
	__u32 vp_index;
	__u8 vtl;
	__u8 padding[3];
	__u32 sint_index;
	__u8 message[HV_MESSAGE_SIZE];
	__u32 padding2;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_post_message_direct) == 280,
	       "post message input is 280 bytes");

/* ------------------------------------------------------------------------
 * HVCALL_GET_VP_CPUID_VALUES
 * ------------------------------------------------------------------------ */
#define HV_GET_VP_CPUID_VALUES_USE_VP_XFEM_XSS		(1U << 0)
#define HV_GET_VP_CPUID_VALUES_APPLY_REGISTERED_VALUES	(1U << 1)

struct hv_cpuid_leaf_info {
	__u32 eax;
	__u32 ecx;
	__u64 xfem;
	__u64 xss;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_cpuid_leaf_info) == 24, "cpuid leaf info is 24 bytes");

struct hv_input_get_vp_cpuid_values {
	__u64 partition_id;
	__u32 vp_index;
	__u32 flags;
	__u32 reserved;
	__u32 padding;
	struct hv_cpuid_leaf_info cpuid_leaf_info[];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_input_get_vp_cpuid_values) == 24,
	       "cpuid values header is 24 bytes");

struct hv_output_get_vp_cpuid_values {
	__u32 eax;
	__u32 ebx;
	__u32 ecx;
	__u32 edx;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_output_get_vp_cpuid_values) == 16,
	       "cpuid values output is 16 bytes");

/* ------------------------------------------------------------------------
 * hv_message (what MSHV_RUN_VP returns)
 * ------------------------------------------------------------------------ */
#define HVMSG_NONE				0x00000000
#define HVMSG_UNMAPPED_GPA			0x80000000
#define HVMSG_GPA_INTERCEPT			0x80000001
#define HVMSG_UNACCEPTED_GPA			0x80000003
#define HVMSG_GPA_ATTRIBUTE_INTERCEPT		0x80000004
#define HVMSG_TIMER_EXPIRED			0x80000010
#define HVMSG_INVALID_VP_REGISTER_VALUE		0x80000020
#define HVMSG_UNRECOVERABLE_EXCEPTION		0x80000021
#define HVMSG_UNSUPPORTED_FEATURE		0x80000022
#define HVMSG_OPAQUE_INTERCEPT			0x8000003F
#define HVMSG_EVENTLOG_BUFFERCOMPLETE		0x80000040
#define HVMSG_HYPERCALL_INTERCEPT		0x80000050
#define HVMSG_SYNIC_EVENT_INTERCEPT		0x80000060
#define HVMSG_SYNIC_SINT_INTERCEPT		0x80000061
#define HVMSG_SYNIC_SINT_DELIVERABLE		0x80000062
#define HVMSG_ASYNC_CALL_COMPLETION		0x80000070
#define HVMSG_SCHEDULER_VP_SIGNAL_BITSET	0x80000100
#define HVMSG_SCHEDULER_VP_SIGNAL_PAIR		0x80000101
#define HVMSG_X64_IO_PORT_INTERCEPT		0x80010000
#define HVMSG_X64_MSR_INTERCEPT			0x80010001
#define HVMSG_X64_CPUID_INTERCEPT		0x80010002
#define HVMSG_X64_EXCEPTION_INTERCEPT		0x80010003
#define HVMSG_X64_APIC_EOI			0x80010004
#define HVMSG_X64_LEGACY_FP_ERROR		0x80010005
#define HVMSG_X64_IOMMU_PRQ			0x80010006
#define HVMSG_X64_HALT				0x80010007
#define HVMSG_X64_INTERRUPTION_DELIVERABLE	0x80010008
#define HVMSG_X64_SIPI_INTERCEPT		0x80010009
#define HVMSG_X64_RDTSC_INTERCEPT		0x8001000A
#define HVMSG_X64_APIC_SMI_INTERCEPT		0x8001000B
#define HVMSG_X64_APIC_INIT_SIPI_INTERCEPT	0x8001000D
#define HVMSG_X64_APIC_WRITE_INTERCEPT		0x8001000E
#define HVMSG_X64_PROXY_INTERRUPT_INTERCEPT	0x8001000F
#define HVMSG_X64_ISOLATION_CTRL_REG_INTERCEPT	0x80010010
#define HVMSG_X64_SNP_GUEST_REQUEST_INTERCEPT	0x80010011
#define HVMSG_X64_EXCEPTION_TRAP_INTERCEPT	0x80010012
#define HVMSG_X64_SEV_VMGEXIT_INTERCEPT		0x80010013

/* message_flags */
#define HV_MESSAGE_FLAG_PENDING		0x01

struct hv_message_header {
	__u32 message_type;
	__u8 payload_size;
	__u8 message_flags;
	__u8 reserved[2];
	__u64 sender;	/* sender partition, or the port id in the low 32 bits */
} __attribute__((packed));
_Static_assert(sizeof(struct hv_message_header) == 16, "message header is 16 bytes");

struct hv_message {
	struct hv_message_header header;
	__u64 payload[HV_MESSAGE_PAYLOAD_QWORD_COUNT];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_message) == HV_MESSAGE_SIZE, "hv_message is 256 bytes");
_Static_assert(offsetof(struct hv_message, payload) == 16, "payload at 16");

/* Payload of HVMSG_TIMER_EXPIRED */
struct hv_timer_message_payload {
	__u32 timer_index;
	__u32 reserved;
	__u64 expiration_time;
	__u64 delivery_time;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_timer_message_payload) == 24,
	       "timer payload is 24 bytes");

/* ------------------------------------------------------------------------
 * Intercept payloads (x86_64)
 * ------------------------------------------------------------------------ */
/* intercept_access_type values */
#define HV_INTERCEPT_ACCESS_READ	0
#define HV_INTERCEPT_ACCESS_WRITE	1
#define HV_INTERCEPT_ACCESS_EXECUTE	2

/* instruction_length_cr8: instruction length in bits 0-3, CR8 in bits 4-7 */
#define HV_X64_INTERCEPT_INSTRUCTION_LENGTH_SHIFT	0
#define HV_X64_INTERCEPT_INSTRUCTION_LENGTH_MASK	0x0F
#define HV_X64_INTERCEPT_CR8_SHIFT			4
#define HV_X64_INTERCEPT_CR8_MASK			0xF0

/* execution_state (union hv_x64_vp_execution_state) */
#define HV_X64_EXECUTION_STATE_CPL_SHIFT			0
#define HV_X64_EXECUTION_STATE_CPL_MASK				0x0003
#define HV_X64_EXECUTION_STATE_CR0_PE				0x0004
#define HV_X64_EXECUTION_STATE_CR0_AM				0x0008
#define HV_X64_EXECUTION_STATE_EFER_LMA				0x0010
#define HV_X64_EXECUTION_STATE_DEBUG_ACTIVE			0x0020
#define HV_X64_EXECUTION_STATE_INTERRUPTION_PENDING		0x0040
#define HV_X64_EXECUTION_STATE_VTL_SHIFT			7
#define HV_X64_EXECUTION_STATE_VTL_MASK				0x0780
#define HV_X64_EXECUTION_STATE_ENCLAVE_MODE			0x0800
#define HV_X64_EXECUTION_STATE_INTERRUPT_SHADOW			0x1000
#define HV_X64_EXECUTION_STATE_VIRTUALIZATION_FAULT_ACTIVE	0x2000

/* Common head of every x64 intercept payload. */
struct hv_x64_intercept_message_header {
	__u32 vp_index;
	__u8 instruction_length_cr8;
	__u8 intercept_access_type;
	__u16 execution_state;
	struct hv_x64_segment_register cs_segment;
	__u64 rip;
	__u64 rflags;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_intercept_message_header) == 40,
	       "intercept header is 40 bytes");
_Static_assert(offsetof(struct hv_x64_intercept_message_header, cs_segment) == 8,
	       "cs segment at 8");
_Static_assert(offsetof(struct hv_x64_intercept_message_header, rip) == 24, "rip at 24");

/* access_info (union hv_x64_io_port_access_info) */
#define HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_SHIFT	0
#define HV_X64_IO_PORT_ACCESS_INFO_ACCESS_SIZE_MASK	0x07
#define HV_X64_IO_PORT_ACCESS_INFO_STRING_OP		0x08
#define HV_X64_IO_PORT_ACCESS_INFO_REP_PREFIX		0x10

struct hv_x64_io_port_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u16 port_number;
	__u8 access_info;
	__u8 instruction_byte_count;
	__u32 reserved;
	__u64 rax;
	__u8 instruction_bytes[16];
	struct hv_x64_segment_register ds_segment;
	struct hv_x64_segment_register es_segment;
	__u64 rcx;
	__u64 rsi;
	__u64 rdi;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_io_port_intercept_message) == 128,
	       "io port intercept is 128 bytes");
_Static_assert(offsetof(struct hv_x64_io_port_intercept_message, rax) == 48, "rax at 48");
_Static_assert(offsetof(struct hv_x64_io_port_intercept_message, ds_segment) == 72,
	       "ds at 72");
_Static_assert(offsetof(struct hv_x64_io_port_intercept_message, rcx) == 104, "rcx at 104");

/* memory_access_info (union hv_x64_memory_access_info) */
#define HV_X64_MEMORY_ACCESS_INFO_GVA_VALID			0x01
#define HV_X64_MEMORY_ACCESS_INFO_GVA_GPA_VALID			0x02
#define HV_X64_MEMORY_ACCESS_INFO_HYPERCALL_OUTPUT_PENDING	0x04
#define HV_X64_MEMORY_ACCESS_INFO_TLB_LOCKED_NO_OVERLAY		0x08

/* Payload of HVMSG_UNMAPPED_GPA and HVMSG_GPA_INTERCEPT */
struct hv_x64_memory_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u32 cache_type;
	__u8 instruction_byte_count;
	__u8 memory_access_info;
	__u8 tpr_priority;
	__u8 reserved1;
	__u64 guest_virtual_address;
	__u64 guest_physical_address;
	__u8 instruction_bytes[16];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_memory_intercept_message) == 80,
	       "memory intercept is 80 bytes");
_Static_assert(offsetof(struct hv_x64_memory_intercept_message, guest_physical_address) == 56,
	       "gpa at 56");

struct hv_x64_msr_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u32 msr_number;
	__u32 reserved;
	__u64 rdx;
	__u64 rax;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_msr_intercept_message) == 64,
	       "msr intercept is 64 bytes");

struct hv_x64_cpuid_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u64 rax;
	__u64 rcx;
	__u64 rdx;
	__u64 rbx;
	__u64 default_result_rax;
	__u64 default_result_rcx;
	__u64 default_result_rdx;
	__u64 default_result_rbx;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_cpuid_intercept_message) == 104,
	       "cpuid intercept is 104 bytes");

/* exception_info (union hv_x64_exception_info) */
#define HV_X64_EXCEPTION_INFO_ERROR_CODE_VALID		0x01
#define HV_X64_EXCEPTION_INFO_SOFTWARE_EXCEPTION	0x02

struct hv_x64_exception_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u16 exception_vector;
	__u8 exception_info;
	__u8 instruction_byte_count;
	__u32 error_code;
	__u64 exception_parameter;
	__u64 reserved;
	__u8 instruction_bytes[16];
	struct hv_x64_segment_register ds_segment;
	struct hv_x64_segment_register ss_segment;
	__u64 rax;
	__u64 rcx;
	__u64 rdx;
	__u64 rbx;
	__u64 rsp;
	__u64 rbp;
	__u64 rsi;
	__u64 rdi;
	__u64 r8;
	__u64 r9;
	__u64 r10;
	__u64 r11;
	__u64 r12;
	__u64 r13;
	__u64 r14;
	__u64 r15;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_exception_intercept_message) == 240,
	       "exception intercept fills the 240-byte payload");

struct hv_x64_apic_eoi_message {
	__u32 vp_index;
	__u32 interrupt_vector;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_apic_eoi_message) == 8, "apic eoi is 8 bytes");

/* HVMSG_X64_HALT and HVMSG_UNRECOVERABLE_EXCEPTION carry the header only. */
struct hv_x64_halt_message {
	struct hv_x64_intercept_message_header header;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_halt_message) == 40, "halt is header-only");

struct hv_x64_unrecoverable_exception_message {
	struct hv_x64_intercept_message_header header;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_unrecoverable_exception_message) == 40,
	       "unrecoverable exception is header-only");

struct hv_x64_invalid_vp_register_message {
	__u32 vp_index;
	__u32 reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_invalid_vp_register_message) == 8,
	       "invalid vp register is 8 bytes");

/* feature_code values */
#define HV_UNSUPPORTED_FEATURE_INTERCEPT	1
#define HV_UNSUPPORTED_FEATURE_TASK_SWITCH_TSS	2

struct hv_x64_unsupported_feature_message {
	__u32 vp_index;
	__u32 feature_code;
	__u64 feature_parameter;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_unsupported_feature_message) == 16,
	       "unsupported feature is 16 bytes");

struct hv_x64_sipi_intercept_message {
	struct hv_x64_intercept_message_header header;
	__u32 target_vp_index;
	__u32 interrupt_vector;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_sipi_intercept_message) == 48, "sipi is 48 bytes");

struct hv_x64_interruption_deliverable_message {
	struct hv_x64_intercept_message_header header;
	__u32 deliverable_type;	/* HV_X64_PENDING_INTERRUPT/NMI/EXCEPTION */
	__u32 rsvd;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_interruption_deliverable_message) == 48,
	       "interruption deliverable is 48 bytes");

struct hv_x64_sint_deliverable_message {
	struct hv_x64_intercept_message_header header;
	__u16 deliverable_sints;
	__u16 rsvd1;
	__u32 rsvd2;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_x64_sint_deliverable_message) == 48,
	       "sint deliverable is 48 bytes");

struct hv_opaque_intercept_message {
	__u32 vp_index;
} __attribute__((packed));

/* ------------------------------------------------------------------------
 * VP register page (mmap of a VP fd, MSHV_VP_MMAP_OFFSET_REGISTERS)
 * ------------------------------------------------------------------------ */
/* Bit numbers of `dirty` */
#define HV_X64_REGISTER_CLASS_GENERAL	0
#define HV_X64_REGISTER_CLASS_IP	1
#define HV_X64_REGISTER_CLASS_XMM	2
#define HV_X64_REGISTER_CLASS_SEGMENT	3
#define HV_X64_REGISTER_CLASS_FLAGS	4

#define HV_VP_REGISTER_PAGE_VERSION_1		1

/* interrupt_vectors: count in byte 0, up to seven vectors in bytes 1-7 */
#define HV_VP_REGISTER_PAGE_MAX_VECTOR_COUNT	7
#define HV_VP_REGISTER_PAGE_VECTOR_COUNT_MASK	0xFFULL

struct hv_vp_register_page {
	__u16 version;
	__u8 isvalid;
	__u8 rsvdz;
	__u32 dirty;
	__u64 rax;
	__u64 rcx;
	__u64 rdx;
	__u64 rbx;
	__u64 rsp;
	__u64 rbp;
	__u64 rsi;
	__u64 rdi;
	__u64 r8;
	__u64 r9;
	__u64 r10;
	__u64 r11;
	__u64 r12;
	__u64 r13;
	__u64 r14;
	__u64 r15;
	__u64 rip;
	__u64 rflags;
	__u8 reserved[8];
	struct hv_u128 xmm0;
	struct hv_u128 xmm1;
	struct hv_u128 xmm2;
	struct hv_u128 xmm3;
	struct hv_u128 xmm4;
	struct hv_u128 xmm5;
	struct hv_x64_segment_register es;
	struct hv_x64_segment_register cs;
	struct hv_x64_segment_register ss;
	struct hv_x64_segment_register ds;
	struct hv_x64_segment_register fs;
	struct hv_x64_segment_register gs;
	__u64 cr0;
	__u64 cr3;
	__u64 cr4;
	__u64 cr8;
	__u64 efer;
	__u64 dr7;
	__u64 pending_interruption;
	__u64 interrupt_state;
	__u64 instruction_emulation_hints;
	__u64 xfem;
	__u8 reserved1[0x100];
	__u64 interrupt_vectors;
} __attribute__((packed));
_Static_assert(offsetof(struct hv_vp_register_page, dirty) == 4, "dirty at 4");
_Static_assert(offsetof(struct hv_vp_register_page, rax) == 8, "gprs at 8");
_Static_assert(offsetof(struct hv_vp_register_page, rip) == 136, "rip at 136");
_Static_assert(offsetof(struct hv_vp_register_page, rflags) == 144, "rflags at 144");
_Static_assert(offsetof(struct hv_vp_register_page, reserved) == 152, "reserved at 152");
_Static_assert(offsetof(struct hv_vp_register_page, xmm0) == 160, "xmm0 at 160");
_Static_assert(offsetof(struct hv_vp_register_page, es) == 256, "segments at 256");
_Static_assert(offsetof(struct hv_vp_register_page, cr0) == 352, "cr0 at 352");
_Static_assert(offsetof(struct hv_vp_register_page, cr3) == 360, "cr3 at 360");
_Static_assert(offsetof(struct hv_vp_register_page, cr4) == 368, "cr4 at 368");
_Static_assert(offsetof(struct hv_vp_register_page, cr8) == 376, "cr8 at 376");
_Static_assert(offsetof(struct hv_vp_register_page, efer) == 384, "efer at 384");
_Static_assert(offsetof(struct hv_vp_register_page, dr7) == 392, "dr7 at 392");
_Static_assert(offsetof(struct hv_vp_register_page, pending_interruption) == 400,
	       "pending_interruption at 400");
_Static_assert(offsetof(struct hv_vp_register_page, interrupt_state) == 408,
	       "interrupt_state at 408");
_Static_assert(offsetof(struct hv_vp_register_page, instruction_emulation_hints) == 416,
	       "instruction_emulation_hints at 416");
_Static_assert(offsetof(struct hv_vp_register_page, xfem) == 424, "xfem at 424");
_Static_assert(offsetof(struct hv_vp_register_page, reserved1) == 432, "reserved1 at 432");
_Static_assert(offsetof(struct hv_vp_register_page, interrupt_vectors) == 688,
	       "interrupt_vectors at 688");
_Static_assert(sizeof(struct hv_vp_register_page) == 696, "register page uses 696 bytes");

/* ------------------------------------------------------------------------
 * VP state (MSHV_GET/SET_VP_STATE buffers, HVCALL_GET/SET_VP_STATE)
 * ------------------------------------------------------------------------ */
#define HV_GET_SET_VP_STATE_TYPE_PFN		(1U << 31)
#define HV_GET_SET_VP_STATE_LAPIC_STATE		(0U | HV_GET_SET_VP_STATE_TYPE_PFN)
#define HV_GET_SET_VP_STATE_XSAVE		(1U | HV_GET_SET_VP_STATE_TYPE_PFN)
#define HV_GET_SET_VP_STATE_SIM_PAGE		(2U | HV_GET_SET_VP_STATE_TYPE_PFN)
#define HV_GET_SET_VP_STATE_SIEF_PAGE		(3U | HV_GET_SET_VP_STATE_TYPE_PFN)
#define HV_GET_SET_VP_STATE_SYNTHETIC_TIMERS	4U

/* Local APIC state (HV_X64_INTERRUPT_CONTROLLER_STATE). */
struct hv_local_interrupt_controller_state {
	__u32 apic_id;
	__u32 apic_version;
	__u32 apic_ldr;
	__u32 apic_dfr;
	__u32 apic_spurious;
	__u32 apic_isr[8];
	__u32 apic_tmr[8];
	__u32 apic_irr[8];
	__u32 apic_esr;
	__u32 apic_icr_high;
	__u32 apic_icr_low;
	__u32 apic_lvt_timer;
	__u32 apic_lvt_thermal;
	__u32 apic_lvt_perfmon;
	__u32 apic_lvt_lint0;
	__u32 apic_lvt_lint1;
	__u32 apic_lvt_error;
	__u32 apic_lvt_cmci;
	__u32 apic_error_status;
	__u32 apic_initial_count;
	__u32 apic_counter_value;
	__u32 apic_divide_configuration;
	__u32 apic_remote_read;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_local_interrupt_controller_state) == 176,
	       "lapic state is 176 bytes");

/* flags of hv_stimer_state */
#define HV_STIMER_STATE_UNDELIVERED_MSG_PENDING	0x00000001

struct hv_stimer_state {
	__u32 flags;
	__u32 resvd;
	__u64 config;
	__u64 count;
	__u64 adjustment;
	__u64 undelivered_exp_time;
} __attribute__((packed));
_Static_assert(sizeof(struct hv_stimer_state) == 40, "stimer state is 40 bytes");

struct hv_synthetic_timers_state {
	struct hv_stimer_state timers[HV_SYNIC_STIMER_COUNT];
	__u64 reserved[5];
} __attribute__((packed));
_Static_assert(sizeof(struct hv_synthetic_timers_state) == 200,
	       "synthetic timers state is 200 bytes");

/* Synthetic timer config (union hv_stimer_config) */
#define HV_STIMER_CONFIG_ENABLE			(1ULL << 0)
#define HV_STIMER_CONFIG_PERIODIC		(1ULL << 1)
#define HV_STIMER_CONFIG_LAZY			(1ULL << 2)
#define HV_STIMER_CONFIG_AUTO_ENABLE		(1ULL << 3)
#define HV_STIMER_CONFIG_APIC_VECTOR_SHIFT	4
#define HV_STIMER_CONFIG_APIC_VECTOR_MASK	(0xFFULL << 4)
#define HV_STIMER_CONFIG_DIRECT_MODE		(1ULL << 12)
#define HV_STIMER_CONFIG_SINTX_SHIFT		16
#define HV_STIMER_CONFIG_SINTX_MASK		(0xFULL << 16)

/*
 * Partition processor features (HV_PARTITION_PROPERTY_PROCESSOR_FEATURES0/1,
 * PROCESSOR_XSAVE_FEATURES): bit numbers.
 * Bit numbers of union hv_partition_processor_features (kernel hvhdk.h, in
 * bitfield order): bank 0 = PROCESSOR_FEATURES0, bank 1 = PROCESSOR_FEATURES1;
 * and of union hv_partition_processor_xsave_features.
 */
#define HV_PROC_FEATURE0_SSE3_BIT	0
#define HV_PROC_FEATURE0_LAHF_SAHF_BIT	1
#define HV_PROC_FEATURE0_SSSE3_BIT	2
#define HV_PROC_FEATURE0_SSE4_1_BIT	3
#define HV_PROC_FEATURE0_SSE4_2_BIT	4
#define HV_PROC_FEATURE0_SSE4A_BIT	5
#define HV_PROC_FEATURE0_XOP_BIT	6
#define HV_PROC_FEATURE0_POPCNT_BIT	7
#define HV_PROC_FEATURE0_CMPXCHG16B_BIT	8
#define HV_PROC_FEATURE0_ALTMOVCR8_BIT	9
#define HV_PROC_FEATURE0_LZCNT_BIT	10
#define HV_PROC_FEATURE0_MIS_ALIGN_SSE_BIT	11
#define HV_PROC_FEATURE0_MMX_EXT_BIT	12
#define HV_PROC_FEATURE0_AMD3DNOW_BIT	13
#define HV_PROC_FEATURE0_EXTENDED_AMD3DNOW_BIT	14
#define HV_PROC_FEATURE0_PAGE_1GB_BIT	15
#define HV_PROC_FEATURE0_AES_BIT	16
#define HV_PROC_FEATURE0_PCLMULQDQ_BIT	17
#define HV_PROC_FEATURE0_PCID_BIT	18
#define HV_PROC_FEATURE0_FMA4_BIT	19
#define HV_PROC_FEATURE0_F16C_BIT	20
#define HV_PROC_FEATURE0_RDRAND_BIT	21
#define HV_PROC_FEATURE0_RD_WR_FS_GS_BIT	22
#define HV_PROC_FEATURE0_SMEP_BIT	23
#define HV_PROC_FEATURE0_ENHANCED_FAST_STRING_BIT	24
#define HV_PROC_FEATURE0_BMI1_BIT	25
#define HV_PROC_FEATURE0_BMI2_BIT	26
#define HV_PROC_FEATURE0_HLE_DEPRECATED_BIT	27
#define HV_PROC_FEATURE0_RTM_DEPRECATED_BIT	28
#define HV_PROC_FEATURE0_MOVBE_BIT	29
#define HV_PROC_FEATURE0_NPIEP1_BIT	30
#define HV_PROC_FEATURE0_DEP_X87_FPU_SAVE_BIT	31
#define HV_PROC_FEATURE0_RDSEED_BIT	32
#define HV_PROC_FEATURE0_ADX_BIT	33
#define HV_PROC_FEATURE0_INTEL_PREFETCH_BIT	34
#define HV_PROC_FEATURE0_SMAP_BIT	35
#define HV_PROC_FEATURE0_HLE_BIT	36
#define HV_PROC_FEATURE0_RTM_BIT	37
#define HV_PROC_FEATURE0_RDTSCP_BIT	38
#define HV_PROC_FEATURE0_CLFLUSHOPT_BIT	39
#define HV_PROC_FEATURE0_CLWB_BIT	40
#define HV_PROC_FEATURE0_SHA_BIT	41
#define HV_PROC_FEATURE0_X87_POINTERS_SAVED_BIT	42
#define HV_PROC_FEATURE0_INVPCID_BIT	43
#define HV_PROC_FEATURE0_IBRS_BIT	44
#define HV_PROC_FEATURE0_STIBP_BIT	45
#define HV_PROC_FEATURE0_IBPB_BIT	46
#define HV_PROC_FEATURE0_UNRESTRICTED_GUEST_BIT	47
#define HV_PROC_FEATURE0_MDD_BIT	48
#define HV_PROC_FEATURE0_FAST_SHORT_REP_MOV_BIT	49
#define HV_PROC_FEATURE0_L1DCACHE_FLUSH_BIT	50
#define HV_PROC_FEATURE0_RDCL_NO_BIT	51
#define HV_PROC_FEATURE0_IBRS_ALL_BIT	52
#define HV_PROC_FEATURE0_SKIP_L1DF_BIT	53
#define HV_PROC_FEATURE0_SSB_NO_BIT	54
#define HV_PROC_FEATURE0_RSB_A_NO_BIT	55
#define HV_PROC_FEATURE0_VIRT_SPEC_CTRL_BIT	56
#define HV_PROC_FEATURE0_RD_PID_BIT	57
#define HV_PROC_FEATURE0_UMIP_BIT	58
#define HV_PROC_FEATURE0_MBS_NO_BIT	59
#define HV_PROC_FEATURE0_MB_CLEAR_BIT	60
#define HV_PROC_FEATURE0_TAA_NO_BIT	61
#define HV_PROC_FEATURE0_TSX_CTRL_BIT	62
#define HV_PROC_FEATURE1_ACOUNT_MCOUNT_BIT	0
#define HV_PROC_FEATURE1_TSC_INVARIANT_BIT	1
#define HV_PROC_FEATURE1_CL_ZERO_BIT	2
#define HV_PROC_FEATURE1_RDPRU_BIT	3
#define HV_PROC_FEATURE1_LA57_BIT	4
#define HV_PROC_FEATURE1_MBEC_BIT	5
#define HV_PROC_FEATURE1_NESTED_VIRT_BIT	6
#define HV_PROC_FEATURE1_PSFD_BIT	7
#define HV_PROC_FEATURE1_CET_SS_BIT	8
#define HV_PROC_FEATURE1_CET_IBT_BIT	9
#define HV_PROC_FEATURE1_VMX_EXCEPTION_INJECT_BIT	10
#define HV_PROC_FEATURE1_ENQCMD_BIT	11
#define HV_PROC_FEATURE1_UMWAIT_TPAUSE_BIT	12
#define HV_PROC_FEATURE1_MOVDIRI_BIT	13
#define HV_PROC_FEATURE1_MOVDIR64B_BIT	14
#define HV_PROC_FEATURE1_CLDEMOTE_BIT	15
#define HV_PROC_FEATURE1_SERIALIZE_BIT	16
#define HV_PROC_FEATURE1_TSC_DEADLINE_TMR_BIT	17
#define HV_PROC_FEATURE1_TSC_ADJUST_BIT	18
#define HV_PROC_FEATURE1_FZLREP_MOVSB_BIT	19
#define HV_PROC_FEATURE1_FSREP_STOSB_BIT	20
#define HV_PROC_FEATURE1_FSREP_CMPSB_BIT	21
#define HV_PROC_XSAVE_FEATURE_XSAVE_BIT		0
#define HV_PROC_XSAVE_FEATURE_XSAVEOPT_BIT	1
#define HV_PROC_XSAVE_FEATURE_AVX_BIT		2
#define HV_PROC_XSAVE_FEATURE_AVX2_BIT	3
#define HV_PROC_XSAVE_FEATURE_FMA_BIT	4
#define HV_PROC_XSAVE_FEATURE_MPX_BIT	5
#define HV_PROC_XSAVE_FEATURE_AVX512_BIT	6
#define HV_PROC_XSAVE_FEATURE_AVX512_DQ_BIT	7
#define HV_PROC_XSAVE_FEATURE_AVX512_CD_BIT	8
#define HV_PROC_XSAVE_FEATURE_AVX512_BW_BIT	9
#define HV_PROC_XSAVE_FEATURE_AVX512_VL_BIT	10
#define HV_PROC_XSAVE_FEATURE_XSAVE_COMP_BIT	11
#define HV_PROC_XSAVE_FEATURE_XSAVE_SUPERVISOR_BIT	12
#define HV_PROC_XSAVE_FEATURE_XCR1_BIT	13
#define HV_PROC_XSAVE_FEATURE_AVX512_BITALG_BIT	14
#define HV_PROC_XSAVE_FEATURE_AVX512_I_FMA_BIT	15
#define HV_PROC_XSAVE_FEATURE_AVX512_V_BMI_BIT	16
#define HV_PROC_XSAVE_FEATURE_AVX512_V_BMI2_BIT	17
#define HV_PROC_XSAVE_FEATURE_AVX512_VNNI_BIT	18
#define HV_PROC_XSAVE_FEATURE_GFNI_BIT	19
#define HV_PROC_XSAVE_FEATURE_VAES_BIT	20
#define HV_PROC_XSAVE_FEATURE_AVX512_V_POPCNTDQ_BIT	21
#define HV_PROC_XSAVE_FEATURE_VPCLMULQDQ_BIT	22
#define HV_PROC_XSAVE_FEATURE_AVX512_BF16_BIT	23
#define HV_PROC_XSAVE_FEATURE_AVX512_VP2_INTERSECT_BIT	24
#define HV_PROC_XSAVE_FEATURE_AVX512_FP16_BIT	25
#define HV_PROC_XSAVE_FEATURE_XFD_BIT	26
#define HV_PROC_XSAVE_FEATURE_AMX_TILE_BIT	27
#define HV_PROC_XSAVE_FEATURE_AMX_BF16_BIT	28
#define HV_PROC_XSAVE_FEATURE_AMX_INT8_BIT	29
#define HV_PROC_XSAVE_FEATURE_AVX_VNNI_BIT	30
#define HV_PROC_XSAVE_FEATURE_AVX_IFMA_BIT	31
#define HV_PROC_XSAVE_FEATURE_AVX_NE_CONVERT_BIT	32
#define HV_PROC_XSAVE_FEATURE_AVX_VNNI_INT8_BIT	33
#define HV_PROC_XSAVE_FEATURE_AVX_VNNI_INT16_BIT	34
#define HV_PROC_XSAVE_FEATURE_AVX10_1_256_BIT	35
#define HV_PROC_XSAVE_FEATURE_AVX10_1_512_BIT	36
#define HV_PROC_XSAVE_FEATURE_AMX_FP16_BIT	37
#define HV_PROC_XSAVE_FEATURE_APX_BIT	38
#define HV_PROC_XSAVE_FEATURE_APX_NCI_NDD_NF_BIT	39

/*
 * Values of HV_PARTITION_PROPERTY_PROCESSOR_VENDOR (HV_PROCESSOR_VENDOR of the
 * archived hypervisor documentation; openvmm's hvdef HvProcessorVendor).
 */
#define HV_PROCESSOR_VENDOR_AMD		0x0000
#define HV_PROCESSOR_VENDOR_INTEL	0x0001
#define HV_PROCESSOR_VENDOR_HYGON	0x0002
#define HV_PROCESSOR_VENDOR_ARM		0x0010

#endif /* MSHV_HVDEFS_H */
