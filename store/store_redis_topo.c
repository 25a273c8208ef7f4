/* store_redis_topo.c - which Redis servers every thread talks to (SPEC §6,
 * §12), decided on one store-owned thread (never a worker) and published
 * with RCU: the configured server; or the master the sentinels name (asked
 * at start, when a link loses its master or meets a replica, on a
 * +switch-master message from the sentinel we subscribe to, and every few
 * seconds), checked with ROLE; or the Cluster slot map (CLUSTER SLOTS at
 * start, on MOVED, on a lost node and periodically). Workers re-read it on
 * their tick (store_redis_client.c). The same thread holds the invalidation
 * subscriber (referee:invalidate, on the server / master / any cluster node:
 * PUBLISH reaches every node's subscribers) and flushes the users cache each
 * time it (re)subscribes, as invalidations may have been missed meanwhile.
 * Asking sentinels and nodes blocks this thread only (a timeout each). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include "log.h"
#include "store_redis_priv.h"

#define REFRESH_MIN_GAP_MS 200   /* between two refreshes asked for by links */
#define RETRY_MS 300             /* after a refresh that found nothing */
#define SENTINEL_PERIOD_MS 5000  /* re-ask the sentinels even without news */
#define CLUSTER_PERIOD_MS 10000  /* re-read CLUSTER SLOTS even without MOVED */

static struct store_topo *topo_cur; /* RCU; written by init and the topology thread */
static _Atomic uint64_t topo_gen_pub;
static uint64_t topo_gen_next;      /* writer side only */
static atomic_bool want_refresh;
static unsigned m_nodes, m_failovers, m_redirects;
static const char *const redirect_kinds[] = { "moved", "ask" };
static struct log_limit lim_topo;
_Atomic uint64_t store_cache_flush_sec; /* the subscriber's last (re)subscription */

const struct store_topo *store_topo_current_rcu(void)
{
	return store_rcu_deref(topo_cur);
}

uint64_t store_topo_gen(void)
{
	return atomic_load_explicit(&topo_gen_pub, memory_order_acquire);
}

void store_topo_want_refresh(void)
{
	atomic_store_explicit(&want_refresh, true, memory_order_relaxed);
}

void store_redis_count_redirect(bool ask)
{
	metrics_inc(m_redirects + (ask ? 1 : 0));
}

bool store_topo_same(const struct store_topo *a, const struct store_topo *b)
{
	if (!a || !b || a->n_nodes != b->n_nodes)
		return false;
	for (unsigned i = 0; i < a->n_nodes; i++)
		if (a->nodes[i].port != b->nodes[i].port || strcmp(a->nodes[i].host, b->nodes[i].host) != 0)
			return false;
	return memcmp(a->slot_node, b->slot_node, sizeof(a->slot_node)) == 0;
}

/* topo_publish - swap @t in (owned by the store from now on). Init or the topology thread. */
static void topo_publish(struct store_topo *t)
{
	t->gen = ++topo_gen_next;
	struct store_topo *old = store_rcu_xchg(topo_cur, t);
	atomic_store_explicit(&topo_gen_pub, t->gen, memory_order_release);
	metrics_set(m_nodes, t->n_nodes);
	if (old) {
		synchronize_rcu();
		STORE_TSAN_ACQUIRE(old); /* pairs with the readers' release after copying */
		free(old);
	}
}

static struct store_topo *topo_new(void)
{
	struct store_topo *t = calloc(1, sizeof(*t));
	if (t)
		memset(t->slot_node, STORE_SLOT_NONE, sizeof(t->slot_node));
	return t;
}

/* ================================================================ refresh */

/* refresh - ask the sentinels / the cluster; publish what changed. 0 or -EAGAIN. */
static int refresh(void)
{
	const struct cfg_redis_url *u = &store_conf.redis;
	const struct store_topo *cur = topo_cur; /* we are the only writer */
	struct store_topo *t = topo_new();
	char why[256];
	int rc;
	if (!t)
		return -EAGAIN;
	if (u->kind == CFG_REDIS_SENTINEL) {
		rc = store_sentinel_discover(u, STORE_SYNC_TIMEOUT_MS, &t->nodes[0], why, sizeof(why));
		t->n_nodes = rc == 0;
	} else {
		/* the nodes we know first: the seeds may be gone since the start */
		struct cfg_redis_host ask[STORE_REDIS_MAX_NODES + CFG_REDIS_MAX_HOSTS];
		unsigned n = 0;
		for (unsigned i = 0; cur && i < cur->n_nodes; i++)
			ask[n++] = cur->nodes[i];
		for (unsigned i = 0; i < u->n_hosts; i++)
			ask[n++] = u->hosts[i];
		rc = store_cluster_fetch(ask, n, STORE_SYNC_TIMEOUT_MS, t, why, sizeof(why));
	}
	if (rc < 0) {
		uint64_t suppressed = 0;
		if (log_limit_pass(&lim_topo, &suppressed))
			log_warn("store", "%s: %s suppressed=%llu",
				 u->kind == CFG_REDIS_SENTINEL ? "no master from the sentinels" : "no cluster slot map", why,
				 (unsigned long long)suppressed);
		free(t);
		return -EAGAIN;
	}
	if (store_topo_same(cur, t)) {
		free(t);
		return 0;
	}
	if (u->kind == CFG_REDIS_SENTINEL) {
		if (cur)
			metrics_inc(m_failovers);
		log_info("store", "Redis master master=%s redis=%s:%u%s", u->master, t->nodes[0].host, t->nodes[0].port,
			 cur ? " (switched)" : "");
	} else {
		log_info("store", "Redis cluster slot map nodes=%u", t->n_nodes);
	}
	topo_publish(t);
	return 0;
}

