#pragma once
/* transfer_priv.h - internals of transfer/ shared by its files and its unit
 * tests: keyed MACs, grant tokens, sipx tokens, the Refer-To rewriter and the
 * stage's per-txn context. Nothing here is for other modules. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "hmac.h"
#include "now.h"
#include "secret.h"
#include "sip.h"
#include "slice.h"
#include "stage.h"
#include "store.h"
#include "txn.h"

#define TRANSFER_ID_MAX 256       /* identity "user@domain", like STORE_ID_MAX */
#define TRANSFER_TARGET_MAX 512   /* canonical target "user@host" */
#define TRANSFER_JTI_RAND 12      /* 96 random bits */
#define TRANSFER_JTI_FP 3         /* + 24-bit target fingerprint (tells wrong_target from bad_mac) */
#define TRANSFER_JTI_BYTES (TRANSFER_JTI_RAND + TRANSFER_JTI_FP)
#define TRANSFER_JTI_CHARS 20     /* base64url of 15 bytes, no padding */
#define TRANSFER_MAC_BYTES 16     /* HMAC-SHA256 truncated to 128 bits */
#define TRANSFER_MAC_CHARS 22
#define TRANSFER_REFERTO_MAX 254  /* rewritten Refer-To stays under 255 characters (baresip) */
#define TRANSFER_SIPX_HASH_CHARS 32

/* The closed set of verification results: metric label values and log words
 * (referee_transfer_grants_total{result}); the first ones are the reasons. */
enum transfer_result {
	TRANSFER_OK = 0,
	TRANSFER_MALFORMED,
	TRANSFER_BAD_MAC,
	TRANSFER_WRONG_TARGET,
	TRANSFER_EXPIRED,
	TRANSFER_REPLAYED,
	TRANSFER_UNKNOWN_USER, /* valid token, identity not (or no longer) a user: ignored */
	TRANSFER_RESULT_COUNT
};
/* transfer_result_name - the label word of @r ("ok", "bad_mac", ...). */
const char *transfer_result_name(enum transfer_result r);

/* ---------------------------------------------------------------- keys (transfer_grant.c) */

struct transfer_keys {
	struct hmac_key grant; /* keyed with secret->grant_key */
	size_t secret_len;
	uint8_t secret[SECRET_MAX_BYTES]; /* raw secret for sipx tokens */
};

/* transfer_keys_init - derive the MAC states of @s into @k (startup, tests). */
void transfer_keys_init(struct transfer_keys *k, const struct secret *s);
/* transfer_keys_set - set the module's keys from @s (transfer_init, startup only). */
void transfer_keys_set(const struct secret *s);
/* transfer_keys - the keys set by transfer_init (read-only afterwards, any thread). */
const struct transfer_keys *transfer_keys(void);

/* ---------------------------------------------------------------- grant tokens (transfer_grant.c)
 * TOKEN = "v1" "." ID "." EXP "." JTI "." MAC
 *   ID  = base64url(identity)      EXP = expiry, unix seconds, lowercase hex, no leading 0
 *   JTI = base64url(96 random bits ‖ 24-bit target fingerprint), 20 characters
 *   MAC = base64url(HMAC-SHA256(grant_key, "v1" ‖ len16 ‖ identity ‖ len16 ‖ target ‖ exp64 ‖ jti)[0..16))
 * The lengths are big-endian and make the concatenation unambiguous. The
 * target is the canonical "user@host" (transfer_target_canon). Every
 * character is [A-Za-z0-9._-]: nothing needs %-escaping anywhere. */

struct transfer_grant {
	uint64_t exp;
	struct slice jti;   /* the JTI text inside the token (store key) */
	size_t id_len;
	char id[TRANSFER_ID_MAX]; /* identity, not NUL-terminated */
};

/* transfer_grant_len - length of the token for an identity of @id_len bytes and expiry @exp. */
size_t transfer_grant_len(size_t id_len, uint64_t exp);
/**
 * transfer_grant_issue - mint a token for @identity toward @target, valid
 * until @exp (unix seconds). The JTI comes from a per-thread PRF (seeded once
 * per thread from RAND_bytes), so no syscall per grant.
 * Returns the token length, -EINVAL (empty or too long identity/target) or
 * -ENOSPC (@cap too small; @out then holds garbage). Any thread.
 */
