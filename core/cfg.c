/* cfg.c - what the configuration loader (cfg_load.c) and its key tables
 * (cfg_keys.c, dest_cfg.c) stand on: the "file:line: message" error writer,
 * the list of keys seen with their lines, the address, URL and CIDR readers,
 * and the predicates on a loaded cfg ("our domain?", "trusted source?").
 * Nothing here walks YAML or knows a key table, so every loader file calls
 * down into this one and never the other way. */
#include "cfg.h"
#include "cfg_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- errors, seen keys */

int cfg_fail(struct cfg_ctx *x, unsigned line, const char *fmt, ...)
{
	if (!x->err || x->errlen == 0)
		return -EINVAL;
	int n = snprintf(x->err, x->errlen, "%s:%u: ", x->file, line ? line : 1);
	if (n >= 0 && (size_t)n < x->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

unsigned cfg_seen_line(const struct cfg_ctx *x, const char *name)
{
	for (unsigned i = 0; i < x->n_seen; i++)
		if (strcmp(x->seen[i].name, name) == 0)
			return x->seen[i].line;
	return 0;
}

void cfg_seen_add(struct cfg_ctx *x, const char *name, unsigned line)
{
	/* Only section keys are remembered (for cross-key messages), not rules. */
	if (x->n_seen >= CFG_SEEN_MAX || strchr(name, '[') ||
	    strlen(name) >= sizeof(x->seen[0].name))
		return;
	memcpy(x->seen[x->n_seen].name, name, strlen(name) + 1);
	x->seen[x->n_seen++].line = line;
}

/* ------------------------------------------------------ addresses, CIDRs */

bool cfg_digits_parse(const char *s, unsigned max, unsigned *out)
{
	size_t len = strlen(s);
	if (len == 0 || len > 10)
		return false;
	unsigned long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

const char *cfg_transport_name(enum cfg_transport t)
{
	static const char *const names[CFG_TRANSPORT_COUNT] = { "udp", "tcp", "tls" };
	return (unsigned)t < CFG_TRANSPORT_COUNT ? names[t] : "udp";
}

bool cfg_has_transport(const struct cfg *c, enum cfg_transport t)
{
	for (unsigned i = 0; i < c->n_listen && i < CFG_MAX_LISTEN; i++)
		if (c->listen[i].transport == t)
			return true;
	return false;
}

const char *cfg_url_explain(const char *s, struct cfg_addr *out)
{
	for (unsigned t = 0; t < CFG_TRANSPORT_COUNT; t++) {
		const char *name = cfg_transport_name((enum cfg_transport)t);
		if (strncasecmp(s, name, 3) == 0 && strncmp(s + 3, "://", 3) == 0) {
			const char *why = cfg_addr_explain(s + 6, false, out);
			out->transport = (enum cfg_transport)t;
			return why;
		}
	}
	memset(out, 0, sizeof(*out));
	return "must start with udp://, tcp:// or tls://";
}

const char *cfg_addr_explain(const char *s, bool with_scheme, struct cfg_addr *out)
{
	if (with_scheme)
		return cfg_url_explain(s, out);
	memset(out, 0, sizeof(*out));
	const char *p = s;
	if (strstr(p, "://"))
		return "takes no scheme: write IP:port";
	size_t len = strlen(p);
	if (len == 0)
		return "has no host";
	if (len >= sizeof(out->text))
		return "is too long";
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_at;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		size_t hl = close ? (size_t)(close - p - 1) : 0;
		if (!close || hl == 0 || hl >= sizeof(host))
			return "has a bad bracketed IPv6 address";
		memcpy(host, p + 1, hl);
		host[hl] = '\0';
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return "has a bad IPv6 address";
		if (close[1] != ':')
			return "needs a port (host:port)";
		s6->sin6_family = AF_INET6;
		out->salen = sizeof(*s6);
		port_at = close + 2;
	} else {
		const char *colon = strrchr(p, ':');
		if (!colon)
			return "needs a port (host:port)";
		size_t hl = (size_t)(colon - p);
		if (hl == 0 || hl >= sizeof(host))
			return "has no valid host";
		memcpy(host, p, hl);
		host[hl] = '\0';
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return strchr(host, ':')
				   ? "IPv6 addresses need brackets: [::1]:5060"
				   : "host must be an IP literal (IPv4 or [IPv6]), not a name";
		s4->sin_family = AF_INET;
		out->salen = sizeof(*s4);
		port_at = colon + 1;
	}
	unsigned port;
	if (!cfg_digits_parse(port_at, 65535, &port) || port == 0) {
		memset(out, 0, sizeof(*out));
		return "port must be a number 1..65535";
	}
	if (out->sa.ss_family == AF_INET)
		((struct sockaddr_in *)&out->sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((uint16_t)port);
	memcpy(out->text, p, len + 1);
	return NULL;
}

int cfg_addr_parse(const char *s, bool with_scheme, struct cfg_addr *out)
{
	struct cfg_addr tmp;
	return cfg_addr_explain(s, with_scheme, out ? out : &tmp) ? -EINVAL : 0;
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

const char *cfg_cidr_explain(const char *s, struct cfg_cidr *out)
{
	memset(out, 0, sizeof(*out));
	const char *slash = strchr(s, '/');
	size_t al = slash ? (size_t)(slash - s) : strlen(s);
	char addr[INET6_ADDRSTRLEN + 1];
	if (al == 0 || al >= sizeof(addr))
		return "is not an IPv4 or IPv6 address";
	memcpy(addr, s, al);
	addr[al] = '\0';
	unsigned max;
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return "is not an IPv4 or IPv6 address";
	}
	unsigned prefix = max;
	if (slash && !cfg_digits_parse(slash + 1, max, &prefix)) {
		memset(out, 0, sizeof(*out));
		return max == 32 ? "prefix must be 0..32" : "prefix must be 0..128";
	}
	for (unsigned bit = prefix; bit < max; bit++) {
		if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
			memset(out, 0, sizeof(*out));
			return "has address bits set past the prefix";
		}
	}
	out->prefix = (uint8_t)prefix;
	/* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n: store it as such. */
	if (out->family == AF_INET6 && prefix >= 96 && is_v4_mapped(out->addr)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		out->prefix = (uint8_t)(prefix - 96);
	}
	return NULL;
}

int cfg_cidr_parse(const char *s, struct cfg_cidr *out)
{
	struct cfg_cidr tmp;
	return cfg_cidr_explain(s, out ? out : &tmp) ? -EINVAL : 0;
}

bool cfg_cidr_match(const struct cfg_cidr *cidr, const struct sockaddr *sa)
{
	const uint8_t *a;
	int family;
	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		family = AF_INET6;
		if (is_v4_mapped(a)) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return false;
	}
	if (family != cidr->family)
		return false;
	unsigned full = cidr->prefix / 8, rest = cidr->prefix % 8;
	if (memcmp(a, cidr->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (a[full] & mask) == (cidr->addr[full] & mask);
}

/* ------------------------------------------------------ predicates, free */

bool cfg_is_trusted(const struct cfg *c, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < c->n_trusted; i++)
		if (cfg_cidr_match(&c->trusted[i], sa))
			return true;
	return false;
}

bool cfg_is_our_domain(const struct cfg *c, const char *host, size_t len)
{
	/* host is packet bytes: compared by length, never read past len. */
	for (unsigned i = 0; i < c->n_domains; i++) {
		const char *d = c->domains[i];
		size_t j = 0;
		while (j < len && d[j] != '\0' && cfg_ascii_lower(host[j]) == d[j])
			j++;
		if (j == len && d[j] == '\0')
			return true;
	}
	return false;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CFG_GEN_COUNT; i++)
		if (c->gen[i].data && c->gen[i].release)
			c->gen[i].release(c->gen[i].data);
	free(c->rules);
	free(c);
}
