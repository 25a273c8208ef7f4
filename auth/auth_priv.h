#pragma once
/* auth_priv.h - what the files of auth/ share and nothing else sees: the digest
 * parameter parser, the nonce, the digest computation, the failure limiter,
 * the compiled rules and the module state. Not exported (STYLE.md §2). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cfg.h"
#include "hmac.h"
#include "slice.h"
#include "store.h"

/* ---------------------------------------------------------------- failure reasons */

/* Closed label set of referee_auth_failures_total{reason} (STYLE.md §18). */
enum auth_reason {
	AUTH_REASON_BAD_HEADER = 0,
	AUTH_REASON_UNKNOWN_REALM,
	AUTH_REASON_STALE_NONCE,
	AUTH_REASON_FORGED_NONCE,
	AUTH_REASON_WRONG_RESPONSE, /* also unknown user: the two look the same */
	AUTH_REASON_REPLAY,
	AUTH_REASON_RATE_LIMITED,
	AUTH_REASON_COUNT
};

extern const char *const auth_reason_names[AUTH_REASON_COUNT];

/* ---------------------------------------------------------------- digest parameters */

#define AUTH_VALUE_MAX 256 /* longest accepted parameter value (the uri: AUTH_URI_MAX) */
#define AUTH_URI_MAX 1024

/* One parsed `Digest` credential; slices point into the message. */
struct auth_creds {
	struct slice username, realm, nonce, uri, response, cnonce, opaque, qop, nc_text;
	enum cfg_algo algo; /* MD5 when the algorithm parameter is absent (RFC 7616 §3.4) */
	uint32_t nc;
};

/**
 * auth_creds_parse - parse one Proxy-Authorization value (RFC 7616 §3.4,
 * RFC 2617 §3.2.2). Quoted parameters (username, realm, nonce, uri, response,
 * cnonce, opaque) must be quoted-strings without quoted-pairs; algorithm, qop
 * and nc are tokens (a quoted qop is tolerated). Unknown parameters are skipped.
 * Returns 0; -ENOENT when the scheme is not Digest; -EBADMSG for a syntax
 * error, a duplicate, a missing field, a value over its limit, qop other than
 * auth, nc not 8 hex digits; -ENOTSUP for an unknown algorithm or userhash=true.
 * @c->realm is filled as soon as it is seen, also when parsing fails later.
 * Pure function, any thread.
 */
int auth_creds_parse(struct slice value, struct auth_creds *c);

/* ---------------------------------------------------------------- nonce */

#define AUTH_NONCE_RAW 32  /* ts(8) ‖ random(8) ‖ mac(16) */
#define AUTH_NONCE_LEN 43  /* base64url without padding */
#define AUTH_NONCE_SKEW 30 /* seconds a nonce may come from the future (clock skew between instances) */

enum auth_nonce_rc { AUTH_NONCE_OK = 0, AUTH_NONCE_STALE, AUTH_NONCE_FORGED };

/**
 * auth_nonce_make - a fresh nonce: base64url(ts ‖ random ‖ HMAC-SHA256(key,
 * ts ‖ random ‖ realm)[0..16]). @now is unix seconds. The random part is a
 * per-thread counter seeded once from RAND_bytes (unique, and MACed).
 * @out receives AUTH_NONCE_LEN bytes (not terminated). Any thread, no syscall.
 */
void auth_nonce_make(const struct hmac_key *key, struct slice realm, uint64_t now, char out[AUTH_NONCE_LEN]);
/**
 * auth_nonce_check - OK when @nonce is ours for @realm and younger than @ttl;
 * STALE when genuine but older; FORGED when not ours (bad length, encoding or
 * MAC, or from further in the future than AUTH_NONCE_SKEW). Constant-time MAC check.
 */
enum auth_nonce_rc auth_nonce_check(const struct hmac_key *key, struct slice realm, struct slice nonce,
				    uint64_t now, unsigned ttl);

/* ---------------------------------------------------------------- digest computation */

#define AUTH_HASH_MAX 32

/* auth_algo_len - digest length in bytes of @a (16 or 32). */
size_t auth_algo_len(enum cfg_algo a);
/* auth_algo_name - "SHA-256" or "MD5". */
const char *auth_algo_name(enum cfg_algo a);
/**
 * auth_digest_ha1 - H(user ":" realm ":" password) into @out (tests, tools).
 * Returns the length written or -EIO when OpenSSL fails.
 */
int auth_digest_ha1(enum cfg_algo a, struct slice user, struct slice realm, struct slice password,
		    uint8_t out[AUTH_HASH_MAX]);
/**
 * auth_digest_response - RFC 7616 §3.4.1 response for qop=auth:
 * H(hex(HA1) ":" nonce ":" nc ":" cnonce ":" qop ":" hex(H(method ":" uri))).
 * Returns the length written or -EIO. Allocation-free, any thread.
 */
int auth_digest_response(enum cfg_algo a, const uint8_t *ha1, struct slice method, const struct auth_creds *c,
			 uint8_t out[AUTH_HASH_MAX]);
/**
 * auth_digest_verify - the response of @c equals the one computed from @ha1
 * (compared with CRYPTO_memcmp after decoding the hex the client sent).
 */
