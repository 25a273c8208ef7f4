/* test_dns.c - DNS answers as hostile input (core/dns_msg.c) and SRV target
 * selection (core/dns_select.c): well-formed A/AAAA/SRV/NAPTR answers with
 * compressed names decode exactly; every truncation, pointer loops, forward
 * pointers, oversized labels and names, lying lengths, bad characters and
 * record floods are refused or bounded without reading past the buffer
 * (ASan); NXDOMAIN carries the SOA minimum for negative caching. Selection
 * takes the lowest priority only, spreads by weight, keeps a key on one
 * target and honours the address family. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest.h"
#include "dns.h"

/* ---------------------------------------------------------------- a message builder */

struct msg {
	uint8_t b[4096];
	size_t n;
};

static void put8(struct msg *m, unsigned v) { m->b[m->n++] = (uint8_t)v; }
static void put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 0xff);
}
static void put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}
/* a name in labels ("a.b.c"), uncompressed */
static void put_name(struct msg *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		put8(m, (unsigned)l);
		memcpy(m->b + m->n, name, l);
		m->n += l;
		name += l + (dot ? 1 : 0);
	}
	put8(m, 0);
}
static void put_ptr(struct msg *m, unsigned off) { put16(m, 0xc000 | off); }

static void header(struct msg *m, unsigned flags, unsigned qd, unsigned an, unsigned ns)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, flags);
	put16(m, qd);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
}

/* header + question for @name/@type; the question name sits at offset 12 */
static void question(struct msg *m, unsigned flags, unsigned an, unsigned ns, const char *name,
		     unsigned type)
{
	header(m, flags, 1, an, ns);
	put_name(m, name);
	put16(m, type);
	put16(m, 1);
}

/* an RR header with the owner as a pointer to the question name */
static size_t rr_begin(struct msg *m, unsigned type, uint32_t ttl)
{
	put_ptr(m, 12);
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	const size_t at = m->n;
	put16(m, 0); /* rdlength, patched by rr_end */
	return at;
}
static void rr_end(struct msg *m, size_t at)
{
	const size_t len = m->n - at - 2;
	m->b[at] = (uint8_t)(len >> 8);
	m->b[at + 1] = (uint8_t)len;
}

static void srv_answer(struct msg *m)
{
	question(m, 0x8180, 3, 0, "_sip._udp.example.com", DNS_T_SRV);
	size_t at = rr_begin(m, DNS_T_SRV, 300);
	put16(m, 10);
	put16(m, 60);
	put16(m, 5060);
	const size_t pbx1 = m->n;
	put_name(m, "PBX1.example.com");
	rr_end(m, at);
	at = rr_begin(m, DNS_T_SRV, 120);
	put16(m, 10);
	put16(m, 20);
	put16(m, 5070);
	put8(m, 4);
	memcpy(m->b + m->n, "pbx2", 4);
	m->n += 4;
	put_ptr(m, (unsigned)pbx1 + 5); /* "example.com" inside PBX1.example.com */
	rr_end(m, at);
	at = rr_begin(m, DNS_T_SRV, 600);
	put16(m, 20);
	put16(m, 0);
	put16(m, 5080);
	put_ptr(m, (unsigned)pbx1);
	rr_end(m, at);
}

static void test_srv(void **state)
{
	(void)state;
	struct msg m;
	srv_answer(&m);
	struct dns_answer a;
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_SRV, &a), DNS_OK);
	assert_int_equal(a.n, 3);
	assert_int_equal(a.min_ttl, 120);
	assert_int_equal(a.rr[0].u.srv.priority, 10);
	assert_int_equal(a.rr[0].u.srv.weight, 60);
	assert_int_equal(a.rr[0].u.srv.port, 5060);
	assert_string_equal(a.rr[0].u.srv.target, "pbx1.example.com"); /* lowercased */
	assert_string_equal(a.rr[1].u.srv.target, "pbx2.example.com");
	assert_int_equal(a.rr[2].u.srv.priority, 20);
	assert_string_equal(a.rr[2].u.srv.target, "pbx1.example.com");
	/* asked for A: SRV records are skipped, not an error */
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_A, &a), DNS_OK);
	assert_int_equal(a.n, 0);
	assert_int_equal(a.skipped, 3);
}

