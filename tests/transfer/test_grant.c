/* test_grant.c - grant tokens (transfer_grant.c, SPEC §5 grant mode): round
 * trip, wrong target, expiry, tampering of every field, malformed shapes,
 * JTI uniqueness and the Refer-To length budget (base64url itself:
 * tests/core/test_b64url.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "transfer_priv.h"

static struct transfer_keys keys, other_keys;

static int setup(void **state)
{
	struct secret s = { 0 };
	s.len = 16;
	memset(s.bytes, 'k', s.len);
	for (unsigned i = 0; i < SECRET_KEY_BYTES; i++)
		s.grant_key[i] = (uint8_t)(i * 7 + 1);
	transfer_keys_init(&keys, &s);
	s.grant_key[0] ^= 1;
	transfer_keys_init(&other_keys, &s);
	return 0;
}

#define ID SLICE_LIT("1001@example.edu")
#define TARGET SLICE_LIT("1002@example.edu")
#define NOW 0x66000000ull

static struct slice issue(char *buf, size_t cap, struct slice id, struct slice target, uint64_t exp)
{
	int n = transfer_grant_issue(&keys, id, target, exp, buf, cap);
	assert_true(n > 0);
	assert_int_equal((size_t)n, transfer_grant_len(id.len, exp));
	return slice_make(buf, (size_t)n);
}

static void test_round_trip(void **state)
{
	char buf[256];
	struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
	for (size_t i = 0; i < tok.len; i++) {
		char c = tok.p[i];
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			     c == '-' || c == '_' || c == '.';
		assert_true(plain); /* nothing ever needs %-escaping */
	}
	assert_memory_equal(tok.p, "v1.MTAwMUBleGFtcGxlLmVkdQ.6600003c.", 35);
	struct transfer_grant g;
	assert_int_equal(transfer_grant_verify(&keys, tok, TARGET, NOW, &g), TRANSFER_OK);
	assert_int_equal(g.id_len, ID.len);
	assert_memory_equal(g.id, ID.p, ID.len);
	assert_int_equal(g.exp, NOW + 60);
	assert_int_equal(g.jti.len, TRANSFER_JTI_CHARS);
	assert_ptr_equal(g.jti.p, tok.p + 35);
	/* last second still valid */
	assert_int_equal(transfer_grant_verify(&keys, tok, TARGET, NOW + 60, &g), TRANSFER_OK);
}

static void test_wrong_target(void **state)
{
	char buf[256];
	struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
	struct transfer_grant g;
	assert_int_equal(transfer_grant_verify(&keys, tok, SLICE_LIT("1003@example.edu"), NOW, &g),
			 TRANSFER_WRONG_TARGET);
	assert_int_equal(transfer_grant_verify(&keys, tok, SLICE_LIT("1002@example.edu.evil"), NOW, &g),
			 TRANSFER_WRONG_TARGET);
	assert_int_equal(transfer_grant_verify(&keys, tok, SLICE_LIT(""), NOW, &g), TRANSFER_WRONG_TARGET);
}

/* flip one character of field @field (0-based, "v1" is field 0) */
static void flip_field(char *tok, size_t len, unsigned field, size_t off)
{
	unsigned f = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || tok[i] == '.') {
			if (f == field) {
				size_t at = start + off;
				assert_true(at < i);
				char c = tok[at]; /* stay in the same character class */
				if ((c >= 'a' && c <= 'y') || (c >= 'A' && c <= 'Y') || (c >= '0' && c <= '8'))
					tok[at] = (char)(c + 1);
				else
					tok[at] = c == 'z' ? 'a' : c == 'Z' ? 'A' : c == '9' ? '0' : c == '-' ? '_' : '-';
				return;
			}
			f++;
			start = i + 1;
		}
	}
	fail();
}

static void test_expired(void **state)
{
	char buf[256];
	struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
	struct transfer_grant g;
	assert_int_equal(transfer_grant_verify(&keys, tok, TARGET, NOW + 61, &g), TRANSFER_EXPIRED);
	/* a forged expired token is a bad MAC, not "expired" */
	flip_field(buf, tok.len, 4, 0);
	assert_int_equal(transfer_grant_verify(&keys, tok, TARGET, NOW + 61, &g), TRANSFER_BAD_MAC);
}

