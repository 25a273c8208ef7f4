/* test_sipx.c - sipXecs X-sipX-Authidentity signatures (transfer_sipx.c,
 * SPEC §5 sipx mode). The golden vectors of reference §2.6 (and §2.2's
 * SharedSecretTest) are checked against the reference file itself, read at run
 * time from $REFEREE_SHARED_DIR: each test computes the wire text and asserts
 * the reference holds exactly that text. The inputs (secret, TS, tags) are
 * quoted from §2.6 in the comments. Also: parsing strictness, %3A vs ':'
 * (the caller unescapes), uppercase TS, bound/unbound and expiry. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "transfer_priv.h"

static char *ref;  /* reference/sipxecs-behaviour.md */
static size_t ref_len;

static int setup(void **state)
{
	const char *dir = getenv("REFEREE_SHARED_DIR");
	char path[1024];
	if (!dir)
		return -1;
	snprintf(path, sizeof(path), "%s/reference/sipxecs-behaviour.md", dir);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	ref = malloc(1 << 20);
	ref_len = fread(ref, 1, (1 << 20) - 1, f);
	fclose(f);
	ref[ref_len] = '\0';
	return ref_len > 1000 ? 0 : -1;
}

static int teardown(void **state)
{
	free(ref);
	return 0;
}

static void ref_has(const char *text)
{
	if (!strstr(ref, text))
		fail_msg("reference/sipxecs-behaviour.md does not contain: %s", text);
}

#define TAG SLICE_LIT("30543f3483e1cb11ecb40866edd3295b")
#define CALLID SLICE_LIT("f88dfabce84b6a2787ef024a7dbe8749")
#define TESTSECRET ((const uint8_t *)"testsecret"), 10

/* header value "<sip:ID;signature=ESCAPED>" as sipXecs writes it */
static void header_value(char *out, size_t cap, const char *id, const char *sig, size_t sig_len)
{
	char esc[128];
	int e = transfer_escape(slice_make(sig, sig_len), esc, sizeof(esc));
	assert_true(e > 0);
	snprintf(out, cap, "<sip:%s;signature=%.*s>", id, e, esc);
}

/* §2.6 A: secret `testsecret`, TS 46A55D33, From tag 30543f34..., Call-ID
 * f88dfabc..., identity identity@example.com, bound. */
static void test_vector_a_bound(void **state)
{
	char sig[64], hv[256], line[300];
	int n = transfer_sipx_sign(TESTSECRET, 0x46A55D33, true, TAG, CALLID, SLICE_LIT("identity@example.com"),
				   sig, sizeof(sig));
	assert_int_equal(n, 8 + 1 + 32);
	header_value(hv, sizeof(hv), "identity@example.com", sig, (size_t)n);
	snprintf(line, sizeof(line), "X-sipX-Authidentity: %s", hv);
	ref_has(line);
	/* encodeUri(bound) on sip:newdestination@newdomain: the header value escaped again */
	char esc[512], uri[600];
	int e = transfer_escape(slice_from_cstr(hv), esc, sizeof(esc));
	assert_true(e > 0);
	snprintf(uri, sizeof(uri), "<sip:newdestination@newdomain?X-sipX-Authidentity=%.*s>", e, esc);
	ref_has(uri);
	/* second bound vector: 46A8F3C1, id@example.com */
	n = transfer_sipx_sign(TESTSECRET, 0x46A8F3C1, true, TAG, CALLID, SLICE_LIT("id@example.com"), sig,
			       sizeof(sig));
	snprintf(line, sizeof(line), "`%.32s`", sig + 9);
	ref_has(line);
}

/* §2.6 B: same secret and TS, unbound, identity identity@example.com. */
static void test_vector_b_unbound(void **state)
{
	char sig[64], hv[256], line[300];
	int n = transfer_sipx_sign(TESTSECRET, 0x46A55D33, false, SLICE_NULL, SLICE_NULL,
				   SLICE_LIT("identity@example.com"), sig, sizeof(sig));
	assert_int_equal(n, 8 + 2 + 32);
	assert_memory_equal(sig, "46A55D33::", 10);
	header_value(hv, sizeof(hv), "identity@example.com", sig, (size_t)n);
	snprintf(line, sizeof(line), "X-sipX-Authidentity: %s", hv);
	ref_has(line);
	char esc[512], uri[600];
	int e = transfer_escape(slice_from_cstr(hv), esc, sizeof(esc));
	snprintf(uri, sizeof(uri), "<sip:newdestination@newdomain?X-sipX-Authidentity=%.*s>", e, esc);
	ref_has(uri);
}

