#pragma once
/* proxy_priv.h - internals shared by core/proxy_*.c (never exported).
 *
 *   proxy_process.c  the stage loop and malformed-message handling (top of the chain)
 *   proxy_checks.c   SPEC §1 local checks (the first stage)
 *   proxy_forward.c  outgoing request and relayed response bytes (the last stage)
 *   proxy_reply.c    stateless local replies
 *   proxy_emit.c     header-line emitter and Via received/rport (forward and reply)
 *   proxy_branch.c   Via branch and loop hash (they read the route decision)
 *   proxy_route.c    next-hop decision (txn_route) and "is this us?"
 *   proxy_ids.c      keys, To tag, Record-Route MAC (signed and checked)
 *   dest_balancer.c  advertised addresses, the client behind a load balancer
 *   proxy_hash.c     SipHash-2-4
 *   proxy_count.c    metrics
 *   sockaddr.c       IP literals as struct sockaddr (sockaddr.h, also used by dns_resolver.c)
 * Calls run one way: proxy_branch -> proxy_route -> {dest_balancer, proxy_ids,
 * dns_resolver} -> sockaddr. Every file reads the message through the txn's
 * parsed view (txn.h). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "hmac.h"
#include "secret.h"
#include "sip.h"
#include "slice.h"
#include "sockaddr.h"
#include "stage.h"
#include "txn.h"

#define PROXY_DEFAULT_PORT 5060
#define PROXY_DEFAULT_TLS_PORT 5061
/* Our branches: magic cookie, our marker, 16 hex transaction part, '.', 16 hex loop part. */
#define PROXY_BRANCH_PREFIX "z9hG4bK-rf-"
#define PROXY_BRANCH_LEN (sizeof(PROXY_BRANCH_PREFIX) - 1 + 16 + 1 + 16)
#define PROXY_TAG_LEN 16           /* hex To tag of our local replies */
#define PROXY_RR_MAC_BYTES 16      /* truncated HMAC-SHA256 */
#define PROXY_RR_MAC_CHARS 22      /* base64url without padding */
#define PROXY_IP_TEXT_MAX SOCKADDR_TEXT_MAX /* inet_ntop of any address */

/* Closed label sets (STYLE §18): one enum next to the metric. */
enum proxy_drop {
	PROXY_DROP_MALFORMED = 0,    /* unparseable and unanswerable */
	PROXY_DROP_BAD_VIA,          /* top Via missing or unparseable */
	PROXY_DROP_NOT_OUR_VIA,      /* response whose top Via is not ours */
	PROXY_DROP_NO_NEXT_VIA,      /* response with nothing left to send it to */
	PROXY_DROP_BAD_DESTINATION,  /* broadcast/multicast/unspecified, or a hostname */
	PROXY_DROP_TOO_BIG,          /* the output does not fit */
	PROXY_DROP_REPLY_SUPPRESSED, /* local reply for an ACK or a response */
	PROXY_DROP_NO_FORWARDER,     /* a request fell off the end of the chain */
	PROXY_DROP_COUNT
};

enum proxy_direction { PROXY_DIR_REQUEST = 0, PROXY_DIR_RESPONSE, PROXY_DIR_COUNT };

/* Keys (proxy_ids.c); written by proxy_init before threads start, read-only after. */
struct proxy_state {
	uint64_t branch_key[2]; /* SipHash key of the Via branch */
	uint64_t tag_key[2];    /* SipHash key of our reply To tags */
	struct hmac_key rr_key; /* pad states of the Record-Route MAC key */
};
extern struct proxy_state proxy_g;

/* ---------------------------------------------------------------- metrics (proxy_count.c) */

/* Series handles; written by proxy_count_register before threads start. */
struct proxy_counts {
	bool registered;
	unsigned responses; /* referee_responses_sent_total{code} */
	unsigned forwarded; /* referee_forwarded_total{direction} */
	unsigned drops;     /* referee_drops_total{reason} */
	unsigned absorbed;  /* referee_acks_absorbed_total */
};
extern struct proxy_counts proxy_counts;

/* proxy_count_register - the core proxy's metric families, once (proxy_init). */
void proxy_count_register(void);
void proxy_count_drop(enum proxy_drop why);
void proxy_count_forwarded(enum proxy_direction dir);
void proxy_count_reply(uint16_t code);
void proxy_count_absorbed(void);

/* ---------------------------------------------------------------- keyed hash (proxy_hash.c, SipHash-2-4) */

struct proxy_hash {
	uint64_t v0, v1, v2, v3;
	uint64_t tail;
	unsigned ntail;
	uint64_t total;
};

