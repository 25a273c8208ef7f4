#pragma once
/* store_redis_priv.h - what the Redis files of store/ share (never included
 * outside store/): one async link to one server (store_redis_link.c), the
 * published topology every thread follows (store_redis_topo.c: the server,
 * the Sentinel-discovered master or the Cluster slot map), and the pure
 * parsers of Sentinel and Cluster replies (store_sentinel.c,
 * store_cluster.c; bad data from Redis is an error code, never a crash). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "store_priv.h"

#define STORE_REDIS_MAX_NODES 32   /* cluster masters one instance talks to */
#define STORE_CLUSTER_SLOTS 16384
#define STORE_SLOT_NONE 0xff       /* slot served by no node we know */
#define STORE_SYNC_TIMEOUT_MS 500  /* each sentinel / seed asked by the topology thread */

uint64_t store_redis_now_ms(void);

/* store_now_sec() of the last (re)subscription to referee:invalidate: cached
 * users inserted at or before it are fetched again before they serve while
 * their Redis answers (store_redis_client.c). Written by the subscriber
 * (store_redis_topo.c). */
extern _Atomic uint64_t store_cache_flush_sec;

/* ================================================================ topology */

/* What every thread's links follow. Single server and Sentinel: node 0 is
 * the server / current master. Cluster: the masters and which serves each
 * slot. Published with RCU by the topology thread; immutable once published. */
struct store_topo {
	uint64_t gen; /* bumped on every publish */
	unsigned n_nodes;
	struct cfg_redis_host nodes[STORE_REDIS_MAX_NODES];
	uint8_t slot_node[STORE_CLUSTER_SLOTS]; /* index into nodes, or STORE_SLOT_NONE (cluster) */
};

/* store_topo_current_rcu - the published topology or NULL (caller holds rcu_read_lock). */
const struct store_topo *store_topo_current_rcu(void);
/* store_topo_gen - generation of the published topology (0: none yet). Any thread, relaxed. */
uint64_t store_topo_gen(void);
/* store_topo_want_refresh - a link lost its server, met MOVED, READONLY or a
 * non-master ROLE: the topology thread asks the sentinels / CLUSTER SLOTS again. */
void store_topo_want_refresh(void);
/* store_topo_same - both name the same nodes and slots (a refresh that changed nothing). */
bool store_topo_same(const struct store_topo *a, const struct store_topo *b);
/* Counters kept by the links (referee_store_redis_redirects_total{kind}). */
void store_redis_count_redirect(bool ask);

/* ================================================================ bounded replies (store_redis_bound.c) */

/* What one reply from Redis may cost us. The largest legitimate replies are a
 * user hash (a few fields), CLUSTER SLOTS (a few entries per master) and a
 * SCAN page of referee-admin (COUNT 1000): far below both bounds, which only
 * stop a hostile or broken server from exhausting our memory. */
#define STORE_REPLY_MAX_ELEMENTS 262144 /* per aggregate, refused at its header (before the calloc) */
/* per reply: each object costs sizeof(redisReply) + its string bytes + 8 per
 * element of an aggregate; also bounds nested trees and many small strings,
 * and the bytes buffered for a reply not yet complete */
#define STORE_REPLY_MAX_BYTES (8u << 20)

/* The budget of the reply a reader is building (its privdata): one in each
 * async link, one on the stack of each blocking call. */
struct store_reply_budget {
	size_t used;	/* cost of the reply being read so far */
	bool refused;	/* the reader failed on the bound, not on a real OOM */
	char why[96];	/* which bound (logs) */
};
/* store_reply_bound - @r builds its replies under @b (reset) from now on. */
void store_reply_bound(redisReader *r, struct store_reply_budget *b);
/* store_reply_buffer_over - more than STORE_REPLY_MAX_BYTES wait in @r's buffer
 * for one reply (call after the reader took the complete ones): refused set. */
bool store_reply_buffer_over(redisReader *r);
/* store_reply_refused - count, log (rate-limited per server) and clear a refusal. */
void store_reply_refused(struct store_reply_budget *b, const char *host, unsigned port, const char *role);
/* store_reply_register_metrics - referee_store_redis_replies_refused_total (startup). */
void store_reply_register_metrics(void);
/**
 * store_redis_sync_cmd, store_redis_sync_argv - a command on blocking context
 * @c: appended, written, its reply read in a loop under the bounds. The reply
 * (possibly a Redis error), or NULL with @why; @c is unusable after a NULL.
 */
