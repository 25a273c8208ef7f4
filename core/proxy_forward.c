/* proxy_forward.c - the last stage: build the outgoing request from slices of
 * the input plus new bytes (the input is never edited) and relay responses
 * (SPEC §1, RFC 3261 §16.6, §16.11, §16.7 for responses, RFC 3581).
 * Request: rebuilt request line (single SPs, URI headers stripped), our Via
 * with a deterministic branch, a Record-Route (signed with ra= when the chain
 * marked the dialog authorized) on dialog-forming requests, received/rport on
 * the sender's Via, Max-Forwards - 1 (70 when absent), our Routes popped,
 * stage edits applied, Content-Length added when absent and there is a body.
 * Too big for the output slot, or more header values than our parser takes
 * (SIP_MAX_HDRS): 513. Response: our Via popped, sent to the
 * next Via's received/rport or sent-by. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "dest.h"
#include "proxy.h"
#include "proxy_priv.h"

static bool is_dialog_forming(struct txn *t)
{
	const uint8_t id = t->msg.method_id;
	return (id == SIP_METHOD_INVITE || id == SIP_METHOD_SUBSCRIBE || id == SIP_METHOD_REFER) &&
	       txn_to_tag(t).len == 0;
}

/* The Request-URI to send: the stages' one or the received one, without
 * URI headers (RFC 4475 escruri: never forward "?Route=..." there). */
static struct slice ruri_out(struct txn *t)
{
	struct slice ruri = t->edits.ruri.p ? t->edits.ruri : t->msg.ruri;
	struct sip_uri edited;
	const struct sip_uri *u = &edited;
	if (t->edits.ruri.p ? sip_uri_parse(ruri, &edited) < 0 : !(u = txn_ruri(t)))
		return ruri;
	if (u->headers.len && u->headers.p > ruri.p && u->headers.p <= ruri.p + ruri.len)
		ruri.len = (size_t)(u->headers.p - ruri.p);
	return ruri;
}

/* RFC 5923: a Via ;alias on a connection lets requests toward its sent-by
 * reuse that connection. */
static void via_alias(const struct txn *t, const struct sip_via *top)
{
	if (!sip_param_find(top->params, SLICE_LIT("alias"), &(struct slice){ 0 }))
		return;
	struct sockaddr_storage sa;
	socklen_t len;
	const uint16_t port = top->port ? top->port
			      : t->rx_transport == CFG_TRANSPORT_TLS ? PROXY_DEFAULT_TLS_PORT : PROXY_DEFAULT_PORT;
	if (sockaddr_from_ip(top->host, port, &sa, &len))
		conn_alias_add(&t->src, &sa, t->rx_transport);
}

/* Per-value plan: stage edits first, then our own changes, which win. */
/* The name a TLS next hop's certificate must carry (RFC 5922): the HOST of the
 * chosen route destination (sips:HOST;maddr=IP included); NULL (verify the
 * address itself) for IP literals and Request-URI/Route hosts. */
static const char *tls_name_of(const struct txn_route *r)
{
	if (r->transport != CFG_TRANSPORT_TLS || !r->dest || !r->dest->host[0])
		return NULL;
	struct in6_addr ip;
	if (inet_pton(AF_INET, r->dest->host, &ip) == 1 || inet_pton(AF_INET6, r->dest->host, &ip) == 1)
		return NULL;
	return r->dest->host;
}

