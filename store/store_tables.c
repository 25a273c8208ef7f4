/* store_tables.c - the in-memory tables on liburcu cds_lfht: users (id ->
 * struct store_user, plus load time for cache expiry and negative entries),
 * nonce-count marks and grant-JTI marks. Readers never lock: lookups run
 * under rcu_read_lock and copy out; removed nodes are freed with call_rcu.
 * Not here: where the users come from (file, Redis), and Redis itself. SPEC §6.
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
#include <time.h>

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

uint64_t store_now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec + 1; /* never 0: expiry 0 means dead */
}

static struct cds_lfht *table_new(void)
{
	return cds_lfht_new(256, 256, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
}

/* ================================================================ users */

struct user_ent {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint64_t loaded; /* store_now_sec() at insert */
	bool found;      /* false: negative entry (unknown in the backend) */
	size_t idlen;
	struct store_user u;
};

struct store_users {
	struct cds_lfht *ht;
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
	free(caa_container_of(head, struct user_ent, rcu));
}

struct store_users *store_users_new(void)
{
	struct store_users *tb = calloc(1, sizeof(*tb));
	if (!tb)
		return NULL;
	tb->ht = table_new();
	if (!tb->ht) {
		free(tb);
		return NULL;
	}
	return tb;
}

void store_users_free(struct store_users *tb)
{
	if (!tb)
		return;
	store_users_clear(tb);
	STORE_TSAN_ACQUIRE(&tsan_gp); /* the caller waited for a grace period */
	/* Not inside a read-side section, not on a call_rcu thread (main thread). */
	cds_lfht_destroy(tb->ht, NULL);
	free(tb);
}

int store_users_put(struct store_users *tb, const struct store_user *u, bool found)
{
	return store_users_put_aged(tb, u, found, false);
}

int store_users_put_aged(struct store_users *tb, const struct store_user *u, bool found, bool stale)
{
	struct user_ent *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	cds_lfht_node_init(&e->node);
	e->loaded = stale ? 0 : store_now_sec(); /* loaded 0: past any max-age */
	e->found = found;
	e->u = *u;
	e->idlen = strnlen(u->id, sizeof(u->id));
	struct slice key = slice_make(e->u.id, e->idlen);
	STORE_TSAN_RELEASE(&e->node);
	rcu_read_lock();
	struct cds_lfht_node *old = cds_lfht_add_replace(tb->ht, slice_hash(key), user_match, &key, &e->node);
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	if (old)
		call_rcu(&caa_container_of(old, struct user_ent, node)->rcu, user_free_rcu);
	return 0;
}

int store_users_get_rcu(struct store_users *tb, struct slice id, struct store_user *out, uint64_t *age_sec)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(tb->ht, slice_hash(id), user_match, &id, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (!node) {
		STORE_TSAN_RELEASE(&tsan_gp);
		return -ENOENT;
	}
	const struct user_ent *e = caa_container_of(node, struct user_ent, node);
	if (age_sec)
		*age_sec = store_now_sec() - e->loaded;
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
	if (node && cds_lfht_del(tb->ht, node) == 0) {
		call_rcu(&caa_container_of(node, struct user_ent, node)->rcu, user_free_rcu);
		removed = true;
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	return removed;
}

static void users_remove_if(struct store_users *tb, bool all, uint64_t min_loaded)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(tb->ht, &it, node) {
		struct user_ent *e = caa_container_of(node, struct user_ent, node);
		STORE_TSAN_ACQUIRE(node);
		if (!all && e->loaded >= min_loaded)
			continue;
		if (cds_lfht_del(tb->ht, node) == 0)
			call_rcu(&e->rcu, user_free_rcu);
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
}

void store_users_clear(struct store_users *tb)
{
	users_remove_if(tb, true, 0);
}

void store_users_expire(struct store_users *tb, unsigned max_age)
{
	uint64_t now = store_now_sec();
	if (now > max_age)
		users_remove_if(tb, false, now - max_age);
}

void store_users_each(struct store_users *tb, void (*fn)(const struct store_user *u, void *arg), void *arg)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(tb->ht, &it, node) {
		const struct user_ent *e = caa_container_of(node, struct user_ent, node);
		STORE_TSAN_ACQUIRE(node);
		if (e->found)
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

/* ================================================================ marks */

struct mark_ent {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	_Atomic uint64_t state; /* expiry << 32 | nc; expiry 0 = dead (see top) */
	uint16_t keylen, vallen;
	char data[]; /* key bytes, then value bytes (the JTI's dialog) */
};

struct store_marks {
	struct cds_lfht *ht;
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
	free(caa_container_of(head, struct mark_ent, rcu));
}

struct store_marks *store_marks_new(void)
{
	struct store_marks *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ht = table_new();
	if (!m->ht) {
		free(m);
		return NULL;
	}
	return m;
}

void store_marks_free(struct store_marks *m)
{
	if (!m)
		return;
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(m->ht, &it, node) {
		if (cds_lfht_del(m->ht, node) == 0)
			call_rcu(&caa_container_of(node, struct mark_ent, node)->rcu, mark_free_rcu);
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	cds_lfht_destroy(m->ht, NULL);
	free(m);
}

/* mark_kill - CAS @e from the expired state @seen to dead and unlink it. Caller holds the read lock. */
static void mark_kill(struct store_marks *m, struct mark_ent *e, uint64_t seen)
{
	if (atomic_compare_exchange_strong_explicit(&e->state, &seen, 0, memory_order_acq_rel,
						    memory_order_relaxed) &&
	    cds_lfht_del(m->ht, &e->node) == 0)
		call_rcu(&e->rcu, mark_free_rcu);
}

/* mark_get_or_add - the live node for @key, adding a new one holding @state and
 * @val when absent. NULL on ENOMEM. Caller holds the read lock. *@added tells
 * whether the new node won (then the caller's check is already done). */
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
	struct mark_ent *e = malloc(sizeof(*e) + key.len + val.len);
	if (!e)
		return NULL;
	cds_lfht_node_init(&e->node);
	atomic_init(&e->state, state);
	e->keylen = (uint16_t)key.len;
	e->vallen = (uint16_t)val.len;
	memcpy(e->data, key.p, key.len);
	if (val.len)
		memcpy(e->data + key.len, val.p, val.len);
	STORE_TSAN_RELEASE(&e->node);
	node = cds_lfht_add_unique(m->ht, hash, mark_match, &key, &e->node);
	if (node == &e->node) {
		*added = true;
		return e;
	}
	free(e); /* lost the race: never published */
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

unsigned store_marks_sweep(struct store_marks *m)
{
	uint64_t now = store_now_sec();
	unsigned n = 0;
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	rcu_read_lock();
	cds_lfht_for_each(m->ht, &it, node) {
		struct mark_ent *e = caa_container_of(node, struct mark_ent, node);
		STORE_TSAN_ACQUIRE(node);
		uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		if (MARK_EXP(s) != 0 && MARK_EXP(s) <= now) {
			mark_kill(m, e, s);
			n++;
		}
	}
	STORE_TSAN_RELEASE(&tsan_gp);
	rcu_read_unlock();
	return n;
}

unsigned long store_marks_count(struct store_marks *m)
{
	return table_count(m->ht);
}