void proxy_hash_init(struct proxy_hash *h, const uint64_t key[2]);
void proxy_hash_add(struct proxy_hash *h, const void *p, size_t n);
/* proxy_hash_field - length-prefixed, so ("ab","c") and ("a","bc") differ. */
void proxy_hash_field(struct proxy_hash *h, struct slice s);
/* proxy_hash_u32 - little-endian whatever the host, so every instance agrees. */
void proxy_hash_u32(struct proxy_hash *h, uint32_t v);
uint64_t proxy_hash_final(struct proxy_hash *h);
uint64_t proxy_siphash(const uint64_t key[2], const void *p, size_t n);
/* proxy_hex64 - 16 lowercase hex digits, most significant first. */
void proxy_hex64(uint64_t v, char out[16]);

/* ---------------------------------------------------------------- Via branch (proxy_branch.c) */

/**
 * proxy_branch - the Via branch we add when forwarding the request of @t
 * (whose top Via is @top): PROXY_BRANCH_PREFIX, a transaction part (hash of
 * the incoming branch and sent-by, or RFC 2543 fields) and a loop part
 * (proxy_loop_hash) in hex. Writes PROXY_BRANCH_LEN bytes to @out. Same
 * input bytes, same branch.
 */
void proxy_branch(struct txn *t, const struct sip_via *top, char out[PROXY_BRANCH_LEN]);
/* proxy_loop_hash - RFC 3261 §16.3 item 4 / §16.6 item 8: hash of what decides
 * routing (Request-URI as received, Call-ID, From tag, CSeq number, Route
 * values that are not ours). A looped request computes the same value. */
uint64_t proxy_loop_hash(struct txn *t);
/* proxy_branch_is_3261 - starts with the magic cookie and has something after it. */
bool proxy_branch_is_3261(struct slice branch);

/* ---------------------------------------------------------------- derived values (proxy_ids.c) */

/* proxy_to_tag - To tag of our local replies to @t: hex of a keyed hash of
 * Call-ID, From tag, top Via branch and CSeq number (the ACK has them all). */
void proxy_to_tag(struct txn *t, char out[PROXY_TAG_LEN]);
/* proxy_rr_mac - base64url(HMAC-SHA256(rr_key, Call-ID ‖ "a"))[:16 bytes]. */
void proxy_rr_mac(struct slice call_id, char out[PROXY_RR_MAC_CHARS]);
/* proxy_rr_mac_ok - @ra is the Record-Route MAC of @call_id (constant-time compare). */
bool proxy_rr_mac_ok(struct slice call_id, struct slice ra);
/* proxy_rr_signed - @u carries ra= with the Record-Route MAC of @call_id (any instance's). */
bool proxy_rr_signed(struct slice call_id, const struct sip_uri *u);

/* ---------------------------------------------------------------- addresses (proxy_route.c) */

/**
 * proxy_hostport_is_ours - @host[:@port] names one of c->listen. @strict: an
 * absent port means 5060 (Route, Via); otherwise an absent port matches any
 * listen port of that host (OPTIONS pings).
 */
bool proxy_hostport_is_ours(const struct cfg *c, struct slice host, uint16_t port, bool has_port,
			    bool strict);
/* proxy_via_is_ours - sent-by is one of our listen addresses and the branch is one of ours. */
bool proxy_via_is_ours(const struct cfg *c, const struct sip_via *v);
/* proxy_uri_is_ours - a sip/sips URI whose host[:port] is a listen address (strict). */
bool proxy_uri_is_ours(const struct cfg *c, const struct sip_uri *u);
/* proxy_src_ip_text - the source address of @t as text (no brackets); length or 0. */
size_t proxy_src_ip_text(const struct txn *t, char out[PROXY_IP_TEXT_MAX]);
uint16_t proxy_src_port(const struct txn *t);
/* proxy_host_is_src - @host is an IP literal equal to the source address of @t,
 * whose text (proxy_src_ip_text) is @src_text. */
bool proxy_host_is_src(const struct txn *t, struct slice host, struct slice src_text);
/* proxy_listen_text - "host:port" of the socket that received @t. */
struct slice proxy_listen_text(const struct txn *t);
/* proxy_listen_text_at - "host:port" of c->listen[@idx]. */
struct slice proxy_listen_text_at(const struct cfg *c, unsigned idx);
/**
 * proxy_listen_for - the listen address a message leaves from over @tr
 * (SPEC §9): @prefer when it has that transport, else the first of that
 * transport in @family, else the first of that transport, else @prefer.
 */
