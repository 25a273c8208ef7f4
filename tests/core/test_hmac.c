/* test_hmac.c - HMAC-SHA256 (core/hmac.c): RFC 4231 vectors, every key
 * length class (empty, short, one block, longer than a block: hashed first)
 * against OpenSSL's HMAC(), and the precomputed-key form fed in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hmac.h"

static void hex_to(const char *hex, uint8_t *out)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* RFC 4231 §4.2 (test case 1) and §4.7 (test case 6: a 131-byte key). */
static void test_rfc4231(void **state)
{
	(void)state;
	uint8_t key[131], want[32], got[32];
	memset(key, 0x0b, 20);
	hex_to("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", want);
	hmac_sha256(key, 20, "Hi There", 8, got);
	assert_memory_equal(got, want, 32);

	memset(key, 0xaa, sizeof(key));
	static const char msg[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	hex_to("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", want);
	hmac_sha256(key, sizeof(key), msg, sizeof(msg) - 1, got);
	assert_memory_equal(got, want, 32);
}

static void test_against_openssl(void **state)
{
	(void)state;
	uint8_t key[200], data[300], got[32], want[32];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 13 + 5);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	static const size_t key_lens[] = { 0, 1, 16, 32, 63, 64, 65, 128, 200 };
	static const size_t data_lens[] = { 0, 1, 55, 56, 64, 65, 300 };
	for (size_t k = 0; k < sizeof(key_lens) / sizeof(key_lens[0]); k++)
		for (size_t d = 0; d < sizeof(data_lens) / sizeof(data_lens[0]); d++) {
			unsigned int len = 0;
			assert_non_null(HMAC(EVP_sha256(), key, (int)key_lens[k], data, data_lens[d], want, &len));
			assert_int_equal(len, 32);
			hmac_sha256(key, key_lens[k], data, data_lens[d], got);
			assert_memory_equal(got, want, 32);
		}
}

static void test_precomputed_key_in_pieces(void **state)
{
	(void)state;
	const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	static const char msg[] = "v1 identity target expiry jti";
	uint8_t one[32], pieces[32], again[32];
	hmac_sha256(key, sizeof(key), msg, sizeof(msg) - 1, one);

	struct hmac_key k;
	hmac_key_init(&k, key, sizeof(key));
	SHA256_CTX c;
	hmac_start(&k, &c);
	hmac_update(&c, msg, 3);
	hmac_update(&c, msg + 3, 0);
	hmac_update(&c, msg + 3, sizeof(msg) - 4);
	hmac_finish(&k, &c, pieces);
	assert_memory_equal(pieces, one, 32);
	/* the key states are reusable: a second MAC starts from the same state */
	hmac_start(&k, &c);
	hmac_update(&c, msg, sizeof(msg) - 1);
	hmac_finish(&k, &c, again);
	assert_memory_equal(again, one, 32);
	/* another key, another MAC */
	struct hmac_key other;
	uint8_t key2[32];
	memcpy(key2, key, sizeof(key2));
	key2[31] ^= 1;
	hmac_key_init(&other, key2, sizeof(key2));
	hmac_start(&other, &c);
	hmac_update(&c, msg, sizeof(msg) - 1);
	hmac_finish(&other, &c, again);
	assert_memory_not_equal(again, one, 32);
	hmac_key_wipe(&k);
	static const struct hmac_key zero;
	assert_memory_equal(&k, &zero, sizeof(k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_against_openssl),
		cmocka_unit_test(test_precomputed_key_in_pieces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
