/* proxy_reply.c - stateless local replies (RFC 3261 §8.2.6, §16.11) and the
 * header-line emitter shared with the forwarder. A reply copies Via (the top
 * value gets received/rport, RFC 3581), From, To (with a To tag derived from
 * the request when absent, so a retransmission gets the same bytes and the
 * ACK can be recognised), Call-ID and CSeq, then the stage's extra lines and
 * Content-Length: 0. It goes to the source address: the source port when
 * rport was asked for, else the sent-by port (RFC 3261 §18.2.2, RFC 3581).
 * The header lines are written by proxy_emit.c, shared with the forwarder. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_priv.h"

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
	const struct sip_nameaddr *na = txn_to(t);
	/* a To we cannot parse is echoed as it came: a tag glued to it means nothing */
	if (to != SIP_NO_HDR && na && !sip_param_find(na->params, SLICE_LIT("tag"), &(struct slice){ 0 })) {
		const struct slice tv = m->hdrs[to].value;
		char *buf = txn_alloc(t, tv.len + 5 + PROXY_TAG_LEN);
		if (!buf)
			return -ENOSPC;
		memcpy(buf, tv.p, tv.len);
		memcpy(buf + tv.len, ";tag=", 5);
		proxy_to_tag(t, buf + tv.len + 5);
		plan->action[to] = PROXY_HDR_REPLACE;
		plan->repl[to] = slice_make(buf, tv.len + 5 + PROXY_TAG_LEN);
	}
	return 0;
}

int proxy_reply_build(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	const struct sip_via *v = txn_top_via(t);
	t->out_len = 0;
	if (!v)
		return -EBADMSG;
	struct proxy_hdr_plan plan;
	proxy_hdr_plan_init(&plan);
	if (reply_plan(t, v, &plan) < 0)
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
	/* §18.2.2 + RFC 3581: source IP; source port only when rport was asked
	 * for, or always on a stream (the connection the request came on) */
	const bool stream = t->rx_transport != CFG_TRANSPORT_UDP;
	const uint16_t port = v->has_rport || stream ? proxy_src_port(t) : v->port ? v->port : PROXY_DEFAULT_PORT;
	t->dst_transport = t->rx_transport;
	t->out_listen_idx = t->listen_idx;
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
