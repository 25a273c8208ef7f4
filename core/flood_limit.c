/* flood_limit.c - per-source token buckets (SPEC §13), see flood.h.
 *
 * GCRA: a source's whole state is its theoretical arrival time (TAT). With
 * T = 1 s / rate, a request at `now` is admitted when
 *     max(TAT, now) + T - now <= burst * T
 * and then TAT becomes max(TAT, now) + T: `burst` requests back to back, then
 * one every T. One slot is one _Atomic uint64_t: a 16-bit tag of the
 * address's keyed hash (0 = empty) and the TAT in microseconds since
 * flood_init in the other 48 bits (8.9 years). Updated with a CAS; two
 * threads admitting the same source retry against each other, never block.
 * Slots form 2-way sets picked by the same keyed hash (slice_hash): a source
 * that finds neither slot its own takes the one whose TAT is oldest (that
 * source's bucket is the fullest, so forgetting it costs the least). Beside
 * each slot: the drops since its last log line and the minute of that line. */
#include "flood.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "now.h"
#include "slice.h"

#define TAT_BITS 48
#define TAT_MASK ((1ull << TAT_BITS) - 1)
#define SLOT(tag, tat) (((uint64_t)(tag) << TAT_BITS) | ((tat) & TAT_MASK))
#define SLOT_TAG(w) ((uint16_t)((w) >> TAT_BITS))
#define SLOT_TAT(w) ((w) & TAT_MASK)

struct flood_side {
	_Atomic uint32_t drops;	   /* since the source's last log line */
	_Atomic uint32_t log_sec;  /* second (+1) of that line; 0 = never */
};

static struct {
	_Atomic uint64_t *slot;
	struct flood_side *side;
	size_t n_sets; /* power of two; 2 slots each */
	uint64_t epoch_us;
	unsigned m_drops, m_evicted;
	bool registered;
} flood_g;

static uint64_t mono_us(void)
{
	return now_mono_ns() / 1000;
}

int flood_init(const struct cfg *c)
{
	flood_fini();
	if (!flood_g.registered) {
		flood_g.m_drops = metrics_counter("referee_flood_drops_total",
						  "Requests dropped without a response: their source was over "
						  "limits.source_rate (SPEC §13)",
						  NULL, NULL, 0);
		flood_g.m_evicted = metrics_counter("referee_flood_sources_evicted_total",
						    "Sources still over their rate forgotten to make room for "
						    "another (limits.sources_max is full)",
						    NULL, NULL, 0);
		flood_g.registered = true;
	}
	size_t want = c && c->limits.sources_max ? c->limits.sources_max : 100000;
	size_t sets = 1;
	while (sets * 2 < want)
		sets <<= 1;
	flood_g.slot = calloc(sets * 2, sizeof(*flood_g.slot));
	flood_g.side = calloc(sets * 2, sizeof(*flood_g.side));
	if (!flood_g.slot || !flood_g.side) {
		flood_fini();
		return -ENOMEM;
	}
	flood_g.n_sets = sets;
	flood_g.epoch_us = mono_us();
	return 0;
}

void flood_fini(void)
{
	free(flood_g.slot);
	free(flood_g.side);
	flood_g.slot = NULL;
	flood_g.side = NULL;
	flood_g.n_sets = 0;
}

const struct sockaddr *flood_source(const struct txn *t, struct sockaddr_storage *buf)
{
	return txn_client_addr(t, buf);
}

/* addr_key - the address bytes a source is known by (no port; an IPv4-mapped
 * IPv6 address is the IPv4 one). Length 0 for other families. */
static struct slice addr_key(const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (sa->sa_family == AF_INET)
		return slice_make((const char *)&((const struct sockaddr_in *)sa)->sin_addr, 4);
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0)
			return slice_make((const char *)a + 12, 4);
		return slice_make((const char *)a, 16);
	}
	return SLICE_NULL;
}

