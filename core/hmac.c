/* hmac.c - HMAC-SHA256 over OpenSSL's low-level SHA-256 (see hmac.h for why). */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "hmac.h"

#include <string.h>

#include <openssl/crypto.h>

void hmac_key_init(struct hmac_key *k, const uint8_t *key, size_t len)
{
	uint8_t block[SHA256_CBLOCK] = { 0 };
	if (len > sizeof(block))
		SHA256(key, len, block); /* RFC 2104 §2: longer keys are hashed first */
	else if (len)
		memcpy(block, key, len);
	uint8_t pad[SHA256_CBLOCK];
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x36;
	SHA256_Init(&k->inner);
	SHA256_Update(&k->inner, pad, sizeof(pad));
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = block[i] ^ 0x5c;
	SHA256_Init(&k->outer);
	SHA256_Update(&k->outer, pad, sizeof(pad));
	OPENSSL_cleanse(block, sizeof(block));
	OPENSSL_cleanse(pad, sizeof(pad));
}

void hmac_key_wipe(struct hmac_key *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

void hmac_start(const struct hmac_key *k, SHA256_CTX *c)
{
	*c = k->inner;
}

void hmac_update(SHA256_CTX *c, const void *data, size_t len)
{
	SHA256_Update(c, data, len);
}

void hmac_finish(const struct hmac_key *k, SHA256_CTX *c, uint8_t out[HMAC_SHA256_BYTES])
{
	uint8_t inner[SHA256_DIGEST_LENGTH];
	SHA256_Final(inner, c);
	SHA256_CTX o = k->outer;
	SHA256_Update(&o, inner, sizeof(inner));
	SHA256_Final(out, &o);
	OPENSSL_cleanse(inner, sizeof(inner));
	OPENSSL_cleanse(&o, sizeof(o));
	OPENSSL_cleanse(c, sizeof(*c));
}

void hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
		 uint8_t out[HMAC_SHA256_BYTES])
{
	struct hmac_key k;
	SHA256_CTX c;
	hmac_key_init(&k, key, key_len);
	hmac_start(&k, &c);
	hmac_update(&c, data, len);
	hmac_finish(&k, &c, out);
	hmac_key_wipe(&k);
}
