/* test_referto.c - Refer-To parsing and rewriting (transfer_referto.c,
 * SPEC §5, reference §1.3): other parameters and headers (Replaces) kept byte
 * for byte, client-injected refgrant / X-Sipx-Authidentity removed (any case,
 * even %-escaped names), display names and header parameters kept, addr-spec
 * and scheme-less forms, escaping that round-trips through sip_uri_parse +
 * sip_unescape, and the sipXecs encodeUri vectors (reference §2.6, §6.2). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transfer_priv.h"

static char scratch[1024];

static struct transfer_referto parse_ok(const char *v)
{
	struct transfer_referto r;
	assert_int_equal(transfer_referto_parse(slice_from_cstr(v), scratch, sizeof(scratch), &r), 0);
	return r;
}

static void rewrite_is(const char *in, const char *param, const char *hdr, const char *hdr_value,
		       const char *want)
{
	struct transfer_referto r = parse_ok(in);
	char out[1024];
	int n = transfer_referto_rewrite(&r, slice_from_cstr(param), slice_from_cstr(hdr),
					 slice_from_cstr(hdr_value), out, sizeof(out));
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, want);
}

#define TOK "v1.MTAwMUBleGFtcGxlLmVkdQ.66000000.AAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBA"
#define HV "<sip:1001@example.edu;grant=" TOK ">"
#define HV_ESC "%3Csip%3A1001%40example.edu%3Bgrant%3D" TOK "%3E"

static void test_preserves_everything_else(void **state)
{
	rewrite_is("\"Bob \\\"B\\\"\" <sip:1002@example.edu;transport=udp;refgrant=evil;Lr"
		   "?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2&X-Sipx-Authidentity=%3Csip%3Aevil%40x%3E"
		   "&Subject=hi%20there>;foo=bar;x",
		   "refgrant=" TOK, "X-Sipx-Authidentity", HV,
		   "\"Bob \\\"B\\\"\" <sip:1002@example.edu;transport=udp;Lr;refgrant=" TOK
		   "?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2&Subject=hi%20there"
		   "&X-Sipx-Authidentity=" HV_ESC ">;foo=bar;x");
	/* no display name, no params, no headers */
	rewrite_is("<sip:1002@example.edu>", "refgrant=" TOK, "X-Sipx-Authidentity", HV,
		   "<sip:1002@example.edu;refgrant=" TOK "?X-Sipx-Authidentity=" HV_ESC ">");
	/* token display name, IPv6-free host:port, user with escapes */
	rewrite_is("Bob <sip:%31002:pw@Example.EDU:5070;user=phone>", "refgrant=" TOK, "", "",
		   "Bob <sip:%31002:pw@Example.EDU:5070;user=phone;refgrant=" TOK ">");
}

static void test_removes_injected(void **state)
{
	/* any case, repeated, %-escaped names; only the sender's copies go */
	rewrite_is("<sip:1002@example.edu;REFGRANT=a;refgrant;refgran%74=c;refgrants=keep"
		   "?x-sipx-authidentity=1&X-Sipx-Authidentit%79=2&X-Sipx-Authidentity2=keep>",
		   "refgrant=" TOK, "X-Sipx-Authidentity", HV,
		   "<sip:1002@example.edu;refgrants=keep;refgrant=" TOK
		   "?X-Sipx-Authidentity2=keep&X-Sipx-Authidentity=" HV_ESC ">");
	/* removal only (the INVITE's Request-URI) */
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(SLICE_LIT("sip:1002@example.edu;refgrant=" TOK ";transport=udp"), &u), 0);
	char out[256];
	int n = transfer_uri_rewrite(&u, SLICE_NULL, SLICE_NULL, SLICE_NULL, out, sizeof(out));
	assert_int_equal(n, (int)strlen("sip:1002@example.edu;transport=udp"));
	assert_memory_equal(out, "sip:1002@example.edu;transport=udp", (size_t)n);
}

