/* store_id.c - user ids as the store keys them: "user@domain" normalised
 * (lowercase domain), and the HA1s of a password (SPEC §3). Used by the
 * front door, the tables' invalidation, the users file and referee-admin. */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "store_priv.h"

int store_id_norm(struct slice id, char buf[STORE_ID_MAX], size_t *len)
{
	if (id.len >= STORE_ID_MAX)
		return -ENAMETOOLONG;
	ptrdiff_t at = slice_find_char(id, '@');
	if (at <= 0 || (size_t)at + 1 >= id.len || slice_find_char(slice_advance(id, (size_t)at + 1), '@') >= 0)
		return -EINVAL;
	for (size_t i = 0; i < id.len; i++) {
		char ch = id.p[i];
		if ((unsigned char)ch <= ' ' || ch == ',' || ch == 0x7f)
			return -EINVAL;
		buf[i] = ((size_t)at < i && ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	buf[id.len] = '\0';
	*len = id.len;
	return 0;
}

static int digest_once(const EVP_MD *md, const char *user, size_t ulen, const char *realm,
		       const char *pw, size_t pwlen, uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, user, ulen) &&
		 EVP_DigestUpdate(ctx, ":", 1) && EVP_DigestUpdate(ctx, realm, strlen(realm)) &&
		 EVP_DigestUpdate(ctx, ":", 1) && EVP_DigestUpdate(ctx, pw, pwlen) &&
		 EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int store_ha1_compute(const char *id, const char *realm, const char *pw, size_t pwlen,
		      uint8_t md5[16], uint8_t sha256[32])
{
	const char *at = strchr(id, '@');
	size_t ulen = at ? (size_t)(at - id) : strlen(id);
	if (digest_once(EVP_md5(), id, ulen, realm, pw, pwlen, md5) < 0 ||
	    digest_once(EVP_sha256(), id, ulen, realm, pw, pwlen, sha256) < 0)
		return -EIO;
	return 0;
}
