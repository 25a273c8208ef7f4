/* proxy_ids.c - the values a stateless proxy derives instead of storing
 * (RFC 3261 §16.6 item 8, §16.11): the keys (sub-keys of the shared secret,
 * so every instance agrees), the To tag of our local replies and the
 * Record-Route MAC that marks an authorized dialog, signed and checked here.
 * Same input bytes, same output, on every instance behind the load balancer.
 * The Via branch and loop hash, which read the route decision, are
 * proxy_branch.c's. */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "b64url.h"
#include "hmac.h"
#include "proxy.h"
#include "proxy_priv.h"

struct proxy_state proxy_g;

static void key_derive(const uint8_t rr_key[SECRET_KEY_BYTES], const char *purpose,
		       uint64_t out[2])
{
	uint8_t mac[32];
	hmac_sha256(rr_key, SECRET_KEY_BYTES, purpose, strlen(purpose), mac);
	memcpy(out, mac, 16);
	OPENSSL_cleanse(mac, sizeof(mac));
}

int proxy_init(const struct cfg *c, const struct secret *s)
{
	if (!c || !s || s->len < SECRET_MIN_BYTES)
		return -EINVAL;
	/* The pads are hashed once: a Record-Route MAC is then two SHA-256
	 * finals over a context copy, with no buffer to join Call-ID and marker. */
	hmac_key_init(&proxy_g.rr_key, s->rr_key, SECRET_KEY_BYTES);
	/* Separate sub-keys: a To tag never reveals anything about a branch. */
	key_derive(s->rr_key, "referee branch", proxy_g.branch_key);
	key_derive(s->rr_key, "referee to-tag", proxy_g.tag_key);
	proxy_count_register();
	return 0;
}

void proxy_to_tag(struct txn *t, char out[PROXY_TAG_LEN])
{
	const struct sip_via *top = txn_top_via(t);
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.tag_key);
	proxy_hash_field(&h, t->msg.call_id);
	proxy_hash_field(&h, txn_from_tag(t));
	proxy_hash_field(&h, top ? top->branch : SLICE_NULL);
	proxy_hash_u32(&h, t->msg.cseq);
	proxy_hex64(proxy_hash_final(&h), out);
}

void proxy_rr_mac(struct slice call_id, char out[PROXY_RR_MAC_CHARS])
{
	SHA256_CTX c;
	uint8_t mac[HMAC_SHA256_BYTES];
	hmac_start(&proxy_g.rr_key, &c);
	hmac_update(&c, call_id.p, call_id.len);
	hmac_update(&c, "a", 1); /* the "authorized" marker */
	hmac_finish(&proxy_g.rr_key, &c, mac);
	static_assert(PROXY_RR_MAC_CHARS == (PROXY_RR_MAC_BYTES * 4 + 2) / 3, "base64url length");
	b64url_encode(mac, PROXY_RR_MAC_BYTES, out, PROXY_RR_MAC_CHARS);
}

bool proxy_rr_mac_ok(struct slice call_id, struct slice ra)
{
	char mac[PROXY_RR_MAC_CHARS];
	if (ra.len != PROXY_RR_MAC_CHARS)
		return false;
	proxy_rr_mac(call_id, mac);
	return CRYPTO_memcmp(ra.p, mac, PROXY_RR_MAC_CHARS) == 0;
}

bool proxy_rr_signed(struct slice call_id, const struct sip_uri *u)
{
	struct slice ra;
	return call_id.len != 0 && sip_uri_param(u, SLICE_LIT("ra"), &ra) && proxy_rr_mac_ok(call_id, ra);
}