unsigned proxy_listen_for(const struct cfg *c, enum cfg_transport tr, unsigned prefer, int family);
/* proxy_transport_of_uri - sips: or ;transport=tls -> TLS, ;transport=tcp -> TCP, else UDP. */
enum cfg_transport proxy_transport_of_uri(const struct sip_uri *u);
/* proxy_transport_of_via - the transport token of a Via (TCP, TLS; anything else UDP). */
enum cfg_transport proxy_transport_of_via(const struct sip_via *v);

/* ---------------------------------------------------------------- routing (proxy_route.c: txn_route) */

/* proxy_route_is_ours - the Route @value (name-addr) is ours: it points at one of our listen
 * or advertised addresses, or it is a Record-Route signed for @call_id with the shared secret
 * by any instance (SPEC §11: a sibling's dialogs survive it). @u receives its URI. */
bool proxy_route_is_ours(const struct cfg *c, struct slice call_id, struct slice value,
			 struct sip_uri *u);

/* ---------------------------------------------------------------- load balancers (dest_balancer.c) */

/* dest_advertised_is - @host[:@port] is an advertised address of c->listen (proxy_hostport_is_ours
 * rules for an absent port). */
bool dest_advertised_is(const struct cfg *c, struct slice host, uint16_t port, bool has_port,
			bool strict);

/* ---------------------------------------------------------------- output (proxy_emit.c) */

struct proxy_out {
	char *p;
	uint32_t len, cap;
	bool overflow;
};

static inline void proxy_out_put(struct proxy_out *o, const char *s, size_t n)
{
	if (o->overflow || n > (size_t)(o->cap - o->len)) {
		o->overflow = true;
		return;
	}
	if (n)
		memcpy(o->p + o->len, s, n);
	o->len += (uint32_t)n;
}

static inline void proxy_out_slice(struct proxy_out *o, struct slice s)
{
	proxy_out_put(o, s.p, s.len);
}

#define proxy_out_lit(o, s) proxy_out_put((o), (s), sizeof(s) - 1)

void proxy_out_u32(struct proxy_out *o, uint32_t v);

enum proxy_hdr_action { PROXY_HDR_KEEP = 0, PROXY_HDR_DROP, PROXY_HDR_REPLACE };

/* What to do with each header value of a message (indexes of msg.hdrs); repl[k]
 * is read only where action[k] is PROXY_HDR_REPLACE. */
struct proxy_hdr_plan {
	uint8_t action[SIP_MAX_HDRS];
	struct slice repl[SIP_MAX_HDRS];
};

/* proxy_hdr_plan_init - every value kept (clears the actions only: repl is 2 KB
 * that nothing reads unless an action says so) */
static inline void proxy_hdr_plan_init(struct proxy_hdr_plan *p)
{
	memset(p->action, PROXY_HDR_KEEP, sizeof(p->action));
}

/**
 * proxy_emit_hdrs - write the header lines of @m following @plan. A line
 * whose values are all kept is copied byte for byte (folds included); a line
 * with a dropped or replaced value is rewritten as "Name: v1, v2"; a line
 * left without values disappears. @only: bitmap of ids to emit (1 << id);
 * 0 = every line, plus any bytes between lines, in order.
 */
void proxy_emit_hdrs(struct proxy_out *o, const struct sip_msg *m,
		     const struct proxy_hdr_plan *plan, uint64_t only);

/**
 * proxy_via_fixup - the sender's top Via value with received=<src ip> (when
 * sent-by is not the source address, or rport was asked for) and the bare
 * rport given the source port (RFC 3581); other bytes unchanged. Returns
 * @value itself when nothing changes, SLICE_NULL when the arena is full.
 */
struct slice proxy_via_fixup(struct txn *t, struct slice value, const struct sip_via *v);

/* proxy_reason_phrase - standard RFC 3261 phrase, "Unknown" for others. */
struct slice proxy_reason_phrase(uint16_t code);

/**
 * proxy_reply_build - build the stateless reply t->reply_code to the request
 * in @t into t->out and set t->dst (RFC 3261 §8.2.6, §16.11, §18.2.2).
 * Returns 0, or -EBADMSG (no usable Via), -ENOSPC (too big); nothing is
 * sent then.
 */
int proxy_reply_build(struct txn *t);

/* proxy_relay_response - pop our Via and send the response to the next Via
 * (SPEC §1, RFC 3261 §16.11). STAGE_SENT or STAGE_DROP (counted). */
enum stage_rc proxy_relay_response(struct txn *t);
