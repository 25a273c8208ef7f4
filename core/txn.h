#pragma once
/* txn.h - one received message and everything the stages decide about it.
 *
 * A txn lives in a per-receiver pool: the receiver fills rx[] and msg, pushes
 * the txn through a ring to a worker, the worker runs the stage chain, sends,
 * and hands the txn back to its receiver (t->owner). A txn may be parked
 * (waiting for the store) and resumed later on the same worker.
 * Stages talk to each other only through the fields below, and read the
 * message through the parsed view (txn_ruri, txn_top_via, txn_from_tag, ...):
 * each part is parsed once, on first use, whichever stage asks first. */
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "sip.h"
#include "slice.h"

/* Receive buffers: every txn holds TXN_RX_INLINE bytes (what a SIP datagram
 * needs: RFC 3261 §18.1.1 keeps UDP requests under the path MTU); a larger
 * datagram lands in a TXN_RX_MAX buffer of its receiver's big slab
 * (t->rx_big). Larger than TXN_RX_MAX: truncated by the kernel, counted drop. */
#define TXN_RX_INLINE 4096
#define TXN_RX_MAX 65535    /* the largest UDP payload (and sip_parse's limit) */
#define TXN_VIA_ROOM 4096   /* what forwarding may add: our Via, Record-Route, received/rport */
#define TXN_OUT_MAX 65507   /* the largest datagram we can send (IPv4 UDP payload) */
#define TXN_ARENA_SIZE 8192 /* per-txn scratch, reset when the txn is recycled */
#define TXN_MAX_REPLY_HDRS 4
#define TXN_MAX_ADD_HDRS 4
#define TXN_MAX_STAGES 16

struct worker;
struct receiver;

/* The next-hop decision (proxy_route.c): part of the parsed view. */
enum txn_route_kind {
	TXN_ROUTE_LOCAL = 0, /* routes.local */
	TXN_ROUTE_OUTBOUND,  /* routes.outbound */
	TXN_ROUTE_DIRECT,    /* an IP literal of a Route or the Request-URI */
};

struct txn_route {
	int rc;         /* 0, -ENOENT (needed route not configured), -EBADMSG, -EADDRNOTAVAIL,
			 * -EHOSTUNREACH (every destination down), -EAGAIN (name being resolved),
			 * -ENXIO (name does not resolve) (SPEC §10) */
	enum txn_route_kind kind;
	unsigned n_pop; /* leading Route values that point at us */
	const struct cfg_dest *dest;  /* LOCAL/OUTBOUND: the chosen destination (in t->cfg) */
	struct sip_uri top_ours; /* the first of them, parsed (n_pop > 0) */
	struct sockaddr_storage dst;
	socklen_t dstlen;
	enum cfg_transport transport; /* how to reach dst (SPEC §9) */
};

/* Parts of the parsed view (bits of txn_view.looked / .ok). */
enum txn_view_part {
	TXN_VIEW_RURI = 1u << 0,  /* the Request-URI as received */
	TXN_VIEW_VIA = 1u << 1,   /* the top Via */
	TXN_VIEW_FROM = 1u << 2,  /* From name-addr and tag */
	TXN_VIEW_TO = 1u << 3,    /* To name-addr and tag */
	TXN_VIEW_ROUTE = 1u << 4, /* the route decision (for the current Request-URI edit) */
	TXN_VIEW_VIA2 = 1u << 5,  /* the second Via (where a response goes) */
	TXN_VIEW_FROM_TAG = 1u << 6, /* from_tag looked up in the parsed From */
	TXN_VIEW_TO_TAG = 1u << 7,   /* to_tag looked up in the parsed To */
};

/* The message as the stages read it, parsed lazily and once. Reset by the
 * receiver (txn_received); read only through the accessors below. */
struct txn_view {
	uint8_t looked; /* parts already parsed (or found unparseable) */
	uint8_t ok;     /* parts that parsed */
	struct sip_parsed p;
	struct slice from_tag, to_tag; /* empty when absent */
	struct txn_route route;
};

