/* store_main.c - the store's front door (store.h): init/reload/fini, the
 * three lookups dispatched to the file backend (tables only) or to Redis
 * (cache, then an async fetch), health, the housekeeping thread and the
 * statistics. SPEC §6. The top of store/: no other store file calls it. Not
 * here: the settings and event counters (store_conf.c), id normalisation
 * and HA1 (store_id.c), the tables and invalidation (store_tables.c), the
 * YAML file, Redis I/O. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include <urcu.h>

#include "log.h"
#include "store_priv.h"

/* store_users_cur (store_tables.c) belongs to the store (store_init,
 * store_reload) or is an alias of the table a published generation owns
 * (store_gen_commit). Main thread. */
static bool users_cur_owned;
static bool store_started;

static int house_start(void);
static void house_stop(void);

/* ================================================================ lifecycle */

static struct store_users *users_load(const struct cfg *c, char *err, size_t errlen)
{
	if (!c->store.file[0]) {
		log_warn("store", "store.file not set: no users");
		return store_users_new();
	}
	/* cfg_load already made store.file relative to the config's folder */
	return store_users_file_load_cfg(c, err, errlen);
}

int store_init(const struct cfg *c, char *err, size_t errlen)
{
	if (store_started) {
		snprintf(err, errlen, "store already started");
		return -EALREADY;
	}
	int rc = store_conf_load(c, err, errlen);
	if (rc < 0)
		return rc;
	store_events_register();
	store_script_sha(); /* computed once, before threads */
	store_nc_marks = store_marks_new_capped(store_conf.marks_max_entries);
	store_jti_marks = store_marks_new_capped(store_conf.marks_max_entries);
	struct store_users *tb = c->store.backend == CFG_STORE_FILE
					 ? users_load(c, err, errlen)
					 : store_users_new_capped(store_conf.cache_max_entries);
	if (!store_nc_marks || !store_jti_marks || !tb) {
		/* a users file error has filled @err already */
		rc = !tb && c->store.backend == CFG_STORE_FILE ? -EINVAL : -ENOMEM;
		if (rc == -ENOMEM)
			snprintf(err, errlen, "store: out of memory");
		store_users_free(tb);
		goto fail;
	}
	store_rcu_assign(store_users_cur, tb);
	users_cur_owned = true;
	if (c->store.backend == CFG_STORE_REDIS && (rc = store_redis_start()) < 0) {
		snprintf(err, errlen, "store: cannot start the Redis subscriber: %s", strerror(-rc));
		store_rcu_assign(store_users_cur, NULL);
		store_users_free(tb);
		goto fail;
	}
	if ((rc = house_start()) < 0) {
		snprintf(err, errlen, "store: cannot start the housekeeping thread: %s", strerror(-rc));
		if (c->store.backend == CFG_STORE_REDIS)
			store_redis_stop();
		store_rcu_assign(store_users_cur, NULL);
		synchronize_rcu();
		store_users_free(tb);
		goto fail;
	}
	store_started = true;
	return 0;
fail:
	store_marks_free(store_nc_marks);
	store_marks_free(store_jti_marks);
	store_nc_marks = store_jti_marks = NULL;
	return rc;
}

int store_reload(const struct cfg *c, char *err, size_t errlen)
{
	if (!store_started) {
		snprintf(err, errlen, "store not started");
		return -EINVAL;
	}
	if (c->store.backend != store_conf.backend)
		log_warn("store", "store.backend changed: takes effect after a restart");
	if (store_conf.backend != CFG_STORE_FILE)
		return 0;
	struct store_users *tb = users_load(c, err, errlen);
	if (!tb)
		return -EINVAL;
	/* Readers see the old table or the new one, never a mix. */
	struct store_users *old = store_rcu_xchg(store_users_cur, tb);
	bool owned = users_cur_owned;
	users_cur_owned = true;
	synchronize_rcu();
	if (owned)
		store_users_free(old);
	log_info("store", "users file reloaded users=%lu", store_users_count(tb));
	return 0;
}

