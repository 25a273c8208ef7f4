/* test_proxy_checks.c - SPEC §1 local handling through sip_parse +
 * proxy_process (chain: checks -> forward): 483, 482 (a real loop built from
 * our own output), 416, 420 with Unsupported, 400/505/501 for malformed
 * requests, OPTIONS to ourselves, exact bytes of stateless replies (received,
 * rport, deterministic To tag), ACK of our own reply absorbed, never a reply
 * to an ACK, next-hop trust. */
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
#include "metrics.h"
#include "proxy.h"
#include "proxy_fixture.h"
#include "proxy_priv.h" /* metric handles */
#include "secret.h"
#include "sip.h"
#include "stage.h"
#include "txn.h"

static struct cfg g_cfg;
static struct secret g_secret;
static struct stage_table g_chain;
static char g_out[TXN_RX_MAX + 4096];
static char g_text[TXN_RX_MAX + 4097];

static struct txn *g_live; /* freed by the teardown when an assertion jumps out */

struct run {
	struct txn *t;
	enum stage_rc rc;
	const char *out;
};

static int group_setup(void **state)
{
	struct cfg *c = &g_cfg;
	proxy_fixture_cfg(c);
	c->n_listen = 2;
	assert_int_equal(cfg_addr_parse("udp://[::1]:5062", true, &c->listen[1]), 0);
	static const uint8_t key[24] = "another key for checks!";
	assert_int_equal(secret_set(&g_secret, key, sizeof(key)), 0);
	assert_int_equal(metrics_thread_init(), 0);
	assert_int_equal(proxy_init(c, &g_secret), 0);
	assert_int_equal(stage_add(&g_chain, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&g_chain, "forward", proxy_forward_stage, false), 0);
	return 0;
}

/* A fresh txn holding @raw, parsed; the source is left to the caller. */
static struct run prepare(const char *raw, size_t n)
{
	struct run r = { calloc(1, sizeof(struct txn)), STAGE_DROP, g_text };
	assert_non_null(r.t);
	free(g_live);
	g_live = r.t;
	assert_true(n <= sizeof(r.t->rx));
	memcpy(r.t->rx, raw, n);
	txn_received(r.t, r.t->rx, n);
	r.t->cfg = &g_cfg;
	r.t->out = g_out;
	r.t->out_cap = sizeof(g_out);
	return r;
}

static void process(struct run *r)
{
	r->rc = proxy_process(&g_chain, r->t);
	memcpy(g_text, g_out, r->t->out_len);
	g_text[r->t->out_len] = '\0';
}

static struct run run_from(const char *raw, size_t n, const char *ip, uint16_t port)
{
	struct run r = prepare(raw, n);
	struct sockaddr_in *in = (struct sockaddr_in *)&r.t->src;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	r.t->srclen = sizeof(*in);
	process(&r);
	return r;
}

/* From an IPv6 source (@ip may be IPv4-mapped, as a dual-stack socket sees it). */
static struct run run_from6(const char *raw, const char *ip, uint16_t port)
{
	struct run r = prepare(raw, strlen(raw));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&r.t->src;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	r.t->srclen = sizeof(*in6);
	process(&r);
	return r;
}

static struct run run(const char *raw)
{
	return run_from(raw, strlen(raw), "192.0.2.10", 5062);
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
}

/* A reply to @raw with status @code; returns the To tag we added (static buffer). */
static const char *assert_reply(struct run *r, unsigned code)
{
	char start[32];
	snprintf(start, sizeof(start), "SIP/2.0 %u ", code);
	assert_int_equal(r->rc, STAGE_REPLY);
	assert_true(r->t->out_len > 0);
	assert_int_equal(strncmp(r->out, start, strlen(start)), 0);
	struct sip_msg m;
	assert_true(sip_parse(r->out, strlen(r->out), &m) >= 0);
	assert_false(m.is_request);
	assert_int_equal(m.status, code);
	static char tag[64];
	const char *p = strstr(r->out, "\r\nTo: ");
	tag[0] = '\0';
	if (p && (p = strstr(p, ";tag=")) != NULL)
		snprintf(tag, sizeof(tag), "%.*s", (int)strcspn(p + 5, "\r;"), p + 5);
	return tag;
}

