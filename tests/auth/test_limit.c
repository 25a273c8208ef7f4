/* test_limit.c - the per-source failure limiter (SPEC §3 auth.failure_limit):
 * the count, independent sources, IPv4-mapped IPv6 counted as IPv4, a count
 * of 0 disabling it, and the end of the window (waits for one 1-second
 * window to pass: bounded at 3 s). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth_priv.h"
#include "now.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, unsigned short port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_count_and_sources(void **state)
{
	(void)state;
	struct cfg c = { 0 };
	c.auth.failure_limit.count = 3;
	c.auth.failure_limit.window = 3600;
	auth_limit_reset();
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	assert_false(auth_limit_is_over(&c, SA(a)));
	assert_false(auth_limit_fail(&c, SA(a)));
	assert_false(auth_limit_fail(&c, SA(a)));
	assert_false(auth_limit_is_over(&c, SA(a)));
	assert_true(auth_limit_fail(&c, SA(a))); /* the failure that reaches the count reports it once */
	assert_true(auth_limit_is_over(&c, SA(a)));
	assert_false(auth_limit_fail(&c, SA(a)));
	assert_true(auth_limit_is_over(&c, SA(a)));
	assert_false(auth_limit_is_over(&c, SA(b)));
	/* IPv4-mapped IPv6 is the same source, whatever the port */
	struct sockaddr_storage m = v6("::ffff:192.0.2.1", 40000);
	assert_true(auth_limit_is_over(&c, SA(m)));
	struct sockaddr_storage x = v6("2001:db8::1", 5060), y = v6("2001:db8::1", 5070), z = v6("2001:db8::2", 5060);
	for (int i = 0; i < 3; i++)
		auth_limit_fail(&c, SA(x));
	assert_true(auth_limit_is_over(&c, SA(y)));
	assert_false(auth_limit_is_over(&c, SA(z)));
	/* reset forgets everything */
	auth_limit_reset();
	assert_false(auth_limit_is_over(&c, SA(a)));
}

static void test_disabled(void **state)
{
	(void)state;
	struct cfg c = { 0 };
	c.auth.failure_limit.count = 0;
	c.auth.failure_limit.window = 60;
	struct sockaddr_storage a = v4("192.0.2.9");
	for (int i = 0; i < 100; i++)
		assert_false(auth_limit_fail(&c, SA(a)));
	assert_false(auth_limit_is_over(&c, SA(a)));
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void test_window_ends(void **state)
{
	(void)state;
	struct cfg c = { 0 };
	c.auth.failure_limit.count = 2;
	c.auth.failure_limit.window = 1;
	auth_limit_reset();
	struct sockaddr_storage a = v4("192.0.2.77");
	/* start right after a window boundary, so both failures land in one window */
	uint64_t s0 = now_mono_sec(); /* the limiter's clock */
	for (int i = 0; i < 300 && now_mono_sec() == s0; i++)
		sleep_ms(5);
	uint64_t s1 = now_mono_sec();
	auth_limit_fail(&c, SA(a));
	auth_limit_fail(&c, SA(a));
	assert_true(auth_limit_is_over(&c, SA(a)));
	assert_int_equal(now_mono_sec(), s1);
	/* the next window starts clean */
	for (int i = 0; i < 300 && now_mono_sec() == s1; i++)
		sleep_ms(5);
	assert_false(auth_limit_is_over(&c, SA(a)));
	assert_false(auth_limit_fail(&c, SA(a))); /* 1 of 2 again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_and_sources),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_window_ends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
