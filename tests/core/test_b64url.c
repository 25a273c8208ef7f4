/* test_b64url.c - base64url without padding (core/b64url.c): RFC 4648 §10
 * vectors in the url alphabet, round trips of every length, and strictness
 * (foreign bytes, padding, impossible lengths, spare bits, buffer limits). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "b64url.h"

static void test_rfc4648_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" },	    { "f", "Zg" },	   { "fo", "Zm8" },	   { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char enc[16];
		uint8_t dec[16];
		size_t n = strlen(v[i].in);
		int e = b64url_encode((const uint8_t *)v[i].in, n, enc, sizeof(enc));
		assert_int_equal(e, (int)strlen(v[i].out));
		assert_int_equal(e, (int)b64url_len(n));
		assert_memory_equal(enc, v[i].out, (size_t)e);
		assert_int_equal(b64url_decode(slice_from_cstr(v[i].out), dec, sizeof(dec)), (int)n);
		assert_memory_equal(dec, v[i].in, n);
	}
}

static void test_url_alphabet(void **state)
{
	(void)state;
	const uint8_t in[] = { 0xfb, 0xff, 0xbf };
	char enc[8];
	uint8_t out[8];
	assert_int_equal(b64url_encode(in, sizeof(in), enc, sizeof(enc)), 4);
	assert_memory_equal(enc, "-_-_", 4); /* where standard base64 says "+/+/" */
	assert_int_equal(b64url_decode(SLICE_LIT("-_8"), out, sizeof(out)), 2);
	assert_int_equal(out[0], 0xfb);
	assert_int_equal(out[1], 0xff);
}

static void test_round_trip_every_length(void **state)
{
	(void)state;
	uint8_t in[97], out[97];
	char enc[140];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 151 + 7);
	for (size_t n = 0; n <= sizeof(in); n++) {
		int e = b64url_encode(in, n, enc, sizeof(enc));
		assert_int_equal(e, (int)b64url_len(n));
		for (int k = 0; k < e; k++)
			assert_non_null(memchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
					       enc[k], 64));
		assert_int_equal(b64url_decode(slice_make(enc, (size_t)e), out, sizeof(out)), (int)n);
		assert_memory_equal(in, out, n);
	}
}

static void test_strict_decoding(void **state)
{
	(void)state;
	uint8_t out[16];
	const char *bad[] = {
		"A",	    /* len % 4 == 1: no byte string encodes to it */
		"AB",	    /* spare bits set: "AA" is the only spelling of 0x00 */
		"Zh",	    /* "f" is "Zg" */
		"A/",	    /* standard alphabet */
		"A+AA",	    /* standard alphabet */
		"Zg==",	    /* padding */
		"Zm 9v",    /* white space */
		"Zm9v\n",   /* line break */
		"Zm9\x80v", /* 8-bit byte */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(b64url_decode(slice_from_cstr(bad[i]), out, sizeof(out)), -EBADMSG);
}

static void test_buffer_limits(void **state)
{
	(void)state;
	const uint8_t in[4] = { 1, 2, 3, 4 };
	char enc[8];
	uint8_t out[4];
	assert_int_equal(b64url_encode(in, 3, enc, 3), -ENOSPC);
	assert_int_equal(b64url_encode(in, 3, enc, 4), 4);
	assert_int_equal(b64url_encode(in, 4, enc, 5), -ENOSPC);
	assert_int_equal(b64url_encode(in, 4, enc, 6), 6);
	assert_int_equal(b64url_decode(slice_make(enc, 6), out, 3), -ENOSPC);
	assert_int_equal(b64url_decode(slice_make(enc, 6), out, 4), 4);
	assert_memory_equal(out, in, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_url_alphabet),
		cmocka_unit_test(test_round_trip_every_length),
		cmocka_unit_test(test_strict_decoding),
		cmocka_unit_test(test_buffer_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