static void test_other_key(void **state)
{
	char buf[256];
	struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
	struct transfer_grant g;
	/* with another key the fingerprint differs too: any non-OK reason, never OK */
	assert_int_not_equal(transfer_grant_verify(&other_keys, tok, TARGET, NOW, &g), TRANSFER_OK);
}

static void test_tampered(void **state)
{
	struct transfer_grant g;
	char buf[256];
	/* MAC, JTI random part, expiry */
	struct {
		unsigned field;
		size_t off;
		enum transfer_result want;
	} cases[] = {
		{ 4, 0, TRANSFER_BAD_MAC },     { 4, 20, TRANSFER_BAD_MAC },
		{ 3, 0, TRANSFER_BAD_MAC },     { 3, 15, TRANSFER_BAD_MAC },
		{ 3, 16, TRANSFER_WRONG_TARGET }, { 3, 19, TRANSFER_WRONG_TARGET }, /* fingerprint chars */
		{ 2, 7, TRANSFER_BAD_MAC },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
		flip_field(buf, tok.len, cases[i].field, cases[i].off);
		assert_int_equal(transfer_grant_verify(&keys, tok, TARGET, NOW, &g), cases[i].want);
	}
}

static void test_tampered_identity(void **state)
{
	/* replace ID with another identity's encoding: MAC must fail */
	char a[256], b[256], mix[300];
	struct slice ta = issue(a, sizeof(a), ID, TARGET, NOW + 60);
	struct slice tb = issue(b, sizeof(b), SLICE_LIT("9999@example.edu"), TARGET, NOW + 60);
	const char *da = memchr(ta.p + 3, '.', ta.len - 3);
	const char *db = memchr(tb.p + 3, '.', tb.len - 3);
	size_t n = 0;
	memcpy(mix, tb.p, (size_t)(db - tb.p));
	n += (size_t)(db - tb.p);
	memcpy(mix + n, da, (size_t)(ta.p + ta.len - da));
	n += (size_t)(ta.p + ta.len - da);
	struct transfer_grant g;
	assert_int_equal(transfer_grant_verify(&keys, slice_make(mix, n), TARGET, NOW, &g), TRANSFER_BAD_MAC);
	/* a one-character change inside ID */
	flip_field(a, ta.len, 1, 2);
	assert_int_equal(transfer_grant_verify(&keys, ta, TARGET, NOW, &g), TRANSFER_BAD_MAC);
}

static void test_malformed(void **state)
{
	char buf[256];
	struct slice tok = issue(buf, sizeof(buf), ID, TARGET, NOW + 60);
	struct transfer_grant g;
	char t[300];
	const char *bad[] = {
		"", "v1", "v1.", "v1....", "v2.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
		"v1..66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
		"v1.MTAwMUBleGFtcGxlLmVkdQ.066000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000G00.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000A00.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", /* uppercase EXP */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",  /* short JTI */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAA",  /* short MAC */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAB", /* spare bits */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAA+AAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", /* not url alphabet */
		"v1.MTAwMUBleGFtcGxlLmVkdQ==.66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", /* padding */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.", /* extra field */
		"v1.MTAwMUBleGFtcGxlLmVkdQ.10000000000000000.AAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(transfer_grant_verify(&keys, slice_from_cstr(bad[i]), TARGET, NOW, &g),
				 TRANSFER_MALFORMED);
	/* truncated real token, and real token + trailing bytes */
	assert_int_equal(transfer_grant_verify(&keys, slice_make(tok.p, tok.len - 1), TARGET, NOW, &g),
			 TRANSFER_MALFORMED);
	memcpy(t, tok.p, tok.len);
	memcpy(t + tok.len, ".x", 2);
	assert_int_equal(transfer_grant_verify(&keys, slice_make(t, tok.len + 2), TARGET, NOW, &g),
			 TRANSFER_MALFORMED);
	assert_int_equal(transfer_grant_verify(&keys, slice_make(t, tok.len + 1), TARGET, NOW, &g),
			 TRANSFER_MALFORMED);
}

