/* store_redis_sync.c - a blocking Redis client for referee-admin (never
 * used by referee's workers): the configured server, the master the
 * sentinels name (checked with ROLE), or a cluster whose slot map routes
 * each key to its master, MOVED and ASK followed. Same URL parser, key
 * names and sentinel/cluster logic as the async store. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis_priv.h"

#define SYNC_TIMEOUT_MS 2000
#define SYNC_REDIRECTS 3

struct store_sync {
	enum cfg_redis_kind kind;
	unsigned db;
	struct store_topo topo; /* node 0: the server / master; cluster: the masters */
	redisContext *ctx[STORE_REDIS_MAX_NODES];
	struct cfg_redis_host extra; /* an ASK/MOVED target outside the map */
	redisContext *extra_ctx;
};

/* node_ctx - a connection to @h (SELECT done), opened on first use. NULL with @why. */
static redisContext *node_ctx(struct store_sync *s, redisContext **slot, const struct cfg_redis_host *h, char *why,
			      size_t whylen)
{
	if (*slot)
		return *slot;
	redisContext *rc = store_redis_sync_connect(h, SYNC_TIMEOUT_MS, why, whylen);
	if (!rc)
		return NULL;
	if (s->db) {
		redisReply *r = store_redis_sync_cmd(rc, why, whylen, "SELECT %u", s->db);
		bool ok = r && r->type != REDIS_REPLY_ERROR;
		if (!ok)
			if (r) /* else @why says what the transport did */
			snprintf(why, whylen, "SELECT %u on %s:%u failed", s->db, h->host, h->port);
		freeReplyObject(r);
		if (!ok) {
			redisFree(rc);
			return NULL;
		}
	}
	*slot = rc;
	return rc;
}

struct store_sync *store_sync_open(const struct cfg_redis_url *u, char *why, size_t whylen)
{
	signal(SIGPIPE, SIG_IGN); /* a closed server: EPIPE and a clear error, not death by signal */
	struct store_sync *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	s->kind = u->kind;
	s->db = u->db;
	int rc = 0;
	if (u->kind == CFG_REDIS_SINGLE) {
		s->topo.n_nodes = 1;
		s->topo.nodes[0] = u->hosts[0];
	} else if (u->kind == CFG_REDIS_SENTINEL) {
		rc = store_sentinel_discover(u, SYNC_TIMEOUT_MS, &s->topo.nodes[0], why, whylen);
		s->topo.n_nodes = 1;
	} else {
		rc = store_cluster_fetch(u->hosts, u->n_hosts, SYNC_TIMEOUT_MS, &s->topo, why, whylen);
	}
	/* a cluster's nodes are connected on first use: one of them may be down */
	if (rc < 0 || (u->kind != CFG_REDIS_CLUSTER && !node_ctx(s, &s->ctx[0], &s->topo.nodes[0], why, whylen))) {
		store_sync_close(s);
		return NULL;
	}
	return s;
}

void store_sync_close(struct store_sync *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < STORE_REDIS_MAX_NODES; i++)
		if (s->ctx[i])
			redisFree(s->ctx[i]);
	if (s->extra_ctx)
		redisFree(s->extra_ctx);
	free(s);
}

unsigned store_sync_nodes(const struct store_sync *s)
{
	return s->topo.n_nodes;
}

/* ctx_for - the connection to @h: one of the map's, else the single spare one. */
static redisContext *ctx_for(struct store_sync *s, const struct cfg_redis_host *h, char *why, size_t whylen)
{
	for (unsigned i = 0; i < s->topo.n_nodes; i++)
		if (s->topo.nodes[i].port == h->port && strcmp(s->topo.nodes[i].host, h->host) == 0)
			return node_ctx(s, &s->ctx[i], h, why, whylen);
	if (s->extra_ctx && (s->extra.port != h->port || strcmp(s->extra.host, h->host) != 0)) {
		redisFree(s->extra_ctx);
		s->extra_ctx = NULL;
	}
	s->extra = *h;
	return node_ctx(s, &s->extra_ctx, h, why, whylen);
}

redisReply *store_sync_node_cmd(struct store_sync *s, unsigned node, int argc, const char **argv, char *why,
				size_t whylen)
{
	if (node >= s->topo.n_nodes) {
		snprintf(why, whylen, "no Redis node %u", node);
		return NULL;
	}
	redisContext *rc = node_ctx(s, &s->ctx[node], &s->topo.nodes[node], why, whylen);
	if (!rc)
		return NULL;
	return store_redis_sync_argv(rc, argc, argv, NULL, why, whylen);
}

/* map_reread - after MOVED: the new slot map, with fresh connections when the nodes changed. */
static void map_reread(struct store_sync *s)
{
	char why[256];
	struct store_topo *t = malloc(sizeof(*t));
	if (t && store_cluster_fetch(s->topo.nodes, s->topo.n_nodes, SYNC_TIMEOUT_MS, t, why, sizeof(why)) == 0 &&
	    !store_topo_same(t, &s->topo)) {
		for (unsigned i = 0; i < STORE_REDIS_MAX_NODES; i++) {
			if (s->ctx[i])
				redisFree(s->ctx[i]);
			s->ctx[i] = NULL;
		}
		s->topo = *t;
	}
	free(t);
}

redisReply *store_sync_any_cmd(struct store_sync *s, int argc, const char **argv, char *why, size_t whylen)
{
	for (unsigned i = 0; i < s->topo.n_nodes; i++) {
		redisReply *r = store_sync_node_cmd(s, i, argc, argv, why, whylen);
		if (r)
			return r;
	}
	return NULL;
}

redisReply *store_sync_key_cmd(struct store_sync *s, const char *key, int argc, const char **argv, char *why,
			       size_t whylen)
{
	unsigned node = 0;
	if (s->kind == CFG_REDIS_CLUSTER) {
		node = s->topo.slot_node[store_cluster_slot(key, strlen(key))];
		if (node >= s->topo.n_nodes) {
			snprintf(why, whylen, "no cluster node serves the slot of %s", key);
			return NULL;
		}
	}
	redisContext *rc = node_ctx(s, &s->ctx[node], &s->topo.nodes[node], why, whylen);
	bool asking = false;
	for (int hop = 0; rc && hop <= SYNC_REDIRECTS; hop++) {
		if (asking) {
			redisReply *a = store_redis_sync_cmd(rc, why, whylen, "ASKING");
			if (!a)
				return NULL;
			freeReplyObject(a);
		}
		redisReply *r = store_redis_sync_argv(rc, argc, argv, NULL, why, whylen);
		if (!r)
			return NULL;
		bool ask;
		unsigned slot;
		struct cfg_redis_host to;
		if (s->kind != CFG_REDIS_CLUSTER || r->type != REDIS_REPLY_ERROR ||
		    store_cluster_parse_redirect(r->str, r->len, &ask, &slot, &to) != 0)
			return r;
		freeReplyObject(r);
		asking = ask;
		if (!ask)
			map_reread(s);
		rc = ctx_for(s, &to, why, whylen);
	}
	if (rc)
		snprintf(why, whylen, "more than %d cluster redirections for %s", SYNC_REDIRECTS, key);
	return NULL;
}
