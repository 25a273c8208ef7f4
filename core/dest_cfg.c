/* dest_cfg.c - the destinations of routes.local and routes.outbound (SPEC §10):
 * one destination or a list, each a URL string or {uri: URL, weight: N}.
 * URL forms: udp://IP:port (and tcp://, tls://, parsed by cfg_url_explain),
 * sip:HOST[:PORT][;transport=udp|tcp|tls]
 * [;maddr=IP] and sips:HOST[:PORT]. maddr gives the address to contact
 * (RFC 3261 §19.1.1) while HOST stays the name TLS verifies. A HOST that is a
 * name without maddr is resolved per RFC 3263 (core/dns_resolver.c). TCP and TLS destinations are parsed and kept
 * (cfg_dest.transport); the loader refuses them until stream next hops exist
 * (issue 10). */
#include "cfg.h"
#include "cfg_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dest.h"
#include "slice.h"
#include "sockaddr.h"

#define DEST_WEIGHT_MAX 1000

static bool host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-';
}

/* port_after_colon - at ':' (*@p), a port 1..65535: *@p moves past it. false when malformed. */
static bool port_after_colon(const char **p, uint16_t *out)
{
	unsigned port = 0;
	const char *q = ++*p;
	while (**p >= '0' && **p <= '9' && *p - q < 6)
		port = port * 10 + (unsigned)(*(*p)++ - '0');
	if (*p == q || port == 0 || port > 65535)
		return false;
	*out = (uint16_t)port;
	return true;
}

/* one ;name=value parameter of a sip: destination */
static const char *param_apply(const char *name, size_t nl, const char *val, size_t vl,
			       bool secure, struct cfg_dest *d, char *maddr, size_t maddr_cap)
{
	if (nl == 9 && strncasecmp(name, "transport", 9) == 0) {
		if (vl == 3 && strncasecmp(val, "udp", 3) == 0)
			d->transport = CFG_TRANSPORT_UDP;
		else if (vl == 3 && strncasecmp(val, "tcp", 3) == 0)
			d->transport = secure ? CFG_TRANSPORT_TLS : CFG_TRANSPORT_TCP;
		else if (vl == 3 && strncasecmp(val, "tls", 3) == 0)
			d->transport = CFG_TRANSPORT_TLS;
		else
			return "has an unknown transport (udp, tcp or tls)";
		if (secure && d->transport == CFG_TRANSPORT_UDP)
			return "is a sips: URI with transport=udp (sips needs TLS)";
		return NULL;
	}
	if (nl == 5 && strncasecmp(name, "maddr", 5) == 0) {
		if (vl == 0 || vl >= maddr_cap)
			return "has an empty or too long maddr";
		memcpy(maddr, val, vl);
		maddr[vl] = '\0';
		return NULL;
	}
	if (nl == 2 && strncasecmp(name, "lr", 2) == 0 && vl == 0)
		return NULL; /* a loose-routing marker copied from a Route: harmless */
	return "has an unknown parameter (transport=, maddr= and lr are understood)";
}

