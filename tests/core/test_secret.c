/* test_secret.c - the shared secret (core/secret.c; SPEC §3): a good file loads
 * and decodes exactly (all padding cases, wrapped lines), bad files (too short,
 * group/world accessible, missing, not base64, a folder) are refused with a
 * clear message, and the derived keys are HMAC-SHA256(secret, "referee " purpose):
 * deterministic, different per purpose and per secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above */

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hmac.h"
#include "secret.h"

static char tmp_dir[64];
static unsigned tmp_seq;

static int group_setup(void **state)
{
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/referee-test-secret-XXXXXX");
	return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void file_write(const char *text, mode_t mode, char *path, size_t size)
{
	snprintf(path, size, "%s/s%u", tmp_dir, tmp_seq++);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void bytes_fill(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 37);
}

/* b64 - base64 of @n bytes (OpenSSL's encoder, independent of the decoder under test). */
static void b64(const uint8_t *b, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, b, (int)n);
}

static void expect_key(const uint8_t *secret, size_t n, const char *label, const uint8_t *key)
{
	uint8_t want[32];
	unsigned int len = 0;
	assert_non_null(HMAC(EVP_sha256(), secret, (int)n, (const unsigned char *)label,
			     strlen(label), want, &len));
	assert_int_equal(len, 32);
	assert_memory_equal(key, want, 32);
}

static void test_good_secret(void **state)
{
	/* 16, 17 and 18 bytes cover "==", "=" and no padding; 32 is the usual size. */
	const size_t sizes[] = {16, 17, 18, 32, 255, 256};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t raw[256];
		char text[400], path[128], err[256];
		bytes_fill(raw, sizes[i], (uint8_t)i);
		b64(raw, sizes[i], text);
		strcat(text, "\n");
		file_write(text, 0600, path, sizeof(path));
		struct secret s;
		int rc = secret_load(path, &s, err, sizeof(err));
		if (rc != 0)
			fail_msg("size %zu: %s", sizes[i], err);
		assert_int_equal(s.len, sizes[i]);
		assert_memory_equal(s.bytes, raw, sizes[i]);
		expect_key(raw, sizes[i], "referee nonce", s.nonce_key);
		expect_key(raw, sizes[i], "referee grant", s.grant_key);
		expect_key(raw, sizes[i], "referee record-route", s.rr_key);
		secret_wipe(&s);
	}
}

static void test_wrapped_lines(void **state)
{
	/* `openssl rand -base64 64` wraps at 64 columns: line breaks are not data. */
	uint8_t raw[64];
	char text[200], wrapped[220], path[128], err[256];
	bytes_fill(raw, sizeof(raw), 7);
	b64(raw, sizeof(raw), text);
	snprintf(wrapped, sizeof(wrapped), "%.64s\n%s\r\n", text, text + 64);
	file_write(wrapped, 0400, path, sizeof(path));
	struct secret s;
	assert_int_equal(secret_load(path, &s, err, sizeof(err)), 0);
	assert_int_equal(s.len, 64);
	assert_memory_equal(s.bytes, raw, 64);
}

struct bad_secret {
	const char *text;
	mode_t mode;
	int rc;
	const char *message;
};

