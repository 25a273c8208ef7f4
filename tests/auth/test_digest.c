/* test_digest.c - digest arithmetic against the RFC 2617 §3.5 and RFC 7616
 * §3.9.1 examples and the sipXecs worked example (reference §4.3); nonce make /
 * check / expiry / forgery / tampering; the Proxy-Authorization parser on good
 * and bad input (missing, duplicate, huge, unquoted, unknown algorithm). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth_priv.h"
#include "b64url.h"
#include "hmac.h"
#include "hex.h"

static struct slice S(const char *s)
{
	return slice_from_cstr(s);
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	out[hex_encode(b, n, out)] = '\0';
}

/* check_vector - parse @hdr, compute HA1 from @password and the response, compare with @want. */
static void check_vector(const char *hdr, const char *method, const char *password, const char *want)
{
	struct auth_creds c;
	assert_int_equal(auth_creds_parse(S(hdr), &c), 0);
	uint8_t ha1[AUTH_HASH_MAX], out[AUTH_HASH_MAX];
	int n = auth_digest_ha1(c.algo, c.username, c.realm, S(password), ha1);
	assert_int_equal(n, (int)auth_algo_len(c.algo));
	assert_int_equal(auth_digest_response(c.algo, ha1, S(method), &c, out), n);
	char hex[2 * AUTH_HASH_MAX + 1];
	hex_of(out, (size_t)n, hex);
	assert_string_equal(hex, want);
	assert_true(auth_digest_verify(c.algo, ha1, S(method), &c));
	/* a wrong password or another method must not verify */
	uint8_t bad[AUTH_HASH_MAX];
	auth_digest_ha1(c.algo, c.username, c.realm, S("wrong"), bad);
	assert_false(auth_digest_verify(c.algo, bad, S(method), &c));
	assert_false(auth_digest_verify(c.algo, ha1, S("POST"), &c));
}

static void test_rfc2617_md5(void **state)
{
	(void)state;
	check_vector("Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
		     "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, "
		     "nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", "
		     "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
		     "GET", "Circle Of Life", "6629fae49393a05397450978507c4ef1");
}

static void test_rfc7616_sha256_and_md5(void **state)
{
	(void)state;
	check_vector("Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
		     "algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
		     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
		     "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", "
		     "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
		     "GET", "Circle of Life", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
	check_vector("Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
		     "algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
		     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
		     "response=\"8ca523f5e9506fed4657c9700eebdbec\", "
		     "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
		     "GET", "Circle of Life", "8ca523f5e9506fed4657c9700eebdbec");
}

static void test_sipxecs_example(void **state)
{
	(void)state;
	/* reference §4.3: user 1001, realm example.edu, password 1234, REFER */
	check_vector("Digest username=\"1001\", realm=\"example.edu\", nonce=\"439a166151087fd9219c2c3b7b51c1664b6f80a6\", "
		     "uri=\"sip:1002@example.edu\", response=\"4be9bfdcd12c12f8479e738dc4a78e82\", qop=auth, "
		     "nc=00000001, cnonce=\"0a4f113b\"",
		     "REFER", "1234", "4be9bfdcd12c12f8479e738dc4a78e82");
}

static void test_response_uppercase_hex_accepted(void **state)
{
	(void)state;
	struct auth_creds c;
	assert_int_equal(auth_creds_parse(S("Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
					    "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
					    "qop=\"auth\", nc=00000001, cnonce=\"0a4f113b\", "
					    "response=\"6629FAE49393A05397450978507C4EF1\""),
					  &c),
			 0);
	uint8_t ha1[AUTH_HASH_MAX];
	auth_digest_ha1(c.algo, c.username, c.realm, S("Circle Of Life"), ha1);
	assert_true(auth_digest_verify(c.algo, ha1, S("GET"), &c));
	assert_int_equal(c.nc, 1);
	assert_int_equal(c.algo, CFG_ALGO_MD5);
	/* a response of the wrong length for the algorithm never verifies */
	c.algo = CFG_ALGO_SHA256;
	assert_false(auth_digest_verify(c.algo, ha1, S("GET"), &c));
}

/* ---------------------------------------------------------------- nonce */

static const uint8_t raw_a[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t raw_b[32] = { 9, 9, 9 };
static struct hmac_key key_a, key_b;

static int keys_init(void **state)
{
	(void)state;
	hmac_key_init(&key_a, raw_a, sizeof(raw_a));
	hmac_key_init(&key_b, raw_b, sizeof(raw_b));
	return 0;
}

/* A nonce's MAC is HMAC-SHA256(key, ts ‖ random ‖ realm)[0..16) whether the
 * pads are precomputed or not: instances of older and newer versions behind
 * one balancer must accept each other's nonces during a rolling upgrade. */
static void test_nonce_mac_is_plain_hmac(void **state)
{
	(void)state;
	char n[AUTH_NONCE_LEN];
	auth_nonce_make(&key_a, S("example.com"), 1700000000, n);
	uint8_t raw[AUTH_NONCE_RAW];
	assert_int_equal(b64url_decode(slice_make(n, sizeof(n)), raw, sizeof(raw)), AUTH_NONCE_RAW);
	uint8_t in[16 + 11], mac[HMAC_SHA256_BYTES];
	memcpy(in, raw, 16);
	memcpy(in + 16, "example.com", 11);
	hmac_sha256(raw_a, sizeof(raw_a), in, sizeof(in), mac);
	assert_memory_equal(raw + 16, mac, 16);
}

static void test_nonce_roundtrip_and_expiry(void **state)
{
	(void)state;
	char n1[AUTH_NONCE_LEN], n2[AUTH_NONCE_LEN];
	uint64_t now = 1700000000;
	auth_nonce_make(&key_a, S("example.com"), now, n1);
	auth_nonce_make(&key_a, S("example.com"), now, n2);
	assert_memory_not_equal(n1, n2, AUTH_NONCE_LEN); /* never the same twice */
	struct slice s = slice_make(n1, AUTH_NONCE_LEN);
	for (size_t i = 0; i < AUTH_NONCE_LEN; i++)
		assert_true((n1[i] >= 'A' && n1[i] <= 'Z') || (n1[i] >= 'a' && n1[i] <= 'z') ||
			    (n1[i] >= '0' && n1[i] <= '9') || n1[i] == '-' || n1[i] == '_');
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now, 300), AUTH_NONCE_OK);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now + 300, 300), AUTH_NONCE_OK);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now + 301, 300), AUTH_NONCE_STALE);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now + 86400, 300), AUTH_NONCE_STALE);
	/* made by an instance whose clock runs a little ahead: fine; far ahead: not ours */
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now - 10, 300), AUTH_NONCE_OK);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), s, now - 3600, 300), AUTH_NONCE_FORGED);
}

