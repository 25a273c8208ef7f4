/* test_flood.c - flood protection (SPEC §13): a source gets `burst` requests
 * at once and `rate` a second after that; past it its requests are dropped
 * and counted (referee_flood_drops_total), with one log line per source per
 * minute; other sources, trusted sources and responses are never touched. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "flood.h"
#include "sip.h"
#include "txn.h"

static struct cfg cfg;

/* microseconds of CLOCK_MONOTONIC, as the limiter counts them, @ahead from now */
static uint64_t mono_us_ahead(uint64_t ahead)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000 + ahead;
}

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

static int setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.limits.source_rate.rate = 200;
	cfg.limits.source_rate.burst = 400;
	cfg.limits.sources_max = 4096;
	assert_int_equal(cfg_cidr_parse("10.9.0.0/16", &cfg.trusted[0]), 0);
	cfg.n_trusted = 1;
	return flood_init(&cfg);
}

static int teardown(void **state)
{
	(void)state;
	flood_fini();
	return 0;
}

static void test_bucket_burst_then_rate(void **state)
{
	(void)state;
	struct sockaddr_storage a = v4("192.0.2.10", 5060), b = v4("192.0.2.11", 5060);
	const uint64_t t0 = mono_us_ahead(10000000);
	unsigned ok = 0;
	for (int i = 0; i < 1000; i++)
		ok += flood_check((struct sockaddr *)&a, t0, 200, 400);
	assert_int_equal(ok, 400); /* the burst, then nothing at the same instant */
	/* another source is not affected, and another port of the same address is the same source */
	assert_true(flood_check((struct sockaddr *)&b, t0, 200, 400));
	struct sockaddr_storage a2 = v4("192.0.2.10", 40000);
	assert_false(flood_check((struct sockaddr *)&a2, t0, 200, 400));
	/* 200/s: one more every 5 ms */
	assert_false(flood_check((struct sockaddr *)&a, t0 + 4000, 200, 400));
	assert_true(flood_check((struct sockaddr *)&a, t0 + 5100, 200, 400));
	assert_false(flood_check((struct sockaddr *)&a, t0 + 5200, 200, 400));
	/* over one second at a steady 1000/s: about 200 get through */
	ok = 0;
	for (int i = 1; i <= 1000; i++)
		ok += flood_check((struct sockaddr *)&a, t0 + 10000 + (uint64_t)i * 1000, 200, 400);
	assert_true(ok >= 195 && ok <= 205);
	/* after two idle seconds the bucket is full again */
	ok = 0;
	for (int i = 0; i < 1000; i++)
		ok += flood_check((struct sockaddr *)&a, t0 + 4000000, 200, 400);
	assert_int_equal(ok, 400);
	/* an IPv4-mapped IPv6 source is the IPv4 one */
	struct sockaddr_storage m;
	memset(&m, 0, sizeof(m));
	struct sockaddr_in6 *m6 = (struct sockaddr_in6 *)&m;
	m6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.10", &m6->sin6_addr), 1);
	assert_false(flood_check((struct sockaddr *)&m, t0 + 4000000, 200, 400));
}

static uint64_t rx_at;

static struct txn *request_from(const char *ip, const char *text)
{
	static struct txn t;
	memset(&t, 0, sizeof(t));
	size_t n = strlen(text);
	memcpy(t.rx, text, n);
	t.rx_len = (uint32_t)n;
	t.parse_rc = sip_parse(t.rx, t.rx_len, &t.msg);
	t.src = v4(ip, 5060);
	t.srclen = sizeof(struct sockaddr_in);
	t.cfg = &cfg;
	t.rx_ns = rx_at; /* one instant: no token is earned meanwhile */
	return &t;
}

static const char options_req[] = "OPTIONS sip:x@example.com SIP/2.0\r\n"
				   "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK1\r\n"
				   "From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\n"
				   "Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
static const char response[] = "SIP/2.0 200 OK\r\n"
			       "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK1\r\n"
			       "From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>;tag=2\r\n"
			       "Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