static void test_bad_secrets(void **state)
{
	const struct bad_secret bad[] = {
	    {"MDEyMzQ1Njc4OWFiY2Rl\n", 0600, -EINVAL, "too short: 15 bytes"},
	    {"", 0600, -EINVAL, "not base64"},
	    {"\n\n", 0600, -EINVAL, "not base64"},
	    {"this is not base64 at all!!\n", 0600, -EINVAL, "not base64"},
	    {"MDEyMzQ1Njc4OWFiY2RlZg\n", 0600, -EINVAL, "not base64"},	     /* no padding */
	    {"MDEyMzQ1Njc4OWFiY2RlZg=A\n", 0600, -EINVAL, "not base64"},     /* '=' inside */
	    {"MDEyMzQ1Njc4OWFiY2Rl====\n", 0600, -EINVAL, "not base64"},     /* 4 pads */
	    {"MDEyMzQ1Njc4OWFiY2RlZmdo-_==\n", 0600, -EINVAL, "not base64"}, /* base64url */
	    {"MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\n", 0644, -EPERM, "chmod 600"},
	    {"MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\n", 0640, -EPERM, "group or others (mode 0640)"},
	    {"MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\n", 0602, -EPERM, "group or others"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[128], err[256] = "", prefix[140];
		file_write(bad[i].text, bad[i].mode, path, sizeof(path));
		struct secret s;
		memset(&s, 0xa5, sizeof(s));
		int rc = secret_load(path, &s, err, sizeof(err));
		snprintf(prefix, sizeof(prefix), "%s: ", path);
		if (rc != bad[i].rc || strncmp(err, prefix, strlen(prefix)) != 0 ||
		    !strstr(err, bad[i].message))
			fail_msg("bad secret #%zu: rc %d, err '%s' (want %d, '%s')", i, rc, err,
				 bad[i].rc, bad[i].message);
	}
}

static void test_missing_and_folder(void **state)
{
	char path[128], err[256];
	struct secret s;
	snprintf(path, sizeof(path), "%s/absent", tmp_dir);
	assert_int_equal(secret_load(path, &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "absent: cannot open the secret file: No such file"));
	assert_int_equal(secret_load(tmp_dir, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(secret_load("", &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "secret_file: not set"));
	assert_int_equal(secret_load(path, &s, NULL, 0), -ENOENT);
}

static void test_too_large(void **state)
{
	static char text[2048];
	memset(text, 'A', sizeof(text) - 1);
	char path[128], err[256];
	file_write(text, 0600, path, sizeof(path));
	struct secret s;
	assert_int_equal(secret_load(path, &s, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "too large"));
}

static void test_keys_per_purpose(void **state)
{
	uint8_t raw[32], other[32];
	bytes_fill(raw, sizeof(raw), 1);
	bytes_fill(other, sizeof(other), 2);
	struct secret a, b, c;
	assert_int_equal(secret_set(&a, raw, sizeof(raw)), 0);
	assert_int_equal(secret_set(&b, raw, sizeof(raw)), 0);
	assert_int_equal(secret_set(&c, other, sizeof(other)), 0);
	/* deterministic: every instance sharing the secret derives the same keys */
	assert_memory_equal(a.nonce_key, b.nonce_key, 32);
	assert_memory_equal(a.grant_key, b.grant_key, 32);
	assert_memory_equal(a.rr_key, b.rr_key, 32);
	/* one key per purpose */
	assert_memory_not_equal(a.nonce_key, a.grant_key, 32);
	assert_memory_not_equal(a.nonce_key, a.rr_key, 32);
	assert_memory_not_equal(a.grant_key, a.rr_key, 32);
	/* and per secret */
	assert_memory_not_equal(a.nonce_key, c.nonce_key, 32);
	assert_memory_not_equal(a.grant_key, c.grant_key, 32);
	assert_memory_not_equal(a.rr_key, c.rr_key, 32);

	assert_int_equal(secret_set(&a, raw, SECRET_MIN_BYTES - 1), -EINVAL);
	assert_int_equal(secret_set(&a, raw, SECRET_MAX_BYTES + 1), -EINVAL);
	assert_int_equal(secret_set(&a, NULL, 32), -EINVAL);
}

static void test_hmac_and_wipe(void **state)
{
	uint8_t raw[20];
	bytes_fill(raw, sizeof(raw), 9);
	struct secret s;
	assert_int_equal(secret_set(&s, raw, sizeof(raw)), 0);
	const char *msgs[] = {"", "v1.1001@example.com.5f5e100.abc", "x"};
	for (size_t i = 0; i < 3; i++) {
		uint8_t got[32], want[32];
		unsigned int len = 0;
		hmac_sha256(s.grant_key, SECRET_KEY_BYTES, msgs[i], strlen(msgs[i]), got);
		assert_non_null(HMAC(EVP_sha256(), s.grant_key, 32, (const unsigned char *)msgs[i],
				     strlen(msgs[i]), want, &len));
		assert_memory_equal(got, want, 32);
		/* the per-thread context is re-keyed on every call */
		hmac_sha256(s.nonce_key, SECRET_KEY_BYTES, msgs[i], strlen(msgs[i]), got);
		assert_memory_not_equal(got, want, 32);
	}
	secret_wipe(&s);
	const struct secret zero = {0};
	assert_memory_equal(&s, &zero, sizeof(s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_secret),	  cmocka_unit_test(test_wrapped_lines),
	    cmocka_unit_test(test_bad_secrets),	  cmocka_unit_test(test_missing_and_folder),
	    cmocka_unit_test(test_too_large),	  cmocka_unit_test(test_keys_per_purpose),
	    cmocka_unit_test(test_hmac_and_wipe),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
