/* dns_resolver.c - RFC 3263 §4 resolution on a thread of its own (SPEC §10).
 *
 * The thread owns a c-ares channel and drives it from its own poll loop
 * (ares_fds / ares_timeout / ares_process): no packet thread ever waits for
 * DNS. A name is resolved as RFC 3263 says for UDP: with a port, A/AAAA only;
 * without one, NAPTR (SIP+D2U, flag "s", lowest order/preference) -> its SRV
 * name, else _sip._udp.NAME SRV, else A/AAAA of NAME on 5060; every SRV
 * target's A/AAAA carries its priority, weight and port. The result lives
 * min(TTL of every record used) seconds (at least 1); a name that does not
 * resolve is cached negatively for the SOA minimum of the answer (RFC 2308),
 * else dns.negative_ttl.
 *
 * Cache: an RCU lock-free hash table (cds_lfht) of immutable entries, written
 * only by this thread (replaced whole, old ones freed after a grace period),
 * read by workers inside their read-side sections. Route names (destinations
 * without maddr) are resolved at start and re-resolved as their TTLs run out;
 * other names (foreign Request-URI hosts) when a worker misses: the worker
 * queues the name (bounded queue, eventfd wakeup: misses only) and answers
 * 503 with Retry-After. An entry past its TTL is still used while its
 * refresh runs (one refresh per name); entries expired for a minute are
 * dropped and at most DNS_CACHE_MAX names are held (a flood of made-up names
 * gets 503s, not memory). Every failure is counted in
 * referee_dns_errors_total{reason} and logged (rate-limited). */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "dest.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "sockaddr.h"

/* liburcu is not instrumented for TSan: under TSan the table annotates
 * publication (release on an entry before it is linked, acquire in the match)
 * and grace periods (release after a lookup's reads, acquire before a free),
 * the orderings rcu_assign_pointer / rcu_dereference / call_rcu give. */
#if defined(__SANITIZE_THREAD__)
#define DNS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DNS_TSAN 1
#endif
#endif
#ifdef DNS_TSAN
#include <sanitizer/tsan_interface.h>
#define DNS_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define DNS_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define DNS_TSAN_RELEASE(p) ((void)0)
#define DNS_TSAN_ACQUIRE(p) ((void)0)
#endif
#ifdef DNS_TSAN
static char dns_tsan_gp; /* "a grace period separates the reads from the free" */
/* liburcu's own call_rcu / rcu_barrier hand-offs are invisible to TSan: only
 * calls made by those libraries are silenced (as store_tables.c does, weak, so
 * one definition wins when both are linked). */
const char *__tsan_default_suppressions(void);
__attribute__((weak)) const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-cds.so.8\ncalled_from_lib:liburcu.so.8\n";
}
#endif

#define DNS_KEY_MAX (DNS_NAME_MAX + 8)
#define DNS_QUEUE_MAX 256
#define DNS_JOBS_MAX 256
#define DNS_MIN_TTL 1
#define DNS_PENDING_TTL 10 /* a placeholder lives at most this long */
#define DNS_CACHE_MAX 4096 /* names cached at once: request-driven names past it are not resolved */
#define DNS_SWEEP_NS 5000000000ull /* how often entries long expired are dropped */
#define DNS_KEEP_EXPIRED_NS 60000000000ull /* an expired entry stays (serving stale) this long */

enum entry_state { ENTRY_PENDING = 0, ENTRY_OK, ENTRY_FAILED };

struct dns_entry {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	char key[DNS_KEY_MAX]; /* "name:port" or "name:srv" */
	enum entry_state state;
	enum dns_error error; /* ENTRY_FAILED: why */
	uint64_t expires_ns;
	_Atomic bool refresh_asked; /* one refresh request per entry */
	struct dns_targets targets;
};

struct dns_query_req {
	char name[DNS_NAME_MAX];
	uint16_t port;
	bool has_port;
};

struct dns_job {
	bool used;
	char key[DNS_KEY_MAX];
	char name[DNS_NAME_MAX];
	uint16_t port;
	bool has_port;
	unsigned outstanding;
	uint32_t ttl;
	uint32_t neg_ttl;
	enum dns_error error;
	bool srv_tried;
	struct dns_targets acc;
};