static void test_issue_errors(void **state)
{
	char buf[256];
	char longid[TRANSFER_ID_MAX + 1];
	memset(longid, 'a', sizeof(longid));
	assert_int_equal(transfer_grant_issue(&keys, SLICE_LIT(""), TARGET, NOW, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(transfer_grant_issue(&keys, slice_make(longid, sizeof(longid)), TARGET, NOW, buf,
					      sizeof(buf)),
			 -EINVAL);
	assert_int_equal(transfer_grant_issue(&keys, ID, SLICE_LIT(""), NOW, buf, sizeof(buf)), -EINVAL);
	size_t need = transfer_grant_len(ID.len, NOW);
	assert_int_equal(transfer_grant_issue(&keys, ID, TARGET, NOW, buf, need - 1), -ENOSPC);
	assert_int_equal(transfer_grant_issue(&keys, ID, TARGET, NOW, buf, need), (int)need);
}

static void test_jti_unique(void **state)
{
	char a[256], b[256];
	struct transfer_grant ga, gb;
	struct slice ta = issue(a, sizeof(a), ID, TARGET, NOW + 60);
	struct slice tb = issue(b, sizeof(b), ID, TARGET, NOW + 60);
	assert_int_equal(transfer_grant_verify(&keys, ta, TARGET, NOW, &ga), TRANSFER_OK);
	assert_int_equal(transfer_grant_verify(&keys, tb, TARGET, NOW, &gb), TRANSFER_OK);
	assert_false(slice_eq(ga.jti, gb.jti));
	/* same target fingerprint in both (last 4 characters = 24 bits) */
	assert_memory_equal(ga.jti.p + 16, gb.jti.p + 16, 4);
}

/* referto_with_grant - what the REFER stage writes (transfer_refer.c
 * rewrite_grant): the Refer-To rewritten by the real rewriter with the token
 * in both carriers, the refgrant URI parameter and the escaped
 * X-Sipx-Authidentity URI header holding <sip:IDENTITY;grant=TOKEN>. */
static size_t referto_with_grant(const char *referto, struct slice id, uint64_t exp, char *out, size_t cap)
{
	char tok[128], param[160], inner[512], scratch[256];
	int n = transfer_grant_issue(&keys, id, TARGET, exp, tok, sizeof(tok));
	assert_true(n > 0);
	int p = snprintf(param, sizeof(param), "refgrant=%.*s", n, tok);
	int i = transfer_identity_uri(id, "grant", slice_make(tok, (size_t)n), inner, sizeof(inner));
	assert_true(i > 0);
	struct transfer_referto r;
	assert_int_equal(transfer_referto_parse(slice_from_cstr(referto), scratch, sizeof(scratch), &r), 0);
	int len = transfer_referto_rewrite(&r, slice_make(param, (size_t)p), SLICE_LIT("X-Sipx-Authidentity"),
					   slice_make(inner, (size_t)i), out, cap);
	assert_true(len > 0);
	return (size_t)len;
}

/* Budget (baresip truncates a Refer-To at 255 characters): for an extension
 * identity of up to 17 characters ("1001@example.edu") the rewritten Refer-To
 * keeps both carriers within TRANSFER_REFERTO_MAX even with the longest expiry
 * (8 hex digits until 2106); each further identity character costs about five
 * (twice in base64, once in the escaped header), so 18 characters go over. */
static void test_length_budget(void **state)
{
	const uint64_t exp = 0xffffffffull;
	char out[1024];
	static const char *const ids[] = { "1001@example.edu", "55@example.com", "bob@example.org" };
	for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
		size_t n = referto_with_grant("<sip:1002@example.edu>", slice_from_cstr(ids[k]), exp, out, sizeof(out));
		assert_true(n <= TRANSFER_REFERTO_MAX);
		assert_non_null(memmem(out, n, ";refgrant=v1.", 13));
		assert_non_null(memmem(out, n, "?X-Sipx-Authidentity=%3Csip%3A", 30));
	}
	/* two characters more go over (the stage then keeps only refgrant) */
	size_t n = referto_with_grant("<sip:1002@example.edu>", SLICE_LIT("100123@example.edu"), exp, out, sizeof(out));
	assert_true(n > TRANSFER_REFERTO_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_wrong_target),
		cmocka_unit_test(test_expired),      cmocka_unit_test(test_other_key),
		cmocka_unit_test(test_tampered),     cmocka_unit_test(test_tampered_identity),
		cmocka_unit_test(test_malformed),    cmocka_unit_test(test_issue_errors),
		cmocka_unit_test(test_jti_unique),
		cmocka_unit_test(test_length_budget),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
