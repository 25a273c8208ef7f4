/* auth_nonce.c - stateless nonces any instance can verify (SPEC §3):
 * base64url(ts ‖ random ‖ HMAC-SHA256(nonce_key, ts ‖ random ‖ realm)[0..16]).
 * ts is big-endian unix seconds (8 bytes); random is a per-thread counter
 * seeded once from RAND_bytes, so making a nonce needs no syscall and two
 * nonces never repeat. Replay (nonce-count) is store/'s business, not this file's. */
#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "auth_priv.h"
#include "b64url.h"
#include "hmac.h"
#include "now.h"
#include "secret.h"

/* Per-thread nonce counter; 0 means "not seeded yet". Only its own thread touches it. */
static _Thread_local uint64_t nonce_counter;

static uint64_t counter_next(void)
{
	if (nonce_counter == 0) {
		uint64_t seed = 0;
		if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1) {
			/* No entropy: the MAC still protects the nonce; uniqueness then
			 * leans on the clock and the thread's stack address. */
			seed = now_mono_ns() ^ (uint64_t)(uintptr_t)&seed;
		}
		nonce_counter = seed | 1;
	}
	return nonce_counter++;
}

/* nonce_mac - HMAC over ts ‖ random ‖ realm (realm length is implied: it ends the input). */
static void nonce_mac(const struct hmac_key *key, const uint8_t head[16], struct slice realm,
		      uint8_t mac[HMAC_SHA256_BYTES])
{
	SHA256_CTX c;
	hmac_start(key, &c);
	hmac_update(&c, head, 16);
	hmac_update(&c, realm.p, realm.len < CFG_NAME_MAX ? realm.len : CFG_NAME_MAX);
	hmac_finish(key, &c, mac);
}

void auth_nonce_make(const struct hmac_key *key, struct slice realm, uint64_t now, char out[AUTH_NONCE_LEN])
{
	uint8_t raw[AUTH_NONCE_RAW];
	uint64_t rnd = counter_next();
	for (int i = 0; i < 8; i++) {
		raw[i] = (uint8_t)(now >> (56 - 8 * i));
		raw[8 + i] = (uint8_t)(rnd >> (56 - 8 * i));
	}
	uint8_t mac[32];
	nonce_mac(key, raw, realm, mac);
	memcpy(raw + 16, mac, 16);
	static_assert(AUTH_NONCE_LEN == (AUTH_NONCE_RAW * 4 + 2) / 3, "nonce length");
	b64url_encode(raw, AUTH_NONCE_RAW, out, AUTH_NONCE_LEN);
}

enum auth_nonce_rc auth_nonce_check(const struct hmac_key *key, struct slice realm, struct slice nonce,
				    uint64_t now, unsigned ttl)
{
	uint8_t raw[AUTH_NONCE_RAW];
	if (nonce.len != AUTH_NONCE_LEN || b64url_decode(nonce, raw, sizeof(raw)) != AUTH_NONCE_RAW)
		return AUTH_NONCE_FORGED;
	uint8_t mac[32];
	nonce_mac(key, raw, realm, mac);
	if (CRYPTO_memcmp(mac, raw + 16, 16) != 0)
		return AUTH_NONCE_FORGED;
	uint64_t ts = 0;
	for (int i = 0; i < 8; i++)
		ts = (ts << 8) | raw[i];
	if (ts > now + AUTH_NONCE_SKEW)
		return AUTH_NONCE_FORGED; /* we never issue those: a stolen key or a broken clock */
	if (ts + ttl < now)
		return AUTH_NONCE_STALE;
	return AUTH_NONCE_OK;
}
