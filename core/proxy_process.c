/* proxy_process.c - runs the stage chain on one message and turns its verdict
 * into bytes to send (SPEC §1): local replies, relayed responses, counted drops.
 * Also owns the keys and the keyed hash (SipHash-2-4) behind the deterministic
 * Via branch, the To tag of stateless replies and the signed Record-Route MAC
 * (RFC 3261 §16.6 item 8, §16.11). Malformed requests: 400 when the top Via
 * can route a reply, 505/501 from sip_msg_check, else a counted drop. */
#include <endian.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "metrics.h"
#include "proxy.h"
#include "proxy_priv.h"

struct proxy_state proxy_g;

/* ---------------------------------------------------------------- metrics */

static const char *const drop_reasons[PROXY_DROP_COUNT] = {
	[PROXY_DROP_MALFORMED] = "malformed",
	[PROXY_DROP_BAD_VIA] = "bad_via",
	[PROXY_DROP_NOT_OUR_VIA] = "not_our_via",
	[PROXY_DROP_NO_NEXT_VIA] = "no_next_via",
	[PROXY_DROP_BAD_DESTINATION] = "bad_destination",
	[PROXY_DROP_TOO_BIG] = "too_big",
	[PROXY_DROP_REPLY_SUPPRESSED] = "reply_suppressed",
	[PROXY_DROP_NO_FORWARDER] = "no_forwarder",
};

static const char *const directions[PROXY_DIR_COUNT] = { "request", "response" };

/* Codes core and the module stages answer with; anything else is "other". */
static const uint16_t reply_codes[] = { 200, 400, 403, 404, 407, 416, 420,
					 481, 482, 483, 488, 500, 501, 503, 505, 513 };
#define N_REPLY_CODES (sizeof(reply_codes) / sizeof(reply_codes[0]))
static const char *const reply_code_labels[N_REPLY_CODES + 1] = {
	"200", "400", "403", "404", "407", "416", "420", "481",
	"482", "483", "488", "500", "501", "503", "505", "513", "other",
};

static void metrics_register_once(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	proxy_g.m_responses = metrics_counter("referee_responses_sent_total",
					      "Local replies sent by status code", "code",
					      reply_code_labels, N_REPLY_CODES + 1);
	proxy_g.m_forwarded = metrics_counter("referee_forwarded_total",
					      "Messages forwarded statelessly", "direction",
					      directions, PROXY_DIR_COUNT);
	proxy_g.m_drops = metrics_counter("referee_drops_total", "Messages dropped by reason",
					  "reason", drop_reasons, PROXY_DROP_COUNT);
	proxy_g.m_absorbed = metrics_counter("referee_acks_absorbed_total",
					     "ACKs of our own local replies, absorbed", NULL, NULL, 0);
	proxy_g.have_metrics = true;
}

void proxy_count_drop(enum proxy_drop why)
{
	if (proxy_g.have_metrics && why < PROXY_DROP_COUNT)
		metrics_inc(proxy_g.m_drops + (unsigned)why);
}

void proxy_count_forwarded(enum proxy_direction dir)
{
	if (proxy_g.have_metrics)
		metrics_inc(proxy_g.m_forwarded + (unsigned)dir);
}

void proxy_count_reply(uint16_t code)
{
	if (!proxy_g.have_metrics)
		return;
	unsigned i = 0;
	while (i < N_REPLY_CODES && reply_codes[i] != code)
		i++;
	metrics_inc(proxy_g.m_responses + i);
}

void proxy_count_absorbed(void)
{
	if (proxy_g.have_metrics)
		metrics_inc(proxy_g.m_absorbed);
}

/* ---------------------------------------------------------------- keys */

static void key_derive(const uint8_t rr_key[SECRET_KEY_BYTES], const char *purpose,
		       uint64_t out[2])
{
	uint8_t mac[32];
	secret_hmac(rr_key, purpose, strlen(purpose), mac);
	memcpy(out, mac, 16);
	OPENSSL_cleanse(mac, sizeof(mac));
}

