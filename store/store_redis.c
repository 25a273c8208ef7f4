/* store_redis.c - the Redis backend (SPEC §6): one hiredis *async* context
 * per thread, driven by that thread's loop through a small adapter (the
 * ev.addRead/delRead/addWrite/delWrite/cleanup hooks map to the loop's
 * watch/unwatch), a user cache in front of HGETALL, nc/JTI checks through one
 * Lua script (EVALSHA, EVAL again on NOSCRIPT), a bounded set of request
 * slots per connection, reconnect with backoff, and the invalidation
 * subscriber on its own thread. The worker never blocks on Redis.
 *
 * Threads: a struct store_conn and its slots are touched only by the thread
 * that owns the loop driving it; shared state is the users cache (RCU
 * table), the marks tables, conns_up and the counters (atomics). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <urcu.h>

#include "log.h"
#include "store_priv.h"

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };
enum req_kind { REQ_USER, REQ_NC, REQ_JTI };

#define CONNECT_TIMEOUT_MS 2000
#define REPLY_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct store_req {
	struct store_req *next_free;
	struct store_conn *conn;
	struct txn *t;
	struct store_op *op;
	uint8_t kind;
	bool retried; /* sent once more as EVAL after NOSCRIPT */
	uint64_t epoch; /* store_inval_epoch when a user fetch was sent */
	uint32_t nc;
	unsigned ttl;
	size_t keylen, dlglen;
	char key[STORE_ID_MAX > STORE_KEY_MAX ? STORE_ID_MAX : STORE_KEY_MAX]; /* id, nonce or jti */
	char dialog[STORE_DIALOG_MAX];
	char rkey[STORE_KEY_MAX + 32]; /* the Redis key */
};

struct store_conn {
	const struct store_loop_ops *ops;
	void *impl;
	bool subscriber, closing, watched;
	void (*resume)(struct txn *t);
	redisAsyncContext *ac;
	int fd;
	unsigned events;
	enum conn_state state;
	uint64_t since_ms, next_try_ms, backoff_ms, last_reply_ms;
	unsigned inflight, nslots;
	struct store_req *free;
	struct store_req *slots;
};

_Thread_local struct store_conn *store_tls_conn;
static _Atomic int conns_up; /* command connections (not the subscriber) in CONN_UP, all threads */
static struct log_limit lim_conn, lim_data, lim_err;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool store_redis_is_up(void)
{
	return atomic_load_explicit(&conns_up, memory_order_relaxed) > 0;
}

/* ================================================================ adapter */

static void conn_io(void *arg, unsigned events)
{
	struct store_conn *c = arg;
	redisAsyncContext *ac = c->ac;
	if (!ac)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		redisAsyncHandleRead(ac);
	/* the read may have freed the context (EOF): only write to the same live one */
	if (c->ac == ac && (events & EPOLLOUT))
		redisAsyncHandleWrite(ac);
}

static void conn_apply(struct store_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->events) {
		if (c->ops->watch(c->impl, c->fd, c->events, conn_io, c) == 0)
			c->watched = true;
	} else if (c->watched) {
		c->ops->unwatch(c->impl, c->fd);
		c->watched = false;
	}
}

static void ev_add_read(void *d)
{
	struct store_conn *c = d;
	c->events |= EPOLLIN;
	conn_apply(c);
}

static void ev_del_read(void *d)
{
	struct store_conn *c = d;
	c->events &= ~(unsigned)EPOLLIN;
	conn_apply(c);
}

static void ev_add_write(void *d)
{
	struct store_conn *c = d;
	c->events |= EPOLLOUT;
	conn_apply(c);
}

static void ev_del_write(void *d)
{
	struct store_conn *c = d;
	c->events &= ~(unsigned)EPOLLOUT;
	conn_apply(c);
}

static void ev_cleanup(void *d)
{
	struct store_conn *c = d;
	c->events = 0;
	conn_apply(c);
	c->fd = -1;
}

/* ================================================================ connection */

static void limited(struct log_limit *l, enum cfg_log_level lvl, const char *what, const char *detail)
{
	uint64_t suppressed = 0;
	if (log_limit_pass(l, &suppressed))
		log_write(lvl, "store", "%s redis=%s:%d %s suppressed=%llu", what, store_conf.redis_host,
			  store_conf.redis_port, detail ? detail : "", (unsigned long long)suppressed);
}

