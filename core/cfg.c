/* cfg.c - loads the YAML configuration (SPEC §7) into struct cfg, walking the
 * key tables of cfg_keys.c (no per-key code here), and parses addresses and
 * CIDRs for the "our domain?" / "trusted source?" predicates.
 * Does not interpret rules, users or the store (auth/ and store/ do).
 * Every error is "file:line: message" with the 1-based line of the offending
 * key or value; a failed load leaves nothing allocated. */
#include "cfg.h"
#include "cfg_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- errors */

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


/* addr_is_wildcard - 0.0.0.0 or :: (INADDR_ANY / in6addr_any). */
static bool addr_is_wildcard(const struct cfg_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->sa.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
	return false;
}

static unsigned node_line(const yaml_node_t *n) { return (unsigned)n->start_mark.line + 1; }

unsigned cfg_seen_line(const struct cfg_ctx *x, const char *name)
{
	for (unsigned i = 0; i < x->n_seen; i++)
		if (strcmp(x->seen[i].name, name) == 0)
			return x->seen[i].line;
	return 0;
}

static void seen_add(struct cfg_ctx *x, const char *name, unsigned line)
{
	/* Only section keys are remembered (for cross-key messages), not rules. */
	if (x->n_seen >= CFG_SEEN_MAX || strchr(name, '[') ||
	    strlen(name) >= sizeof(x->seen[0].name))
		return;
	memcpy(x->seen[x->n_seen].name, name, strlen(name) + 1);
	x->seen[x->n_seen++].line = line;
}

/* ------------------------------------------------------ addresses, CIDRs */

/* digits_parse - whole string of 1..10 decimal digits, value <= max. */
static bool digits_parse(const char *s, unsigned max, unsigned *out)
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
	if (!digits_parse(port_at, 65535, &port) || port == 0) {
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
	if (slash && !digits_parse(slash + 1, max, &prefix)) {
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

bool cfg_is_trusted(const struct cfg *c, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < c->n_trusted; i++)
		if (cfg_cidr_match(&c->trusted[i], sa))
			return true;
	return false;
}

static char ascii_lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch; }

bool cfg_is_our_domain(const struct cfg *c, const char *host, size_t len)
{
	/* host is packet bytes: compared by length, never read past len. */
	for (unsigned i = 0; i < c->n_domains; i++) {
		const char *d = c->domains[i];
		size_t j = 0;
		while (j < len && d[j] != '\0' && ascii_lower(host[j]) == d[j])
			j++;
		if (j == len && d[j] == '\0')
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ the walker */

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "a single value";
	}
}

static bool scalar_is_null(const yaml_node_t *n)
{
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* scalar_get - the text of scalar @n, or an error naming @name and @want. */
static int scalar_get(struct cfg_ctx *x, const yaml_node_t *n, const char *name, const char *want,
		      const char **out)
{
	if (n->type != YAML_SCALAR_NODE)
		return cfg_fail(x, node_line(n), "%s: expected %s, got %s", name, want,
				node_kind(n));
	if (scalar_is_null(n))
		return cfg_fail(x, node_line(n), "%s: has no value (expected %s)", name, want);
	const char *v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length)
		return cfg_fail(x, node_line(n), "%s: contains a NUL byte", name);
	*out = v;
	return 0;
}

/* word_index - position of @v in the NULL-terminated @names (any case), or -1. */
static int word_index(const char *const *names, const char *v)
{
	for (int i = 0; names[i]; i++)
		if (strcasecmp(names[i], v) == 0)
			return i;
	return -1;
}

static void words_join(const char *const *names, char *buf, size_t size)
{
	buf[0] = '\0';
	for (int i = 0; names[i]; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, size - used, "%s%s", i ? "|" : "", names[i]);
	}
}

