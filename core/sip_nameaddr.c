/* sip_nameaddr.c - name-addr / addr-spec values (From, To, Contact, Route,
 * Refer-To; RFC 3261 §20.10, §25.1) and generic ";name=value" parameter lists.
 * Display names are a quoted string or LWS-separated tokens; the URI itself is
 * not parsed here (sip_uri_parse does that). Folded values: CR/LF count as LWS.
 * Tolerated: no LWS before '<' (RFC 4475 lwsdisp), LWS inside <...> is trimmed,
 * raw UTF-8 in an unquoted display name. */
#include <errno.h>

#include "sip_priv.h"

/* quoted-string at p[*i] == '"', with quoted-pairs; *i ends past the quote. */
static int quoted_scan(const char *p, size_t *i, size_t n)
{
	size_t k = *i + 1;
	while (k < n) {
		if (p[k] == '\\') {
			if (k + 1 >= n)
				return -EBADMSG;
			k += 2;
			continue;
		}
		if (p[k] == '"') {
			*i = k + 1;
			return 0;
		}
		k++;
	}
	return -EBADMSG;
}

int sip_param_next(const char *p, size_t *ip, size_t n, struct slice *name, struct slice *value)
{
	size_t j = sip_skip_lws(p, *ip, n);
	if (j >= n || p[j] != ';') {
		*ip = j;
		return 0;
	}
	j = sip_skip_lws(p, j + 1, n);
	const size_t ns = j;
	while (j < n && sip_cc_is(p[j], SIP_CC_TOKEN))
		j++;
	if (j == ns)
		return -EBADMSG; /* ";;" or ";=x" (RFC 4475 badinv01) */
	*name = slice_make(p + ns, j - ns);
	*value = slice_make(p + j, 0);
	size_t k = sip_skip_lws(p, j, n);
	if (k < n && p[k] == '=') {
		k = sip_skip_lws(p, k + 1, n);
		const size_t vs = k;
		if (k < n && p[k] == '"') {
			if (quoted_scan(p, &k, n) < 0)
				return -EBADMSG;
		} else {
			while (k < n && sip_cc_is(p[k], SIP_CC_PVAL))
				k++;
			if (k == vs)
				return -EBADMSG;
		}
		*value = slice_make(p + vs, k - vs);
		j = k;
	}
	*ip = j;
	return 1;
}

bool sip_param_find(struct slice params, struct slice name, struct slice *value)
{
	size_t i = 0;
	struct slice k, v;
	while (sip_param_next(params.p, &i, params.len, &k, &v) == 1) {
		if (slice_caseeq(k, name)) {
			if (value)
				*value = v;
			return true;
		}
	}
	return false;
}

/* Display name before '<': a quoted string, or tokens and LWS. Leaves *i on
 * '<' and returns true, or returns false (addr-spec form, *i unchanged). */
static int display_scan(const char *p, size_t *ip, size_t n, struct slice *display)
{
	size_t i = *ip;
	if (p[i] == '"') {
		const size_t qs = i;
		if (quoted_scan(p, &i, n) < 0)
			return -EBADMSG; /* RFC 4475 quotbal */
		*display = slice_make(p + qs + 1, i - qs - 2);
		i = sip_skip_lws(p, i, n);
		if (i >= n || p[i] != '<')
			return -EBADMSG;
		*ip = i;
		return 1;
	}
	size_t k = i;
	/* tokens and LWS; raw UTF-8 is tolerated too (phones send it unquoted) */
	while (k < n && (sip_cc_is(p[k], SIP_CC_TOKEN | SIP_CC_LWS) || (unsigned char)p[k] >= 0x80))
		k++;
	if (k < n && p[k] == '<') {
		*display = slice_trim(slice_make(p + i, k - i));
		*ip = k;
		return 1;
	}
	return 0;
}

int sip_nameaddr_parse(struct slice s, struct sip_nameaddr *na)
{
#ifndef NDEBUG
	sip_parse_counts.nameaddr++;
#endif
	memset(na, 0, sizeof(*na));
	const char *p = s.p;
	const size_t n = s.len;
	size_t i = sip_skip_lws(p, 0, n);
	if (i >= n)
		return -EBADMSG;
	const int d = display_scan(p, &i, n, &na->display);
	if (d < 0)
		return d;
	if (d > 0) {
		const char *close = memchr(p + i, '>', n - i);
		if (!close)
			return -EBADMSG;
		na->uri = slice_trim(slice_make(p + i + 1, (size_t)(close - p) - i - 1));
		na->bracketed = true;
		i = (size_t)(close - p) + 1;
	} else {
		/* addr-spec: ';' starts header params (§20.10), so no URI params here */
		const size_t us = i;
		while (i < n && p[i] != ';' && sip_cc_is(p[i], SIP_CC_URI))
			i++;
		na->uri = slice_make(p + us, i - us);
	}
	if (na->uri.len == 0)
		return -EBADMSG;
	const size_t ps = sip_skip_lws(p, i, n);
	size_t pe = ps;
	struct slice k, v;
	int rc;
	while ((rc = sip_param_next(p, &i, n, &k, &v)) == 1)
		pe = i;
	if (rc < 0 || i != n)
		return -EBADMSG; /* junk after the URI, e.g. RFC 4475 baddn "Bell, Alexander <...>"
				  */
	na->params = slice_make(p + ps, pe - ps);
	return 0;
}
