#pragma once
/* txn.h - one received message and everything the stages decide about it.
 *
 * A txn lives in a per-receiver pool: the receiver fills rx[] and msg, pushes
 * the txn through a ring to the worker chosen by Call-ID, the worker runs the
 * stage chain, sends, and hands the txn back to its receiver. A txn may be
 * parked (waiting for the store) and resumed later on the same worker.
 * Stages talk to each other only through the fields below. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "sip.h"
#include "slice.h"

#define TXN_RX_MAX 16384    /* larger datagrams are truncated by the kernel: counted drop */
#define TXN_ARENA_SIZE 8192 /* per-txn scratch, reset when the txn is recycled */
#define TXN_MAX_REPLY_HDRS 4
#define TXN_MAX_ADD_HDRS 4
#define TXN_MAX_STAGES 16

struct worker;

enum txn_identity_source {
	TXN_ID_NONE = 0,  /* anonymous */
	TXN_ID_TRUSTED,   /* source address in `trusted` */
	TXN_ID_TRANSFER,  /* valid X-Sipx-Authidentity / grant (SPEC §2.2) */
	TXN_ID_DIGEST,    /* valid Proxy-Authorization (SPEC §2.3) */
};

/* Edits to the outgoing request, applied by the forwarder when it builds the
 * datagram. The input buffer is never modified. */
struct txn_edits {
	uint8_t removed[SIP_MAX_HDRS];            /* 1 = drop this header value */
	struct slice replaced[SIP_MAX_HDRS];      /* non-NULL p = new value for this header value */
	unsigned n_added;
	struct slice added[TXN_MAX_ADD_HDRS];     /* whole lines "Name: value" without CRLF */
	struct slice ruri;                        /* non-NULL p = new Request-URI */
};

struct txn {
	/* --- filled by the receiver */
	char rx[TXN_RX_MAX];
	uint32_t rx_len;
	struct sip_msg msg;
	int parse_rc;                  /* result of sip_parse (< 0: malformed) */
	struct sockaddr_storage src;   /* where it came from */
	socklen_t srclen;
	uint16_t listen_idx;           /* which cfg->listen socket received it */
	uint64_t rx_ns;                /* CLOCK_MONOTONIC at receive */

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
	bool in_authorized_dialog;     /* valid signed Record-Route on top (SPEC §2) */
	bool dialog_authorized;        /* this request is authorized: sign our Record-Route with it */
	bool next_hop_trusted;         /* set by routing before egress hygiene */

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

	/* --- arena */
	uint32_t arena_used;
	char arena[TXN_ARENA_SIZE];
};

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

/* Request edits (applied when the request is forwarded). @idx is an index into msg.hdrs. */
void txn_hdr_remove(struct txn *t, unsigned idx);
void txn_hdr_replace(struct txn *t, unsigned idx, struct slice value);
int txn_hdr_add(struct txn *t, struct slice line);
void txn_ruri_set(struct txn *t, struct slice ruri);

/* txn_reset - clear everything the worker and stages set (not rx/msg). */
void txn_reset(struct txn *t);
