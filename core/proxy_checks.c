/* proxy_checks.c - the first stage: SPEC §1 local handling of requests
 * (RFC 3261 §16.3): ACK of our own local reply absorbed, Request-URI scheme
 * (416, or 400 when unparseable), Max-Forwards 0 (483), OPTIONS to ourselves
 * (200, whatever the store says), loop detection (482), Proxy-Require (420
 * with Unsupported: we support no proxy extension), signed Record-Route on
 * top of an in-dialog request (t->in_authorized_dialog). Responses pass
 * through. The next hop (and its trust) is decided later, by the egress and
 * forward stages, for the Request-URI as the transfer stage leaves it.
 * Everything is read from the txn's parsed view. */
#include <errno.h>
#include <string.h>

#include "proxy.h"
#include "proxy_priv.h"
#include "sip_priv.h" /* token bytes */

/* An ACK for a final reply we generated carries our To tag (RFC 3261 §16.11:
 * a stateless proxy absorbs it instead of forwarding it). */
static bool ack_is_for_us(struct txn *t)
{
	const struct slice tag = txn_to_tag(t);
	char ours[PROXY_TAG_LEN];
	if (tag.len != PROXY_TAG_LEN)
		return false;
	proxy_to_tag(t, ours);
	return memcmp(tag.p, ours, PROXY_TAG_LEN) == 0;
}

static bool is_scheme_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '-' || c == '.';
}

/* RFC 3261 §16.3 item 2 (and §8.2.2.1): 416 for a scheme we do not route,
 * 400 for something that is not a URI at all (such as "<sip:...>"). */
static bool ruri_rejected(struct txn *t, const struct sip_uri **u)
{
	const struct slice ruri = t->msg.ruri;
	const ptrdiff_t colon = slice_find_char(ruri, ':');
	bool scheme_ok = colon > 0 && ((ruri.p[0] >= 'a' && ruri.p[0] <= 'z') ||
				       (ruri.p[0] >= 'A' && ruri.p[0] <= 'Z'));
	for (ptrdiff_t i = 1; scheme_ok && i < colon; i++)
		scheme_ok = is_scheme_char(ruri.p[i]);
	if (!scheme_ok) {
		txn_reply(t, 400, SLICE_LIT("Bad Request-URI"));
		return true;
	}
	const struct slice scheme = slice_make(ruri.p, (size_t)colon);
	const bool sip = slice_caseeq(scheme, SLICE_LIT("sip")) ||
			 slice_caseeq(scheme, SLICE_LIT("sips"));
	if (!(*u = txn_ruri(t))) {
		txn_reply(t, sip ? 400 : 416, sip ? SLICE_LIT("Bad Request-URI") : SLICE_NULL);
		return true;
	}
	if (!sip || !sip_uri_is_sip(*u)) {
		txn_reply(t, 416, SLICE_NULL);
		return true;
	}
	return false;
}

/* OPTIONS without a user part to one of our listen addresses or domains:
 * a probe of the proxy itself (SPEC §1). */
static bool options_to_us(const struct cfg *c, const struct sip_msg *m, const struct sip_uri *u)
{
	return m->method_id == SIP_METHOD_OPTIONS && u->user.len == 0 &&
	       (proxy_hostport_is_ours(c, u->host, u->port, u->has_port, false) ||
		cfg_is_our_domain(c, u->host.p, u->host.len));
}

static enum stage_rc options_reply(struct txn *t)
{
	txn_reply(t, 200, SLICE_NULL);
	txn_reply_hdr(t, SLICE_LIT("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, SUBSCRIBE, "
				   "NOTIFY, INFO, MESSAGE, PRACK, UPDATE, REGISTER, PUBLISH"));
	txn_reply_hdr(t, SLICE_LIT("Accept: application/sdp"));
	return STAGE_REPLY;
}

/* §16.3 item 4: a Via of ours whose loop part equals what we would compute now. */
static bool loop_detected(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	const size_t off = sizeof(PROXY_BRANCH_PREFIX) - 1 + 17;
	bool have = false;
	char loop[16];
	const struct sip_via *top = txn_top_via(t);
	for (unsigned i = m->first[SIP_HDR_VIA]; i != SIP_NO_HDR; i = sip_msg_next(m, i)) {
		/* only our own branches can match: look at the bytes before parsing */
		const struct slice value = m->hdrs[i].value;
		if (!memmem(value.p, value.len, PROXY_BRANCH_PREFIX, sizeof(PROXY_BRANCH_PREFIX) - 1))
			continue;
		struct sip_via parsed;
		const struct sip_via *v = &parsed;
		if (i == m->first[SIP_HDR_VIA])
			v = top;
		else if (sip_via_parse(value, &parsed) < 0)
			v = NULL;
		if (!v || !proxy_via_is_ours(t->cfg, v) || v->branch.len != PROXY_BRANCH_LEN)
			continue;
		if (!have) {
			/* branch layout: prefix, 16 hex, '.', 16 hex loop part */
			proxy_hex64(proxy_loop_hash(t), loop);
			have = true;
		}
		if (memcmp(v->branch.p + off, loop, sizeof(loop)) == 0)
			return true;
	}
	return false;
}