/* ================================================================ subscribers */

struct topo_thread {
	struct store_poll_loop *loop;
	struct store_link sub;      /* referee:invalidate */
	struct store_link sw;       /* +switch-master on a sentinel */
	unsigned sub_rot, sw_rot;   /* which node / sentinel to try next */
	bool sub_move;              /* the subscriber lost its node: aim at the next one */
	uint64_t next_refresh_ms, last_refresh_ms;
};

static void on_invalidate(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_link *l = ac->data;
	const char *kind;
	struct slice payload;
	if (store_pubsub_parse(reply, &kind, &payload) != 0)
		return;
	if (kind[0] == 'm') {
		store_invalidate(payload);
	} else {
		/* Invalidations may have been missed while we were away (SPEC §6):
		 * every cached entry is fetched again before it serves while Redis
		 * answers; it still serves while the key's server is unreachable (a
		 * worker whose link to the new master is not up yet, a failover). */
		atomic_fetch_add_explicit(&store_inval_epoch, 1, memory_order_seq_cst);
		atomic_store_explicit(&store_cache_flush_sec, store_now_sec(), memory_order_relaxed);
		store_link_set_up(l);
	}
}

static void sub_connected(struct store_link *l)
{
	redisAsyncCommand(l->ac, on_invalidate, NULL, "SUBSCRIBE %s", STORE_REDIS_CHANNEL);
}

static void sub_lost(struct store_link *l, bool was_up)
{
	struct topo_thread *th = l->owner;
	if (l->closing || l->retargeting)
		return;
	th->sub_move = true; /* cluster: try another node */
	if (store_conf.redis.kind != CFG_REDIS_SINGLE)
		store_topo_want_refresh();
}

static const struct store_link_hooks sub_hooks = { sub_connected, sub_lost };

static void on_switch(redisAsyncContext *ac, void *reply, void *priv)
{
	struct store_link *l = ac->data;
	const char *kind;
	struct slice payload;
	if (store_pubsub_parse(reply, &kind, &payload) != 0)
		return;
	if (kind[0] == 's') {
		store_link_set_up(l);
		return;
	}
	struct cfg_redis_host to;
	if (store_sentinel_parse_switch(payload.p, payload.len, store_conf.redis.master, &to) == 0) {
		log_info("store", "sentinel reports +switch-master master=%s to=%s:%u", store_conf.redis.master, to.host,
			 to.port);
		store_topo_want_refresh(); /* the refresh asks again and checks ROLE */
	}
}

static void sw_connected(struct store_link *l)
{
	redisAsyncCommand(l->ac, on_switch, NULL, "SUBSCRIBE +switch-master");
}

static void sw_lost(struct store_link *l, bool was_up)
{
	struct topo_thread *th = l->owner;
	if (l->closing || l->retargeting)
		return;
	th->sw_rot++; /* the next sentinel */
	store_topo_want_refresh(); /* a switch may pass while we are not listening */
}

static const struct store_link_hooks sw_hooks = { sw_connected, sw_lost };

/* sub_misplaced - the subscriber must move: not aimed yet, lost its cluster node, or no
 * longer on the server / master of @t. */
static bool sub_misplaced(const struct topo_thread *th, const struct store_topo *t)
{
	const struct store_link *l = &th->sub;
	if (!l->in_use)
		return true;
	if (store_conf.redis.kind != CFG_REDIS_CLUSTER)
		return !store_link_is(l, t->nodes[0].host, t->nodes[0].port);
	if (th->sub_move)
		return true;
	for (unsigned i = 0; i < t->n_nodes; i++)
		if (store_link_is(l, t->nodes[i].host, t->nodes[i].port))
			return false;
	return true;
}

