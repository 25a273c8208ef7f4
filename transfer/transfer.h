#pragma once
/* transfer.h - transfer authorization (SPEC §5): REFER challenge and Refer-To
 * rewrite with a signed token, the transferee's INVITE identity, and egress
 * hygiene. One stage, registered by main() between auth_identity_stage and
 * auth_rules_stage. */
#include <stddef.h>

#include "cfg.h"
#include "secret.h"
#include "stage.h"
#include "txn.h"

int transfer_init(const struct cfg *c, const struct secret *s, char *err, size_t errlen);
enum stage_rc transfer_stage(struct txn *t);

/* ---- egress hygiene (transfer_egress.c) */

/**
 * transfer_egress - egress hygiene (SPEC §5): toward a non-trusted next hop
 * remove X-Sipx-Authidentity, Proxy-Authorization for our realm and
 * P-Preferred-Identity; toward a trusted one add `P-Asserted-Identity:
 * <sip:IDENTITY>` when the request has a user identity (digest or transfer).
 * P-Asserted-Identity from a non-trusted source is always removed.
 * Reads t->next_hop_trusted, so call it after routing, before the request is
 * serialized. Edits only (txn_hdr_remove/txn_hdr_add); idempotent. Requests only.
 */
void transfer_egress(struct txn *t);
/* transfer_egress_stage - transfer_egress as a stage (always STAGE_CONTINUE),
 * with t->next_hop_trusted decided first (txn_next_hop_trusted): register it
 * after every stage that may edit the Request-URI. */
enum stage_rc transfer_egress_stage(struct txn *t);
