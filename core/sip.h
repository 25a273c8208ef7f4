#pragma once
/* sip.h - zero-copy SIP message model and parsers (RFC 3261 §7, §20, §25).
 *
 * sip_parse() makes one pass over the start line and the header section of a
 * datagram and fills a caller-owned struct sip_msg with slices into the
 * buffer. It allocates nothing. Sub-parsers (URI, name-addr, Via, params) are
 * separate and called lazily by the stage that needs them.
 *
 * Header values of comma-separated headers (flag SIP_HF_COMMA) are split into
 * one struct sip_hdr per value; all values of one header line share the same
 * line_off/line_len so the output builder can copy or rewrite whole lines. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "slice.h"

enum sip_hdr_flags {
	SIP_HF_COMMA = 1u << 0,  /* values are comma-separated lists (split by the parser) */
	SIP_HF_SINGLE = 1u << 1, /* at most one value allowed (more -> 400) */
	SIP_HF_LAST = 1u << 2,   /* only the last instance counts (sip_msg_hdr returns it) */
};

/* X(ENUM, "Full-Name", 'compact' or 0, flags). One row per known header:
 * the enum, name lookup, printer and round-trip test derive from this list. */
#define SIP_HEADER_LIST(X)                                                          \
	X(VIA, "Via", 'v', SIP_HF_COMMA)                                            \
	X(FROM, "From", 'f', SIP_HF_SINGLE)                                         \
	X(TO, "To", 't', SIP_HF_SINGLE)                                             \
	X(CALL_ID, "Call-ID", 'i', SIP_HF_SINGLE)                                   \
	X(CSEQ, "CSeq", 0, SIP_HF_SINGLE)                                           \
	X(MAX_FORWARDS, "Max-Forwards", 0, SIP_HF_SINGLE)                           \
	X(CONTENT_LENGTH, "Content-Length", 'l', 0)                                 \
	X(CONTENT_TYPE, "Content-Type", 'c', SIP_HF_SINGLE)                         \
	X(CONTENT_ENCODING, "Content-Encoding", 'e', SIP_HF_COMMA)                  \
	X(CONTACT, "Contact", 'm', SIP_HF_COMMA)                                    \
	X(ROUTE, "Route", 0, SIP_HF_COMMA)                                          \
	X(RECORD_ROUTE, "Record-Route", 0, SIP_HF_COMMA)                            \
	X(PROXY_REQUIRE, "Proxy-Require", 0, SIP_HF_COMMA)                          \
	X(REQUIRE, "Require", 0, SIP_HF_COMMA)                                      \
	X(SUPPORTED, "Supported", 'k', SIP_HF_COMMA)                                \
	X(UNSUPPORTED, "Unsupported", 0, SIP_HF_COMMA)                              \
	X(PROXY_AUTHORIZATION, "Proxy-Authorization", 0, 0)                         \
	X(PROXY_AUTHENTICATE, "Proxy-Authenticate", 0, 0)                           \
	X(AUTHORIZATION, "Authorization", 0, 0)                                     \
	X(WWW_AUTHENTICATE, "WWW-Authenticate", 0, 0)                               \
	X(REFER_TO, "Refer-To", 'r', 0)                                             \
	X(REFERRED_BY, "Referred-By", 'b', 0)                                       \
	X(X_SIPX_AUTHIDENTITY, "X-Sipx-Authidentity", 0, SIP_HF_LAST)               \
	X(P_ASSERTED_IDENTITY, "P-Asserted-Identity", 0, SIP_HF_COMMA)              \
	X(P_PREFERRED_IDENTITY, "P-Preferred-Identity", 0, SIP_HF_COMMA)            \
	X(SUBJECT, "Subject", 's', 0)                                               \
	X(EVENT, "Event", 'o', 0)                                                   \
	X(ALLOW_EVENTS, "Allow-Events", 'u', SIP_HF_COMMA)                          \
	X(ACCEPT_CONTACT, "Accept-Contact", 'a', SIP_HF_COMMA)                      \
	X(REJECT_CONTACT, "Reject-Contact", 'j', SIP_HF_COMMA)                      \
	X(REQUEST_DISPOSITION, "Request-Disposition", 'd', SIP_HF_COMMA)            \
	X(SESSION_EXPIRES, "Session-Expires", 'x', 0)                               \
	X(IDENTITY, "Identity", 'y', 0)                                             \
	X(RETRY_AFTER, "Retry-After", 0, 0)                                         \
	X(ALLOW, "Allow", 0, SIP_HF_COMMA)                                          \
	X(EXPIRES, "Expires", 0, 0)

enum sip_hdr_id {
	SIP_HDR_OTHER = 0,
#define X(e, name, compact, flags) SIP_HDR_##e,
	SIP_HEADER_LIST(X)
#undef X
	SIP_HDR_COUNT
};
static_assert(SIP_HDR_COUNT <= 64, "header ids must fit the seen bitmap");