/* users_release - a generation's users table goes with its cfg (cfg_free,
 * after the publisher's grace period); the alias is dropped first. */
static void users_release(void *data)
{
	struct store_users *tb = data;
	if (store_rcu_deref(store_users_cur) == tb) {
		store_rcu_assign(store_users_cur, NULL);
		synchronize_rcu();
	}
	store_users_free(tb);
}

int store_gen_build(struct cfg *next, char *err, size_t errlen)
{
	if (!store_started) {
		snprintf(err, errlen, "store not started");
		return -EINVAL;
	}
	if (store_conf.backend != CFG_STORE_FILE)
		return 0; /* Redis: the cache is not part of a generation */
	struct store_users *tb = users_load(next, err, errlen);
	if (!tb)
		return -EINVAL;
	cfg_gen_attach(next, CFG_GEN_USERS, tb, users_release);
	return 0;
}

/* settings_apply - the keys a reload changes in place (cfg_reload_check lets them
 * through): the cache's max-age, read by every lookup and the sweep, and the caps
 * of the tables, obeyed by the next insert (store_slab_set_cap). */
static void settings_apply(const struct cfg *next)
{
	unsigned age = store_conf_max_age(next), cache = store_conf_cache_max(next), marks = store_conf_marks_max(next);
	unsigned old_age = atomic_exchange(&store_conf.cache_max_age, age);
	unsigned old_cache = atomic_exchange(&store_conf.cache_max_entries, cache);
	unsigned old_marks = atomic_exchange(&store_conf.marks_max_entries, marks);
	if (old_marks != marks) {
		store_marks_set_cap(store_nc_marks, marks);
		store_marks_set_cap(store_jti_marks, marks);
	}
	if (old_cache != cache && store_conf.backend == CFG_STORE_REDIS) {
		rcu_read_lock();
		struct store_users *tb = store_rcu_deref(store_users_cur);
		if (tb)
			store_users_set_cap(tb, cache);
		rcu_read_unlock();
	}
	if (old_age != age || old_cache != cache || old_marks != marks)
		log_info("store", "reload applied cache_max_age=%u cache_max_entries=%u marks_max_entries=%u", age,
			 cache, marks);
}

void store_gen_commit(const struct cfg *next)
{
	if (store_started)
		settings_apply(next);
	struct store_users *tb = cfg_gen_get(next, CFG_GEN_USERS);
	if (!tb)
		return;
	struct store_users *old = store_rcu_xchg(store_users_cur, tb);
	bool owned = users_cur_owned;
	users_cur_owned = false;
	if (owned && old) {
		synchronize_rcu();
		store_users_free(old);
	}
	log_info("store", "users file reloaded users=%lu", store_users_count(tb));
}

void store_fini(void)
{
	if (!store_started)
		return;
	house_stop();
	if (store_conf.backend == CFG_STORE_REDIS)
		store_redis_stop();
	struct store_users *old = store_rcu_xchg(store_users_cur, NULL);
	synchronize_rcu();
	if (users_cur_owned)
		store_users_free(old); /* else a cfg owns it */
	users_cur_owned = false;
	store_marks_free(store_nc_marks);
	store_marks_free(store_jti_marks);
	store_nc_marks = store_jti_marks = NULL;
	rcu_barrier(); /* run the pending frees before we return */
	store_started = false;
}

/* ================================================================ lookups */

bool store_op_is_done(const struct store_op *op)
{
	return op->state == STORE_OP_DONE;
}

