/* cfg_redis_url.c - the one parser of store.redis URLs (SPEC §6, §12), used by
 * the config check (cfg_keys.c), the store and referee-admin, so what --check
 * accepts is exactly what the store connects to:
 *   redis://HOST[:PORT][/DB]
 *   redis-sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
 *   redis-cluster://HOST[:PORT][,HOST[:PORT]...]
 * HOST is a name, an IPv4 literal or [IPv6]. PORT defaults to 6379 (26379 for
 * a sentinel); DB is 0..255 (Cluster has only database 0, so no DB there). */
#include <stdio.h>
#include <string.h>

#include "cfg.h"

static bool url_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* url_number - [p, end) is 1..5 decimal digits with a value in lo..hi. */
static bool url_number(const char *p, const char *end, unsigned lo, unsigned hi, unsigned *out)
{
	if (end <= p || end - p > 5)
		return false;
	unsigned v = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*out = v;
	return v >= lo && v <= hi;
}

/* url_host - one HOST[:PORT] in [p, end) into @h. NULL or why not. */
static const char *url_host(const char *p, const char *end, unsigned def_port, struct cfg_redis_host *h)
{
	const char *host = p, *host_end;
	if (p < end && *p == '[') {
		host = p + 1;
		host_end = memchr(host, ']', (size_t)(end - host));
		if (!host_end || host_end == host)
			return "has a bad [IPv6] address";
		for (const char *q = host; q < host_end; q++)
			if (!url_alnum(*q) && *q != ':' && *q != '.')
				return "has a bad [IPv6] address";
		p = host_end + 1;
	} else {
		while (p < end && (url_alnum(*p) || *p == '.' || *p == '-' || *p == '_'))
			p++;
		host_end = p;
		if (host_end == host)
			return "has an empty or bad host name";
	}
	if ((size_t)(host_end - host) >= sizeof(h->host))
		return "has a host name that is too long";
	memcpy(h->host, host, (size_t)(host_end - host));
	h->host[host_end - host] = '\0';
	h->port = def_port;
	if (p == end)
		return NULL;
	unsigned port;
	if (*p != ':' || !url_number(p + 1, end, 1, 65535, &port))
		return "has a bad port (1..65535)";
	h->port = port;
	return NULL;
}

const char *cfg_redis_url_parse(const char *url, struct cfg_redis_url *out)
{
	static const struct {
		const char *scheme;
		enum cfg_redis_kind kind;
		unsigned port;
	} schemes[] = {
		{ "redis://", CFG_REDIS_SINGLE, 6379 },
		{ "redis-sentinel://", CFG_REDIS_SENTINEL, 26379 },
		{ "redis-cluster://", CFG_REDIS_CLUSTER, 6379 },
	};
	memset(out, 0, sizeof(*out));
	const char *p = NULL;
	unsigned def_port = 0;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(url, schemes[i].scheme, n) == 0) {
			p = url + n;
			out->kind = schemes[i].kind;
			def_port = schemes[i].port;
		}
	}
	if (!p)
		return "is not redis://, redis-sentinel:// or redis-cluster://";
	/* the host list ends at the first '/' that is not inside [IPv6] */
	const char *hosts_end = p;
	for (bool in_v6 = false; *hosts_end && (in_v6 || *hosts_end != '/'); hosts_end++)
		in_v6 = *hosts_end == '[' ? true : *hosts_end == ']' ? false : in_v6;
	for (const char *h = p; h < hosts_end || h == p;) {
		const char *comma = memchr(h, ',', (size_t)(hosts_end - h));
		const char *h_end = comma ? comma : hosts_end;
		if (out->n_hosts == CFG_REDIS_MAX_HOSTS)
			return "lists too many hosts (at most 8)";
		const char *why = url_host(h, h_end, def_port, &out->hosts[out->n_hosts]);
		if (why)
			return why;
		out->n_hosts++;
		if (!comma)
			break;
		h = comma + 1;
		if (h == hosts_end)
			return "has an empty host after ','";
	}
	if (out->kind == CFG_REDIS_SINGLE && out->n_hosts > 1)
		return "lists several hosts: use redis-sentinel:// or redis-cluster://";
	const char *rest = *hosts_end == '/' ? hosts_end + 1 : NULL;
	if (out->kind == CFG_REDIS_SENTINEL) {
		if (!rest || !*rest || *rest == '/')
			return "needs /MASTER_NAME after the sentinels";
		const char *name_end = strchr(rest, '/');
		size_t nlen = name_end ? (size_t)(name_end - rest) : strlen(rest);
		if (nlen >= sizeof(out->master))
			return "has a master name that is too long";
		for (size_t i = 0; i < nlen; i++)
			if (!url_alnum(rest[i]) && rest[i] != '-' && rest[i] != '_' && rest[i] != '.')
				return "has a bad master name (letters, digits, '-', '_', '.')";
		memcpy(out->master, rest, nlen);
		out->master[nlen] = '\0';
		rest = name_end ? name_end + 1 : NULL;
	}
	if (rest && out->kind == CFG_REDIS_CLUSTER)
		return "has a path: Redis Cluster has only database 0";
	if (rest) {
		unsigned db;
		if (!url_number(rest, rest + strlen(rest), 0, 255, &db))
			return "has a bad database number (0..255)";
		out->db = db;
	}
	return NULL;
}