/* conn_mark_down - the context is gone or going: stop using it, plan a retry. Idempotent. */
static void conn_mark_down(struct store_conn *c)
{
	if (c->state == CONN_UP && !c->subscriber)
		atomic_fetch_sub_explicit(&conns_up, 1, memory_order_relaxed);
	if (c->state != CONN_DOWN) {
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (c->backoff_ms > BACKOFF_MAX_MS)
			c->backoff_ms = BACKOFF_MAX_MS;
		c->next_try_ms = now_ms() + c->backoff_ms;
	}
	c->state = CONN_DOWN;
	c->ac = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct store_conn *c = ac->data;
	if (status != REDIS_OK) {
		limited(&lim_conn, CFG_LOG_WARN, "cannot connect to Redis", ac->errstr);
		conn_mark_down(c); /* hiredis frees the context after this callback */
		return;
	}
	c->state = CONN_UP;
	c->backoff_ms = 0;
	/* a peer that vanished without a FIN (the subscriber has no reply clock) */
	redisEnableKeepAlive((redisContext *)&ac->c);
	c->last_reply_ms = now_ms();
	if (!c->subscriber)
		atomic_fetch_add_explicit(&conns_up, 1, memory_order_relaxed);
	/* Invalidations may have been missed while we were away (SPEC §6). */
	atomic_fetch_add_explicit(&store_inval_epoch, 1, memory_order_seq_cst);
	rcu_read_lock();
	struct store_users *tb = store_users_current_rcu();
	if (tb)
		store_users_clear(tb);
	rcu_read_unlock();
	log_info("store", "connected to Redis redis=%s:%d%s", store_conf.redis_host, store_conf.redis_port,
		 c->subscriber ? " role=subscriber" : "");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct store_conn *c = ac->data;
	if (!c->closing)
		limited(&lim_conn, CFG_LOG_WARN, "lost Redis connection", status == REDIS_OK ? "" : ac->errstr);
	conn_mark_down(c);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;
	if (r && r->type == REDIS_REPLY_ERROR)
		limited(&lim_err, CFG_LOG_ERROR, "Redis setup command failed", r->str);
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
		store_invalidate(slice_make(r->element[2]->str, r->element[2]->len));
}

