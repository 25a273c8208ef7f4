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
 * lock. A lost entry (its way given to a newer request) only means the
 * retransmission is checked again, and challenged, as without this table;
 * referee_auth_retx_evictions_total counts the ones lost young. SPEC §3. */
#include <openssl/crypto.h>
#include <string.h>

#include "auth_priv.h"
#include "hmac.h"
#include "metrics.h"
#include "now.h"
#include "secret.h"

/* Sets of RETX_WAYS entries: 8192 x 4 x 28 bytes = 896 KB per thread (zero
 * pages until a worker uses them). A request's copies come within Timer A's
 * doublings (0.5, 1.5, 3.5 s after it, while no provisional answer reached the
 * UAC), so what must survive is the young entries: a full set gives up its
 * oldest. A set of 4 holds everything younger than 4 s for 99.8 % of requests at
 * 1 000 authentications/s on one worker (Poisson, 0.49 per set in 4 s), 98 % at
 * 2 000/s; the direct-mapped 2048 slots it replaced were overwritten above ~64/s. */
#define RETX_SETS 8192 /* power of two */
#define RETX_WAYS 4
#define RETX_YOUNG 4 /* seconds: an entry evicted younger than this is counted */
#define RETX_TTL 32     /* seconds an accepted request's retransmissions pass */
/* seconds a check may wait: past the store's Redis reply timeout (2 s), so only
 * an original that was lost some other way leaves its copies to be checked again */
#define RETX_WAIT_TTL 4

struct retx_ent {
	uint8_t mac[16];
	uint32_t until; /* monotonic seconds; 0 = empty */
	uint32_t born;  /* when its request was first seen: the oldest of a full set goes */
	uint32_t accepted; /* 0: the original's check is still running */
};

/* Owned by the calling (worker) thread only. */
static _Thread_local struct retx_ent retx_tab[RETX_SETS][RETX_WAYS];

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

/* the set: MAC bytes the stored 16 do not include (keyed: a sender cannot aim at one) */
static uint32_t set_of(const uint8_t mac[32])
{
	uint32_t h = (uint32_t)mac[16] | (uint32_t)mac[17] << 8 | (uint32_t)mac[18] << 16;
	return h & (RETX_SETS - 1);
}

/* the way a new entry takes in @set: an empty or expired one, else the oldest */
static unsigned victim_of(struct retx_ent *set, uint32_t now)
{
	unsigned v = 0;
	for (unsigned w = 0; w < RETX_WAYS; w++) {
		if (set[w].until < now)
			return w;
		if (set[w].born < set[v].born)
			v = w;
	}
	if (set[v].born + RETX_YOUNG > now)
		metrics_inc(auth_g.m_retx_evicted);
	return v;
}

uint32_t auth_retx_set(const struct auth_retx_key *k)
{
	return k->slot / RETX_WAYS;
}

enum auth_retx auth_retx_begin(const struct txn *t, const struct auth_creds *c, struct auth_retx_key *k)
{
	uint8_t mac[32];
	k->valid = retx_mac(t, c, mac);
	if (!k->valid)
		return AUTH_RETX_NEW;
	memcpy(k->mac, mac, sizeof(k->mac));
	const uint32_t set = set_of(mac);
	struct retx_ent *ways = retx_tab[set];
	const uint32_t now = (uint32_t)now_mono_sec();
	for (unsigned w = 0; w < RETX_WAYS; w++) {
		const struct retx_ent *e = &ways[w];
		if (e->until >= now && memcmp(e->mac, k->mac, sizeof(e->mac)) == 0) {
			k->slot = set * RETX_WAYS + w;
			return e->accepted ? AUTH_RETX_ACCEPTED : AUTH_RETX_WAITING;
		}
	}
	const unsigned w = victim_of(ways, now);
	struct retx_ent *e = &ways[w];
	k->slot = set * RETX_WAYS + w;
	memcpy(e->mac, k->mac, sizeof(e->mac));
	e->accepted = 0;
	e->born = now;
	e->until = now + RETX_WAIT_TTL;
	return AUTH_RETX_NEW;
}

void auth_retx_end(const struct auth_retx_key *k, bool accepted)
{
	if (!k->valid)
		return;
	struct retx_ent *e = &retx_tab[k->slot / RETX_WAYS][k->slot % RETX_WAYS];
	if (memcmp(e->mac, k->mac, sizeof(e->mac)) != 0)
		return; /* the slot went to another request meanwhile */
	if (accepted) {
		e->accepted = 1;
		e->until = (uint32_t)now_mono_sec() + RETX_TTL;
	} else {
		e->until = 0; /* refused or not checked: a copy is checked again */
	}
}
