/* test_log_limit.c - log limiters (SPEC §6, issue 13): a limiter per event
 * AND key lets two distinct keys through within one second (each bad Redis
 * hash gets its line), swallows a repeat of the same key in that second and
 * reports it with the next line for that key, and caps the event's lines a
 * second however many keys come. The plain per-event limiter lets one line a
 * second through whatever the key (what hid the second bad hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* wait_second_start - just after a coarse-clock second began, so a test step
 * cannot straddle two seconds. */
static void wait_second_start(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	time_t s = ts.tv_sec;
	do {
		usleep(2000);
		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	} while (ts.tv_sec == s);
}

static void test_two_keys_same_second(void **state)
{
	(void)state;
	static struct log_limit_keyed lim;
	static struct log_limit plain;
	uint64_t sup = 99;
	wait_second_start();
	assert_true(log_limit_pass_key(&lim, "referee:user:bad@example.com", 28, &sup));
	assert_int_equal(sup, 0);
	assert_true(log_limit_pass_key(&lim, "referee:user:str@example.com", 28, &sup));
	assert_false(log_limit_pass_key(&lim, "referee:user:bad@example.com", 28, &sup));
	assert_false(log_limit_pass_key(&lim, "referee:user:bad@example.com", 28, &sup));
	/* the plain limiter: the second key in the same second is swallowed */
	assert_true(log_limit_pass(&plain, &sup));
	assert_false(log_limit_pass(&plain, &sup));
	/* next second: the repeated key passes again and says how many were swallowed */
	wait_second_start();
	assert_true(log_limit_pass_key(&lim, "referee:user:bad@example.com", 28, &sup));
	assert_int_equal(sup, 2);
}

static void test_cap_per_second(void **state)
{
	(void)state;
	static struct log_limit_keyed lim;
	uint64_t sup = 0;
	char key[32];
	unsigned passed = 0;
	wait_second_start();
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(key, sizeof(key), "referee:user:u%d@x", i);
		passed += log_limit_pass_key(&lim, key, (size_t)n, &sup);
	}
	assert_int_equal(passed, LOG_KEYED_PER_SEC);
	/* what the cap swallowed is reported with the next line that passes */
	wait_second_start();
	assert_true(log_limit_pass_key(&lim, "referee:user:next@x", 19, &sup));
	assert_true(sup >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_keys_same_second),
		cmocka_unit_test(test_cap_per_second),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