enum txn_identity_source {
	TXN_ID_NONE = 0,  /* anonymous */
	TXN_ID_TRUSTED,   /* source address in `trusted` */
	TXN_ID_TRANSFER,  /* valid X-Sipx-Authidentity / grant (SPEC §2.2) */
	TXN_ID_DIGEST,    /* valid Proxy-Authorization (SPEC §2.3) */
};

/* Edits to the outgoing request, applied by the forwarder when it builds the
 * datagram. The input buffer is never modified. Sparse: txn_reset clears the
 * whole struct for every datagram (a slice per header value was 2 KB of it). */
#define TXN_MAX_REPLACED 4 /* header values a chain replaces (today: the Refer-To) */
struct txn_edits {
	uint64_t removed[(SIP_MAX_HDRS + 63) / 64]; /* bit k: drop header value k */
	uint8_t n_replaced;
	uint8_t replaced_idx[TXN_MAX_REPLACED];     /* header value ... */
	struct slice replaced[TXN_MAX_REPLACED];    /* ... and its new value */
	unsigned n_added;
	struct slice added[TXN_MAX_ADD_HDRS];     /* whole lines "Name: value" without CRLF */
	struct slice ruri;                        /* non-NULL p = new Request-URI */
};

struct txn {
	/* --- filled by the receiver */
	struct receiver *owner;        /* whose pool this txn belongs to (set once) */
	char *rx_big;                  /* a big-slab buffer holding this datagram, or NULL */
	uint32_t rx_len;
	struct sip_msg msg;
	int parse_rc;                  /* result of sip_parse (< 0: malformed) */
	struct txn_view view;          /* the parsed parts (txn_ruri, txn_top_via, ...) */
	struct sockaddr_storage src;   /* where it came from */
	socklen_t srclen;
	uint16_t listen_idx;           /* which cfg->listen socket received it */
	uint64_t rx_ns;                /* CLOCK_MONOTONIC at receive */
	enum cfg_transport rx_transport; /* UDP, or the stream connection it came on (SPEC §9) */
	bool rx_trusted_name;          /* TLS client certificate with a tls.trusted_names SAN */

	/* --- set by the worker */
	struct worker *worker;
	const struct cfg *cfg;         /* snapshot valid for the whole txn */
	uint8_t stage_idx;             /* stage to (re)run; kept across STAGE_PARK */
	void *stage_ctx[TXN_MAX_STAGES]; /* per-stage scratch (arena pointers) */

	/* --- identity (SPEC §2) */
	enum txn_identity_source id_source;
	struct slice identity;         /* "user@domain" (arena or msg bytes) */
	bool perms_known;              /* perms below are valid (identity is a known user) */
	uint64_t perms[2];             /* permission bitset, bits interned by store/ */
	bool nonce_stale;              /* identity stage: genuine expired nonce, right response
					* (every 407 of this request then says stale=true) */
	bool in_authorized_dialog;     /* valid signed Record-Route on top (SPEC §2) */
	bool dialog_authorized;        /* this request is authorized: sign our Record-Route with it */
	bool next_hop_trusted;         /* set by the egress and forward stages (txn_next_hop_trusted) */

	/* --- local reply (STAGE_REPLY) */
	uint16_t reply_code;
	struct slice reply_reason;
	unsigned n_reply_hdrs;
	struct slice reply_hdrs[TXN_MAX_REPLY_HDRS]; /* whole lines without CRLF */

	/* --- outgoing request edits */
	struct txn_edits edits;

	/* --- output: the worker points out/out_cap at a send slot before the
	 * chain runs; the forwarder or the reply builder fills out_len and dst. */
	char *out;
	uint32_t out_cap;
	uint32_t out_len; /* 0 = nothing to send */
	struct sockaddr_storage dst;
	socklen_t dstlen;
	/* set with dst by every builder: how and from which listen address it leaves */
	enum cfg_transport dst_transport;
	uint16_t out_listen_idx;
	bool dst_may_connect;          /* a request to a stream next hop: open a connection if none */
	const char *dst_tls_name;      /* TLS next hop: name to verify (NULL: the address) */