redisReply *store_redis_sync_cmd(redisContext *c, char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
redisReply *store_redis_sync_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen, char *why,
				  size_t whylen);

/* ================================================================ one link */

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_VERIFYING, LINK_UP };

struct store_link;
struct store_link_hooks {
	/* connected: TCP is up; queue the setup commands, then store_link_set_up (now or after ROLE). */
	void (*connected)(struct store_link *l);
	/* lost: the context is gone (@was_up: it had reached LINK_UP). */
	void (*lost)(struct store_link *l, bool was_up);
};

struct store_link {
	const struct store_loop_ops *ops;
	void *impl;
	const struct store_link_hooks *hooks;
	void *owner;
	const char *role; /* "command", "subscriber", "sentinel" (logs) */
	redisAsyncContext *ac;
	int fd;
	unsigned events, watched_events; /* what hiredis wants / what the loop watches */
	bool watched, closing, in_use;
	bool corked, in_io; /* a command being queued / hiredis running on this context */
	bool retargeting; /* the context is dropped on purpose (a new server): not a loss */
	enum link_state state;
	char host[256];
	unsigned port;
	uint64_t since_ms, next_try_ms, backoff_ms, last_reply_ms;
	unsigned inflight; /* requests waiting for a reply on this link */
	struct store_reply_budget budget; /* of the context's reader */
};

void store_link_init(struct store_link *l, const struct store_loop_ops *ops, void *impl,
		     const struct store_link_hooks *hooks, void *owner, const char *role);
/* store_link_target - aim the link at @host:@port (dropping a live context to another server). */
void store_link_target(struct store_link *l, const char *host, unsigned port);
/* store_link_connect - start an async connect to the target. 0 or -errno (retry planned). */
int store_link_connect(struct store_link *l);
/* store_link_set_up - setup done: the link serves requests. */
void store_link_set_up(struct store_link *l);
/* store_link_drop - give up on the context now (never from one of its own callbacks). */
void store_link_drop(struct store_link *l);
/* store_link_retire - drop the context on purpose (the server left the topology); the
 * hooks see retargeting set, so it is not taken for a lost server. */
void store_link_retire(struct store_link *l);
/* store_link_mark_down - the context is gone or going (from its callbacks). Idempotent. */
void store_link_mark_down(struct store_link *l);
/* store_link_cork, store_link_flush - around queuing a command from a stage: the loop
 * is told nothing meanwhile, then the command is written at once when possible. A failed
 * write completes the link's requests before store_link_flush returns. */
void store_link_cork(struct store_link *l);
void store_link_flush(struct store_link *l);
/* store_link_uncork - the same without writing: the loop writes on EPOLLOUT. */
void store_link_uncork(struct store_link *l);
/* store_link_tick - connect/reply timeouts and reconnect when due. Owner thread. */
void store_link_tick(struct store_link *l, uint64_t now);
static inline bool store_link_ready(const struct store_link *l)
{
	return l && l->state == LINK_UP && l->ac && !(l->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING));
}
static inline bool store_link_is(const struct store_link *l, const char *host, unsigned port)
{
	return l->port == port && strcmp(l->host, host) == 0;
}
/* store_link_replied - a reply arrived for one of the link's requests. */
void store_link_replied(struct store_link *l);

/* ================================================================ Sentinel (store_sentinel.c) */

/* store_redis_host_copy - a host name or IP from Redis into @out->host: 1..255
 * printable bytes, no blank, no NUL. false (out untouched) otherwise. */
bool store_redis_host_copy(const char *p, size_t len, struct cfg_redis_host *out);
/**
 * store_pubsub_parse - a reply on a subscribed connection: ["message", channel,
 * payload] (*@kind "message", @payload set) or ["subscribe", channel, count]
 * (*@kind "subscribe"). -ENOENT for other kinds, -EINVAL when malformed.
 */
int store_pubsub_parse(const redisReply *r, const char **kind, struct slice *payload);

/**
 * store_sentinel_parse_addr - reply of SENTINEL get-master-addr-by-name:
 * a two-string array [ip, port]. 0 with @out filled, -ENOENT for nil (the
 * sentinel does not know the master), -EIO for an error reply, -EINVAL for
 * anything malformed.
 */