static int uint_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
		      const char *name, unsigned *out)
{
	const char *v = NULL;
	int rc = scalar_get(x, n, name, "a whole number", &v);
	if (rc < 0)
		return rc;
	unsigned val;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !digits_parse(v, UINT32_MAX, &val))
		return cfg_fail(x, node_line(n), "%s: '%.40s' is not a whole number in %u..%u",
				name, v, k->min, k->max);
	if (val < k->min || val > k->max)
		return cfg_fail(x, node_line(n), "%s: %u is out of range %u..%u", name, val, k->min,
				k->max);
	*out = val;
	return 0;
}

static int bool_parse(struct cfg_ctx *x, const yaml_node_t *n, const char *name, bool *out)
{
	static const char *const words[] = {"false", "true", "no", "yes", NULL};
	const char *v = NULL;
	int rc = scalar_get(x, n, name, "true or false", &v);
	if (rc < 0)
		return rc;
	int i = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? word_index(words, v) : -1;
	if (i < 0)
		return cfg_fail(x, node_line(n), "%s: '%.40s' is not a boolean (true/false/yes/no)",
				name, v);
	*out = (i % 2) == 1;
	return 0;
}

static int enum_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
		      const char *name, int *out)
{
	char choices[128];
	words_join(k->names, choices, sizeof(choices));
	const char *v = NULL;
	int rc = scalar_get(x, n, name, choices, &v);
	if (rc < 0)
		return rc;
	int i = word_index(k->names, v);
	if (i < 0)
		return cfg_fail(x, node_line(n), "%s: '%.40s' is not one of %s", name, v, choices);
	*out = i;
	return 0;
}

/* string_parse - copy, check and (PATH) resolve a string into dst[k->size]. */
static int string_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
			const char *name, char *dst)
{
	const char *v = NULL;
	int rc = scalar_get(x, n, name, k->kind == CFG_K_PATH ? "a path" : "a string", &v);
	if (rc < 0)
		return rc;
	if (v[0] == '\0')
		return cfg_fail(x, node_line(n), "%s: must not be an empty string", name);
	int len;
	if (k->kind == CFG_K_PATH && v[0] != '/' && x->dir[0])
		len = snprintf(dst, k->size, "%s%s%s", x->dir, strcmp(x->dir, "/") ? "/" : "", v);
	else
		len = snprintf(dst, k->size, "%s", v);
	if (len < 0 || (size_t)len >= k->size)
		return cfg_fail(x, node_line(n), "%s: '%.40s...' is too long (at most %zu bytes)",
				name, v, k->size - 1);
	if (k->flags & CFG_F_LOWER)
		for (char *p = dst; *p; p++)
			*p = ascii_lower(*p);
	const char *why = k->check ? k->check(dst) : NULL;
	if (why)
		return cfg_fail(x, node_line(n), "%s: '%.60s' %s", name, v, why);
	return 0;
}

static int addr_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
		      const char *name, struct cfg_addr *dst)
{
	bool scheme = k->flags & CFG_F_SCHEME;
	const char *v = NULL;
	int rc = scalar_get(x, n, name, scheme ? "udp://IP:PORT (or tcp://, tls://)" : "IP:PORT", &v);
	if (rc < 0)
		return rc;
	const char *why = cfg_addr_explain(v, scheme, dst);
	if (why)
		return cfg_fail(x, node_line(n), "%s: bad address '%.60s': %s", name, v, why);
	return 0;
}

