/* store_redis_client.c - the Redis backend's client on each thread (SPEC §6, §12):
 * a user cache in front of HGETALL, nc/JTI checks through one Lua script
 * (EVALSHA; SCRIPT LOAD again on the node answering NOSCRIPT) or, for a nonce's
 * first count, SET NX, a bounded pool
 * of request slots per thread, and the links it sends them on
 * (store_redis_link.c): one to the server or to the Sentinel-discovered
 * master, or one per Cluster master with the slot of each key looked up in
 * the thread's own copy of the slot map, MOVED and ASK (with ASKING)
 * followed. The links follow the topology the topology thread publishes
 * (store_redis_topo.c), re-read on the thread's tick. The worker never blocks.
 *
 * Threads: a struct store_conn, its links and slots are touched only by the
 * thread that owns the loop driving them; shared state is the users cache
 * (RCU table), the marks tables, the topology (RCU), conns_up and counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "hex.h"
#include "log.h"
#include "store_redis_priv.h"

enum req_kind { REQ_USER, REQ_NC, REQ_JTI };

#define MAX_REDIRECTS 3

struct store_req {
	struct store_req *next_free;
	struct store_conn *conn;
	struct store_link *link; /* where it was sent last */
	struct txn *t;
	struct store_op *op;
	uint8_t kind;
	uint8_t redirects;
	bool retried; /* sent once more after NOSCRIPT */
	uint64_t epoch; /* store_inval_epoch when a user fetch was sent */
	uint32_t nc;
	unsigned ttl;
	size_t keylen, dlglen, rkeylen;
	char key[STORE_ID_MAX > STORE_KEY_MAX ? STORE_ID_MAX : STORE_KEY_MAX]; /* id, nonce or jti */
	char dialog[STORE_DIALOG_MAX];
	char rkey[STORE_KEY_MAX + 32]; /* the Redis key */
};

/* A thread's client: its links and request slots. */
struct store_conn {
	const struct store_loop_ops *ops;
	void *impl;
	void (*resume)(struct txn *t);
	bool closing;
	bool batched;           /* the owner calls store_conn_flush at the end of each batch */
	uint32_t flush_pending; /* batched: links with commands queued since (bit per index) */
	uint64_t topo_gen; /* topology the links follow */
	unsigned n_links;
	struct store_link links[STORE_REDIS_MAX_NODES];
	uint8_t slot_link[STORE_CLUSTER_SLOTS]; /* cluster: index into links, or STORE_SLOT_NONE */
	unsigned inflight, nslots;
	struct store_req *free;
	struct store_req *slots;
};

_Thread_local struct store_conn *store_tls_conn;
static _Atomic int conns_up; /* command links in LINK_UP, all threads */
static struct log_limit lim_err;
static struct log_limit_keyed lim_data; /* per key: SPEC §6 names each bad key */

bool store_redis_is_up(void)
{
	return atomic_load_explicit(&conns_up, memory_order_relaxed) > 0;
}

static void limited(struct log_limit *l, enum cfg_log_level lvl, const char *what, const struct store_link *link,
		    const char *detail)
{
	uint64_t suppressed = 0;
	if (log_limit_pass(l, &suppressed))
		log_write(lvl, "store", "%s redis=%s:%u %s suppressed=%llu", what, link ? link->host : "-",
			  link ? link->port : 0, detail ? detail : "", (unsigned long long)suppressed);
}

/* ================================================================ links of a client */

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	const redisReply *r = reply;
	struct store_link *l = ac->data;
	if (r && r->type == REDIS_REPLY_ERROR)
		limited(&lim_err, CFG_LOG_ERROR, "Redis setup command failed", l, r->str);
}

static void client_link_up(struct store_link *l)
{
	store_link_set_up(l);
	atomic_fetch_add_explicit(&conns_up, 1, memory_order_relaxed);
}