static void test_admit_counts_logs_exempts(void **state)
{
	(void)state;
	char logpath[] = "/tmp/referee-flood-log.XXXXXX";
	int logfd = mkstemp(logpath);
	assert_true(logfd >= 0);
	int saved = dup(STDERR_FILENO);
	dup2(logfd, STDERR_FILENO);
	struct flood_stats before, after;
	flood_stats_get(&before);
	rx_at = mono_us_ahead(50000000) * 1000;
	unsigned ok = 0;
	for (int i = 0; i < 1000; i++)
		ok += flood_admit(request_from("192.0.2.20", options_req));
	/* responses from that very source still pass */
	unsigned resp_ok = 0;
	for (int i = 0; i < 100; i++)
		resp_ok += flood_admit(request_from("192.0.2.20", response));
	/* so do requests from a trusted source, however many */
	unsigned trusted_ok = 0;
	for (int i = 0; i < 1000; i++)
		trusted_ok += flood_admit(request_from("10.9.1.1", options_req));
	/* and garbage counts as a request: limited too */
	unsigned junk_ok = 0;
	for (int i = 0; i < 1000; i++)
		junk_ok += flood_admit(request_from("192.0.2.21", "\x01\x02 not sip at all"));
	flood_stats_get(&after);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char logbuf[8192] = "";
	ssize_t got = pread(logfd, logbuf, sizeof(logbuf) - 1, 0);
	close(logfd);
	unlink(logpath);
	logbuf[got > 0 ? got : 0] = '\0';
	print_message("log:\n%s", logbuf);
	assert_int_equal(ok, 400);
	assert_int_equal(resp_ok, 100);
	assert_int_equal(trusted_ok, 1000);
	assert_int_equal(junk_ok, 400);
	assert_int_equal(after.drops - before.drops, 600 + 600);
	/* one line per source per minute, naming it */
	unsigned lines = 0;
	for (const char *p = logbuf; (p = strstr(p, "warn flood:")); p++)
		lines++;
	assert_int_equal(lines, 2);
	assert_non_null(strstr(logbuf, "src=192.0.2.20 "));
	assert_non_null(strstr(logbuf, "src=192.0.2.21 "));
}

static void test_table_bounded(void **state)
{
	(void)state;
	/* far more sources than slots: memory stays what flood_init allocated, and
	 * a source seen a moment ago is still limited when it comes back */
	struct flood_stats st;
	flood_stats_get(&st);
	assert_true(st.sources_max >= 4096 && st.sources_max < 2 * 4096 + 2);
	const uint64_t t0 = mono_us_ahead(100000000);
	struct sockaddr_storage hot = v4("198.51.100.1", 5060);
	for (int i = 0; i < 400; i++)
		assert_true(flood_check((struct sockaddr *)&hot, t0, 200, 400));
	char ip[32];
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "203.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage s = v4(ip, 5060);
		(void)flood_check((struct sockaddr *)&s, t0 + 1 + i, 200, 400);
	}
	/* 100 000 one-request sources are idler than the hot one: its set kept it, so
	 * 100 ms later it has earned 20 requests, not a fresh burst of 400 */
	unsigned ok = 0;
	for (int i = 0; i < 1000; i++)
		ok += flood_check((struct sockaddr *)&hot, t0 + 100001, 200, 400);
	assert_true(ok >= 19 && ok <= 21);
}

/* a reload that changes limits.sources_max rebuilds the table at the new size and
 * carries the sources over: one at its limit stays limited, growing and shrinking */
static void test_reload_resizes(void **state)
{
	(void)state;
	const uint64_t t0 = mono_us_ahead(200000000);
	struct sockaddr_storage hot = v4("198.51.100.77", 5060), fresh = v4("198.51.100.78", 5060);
	unsigned ok = 0;
	for (int i = 0; i < 401; i++)
		ok += flood_check((struct sockaddr *)&hot, t0, 200, 400);
	assert_int_equal(ok, 400);
	struct cfg big = cfg, small = cfg;
	big.limits.sources_max = 100000;
	small.limits.sources_max = 16;
	struct flood_stats st;
	assert_int_equal(flood_reload(&big), 0);
	flood_stats_get(&st);
	assert_int_equal(st.sources_max, 131072);
	assert_false(flood_check((struct sockaddr *)&hot, t0, 200, 400));
	assert_true(flood_check((struct sockaddr *)&fresh, t0, 200, 400));
	assert_int_equal(flood_reload(&small), 0);
	flood_stats_get(&st);
	assert_int_equal(st.sources_max, 16);
	assert_false(flood_check((struct sockaddr *)&hot, t0, 200, 400)); /* the most recent TATs win */
	assert_int_equal(flood_reload(&small), 0); /* same size: nothing to do */
	assert_int_equal(flood_reload(&cfg), 0);
	flood_stats_get(&st);
	assert_int_equal(st.sources_max, 4096);
	assert_false(flood_check((struct sockaddr *)&hot, t0, 200, 400));
	/* 5 ms later it has earned one request, not a new burst */
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += flood_check((struct sockaddr *)&hot, t0 + 5000, 200, 400);
	assert_int_equal(ok, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_admit_counts_logs_exempts),
		cmocka_unit_test(test_table_bounded),
		cmocka_unit_test(test_reload_resizes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