static void test_addr_spec_and_schemeless(void **state)
{
	/* addr-spec: ';' starts header params, brackets are added around the URI */
	rewrite_is("sip:1002@example.edu;foo=bar", "refgrant=" TOK, "", "",
		   "<sip:1002@example.edu;refgrant=" TOK ">;foo=bar");
	/* scheme-less (sipXecs reads it as sip:) */
	struct transfer_referto r = parse_ok("other@example.edu");
	assert_true(r.schemeless);
	assert_true(transfer_referto_applies(&r));
	rewrite_is("other@example.edu", "refgrant=" TOK, "", "", "<sip:other@example.edu;refgrant=" TOK ">");
	/* reference §6.1 UnAuthenticatedReferWithReplaces: scheme-less, Replaces decodes intact */
	r = parse_ok("<other@example.edu;transport=udp?replaces=valid%40callid%3Bto-tag%3Dtotagvalue%3Bfrom-tag%3dfromtagvalue>");
	assert_true(r.schemeless);
	assert_true(transfer_referto_applies(&r));
	assert_true(slice_eq(r.uri.host, SLICE_LIT("example.edu")));
	char out[1024];
	int n = transfer_referto_rewrite(&r, SLICE_LIT("refgrant=" TOK), SLICE_LIT("X-Sipx-Authidentity"),
					 SLICE_LIT(HV), out, sizeof(out));
	assert_true(n > 0);
	struct transfer_referto back;
	assert_int_equal(transfer_referto_parse(slice_make(out, (size_t)n), scratch + 512, 512, &back), 0);
	assert_false(back.schemeless);
	struct slice rep;
	assert_true(sip_uri_header(&back.uri, SLICE_LIT("replaces"), &rep));
	char dec[128];
	int d = sip_unescape(rep, dec, sizeof(dec));
	assert_int_equal(d, (int)strlen("valid@callid;to-tag=totagvalue;from-tag=fromtagvalue"));
	assert_memory_equal(dec, "valid@callid;to-tag=totagvalue;from-tag=fromtagvalue", (size_t)d);
}

/* the token survives both carriers: URI parameter as is, URI header after one unescape */
static void test_escaping_round_trip(void **state)
{
	const char *ids[] = { "1001@example.edu", "alice.smith@pbx.example.com" };
	for (size_t k = 0; k < 2; k++) {
		char hv[256];
		snprintf(hv, sizeof(hv), "<sip:%s;grant=" TOK ">", ids[k]);
		struct transfer_referto r = parse_ok("\"Carol\" <sip:1002@example.edu?Replaces=a%40b>");
		char out[1024];
		int n = transfer_referto_rewrite(&r, SLICE_LIT("refgrant=" TOK), SLICE_LIT("X-Sipx-Authidentity"),
						 slice_from_cstr(hv), out, sizeof(out));
		assert_true(n > 0);
		struct sip_nameaddr na;
		struct sip_uri u, inner;
		assert_int_equal(sip_nameaddr_parse(slice_make(out, (size_t)n), &na), 0);
		assert_true(slice_eq(na.display, SLICE_LIT("Carol")));
		assert_int_equal(sip_uri_parse(na.uri, &u), 0);
		struct slice v;
		assert_true(sip_uri_param(&u, SLICE_LIT("refgrant"), &v));
		assert_true(slice_eq(v, SLICE_LIT(TOK)));
		assert_true(sip_uri_header(&u, SLICE_LIT("X-Sipx-Authidentity"), &v));
		char dec[256];
		int d = sip_unescape(v, dec, sizeof(dec));
		assert_int_equal(d, (int)strlen(hv));
		assert_memory_equal(dec, hv, (size_t)d);
		/* the decoded header value is what the transferee sends back */
		assert_int_equal(sip_nameaddr_parse(slice_make(dec, (size_t)d), &na), 0);
		assert_int_equal(sip_uri_parse(na.uri, &inner), 0);
		assert_true(sip_uri_param(&inner, SLICE_LIT("grant"), &v));
		assert_true(slice_eq(v, SLICE_LIT(TOK)));
		assert_true(sip_uri_header(&u, SLICE_LIT("Replaces"), &v));
		assert_true(slice_eq(v, SLICE_LIT("a%40b")));
	}
}