/* on_role_reply - Sentinel: a link serves only once ROLE says "master". */
static void on_role_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_link *l = ac->data;
	int role = reply ? store_sentinel_parse_role(reply) : -EINVAL;
	if (!reply)
		return;
	if (role == 1) {
		client_link_up(l);
		return;
	}
	limited(&lim_err, CFG_LOG_WARN, "Redis server is not the master, asking the sentinels again", l,
		role == 0 ? "role=replica" : "bad ROLE reply");
	store_topo_want_refresh();
	redisAsyncDisconnect(ac);
}

static void client_link_connected(struct store_link *l)
{
	redisAsyncContext *ac = l->ac;
	/* queued in order: their replies come before any request's */
	if (store_conf.redis.db)
		redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %u", store_conf.redis.db);
	redisAsyncCommand(ac, on_setup_reply, NULL, "SCRIPT LOAD %s", store_script_text());
	if (store_conf.redis.kind == CFG_REDIS_SENTINEL)
		redisAsyncCommand(ac, on_role_reply, NULL, "ROLE");
	else
		client_link_up(l);
}

static void client_link_lost(struct store_link *l, bool was_up)
{
	struct store_conn *c = l->owner;
	if (was_up)
		atomic_fetch_sub_explicit(&conns_up, 1, memory_order_relaxed);
	if (!c->closing && !l->retargeting && store_conf.redis.kind != CFG_REDIS_SINGLE)
		store_topo_want_refresh(); /* the master failed over, or the node left */
}

static const struct store_link_hooks client_hooks = { client_link_connected, client_link_lost };

/* client_link_for - the link serving @host:@port, aimed there when absent. NULL when full. */
static struct store_link *client_link_for(struct store_conn *c, const struct cfg_redis_host *h)
{
	struct store_link *spare = NULL;
	for (unsigned i = 0; i < c->n_links; i++) {
		struct store_link *l = &c->links[i];
		if (l->in_use && store_link_is(l, h->host, h->port))
			return l;
		if (!l->in_use && !spare)
			spare = l;
	}
	if (!spare && c->n_links < STORE_REDIS_MAX_NODES) {
		spare = &c->links[c->n_links++];
		store_link_init(spare, c->ops, c->impl, &client_hooks, c, "command");
	}
	if (spare)
		store_link_target(spare, h->host, h->port);
	return spare;
}

/* client_follow - aim the links at the published topology when it changed.
 * Links to servers no longer in it are dropped (their requests complete). */
static void client_follow(struct store_conn *c)
{
	uint64_t gen = store_topo_gen();
	if (gen == c->topo_gen || c->closing)
		return;
	static _Thread_local struct cfg_redis_host nodes[STORE_REDIS_MAX_NODES];
	unsigned n = 0;
	rcu_read_lock();
	const struct store_topo *t = store_topo_current_rcu();
	if (t) {
		gen = t->gen;
		n = t->n_nodes;
		memcpy(nodes, t->nodes, n * sizeof(nodes[0]));
		memcpy(c->slot_link, t->slot_node, sizeof(c->slot_link));
		STORE_TSAN_RELEASE(t); /* done reading: pairs with the acquire before the free */
	}
	rcu_read_unlock();
	if (!t)
		return;
	bool keep[STORE_REDIS_MAX_NODES] = { false };
	uint8_t node_link[STORE_REDIS_MAX_NODES];
	/* first the links already aimed right, so a changed map never drops them */
	for (unsigned i = 0; i < n; i++) {
		node_link[i] = STORE_SLOT_NONE;
		for (unsigned j = 0; j < c->n_links; j++)
			if (!keep[j] && c->links[j].in_use && store_link_is(&c->links[j], nodes[i].host, nodes[i].port)) {
				node_link[i] = (uint8_t)j;
				keep[j] = true;
				break;
			}
	}
	for (unsigned j = 0; j < c->n_links; j++)
		if (!keep[j] && c->links[j].in_use)
			store_link_retire(&c->links[j]);
	for (unsigned i = 0; i < n; i++) {
		if (node_link[i] != STORE_SLOT_NONE)
			continue;
		struct store_link *l = client_link_for(c, &nodes[i]);
		if (l) {
			node_link[i] = (uint8_t)(l - c->links);
			store_link_connect(l);
		}
	}
	for (unsigned s = 0; s < STORE_CLUSTER_SLOTS; s++)
		c->slot_link[s] = c->slot_link[s] < n ? node_link[c->slot_link[s]] : STORE_SLOT_NONE;
	c->topo_gen = gen;
}

