/* transfer_grant.c - grant tokens (SPEC §5, transfer.identity: grant): mint
 * on an authenticated REFER, verify on the transferee's INVITE. Pure
 * functions over bytes (no txn, no store): the JTI single-use check is the
 * stage's job. Layout and MAC input are documented in transfer_priv.h.
 * HMAC-SHA256 with precomputed pad states (hmac.h): no allocation, no syscall
 * per token except RAND_bytes once per thread to seed the JTI generator. */
#include "transfer_priv.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "b64url.h"

static struct transfer_keys keys;

const struct transfer_keys *transfer_keys(void)
{
	return &keys;
}

const char *transfer_result_name(enum transfer_result r)
{
	static const char *const names[TRANSFER_RESULT_COUNT] = {
		[TRANSFER_OK] = "ok",
		[TRANSFER_MALFORMED] = "malformed",
		[TRANSFER_BAD_MAC] = "bad_mac",
		[TRANSFER_WRONG_TARGET] = "wrong_target",
		[TRANSFER_EXPIRED] = "expired",
		[TRANSFER_REPLAYED] = "replayed",
		[TRANSFER_UNKNOWN_USER] = "unknown_user",
	};
	return (unsigned)r < TRANSFER_RESULT_COUNT ? names[r] : "unknown";
}

void transfer_keys_init(struct transfer_keys *k, const struct secret *s)
{
	hmac_key_init(&k->grant, s->grant_key, SECRET_KEY_BYTES);
	k->secret_len = s->len <= SECRET_MAX_BYTES ? s->len : SECRET_MAX_BYTES;
	memcpy(k->secret, s->bytes, k->secret_len);
}

void transfer_keys_set(const struct secret *s)
{
	transfer_keys_init(&keys, s);
}

/* ---------------------------------------------------------------- JTI */

/* Per-thread PRF: HMAC(random per-thread key, counter). Unpredictable and
 * unique without a syscall per grant. */
static _Thread_local struct {
	bool seeded;
	uint64_t counter;
	struct hmac_key prf;
} jti_state;

static int jti_random(uint8_t out[TRANSFER_JTI_RAND])
{
	if (!jti_state.seeded) {
		uint8_t seed[32];
		if (RAND_bytes(seed, sizeof(seed)) != 1)
			return -EIO;
		hmac_key_init(&jti_state.prf, seed, sizeof(seed));
		OPENSSL_cleanse(seed, sizeof(seed));
		jti_state.seeded = true;
	}
	uint8_t ctr[8];
	uint64_t c = ++jti_state.counter;
	for (int i = 7; i >= 0; i--, c >>= 8)
		ctr[i] = (uint8_t)c;
	SHA256_CTX h;
	uint8_t mac[32];
	hmac_start(&jti_state.prf, &h);
	hmac_update(&h, ctr, sizeof(ctr));
	hmac_finish(&jti_state.prf, &h, mac);
	memcpy(out, mac, TRANSFER_JTI_RAND);
	return 0;
}

/* target_fp - 24-bit fingerprint of the target, kept in the JTI. */
static void target_fp(const struct transfer_keys *k, struct slice target, uint8_t out[TRANSFER_JTI_FP])
{
	SHA256_CTX h;
	uint8_t mac[32];
	hmac_start(&k->grant, &h);
	hmac_update(&h, "v1t", 3);
	hmac_update(&h, target.p, target.len);
	hmac_finish(&k->grant, &h, mac);
	memcpy(out, mac, TRANSFER_JTI_FP);
}

static void grant_mac(const struct transfer_keys *k, struct slice identity, struct slice target,
		      uint64_t exp, const uint8_t jti[TRANSFER_JTI_BYTES], uint8_t out[32])
{
	uint8_t len[2], e[8];
	SHA256_CTX h;
	hmac_start(&k->grant, &h);
	hmac_update(&h, "v1", 2);
	len[0] = (uint8_t)(identity.len >> 8);
	len[1] = (uint8_t)identity.len;
	hmac_update(&h, len, 2);
	hmac_update(&h, identity.p, identity.len);
	len[0] = (uint8_t)(target.len >> 8);
	len[1] = (uint8_t)target.len;
	hmac_update(&h, len, 2);
	hmac_update(&h, target.p, target.len);
	for (int i = 7; i >= 0; i--, exp >>= 8)
		e[i] = (uint8_t)exp;
	hmac_update(&h, e, sizeof(e));
	hmac_update(&h, jti, TRANSFER_JTI_BYTES);
	hmac_finish(&k->grant, &h, out);
}

/* ---------------------------------------------------------------- issue / verify */