	/* --- arena */
	uint32_t arena_used;
	alignas(8) char arena[TXN_ARENA_SIZE]; /* txn_alloc aligns offsets from here */

	/* --- the datagram (last: only its first rx_len bytes are ever touched) */
	char rx[TXN_RX_INLINE];
};

/**
 * txn_received - parse the datagram of @len bytes at @buf (t->rx, or a
 * big-slab buffer) into t->msg and reset the view; sets and returns parse_rc.
 */
int txn_received(struct txn *t, const char *buf, size_t len);

/* ---- the parsed view: each part is parsed on first use, then read. NULL
 * (or an empty slice) when the part is absent or does not parse. */
const struct sip_uri *txn_ruri(struct txn *t);        /* the Request-URI as received */
const struct sip_via *txn_top_via(struct txn *t);
const struct sip_via *txn_second_via(struct txn *t);
const struct sip_nameaddr *txn_from(struct txn *t);
const struct sip_nameaddr *txn_to(struct txn *t);
struct slice txn_from_tag(struct txn *t);
struct slice txn_to_tag(struct txn *t);
/* txn_view_checked - sip_msg_check_parsed filled t->view.p and found every
 * part valid: mark them parsed, so no stage parses them again. */
void txn_view_checked(struct txn *t);
/**
 * txn_route - where the request goes next (SPEC §1), for the Request-URI as
 * it will be forwarded (a stage's txn_ruri_set included): decided once, again
 * only after the Request-URI is edited. Requests only (proxy_route.c).
 */
const struct txn_route *txn_route(struct txn *t);
/* txn_client_addr - the effective client address of @t (SPEC §11): for a
 * request from one of `load_balancers`, the client in the Via below the
 * balancer's (received/rport, else sent-by); otherwise the source address.
 * Returns &t->src or @buf. Use it for trusted matching, failure and flood
 * limits and logs; replies still go to t->src (core/dest_balancer.c). */
const struct sockaddr *txn_client_addr(const struct txn *t, struct sockaddr_storage *buf);
/* txn_next_hop_trusted - the decided next hop is in `trusted` (egress hygiene). */
bool txn_next_hop_trusted(struct txn *t);

/* txn_alloc - @n bytes from the txn arena (8-byte aligned), NULL when full. */
void *txn_alloc(struct txn *t, size_t n);
/* txn_strdup - copy @s into the arena; returns SLICE_NULL when full. */
struct slice txn_copy(struct txn *t, struct slice s);
/* txn_printf - format into the arena; SLICE_NULL when full or on error. */
struct slice txn_printf(struct txn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * txn_reply - ask the core to answer the request with @code (and a reason;
 * SLICE_NULL = the standard phrase). The stage then returns STAGE_REPLY.
 */
void txn_reply(struct txn *t, uint16_t code, struct slice reason);
/* txn_reply_hdr - add a header line (no CRLF) to the local reply. -ENOSPC when full. */
int txn_reply_hdr(struct txn *t, struct slice line);

/* Request edits (applied when the request is forwarded). @idx is an index into msg.hdrs.
 * txn_hdr_replace: a second replace of @idx wins; -ENOSPC past TXN_MAX_REPLACED values,
 * -EINVAL for a bad index or value. */
void txn_hdr_remove(struct txn *t, unsigned idx);
int txn_hdr_replace(struct txn *t, unsigned idx, struct slice value);
/* what the edits say of value @idx: removed, and its replacement (SLICE_NULL: none) */
bool txn_hdr_removed(const struct txn *t, unsigned idx);
struct slice txn_hdr_replacement(const struct txn *t, unsigned idx);
int txn_hdr_add(struct txn *t, struct slice line);
void txn_ruri_set(struct txn *t, struct slice ruri);

/* txn_reset - clear everything the worker and stages set (not rx/msg/view). */
void txn_reset(struct txn *t);
