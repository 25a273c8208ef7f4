#pragma once
/* flood.h - flood protection per source address (SPEC §13, issue 13).
 *
 * limits.source_rate {rate, burst}: requests per second one source address
 * may send, as a token bucket (GCRA: one 64-bit word per source, updated
 * with a CAS, no lock). Past it a request is dropped without a response (no
 * amplification) and counted in referee_flood_drops_total; each source gets
 * at most one log line a minute. Trusted sources are exempt; responses are
 * never limited. The table has limits.sources_max slots (keyed SipHash of
 * the address; rebuilt at that size by a reload that changes it): a new
 * source takes the slot of the idlest one it hashes to (counted in
 * referee_flood_sources_evicted_total when that one was still limited).
 * Called once per datagram, before any stage. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "txn.h"

/* flood_init - the table for @c->limits.sources_max sources, metrics. 0 or -ENOMEM. Startup. */
int flood_init(const struct cfg *c);
void flood_fini(void);
/* flood_reload - @c's limits.sources_max when it differs: a table of that size,
 * the sources carried over, published; the old one freed after a grace period.
 * Main thread (reload). 0, or -ENOMEM with the old table kept (logged). */
int flood_reload(const struct cfg *c);

/* flood_source - the address a request is accounted to (SPEC §13 with §11):
 * the client behind a configured load balancer (txn_client_addr), else the
 * datagram's source. Returns &t->src or @buf. */
const struct sockaddr *flood_source(const struct txn *t, struct sockaddr_storage *buf);

/* flood_admit - false when @t is a request over its source's rate (drop it
 * silently: already counted and logged). Any worker thread, inside its RCU read-side section. */
bool flood_admit(struct txn *t);

/**
 * flood_check - the bucket decision for @src at @now_us (microseconds of
 * CLOCK_MONOTONIC) with @rate per second and @burst. true = admitted. No
 * trust, counting or logging (flood_admit does those); tests and fuzzing.
 */
bool flood_check(const struct sockaddr *src, uint64_t now_us, unsigned rate, unsigned burst);

struct flood_stats {
	uint64_t drops, evicted;
	unsigned long sources_max;
};
void flood_stats_get(struct flood_stats *out);