enum store_rc store_user_get(struct txn *t, struct store_op *op, struct slice id, struct store_user *out)
{
	char buf[STORE_ID_MAX];
	size_t len;
	if (store_id_norm(id, buf, &len) < 0) {
		op->state = STORE_OP_NEW;
		return STORE_NOT_FOUND;
	}
	if (store_conf.backend == CFG_STORE_REDIS)
		return store_redis_user_get(store_tls_conn, t, op, slice_make(buf, len), out);
	rcu_read_lock();
	/* the table of the txn's generation (one pointer with its rules), else the current one */
	struct store_users *tb = cfg_gen_get(t ? t->cfg : NULL, CFG_GEN_USERS);
	if (!tb)
		tb = store_rcu_deref(store_users_cur);
	int rc = tb ? store_users_get_rcu(tb, slice_make(buf, len), out, NULL) : -ENOENT;
	rcu_read_unlock();
	if (rc > 0)
		STORE_COUNT(HIT);
	else
		STORE_COUNT(MISS);
	return rc > 0 ? STORE_OK : STORE_NOT_FOUND;
}

/* op_finished - when the op holds an answer, hand it out and make the op reusable. */
static bool op_finished(struct store_op *op, enum store_rc *rc)
{
	if (op->state == STORE_OP_WAIT) {
		*rc = STORE_PARKED; /* resumed early: still waiting */
		return true;
	}
	if (op->state != STORE_OP_DONE)
		return false;
	op->state = STORE_OP_NEW;
	*rc = (enum store_rc)op->result;
	return true;
}

enum store_rc store_nc_check(struct txn *t, struct store_op *op, struct slice nonce, uint32_t nc, unsigned ttl)
{
	enum store_rc rc;
	if (op_finished(op, &rc))
		return rc;
	if (!store_nc_marks)
		return STORE_UNAVAILABLE;
	/* Local first: what this instance accepted, Redis accepted too, so a
	 * local reject is final and the local table is ready if Redis goes down. */
	rc = store_marks_nc(store_nc_marks, nonce, nc, ttl);
	if (rc != STORE_OK || store_conf.backend != CFG_STORE_REDIS)
		return rc;
	return store_redis_mark(store_tls_conn, t, op, true, nonce, nc, SLICE_NULL, ttl);
}

enum store_rc store_jti_bind(struct txn *t, struct store_op *op, struct slice jti, struct slice dialog, unsigned ttl)
{
	enum store_rc rc;
	if (op_finished(op, &rc))
		return rc;
	if (!store_jti_marks)
		return STORE_UNAVAILABLE;
	if (store_conf.backend != CFG_STORE_REDIS)
		return store_marks_jti(store_jti_marks, jti, dialog, ttl, true);
	/* With Redis only Redis binds (a local binding that Redis then refused
	 * would be wrong); the local table learns the answer afterwards, and a
	 * local binding to another dialog is final. */
	rc = store_marks_jti(store_jti_marks, jti, dialog, ttl, false);
	if (rc != STORE_OK)
		return rc;
	return store_redis_mark(store_tls_conn, t, op, false, jti, 0, dialog, ttl);
}

bool store_is_usable(void)
{
	if (!store_started)
		return false;
	return store_conf.backend == CFG_STORE_FILE || store_redis_is_up();
}

static uint64_t mono_ns(void)
{
	return now_mono_ns();
}

static atomic_flag sweeping = ATOMIC_FLAG_INIT;
static _Atomic uint64_t sweep_max_ns; /* longest step so far */
static _Atomic uint64_t sweep_removed; /* entries the steps removed, all tables */
static _Atomic uint64_t sweep_looked;  /* slots the steps looked at, all tables */
static _Atomic bool sweep_busy;	       /* the last step found much expired, or a table near full */

/* marks_near_full - a marks table near its cap refuses new entries soon: walk it whole */
static bool marks_near_full(struct store_marks *m)
{
	struct store_table_limits l;
	store_marks_limits(m, &l);
	return l.cap && l.entries >= l.cap / 8 * 7;
}