/* item_parse - list item @i of a list key into its slot. */
static int item_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
		      const char *name, char *field, unsigned i)
{
	int rc = 0;
	switch (k->kind) {
	case CFG_K_STRLIST: {
		char *dst = field + (size_t)i * k->size;
		if ((rc = string_parse(x, k, n, name, dst)) < 0)
			return rc;
		for (unsigned j = 0; (k->flags & CFG_F_UNIQUE) && j < i; j++)
			if (strcasecmp(field + (size_t)j * k->size, dst) == 0)
				return cfg_fail(x, node_line(n), "%s: '%.60s' is listed twice",
						name, dst);
		return 0;
	}
	case CFG_K_ADDRLIST: {
		struct cfg_addr *arr = (struct cfg_addr *)field;
		if (n->type == YAML_MAPPING_NODE && (rc = cfg_listen_mapping(x, n, name, i, &n)) < 0)
			return rc;
		if ((rc = addr_parse(x, k, n, name, &arr[i])) < 0)
			return rc;
		/* Our listen address goes into Via and Record-Route, so it must be
		 * one a peer can send to: a wildcard bind cannot be advertised. */
		if (addr_is_wildcard(&arr[i]))
			return cfg_fail(x, node_line(n),
					"%s: '%s' is a wildcard address; give the address peers reach "
					"referee on (it is written into Via and Record-Route)",
					name, arr[i].text);
		/* udp:// and tcp:// on one address and port is the usual pair */
		for (unsigned j = 0; (k->flags & CFG_F_UNIQUE) && j < i; j++)
			if (strcmp(arr[j].text, arr[i].text) == 0 && arr[j].transport == arr[i].transport)
				return cfg_fail(x, node_line(n), "%s: '%s://%s' is listed twice", name,
						cfg_transport_name(arr[i].transport), arr[i].text);
		return 0;
	}
	case CFG_K_CIDRLIST: {
		const char *v;
		if ((rc = scalar_get(x, n, name, "a CIDR or IP address", &v)) < 0)
			return rc;
		const char *why = cfg_cidr_explain(v, (struct cfg_cidr *)field + i);
		if (why)
			return cfg_fail(x, node_line(n), "%s: bad CIDR '%.60s': %s", name, v, why);
		return 0;
	}
	case CFG_K_ENUMLIST: {
		int *arr = (int *)field, idx;
		if ((rc = enum_parse(x, k, n, name, &idx)) < 0)
			return rc;
		for (unsigned j = 0; j < i; j++)
			if (arr[j] == idx)
				return cfg_fail(x, node_line(n), "%s: '%s' is listed twice", name,
						k->names[idx]);
		arr[i] = idx;
		return 0;
	}
	default:
		return cfg_fail(x, node_line(n), "%s: internal error: not a list key", name);
	}
}

static int section_parse(struct cfg_ctx *x, const yaml_node_t *map, const struct cfg_section *sec,
			 void *base, const char *prefix);

