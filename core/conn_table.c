/* conn_table.c - the connection table and the per-source counts (SPEC §9).
 *
 * Tables: two cds_lfht shared by every thread: peers (each connection under
 * its peer key) and aliases (a connection on which a Via ;alias was seen,
 * RFC 5923, under the Via's sent-by); two tables so a matcher only ever sees
 * one kind of node. Only the owner adds and removes its connection's nodes; any thread
 * looks up inside rcu_read_lock. A key already taken (two connections with
 * one peer cannot happen for TCP, but an alias may name a peer that has its
 * own connection) keeps the first entry.
 * Per-source counts: touched only when a connection is accepted or closed
 * (never per message), under one mutex: a small chained hash by IP. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conn_priv.h"
#include "slice.h"

#ifdef CONN_TSAN
/* liburcu is not instrumented (see store_tables.c): silence only calls made by it. */
const char *__tsan_default_suppressions(void);
__attribute__((weak)) const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-cds.so.8\ncalled_from_lib:liburcu.so.8\n";
}
#endif

void conn_key_from_sa(const struct sockaddr_storage *sa, enum cfg_transport t, struct conn_key *k)
{
	memset(k, 0, sizeof(*k));
	k->transport = (uint8_t)t;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		memcpy(k->addr, &in4->sin_addr, 4);
		k->port = ntohs(in4->sin_port);
		k->family = AF_INET;
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		k->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(k->addr, in6->sin6_addr.s6_addr + 12, 4);
			k->family = AF_INET;
		} else {
			memcpy(k->addr, &in6->sin6_addr, 16);
			k->family = AF_INET6;
		}
	}
}

socklen_t conn_key_to_sa(const struct conn_key *k, struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (k->family == AF_INET) {
		struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
		in4->sin_family = AF_INET;
		memcpy(&in4->sin_addr, k->addr, 4);
		in4->sin_port = htons(k->port);
		return sizeof(*in4);
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, k->addr, 16);
	in6->sin6_port = htons(k->port);
	return sizeof(*in6);
}

static unsigned long key_hash(const struct conn_key *k)
{
	return (unsigned long)slice_hash(slice_make((const char *)k, sizeof(*k)));
}

static int peer_match(struct cds_lfht_node *node, const void *key)
{
	const struct conn *c = caa_container_of(node, struct conn, peer_node);
	CONN_TSAN_ACQUIRE(c); /* pairs with the release before it was linked */
	return memcmp(&c->key, key, sizeof(c->key)) == 0;
}

static int alias_match(struct cds_lfht_node *node, const void *key)
{
	const struct conn *c = caa_container_of(node, struct conn, alias_node);
	CONN_TSAN_ACQUIRE(c);
	return memcmp(&c->alias, key, sizeof(c->alias)) == 0;
}

int conn_table_add(struct conn *c)
{
	cds_lfht_node_init(&c->peer_node);
	cds_lfht_node_init(&c->alias_node);
	CONN_TSAN_RELEASE(c);
	rcu_read_lock();
	struct cds_lfht_node *got =
	    cds_lfht_add_unique(conn_rt.table, key_hash(&c->key), peer_match, &c->key, &c->peer_node);
	rcu_read_unlock();
	if (got != &c->peer_node)
		return -EEXIST;
	c->in_table = true;
	return 0;
}

void conn_table_del(struct conn *c)
{
	rcu_read_lock();
	if (c->in_table)
		cds_lfht_del(conn_rt.table, &c->peer_node);
	if (c->has_alias)
		cds_lfht_del(conn_rt.aliases, &c->alias_node);
	rcu_read_unlock();
	c->in_table = false;
	c->has_alias = false;
}

