/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor side: the partition reference time and TIME_FREEZE.
 *
 * The partition reference counter (TLFS "Partition Reference Counter",
 * HV_X64_MSR_TIME_REF_COUNT) counts 100 ns units from 0 at partition
 * creation. HV_PARTITION_PROPERTY_TIME_FREEZE stops it (1) and resumes it
 * from the value it stopped at (0); HV_PARTITION_PROPERTY_REFERENCE_TIME
 * reads it at any time and sets it only while time is frozen.
 *
 * Approximated: the TLFS counter advances only while at least one VP is not
 * explicitly suspended; here it advances from creation whenever it is not
 * frozen. The counter is host CLOCK_MONOTONIC minus an offset, so it never
 * goes backwards on its own.
 */
#include <time.h>

#include "emu.h"

/* 100 ns units of the host's monotonic clock. */
static uint64_t emu_host_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 10000000ULL + (uint64_t)ts.tv_nsec / 100;
}

void emu_time_init(struct emu_partition *pt)
{
	pthread_mutex_init(&pt->time.lock, NULL);
	pt->time.offset = emu_host_ticks();
	pt->time.frozen = false;
	pt->time.frozen_at = 0;
}

void emu_time_destroy(struct emu_partition *pt)
{
	pthread_mutex_destroy(&pt->time.lock);
}

static uint64_t emu_time_reference_locked(struct emu_partition *pt)
{
	if (pt->time.frozen)
		return pt->time.frozen_at;
	return emu_host_ticks() - pt->time.offset;
}

uint64_t emu_time_reference(struct emu_partition *pt)
{
	uint64_t t;

	pthread_mutex_lock(&pt->time.lock);
	t = emu_time_reference_locked(pt);
	pthread_mutex_unlock(&pt->time.lock);
	return t;
}

bool emu_time_frozen(struct emu_partition *pt)
{
	bool frozen;

	pthread_mutex_lock(&pt->time.lock);
	frozen = pt->time.frozen;
	pthread_mutex_unlock(&pt->time.lock);
	return frozen;
}

/*
 * TIME_FREEZE 1/0. Freezing while frozen and thawing while running change
 * nothing. On thaw the counter resumes from the frozen value (or the one
 * REFERENCE_TIME set meanwhile). Returns an HV status.
 */
uint16_t emu_time_freeze(struct emu_partition *pt, bool freeze)
{
	pthread_mutex_lock(&pt->time.lock);
	if (freeze && !pt->time.frozen) {
		pt->time.frozen_at = emu_time_reference_locked(pt);
		pt->time.frozen = true;
	} else if (!freeze && pt->time.frozen) {
		pt->time.offset = emu_host_ticks() - pt->time.frozen_at;
		pt->time.frozen = false;
	}
	pthread_mutex_unlock(&pt->time.lock);
	return HV_STATUS_SUCCESS;
}

/* REFERENCE_TIME set: only while frozen, else HV_STATUS_INVALID_PARTITION_STATE. */
uint16_t emu_time_reference_set(struct emu_partition *pt, uint64_t ticks)
{
	uint16_t status = HV_STATUS_SUCCESS;

	pthread_mutex_lock(&pt->time.lock);
	if (pt->time.frozen)
		pt->time.frozen_at = ticks;
	else
		status = HV_STATUS_INVALID_PARTITION_STATE;
	pthread_mutex_unlock(&pt->time.lock);
	return status;
}