static int list_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *n,
		      const char *name, void *base)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return cfg_fail(x, node_line(n), "%s: expected a list, got %s%s", name,
				node_kind(n),
				n->type == YAML_SCALAR_NODE ? " (write [value] for one item)" : "");
	const yaml_node_item_t *items = n->data.sequence.items.start;
	unsigned count = (unsigned)(n->data.sequence.items.top - items);
	if (count > k->max) {
		const yaml_node_t *extra = yaml_document_get_node(&x->doc, items[k->max]);
		return cfg_fail(x, node_line(extra), "%s: too many entries (at most %u)", name,
				k->max);
	}
	if (count < k->min)
		return cfg_fail(x, node_line(n), "%s: must not be empty", name);
	if (k->kind == CFG_K_RULES) {
		struct cfg *c = x->c;
		if (count == 0)
			return 0;
		c->rules = calloc(count, sizeof(*c->rules));
		if (!c->rules)
			return cfg_fail(x, node_line(n), "%s: out of memory", name);
		c->n_rules = count;
		for (unsigned i = 0; i < count; i++) {
			const yaml_node_t *item = yaml_document_get_node(&x->doc, items[i]);
			char iname[160];
			snprintf(iname, sizeof(iname), "%s[%u]", name, i);
			c->rules[i].line = node_line(item);
			int rc = section_parse(x, item, k->sub, &c->rules[i], iname);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	char *field = (char *)base + k->off;
	for (unsigned i = 0; i < count; i++) {
		const yaml_node_t *item = yaml_document_get_node(&x->doc, items[i]);
		int rc = item_parse(x, k, item, name, field, i);
		if (rc < 0)
			return rc;
	}
	*(unsigned *)((char *)base + k->aux_off) = count;
	return 0;
}

static int value_parse(struct cfg_ctx *x, const struct cfg_key *k, const yaml_node_t *v,
		       const char *name, void *base)
{
	char *field = (char *)base + k->off;
	switch (k->kind) {
	case CFG_K_SECTION:
		return section_parse(x, v, k->sub, base, name);
	case CFG_K_UINT:
		return uint_parse(x, k, v, name, (unsigned *)field);
	case CFG_K_BOOL:
		return bool_parse(x, v, name, (bool *)field);
	case CFG_K_ENUM:
		return enum_parse(x, k, v, name, (int *)field);
	case CFG_K_STR:
	case CFG_K_PATH:
		return string_parse(x, k, v, name, field);
	case CFG_K_DESTSET:
		return cfg_destset_parse(x, v, name, (struct cfg_destset *)field);
	case CFG_K_ADDR: {
		int rc = addr_parse(x, k, v, name, (struct cfg_addr *)field);
		if (rc == 0 && (k->flags & CFG_F_HAS))
			*(bool *)((char *)base + k->aux_off) = true;
		return rc;
	}
	default:
		return list_parse(x, k, v, name, base);
	}
}

static const struct cfg_key *key_find(const struct cfg_section *sec, const char *name)
{
	for (size_t i = 0; i < sec->n_keys; i++)
		if (strcmp(sec->keys[i].name, name) == 0)
			return &sec->keys[i];
	return NULL;
}

static int key_unknown(struct cfg_ctx *x, const yaml_node_t *key, const struct cfg_section *sec,
		       const char *full)
{
	char known[256] = "";
	for (size_t i = 0; i < sec->n_keys; i++) {
		size_t used = strlen(known);
		snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
			 sec->keys[i].name);
	}
	return cfg_fail(x, node_line(key), "unknown key '%s' (known here: %s)", full, known);
}

/* section_parse - one mapping against one key table; @base receives the values. */
static int section_parse(struct cfg_ctx *x, const yaml_node_t *map, const struct cfg_section *sec,
			 void *base, const char *prefix)
{
	if (map->type != YAML_MAPPING_NODE)
		return cfg_fail(x, node_line(map), "%s: expected a mapping (key: value), got %s",
				prefix[0] ? prefix : "configuration", node_kind(map));
	unsigned seen[CFG_SECTION_MAX_KEYS] = {0}; /* line of each key, 0 = absent */
	if (sec->n_keys > CFG_SECTION_MAX_KEYS)
		return cfg_fail(x, node_line(map), "%s: internal error: key table too large",
				prefix);
	for (const yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		const yaml_node_t *key = yaml_document_get_node(&x->doc, pair->key);
		const yaml_node_t *val = yaml_document_get_node(&x->doc, pair->value);
		if (key->type != YAML_SCALAR_NODE)
			return cfg_fail(x, node_line(key), "%s: keys must be plain words, got %s",
					prefix[0] ? prefix : "configuration", node_kind(key));
		const char *kname = (const char *)key->data.scalar.value;
		char full[128];
		snprintf(full, sizeof(full), "%s%s%.60s", prefix, prefix[0] ? "." : "", kname);
		const struct cfg_key *k = key_find(sec, kname);
		if (!k)
			return key_unknown(x, key, sec, full);
		size_t idx = (size_t)(k - sec->keys);
		if (seen[idx])
			return cfg_fail(x, node_line(key), "duplicate key '%s' (first at line %u)",
					full, seen[idx]);
		seen[idx] = node_line(key);
		seen_add(x, full, node_line(key));
		int rc = value_parse(x, k, val, full, base);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < sec->n_keys; i++)
		if ((sec->keys[i].flags & CFG_F_REQUIRED) && !seen[i])
			return cfg_fail(x, node_line(map), "%s%smissing required key '%s'", prefix,
					prefix[0] ? ": " : "", sec->keys[i].name);
	return 0;
}