/* one outstanding c-ares query of a job */
struct dns_q {
	struct dns_job *job;
	uint16_t type;
	uint16_t port, priority, weight; /* A/AAAA of an SRV target */
};

static struct {
	bool started;
	pthread_t thread;
	atomic_bool stop;
	int wake_fd;
	ares_channel channel;
	struct cds_lfht *table;
	unsigned negative_ttl;
	pthread_mutex_t mu; /* queue and route names */
	unsigned n_queue;
	struct dns_query_req queue[DNS_QUEUE_MAX];
	unsigned n_routes, n_routes_next;
	struct dns_query_req routes[DEST_ROUTE_COUNT * CFG_MAX_DESTS];
	struct dns_query_req routes_next[DEST_ROUTE_COUNT * CFG_MAX_DESTS];
	bool routes_changed;
	struct dns_job jobs[DNS_JOBS_MAX];
	unsigned m_errors; /* referee_dns_errors_total{reason} */
	unsigned m_queries;
	bool have_metrics;
	unsigned n_entries; /* resolver thread only */
	uint64_t last_sweep_ns;
} dr = { .wake_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_error(enum dns_error e, const char *name)
{
	if (dr.have_metrics && e > DNS_OK && e < DNS_E_COUNT)
		metrics_inc(dr.m_errors + (unsigned)e);
	static struct log_limit lim;
	uint64_t sup;
	if (log_limit_pass(&lim, &sup))
		log_warn("dns", "resolution problem reason=%s name=%s suppressed=%llu", dns_error_names[e],
			 name, (unsigned long long)sup);
}

/* ---------------------------------------------------------------- keys */

/* key_make - "host:port" / "host:srv", lowercased; 0 when @host is no name */
static size_t key_make(struct slice host, uint16_t port, bool has_port, char out[DNS_KEY_MAX])
{
	if (host.len == 0 || host.len >= DNS_NAME_MAX)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < host.len; i++) {
		char c = host.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return 0;
		out[n++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
	}
	if (n && out[n - 1] == '.')
		n--; /* an absolute name is the same name */
	int w = has_port ? snprintf(out + n, DNS_KEY_MAX - n, ":%u", (unsigned)port)
			 : snprintf(out + n, DNS_KEY_MAX - n, ":srv");
	return w > 0 ? n + (size_t)w : 0;
}

static int key_match(struct cds_lfht_node *node, const void *key)
{
	DNS_TSAN_ACQUIRE(node); /* pairs with the release before the entry was linked */
	const struct dns_entry *e = caa_container_of(node, struct dns_entry, node);
	return strcmp(e->key, key) == 0;
}

static unsigned long key_hash(const char *key)
{
	return (unsigned long)slice_hash(slice_from_cstr(key));
}

/* ---------------------------------------------------------------- workers' side */

static void queue_push(struct slice host, uint16_t port, bool has_port)
{
	pthread_mutex_lock(&dr.mu);
	bool queued = false;
	if (dr.n_queue < DNS_QUEUE_MAX) {
		struct dns_query_req *q = &dr.queue[dr.n_queue++];
		memcpy(q->name, host.p, host.len);
		q->name[host.len] = '\0';
		q->port = port;
		q->has_port = has_port;
		queued = true;
	}
	pthread_mutex_unlock(&dr.mu);
	if (queued) {
		uint64_t one = 1;
		ssize_t n = write(dr.wake_fd, &one, sizeof(one));
		(void)n;
	}
}

enum dns_lookup_rc dns_lookup(struct slice host, uint16_t port, bool has_port, uint64_t key,
			      int family, struct sockaddr_storage *out, socklen_t *outlen)
{
	/* acquire pairs with the release in dns_start: the table is built before */
	struct cds_lfht *table = __atomic_load_n(&dr.table, __ATOMIC_ACQUIRE);
	char k[DNS_KEY_MAX];
	if (!table)
		return DNS_OFF;
	if (!key_make(host, port, has_port, k))
		return DNS_FAILED;
	struct cds_lfht_iter it;
	cds_lfht_lookup(table, key_hash(k), key_match, k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (!node) {
		queue_push(host, port, has_port);
		return DNS_PENDING;
	}
	struct dns_entry *e = caa_container_of(node, struct dns_entry, node);
	const bool expired = now_ns() >= e->expires_ns;
	if (expired && e->state != ENTRY_PENDING &&
	    !atomic_exchange_explicit(&e->refresh_asked, true, memory_order_relaxed))
		queue_push(host, port, has_port);
	const enum entry_state state = e->state;
	if (state != ENTRY_OK) {
		DNS_TSAN_RELEASE(&dns_tsan_gp);
		return state == ENTRY_PENDING || expired ? DNS_PENDING : DNS_FAILED;
	}
	const int i = dns_pick(&e->targets, key, family);
	if (i < 0) {
		DNS_TSAN_RELEASE(&dns_tsan_gp);
		return DNS_FAILED; /* resolves, but not in the family we send from */
	}
	memcpy(out, &e->targets.t[i].sa, e->targets.t[i].salen);
	*outlen = e->targets.t[i].salen;
	DNS_TSAN_RELEASE(&dns_tsan_gp); /* our reads of the entry come before its free */
	return DNS_HIT;
}

/* ---------------------------------------------------------------- cache writes (resolver thread) */

static void entry_free_rcu(struct rcu_head *h)
{
	DNS_TSAN_ACQUIRE(&dns_tsan_gp);
	free(caa_container_of(h, struct dns_entry, rcu));
}

static struct dns_entry *entry_find(const char *key)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(dr.table, key_hash(key), key_match, key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct dns_entry, node) : NULL;
}

static struct dns_job *job_running(const char *key);

/* entry_put - publish a new entry for @key (replacing any) */
static void entry_put(const char *key, enum entry_state state, enum dns_error error, uint32_t ttl,
		      const struct dns_targets *ts)
{
	struct dns_entry *e = calloc(1, sizeof(*e));
	if (!e) {
		log_error("dns", "out of memory: %s not cached", key);
		return;
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->state = state;
	e->error = error;
	e->expires_ns = now_ns() + (uint64_t)(ttl ? ttl : DNS_MIN_TTL) * 1000000000ull;
	if (ts)
		e->targets = *ts;
	cds_lfht_node_init(&e->node);
	DNS_TSAN_RELEASE(&e->node); /* the entry is complete before readers can find it */
	rcu_read_lock();
	struct cds_lfht_node *old = cds_lfht_add_replace(dr.table, key_hash(e->key), key_match, e->key, &e->node);
	rcu_read_unlock();
	DNS_TSAN_RELEASE(&dns_tsan_gp); /* the matches above read entries call_rcu may free */
	if (old)
		call_rcu(&caa_container_of(old, struct dns_entry, node)->rcu, entry_free_rcu);
	else
		dr.n_entries++;
}

/* is_route_name - @key is one of the route names kept fresh */
static bool is_route_name(const char *key)
{
	for (unsigned i = 0; i < dr.n_routes; i++) {
		char k[DNS_KEY_MAX];
		if (key_make(slice_from_cstr(dr.routes[i].name), dr.routes[i].port, dr.routes[i].has_port, k) &&
		    strcmp(k, key) == 0)
			return true;
	}
	return false;
}

/* cache_sweep - drop entries expired for a while (a flood of names must not
 * grow the table forever); route names are refreshed, never dropped */
static void cache_sweep(uint64_t now)
{
	if (now - dr.last_sweep_ns < DNS_SWEEP_NS)
		return;
	dr.last_sweep_ns = now;
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	cds_lfht_for_each(dr.table, &it, node) {
		struct dns_entry *e = caa_container_of(node, struct dns_entry, node);
		if (now < e->expires_ns + DNS_KEEP_EXPIRED_NS || is_route_name(e->key) || job_running(e->key))
			continue;
		if (cds_lfht_del(dr.table, node) == 0) {
			call_rcu(&e->rcu, entry_free_rcu);
			dr.n_entries--;
		}
	}
	DNS_TSAN_RELEASE(&dns_tsan_gp);
}

/* ---------------------------------------------------------------- jobs */

static void job_query(struct dns_job *j, const char *name, uint16_t type, uint16_t port, uint16_t prio,
		      uint16_t weight);

static void job_finish(struct dns_job *j)
{
	if (j->acc.n > 0) {
		const uint32_t ttl = j->ttl < DNS_MIN_TTL ? DNS_MIN_TTL : j->ttl;
		entry_put(j->key, ENTRY_OK, DNS_OK, ttl, &j->acc);
		log_debug("dns", "resolved name=%s targets=%u ttl=%u", j->key, j->acc.n, ttl);
	} else {
		enum dns_error e = j->error ? j->error : DNS_E_NODATA;
		uint32_t ttl = j->neg_ttl ? j->neg_ttl : dr.negative_ttl;
		if (e == DNS_E_TIMEOUT || e == DNS_E_SERVFAIL)
			ttl = ttl < 5 ? ttl : 5; /* a server problem: ask again soon */
		count_error(e, j->key);
		entry_put(j->key, ENTRY_FAILED, e, ttl, NULL);
	}
	j->used = false;
}

static void ttl_take(struct dns_job *j, uint32_t ttl)
{
	if (ttl < j->ttl)
		j->ttl = ttl;
}

static void target_add(struct dns_job *j, const struct dns_rr *rr, uint16_t port, uint16_t prio,
		       uint16_t weight)
{
	if (j->acc.n >= DNS_MAX_TARGETS)
		return;
	struct dns_target *t = &j->acc.t[j->acc.n];
	memset(t, 0, sizeof(*t));
	if (rr->type == DNS_T_A) {
		struct sockaddr_in *in = (struct sockaddr_in *)&t->sa;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, rr->u.a, 4);
		t->salen = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, rr->u.aaaa, 16);
		t->salen = sizeof(*in6);
	}
	if (sockaddr_is_bad_destination((const struct sockaddr *)&t->sa))
		return; /* an answer naming 0.0.0.0, broadcast or multicast */
	t->priority = prio;
	t->weight = weight;
	t->transport = CFG_TRANSPORT_UDP;
	t->seed = dest_seed(&t->sa, t->salen);
	j->acc.n++;
}