static void test_nonce_forged_and_tampered(void **state)
{
	(void)state;
	char n[AUTH_NONCE_LEN];
	uint64_t now = 1700000000;
	auth_nonce_make(&key_a, S("example.com"), now, n);
	struct slice s = slice_make(n, AUTH_NONCE_LEN);
	assert_int_equal(auth_nonce_check(&key_b, S("example.com"), s, now, 300), AUTH_NONCE_FORGED);
	assert_int_equal(auth_nonce_check(&key_a, S("example.org"), s, now, 300), AUTH_NONCE_FORGED);
	for (size_t i = 0; i < AUTH_NONCE_LEN - 1; i++) { /* every byte is covered (the last holds padding bits) */
		char t[AUTH_NONCE_LEN];
		memcpy(t, n, sizeof(t));
		t[i] = t[i] == 'A' ? 'B' : 'A';
		assert_int_equal(auth_nonce_check(&key_a, S("example.com"), slice_make(t, sizeof(t)), now, 300),
				 AUTH_NONCE_FORGED);
	}
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), slice_make(n, AUTH_NONCE_LEN - 1), now, 300),
			 AUTH_NONCE_FORGED);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), S("dcd98b7102dd2f0e8b11d0f600bfb0c093"), now, 300),
			 AUTH_NONCE_FORGED);
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), S(""), now, 300), AUTH_NONCE_FORGED);
	char bad[AUTH_NONCE_LEN];
	memcpy(bad, n, sizeof(bad));
	bad[5] = '+'; /* not base64url */
	assert_int_equal(auth_nonce_check(&key_a, S("example.com"), slice_make(bad, sizeof(bad)), now, 300),
			 AUTH_NONCE_FORGED);
}

/* ---------------------------------------------------------------- parser */

#define GOOD_TAIL "realm=\"r\", nonce=\"n\", uri=\"sip:a@b\", response=\"00\", qop=auth, nc=00000001, cnonce=\"c\""

static int parse(const char *s)
{
	struct auth_creds c;
	return auth_creds_parse(S(s), &c);
}

static void test_parser_good(void **state)
{
	(void)state;
	struct auth_creds c;
	assert_int_equal(auth_creds_parse(S("  digest   username = \"bob\" ,realm=\"r\",nonce=\"n\",uri=\"sip:x@y;a=b\","
					    "response=\"ab\",qop=auth,nc=0000001A,cnonce=\"c\", algorithm=\"sha-256\", "
					    "future=\"ignored, really\", other=tok"),
					  &c),
			 0);
	assert_true(slice_eq(c.username, S("bob")));
	assert_true(slice_eq(c.uri, S("sip:x@y;a=b")));
	assert_int_equal(c.nc, 26);
	assert_int_equal(c.algo, CFG_ALGO_SHA256);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL), 0);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", userhash=false"), 0);
	/* folded across lines (LWS) is still one value */
	assert_int_equal(parse("Digest username=\"bob\",\r\n " GOOD_TAIL), 0);
}

static void test_parser_not_digest(void **state)
{
	(void)state;
	assert_int_equal(parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), -ENOENT);
	assert_int_equal(parse("Bearer x"), -ENOENT);
	assert_int_equal(parse(""), -ENOENT);
}

