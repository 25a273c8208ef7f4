/* transfer_refer.c - the REFER half of SPEC §5: a sip: Refer-To (method
 * absent or INVITE) toward one of our domains is challenged when the REFER is
 * anonymous, checked against the rules when transfer.check_at_refer, and
 * rewritten with a signed token (grant: refgrant URI parameter + escaped
 * X-Sipx-Authidentity URI header; sipx: the sipXecs header parameter).
 * Foreign targets, sips:/tel: and trusted sources pass untouched. Never parks. */
#include "transfer_priv.h"

#include <errno.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "metrics.h"

static struct log_limit long_limit;

/* inner_uri - "<sip:IDENTITY;NAME=VALUE>" into the arena (transfer_identity_uri). */
static struct slice inner_uri(struct txn *t, struct slice identity, const char *name, struct slice value)
{
	size_t cap = transfer_identity_uri_max(identity, name, value);
	char *p = txn_alloc(t, cap);
	if (!p)
		return SLICE_NULL;
	int n = transfer_identity_uri(identity, name, value, p, cap);
	return n < 0 ? SLICE_NULL : slice_make(p, (size_t)n);
}

/* rewrite - build the new value with @uri_param / @hdr; SLICE_NULL when the arena is full. */
static struct slice rewrite(struct txn *t, const struct transfer_referto *r, struct slice uri_param,
			    struct slice hdr_name, struct slice hdr_value)
{
	size_t cap = r->value.len + 8 + uri_param.len + hdr_name.len + 2 + 3 * hdr_value.len;
	char *buf = txn_alloc(t, cap);
	if (!buf)
		return SLICE_NULL;
	int n = transfer_referto_rewrite(r, uri_param, hdr_name, hdr_value, buf, cap);
	return n < 0 ? SLICE_NULL : slice_make(buf, (size_t)n);
}

static struct slice rewrite_grant(struct txn *t, const struct transfer_referto *r, struct slice target)
{
	uint64_t exp = now_unix_sec() + t->cfg->transfer.grant_ttl;
	size_t cap = 9 + transfer_grant_len(t->identity.len, exp);
	char *p = txn_alloc(t, cap);
	if (!p)
		return SLICE_NULL;
	memcpy(p, "refgrant=", 9);
	int n = transfer_grant_issue(transfer_keys(), t->identity, target, exp, p + 9, cap - 9);
	if (n < 0)
		return SLICE_NULL;
	struct slice param = slice_make(p, 9 + (size_t)n), token = slice_make(p + 9, (size_t)n);
	struct slice hdr = inner_uri(t, t->identity, "grant", token);
	if (!hdr.p)
		return SLICE_NULL;
	struct slice v = rewrite(t, r, param, SLICE_LIT("X-Sipx-Authidentity"), hdr);
	if (v.p && v.len > TRANSFER_REFERTO_MAX) {
		/* over the budget: keep the carrier every UA copies back (the URI parameter) */
		v = rewrite(t, r, param, SLICE_NULL, SLICE_NULL);
		uint64_t sup;
		if (v.p && v.len > TRANSFER_REFERTO_MAX && log_limit_pass(&long_limit, &sup))
			log_warn("transfer", "rewritten Refer-To over %d characters len=%zu suppressed=%llu",
				 TRANSFER_REFERTO_MAX, v.len, (unsigned long long)sup);
	}
	if (v.p)
		transfer_count(TRANSFER_M_ISSUED);
	return v;
}

static struct slice rewrite_sipx(struct txn *t, const struct transfer_referto *r)
{
	const struct transfer_keys *k = transfer_keys();
	char sig[64], esc[3 * 64];
	int n = transfer_sipx_sign(k->secret, k->secret_len, now_unix_sec(), false, SLICE_NULL, SLICE_NULL,
				   t->identity, sig, sizeof(sig));
	if (n < 0)
		return SLICE_NULL;
	/* escaped once as a URI parameter of the identity URL, then again as a
	 * header parameter of the Refer-To URI: "%253A%253A" (reference §1.3) */
	int e = transfer_escape(slice_make(sig, (size_t)n), esc, sizeof(esc));
	if (e < 0)
		return SLICE_NULL;
	struct slice hdr = inner_uri(t, t->identity, "signature", slice_make(esc, (size_t)e));
	if (!hdr.p)
		return SLICE_NULL;
	struct slice v = rewrite(t, r, SLICE_NULL, SLICE_LIT("X-sipX-Authidentity"), hdr);
	if (v.p)
		transfer_count(TRANSFER_M_ISSUED);
	return v;
}

/* check_at_refer - SPEC §5: "403 Requires ..." now rather than a failed transfer later. */
static bool denied_at_refer(struct txn *t, const struct sip_uri *target)
{
	char missing[256];
	uint64_t none[2] = { 0, 0 };
	enum auth_rules_verdict v =
		auth_rules_check(t->cfg, target, false, t->perms_known ? t->perms : none, missing, sizeof(missing));
	if (v != AUTH_RULES_DENY)
		return false;
	struct slice reason = txn_printf(t, "Requires %s", missing);
	txn_reply(t, 403, reason.p ? reason : SLICE_NULL);
	return true;
}

enum stage_rc transfer_refer_run(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	uint16_t idx = m->first[SIP_HDR_REFER_TO];
	if (idx == SIP_NO_HDR)
		return STAGE_CONTINUE; /* not ours to judge (reference §1.2 S2) */
	if (m->last[SIP_HDR_REFER_TO] != idx) {
		txn_reply(t, 400, SLICE_LIT("Multiple Refer-To")); /* RFC 3515 §2.4.1: exactly one */
		return STAGE_REPLY;
	}
	struct slice value = m->hdrs[idx].value;
	char *scratch = txn_alloc(t, value.len + 4);
	struct transfer_referto r;
	if (!scratch)
		return stage_reply_unavailable(t); /* arena full */
	if (transfer_referto_parse(value, scratch, value.len + 4, &r) < 0) {
		txn_reply(t, 400, SLICE_LIT("Bad Refer-To"));
		return STAGE_REPLY;
	}
	if (!transfer_referto_applies(&r) || !cfg_is_our_domain(t->cfg, r.uri.host.p, r.uri.host.len))
		return STAGE_CONTINUE; /* foreign, sips:, tel:, other method: untouched, never challenged */
	if (t->id_source == TXN_ID_TRUSTED)
		return STAGE_CONTINUE; /* trusted elements carry no user identity: forward untouched */
	if (t->id_source == TXN_ID_NONE || t->identity.len == 0) {
		metrics_inc(transfer_metrics.challenges);
		auth_challenge(t, false);
		return STAGE_REPLY;
	}
	if (t->cfg->transfer.check_at_refer && denied_at_refer(t, &r.uri))
		return STAGE_REPLY;

	char target[TRANSFER_TARGET_MAX];
	int tn = transfer_target_canon(&r.uri, target, sizeof(target));
	if (tn <= 0) {
		txn_reply(t, 400, SLICE_LIT("Bad Refer-To"));
		return STAGE_REPLY;
	}
	struct slice v = t->cfg->transfer.identity == CFG_TRANSFER_GRANT
				 ? rewrite_grant(t, &r, slice_make(target, (size_t)tn))
				 : rewrite_sipx(t, &r);
	if (!v.p)
		return stage_reply_unavailable(t); /* arena full: cannot forward a REFER we must sign */
	if (txn_hdr_replace(t, idx, v) < 0)
		return stage_reply_unavailable(t); /* never forward the Refer-To we were to sign */
	metrics_inc(transfer_metrics.rewrites);
	return STAGE_CONTINUE;
}