enum sip_method {
	SIP_METHOD_OTHER = 0,
	SIP_METHOD_INVITE,
	SIP_METHOD_ACK,
	SIP_METHOD_BYE,
	SIP_METHOD_CANCEL,
	SIP_METHOD_OPTIONS,
	SIP_METHOD_REGISTER,
	SIP_METHOD_REFER,
	SIP_METHOD_SUBSCRIBE,
	SIP_METHOD_NOTIFY,
	SIP_METHOD_MESSAGE,
	SIP_METHOD_INFO,
	SIP_METHOD_PRACK,
	SIP_METHOD_UPDATE,
	SIP_METHOD_PUBLISH,
	SIP_METHOD_COUNT
};

#define SIP_MAX_HDRS 128   /* header values per message; more -> -E2BIG */
#define SIP_NO_HDR 0xffffu /* "absent" in sip_msg.first[] */

struct sip_hdr {
	uint8_t id;        /* enum sip_hdr_id */
	struct slice name; /* as written (may be compact) */
	struct slice value; /* one value, trimmed; folded lines are inside it */
	uint32_t line_off; /* offset of the header line in the buffer */
	uint32_t line_len; /* length of the whole line, including CRLF and folds */
};

struct sip_msg {
	const char *buf;
	uint32_t len;        /* bytes of the message (start line .. end of body) */
	bool is_request;
	/* request line */
	struct slice method;
	uint8_t method_id; /* enum sip_method */
	struct slice ruri;
	/* status line */
	uint32_t status;
	struct slice reason;
	struct slice version; /* "SIP/2.0" of the start line */
	uint32_t start_line_len; /* including CRLF */
	/* headers */
	struct sip_hdr hdrs[SIP_MAX_HDRS];
	uint16_t n_hdrs;
	uint16_t first[SIP_HDR_COUNT]; /* index into hdrs of the first value, or SIP_NO_HDR */
	uint16_t last[SIP_HDR_COUNT];  /* index of the last value, or SIP_NO_HDR */
	uint64_t seen;                 /* bit (1 << id) for every id present */
	uint32_t hdr_end;              /* offset of the empty line ending the headers */
	/* framing and scalars decoded by sip_parse */
	struct slice body;
	bool has_content_length;
	uint32_t content_length;
	bool has_max_forwards;
	uint32_t max_forwards;
	uint32_t cseq;
	struct slice cseq_method;
	struct slice call_id;
};

/* Negative results of sip_parse (negated errno values). */
/* -EBADMSG malformed, -E2BIG too many headers, -EMSGSIZE Content-Length larger than datagram */

/**
 * sip_parse - parse one SIP message from a UDP datagram.
 * @buf, @len: datagram bytes (not NUL-terminated); must outlive @m.
 * @m: caller-owned; reset first.
 *
 * Frames by Content-Length (bytes past it are ignored, RFC 3261 §18.3; with
 * no Content-Length the body is the rest of the datagram). Decodes CSeq,
 * Max-Forwards, Content-Length and Call-ID. Checks the grammar of the start
 * line, header names and the single-value/scalar headers; it does not
 * check required headers (see sip_msg_check).
 * Returns bytes consumed (>= 0) or a negative errno. On failure @m holds
 * whatever was parsed so far (enough, often, to answer 400).
 * Notes: CRLFs before the start line are skipped (m->buf then points past
 * them); a buffer over 65535 bytes is -EMSGSIZE; a start-line or scalar
 * value error still parses all headers before returning -EBADMSG, and
 * m->version is set only when it is well formed.
 */
int sip_parse(const char *buf, size_t len, struct sip_msg *m);

enum sip_check {
	SIP_CHECK_OK = 0,
	SIP_CHECK_BAD_REQUEST,  /* 400 */
	SIP_CHECK_BAD_VERSION,  /* 505 */
	SIP_CHECK_NOT_IMPL,     /* 501: unknown method with mismatching CSeq */
	SIP_CHECK_DROP,         /* a response that must be discarded silently */
};

/**
 * sip_msg_check - semantic checks after a successful parse: required headers
 * (Via, From, To, Call-ID, CSeq; Max-Forwards optional), single-valued
 * headers appearing once, CSeq method equal to the request method, version
 * SIP/2.0, status code 100..699. @why (may be NULL) gets a static phrase.
 * Also rejects (400) what a proxy cannot act on: a Request-URI that
 * sip_uri_parse refuses or that carries ?headers (RFC 4475 escruri), From/To
 * that sip_nameaddr_parse refuses, any Via that sip_via_parse refuses.
 * For a response every failure is SIP_CHECK_DROP.
 */
enum sip_check sip_msg_check(const struct sip_msg *m, const char **why);

/* The values sip_msg_check parses anyway, kept for the caller (txn_view). */
struct sip_parsed;
/**
 * sip_msg_check_parsed - sip_msg_check that keeps what it parsed in @out:
 * the Request-URI (requests), the top two Vias, From and To. They are all
 * valid when it returns SIP_CHECK_OK; otherwise @out holds garbage.
 */
enum sip_check sip_msg_check_parsed(const struct sip_msg *m, struct sip_parsed *out, const char **why);