/* §2.6 C: SHARED_SECRET BbBbCcCcDdAaAaEeEeFfFf22 (base64, 18 raw bytes), TS
 * 0x66000000, transferor 1001@example.edu; bound with tag a1b2c3 and Call-ID
 * abc123@10.0.0.5. */
static void test_vector_c_real_secret(void **state)
{
	uint8_t secret[32];
	int n = EVP_DecodeBlock(secret, (const unsigned char *)"BbBbCcCcDdAaAaEeEeFfFf22", 24);
	assert_int_equal(n, 18); /* no padding in this base64 */
	char hex[40], line[300];
	for (int i = 0; i < 18; i++)
		snprintf(hex + 2 * i, 3, "%02x", secret[i]);
	snprintf(line, sizeof(line), "`%s`", hex);
	ref_has(line);

	char sig[64], hv[256];
	n = transfer_sipx_sign(secret, 18, 0x66000000, false, SLICE_NULL, SLICE_NULL, SLICE_LIT("1001@example.edu"),
			       sig, sizeof(sig));
	header_value(hv, sizeof(hv), "1001@example.edu", sig, (size_t)n);
	snprintf(line, sizeof(line), "X-sipX-Authidentity: %s", hv);
	ref_has(line);
	/* as a Refer-To header parameter: %253A%253A (reference §1.3 HEAD example) */
	char esc[512];
	int e = transfer_escape(slice_from_cstr(hv), esc, sizeof(esc));
	snprintf(line, sizeof(line), "?X-sipX-Authidentity=%.*s&REFERENCES=", e, esc);
	ref_has(line);
	assert_non_null(strstr(esc, "%253A%253A"));

	n = transfer_sipx_sign(secret, 18, 0x66000000, true, SLICE_LIT("a1b2c3"), SLICE_LIT("abc123@10.0.0.5"),
			       SLICE_LIT("1001@example.edu"), sig, sizeof(sig));
	header_value(hv, sizeof(hv), "1001@example.edu", sig, (size_t)n);
	ref_has(hv);
	/* and it verifies (no expiry) */
	assert_int_equal(transfer_sipx_verify(secret, 18, slice_make(sig, (size_t)n), SLICE_LIT("1001@example.edu"),
					      SLICE_LIT("a1b2c3"), SLICE_LIT("abc123@10.0.0.5"), 0x66000000, 0),
			 TRANSFER_OK);
}

/* §2.2 SharedSecretTest: MD5(64 x 'A' ‖ "value") (empty TS, unbound). */
static void test_shared_secret_md5(void **state)
{
	uint8_t secret[64];
	memset(secret, 'A', sizeof(secret));
	char h[33] = { 0 }, line[64];
	transfer_sipx_hash(secret, sizeof(secret), SLICE_LIT(""), false, SLICE_NULL, SLICE_NULL,
			   SLICE_LIT("value"), h);
	snprintf(line, sizeof(line), "= `%s`", h);
	ref_has(line);
}

static enum transfer_result verify_a(const char *sig, uint64_t now, unsigned validity)
{
	return transfer_sipx_verify(TESTSECRET, slice_from_cstr(sig), SLICE_LIT("identity@example.com"), TAG,
				    CALLID, now, validity);
}

/* reference §6.2 testIdentityDecode rows, plus our expiry */
static void test_verify(void **state)
{
	char sig[64];
	int n = transfer_sipx_sign(TESTSECRET, 0x46A55D33, true, TAG, CALLID, SLICE_LIT("identity@example.com"),
				   sig, sizeof(sig));
	sig[n] = '\0';
	assert_int_equal(verify_a(sig, 0x46A55D33, 0), TRANSFER_OK);
	assert_int_equal(verify_a(sig, 0x46A55D33 + 60, 60), TRANSFER_OK);
	assert_int_equal(verify_a(sig, 0x46A55D33 + 61, 60), TRANSFER_EXPIRED);
	assert_int_equal(verify_a(sig, 0x46A55D33 + 100000000, 0), TRANSFER_OK); /* validity 0: no expiry */
	/* empty Call-ID / From tag: invalid for a bound signature */
	assert_int_equal(transfer_sipx_verify(TESTSECRET, slice_from_cstr(sig), SLICE_LIT("identity@example.com"),
					      TAG, SLICE_LIT(""), 0x46A55D33, 0),
			 TRANSFER_MALFORMED);
	assert_int_equal(transfer_sipx_verify(TESTSECRET, slice_from_cstr(sig), SLICE_LIT("identity@example.com"),
					      SLICE_LIT(""), CALLID, 0x46A55D33, 0),
			 TRANSFER_MALFORMED);
	/* another Call-ID, another identity, another secret */
	assert_int_equal(transfer_sipx_verify(TESTSECRET, slice_from_cstr(sig), SLICE_LIT("identity@example.com"),
					      TAG, SLICE_LIT("x"), 0x46A55D33, 0),
			 TRANSFER_BAD_MAC);
	assert_int_equal(transfer_sipx_verify(TESTSECRET, slice_from_cstr(sig), SLICE_LIT("id@example.com"), TAG,
					      CALLID, 0x46A55D33, 0),
			 TRANSFER_BAD_MAC);
	assert_int_equal(transfer_sipx_verify((const uint8_t *)"testsecreT", 10, slice_from_cstr(sig),
					      SLICE_LIT("identity@example.com"), TAG, CALLID, 0x46A55D33, 0),
			 TRANSFER_BAD_MAC);
	/* bound signature presented as unbound (extra ':') fails the MAC */
	char unb[80];
	snprintf(unb, sizeof(unb), "46A55D33::%s", sig + 9);
	assert_int_equal(verify_a(unb, 0x46A55D33, 0), TRANSFER_BAD_MAC);
}