/* "IP" + port into @a ("[v6]:port" text), via cfg_addr_explain */
static const char *addr_from_ip(const char *ip, uint16_t port, struct cfg_addr *a)
{
	char text[80];
	struct in6_addr probe;
	bool v6 = inet_pton(AF_INET6, ip, &probe) == 1;
	snprintf(text, sizeof(text), v6 ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
	return cfg_addr_explain(text, false, a);
}

static const char *sip_dest_parse(const char *s, struct cfg_dest *d)
{
	bool secure = strncasecmp(s, "sips:", 5) == 0;
	const char *p = s + (secure ? 5 : 4);
	d->transport = secure ? CFG_TRANSPORT_TLS : CFG_TRANSPORT_UDP;
	if (strchr(p, '@'))
		return "names a user: a destination is sip:HOST[:PORT], no user part";
	const char *host = p, *host_end;
	bool bracketed = *p == '[';
	if (bracketed) {
		host_end = strchr(p, ']');
		if (!host_end)
			return "has a bad bracketed IPv6 address";
		host++;
		p = host_end + 1;
	} else {
		while (host_char(*p))
			p++;
		host_end = p;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0 || hl >= sizeof(d->host))
		return "has no valid host";
	memcpy(d->host, host, hl);
	d->host[hl] = '\0';
	if (*p == ':') {
		if (!port_after_colon(&p, &d->port))
			return "port must be a number 1..65535";
		d->has_port = true;
	}
	char maddr[64] = "";
	while (*p == ';') {
		const char *name = ++p;
		while (*p && *p != '=' && *p != ';')
			p++;
		size_t nl = (size_t)(p - name);
		const char *val = p;
		if (*p == '=') {
			val = ++p;
			while (*p && *p != ';')
				p++;
		}
		const char *why = param_apply(name, nl, val, (size_t)(p - val), secure, d, maddr,
					      sizeof(maddr));
		if (why)
			return why;
	}
	if (*p)
		return "has unexpected characters (write sip:HOST[:PORT][;transport=...][;maddr=IP])";
	if (!d->has_port)
		d->port = d->transport == CFG_TRANSPORT_TLS ? 5061 : 5060;
	struct in6_addr a6;
	struct in_addr a4;
	bool host_is_ip = inet_pton(AF_INET, d->host, &a4) == 1 ||
			  inet_pton(AF_INET6, d->host, &a6) == 1;
	if (bracketed && !host_is_ip)
		return "has a bad IPv6 address";
	if (!bracketed && strchr(d->host, ':'))
		return "IPv6 addresses need brackets: sip:[::1]:5060";
	if (!host_is_ip) {
		/* a DNS name: labels of letters, digits and '-', none empty */
		const char *h = d->host;
		for (const char *q = h; *q; q++)
			if ((*q == '.' && (q == h || q[1] == '.' || q[1] == '\0')) ||
			    (*q == '-' && (q == h || q[-1] == '.')))
				return "has a bad host name (empty label or one starting with '-')";
	}
	const char *ip = maddr[0] ? maddr : host_is_ip ? d->host : NULL;
	if (!ip)
		return NULL; /* a name: resolved per RFC 3263 (core/dns_resolver.c) */
	if (addr_from_ip(ip, d->port, &d->addr))
		return maddr[0] ? "has a maddr that is not an IP address" : "has a bad IP address";
	d->has_addr = true;
	return NULL;
}

const char *cfg_dest_explain(const char *s, struct cfg_dest *out)
{
	memset(out, 0, sizeof(*out));
	out->weight = 1;
	size_t len = strlen(s);
	if (len == 0)
		return "is empty";
	if (len >= sizeof(out->uri))
		return "is too long";
	memcpy(out->uri, s, len + 1);
	const char *why;
	if (strstr(s, "://")) {
		/* udp://, tcp://, tls:// IP:port: the listen URL parser (stream, SPEC §9) */
		why = cfg_url_explain(s, &out->addr);
		if (!why) {
			out->has_addr = out->has_port = true;
			out->transport = out->addr.transport;
			out->port = sockaddr_port(&out->addr.sa);
			const char *t = out->addr.text;
			const char *end = t[0] == '[' ? strchr(t, ']') : strrchr(t, ':');
			size_t hl = (size_t)(end - t) - (t[0] == '[');
			memcpy(out->host, t + (t[0] == '['), hl);
			out->host[hl] = '\0';
		}
	} else if (strncasecmp(s, "sip:", 4) == 0 || strncasecmp(s, "sips:", 5) == 0) {
		why = sip_dest_parse(s, out);
	} else {
		why = "must be udp://IP:port (tcp://, tls://), sip:HOST[:PORT][;transport=udp|tcp|tls] or sips:HOST[:PORT]";
	}
	if (why) {
		memset(out, 0, sizeof(*out));
		return why;
	}
	out->seed = dest_seed(out->uri, len);
	return NULL;
}

/* the set's identity: health state survives a reload that keeps the same set */
static void destset_refresh(struct cfg_destset *set)
{
	uint64_t id = 0xcbf29ce484222325ull;
	set->same_weights = true;
	for (unsigned i = 0; i < set->n; i++) {
		id = (id ^ set->d[i].seed) * 0x100000001b3ull;
		id = (id ^ set->d[i].weight) * 0x100000001b3ull;
		set->same_weights &= set->d[i].weight == set->d[0].weight;
	}
	set->id = set->n ? id | 1 : 0;
}

int cfg_destset_add(struct cfg_destset *set, const char *s, unsigned weight)
{
	if (set->n >= CFG_MAX_DESTS)
		return -ENOSPC;
	if (weight < 1 || weight > DEST_WEIGHT_MAX || cfg_dest_explain(s, &set->d[set->n]))
		return -EINVAL;
	set->d[set->n++].weight = weight;
	destset_refresh(set);
	return 0;
}

/* ------------------------------------------------------------ YAML walking */

static unsigned line_of(const yaml_node_t *n) { return (unsigned)n->start_mark.line + 1; }

static int scalar_text(struct cfg_ctx *x, const yaml_node_t *n, const char *name, const char *want,
		       const char **out)
{
	*out = ""; /* callers read it only on success; this keeps -O3's flow analysis quiet */
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
		return cfg_fail(x, line_of(n), "%s: expected %s", name, want);
	const char *v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length)
		return cfg_fail(x, line_of(n), "%s: contains a NUL byte", name);
	*out = v;
	return 0;
}

