/* test_proxy_forward.c - raw SIP through sip_parse + proxy_process with the
 * chain checks -> forward (core/proxy_*.c): exact bytes of forwarded requests
 * (our Via, received/rport, Max-Forwards, Record-Route, Route popping, edits),
 * branch stability (retransmission, CANCEL, RFC 2543), routing decisions,
 * signed Record-Route and authorized dialogs, and response relaying. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "hmac.h"
#include "metrics.h"
#include "proxy.h"
#include "proxy_fixture.h"
#include "proxy_priv.h" /* proxy_host_is_src */
#include "secret.h"
#include "sip.h"
#include "stage.h"
#include "txn.h"

static struct cfg g_cfg;
static struct secret g_secret;
static struct stage_table g_chain;       /* checks, forward */
static struct stage_table g_chain_auth;  /* checks, mark authorized, forward */
static struct stage_table g_chain_edit;  /* checks, edits, forward */
static char g_out[TXN_RX_MAX + 4096];
static char g_text[TXN_RX_MAX + 4097];   /* g_out as a C string */

static struct txn *g_live; /* freed by the teardown when an assertion jumps out */
static uint16_t g_rx_listen; /* the listen index requests arrive on (reset by the teardown) */

struct run {
	struct txn *t;
	enum stage_rc rc;
	const char *out; /* NUL-terminated copy of what would be sent */
};

static enum stage_rc stage_authorize(struct txn *t)
{
	t->dialog_authorized = true;
	return STAGE_CONTINUE;
}

/* Edits like the module stages make: drop X-Drop, replace Subject, add a line, new R-URI. */
static enum stage_rc stage_edit(struct txn *t)
{
	for (unsigned i = 0; i < t->msg.n_hdrs; i++) {
		if (slice_caseeq(t->msg.hdrs[i].name, SLICE_LIT("X-Drop")))
			txn_hdr_remove(t, i);
		if (t->msg.hdrs[i].id == SIP_HDR_SUBJECT)
			txn_hdr_replace(t, i, SLICE_LIT("replaced"));
	}
	assert_int_equal(txn_hdr_add(t, SLICE_LIT("X-Added: yes")), 0);
	txn_ruri_set(t, SLICE_LIT("sip:carol@example.com"));
	return STAGE_CONTINUE;
}

static int group_setup(void **state)
{
	proxy_fixture_cfg(&g_cfg);
	static const uint8_t key[32] = "0123456789abcdef-referee-tests!";
	assert_int_equal(secret_set(&g_secret, key, sizeof(key)), 0);
	assert_int_equal(metrics_thread_init(), 0);
	assert_int_equal(proxy_init(&g_cfg, &g_secret), 0);
	assert_int_equal(stage_add(&g_chain, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&g_chain, "forward", proxy_forward_stage, false), 0);
	assert_int_equal(stage_add(&g_chain_auth, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&g_chain_auth, "authorize", stage_authorize, true), 0);
	assert_int_equal(stage_add(&g_chain_auth, "forward", proxy_forward_stage, false), 0);
	assert_int_equal(stage_add(&g_chain_edit, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&g_chain_edit, "edit", stage_edit, true), 0);
	assert_int_equal(stage_add(&g_chain_edit, "forward", proxy_forward_stage, false), 0);
	return 0;
}

static void sa_set(struct sockaddr_storage *ss, socklen_t *len, const char *ip, uint16_t port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	*len = sizeof(*in);
}

static struct run run_full(const struct stage_table *st, const struct cfg *c, const char *raw,
			   size_t n, const char *src_ip, uint16_t src_port)
{
	struct run r = { calloc(1, sizeof(struct txn)), STAGE_DROP, g_text };
	assert_non_null(r.t);
	free(g_live);
	g_live = r.t;
	assert_true(n <= TXN_RX_MAX);
	/* as the receiver does: small datagrams in the txn, larger ones in a big buffer */
	static char big[TXN_RX_MAX];
	char *buf = n <= sizeof(r.t->rx) ? r.t->rx : big;
	memcpy(buf, raw, n);
	txn_received(r.t, buf, n);
	sa_set(&r.t->src, &r.t->srclen, src_ip, src_port);
	r.t->cfg = c;
	r.t->listen_idx = g_rx_listen;
	r.t->rx_transport = c->listen[g_rx_listen].transport;
	r.t->out = g_out;
	r.t->out_cap = sizeof(g_out);
	r.rc = proxy_process(st, r.t);
	memcpy(g_text, g_out, r.t->out_len);
	g_text[r.t->out_len] = '\0';
	return r;
}

static struct run run(const char *raw)
{
	return run_full(&g_chain, &g_cfg, raw, strlen(raw), "192.0.2.10", 5062);
}

static void done(struct run *r)
{
	free(r->t);
	if (g_live == r->t)
		g_live = NULL;
	r->t = NULL;
}

static int test_teardown(void **state)
{
	free(g_live);
	g_live = NULL;
	g_rx_listen = 0;
	return 0;
}

static void assert_dst(const struct txn *t, const char *ip, uint16_t port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&t->dst;
	char text[INET_ADDRSTRLEN];
	assert_int_equal(in->sin_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)));
	assert_string_equal(text, ip);
	assert_int_equal(ntohs(in->sin_port), port);
	assert_int_equal(t->dstlen, sizeof(*in));
}