int proxy_init(const struct cfg *c, const struct secret *s)
{
	if (!c || !s || s->len < SECRET_MIN_BYTES)
		return -EINVAL;
	memcpy(proxy_g.rr_key, s->rr_key, SECRET_KEY_BYTES);
	/* Separate sub-keys: a To tag never reveals anything about a branch. */
	key_derive(s->rr_key, "referee branch", proxy_g.branch_key);
	key_derive(s->rr_key, "referee to-tag", proxy_g.tag_key);
	metrics_register_once();
	return 0;
}

/* ---------------------------------------------------------------- SipHash-2-4 */

static inline uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void sip_round(struct proxy_hash *h)
{
	h->v0 += h->v1;
	h->v1 = rotl(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = rotl(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = rotl(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = rotl(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = rotl(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = rotl(h->v2, 32);
}

static inline void sip_compress(struct proxy_hash *h, uint64_t m)
{
	h->v3 ^= m;
	sip_round(h);
	sip_round(h);
	h->v0 ^= m;
}

void proxy_hash_init(struct proxy_hash *h, const uint64_t key[2])
{
	h->v0 = key[0] ^ 0x736f6d6570736575ull;
	h->v1 = key[1] ^ 0x646f72616e646f6dull;
	h->v2 = key[0] ^ 0x6c7967656e657261ull;
	h->v3 = key[1] ^ 0x7465646279746573ull;
	h->tail = 0;
	h->ntail = 0;
	h->total = 0;
}

void proxy_hash_add(struct proxy_hash *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;
	h->total += n;
	/* top up a partial word byte by byte, then whole little-endian words */
	while (i < n && h->ntail) {
		h->tail |= (uint64_t)b[i++] << (8 * h->ntail);
		if (++h->ntail == 8) {
			sip_compress(h, h->tail);
			h->tail = 0;
			h->ntail = 0;
		}
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, sizeof(w));
		sip_compress(h, le64toh(w));
	}
	for (; i < n; i++)
		h->tail |= (uint64_t)b[i] << (8 * h->ntail++);
}

void proxy_hash_field(struct proxy_hash *h, struct slice s)
{
	const uint8_t len[4] = { (uint8_t)s.len, (uint8_t)(s.len >> 8), (uint8_t)(s.len >> 16),
				 (uint8_t)(s.len >> 24) };
	proxy_hash_add(h, len, sizeof(len));
	if (s.len)
		proxy_hash_add(h, s.p, s.len);
}

uint64_t proxy_hash_final(struct proxy_hash *h)
{
	sip_compress(h, h->tail | (h->total << 56));
	h->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(h);
	return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}

uint64_t proxy_siphash(const uint64_t key[2], const void *p, size_t n)
{
	struct proxy_hash h;
	proxy_hash_init(&h, key);
	proxy_hash_add(&h, p, n);
	return proxy_hash_final(&h);
}

/* ---------------------------------------------------------------- derived values */

/* Numbers are hashed little-endian whatever the host, so every instance agrees. */
static void hash_u32(struct proxy_hash *h, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	proxy_hash_add(h, b, sizeof(b));
}

void proxy_hex64(uint64_t v, char out[16])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = digits[v & 0xf];
		v >>= 4;
	}
}

bool proxy_branch_is_3261(struct slice branch)
{
	return branch.len > 7 && memcmp(branch.p, "z9hG4bK", 7) == 0;
}

uint64_t proxy_loop_hash(const struct cfg *c, const struct sip_msg *m)
{
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.branch_key);
	proxy_hash_add(&h, "loop", 4);
	proxy_hash_field(&h, m->ruri);
	proxy_hash_field(&h, m->call_id);
	proxy_hash_field(&h, proxy_hdr_tag(m, SIP_HDR_FROM));
	hash_u32(&h, m->cseq);
	/* Route values that are not ours: the ones we pop are gone when the
	 * request comes back, those left still steer it. */
	for (unsigned i = m->first[SIP_HDR_ROUTE]; i != SIP_NO_HDR; i = proxy_next_value(m, i)) {
		struct sip_uri u;
		if (!proxy_route_is_ours(c, m->call_id, m->hdrs[i].value, &u))
			proxy_hash_field(&h, m->hdrs[i].value);
	}
	return proxy_hash_final(&h);
}

void proxy_branch(const struct cfg *c, const struct sip_msg *m, const struct sip_via *top,
		  char out[PROXY_BRANCH_LEN])
{
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
		proxy_hash_field(&h, proxy_hdr_tag(m, SIP_HDR_TO));
		proxy_hash_field(&h, proxy_hdr_tag(m, SIP_HDR_FROM));
		proxy_hash_field(&h, m->call_id);
		hash_u32(&h, m->cseq);
		proxy_hash_field(&h, m->ruri);
	}
	const uint64_t txn_part = proxy_hash_final(&h);
	const size_t pl = sizeof(PROXY_BRANCH_PREFIX) - 1;
	memcpy(out, PROXY_BRANCH_PREFIX, pl);
	proxy_hex64(txn_part, out + pl);
	out[pl + 16] = '.';
	proxy_hex64(proxy_loop_hash(c, m), out + pl + 17);
}