bool auth_digest_verify(enum cfg_algo a, const uint8_t *ha1, struct slice method, const struct auth_creds *c);

/* ---------------------------------------------------------------- failure limiter */

/* auth_limit_is_over - @sa has reached cfg->auth.failure_limit.count failures in the current window. */
bool auth_limit_is_over(const struct cfg *c, const struct sockaddr *sa);
/* auth_limit_fail - count one failure of @sa. Returns true when this failure reached the limit. */
bool auth_limit_fail(const struct cfg *c, const struct sockaddr *sa);
/* auth_limit_reset - forget every counter (tests, reload). */
void auth_limit_reset(void);

/* ---------------------------------------------------------------- retransmissions */

enum auth_retx {
	AUTH_RETX_NEW,      /* not seen: check its nonce count (remembered as waiting meanwhile) */
	AUTH_RETX_WAITING,  /* a copy of a request whose check is still waiting: drop it */
	AUTH_RETX_ACCEPTED, /* a copy of a request accepted on this thread: forward it */
};
/* which entry auth_retx_end settles */
struct auth_retx_key {
	uint8_t mac[16];
	uint32_t slot;
	bool valid; /* false: the request could not be keyed (no Via/CSeq, overlong parts) */
};
/* auth_retx_begin - before the nonce count of @c on @t is checked: is @t a copy (same
 * top Via, CSeq, Call-ID, method and credential) of a request seen on this worker
 * thread? A new one is remembered as waiting until auth_retx_end. */
enum auth_retx auth_retx_begin(const struct txn *t, const struct auth_creds *c, struct auth_retx_key *k);
/* auth_retx_end - the check of @k's request ended: accepted (its copies pass for 32 s)
 * or not (refused, or the store could not tell: a copy is checked again). */
void auth_retx_end(const struct auth_retx_key *k, bool accepted);
/* auth_retx_set - the set @k's request fell in (tests fill one set on purpose). */
uint32_t auth_retx_set(const struct auth_retx_key *k);

/* ---------------------------------------------------------------- patterns and rules */

enum auth_host_kind { AUTH_HOST_EXACT = 0, AUTH_HOST_ANY, AUTH_HOST_WILDCARD, AUTH_HOST_CIDR, AUTH_HOST_IP };

struct auth_host_pat {
	enum auth_host_kind kind;
	bool has_port;
	uint16_t port;
	uint8_t prefix;              /* CIDR */
	int family;                  /* CIDR and IP */
	uint8_t addr[16];            /* CIDR and IP */
	char name[CFG_NAME_MAX];     /* EXACT: host lowercased; WILDCARD: the domain after "*." */
	size_t name_len;
};

enum auth_user_kind { AUTH_USER_DIGITS = 0, AUTH_USER_REGEX };

struct auth_user_pat {
	enum auth_user_kind kind;
	char *prog;    /* DIGITS: compiled element string (see auth_pattern.c) */
	size_t prog_len;
	void *re;      /* REGEX: pcre2_code * (JIT compiled when possible) */
};

/**
 * auth_host_pat_compile - "host[:port]", "[v6]:port", "*.domain", "*",
 * "a.b.c.d/len" (also sipXecs "192.168/16"), "v6/len". 0 or -EINVAL with @why.
 */
int auth_host_pat_compile(const char *s, struct auth_host_pat *p, const char **why);
/* auth_host_pat_match - @u's host and port against @p (host any case). */
bool auth_host_pat_match(const struct auth_host_pat *p, const struct sip_uri *u);
/**
 * auth_user_pat_compile - sipXecs digit pattern or "re:<PCRE2>". Allocates;
 * free with auth_user_pat_free. 0 or -EINVAL with @why (static or @whybuf).
 */
int auth_user_pat_compile(const char *s, struct auth_user_pat *p, char *whybuf, size_t whycap);
void auth_user_pat_free(struct auth_user_pat *p);
/**
 * auth_user_pat_match - whole @user (already %-decoded) matches @p.
 * REGEX uses a per-thread pcre2_match_data (no allocation after the first call).
 */
bool auth_user_pat_match(const struct auth_user_pat *p, struct slice user);

/* ---------------------------------------------------------------- module state */

struct auth_state {
	struct hmac_key nonce_key; /* pad states of secret->nonce_key */
	char opaque[17]; /* hex of 8 MAC bytes: constant per secret and realm */
	unsigned m_challenges, m_failures, m_denials, m_retx_dropped, m_retx_evicted; /* metric handles */
};

extern struct auth_state auth_g;

/* auth_count_failure - count @r (metric) and, for reasons that suggest guessing, feed the limiter. */
void auth_count_failure(struct txn *t, enum auth_reason r);
/* auth_rules_install - compile @c's rules and publish them (old ones retired with call_rcu).
 * auth_rules_uninstall - drop them (auth_fini). Startup / reload thread only. */
int auth_rules_install(const struct cfg *c, char *err, size_t errlen);
void auth_rules_uninstall(void);
/* auth_rules_attach - compile @c's rules into its generation part (CFG_GEN_RULES). */
int auth_rules_attach(struct cfg *c, char *err, size_t errlen);