static const char zero_mf[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
			      "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKmf0\r\n"
			      "Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKinner\r\n"
			      "Max-Forwards: 0\r\n"
			      "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
			      "To: <sip:bob@example.com>\r\n"
			      "Call-ID: mf0@192.0.2.10\r\n"
			      "CSeq: 3 INVITE\r\n"
			      "Contact: <sip:alice@192.0.2.10:5070>\r\n"
			      "Content-Length: 0\r\n\r\n";

static void test_483_exact_reply(void **state)
{
	struct run r = run(zero_mf);
	const char *tag = assert_reply(&r, 483);
	assert_int_equal(strlen(tag), 16);
	char expected[1024];
	snprintf(expected, sizeof(expected),
		 "SIP/2.0 483 Too Many Hops\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKmf0\r\n"
		 "Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKinner\r\n"
		 "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
		 "To: <sip:bob@example.com>;tag=%s\r\n"
		 "Call-ID: mf0@192.0.2.10\r\n"
		 "CSeq: 3 INVITE\r\n"
		 "Content-Length: 0\r\n\r\n",
		 tag);
	assert_string_equal(r.out, expected);
	/* no rport: source address, sent-by port (RFC 3261 §18.2.2) */
	assert_dst(r.t, "192.0.2.10", 5070);
	done(&r);
}

static void test_reply_retransmission_identical(void **state)
{
	char first[2048];
	struct run r = run(zero_mf);
	assert_reply(&r, 483);
	snprintf(first, sizeof(first), "%s", r.out);
	done(&r);
	r = run(zero_mf);
	assert_reply(&r, 483);
	assert_string_equal(r.out, first);
	done(&r);
	/* another transaction (other branch) gets another tag */
	char other[sizeof(zero_mf)];
	memcpy(other, zero_mf, sizeof(other));
	memcpy(strstr(other, "z9hG4bKmf0"), "z9hG4bKmf1", 10);
	r = run(other);
	assert_reply(&r, 483);
	assert_string_not_equal(r.out, first);
	done(&r);
}

static void test_reply_rport_and_received(void **state)
{
	/* behind a NAT: sent-by is private, rport asked -> received + rport, reply to the source */
	struct run r = run("MESSAGE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKnat\r\n"
			   "Max-Forwards: 0\r\n"
			   "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: nat\r\nCSeq: 1 MESSAGE\r\n\r\n");
	assert_reply(&r, 483);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;rport=5062;"
				      "branch=z9hG4bKnat;received=192.0.2.10\r\n"));
	assert_dst(r.t, "192.0.2.10", 5062);
	done(&r);
	/* no rport, private sent-by: received added, sent-by port used */
	r = run("MESSAGE sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 10.0.0.5:5066;branch=z9hG4bKnat2\r\n"
		"Max-Forwards: 0\r\n"
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
		"Call-ID: nat2\r\nCSeq: 1 MESSAGE\r\n\r\n");
	assert_reply(&r, 483);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 10.0.0.5:5066;branch=z9hG4bKnat2;"
				      "received=192.0.2.10\r\n"));
	assert_non_null(strstr(r.out, "\r\nTo: <sip:bob@example.com>;tag=b1\r\n")); /* kept */
	assert_dst(r.t, "192.0.2.10", 5066);
	done(&r);
}

