/* test_slice_hash.c - keyed hashing (issue 13, SPEC §13): Call-IDs an
 * attacker crafted so that unkeyed FNV-1a puts them all on one worker (and
 * into one bucket chain: the same low bits) must spread evenly over the
 * workers with slice_hash, which picks the worker (pipeline.c receiver_pick:
 * slice_hash(Call-ID) % workers) and hashes every table keyed by packet text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "slice.h"

#define N_IDS 4000
#define LOW_BITS 0xffu /* every id shares FNV's low 8 bits: one worker for 2, 4, 8 ... 256 */

/* What an attacker computes: plain 64-bit FNV-1a, the hash referee used before. */
static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static char ids[N_IDS][48];

/* colliding_ids - N_IDS Call-IDs whose FNV-1a hashes agree in the low 8 bits
 * (and are 0 mod 3 too, for 3 or 6 workers). Brute force, about 800 tries per id. */
static void colliding_ids(void)
{
	unsigned found = 0;
	for (uint64_t i = 0; found < N_IDS; i++) {
		char buf[48];
		int n = snprintf(buf, sizeof(buf), "%llx@attacker.invalid", (unsigned long long)i);
		uint64_t h = fnv1a(buf, (size_t)n);
		if ((h & LOW_BITS) == 0 && h % 3 == 0)
			memcpy(ids[found++], buf, (size_t)n + 1);
	}
}

/* spread_check - ids over @workers by slice_hash: each worker within 25 % of
 * the mean (about 7 standard deviations at 4 workers: a fair hash never fails it). */
static void spread_check(unsigned workers)
{
	unsigned count[16] = { 0 };
	for (unsigned i = 0; i < N_IDS; i++)
		count[slice_hash(slice_from_cstr(ids[i])) % workers]++;
	double mean = (double)N_IDS / workers;
	for (unsigned w = 0; w < workers; w++) {
		print_message("workers=%u worker %u: %u Call-IDs (mean %.0f)\n", workers, w, count[w], mean);
		assert_true(count[w] >= 0.75 * mean && count[w] <= 1.25 * mean);
	}
}

static void test_fnv_colliding_call_ids_spread(void **state)
{
	(void)state;
	colliding_ids();
	/* the premise: unkeyed, every one of them lands on worker 0 */
	for (unsigned i = 0; i < N_IDS; i++)
		assert_int_equal(fnv1a(ids[i], strlen(ids[i])) % 4, 0);
	spread_check(2);
	spread_check(4);
	spread_check(6);
	/* another key (another secret): still spread, and the hash changed */
	uint64_t before = slice_hash(slice_from_cstr(ids[0]));
	slice_hash_key_set((const uint64_t[2]){ 0x0123456789abcdefull, 0xfedcba9876543210ull });
	assert_true(slice_hash(slice_from_cstr(ids[0])) != before);
	spread_check(4);
	/* and the low bits no longer collide either (cds_lfht buckets use them) */
	unsigned same_low = 0;
	uint64_t low0 = slice_hash(slice_from_cstr(ids[0])) & LOW_BITS;
	for (unsigned i = 1; i < N_IDS; i++)
		same_low += (slice_hash(slice_from_cstr(ids[i])) & LOW_BITS) == low0;
	assert_true(same_low < 60); /* about 16 expected by chance */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fnv_colliding_call_ids_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