static int weight_parse(struct cfg_ctx *x, const yaml_node_t *n, const char *name, unsigned *out)
{
	const char *v;
	int rc = scalar_text(x, n, name, "a whole number", &v);
	if (rc < 0)
		return rc;
	unsigned w = 0;
	size_t i = 0;
	for (; v[i] >= '0' && v[i] <= '9' && i < 5; i++)
		w = w * 10 + (unsigned)(v[i] - '0');
	if (v[i] || i == 0 || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || w < 1 ||
	    w > DEST_WEIGHT_MAX)
		return cfg_fail(x, line_of(n), "%s: '%.20s' is not a weight 1..%u", name, v,
				DEST_WEIGHT_MAX);
	*out = w;
	return 0;
}

/* one destination: a URL scalar or {uri: URL, weight: N} */
static int dest_parse(struct cfg_ctx *x, const yaml_node_t *n, const char *name,
		      struct cfg_destset *set)
{
	const yaml_node_t *uri = n;
	unsigned weight = 1;
	if (n->type == YAML_MAPPING_NODE) {
		uri = NULL;
		for (const yaml_node_pair_t *pr = n->data.mapping.pairs.start;
		     pr < n->data.mapping.pairs.top; pr++) {
			const yaml_node_t *k = yaml_document_get_node(&x->doc, pr->key);
			const yaml_node_t *v = yaml_document_get_node(&x->doc, pr->value);
			const char *kn = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value
								    : "";
			char full[96];
			snprintf(full, sizeof(full), "%s.%s", name, kn);
			if (strcmp(kn, "uri") == 0 && !uri) {
				uri = v;
			} else if (strcmp(kn, "weight") == 0) {
				int rc = weight_parse(x, v, full, &weight);
				if (rc < 0)
					return rc;
			} else {
				return cfg_fail(x, line_of(k),
						strcmp(kn, "uri") == 0
							? "duplicate key '%s'"
							: "unknown key '%s' (known here: uri, weight)",
						full);
			}
		}
		if (!uri)
			return cfg_fail(x, line_of(n), "%s: missing required key 'uri'", name);
	}
	const char *v;
	int rc = scalar_text(x, uri, name, "a destination URL or {uri: URL, weight: N}", &v);
	if (rc < 0)
		return rc;
	if (set->n >= CFG_MAX_DESTS)
		return cfg_fail(x, line_of(n), "%s: too many destinations (at most %u)", name,
				CFG_MAX_DESTS);
	const char *why = cfg_dest_explain(v, &set->d[set->n]);
	if (why)
		return cfg_fail(x, line_of(uri), "%s: bad destination '%.80s': %s", name, v, why);
	for (unsigned j = 0; j < set->n; j++)
		if (strcasecmp(set->d[j].uri, v) == 0)
			return cfg_fail(x, line_of(uri), "%s: '%.80s' is listed twice", name, v);
	set->d[set->n++].weight = weight;
	return 0;
}