static void test_ipv6_and_mapped_sources(void **state)
{
	const char *raw = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK6\r\n"
			  "Max-Forwards: 0\r\n"
			  "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
			  "Call-ID: six\r\nCSeq: 1 MESSAGE\r\n\r\n";
	/* an IPv4 peer seen through a dual-stack socket is still 192.0.2.10: no received */
	struct run r = run_from6(raw, "::ffff:192.0.2.10", 5062);
	assert_reply(&r, 483);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK6\r\n"));
	done(&r);
	r = run_from6(raw, "2001:db8::5", 5062);
	assert_reply(&r, 483);
	assert_non_null(strstr(r.out, "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK6;"
				      "received=2001:db8::5\r\n"));
	const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&r.t->dst;
	assert_int_equal(d->sin6_family, AF_INET6);
	assert_int_equal(ntohs(d->sin6_port), 5062);
	done(&r);
}

static void test_options_to_us(void **state)
{
	static const char *const uris[] = { "sip:127.0.0.1", "sip:127.0.0.1:5060", "sip:example.com",
					    "sip:[::1]:5062", "sips:EXAMPLE.COM" };
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		char raw[512];
		snprintf(raw, sizeof(raw),
			 "OPTIONS %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKo%zu\r\n"
			 "From: <sip:lb@example.net>;tag=x\r\nTo: <%s>\r\nCall-ID: ping-%zu\r\n"
			 "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
			 uris[i], i, uris[i], i);
		struct run r = run(raw);
		assert_reply(&r, 200);
		assert_non_null(strstr(r.out, "\r\nAllow: "));
		done(&r);
	}
	/* Max-Forwards 0 to ourselves: still 200 (RFC 4475 zeromf allows it) */
	struct run r = run("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKomf\r\n"
			   "From: <sip:lb@example.net>;tag=x\r\nTo: <sip:127.0.0.1>\r\n"
			   "Call-ID: ping-mf\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\n\r\n");
	assert_reply(&r, 200);
	done(&r);
	/* with a user part, or to another port of that host: forwarded */
	r = run("OPTIONS sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKou\r\n"
		"From: <sip:lb@example.net>;tag=x\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: ping-u\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	done(&r);
	r = run("OPTIONS sip:127.0.0.1:5999 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKop\r\n"
		"From: <sip:lb@example.net>;tag=x\r\nTo: <sip:127.0.0.1:5999>\r\n"
		"Call-ID: ping-p\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_dst(r.t, "127.0.0.1", 5999);
	done(&r);
}

static void test_416(void **state)
{
	static const char *const uris[] = { "tel:+15551234", "http://example.com/x",
					    "urn:service:sos" };
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		char raw[512];
		snprintf(raw, sizeof(raw),
			 "INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKs%zu\r\n"
			 "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			 "Call-ID: scheme-%zu\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n",
			 uris[i], i, i);
		struct run r = run(raw);
		assert_reply(&r, 416);
		assert_int_equal(strncmp(r.out, "SIP/2.0 416 Unsupported URI Scheme\r\n", 36), 0);
		done(&r);
	}
}

static void test_420_unsupported(void **state)
{
	struct run r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKext\r\n"
			   "Proxy-Require: foo, bar\r\n"
			   "Require: uasonly\r\n"
			   "Proxy-Require: baz\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: ext\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	assert_reply(&r, 420);
	assert_non_null(strstr(r.out, "\r\nUnsupported: foo, bar, baz\r\nContent-Length: 0\r\n\r\n"));
	assert_null(strstr(r.out, "uasonly"));
	done(&r);
	/* option tags that are not tokens (8-bit bytes, a slash) are not echoed:
	 * our reply would not parse (found by tests/fuzz/fuzz_chain) */
	r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKext3\r\n"
		"Proxy-Require: good, b\xc3\xa9" "d, a/b\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: ext3\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	assert_reply(&r, 420);
	assert_non_null(strstr(r.out, "\r\nUnsupported: good\r\n"));
	done(&r);
	/* Require alone is the UAS's business */
	r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKext2\r\n"
		"Require: 100rel\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: ext2\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	done(&r);
}

static const char loop_req[] = "MESSAGE sip:bob@example.com SIP/2.0\r\n"
			       "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKloop\r\n"
			       "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			       "Call-ID: loop\r\nCSeq: 9 MESSAGE\r\nMax-Forwards: 70\r\n\r\n";

