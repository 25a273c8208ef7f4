/* transfer_referto.c - reading and rewriting a Refer-To value (SPEC §5,
 * reference §1.3): the canonical target "user@host", and the rewritten
 * name-addr with our token added after removing any the sender put there.
 * Everything else (display name, URI parameters and headers such as Replaces,
 * header parameters) is copied byte for byte. Builds into caller buffers; no
 * allocation. Does not decide anything (transfer_refer.c does). */
#include "transfer_priv.h"

#include <errno.h>
#include <string.h>

/* ---------------------------------------------------------------- output buffer */

struct outbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void out_put(struct outbuf *o, const char *p, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	if (n)
		memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void out_slice(struct outbuf *o, struct slice s)
{
	out_put(o, s.p, s.len);
}

static void out_str(struct outbuf *o, const char *s)
{
	out_put(o, s, strlen(s));
}

/* ---------------------------------------------------------------- escaping */

/* user_char_is_plain - may stay as is in the user part of a sip: URI
 * (RFC 3261 unreserved / user-unreserved, minus ';' '?' '/'). */
static bool user_char_is_plain(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       memchr("-_.!~*'()&=+$,", c, 14) != NULL;
}

size_t transfer_identity_uri_max(struct slice identity, const char *name, struct slice value)
{
	ptrdiff_t at = slice_find_char(identity, '@');
	size_t ulen = at < 0 ? 0 : (size_t)at;
	return 5 + identity.len + 2 * ulen + 1 + strlen(name) + 1 + value.len + 1;
}

int transfer_identity_uri(struct slice identity, const char *name, struct slice value, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	ptrdiff_t at = slice_find_char(identity, '@');
	size_t ulen = at < 0 ? 0 : (size_t)at;
	struct outbuf o = { .p = out, .cap = cap };
	out_str(&o, "<sip:");
	for (size_t i = 0; i < identity.len; i++) {
		char c = identity.p[i];
		if (i < ulen && !user_char_is_plain(c)) {
			char esc[3] = { '%', hex[(unsigned char)c >> 4], hex[c & 15] };
			out_put(&o, esc, 3);
		} else {
			out_put(&o, &c, 1);
		}
	}
	out_str(&o, ";");
	out_str(&o, name);
	out_str(&o, "=");
	out_slice(&o, value);
	out_str(&o, ">");
	return o.full ? -ENOSPC : (int)o.len;
}

static bool escape_is_plain(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.';
}

int transfer_escape(struct slice in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < in.len; i++) {
		const unsigned char c = (unsigned char)in.p[i];
		const size_t need = (escape_is_plain(c) || c == ' ') ? 1 : 3;
		if (need > cap - o)
			return -ENOSPC;
		if (escape_is_plain(c)) {
			out[o++] = (char)c;
		} else if (c == ' ') {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return (int)o;
}

/* ---------------------------------------------------------------- target */

int transfer_target_canon(const struct sip_uri *u, char *out, size_t cap)
{
	int n = sip_unescape(u->user, out, cap);
	if (n < 0)
		return n;
	size_t o = (size_t)n;
	if (u->host.len + 1 > cap - o)
		return -ENOSPC;
	out[o++] = '@';
	for (size_t i = 0; i < u->host.len; i++) {
		char c = u->host.p[i];
		out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	return (int)o;
}

/* ---------------------------------------------------------------- parse */

/* has_scheme - "scheme:" at the start (ALPHA *(ALPHA / DIGIT / + - .) ":"). */
static bool has_scheme(struct slice s)
{
	size_t i = 0;
	if (s.len == 0 || !((s.p[0] | 0x20) >= 'a' && (s.p[0] | 0x20) <= 'z'))
		return false;
	while (i < s.len) {
		char c = s.p[i];
		bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
			  c == '-' || c == '.';
		if (!ok)
			break;
		i++;
	}
	return i < s.len && s.p[i] == ':';
}

int transfer_referto_parse(struct slice value, char *scratch, size_t cap, struct transfer_referto *r)
{
	memset(r, 0, sizeof(*r));
	r->value = value;
	if (sip_nameaddr_parse(value, &r->na) < 0)
		return -EBADMSG;
	struct slice uri = r->na.uri;
	if (!has_scheme(uri)) {
		/* sipXecs reads a scheme-less Refer-To as sip: (reference §1.2 S3) */
		if (uri.len + 4 > cap)
			return -ENOSPC;
		memcpy(scratch, "sip:", 4);
		memcpy(scratch + 4, uri.p, uri.len);
		uri = slice_make(scratch, uri.len + 4);
		r->schemeless = true;
	}
	return sip_uri_parse(uri, &r->uri) < 0 ? -EBADMSG : 0;
}

bool transfer_referto_applies(const struct transfer_referto *r)
{
	if (!slice_caseeq(r->uri.scheme, SLICE_LIT("sip")))
		return false; /* sips:, tel:, http: ... (reference §1.2 S3) */
	struct slice method;
	if (!sip_uri_param(&r->uri, SLICE_LIT("method"), &method))
		return true;
	return slice_caseeq(method, SLICE_LIT("INVITE"));
}

/* ---------------------------------------------------------------- rewrite */

/* name_is - the (possibly %-escaped) item name equals @want, any case. */
static bool name_is(struct slice item, struct slice want)
{
	ptrdiff_t eq = slice_find_char(item, '=');
	struct slice name = slice_make(item.p, eq < 0 ? item.len : (size_t)eq);
	char buf[64];
	int n = sip_unescape(name, buf, sizeof(buf));
	return n >= 0 && slice_caseeq(slice_make(buf, (size_t)n), want);
}

/* copy_list - copy "<sep>item" entries of @list (which starts with @first),
 * dropping those named @drop; the first kept one is written after @first. */
static void copy_list(struct outbuf *o, struct slice list, char first, char sep, struct slice drop,
		      bool *opened)
{
	size_t i = list.len ? 1 : 0; /* skip the leading ';' or '?' */
	while (i < list.len) {
		size_t s = i;
		while (i < list.len && list.p[i] != sep)
			i++;
		struct slice item = slice_make(list.p + s, i - s);
		i++;
		if (item.len == 0 || name_is(item, drop))
			continue;
		char c = *opened ? sep : first;
		out_put(o, &c, 1);
		*opened = true;
		out_slice(o, item);
	}
}

/* uri_put - @u minus `refgrant` parameters and X-Sipx-Authidentity headers,
 * plus @uri_param and the @hdr_name header (value escaped). */
static void uri_put(struct outbuf *o, const struct sip_uri *u, struct slice uri_param,
		    struct slice hdr_name, struct slice hdr_value)
{
	const char *base_end = u->whole.p + u->whole.len;
	if (u->headers.len)
		base_end = u->headers.p;
	if (u->params.len)
		base_end = u->params.p;
	out_put(o, u->whole.p, (size_t)(base_end - u->whole.p));

	bool opened = true; /* URI parameters always start with ';' */
	copy_list(o, u->params, ';', ';', SLICE_LIT("refgrant"), &opened);
	if (uri_param.len) {
		out_str(o, ";");
		out_slice(o, uri_param);
	}
	opened = false;
	copy_list(o, u->headers, '?', '&', SLICE_LIT("X-Sipx-Authidentity"), &opened);
	if (hdr_name.len) {
		out_str(o, opened ? "&" : "?");
		out_slice(o, hdr_name);
		out_str(o, "=");
		if (!o->full) {
			int n = transfer_escape(hdr_value, o->p + o->len, o->cap - o->len);
			if (n < 0)
				o->full = true;
			else
				o->len += (size_t)n;
		}
	}
}

int transfer_uri_rewrite(const struct sip_uri *u, struct slice uri_param, struct slice hdr_name,
			 struct slice hdr_value, char *out, size_t cap)
{
	struct outbuf o = { .p = out, .cap = cap };
	uri_put(&o, u, uri_param, hdr_name, hdr_value);
	return o.full ? -ENOSPC : (int)o.len;
}

int transfer_referto_rewrite(const struct transfer_referto *r, struct slice uri_param,
			     struct slice hdr_name, struct slice hdr_value, char *out, size_t cap)
{
	struct outbuf o = { .p = out, .cap = cap };
	const char *vend = r->value.p + r->value.len;
	const char *uri_end = r->na.uri.p + r->na.uri.len;

	out_put(&o, r->value.p, (size_t)(r->na.uri.p - r->value.p)); /* display name and '<' */
	if (!r->na.bracketed)
		out_str(&o, "<");
	uri_put(&o, &r->uri, uri_param, hdr_name, hdr_value);
	if (!r->na.bracketed)
		out_str(&o, ">");
	out_put(&o, uri_end, (size_t)(vend - uri_end)); /* '>' and header parameters */
	return o.full ? -ENOSPC : (int)o.len;
}