static int request_plan(struct txn *t, const struct sip_via *top, const struct txn_route *r,
			struct proxy_hdr_plan *plan)
{
	const struct sip_msg *m = &t->msg;
	proxy_hdr_plan_init(plan);
	const struct txn_edits *e = &t->edits;
	for (unsigned i = 0; i < e->n_replaced; i++) {
		plan->action[e->replaced_idx[i]] = PROXY_HDR_REPLACE;
		plan->repl[e->replaced_idx[i]] = e->replaced[i];
	}
	/* a removal wins over a replacement of the same value */
	for (unsigned w = 0; w < sizeof(e->removed) / sizeof(e->removed[0]); w++)
		for (uint64_t bits = e->removed[w]; bits; bits &= bits - 1)
			plan->action[w * 64 + (unsigned)__builtin_ctzll(bits)] = PROXY_HDR_DROP;
	const unsigned via = m->first[SIP_HDR_VIA];
	if (t->rx_transport != CFG_TRANSPORT_UDP)
		via_alias(t, top);
	const struct slice fixed = proxy_via_fixup(t, m->hdrs[via].value, top);
	if (!fixed.p)
		return -ENOSPC;
	plan->action[via] = PROXY_HDR_REPLACE;
	plan->repl[via] = fixed;
	const unsigned mf = m->first[SIP_HDR_MAX_FORWARDS];
	if (mf != SIP_NO_HDR) {
		char *buf = txn_alloc(t, 10);
		if (!buf)
			return -ENOSPC;
		struct proxy_out num = { buf, 0, 10, false };
		proxy_out_u32(&num, m->max_forwards ? m->max_forwards - 1 : 0);
		const struct slice v = slice_make(buf, num.len);
		plan->action[mf] = PROXY_HDR_REPLACE;
		plan->repl[mf] = v;
	}
	unsigned i = m->first[SIP_HDR_ROUTE];
	for (unsigned n = 0; n < r->n_pop && i != SIP_NO_HDR; n++, i = sip_msg_next(m, i))
		plan->action[i] = PROXY_HDR_DROP;
	return 0;
}

/* out_values_fit - what request_build writes stays within SIP_MAX_HDRS header values
 * (the parser's limit: ours on a spiral, and every instance's behind the balancer).
 * A request that arrived with nearly the limit would otherwise leave with our Via and
 * Record-Route past it. @ours: the values request_build adds itself. */
static bool out_values_fit(const struct txn *t, const struct proxy_hdr_plan *plan, unsigned ours)
{
	const struct sip_msg *m = &t->msg;
	unsigned n = ours + (t->edits.n_added < TXN_MAX_ADD_HDRS ? t->edits.n_added : TXN_MAX_ADD_HDRS);
	if (n + m->n_hdrs <= SIP_MAX_HDRS)
		return true; /* the common case: no need to look at the plan */
	for (unsigned k = 0; k < m->n_hdrs && k < SIP_MAX_HDRS; k++)
		n += plan->action[k] != PROXY_HDR_DROP;
	return n <= SIP_MAX_HDRS;
}

/* "SIP/2.0/UDP" etc. for our Via */
static void via_proto(struct proxy_out *o, enum cfg_transport tr)
{
	if (tr == CFG_TRANSPORT_TCP)
		proxy_out_lit(o, "SIP/2.0/TCP ");
	else if (tr == CFG_TRANSPORT_TLS)
		proxy_out_lit(o, "SIP/2.0/TLS ");
	else
		proxy_out_lit(o, "SIP/2.0/UDP ");
}

/* The Record-Route of a TLS side is a SIPS URI only for a SIPS Request-URI:
 * RFC 3261 §16.6 step 4 wants one that is not SIPS when the request leaves
 * without a SIPS URI, and UAs such as baresip 1.0 (libre) cannot send to a
 * sips: route at all in a sip: dialog. */
static bool ruri_is_sips(struct txn *t)
{
	struct slice ruri = t->edits.ruri.p ? t->edits.ruri : t->msg.ruri;
	return ruri.len > 5 && slice_caseeq(slice_make(ruri.p, 5), SLICE_LIT("sips:"));
}

/* one Record-Route for listen address @idx: ;transport=tcp for TCP, for TLS
 * ;transport=tls (or sips: for a SIPS Request-URI) */
static int record_route(struct txn *t, struct proxy_out *o, unsigned idx)
{
	const enum cfg_transport tr = t->cfg->listen[idx < t->cfg->n_listen ? idx : 0].transport;
	const bool sips = tr == CFG_TRANSPORT_TLS && ruri_is_sips(t);
	if (sips)
		proxy_out_lit(o, "Record-Route: <sips:");
	else
		proxy_out_lit(o, "Record-Route: <sip:");
	proxy_out_slice(o, proxy_listen_text_at(t->cfg, idx));
	if (tr == CFG_TRANSPORT_TCP)
		proxy_out_lit(o, ";transport=tcp");
	else if (tr == CFG_TRANSPORT_TLS && !sips)
		proxy_out_lit(o, ";transport=tls");
	proxy_out_lit(o, ";lr");
	if (t->dialog_authorized) {
		char mac[PROXY_RR_MAC_CHARS];
		proxy_rr_mac(t->msg.call_id, mac);
		proxy_out_lit(o, ";ra=");
		proxy_out_put(o, mac, sizeof(mac));
	}
	proxy_out_lit(o, ">\r\n");
	return 0;
}

