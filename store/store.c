/* store.c - the store's front door (store.h): init/reload/fini, the three
 * lookups dispatched to the file backend (tables only) or to Redis (cache,
 * then an async fetch), invalidation, health and counters, plus small shared
 * helpers (id normalisation, HA1, hex). SPEC §3 (HA1), §6. Not here: table
 * internals (store_tables.c), the YAML file, Redis I/O. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <urcu.h>

#include "log.h"
#include "store_priv.h"

struct store_settings store_conf;
unsigned store_metric_base;
static const char *const store_event_names[STORE_EV_COUNT] = {
	"hit", "miss", "error", "degraded", "overload", "unavailable", "bad_data",
};
struct store_marks *store_nc_marks, *store_jti_marks;
/* Published with rcu_assign_pointer (init/reload, main thread), read with
 * rcu_dereference (store_rcu_* in store_priv.h: the same under TSan). */
static struct store_users *users_cur;
/* users_cur belongs to the store (store_init, store_reload) or is an alias of
 * the table a published generation owns (store_gen_commit). Main thread. */
static bool users_cur_owned;
static bool store_started;

struct store_users *store_users_current_rcu(void)
{
	return store_rcu_deref(users_cur);
}

/* ================================================================ helpers */

int store_id_norm(struct slice id, char buf[STORE_ID_MAX], size_t *len)
{
	if (id.len >= STORE_ID_MAX)
		return -ENAMETOOLONG;
	ptrdiff_t at = slice_find_char(id, '@');
	if (at <= 0 || (size_t)at + 1 >= id.len || slice_find_char(slice_advance(id, (size_t)at + 1), '@') >= 0)
		return -EINVAL;
	for (size_t i = 0; i < id.len; i++) {
		char ch = id.p[i];
		if ((unsigned char)ch <= ' ' || ch == ',' || ch == 0x7f)
			return -EINVAL;
		buf[i] = ((size_t)at < i && ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	buf[id.len] = '\0';
	*len = id.len;
	return 0;
}

static int digest_once(const EVP_MD *md, const char *user, size_t ulen, const char *realm,
		       const char *pw, size_t pwlen, uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, user, ulen) &&
		 EVP_DigestUpdate(ctx, ":", 1) && EVP_DigestUpdate(ctx, realm, strlen(realm)) &&
		 EVP_DigestUpdate(ctx, ":", 1) && EVP_DigestUpdate(ctx, pw, pwlen) &&
		 EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int store_ha1_compute(const char *id, const char *realm, const char *pw, size_t pwlen,
		      uint8_t md5[16], uint8_t sha256[32])
{
	const char *at = strchr(id, '@');
	size_t ulen = at ? (size_t)(at - id) : strlen(id);
	if (digest_once(EVP_md5(), id, ulen, realm, pw, pwlen, md5) < 0 ||
	    digest_once(EVP_sha256(), id, ulen, realm, pw, pwlen, sha256) < 0)
		return -EIO;
	return 0;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool store_hex_decode(struct slice hex, uint8_t *out, size_t n)
{
	if (hex.len != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_val(hex.p[2 * i]), lo = hex_val(hex.p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

void store_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ================================================================ lifecycle */

static struct store_users *users_load(const struct cfg *c, char *err, size_t errlen)
{
	if (!c->store.file[0]) {
		log_warn("store", "store.file not set: no users");
		return store_users_new();
	}
	/* cfg_load already made store.file relative to the config's folder */
	return store_users_file_load(c->store.file, c->realm, err, errlen);
}

static int settings_load(const struct cfg *c, char *err, size_t errlen)
{
	memset(&store_conf, 0, sizeof(store_conf));
	store_conf.backend = c->store.backend;
	store_conf.cache_max_age = c->store.cache_max_age ? c->store.cache_max_age : 60;
	store_conf.max_inflight = c->store.max_inflight ? c->store.max_inflight : 1024;
	const char *why = c->store.backend == CFG_STORE_REDIS ? cfg_redis_url_parse(c->store.redis, &store_conf.redis)
							      : NULL;
	if (why) {
		snprintf(err, errlen, "%s:1: store.redis '%s' %s", c->path, c->store.redis, why);
		return -EINVAL;
	}
	return 0;
}

int store_init(const struct cfg *c, char *err, size_t errlen)
{
	if (store_started) {
		snprintf(err, errlen, "store already started");
		return -EALREADY;
	}
	int rc = settings_load(c, err, errlen);
	if (rc < 0)
		return rc;
	static bool registered; /* families are per process; store_init may run again (tests) */
	if (!registered) {
		store_metric_base = metrics_counter("referee_store_events_total",
						    "Store lookups and checks by outcome (degraded: decided by the "
						    "local table while Redis was away)",
						    "event", store_event_names, STORE_EV_COUNT);
		registered = true;
	}
	store_script_sha(); /* computed once, before threads */
	store_nc_marks = store_marks_new();
	store_jti_marks = store_marks_new();
	struct store_users *tb = c->store.backend == CFG_STORE_FILE ? users_load(c, err, errlen) : store_users_new();
	if (!store_nc_marks || !store_jti_marks || !tb) {
		/* a users file error has filled @err already */
		rc = !tb && c->store.backend == CFG_STORE_FILE ? -EINVAL : -ENOMEM;
		if (rc == -ENOMEM)
			snprintf(err, errlen, "store: out of memory");
		store_users_free(tb);
		goto fail;
	}
	store_rcu_assign(users_cur, tb);
	users_cur_owned = true;
	if (c->store.backend == CFG_STORE_REDIS && (rc = store_redis_start()) < 0) {
		snprintf(err, errlen, "store: cannot start the Redis subscriber: %s", strerror(-rc));
		store_rcu_assign(users_cur, NULL);
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
	struct store_users *old = store_rcu_xchg(users_cur, tb);
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
	if (store_rcu_deref(users_cur) == tb) {
		store_rcu_assign(users_cur, NULL);
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

void store_gen_commit(const struct cfg *next)
{
	struct store_users *tb = cfg_gen_get(next, CFG_GEN_USERS);
	if (!tb)
		return;
	struct store_users *old = store_rcu_xchg(users_cur, tb);
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
	if (store_conf.backend == CFG_STORE_REDIS)
		store_redis_stop();
	struct store_users *old = store_rcu_xchg(users_cur, NULL);
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
		tb = store_rcu_deref(users_cur);
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
	struct store_users *tb = store_rcu_deref(users_cur);
	if (tb && store_conf.backend == CFG_STORE_REDIS)
		store_users_del(tb, slice_make(buf, len));
	rcu_read_unlock();
}

bool store_is_usable(void)
{
	if (!store_started)
		return false;
	return store_conf.backend == CFG_STORE_FILE || store_redis_is_up();
}

void store_sweep_maybe(void)
{
	static _Atomic uint64_t last_sweep;
	uint64_t now = store_now_sec();
	uint64_t last = atomic_load_explicit(&last_sweep, memory_order_relaxed);
	/* one sweeper per second; relaxed is enough, the tables are RCU-safe anyway */
	if (now == last || !atomic_compare_exchange_strong_explicit(&last_sweep, &last, now, memory_order_relaxed,
								    memory_order_relaxed))
		return;
	if (store_nc_marks)
		store_marks_sweep(store_nc_marks);
	if (store_jti_marks)
		store_marks_sweep(store_jti_marks);
	/* Cache entries past max-age go, except while Redis is down (they keep serving). */
	if (store_conf.backend == CFG_STORE_REDIS && store_redis_is_up()) {
		rcu_read_lock();
		struct store_users *tb = store_rcu_deref(users_cur);
		if (tb)
			store_users_expire(tb, store_conf.cache_max_age);
		rcu_read_unlock();
	}
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
	struct store_users *tb = store_rcu_deref(users_cur);
	out->users = tb ? store_users_count(tb) : 0;
	rcu_read_unlock();
	out->nc_marks = store_nc_marks ? store_marks_count(store_nc_marks) : 0;
	out->jti_marks = store_jti_marks ? store_marks_count(store_jti_marks) : 0;
}
