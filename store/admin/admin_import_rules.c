/* admin_import_rules.c - referee-admin import-authrules FILE (SPEC §14): a
 * sipXecs authrules.xml becomes the equivalent referee `rules:` list, with
 * sipXecs's own matching (reference §3.4, UrlMapping/AuthRulesUrlMapping/
 * Patterns in sipXcommserverLib):
 *   - hostMatch elements in document order; in each, every hostPattern, and for
 *     the first matching one the userMatch elements in order: the first
 *     userPattern that matches selects that userMatch and the search stops.
 *     One referee rule per (hostMatch, userMatch) in that order has the same
 *     first-match result; lists over referee's 32 items are split into
 *     consecutive rules with the same hosts/permissions, which changes nothing.
 *   - hostPattern format (compared without case) url (default: host and port,
 *     an unset port matching 5060/5061: referee's host[:port]), DnsWildcard
 *     ("*", "*.dom": referee's), IPv4subnet (a.b/16: referee's CIDR; sipXecs
 *     compares the address masked with the *unmasked* network, so host bits
 *     past the prefix never match and are refused here).
 *   - userPattern: convertRegularExpression (x, ., [..], \ escapes, + $ ? * ( )
 *     literal, anything else copied into a PCRE) translated token by token into
 *     referee's digit syntax; characters that would be PCRE syntax there
 *     (^ | { }), and class contents that sipXecs rewrites (x . \ [ inside
 *     [...]), cannot be expressed and are errors.
 *   - permissionMatch: its permission children are OR'ed; empty or absent
 *     requires nothing. ValidUser is matched without case by sipXecs.
 * TinyXML (what sipXecs uses) trims element text; so do we. Empty patterns
 * and permissions are skipped by sipXecs and here (with a warning). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "admin_import.h"
#include "cfg.h"


struct import {
	const char *path;
	bool failed;
	unsigned n_rules;
	FILE *yaml; /* memory stream: written to the caller's FILE only on success */
	char *yaml_buf;
	size_t yaml_len;
};

/* one hostMatch while it is read */
struct strlist {
	char (*v)[CFG_NAME_MAX];
	unsigned n, cap;
};

