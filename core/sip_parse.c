/* sip_parse.c - one-pass, zero-copy parse of a SIP datagram: start line, headers
 * (CRLF or bare LF, folding, compact names, comma lists split outside quotes and
 * <>), Content-Length framing, CSeq/Max-Forwards/Call-ID (RFC 3261 §7, §18.3, §20).
 * Not here: URI/Via/name-addr grammar (lazy sub-parsers); nothing is allocated.
 * Start-line and value errors are returned only after all headers are read (so a
 * 400 can be routed); structural ones stop at once. Every read checks index < n. */
#include <errno.h>
#include <stddef.h>

#include "sip_priv.h"

/* Largest UDP payload we take; a bigger buffer (a 64 KiB header line, say)
 * is refused outright instead of being scanned. */
#define SIP_PARSE_MAX_DATAGRAM 65535u

static void msg_reset(struct sip_msg *m)
{
	/* hdrs[] is left alone: only hdrs[0..n_hdrs) is meaningful. */
	memset(m, 0, offsetof(struct sip_msg, hdrs));
	memset(&m->n_hdrs, 0, sizeof(*m) - offsetof(struct sip_msg, n_hdrs));
	memset(m->first, 0xff, sizeof(m->first));
	memset(m->last, 0xff, sizeof(m->last));
}

