/* proxy_reply.c - stateless local replies (RFC 3261 §8.2.6, §16.11) and the
 * header-line emitter shared with the forwarder. A reply copies Via (the top
 * value gets received/rport, RFC 3581), From, To (with a To tag derived from
 * the request when absent, so a retransmission gets the same bytes and the
 * ACK can be recognised), Call-ID and CSeq, then the stage's extra lines and
 * Content-Length: 0. It goes to the source address: the source port when
 * rport was asked for, else the sent-by port (RFC 3261 §18.2.2, RFC 3581). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_priv.h"

void proxy_out_u32(struct proxy_out *o, uint32_t v)
{
	char buf[10];
	unsigned n = 0;
	do {
		buf[sizeof(buf) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	proxy_out_put(o, buf + sizeof(buf) - n, n);
}

struct slice proxy_reason_phrase(uint16_t code)
{
	static const struct {
		uint16_t code;
		const char *phrase;
	} phrases[] = {
		{ 100, "Trying" }, { 180, "Ringing" }, { 181, "Call Is Being Forwarded" },
		{ 182, "Queued" }, { 183, "Session Progress" }, { 200, "OK" },
		{ 202, "Accepted" }, { 300, "Multiple Choices" }, { 301, "Moved Permanently" },
		{ 302, "Moved Temporarily" }, { 305, "Use Proxy" }, { 380, "Alternative Service" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 402, "Payment Required" },
		{ 403, "Forbidden" }, { 404, "Not Found" }, { 405, "Method Not Allowed" },
		{ 406, "Not Acceptable" }, { 407, "Proxy Authentication Required" },
		{ 408, "Request Timeout" }, { 410, "Gone" }, { 413, "Request Entity Too Large" },
		{ 414, "Request-URI Too Long" }, { 415, "Unsupported Media Type" },
		{ 416, "Unsupported URI Scheme" }, { 420, "Bad Extension" },
		{ 421, "Extension Required" }, { 423, "Interval Too Brief" },
		{ 480, "Temporarily Unavailable" }, { 481, "Call/Transaction Does Not Exist" },
		{ 482, "Loop Detected" }, { 483, "Too Many Hops" }, { 484, "Address Incomplete" },
		{ 485, "Ambiguous" }, { 486, "Busy Here" }, { 487, "Request Terminated" },
		{ 488, "Not Acceptable Here" }, { 491, "Request Pending" }, { 493, "Undecipherable" },
		{ 500, "Server Internal Error" }, { 501, "Not Implemented" }, { 502, "Bad Gateway" },
		{ 503, "Service Unavailable" }, { 504, "Server Time-out" },
		{ 505, "Version Not Supported" }, { 513, "Message Too Large" },
		{ 600, "Busy Everywhere" }, { 603, "Decline" }, { 604, "Does Not Exist Anywhere" },
		{ 606, "Not Acceptable" },
	};
	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (phrases[i].code == code)
			return slice_from_cstr(phrases[i].phrase);
	return SLICE_LIT("Unknown");
}

/* ---------------------------------------------------------------- header lines */

static void emit_group(struct proxy_out *o, const struct sip_msg *m,
		       const struct proxy_hdr_plan *plan, unsigned i, unsigned j)
{
	bool all_kept = true;
	for (unsigned k = i; k < j; k++)
		all_kept = all_kept && plan->action[k] == PROXY_HDR_KEEP;
	if (all_kept) {
		proxy_out_put(o, m->buf + m->hdrs[i].line_off, m->hdrs[i].line_len);
		return;
	}
	bool first = true;
	for (unsigned k = i; k < j; k++) {
		if (plan->action[k] == PROXY_HDR_DROP)
			continue;
		if (first) {
			proxy_out_slice(o, m->hdrs[i].name);
			proxy_out_lit(o, ": ");
			first = false;
		} else {
			proxy_out_lit(o, ", ");
		}
		proxy_out_slice(o, plan->action[k] == PROXY_HDR_REPLACE ? plan->repl[k]
									: m->hdrs[k].value);
	}
	if (!first)
		proxy_out_lit(o, "\r\n");
}

