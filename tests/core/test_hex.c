/* test_hex.c - the one hex codec (core/hex.c): lowercase digits, no NUL
 * written past 2n, every byte value round-trips, decoding takes either case
 * and refuses odd lengths, wrong lengths and non-digits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hex.h"

static void test_encode_vectors(void **state)
{
	(void)state;
	char out[16];
	memset(out, '#', sizeof(out));
	assert_int_equal(hex_encode((const uint8_t *)"", 0, out), 0);
	assert_int_equal(out[0], '#'); /* nothing written for no bytes */
	const uint8_t b[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	assert_int_equal(hex_encode(b, sizeof(b), out), 12);
	assert_memory_equal(out, "00017f80abff", 12);
	assert_int_equal(out[12], '#'); /* no NUL: the caller terminates */
	/* MD5("") as every digest user prints it */
	const uint8_t md5[16] = { 0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
				  0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e };
	char hex[33];
	hex[hex_encode(md5, sizeof(md5), hex)] = '\0';
	assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_round_trip_every_byte(void **state)
{
	(void)state;
	uint8_t in[256], back[256];
	char text[512];
	for (unsigned i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	assert_int_equal(hex_encode(in, sizeof(in), text), 512);
	for (size_t i = 0; i < sizeof(text); i++)
		assert_true((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f'));
	assert_true(hex_decode(slice_make(text, sizeof(text)), back, sizeof(back)));
	assert_memory_equal(back, in, sizeof(in));
}

static void test_decode_either_case(void **state)
{
	(void)state;
	uint8_t out[4];
	assert_true(hex_decode(SLICE_LIT("DeadBEEF"), out, 4));
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	assert_true(hex_decode(SLICE_LIT("0aF9"), out, 2));
	assert_memory_equal(out, "\x0a\xf9", 2);
	assert_true(hex_decode(SLICE_LIT(""), out, 0));
}

static void test_decode_refused(void **state)
{
	(void)state;
	uint8_t out[4];
	assert_false(hex_decode(SLICE_LIT("abc"), out, 2));	/* odd */
	assert_false(hex_decode(SLICE_LIT("abcd"), out, 1));	/* too long for @n */
	assert_false(hex_decode(SLICE_LIT("ab"), out, 2));	/* too short */
	assert_false(hex_decode(SLICE_LIT("abcg"), out, 2));	/* not a digit */
	assert_false(hex_decode(SLICE_LIT("ab c"), out, 2));
	assert_false(hex_decode(SLICE_LIT("0x12"), out, 2));
	/* the bytes next to the digit ranges, and those that OR 0x20 into a-f */
	static const char near[] = { '/', ':', '@', 'G', '`', 'g', 'A' - 0x20, 'F' - 0x20 };
	for (size_t i = 0; i < sizeof(near); i++) {
		const char two[2] = { '0', near[i] };
		assert_false(hex_decode(slice_make(two, 2), out, 1));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_vectors),
		cmocka_unit_test(test_round_trip_every_byte),
		cmocka_unit_test(test_decode_either_case),
		cmocka_unit_test(test_decode_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