static void test_applies(void **state)
{
	struct {
		const char *v;
		bool applies;
	} cases[] = {
		{ "<sip:else@where;method=INFO>", false }, /* reference §6.1 nonInviteRefer */
		{ "<sip:else@where;method=invite>", true },
		{ "<sip:else@where;method=INVITE>", true },
		{ "<SIP:else@where>", true },
		{ "<sips:1002@example.edu>", false },
		{ "<tel:+15551234>", false },
		{ "<http://example.edu/x>", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct transfer_referto r = parse_ok(cases[i].v);
		if (transfer_referto_applies(&r) != cases[i].applies)
			fail_msg("applies(%s) != %d", cases[i].v, cases[i].applies);
	}
	struct transfer_referto r;
	assert_int_equal(transfer_referto_parse(SLICE_LIT("<sip:1002@example.edu"), scratch, sizeof(scratch), &r),
			 -EBADMSG);
	assert_int_equal(transfer_referto_parse(SLICE_LIT(""), scratch, sizeof(scratch), &r), -EBADMSG);
}

static void test_target_canon(void **state)
{
	struct {
		const char *uri, *want;
	} cases[] = {
		{ "sip:1002@example.edu", "1002@example.edu" },
		{ "sip:%31002@EXAMPLE.edu:5060;user=phone?X=y", "1002@example.edu" },
		{ "sip:Alice@Example.Edu", "Alice@example.edu" }, /* user case kept */
		{ "sip:example.edu", "@example.edu" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sip_uri u;
		char out[128];
		assert_int_equal(sip_uri_parse(slice_from_cstr(cases[i].uri), &u), 0);
		int n = transfer_target_canon(&u, out, sizeof(out));
		assert_true(n > 0);
		out[n] = '\0';
		assert_string_equal(out, cases[i].want);
	}
	struct sip_uri u;
	char out[8];
	assert_int_equal(sip_uri_parse(SLICE_LIT("sip:%zz@example.edu"), &u), 0);
	assert_true(transfer_target_canon(&u, out, sizeof(out)) < 0);
	assert_int_equal(sip_uri_parse(SLICE_LIT("sip:1002@example.edu"), &u), 0);
	assert_int_equal(transfer_target_canon(&u, out, sizeof(out)), -ENOSPC);
}

/* reference §6.2 testIdentityEncodeUriBound/UnBound: an existing
 * X-sipX-Authidentity URI header is replaced; the result is the §2.6 string. */
static void test_sipx_encode_uri(void **state)
{
	const char *dir = getenv("REFEREE_SHARED_DIR");
	assert_non_null(dir);
	char path[1024];
	snprintf(path, sizeof(path), "%s/reference/sipxecs-behaviour.md", dir);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *ref = calloc(1, 1 << 20);
	assert_true(fread(ref, 1, (1 << 20) - 1, f) > 0);
	fclose(f);
	const char *uris[] = { "sip:newdestination@newdomain", "sip:newdestination@newdomain?X-sipX-Authidentity=BlahBlah" };
	for (int bound = 0; bound < 2; bound++) {
		char sig[64], esc[128], hv[256], out[512];
		int n = transfer_sipx_sign((const uint8_t *)"testsecret", 10, 0x46A55D33, bound,
					   SLICE_LIT("30543f3483e1cb11ecb40866edd3295b"),
					   SLICE_LIT("f88dfabce84b6a2787ef024a7dbe8749"), SLICE_LIT("identity@example.com"),
					   sig, sizeof(sig));
		int e = transfer_escape(slice_make(sig, (size_t)n), esc, sizeof(esc));
		snprintf(hv, sizeof(hv), "<sip:identity@example.com;signature=%.*s>", e, esc);
		for (int k = 0; k < 2; k++) {
			struct transfer_referto r = parse_ok(uris[k]);
			n = transfer_referto_rewrite(&r, SLICE_NULL, SLICE_LIT("X-sipX-Authidentity"),
						     slice_from_cstr(hv), out, sizeof(out));
			assert_true(n > 0);
			out[n] = '\0';
			if (!strstr(ref, out))
				fail_msg("reference does not contain %s", out);
		}
	}
	free(ref);
}

static void test_no_space(void **state)
{
	struct transfer_referto r = parse_ok("<sip:1002@example.edu>");
	char out[64];
	assert_int_equal(transfer_referto_rewrite(&r, SLICE_LIT("refgrant=" TOK), SLICE_NULL, SLICE_NULL, out,
						  sizeof(out)),
			 -ENOSPC);
	assert_int_equal(transfer_referto_parse(SLICE_LIT("other@example.edu"), scratch, 10, &r), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preserves_everything_else),
		cmocka_unit_test(test_removes_injected),
		cmocka_unit_test(test_addr_spec_and_schemeless),
		cmocka_unit_test(test_escaping_round_trip),
		cmocka_unit_test(test_applies),
		cmocka_unit_test(test_target_canon),
		cmocka_unit_test(test_sipx_encode_uri),
		cmocka_unit_test(test_no_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
