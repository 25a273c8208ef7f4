/* transfer_stage.c - the transfer stage (SPEC §5) and module setup: keys,
 * metrics (referee_transfer_*), and the order of work for one request: first
 * the token a request carries back (transfer_identity.c, may park), then the
 * REFER rewrite (transfer_refer.c). Runs between auth_identity_stage and
 * auth_rules_stage. Responses, ACK and CANCEL are not its business. */
#include "transfer.h"

#include <errno.h>
#include <stdio.h>

#include "metrics.h"
#include "transfer_priv.h"

struct transfer_metrics transfer_metrics;

static const char *const grant_labels[TRANSFER_M_COUNT] = {
	[TRANSFER_M_ISSUED] = "issued",         [TRANSFER_M_ACCEPTED] = "accepted",
	[TRANSFER_M_MALFORMED] = "malformed",   [TRANSFER_M_BAD_MAC] = "bad_mac",
	[TRANSFER_M_WRONG_TARGET] = "wrong_target", [TRANSFER_M_EXPIRED] = "expired",
	[TRANSFER_M_REPLAYED] = "replayed",     [TRANSFER_M_UNKNOWN_USER] = "unknown_user",
};

void transfer_count(enum transfer_grant_metric m)
{
	if ((unsigned)m < TRANSFER_M_COUNT)
		metrics_inc(transfer_metrics.grants + m);
}

void transfer_count_result(enum transfer_result r)
{
	static const enum transfer_grant_metric map[TRANSFER_RESULT_COUNT] = {
		[TRANSFER_OK] = TRANSFER_M_ACCEPTED,
		[TRANSFER_MALFORMED] = TRANSFER_M_MALFORMED,
		[TRANSFER_BAD_MAC] = TRANSFER_M_BAD_MAC,
		[TRANSFER_WRONG_TARGET] = TRANSFER_M_WRONG_TARGET,
		[TRANSFER_EXPIRED] = TRANSFER_M_EXPIRED,
		[TRANSFER_REPLAYED] = TRANSFER_M_REPLAYED,
		[TRANSFER_UNKNOWN_USER] = TRANSFER_M_UNKNOWN_USER,
	};
	if ((unsigned)r < TRANSFER_RESULT_COUNT)
		transfer_count(map[r]);
}

static void metrics_register(void)
{
	static bool done; /* startup only (single thread); tests call transfer_init repeatedly */
	if (done)
		return;
	done = true;
	transfer_metrics.rewrites = metrics_counter("referee_transfer_rewrites_total",
						    "REFERs whose Refer-To was rewritten with a signed token",
						    NULL, NULL, 0);
	transfer_metrics.challenges = metrics_counter("referee_transfer_challenges_total",
						      "anonymous REFERs to our domains answered with 407",
						      NULL, NULL, 0);
	transfer_metrics.grants = metrics_counter("referee_transfer_grants_total",
						  "transfer tokens issued, accepted and rejected by reason",
						  "result", grant_labels, TRANSFER_M_COUNT);
}

int transfer_init(const struct cfg *c, const struct secret *s, char *err, size_t errlen)
{
	if (!c || !s) {
		snprintf(err, errlen, "transfer: no configuration or secret");
		return -EINVAL;
	}
	if (s->len < SECRET_MIN_BYTES || s->len > SECRET_MAX_BYTES) {
		snprintf(err, errlen, "transfer: secret of %zu bytes (need %d..%d)", s->len, SECRET_MIN_BYTES,
			 SECRET_MAX_BYTES);
		return -EINVAL;
	}
	if (c->transfer.identity == CFG_TRANSFER_GRANT && c->transfer.grant_ttl == 0) {
		snprintf(err, errlen, "%s: transfer.grant_ttl must be at least 1 second", c->path);
		return -EINVAL;
	}
	transfer_keys_set(s);
	metrics_register();
	return 0;
}

enum stage_rc transfer_stage(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	if (!m->is_request || m->method_id == SIP_METHOD_ACK || m->method_id == SIP_METHOD_CANCEL)
		return STAGE_CONTINUE;
	struct transfer_ctx *x = t->stage_ctx[t->stage_idx];
	if (!x || x->phase != TRANSFER_PHASE_REFER) {
		enum stage_rc rc = transfer_identity_run(t, x);
		if (rc != STAGE_CONTINUE)
			return rc;
	}
	if (m->method_id == SIP_METHOD_REFER)
		return transfer_refer_run(t);
	return STAGE_CONTINUE;
}
