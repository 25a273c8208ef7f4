#pragma once
/* secret.h - the shared secret (SPEC §3) and per-purpose keys derived from it.
 * One secret shared by every instance; each purpose (nonce, grant, record-route)
 * gets its own key = HMAC-SHA256(secret, "referee " purpose), so a MAC made for
 * one purpose is worthless for another. MACs under those keys: hmac.h. */
#include <stddef.h>
#include <stdint.h>

#define SECRET_MIN_BYTES 16
#define SECRET_MAX_BYTES 256
#define SECRET_KEY_BYTES 32

struct secret {
	size_t len;
	uint8_t bytes[SECRET_MAX_BYTES]; /* raw secret (sipx tokens use it directly) */
	uint8_t nonce_key[SECRET_KEY_BYTES];
	uint8_t grant_key[SECRET_KEY_BYTES];
	uint8_t rr_key[SECRET_KEY_BYTES];
};

/**
 * secret_load - read the base64 secret from @path. Refuses a file that is
 * missing, unreadable, readable or writable by group/other, not base64, or
 * shorter than SECRET_MIN_BYTES. Returns 0, or -errno with @err filled
 * ("path: what is wrong").
 */
int secret_load(const char *path, struct secret *s, char *err, size_t errlen);
/* secret_set - use raw bytes (tests, referee-admin). 0 or -EINVAL. */
int secret_set(struct secret *s, const uint8_t *bytes, size_t len);
/* secret_wipe - OPENSSL_cleanse everything. */
void secret_wipe(struct secret *s);