void proxy_emit_hdrs(struct proxy_out *o, const struct sip_msg *m,
		     const struct proxy_hdr_plan *plan, uint64_t only)
{
	uint32_t cursor = m->start_line_len;
	unsigned i = 0;
	while (i < m->n_hdrs) {
		const struct sip_hdr *h = &m->hdrs[i];
		unsigned j = i + 1;
		while (j < m->n_hdrs && m->hdrs[j].line_off == h->line_off)
			j++;
		if (only == 0) {
			/* bytes the parser did not claim as a header line travel as they are */
			if (h->line_off > cursor && h->line_off <= m->hdr_end)
				proxy_out_put(o, m->buf + cursor, h->line_off - cursor);
			emit_group(o, m, plan, i, j);
			if (h->line_off + h->line_len > cursor)
				cursor = h->line_off + h->line_len;
		} else if (h->id < 64 && (only >> h->id) & 1) {
			emit_group(o, m, plan, i, j);
		}
		i = j;
	}
	if (only == 0 && cursor < m->hdr_end)
		proxy_out_put(o, m->buf + cursor, m->hdr_end - cursor);
}

/* ---------------------------------------------------------------- Via received/rport */

struct via_spans {
	const char *rport_end;  /* just after a bare "rport" name, or NULL */
	const char *recv_start; /* an existing ";received=..." piece, or NULL */
	const char *recv_end;
	struct slice recv_value;
};

/* Locate the bare rport and any received in @params (";a=b;rport"). */
static void via_spans_find(struct slice params, struct via_spans *s)
{
	memset(s, 0, sizeof(*s));
	size_t pos = 0;
	while (pos < params.len) {
		size_t end = pos + 1;
		bool quoted = false;
		while (end < params.len && (quoted || params.p[end] != ';')) {
			if (params.p[end] == '"')
				quoted = !quoted;
			end++;
		}
		struct slice piece = slice_make(params.p + pos + 1, end - pos - 1);
		const ptrdiff_t eq = slice_find_char(piece, '=');
		struct slice name = slice_trim(eq < 0 ? piece : slice_make(piece.p, (size_t)eq));
		if (eq < 0 && slice_caseeq(name, SLICE_LIT("rport"))) {
			s->rport_end = name.p + name.len;
		} else if (eq >= 0 && slice_caseeq(name, SLICE_LIT("received"))) {
			s->recv_start = params.p + pos;
			s->recv_end = params.p + end;
			s->recv_value = slice_trim(slice_advance(piece, (size_t)eq + 1));
		}
		pos = end;
	}
}

struct slice proxy_via_fixup(struct txn *t, struct slice value, const struct sip_via *v)
{
	char ip[PROXY_IP_TEXT_MAX];
	const size_t iplen = proxy_src_ip_text(t, ip);
	if (!iplen)
		return value;
	struct via_spans s = { 0 };
	const bool params_inside = v->params.len && v->params.p >= value.p &&
				   v->params.p + v->params.len <= value.p + value.len;
	if (params_inside)
		via_spans_find(v->params, &s);
	/* RFC 3581 §4: with rport, received is added even when sent-by is the source. */
	const bool want_received = v->has_rport || !proxy_host_is_src(t, v->host);
	const bool recv_ok = s.recv_start && slice_eq(s.recv_value, slice_make(ip, iplen));
	/* a received the sender wrote itself (stale) is replaced by ours */
	const bool drop_stale = s.recv_start && !recv_ok;
	const bool add_received = !recv_ok && (want_received || drop_stale);
	if (!add_received && !s.rport_end)
		return value;
	const size_t cap = value.len + iplen + 32;
	char *buf = txn_alloc(t, cap);
	if (!buf)
		return SLICE_NULL;
	struct proxy_out o = { buf, 0, (uint32_t)cap, false };
	const char *p = value.p, *end = value.p + value.len;
	const char *ins = s.rport_end;
	const char *del = drop_stale ? s.recv_start : NULL;
	while (ins || del) {
		if (ins && (!del || ins < del)) {
			proxy_out_put(&o, p, (size_t)(ins - p));
			proxy_out_lit(&o, "=");
			proxy_out_u32(&o, proxy_src_port(t));
			p = ins;
			ins = NULL;
		} else {
			proxy_out_put(&o, p, (size_t)(del - p));
			p = s.recv_end;
			del = NULL;
		}
	}
	proxy_out_put(&o, p, (size_t)(end - p));
	if (add_received) {
		proxy_out_lit(&o, ";received=");
		proxy_out_put(&o, ip, iplen);
	}
	return o.overflow ? SLICE_NULL : slice_make(buf, o.len);
}

