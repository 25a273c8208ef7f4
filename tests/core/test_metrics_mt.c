/* test_metrics_mt.c - core/metrics.c: per-thread shards summed exactly,
 * shard reuse after threads exit, the text exposition format (HELP/TYPE,
 * label escaping, cumulative histogram buckets, _sum/_count) and the
 * "size needed" contract of metrics_render. Scrapes run while threads count
 * (named _mt: also runs under TSan). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

#define N_THREADS 4
#define N_ITER 200000

static const char *const colors[] = { "red", "a\"b\\c\nd", "blue" };
static unsigned c_colors, c_plain, g_depth, h_lat;

static int setup(void **state)
{
	(void)state;
	c_colors = metrics_counter("test_paint_total", "Paint used, by color", "color", colors, 3);
	c_plain = metrics_counter("test_plain_total", "A help line with a \\ and\na newline", NULL, NULL, 0);
	static const char *const workers[] = { "0", "1", "2", "3" };
	g_depth = metrics_gauge("test_depth", "Queue depth", "worker", workers, 4);
	static const double bounds[] = { 0.001, 0.01, 0.1 };
	h_lat = metrics_histogram("test_latency_seconds", "Latency", bounds, 3);
	return 0;
}

static void *counter_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	if (metrics_thread_init() < 0)
		return (void *)1;
	for (unsigned i = 0; i < N_ITER; i++) {
		metrics_inc(c_colors + (i % 3));
		metrics_add(c_plain, 2);
		/* 0.5 ms or 50 ms, in seconds or (odd threads: the hot path's call) in ns */
		if (i % 1000 == 0 && id % 2)
			metrics_observe_ns(h_lat, (i % 4000 == 0) ? 500000u : 50000000u);
		else if (i % 1000 == 0)
			metrics_observe(h_lat, (i % 4000 == 0) ? 0.0005 : 0.05);
	}
	metrics_set(g_depth + id, (int64_t)id * 10 - 5);
	return NULL;
}

/* value of the sample line that starts with @prefix, e.g. "test_plain_total " */
static long long sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, n) == 0)
			return strtoll(p + n, NULL, 10);
	fail_msg("no line starting with '%s'", prefix);
	return -1;
}

/* every line is "# HELP name text", "# TYPE name kind" or "name[{..}] number" */
static void check_format(const char *text)
{
	char line[512];
	const char *p = text;
	while (*p) {
		const char *e = strchr(p, '\n');
		assert_non_null(e);
		size_t len = (size_t)(e - p);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = e + 1;
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)
			continue;
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		char *end;
		strtod(sp + 1, &end);
		assert_true(*end == '\0' && end != sp + 1);
		for (char *q = line; q < sp && *q != '{'; q++)
			assert_true((*q >= 'a' && *q <= 'z') || *q == '_' || (*q >= '0' && *q <= '9'));
	}
}