struct conn *conn_table_find(const struct conn_key *k)
{
	struct cds_lfht_iter it;
	const unsigned long h = key_hash(k);
	cds_lfht_lookup(conn_rt.table, h, peer_match, k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	struct conn *c = NULL;
	if (node) {
		c = caa_container_of(node, struct conn, peer_node);
	} else {
		cds_lfht_lookup(conn_rt.aliases, h, alias_match, k, &it);
		node = cds_lfht_iter_get_node(&it);
		if (node)
			c = caa_container_of(node, struct conn, alias_node);
	}
	/* relaxed: doomed is advisory, the owner re-checks */
	if (c && atomic_load_explicit(&c->doomed, memory_order_relaxed))
		c = NULL;
	CONN_TSAN_RELEASE(&conn_rt); /* our reads of c come before its free */
	return c;
}

/* conn_alias_set - owner thread: add @alias as a second key of @c. */
static void conn_alias_set(struct conn *c, const struct conn_key *alias)
{
	if (c->has_alias || memcmp(alias, &c->key, sizeof(*alias)) == 0)
		return;
	c->alias = *alias;
	CONN_TSAN_RELEASE(c);
	rcu_read_lock();
	struct cds_lfht_node *got =
	    cds_lfht_add_unique(conn_rt.aliases, key_hash(alias), alias_match, alias, &c->alias_node);
	rcu_read_unlock();
	c->has_alias = got == &c->alias_node;
}

void conn_alias_add(const struct sockaddr_storage *peer, const struct sockaddr_storage *alias,
		    enum cfg_transport transport)
{
	struct conn_key pk, ak;
	conn_key_from_sa(peer, transport, &pk);
	conn_key_from_sa(alias, transport, &ak);
	if (memcmp(&pk, &ak, sizeof(pk)) == 0)
		return;
	rcu_read_lock();
	struct conn *c = conn_table_find(&pk);
	/* only the owner touches its nodes: others cannot add the alias (rare
	 * enough - requests of a connection are read by its owner, which is the
	 * thread that sees the Via first in inline mode) */
	if (c && c->owner == conn_self)
		conn_alias_set(c, &ak);
	rcu_read_unlock();
}

bool conn_is_up(const struct sockaddr_storage *addr, enum cfg_transport transport)
{
	struct conn_key k;
	conn_key_from_sa(addr, transport, &k);
	rcu_read_lock();
	bool up = conn_table_find(&k) != NULL;
	rcu_read_unlock();
	return up;
}

/* ---------------------------------------------------------------- per source */

#define SOURCE_BUCKETS 4096

struct source_ent {
	struct source_ent *next;
	uint8_t addr[16];
	uint8_t family;
	unsigned count;
};

static pthread_mutex_t source_mu = PTHREAD_MUTEX_INITIALIZER;
static struct source_ent *source_buckets[SOURCE_BUCKETS];

static struct source_ent **source_slot(const struct conn_key *k)
{
	uint64_t h = slice_hash(slice_make((const char *)k->addr, sizeof(k->addr))) ^ k->family;
	struct source_ent **pp = &source_buckets[h % SOURCE_BUCKETS];
	while (*pp && ((*pp)->family != k->family || memcmp((*pp)->addr, k->addr, 16) != 0))
		pp = &(*pp)->next;
	return pp;
}

int conn_source_acquire(const struct sockaddr_storage *peer, unsigned limit)
{
	struct conn_key k;
	conn_key_from_sa(peer, CFG_TRANSPORT_TCP, &k);
	int rc = 0;
	pthread_mutex_lock(&source_mu);
	struct source_ent **pp = source_slot(&k);
	if (!*pp) {
		struct source_ent *e = calloc(1, sizeof(*e));
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(e->addr, k.addr, 16);
		e->family = k.family;
		*pp = e;
	}
	if ((*pp)->count >= limit)
		rc = -EUSERS;
	else
		(*pp)->count++;
	if ((*pp)->count == 0) {
		struct source_ent *e = *pp;
		*pp = e->next;
		free(e);
	}
out:
	pthread_mutex_unlock(&source_mu);
	return rc;
}

void conn_source_release(const struct sockaddr_storage *peer)
{
	struct conn_key k;
	conn_key_from_sa(peer, CFG_TRANSPORT_TCP, &k);
	pthread_mutex_lock(&source_mu);
	struct source_ent **pp = source_slot(&k);
	if (*pp && --(*pp)->count == 0) {
		struct source_ent *e = *pp;
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&source_mu);
}

int conn_table_init(void)
{
	conn_rt.table = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	conn_rt.aliases = cds_lfht_new(256, 256, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (conn_rt.table && conn_rt.aliases)
		return 0;
	conn_table_fini();
	return -ENOMEM;
}

void conn_table_fini(void)
{
	CONN_TSAN_ACQUIRE(&conn_rt);
	/* empty: every connection left them; not inside a read-side section */
	if (conn_rt.table)
		cds_lfht_destroy(conn_rt.table, NULL);
	if (conn_rt.aliases)
		cds_lfht_destroy(conn_rt.aliases, NULL);
	conn_rt.table = conn_rt.aliases = NULL;
	pthread_mutex_lock(&source_mu);
	for (unsigned i = 0; i < SOURCE_BUCKETS; i++) {
		while (source_buckets[i]) {
			struct source_ent *e = source_buckets[i];
			source_buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&source_mu);
}
