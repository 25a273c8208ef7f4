/* auth_digest.c - the digest arithmetic of RFC 7616 §3.4.1 / RFC 2617 §3.2.2
 * for qop=auth with MD5 and SHA-256 (RFC 8760), through OpenSSL EVP.
 * Digests are fetched once per process; each thread reuses one EVP_MD_CTX, so
 * nothing is allocated per request. Responses are compared with CRYPTO_memcmp.
 * Not here: parsing (auth_params.c), nonces (auth_nonce.c), policy (auth_identity.c). */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "auth_priv.h"

static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
static EVP_MD *digest_md[2];      /* [CFG_ALGO_SHA256], [CFG_ALGO_MD5]; written once under digest_once */
static pthread_key_t digest_ctx_key; /* per-thread EVP_MD_CTX, freed at thread exit */

static void ctx_destroy(void *p)
{
	EVP_MD_CTX_free(p);
}

static void digest_setup(void)
{
	digest_md[CFG_ALGO_SHA256] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	digest_md[CFG_ALGO_MD5] = EVP_MD_fetch(NULL, "MD5", NULL);
	pthread_key_create(&digest_ctx_key, ctx_destroy);
}

static EVP_MD_CTX *thread_ctx(void)
{
	pthread_once(&digest_once, digest_setup);
	EVP_MD_CTX *ctx = pthread_getspecific(digest_ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new(); /* once per thread */
		if (ctx && pthread_setspecific(digest_ctx_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

size_t auth_algo_len(enum cfg_algo a)
{
	return a == CFG_ALGO_SHA256 ? 32 : 16;
}

const char *auth_algo_name(enum cfg_algo a)
{
	return a == CFG_ALGO_SHA256 ? "SHA-256" : "MD5";
}

void auth_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
}

/* hash_parts - H(parts[0] ":" parts[1] ":" ...) into @out. */
static int hash_parts(enum cfg_algo a, const struct slice *parts, unsigned n, uint8_t out[AUTH_HASH_MAX])
{
	EVP_MD_CTX *ctx = thread_ctx();
	const EVP_MD *md = digest_md[a == CFG_ALGO_SHA256 ? CFG_ALGO_SHA256 : CFG_ALGO_MD5];
	if (!ctx || !md || EVP_DigestInit_ex2(ctx, md, NULL) != 1)
		return -EIO;
	for (unsigned i = 0; i < n; i++) {
		if (i && EVP_DigestUpdate(ctx, ":", 1) != 1)
			return -EIO;
		if (parts[i].len && EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) != 1)
			return -EIO;
	}
	unsigned len = 0;
	if (EVP_DigestFinal_ex(ctx, out, &len) != 1)
		return -EIO;
	return (int)len;
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
	auth_hex(ha1, n, ha1_hex);
	auth_hex(ha2, n, ha2_hex);
	const struct slice parts[6] = {
		slice_make(ha1_hex, 2 * n), c->nonce, c->nc_text, c->cnonce, c->qop, slice_make(ha2_hex, 2 * n),
	};
	int rc = hash_parts(a, parts, 6, out);
	OPENSSL_cleanse(ha1_hex, sizeof(ha1_hex));
	return rc;
}

static int hex_nibble(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)(ch | 0x20);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

bool auth_digest_verify(enum cfg_algo a, const uint8_t *ha1, struct slice method, const struct auth_creds *c)
{
	size_t n = auth_algo_len(a);
	if (c->response.len != 2 * n)
		return false;
	uint8_t sent[AUTH_HASH_MAX];
	for (size_t i = 0; i < n; i++) {
		int hi = hex_nibble(c->response.p[2 * i]), lo = hex_nibble(c->response.p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		sent[i] = (uint8_t)(hi << 4 | lo);
	}
	uint8_t want[AUTH_HASH_MAX];
	if (auth_digest_response(a, ha1, method, c, want) != (int)n)
		return false;
	return CRYPTO_memcmp(sent, want, n) == 0;
}
