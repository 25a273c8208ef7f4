/* store_redis_bound.c - replies from Redis read under a memory bound.
 *
 * hiredis 0.14 allocates whatever the server announces: "*2000000000" makes
 * it calloc 16 GB for the element pointers, "$1000000000" is buffered whole.
 * A hostile or broken Redis must not exhaust our memory, so every reader of
 * store/ (async links and blocking contexts) builds hiredis's own redisReply
 * objects (freeReplyObject still frees them) through wrappers that charge
 * each object to a per-reply budget (reader->privdata) and refuse, before the
 * allocation, what goes over. A refusal is a NULL object: hiredis reports
 * "Out of memory", fails the reader and the connection is dropped; the
 * budget's refused flag tells the bound from a real OOM. A bulk string is
 * buffered whole before it is built, so the bytes waiting in the reader
 * buffer are checked after each read too (store_reply_buffer_over). */
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store_redis_priv.h"

static redisReplyObjectFunctions base;	  /* hiredis's defaults */
static redisReplyObjectFunctions bounded; /* the wrappers below, base's freeObject */
static pthread_once_t base_once = PTHREAD_ONCE_INIT;
static unsigned m_refused = METRICS_MAX_SERIES; /* no series until registered (referee-admin) */
static struct log_limit_keyed lim_refused;	/* per server */

/* charge - add @cost to the reply @t belongs to; false (and refused) over the bound. */
static bool charge(const redisReadTask *t, size_t cost)
{
	struct store_reply_budget *b = t->privdata;
	if (!b)
		return false; /* a reader without a budget reads nothing */
	if (!t->parent)
		b->used = 0; /* the root object: a new reply starts */
	if (cost > STORE_REPLY_MAX_BYTES - b->used) {
		b->refused = true;
		snprintf(b->why, sizeof(b->why), "reply of more than %u bytes", (unsigned)STORE_REPLY_MAX_BYTES);
		return false;
	}
	b->used += cost;
	return true;
}

static void *bound_string(const redisReadTask *t, char *str, size_t len)
{
	/* no overflow of the sum: a string over the bound is refused whatever came before */
	size_t cost = len > STORE_REPLY_MAX_BYTES ? (size_t)STORE_REPLY_MAX_BYTES + 1 : sizeof(redisReply) + len;
	return charge(t, cost) ? base.createString(t, str, len) : NULL;
}

static void *bound_array(const redisReadTask *t, int elements)
{
	struct store_reply_budget *b = t->privdata;
	if (elements > STORE_REPLY_MAX_ELEMENTS) {
		if (b) {
			b->refused = true;
			snprintf(b->why, sizeof(b->why), "aggregate of %d elements > %u", elements,
				 (unsigned)STORE_REPLY_MAX_ELEMENTS);
		}
		return NULL;
	}
	if (!charge(t, sizeof(redisReply) + sizeof(redisReply *) * (size_t)(elements > 0 ? elements : 0)))
		return NULL;
	return base.createArray(t, elements);
}

static void *bound_integer(const redisReadTask *t, long long value)
{
	return charge(t, sizeof(redisReply)) ? base.createInteger(t, value) : NULL;
}

static void *bound_nil(const redisReadTask *t)
{
	return charge(t, sizeof(redisReply)) ? base.createNil(t) : NULL;
}

/* save_base - hiredis's function table, from the first reader created (it is
 * static inside hiredis: no other way to reach it). */
static void save_base(void)
{
	redisReader *r = redisReaderCreate();
	if (!r)
		abort(); /* startup, no memory at all */
	base = *r->fn;
	redisReaderFree(r);
	bounded = (redisReplyObjectFunctions){ bound_string, bound_array, bound_integer, bound_nil, base.freeObject };
}

void store_reply_bound(redisReader *r, struct store_reply_budget *b)
{
	pthread_once(&base_once, save_base);
	memset(b, 0, sizeof(*b));
	r->fn = &bounded;
	r->privdata = b;
}

bool store_reply_buffer_over(redisReader *r)
{
	size_t waiting = r->len - r->pos;
	if (waiting <= STORE_REPLY_MAX_BYTES)
		return false;
	struct store_reply_budget *b = r->privdata;
	if (b) {
		b->refused = true;
		snprintf(b->why, sizeof(b->why), "%zu bytes buffered for one reply > %u", waiting,
			 (unsigned)STORE_REPLY_MAX_BYTES);
	}
	return true;
}

void store_reply_register_metrics(void)
{
	if (m_refused == METRICS_MAX_SERIES)
		m_refused = metrics_counter("referee_store_redis_replies_refused_total",
					    "Redis replies refused for going over the reply bounds (elements, "
					    "bytes); the connection was dropped",
					    NULL, NULL, 0);
}

void store_reply_refused(struct store_reply_budget *b, const char *host, unsigned port, const char *role)
{
	char key[300];
	uint64_t suppressed = 0;
	int n = snprintf(key, sizeof(key), "%s:%u", host ? host : "-", port);
	metrics_inc(m_refused);
	if (log_limit_pass_key(&lim_refused, key, n > 0 ? (size_t)n : 0, &suppressed))
		log_error("store", "Redis reply over the bounds (%s) redis=%s role=%s; connection dropped suppressed=%llu",
			  b->why, key, role, (unsigned long long)suppressed);
	b->refused = false;
	b->used = 0;
}

/* ================================================================ blocking calls */

/* sync_fail - why the call failed; the context is unusable from here on. */
static void sync_fail(redisContext *c, struct store_reply_budget *b, char *why, size_t whylen)
{
	if (b->refused) {
		snprintf(why, whylen, "%s:%u: Redis reply over the bounds (%s)", c->tcp.host ? c->tcp.host : "-",
			 (unsigned)c->tcp.port, b->why);
		store_reply_refused(b, c->tcp.host, (unsigned)c->tcp.port, "blocking");
		c->err = REDIS_ERR_OTHER;
		snprintf(c->errstr, sizeof(c->errstr), "reply over the bounds");
	} else {
		if (!c->err) {
			c->err = REDIS_ERR_OTHER;
			snprintf(c->errstr, sizeof(c->errstr), "%s", "Redis reply not read");
		}
		snprintf(why, whylen, "%s:%u: %s", c->tcp.host ? c->tcp.host : "-", (unsigned)c->tcp.port, c->errstr);
	}
}

/* sync_roundtrip - write what is queued on @c, then read one reply under the bounds. */
static redisReply *sync_roundtrip(redisContext *c, char *why, size_t whylen)
{
	struct store_reply_budget b;
	void *reply = NULL;
	int done = 0;
	store_reply_bound(c->reader, &b);
	while (!c->err && !done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			break;
	while (!c->err && !reply) {
		if (redisGetReplyFromReader(c, &reply) != REDIS_OK || reply)
			break;
		if (store_reply_buffer_over(c->reader))
			break;
		redisBufferRead(c);
	}
	if (!reply)
		sync_fail(c, &b, why, whylen);
	c->reader->privdata = NULL; /* b dies with this call */
	return reply;
}

redisReply *store_redis_sync_cmd(redisContext *c, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = c->err ? REDIS_ERR : redisvAppendCommand(c, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		struct store_reply_budget b = { 0 };
		sync_fail(c, &b, why, whylen);
		return NULL;
	}
	return sync_roundtrip(c, why, whylen);
}

redisReply *store_redis_sync_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen, char *why,
				  size_t whylen)
{
	if (c->err || redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) {
		struct store_reply_budget b = { 0 };
		sync_fail(c, &b, why, whylen);
		return NULL;
	}
	return sync_roundtrip(c, why, whylen);
}
