/* store_sentinel.c - Redis Sentinel (SPEC §12): the pure parsers of the
 * replies we rely on (SENTINEL get-master-addr-by-name, ROLE, the
 * +switch-master message) and the blocking discovery the topology thread and
 * referee-admin run: the sentinels in order, a timeout each, then ROLE on the
 * master they name. Anything malformed from Redis is an error code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "store_redis_priv.h"

/* port_parse - 1..65535 from exactly @len decimal digits. */
static bool port_parse(const char *p, size_t len, unsigned *port)
{
	unsigned v = 0;
	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*port = v;
	return v >= 1 && v <= 65535;
}

bool store_redis_host_copy(const char *p, size_t len, struct cfg_redis_host *out)
{
	if (len == 0 || len >= sizeof(out->host))
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return false;
	memcpy(out->host, p, len);
	out->host[len] = '\0';
	return true;
}

int store_sentinel_parse_addr(const redisReply *r, struct cfg_redis_host *out)
{
	if (!r)
		return -EINVAL;
	if (r->type == REDIS_REPLY_NIL)
		return -ENOENT;
	if (r->type == REDIS_REPLY_ERROR)
		return -EIO;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element)
		return -EINVAL;
	const redisReply *ip = r->element[0], *port = r->element[1];
	if (!ip || !port || ip->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_STRING || !ip->str ||
	    !port->str)
		return -EINVAL;
	struct cfg_redis_host h;
	if (!store_redis_host_copy(ip->str, ip->len, &h) || !port_parse(port->str, port->len, &h.port))
		return -EINVAL;
	*out = h;
	return 0;
}

int store_pubsub_parse(const redisReply *r, const char **kind, struct slice *payload)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !r->element)
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		if (!r->element[i])
			return -EINVAL;
	const redisReply *k = r->element[0], *ch = r->element[1], *p = r->element[2];
	if (k->type != REDIS_REPLY_STRING || !k->str || ch->type != REDIS_REPLY_STRING)
		return -EINVAL;
	static const char *const kinds[] = { "message", "subscribe" };
	for (size_t i = 0; i < 2; i++) {
		if (k->len != strlen(kinds[i]) || memcmp(k->str, kinds[i], k->len) != 0)
			continue;
		/* a message carries a string, a subscription confirmation the channel count */
		if (i == 0 ? p->type != REDIS_REPLY_STRING || !p->str : p->type != REDIS_REPLY_INTEGER)
			return -EINVAL;
		*kind = kinds[i];
		*payload = i == 0 ? slice_make(p->str, p->len) : SLICE_NULL;
		return 0;
	}
	return -ENOENT;
}

int store_sentinel_parse_role(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !r->element || !r->element[0])
		return -EINVAL;
	const redisReply *role = r->element[0];
	if ((role->type != REDIS_REPLY_STRING && role->type != REDIS_REPLY_STATUS) || !role->str)
		return -EINVAL;
	return role->len == 6 && memcmp(role->str, "master", 6) == 0 ? 1 : 0;
}

/* next_word - the next blank-separated word of [*p, end); false at the end. */
static bool next_word(const char **p, const char *end, const char **w, size_t *len)
{
	while (*p < end && **p == ' ')
		(*p)++;
	if (*p == end)
		return false;
	*w = *p;
	while (*p < end && **p != ' ')
		(*p)++;
	*len = (size_t)(*p - *w);
	return true;
}

int store_sentinel_parse_switch(const char *msg, size_t len, const char *master, struct cfg_redis_host *out)
{
	const char *p = msg, *end = msg + len, *w[5];
	size_t wl[5];
	if (!msg)
		return -EINVAL;
	for (int i = 0; i < 5; i++)
		if (!next_word(&p, end, &w[i], &wl[i]))
			return -EINVAL;
	const char *extra;
	size_t extra_len;
	if (next_word(&p, end, &extra, &extra_len))
		return -EINVAL;
	struct cfg_redis_host h;
	if (!store_redis_host_copy(w[3], wl[3], &h) || !port_parse(w[4], wl[4], &h.port))
		return -EINVAL;
	if (wl[0] != strlen(master) || memcmp(w[0], master, wl[0]) != 0)
		return -ENOENT;
	*out = h;
	return 0;
}

/* ================================================================ blocking discovery */

redisContext *store_redis_sync_connect(const struct cfg_redis_host *h, unsigned timeout_ms, char *why, size_t whylen)
{
	struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
	redisContext *rc = redisConnectWithTimeout(h->host, (int)h->port, tv);
	if (!rc || rc->err) {
		snprintf(why, whylen, "cannot connect to %s:%u: %s", h->host, h->port, rc ? rc->errstr : "out of memory");
		redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	return rc;
}

/* master_check - ROLE on @h says master. 0, or -EAGAIN with @why. */
static int master_check(const struct cfg_redis_host *h, unsigned timeout_ms, char *why, size_t whylen)
{
	redisContext *rc = store_redis_sync_connect(h, timeout_ms, why, whylen);
	if (!rc)
		return -EAGAIN;
	char err[192];
	redisReply *r = store_redis_sync_cmd(rc, err, sizeof(err), "ROLE");
	int role = r ? store_sentinel_parse_role(r) : -EINVAL;
	if (role != 1)
		snprintf(why, whylen, "%s:%u is not a master (%s)", h->host, h->port,
			 !r ? err : role == 0 ? "ROLE says so" : "bad ROLE reply");
	freeReplyObject(r);
	redisFree(rc);
	return role == 1 ? 0 : -EAGAIN;
}

int store_sentinel_discover(const struct cfg_redis_url *u, unsigned timeout_ms, struct cfg_redis_host *out,
			    char *why, size_t whylen)
{
	snprintf(why, whylen, "no sentinel configured");
	for (unsigned i = 0; i < u->n_hosts; i++) {
		const struct cfg_redis_host *s = &u->hosts[i];
		redisContext *rc = store_redis_sync_connect(s, timeout_ms, why, whylen);
		if (!rc)
			continue;
		char err[192];
		redisReply *r = store_redis_sync_cmd(rc, err, sizeof(err), "SENTINEL get-master-addr-by-name %s", u->master);
		struct cfg_redis_host m;
		int got = r ? store_sentinel_parse_addr(r, &m) : -EIO;
		if (got < 0)
			snprintf(why, whylen, "sentinel %s:%u: %s", s->host, s->port,
				 !r ? err
				 : got == -ENOENT ? "unknown master name"
				 : got == -EIO ? (r->str ? r->str : "error")
					       : "malformed reply");
		freeReplyObject(r);
		redisFree(rc);
		if (got < 0 || master_check(&m, timeout_ms, why, whylen) < 0)
			continue;
		*out = m;
		return 0;
	}
	return -EAGAIN;
}
