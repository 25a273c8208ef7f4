/* store_tables.c - the in-memory tables on liburcu cds_lfht: users (id ->
 * struct store_user, plus load time for cache expiry and negative entries),
 * nonce-count marks and grant-JTI marks. Readers never lock: lookups run
 * under rcu_read_lock and copy out; removed nodes are freed with call_rcu.
 * Also the tables in use (store_users_cur, store_nc_marks, store_jti_marks:
 * the front door, store_main.c, sets them) and the invalidation of one cached
 * user. Not here: where the users come from (file, Redis), and Redis itself.
 * SPEC §6.
 *
 * Memory and housekeeping (issue 13). Nodes come from a slab per table
 * (store_slab.c): no malloc per nonce, grant or cache fill, and a hard cap
 * (a put past it is refused and counted). Expiry walks the slab's slots from
 * a cursor a bounded number at a time (store_*_sweep_step, time-budgeted by
 * the caller, Redis's active-expire cycle as the model) instead of iterating
 * a whole table in one go. The walker only acts on a slot whose `linked` flag
 * it reads set inside its read-side section: such a node cannot be freed (so
 * not reused) before the section ends, and cds_lfht_del on a node someone
 * else already removed fails harmlessly. Nodes return to the slab from their
 * call_rcu callback, which clears `linked` first. The users cache is capped
 * too (store.cache_max_entries); near the cap a CLOCK hand evicts entries not
 * looked up since it last passed (the `ref` bit), and a flush (Redis
 * reconnect) is one generation bump, the sweeper removing the old entries.
 *
 * Marks race-freedom. A mark holds one _Atomic uint64_t state = expiry
 * second << 32 | value (nc for nonce marks, 0 for JTIs). Expiry 0 means
 * "dead": a dead node no longer matches, so lookups and cds_lfht_add_unique
 * skip it, and it is unlinked by the one thread whose CAS killed it.
 * - First use: cds_lfht_add_unique is atomic against concurrent adds of the
 *   same key: exactly one node wins, the losers get the winner and continue
 *   on it (their own node was never published and is freed at once).
 * - nc: every update is a CAS from the observed state to (expiry, nc) only
 *   when nc > the observed nc, so of two threads presenting the same nc one
 *   CAS fails, reloads, sees nc not above and rejects. A live node is never
 *   replaced, so the history of one nonce lives in one word.
 * - JTI: the dialog is written before the node is published (add_unique is a
 *   release) and never changes; only the first add wins the binding.
 * - Expiry: the sweeper and the checkers kill an expired node with a CAS from
 *   the exact expired state it saw; a checker that revives it first (nc with
 *   a new expiry) makes that CAS fail, so a node is never killed after use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "store_priv.h"

/* TSan only: stands for "a grace period separates the reads from the free". */
#ifdef STORE_TSAN
static char tsan_gp;

/* liburcu is not instrumented: its workqueue and rcu_barrier allocate on one
 * thread and free on another with a hand-off TSan cannot see. Only calls made
 * by those libraries are silenced; our code stays checked. Weak: a program
 * with its own suppressions wins (then it should list these too). */
const char *__tsan_default_suppressions(void);
__attribute__((weak)) const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-cds.so.8\ncalled_from_lib:liburcu.so.8\n";
}
#endif

_Atomic uint64_t store_clock_offset;

uint64_t store_now_sec(void)
{
	/* never 0: expiry 0 means dead */
	return now_mono_sec() + 1 + atomic_load_explicit(&store_clock_offset, memory_order_relaxed);
}

