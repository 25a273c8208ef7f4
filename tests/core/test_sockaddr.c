/* test_sockaddr.c - IP literals as struct sockaddr (core/sockaddr.c): what
 * the reader accepts and refuses (inet_pton's dotted quad: no leading zeros,
 * no part over 255, all four parts; IPv6 bare or bracketed, RFC 5118's extra
 * colon), the destinations never sent to, and the comparisons behind "is
 * this us?" (IPv4 against its IPv4-mapped form). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "sockaddr.h"

static bool from_ip(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	return sockaddr_from_ip(slice_from_cstr(text), port, ss, len);
}

static void assert_v4(const char *text, const char *want)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	assert_true(from_ip(text, 5060, &ss, &len));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
	assert_int_equal(ntohs(in4->sin_port), 5060);
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, want, &a), 1);
	assert_int_equal(in4->sin_addr.s_addr, a.s_addr);
}

static void assert_v6(const char *text, const char *want)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	assert_true(from_ip(text, 5061, &ss, &len));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(ntohs(in6->sin6_port), 5061);
	struct in6_addr a;
	assert_int_equal(inet_pton(AF_INET6, want, &a), 1);
	assert_memory_equal(&in6->sin6_addr, &a, sizeof(a));
}

static void test_ipv4_forms(void **state)
{
	(void)state;
	assert_v4("192.0.2.1", "192.0.2.1");
	assert_v4("0.0.0.0", "0.0.0.0");
	assert_v4("255.255.255.255", "255.255.255.255");
	assert_v4("10.0.0.10", "10.0.0.10");
	/* a slice is not NUL-terminated: only its bytes count */
	struct sockaddr_storage ss;
	socklen_t len;
	assert_true(sockaddr_from_ip(slice_make("10.1.2.3:5060", 8), 1, &ss, &len));
	assert_int_equal(((const struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(0x0a010203));
}

static void test_ipv4_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"01.2.3.4", "1.02.3.4", "1.2.3.004", "00.0.0.0", /* leading zeros */
		"256.1.1.1", "1.1.1.256", "1.1.1.1000",		   /* over 255 */
		"1.2.3", "1.2", "1", "1.2.3.", ".1.2.3", "1..2.3", /* missing parts */
		"1.2.3.4.", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4",    /* extra bytes */
		"", "a.b.c.d", "example.com", "1.2.3.x", "0x1.2.3.4",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		if (from_ip(bad[i], 5060, &ss, &len))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_ipv6_forms(void **state)
{
	(void)state;
	assert_v6("::1", "::1");
	assert_v6("[::1]", "::1");
	assert_v6("2001:db8::1", "2001:db8::1");
	assert_v6("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1");
	assert_v6("::", "::");
	assert_v6("::ffff:192.0.2.1", "::ffff:192.0.2.1");
	assert_v6("[fe80::1:2]", "fe80::1:2");
	/* RFC 5118 §4.10: a third colon in a row is an ABNF bug to tolerate */
	assert_v6("2001:db8:::192.0.2.1", "2001:db8::192.0.2.1");
	assert_v6("[2001:db8:::1]", "2001:db8::1");
}

static void test_ipv6_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"[::1", "::1]", "[]", "[", ":", "1:2:3:4:5:6:7:8:9", "2001:db8::g",
		"[2001:db8::1]:5060", "2001:db8::1%eth0",
		"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001", /* longer than any address */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		if (from_ip(bad[i], 5060, &ss, &len))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static bool bad_destination(const char *text, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	assert_true(from_ip(text, port, &ss, &len));
	return sockaddr_is_bad_destination((const struct sockaddr *)&ss);
}

static void test_bad_destinations(void **state)
{
	(void)state;
	assert_true(bad_destination("0.0.0.0", 5060));	       /* unspecified */
	assert_true(bad_destination("255.255.255.255", 5060)); /* broadcast */
	assert_true(bad_destination("224.0.0.1", 5060));       /* multicast 224.0.0.0/4 */
	assert_true(bad_destination("239.255.255.255", 5060));
	assert_true(bad_destination("192.0.2.1", 0)); /* port 0 */
	assert_true(bad_destination("::", 5060));
	assert_true(bad_destination("ff02::1", 5060));
	assert_true(bad_destination("[ff05::1:3]", 5060));
	assert_true(bad_destination("2001:db8::1", 0));
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_true(sockaddr_is_bad_destination((const struct sockaddr *)&un));

	assert_false(bad_destination("192.0.2.1", 5060));
	assert_false(bad_destination("223.255.255.255", 5060)); /* just below multicast */
	assert_false(bad_destination("240.0.0.1", 5060));       /* reserved, not multicast */
	assert_false(bad_destination("127.0.0.1", 1));
	assert_false(bad_destination("::1", 5060));
	assert_false(bad_destination("2001:db8::1", 65535));
	assert_false(bad_destination("::ffff:192.0.2.1", 5060));
}

static struct sockaddr_storage sa_of(const char *text, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	assert_true(from_ip(text, port, &ss, &len));
	return ss;
}

static void test_same_ip_port_mapped(void **state)
{
	(void)state;
	const struct sockaddr_storage v4 = sa_of("192.0.2.1", 5060);
	const struct sockaddr_storage v4_other_port = sa_of("192.0.2.1", 5070);
	const struct sockaddr_storage v4_other = sa_of("192.0.2.2", 5060);
	const struct sockaddr_storage mapped = sa_of("::ffff:192.0.2.1", 5060);
	const struct sockaddr_storage mapped_other = sa_of("::ffff:192.0.2.2", 5060);
	const struct sockaddr_storage v6 = sa_of("2001:db8::1", 5060);
	const struct sockaddr_storage v6_same = sa_of("[2001:db8:0::1]", 9);
	const struct sockaddr_storage v6_other = sa_of("2001:db8::2", 5060);
	/* an IPv6 address whose last 4 bytes are 192.0.2.1, but not mapped */
	const struct sockaddr_storage v6_tail = sa_of("::c000:201", 5060);

	assert_true(sockaddr_same_ip(&v4, &v4_other_port));
	assert_false(sockaddr_same_ip(&v4, &v4_other));
	assert_true(sockaddr_same_ip(&v4, &mapped));
	assert_true(sockaddr_same_ip(&mapped, &v4));
	assert_false(sockaddr_same_ip(&v4, &mapped_other));
	assert_false(sockaddr_same_ip(&mapped_other, &v4));
	assert_true(sockaddr_same_ip(&v6, &v6_same));
	assert_false(sockaddr_same_ip(&v6, &v6_other));
	assert_false(sockaddr_same_ip(&v4, &v6_tail));
	assert_false(sockaddr_same_ip(&v4, &v6));
	struct sockaddr_storage un;
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	assert_false(sockaddr_same_ip(&un, &un));

	assert_int_equal(sockaddr_port(&v4), 5060);
	assert_int_equal(sockaddr_port(&v4_other_port), 5070);
	assert_int_equal(sockaddr_port(&v6_same), 9);
	assert_int_equal(sockaddr_port(&un), 0);

	const uint8_t *b = sockaddr_v4_mapped(&mapped);
	assert_non_null(b);
	assert_memory_equal(b, "\xc0\x00\x02\x01", 4);
	assert_null(sockaddr_v4_mapped(&v4));
	assert_null(sockaddr_v4_mapped(&v6));
	assert_null(sockaddr_v4_mapped(&v6_tail));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_forms),
		cmocka_unit_test(test_ipv4_refused),
		cmocka_unit_test(test_ipv6_forms),
		cmocka_unit_test(test_ipv6_refused),
		cmocka_unit_test(test_bad_destinations),
		cmocka_unit_test(test_same_ip_port_mapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