static int request_build(struct txn *t, const struct sip_via *top, const struct txn_route *r)
{
	const struct sip_msg *m = &t->msg;
	struct proxy_hdr_plan plan;
	if (request_plan(t, top, r, &plan) < 0)
		return -ENOSPC;
	/* SPEC §9: the Via names the transport and address the request leaves by */
	const unsigned out_idx = proxy_listen_for(t->cfg, r->transport, t->listen_idx, r->dst.ss_family);
	const bool rr = is_dialog_forming(t);
	/* our Via, one Record-Route per side, Max-Forwards and Content-Length when absent */
	const unsigned ours = 1 + (rr ? 1u + (out_idx != t->listen_idx) : 0u) +
			      (m->first[SIP_HDR_MAX_FORWARDS] == SIP_NO_HDR) + (!m->has_content_length && m->body.len);
	if (!out_values_fit(t, &plan, ours))
		return -E2BIG;
	const uint32_t cap = t->out_cap < TXN_OUT_MAX ? t->out_cap : TXN_OUT_MAX;
	struct proxy_out o = { t->out, 0, cap, false };
	proxy_out_slice(&o, m->method);
	proxy_out_lit(&o, " ");
	proxy_out_slice(&o, ruri_out(t));
	proxy_out_lit(&o, " SIP/2.0\r\nVia: ");
	via_proto(&o, r->transport);
	proxy_out_slice(&o, proxy_listen_text_at(t->cfg, out_idx));
	proxy_out_lit(&o, ";branch=");
	char branch[PROXY_BRANCH_LEN];
	proxy_branch(t, top, branch);
	proxy_out_put(&o, branch, sizeof(branch));
	proxy_out_lit(&o, "\r\n");
	/* before every existing Record-Route line: ours is the topmost value.
	 * Changing listen address or transport: one per side, the outgoing one
	 * on top (RFC 5658), both popped in-dialog (both name our addresses). */
	if (rr &&
	    (record_route(t, &o, out_idx) < 0 ||
	     (out_idx != t->listen_idx && record_route(t, &o, t->listen_idx) < 0)))
		return -ENOSPC;
	if (m->first[SIP_HDR_MAX_FORWARDS] == SIP_NO_HDR)
		proxy_out_lit(&o, "Max-Forwards: 70\r\n"); /* RFC 3261 §16.6 item 3 */
	proxy_emit_hdrs(&o, m, &plan, 0);
	for (unsigned i = 0; i < t->edits.n_added && i < TXN_MAX_ADD_HDRS; i++) {
		proxy_out_slice(&o, t->edits.added[i]);
		proxy_out_lit(&o, "\r\n");
	}
	if (!m->has_content_length && m->body.len) {
		proxy_out_lit(&o, "Content-Length: ");
		proxy_out_u32(&o, (uint32_t)m->body.len);
		proxy_out_lit(&o, "\r\n");
	}
	proxy_out_lit(&o, "\r\n");
	proxy_out_slice(&o, m->body);
	if (o.overflow)
		return -ENOSPC;
	t->out_len = o.len;
	memcpy(&t->dst, &r->dst, sizeof(t->dst));
	t->dstlen = r->dstlen;
	t->dst_transport = r->transport;
	t->out_listen_idx = (uint16_t)out_idx;
	t->dst_may_connect = true;
	t->dst_tls_name = tls_name_of(r);
	return 0;
}

