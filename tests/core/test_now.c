/* test_now.c - the clocks (core/now.c): wall seconds agree with time(2), the
 * monotonic ones never go back and agree with each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "now.h"

static void test_wall_clock(void **state)
{
	(void)state;
	uint64_t before = (uint64_t)time(NULL);
	uint64_t now = now_unix_sec();
	uint64_t after = (uint64_t)time(NULL);
	/* the coarse clock may lag time(2) by one tick across a second boundary */
	assert_true(now + 1 >= before);
	assert_true(now <= after);
}

static void test_monotonic_clocks(void **state)
{
	(void)state;
	uint64_t s0 = now_mono_sec(), ns0 = now_mono_ns(), ms0 = now_mono_ms();
	assert_true(ms0 >= ns0 / 1000000);
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	uint64_t ns1 = now_mono_ns(), ms1 = now_mono_ms(), s1 = now_mono_sec(), ns2 = now_mono_ns();
	assert_true(ns1 >= ns0 + 20 * 1000 * 1000);
	assert_true(ms1 >= ms0 + 20);
	assert_true(s1 >= s0);
	/* the coarse seconds are the precise clock's seconds, up to one tick behind */
	assert_true(s1 <= ns2 / 1000000000);
	assert_true(s1 + 1 >= ns1 / 1000000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wall_clock),
		cmocka_unit_test(test_monotonic_clocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