/* client_route - the link for Redis key @rkey (cluster: by slot), or NULL. */
static struct store_link *client_route(struct store_conn *c, const char *rkey, size_t len)
{
	if (!c)
		return NULL;
	if (store_conf.redis.kind != CFG_REDIS_CLUSTER)
		return c->n_links && c->links[0].in_use ? &c->links[0] : NULL;
	unsigned j = c->slot_link[store_cluster_slot(rkey, len)];
	return j < c->n_links ? &c->links[j] : NULL;
}

_Static_assert(STORE_REDIS_MAX_NODES <= 32, "flush_pending has a bit per link");

struct store_conn *store_conn_new(const struct store_loop_ops *ops, void *impl, bool batched,
				  void (*resume)(struct txn *t))
{
	struct store_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->batched = batched;
	c->ops = ops;
	c->impl = impl;
	c->resume = resume;
	memset(c->slot_link, STORE_SLOT_NONE, sizeof(c->slot_link));
	c->nslots = store_conf.max_inflight;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	for (unsigned i = 0; i < c->nslots; i++) {
		c->slots[i].next_free = c->free;
		c->free = &c->slots[i];
	}
	client_follow(c); /* first attempt now when the topology is known; else from the tick */
	return c;
}

void store_conn_free(struct store_conn *c)
{
	if (!c)
		return;
	c->closing = true; /* parked txns get their result but are not resumed */
	for (unsigned i = 0; i < c->n_links; i++) {
		c->links[i].closing = true;
		store_link_drop(&c->links[i]);
	}
	free(c->slots);
	free(c);
}

void store_conn_tick(struct store_conn *c)
{
	uint64_t now = store_redis_now_ms();
	client_follow(c);
	for (unsigned i = 0; i < c->n_links; i++)
		if (c->links[i].in_use)
			store_link_tick(&c->links[i], now);
}

/* ================================================================ requests */

