/* sip_uri.c - SIP/SIPS URI parser (RFC 3261 §19.1, §25.1) with IPv6 references
 * per RFC 5118 (brackets required, port only after ']', the §4.10 ":::" before
 * a dotted IPv4 tail tolerated), URI parameter/header lookup and %HH decoding.
 * User and password bytes are checked leniently (no SP, CTL, <, >, "), not
 * against the full RFC 3261 character sets. Other schemes stay opaque. */
#include <errno.h>

#include "sip_priv.h"

/* ---------------------------------------------------------------- hosts */

/* dotted quad, each part 1-3 digits and <= 255 */
static bool ipv4_is_valid(const char *p, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		unsigned v = 0, d = 0;
		while (i < n && sip_cc_is(p[i], SIP_CC_DIGIT) && d < 4) {
			v = v * 10 + (unsigned)(p[i] - '0');
			i++, d++;
		}
		if (d == 0 || d > 3 || v > 255)
			return false;
	}
	return i == n;
}

/* RFC 4291 §2.2 text forms, inside the brackets. One "::" run at most; a run
 * of three colons is accepted only before an IPv4 tail (RFC 5118 §4.10). */
static bool ipv6_is_valid(const char *p, size_t n)
{
	if (n < 2 || n > 47)
		return false;
	size_t i = 0, groups = 0;
	bool dbl = false;
	while (i < n) {
		if (p[i] == ':') {
			const size_t rs = i;
			while (i < n && p[i] == ':')
				i++;
			const size_t run = i - rs;
			if (run == 1) {
				if (rs == 0 || i == n)
					return false; /* lone colon at either end */
				continue;
			}
			if (dbl || run > 3)
				return false;
			if (run == 3 && (i == n || memchr(p + i, '.', n - i) == NULL ||
					 memchr(p + i, ':', n - i) != NULL))
				return false;
			dbl = true;
			continue;
		}
		const size_t gs = i;
		while (i < n && sip_cc_is(p[i], SIP_CC_HEX))
			i++;
		if (i < n && p[i] == '.') { /* embedded IPv4 ends the address */
			if (!ipv4_is_valid(p + gs, n - gs))
				return false;
			groups += 2;
			break;
		}
		if (i == gs || i - gs > 4 || (i < n && p[i] != ':'))
			return false;
		groups++;
	}
	return dbl ? groups <= 7 : groups == 8;
}

int sip_hostport_scan(const char *p, size_t *ip, size_t n, struct slice *host, uint16_t *port,
		      bool *has_port, bool *is_v4, bool *is_v6)
{
	size_t i = *ip;
	*port = 0;
	*has_port = *is_v4 = *is_v6 = false;
	if (i < n && p[i] == '[') {
		const char *close = memchr(p + i, ']', n - i);
		if (!close || !ipv6_is_valid(p + i + 1, (size_t)(close - p) - i - 1))
			return -EBADMSG;
		*host = slice_make(p + i, (size_t)(close - p) + 1 - i);
		*is_v6 = true;
		i = (size_t)(close - p) + 1;
	} else {
		const size_t hs = i;
		while (i < n && sip_cc_is(p[i], SIP_CC_HOST))
			i++;
		if (i == hs)
			return -EBADMSG;
		*host = slice_make(p + hs, i - hs);
		*is_v4 = ipv4_is_valid(host->p, host->len);
	}
	if (i < n && p[i] == ':') {
		const size_t ps = ++i;
		uint32_t v = 0;
		while (i < n && sip_cc_is(p[i], SIP_CC_DIGIT) && i - ps < 6)
			v = v * 10 + (uint32_t)(p[i++] - '0');
		if (i == ps || i - ps > 5 || v > 65535)
			return -EBADMSG; /* "sip:2001:db8::10" lands here (RFC 5118 §4.2) */
		*port = (uint16_t)v;
		*has_port = true;
	}
	*ip = i;
	return 0;
}

/* ---------------------------------------------------------------- URI */

bool sip_uri_is_sip(const struct sip_uri *u)
{
	return slice_caseeq(u->scheme, SLICE_LIT("sip")) ||
	       slice_caseeq(u->scheme, SLICE_LIT("sips"));
}