/* Our output, passed through one more proxy, with its Request-URI set to @ruri. */
static size_t looped(const char *out, const char *ruri, char *buf, size_t cap)
{
	const char *via = strstr(out, "\r\nVia: ");
	assert_non_null(via);
	return (size_t)snprintf(buf, cap,
				"MESSAGE %s SIP/2.0\r\n"
				"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKpbx%s",
				ruri, via);
}

static void test_482_loop(void **state)
{
	char out[2048], back[2048];
	struct run r = run(loop_req);
	assert_int_equal(r.rc, STAGE_SENT);
	snprintf(out, sizeof(out), "%s", r.out);
	done(&r);
	/* the PBX sends it straight back, same Request-URI: a loop */
	size_t n = looped(out, "sip:bob@example.com", back, sizeof(back));
	r = run_from(back, n, "127.0.0.1", 5080);
	assert_reply(&r, 482);
	assert_dst(r.t, "127.0.0.1", 5080);
	done(&r);
	/* with a new Request-URI it is a spiral: forwarded */
	n = looped(out, "sip:bob@192.0.2.44", back, sizeof(back));
	r = run_from(back, n, "127.0.0.1", 5080);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_dst(r.t, "192.0.2.44", 5060);
	done(&r);
}

static void test_400_missing_call_id(void **state)
{
	struct run r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnocid\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			   "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	assert_reply(&r, 400);
	assert_null(strstr(r.out, "Call-ID"));
	done(&r);
	/* no Via at all: nobody to answer, counted drop */
	r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: novia\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	done(&r);
}

static void test_505_501(void **state)
{
	struct run r = run("OPTIONS sip:bob@example.com SIP/3.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKv3\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: v3\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n");
	assert_reply(&r, 505);
	done(&r);
	r = run("FOO sip:bob@example.com SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKfoo\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
		"Call-ID: foo\r\nCSeq: 1 BAR\r\nMax-Forwards: 70\r\n\r\n");
	assert_reply(&r, 501);
	done(&r);
}

static void test_ack_of_our_reply_absorbed(void **state)
{
	const int64_t absorbed = metrics_value(proxy_counts.absorbed);
	struct run r = run("INVITE sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKack1\r\n"
			   "Proxy-Require: nope\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: ack-1\r\nCSeq: 4 INVITE\r\nMax-Forwards: 70\r\n\r\n");
	char tag[64];
	snprintf(tag, sizeof(tag), "%s", assert_reply(&r, 420));
	done(&r);
	char ack[1024];
	const char *fmt = "ACK sip:bob@example.com SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKack1\r\n"
			  "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=%s\r\n"
			  "Call-ID: ack-1\r\nCSeq: 4 ACK\r\nMax-Forwards: 70\r\n\r\n";
	snprintf(ack, sizeof(ack), fmt, tag);
	r = run(ack);
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	assert_int_equal(metrics_value(proxy_counts.absorbed), absorbed + 1);
	done(&r);
	/* an ACK with the callee's tag (a 2xx ACK or a downstream 4xx) is forwarded */
	snprintf(ack, sizeof(ack), fmt, "calleetag");
	r = run(ack);
	assert_int_equal(r.rc, STAGE_SENT);
	assert_int_equal(strncmp(r.out, "ACK sip:bob@example.com SIP/2.0\r\n", 33), 0);
	done(&r);
}