/* sip_msg_next - index of the next value with the same header id after
 * value @i (following lines included), or SIP_NO_HDR. */
unsigned sip_msg_next(const struct sip_msg *m, unsigned i);

/* sip_hdr_id_lookup - header id for a name (full or compact, any case). */
enum sip_hdr_id sip_hdr_id_lookup(struct slice name);
/* sip_hdr_name - canonical full name of a known id. */
struct slice sip_hdr_name(enum sip_hdr_id id);
unsigned sip_hdr_flags(enum sip_hdr_id id);
enum sip_method sip_method_lookup(struct slice method);
struct slice sip_method_name(enum sip_method m);

/* sip_msg_hdr - the value with @id that counts: the last one for SIP_HF_LAST
 * headers, else the first; NULL when absent. */
const struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id);
/* sip_msg_hdr_by_name - first value whose name matches (any case), or NULL. */
const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, struct slice name);

/* ---------------------------------------------------------------- URIs */

struct sip_uri {
	struct slice scheme;   /* "sip", "sips", "tel", ... (as written) */
	struct slice user;     /* raw (still %-escaped); may contain ';' (RFC 4475 semiuri) */
	struct slice password;
	struct slice host;     /* IPv6 references keep their brackets */
	uint16_t port;         /* 0 when absent */
	bool has_port;
	bool host_is_ipv4, host_is_ipv6;
	struct slice params;   /* ";a=b;lr" including the leading ';', or empty */
	struct slice headers;  /* "?X=y&Z=w" including the '?', or empty */
	struct slice whole;
};

/**
 * sip_uri_parse - parse a SIP/SIPS URI (RFC 3261 §19.1, RFC 5118 for IPv6).
 * Other schemes parse as scheme + opaque rest in @user..@whole with host
 * empty. Returns 0 or -EBADMSG (e.g. an IPv6 address without brackets).
 */
int sip_uri_parse(struct slice s, struct sip_uri *u);
bool sip_uri_is_sip(const struct sip_uri *u); /* sip or sips, any case */
/**
 * sip_uri_param - find parameter @name (any case) in @u->params.
 * Returns true when present; *value is empty for a flag parameter.
 */
bool sip_uri_param(const struct sip_uri *u, struct slice name, struct slice *value);
/**
 * sip_uri_header - find URI header @name (any case) in @u->headers;
 * *value stays %-escaped.
 */
bool sip_uri_header(const struct sip_uri *u, struct slice name, struct slice *value);

/**
 * sip_unescape - %HH-decode @in into @out (capacity @cap). NULs stay bytes.
 * Returns the decoded length or -EBADMSG (bad escape) / -ENOSPC.
 */
int sip_unescape(struct slice in, char *out, size_t cap);

/* ---------------------------------------------------------------- name-addr */

struct sip_nameaddr {
	struct slice display; /* without quotes, still with quoted-pairs; may be empty */
	struct slice uri;     /* inside <...>, or the addr-spec */
	bool bracketed;
	struct slice params;  /* header params after the URI, ";tag=..", or empty */
};

/**
 * sip_nameaddr_parse - name-addr or addr-spec (From, To, Contact, Route,
 * Refer-To...). In addr-spec form ';' starts header params (RFC 3261 §20.10).
 * Returns 0 or -EBADMSG (unbalanced quotes or brackets, bad display name).
 */
int sip_nameaddr_parse(struct slice s, struct sip_nameaddr *na);

/* sip_param_find - find ";name[=value]" in a parameter list such as
 * sip_nameaddr.params or sip_via.params (any case); value unquoted as written. */
bool sip_param_find(struct slice params, struct slice name, struct slice *value);

/* ---------------------------------------------------------------- Via */

struct sip_via {
	struct slice proto;     /* "SIP/2.0/UDP" */
	struct slice transport; /* "UDP" */
	struct slice host;      /* sent-by host (IPv6 with brackets) */
	uint16_t port;          /* 0 when absent */
	struct slice params;    /* ";branch=..;rport", or empty */
	struct slice branch;    /* empty when absent */
	struct slice received;  /* empty when absent */
	bool has_rport;
	struct slice rport;     /* value, empty when flag-only */
};

/* sip_via_parse - one Via value. Returns 0 or -EBADMSG. */
int sip_via_parse(struct slice s, struct sip_via *v);

/* ---------------------------------------------------------------- parsed parts */

struct sip_parsed {
	struct sip_uri ruri;
	struct sip_via top_via;
	struct sip_via next_via; /* the second Via value, when there is one */
	struct sip_nameaddr from, to;
};

/* Parses done by the calling thread since it started (counted in debug
 * builds only): the parse-once test counts them per message. */
struct sip_parse_counts {
	unsigned long uri, via, nameaddr;
};
#ifndef NDEBUG
extern _Thread_local struct sip_parse_counts sip_parse_counts;
#endif

/* ---------------------------------------------------------------- CSeq */
int sip_cseq_parse(struct slice s, uint32_t *num, struct slice *method);
