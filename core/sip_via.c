/* sip_via.c - one Via value (RFC 3261 §20.42, §25.1; RFC 3581 rport; RFC 5118
 * §4.5 received with or without IPv6 brackets) and the CSeq value (§20.16).
 * LWS, folds included, is allowed around '/' ';' '='. Not done: LWS around the
 * sent-by ':' (never seen in practice), validating the transport token list. */
#include <errno.h>

#include "sip_priv.h"

static size_t token_end(const char *p, size_t i, size_t n)
{
	while (i < n && sip_cc_is(p[i], SIP_CC_TOKEN))
		i++;
	return i;
}

/* sent-protocol = name SLASH version SLASH transport; SLASH = SWS "/" SWS */
static int proto_scan(const char *p, size_t *ip, size_t n, struct sip_via *v)
{
	size_t i = *ip;
	const size_t ps = i;
	for (int part = 0; part < 3; part++) {
		if (part > 0) {
			i = sip_skip_lws(p, i, n);
			if (i >= n || p[i] != '/')
				return -EBADMSG;
			i = sip_skip_lws(p, i + 1, n);
		}
		const size_t ts = i;
		i = token_end(p, i, n);
		if (i == ts)
			return -EBADMSG;
		if (part == 2)
			v->transport = slice_make(p + ts, i - ts);
	}
	v->proto = slice_make(p + ps, i - ps);
	*ip = i;
	return 0;
}

int sip_via_parse(struct slice s, struct sip_via *v)
{
#ifndef NDEBUG
	sip_parse_counts.via++;
#endif
	memset(v, 0, sizeof(*v));
	const char *p = s.p;
	const size_t n = s.len;
	size_t i = sip_skip_lws(p, 0, n);
	int rc = proto_scan(p, &i, n, v);
	if (rc < 0)
		return rc;
	const size_t hs = sip_skip_lws(p, i, n);
	if (hs == i)
		return -EBADMSG; /* LWS between sent-protocol and sent-by is required */
	i = hs;
	bool has_port, v4, v6;
	rc = sip_hostport_scan(p, &i, n, &v->host, &v->port, &has_port, &v4, &v6);
	if (rc < 0)
		return rc;
	const size_t ps = sip_skip_lws(p, i, n);
	size_t pe = ps;
	struct slice k, val;
	while ((rc = sip_param_next(p, &i, n, &k, &val)) == 1) {
		pe = i;
		if (slice_caseeq(k, SLICE_LIT("branch"))) {
			if (val.len == 0)
				return -EBADMSG;
			v->branch = val;
		} else if (slice_caseeq(k, SLICE_LIT("received"))) {
			v->received = val;
		} else if (slice_caseeq(k, SLICE_LIT("rport"))) {
			v->has_rport = true;
			v->rport = val;
		}
	}
	if (rc < 0 || i != n)
		return -EBADMSG;
	v->params = slice_make(p + ps, pe - ps);
	return 0;
}

int sip_cseq_parse(struct slice s, uint32_t *num, struct slice *method)
{
	const char *p = s.p;
	const size_t n = s.len;
	size_t i = sip_skip_lws(p, 0, n);
	const size_t ds = i;
	uint64_t v = 0;
	while (i < n && sip_cc_is(p[i], SIP_CC_DIGIT)) {
		v = v * 10 + (uint64_t)(p[i++] - '0');
		if (v > UINT32_MAX)
			return -EBADMSG; /* RFC 4475 scalar02/scalarlg */
	}
	if (i == ds)
		return -EBADMSG;
	const size_t ms = sip_skip_lws(p, i, n);
	if (ms == i)
		return -EBADMSG;
	const size_t me = token_end(p, ms, n);
	if (me == ms || sip_skip_lws(p, me, n) != n)
		return -EBADMSG;
	*num = (uint32_t)v;
	*method = slice_make(p + ms, me - ms);
	return 0;
}
