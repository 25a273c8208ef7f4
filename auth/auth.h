#pragma once
/* auth.h - digest authentication (SPEC §3), identity (SPEC §2.1, §2.3) and
 * permission rules (SPEC §4). Stages, in SPEC order, registered by main():
 *   auth_identity_stage  trusted sources, then Proxy-Authorization (digest)
 *   (transfer_stage from transfer/ runs here and may replace the identity)
 *   auth_rules_stage     the permission decision: allow, 407 or 403 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "secret.h"
#include "sip.h"
#include "stage.h"
#include "txn.h"

/* auth_init - compile rules, keep keys. 0 or -errno with @err ("file:line: ..."). Startup. */
int auth_init(const struct cfg *c, const struct secret *s, char *err, size_t errlen);
/* auth_reload - compile the rules of @c and swap them in with RCU; old kept on error. */
int auth_reload(const struct cfg *c, char *err, size_t errlen);
/* auth_gen_build - compile the rules of @next and attach them to it (its
 * generation, SPEC §7 reload): nothing live changes; they take effect when
 * @next is published and are released with it. 0 or -EINVAL with "file:line: ...". */
int auth_gen_build(struct cfg *next, char *err, size_t errlen);
void auth_fini(void);

enum stage_rc auth_identity_stage(struct txn *t);
enum stage_rc auth_rules_stage(struct txn *t);

enum auth_rules_verdict {
	AUTH_RULES_ALLOW = 0,
	AUTH_RULES_CHALLENGE, /* permissions needed and the request is anonymous */
	AUTH_RULES_DENY,      /* identity lacks them: 403 "Requires A|B" */
};

/**
 * auth_rules_check - the SPEC §4 decision for reaching @target under the rules
 * of generation @c (txn->cfg; NULL or a cfg without rules: the installed ones).
 * @anonymous: no identity. @perms: the identity's permission bitset.
 * @missing: on DENY receives the unmet permissions joined by '|'.
 * Takes its own RCU read lock. Any worker thread.
 */
enum auth_rules_verdict auth_rules_check(const struct cfg *c, const struct sip_uri *target, bool anonymous,
					 const uint64_t perms[2], char *missing, size_t cap);

/**
 * auth_creds_realm - the realm of one Proxy-Authorization value when it is
 * Digest credentials (read by the same strict parser as the identity stage:
 * a realm seen before a syntax error still counts). false: another scheme,
 * or no realm found. Slices into @value. Pure function, any thread.
 */
bool auth_creds_realm(struct slice value, struct slice *realm);

/* auth_challenge - make t's reply a 407 with one Proxy-Authenticate per algorithm.
 * stale=true is also added when the identity stage saw a genuine expired nonce
 * with a correct response on @t (auth_identity_stage keeps that). */
void auth_challenge(struct txn *t, bool stale);

/**
 * auth_rules_explain - for referee-admin `explain URI [--as ID]`: which rule
 * decides @uri (its config file:line and patterns), the permissions it needs
 * and the verdict for an identity holding @perms (@anonymous: no identity).
 * Writes lines "target: ...", "rule: ...", "requires: ...", "verdict: ..." into
 * @buf (always terminated when @cap > 0). Returns the length it needed (> @cap
 * means truncated) or -EINVAL for a URI that is not sip/sips. Uses the rules of
 * the last auth_init/auth_reload (auth_init accepts a NULL secret for this).
 * Takes its own RCU read lock: the calling thread must be an RCU reader.
 */
int auth_rules_explain(const char *uri, const uint64_t perms[2], bool anonymous, char *buf, size_t cap);