void proxy_to_tag(const struct sip_msg *m, const struct sip_via *top, char out[PROXY_TAG_LEN])
{
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.tag_key);
	proxy_hash_field(&h, m->call_id);
	proxy_hash_field(&h, proxy_hdr_tag(m, SIP_HDR_FROM));
	proxy_hash_field(&h, top ? top->branch : SLICE_NULL);
	hash_u32(&h, m->cseq);
	proxy_hex64(proxy_hash_final(&h), out);
}

static void base64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		const uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		const uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
	} else if (n - i == 2) {
		const uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
	}
}

void proxy_rr_mac_of(const void *data, size_t n, char out[PROXY_RR_MAC_CHARS])
{
	uint8_t mac[32];
	secret_hmac(proxy_g.rr_key, data, n, mac);
	static_assert(PROXY_RR_MAC_CHARS == (PROXY_RR_MAC_BYTES * 8 + 5) / 6, "base64url length");
	base64url(mac, PROXY_RR_MAC_BYTES, out);
}

int proxy_rr_mac(struct txn *t, struct slice call_id, char out[PROXY_RR_MAC_CHARS])
{
	/* HMAC input must be contiguous: Call-ID ‖ "a" (the authorized marker). */
	char *buf = txn_alloc(t, call_id.len + 1);
	if (!buf)
		return -ENOMEM;
	if (call_id.len)
		memcpy(buf, call_id.p, call_id.len);
	buf[call_id.len] = 'a';
	proxy_rr_mac_of(buf, call_id.len + 1, out);
	return 0;
}

/* ---------------------------------------------------------------- message helpers */

unsigned proxy_next_value(const struct sip_msg *m, unsigned i)
{
	const uint8_t id = m->hdrs[i].id;
	if (m->last[id] == SIP_NO_HDR || i >= m->last[id])
		return SIP_NO_HDR;
	for (unsigned j = i + 1; j < m->n_hdrs; j++)
		if (m->hdrs[j].id == id)
			return j;
	return SIP_NO_HDR;
}

int proxy_top_via(const struct sip_msg *m, struct sip_via *v)
{
	const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_VIA);
	if (!h)
		return -ENOENT;
	return sip_via_parse(h->value, v) < 0 ? -EBADMSG : 0;
}

struct slice proxy_hdr_tag(const struct sip_msg *m, enum sip_hdr_id id)
{
	const struct sip_hdr *h = sip_msg_hdr(m, id);
	struct sip_nameaddr na;
	struct slice tag;
	if (!h || sip_nameaddr_parse(h->value, &na) < 0 ||
	    !sip_param_find(na.params, SLICE_LIT("tag"), &tag))
		return SLICE_NULL;
	return tag;
}

/* ---------------------------------------------------------------- the chain */

