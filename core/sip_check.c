/* sip_check.c - semantic checks after sip_parse (RFC 3261 §8.1.1, §8.2.2,
 * §16.3; RFC 4475 §3.1.2, §3.3): SIP/2.0 only, required headers present,
 * single-value headers once, CSeq method equal to the request method, and the
 * values a proxy relies on (Request-URI, From/To, every Via) well formed.
 * Responses never get an answer: any failure on them means DROP. No allocation. */
#include "sip_priv.h"

/* Both masks are constant expressions derived from SIP_HEADER_LIST. */
#define X(e, name, c, f) | (((f)&SIP_HF_SINGLE) ? 1ull << SIP_HDR_##e : 0ull)
static const uint64_t single_mask = 0ull SIP_HEADER_LIST(X);
#undef X
static const uint64_t required_mask = 1ull << SIP_HDR_VIA | 1ull << SIP_HDR_FROM |
				      1ull << SIP_HDR_TO | 1ull << SIP_HDR_CALL_ID |
				      1ull << SIP_HDR_CSEQ;

static enum sip_check fail(const char **why, const char *w, enum sip_check rc)
{
	*why = w;
	return rc;
}

static enum sip_check request_check(const struct sip_msg *m, struct sip_parsed *out, const char **why)
{
	if (!slice_eq(m->cseq_method, m->method)) {
		/* RFC 4475 mismatch02: for an unknown method 501 is the better answer */
		return fail(why, "CSeq method differs from request method",
			    m->method_id == SIP_METHOD_OTHER ? SIP_CHECK_NOT_IMPL
							     : SIP_CHECK_BAD_REQUEST);
	}
	if (sip_uri_parse(m->ruri, &out->ruri) < 0)
		return fail(why, "malformed Request-URI", SIP_CHECK_BAD_REQUEST);
	/* Headers in a Request-URI (RFC 4475 escruri) are tolerated: the
	 * forwarder strips them and never turns them into header fields. Real UAs
	 * (baresip 1.0) copy a whole Refer-To URI, headers included, into the
	 * transferee's INVITE, and its refgrant parameter must still be read. */
	return SIP_CHECK_OK;
}

static enum sip_check check_any(const struct sip_msg *m, struct sip_parsed *out, const char **why)
{
	if (!slice_caseeq(m->version, SLICE_LIT("SIP/2.0")))
		return fail(why, "unsupported SIP version", SIP_CHECK_BAD_VERSION);
	if ((m->seen & required_mask) != required_mask)
		return fail(why, "missing required header", SIP_CHECK_BAD_REQUEST);
	const uint64_t singles = m->seen & single_mask;
	for (uint64_t rest = singles; rest; rest &= rest - 1) { /* only the ids seen */
		const unsigned id = (unsigned)__builtin_ctzll(rest);
		if (m->first[id] != m->last[id])
			return fail(why, "single-value header repeated", SIP_CHECK_BAD_REQUEST);
	}
	if (!m->is_request && (m->status < 100 || m->status > 699))
		return fail(why, "bad status code", SIP_CHECK_BAD_REQUEST);
	if (sip_nameaddr_parse(m->hdrs[m->first[SIP_HDR_FROM]].value, &out->from) < 0 ||
	    sip_nameaddr_parse(m->hdrs[m->first[SIP_HDR_TO]].value, &out->to) < 0)
		return fail(why, "malformed From or To", SIP_CHECK_BAD_REQUEST);
	/* the top two Vias are kept (a response goes to the second); the others are only checked */
	struct sip_via rest;
	unsigned k = 0;
	for (unsigned i = m->first[SIP_HDR_VIA]; i != SIP_NO_HDR; i = sip_msg_next(m, i), k++) {
		struct sip_via *v = k == 0 ? &out->top_via : k == 1 ? &out->next_via : &rest;
		if (sip_via_parse(m->hdrs[i].value, v) < 0)
			return fail(why, "malformed Via", SIP_CHECK_BAD_REQUEST);
	}
	return m->is_request ? request_check(m, out, why) : SIP_CHECK_OK;
}

enum sip_check sip_msg_check(const struct sip_msg *m, const char **why)
{
	struct sip_parsed p;
	return sip_msg_check_parsed(m, &p, why);
}

enum sip_check sip_msg_check_parsed(const struct sip_msg *m, struct sip_parsed *out, const char **why)
{
	const char *w = "ok";
	enum sip_check rc = check_any(m, out, &w);
	if (rc != SIP_CHECK_OK && !m->is_request)
		rc = SIP_CHECK_DROP;
	if (why)
		*why = w;
	return rc;
}
