/* auth_digest.c - the digest arithmetic of RFC 7616 §3.4.1 / RFC 2617 §3.2.2
 * for qop=auth with MD5 and SHA-256 (RFC 8760). Responses are compared with
 * CRYPTO_memcmp. OpenSSL's low-level MD5/SHA256 calls are used instead of EVP:
 * on OpenSSL 3.0 every EVP_DigestInit allocates a provider context (measured:
 * one malloc per init, even on a reused EVP_MD_CTX), and this runs for every
 * credential and challenge (STYLE.md §12: no malloc per message). Same choice
 * as core/secret.c. Not here: parsing (auth_params.c), nonces (auth_nonce.c). */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* MD5_Init & co.: deprecated, allocation-free */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <openssl/sha.h>

#include "auth_priv.h"
#include "hex.h"

size_t auth_algo_len(enum cfg_algo a)
{
	return a == CFG_ALGO_SHA256 ? 32 : 16;
}

const char *auth_algo_name(enum cfg_algo a)
{
	return a == CFG_ALGO_SHA256 ? "SHA-256" : "MD5";
}

/* hash_parts - H(parts[0] ":" parts[1] ":" ...) into @out. Returns the length. */
static int hash_parts(enum cfg_algo a, const struct slice *parts, unsigned n, uint8_t out[AUTH_HASH_MAX])
{
	if (a == CFG_ALGO_SHA256) {
		SHA256_CTX ctx;
		if (SHA256_Init(&ctx) != 1)
			return -EIO;
		for (unsigned i = 0; i < n; i++) {
			if (i)
				SHA256_Update(&ctx, ":", 1);
			if (parts[i].len)
				SHA256_Update(&ctx, parts[i].p, parts[i].len);
		}
		SHA256_Final(out, &ctx);
		OPENSSL_cleanse(&ctx, sizeof(ctx));
		return SHA256_DIGEST_LENGTH;
	}
	MD5_CTX ctx;
	if (MD5_Init(&ctx) != 1)
		return -EIO;
	for (unsigned i = 0; i < n; i++) {
		if (i)
			MD5_Update(&ctx, ":", 1);
		if (parts[i].len)
			MD5_Update(&ctx, parts[i].p, parts[i].len);
	}
	MD5_Final(out, &ctx);
	OPENSSL_cleanse(&ctx, sizeof(ctx));
	return MD5_DIGEST_LENGTH;
}

int auth_digest_ha1(enum cfg_algo a, struct slice user, struct slice realm, struct slice password,
		    uint8_t out[AUTH_HASH_MAX])
{
	const struct slice parts[3] = { user, realm, password };
	return hash_parts(a, parts, 3, out);
}

int auth_digest_response(enum cfg_algo a, const uint8_t *ha1, struct slice method, const struct auth_creds *c,
			 uint8_t out[AUTH_HASH_MAX])
{
	size_t n = auth_algo_len(a);
	uint8_t ha2[AUTH_HASH_MAX];
	const struct slice a2[2] = { method, c->uri };
	if (hash_parts(a, a2, 2, ha2) < 0)
		return -EIO;
	char ha1_hex[2 * AUTH_HASH_MAX], ha2_hex[2 * AUTH_HASH_MAX];
	hex_encode(ha1, n, ha1_hex);
	hex_encode(ha2, n, ha2_hex);
	const struct slice parts[6] = {
		slice_make(ha1_hex, 2 * n), c->nonce, c->nc_text, c->cnonce, c->qop, slice_make(ha2_hex, 2 * n),
	};
	int rc = hash_parts(a, parts, 6, out);
	OPENSSL_cleanse(ha1_hex, sizeof(ha1_hex));
	return rc;
}

bool auth_digest_verify(enum cfg_algo a, const uint8_t *ha1, struct slice method, const struct auth_creds *c)
{
	size_t n = auth_algo_len(a);
	uint8_t sent[AUTH_HASH_MAX];
	if (!hex_decode(c->response, sent, n))
		return false;
	uint8_t want[AUTH_HASH_MAX];
	if (auth_digest_response(a, ha1, method, c, want) != (int)n)
		return false;
	return CRYPTO_memcmp(sent, want, n) == 0;
}
