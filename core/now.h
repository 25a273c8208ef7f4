#pragma once
/* now.h - the clocks, in one place. Two kinds, for two purposes:
 *   wall time (now_unix_sec): what other instances and clients compare
 *     against: nonce and grant timestamps, sipx signatures.
 *   monotonic time (now_mono_*): ages, windows, timeouts and latencies inside
 *     this process; never jumps when the wall clock is set.
 * All read the vDSO (no syscall) and are inline: the hot path stamps every
 * message with now_mono_ns. */
#include <stdint.h>
#include <time.h>

static inline uint64_t now_read_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* now_unix_sec - unix seconds from the coarse realtime clock (resolution: one tick). */
static inline uint64_t now_unix_sec(void)
{
	return now_read_ns(CLOCK_REALTIME_COARSE) / 1000000000ull;
}

/* now_mono_sec - coarse monotonic seconds (since boot; resolution: one tick). */
static inline uint64_t now_mono_sec(void)
{
	return now_read_ns(CLOCK_MONOTONIC_COARSE) / 1000000000ull;
}

/* now_mono_coarse_ns - coarse monotonic nanoseconds (resolution: one tick, cheaper). */
static inline uint64_t now_mono_coarse_ns(void)
{
	return now_read_ns(CLOCK_MONOTONIC_COARSE);
}

/* now_mono_ms - monotonic milliseconds (precise clock). */
static inline uint64_t now_mono_ms(void)
{
	return now_read_ns(CLOCK_MONOTONIC) / 1000000ull;
}

/* now_mono_ns - monotonic nanoseconds (precise clock). */
static inline uint64_t now_mono_ns(void)
{
	return now_read_ns(CLOCK_MONOTONIC);
}
