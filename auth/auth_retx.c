/* auth_retx.c - tell a UDP retransmission from a replay. A stateless proxy sees
 * every retransmission of an accepted request again, with the same
 * nonce-count, and the store rightly refuses that count a second time; answering
 * 407 to a retransmission would end a call that is going well. So each worker
 * remembers a MAC of the credential together with the request's transaction (top
 * Via, CSeq, Call-ID, method) from the moment its nonce count is checked: while
 * the check waits for Redis, the same bytes again are dropped (the original
 * answers for both; the client retransmits again), once accepted they are
 * forwarded like any retransmission for 32 s (64*T1, RFC 3261 §17.1.1.2), while
 * the same credential on any other request stays a replay. Without the waiting
 * state a retransmission that came while Redis was slow (a busy day: SIPp
 * retransmits after 500 ms) met the count already taken locally and got 407, and
 * the UAC's ACK of that 407 ended the call downstream. Retransmissions reach the
 * worker that saw the original (workers are chosen by source, not by Call-ID),
 * and a parked request resumes there, so the table is per thread: no sharing, no
 * lock. A lost entry (slot reused) only means the retransmission is checked
 * again, and challenged, as without this table. SPEC §3. */
#include <openssl/crypto.h>
#include <string.h>

#include "auth_priv.h"
#include "hmac.h"
#include "now.h"
#include "secret.h"

#define RETX_SLOTS 2048 /* power of two; 48 KB per worker */
#define RETX_TTL 32     /* seconds an accepted request's retransmissions pass */
/* seconds a check may wait: past the store's Redis reply timeout (2 s), so only
 * an original that was lost some other way leaves its copies to be checked again */
#define RETX_WAIT_TTL 4

struct retx_ent {
	uint8_t mac[16];
	uint32_t until; /* monotonic seconds; 0 = empty */
	uint32_t accepted; /* 0: the original's check is still running */
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

static uint32_t slot_of(const uint8_t mac[32])
{
	uint32_t h = (uint32_t)mac[16] | (uint32_t)mac[17] << 8 | (uint32_t)mac[18] << 16;
	return h & (RETX_SLOTS - 1);
}

enum auth_retx auth_retx_begin(const struct txn *t, const struct auth_creds *c, struct auth_retx_key *k)
{
	uint8_t mac[32];
	k->valid = retx_mac(t, c, mac);
	if (!k->valid)
		return AUTH_RETX_NEW;
	memcpy(k->mac, mac, sizeof(k->mac));
	k->slot = slot_of(mac);
	struct retx_ent *e = &retx_tab[k->slot];
	const uint32_t now = (uint32_t)now_mono_sec();
	if (e->until >= now && memcmp(e->mac, k->mac, sizeof(e->mac)) == 0)
		return e->accepted ? AUTH_RETX_ACCEPTED : AUTH_RETX_WAITING;
	memcpy(e->mac, k->mac, sizeof(e->mac));
	e->accepted = 0;
	e->until = now + RETX_WAIT_TTL;
	return AUTH_RETX_NEW;
}

void auth_retx_end(const struct auth_retx_key *k, bool accepted)
{
	if (!k->valid)
		return;
	struct retx_ent *e = &retx_tab[k->slot];
	if (memcmp(e->mac, k->mac, sizeof(e->mac)) != 0)
		return; /* the slot went to another request meanwhile */
	if (accepted) {
		e->accepted = 1;
		e->until = (uint32_t)now_mono_sec() + RETX_TTL;
	} else {
		e->until = 0; /* refused or not checked: a copy is checked again */
	}
}