static enum dns_error status_error(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_E_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_E_NODATA;
	case ARES_ETIMEOUT:
	case ARES_ECONNREFUSED:
		return DNS_E_TIMEOUT;
	case ARES_EBADRESP:
	case ARES_EFORMERR:
		return DNS_E_MALFORMED;
	default:
		return DNS_E_SERVFAIL;
	}
}

static void job_error(struct dns_job *j, enum dns_error e)
{
	if (e == DNS_OK || e == DNS_E_OVERFLOW)
		return;
	if (!j->error || e == DNS_E_NXDOMAIN)
		j->error = e;
}

/* the NAPTR answer: the SRV name of the best SIP+D2U record, or NULL */
static const char *naptr_choose(const struct dns_answer *a)
{
	const struct dns_rr *best = NULL;
	for (unsigned i = 0; i < a->n; i++) {
		const struct dns_rr *r = &a->rr[i];
		if (strcmp(r->u.naptr.flags, "s") != 0 || strcmp(r->u.naptr.service, "sip+d2u") != 0 ||
		    !r->u.naptr.replacement[0])
			continue; /* only UDP is sent to (issue 10 adds TCP/TLS) */
		if (!best || r->u.naptr.order < best->u.naptr.order ||
		    (r->u.naptr.order == best->u.naptr.order &&
		     r->u.naptr.preference < best->u.naptr.preference))
			best = r;
	}
	return best ? best->u.naptr.replacement : NULL;
}

