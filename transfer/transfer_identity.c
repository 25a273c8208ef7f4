/* transfer_identity.c - the token a request carries back becomes its identity
 * (SPEC §2 item 2, §5). Grant mode: the INVITE's Request-URI `refgrant` or
 * the last X-Sipx-Authidentity `<sip:ID;grant=TOKEN>`, checked against the
 * Request-URI target, bound once to the dialog in the store, consumed (removed)
 * before forwarding. sipx mode: the last X-Sipx-Authidentity signature on any
 * request but ACK/CANCEL. Invalid tokens are ignored (counted by reason); a
 * grant replayed in another dialog gets 403. Trusted sources are not evaluated. */
#include "transfer_priv.h"

#include <errno.h>
#include <string.h>

#include "log.h"

static struct log_limit arena_limit;

static enum stage_rc arena_full(struct txn *t)
{
	uint64_t n;
	if (log_limit_pass(&arena_limit, &n))
		log_error("transfer", "txn arena full suppressed=%llu", (unsigned long long)n);
	return stage_reply_unavailable(t);
}

/* unescape_arena - %-decode @s into the arena; SLICE_NULL on a bad escape or a full arena. */
static struct slice unescape_arena(struct txn *t, struct slice s)
{
	char *buf = txn_alloc(t, s.len ? s.len : 1);
	if (!buf)
		return SLICE_NULL;
	int n = sip_unescape(s, buf, s.len);
	return n < 0 ? SLICE_NULL : slice_make(buf, (size_t)n);
}

/* hdr_uri - parse an X-Sipx-Authidentity value `<sip:...>`; false when it is not a sip: name-addr. */
static bool hdr_uri(struct slice value, struct sip_uri *u)
{
	struct sip_nameaddr na;
	return sip_nameaddr_parse(value, &na) == 0 && sip_uri_parse(na.uri, u) == 0 &&
	       slice_caseeq(u->scheme, SLICE_LIT("sip"));
}

static struct transfer_ctx *ctx_new(struct txn *t)
{
	struct transfer_ctx *x = txn_alloc(t, sizeof(*x));
	if (!x)
		return NULL;
	memset(x, 0, offsetof(struct transfer_ctx, user));
	t->stage_ctx[t->stage_idx] = x;
	return x;
}

/* ---------------------------------------------------------------- grant mode */

/* grant_collect - find the grant(s) of an INVITE and record their removal.
 * *ruri_tok / *hdr_tok get the unescaped tokens (SLICE_NULL when absent). */
static int grant_collect(struct txn *t, const struct sip_uri *ruri, struct slice *ruri_tok,
			 struct slice *hdr_tok)
{
	const struct sip_msg *m = &t->msg;
	struct slice v;
	*ruri_tok = *hdr_tok = SLICE_NULL;
	if (sip_uri_param(ruri, SLICE_LIT("refgrant"), &v)) {
		*ruri_tok = unescape_arena(t, v);
		size_t cap = ruri->whole.len;
		char *buf = txn_alloc(t, cap);
		if (!buf)
			return -ENOMEM;
		int n = transfer_uri_rewrite(ruri, SLICE_NULL, SLICE_NULL, SLICE_NULL, buf, cap);
		if (n <= 0)
			return -ENOMEM;
		txn_ruri_set(t, slice_make(buf, (size_t)n)); /* consumed or not, a grant goes no further */
	}
	for (unsigned i = 0; i < m->n_hdrs; i++) {
		struct sip_uri u;
		if (m->hdrs[i].id != SIP_HDR_X_SIPX_AUTHIDENTITY || !hdr_uri(m->hdrs[i].value, &u) ||
		    !sip_uri_param(&u, SLICE_LIT("grant"), &v))
			continue;
		txn_hdr_remove(t, i);
		if (&m->hdrs[i] == sip_msg_hdr(m, SIP_HDR_X_SIPX_AUTHIDENTITY)) /* the instance that counts */
			*hdr_tok = unescape_arena(t, v);
	}
	return 0;
}