int transfer_grant_issue(const struct transfer_keys *k, struct slice identity, struct slice target,
			 uint64_t exp, char *out, size_t cap);
/**
 * transfer_grant_verify - check @token for @target at time @now. On
 * TRANSFER_OK @g holds the identity, expiry and JTI (the caller still binds
 * the JTI: replays are the store's business). MAC compared with CRYPTO_memcmp.
 * Returns OK, MALFORMED, BAD_MAC, WRONG_TARGET or EXPIRED.
 */
enum transfer_result transfer_grant_verify(const struct transfer_keys *k, struct slice token,
					   struct slice target, uint64_t now, struct transfer_grant *g);

/* ---------------------------------------------------------------- sipx tokens (transfer_sipx.c)
 * sipXecs X-sipX-Authidentity signatures (reference §2.3): "TS::HASH" unbound,
 * "TS:HASH" bound to From tag + Call-ID; TS uppercase hex unix seconds, HASH
 * lowercase hex MD5 over plain concatenations with the raw secret. */

/* transfer_sipx_hash - HASH for @ts (the exact TS text); bound when @bound. out[32], no NUL. */
void transfer_sipx_hash(const uint8_t *secret, size_t secret_len, struct slice ts, bool bound,
			struct slice from_tag, struct slice call_id, struct slice identity,
			char out[TRANSFER_SIPX_HASH_CHARS]);
/* transfer_sipx_sign - signature text "TS::HASH" / "TS:HASH" (unescaped). Length or -ENOSPC. */
int transfer_sipx_sign(const uint8_t *secret, size_t secret_len, uint64_t ts, bool bound,
		       struct slice from_tag, struct slice call_id, struct slice identity,
		       char *out, size_t cap);
/**
 * transfer_sipx_verify - check an unescaped signature @sig (anchored
 * `[0-9A-F]{1,16}::?[0-9a-f]{32}`) for @identity. Bound signatures need a
 * non-empty @from_tag and @call_id. @validity 0 disables the expiry check;
 * otherwise TS + validity < now is EXPIRED. HASH compared with CRYPTO_memcmp.
 * Returns OK, MALFORMED, BAD_MAC or EXPIRED.
 */
enum transfer_result transfer_sipx_verify(const uint8_t *secret, size_t secret_len, struct slice sig,
					  struct slice identity, struct slice from_tag,
					  struct slice call_id, uint64_t now, unsigned validity);

/* ---------------------------------------------------------------- escaping and Refer-To (transfer_referto.c) */

/**
 * transfer_escape - sipXecs HttpMessage::escape: bytes other than
 * [A-Za-z0-9._-] become %XX (uppercase), space becomes '+'.
 * Returns the length written or -ENOSPC.
 */
int transfer_escape(struct slice in, char *out, size_t cap);

/**
 * transfer_target_canon - "user@host" of @u: user %-unescaped, host
 * lowercased, no port, scheme or parameters (an absent user gives "@host").
 * Returns the length or -EBADMSG (bad escape) / -ENOSPC.
 */
int transfer_target_canon(const struct sip_uri *u, char *out, size_t cap);

struct transfer_referto {
	struct slice value;       /* the whole header value, as received */
	struct sip_nameaddr na;   /* slices into value */
	struct sip_uri uri;       /* slices into value, or into the caller's scratch for "user@host" */
	bool schemeless;          /* "other@example.edu": read as sip: (sipXecs does) */
};

/**
 * transfer_referto_parse - parse Refer-To @value. A URI without a scheme is
 * read as sip: with the help of @scratch (>= value.len + 4 bytes, must
 * outlive @r). Returns 0, -EBADMSG or -ENOSPC.
 */
