/* test_slice_caseeq.c - slice_caseeq compares eight bytes at a time (a SWAR
 * lower-casing): it must agree with the byte-by-byte ASCII definition for every
 * byte pair at every position, the 8-bit bytes and the bytes next to the letters
 * ('@', '[', '`', '{') included, in the whole words and in the overlapping last one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "slice.h"

static bool byte_caseeq(unsigned char a, unsigned char b)
{
	const unsigned la = a >= 'A' && a <= 'Z' ? a + 32u : a;
	const unsigned lb = b >= 'A' && b <= 'Z' ? b + 32u : b;
	return la == lb;
}

static void test_every_byte_pair_everywhere(void **state)
{
	(void)state;
	static const size_t lens[] = { 1, 7, 8, 9, 15, 16, 17 };
	char x[32], y[32];
	unsigned long checked = 0;
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		const size_t n = lens[li];
		for (size_t pos = 0; pos < n; pos++)
			for (unsigned a = 0; a < 256; a++)
				for (unsigned b = 0; b < 256; b++) {
					memset(x, 'q', n);
					memset(y, 'Q', n); /* the rest differs in case only: equal */
					x[pos] = (char)a;
					y[pos] = (char)b;
					const bool want = byte_caseeq((unsigned char)a, (unsigned char)b);
					if (slice_caseeq(slice_make(x, n), slice_make(y, n)) != want)
						fail_msg("len %zu pos %zu bytes 0x%02x 0x%02x: want %d", n, pos, a, b, want);
					checked++;
				}
	}
	assert_true(checked > 3000000);
}

static void test_lengths_and_prefix(void **state)
{
	(void)state;
	assert_true(slice_caseeq(SLICE_LIT(""), SLICE_LIT("")));
	assert_false(slice_caseeq(SLICE_LIT("abc"), SLICE_LIT("abcd")));
	assert_true(slice_caseeq(SLICE_LIT("Proxy-Authorization"), SLICE_LIT("pROXY-aUTHORIZATION")));
	assert_false(slice_caseeq(SLICE_LIT("Proxy-Authorization"), SLICE_LIT("Proxy-Authorizatioo")));
	assert_true(slice_has_caseprefix(SLICE_LIT("SIP/2.0/UDP host"), SLICE_LIT("sip/2.0/udp")));
	assert_false(slice_has_caseprefix(SLICE_LIT("SIP"), SLICE_LIT("sip/")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_byte_pair_everywhere),
		cmocka_unit_test(test_lengths_and_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