static void address_fallback(struct dns_job *j)
{
	job_query(j, j->name, DNS_T_A, 5060, 0, 0);
	job_query(j, j->name, DNS_T_AAAA, 5060, 0, 0);
}

static void srv_query(struct dns_job *j, const char *name)
{
	j->srv_tried = true;
	job_query(j, name, DNS_T_SRV, 0, 0, 0);
}

static void answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct dns_q *q = arg;
	struct dns_job *j = q->job;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		free(q);
		return; /* shutting down */
	}
	static struct dns_answer a; /* this thread only; big */
	enum dns_error e = status_error(status);
	if (abuf && alen > 0) {
		const enum dns_error pe = dns_answer_parse(abuf, (size_t)alen, q->type, &a);
		if (pe == DNS_E_MALFORMED || pe == DNS_E_OVERFLOW)
			count_error(pe, j->name);
		if (pe == DNS_E_MALFORMED)
			e = DNS_E_MALFORMED;
		if (a.neg_ttl && (e == DNS_E_NXDOMAIN || e == DNS_E_NODATA))
			j->neg_ttl = !j->neg_ttl || a.neg_ttl < j->neg_ttl ? a.neg_ttl : j->neg_ttl;
	} else {
		memset(&a, 0, sizeof(a));
	}
	const bool ok = (e == DNS_OK) && a.n > 0;
	if (ok)
		ttl_take(j, a.min_ttl);
	switch (q->type) {
	case DNS_T_NAPTR: {
		const char *srv = ok ? naptr_choose(&a) : NULL;
		if (e == DNS_E_NXDOMAIN) {
			job_error(j, e);
		} else if (srv) {
			srv_query(j, srv);
		} else {
			char name[DNS_NAME_MAX + 16];
			snprintf(name, sizeof(name), "_sip._udp.%s", j->name);
			srv_query(j, name);
		}
		break;
	}
	case DNS_T_SRV: {
		unsigned queued = 0;
		for (unsigned i = 0; ok && i < a.n; i++) {
			const struct dns_rr *r = &a.rr[i];
			if (!r->u.srv.target[0] || r->u.srv.port == 0)
				continue; /* "." : the service is not offered there */
			job_query(j, r->u.srv.target, DNS_T_A, r->u.srv.port, r->u.srv.priority, r->u.srv.weight);
			job_query(j, r->u.srv.target, DNS_T_AAAA, r->u.srv.port, r->u.srv.priority,
				  r->u.srv.weight);
			queued++;
		}
		if (!queued) {
			if (e != DNS_OK && e != DNS_E_NODATA && e != DNS_E_NXDOMAIN)
				job_error(j, e);
			address_fallback(j);
		}
		break;
	}
	default:
		if (ok)
			for (unsigned i = 0; i < a.n; i++)
				target_add(j, &a.rr[i], q->port, q->priority, q->weight);
		else
			job_error(j, e);
		break;
	}
	free(q);
	if (--j->outstanding == 0)
		job_finish(j);
}