static void test_malformed(void **state)
{
	const char *bad[] = {
		"",
		"Blah-Blah",
		":c3452b0000000000000000000000000000", /* no TS */
		"46A55D33::",                          /* no hash */
		"46A55D33:56681beb4f29fc796f6ae9d0ad0269dx", /* 'x' in the hash */
		"46A55D33:56681BEB4F29FC796F6AE9D0AD0269D2", /* uppercase hash */
		"46a55d33:56681beb4f29fc796f6ae9d0ad0269d2", /* lowercase TS (sipXecs fails it too) */
		"46A55D33:56681beb4f29fc796f6ae9d0ad0269d",  /* 31 characters (sipXbridge bug) */
		"46A55D33:56681beb4f29fc796f6ae9d0ad0269d2x", /* junk after: anchored, unlike sipXecs */
		"x46A55D33:56681beb4f29fc796f6ae9d0ad0269d2", /* junk before */
		"46A55D33:::56681beb4f29fc796f6ae9d0ad0269d2",
		"46A55D33%3A56681beb4f29fc796f6ae9d0ad0269d2", /* still escaped: caller unescapes */
		"10000000000000000:56681beb4f29fc796f6ae9d0ad0269d2", /* TS over 64 bits */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (verify_a(bad[i], 0x46A55D33, 0) != TRANSFER_MALFORMED)
			fail_msg("accepted as well-formed: %s", bad[i]);
	/* the real one, to show the list above fails for its own reason */
	assert_int_equal(verify_a("46A55D33:56681beb4f29fc796f6ae9d0ad0269d2", 0x46A55D33, 0), TRANSFER_OK);
}

static void test_sign_format(void **state)
{
	char sig[64];
	/* TS uppercase, no padding ("%lX") */
	int n = transfer_sipx_sign(TESTSECRET, 0xABC, false, SLICE_NULL, SLICE_NULL, SLICE_LIT("a@b"), sig, sizeof(sig));
	assert_int_equal(n, 3 + 2 + 32);
	assert_memory_equal(sig, "ABC::", 5);
	n = transfer_sipx_sign(TESTSECRET, 0, true, TAG, CALLID, SLICE_LIT("a@b"), sig, sizeof(sig));
	assert_memory_equal(sig, "0:", 2);
	assert_int_equal(transfer_sipx_sign(TESTSECRET, 0xABC, false, SLICE_NULL, SLICE_NULL, SLICE_LIT("a@b"), sig,
					    36),
			 -ENOSPC);
	/* escaping: sipXecs HttpMessage::escape */
	char esc[64];
	int e = transfer_escape(SLICE_LIT("a b:<@>;=%-_.~"), esc, sizeof(esc));
	assert_int_equal(e, (int)strlen("a+b%3A%3C%40%3E%3B%3D%25-_.%7E"));
	assert_memory_equal(esc, "a+b%3A%3C%40%3E%3B%3D%25-_.%7E", (size_t)e);
	assert_int_equal(transfer_escape(SLICE_LIT("::"), esc, 5), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_a_bound),      cmocka_unit_test(test_vector_b_unbound),
		cmocka_unit_test(test_vector_c_real_secret), cmocka_unit_test(test_shared_secret_md5),
		cmocka_unit_test(test_verify),              cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_sign_format),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