static size_t hex_len(uint64_t v)
{
	size_t n = 1;
	while (v >>= 4)
		n++;
	return n;
}

size_t transfer_grant_len(size_t id_len, uint64_t exp)
{
	return 3 + b64url_len(id_len) + 1 + hex_len(exp) + 1 + TRANSFER_JTI_CHARS + 1 +
	       TRANSFER_MAC_CHARS;
}

int transfer_grant_issue(const struct transfer_keys *k, struct slice identity, struct slice target,
			 uint64_t exp, char *out, size_t cap)
{
	if (identity.len == 0 || identity.len >= TRANSFER_ID_MAX || target.len == 0 ||
	    target.len >= TRANSFER_TARGET_MAX)
		return -EINVAL;
	if (transfer_grant_len(identity.len, exp) > cap)
		return -ENOSPC;
	uint8_t jti[TRANSFER_JTI_BYTES], mac[32];
	if (jti_random(jti) < 0)
		return -EIO;
	target_fp(k, target, jti + TRANSFER_JTI_RAND);
	grant_mac(k, identity, target, exp, jti, mac);

	size_t o = 0;
	memcpy(out, "v1.", 3);
	o += 3;
	o += (size_t)b64url_encode((const uint8_t *)identity.p, identity.len, out + o, cap - o);
	out[o++] = '.';
	static const char hex[] = "0123456789abcdef";
	for (size_t i = hex_len(exp); i-- > 0;)
		out[o++] = hex[(exp >> (4 * i)) & 15];
	out[o++] = '.';
	o += (size_t)b64url_encode(jti, sizeof(jti), out + o, cap - o);
	out[o++] = '.';
	o += (size_t)b64url_encode(mac, TRANSFER_MAC_BYTES, out + o, cap - o);
	OPENSSL_cleanse(mac, sizeof(mac));
	return (int)o;
}

/* next_field - split @s at the next '.', the rest stays in *s. */
static struct slice next_field(struct slice *s)
{
	ptrdiff_t dot = slice_find_char(*s, '.');
	struct slice f = slice_make(s->p, dot < 0 ? s->len : (size_t)dot);
	*s = dot < 0 ? slice_make(s->p + s->len, 0) : slice_advance(*s, (size_t)dot + 1);
	return f;
}

static bool exp_parse(struct slice s, uint64_t *out)
{
	if (s.len == 0 || s.len > 16 || s.p[0] == '0')
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < s.len; i++) {
		char c = s.p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v;
	return true;
}

enum transfer_result transfer_grant_verify(const struct transfer_keys *k, struct slice token,
					   struct slice target, uint64_t now, struct transfer_grant *g)
{
	struct slice rest = token;
	struct slice ver = next_field(&rest), id = next_field(&rest), exp = next_field(&rest);
	struct slice jti = next_field(&rest), mac = next_field(&rest);
	if (!slice_eq(ver, SLICE_LIT("v1")) || rest.p != token.p + token.len ||
	    (token.len && token.p[token.len - 1] == '.'))
		return TRANSFER_MALFORMED;
	if (jti.len != TRANSFER_JTI_CHARS || mac.len != TRANSFER_MAC_CHARS || !exp_parse(exp, &g->exp))
		return TRANSFER_MALFORMED;
	int n = b64url_decode(id, (uint8_t *)g->id, sizeof(g->id));
	if (n <= 0)
		return TRANSFER_MALFORMED;
	g->id_len = (size_t)n;
	uint8_t jti_raw[TRANSFER_JTI_BYTES], mac_raw[TRANSFER_MAC_BYTES], want[32];
	if (b64url_decode(jti, jti_raw, sizeof(jti_raw)) != TRANSFER_JTI_BYTES ||
	    b64url_decode(mac, mac_raw, sizeof(mac_raw)) != TRANSFER_MAC_BYTES)
		return TRANSFER_MALFORMED;
	g->jti = jti;
	if (target.len == 0 || target.len >= TRANSFER_TARGET_MAX)
		return TRANSFER_WRONG_TARGET;

	grant_mac(k, slice_make(g->id, g->id_len), target, g->exp, jti_raw, want);
	bool ok = CRYPTO_memcmp(want, mac_raw, TRANSFER_MAC_BYTES) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	if (!ok) {
		uint8_t fp[TRANSFER_JTI_FP];
		target_fp(k, target, fp);
		return memcmp(fp, jti_raw + TRANSFER_JTI_RAND, sizeof(fp)) ? TRANSFER_WRONG_TARGET
									     : TRANSFER_BAD_MAC;
	}
	if (g->exp < now)
		return TRANSFER_EXPIRED;
	return TRANSFER_OK;
}