static void test_naptr_and_addresses(void **state)
{
	(void)state;
	struct msg m;
	question(&m, 0x8180, 2, 0, "example.com", DNS_T_NAPTR);
	size_t at = rr_begin(&m, DNS_T_NAPTR, 3600);
	put16(&m, 10);
	put16(&m, 50);
	put8(&m, 1);
	put8(&m, 'S');
	put8(&m, 7);
	memcpy(m.b + m.n, "SIP+D2U", 7);
	m.n += 7;
	put8(&m, 0); /* empty regexp */
	put_name(&m, "_sip._udp.example.com");
	rr_end(&m, at);
	at = rr_begin(&m, DNS_T_NAPTR, 60);
	put16(&m, 20);
	put16(&m, 50);
	put8(&m, 1);
	put8(&m, 's');
	put8(&m, 8);
	memcpy(m.b + m.n, "SIPS+D2T", 8);
	m.n += 8;
	put8(&m, 0);
	put_name(&m, "_sips._tcp.example.com");
	rr_end(&m, at);
	struct dns_answer a;
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_NAPTR, &a), DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.min_ttl, 60);
	assert_string_equal(a.rr[0].u.naptr.flags, "s");
	assert_string_equal(a.rr[0].u.naptr.service, "sip+d2u");
	assert_string_equal(a.rr[0].u.naptr.replacement, "_sip._udp.example.com");
	assert_int_equal(a.rr[1].u.naptr.order, 20);

	question(&m, 0x8180, 2, 0, "pbx1.example.com", DNS_T_A);
	at = rr_begin(&m, DNS_T_A, 30);
	put32(&m, 0x7f000005);
	rr_end(&m, at);
	at = rr_begin(&m, DNS_T_A, 0x80000001u); /* RFC 2181 §8: read as 0 */
	put32(&m, 0x7f000006);
	rr_end(&m, at);
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_A, &a), DNS_OK);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.rr[0].u.a[3], 5);
	assert_int_equal(a.min_ttl, 0);

	question(&m, 0x8180, 1, 0, "pbx1.example.com", DNS_T_AAAA);
	at = rr_begin(&m, DNS_T_AAAA, 30);
	for (int i = 0; i < 15; i++)
		put8(&m, 0);
	put8(&m, 1);
	rr_end(&m, at);
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_AAAA, &a), DNS_OK);
	assert_int_equal(a.rr[0].u.aaaa[15], 1);
}

static void test_nxdomain_soa(void **state)
{
	(void)state;
	struct msg m;
	question(&m, 0x8183, 0, 1, "nope.example.com", DNS_T_NAPTR);
	size_t at = rr_begin(&m, 6 /* SOA */, 900);
	put_name(&m, "ns.example.com");
	put_name(&m, "hostmaster.example.com");
	put32(&m, 1);
	put32(&m, 3600);
	put32(&m, 600);
	put32(&m, 86400);
	put32(&m, 4); /* minimum */
	rr_end(&m, at);
	struct dns_answer a;
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_NAPTR, &a), DNS_E_NXDOMAIN);
	assert_int_equal(a.neg_ttl, 4);
	m.b[3] = 0x82; /* SERVFAIL */
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_NAPTR, &a), DNS_E_SERVFAIL);
}

/* every prefix of good answers: refused or parsed, never a read past the end (ASan) */
static void test_truncations(void **state)
{
	(void)state;
	struct msg m;
	srv_answer(&m);
	struct dns_answer a;
	for (size_t n = 0; n < m.n; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
		memcpy(copy, m.b, n);
		assert_int_equal(dns_answer_parse(copy, n, DNS_T_SRV, &a), DNS_E_MALFORMED);
		free(copy);
	}
	assert_int_equal(dns_answer_parse(NULL, 0, DNS_T_SRV, &a), DNS_E_MALFORMED);
}

static void expect_malformed(struct msg *m, uint16_t type, const char *what)
{
	struct dns_answer a;
	uint8_t *copy = malloc(m->n);
	memcpy(copy, m->b, m->n);
	const enum dns_error e = dns_answer_parse(copy, m->n, type, &a);
	free(copy);
	if (e != DNS_E_MALFORMED)
		fail_msg("%s: got %s, want malformed", what, dns_error_names[e]);
}