/* The branch of the first Via of @out, copied into @buf. */
static const char *branch_of(const char *out, char *buf, size_t cap)
{
	const char *b = strstr(out, ";branch=");
	assert_non_null(b);
	b += 8;
	size_t n = strcspn(b, ";,\r");
	assert_true(n < cap);
	memcpy(buf, b, n);
	buf[n] = '\0';
	return buf;
}

/* Puts our branch (taken from @out) into the expected text at "@B@". */
static void assert_forwarded(const char *out, const char *expected_fmt)
{
	char branch[128], expected[8192];
	branch_of(out, branch, sizeof(branch));
	assert_int_equal(strncmp(branch, "z9hG4bK-rf-", 11), 0);
	assert_int_equal(strlen(branch), 11 + 16 + 1 + 16);
	const char *at = strstr(expected_fmt, "@B@");
	assert_non_null(at);
	snprintf(expected, sizeof(expected), "%.*s%s%s", (int)(at - expected_fmt), expected_fmt,
		 branch, at + 3);
	assert_string_equal(out, expected);
	/* what we send must itself be a good message */
	struct sip_msg m;
	assert_true(sip_parse(out, strlen(out), &m) >= 0);
	assert_int_equal(sip_msg_check(&m, NULL), SIP_CHECK_OK);
}

#define INVITE_BODY "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"

static const char invite_rport[] =
	"INVITE sip:bob@example.com SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport\r\n"
	"Max-Forwards: 70\r\n"
	"From: <sip:alice@example.com>;tag=a1\r\n"
	"To: <sip:bob@example.com>\r\n"
	"Call-ID: fwd-1@192.0.2.10\r\n"
	"CSeq: 1 INVITE\r\n"
	"Contact: <sip:alice@192.0.2.10:5062>\r\n"
	"Content-Type: application/sdp\r\n"
	"Content-Length: 65\r\n"
	"\r\n" INVITE_BODY;

static void test_invite_exact_bytes(void **state)
{
	assert_int_equal(strlen(INVITE_BODY), 65);
	struct run r = run(invite_rport);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_forwarded(r.out,
			 "INVITE sip:bob@example.com SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=@B@\r\n"
			 "Record-Route: <sip:127.0.0.1:5060;lr>\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport=5062;"
			 "received=192.0.2.10\r\n"
			 "Max-Forwards: 69\r\n"
			 "From: <sip:alice@example.com>;tag=a1\r\n"
			 "To: <sip:bob@example.com>\r\n"
			 "Call-ID: fwd-1@192.0.2.10\r\n"
			 "CSeq: 1 INVITE\r\n"
			 "Contact: <sip:alice@192.0.2.10:5062>\r\n"
			 "Content-Type: application/sdp\r\n"
			 "Content-Length: 65\r\n"
			 "\r\n" INVITE_BODY);
	assert_dst(r.t, "127.0.0.1", 5080); /* our domain -> routes.local */
	assert_true(r.t->next_hop_trusted);
	done(&r);
}

static void test_received_only_when_needed(void **state)
{
	/* sent-by equals the source and no rport: the Via stays byte for byte */
	struct run r = run("OPTIONS sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKsame\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: rcv-1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 10\r\n"
			   "Content-Length: 0\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKsame\r\n"));
	assert_null(strstr(r.out, "received="));
	assert_non_null(strstr(r.out, "\r\nMax-Forwards: 9\r\n"));
	assert_null(strstr(r.out, "Record-Route")); /* OPTIONS does not form a dialog */
	done(&r);
	/* a hostname sent-by gets received=, nothing else changes */
	r = run("OPTIONS sip:bob@example.com SIP/2.0\r\n"
		"v: SIP/2.0/UDP pc33.example.com ;branch=z9hG4bKhost\r\n"
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: rcv-2\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 10\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nv: SIP/2.0/UDP pc33.example.com ;branch=z9hG4bKhost;"
				      "received=192.0.2.10\r\n"));
	done(&r);
}

/* Is a Via sent-by the source? Equal text first; an IPv4 source (or an IPv4-mapped one
 * on a dual-stack socket) is otherwise another address unless sent-by is a bracketed
 * IPv6 literal; an IPv6 source is compared as an address (case, zero compression). */