static void defaults_apply(const struct cfg_section *sec, void *base)
{
	for (size_t i = 0; i < sec->n_keys; i++) {
		const struct cfg_key *k = &sec->keys[i];
		char *field = (char *)base + k->off;
		if (k->kind == CFG_K_SECTION)
			defaults_apply(k->sub, base);
		else if (k->kind == CFG_K_UINT)
			*(unsigned *)field = k->def;
		else if (k->kind == CFG_K_BOOL)
			*(bool *)field = k->def != 0;
		else if (k->kind == CFG_K_ENUM)
			*(int *)field = (int)k->def;
	}
}

/* ------------------------------------------------------------ load, free */

static int document_load(struct cfg_ctx *x, yaml_parser_t *parser)
{
	if (!yaml_parser_load(parser, &x->doc)) {
		const yaml_mark_t *m =
		    parser->problem ? &parser->problem_mark : &parser->context_mark;
		return cfg_fail(x, (unsigned)m->line + 1, "YAML syntax error: %s%s%s",
				parser->problem ? parser->problem : "unknown problem",
				parser->context ? " " : "", parser->context ? parser->context : "");
	}
	const yaml_node_t *root = yaml_document_get_root_node(&x->doc);
	if (!root)
		return cfg_fail(x, 1, "empty configuration (listen and domains are required)");
	x->root_line = node_line(root);
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next))
		return cfg_fail(x, (unsigned)parser->problem_mark.line + 1, "YAML syntax error: %s",
				parser->problem ? parser->problem : "?");
	const yaml_node_t *extra = yaml_document_get_root_node(&next);
	unsigned extra_line = extra ? node_line(extra) : 0;
	yaml_document_delete(&next);
	if (extra)
		return cfg_fail(x, extra_line, "only one YAML document is allowed");
	return 0;
}

struct cfg *cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg_ctx x = {.file = path, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(x.dir, sizeof(x.dir), "%.*s", (int)(slash == path ? 1 : slash - path),
			 path);
	FILE *f = fopen(path, "re");
	if (!f) {
		cfg_fail(&x, 1, "cannot open the configuration: %s", strerror(errno));
		return NULL;
	}
	struct cfg *c = NULL;
	int rc = -EINVAL;
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		cfg_fail(&x, 1, "out of memory");
		goto out_file;
	}
	yaml_parser_set_input_file(&parser, f);
	/* x.doc starts zeroed and libyaml zeroes it on failure: deleting is always safe. */
	rc = document_load(&x, &parser);
	if (rc < 0)
		goto out;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = cfg_fail(&x, 1, "out of memory");
		goto out;
	}
	x.c = c;
	if (snprintf(c->path, sizeof(c->path), "%s", path) >= (int)sizeof(c->path)) {
		rc = cfg_fail(&x, 1, "configuration path is too long");
		goto out;
	}
	defaults_apply(&cfg_root_section, c);
	rc = section_parse(&x, yaml_document_get_root_node(&x.doc), &cfg_root_section, c, "");
	if (rc == 0)
		rc = cfg_finish(&x);
	if (rc == 0) { /* key lines outlive the loader: reload errors name them (cfg_reload.c) */
		_Static_assert(CFG_KEY_LINES_MAX >= CFG_SEEN_MAX, "every seen key fits");
		_Static_assert(sizeof(c->key_lines[0].name) == sizeof(x.seen[0].name), "same names");
		c->root_line = x.root_line;
		c->n_key_lines = x.n_seen;
		memcpy(c->key_lines, x.seen, sizeof(x.seen[0]) * x.n_seen);
	}
out:
	yaml_document_delete(&x.doc);
	yaml_parser_delete(&parser);
out_file:
	fclose(f);
	if (rc < 0) {
		cfg_free(c);
		return NULL;
	}
	return c;
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