static void test_hostile(void **state)
{
	(void)state;
	struct msg m;
	/* a pointer to itself in the question */
	header(&m, 0x8180, 1, 0, 0);
	put_ptr(&m, 12);
	put16(&m, 1);
	put16(&m, 1);
	expect_malformed(&m, DNS_T_A, "self pointer");
	/* a pointer forward */
	header(&m, 0x8180, 1, 0, 0);
	put_ptr(&m, 20);
	put16(&m, 1);
	put16(&m, 1);
	put_name(&m, "a.example");
	expect_malformed(&m, DNS_T_A, "forward pointer");
	/* two names pointing at each other (a loop through backward-then-forward) */
	header(&m, 0x8180, 2, 0, 0);
	put8(&m, 1);
	put8(&m, 'a');
	put_ptr(&m, 16); /* at 12: "a" then -> 16 (forward) */
	put8(&m, 1);
	put8(&m, 'b');
	put_ptr(&m, 12);
	expect_malformed(&m, DNS_T_A, "pointer loop");
	/* a 64-byte label */
	header(&m, 0x8180, 1, 0, 0);
	put8(&m, 64);
	for (int i = 0; i < 64; i++)
		put8(&m, 'a');
	put8(&m, 0);
	put16(&m, 1);
	put16(&m, 1);
	expect_malformed(&m, DNS_T_A, "64-byte label");
	/* a name of 300 bytes in 50 labels */
	header(&m, 0x8180, 1, 0, 0);
	for (int l = 0; l < 50; l++) {
		put8(&m, 5);
		for (int i = 0; i < 5; i++)
			put8(&m, 'x');
	}
	put8(&m, 0);
	put16(&m, 1);
	put16(&m, 1);
	expect_malformed(&m, DNS_T_A, "300-byte name");
	/* a NUL and a dot inside labels */
	question(&m, 0x8180, 0, 0, "bad.example", DNS_T_A);
	m.b[13] = 0;
	expect_malformed(&m, DNS_T_A, "NUL in a label");
	question(&m, 0x8180, 0, 0, "bad.example", DNS_T_A);
	m.b[14] = '.';
	expect_malformed(&m, DNS_T_A, "dot in a label");
	/* rdlength past the end, A of 5 bytes, SRV whose name overruns its rdata */
	question(&m, 0x8180, 1, 0, "x.example", DNS_T_A);
	size_t at = rr_begin(&m, DNS_T_A, 1);
	put32(&m, 0x7f000001);
	rr_end(&m, at);
	m.b[at + 1] = 200;
	expect_malformed(&m, DNS_T_A, "rdlength past the end");
	question(&m, 0x8180, 1, 0, "x.example", DNS_T_A);
	at = rr_begin(&m, DNS_T_A, 1);
	put32(&m, 0x7f000001);
	put8(&m, 9);
	rr_end(&m, at);
	expect_malformed(&m, DNS_T_A, "A of 5 bytes");
	question(&m, 0x8180, 1, 0, "_sip._udp.x.example", DNS_T_SRV);
	at = rr_begin(&m, DNS_T_SRV, 1);
	put16(&m, 1);
	put16(&m, 1);
	put16(&m, 5060);
	put_name(&m, "pbx.x.example");
	rr_end(&m, at);
	m.b[at + 1] = (uint8_t)(m.b[at + 1] - 3); /* rdata ends inside the name */
	m.n -= 0;
	expect_malformed(&m, DNS_T_SRV, "SRV name past its rdata");
	/* NAPTR character-string longer than its rdata */
	question(&m, 0x8180, 1, 0, "x.example", DNS_T_NAPTR);
	at = rr_begin(&m, DNS_T_NAPTR, 1);
	put16(&m, 1);
	put16(&m, 1);
	put8(&m, 200);
	put8(&m, 's');
	rr_end(&m, at);
	expect_malformed(&m, DNS_T_NAPTR, "NAPTR string past its rdata");
	/* a query, not a response */
	question(&m, 0x0100, 0, 0, "x.example", DNS_T_A);
	expect_malformed(&m, DNS_T_A, "QR bit clear");
	/* 65535 questions announced, one present */
	question(&m, 0x8180, 0, 0, "x.example", DNS_T_A);
	m.b[4] = m.b[5] = 0xff;
	expect_malformed(&m, DNS_T_A, "question count lies");
}