unsigned store_sweep_maybe(void)
{
	if (atomic_flag_test_and_set_explicit(&sweeping, memory_order_acquire))
		return 0; /* someone else is sweeping: the cursors are theirs */
	uint64_t t0 = mono_ns();
	const uint64_t third = STORE_SWEEP_BUDGET_NS / 3;
	unsigned removed = 0;
	size_t looked = 0;
	const bool nc_full = store_nc_marks && marks_near_full(store_nc_marks);
	const bool jti_full = store_jti_marks && marks_near_full(store_jti_marks);
	/* each table has until its share of the budget ends; what one leaves, the next gets */
	if (store_nc_marks)
		looked += store_marks_sweep_step(store_nc_marks, t0 + third, nc_full ? 1 : STORE_SWEEP_PASS_STEPS,
						  &removed);
	if (store_jti_marks)
		looked += store_marks_sweep_step(store_jti_marks, t0 + 2 * third, jti_full ? 1 : STORE_SWEEP_PASS_STEPS,
						  &removed);
	if (store_conf.backend == CFG_STORE_REDIS) {
		rcu_read_lock();
		struct store_users *tb = store_rcu_deref(store_users_cur);
		/* past max-age only while Redis is up (the cache serves while it is away);
		 * flushed entries always. A full cache evicts (CLOCK): no hurry there. */
		const unsigned max_age = store_redis_is_up()
						 ? atomic_load_explicit(&store_conf.cache_max_age, memory_order_relaxed)
						 : 0;
		if (tb)
			looked += store_users_sweep_step(tb, max_age, t0 + STORE_SWEEP_BUDGET_NS,
							 STORE_SWEEP_PASS_STEPS, &removed);
		rcu_read_unlock();
	}
	atomic_fetch_add_explicit(&sweep_removed, removed, memory_order_relaxed);
	atomic_fetch_add_explicit(&sweep_looked, looked, memory_order_relaxed);
	atomic_store_explicit(&sweep_busy, nc_full || jti_full || (looked && (size_t)removed * 4 >= looked),
			      memory_order_relaxed);
	uint64_t dt = mono_ns() - t0, max = atomic_load_explicit(&sweep_max_ns, memory_order_relaxed);
	while (dt > max && !atomic_compare_exchange_weak_explicit(&sweep_max_ns, &max, dt, memory_order_relaxed,
								   memory_order_relaxed))
		;
	atomic_flag_clear_explicit(&sweeping, memory_order_release);
	return removed;
}

uint64_t store_sweep_removed(void)
{
	return atomic_load_explicit(&sweep_removed, memory_order_relaxed);
}

/* ---- the housekeeping thread: one step every STORE_SWEEP_PERIOD_MS, and the
 * table gauges (it is their only writer) */

enum { TABLE_NONCE, TABLE_GRANT, TABLE_USERS, TABLE_COUNT };
static const char *const table_names[TABLE_COUNT] = { "nonce", "grant", "users" };
static unsigned m_entries, m_full, m_evicted;
static pthread_t house_thread;
static pthread_mutex_t house_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t house_cv;
static bool house_quit, house_running;

static void table_limits(unsigned which, struct store_table_limits *l)
{
	memset(l, 0, sizeof(*l));
	if (which == TABLE_NONCE && store_nc_marks)
		store_marks_limits(store_nc_marks, l);
	else if (which == TABLE_GRANT && store_jti_marks)
		store_marks_limits(store_jti_marks, l);
	else if (which == TABLE_USERS) {
		rcu_read_lock();
		struct store_users *tb = store_rcu_deref(store_users_cur);
		if (tb)
			store_users_limits(tb, l);
		rcu_read_unlock();
	}
}

/* house_gauges - publish the table gauges; returns the entries a sweep may
 * expire (a users file's table is replaced whole on reload, never swept). */
static uint64_t house_gauges(void)
{
	uint64_t held = 0;
	for (unsigned i = 0; i < TABLE_COUNT; i++) {
		struct store_table_limits l;
		table_limits(i, &l);
		if (i != TABLE_USERS || store_conf.backend == CFG_STORE_REDIS)
			held += l.entries;
		metrics_set(m_entries + i, (int64_t)l.entries);
		metrics_set(m_full + i, (int64_t)l.full);
		if (i == TABLE_USERS)
			metrics_set(m_evicted, (int64_t)l.evicted);
	}
	return held;
}