static void conn_connect(struct store_conn *c)
{
	redisAsyncContext *ac = redisAsyncConnect(store_conf.redis_host, store_conf.redis_port);
	if (!ac || ac->err) {
		limited(&lim_conn, CFG_LOG_WARN, "cannot connect to Redis", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		c->state = CONN_CONNECTING; /* so conn_mark_down plans a retry */
		conn_mark_down(c);
		return;
	}
	c->ac = ac;
	c->fd = ac->c.fd;
	c->events = 0;
	c->watched = false;
	c->state = CONN_CONNECTING;
	c->since_ms = now_ms();
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* queued until connected; replies come back in order before any lookup's */
	if (store_conf.redis_db)
		redisAsyncCommand(ac, on_setup_reply, c, "SELECT %d", store_conf.redis_db);
	if (c->subscriber)
		redisAsyncCommand(ac, on_message, c, "SUBSCRIBE %s", STORE_REDIS_CHANNEL);
	else
		redisAsyncCommand(ac, on_setup_reply, c, "SCRIPT LOAD %s", store_script_text());
}

/* conn_drop - give up on the current context now (timeouts, shutdown). Not from a hiredis callback. */
static void conn_drop(struct store_conn *c)
{
	redisAsyncContext *ac = c->ac;
	if (!ac)
		return;
	redisAsyncFree(ac); /* pending requests complete with a NULL reply */
	conn_mark_down(c);
}

static bool conn_ready(const struct store_conn *c)
{
	return c && c->state == CONN_UP && c->ac && !(c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}

struct store_conn *store_conn_new(const struct store_loop_ops *ops, void *impl, bool subscriber,
				  void (*resume)(struct txn *t))
{
	struct store_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ops = ops;
	c->impl = impl;
	c->subscriber = subscriber;
	c->resume = resume;
	c->fd = -1;
	c->nslots = subscriber ? 0 : store_conf.max_inflight;
	if (c->nslots) {
		c->slots = calloc(c->nslots, sizeof(*c->slots));
		if (!c->slots) {
			free(c);
			return NULL;
		}
		for (unsigned i = 0; i < c->nslots; i++) {
			c->slots[i].next_free = c->free;
			c->free = &c->slots[i];
		}
	}
	conn_connect(c); /* first attempt now; failures retry from the tick */
	return c;
}

void store_conn_free(struct store_conn *c)
{
	if (!c)
		return;
	c->closing = true; /* parked txns get their result but are not resumed */
	conn_drop(c);
	free(c->slots);
	free(c);
}

void store_conn_tick(struct store_conn *c)
{
	uint64_t now = now_ms();
	store_sweep_maybe();
	switch (c->state) {
	case CONN_DOWN:
		if (!c->closing && now >= c->next_try_ms)
			conn_connect(c);
		break;
	case CONN_CONNECTING:
		if (now - c->since_ms > CONNECT_TIMEOUT_MS) {
			limited(&lim_conn, CFG_LOG_WARN, "Redis connect timeout", "");
			conn_drop(c);
		}
		break;
	case CONN_UP:
		if (c->inflight && now - c->last_reply_ms > REPLY_TIMEOUT_MS) {
			limited(&lim_conn, CFG_LOG_WARN, "Redis not answering, reconnecting", "");
			conn_drop(c);
		}
		break;
	}
}

/* ================================================================ requests */

static struct store_req *req_get(struct store_conn *c)
{
	struct store_req *r = c->free;
	if (!r)
		return NULL;
	c->free = r->next_free;
	if (c->inflight++ == 0)
		c->last_reply_ms = now_ms(); /* the reply clock starts with the first request */
	r->conn = c;
	r->retried = false;
	return r;
}

static void req_release(struct store_conn *c, struct store_req *r)
{
	r->next_free = c->free;
	c->free = r;
	c->inflight--;
}

/* req_done - free the slot, then hand the answer to the parked txn. */
static void req_done(struct store_req *r, enum store_rc rc)
{
	struct store_conn *c = r->conn;
	struct txn *t = r->t;
	struct store_op *op = r->op;
	req_release(c, r);
	op->result = (int8_t)rc;
	op->state = STORE_OP_DONE;
	op->priv = NULL;
	if (c->resume && !c->closing)
		c->resume(t);
}

/* user_parse - HGETALL pairs into @u. NULL, or why the data is bad. */
static const char *user_parse(const redisReply *r, struct store_user *u, char *why, size_t whylen)
{
	bool has_perms = false;
	if (r->elements % 2)
		return "odd reply";
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			return "non-string field";
		struct slice name = slice_make(f->str, f->len), val = slice_make(v->str, v->len);
		if (slice_eq(name, SLICE_LIT("ha1_md5"))) {
			if (!(u->has_md5 = store_hex_decode(val, u->ha1_md5, 16)))
				return "ha1_md5 is not 32 hex digits";
		} else if (slice_eq(name, SLICE_LIT("ha1_sha256"))) {
			if (!(u->has_sha256 = store_hex_decode(val, u->ha1_sha256, 32)))
				return "ha1_sha256 is not 64 hex digits";
		} else if (slice_eq(name, SLICE_LIT("permissions"))) {
			struct slice bad = SLICE_NULL;
			has_perms = true;
			if (store_perms_parse(val, u->perms, &bad) < 0) {
				snprintf(why, whylen, "unknown permission '%.*s'", (int)(bad.len > 64 ? 64 : bad.len), bad.p);
				return why;
			}
		}
	}
	if (!u->has_md5 && !u->has_sha256)
		return "missing field ha1_md5/ha1_sha256";
	if (!has_perms)
		return "missing field permissions";
	return NULL;
}

static void on_user_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_req *r = priv;
	struct store_conn *c = r->conn;
	const redisReply *rep = reply;
	enum store_rc rc = STORE_UNAVAILABLE;
	if (!rep) {
		conn_mark_down(c); /* the context is being freed: nothing more goes out on it */
		STORE_COUNT(UNAVAILABLE);
		req_done(r, rc);
		return;
	}
	c->last_reply_ms = now_ms();
	bool wrong_type = rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0;
	if (rep->type == REDIS_REPLY_ARRAY || wrong_type) {
		struct store_user u;
		char why[128];
		memset(&u, 0, sizeof(u));
		memcpy(u.id, r->key, r->keylen);
		const char *bad = wrong_type ? "not a hash" : rep->elements ? user_parse(rep, &u, why, sizeof(why)) : "";
		if (bad && *bad) {
			uint64_t suppressed = 0;
			STORE_COUNT(BAD_DATA);
			if (log_limit_pass(&lim_data, &suppressed))
				log_warn("store", "bad user data key=%s: %s suppressed=%llu", r->rkey, bad,
					 (unsigned long long)suppressed);
		}
		/* Negative entries too: unknown or bad users do not hammer Redis. An
		 * invalidation since the request was sent may postdate what Redis
		 * answered: then the entry goes in already stale (this txn uses it,
		 * the next lookup fetches again). Insert first, then look: a later
		 * invalidation deletes what we inserted (seq_cst on both sides). */
		rcu_read_lock();
		struct store_users *tb = store_users_current_rcu();
		if (tb && store_users_put(tb, &u, !bad) == 0 &&
		    atomic_load_explicit(&store_inval_epoch, memory_order_seq_cst) != r->epoch)
			store_users_put_aged(tb, &u, !bad, true);
		rcu_read_unlock();
		rc = bad ? STORE_NOT_FOUND : STORE_OK;
		memset(&u, 0, sizeof(u));
	} else {
		STORE_COUNT(ERROR);
		limited(&lim_err, CFG_LOG_ERROR, "HGETALL failed", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
	}
	req_done(r, rc);
}

enum store_rc store_redis_user_get(struct store_conn *c, struct txn *t, struct store_op *op, struct slice id,
				   struct store_user *out)
{
	bool just_fetched = false;
	if (op->state == STORE_OP_WAIT)
		return STORE_PARKED;
	if (op->state == STORE_OP_DONE) {
		op->state = STORE_OP_NEW;
		if (op->result != STORE_OK)
			return (enum store_rc)op->result;
		just_fetched = true;
	}
	uint64_t age = 0;
	rcu_read_lock();
	struct store_users *tb = store_users_current_rcu();
	int rc = tb ? store_users_get_rcu(tb, id, out, &age) : -ENOENT;
	rcu_read_unlock();
	/* stale entries keep serving while Redis is down (SPEC §6) */
	if (rc >= 0 && (just_fetched || age < store_conf.cache_max_age || !conn_ready(c))) {
		STORE_COUNT(HIT);
		return rc > 0 ? STORE_OK : STORE_NOT_FOUND;
	}
	if (just_fetched) /* fetched, then dropped at once (invalidation or no memory): retry later */
		return STORE_UNAVAILABLE;
	STORE_COUNT(MISS);
	if (!conn_ready(c)) {
		STORE_COUNT(UNAVAILABLE);
		return STORE_UNAVAILABLE;
	}
	struct store_req *r = req_get(c);
	if (!r) {
		STORE_COUNT(OVERLOAD);
		return STORE_OVERLOAD;
	}
	r->kind = REQ_USER;
	r->t = t;
	r->op = op;
	r->epoch = atomic_load_explicit(&store_inval_epoch, memory_order_seq_cst);
	memcpy(r->key, id.p, id.len);
	r->keylen = id.len;
	int klen = store_key_user(r->rkey, sizeof(r->rkey), id);
	const char *argv[2] = { "HGETALL", r->rkey };
	size_t argl[2] = { 7, klen > 0 ? (size_t)klen : 0 };
	if (klen < 0 || redisAsyncCommandArgv(c->ac, on_user_reply, r, 2, argv, argl) != REDIS_OK) {
		req_release(c, r);
		STORE_COUNT(ERROR);
		return STORE_UNAVAILABLE;
	}
	op->state = STORE_OP_WAIT;
	op->priv = r;
	return STORE_PARKED;
}

/* mark_send - EVALSHA (or EVAL after NOSCRIPT) of the nc/JTI script for @r. */
static int mark_send(struct store_conn *c, struct store_req *r, redisCallbackFn *fn)
{
	char val[16], ttl[16];
	const char *argv[7];
	size_t argl[7];
	int n = 0;
	argv[n] = r->retried ? "EVAL" : "EVALSHA";
	argl[n] = strlen(argv[n]);
	n++;
	argv[n] = r->retried ? store_script_text() : store_script_sha();
	argl[n] = strlen(argv[n]);
	n++;
	argv[n] = "1";
	argl[n++] = 1;
	argv[n] = r->rkey;
	argl[n++] = strlen(r->rkey);
	argv[n] = r->kind == REQ_NC ? "nc" : "jti";
	argl[n] = strlen(argv[n]);
	n++;
	if (r->kind == REQ_NC) {
		argl[n] = (size_t)snprintf(val, sizeof(val), "%u", r->nc);
		argv[n++] = val;
	} else {
		argv[n] = r->dialog;
		argl[n++] = r->dlglen;
	}
	argl[n] = (size_t)snprintf(ttl, sizeof(ttl), "%u", r->ttl ? r->ttl : 1);
	argv[n++] = ttl;
	return redisAsyncCommandArgv(c->ac, fn, r, n, argv, argl) == REDIS_OK ? 0 : -EIO;
}

/* mark_local - the local table's say: nc was recorded before asking Redis;
 * a JTI is bound locally only once Redis agreed, or when Redis is away. */
static enum store_rc mark_local(const struct store_req *r)
{
	if (r->kind == REQ_NC)
		return STORE_OK;
	return store_marks_jti(store_jti_marks, slice_make(r->key, r->keylen), slice_make(r->dialog, r->dlglen),
			       r->ttl, true);
}

static void on_mark_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_req *r = priv;
	struct store_conn *c = r->conn;
	const redisReply *rep = reply;
	if (!rep) {
		conn_mark_down(c);
		STORE_COUNT(DEGRADED);
		req_done(r, mark_local(r));
		return;
	}
	c->last_reply_ms = now_ms();
	if (rep->type == REDIS_REPLY_INTEGER) {
		if (rep->integer == 1)
			mark_local(r); /* remember Redis's binding for when it is away */
		req_done(r, rep->integer == 1 ? STORE_OK : STORE_REJECT);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR && !r->retried && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		r->retried = true; /* script cache flushed (restart, SCRIPT FLUSH): EVAL loads it again */
		if (mark_send(c, r, on_mark_reply) == 0)
			return;
	}
	STORE_COUNT(ERROR);
	STORE_COUNT(DEGRADED);
	limited(&lim_err, CFG_LOG_ERROR, "nc/jti script failed", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
	req_done(r, mark_local(r));
}

enum store_rc store_redis_mark(struct store_conn *c, struct txn *t, struct store_op *op, bool is_nc,
			       struct slice key, uint32_t nc, struct slice dialog, unsigned ttl)
{
	if (!conn_ready(c)) {
		STORE_COUNT(DEGRADED); /* the local table decides (SPEC §6) */
		return is_nc ? STORE_OK : store_marks_jti(store_jti_marks, key, dialog, ttl, true);
	}
	struct store_req *r = req_get(c);
	if (!r) {
		STORE_COUNT(OVERLOAD);
		return STORE_OVERLOAD;
	}
	r->kind = is_nc ? REQ_NC : REQ_JTI;
	r->t = t;
	r->op = op;
	r->nc = nc;
	r->ttl = ttl;
	r->keylen = key.len; /* the local check already bounded key and dialog sizes */
	memcpy(r->key, key.p, key.len);
	r->dlglen = dialog.len;
	if (dialog.len)
		memcpy(r->dialog, dialog.p, dialog.len);
	int klen = is_nc ? store_key_nc(r->rkey, sizeof(r->rkey), key) : store_key_jti(r->rkey, sizeof(r->rkey), key);
	if (klen < 0 || mark_send(c, r, on_mark_reply) < 0) {
		enum store_rc rc = mark_local(r);
		req_release(c, r);
		STORE_COUNT(ERROR);
		STORE_COUNT(DEGRADED);
		return rc;
	}
	op->state = STORE_OP_WAIT;
	op->priv = r;
	return STORE_PARKED;
}

/* ================================================================ subscriber */

static pthread_t sub_thread;
static atomic_bool sub_stop;
static bool sub_running;

/* sub_main - the invalidation subscriber: its own connection and poll loop
 * on a store-owned thread (not a worker), an RCU reader for store_invalidate. */
static void *sub_main(void *arg)
{
	struct store_poll_loop *loop = arg;
	rcu_register_thread();
	struct store_conn *c = store_conn_new(&store_poll_ops, loop, true, NULL);
	while (c && !atomic_load_explicit(&sub_stop, memory_order_acquire))
		store_poll_loop_run(loop, 100, c);
	store_conn_free(c);
	rcu_unregister_thread();
	store_poll_loop_free(loop);
	return NULL;
}

int store_redis_start(void)
{
	struct store_poll_loop *loop = store_poll_loop_new();
	if (!loop)
		return -ENOMEM;
	atomic_store_explicit(&sub_stop, false, memory_order_relaxed);
	int rc = pthread_create(&sub_thread, NULL, sub_main, loop);
	if (rc) {
		store_poll_loop_free(loop);
		return -rc;
	}
	sub_running = true;
	return 0;
}

void store_redis_stop(void)
{
	if (!sub_running)
		return;
	/* pairs with the acquire load in sub_main */
	atomic_store_explicit(&sub_stop, true, memory_order_release);
	pthread_join(sub_thread, NULL);
	sub_running = false;
}
