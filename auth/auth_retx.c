/* auth_retx.c - tell a UDP retransmission from a replay. A stateless proxy sees
 * every retransmission of an accepted request again, with the same
 * nonce-count, and the store rightly refuses that count a second time; answering
 * 407 to a retransmission would end a call that is going well. So each worker
 * remembers, for 32 s (64*T1, RFC 3261 §17.1.1.2), a MAC of the accepted
 * credential together with the request's transaction (top Via, CSeq, Call-ID,
 * method): the same bytes again are forwarded like any retransmission, while the
 * same credential on any other request stays a replay. Retransmissions reach
 * the worker that saw the original (workers are chosen by source, not by Call-ID), so the table
 * is per thread: no sharing, no lock. A lost entry (slot reused) only means the
 * retransmission is challenged, as without this table. SPEC §3. */
#include <openssl/crypto.h>
#include <string.h>

#include "auth_priv.h"
#include "hmac.h"
#include "now.h"
#include "secret.h"

#define RETX_SLOTS 2048 /* power of two; 48 KB per worker */
#define RETX_TTL 32     /* seconds */

struct retx_ent {
	uint8_t mac[16];
	uint64_t until; /* unix seconds; 0 = empty */
};

/* Owned by the calling (worker) thread only. */
static _Thread_local struct retx_ent retx_tab[RETX_SLOTS];

/* put - feed one length-prefixed part; false when it is longer than the prefix says. */
static bool put(SHA256_CTX *h, struct slice s)
{
	if (s.len > 0xffff)
		return false;
	const uint8_t len[2] = { (uint8_t)(s.len >> 8), (uint8_t)s.len };
	hmac_update(h, len, sizeof(len));
	hmac_update(h, s.p, s.len);
	return true;
}

/* retx_mac - MAC over the credential and the transaction identity of @t. */
static bool retx_mac(const struct txn *t, const struct auth_creds *c, uint8_t mac[HMAC_SHA256_BYTES])
{
	const struct sip_msg *m = &t->msg;
	const struct sip_hdr *via = sip_msg_hdr(m, SIP_HDR_VIA);
	const struct sip_hdr *cseq = sip_msg_hdr(m, SIP_HDR_CSEQ);
	if (!via || !cseq)
		return false;
	const struct slice parts[] = {
		c->username, c->nonce, c->nc_text, c->cnonce, c->response, via->value, cseq->value, m->call_id, m->method,
	};
	SHA256_CTX h;
	hmac_start(&auth_g.nonce_key, &h);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (!put(&h, parts[i])) {
			OPENSSL_cleanse(&h, sizeof(h));
			return false;
		}
	hmac_finish(&auth_g.nonce_key, &h, mac);
	return true;
}

static struct retx_ent *slot_of(const uint8_t mac[32])
{
	uint32_t h = (uint32_t)mac[16] | (uint32_t)mac[17] << 8 | (uint32_t)mac[18] << 16;
	return &retx_tab[h & (RETX_SLOTS - 1)];
}

void auth_retx_remember(const struct txn *t, const struct auth_creds *c)
{
	uint8_t mac[32];
	if (!retx_mac(t, c, mac))
		return;
	struct retx_ent *e = slot_of(mac);
	memcpy(e->mac, mac, sizeof(e->mac));
	e->until = now_mono_sec() + RETX_TTL;
}

bool auth_retx_is_known(const struct txn *t, const struct auth_creds *c)
{
	uint8_t mac[32];
	if (!retx_mac(t, c, mac))
		return false;
	const struct retx_ent *e = slot_of(mac);
	return e->until >= now_mono_sec() && memcmp(e->mac, mac, sizeof(e->mac)) == 0;
}
