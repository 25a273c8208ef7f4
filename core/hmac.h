#pragma once
/* hmac.h - HMAC-SHA256 (RFC 2104) without allocation. OpenSSL 3.0's HMAC(),
 * EVP_MAC and even EVP_DigestInit allocate a provider context per call
 * (measured: 5 and 1 allocations), too much for a MAC per message, so the
 * construction is written over the low-level SHA-256 on caller-owned
 * contexts (deprecated in 3.0, kept; tests/core/test_hmac.c checks every
 * form against HMAC()). A key's pad states can be hashed once (hmac_key):
 * a MAC is then two context copies and two SHA256_Final. */
#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

#define HMAC_SHA256_BYTES 32

/* The inner and outer pad states of one key. */
struct hmac_key {
	SHA256_CTX inner;
	SHA256_CTX outer;
};

/* hmac_key_init - hash the pads of @key (any length) once. */
void hmac_key_init(struct hmac_key *k, const uint8_t *key, size_t len);
/* hmac_key_wipe - OPENSSL_cleanse the states. */
void hmac_key_wipe(struct hmac_key *k);
/* hmac_start - begin a MAC under @k: *c gets the inner state. */
void hmac_start(const struct hmac_key *k, SHA256_CTX *c);
/* hmac_update - feed @len bytes to the MAC begun in @c. */
void hmac_update(SHA256_CTX *c, const void *data, size_t len);
/* hmac_finish - finish the MAC begun in @c into @out; @c is wiped. */
void hmac_finish(const struct hmac_key *k, SHA256_CTX *c, uint8_t out[HMAC_SHA256_BYTES]);

/* hmac_sha256 - one-shot HMAC-SHA256(@key, @data) into @out. */
void hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
		 uint8_t out[HMAC_SHA256_BYTES]);
