/* SPDX-License-Identifier: MIT */
/*
 * Driver side: the errno a failed hypercall status gives (hv_result_to_errno
 * and its table hv_status_infos, drivers/hv/hv_common.c). Shared by the
 * MSHV_ROOT_HVCALL passthrough (hvcall.c) and the driver ioctls that make a
 * hypercall of their own (gpap.c).
 */
#include "emu.h"

int emu_hv_status_errno(uint16_t status)
{
	switch (status) {
	case HV_STATUS_SUCCESS:
		return 0;
	case HV_STATUS_INVALID_HYPERCALL_CODE:
	case HV_STATUS_INVALID_HYPERCALL_INPUT:
	case HV_STATUS_INVALID_PARAMETER:
	case HV_STATUS_INVALID_PARTITION_ID:
	case HV_STATUS_INVALID_VP_INDEX:
	case HV_STATUS_INVALID_PORT_ID:
	case HV_STATUS_INVALID_CONNECTION_ID:
	case HV_STATUS_INVALID_LP_INDEX:	/* first entry wins: EINVAL */
	case HV_STATUS_INVALID_REGISTER_VALUE:	/* likewise */
		return EINVAL;
	case HV_STATUS_INSUFFICIENT_MEMORY:
	case HV_STATUS_INSUFFICIENT_ROOT_MEMORY:		/* ≥7.0 */
	case HV_STATUS_INSUFFICIENT_CONTIGUOUS_MEMORY:		/* ≥7.0 */
	case HV_STATUS_INSUFFICIENT_CONTIGUOUS_ROOT_MEMORY:	/* ≥7.0 */
		return ENOMEM;
	case HV_STATUS_INVALID_ALIGNMENT:
	case HV_STATUS_ACCESS_DENIED:
	case HV_STATUS_INVALID_PARTITION_STATE:
	case HV_STATUS_OPERATION_DENIED:
	case HV_STATUS_UNKNOWN_PROPERTY:
	case HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE:
	case HV_STATUS_NOT_FOUND:
	case HV_STATUS_INSUFFICIENT_BUFFERS:
	case HV_STATUS_NOT_ACKNOWLEDGED:
	case HV_STATUS_INVALID_VP_STATE:
	case HV_STATUS_NO_RESOURCES:
	case HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED:
	case HV_STATUS_OPERATION_FAILED:
	case HV_STATUS_TIME_OUT:
	case HV_STATUS_CALL_PENDING:
	case HV_STATUS_VTL_ALREADY_ENABLED:
	default:			/* unknown code: EIO */
		return EIO;
	}
}