/* grant_start - first run on an INVITE in grant mode. Returns CONTINUE with
 * x == NULL when there is nothing (valid) to bind, else sets up the ctx. */
static enum stage_rc grant_start(struct txn *t, struct transfer_ctx **xp)
{
	const struct sip_uri *ruri = txn_ruri(t);
	if (!ruri)
		return STAGE_CONTINUE;
	struct slice tok[2];
	if (grant_collect(t, ruri, &tok[0], &tok[1]) < 0)
		return arena_full(t);
	if (t->id_source == TXN_ID_TRUSTED || (!tok[0].p && !tok[1].p))
		return STAGE_CONTINUE;
	char target[TRANSFER_TARGET_MAX];
	int tn = transfer_target_canon(ruri, target, sizeof(target));
	struct transfer_grant g;
	enum transfer_result first = TRANSFER_RESULT_COUNT, r = TRANSFER_MALFORMED;
	uint64_t now = now_unix_sec();
	for (int i = 0; i < 2; i++) {
		if (!tok[i].p || (i == 1 && tok[0].p && slice_eq(tok[0], tok[1])))
			continue;
		r = transfer_grant_verify(transfer_keys(), tok[i], tn > 0 ? slice_make(target, (size_t)tn)
									 : SLICE_LIT(""),
					  now, &g);
		if (r == TRANSFER_OK)
			break;
		if (first == TRANSFER_RESULT_COUNT)
			first = r;
	}
	if (r != TRANSFER_OK) {
		transfer_count_result(first != TRANSFER_RESULT_COUNT ? first : r);
		return STAGE_CONTINUE; /* ignored: the request goes on as if it had none */
	}
	struct transfer_ctx *x = ctx_new(t);
	if (!x)
		return arena_full(t);
	struct slice callid = t->msg.call_id, tag = txn_from_tag(t);
	x->identity = txn_copy(t, slice_make(g.id, g.id_len));
	x->dialog = txn_printf(t, "%.*s;%.*s", SLICE_FMT(callid), SLICE_FMT(tag));
	x->jti = g.jti; /* points into the arena (unescaped token) */
	x->exp = g.exp;
	if (!x->identity.p || !x->dialog.p)
		return arena_full(t);
	x->phase = TRANSFER_PHASE_BIND;
	*xp = x;
	return STAGE_CONTINUE;
}

/* ---------------------------------------------------------------- sipx mode */