/* Decimal digits only, value fits 32 bits (leading zeros allowed). */
static inline bool digits_u32(const char *p, size_t n, uint32_t *out)
{
	if (n == 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!sip_cc_is(p[i], SIP_CC_DIGIT))
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* "SIP/" 1*DIGIT "." 1*DIGIT, "SIP" in any case (RFC 3261 §7.1). */
static bool version_is_valid(const char *p, size_t n)
{
	if (n < 7 || !slice_has_caseprefix(slice_make(p, n), SLICE_LIT("SIP/")))
		return false;
	size_t i = 4;
	const size_t major = i;
	while (i < n && sip_cc_is(p[i], SIP_CC_DIGIT))
		i++;
	if (i == major || i >= n || p[i] != '.')
		return false;
	const size_t minor = ++i;
	while (i < n && sip_cc_is(p[i], SIP_CC_DIGIT))
		i++;
	return i > minor && i == n;
}

/* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2). A missing
 * "SP reason" is tolerated; a code that is not 3 digits in 100..699 is not. */
static int status_line_parse(const char *p, size_t n, struct sip_msg *m)
{
	size_t i = 0;
	while (i < n && p[i] != ' ')
		i++;
	if (!version_is_valid(p, i) || i + 4 > n)
		return -EBADMSG;
	m->version = slice_make(p, i);
	const char *code = p + i + 1;
	if (!sip_cc_is(code[0], SIP_CC_DIGIT) || !sip_cc_is(code[1], SIP_CC_DIGIT) ||
	    !sip_cc_is(code[2], SIP_CC_DIGIT))
		return -EBADMSG;
	i += 4;
	if (i < n && p[i] != ' ')
		return -EBADMSG; /* a 4th digit or junk glued to the code */
	m->status = (uint32_t)(code[0] - '0') * 100 + (uint32_t)(code[1] - '0') * 10 +
		    (uint32_t)(code[2] - '0');
	if (m->status < 100 || m->status > 699)
		return -EBADMSG;
	m->reason = i < n ? slice_make(p + i + 1, n - i - 1) : slice_make(p + n, 0);
	return 0;
}

/* Request-Line = Method SP Request-URI SP SIP-Version (§7.1), single SPs
 * only: RFC 4475 lwsstart/trws/lwsruri are rejected, which it allows. */
static int request_line_parse(const char *p, size_t n, struct sip_msg *m)
{
	size_t i = 0;
	while (i < n && sip_cc_is(p[i], SIP_CC_TOKEN))
		i++;
	m->method = slice_make(p, i);
	m->method_id = (uint8_t)sip_method_lookup(m->method);
	if (i == 0 || i >= n || p[i] != ' ')
		return -EBADMSG;
	const size_t u = ++i;
	while (i < n && sip_cc_is(p[i], SIP_CC_URI))
		i++;
	m->ruri = slice_make(p + u, i - u);
	if (i == u || i >= n || p[i] != ' ')
		return -EBADMSG;
	i++;
	/* set only when well formed: a caller seeing "SIP/7.0" answers 505, while
	 * "SIP/2.0  " (RFC 4475 trws) or "lr SIP/2.0" (lwsruri) is a plain 400 */
	if (!version_is_valid(p + i, n - i))
		return -EBADMSG;
	m->version = slice_make(p + i, n - i);
	return 0;
}

/* Finds the start line's end and parses it. A grammar error inside the line
 * is returned in *err so that the headers are still parsed (enough to answer
 * 400); only a datagram without any line end fails at once. */
static int start_line_parse(const char *p, size_t n, struct sip_msg *m, int *err)
{
	const char *nl = memchr(p, '\n', n);
	if (!nl)
		return -EBADMSG;
	size_t end = (size_t)(nl - p);
	m->start_line_len = (uint32_t)end + 1;
	if (end > 0 && p[end - 1] == '\r')
		end--;
	m->is_request = !(end >= 4 && slice_has_caseprefix(slice_make(p, end), SLICE_LIT("SIP/")));
	*err = m->is_request ? request_line_parse(p, end, m) : status_line_parse(p, end, m);
	return 0;
}

/* ---------------------------------------------------------------- header values */

static int hdr_add(struct sip_msg *m, uint8_t id, struct slice name, struct slice value,
		   uint32_t line_off, uint32_t line_len)
{
	if (m->n_hdrs >= SIP_MAX_HDRS)
		return -E2BIG;
	const uint16_t idx = m->n_hdrs++;
	m->hdrs[idx] = (struct sip_hdr){id, name, value, line_off, line_len};
	if (m->first[id] == SIP_NO_HDR)
		m->first[id] = idx;
	m->last[id] = idx;
	m->seen |= 1ull << id;
	return 0;
}

static inline struct slice value_trim(const char *p, size_t s, size_t e)
{
	while (s < e && sip_cc_is(p[s], SIP_CC_LWS))
		s++;
	while (e > s && sip_cc_is(p[e - 1], SIP_CC_LWS))
		e--;
	return slice_make(p + s, e - s);
}

/* Decodes the scalar headers; a bad value becomes a deferred -EBADMSG. */
static int scalar_decode(struct sip_msg *m, uint8_t id, struct slice v, bool is_first)
{
	uint32_t num;
	struct slice meth;
	switch (id) {
	case SIP_HDR_CONTENT_LENGTH:
		if (!digits_u32(v.p, v.len, &num))
			return -EBADMSG;
		if (m->has_content_length && m->content_length != num)
			return -EBADMSG; /* RFC 4475 mcl01: conflicting framing */
		m->has_content_length = true;
		m->content_length = num;
		return 0;
	case SIP_HDR_CSEQ:
		if (sip_cseq_parse(v, &num, &meth) < 0)
			return -EBADMSG;
		if (is_first) {
			m->cseq = num;
			m->cseq_method = meth;
		}
		return 0;
	case SIP_HDR_MAX_FORWARDS:
		if (!digits_u32(v.p, v.len, &num))
			return -EBADMSG;
		if (is_first) {
			m->has_max_forwards = true;
			m->max_forwards = num;
		}
		return 0;
	case SIP_HDR_CALL_ID:
		if (v.len == 0)
			return -EBADMSG;
		for (size_t i = 0; i < v.len; i++)
			if ((unsigned char)v.p[i] <= 0x20 || v.p[i] == 0x7f)
				return -EBADMSG; /* no LWS or CTL inside a Call-ID word */
		if (is_first)
			m->call_id = v;
		return 0;
	default:
		return 0;
	}
}

/* The bytes comma_split acts on: quotes and their escape, angle brackets, the comma. */
static const bool list_byte[256] = { ['"'] = true, ['\\'] = true, ['<'] = true, ['>'] = true, [','] = true };

/* Splits a comma list at commas outside quoted strings and <...>; empty
 * elements (as in "a,,b") are skipped, an all-empty value is kept once.
 * A value without any comma is taken whole: quote balance is then left to
 * the sub-parser (sip_nameaddr_parse rejects it). */
static int comma_split(struct sip_msg *m, uint8_t id, struct slice name, const char *p, size_t vs,
		       size_t ve, uint32_t off, uint32_t len, int *err)
{
	size_t s = vs;
	bool in_q = false, in_a = false, any = false;
	int rc;
	if (ve <= vs || !memchr(p + vs, ',', ve - vs)) /* common case: one value */
		return hdr_add(m, id, name, value_trim(p, vs, ve), off, len);
	for (size_t k = vs; k < ve; k++) {
		while (k < ve && !list_byte[(unsigned char)p[k]])
			k++; /* most bytes of a list are none of the five: skip them at one load each */
		if (k == ve)
			break;
		const char c = p[k];
		if (in_q) {
			if (c == '\\')
				k++;
			else if (c == '"')
				in_q = false;
			continue;
		}
		if (c == '"') {
			in_q = true;
		} else if (c == '<') {
			in_a = true;
		} else if (c == '>') {
			in_a = false;
		} else if (c == ',' && !in_a) {
			const struct slice v = value_trim(p, s, k);
			if (v.len) {
				if ((rc = hdr_add(m, id, name, v, off, len)) < 0)
					return rc;
				any = true;
			}
			s = k + 1;
		}
	}
	if (in_q || in_a)
		*err = *err ? *err : -EBADMSG; /* unbalanced: keep it for 400, fail later */
	const struct slice v = value_trim(p, s, ve);
	if (v.len || !any)
		return hdr_add(m, id, name, v, off, len);
	return 0;
}

/* ---------------------------------------------------------------- header section */

/* Parses header lines from @pos up to the empty line. Structural errors
 * (no ':', bad name, no empty line, too many values) return at once;
 * value errors land in *err and parsing goes on. */
static int headers_parse(const char *p, size_t n, size_t pos, struct sip_msg *m, int *err,
			 size_t *body_off)
{
	for (;;) {
		if (pos >= n)
			return -EBADMSG; /* header section never ended */
		if (p[pos] == '\n' || (p[pos] == '\r' && pos + 1 < n && p[pos + 1] == '\n')) {
			m->hdr_end = (uint32_t)pos;
			*body_off = pos + (p[pos] == '\r' ? 2 : 1);
			return 0;
		}
		size_t i = pos;
		while (i < n && sip_cc_is(p[i], SIP_CC_TOKEN))
			i++;
		const struct slice name = slice_make(p + pos, i - pos);
		while (i < n && sip_cc_is(p[i], SIP_CC_WS))
			i++;
		if (name.len == 0 || i >= n || p[i] != ':')
			return -EBADMSG;
		const size_t vs = ++i;
		size_t eol;
		for (;;) { /* logical line: continuation lines start with SP/HTAB */
			const char *nl = memchr(p + i, '\n', n - i);
			if (!nl)
				return -EBADMSG;
			eol = (size_t)(nl - p);
			if (eol + 1 < n && sip_cc_is(p[eol + 1], SIP_CC_WS)) {
				i = eol + 1;
				continue;
			}
			break;
		}
		const uint32_t off = (uint32_t)pos, len = (uint32_t)(eol + 1 - pos);
		const uint8_t id = (uint8_t)sip_hdr_id_lookup(name);
		int rc;
		if (sip_hdr_flags(id) & SIP_HF_COMMA) {
			rc = comma_split(m, id, name, p, vs, eol, off, len, err);
		} else {
			const bool is_first = m->first[id] == SIP_NO_HDR;
			const struct slice v = value_trim(p, vs, eol);
			rc = hdr_add(m, id, name, v, off, len);
			if (rc == 0 && id != SIP_HDR_OTHER) {
				const int e = scalar_decode(m, id, v, is_first);
				if (e < 0 && *err == 0)
					*err = e;
			}
		}
		if (rc < 0)
			return rc;
		pos = eol + 1;
	}
}

int sip_parse(const char *buf, size_t len, struct sip_msg *m)
{
	msg_reset(m);
	if (len > SIP_PARSE_MAX_DATAGRAM)
		return -EMSGSIZE;
	/* RFC 3261 §7.5: CRLFs before the start line are ignored (keep-alives). */
	size_t skip = 0;
	while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	const char *p = buf + skip;
	const size_t n = len - skip;
	m->buf = p;
	if (n == 0)
		return -EBADMSG;
	int err = 0;
	int rc = start_line_parse(p, n, m, &err);
	if (rc < 0)
		return rc;
	size_t body_off = 0;
	rc = headers_parse(p, n, m->start_line_len, m, &err, &body_off);
	if (rc < 0)
		return rc;
	if (err < 0)
		return err;
	if (m->has_content_length) {
		/* UDP (§18.3): Content-Length past the datagram is an error, bytes
		 * after the body are not part of the message. */
		if (m->content_length > n - body_off)
			return -EMSGSIZE;
		m->body = slice_make(p + body_off, m->content_length);
	} else {
		m->body = slice_make(p + body_off, n - body_off);
	}
	m->len = (uint32_t)(body_off + m->body.len);
	return (int)(skip + m->len);
}