static void test_flood_bounded(void **state)
{
	(void)state;
	struct msg m;
	question(&m, 0x8180, 40, 0, "x.example", DNS_T_A);
	for (unsigned i = 0; i < 40; i++) {
		size_t at = rr_begin(&m, DNS_T_A, 100 + i);
		put32(&m, 0x0a000000u + i);
		rr_end(&m, at);
	}
	struct dns_answer a;
	assert_int_equal(dns_answer_parse(m.b, m.n, DNS_T_A, &a), DNS_E_OVERFLOW);
	assert_int_equal(a.n, DNS_MAX_RECORDS);
	assert_int_equal(a.skipped, 40 - DNS_MAX_RECORDS);
	assert_int_equal(a.min_ttl, 100);
}

/* random bytes after a valid header: nothing but error codes (and ASan quiet) */
static void test_garbage(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ull;
	struct dns_answer a;
	for (int round = 0; round < 20000; round++) {
		uint8_t buf[200];
		const size_t n = 12 + (size_t)(x % 188);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		buf[2] |= 0x80;
		buf[4] = 0;
		buf[5] = (uint8_t)(x & 3);
		buf[6] = 0;
		buf[7] = (uint8_t)(x >> 8 & 7);
		uint8_t *copy = malloc(n);
		memcpy(copy, buf, n);
		const enum dns_error e = dns_answer_parse(copy, n, (x >> 20) & 1 ? DNS_T_SRV : DNS_T_A, &a);
		free(copy);
		assert_true(e < DNS_E_COUNT);
		assert_true(a.n <= DNS_MAX_RECORDS);
	}
}

/* ---------------------------------------------------------------- selection */

static void target(struct dns_targets *ts, const char *ip, uint16_t port, uint16_t prio, uint16_t weight)
{
	struct dns_target *t = &ts->t[ts->n++];
	memset(t, 0, sizeof(*t));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
		t->salen = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&t->sa;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
		t->salen = sizeof(*in);
	}
	t->priority = prio;
	t->weight = weight;
	t->seed = (uint64_t)ts->n * 0x9e3779b97f4a7c15ull + port;
}

static void test_pick(void **state)
{
	(void)state;
	struct dns_targets ts = { 0 };
	target(&ts, "10.0.0.9", 5060, 20, 100); /* backup: never while priority 10 exists */
	target(&ts, "10.0.0.1", 5060, 10, 3);
	target(&ts, "10.0.0.2", 5060, 10, 1);
	target(&ts, "2001:db8::1", 5060, 5, 1); /* best priority, but IPv6 */
	unsigned count[4] = { 0 };
	for (unsigned i = 0; i < 40000; i++) {
		char cid[32];
		int n = snprintf(cid, sizeof(cid), "%u@x", i);
		const uint64_t key = dest_key(slice_make(cid, (size_t)n));
		const int k = dns_pick(&ts, key, AF_INET);
		assert_true(k >= 0);
		assert_int_equal(dns_pick(&ts, key, AF_INET), k); /* sticky */
		count[k]++;
		assert_int_equal(dns_pick(&ts, key, AF_INET6), 3);
	}
	assert_int_equal(count[0], 0);
	assert_int_equal(count[3], 0);
	const double share = (double)count[1] / 40000;
	if (share < 0.72 || share > 0.78)
		fail_msg("weight 3 of 4 got %.3f of the requests", share);
	/* weight 0 next to weight 1: rarely, but it exists */
	struct dns_targets z = { 0 };
	target(&z, "10.0.0.1", 5060, 1, 0);
	target(&z, "10.0.0.2", 5060, 1, 1);
	unsigned zero = 0;
	for (unsigned i = 0; i < 20000; i++)
		zero += dns_pick(&z, (uint64_t)i * 0x9e3779b97f4a7c15ull, AF_INET) == 0;
	assert_true(zero > 0 && zero < 600);
	struct dns_targets none = { 0 };
	assert_int_equal(dns_pick(&none, 1, AF_INET), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_srv),	     cmocka_unit_test(test_naptr_and_addresses),
		cmocka_unit_test(test_nxdomain_soa), cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_hostile),	     cmocka_unit_test(test_flood_bounded),
		cmocka_unit_test(test_garbage),	     cmocka_unit_test(test_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