int transfer_referto_parse(struct slice value, char *scratch, size_t cap, struct transfer_referto *r);
/* transfer_referto_applies - scheme sip (any case) and `method` absent or INVITE. */
bool transfer_referto_applies(const struct transfer_referto *r);

/**
 * transfer_referto_rewrite - the new Refer-To value: @r with every `refgrant`
 * URI parameter and every X-Sipx-Authidentity URI header removed, then
 * @uri_param (e.g. "refgrant=TOKEN"; empty: none) appended to the URI
 * parameters and "@hdr_name=" escape(@hdr_value) (empty name: none) appended
 * to the URI headers. Display name, other parameters and headers (Replaces)
 * and the header parameters are copied byte for byte; an addr-spec gets angle
 * brackets. Returns the length or -ENOSPC / -EBADMSG.
 */
int transfer_referto_rewrite(const struct transfer_referto *r, struct slice uri_param,
			     struct slice hdr_name, struct slice hdr_value, char *out, size_t cap);

/**
 * transfer_identity_uri - "<sip:IDENTITY;NAME=VALUE>", the URI a REFER's
 * X-Sipx-Authidentity carrier holds (user part %-escaped where RFC 3261 wants
 * it, the rest as is). @cap >= transfer_identity_uri_max(). Length or -ENOSPC.
 */
int transfer_identity_uri(struct slice identity, const char *name, struct slice value, char *out, size_t cap);
size_t transfer_identity_uri_max(struct slice identity, const char *name, struct slice value);

/* transfer_uri_rewrite - the same edits on a bare URI (the INVITE's
 * Request-URI loses its refgrant). Length or -ENOSPC. */
int transfer_uri_rewrite(const struct sip_uri *u, struct slice uri_param, struct slice hdr_name,
			 struct slice hdr_value, char *out, size_t cap);

/* ---------------------------------------------------------------- metrics (transfer_count.c) */

struct transfer_metrics {
	unsigned rewrites;
	unsigned challenges;
	unsigned grants; /* + enum transfer_grant_metric */
};
enum transfer_grant_metric {
	TRANSFER_M_ISSUED = 0,
	TRANSFER_M_ACCEPTED,
	TRANSFER_M_MALFORMED,
	TRANSFER_M_BAD_MAC,
	TRANSFER_M_WRONG_TARGET,
	TRANSFER_M_EXPIRED,
	TRANSFER_M_REPLAYED,
	TRANSFER_M_UNKNOWN_USER,
	TRANSFER_M_COUNT
};
extern struct transfer_metrics transfer_metrics;
/* transfer_count_result - count a rejected/accepted token by reason. */
void transfer_count_result(enum transfer_result r);
/* transfer_count - count one event of the grants family. */
void transfer_count(enum transfer_grant_metric m);
/* transfer_metrics_register - register the referee_transfer_* families once
 * (transfer_init calls it; later calls do nothing). */
void transfer_metrics_register(void);

/* ---------------------------------------------------------------- stage parts */

/* Per-txn state of transfer_stage (arena, t->stage_ctx[t->stage_idx]): it
 * survives STAGE_PARK while the store binds a JTI or fetches the user. */
enum transfer_phase {
	TRANSFER_PHASE_START = 0,
	TRANSFER_PHASE_BIND,  /* grant valid: binding its JTI to this dialog */
	TRANSFER_PHASE_USER,  /* token valid: fetching the identity's permissions */
	TRANSFER_PHASE_REFER, /* identity settled: REFER work (never parks) */
};

struct transfer_ctx {
	uint8_t phase;
	enum transfer_result result;
	struct store_op bind_op;
	struct store_op user_op;
	struct slice jti;
	struct slice dialog;
	uint64_t exp;
	struct slice identity; /* arena copy, lowercase host */
	struct store_user user;
};

/* transfer_identity_run - token on an incoming request -> t->identity
 * (transfer_identity.c). May park; keeps its state in @ctx. */
enum stage_rc transfer_identity_run(struct txn *t, struct transfer_ctx *ctx);
/* transfer_refer_run - REFER challenge / check / rewrite (transfer_refer.c). */
enum stage_rc transfer_refer_run(struct txn *t);
