/* proxy_ids.c - the values a stateless proxy derives instead of storing
 * (RFC 3261 §16.6 item 8, §16.11, §16.3 item 4): the keys (sub-keys of the
 * shared secret, so every instance agrees), the Via branch (a transaction part
 * plus a loop part), the To tag of our local replies and the Record-Route MAC
 * that marks an authorized dialog. Same input bytes, same output, on every
 * instance behind the load balancer. */
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

/* Numbers are hashed little-endian whatever the host, so every instance agrees. */
static void hash_u32(struct proxy_hash *h, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	proxy_hash_add(h, b, sizeof(b));
}

bool proxy_branch_is_3261(struct slice branch)
{
	return branch.len > 7 && memcmp(branch.p, "z9hG4bK", 7) == 0;
}

uint64_t proxy_loop_hash(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.branch_key);
	proxy_hash_add(&h, "loop", 4);
	proxy_hash_field(&h, m->ruri);
	proxy_hash_field(&h, m->call_id);
	proxy_hash_field(&h, txn_from_tag(t));
	hash_u32(&h, m->cseq);
	/* Route values that are not ours: the ones we pop are gone when the
	 * request comes back, those left still steer it. The leading ones that
	 * are ours are known from the route decision. */
	unsigned i = m->first[SIP_HDR_ROUTE];
	if (i == SIP_NO_HDR)
		return proxy_hash_final(&h);
	for (unsigned n = txn_route(t)->n_pop; n > 0 && i != SIP_NO_HDR; n--)
		i = sip_msg_next(m, i);
	for (; i != SIP_NO_HDR; i = sip_msg_next(m, i)) {
		struct sip_uri u;
		if (!proxy_route_is_ours(t->cfg, m->call_id, m->hdrs[i].value, &u))
			proxy_hash_field(&h, m->hdrs[i].value);
	}
	return proxy_hash_final(&h);
}

void proxy_branch(struct txn *t, const struct sip_via *top, char out[PROXY_BRANCH_LEN])
{
	const struct sip_msg *m = &t->msg;
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.branch_key);
	if (proxy_branch_is_3261(top->branch)) {
		/* §16.11: a hash of the received branch (and sent-by, which makes
		 * it unique across clients); no method, so CANCEL and the ACK of a
		 * non-2xx land on the INVITE's branch. */
		proxy_hash_add(&h, "3261", 4);
		proxy_hash_field(&h, top->branch);
		proxy_hash_field(&h, top->host);
		hash_u32(&h, top->port);
	} else {
		/* RFC 2543 sender: topmost Via, To tag, From tag, Call-ID, CSeq
		 * number and Request-URI (§16.11). */
		proxy_hash_add(&h, "2543", 4);
		const struct sip_hdr *via = sip_msg_hdr(m, SIP_HDR_VIA);
		proxy_hash_field(&h, via ? via->value : SLICE_NULL);
		proxy_hash_field(&h, txn_to_tag(t));
		proxy_hash_field(&h, txn_from_tag(t));
		proxy_hash_field(&h, m->call_id);
		hash_u32(&h, m->cseq);
		proxy_hash_field(&h, m->ruri);
	}
	const uint64_t txn_part = proxy_hash_final(&h);
	const size_t pl = sizeof(PROXY_BRANCH_PREFIX) - 1;
	memcpy(out, PROXY_BRANCH_PREFIX, pl);
	proxy_hex64(txn_part, out + pl);
	out[pl + 16] = '.';
	proxy_hex64(proxy_loop_hash(t), out + pl + 17);
}

void proxy_to_tag(struct txn *t, char out[PROXY_TAG_LEN])
{
	const struct sip_via *top = txn_top_via(t);
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.tag_key);
	proxy_hash_field(&h, t->msg.call_id);
	proxy_hash_field(&h, txn_from_tag(t));
	proxy_hash_field(&h, top ? top->branch : SLICE_NULL);
	hash_u32(&h, t->msg.cseq);
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