static struct store_req *req_get(struct store_conn *c)
{
	struct store_req *r = c->free;
	if (!r)
		return NULL;
	c->free = r->next_free;
	c->inflight++;
	r->conn = c;
	r->link = NULL;
	r->retried = false;
	r->redirects = 0;
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

static void on_user_reply(redisAsyncContext *ac, void *reply, void *priv);
static void on_mark_reply(redisAsyncContext *ac, void *reply, void *priv);

/* req_park - the op waits for @r. A batched connection (a worker's) leaves the
 * link corked: store_conn_flush writes every command of the batch in one write per
 * link at the batch's end, and the loop is told nothing (measured at 2000 cps
 * invite-redis: 0.47 epoll_ctl and 0.52 write per call before, when a command that
 * found others in flight waited for EPOLLOUT). Otherwise, when @r is alone on its
 * link the command is written now; with others in flight it waits for the loop's
 * EPOLLOUT and leaves in one write with the commands queued meanwhile. A write that
 * fails completes @r at once (op DONE, the resume deferred by the worker): the
 * caller still returns STORE_PARKED and reads the answer when called again. */
static void req_park(struct store_op *op, struct store_req *r, struct store_link *l)
{
	struct store_conn *c = r->conn;
	op->state = STORE_OP_WAIT;
	op->priv = r;
	if (c->batched)
		c->flush_pending |= 1u << (unsigned)(l - c->links);
	else if (l->inflight == 1)
		store_link_flush(l);
	else
		store_link_uncork(l);
}

void store_conn_flush(struct store_conn *c)
{
	/* a write that fails completes its link's requests, and a txn resumed then may
	 * queue a command on another link: its bit is taken in the next round */
	while (c->flush_pending) {
		unsigned i = (unsigned)__builtin_ctz(c->flush_pending);
		c->flush_pending &= c->flush_pending - 1;
		store_link_flush(&c->links[i]);
	}
}

/* req_is_first_nc - a nonce count of 1, checked with SET NX rather than the script */
static bool req_is_first_nc(const struct store_req *r)
{
	return r->kind == REQ_NC && r->nc == 1;
}

/* req_send - the request's command on @l (ASKING first after an ASK redirect). 0 or -EIO. */
static int req_send(struct store_req *r, struct store_link *l, bool asking)
{
	char val[16], ttl[16];
	const char *argv[7];
	size_t argl[7];
	int n = 0;
	if (!store_link_ready(l))
		return -EIO;
	if (asking && redisAsyncCommand(l->ac, NULL, NULL, "ASKING") != REDIS_OK)
		return -EIO;
	const unsigned ttl_s = r->ttl ? r->ttl : 1;
	if (req_is_first_nc(r)) {
		/* A nonce's first count, what nearly every authenticated request carries:
		 * any stored count is at least 1, so "above the stored one" is "none stored",
		 * which SET NX decides without running the script (its Lua is most of
		 * Redis's CPU per call in bench/run.sh invite-redis). +OK stored, nil refused. */
		argv[n] = "SET";
		argl[n++] = 3;
		argv[n] = r->rkey;
		argl[n++] = r->rkeylen;
		argv[n] = "1";
		argl[n++] = 1;
		argv[n] = "NX";
		argl[n++] = 2;
		argv[n] = "EX";
		argl[n++] = 2;
		argl[n] = (size_t)snprintf(ttl, sizeof(ttl), "%u", ttl_s);
		argv[n++] = ttl;
	} else if (r->kind == REQ_USER) {
		argv[n] = "HGETALL";
		argl[n++] = 7;
		argv[n] = r->rkey;
		argl[n++] = r->rkeylen;
	} else {
		/* EVALSHA sha 1 KEY nc COUNT TTL | EVALSHA sha 1 KEY jti DIALOG TTL */
		argv[n] = "EVALSHA";
		argl[n++] = 7;
		argv[n] = store_script_sha();
		argl[n++] = 40;
		argv[n] = "1";
		argl[n++] = 1;
		argv[n] = r->rkey;
		argl[n++] = r->rkeylen;
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
		argl[n] = (size_t)snprintf(ttl, sizeof(ttl), "%u", ttl_s);
		argv[n++] = ttl;
	}
	redisCallbackFn *fn = r->kind == REQ_USER ? on_user_reply : on_mark_reply;
	if (redisAsyncCommandArgv(l->ac, fn, r, n, argv, argl) != REDIS_OK)
		return -EIO;
	if (l->inflight++ == 0)
		l->last_reply_ms = store_redis_now_ms(); /* the reply clock starts with the first request */
	r->link = l;
	return 0;
}

/* req_reply_begin - bookkeeping every reply does first; false when the link is gone (NULL reply). */
static bool req_reply_begin(struct store_req *r, const redisReply *rep)
{
	struct store_link *l = r->link;
	if (!rep) {
		store_link_mark_down(l); /* the context is being freed: nothing more goes out on it */
		return false;
	}
	store_link_replied(l);
	return true;
}

/* req_follow - an error reply that moves the request: MOVED/ASK to another
 * node (cluster), NOSCRIPT (script cache flushed), READONLY (a demoted
 * master). true when the request went out again and the reply is for later. */
static bool req_follow(struct store_req *r, const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ERROR || !rep->str)
		return false;
	struct store_conn *c = r->conn;
	struct store_link *from = r->link;
	if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && r->kind != REQ_USER && !r->retried) {
		r->retried = true; /* restart, failover or SCRIPT FLUSH: load it on this node, then again */
		redisAsyncCommand(from->ac, on_setup_reply, NULL, "SCRIPT LOAD %s", store_script_text());
		return req_send(r, from, false) == 0;
	}
	if (strncmp(rep->str, "READONLY", 8) == 0) {
		limited(&lim_err, CFG_LOG_WARN, "Redis server became a replica, asking the sentinels again", from, "");
		store_topo_want_refresh();
		redisAsyncDisconnect(from->ac);
		return false;
	}
	bool ask;
	unsigned slot;
	struct cfg_redis_host to;
	if (store_conf.redis.kind != CFG_REDIS_CLUSTER ||
	    store_cluster_parse_redirect(rep->str, rep->len, &ask, &slot, &to) != 0)
		return false;
	store_redis_count_redirect(ask);
	if (!ask)
		store_topo_want_refresh(); /* the slot map changed: fetch it again */
	if (++r->redirects > MAX_REDIRECTS)
		return false;
	struct store_link *l = client_link_for(c, &to);
	if (!l)
		return false;
	if (!ask && slot < STORE_CLUSTER_SLOTS)
		c->slot_link[slot] = (uint8_t)(l - c->links); /* until the refreshed map arrives */
	if (l->state == LINK_DOWN)
		store_link_connect(l);
	return req_send(r, l, ask) == 0;
}