static enum stage_rc sipx_start(struct txn *t, struct transfer_ctx **xp)
{
	const struct sip_msg *m = &t->msg;
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_X_SIPX_AUTHIDENTITY); /* the last one (SIP_HF_LAST) */
	if (!h || t->id_source == TXN_ID_TRUSTED)
		return STAGE_CONTINUE;
	const unsigned idx = (unsigned)(h - m->hdrs);
	struct sip_uri u;
	struct slice sig;
	char sigbuf[64];
	int sn;
	if (!hdr_uri(m->hdrs[idx].value, &u) || u.host.len == 0 ||
	    !sip_uri_param(&u, SLICE_LIT("signature"), &sig) ||
	    (sn = sip_unescape(sig, sigbuf, sizeof(sigbuf))) < 0) {
		transfer_count_result(TRANSFER_MALFORMED);
		return STAGE_CONTINUE;
	}
	/* the identity as sipXecs signs it: user@host[:port] as written */
	const char *id_end = u.host.p + u.host.len;
	if (u.has_port)
		while (id_end < u.whole.p + u.whole.len && (*id_end == ':' || (*id_end >= '0' && *id_end <= '9')))
			id_end++;
	struct slice signed_id = u.user.len ? slice_make(u.user.p, (size_t)(id_end - u.user.p)) : SLICE_NULL;
	if (u.password.len)
		signed_id = SLICE_NULL; /* "user:pw@host" is never an identity */
	enum transfer_result r =
		transfer_sipx_verify(transfer_keys()->secret, transfer_keys()->secret_len,
				     slice_make(sigbuf, (size_t)sn), signed_id, txn_from_tag(t), m->call_id,
				     now_unix_sec(), t->cfg->transfer.sipx_validity);
	if (r != TRANSFER_OK) {
		transfer_count_result(r);
		return STAGE_CONTINUE;
	}
	/* normalize like sipXecs: earlier instances go */
	for (unsigned i = 0; i < idx; i++)
		if (m->hdrs[i].id == SIP_HDR_X_SIPX_AUTHIDENTITY)
			txn_hdr_remove(t, i);
	struct transfer_ctx *x = ctx_new(t);
	char id[TRANSFER_TARGET_MAX];
	int n = x ? transfer_target_canon(&u, id, sizeof(id)) : -ENOMEM; /* user unescaped, host lowercased */
	if (n == -ENOMEM)
		return arena_full(t);
	if (n <= 0 || (size_t)n >= TRANSFER_ID_MAX) {
		transfer_count_result(TRANSFER_MALFORMED);
		x->phase = TRANSFER_PHASE_REFER;
		return STAGE_CONTINUE;
	}
	x->identity = txn_copy(t, slice_make(id, (size_t)n));
	if (!x->identity.p)
		return arena_full(t);
	x->phase = TRANSFER_PHASE_USER;
	*xp = x;
	return STAGE_CONTINUE;
}

/* ---------------------------------------------------------------- phases */

static void identity_set(struct txn *t, struct transfer_ctx *x)
{
	t->identity = x->identity;
	t->id_source = TXN_ID_TRANSFER;
	store_perms_held(x->user.perms, t->perms);
	t->perms_known = true;
}

enum stage_rc transfer_identity_run(struct txn *t, struct transfer_ctx *x)
{
	if (!x) {
		enum stage_rc rc;
		bool grant = t->cfg->transfer.identity == CFG_TRANSFER_GRANT;
		if (grant && t->msg.method_id != SIP_METHOD_INVITE)
			return STAGE_CONTINUE;
		rc = grant ? grant_start(t, &x) : sipx_start(t, &x);
		if (rc != STAGE_CONTINUE || !x)
			return rc;
	}
	enum store_rc src;
	switch (x->phase) {
	case TRANSFER_PHASE_BIND: {
		uint64_t now = now_unix_sec();
		unsigned ttl = (unsigned)((x->exp > now ? x->exp - now : 0) + 60); /* outlives EXP, skew margin */
		src = store_jti_bind(t, &x->bind_op, x->jti, x->dialog, ttl);
		if (src == STORE_PARKED)
			return STAGE_PARK;
		if (src == STORE_REJECT) {
			transfer_count_result(TRANSFER_REPLAYED);
			x->phase = TRANSFER_PHASE_REFER;
			txn_reply(t, 403, SLICE_LIT("Transfer Grant Already Used"));
			return STAGE_REPLY;
		}
		if (src != STORE_OK)
			return stage_reply_unavailable(t);
		x->phase = TRANSFER_PHASE_USER;
	}
		/* fall through */
	case TRANSFER_PHASE_USER:
		src = store_user_get(t, &x->user_op, x->identity, &x->user);
		if (src == STORE_PARKED)
			return STAGE_PARK;
		x->phase = TRANSFER_PHASE_REFER;
		if (src == STORE_NOT_FOUND) {
			transfer_count_result(TRANSFER_UNKNOWN_USER);
			return STAGE_CONTINUE;
		}
		if (src != STORE_OK)
			return stage_reply_unavailable(t);
		identity_set(t, x);
		transfer_count(TRANSFER_M_ACCEPTED);
		return STAGE_CONTINUE;
	default:
		return STAGE_CONTINUE;
	}
}