static void test_threads_sum_and_render(void **state)
{
	(void)state;
	pthread_t th[N_THREADS];
	for (uintptr_t i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, counter_thread, (void *)i), 0);
	/* scrape while they count: totals only grow */
	static char buf[16384];
	long long last = 0;
	for (int i = 0; i < 20; i++) {
		size_t n = metrics_render(buf, sizeof(buf));
		assert_true(n < sizeof(buf));
		long long v = sample(buf, "test_plain_total ");
		assert_true(v >= last);
		last = v;
	}
	for (int i = 0; i < N_THREADS; i++) {
		void *rc;
		assert_int_equal(pthread_join(th[i], &rc), 0);
		assert_null(rc);
	}
	unsigned per_color = N_ITER / 3; /* 200000 = 3 * 66666 + 2: colors 0 and 1 get one more */
	assert_int_equal(metrics_value(c_colors), N_THREADS * (per_color + 1));
	assert_int_equal(metrics_value(c_colors + 1), N_THREADS * (per_color + 1));
	assert_int_equal(metrics_value(c_colors + 2), N_THREADS * per_color);
	assert_int_equal(metrics_value(c_plain), 2LL * N_THREADS * N_ITER);

	size_t n = metrics_render(buf, sizeof(buf));
	assert_true(n < sizeof(buf));
	assert_int_equal(strlen(buf), n);
	check_format(buf);
	assert_non_null(strstr(buf, "# HELP test_paint_total Paint used, by color\n# TYPE test_paint_total counter\n"));
	assert_non_null(strstr(buf, "# HELP test_plain_total A help line with a \\\\ and\\na newline\n"));
	assert_int_equal(sample(buf, "test_paint_total{color=\"red\"} "), N_THREADS * (per_color + 1));
	assert_int_equal(sample(buf, "test_paint_total{color=\"a\\\"b\\\\c\\nd\"} "), N_THREADS * (per_color + 1));
	assert_int_equal(sample(buf, "test_plain_total "), 2LL * N_THREADS * N_ITER);
	assert_non_null(strstr(buf, "# TYPE test_depth gauge\n"));
	assert_int_equal(sample(buf, "test_depth{worker=\"0\"} "), -5);
	assert_int_equal(sample(buf, "test_depth{worker=\"3\"} "), 25);
	/* 200 observations per thread: i % 4000 == 0 -> 50 fast ones, 150 slow ones */
	assert_non_null(strstr(buf, "# TYPE test_latency_seconds histogram\n"));
	assert_int_equal(sample(buf, "test_latency_seconds_bucket{le=\"0.001\"} "), N_THREADS * 50);
	assert_int_equal(sample(buf, "test_latency_seconds_bucket{le=\"0.01\"} "), N_THREADS * 50);
	assert_int_equal(sample(buf, "test_latency_seconds_bucket{le=\"0.1\"} "), N_THREADS * 200);
	assert_int_equal(sample(buf, "test_latency_seconds_bucket{le=\"+Inf\"} "), N_THREADS * 200);
	assert_int_equal(sample(buf, "test_latency_seconds_count "), N_THREADS * 200);
	const char *s = strstr(buf, "test_latency_seconds_sum ");
	assert_non_null(s);
	double sum = strtod(s + strlen("test_latency_seconds_sum "), NULL);
	double want = N_THREADS * (50 * 0.0005 + 150 * 0.05);
	assert_true(sum > want - 1e-6 && sum < want + 1e-6);
}

static void test_render_too_small(void **state)
{
	(void)state;
	char small[64];
	size_t need = metrics_render(small, sizeof(small));
	assert_true(need > sizeof(small));
	char *big = malloc(need + 1);
	assert_non_null(big);
	assert_int_equal(metrics_render(big, need + 1), need);
	assert_int_equal(strlen(big), need);
	assert_memory_equal(small, big, sizeof(small)); /* the prefix that fitted is right */
	free(big);
}

static void *short_thread(void *arg)
{
	(void)arg;
	if (metrics_thread_init() < 0)
		return (void *)1;
	metrics_inc(c_colors + 2);
	return NULL;
}

static void test_shards_reused_after_exit(void **state)
{
	(void)state;
	int64_t before = metrics_value(c_colors + 2);
	/* many more threads than METRICS_MAX_THREADS, one after the other */
	for (int i = 0; i < 3 * METRICS_MAX_THREADS; i++) {
		pthread_t th;
		void *rc;
		assert_int_equal(pthread_create(&th, NULL, short_thread, NULL), 0);
		assert_int_equal(pthread_join(th, &rc), 0);
		assert_null(rc);
	}
	assert_int_equal(metrics_value(c_colors + 2), before + 3 * METRICS_MAX_THREADS);
	/* a thread without a shard still counts (shared shard) */
	metrics_add(c_plain, 5);
	assert_int_equal(metrics_value(c_plain), 2LL * N_THREADS * N_ITER + 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_sum_and_render),
		cmocka_unit_test(test_render_too_small),
		cmocka_unit_test(test_shards_reused_after_exit),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
