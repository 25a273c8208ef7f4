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