int store_sentinel_parse_addr(const redisReply *r, struct cfg_redis_host *out);
/* store_sentinel_parse_role - reply of ROLE: 1 "master", 0 another role, -EINVAL malformed. */
int store_sentinel_parse_role(const redisReply *r);
/**
 * store_sentinel_parse_switch - a +switch-master message payload
 * "<name> <old-ip> <old-port> <new-ip> <new-port>": 0 with the new master in
 * @out when <name> is @master, -ENOENT for another master, -EINVAL malformed.
 */
int store_sentinel_parse_switch(const char *msg, size_t len, const char *master, struct cfg_redis_host *out);
/**
 * store_sentinel_discover - ask the sentinels of @u in order (@timeout_ms
 * each) for the master, connect to it and check with ROLE that it is one.
 * Blocking: the topology thread and referee-admin only. 0 with @out, or
 * -EAGAIN with the last reason in @why.
 */
int store_sentinel_discover(const struct cfg_redis_url *u, unsigned timeout_ms, struct cfg_redis_host *out,
			    char *why, size_t whylen);
/* store_redis_sync_connect - a blocking context with @timeout_ms for connect and
 * every command, or NULL with the reason in @why. */
redisContext *store_redis_sync_connect(const struct cfg_redis_host *h, unsigned timeout_ms, char *why, size_t whylen);

/* ================================================================ Cluster (store_cluster.c) */

/* store_cluster_slot - the hash slot of @key (CRC16 of the key or of its {hash tag}, mod 16384). */
unsigned store_cluster_slot(const char *key, size_t len);
/**
 * store_cluster_parse_slots - reply of CLUSTER SLOTS into @out (nodes and
 * slot_node; gen untouched). An empty IP means @asked (the node answering).
 * Returns the number of slots covered (> 0), or -EINVAL with @why for a
 * malformed reply, -ENOSPC for more masters than STORE_REDIS_MAX_NODES.
 */
int store_cluster_parse_slots(const redisReply *r, const struct cfg_redis_host *asked, struct store_topo *out,
			      char *why, size_t whylen);
/**
 * store_cluster_parse_redirect - an error reply "MOVED <slot> <host>:<port>"
 * or "ASK <slot> <host>:<port>": 0 with *@ask, *@slot and @to, -ENOENT for
 * any other error, -EINVAL for a malformed redirect.
 */
int store_cluster_parse_redirect(const char *err, size_t len, bool *ask, unsigned *slot, struct cfg_redis_host *to);
/**
 * store_cluster_fetch - CLUSTER SLOTS from the first of @nodes that answers
 * (@timeout_ms each). Blocking: the topology thread and referee-admin only.
 * 0 with @out, or -EAGAIN with the last reason in @why.
 */
int store_cluster_fetch(const struct cfg_redis_host *nodes, unsigned n, unsigned timeout_ms, struct store_topo *out,
			char *why, size_t whylen);

/* ================================================================ blocking client (store_redis_sync.c) */

/* For referee-admin: the server, the sentinels' master or the cluster's masters. */
struct store_sync;
/* store_sync_open - connect as @u says (sentinels asked, slot map read). NULL with @why. */
struct store_sync *store_sync_open(const struct cfg_redis_url *u, char *why, size_t whylen);
void store_sync_close(struct store_sync *s);
/* store_sync_nodes - masters known (1 unless a cluster). */
unsigned store_sync_nodes(const struct store_sync *s);
/**
 * store_sync_key_cmd - run @argv (NUL-terminated strings) on the master that
 * serves @key, MOVED/ASK followed. The reply (possibly a Redis error, for the
 * caller to judge), or NULL with @why on a transport failure.
 */
redisReply *store_sync_key_cmd(struct store_sync *s, const char *key, int argc, const char **argv, char *why,
			       size_t whylen);
/* store_sync_any_cmd - run @argv on the first master that answers (PUBLISH: in a
 * cluster it reaches every node's subscribers). */
redisReply *store_sync_any_cmd(struct store_sync *s, int argc, const char **argv, char *why, size_t whylen);
/* store_sync_node_cmd - run @argv on master @node (SCAN of every master). */
redisReply *store_sync_node_cmd(struct store_sync *s, unsigned node, int argc, const char **argv, char *why,
				size_t whylen);
