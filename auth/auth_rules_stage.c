/* auth_rules_stage.c - the rules stage (SPEC §1 relaying, §4): after identity and
 * transfer, decide allow / 407 / 403 for requests other than ACK and CANCEL.
 * Trusted sources and authorized dialogs skip it. Also the caller-ID
 * anti-spoofing challenge (auth.challenge_local_from), whose user lookup may
 * park the txn. It never authenticates anything itself (auth_identity.c does). */
#include <errno.h>
#include <string.h>

#include "auth_priv.h"
#include "log.h"
#include "metrics.h"

struct rules_ctx {
	struct store_op op;
	char id[STORE_ID_MAX];
	size_t id_len;
	struct store_user user;
};

/* from_uri - the From URI (of the parsed view's From), parsed; false when absent or malformed. */
static bool from_uri(struct txn *t, struct sip_uri *u)
{
	const struct sip_nameaddr *na = txn_from(t);
	return na && sip_uri_parse(na->uri, u) == 0 && sip_uri_is_sip(u);
}

static bool host_is_ours(const struct cfg *c, const struct sip_uri *u)
{
	if (u->host_is_ipv4 || u->host_is_ipv6 || u->host.len == 0)
		return false; /* an IP literal is never one of our domains (SPEC §1) */
	struct slice h = u->host;
	if (h.len > 1 && h.p[h.len - 1] == '.')
		h.len--;
	return cfg_is_our_domain(c, h.p, h.len);
}

static enum stage_rc deny(struct txn *t, struct slice reason)
{
	metrics_inc(auth_g.m_denials);
	txn_reply(t, 403, reason);
	return STAGE_REPLY;
}

static enum stage_rc challenge(struct txn *t)
{
	auth_challenge(t, t->nonce_stale);
	return STAGE_REPLY;
}

static enum stage_rc allow(struct txn *t)
{
	t->dialog_authorized = true;
	return STAGE_CONTINUE;
}

/* local_from_begin - the From of an anonymous out-of-dialog INVITE names one of
 * our domains: start the lookup of user@<canonical domain>. NULL: nothing to check. */
static struct rules_ctx *local_from_begin(struct txn *t)
{
	const struct cfg *c = t->cfg;
	struct sip_uri fu;
	if (!from_uri(t, &fu) || fu.user.len == 0 || !host_is_ours(c, &fu))
		return NULL;
	struct rules_ctx *x = txn_alloc(t, sizeof(*x));
	if (!x)
		return NULL;
	memset(x, 0, offsetof(struct rules_ctx, user));
	size_t dlen = strlen(c->domains[0]);
	int n = sip_unescape(fu.user, x->id, sizeof(x->id));
	if (n <= 0 || (size_t)n + 1 + dlen >= sizeof(x->id) || memchr(x->id, '@', (size_t)n))
		return NULL; /* cannot name a user of ours */
	x->id[n] = '@';
	memcpy(x->id + n + 1, c->domains[0], dlen + 1);
	x->id_len = (size_t)n + 1 + dlen;
	t->stage_ctx[t->stage_idx] = x;
	return x;
}

static enum stage_rc local_from_finish(struct txn *t, struct rules_ctx *x)
{
	enum store_rc rc = store_user_get(t, &x->op, slice_make(x->id, x->id_len), &x->user);
	switch (rc) {
	case STORE_PARKED:
		return STAGE_PARK;
	case STORE_OK:
		return challenge(t); /* a local caller must prove it (caller-ID anti-spoofing) */
	case STORE_UNAVAILABLE:
	case STORE_OVERLOAD:
		return stage_reply_unavailable(t);
	default:
		return allow(t);
	}
}

enum stage_rc auth_rules_stage(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	if (!m->is_request || m->method_id == SIP_METHOD_ACK || m->method_id == SIP_METHOD_CANCEL)
		return STAGE_CONTINUE;
	struct rules_ctx *x = t->stage_ctx[t->stage_idx];
	if (x)
		return local_from_finish(t, x); /* resumed after a park */
	if (t->id_source == TXN_ID_TRUSTED || t->in_authorized_dialog)
		return allow(t);
	const struct cfg *c = t->cfg;
	const struct sip_uri *u = txn_ruri(t);
	if (!u || !sip_uri_is_sip(u)) {
		txn_reply(t, 416, SLICE_NULL); /* normally answered earlier by the checks stage */
		return STAGE_REPLY;
	}
	bool anonymous = t->id_source == TXN_ID_NONE;
	bool in_dialog = txn_to_tag(t).len > 0; /* RFC 3261 §12.2 */
	if (!in_dialog && anonymous && !host_is_ours(c, u)) {
		struct sip_uri fu;
		if (from_uri(t, &fu) && host_is_ours(c, &fu))
			return challenge(t);
		return deny(t, SLICE_LIT("Relaying Denied"));
	}
	static const uint64_t none[2] = { 0, 0 };
	char missing[512];
	switch (auth_rules_check(t->cfg, u, anonymous, t->perms_known ? t->perms : none, missing, sizeof(missing))) {
	case AUTH_RULES_CHALLENGE:
		return challenge(t);
	case AUTH_RULES_DENY: {
		struct slice reason = txn_printf(t, "Requires %s", missing);
		return deny(t, reason.p ? reason : SLICE_LIT("Requires"));
	}
	default:
		break;
	}
	if (anonymous && !in_dialog && m->method_id == SIP_METHOD_INVITE && c->auth.challenge_local_from) {
		x = local_from_begin(t);
		if (x)
			return local_from_finish(t, x);
	}
	return allow(t);
}
