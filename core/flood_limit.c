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
 * each slot: the drops since its last log line and the minute of that line.
 *
 * The table is one pointer published with RCU: workers read it inside the
 * read-side section they hold for the whole datagram; a reload that changes
 * limits.sources_max builds a table of the new size, carries the sources
 * over (flood_reload) and frees the old one after a grace period. */
#include "flood.h"

#include <urcu.h>

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
#include "rcu_tsan.h"
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

struct flood_table {
	_Atomic uint64_t *slot;
	struct flood_side *side;
	size_t n_sets; /* power of two; 2 slots each */
};

static struct {
	struct flood_table *cur; /* rcu_ptr_publish / rcu_ptr_load */
	uint64_t epoch_us;
	unsigned m_drops, m_evicted;
	bool registered;
} flood_g;

static uint64_t mono_us(void)
{
	return now_mono_ns() / 1000;
}

/* sets_for - sets of 2 slots for @c's limits.sources_max (a power of two). */
static size_t sets_for(const struct cfg *c)
{
	size_t want = c && c->limits.sources_max ? c->limits.sources_max : 100000;
	size_t sets = 1;
	while (sets * 2 < want)
		sets <<= 1;
	return sets;
}

static void table_free(struct flood_table *tb)
{
	if (!tb)
		return;
	free(tb->slot);
	free(tb->side);
	free(tb);
}

static struct flood_table *table_new(size_t sets)
{
	struct flood_table *tb = calloc(1, sizeof(*tb));
	if (!tb)
		return NULL;
	tb->n_sets = sets;
	tb->slot = calloc(sets * 2, sizeof(*tb->slot));
	tb->side = calloc(sets * 2, sizeof(*tb->side));
	if (!tb->slot || !tb->side) {
		table_free(tb);
		return NULL;
	}
	return tb;
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
	struct flood_table *tb = table_new(sets_for(c));
	if (!tb)
		return -ENOMEM;
	flood_g.epoch_us = mono_us();
	rcu_ptr_publish(flood_g.cur, tb);
	return 0;
}

void flood_fini(void)
{
	struct flood_table *tb = rcu_ptr_xchg(flood_g.cur, NULL);
	if (tb) {
		synchronize_rcu();
		rcu_tsan_acquire(tb);
		table_free(tb);
	}
}

/* carry - slot @j of @from into @to (a new table, nobody else writes it yet):
 * into each set of @to the source may hash to (growing: the set's index with
 * one of the new high bits; shrinking: the index's low bits, where the two
 * slots of the most recent TATs win: those sources are the ones near their
 * limit). The tag alone does not tell which of those sets is the source's. */
static void carry(const struct flood_table *from, size_t j, struct flood_table *to)
{
	uint64_t w = atomic_load_explicit(&from->slot[j], memory_order_relaxed);
	if (!SLOT_TAG(w))
		return;
	size_t set = j / 2, step = from->n_sets < to->n_sets ? from->n_sets : to->n_sets;
	for (size_t s = set & (step - 1); s < to->n_sets; s += step) {
		if (from->n_sets < to->n_sets && (s & (from->n_sets - 1)) != set)
			continue;
		size_t k = 2 * s;
		uint64_t a = atomic_load_explicit(&to->slot[k], memory_order_relaxed);
		uint64_t b = atomic_load_explicit(&to->slot[k + 1], memory_order_relaxed);
		if (SLOT_TAT(b) < SLOT_TAT(a))
			k++, a = b; /* the older of the two makes room */
		if (SLOT_TAG(a) && SLOT_TAT(a) >= SLOT_TAT(w))
			continue;
		atomic_store_explicit(&to->slot[k], w, memory_order_relaxed);
		to->side[k].drops = atomic_load_explicit(&from->side[j].drops, memory_order_relaxed);
		to->side[k].log_sec = atomic_load_explicit(&from->side[j].log_sec, memory_order_relaxed);
	}
}

int flood_reload(const struct cfg *c)
{
	struct flood_table *old = rcu_ptr_load(flood_g.cur);
	size_t sets = sets_for(c);
	if (!old || old->n_sets == sets)
		return 0;
	struct flood_table *tb = table_new(sets);
	if (!tb) {
		log_error("flood", "limits.sources_max kept at %zu: out of memory for %zu", old->n_sets * 2, sets * 2);
		return -ENOMEM;
	}
	/* workers keep updating the old table meanwhile: a source whose slot moved
	 * before its last update loses that update (a few requests more, once) */
	for (size_t j = 0; j < old->n_sets * 2; j++)
		carry(old, j, tb);
	rcu_ptr_publish(flood_g.cur, tb);
	synchronize_rcu();
	rcu_tsan_acquire(old);
	log_info("flood", "limits.sources_max applied slots=%zu (was %zu)", sets * 2, old->n_sets * 2);
	table_free(old);
	return 0;
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
static bool bucket(struct flood_table *tb, struct slice key, uint64_t now_us, unsigned rate, unsigned burst,
		   size_t *idx)
{
	uint64_t h = slice_hash(key);
	uint16_t tag = (uint16_t)(h >> 48) | 1; /* never 0: 0 is an empty slot */
	size_t base = (size_t)(h & (tb->n_sets - 1)) * 2;
	uint64_t now = now_us > flood_g.epoch_us ? now_us - flood_g.epoch_us : 0;
	uint64_t period = 1000000ull / (rate ? rate : 1);
	if (period == 0)
		period = 1;
	uint64_t limit = period * (burst ? burst : 1);
	for (int tries = 0; tries < 8; tries++) {
		uint64_t w0 = atomic_load_explicit(&tb->slot[base], memory_order_relaxed);
		uint64_t w1 = atomic_load_explicit(&tb->slot[base + 1], memory_order_relaxed);
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
		if (atomic_compare_exchange_weak_explicit(&tb->slot[k], &seen, SLOT(tag, start + period),
							  memory_order_relaxed, memory_order_relaxed)) {
			if (tat == 0 && SLOT_TAG(seen) != tag) { /* a new owner starts with a clean log */
				atomic_store_explicit(&tb->side[k].drops, 0, memory_order_relaxed);
				atomic_store_explicit(&tb->side[k].log_sec, 0, memory_order_relaxed);
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
	struct flood_table *tb = rcu_ptr_load(flood_g.cur);
	if (!tb || key.len == 0)
		return true;
	bool ok = bucket(tb, key, now_us, rate, burst, &idx);
	rcu_tsan_release(tb); /* done with it: pairs with the acquire before its free */
	return ok;
}

static void drop_log(struct flood_table *tb, const struct sockaddr *src, size_t k, uint64_t now_us, unsigned rate,
		     unsigned burst)
{
	struct flood_side *side = &tb->side[k];
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
	if (!t->cfg)
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
	struct flood_table *tb = rcu_ptr_load(flood_g.cur); /* the worker holds the read lock */
	if (!tb)
		return true;
	bool ok = bucket(tb, key, now_us, rate, burst, &k);
	if (!ok) {
		metrics_inc(flood_g.m_drops);
		drop_log(tb, src, k, now_us, rate, burst);
	}
	rcu_tsan_release(tb);
	return ok;
}

void flood_stats_get(struct flood_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!flood_g.registered)
		return;
	out->drops = (uint64_t)metrics_value(flood_g.m_drops);
	out->evicted = (uint64_t)metrics_value(flood_g.m_evicted);
	struct flood_table *tb = rcu_ptr_load(flood_g.cur);
	out->sources_max = tb ? (unsigned long)tb->n_sets * 2 : 0;
}
