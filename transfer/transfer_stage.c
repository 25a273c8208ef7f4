/* transfer_stage.c - the transfer stage (SPEC §5) and module setup: keys,
 * metrics (registered by transfer_count.c), and the order of work for one
 * request: first the token a request carries back (transfer_identity.c, may
 * park), then the REFER rewrite (transfer_refer.c). Runs between
 * auth_identity_stage and auth_rules_stage. Responses, ACK and CANCEL are not
 * its business. */
#include "transfer.h"

#include <errno.h>
#include <stdio.h>

#include "transfer_priv.h"

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
	transfer_metrics_register();
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