enum stage_rc proxy_forward_stage(struct txn *t)
{
	if (!t->msg.is_request)
		return proxy_relay_response(t);
	const struct sip_msg *m = &t->msg;
	t->out_len = 0;
	const struct sip_via *top = txn_top_via(t);
	if (!top) {
		proxy_count_drop(PROXY_DROP_BAD_VIA);
		return STAGE_DROP;
	}
	if (m->has_max_forwards && m->max_forwards == 0) {
		txn_reply(t, 483, SLICE_NULL); /* when the checks stage is not in the chain */
		return STAGE_REPLY;
	}
	const struct txn_route *r = txn_route(t);
	const int rc = r->rc;
	t->next_hop_trusted = rc == 0 && cfg_is_trusted(t->cfg, (const struct sockaddr *)&r->dst);
	if (rc == -ENOENT) {
		txn_reply(t, 503, SLICE_LIT("No Route"));
		return STAGE_REPLY;
	}
	if (rc == -EHOSTUNREACH) {
		/* every destination of the route is down (SPEC §10) */
		txn_reply(t, 503, SLICE_LIT("No Destination Available"));
		struct slice ra = txn_printf(t, "Retry-After: %u", health_retry_after(t->cfg));
		if (ra.p)
			txn_reply_hdr(t, ra);
		return STAGE_REPLY;
	}
	if (rc == -EAGAIN) {
		/* the next hop's name is being resolved (RFC 3263): come back in a second */
		txn_reply(t, 503, SLICE_LIT("Resolving Next Hop"));
		txn_reply_hdr(t, SLICE_LIT("Retry-After: 1"));
		return STAGE_REPLY;
	}
	if (rc == -ENXIO) {
		txn_reply(t, 503, SLICE_LIT("Next Hop Not Resolved")); /* counted by the resolver */
		return STAGE_REPLY;
	}
	if (rc == -EBADMSG) {
		txn_reply(t, 400, SLICE_LIT("Bad Route"));
		return STAGE_REPLY;
	}
	if (rc < 0) {
		proxy_count_drop(PROXY_DROP_BAD_DESTINATION);
		return STAGE_DROP;
	}
	if (request_build(t, top, r) < 0) {
		t->out_len = 0;
		txn_reply(t, 513, SLICE_NULL);
		return STAGE_REPLY;
	}
	proxy_count_forwarded(PROXY_DIR_REQUEST);
	return STAGE_SENT;
}

/* ---------------------------------------------------------------- responses */

/* Where the next Via wants its response: received or sent-by, rport or port. */
static bool next_hop_of(const struct sip_via *v, struct sockaddr_storage *ss, socklen_t *len)
{
	const struct slice host = v->received.len ? v->received : v->host;
	uint32_t port = v->port ? v->port : PROXY_DEFAULT_PORT;
	uint32_t rport;
	if (v->rport.len && slice_to_u32(v->rport, &rport) && rport > 0 && rport <= 65535)
		port = rport;
	return sockaddr_from_ip(host, (uint16_t)port, ss, len);
}

enum stage_rc proxy_relay_response(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	const struct sip_via *top = txn_top_via(t);
	t->out_len = 0;
	if (!top || !proxy_via_is_ours(t->cfg, top)) {
		proxy_count_drop(PROXY_DROP_NOT_OUR_VIA);
		return STAGE_DROP;
	}
	const unsigned first = m->first[SIP_HDR_VIA];
	if (sip_msg_next(m, first) == SIP_NO_HDR) {
		proxy_count_drop(PROXY_DROP_NO_NEXT_VIA);
		return STAGE_DROP;
	}
	const struct sip_via *next = txn_second_via(t);
	if (!next) {
		proxy_count_drop(PROXY_DROP_BAD_VIA);
		return STAGE_DROP;
	}
	struct sockaddr_storage dst;
	socklen_t dstlen;
	/* a hostname sent-by without received would need DNS: not here */
	if (!next_hop_of(next, &dst, &dstlen) ||
	    sockaddr_is_bad_destination((const struct sockaddr *)&dst)) {
		proxy_count_drop(PROXY_DROP_BAD_DESTINATION);
		return STAGE_DROP;
	}
	struct proxy_hdr_plan plan;
	proxy_hdr_plan_init(&plan);
	plan.action[first] = PROXY_HDR_DROP;
	const uint32_t cap = t->out_cap < TXN_OUT_MAX ? t->out_cap : TXN_OUT_MAX;
	struct proxy_out o = { t->out, 0, cap, false };
	proxy_out_put(&o, m->buf, m->start_line_len);
	proxy_emit_hdrs(&o, m, &plan, 0);
	proxy_out_lit(&o, "\r\n");
	proxy_out_slice(&o, m->body);
	if (o.overflow) {
		proxy_count_drop(PROXY_DROP_TOO_BIG);
		return STAGE_DROP;
	}
	t->out_len = o.len;
	memcpy(&t->dst, &dst, sizeof(dst));
	t->dstlen = dstlen;
	/* a stream Via: back over the connection it came on (RFC 3261 §18.2.2) */
	t->dst_transport = proxy_transport_of_via(next);
	t->out_listen_idx = (uint16_t)proxy_listen_for(t->cfg, t->dst_transport, t->listen_idx, dst.ss_family);
	proxy_count_forwarded(PROXY_DIR_RESPONSE);
	return STAGE_SENT;
}