static void job_query(struct dns_job *j, const char *name, uint16_t type, uint16_t port, uint16_t prio,
		      uint16_t weight)
{
	struct dns_q *q = calloc(1, sizeof(*q));
	if (!q) {
		job_error(j, DNS_E_SERVFAIL);
		return;
	}
	*q = (struct dns_q){ .job = j, .type = type, .port = port, .priority = prio, .weight = weight };
	j->outstanding++;
	if (dr.have_metrics)
		metrics_inc(dr.m_queries);
	ares_query(dr.channel, name, 1 /* IN */, type, answer_cb, q);
}

static struct dns_job *job_running(const char *key)
{
	for (unsigned i = 0; i < DNS_JOBS_MAX; i++)
		if (dr.jobs[i].used && strcmp(dr.jobs[i].key, key) == 0)
			return &dr.jobs[i];
	return NULL;
}

static void job_start(const struct dns_query_req *r)
{
	char key[DNS_KEY_MAX];
	const struct slice host = slice_from_cstr(r->name);
	if (!key_make(host, r->port, r->has_port, key) || job_running(key))
		return;
	struct dns_job *j = NULL;
	for (unsigned i = 0; i < DNS_JOBS_MAX && !j; i++)
		if (!dr.jobs[i].used)
			j = &dr.jobs[i];
	if (!j) {
		count_error(DNS_E_OVERFLOW, r->name);
		return;
	}
	memset(j, 0, sizeof(*j));
	j->used = true;
	snprintf(j->key, sizeof(j->key), "%s", key);
	/* the name as resolved: lowercased, no final dot, no port */
	snprintf(j->name, sizeof(j->name), "%.*s", (int)(strrchr(key, ':') - key), key);
	j->port = r->port;
	j->has_port = r->has_port;
	j->ttl = UINT32_MAX;
	const bool known = entry_find(key) != NULL;
	DNS_TSAN_RELEASE(&dns_tsan_gp);
	if (!known && dr.n_entries >= DNS_CACHE_MAX && !is_route_name(key)) {
		j->used = false;
		count_error(DNS_E_OVERFLOW, key); /* full: a name flood; requests keep getting 503 */
		return;
	}
	if (!known)
		entry_put(key, ENTRY_PENDING, DNS_OK, DNS_PENDING_TTL, NULL);
	j->outstanding = 1; /* held while the first queries are issued */
	if (r->has_port) {
		job_query(j, j->name, DNS_T_A, r->port, 0, 0);
		job_query(j, j->name, DNS_T_AAAA, r->port, 0, 0);
	} else {
		job_query(j, j->name, DNS_T_NAPTR, 0, 0, 0);
	}
	if (--j->outstanding == 0)
		job_finish(j);
}