static void test_host_is_src(void **state)
{
	(void)state;
	struct txn *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	char ip[PROXY_IP_TEXT_MAX];
	sa_set(&t->src, &t->srclen, "192.0.2.10", 5060);
	struct slice txt = slice_make(ip, proxy_src_ip_text(t, ip));
	assert_true(proxy_host_is_src(t, SLICE_LIT("192.0.2.10"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("192.0.2.1"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("192.0.2.010"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("pc.example.com"), txt));
	assert_false(proxy_host_is_src(t, SLICE_NULL, txt));
	assert_true(proxy_host_is_src(t, SLICE_LIT("[::ffff:192.0.2.10]"), txt));
	/* the same client seen on a dual-stack socket */
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->src;
	memset(&t->src, 0, sizeof(t->src));
	s6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.10", &s6->sin6_addr), 1);
	txt = slice_make(ip, proxy_src_ip_text(t, ip));
	assert_true(slice_eq(txt, SLICE_LIT("192.0.2.10")));
	assert_true(proxy_host_is_src(t, SLICE_LIT("192.0.2.10"), txt));
	assert_true(proxy_host_is_src(t, SLICE_LIT("[::FFFF:192.0.2.10]"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("192.0.2.11"), txt));
	/* IPv6 */
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr), 1);
	txt = slice_make(ip, proxy_src_ip_text(t, ip));
	assert_true(proxy_host_is_src(t, SLICE_LIT("[2001:db8::1]"), txt));
	assert_true(proxy_host_is_src(t, SLICE_LIT("[2001:DB8:0::1]"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("[2001:db8::2]"), txt));
	assert_false(proxy_host_is_src(t, SLICE_LIT("192.0.2.10"), txt));
	free(t);
}

static void test_branch_stability(void **state)
{
	char b1[128], b2[128], b3[128], b4[128], b5[128];
	struct run r = run(invite_rport);
	branch_of(r.out, b1, sizeof(b1));
	done(&r);
	r = run(invite_rport); /* retransmission */
	branch_of(r.out, b2, sizeof(b2));
	done(&r);
	assert_string_equal(b1, b2);
	r = run("CANCEL sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport\r\n"
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
		"To: <sip:bob@example.com>\r\nCall-ID: fwd-1@192.0.2.10\r\nCSeq: 1 CANCEL\r\n"
		"Content-Length: 0\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	branch_of(r.out, b3, sizeof(b3));
	assert_null(strstr(r.out, "Record-Route"));
	done(&r);
	assert_string_equal(b1, b3); /* CANCEL follows the INVITE */
	/* another incoming branch, another outgoing one */
	char other[sizeof(invite_rport)];
	memcpy(other, invite_rport, sizeof(invite_rport));
	memcpy(strstr(other, "abc123"), "abc124", 6);
	r = run(other);
	branch_of(r.out, b4, sizeof(b4));
	done(&r);
	assert_string_not_equal(b1, b4);
	/* the same branch from another client (sent-by) differs too */
	memcpy(other, invite_rport, sizeof(invite_rport));
	memcpy(strstr(other, "192.0.2.10:5062;"), "192.0.2.11:5062;", 16);
	r = run(other);
	branch_of(r.out, b5, sizeof(b5));
	done(&r);
	assert_string_not_equal(b1, b5);
}

static const char invite_2543[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 192.0.2.10\r\n"
				  "From: <sip:alice@example.com>\r\n"
				  "To: <sip:bob@example.com>\r\n"
				  "Call-ID: old-1@192.0.2.10\r\n"
				  "CSeq: 5 INVITE\r\n"
				  "\r\n" INVITE_BODY;

static void test_rfc2543_request(void **state)
{
	char b1[128], b2[128], b3[128];
	struct run r = run(invite_2543);
	assert_int_equal(r.rc, STAGE_SENT);
	branch_of(r.out, b1, sizeof(b1));
	/* no Max-Forwards: 70 added; no Content-Length: one added for the body */
	assert_non_null(strstr(r.out, "\r\nMax-Forwards: 70\r\n"));
	assert_non_null(strstr(r.out, "\r\nContent-Length: 65\r\n\r\n" INVITE_BODY));
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n"));
	struct sip_msg m;
	assert_true(sip_parse(r.out, strlen(r.out), &m) >= 0);
	assert_int_equal(sip_msg_check(&m, NULL), SIP_CHECK_OK);
	assert_int_equal(m.max_forwards, 70);
	done(&r);
	r = run(invite_2543);
	branch_of(r.out, b2, sizeof(b2));
	done(&r);
	assert_string_equal(b1, b2);
	char other[sizeof(invite_2543)];
	memcpy(other, invite_2543, sizeof(other));
	memcpy(strstr(other, "CSeq: 5"), "CSeq: 6", 7);
	r = run(other);
	branch_of(r.out, b3, sizeof(b3));
	done(&r);
	assert_string_not_equal(b1, b3);
}

static void test_route_popping(void **state)
{
	/* a Route of ours (lr) then a foreign one, on two lines */
	struct run r = run("BYE sip:bob@192.0.2.20:5070 SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKbye1\r\n"
			   "Route: <sip:127.0.0.1:5060;lr>\r\n"
			   "Route: <sip:192.0.2.50:5071;lr>\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
			   "Call-ID: route-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
			   "Content-Length: 0\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_forwarded(r.out, "BYE sip:bob@192.0.2.20:5070 SIP/2.0\r\n"
				"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=@B@\r\n"
				"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKbye1\r\n"
				"Route: <sip:192.0.2.50:5071;lr>\r\n"
				"From: <sip:alice@example.com>;tag=a1\r\n"
				"To: <sip:bob@example.com>;tag=b1\r\n"
				"Call-ID: route-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 69\r\n"
				"Content-Length: 0\r\n\r\n");
	assert_dst(r.t, "192.0.2.50", 5071);
	assert_false(r.t->next_hop_trusted);
	done(&r);
	/* both in one line: the line is rewritten with the foreign value only */
	r = run("BYE sip:bob@192.0.2.20:5070 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKbye2\r\n"
		"Route: <sip:127.0.0.1:5060;lr;ra=x>, <sip:192.0.2.50;lr>\r\n"
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
		"Call-ID: route-2\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nRoute: <sip:192.0.2.50;lr>\r\n"));
	assert_null(strstr(r.out, "127.0.0.1:5060;lr;ra"));
	assert_dst(r.t, "192.0.2.50", 5060);
	done(&r);
	/* only our Route: it goes, and the IP-literal Request-URI decides */
	r = run("BYE sip:bob@192.0.2.20:5070 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKbye3\r\n"
		"Route: <sip:127.0.0.1:5060;lr>\r\n"
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
		"Call-ID: route-3\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_null(strstr(r.out, "Route:"));
	assert_dst(r.t, "192.0.2.20", 5070);
	done(&r);
}

/* Where @ruri (with an optional Route line) is sent. */
static void assert_routed(const char *ruri, const char *route, const char *ip, uint16_t port)
{
	char raw[1024];
	snprintf(raw, sizeof(raw),
		 "MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKrt\r\n%s"
		 "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.net>\r\n"
		 "Call-ID: routing\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n",
		 ruri, route);
	struct run r = run(raw);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_dst(r.t, ip, port);
	done(&r);
}

static void test_routing(void **state)
{
	assert_routed("sip:bob@example.com", "", "127.0.0.1", 5080);
	assert_routed("sip:bob@EXAMPLE.com:5060", "", "127.0.0.1", 5080);
	assert_routed("sip:bob@other.net", "", "127.0.0.1", 5090);
	assert_routed("sip:bob@192.0.2.77:5077", "", "192.0.2.77", 5077);
	assert_routed("sip:bob@192.0.2.77", "", "192.0.2.77", 5060);
	/* IPv6 literal */
	struct run r = run("MESSAGE sip:bob@[2001:db8::1]:5070 SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKv6\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.net>\r\n"
			   "Call-ID: v6\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&r.t->dst;
	struct in6_addr want;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &want), 1);
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_memory_equal(&in6->sin6_addr, &want, sizeof(want));
	assert_int_equal(ntohs(in6->sin6_port), 5070);
	done(&r);
}

static void test_routing_routes(void **state)
{
	assert_routed("sip:bob@192.0.2.77", "Route: <sip:example.com;lr>\r\n", "127.0.0.1", 5080);
	assert_routed("sip:bob@192.0.2.77", "Route: <sip:sbc.carrier.net;lr>\r\n", "127.0.0.1",
		      5090);
	assert_routed("sip:bob@example.com", "Route: <sip:192.0.2.90:5099;lr>\r\n", "192.0.2.90",
		      5099);
	/* our own address in the Request-URI is a request for our domain */
	assert_routed("sip:bob@127.0.0.1:5060", "", "127.0.0.1", 5080);
}

static void test_no_route_configured(void **state)
{
	struct cfg c;
	proxy_fixture_cfg(&c);
	c.routes.outbound.n = 0;
	const char raw[] = "MESSAGE sip:bob@other.net SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnr\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@other.net>\r\n"
			   "Call-ID: noroute\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n";
	struct run r = run_full(&g_chain, &c, raw, strlen(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_REPLY);
	assert_int_equal(strncmp(r.out, "SIP/2.0 503 No Route\r\n", 22), 0);
	assert_false(r.t->next_hop_trusted);
	done(&r);
}

/* base64url(HMAC-SHA256(rr_key, Call-ID "a"))[:16 bytes], computed here independently. */
static void expected_mac(const char *call_id, char out[23])
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char in[256];
	uint8_t mac[32];
	const size_t n = (size_t)snprintf(in, sizeof(in), "%sa", call_id);
	hmac_sha256(g_secret.rr_key, SECRET_KEY_BYTES, in, n, mac);
	unsigned bits = 0, acc = 0, o = 0;
	for (unsigned i = 0; i < 16; i++) {
		acc = (acc << 8) | mac[i];
		bits += 8;
		while (bits >= 6) {
			out[o++] = a[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	out[o++] = a[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	assert_int_equal(o, 22);
}

static void test_signed_record_route(void **state)
{
	struct run r = run_full(&g_chain_auth, &g_cfg, invite_rport, strlen(invite_rport),
				"192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	char mac[23], line[128];
	expected_mac("fwd-1@192.0.2.10", mac);
	snprintf(line, sizeof(line), "\r\nRecord-Route: <sip:127.0.0.1:5060;lr;ra=%s>\r\n", mac);
	assert_non_null(strstr(r.out, line));
	/* ours comes before any Record-Route already there */
	done(&r);

	/* in dialog, our signed Route on top: authorized dialog */
	char bye[1024];
	const char *fmt = "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKbye\r\n"
			  "Route: <sip:127.0.0.1:5060;lr;ra=%s>\r\n"
			  "From: <sip:bob@example.com>;tag=b1\r\n"
			  "To: <sip:alice@example.com>;tag=a1\r\n"
			  "Call-ID: fwd-1@192.0.2.10\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\r\n";
	snprintf(bye, sizeof(bye), fmt, mac);
	r = run_full(&g_chain, &g_cfg, bye, strlen(bye), "192.0.2.30", 5060);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_true(r.t->in_authorized_dialog);
	assert_null(strstr(r.out, "Route:")); /* popped */
	assert_null(strstr(r.out, "Record-Route"));
	assert_dst(r.t, "192.0.2.10", 5062);
	done(&r);
	/* tampered MAC */
	mac[3] = mac[3] == 'A' ? 'B' : 'A';
	snprintf(bye, sizeof(bye), fmt, mac);
	r = run_full(&g_chain, &g_cfg, bye, strlen(bye), "192.0.2.30", 5060);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_false(r.t->in_authorized_dialog);
	done(&r);
	/* the right MAC for another Call-ID */
	expected_mac("another-call", mac);
	snprintf(bye, sizeof(bye), fmt, mac);
	r = run_full(&g_chain, &g_cfg, bye, strlen(bye), "192.0.2.30", 5060);
	assert_false(r.t->in_authorized_dialog);
	done(&r);
	/* unauthorized dialog-forming request: plain Record-Route, no ra */
	r = run(invite_rport);
	assert_non_null(strstr(r.out, "\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\n"));
	assert_null(strstr(r.out, "ra="));
	done(&r);
}

/* An INVITE that came over TLS and leaves over UDP gets one Record-Route per side
 * (RFC 5658). The TLS side is sip:...;transport=tls for a sip: Request-URI (RFC 3261
 * §16.6 step 4: not a SIPS URI when the request leaves without one; baresip 1.0
 * cannot send to a sips: route of a sip: dialog), sips: for a sips: one. */
static void test_record_route_tls_side(void **state)
{
	(void)state;
	static struct cfg c;
	c = g_cfg;
	c.n_listen = 2;
	assert_int_equal(cfg_addr_parse("tls://127.0.0.1:5061", true, &c.listen[1]), 0);
	g_rx_listen = 1;
	static const char fmt[] = "INVITE %s:2551234@example.com SIP/2.0\r\n"
				  "Via: SIP/2.0/TLS 192.0.2.10:5062;branch=z9hG4bKtls1\r\n"
				  "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:2551234@example.com>\r\n"
				  "Call-ID: tls-rr-%s\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
				  "Content-Length: 0\r\n\r\n";
	char raw[512];
	snprintf(raw, sizeof(raw), fmt, "sip", "sip");
	struct run r = run_full(&g_chain, &c, raw, strlen(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch="));
	assert_non_null(strstr(r.out, "\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\n"
				      "Record-Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n"));
	assert_null(strstr(r.out, "sips:"));
	done(&r);
	snprintf(raw, sizeof(raw), fmt, "sips", "sips");
	r = run_full(&g_chain, &c, raw, strlen(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\n"
				      "Record-Route: <sips:127.0.0.1:5061;lr>\r\n"));
	done(&r);
}

static void test_record_route_order(void **state)
{
	struct run r = run("SUBSCRIBE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp2\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKp1\r\n"
			   "Record-Route: <sip:10.9.9.9;lr>\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: sub-1\r\nCSeq: 1 SUBSCRIBE\r\nEvent: presence\r\n"
			   "Max-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	const char *ours = strstr(r.out, "Record-Route: <sip:127.0.0.1:5060;lr>");
	const char *theirs = strstr(r.out, "Record-Route: <sip:10.9.9.9;lr>");
	assert_non_null(ours);
	assert_non_null(theirs);
	assert_true(ours < theirs);
	struct sip_msg m;
	assert_true(sip_parse(r.out, strlen(r.out), &m) >= 0);
	assert_int_equal(m.hdrs[m.first[SIP_HDR_RECORD_ROUTE]].value.p - r.out, ours - r.out + 14);
	done(&r);
}

static void test_multi_value_via_line(void **state)
{
	struct run r = run("MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;rport;branch=z9hG4bKm1 , "
			   "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm0\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: mv\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;rport=5062;"
				      "branch=z9hG4bKm1;received=192.0.2.10, "
				      "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm0\r\n"));
	done(&r);
}

static void test_edits_applied(void **state)
{
	const char raw[] = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKed\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "X-Drop: secret\r\n"
			   "Subject: original\r\n"
			   "Call-ID: edits\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
			   "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
	struct run r = run_full(&g_chain_edit, &g_cfg, raw, strlen(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_forwarded(r.out, "MESSAGE sip:carol@example.com SIP/2.0\r\n"
				"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=@B@\r\n"
				"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKed\r\n"
				"From: <sip:alice@example.com>;tag=a1\r\n"
				"To: <sip:bob@example.com>\r\n"
				"Subject: replaced\r\n"
				"Call-ID: edits\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 69\r\n"
				"Content-Type: text/plain\r\nContent-Length: 2\r\n"
				"X-Added: yes\r\n\r\nhi");
	done(&r);
}

static enum stage_rc stage_ruri_with_headers(struct txn *t)
{
	txn_ruri_set(t, SLICE_LIT("sip:dave@example.com;transport=udp?Route=%3Csip:evil%3E"));
	return STAGE_CONTINUE;
}

static void test_uri_headers_stripped(void **state)
{
	/* the parser answers 400 to headers in a received Request-URI (RFC 4475
	 * escruri); a Request-URI set by a stage loses them when forwarded */
	struct stage_table st = { 0 };
	assert_int_equal(stage_add(&st, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&st, "ruri", stage_ruri_with_headers, true), 0);
	assert_int_equal(stage_add(&st, "forward", proxy_forward_stage, false), 0);
	const char raw[] = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKuh\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: uh\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n";
	struct run r = run_full(&st, &g_cfg, raw, strlen(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_int_equal(strncmp(r.out, "MESSAGE sip:dave@example.com;transport=udp SIP/2.0\r\n", 52), 0);
	assert_null(strstr(r.out, "evil"));
	done(&r);
}

static void test_too_big(void **state)
{
	/* a body that fits the input but not the output slot once our Via is added */
	static char raw[TXN_RX_MAX];
	const char *head = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKbig\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: big\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n";
	const size_t hl = strlen(head);
	memcpy(raw, head, hl);
	memset(raw + hl, 'x', sizeof(raw) - hl);
	struct run r = run_full(&g_chain, &g_cfg, raw, sizeof(raw), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_REPLY);
	assert_int_equal(strncmp(r.out, "SIP/2.0 513 Message Too Large\r\n", 31), 0);
	done(&r);
}

/* a request with @extra X- headers beside its 7 values: forwarded while what leaves parses
 * (our Via and Record-Route added), 513 past the parser's SIP_MAX_HDRS values */
static struct run run_many_headers(unsigned extra)
{
	static char raw[8192];
	int n = snprintf(raw, sizeof(raw),
			 "INVITE sip:bob@example.com SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKmany\r\n"
			 "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			 "Call-ID: many\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n");
	for (unsigned i = 0; i < extra; i++)
		n += snprintf(raw + n, sizeof(raw) - (size_t)n, "X-%u: v\r\n", i);
	n += snprintf(raw + n, sizeof(raw) - (size_t)n, "\r\n");
	return run_full(&g_chain, &g_cfg, raw, (size_t)n, "192.0.2.10", 5062);
}

static void test_header_values_past_parser_limit(void **state)
{
	(void)state;
	/* 7 + 119 = 126 in, + our Via and Record-Route = 128: forwarded, and parses */
	struct run ok = run_many_headers(SIP_MAX_HDRS - 9);
	assert_int_equal(ok.rc, STAGE_SENT);
	struct sip_msg m;
	assert_true(sip_parse(ok.out, ok.t->out_len, &m) > 0);
	assert_int_equal(m.n_hdrs, SIP_MAX_HDRS);
	done(&ok);
	/* 127 in: 129 would leave, which neither we (on a spiral) nor a peer behind the
	 * balancer could parse (found by fuzz_chain: a 127-value INVITE forwarded) */
	struct run big = run_many_headers(SIP_MAX_HDRS - 8);
	assert_int_equal(big.rc, STAGE_REPLY);
	assert_int_equal(strncmp(big.out, "SIP/2.0 513 Message Too Large\r\n", 31), 0);
	done(&big);
}

/* ---------------------------------------------------------------- responses */

static void test_response_relayed(void **state)
{
	struct run f = run(invite_rport);
	char branch[128], raw[2048], expected[2048];
	branch_of(f.out, branch, sizeof(branch));
	done(&f);
	const char *rest = "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport=5062;"
			   "received=192.0.2.10\r\n"
			   "Record-Route: <sip:127.0.0.1:5060;lr>\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\n"
			   "To: <sip:bob@example.com>;tag=b9\r\n"
			   "Call-ID: fwd-1@192.0.2.10\r\nCSeq: 1 INVITE\r\n"
			   "Contact: <sip:bob@192.0.2.40>\r\nContent-Length: 0\r\n\r\n";
	snprintf(raw, sizeof(raw), "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=%s\r\n%s",
		 branch, rest);
	snprintf(expected, sizeof(expected), "SIP/2.0 180 Ringing\r\n%s", rest);
	struct run r = run_full(&g_chain, &g_cfg, raw, strlen(raw), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_string_equal(r.out, expected);
	assert_dst(r.t, "192.0.2.10", 5062); /* received + rport */
	done(&r);
	/* received without rport: sent-by port; compact Via names, two values on one line */
	snprintf(raw, sizeof(raw),
		 "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch=%s, SIP/2.0/UDP "
		 "pc.example.net:5070;branch=z9hG4bKx;received=192.0.2.12\r\n"
		 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
		 "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
		 branch);
	r = run_full(&g_chain, &g_cfg, raw, strlen(raw), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP pc.example.net:5070;"
				      "branch=z9hG4bKx;received=192.0.2.12\r\nFrom:"));
	assert_dst(r.t, "192.0.2.12", 5070);
	done(&r);
}

static void test_response_dropped(void **state)
{
	/* top Via not ours */
	const char *not_ours = "SIP/2.0 200 OK\r\n"
			       "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsomeoneelse\r\n"
			       "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123\r\n"
			       "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
			       "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	struct run r = run_full(&g_chain, &g_cfg, not_ours, strlen(not_ours), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	done(&r);
	/* our branch prefix but another host */
	const char *other_host = "SIP/2.0 200 OK\r\n"
				 "Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-rf-0123456789abcdef.0123456789abcdef\r\n"
				 "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123\r\n"
				 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
				 "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	r = run_full(&g_chain, &g_cfg, other_host, strlen(other_host), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_DROP);
	done(&r);
	/* ours, but nothing after it */
	const char *last = "SIP/2.0 200 OK\r\n"
			   "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-rf-0123456789abcdef.0123456789abcdef\r\n"
			   "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
			   "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	r = run_full(&g_chain, &g_cfg, last, strlen(last), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_DROP);
	done(&r);
	/* ours, then a broadcast / multicast sent-by */
	const char *bcast = "SIP/2.0 200 OK\r\n"
			    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-rf-0123456789abcdef.0123456789abcdef\r\n"
			    "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bKabc123\r\n"
			    "Via: SIP/2.0/UDP 224.0.0.1;branch=z9hG4bKabc122\r\n"
			    "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
			    "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	r = run_full(&g_chain, &g_cfg, bcast, strlen(bcast), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	done(&r);
}

/* ---------------------------------------------------------------- behind a load balancer (SPEC §11) */

static void advertise_set(struct cfg *c, unsigned i, const char *text, const char *host,
			  uint16_t port)
{
	c->advertise[i].set = true;
	snprintf(c->advertise[i].text, sizeof(c->advertise[i].text), "%s", text);
	snprintf(c->advertise[i].host, sizeof(c->advertise[i].host), "%s", host);
	c->advertise[i].port = port;
}

static void test_advertise(void **state)
{
	static struct cfg c;
	c = g_cfg;
	advertise_set(&c, 0, "LB.example.net:5070", "lb.example.net", 5070);
	struct run r = run_full(&g_chain_auth, &c, invite_rport, strlen(invite_rport), "192.0.2.10",
				5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP LB.example.net:5070;branch=z9hG4bK-rf-"));
	char mac[23], line[128], branch[128];
	expected_mac("fwd-1@192.0.2.10", mac);
	snprintf(line, sizeof(line), "\r\nRecord-Route: <sip:LB.example.net:5070;lr;ra=%s>\r\n", mac);
	assert_non_null(strstr(r.out, line));
	assert_null(strstr(r.out, "127.0.0.1:5060"));
	branch_of(r.out, branch, sizeof(branch));
	done(&r);

	/* a Route naming the advertised address (any case) is ours: popped, dialog authorized */
	char bye[1024];
	snprintf(bye, sizeof(bye),
		 "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKbye\r\n"
		 "Route: <sip:lb.EXAMPLE.net:5070;lr;ra=%s>\r\n"
		 "From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
		 "Call-ID: fwd-1@192.0.2.10\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\r\n",
		 mac);
	r = run_full(&g_chain, &c, bye, strlen(bye), "192.0.2.30", 5060);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_true(r.t->in_authorized_dialog);
	assert_null(strstr(r.out, "Route:"));
	assert_dst(r.t, "192.0.2.10", 5062);
	done(&r);
	/* the advertised address with another port is not ours */
	snprintf(bye, sizeof(bye),
		 "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKbye\r\n"
		 "Route: <sip:lb.example.net:5071;lr>\r\n"
		 "From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
		 "Call-ID: fwd-1@192.0.2.10\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\r\n");
	r = run_full(&g_chain, &c, bye, strlen(bye), "192.0.2.30", 5060);
	assert_non_null(strstr(r.out, "Route: <sip:lb.example.net:5071;lr>"));
	done(&r);

	/* a response whose top Via names the advertised address is ours to relay */
	char resp[1024];
	snprintf(resp, sizeof(resp),
		 "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP lb.example.net:5070;branch=%s\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;received=192.0.2.11\r\n"
		 "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
		 "Call-ID: fwd-1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
		 branch);
	r = run_full(&g_chain, &c, resp, strlen(resp), "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_dst(r.t, "192.0.2.11", 5062);
	done(&r);

	/* IPv6 advertise: compared as an address */
	c = g_cfg;
	advertise_set(&c, 0, "[2001:db8::a]", "2001:db8::a", 0);
	const char *opt6 = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKo6\r\n"
			   "Route: <sip:[2001:DB8:0::A];lr>\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: o6\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n";
	r = run_full(&g_chain, &c, opt6, strlen(opt6), "192.0.2.10", 5062);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_null(strstr(r.out, "Route:"));
	assert_non_null(strstr(r.out, "Via: SIP/2.0/UDP [2001:db8::a];branch="));
	assert_dst(r.t, "127.0.0.1", 5080); /* popped: our domain -> routes.local */
	done(&r);
}

/* A Record-Route signed by a sibling instance (another address, same secret) is
 * verified and popped here, so the dialog survives the sibling (SPEC §11). */
static void test_sibling_record_route(void **state)
{
	char mac[23], bye[1024];
	expected_mac("sib-1@192.0.2.10", mac);
	const char *fmt = "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKsib\r\n"
			  "Route: <sip:10.9.9.9:5060;lr;ra=%s>\r\n"
			  "Route: <sip:192.0.2.77;lr>\r\n"
			  "From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
			  "Call-ID: sib-1@192.0.2.10\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\r\n";
	snprintf(bye, sizeof(bye), fmt, mac);
	struct run r = run_full(&g_chain, &g_cfg, bye, strlen(bye), "192.0.2.30", 5060);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_true(r.t->in_authorized_dialog);
	assert_null(strstr(r.out, "10.9.9.9"));
	assert_non_null(strstr(r.out, "\r\nRoute: <sip:192.0.2.77;lr>\r\n"));
	assert_dst(r.t, "192.0.2.77", 5060);
	done(&r);
	/* forged: not ours, so it goes to the address it names */
	mac[5] = mac[5] == 'A' ? 'B' : 'A';
	snprintf(bye, sizeof(bye), fmt, mac);
	r = run_full(&g_chain, &g_cfg, bye, strlen(bye), "192.0.2.30", 5060);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_false(r.t->in_authorized_dialog);
	assert_non_null(strstr(r.out, "Route: <sip:10.9.9.9:5060;lr;ra="));
	assert_dst(r.t, "10.9.9.9", 5060);
	done(&r);
}

static void assert_sa(const struct sockaddr *sa, const char *ip, uint16_t port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
	char text[INET_ADDRSTRLEN];
	assert_int_equal(in->sin_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)));
	assert_string_equal(text, ip);
	assert_int_equal(ntohs(in->sin_port), port);
}

static void test_client_behind_balancer(void **state)
{
	static struct cfg c;
	c = g_cfg;
	c.n_load_balancers = 1;
	assert_int_equal(cfg_cidr_parse("192.0.2.200/31", &c.load_balancers[0]), 0);
	const char *fmt = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.200;branch=z9hG4bKlb1\r\n"
			  "Via: %s\r\n"
			  "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			  "Call-ID: lb1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 69\r\n\r\n";
	static const struct {
		const char *via;
		const char *src;
		const char *ip;
		uint16_t port;
	} cases[] = {
		{ "SIP/2.0/UDP 10.0.0.5:5066;received=198.51.100.7;rport=40000;branch=z9hG4bKc",
		  "192.0.2.200", "198.51.100.7", 40000 },
		{ "SIP/2.0/UDP 10.0.0.5:5066;received=198.51.100.7;branch=z9hG4bKc", "192.0.2.201",
		  "198.51.100.7", 5066 },
		{ "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKc", "192.0.2.200", "10.0.0.5", 5060 },
		/* a name without received= names no address: the balancer stays the source */
		{ "SIP/2.0/UDP phone.example.net:5066;branch=z9hG4bKc", "192.0.2.200", "192.0.2.200",
		  5062 },
		/* not from a balancer: the Via below means nothing */
		{ "SIP/2.0/UDP 10.0.0.5:5066;received=198.51.100.7;branch=z9hG4bKc", "192.0.2.202",
		  "192.0.2.202", 5062 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[1024];
		snprintf(raw, sizeof(raw), fmt, cases[i].via);
		struct run r = run_full(&g_chain, &c, raw, strlen(raw), cases[i].src, 5062);
		struct sockaddr_storage buf;
		assert_sa(txn_client_addr(r.t, &buf), cases[i].ip, cases[i].port);
		/* replies and responses still go to the balancer: the source is untouched */
		assert_sa((const struct sockaddr *)&r.t->src, cases[i].src, 5062);
		done(&r);
	}
	/* only the balancer's own Via: it is the client */
	const char *one = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.200;branch=z9hG4bKlb1\r\n"
			  "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			  "Call-ID: lb1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 69\r\n\r\n";
	struct run r = run_full(&g_chain, &c, one, strlen(one), "192.0.2.200", 5062);
	struct sockaddr_storage buf;
	assert_sa(txn_client_addr(r.t, &buf), "192.0.2.200", 5062);
	done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_invite_exact_bytes, test_teardown),
		cmocka_unit_test_teardown(test_received_only_when_needed, test_teardown),
		cmocka_unit_test(test_host_is_src),
		cmocka_unit_test_teardown(test_branch_stability, test_teardown),
		cmocka_unit_test_teardown(test_rfc2543_request, test_teardown),
		cmocka_unit_test_teardown(test_route_popping, test_teardown),
		cmocka_unit_test_teardown(test_routing, test_teardown),
		cmocka_unit_test_teardown(test_routing_routes, test_teardown),
		cmocka_unit_test_teardown(test_no_route_configured, test_teardown),
		cmocka_unit_test_teardown(test_signed_record_route, test_teardown),
		cmocka_unit_test_teardown(test_record_route_order, test_teardown),
		cmocka_unit_test_teardown(test_multi_value_via_line, test_teardown),
		cmocka_unit_test_teardown(test_edits_applied, test_teardown),
		cmocka_unit_test_teardown(test_uri_headers_stripped, test_teardown),
		cmocka_unit_test_teardown(test_too_big, test_teardown),
		cmocka_unit_test_teardown(test_header_values_past_parser_limit, test_teardown),
		cmocka_unit_test_teardown(test_response_relayed, test_teardown),
		cmocka_unit_test_teardown(test_response_dropped, test_teardown),
		cmocka_unit_test_teardown(test_advertise, test_teardown),
		cmocka_unit_test_teardown(test_sibling_record_route, test_teardown),
		cmocka_unit_test_teardown(test_record_route_tls_side, test_teardown),
		cmocka_unit_test_teardown(test_client_behind_balancer, test_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