/* store_redis_user_parse - HGETALL pairs into @u. NULL, or why the data is bad. */
const char *store_redis_user_parse(const redisReply *r, struct store_user *u, char *why, size_t whylen)
{
	bool has_perms = false;
	if (r->elements % 2)
		return "odd reply";
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			return "non-string field";
		struct slice name = slice_make(f->str, f->len), val = slice_make(v->str, v->len);
		if (slice_eq(name, SLICE_LIT(STORE_FIELD_HA1_MD5))) {
			if (!(u->has_md5 = hex_decode(val, u->ha1_md5, 16)))
				return STORE_FIELD_HA1_MD5 " is not 32 hex digits";
		} else if (slice_eq(name, SLICE_LIT(STORE_FIELD_HA1_SHA256))) {
			if (!(u->has_sha256 = hex_decode(val, u->ha1_sha256, 32)))
				return STORE_FIELD_HA1_SHA256 " is not 64 hex digits";
		} else if (slice_eq(name, SLICE_LIT(STORE_FIELD_PERMISSIONS))) {
			struct slice bad = SLICE_NULL;
			has_perms = true;
			if (store_perms_parse(val, u->perms, &bad) < 0) {
				snprintf(why, whylen, "unknown permission '%.*s'", (int)(bad.len > 64 ? 64 : bad.len), bad.p);
				return why;
			}
		}
	}
	if (!u->has_md5 && !u->has_sha256)
		return "missing field " STORE_FIELD_HA1_MD5 "/" STORE_FIELD_HA1_SHA256;
	if (!has_perms)
		return "missing field " STORE_FIELD_PERMISSIONS;
	return NULL;
}