/* tags_out - the option tags of Proxy-Require value @v that are RFC 3261
 * tokens, comma-separated after *@n earlier ones. Anything else (a CR, LF or
 * NUL inside the value) is never echoed: it could forge a header line of our
 * reply (found by tests/fuzz/fuzz_chain). */
static void tags_out(struct proxy_out *o, struct slice v, unsigned *n)
{
	size_t i = 0;
	while (i < v.len) {
		while (i < v.len && (v.p[i] == ',' || sip_cc_is(v.p[i], SIP_CC_LWS)))
			i++;
		size_t start = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		size_t end = i;
		while (end > start && sip_cc_is(v.p[end - 1], SIP_CC_LWS))
			end--;
		bool token = end > start;
		for (size_t k = start; k < end && token; k++)
			token = sip_cc_is(v.p[k], SIP_CC_TOKEN);
		if (!token)
			continue;
		if ((*n)++)
			proxy_out_lit(o, ", ");
		proxy_out_slice(o, slice_make(v.p + start, end - start));
	}
}

/* §16.3 item 5: every Proxy-Require option tag is unsupported here. */
static bool proxy_require_rejected(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	size_t need = sizeof("Unsupported: ");
	unsigned n = 0;
	for (unsigned i = m->first[SIP_HDR_PROXY_REQUIRE]; i != SIP_NO_HDR;
	     i = sip_msg_next(m, i)) {
		need += m->hdrs[i].value.len + 2;
		n += m->hdrs[i].value.len != 0;
	}
	if (n == 0)
		return false;
	char *buf = txn_alloc(t, need);
	struct proxy_out o = { buf, 0, buf ? (uint32_t)need : 0, false };
	proxy_out_lit(&o, "Unsupported: ");
	unsigned tags = 0;
	for (unsigned i = m->first[SIP_HDR_PROXY_REQUIRE]; i != SIP_NO_HDR;
	     i = sip_msg_next(m, i))
		tags_out(&o, m->hdrs[i].value, &tags);
	txn_reply(t, 420, SLICE_NULL);
	if (!o.overflow && tags)
		txn_reply_hdr(t, slice_make(buf, o.len));
	return true;
}

/* SPEC §2: an in-dialog request whose top Route is our Record-Route with a valid ra= MAC. */
static bool authorized_dialog(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	struct slice ra;
	if (txn_to_tag(t).len == 0 || m->first[SIP_HDR_ROUTE] == SIP_NO_HDR)
		return false;
	const struct txn_route *r = txn_route(t); /* its first popped Route is the top one */
	return r->n_pop != 0 && sip_uri_param(&r->top_ours, SLICE_LIT("ra"), &ra) &&
	       proxy_rr_mac_ok(m->call_id, ra);
}

enum stage_rc proxy_checks_stage(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	if (!m->is_request)
		return STAGE_CONTINUE;
	if (!txn_top_via(t)) {
		proxy_count_drop(PROXY_DROP_BAD_VIA);
		return STAGE_DROP;
	}
	if (m->method_id == SIP_METHOD_ACK && ack_is_for_us(t)) {
		proxy_count_absorbed();
		return STAGE_DROP;
	}
	const struct sip_uri *u;
	if (ruri_rejected(t, &u))
		return STAGE_REPLY;
	const bool to_us = options_to_us(t->cfg, m, u);
	if (m->has_max_forwards && m->max_forwards == 0 && !to_us) {
		txn_reply(t, 483, SLICE_NULL);
		return STAGE_REPLY;
	}
	if (to_us)
		return options_reply(t);
	if (loop_detected(t)) {
		txn_reply(t, 482, SLICE_NULL);
		return STAGE_REPLY;
	}
	if (proxy_require_rejected(t))
		return STAGE_REPLY;
	/* only the rules stage reads it, and ACK and CANCEL are not its business
	 * (SPEC §2): no MAC to verify for them */
	if (m->method_id != SIP_METHOD_ACK && m->method_id != SIP_METHOD_CANCEL)
		t->in_authorized_dialog = authorized_dialog(t);
	return STAGE_CONTINUE;
}
