/* cfg_load.c - loads the YAML configuration (SPEC §7) into struct cfg,
 * walking the key tables of cfg_keys.c (no per-key code here; route
 * destinations and listen mappings are dest_cfg.c's), then cfg_finish's
 * cross-key rules. The top of the loader: it calls cfg_keys.c, dest_cfg.c
 * and cfg.c (errors, seen keys, addresses), none of which calls back.
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

/* ------------------------------------------------------------ the walker */

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
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !cfg_digits_parse(v, UINT32_MAX, &val))
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
			*p = cfg_ascii_lower(*p);
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
		cfg_seen_add(x, full, node_line(key));
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

/* ------------------------------------------------------------ load */

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