static void on_user_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_req *r = priv;
	const redisReply *rep = reply;
	enum store_rc rc = STORE_UNAVAILABLE;
	if (!req_reply_begin(r, rep)) {
		STORE_COUNT(UNAVAILABLE);
		req_done(r, rc);
		return;
	}
	if (req_follow(r, rep))
		return;
	bool wrong_type = rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0;
	if (rep->type == REDIS_REPLY_ARRAY || wrong_type) {
		struct store_user u;
		char why[128];
		memset(&u, 0, sizeof(u));
		memcpy(u.id, r->key, r->keylen);
		const char *bad = wrong_type ? "not a hash" : rep->elements ? store_redis_user_parse(rep, &u, why, sizeof(why)) : "";
		if (bad && *bad) {
			uint64_t suppressed = 0;
			STORE_COUNT(BAD_DATA);
			if (log_limit_pass_key(&lim_data, r->rkey, strlen(r->rkey), &suppressed))
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
		limited(&lim_err, CFG_LOG_ERROR, "HGETALL failed", r->link,
			rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
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
	/* fresh: younger than max-age and inserted after the last (re)subscription */
	uint64_t now = store_now_sec();
	bool fresh = age < atomic_load_explicit(&store_conf.cache_max_age, memory_order_relaxed) &&
		     now - age > atomic_load_explicit(&store_cache_flush_sec, memory_order_relaxed);
	if (rc >= 0 && (just_fetched || fresh)) {
		STORE_COUNT(HIT);
		return rc > 0 ? STORE_OK : STORE_NOT_FOUND;
	}
	char rkey[STORE_KEY_MAX + 32];
	int klen = store_key_user(rkey, sizeof(rkey), id);
	struct store_link *l = klen > 0 ? client_route(c, rkey, (size_t)klen) : NULL;
	/* stale entries keep serving while their Redis is away (SPEC §6, §12) */
	if (rc >= 0 && !store_link_ready(l)) {
		STORE_COUNT(HIT);
		return rc > 0 ? STORE_OK : STORE_NOT_FOUND;
	}
	if (just_fetched) /* fetched, then dropped at once (invalidation or no memory): retry later */
		return STORE_UNAVAILABLE;
	STORE_COUNT(MISS);
	if (!store_link_ready(l)) {
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
	memcpy(r->rkey, rkey, (size_t)klen + 1);
	r->rkeylen = (size_t)klen;
	store_link_cork(l);
	if (req_send(r, l, false) < 0) {
		store_link_flush(l);
		req_release(c, r);
		STORE_COUNT(ERROR);
		return STORE_UNAVAILABLE;
	}
	req_park(op, r, l);
	return STORE_PARKED;
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
	const redisReply *rep = reply;
	if (!req_reply_begin(r, rep)) {
		STORE_COUNT(DEGRADED);
		req_done(r, mark_local(r));
		return;
	}
	if (req_follow(r, rep))
		return;
	if (rep->type == REDIS_REPLY_INTEGER) {
		if (rep->integer == 1)
			mark_local(r); /* remember Redis's binding for when it is away */
		req_done(r, rep->integer == 1 ? STORE_OK : STORE_REJECT);
		return;
	}
	/* SET NX: +OK stored (the count is ours), nil: a count was stored before;
	 * anything else is an error like the script's */
	if (req_is_first_nc(r) && rep->type == REDIS_REPLY_NIL) {
		req_done(r, STORE_REJECT);
		return;
	}
	if (req_is_first_nc(r) && rep->type == REDIS_REPLY_STATUS && rep->len == 2 && memcmp(rep->str, "OK", 2) == 0) {
		req_done(r, STORE_OK);
		return;
	}
	STORE_COUNT(ERROR);
	STORE_COUNT(DEGRADED);
	limited(&lim_err, CFG_LOG_ERROR, "nc/jti check failed", r->link,
		rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
	req_done(r, mark_local(r));
}

enum store_rc store_redis_mark(struct store_conn *c, struct txn *t, struct store_op *op, bool is_nc,
			       struct slice key, uint32_t nc, struct slice dialog, unsigned ttl)
{
	char rkey[STORE_KEY_MAX + 32];
	int klen = is_nc ? store_key_nc(rkey, sizeof(rkey), key) : store_key_jti(rkey, sizeof(rkey), key);
	struct store_link *l = klen > 0 ? client_route(c, rkey, (size_t)klen) : NULL;
	if (!store_link_ready(l)) {
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
	memcpy(r->rkey, rkey, (size_t)klen + 1);
	r->rkeylen = (size_t)klen;
	store_link_cork(l);
	if (req_send(r, l, false) < 0) {
		store_link_flush(l);
		enum store_rc rc = mark_local(r);
		req_release(c, r);
		STORE_COUNT(ERROR);
		STORE_COUNT(DEGRADED);
		return rc;
	}
	req_park(op, r, l);
	return STORE_PARKED;
}