/* ---------------------------------------------------------------- the loop */

static void routes_refresh(void)
{
	pthread_mutex_lock(&dr.mu);
	if (dr.routes_changed) {
		memcpy(dr.routes, dr.routes_next, sizeof(dr.routes));
		dr.n_routes = dr.n_routes_next;
		dr.routes_changed = false;
	}
	pthread_mutex_unlock(&dr.mu);
	const uint64_t now = now_ns();
	for (unsigned i = 0; i < dr.n_routes; i++) {
		char key[DNS_KEY_MAX];
		if (!key_make(slice_from_cstr(dr.routes[i].name), dr.routes[i].port, dr.routes[i].has_port, key))
			continue;
		const struct dns_entry *e = entry_find(key);
		/* re-resolved as the TTL runs out (a pending placeholder waits for its job) */
		const bool due = !e || (e->state != ENTRY_PENDING && now >= e->expires_ns);
		DNS_TSAN_RELEASE(&dns_tsan_gp);
		if (due)
			job_start(&dr.routes[i]);
	}
}

static void queue_drain(void)
{
	static struct dns_query_req local[DNS_QUEUE_MAX];
	pthread_mutex_lock(&dr.mu);
	const unsigned n = dr.n_queue;
	memcpy(local, dr.queue, n * sizeof(local[0]));
	dr.n_queue = 0;
	pthread_mutex_unlock(&dr.mu);
	for (unsigned i = 0; i < n; i++)
		job_start(&local[i]);
}

