/* auth_pattern.c - host and user patterns of the permission rules (SPEC §4,
 * reference §3.4). Hosts: exact host[:port] (no port on one side matches 5060
 * and 5061 on the other), "*.domain" (also "domain"), "*", CIDR and IP literals.
 * Users: sipXecs digit patterns, anchored (`x` one char, `.` any sequence,
 * `[...]` a class, `\` escapes, everything else literal) compiled to a tiny
 * program, or "re:<PCRE2>" compiled once (JIT) and matched anchored at both
 * ends with a per-thread match_data. Compiling allocates; matching never does
 * (after a thread's first regex match). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_priv.h"

/* ---------------------------------------------------------------- hosts */

static char lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
}

static int parse_port(const char *s, uint16_t *port)
{
	uint32_t v;
	if (!slice_to_u32(slice_from_cstr(s), &v) || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* parse_ipv4_partial - "192.168" (sipXecs IPv4subnet) or "10.1.2.3": missing octets are 0. */
static int parse_ipv4_partial(const char *s, uint8_t out[4])
{
	memset(out, 0, 4);
	unsigned n = 0;
	while (*s) {
		if (n == 4 || *s < '0' || *s > '9')
			return -EINVAL;
		unsigned v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		if (v > 255 || (*s && *s != '.'))
			return -EINVAL;
		out[n++] = (uint8_t)v;
		if (*s == '.' && !*++s)
			return -EINVAL;
	}
	return n ? 0 : -EINVAL;
}

static int compile_cidr(char *s, struct auth_host_pat *p, const char **why)
{
	char *slash = strchr(s, '/');
	*slash = '\0';
	uint32_t prefix;
	if (!slice_to_u32(slice_from_cstr(slash + 1), &prefix)) {
		*why = "bad CIDR prefix length";
		return -EINVAL;
	}
	p->kind = AUTH_HOST_CIDR;
	if (strchr(s, ':')) {
		p->family = AF_INET6;
		if (inet_pton(AF_INET6, s, p->addr) != 1 || prefix > 128) {
			*why = "bad IPv6 CIDR";
			return -EINVAL;
		}
	} else {
		p->family = AF_INET;
		if (parse_ipv4_partial(s, p->addr) < 0 || prefix > 32) {
			*why = "bad IPv4 CIDR";
			return -EINVAL;
		}
	}
	p->prefix = (uint8_t)prefix;
	return 0;
}

/* split_port - "host:port" / "[v6]:port" / "[v6]" / "v6" / "host" (in place). */
static int split_port(char *s, char **host, struct auth_host_pat *p, const char **why)
{
	char *colon = NULL;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':')) {
			*why = "bad bracketed IPv6 host";
			return -EINVAL;
		}
		*close = '\0';
		*host = s + 1;
		colon = close[1] ? close + 1 : NULL;
	} else {
		*host = s;
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* an unbracketed IPv6 literal: no port */
	}
	if (colon) {
		*colon = '\0';
		if (parse_port(colon + 1, &p->port) < 0) {
			*why = "bad port";
			return -EINVAL;
		}
		p->has_port = true;
	}
	return **host ? 0 : -EINVAL;
}

int auth_host_pat_compile(const char *src, struct auth_host_pat *p, const char **why)
{
	*p = (struct auth_host_pat){ 0 };
	*why = "empty host pattern";
	char s[CFG_NAME_MAX];
	size_t n = strlen(src);
	if (n == 0 || n >= sizeof(s))
		return -EINVAL;
	for (size_t i = 0; i <= n; i++)
		s[i] = lower(src[i]);
	if (strcmp(s, "*") == 0) {
		p->kind = AUTH_HOST_ANY;
		return 0;
	}
	if (s[0] == '*') {
		if (s[1] != '.' || !s[2] || strchr(s + 2, '*') || strchr(s + 2, ':')) {
			*why = "a wildcard host is \"*.domain\" (no port)";
			return -EINVAL;
		}
		p->kind = AUTH_HOST_WILDCARD;
		p->name_len = strlen(s + 2);
		if (s[2 + p->name_len - 1] == '.')
			p->name_len--;
		memcpy(p->name, s + 2, p->name_len);
		return 0;
	}
	if (strchr(s, '/'))
		return compile_cidr(s, p, why);
	char *host;
	if (split_port(s, &host, p, why) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET6, host, p->addr) == 1) {
		p->kind = AUTH_HOST_IP;
		p->family = AF_INET6;
	} else if (inet_pton(AF_INET, host, p->addr) == 1) {
		p->kind = AUTH_HOST_IP;
		p->family = AF_INET;
	} else if (strchr(host, '[') || strchr(host, ']') || strchr(host, '*')) {
		*why = "bad host";
		return -EINVAL;
	} else {
		p->kind = AUTH_HOST_EXACT;
		p->name_len = strlen(host);
		memcpy(p->name, host, p->name_len);
	}
	return 0;
}

