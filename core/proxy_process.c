/* proxy_process.c - runs the stage chain on one message and turns its verdict
 * into bytes to send (SPEC §1): local replies, relayed responses, counted
 * drops. Malformed requests: 400 when the top Via can route a reply, 505/501
 * from sip_msg_check, else a counted drop. What the stages derive (branch, To
 * tag, RR MAC) lives in proxy_ids.c, the output bytes in proxy_forward.c and
 * proxy_reply.c; this file only sequences them. */
#include <errno.h>
#include <string.h>

#include "proxy.h"
#include "flood.h"
#include "proxy_priv.h"

/* ---------------------------------------------------------------- the chain */

/* A local reply, once a stage (or the malformed check) asked for one. */
static enum stage_rc reply_finish(struct txn *t)
{
	t->out_len = 0;
	/* Never answer a response, and never answer an ACK (RFC 3261 §17). */
	if (!t->msg.is_request || t->msg.method_id == SIP_METHOD_ACK) {
		proxy_count_drop(PROXY_DROP_REPLY_SUPPRESSED);
		return STAGE_DROP;
	}
	const int rc = proxy_reply_build(t);
	if (rc < 0) {
		proxy_count_drop(rc == -ENOSPC ? PROXY_DROP_TOO_BIG : PROXY_DROP_BAD_VIA);
		t->out_len = 0;
		return STAGE_DROP;
	}
	proxy_count_reply(t->reply_code);
	return STAGE_REPLY;
}

/* Malformed input, before any stage sees it. Returns true when handled. */
static bool malformed_handle(struct txn *t, enum stage_rc *verdict)
{
	const struct sip_msg *m = &t->msg;
	const char *why = NULL;
	enum sip_check chk;
	if (t->parse_rc < 0) {
		chk = SIP_CHECK_BAD_REQUEST;
		/* "SIP/7.0" is a version we do not speak; "SIP/2.0  " (RFC 4475
		 * trws) is a syntax error of a version we do speak */
		const struct slice ver = slice_trim(m->version);
		if (slice_has_caseprefix(ver, SLICE_LIT("SIP/")) &&
		    !slice_eq(ver, SLICE_LIT("SIP/2.0")))
			chk = SIP_CHECK_BAD_VERSION;
	} else {
		/* what the check parses becomes the parsed view: no stage parses it again */
		chk = sip_msg_check_parsed(m, &t->view.p, &why);
		if (chk == SIP_CHECK_OK) {
			txn_view_checked(t);
			return false;
		}
		/* the view holds half-parsed parts: parse again on demand */
		t->view.looked = t->view.ok = 0;
	}
	/* an unparsable datagram is counted once, by the pipeline, as
	 * referee_rx_drops_total{reason="malformed"}; here only what parsed */
	if (!m->is_request || m->method.len == 0 || chk == SIP_CHECK_DROP) {
		/* responses are discarded silently (RFC 4475 scalarlg, bigcode) */
		if (t->parse_rc >= 0)
			proxy_count_drop(PROXY_DROP_MALFORMED);
		*verdict = STAGE_DROP;
		return true;
	}
	if (!txn_top_via(t)) {
		/* no Via to route an answer with: nothing else we can do */
		if (t->parse_rc >= 0)
			proxy_count_drop(PROXY_DROP_MALFORMED);
		*verdict = STAGE_DROP;
		return true;
	}
	uint16_t code = 400;
	if (chk == SIP_CHECK_BAD_VERSION)
		code = 505;
	else if (chk == SIP_CHECK_NOT_IMPL)
		code = 501;
	txn_reply(t, code, code == 400 && why ? slice_from_cstr(why) : SLICE_NULL);
	*verdict = reply_finish(t);
	return true;
}

enum stage_rc proxy_process(const struct stage_table *st, struct txn *t)
{
	if (t->stage_idx == 0) {
		t->out_len = 0;
		/* SPEC §13: a source over its rate gets nothing back, not even a 400 */
		if (!flood_admit(t))
			return STAGE_DROP;
		enum stage_rc verdict;
		if (malformed_handle(t, &verdict))
			return verdict;
	}
	const bool request = t->msg.is_request;
	for (unsigned i = t->stage_idx; i < st->n; i++) {
		const struct stage *s = &st->stages[i];
		t->stage_idx = (uint8_t)i;
		if (s->requests_only && !request)
			continue;
		switch (s->fn(t)) {
		case STAGE_CONTINUE:
			continue;
		case STAGE_PARK:
			return STAGE_PARK;
		case STAGE_SENT:
			return STAGE_SENT;
		case STAGE_DROP:
			t->out_len = 0;
			return STAGE_DROP;
		case STAGE_REPLY:
			return reply_finish(t);
		}
	}
	t->stage_idx = (uint8_t)st->n;
	if (!request)
		return proxy_relay_response(t);
	/* The forwarder always ends the chain; getting here is a wiring bug. */
	proxy_count_drop(PROXY_DROP_NO_FORWARDER);
	t->out_len = 0;
	return STAGE_DROP;
}
