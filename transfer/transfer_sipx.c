/* transfer_sipx.c - sipXecs-compatible X-sipX-Authidentity signatures
 * (SPEC §5 transfer.identity: sipx; reference §2.3, §2.4, golden vectors §2.6).
 * Byte-compatible hashing; stricter parsing than sipXecs (the signature must
 * be exactly TS ":" [":"] HASH, no junk around it) and expiry enforced
 * (transfer.sipx_validity). Pure functions: header parsing is elsewhere. */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* MD5_Init & co.: deprecated, allocation-free */
#include "hex.h"
#include "transfer_priv.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/md5.h>

void transfer_sipx_hash(const uint8_t *secret, size_t secret_len, struct slice ts, bool bound,
			struct slice from_tag, struct slice call_id, struct slice identity,
			char out[TRANSFER_SIPX_HASH_CHARS])
{
	/* reference §2.3: plain concatenation, no delimiters */
	MD5_CTX c;
	uint8_t d[MD5_DIGEST_LENGTH];
	MD5_Init(&c);
	MD5_Update(&c, ts.p, ts.len);
	MD5_Update(&c, secret, secret_len);
	if (bound) {
		MD5_Update(&c, from_tag.p, from_tag.len);
		MD5_Update(&c, call_id.p, call_id.len);
	}
	MD5_Update(&c, identity.p, identity.len);
	MD5_Final(d, &c);
	hex_encode(d, sizeof(d), out);
}

int transfer_sipx_sign(const uint8_t *secret, size_t secret_len, uint64_t ts, bool bound,
		       struct slice from_tag, struct slice call_id, struct slice identity,
		       char *out, size_t cap)
{
	char tsbuf[16];
	size_t n = 0;
	static const char hex[] = "0123456789ABCDEF"; /* printf "%lX": uppercase, no padding */
	uint64_t v = ts;
	do {
		tsbuf[n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	size_t need = n + (bound ? 1 : 2) + TRANSFER_SIPX_HASH_CHARS;
	if (need > cap)
		return -ENOSPC;
	for (size_t i = 0; i < n; i++)
		out[i] = tsbuf[n - 1 - i];
	size_t o = n;
	out[o++] = ':';
	if (!bound)
		out[o++] = ':';
	transfer_sipx_hash(secret, secret_len, slice_make(out, n), bound, from_tag, call_id, identity,
			   out + o);
	return (int)need;
}

static bool is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

enum transfer_result transfer_sipx_verify(const uint8_t *secret, size_t secret_len, struct slice sig,
					  struct slice identity, struct slice from_tag,
					  struct slice call_id, uint64_t now, unsigned validity)
{
	size_t n = 0;
	uint64_t ts = 0;
	while (n < sig.len && is_upper_hex(sig.p[n])) {
		ts = (ts << 4) | (uint64_t)(sig.p[n] <= '9' ? sig.p[n] - '0' : sig.p[n] - 'A' + 10);
		n++;
	}
	if (n == 0 || n > 16 || n >= sig.len || sig.p[n] != ':')
		return TRANSFER_MALFORMED;
	size_t h = n + 1;
	bool bound = true;
	if (h < sig.len && sig.p[h] == ':') {
		bound = false;
		h++;
	}
	if (sig.len - h != TRANSFER_SIPX_HASH_CHARS)
		return TRANSFER_MALFORMED;
	for (size_t i = h; i < sig.len; i++)
		if (!is_lower_hex(sig.p[i]))
			return TRANSFER_MALFORMED;
	if (identity.len == 0 || (bound && (from_tag.len == 0 || call_id.len == 0)))
		return TRANSFER_MALFORMED;

	char want[TRANSFER_SIPX_HASH_CHARS];
	transfer_sipx_hash(secret, secret_len, slice_make(sig.p, n), bound, from_tag, call_id, identity,
			   want);
	if (CRYPTO_memcmp(want, sig.p + h, sizeof(want)) != 0)
		return TRANSFER_BAD_MAC;
	/* sipXecs never checks the expiry (reference §2.4 step 7); we do. Like
	 * sipXecs, a timestamp in the future is not refused: only holders of the
	 * secret can mint one. */
	if (validity && ts + validity < now)
		return TRANSFER_EXPIRED;
	return TRANSFER_OK;
}