static bool ports_match(const struct auth_host_pat *p, const struct sip_uri *u)
{
	if (p->has_port && u->has_port)
		return p->port == u->port;
	if (!p->has_port && !u->has_port)
		return true;
	uint16_t other = p->has_port ? p->port : u->port;
	return other == 5060 || other == 5061; /* sipXecs match_ports */
}

/* uri_ip - the URI's IP-literal host as bytes; 0 when it is a name. */
static int uri_ip(const struct sip_uri *u, uint8_t addr[16])
{
	if (!u->host_is_ipv4 && !u->host_is_ipv6)
		return 0;
	struct slice h = u->host;
	if (h.len >= 2 && h.p[0] == '[') {
		h.p++;
		h.len -= 2;
	}
	char buf[INET6_ADDRSTRLEN + 1];
	if (h.len == 0 || h.len >= sizeof(buf))
		return 0;
	memcpy(buf, h.p, h.len);
	buf[h.len] = '\0';
	int fam = u->host_is_ipv6 ? AF_INET6 : AF_INET;
	return inet_pton(fam, buf, addr) == 1 ? fam : 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool auth_host_pat_match(const struct auth_host_pat *p, const struct sip_uri *u)
{
	struct slice h = u->host;
	uint8_t addr[16];
	int fam;
	switch (p->kind) {
	case AUTH_HOST_ANY:
		return true;
	case AUTH_HOST_WILDCARD:
		if (h.len && h.p[h.len - 1] == '.')
			h.len--; /* sipXecs accepts a trailing dot */
		if (h.len == p->name_len)
			return slice_caseeq(h, slice_make(p->name, p->name_len));
		return h.len > p->name_len + 1 && h.p[h.len - p->name_len - 1] == '.' &&
		       slice_caseeq(slice_make(h.p + h.len - p->name_len, p->name_len),
				    slice_make(p->name, p->name_len));
	case AUTH_HOST_EXACT:
		return slice_caseeq(h, slice_make(p->name, p->name_len)) && ports_match(p, u);
	case AUTH_HOST_IP:
		fam = uri_ip(u, addr);
		return fam == p->family && memcmp(addr, p->addr, fam == AF_INET ? 4 : 16) == 0 && ports_match(p, u);
	case AUTH_HOST_CIDR:
		fam = uri_ip(u, addr);
		return fam == p->family && prefix_match(addr, p->addr, p->prefix);
	}
	return false;
}

/* ---------------------------------------------------------------- digit patterns */

/* Program opcodes: OP_LIT c | OP_ONE | OP_ANY | OP_CLASS bitmap[32]. */
enum { OP_LIT = 1, OP_ONE, OP_ANY, OP_CLASS };

static size_t op_size(const char *prog, size_t i)
{
	return prog[i] == OP_LIT ? 2 : prog[i] == OP_CLASS ? 33 : 1;
}

static bool op_matches(const char *prog, size_t i, char ch)
{
	unsigned char c = (unsigned char)ch;
	switch (prog[i]) {
	case OP_LIT:
		return prog[i + 1] == ch;
	case OP_ONE:
		return true;
	case OP_CLASS:
		return ((unsigned char)prog[i + 1 + c / 8] >> (c % 8)) & 1;
	default:
		return false;
	}
}

/* compile_class - "[...]" starting at s[*i] == '['; appends OP_CLASS. */
static int compile_class(const char *s, size_t *i, char *prog, size_t *n, const char **why)
{
	uint8_t bits[32] = { 0 };
	size_t j = *i + 1;
	bool negate = s[j] == '^';
	if (negate)
		j++;
	bool any = false;
	while (s[j] && s[j] != ']') {
		unsigned char lo = (unsigned char)s[j], hi = lo;
		if (s[j + 1] == '-' && s[j + 2] && s[j + 2] != ']') {
			hi = (unsigned char)s[j + 2];
			j += 2;
		}
		if (hi < lo) {
			*why = "reversed range in [...]";
			return -EINVAL;
		}
		for (unsigned c = lo; c <= hi; c++)
			bits[c / 8] |= (uint8_t)(1u << (c % 8));
		any = true;
		j++;
	}
	if (!s[j] || !any) {
		*why = "unterminated or empty [...] in user pattern";
		return -EINVAL;
	}
	if (negate)
		for (size_t k = 0; k < 32; k++)
			bits[k] = (uint8_t)~bits[k];
	prog[(*n)++] = OP_CLASS;
	memcpy(prog + *n, bits, 32);
	*n += 32;
	*i = j + 1;
	return 0;
}

static int compile_digits(const char *s, struct auth_user_pat *p, const char **why)
{
	size_t len = strlen(s);
	char *prog = malloc(len * 33 + 1);
	if (!prog) {
		*why = "out of memory";
		return -ENOMEM;
	}
	size_t n = 0, i = 0;
	while (s[i]) {
		if (s[i] == '[') {
			if (compile_class(s, &i, prog, &n, why) < 0) {
				free(prog);
				return -EINVAL;
			}
			continue;
		}
		if (s[i] == '\\') {
			if (!s[i + 1]) {
				free(prog);
				*why = "trailing backslash in user pattern";
				return -EINVAL;
			}
			prog[n++] = OP_LIT;
			prog[n++] = s[i + 1];
			i += 2;
			continue;
		}
		if (s[i] == 'x') {
			prog[n++] = OP_ONE;
		} else if (s[i] == '.') {
			prog[n++] = OP_ANY;
		} else {
			prog[n++] = OP_LIT;
			prog[n++] = s[i];
		}
		i++;
	}
	p->kind = AUTH_USER_DIGITS;
	p->prog = prog;
	p->prog_len = n;
	return 0;
}

/* digits_match - anchored glob match with one backtrack point per OP_ANY
 * (the classic star algorithm: linear in practice, no recursion). */
static bool digits_match(const char *prog, size_t plen, struct slice s)
{
	size_t pi = 0, si = 0, star_pi = SIZE_MAX, star_si = 0;
	while (si < s.len) {
		if (pi < plen && prog[pi] == OP_ANY) {
			star_pi = ++pi;
			star_si = si;
		} else if (pi < plen && op_matches(prog, pi, s.p[si])) {
			pi += op_size(prog, pi);
			si++;
		} else if (star_pi != SIZE_MAX) {
			pi = star_pi;
			si = ++star_si;
		} else {
			return false;
		}
	}
	while (pi < plen && prog[pi] == OP_ANY)
		pi++;
	return pi == plen;
}

/* ---------------------------------------------------------------- regex */

static pthread_once_t re_once = PTHREAD_ONCE_INIT;
static pthread_key_t re_md_key;              /* per-thread pcre2_match_data */
static pcre2_match_context *re_mctx;         /* shared, read-only after re_setup */

static void md_destroy(void *p)
{
	pcre2_match_data_free(p);
}

static void re_setup(void)
{
	pthread_key_create(&re_md_key, md_destroy);
	re_mctx = pcre2_match_context_create(NULL);
	if (re_mctx) {
		pcre2_set_match_limit(re_mctx, 100000); /* a pathological regex fails, it does not stall a worker */
		pcre2_set_depth_limit(re_mctx, 1000);
	}
}

static int compile_regex(const char *s, struct auth_user_pat *p, char *whybuf, size_t whycap)
{
	pthread_once(&re_once, re_setup);
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED | PCRE2_ENDANCHORED,
				       &code, &off, NULL);
	if (!re) {
		char msg[128];
		pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
		snprintf(whybuf, whycap, "bad regex at offset %zu: %s", (size_t)off, msg);
		return -EINVAL;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter still works */
	p->kind = AUTH_USER_REGEX;
	p->re = re;
	return 0;
}

static bool regex_match(const struct auth_user_pat *p, struct slice user)
{
	pthread_once(&re_once, re_setup);
	pcre2_match_data *md = pthread_getspecific(re_md_key);
	if (!md) {
		md = pcre2_match_data_create(1, NULL); /* once per thread */
		if (!md)
			return false;
		if (pthread_setspecific(re_md_key, md) != 0) {
			pcre2_match_data_free(md);
			return false;
		}
	}
	int rc = pcre2_match(p->re, (PCRE2_SPTR)(user.p ? user.p : ""), user.len, 0, 0, md, re_mctx);
	return rc >= 0; /* 0: matched, ovector too small for the groups (we need none) */
}

/* ---------------------------------------------------------------- users */

int auth_user_pat_compile(const char *s, struct auth_user_pat *p, char *whybuf, size_t whycap)
{
	*p = (struct auth_user_pat){ 0 };
	if (strncmp(s, "re:", 3) == 0)
		return compile_regex(s + 3, p, whybuf, whycap);
	const char *why = NULL;
	int rc = compile_digits(s, p, &why);
	if (rc < 0)
		snprintf(whybuf, whycap, "%s", why);
	return rc;
}

void auth_user_pat_free(struct auth_user_pat *p)
{
	if (p->kind == AUTH_USER_REGEX)
		pcre2_code_free(p->re);
	else
		free(p->prog);
	*p = (struct auth_user_pat){ 0 };
}

bool auth_user_pat_match(const struct auth_user_pat *p, struct slice user)
{
	if (p->kind == AUTH_USER_REGEX)
		return regex_match(p, user);
	return digits_match(p->prog, p->prog_len, user);
}