static void test_parser_bad(void **state)
{
	(void)state;
	/* missing fields */
	assert_int_equal(parse("Digest " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\""),
			 -EBADMSG); /* no qop (RFC 2069 answer) */
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", "
			       "qop=auth, cnonce=\"c\""),
			 -EBADMSG); /* qop without nc */
	assert_int_equal(parse("Digest"), -EBADMSG);
	assert_int_equal(parse("Digest "), -EBADMSG);
	assert_int_equal(parse("Digest username=\"\", " GOOD_TAIL), -EBADMSG);
	/* duplicates */
	assert_int_equal(parse("Digest username=\"bob\", username=\"eve\", " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", REALM=\"r\""), -EBADMSG);
	/* quoting */
	assert_int_equal(parse("Digest username=bob, " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", nc2=\"unterminated"), -EBADMSG);
	assert_int_equal(parse("Digest username=\"b\\\"ob\", " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", "
			       "qop=auth, nc=\"00000001\", cnonce=\"c\""),
			 -EBADMSG);
	/* syntax */
	assert_int_equal(parse("Digest username=\"bob\" " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\",, " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ","), -EBADMSG);
	assert_int_equal(parse("Digest username \"bob\", " GOOD_TAIL), -EBADMSG);
	assert_int_equal(parse("Digest=x"), -EBADMSG);
	/* values */
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", "
			       "qop=auth, nc=1, cnonce=\"c\""),
			 -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", "
			       "qop=auth-int, nc=00000001, cnonce=\"c\""),
			 -EBADMSG);
	assert_int_equal(parse("Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\", "
			       "qop=auth, nc=0000000g, cnonce=\"c\""),
			 -EBADMSG);
	/* unknown algorithm, userhash */
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", algorithm=MD5-sess"), -ENOTSUP);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", algorithm=SHA-512-256"), -ENOTSUP);
	assert_int_equal(parse("Digest username=\"bob\", " GOOD_TAIL ", userhash=true"), -ENOTSUP);
}

static void test_parser_huge(void **state)
{
	(void)state;
	static char buf[8192];
	char big[AUTH_VALUE_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(buf, sizeof(buf), "Digest username=\"%s\", " GOOD_TAIL, big);
	assert_int_equal(parse(buf), -EBADMSG);
	big[AUTH_VALUE_MAX] = '\0'; /* exactly the limit is fine */
	snprintf(buf, sizeof(buf), "Digest username=\"%s\", " GOOD_TAIL, big);
	assert_int_equal(parse(buf), 0);
	char huge[AUTH_URI_MAX + 2];
	memset(huge, 'u', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	snprintf(buf, sizeof(buf), "Digest username=\"b\", " GOOD_TAIL ", x-unknown=\"%s\"", huge);
	assert_int_equal(parse(buf), -EBADMSG);
	snprintf(buf, sizeof(buf), "Digest username=\"b\", realm=\"r\", nonce=\"n\", uri=\"%s\", response=\"00\", "
				   "qop=auth, nc=00000001, cnonce=\"c\"", huge);
	assert_int_equal(parse(buf), -EBADMSG);
	/* a response longer than any digest */
	assert_int_equal(parse("Digest username=\"b\", realm=\"r\", nonce=\"n\", uri=\"u\", qop=auth, nc=00000001, "
			       "cnonce=\"c\", response=\"00000000000000000000000000000000000000000000000000000000000000000\""),
			 -EBADMSG);
}

static void test_parser_realm_reported_on_failure(void **state)
{
	(void)state;
	struct auth_creds c;
	assert_int_equal(auth_creds_parse(S("Digest realm=\"other\", username=bad"), &c), -EBADMSG);
	assert_true(slice_eq(c.realm, S("other")));
}

static void test_creds_realm(void **state)
{
	(void)state;
	struct slice r;
	assert_true(auth_creds_realm(S("Digest username=\"u\", realm=\"example.edu\", nonce=\"n\""), &r));
	assert_true(slice_eq(r, S("example.edu")));
	assert_true(auth_creds_realm(S("Digest realm=\"other\", username=bad"), &r)); /* seen before the error */
	assert_true(slice_eq(r, S("other")));
	assert_false(auth_creds_realm(S("Digest username=\"u\", nonce=\"n\""), &r));
	assert_false(auth_creds_realm(S("Basic dTpw"), &r));
	assert_false(auth_creds_realm(S("Digest username=\"a\\\"b\", realm=\"example.edu\""), &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc2617_md5),
		cmocka_unit_test(test_rfc7616_sha256_and_md5),
		cmocka_unit_test(test_sipxecs_example),
		cmocka_unit_test(test_response_uppercase_hex_accepted),
		cmocka_unit_test(test_nonce_mac_is_plain_hmac),
		cmocka_unit_test(test_nonce_roundtrip_and_expiry),
		cmocka_unit_test(test_nonce_forged_and_tampered),
		cmocka_unit_test(test_parser_good),
		cmocka_unit_test(test_parser_not_digest),
		cmocka_unit_test(test_parser_bad),
		cmocka_unit_test(test_parser_huge),
		cmocka_unit_test(test_parser_realm_reported_on_failure),
		cmocka_unit_test(test_creds_realm),
	};
	return cmocka_run_group_tests(tests, keys_init, NULL);
}