static void import_error(struct import *im, const xmlNode *n, const char *elem, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void import_error(struct import *im, const xmlNode *n, const char *elem, const char *fmt, ...)
{
	if (im->failed)
		return; /* the first error is the one to fix */
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s:%ld: %s: ", im->path, n ? xmlGetLineNo(n) : 0L, elem);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	im->failed = true;
}

static void import_warn(const struct import *im, const xmlNode *n, const char *elem, const char *what)
{
	fprintf(stderr, "%s:%ld: %s: %s\n", im->path, xmlGetLineNo(n), elem, what);
}

static int strlist_add(struct strlist *l, const char *s)
{
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 16;
		void *v = realloc(l->v, (size_t)cap * sizeof(*l->v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	size_t len = strlen(s);
	if (len >= CFG_NAME_MAX)
		return -E2BIG; /* callers check the length first */
	memcpy(l->v[l->n++], s, len + 1);
	return 0;
}

static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* element_ok - TinyXML compares raw tag names: a prefixed element is not the
 * element sipXecs looks for. Attributes other than @allowed are refused. */
static bool element_ok(struct import *im, const xmlNode *n, const char *allowed)
{
	if (n->ns && n->ns->prefix) {
		import_error(im, n, (const char *)n->name, "namespace prefix '%s:' (sipXecs reads unprefixed names only)",
			     (const char *)n->ns->prefix);
		return false;
	}
	for (const xmlAttr *a = n->properties; a; a = a->next) {
		if (!allowed || strcmp((const char *)a->name, allowed) != 0) {
			import_error(im, n, (const char *)n->name, "unsupported attribute '%s'", (const char *)a->name);
			return false;
		}
	}
	return true;
}

/* element_text - the trimmed text content of a leaf element into @buf; 0 with
 * an empty @buf when it has none. Anything but text inside is refused (TinyXML
 * would read only a first text child and skip the rest). */
static int element_text(struct import *im, const xmlNode *n, char *buf, size_t cap)
{
	buf[0] = '\0';
	const xmlNode *c = n->children;
	if (!c)
		return 0;
	if (c->next || (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)) {
		import_error(im, n, (const char *)n->name, "only text is supported inside (no comments or elements)");
		return -EINVAL;
	}
	const char *s = (const char *)c->content, *e = s + strlen(s);
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	if ((size_t)(e - s) >= cap) {
		import_error(im, n, (const char *)n->name, "longer than %zu characters (a referee limit)", cap - 1);
		return -EINVAL;
	}
	for (const char *p = s; p < e; p++) {
		if (isspace((unsigned char)*p)) {
			import_error(im, n, (const char *)n->name, "'%.*s' contains white space", (int)(e - s), s);
			return -EINVAL;
		}
	}
	memcpy(buf, s, (size_t)(e - s));
	buf[e - s] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- host patterns */

static bool host_name_ok(const char *h)
{
	if (!*h)
		return false;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return true;
}

/* url_pattern - sipXecs `Url(pattern)`: [sip:|sips:]host[:port]; host and port
 * compared exactly (host without case), an unset port matches 5060/5061 on the
 * other side: exactly referee's host[:port]. */
static int url_pattern(struct import *im, const xmlNode *n, const char *text, char *out)
{
	const char *s = text;
	if (strncasecmp(s, "sip:", 4) == 0)
		s += 4;
	else if (strncasecmp(s, "sips:", 5) == 0)
		s += 5;
	if (strchr(s, '@') || strchr(s, ';') || strchr(s, '?') || strchr(s, '<')) {
		import_error(im, n, "hostPattern", "'%s': only host[:port] is compared by sipXecs; write just that", text);
		return -EINVAL;
	}
	if (s[0] == '[' || strchr(s, ':') != strrchr(s, ':')) {
		import_error(im, n, "hostPattern",
			     "'%s': IPv6 hosts are compared as text by sipXecs and as addresses by referee", text);
		return -EINVAL;
	}
	char host[CFG_NAME_MAX];
	snprintf(host, sizeof(host), "%s", s);
	char *colon = strchr(host, ':');
	if (colon) {
		*colon = '\0';
		char *end;
		errno = 0;
		long port = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || port < 1 || port > 65535) {
			import_error(im, n, "hostPattern", "'%s': bad port", text);
			return -EINVAL;
		}
	}
	if (!host_name_ok(host)) {
		import_error(im, n, "hostPattern", "'%s': not a host name or IPv4 address", text);
		return -EINVAL;
	}
	snprintf(out, CFG_NAME_MAX, "%s", s);
	return 0;
}

/* wildcard_pattern - Patterns::DnsWildcard: "*" or "*.dom", i.e. the PCRE
 * ^(.+\.)*\Qdom\E(\.?)$ without case: dom itself, any name ending in ".dom",
 * one optional trailing dot on the host. referee's "*.dom" is the same when dom
 * is a plain name without a trailing dot. */
static int wildcard_pattern(struct import *im, const xmlNode *n, const char *text, char *out)
{
	if (strcmp(text, "*") == 0) {
		snprintf(out, CFG_NAME_MAX, "*");
		return 0;
	}
	const char *dom = text + 2;
	if (strncmp(text, "*.", 2) != 0) {
		import_error(im, n, "hostPattern", "'%s': a DnsWildcard must be '*' or start with '*.' (sipXecs never matches it)",
			     text);
		return -EINVAL;
	}
	size_t len = strlen(dom);
	if (len == 0 || dom[len - 1] == '.' || dom[0] == '.' || !host_name_ok(dom)) {
		import_error(im, n, "hostPattern", "'%s': the domain after '*.' must be a plain host name without a trailing dot",
			     text);
		return -EINVAL;
	}
	snprintf(out, CFG_NAME_MAX, "%s", text);
	return 0;
}

/* subnet_pattern - Patterns::IPv4subnet: "a[.b[.c[.d]]]/N", missing octets 0,
 * N in 1..32, matching when (address & mask) == network (unmasked). */
static int subnet_pattern(struct import *im, const xmlNode *n, const char *text, char *out)
{
	const char *slash = strchr(text, '/');
	if (!slash) {
		import_error(im, n, "hostPattern", "'%s': an IPv4subnet is ADDRESS/BITS (sipXecs never matches it)", text);
		return -EINVAL;
	}
	unsigned oct[4] = { 0, 0, 0, 0 }, k = 0;
	const char *p = text;
	while (p < slash) {
		if (k == 4 || !isdigit((unsigned char)*p) || (p[0] == '0' && isdigit((unsigned char)p[1]))) {
			import_error(im, n, "hostPattern", "'%s': not a dotted IPv4 network", text);
			return -EINVAL;
		}
		unsigned v = 0;
		while (p < slash && isdigit((unsigned char)*p) && v <= 255)
			v = v * 10 + (unsigned)(*p++ - '0');
		if (v > 255 || (p < slash && *p != '.') || (*p == '.' && p + 1 == slash)) {
			import_error(im, n, "hostPattern", "'%s': not a dotted IPv4 network", text);
			return -EINVAL;
		}
		oct[k++] = v;
		if (p < slash)
			p++;
	}
	char *end;
	errno = 0;
	long bits = strtol(slash + 1, &end, 10);
	if (k == 0 || !slash[1] || *end || errno || bits < 1 || bits > 32) {
		import_error(im, n, "hostPattern", "'%s': the prefix length must be 1..32 (sipXecs never matches otherwise)",
			     text);
		return -EINVAL;
	}
	uint32_t net = oct[0] << 24 | oct[1] << 16 | oct[2] << 8 | oct[3];
	uint32_t mask = bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
	if (net & ~mask) {
		import_error(im, n, "hostPattern",
			     "'%s': address bits past the prefix: sipXecs compares the masked address with the unmasked network, "
			     "so it never matches",
			     text);
		return -EINVAL;
	}
	snprintf(out, CFG_NAME_MAX, "%u.%u.%u.%u/%ld", oct[0], oct[1], oct[2], oct[3], bits);
	return 0;
}

/* host_pattern - one hostPattern: 1 converted into @out, 0 skipped (empty), <0 error. */
static int host_pattern(struct import *im, const xmlNode *n, char *out)
{
	if (!element_ok(im, n, "format"))
		return -EINVAL;
	char text[CFG_NAME_MAX];
	if (element_text(im, n, text, sizeof(text)) < 0)
		return -EINVAL;
	xmlChar *fmt = xmlGetProp(n, (const xmlChar *)"format");
	const char *f = fmt ? (const char *)fmt : "url";
	int rc;
	if (!text[0]) {
		import_warn(im, n, "hostPattern", "empty: skipped, as sipXecs does");
		rc = 0;
	} else if (strcasecmp(f, "url") == 0) {
		rc = url_pattern(im, n, text, out) < 0 ? -EINVAL : 1;
	} else if (strcasecmp(f, "DnsWildcard") == 0) {
		rc = wildcard_pattern(im, n, text, out) < 0 ? -EINVAL : 1;
	} else if (strcasecmp(f, "IPv4subnet") == 0) {
		rc = subnet_pattern(im, n, text, out) < 0 ? -EINVAL : 1;
	} else {
		import_error(im, n, "hostPattern", "format '%s' is none of url, DnsWildcard, IPv4subnet (sipXecs never matches it)",
			     f);
		rc = -EINVAL;
	}
	xmlFree(fmt);
	return rc;
}

/* ---------------------------------------------------------------- user patterns */

/* lit - append literal @c in referee's digit syntax (x . [ \ need a backslash). */
static void lit(char *out, size_t *o, char c)
{
	if (c == 'x' || c == '.' || c == '[' || c == '\\')
		out[(*o)++] = '\\';
	out[(*o)++] = c;
}

/* user_class - the [...] at s[*i] ('['): sipXecs copies it into the PCRE while
 * still rewriting x, . and escapes inside it, and PCRE gives ']' first, '\' and
 * '[' their own meanings: those cannot be expressed and are refused. */
static int user_class(struct import *im, const xmlNode *n, const char *s, size_t *i, char *out, size_t *o)
{
	size_t j = *i + 1;
	if (s[j] == '^')
		j++;
	if (s[j] == ']') {
		import_error(im, n, "userPattern", "'%s': ']' first in [...] is a literal in sipXecs's PCRE, not in referee", s);
		return -EINVAL;
	}
	for (; s[j] && s[j] != ']'; j++) {
		if (s[j] == 'x' || s[j] == '.' || s[j] == '\\' || s[j] == '[') {
			import_error(im, n, "userPattern",
				     "'%s': '%c' inside [...] is rewritten by sipXecs (x -> any, . -> any sequence, escapes): "
				     "not expressible",
				     s, s[j]);
			return -EINVAL;
		}
		if (s[j + 1] == '-' && s[j + 2] && s[j + 2] != ']' && (unsigned char)s[j + 2] < (unsigned char)s[j]) {
			import_error(im, n, "userPattern", "'%s': reversed range in [...] (sipXecs cannot compile it)", s);
			return -EINVAL;
		}
	}
	if (!s[j]) {
		import_error(im, n, "userPattern", "'%s': unterminated [ (sipXecs cannot compile it)", s);
		return -EINVAL;
	}
	memcpy(out + *o, s + *i, j + 1 - *i);
	*o += j + 1 - *i;
	*i = j + 1;
	return 0;
}

/* user_pattern - sipXecs digit pattern @s (UrlMapping::convertRegularExpression)
 * as the referee digit pattern with the same matches, into @out. */
static int user_pattern(struct import *im, const xmlNode *n, const char *s, char *out, size_t cap)
{
	size_t o = 0, len = strlen(s);
	if (len * 2 + 1 > cap) {
		import_error(im, n, "userPattern", "'%s' is too long for referee", s);
		return -EINVAL;
	}
	for (size_t i = 0; s[i];) {
		char c = s[i];
		if (c == '\\') {
			char e = s[i + 1];
			if (!e) {
				import_error(im, n, "userPattern", "'%s': trailing backslash (undefined in sipXecs)", s);
				return -EINVAL;
			}
			if (strchr("+$?*()", e)) {
				lit(out, &o, '\\'); /* sipXecs emits "\\\+": a backslash, then the character */
				lit(out, &o, e);
			} else if (strchr("^|{}", e)) {
				import_error(im, n, "userPattern", "'%s': '\\%c' leaves '%c' as PCRE syntax in sipXecs: not expressible",
					     s, e, e);
				return -EINVAL;
			} else {
				lit(out, &o, e); /* \[ \. \x \\ and any other character: that character */
			}
			i += 2;
			continue;
		}
		if (c == '[') {
			if (user_class(im, n, s, &i, out, &o) < 0)
				return -EINVAL;
			continue;
		}
		if (c == 'x' || c == '.') {
			out[o++] = c; /* one character / any sequence in both */
		} else if (strchr("^|{}", c)) {
			import_error(im, n, "userPattern", "'%s': '%c' is PCRE syntax in sipXecs's pattern: not expressible", s, c);
			return -EINVAL;
		} else {
			lit(out, &o, c); /* + $ ? * ( ) are escaped by sipXecs; digits, letters, ] are literal */
		}
		i++;
	}
	out[o] = '\0';
	if (o >= CFG_NAME_MAX) {
		import_error(im, n, "userPattern", "'%s' is too long for referee", s);
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- permissions */

/* permission_match - the permission names of one permissionMatch into @perms. */
static int permission_match(struct import *im, const xmlNode *pm, struct strlist *perms)
{
	if (!element_ok(im, pm, NULL))
		return -EINVAL;
	for (const xmlNode *c = pm->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!is_elem(c, "permission")) {
			import_error(im, c, (const char *)c->name, "unsupported element inside permissionMatch");
			return -EINVAL;
		}
		char name[CFG_NAME_MAX];
		if (!element_ok(im, c, NULL) || element_text(im, c, name, sizeof(name)) < 0)
			return -EINVAL;
		if (!name[0]) {
			import_warn(im, c, "permission", "empty: skipped, as sipXecs does");
			continue;
		}
		if (strcasecmp(name, "ValidUser") == 0)
			snprintf(name, sizeof(name), "ValidUser"); /* sipXecs compares this one without case */
		if (!admin_perm_name_ok(name)) {
			import_error(im, c, "permission",
				     "'%s' is not a referee permission name (letters, digits, '_', '-', '.'; under 64 characters)",
				     name);
			return -EINVAL;
		}
		bool dup = false;
		for (unsigned k = 0; k < perms->n; k++)
			dup |= strcmp(perms->v[k], name) == 0;
		if (!dup && strlist_add(perms, name) < 0) {
			import_error(im, c, "permission", "out of memory");
			return -ENOMEM;
		}
	}
	if (perms->n > CFG_MAX_RULE_ITEMS) {
		import_error(im, pm, "permissionMatch", "%u permissions: referee's rules take at most %d", perms->n,
			     CFG_MAX_RULE_ITEMS);
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- output */

static void yaml_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void yaml_list(FILE *f, const char *key, const struct strlist *l, unsigned from, unsigned n, bool quote)
{
	fprintf(f, "    %s: [", key);
	for (unsigned k = 0; k < n; k++) {
		if (k)
			fputs(", ", f);
		if (quote)
			yaml_quoted(f, l->v[from + k]);
		else
			fputs(l->v[from + k], f);
	}
	fputs("]\n", f);
}

/* emit - referee rules for one (hostMatch, userMatch): host chunks outermost is
 * wrong (it would change which userMatch a host meets first), so the caller
 * loops host chunks around its userMatch loop and we only split the users. */
static int emit(struct import *im, const xmlNode *um, const struct strlist *hosts, unsigned h0, unsigned nh,
		const struct strlist *users, const struct strlist *perms)
{
	for (unsigned u0 = 0; u0 < users->n; u0 += CFG_MAX_RULE_ITEMS) {
		unsigned nu = users->n - u0 < CFG_MAX_RULE_ITEMS ? users->n - u0 : CFG_MAX_RULE_ITEMS;
		if (++im->n_rules > CFG_MAX_RULES) {
			import_error(im, um, "userMatch", "more than %d referee rules needed (referee's limit)", CFG_MAX_RULES);
			return -EINVAL;
		}
		fprintf(im->yaml, "  - hosts: [");
		for (unsigned k = 0; k < nh; k++) {
			if (k)
				fputs(", ", im->yaml);
			yaml_quoted(im->yaml, hosts->v[h0 + k]);
		}
		fputs("]\n", im->yaml);
		yaml_list(im->yaml, "users", users, u0, nu, true);
		yaml_list(im->yaml, "permissions", perms, 0, perms->n, false);
	}
	return 0;
}

/* ---------------------------------------------------------------- structure */

struct user_match {
	const xmlNode *node;
	struct strlist users, perms;
};

static int user_match_read(struct import *im, const xmlNode *um, struct user_match *out)
{
	*out = (struct user_match){ .node = um };
	if (!element_ok(im, um, NULL))
		return -EINVAL;
	unsigned n_pm = 0;
	for (const xmlNode *c = um->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_elem(c, "userPattern")) {
			char text[CFG_NAME_MAX], conv[CFG_NAME_MAX * 2 + 1];
			if (!element_ok(im, c, NULL) || element_text(im, c, text, sizeof(text)) < 0)
				return -EINVAL;
			if (!text[0]) {
				import_warn(im, c, "userPattern", "empty: skipped, as sipXecs does");
				continue;
			}
			if (user_pattern(im, c, text, conv, sizeof(conv)) < 0)
				return -EINVAL;
			if (strlist_add(&out->users, conv) < 0)
				return -ENOMEM;
		} else if (is_elem(c, "permissionMatch")) {
			if (++n_pm > 1) {
				/* sipXecs takes the first permissionMatch that names a permission */
				import_error(im, c, "permissionMatch", "a second permissionMatch in one userMatch is not supported");
				return -EINVAL;
			}
			if (permission_match(im, c, &out->perms) < 0)
				return -EINVAL;
		} else {
			import_error(im, c, (const char *)c->name, "unsupported element inside userMatch");
			return -EINVAL;
		}
	}
	return 0;
}

static int host_match(struct import *im, const xmlNode *hm)
{
	if (!element_ok(im, hm, NULL))
		return -EINVAL;
	struct strlist hosts = { 0 };
	struct user_match ums[64];
	unsigned n_um = 0;
	int rc = 0;
	char label[CFG_NAME_MAX] = "";
	for (const xmlNode *c = hm->children; c && rc == 0; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_elem(c, "name") || is_elem(c, "description") || is_elem(c, "ruleType")) {
			/* informational for authorization (EnforceAuthRules passes no ruleType) */
			if (is_elem(c, "name")) {
				xmlChar *t = xmlNodeGetContent(c);
				snprintf(label, sizeof(label), "%.200s", t ? (const char *)t : "");
				xmlFree(t);
			}
			continue;
		}
		if (is_elem(c, "hostPattern")) {
			char h[CFG_NAME_MAX];
			int r = host_pattern(im, c, h);
			if (r < 0 || (r > 0 && strlist_add(&hosts, h) < 0))
				rc = -EINVAL;
		} else if (is_elem(c, "userMatch")) {
			if (n_um == sizeof(ums) / sizeof(ums[0])) {
				import_error(im, c, "userMatch", "more than %zu userMatch elements in one hostMatch",
					     sizeof(ums) / sizeof(ums[0]));
				rc = -EINVAL;
			} else {
				rc = user_match_read(im, c, &ums[n_um]);
				n_um++;
			}
		} else {
			import_error(im, c, (const char *)c->name, "unsupported element inside hostMatch");
			rc = -EINVAL;
		}
	}
	if (rc == 0 && hosts.n == 0)
		import_warn(im, hm, "hostMatch", "no usable hostPattern: it never matches; skipped");
	if (rc == 0 && n_um == 0 && hosts.n > 0)
		import_warn(im, hm, "hostMatch", "no userMatch: it never matches; skipped");
	if (rc == 0 && hosts.n > 0 && n_um > 0) {
		for (char *p = label; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		fprintf(im->yaml, "  # %s:%ld hostMatch%s%s\n", im->path, xmlGetLineNo(hm), label[0] ? " " : "", label);
		for (unsigned h0 = 0; h0 < hosts.n && rc == 0; h0 += CFG_MAX_RULE_ITEMS) {
			unsigned nh = hosts.n - h0 < CFG_MAX_RULE_ITEMS ? hosts.n - h0 : CFG_MAX_RULE_ITEMS;
			for (unsigned k = 0; k < n_um && rc == 0; k++) {
				if (ums[k].users.n == 0) {
					if (h0 == 0)
						import_warn(im, ums[k].node, "userMatch", "no userPattern: it never matches; skipped");
					continue;
				}
				rc = emit(im, ums[k].node, &hosts, h0, nh, &ums[k].users, &ums[k].perms);
			}
		}
	}
	for (unsigned k = 0; k < n_um; k++) {
		free(ums[k].users.v);
		free(ums[k].perms.v);
	}
	free(hosts.v);
	return rc;
}

/* silence libxml2's own printing: the first error is reported by us with its line */
static void xml_quiet(void *ctx, const xmlError *e)
{
	(void)ctx;
	(void)e;
}

int admin_import_authrules(const char *path, FILE *out)
{
	struct import im = { .path = path };
	xmlSetStructuredErrorFunc(NULL, (xmlStructuredErrorFunc)xml_quiet);
	xmlParserCtxtPtr ctx = xmlNewParserCtxt();
	if (!ctx) {
		fprintf(stderr, "referee-admin: out of memory\n");
		return 1;
	}
	/* no network, no external entity or DTD loading: an authrules.xml is data */
	xmlDocPtr doc = xmlCtxtReadFile(ctx, path, NULL, XML_PARSE_NONET);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(ctx);
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "cannot read the file");
		msg[strcspn(msg, "\n")] = '\0';
		if (e && e->domain == XML_FROM_IO)
			fprintf(stderr, "%s:0: file: %s\n", path, msg);
		else
			fprintf(stderr, "%s:%d: XML: %s\n", path, e ? e->line : 0, msg);
		xmlFreeParserCtxt(ctx);
		return 1;
	}
	im.yaml = open_memstream(&im.yaml_buf, &im.yaml_len);
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (!im.yaml) {
		fprintf(stderr, "referee-admin: out of memory\n");
		im.failed = true;
	} else if (doc->intSubset) {
		/* libxml2 keeps no line for the DTD: name the root element after it */
		import_error(&im, root, "DOCTYPE", "not supported in an authrules file (before this element)");
	} else if (!root || !is_elem(root, "mappings")) {
		import_error(&im, root, root ? (const char *)root->name : "document", "the root element must be 'mappings'");
	} else if (element_ok(&im, root, NULL)) {
		fprintf(im.yaml, "# referee rules converted from %s by referee-admin import-authrules\n"
				 "# (sipXecs semantics: first matching host and user pattern decides; [] requires nothing)\n"
				 "rules:\n",
			path);
		for (const xmlNode *c = root->children; c && !im.failed; c = c->next) {
			if (c->type == XML_ELEMENT_NODE && !is_elem(c, "hostMatch"))
				import_error(&im, c, (const char *)c->name, "unsupported element inside mappings");
			else if (c->type == XML_ELEMENT_NODE)
				host_match(&im, c);
			else if (c->type == XML_TEXT_NODE && !xmlIsBlankNode(c))
				import_error(&im, c, "mappings", "text outside the elements");
		}
		if (!im.failed && im.n_rules == 0)
			fputs("  []\n", im.yaml);
	}
	if (im.yaml)
		fclose(im.yaml);
	if (!im.failed && fwrite(im.yaml_buf, 1, im.yaml_len, out) != im.yaml_len) {
		fprintf(stderr, "referee-admin: cannot write the rules: %s\n", strerror(errno));
		im.failed = true;
	}
	free(im.yaml_buf);
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctx);
	return im.failed ? 1 : 0;
}