int cfg_destset_parse(struct cfg_ctx *x, const yaml_node_t *n, const char *name,
		      struct cfg_destset *set)
{
	memset(set, 0, sizeof(*set));
	int rc = 0;
	if (n->type == YAML_SEQUENCE_NODE) {
		const yaml_node_item_t *it = n->data.sequence.items.start;
		if (it == n->data.sequence.items.top)
			return cfg_fail(x, line_of(n), "%s: must not be empty", name);
		for (; it < n->data.sequence.items.top && rc == 0; it++)
			rc = dest_parse(x, yaml_document_get_node(&x->doc, *it), name, set);
	} else {
		rc = dest_parse(x, n, name, set);
	}
	if (rc == 0)
		destset_refresh(set);
	return rc;
}

/* ------------------------------------------------------ listen advertise */

/* "HOST[:PORT]": a name, IPv4 or [IPv6], port 1..65535 */
static const char *advertise_explain(const char *v, struct cfg_advertise *a)
{
	memset(a, 0, sizeof(*a));
	size_t len = strlen(v);
	if (len == 0 || len >= sizeof(a->text))
		return "is empty or too long";
	const char *p = v, *host = v, *host_end;
	if (*p == '[') {
		host_end = strchr(p, ']');
		host = p + 1;
		if (!host_end)
			return "has a bad bracketed IPv6 address";
		p = host_end + 1;
		char ip[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;
		size_t hl = (size_t)(host_end - host);
		if (hl == 0 || hl >= sizeof(ip))
			return "has a bad IPv6 address";
		memcpy(ip, host, hl);
		ip[hl] = '\0';
		if (inet_pton(AF_INET6, ip, &a6) != 1)
			return "has a bad IPv6 address";
	} else {
		const char *colon = strchr(v, ':');
		if (colon && strchr(colon + 1, ':'))
			return "IPv6 addresses need brackets: [2001:db8::1]:5060";
		while (host_char(*p))
			p++;
		host_end = p;
		if (host_end == host || *host == '.' || *host == '-')
			return "is not HOST[:PORT] (a name, an IPv4 address or [IPv6])";
	}
	if (*p == ':' && !port_after_colon(&p, &a->port))
		return "port must be a number 1..65535";
	if (*p)
		return "is not HOST[:PORT] (a name, an IPv4 address or [IPv6])";
	size_t hl = (size_t)(host_end - host);
	for (size_t i = 0; i < hl; i++)
		a->host[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] - 'A' + 'a' : host[i]);
	a->host[hl] = '\0';
	memcpy(a->text, v, len + 1);
	a->set = true;
	return NULL;
}

int cfg_listen_mapping(struct cfg_ctx *x, const yaml_node_t *n, const char *name, unsigned i,
		       const yaml_node_t **url)
{
	const yaml_node_t *u = NULL, *adv = NULL;
	for (const yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *k = yaml_document_get_node(&x->doc, pr->key);
		const yaml_node_t *v = yaml_document_get_node(&x->doc, pr->value);
		const char *kn = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		const yaml_node_t **slot = strcmp(kn, "url") == 0 ? &u : strcmp(kn, "advertise") == 0 ? &adv : NULL;
		if (!slot)
			return cfg_fail(x, line_of(k), "unknown key '%s.%.40s' (known here: url, advertise)",
					name, kn);
		if (*slot)
			return cfg_fail(x, line_of(k), "duplicate key '%s.%s'", name, kn);
		*slot = v;
	}
	if (!u)
		return cfg_fail(x, line_of(n), "%s: missing required key 'url'", name);
	if (adv) {
		const char *v;
		int rc = scalar_text(x, adv, name, "HOST[:PORT] after advertise", &v);
		if (rc < 0)
			return rc;
		const char *why = advertise_explain(v, &x->c->advertise[i]);
		if (why)
			return cfg_fail(x, line_of(adv), "%s: bad advertise '%.80s': %s", name, v, why);
	}
	*url = u;
	return 0;
}