static void *resolver_main(void *arg)
{
	(void)arg;
	rcu_register_thread();
	if (metrics_thread_init() < 0)
		log_warn("dns", "no metrics shard left: counting on the shared one");
	while (!atomic_load_explicit(&dr.stop, memory_order_relaxed)) {
		rcu_read_lock();
		queue_drain();
		routes_refresh();
		cache_sweep(now_ns());
		rcu_read_unlock();
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		const unsigned bits = (unsigned)ares_getsock(dr.channel, socks, ARES_GETSOCK_MAXNUM);
		struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = dr.wake_fd, .events = POLLIN };
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			/* ARES_GETSOCK_WRITABLE shifts a signed 1 by up to 31: spelt out unsigned */
			short ev = (short)((bits & (1u << i) ? POLLIN : 0) |
					   (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
			if (ev)
				pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
		}
		struct timeval max = { .tv_sec = 1 }, tv;
		const struct timeval *t = ares_timeout(dr.channel, &max, &tv);
		const int ms = (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
		const int rc = poll(pfd, n, ms);
		if (rc < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(dr.wake_fd, &v, sizeof(v));
			(void)r;
		}
		rcu_read_lock();
		bool any = false;
		for (nfds_t i = 1; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			any = true;
			ares_process_fd(dr.channel,
					pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
					pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		}
		if (!any)
			ares_process_fd(dr.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
		rcu_read_unlock();
	}
	/* workers are gone (dns_stop runs after the pipeline): empty the table */
	ares_cancel(dr.channel);
	rcu_read_lock();
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	cds_lfht_for_each(dr.table, &it, node) {
		if (cds_lfht_del(dr.table, node) == 0)
			call_rcu(&caa_container_of(node, struct dns_entry, node)->rcu, entry_free_rcu);
	}
	rcu_read_unlock();
	rcu_barrier();
	rcu_unregister_thread();
	return NULL;
}

/* ---------------------------------------------------------------- control */

static void routes_from(const struct cfg *c)
{
	unsigned n = 0;
	const struct cfg_destset *sets[2] = { &c->routes.local, &c->routes.outbound };
	for (unsigned s = 0; s < 2; s++)
		for (unsigned i = 0; i < sets[s]->n; i++) {
			const struct cfg_dest *d = &sets[s]->d[i];
			if (d->has_addr)
				continue;
			struct dns_query_req *r = &dr.routes_next[n++];
			snprintf(r->name, sizeof(r->name), "%s", d->host);
			r->port = d->port;
			r->has_port = d->has_port;
		}
	dr.n_routes_next = n;
	dr.routes_changed = true;
}

static int servers_set(const struct cfg *c)
{
	if (c->dns.n_servers == 0)
		return ARES_SUCCESS; /* /etc/resolv.conf, read by ares_init_options */
	char csv[CFG_MAX_DNS_SERVERS * 72] = "";
	for (unsigned i = 0; i < c->dns.n_servers; i++) {
		size_t used = strlen(csv);
		snprintf(csv + used, sizeof(csv) - used, "%s%s", i ? "," : "", c->dns.servers[i]);
	}
	return ares_set_servers_ports_csv(dr.channel, csv);
}

int dns_start(const struct cfg *c)
{
	if (dr.started)
		return -EALREADY;
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		log_error("dns", "c-ares: %s", ares_strerror(rc));
		return -EIO;
	}
	struct ares_options o = { .timeout = 1000, .tries = 2 };
	rc = ares_init_options(&dr.channel, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc == ARES_SUCCESS)
		rc = servers_set(c);
	if (rc != ARES_SUCCESS) {
		log_error("dns", "cannot set up the resolver: %s", ares_strerror(rc));
		if (dr.channel)
			ares_destroy(dr.channel);
		dr.channel = NULL;
		ares_library_cleanup();
		return -EIO;
	}
	if (!dr.have_metrics) {
		dr.m_errors = metrics_counter("referee_dns_errors_total",
					      "DNS resolutions that failed or answers refused, by reason", "reason",
					      dns_error_names, DNS_E_COUNT);
		dr.m_queries = metrics_counter("referee_dns_queries_total", "DNS queries sent", NULL, NULL, 0);
		dr.have_metrics = true;
	}
	dr.negative_ttl = c->dns.negative_ttl ? c->dns.negative_ttl : 30;
	dr.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct cds_lfht *table = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (dr.wake_fd < 0 || !table) {
		log_error("dns", "cannot start the resolver: %s", strerror(errno));
		return -ENOMEM;
	}
	__atomic_store_n(&dr.table, table, __ATOMIC_RELEASE);
	routes_from(c);
	atomic_store_explicit(&dr.stop, false, memory_order_relaxed);
	if (pthread_create(&dr.thread, NULL, resolver_main, NULL) != 0) {
		log_error("dns", "cannot start the resolver thread");
		return -EAGAIN;
	}
	dr.started = true;
	return 0;
}

void dns_reload(const struct cfg *c)
{
	if (!dr.started)
		return;
	pthread_mutex_lock(&dr.mu);
	routes_from(c);
	pthread_mutex_unlock(&dr.mu);
	uint64_t one = 1;
	ssize_t n = write(dr.wake_fd, &one, sizeof(one));
	(void)n;
}

void dns_stop(void)
{
	if (!dr.started)
		return;
	atomic_store_explicit(&dr.stop, true, memory_order_relaxed);
	uint64_t one = 1;
	ssize_t n = write(dr.wake_fd, &one, sizeof(one));
	(void)n;
	pthread_join(dr.thread, NULL);
	struct cds_lfht *table = dr.table;
	__atomic_store_n(&dr.table, NULL, __ATOMIC_RELEASE);
	cds_lfht_destroy(table, NULL);
	ares_destroy(dr.channel);
	dr.channel = NULL;
	ares_library_cleanup();
	close(dr.wake_fd);
	dr.wake_fd = -1;
	dr.started = false;
}