/* topo_tick - refresh when asked or due; keep both subscribers aimed and connected. */
static void topo_tick(struct topo_thread *th)
{
	const struct cfg_redis_url *u = &store_conf.redis;
	uint64_t now = store_redis_now_ms();
	if (u->kind != CFG_REDIS_SINGLE && now - th->last_refresh_ms >= REFRESH_MIN_GAP_MS &&
	    (atomic_load_explicit(&want_refresh, memory_order_relaxed) || now >= th->next_refresh_ms)) {
		atomic_store_explicit(&want_refresh, false, memory_order_relaxed);
		int rc = refresh();
		now = store_redis_now_ms();
		th->last_refresh_ms = now;
		th->next_refresh_ms =
			now + (rc < 0 ? RETRY_MS : u->kind == CFG_REDIS_SENTINEL ? SENTINEL_PERIOD_MS : CLUSTER_PERIOD_MS);
	}
	const struct store_topo *t = topo_cur; /* we are the only writer */
	if (t && t->n_nodes && sub_misplaced(th, t)) {
		/* the server / master; in a cluster any node serves: stay on one while it lives */
		const struct cfg_redis_host *h = &t->nodes[++th->sub_rot % t->n_nodes];
		if (u->kind != CFG_REDIS_CLUSTER)
			h = &t->nodes[0];
		th->sub_move = false;
		store_link_target(&th->sub, h->host, h->port);
	}
	if (th->sub.in_use)
		store_link_tick(&th->sub, now);
	if (u->kind == CFG_REDIS_SENTINEL) {
		const struct cfg_redis_host *s = &u->hosts[th->sw_rot % u->n_hosts];
		if (th->sw.state == LINK_DOWN)
			store_link_target(&th->sw, s->host, s->port);
		store_link_tick(&th->sw, now);
	}
}

static pthread_t topo_thread;
static atomic_bool topo_stop;
static bool topo_running;

static void *topo_main(void *arg)
{
	struct topo_thread *th = arg;
	rcu_register_thread();
	metrics_thread_init();
	store_link_init(&th->sub, &store_poll_ops, th->loop, &sub_hooks, th, "subscriber");
	store_link_init(&th->sw, &store_poll_ops, th->loop, &sw_hooks, th, "sentinel");
	while (!atomic_load_explicit(&topo_stop, memory_order_acquire)) {
		topo_tick(th);
		store_poll_loop_run(th->loop, 100, NULL);
	}
	th->sub.closing = th->sw.closing = true;
	store_link_drop(&th->sub);
	store_link_drop(&th->sw);
	rcu_unregister_thread();
	store_poll_loop_free(th->loop);
	free(th);
	return NULL;
}

int store_redis_start(void)
{
	static bool registered; /* families are per process; the store may start again (tests) */
	if (!registered) {
		m_nodes = metrics_gauge("referee_store_redis_nodes",
					"Redis servers the store talks to: 1 (server or current master), or the "
					"cluster's masters; 0 while none is known",
					NULL, NULL, 0);
		m_failovers = metrics_counter("referee_store_redis_failovers_total",
					      "Sentinel master switches seen (a new master address published)", NULL,
					      NULL, 0);
		m_redirects = metrics_counter("referee_store_redis_redirects_total",
					      "Redis Cluster redirections followed, by kind", "kind", redirect_kinds, 2);
		store_reply_register_metrics();
		registered = true;
	}
	/* hiredis writes with write(): a server that closed its end (killed, failed
	 * over) must give EPIPE, not a SIGPIPE that ends the process */
	signal(SIGPIPE, SIG_IGN);
	metrics_set(m_nodes, 0);
	atomic_store_explicit(&want_refresh, false, memory_order_relaxed);
	if (store_conf.redis.kind == CFG_REDIS_SINGLE) {
		struct store_topo *t = topo_new(); /* fixed: published once, before any worker */
		if (!t)
			return -ENOMEM;
		t->n_nodes = 1;
		t->nodes[0] = store_conf.redis.hosts[0];
		topo_publish(t);
	}
	struct topo_thread *th = calloc(1, sizeof(*th));
	if (!th || !(th->loop = store_poll_loop_new())) {
		free(th);
		return -ENOMEM;
	}
	atomic_store_explicit(&topo_stop, false, memory_order_relaxed);
	int rc = pthread_create(&topo_thread, NULL, topo_main, th);
	if (rc) {
		store_poll_loop_free(th->loop);
		free(th);
		return -rc;
	}
	topo_running = true;
	return 0;
}

void store_redis_stop(void)
{
	if (!topo_running)
		return;
	/* pairs with the acquire load in topo_main */
	atomic_store_explicit(&topo_stop, true, memory_order_release);
	pthread_join(topo_thread, NULL);
	topo_running = false;
	struct store_topo *old = store_rcu_xchg(topo_cur, NULL);
	atomic_store_explicit(&topo_gen_pub, 0, memory_order_release);
	synchronize_rcu();
	free(old);
}
