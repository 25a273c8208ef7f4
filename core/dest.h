#pragma once
/* dest.h - route destinations: which one a request goes to (SPEC §10) and
 * whether each is up (OPTIONS health probes).
 *
 *   dest_select.c   weighted rendezvous hashing of the Call-ID over the
 *                   destinations that are up: a dialog stays on one
 *                   destination, and a destination going down moves only
 *                   the dialogs it had
 *   health_probe.c  one thread, off the packet path, that probes every
 *                   destination with OPTIONS and publishes up/down
 *
 * Hot path (workers): dest_key, dest_pick and health_up_mask: no allocation,
 * no lock, no syscall. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "slice.h"

#define DEST_NONE (-1)

/* dest_seed - the rendezvous identity of a destination or target from its
 * text or address bytes: an unkeyed hash, so it is the same on every instance
 * and before and after the secret is known (cfg_load runs before it). */
uint64_t dest_seed(const void *p, size_t n);

/* dest_key - the selection key of a request: a hash of its Call-ID (keyed
 * from the shared secret: the same on every instance, so instances behind a
 * balancer agree, and not steerable by a crafted Call-ID). */
uint64_t dest_key(struct slice call_id);

/**
 * dest_pick - the destination of @set for @key among those whose bit is set
 * in @up_mask (bit i = set->d[i]). Highest weighted rendezvous score wins:
 * score_i = weight_i / -ln(u_i), u_i uniform in (0,1) from hash(key, seed_i),
 * so destination i is chosen with probability weight_i / sum of weights.
 * Returns the index, or DEST_NONE when no destination is up.
 */
int dest_pick(const struct cfg_destset *set, uint64_t key, uint32_t up_mask);

/* dest_cost - -ln(u) / @weight for the pseudo-random u of (@key, @seed): the
 * rendezvous rank, lowest wins (dest_pick, and dns_pick for SRV targets). */
double dest_cost(uint64_t key, uint64_t seed, unsigned weight);

/* dest_all_up - the mask with every destination of @set up. */
static inline uint32_t dest_all_up(const struct cfg_destset *set)
{
	return set->n >= 32 ? UINT32_MAX : (1u << set->n) - 1u;
}

/* ---- health (core/health_probe.c) */

enum dest_route { DEST_ROUTE_LOCAL = 0, DEST_ROUTE_OUTBOUND, DEST_ROUTE_COUNT };

/**
 * health_up_mask - which destinations of @set are up, as the prober last
 * published (RCU: call inside the worker's read-side section). A set the
 * prober does not know (probes off, or a reload not picked up yet) is all up.
 */
uint32_t health_up_mask(enum dest_route route, const struct cfg_destset *set);

/**
 * health_start - start probing the routes of @c (health.interval > 0) on a
 * thread of its own; registers referee_route_up. Copies what it needs from
 * @c. 0 or a negative errno (with a log line). Main thread, at start.
 */
int health_start(const struct cfg *c);
/* health_reload - probe the routes of @c from now on; destinations that stay
 * keep their state. Main thread (SIGHUP). */
void health_reload(const struct cfg *c);
/* health_stop - stop and join the thread, free everything. Main thread. */
void health_stop(void);
/* health_retry_after - seconds to put in Retry-After when every destination is down. */
unsigned health_retry_after(const struct cfg *c);