static struct cds_lfht *table_new(void)
{
	return cds_lfht_new(256, 256, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
}

/* deadline_passed - checked every few slots by the sweep steps. */
static bool deadline_passed(uint64_t deadline_ns)
{
	if (deadline_ns == UINT64_MAX)
		return false;
	return now_mono_ns() >= deadline_ns;
}

/* Work between two looks at the clock: a slot looked at is 1, a node unlinked
 * SWEEP_KILL_COST (it walks a bucket chain and queues a free: cache misses on
 * a big table), so a step overruns its deadline by a few unlinks at most. */
#define SWEEP_CLOCK_EVERY 64
#define SWEEP_KILL_COST 16
_Static_assert(STORE_SWEEP_MAX_REMOVED * SWEEP_KILL_COST >= STORE_SWEEP_MAX_WORK, "bound holds");

/* sweep_quota - the slots one step looks at: 1/@pass_steps of the table (and a few
 * more, so a small table is done in one step) up to STORE_SWEEP_STEP_SLOTS, never
 * more than it has; @pass_steps 1: all of them. */
static size_t sweep_quota(size_t slots, unsigned pass_steps)
{
	size_t q = slots;
	if (pass_steps > 1) {
		q = slots / pass_steps + SWEEP_CLOCK_EVERY;
		q = q < STORE_SWEEP_STEP_SLOTS ? q : STORE_SWEEP_STEP_SLOTS;
	}
	return q < slots ? q : slots;
}

/* ================================================================ users */

struct user_ent {
	struct cds_lfht_node node; /* first: the slab's free list reuses it */
	struct rcu_head rcu;
	struct store_users *tb;
	_Atomic uint64_t loaded; /* store_now_sec() at insert; 0: past any max-age */
	_Atomic uint32_t gen;	 /* tb->gen at insert: another value reads as absent */
	_Atomic uint8_t linked;	 /* published in the table (see the top) */
	_Atomic uint8_t ref;	 /* looked up since the CLOCK hand last passed */
	bool found;		 /* false: negative entry (unknown in the backend) */
	size_t idlen;
	struct store_user u;
};

struct store_users {
	struct cds_lfht *ht;
	struct store_slab *slab;
	_Atomic size_t cap; /* store.cache_max_entries: a reload moves it (store_users_set_cap) */
	_Atomic uint32_t gen;
	_Atomic size_t sweep_at, hand_at; /* slot cursors of the sweeper and of the CLOCK hand */
	_Atomic size_t pending; /* unlinked, back in the slab after their grace period */
	_Atomic uint64_t full, evicted;
};

static int user_match(struct cds_lfht_node *node, const void *key)
{
	STORE_TSAN_ACQUIRE(node); /* pairs with the release before the node was linked */
	const struct user_ent *e = caa_container_of(node, struct user_ent, node);
	const struct slice *id = key;
	return e->idlen == id->len && memcmp(e->u.id, id->p, id->len) == 0;
}

static void user_free_rcu(struct rcu_head *head)
{
	STORE_TSAN_ACQUIRE(&tsan_gp);
	struct user_ent *e = caa_container_of(head, struct user_ent, rcu);
	atomic_store_explicit(&e->linked, 0, memory_order_relaxed);
	atomic_fetch_sub_explicit(&e->tb->pending, 1, memory_order_relaxed);
	store_slab_put(e->tb->slab, e);
	STORE_TSAN_RELEASE(&tsan_gp); /* before rcu_barrier returns in store_users_free */
}

struct store_users *store_users_new_capped(size_t cap)
{
	struct store_users *tb = calloc(1, sizeof(*tb));
	if (!tb)
		return NULL;
	atomic_init(&tb->cap, cap);
	tb->ht = table_new();
	/* sized for the largest cap a reload may set; chunks come only as entries do */
	tb->slab = store_slab_new(sizeof(struct user_ent), cap > STORE_CACHE_MAX_CEIL ? cap : STORE_CACHE_MAX_CEIL);
	if (tb->slab)
		store_slab_set_cap(tb->slab, cap);
	if (!tb->ht || !tb->slab) {
		if (tb->ht)
			cds_lfht_destroy(tb->ht, NULL);
		store_slab_destroy(tb->slab);
		free(tb);
		return NULL;
	}
	return tb;
}

struct store_users *store_users_new(void)
{
	return store_users_new_capped(STORE_USERS_FILE_MAX);
}

/* user_unlink - remove @e when it is still linked; the one thread whose del
 * succeeds hands it to call_rcu. Caller holds the read lock. */
static bool user_unlink(struct store_users *tb, struct user_ent *e)
{
	if (cds_lfht_is_node_deleted(&e->node) || cds_lfht_del(tb->ht, &e->node) != 0)
		return false;
	atomic_fetch_add_explicit(&tb->pending, 1, memory_order_relaxed);
	call_rcu(&e->rcu, user_free_rcu);
	return true;
}

void store_users_free(struct store_users *tb)
{
	if (!tb)
		return;
	STORE_TSAN_ACQUIRE(&tsan_gp); /* the caller waited for a grace period */
	/* Nobody reaches the table any more: unlink what is left without call_rcu,
	 * wait for the frees already queued (they return nodes to this slab), then
	 * drop the lot. Main thread, outside any read-side section. */
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(tb->ht, &it, node)
		cds_lfht_del(tb->ht, node);
	rcu_read_unlock();
	rcu_barrier();
	STORE_TSAN_ACQUIRE(&tsan_gp); /* the queued frees are done with the slab */
	cds_lfht_destroy(tb->ht, NULL);
	store_slab_destroy(tb->slab);
	free(tb);
}

/* users_evict - near the cap: advance the CLOCK hand over up to @n slots,
 * unlinking entries whose ref bit is clear (and clearing the others). Read lock held. */
static void users_evict(struct store_users *tb, unsigned n)
{
	size_t slots = store_slab_slots(tb->slab);
	if (slots == 0)
		return;
	size_t at = atomic_load_explicit(&tb->hand_at, memory_order_relaxed);
	unsigned evicted = 0;
	for (unsigned i = 0; i < 4 * n && evicted < n; i++, at++) {
		if (at >= slots)
			at = 0;
		struct user_ent *e = store_slab_slot(tb->slab, at);
		if (!e || !atomic_load_explicit(&e->linked, memory_order_acquire))
			continue;
		if (atomic_exchange_explicit(&e->ref, 0, memory_order_relaxed))
			continue; /* used lately: a second chance */
		if (user_unlink(tb, e))
			evicted++;
	}
	atomic_store_explicit(&tb->hand_at, at, memory_order_relaxed);
	atomic_fetch_add_explicit(&tb->evicted, evicted, memory_order_relaxed);
}

int store_users_put(struct store_users *tb, const struct store_user *u, bool found)
{
	return store_users_put_aged(tb, u, found, false);
}

int store_users_put_aged(struct store_users *tb, const struct store_user *u, bool found, bool stale)
{
	rcu_read_lock();
	/* past 15/16 of the cap the CLOCK hand makes room ahead of the next fills (and,
	 * after a reload lowered the cap, brings the table down to it) */
	size_t cap = atomic_load_explicit(&tb->cap, memory_order_relaxed);
	/* nodes already unlinked do not count: evicting for them would empty the table
	 * while their grace period runs (a lowered cap, a burst of fills at the cap) */
	size_t in_use = store_slab_in_use(tb->slab), pending = atomic_load_explicit(&tb->pending, memory_order_relaxed);
	size_t live = in_use > pending ? in_use - pending : 0, low = cap - cap / 16;
	if (live >= low && in_use < cap)
		users_evict(tb, 8);
	struct user_ent *e = store_slab_get(tb->slab);
	if (!e) {
		if (live >= low) /* down to 15/16 of the cap, at most 64 at a time */
			users_evict(tb, live - low + 1 < 64 ? (unsigned)(live - low + 1) : 64);
		atomic_fetch_add_explicit(&tb->full, 1, memory_order_relaxed);
		rcu_read_unlock();
		return -ENOSPC;
	}
	cds_lfht_node_init(&e->node);
	e->tb = tb;
	atomic_store_explicit(&e->loaded, stale ? 0 : store_now_sec(), memory_order_relaxed);
	atomic_store_explicit(&e->gen, atomic_load_explicit(&tb->gen, memory_order_relaxed), memory_order_relaxed);
	/* a fill is about to be read by the txn that asked for it: not the hand's first pick */
	atomic_store_explicit(&e->ref, 1, memory_order_relaxed);
	e->found = found;
	e->u = *u;
	e->idlen = strnlen(u->id, sizeof(u->id));
	struct slice key = slice_make(e->u.id, e->idlen);
	STORE_TSAN_RELEASE(&e->node);
	struct cds_lfht_node *old = cds_lfht_add_replace(tb->ht, slice_hash(key), user_match, &key, &e->node);
	atomic_store_explicit(&e->linked, 1, memory_order_release);
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	if (old) {
		atomic_fetch_add_explicit(&tb->pending, 1, memory_order_relaxed);
		call_rcu(&caa_container_of(old, struct user_ent, node)->rcu, user_free_rcu);
	}
	return 0;
}

int store_users_get_rcu(struct store_users *tb, struct slice id, struct store_user *out, uint64_t *age_sec)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(tb->ht, slice_hash(id), user_match, &id, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	struct user_ent *e = node ? caa_container_of(node, struct user_ent, node) : NULL;
	if (!e || atomic_load_explicit(&e->gen, memory_order_relaxed) !=
			  atomic_load_explicit(&tb->gen, memory_order_acquire)) {
		STORE_TSAN_RELEASE(&tsan_gp);
		return -ENOENT; /* absent, or flushed and not swept yet */
	}
	if (age_sec)
		*age_sec = store_now_sec() - atomic_load_explicit(&e->loaded, memory_order_relaxed);
	if (!atomic_load_explicit(&e->ref, memory_order_relaxed))
		atomic_store_explicit(&e->ref, 1, memory_order_relaxed); /* written once per hand pass */
	int rc = e->found ? 1 : 0;
	if (rc && out)
		*out = e->u;
	STORE_TSAN_RELEASE(&tsan_gp); /* our reads of the node come before its free */
	return rc;
}

bool store_users_del(struct store_users *tb, struct slice id)
{
	bool removed = false;
	struct cds_lfht_iter it;
	rcu_read_lock();
	cds_lfht_lookup(tb->ht, slice_hash(id), user_match, &id, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	/* only the thread whose del succeeds frees the node */
	if (node)
		removed = user_unlink(tb, caa_container_of(node, struct user_ent, node));
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	return removed;
}

void store_users_clear(struct store_users *tb)
{
	/* O(1): every entry of the old generation reads as absent from now on
	 * (seq_cst: ordered with the invalidation epoch of store_redis_client.c); the
	 * sweeper unlinks them a slice at a time */
	atomic_fetch_add_explicit(&tb->gen, 1, memory_order_seq_cst);
}

size_t store_users_sweep_step(struct store_users *tb, unsigned max_age, uint64_t deadline_ns, unsigned pass_steps,
			      unsigned *removed)
{
	uint64_t now = store_now_sec();
	uint64_t min_loaded = max_age && now > max_age ? now - max_age : 0;
	uint32_t gen = atomic_load_explicit(&tb->gen, memory_order_acquire);
	size_t slots = store_slab_slots(tb->slab), looked = 0;
	const size_t quota = sweep_quota(slots, pass_steps);
	size_t at = atomic_load_explicit(&tb->sweep_at, memory_order_relaxed);
	unsigned n = 0, work = 0, total = 0;
	const bool bounded = deadline_ns != UINT64_MAX; /* a step, not a full pass */
	rcu_read_lock();
	while (looked < quota) {
		if (at >= slots)
			at = 0;
		struct user_ent *e = store_slab_slot(tb->slab, at);
		at++;
		looked++;
		if (e && atomic_load_explicit(&e->linked, memory_order_acquire)) {
			STORE_TSAN_ACQUIRE(&e->node);
			bool old_gen = atomic_load_explicit(&e->gen, memory_order_relaxed) != gen;
			bool too_old = max_age && atomic_load_explicit(&e->loaded, memory_order_relaxed) < min_loaded;
			if ((old_gen || too_old) && user_unlink(tb, e)) {
				n++;
				work += SWEEP_KILL_COST;
			}
		}
		if (++work >= SWEEP_CLOCK_EVERY) {
			total += work;
			work = 0;
			if (deadline_passed(deadline_ns) || (bounded && total >= STORE_SWEEP_MAX_WORK))
				break;
		}
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	atomic_store_explicit(&tb->sweep_at, at, memory_order_relaxed);
	if (removed)
		*removed += n;
	return looked;
}

void store_users_expire(struct store_users *tb, unsigned max_age)
{
	store_users_sweep_step(tb, max_age, UINT64_MAX, 1, NULL);
}

void store_users_each(struct store_users *tb, void (*fn)(const struct store_user *u, void *arg), void *arg)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	uint32_t gen = atomic_load_explicit(&tb->gen, memory_order_acquire);
	cds_lfht_for_each(tb->ht, &it, node) {
		const struct user_ent *e = caa_container_of(node, struct user_ent, node);
		STORE_TSAN_ACQUIRE(node);
		if (e->found && atomic_load_explicit(&e->gen, memory_order_relaxed) == gen)
			fn(&e->u, arg);
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
}

static unsigned long table_count(struct cds_lfht *ht)
{
	long before, after;
	unsigned long count;
	rcu_read_lock();
	cds_lfht_count_nodes(ht, &before, &count, &after);
	rcu_read_unlock();
	return count;
}

unsigned long store_users_count(struct store_users *tb)
{
	return table_count(tb->ht);
}

void store_users_set_cap(struct store_users *tb, size_t cap)
{
	atomic_store_explicit(&tb->cap, store_slab_set_cap(tb->slab, cap), memory_order_relaxed);
}

void store_users_limits(struct store_users *tb, struct store_table_limits *out)
{
	out->entries = store_slab_in_use(tb->slab);
	out->cap = atomic_load_explicit(&tb->cap, memory_order_relaxed);
	out->bytes = store_slab_bytes(tb->slab);
	out->full = atomic_load_explicit(&tb->full, memory_order_relaxed);
	out->evicted = atomic_load_explicit(&tb->evicted, memory_order_relaxed);
	STORE_TSAN_RELEASE(&tsan_gp); /* our reads of the table come before its free */
}

/* ================================================================ marks */

/* Two node sizes: nonces and most JTIs with their dialog fit the small one;
 * the large one holds the longest key and dialog accepted, and gets a
 * sixteenth of the cap (an attacker's long Call-IDs cannot take all memory). */
#define MARK_SMALL_DATA 112
#define MARK_LARGE_DATA (STORE_KEY_MAX + STORE_DIALOG_MAX)

struct mark_ent {
	struct cds_lfht_node node; /* first: the slab's free list reuses it */
	struct rcu_head rcu;
	struct store_slab *slab;
	_Atomic uint64_t state; /* expiry << 32 | nc; expiry 0 = dead (see top) */
	_Atomic uint8_t linked;
	uint16_t keylen, vallen;
	char data[]; /* key bytes, then value bytes (the JTI's dialog) */
};

struct store_marks {
	struct cds_lfht *ht;
	struct store_slab *slab[2]; /* small, large */
	_Atomic size_t sweep_at[2];
	_Atomic uint64_t full;
	_Atomic size_t cap; /* store.marks_max_entries: a reload moves it (store_marks_set_cap) */
};

#define MARK_EXP(s) ((s) >> 32)
#define MARK_VAL(s) ((uint32_t)(s))
#define MARK_PACK(exp, val) (((uint64_t)(exp) << 32) | (uint32_t)(val))

static int mark_match(struct cds_lfht_node *node, const void *key)
{
	struct mark_ent *e = caa_container_of(node, struct mark_ent, node);
	const struct slice *k = key;
	STORE_TSAN_ACQUIRE(node); /* pairs with the release before the node was linked */
	return e->keylen == k->len && memcmp(e->data, k->p, k->len) == 0 &&
	       MARK_EXP(atomic_load_explicit(&e->state, memory_order_acquire)) != 0;
}

static void mark_free_rcu(struct rcu_head *head)
{
	STORE_TSAN_ACQUIRE(&tsan_gp);
	struct mark_ent *e = caa_container_of(head, struct mark_ent, rcu);
	atomic_store_explicit(&e->linked, 0, memory_order_relaxed);
	store_slab_put(e->slab, e);
	STORE_TSAN_RELEASE(&tsan_gp); /* before rcu_barrier returns in store_marks_free */
}

struct store_marks *store_marks_new_capped(size_t cap)
{
	struct store_marks *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	size_t ceil = cap > STORE_MARKS_MAX_CEIL ? cap : STORE_MARKS_MAX_CEIL;
	m->ht = table_new();
	m->slab[0] = store_slab_new(sizeof(struct mark_ent) + MARK_SMALL_DATA, ceil);
	m->slab[1] = store_slab_new(sizeof(struct mark_ent) + MARK_LARGE_DATA, ceil / 16);
	if (m->slab[0] && m->slab[1])
		store_marks_set_cap(m, cap);
	if (!m->ht || !m->slab[0] || !m->slab[1]) {
		if (m->ht)
			cds_lfht_destroy(m->ht, NULL);
		store_slab_destroy(m->slab[0]);
		store_slab_destroy(m->slab[1]);
		free(m);
		return NULL;
	}
	return m;
}

struct store_marks *store_marks_new(void)
{
	return store_marks_new_capped(STORE_MARKS_DEFAULT_MAX);
}

void store_marks_free(struct store_marks *m)
{
	if (!m)
		return;
	/* as store_users_free: nobody reaches the table any more */
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(m->ht, &it, node)
		cds_lfht_del(m->ht, node);
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	synchronize_rcu();
	rcu_barrier();
	STORE_TSAN_ACQUIRE(&tsan_gp);
	cds_lfht_destroy(m->ht, NULL);
	store_slab_destroy(m->slab[0]);
	store_slab_destroy(m->slab[1]);
	free(m);
}

/* mark_kill - CAS @e from the expired state @seen to dead and unlink it. Caller holds the read lock. */
static bool mark_kill(struct store_marks *m, struct mark_ent *e, uint64_t seen)
{
	if (atomic_compare_exchange_strong_explicit(&e->state, &seen, 0, memory_order_acq_rel,
						    memory_order_relaxed) &&
	    cds_lfht_del(m->ht, &e->node) == 0) {
		call_rcu(&e->rcu, mark_free_rcu);
		return true;
	}
	return false;
}

/* mark_get_or_add - the live node for @key, adding a new one holding @state and
 * @val when absent. NULL when the table is full (counted). Caller holds the
 * read lock. *@added tells whether the new node won (then the caller's check
 * is already done). */
static struct mark_ent *mark_get_or_add(struct store_marks *m, struct slice key, uint64_t state,
					struct slice val, bool *added)
{
	uint64_t hash = slice_hash(key);
	struct cds_lfht_iter it;
	*added = false;
	cds_lfht_lookup(m->ht, hash, mark_match, &key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (node)
		return caa_container_of(node, struct mark_ent, node);
	struct store_slab *slab = m->slab[key.len + val.len > MARK_SMALL_DATA];
	struct mark_ent *e = store_slab_get(slab);
	if (!e) {
		atomic_fetch_add_explicit(&m->full, 1, memory_order_relaxed);
		return NULL;
	}
	cds_lfht_node_init(&e->node);
	e->slab = slab;
	atomic_store_explicit(&e->state, state, memory_order_relaxed);
	e->keylen = (uint16_t)key.len;
	e->vallen = (uint16_t)val.len;
	memcpy(e->data, key.p, key.len);
	if (val.len)
		memcpy(e->data + key.len, val.p, val.len);
	STORE_TSAN_RELEASE(&e->node);
	node = cds_lfht_add_unique(m->ht, hash, mark_match, &key, &e->node);
	if (node == &e->node) {
		atomic_store_explicit(&e->linked, 1, memory_order_release);
		*added = true;
		return e;
	}
	/* lost the race: never published, straight back */
	atomic_store_explicit(&e->state, 0, memory_order_relaxed);
	store_slab_put(slab, e);
	return caa_container_of(node, struct mark_ent, node);
}
enum store_rc store_marks_nc(struct store_marks *m, struct slice nonce, uint32_t nc, unsigned ttl)
{
	if (nonce.len == 0 || nonce.len > STORE_KEY_MAX)
		return STORE_REJECT;
	uint64_t now = store_now_sec();
	uint64_t fresh = MARK_PACK(now + (ttl ? ttl : 1), nc);
	enum store_rc rc = STORE_REJECT;
	rcu_read_lock();
	for (;;) {
		bool added;
		struct mark_ent *e = mark_get_or_add(m, nonce, fresh, SLICE_NULL, &added);
		if (!e || added) {
			rc = e ? STORE_OK : STORE_REJECT; /* ENOMEM: fail closed */
			break;
		}
		uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		for (;;) {
			uint64_t next;
			if (MARK_EXP(s) == 0)
				break; /* killed under us: look up again */
			if (MARK_EXP(s) <= now)
				next = fresh; /* expired: history forgotten by design */
			else if (nc <= MARK_VAL(s))
				goto out; /* replay or lower: STORE_REJECT */
			else
				next = MARK_PACK(MARK_EXP(s), nc);
			/* acq_rel: orders this update after the one we saw (pairs with itself) */
			if (atomic_compare_exchange_weak_explicit(&e->state, &s, next, memory_order_acq_rel,
								  memory_order_acquire)) {
				rc = STORE_OK;
				goto out;
			}
		}
	}
out:
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	return rc;
}

enum store_rc store_marks_jti(struct store_marks *m, struct slice jti, struct slice dialog, unsigned ttl, bool bind)
{
	if (jti.len == 0 || jti.len > STORE_KEY_MAX || dialog.len > STORE_DIALOG_MAX)
		return STORE_REJECT;
	uint64_t now = store_now_sec();
	enum store_rc rc = STORE_REJECT;
	rcu_read_lock();
	for (;;) {
		bool added = false;
		struct mark_ent *e;
		if (bind) {
			e = mark_get_or_add(m, jti, MARK_PACK(now + (ttl ? ttl : 1), 0), dialog, &added);
		} else {
			struct cds_lfht_iter it;
			cds_lfht_lookup(m->ht, slice_hash(jti), mark_match, &jti, &it);
			struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
			if (!node) {
				rc = STORE_OK; /* unbound: a peek binds nothing */
				break;
			}
			e = caa_container_of(node, struct mark_ent, node);
		}
		if (!e || added) {
			rc = e ? STORE_OK : STORE_REJECT;
			break;
		}
		uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		if (MARK_EXP(s) == 0)
			continue;
		if (MARK_EXP(s) <= now) {
			mark_kill(m, e, s); /* expired binding: gone, then bind afresh */
			continue;
		}
		rc = (e->vallen == dialog.len && memcmp(e->data + e->keylen, dialog.p, dialog.len) == 0)
			     ? STORE_OK
			     : STORE_REJECT;
		break;
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	return rc;
}

size_t store_marks_sweep_step(struct store_marks *m, uint64_t deadline_ns, unsigned pass_steps, unsigned *killed)
{
	uint64_t now = store_now_sec();
	size_t looked = 0;
	unsigned n = 0, work = 0, total = 0;
	const bool bounded = deadline_ns != UINT64_MAX; /* a step, not a full pass */
	rcu_read_lock();
	for (int k = 0; k < 2; k++) {
		struct store_slab *slab = m->slab[k];
		size_t slots = store_slab_slots(slab), seen = 0;
		const size_t quota = sweep_quota(slots, pass_steps);
		size_t at = atomic_load_explicit(&m->sweep_at[k], memory_order_relaxed);
		bool late = false;
		while (seen < quota) {
			if (at >= slots)
				at = 0;
			struct mark_ent *e = store_slab_slot(slab, at);
			at++;
			seen++;
			if (e && atomic_load_explicit(&e->linked, memory_order_acquire)) {
				STORE_TSAN_ACQUIRE(&e->node);
				uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
				if (MARK_EXP(s) != 0 && MARK_EXP(s) <= now && mark_kill(m, e, s)) {
					n++;
					work += SWEEP_KILL_COST;
				}
			}
			if (++work >= SWEEP_CLOCK_EVERY) {
				total += work;
				work = 0;
				if (deadline_passed(deadline_ns) || (bounded && total >= STORE_SWEEP_MAX_WORK)) {
					late = true;
					break;
				}
			}
		}
		atomic_store_explicit(&m->sweep_at[k], at, memory_order_relaxed);
		looked += seen;
		if (late)
			break;
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	if (killed)
		*killed += n;
	return looked;
}

unsigned store_marks_sweep(struct store_marks *m)
{
	unsigned n = 0;
	store_marks_sweep_step(m, UINT64_MAX, 1, &n);
	return n;
}

unsigned long store_marks_count(struct store_marks *m)
{
	return table_count(m->ht);
}

void store_marks_set_cap(struct store_marks *m, size_t cap)
{
	/* long keys (up to a sixteenth) have their own slab: an attacker's long Call-IDs cannot take all */
	store_slab_set_cap(m->slab[1], cap / 16 ? cap / 16 : 1);
	atomic_store_explicit(&m->cap, store_slab_set_cap(m->slab[0], cap), memory_order_relaxed);
}

void store_marks_limits(struct store_marks *m, struct store_table_limits *out)
{
	out->entries = store_slab_in_use(m->slab[0]) + store_slab_in_use(m->slab[1]);
	out->cap = atomic_load_explicit(&m->cap, memory_order_relaxed);
	out->bytes = store_slab_bytes(m->slab[0]) + store_slab_bytes(m->slab[1]);
	out->full = atomic_load_explicit(&m->full, memory_order_relaxed);
	out->evicted = 0;
}

/* ================================================================ the tables in use */

struct store_marks *store_nc_marks, *store_jti_marks;
/* Published with rcu_assign_pointer (init/reload, main thread), read with
 * rcu_dereference (store_rcu_* in store_priv.h: the same under TSan). */
struct store_users *store_users_cur;

struct store_users *store_users_current_rcu(void)
{
	return store_rcu_deref(store_users_cur);
}

_Atomic uint64_t store_inval_epoch;

void store_invalidate(struct slice id)
{
	char buf[STORE_ID_MAX];
	size_t len;
	if (store_id_norm(id, buf, &len) < 0)
		return;
	/* before the delete: pairs with the re-check after the insert in on_user_reply */
	atomic_fetch_add_explicit(&store_inval_epoch, 1, memory_order_seq_cst);
	rcu_read_lock();
	struct store_users *tb = store_rcu_deref(store_users_cur);
	if (tb && store_conf.backend == CFG_STORE_REDIS)
		store_users_del(tb, slice_make(buf, len));
	rcu_read_unlock();
}