/* ---------------------------------------------------------------- replies */

static int reply_plan(struct txn *t, const struct sip_via *v, struct proxy_hdr_plan *plan)
{
	const struct sip_msg *m = &t->msg;
	const unsigned via = m->first[SIP_HDR_VIA];
	const struct slice fixed = proxy_via_fixup(t, m->hdrs[via].value, v);
	if (!fixed.p)
		return -ENOSPC;
	if (fixed.p != m->hdrs[via].value.p) {
		plan->action[via] = PROXY_HDR_REPLACE;
		plan->repl[via] = fixed;
	}
	const unsigned to = m->first[SIP_HDR_TO];
	struct sip_nameaddr na;
	/* a To we cannot parse is echoed as it came: a tag glued to it means nothing */
	if (to != SIP_NO_HDR && sip_nameaddr_parse(m->hdrs[to].value, &na) == 0 &&
	    !sip_param_find(na.params, SLICE_LIT("tag"), &(struct slice){ 0 })) {
		const struct slice tv = m->hdrs[to].value;
		char *buf = txn_alloc(t, tv.len + 5 + PROXY_TAG_LEN);
		if (!buf)
			return -ENOSPC;
		memcpy(buf, tv.p, tv.len);
		memcpy(buf + tv.len, ";tag=", 5);
		proxy_to_tag(m, v, buf + tv.len + 5);
		plan->action[to] = PROXY_HDR_REPLACE;
		plan->repl[to] = slice_make(buf, tv.len + 5 + PROXY_TAG_LEN);
	}
	return 0;
}

int proxy_reply_build(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	struct sip_via v;
	t->out_len = 0;
	if (proxy_top_via(m, &v) < 0)
		return -EBADMSG;
	struct proxy_hdr_plan plan;
	memset(&plan, 0, sizeof(plan));
	if (reply_plan(t, &v, &plan) < 0)
		return -ENOSPC;
	uint16_t code = t->reply_code;
	if (code < 100 || code > 699)
		code = t->reply_code = 500;
	const struct slice reason = t->reply_reason.p && t->reply_reason.len
					    ? t->reply_reason
					    : proxy_reason_phrase(code);
	struct proxy_out o = { t->out, 0, t->out_cap, false };
	proxy_out_lit(&o, "SIP/2.0 ");
	proxy_out_u32(&o, code);
	proxy_out_lit(&o, " ");
	proxy_out_slice(&o, reason);
	proxy_out_lit(&o, "\r\n");
	const uint64_t only = 1ull << SIP_HDR_VIA | 1ull << SIP_HDR_FROM | 1ull << SIP_HDR_TO |
			      1ull << SIP_HDR_CALL_ID | 1ull << SIP_HDR_CSEQ;
	proxy_emit_hdrs(&o, m, &plan, only);
	for (unsigned i = 0; i < t->n_reply_hdrs && i < TXN_MAX_REPLY_HDRS; i++) {
		proxy_out_slice(&o, t->reply_hdrs[i]);
		proxy_out_lit(&o, "\r\n");
	}
	proxy_out_lit(&o, "Content-Length: 0\r\n\r\n");
	if (o.overflow)
		return -ENOSPC;
	/* §18.2.2 + RFC 3581: source IP; source port only when rport was asked for */
	const uint16_t port = v.has_rport ? proxy_src_port(t) : v.port ? v.port : PROXY_DEFAULT_PORT;
	memcpy(&t->dst, &t->src, sizeof(t->dst));
	t->dstlen = t->srclen;
	if (t->dst.ss_family == AF_INET)
		((struct sockaddr_in *)&t->dst)->sin_port = htons(port);
	else if (t->dst.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&t->dst)->sin6_port = htons(port);
	else
		return -EBADMSG;
	t->out_len = o.len;
	return 0;
}