#ifndef NDEBUG
_Thread_local struct sip_parse_counts sip_parse_counts;
#endif

int sip_uri_parse(struct slice s, struct sip_uri *u)
{
#ifndef NDEBUG
	sip_parse_counts.uri++;
#endif
	memset(u, 0, sizeof(*u));
	u->whole = s;
	const char *p = s.p;
	const size_t n = s.len;
	size_t i = 0;
	if (n == 0 || (p[0] | 0x20) < 'a' || (p[0] | 0x20) > 'z')
		return -EBADMSG; /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	while (i < n && (sip_cc_is(p[i], SIP_CC_HOST) || p[i] == '+') && p[i] != '_')
		i++;
	if (i >= n || p[i] != ':')
		return -EBADMSG;
	u->scheme = slice_make(p, i++);
	for (size_t k = i; k < n; k++)
		if (!sip_cc_is(p[k], SIP_CC_URI))
			return -EBADMSG;
	if (!sip_uri_is_sip(u)) {
		u->user = slice_make(p + i, n - i); /* opaque: tel:, isbn:, ... */
		return n > i ? 0 : -EBADMSG;
	}
	/* A user part cannot hold a raw '@' (it must be %40), so the first '@'
	 * ends the userinfo; ';' and '?' before it belong to the user (semiuri). */
	const char *at = memchr(p + i, '@', n - i);
	if (at) {
		const size_t ue = (size_t)(at - p);
		const char *colon = memchr(p + i, ':', ue - i);
		const size_t uend = colon ? (size_t)(colon - p) : ue;
		u->user = slice_make(p + i, uend - i);
		if (colon)
			u->password = slice_make(colon + 1, ue - uend - 1);
		if (u->user.len == 0)
			return -EBADMSG;
		i = ue + 1;
	}
	int rc = sip_hostport_scan(p, &i, n, &u->host, &u->port, &u->has_port, &u->host_is_ipv4,
				   &u->host_is_ipv6);
	if (rc < 0)
		return rc;
	if (i < n && p[i] == ';') {
		const char *q = memchr(p + i, '?', n - i);
		const size_t pe = q ? (size_t)(q - p) : n;
		u->params = slice_make(p + i, pe - i);
		i = pe;
	}
	if (i < n && p[i] == '?') {
		u->headers = slice_make(p + i, n - i);
		i = n;
	}
	return i == n ? 0 : -EBADMSG;
}

/* Walks "<sep>name[=value]" items of @list (which starts with a separator). */
static bool list_find(struct slice list, char sep, struct slice name, struct slice *value)
{
	size_t i = 0;
	while (i < list.len) {
		if (list.p[i] == sep || (i == 0 && (list.p[0] == '?' || list.p[0] == ';')))
			i++;
		const size_t s = i;
		while (i < list.len && list.p[i] != sep)
			i++;
		const struct slice item = slice_make(list.p + s, i - s);
		const ptrdiff_t eq = slice_find_char(item, '=');
		const struct slice key = slice_make(item.p, eq < 0 ? item.len : (size_t)eq);
		if (slice_caseeq(key, name)) {
			if (value)
				*value =
				    eq < 0 ? slice_make(item.p + item.len, 0)
					   : slice_make(item.p + eq + 1, item.len - (size_t)eq - 1);
			return true;
		}
	}
	return false;
}

bool sip_uri_param(const struct sip_uri *u, struct slice name, struct slice *value)
{
	return list_find(u->params, ';', name, value);
}

bool sip_uri_header(const struct sip_uri *u, struct slice name, struct slice *value)
{
	return list_find(u->headers, '&', name, value);
}

static inline int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

int sip_unescape(struct slice in, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < in.len; i++) {
		char c = in.p[i];
		if (c == '%') {
			if (i + 2 >= in.len)
				return -EBADMSG;
			const int hi = hex_val(in.p[i + 1]), lo = hex_val(in.p[i + 2]);
			if (hi < 0 || lo < 0)
				return -EBADMSG;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o >= cap)
			return -ENOSPC;
		out[o++] = c;
	}
	return (int)o;
}