/* A local reply, once a stage (or the malformed check) asked for one. */
static enum stage_rc reply_finish(struct txn *t)
{
	t->out_len = 0;
	/* Never answer a response, and never answer an ACK (RFC 3261 §17). */
	if (!t->msg.is_request || t->msg.method_id == SIP_METHOD_ACK) {
		proxy_count_drop(PROXY_DROP_REPLY_SUPPRESSED);
		return STAGE_DROP;
	}
	const int rc = proxy_reply_build(t);
	if (rc < 0) {
		proxy_count_drop(rc == -ENOSPC ? PROXY_DROP_TOO_BIG : PROXY_DROP_BAD_VIA);
		t->out_len = 0;
		return STAGE_DROP;
	}
	proxy_count_reply(t->reply_code);
	return STAGE_REPLY;
}

/* Malformed input, before any stage sees it. Returns true when handled. */
static bool malformed_handle(struct txn *t, enum stage_rc *verdict)
{
	const struct sip_msg *m = &t->msg;
	const char *why = NULL;
	enum sip_check chk;
	if (t->parse_rc < 0) {
		chk = SIP_CHECK_BAD_REQUEST;
		/* "SIP/7.0" is a version we do not speak; "SIP/2.0  " (RFC 4475
		 * trws) is a syntax error of a version we do speak */
		const struct slice ver = slice_trim(m->version);
		if (slice_has_caseprefix(ver, SLICE_LIT("SIP/")) &&
		    !slice_eq(ver, SLICE_LIT("SIP/2.0")))
			chk = SIP_CHECK_BAD_VERSION;
	} else {
		chk = sip_msg_check(m, &why);
	}
	if (chk == SIP_CHECK_OK)
		return false;
	/* an unparsable datagram is counted once, by the pipeline, as
	 * referee_rx_drops_total{reason="malformed"}; here only what parsed */
	if (!m->is_request || m->method.len == 0 || chk == SIP_CHECK_DROP) {
		/* responses are discarded silently (RFC 4475 scalarlg, bigcode) */
		if (t->parse_rc >= 0)
			proxy_count_drop(PROXY_DROP_MALFORMED);
		*verdict = STAGE_DROP;
		return true;
	}
	struct sip_via v;
	if (proxy_top_via(m, &v) < 0) {
		/* no Via to route an answer with: nothing else we can do */
		if (t->parse_rc >= 0)
			proxy_count_drop(PROXY_DROP_MALFORMED);
		*verdict = STAGE_DROP;
		return true;
	}
	uint16_t code = 400;
	if (chk == SIP_CHECK_BAD_VERSION)
		code = 505;
	else if (chk == SIP_CHECK_NOT_IMPL)
		code = 501;
	txn_reply(t, code, code == 400 && why ? slice_from_cstr(why) : SLICE_NULL);
	*verdict = reply_finish(t);
	return true;
}

enum stage_rc proxy_process(const struct stage_table *st, struct txn *t)
{
	if (t->stage_idx == 0) {
		t->out_len = 0;
		enum stage_rc verdict;
		if (malformed_handle(t, &verdict))
			return verdict;
	}
	const bool request = t->msg.is_request;
	for (unsigned i = t->stage_idx; i < st->n; i++) {
		const struct stage *s = &st->stages[i];
		t->stage_idx = (uint8_t)i;
		if (s->requests_only && !request)
			continue;
		switch (s->fn(t)) {
		case STAGE_CONTINUE:
			continue;
		case STAGE_PARK:
			return STAGE_PARK;
		case STAGE_SENT:
			return STAGE_SENT;
		case STAGE_DROP:
			t->out_len = 0;
			return STAGE_DROP;
		case STAGE_REPLY:
			return reply_finish(t);
		}
	}
	t->stage_idx = (uint8_t)st->n;
	if (!request)
		return proxy_relay_response(t);
	/* The forwarder always ends the chain; getting here is a wiring bug. */
	proxy_count_drop(PROXY_DROP_NO_FORWARDER);
	t->out_len = 0;
	return STAGE_DROP;
}