/* bucket - admit or not the source of slot index *@idx; the CAS loop. */
static bool bucket(struct slice key, uint64_t now_us, unsigned rate, unsigned burst, size_t *idx)
{
	uint64_t h = slice_hash(key);
	uint16_t tag = (uint16_t)(h >> 48) | 1; /* never 0: 0 is an empty slot */
	size_t base = (size_t)(h & (flood_g.n_sets - 1)) * 2;
	uint64_t now = now_us > flood_g.epoch_us ? now_us - flood_g.epoch_us : 0;
	uint64_t period = 1000000ull / (rate ? rate : 1);
	if (period == 0)
		period = 1;
	uint64_t limit = period * (burst ? burst : 1);
	for (int tries = 0; tries < 8; tries++) {
		uint64_t w0 = atomic_load_explicit(&flood_g.slot[base], memory_order_relaxed);
		uint64_t w1 = atomic_load_explicit(&flood_g.slot[base + 1], memory_order_relaxed);
		size_t k;
		uint64_t seen, tat;
		if (SLOT_TAG(w0) == tag || SLOT_TAG(w1) == tag) {
			k = SLOT_TAG(w0) == tag ? base : base + 1;
			seen = k == base ? w0 : w1;
			tat = SLOT_TAT(seen);
		} else {
			/* not known: take the empty or the idlest slot of the set */
			k = SLOT_TAT(w0) <= SLOT_TAT(w1) ? base : base + 1;
			seen = k == base ? w0 : w1;
			tat = 0;
			if (SLOT_TAG(seen) && SLOT_TAT(seen) > now + period)
				metrics_inc(flood_g.m_evicted); /* it was still over its rate */
		}
		uint64_t start = tat > now ? tat : now;
		if (start + period - now > limit) {
			*idx = k;
			return false; /* over the rate: nothing to store */
		}
		if (atomic_compare_exchange_weak_explicit(&flood_g.slot[k], &seen, SLOT(tag, start + period),
							  memory_order_relaxed, memory_order_relaxed)) {
			if (tat == 0 && SLOT_TAG(seen) != tag) { /* a new owner starts with a clean log */
				atomic_store_explicit(&flood_g.side[k].drops, 0, memory_order_relaxed);
				atomic_store_explicit(&flood_g.side[k].log_sec, 0, memory_order_relaxed);
			}
			*idx = k;
			return true;
		}
	}
	*idx = base;
	return true; /* heavy contention on one set: admit rather than spin */
}

bool flood_check(const struct sockaddr *src, uint64_t now_us, unsigned rate, unsigned burst)
{
	struct slice key = addr_key(src);
	size_t idx;
	if (!flood_g.n_sets || key.len == 0)
		return true;
	return bucket(key, now_us, rate, burst, &idx);
}

static void drop_log(const struct sockaddr *src, size_t k, uint64_t now_us, unsigned rate, unsigned burst)
{
	struct flood_side *side = &flood_g.side[k];
	uint32_t drops = atomic_fetch_add_explicit(&side->drops, 1, memory_order_relaxed) + 1;
	/* 60 s since this source's last line, not a new calendar minute: a blast
	 * that spans a minute boundary is still one line (test_flood.sh saw two) */
	uint32_t sec = (uint32_t)(now_us / 1000000ull) + 1;
	uint32_t last = atomic_load_explicit(&side->log_sec, memory_order_relaxed);
	if ((last != 0 && sec - last < 60) ||
	    !atomic_compare_exchange_strong_explicit(&side->log_sec, &last, sec, memory_order_relaxed,
						     memory_order_relaxed))
		return;
	atomic_fetch_sub_explicit(&side->drops, drops, memory_order_relaxed);
	char ip[INET6_ADDRSTRLEN] = "?";
	if (src->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)src)->sin_addr, ip, sizeof(ip));
	else if (src->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)src)->sin6_addr, ip, sizeof(ip));
	log_warn("flood", "source over limits.source_rate, dropping its requests for now src=%s rate=%u burst=%u "
			  "dropped=%u (at most one line per source per minute)",
		 ip, rate, burst, drops);
}

bool flood_admit(struct txn *t)
{
	if (!flood_g.n_sets || !t->cfg)
		return true;
	/* responses are never limited; an unparseable datagram counts as a request */
	if (t->parse_rc >= 0 && !t->msg.is_request)
		return true;
	struct sockaddr_storage client;
	const struct sockaddr *src = flood_source(t, &client);
	if (cfg_is_trusted(t->cfg, src))
		return true;
	struct slice key = addr_key(src);
	if (key.len == 0)
		return true;
	uint64_t now_us = t->rx_ns ? t->rx_ns / 1000 : mono_us();
	unsigned rate = t->cfg->limits.source_rate.rate, burst = t->cfg->limits.source_rate.burst;
	size_t k;
	if (bucket(key, now_us, rate, burst, &k))
		return true;
	metrics_inc(flood_g.m_drops);
	drop_log(src, k, now_us, rate, burst);
	return false;
}

void flood_stats_get(struct flood_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!flood_g.registered)
		return;
	out->drops = (uint64_t)metrics_value(flood_g.m_drops);
	out->evicted = (uint64_t)metrics_value(flood_g.m_evicted);
	out->sources_max = (unsigned long)flood_g.n_sets * 2;
}
