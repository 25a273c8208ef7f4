/* auth_main.c - module lifecycle: keep the nonce key, register the metrics
 * (SPEC §8: challenges, failures by reason, rule denials), compile the rules
 * at start and swap them on reload. Startup/reload only; nothing here runs
 * per message. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "auth_priv.h"
#include "hex.h"
#include "hmac.h"
#include "metrics.h"

struct auth_state auth_g;

const char *const auth_reason_names[AUTH_REASON_COUNT] = {
	[AUTH_REASON_BAD_HEADER] = "bad_header",
	[AUTH_REASON_UNKNOWN_REALM] = "unknown_realm",
	[AUTH_REASON_STALE_NONCE] = "stale_nonce",
	[AUTH_REASON_FORGED_NONCE] = "forged_nonce",
	[AUTH_REASON_WRONG_RESPONSE] = "wrong_response",
	[AUTH_REASON_REPLAY] = "replay",
	[AUTH_REASON_RATE_LIMITED] = "rate_limited",
};

/* Metric families are registered once per process (auth_init may run again in tests). */
static bool metrics_registered;

static void metrics_register(void)
{
	if (metrics_registered)
		return;
	auth_g.m_challenges = metrics_counter("referee_auth_challenges_total",
					      "407 challenges sent (Proxy-Authenticate)", NULL, NULL, 0);
	auth_g.m_failures = metrics_counter("referee_auth_failures_total",
					    "credentials that did not authenticate, by reason", "reason",
					    auth_reason_names, AUTH_REASON_COUNT);
	auth_g.m_denials = metrics_counter("referee_rules_denials_total",
					   "requests refused with 403 by the permission rules or the relaying rule",
					   NULL, NULL, 0);
	auth_g.m_retx_dropped = metrics_counter("referee_auth_retransmissions_dropped_total",
						"copies of an authenticated request dropped while the original's "
						"nonce count was being checked (it answers for both)",
						NULL, NULL, 0);
	auth_g.m_retx_evicted = metrics_counter("referee_auth_retx_evictions_total",
						"authenticated requests the retransmission table forgot younger "
						"than 4 s (a full set gave up its oldest): a copy of one is "
						"checked again and challenged as a replay",
						NULL, NULL, 0);
	metrics_registered = true;
}

int auth_init(const struct cfg *c, const struct secret *s, char *err, size_t errlen)
{
	if (!c || c->n_domains == 0) {
		snprintf(err, errlen, "%s: no domains configured", c ? c->path : "(config)");
		return -EINVAL;
	}
	if (c->auth.n_algorithms == 0 || c->auth.n_algorithms > CFG_MAX_ALGOS) {
		snprintf(err, errlen, "%s: auth.algorithms must list SHA-256 and/or MD5", c->path);
		return -EINVAL;
	}
	/* NULL secret: referee-admin (explain) and --check, which never make nonces. */
	uint8_t raw[SECRET_KEY_BYTES];
	if (s)
		memcpy(raw, s->nonce_key, sizeof(raw));
	else if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	/* Pads hashed once: every nonce made or checked is then two SHA-256 finals. */
	hmac_key_init(&auth_g.nonce_key, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	uint8_t mac[HMAC_SHA256_BYTES];
	static const char label[] = "referee opaque";
	SHA256_CTX h;
	hmac_start(&auth_g.nonce_key, &h);
	hmac_update(&h, label, sizeof(label) - 1);
	hmac_finish(&auth_g.nonce_key, &h, mac);
	auth_g.opaque[hex_encode(mac, 8, auth_g.opaque)] = '\0';
	metrics_register();
	auth_limit_reset();
	return auth_rules_install(c, err, errlen);
}

int auth_reload(const struct cfg *c, char *err, size_t errlen)
{
	if (!c || c->n_domains == 0) {
		snprintf(err, errlen, "%s: no domains configured", c ? c->path : "(config)");
		return -EINVAL;
	}
	return auth_rules_install(c, err, errlen); /* the old rules stay on error */
}

int auth_gen_build(struct cfg *next, char *err, size_t errlen)
{
	if (!next || next->n_domains == 0) {
		snprintf(err, errlen, "%s: no domains configured", next ? next->path : "(config)");
		return -EINVAL;
	}
	return auth_rules_attach(next, err, errlen);
}

void auth_fini(void)
{
	auth_rules_uninstall();
	hmac_key_wipe(&auth_g.nonce_key);
}
