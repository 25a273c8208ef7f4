/* test_ring_mt.c - core/ring.h: argument checks, full/empty behaviour, batch
 * operations, 32-bit index wrap-around, and a two-thread stress run of
 * sequenced items through a small ring (every item arrives once, in order).
 * Named _mt: it also runs under TSan. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "ring.h"

#define STRESS_ITEMS (1u << 21)
#define STRESS_RING 64

static void *item(uintptr_t v)
{
	return (void *)v;
}

static void test_init_checks(void **state)
{
	(void)state;
	struct ring r;
	void *slots[8];
	assert_int_equal(ring_init(&r, slots, 0), -EINVAL);
	assert_int_equal(ring_init(&r, slots, 1), -EINVAL);
	assert_int_equal(ring_init(&r, slots, 6), -EINVAL);
	assert_int_equal(ring_init(&r, NULL, 8), -EINVAL);
	assert_int_equal(ring_init(&r, slots, 8), 0);
	assert_int_equal(ring_capacity(&r), 8);
	assert_null(ring_new(3));
	struct ring *n = ring_new(1024);
	assert_non_null(n);
	if (!n)
		return; /* cmocka asserts are not noreturn; keeps GCC -O2 flow analysis quiet */
	assert_int_equal((uintptr_t)n % RING_CACHE_LINE, 0);
	assert_int_equal(ring_capacity(n), 1024);
	ring_free(n);
}

static void test_full_and_empty(void **state)
{
	(void)state;
	struct ring *r = ring_new(8);
	assert_non_null(r);
	if (!r)
		return; /* cmocka asserts are not noreturn; keeps GCC -O2 flow analysis quiet */
	assert_true(ring_is_empty(r));
	assert_null(ring_pop(r));
	for (uintptr_t i = 1; i <= 8; i++)
		assert_true(ring_push(r, item(i)));
	assert_false(ring_push(r, item(99))); /* full: refused, nothing changed */
	assert_int_equal(ring_count(r), 8);
	assert_false(ring_is_empty(r));
	for (uintptr_t i = 1; i <= 8; i++)
		assert_ptr_equal(ring_pop(r), item(i));
	assert_null(ring_pop(r));
	assert_true(ring_is_empty(r));
	assert_int_equal(ring_count(r), 0);
	ring_free(r);
}

static void test_batches(void **state)
{
	(void)state;
	struct ring *r = ring_new(16);
	void *in[20], *out[20];
	for (uintptr_t i = 0; i < 20; i++)
		in[i] = item(i + 1);
	assert_int_equal(ring_push_batch(r, in, 10), 10);
	/* only 6 of the next 10 fit: a prefix is taken */
	assert_int_equal(ring_push_batch(r, in + 10, 10), 6);
	assert_int_equal(ring_push_batch(r, in, 1), 0);
	assert_int_equal(ring_pop_batch(r, out, 4), 4);
	for (unsigned i = 0; i < 4; i++)
		assert_ptr_equal(out[i], in[i]);
	assert_int_equal(ring_push_batch(r, in + 16, 4), 4); /* wraps around the slot array */
	assert_int_equal(ring_pop_batch(r, out, 20), 16);
	for (unsigned i = 0; i < 16; i++)
		assert_ptr_equal(out[i], in[i + 4]);
	assert_int_equal(ring_pop_batch(r, out, 20), 0);
	ring_free(r);
}

static void test_index_wrap(void **state)
{
	(void)state;
	struct ring *r = ring_new(4);
	/* start both free-running counters just below 2^32 */
	uint32_t start = UINT32_MAX - 2;
	atomic_store(&r->head, start);
	atomic_store(&r->tail, start);
	r->head_cache = r->tail_cache = start;
	for (uintptr_t round = 0; round < 5; round++) {
		for (uintptr_t i = 1; i <= 4; i++)
			assert_true(ring_push(r, item(round * 10 + i)));
		assert_false(ring_push(r, item(1)));
		assert_int_equal(ring_count(r), 4);
		for (uintptr_t i = 1; i <= 4; i++)
			assert_ptr_equal(ring_pop(r), item(round * 10 + i));
		assert_true(ring_is_empty(r));
	}
	ring_free(r);
}

struct stress {
	struct ring *r;
	uintptr_t full_seen; /* producer only */
};

static void *producer(void *arg)
{
	struct stress *s = arg;
	void *batch[7];
	uintptr_t next = 1;
	while (next <= STRESS_ITEMS) {
		bool ok;
		if (next % 3 == 0) {
			unsigned n = 0;
			while (n < 7 && next + n <= STRESS_ITEMS) {
				batch[n] = item(next + n);
				n++;
			}
			unsigned k = ring_push_batch(s->r, batch, n);
			next += k;
			ok = k > 0;
		} else {
			ok = ring_push(s->r, item(next));
			next += ok;
		}
		if (!ok) {
			s->full_seen++;
			sched_yield();
		}
	}
	return NULL;
}

static void test_two_threads_sequenced(void **state)
{
	(void)state;
	struct stress s = { .r = ring_new(STRESS_RING) };
	assert_non_null(s.r);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, producer, &s), 0);
	uintptr_t expect = 1, empty_seen = 0;
	void *out[11];
	while (expect <= STRESS_ITEMS) {
		unsigned n;
		if (expect % 2) {
			void *p = ring_pop(s.r);
			out[0] = p;
			n = p != NULL;
		} else {
			n = ring_pop_batch(s.r, out, 11);
		}
		if (n == 0) {
			empty_seen++;
			sched_yield();
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			if (out[i] != item(expect))
				fail_msg("item %lu arrived where %lu was expected", (unsigned long)(uintptr_t)out[i],
					 (unsigned long)expect);
			expect++;
		}
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_null(ring_pop(s.r));
	assert_true(ring_is_empty(s.r));
	/* with a 64-slot ring both sides must have met the other's limit */
	assert_true(empty_seen > 0 || s.full_seen > 0);
	ring_free(s.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_checks),
		cmocka_unit_test(test_full_and_empty),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_index_wrap),
		cmocka_unit_test(test_two_threads_sequenced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