static void *house_main(void *arg)
{
	(void)arg;
	rcu_register_thread();
	if (metrics_thread_init() < 0)
		log_warn("store", "no metrics shard left for the housekeeping thread");
	pthread_mutex_lock(&house_mu);
	while (!house_quit) {
		pthread_mutex_unlock(&house_mu);
		store_sweep_maybe();
		/* Nothing held, nothing to expire: an idle proxy wakes once a second
		 * instead of a hundred times (measured: 774 futex calls and 473
		 * context switches in 4 s idle before, 8 and 90 after); while steps
		 * keep finding much expired, the next one comes soon. */
		const long period_ms = !house_gauges()	      ? STORE_SWEEP_IDLE_MS
				       : atomic_load_explicit(&sweep_busy, memory_order_relaxed) ? STORE_SWEEP_PERIOD_MS
											 : STORE_SWEEP_CALM_MS;
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += period_ms / 1000;
		until.tv_nsec += (period_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&house_mu);
		if (!house_quit)
			pthread_cond_timedwait(&house_cv, &house_mu, &until);
	}
	pthread_mutex_unlock(&house_mu);
	rcu_unregister_thread();
	return NULL;
}

static int house_start(void)
{
	static bool registered;
	if (!registered) {
		m_entries = metrics_gauge("referee_table_entries",
					  "Entries held by the store's tables (nonce counts, grant bindings, users)",
					  "table", table_names, TABLE_COUNT);
		m_full = metrics_counter("referee_table_full_total",
					 "Inserts refused because the table was at its cap", "table", table_names,
					 TABLE_COUNT);
		m_evicted = metrics_counter("referee_cache_evictions_total",
					    "Cached users evicted to stay under store.cache_max_entries", NULL, NULL, 0);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&house_cv, &ca);
		pthread_condattr_destroy(&ca);
		registered = true;
	}
	house_quit = false;
	int rc = pthread_create(&house_thread, NULL, house_main, NULL);
	if (rc != 0)
		return -rc;
	house_running = true;
	return 0;
}

static void house_stop(void)
{
	if (!house_running)
		return;
	pthread_mutex_lock(&house_mu);
	house_quit = true;
	pthread_cond_signal(&house_cv);
	pthread_mutex_unlock(&house_mu);
	pthread_join(house_thread, NULL);
	house_running = false;
}

void store_stats_get(struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!store_started)
		return;
	out->hits = (uint64_t)metrics_value(store_metric_base + STORE_EV_HIT);
	out->misses = (uint64_t)metrics_value(store_metric_base + STORE_EV_MISS);
	out->errors = (uint64_t)metrics_value(store_metric_base + STORE_EV_ERROR);
	out->degraded = (uint64_t)metrics_value(store_metric_base + STORE_EV_DEGRADED);
	out->overload = (uint64_t)metrics_value(store_metric_base + STORE_EV_OVERLOAD);
	out->unavailable = (uint64_t)metrics_value(store_metric_base + STORE_EV_UNAVAILABLE);
	out->bad_data = (uint64_t)metrics_value(store_metric_base + STORE_EV_BAD_DATA);
	rcu_read_lock();
	struct store_users *tb = store_rcu_deref(store_users_cur);
	out->users = tb ? store_users_count(tb) : 0;
	rcu_read_unlock();
	out->nc_marks = store_nc_marks ? store_marks_count(store_nc_marks) : 0;
	out->jti_marks = store_jti_marks ? store_marks_count(store_jti_marks) : 0;
	table_limits(TABLE_NONCE, &out->nc_limits);
	table_limits(TABLE_GRANT, &out->jti_limits);
	table_limits(TABLE_USERS, &out->users_limits);
	out->sweep_max_ns = atomic_load_explicit(&sweep_max_ns, memory_order_relaxed);
	out->sweep_removed = atomic_load_explicit(&sweep_removed, memory_order_relaxed);
	out->sweep_looked = atomic_load_explicit(&sweep_looked, memory_order_relaxed);
}
