/* transfer_egress.c - egress hygiene (SPEC §5 last paragraph, RFC 3325):
 * toward a non-trusted next hop a request loses X-Sipx-Authidentity,
 * Proxy-Authorization for our realm and P-Preferred-Identity; toward a
 * trusted one it gains `P-Asserted-Identity: <sip:IDENTITY>` when it has a
 * user identity. P-Asserted-Identity from a non-trusted source never passes.
 * The stage decides t->next_hop_trusted (txn_next_hop_trusted: the route for
 * the Request-URI as the transfer stage left it); edits only. */
#include "transfer.h"

#include <string.h>

#include "auth.h"
#include "transfer_priv.h"

static bool pai_already_added(const struct txn *t)
{
	for (unsigned i = 0; i < t->edits.n_added; i++)
		if (slice_has_caseprefix(t->edits.added[i], SLICE_LIT("P-Asserted-Identity:")))
			return true;
	return false;
}

void transfer_egress(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	if (!m->is_request)
		return;
	const bool hop_trusted = t->next_hop_trusted;
	const bool src_trusted = t->id_source == TXN_ID_TRUSTED;
	const struct slice our_realm = slice_from_cstr(t->cfg->realm);
	for (unsigned i = 0; i < m->n_hdrs; i++) {
		struct slice realm;
		switch (m->hdrs[i].id) {
		case SIP_HDR_X_SIPX_AUTHIDENTITY:
		case SIP_HDR_P_PREFERRED_IDENTITY:
			if (!hop_trusted)
				txn_hdr_remove(t, i);
			break;
		case SIP_HDR_PROXY_AUTHORIZATION:
			if (!hop_trusted && auth_creds_realm(m->hdrs[i].value, &realm) && slice_eq(realm, our_realm))
				txn_hdr_remove(t, i);
			break;
		case SIP_HDR_P_ASSERTED_IDENTITY:
			if (!src_trusted)
				txn_hdr_remove(t, i); /* RFC 3325 §5: only trusted elements assert */
			break;
		default:
			break;
		}
	}
	const bool has_user = (t->id_source == TXN_ID_DIGEST || t->id_source == TXN_ID_TRANSFER) &&
			      t->identity.len > 0;
	if (hop_trusted && has_user && !pai_already_added(t)) {
		struct slice line = txn_printf(t, "P-Asserted-Identity: <sip:%.*s>", SLICE_FMT(t->identity));
		if (line.p)
			txn_hdr_add(t, line);
	}
}

enum stage_rc transfer_egress_stage(struct txn *t)
{
	/* decided here, after the transfer stage's Request-URI edits; the
	 * forwarder reuses the same decision */
	if (t->msg.is_request)
		t->next_hop_trusted = txn_next_hop_trusted(t);
	transfer_egress(t);
	return STAGE_CONTINUE;
}