static void test_never_reply_to_ack(void **state)
{
	struct run r = run("ACK sip:bob@example.com SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKackmf\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\n"
			   "Call-ID: ackmf\r\nCSeq: 1 ACK\r\nMax-Forwards: 0\r\n\r\n");
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	done(&r);
	r = run("ACK tel:+1555 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKacktel\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\n"
		"Call-ID: acktel\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_DROP);
	assert_int_equal(r.t->out_len, 0);
	done(&r);
}

static void test_next_hop_trust(void **state)
{
	struct run r = run("MESSAGE sip:bob@other.net SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKtr1\r\n"
			   "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@other.net>\r\n"
			   "Call-ID: tr1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_true(r.t->next_hop_trusted); /* routes.outbound in 127/8 */
	done(&r);
	r = run("MESSAGE sip:bob@192.0.2.80 SIP/2.0\r\n"
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKtr2\r\n"
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@other.net>\r\n"
		"Call-ID: tr2\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n\r\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_false(r.t->next_hop_trusted);
	done(&r);
}

static void test_metrics_counted(void **state)
{
	/* The families exist and count: render and look for our labels. */
	struct run r = run(zero_mf);
	assert_reply(&r, 483);
	done(&r);
	static char buf[1 << 16];
	const size_t n = metrics_render(buf, sizeof(buf) - 1);
	assert_true(n < sizeof(buf) - 1);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "referee_responses_sent_total{code=\"483\"}"));
	assert_non_null(strstr(buf, "referee_forwarded_total{direction=\"request\"}"));
	assert_non_null(strstr(buf, "referee_drops_total{reason=\"reply_suppressed\"}"));
	assert_non_null(strstr(buf, "referee_acks_absorbed_total"));
}

/* SipHash-2-4 reference vectors (key 00..0f, message 00..n-1), whole and in pieces. */
static void test_siphash_vectors(void **state)
{
	const uint64_t k[2] = { 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull };
	uint8_t in[16];
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	assert_int_equal(proxy_siphash(k, in, 0), 0x726fdb47dd0e0e31ull);
	assert_int_equal(proxy_siphash(k, in, 8), 0x93f5f5799a932462ull);
	assert_int_equal(proxy_siphash(k, in, 15), 0xa129ca6149be45e5ull);
	struct proxy_hash h;
	proxy_hash_init(&h, k);
	proxy_hash_add(&h, in, 3);
	proxy_hash_add(&h, in + 3, 9);
	proxy_hash_add(&h, in + 12, 3);
	assert_int_equal(proxy_hash_final(&h), 0xa129ca6149be45e5ull);
	/* proxy_hash_u32 at every offset of the partial word hashes its little-endian bytes */
	for (unsigned off = 0; off < 8; off++) {
		struct proxy_hash a, b;
		const uint32_t v = 0x0c0b0a09u;
		proxy_hash_init(&a, k);
		proxy_hash_init(&b, k);
		proxy_hash_add(&a, in, off);
		proxy_hash_add(&b, in, off);
		proxy_hash_u32(&a, v);
		proxy_hash_add(&b, (const uint8_t[]){ 0x09, 0x0a, 0x0b, 0x0c }, 4);
		proxy_hash_add(&a, in + 13, 3);
		proxy_hash_add(&b, in + 13, 3);
		assert_int_equal(proxy_hash_final(&a), proxy_hash_final(&b));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_483_exact_reply, test_teardown),
		cmocka_unit_test_teardown(test_reply_retransmission_identical, test_teardown),
		cmocka_unit_test_teardown(test_reply_rport_and_received, test_teardown),
		cmocka_unit_test_teardown(test_ipv6_and_mapped_sources, test_teardown),
		cmocka_unit_test_teardown(test_options_to_us, test_teardown),
		cmocka_unit_test_teardown(test_416, test_teardown),
		cmocka_unit_test_teardown(test_420_unsupported, test_teardown),
		cmocka_unit_test_teardown(test_482_loop, test_teardown),
		cmocka_unit_test_teardown(test_400_missing_call_id, test_teardown),
		cmocka_unit_test_teardown(test_505_501, test_teardown),
		cmocka_unit_test_teardown(test_ack_of_our_reply_absorbed, test_teardown),
		cmocka_unit_test_teardown(test_never_reply_to_ack, test_teardown),
		cmocka_unit_test_teardown(test_next_hop_trust, test_teardown),
		cmocka_unit_test_teardown(test_metrics_counted, test_teardown),
		cmocka_unit_test(test_siphash_vectors),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
