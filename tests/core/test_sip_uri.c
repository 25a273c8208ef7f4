/* test_sip_uri.c - unit tests of the sub-parsers: sip_uri_parse (RFC 3261
 * §19.1, IPv6 references per RFC 5118), URI params/headers, sip_unescape,
 * sip_nameaddr_parse, sip_param_find, sip_via_parse and sip_cseq_parse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sip.h"

static bool eq(struct slice s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static struct slice S(const char *s) {
	return slice_make(s, strlen(s));
}

/* ---------------------------------------------------------------- URIs */

static void
test_uri_full(void **state)
{
	struct sip_uri u;
	const char *s = "sips:alice:secret@Example.COM:5061;transport=tcp;lr;maddr=10.0.0.1"
			"?Subject=hi%20there&Priority=urgent";
	assert_int_equal(sip_uri_parse(S(s), &u), 0);
	assert_true(eq(u.scheme, "sips"));
	assert_true(sip_uri_is_sip(&u));
	assert_true(eq(u.user, "alice"));
	assert_true(eq(u.password, "secret"));
	assert_true(eq(u.host, "Example.COM"));
	assert_true(u.has_port);
	assert_int_equal(u.port, 5061);
	assert_false(u.host_is_ipv4 || u.host_is_ipv6);
	assert_true(eq(u.params, ";transport=tcp;lr;maddr=10.0.0.1"));
	assert_true(eq(u.headers, "?Subject=hi%20there&Priority=urgent"));
	assert_true(eq(u.whole, s));
	struct slice v;
	assert_true(sip_uri_param(&u, SLICE_LIT("TRANSPORT"), &v));
	assert_true(eq(v, "tcp"));
	assert_true(sip_uri_param(&u, SLICE_LIT("lr"), &v));
	assert_int_equal(v.len, 0);
	assert_true(sip_uri_param(&u, SLICE_LIT("maddr"), &v));
	assert_true(eq(v, "10.0.0.1"));
	assert_false(sip_uri_param(&u, SLICE_LIT("l"), &v));
	assert_false(sip_uri_param(&u, SLICE_LIT("ttl"), NULL));
	assert_true(sip_uri_header(&u, SLICE_LIT("subject"), &v));
	assert_true(eq(v, "hi%20there"));
	assert_true(sip_uri_header(&u, SLICE_LIT("Priority"), &v));
	assert_true(eq(v, "urgent"));
	assert_false(sip_uri_header(&u, SLICE_LIT("Route"), &v));
}

static void test_uri_simple_forms(void **state)
{
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(S("SIP:example.com"), &u), 0);
	assert_true(sip_uri_is_sip(&u));
	assert_int_equal(u.user.len, 0);
	assert_true(eq(u.host, "example.com"));
	assert_false(u.has_port);
	assert_int_equal(u.port, 0);
	assert_int_equal(sip_uri_parse(S("sip:192.0.2.4:5060"), &u), 0);
	assert_true(u.host_is_ipv4);
	assert_int_equal(u.port, 5060);
	assert_int_equal(sip_uri_parse(S("sip:192.0.2.256"), &u), 0);
	assert_false(u.host_is_ipv4); /* a (strange) host name, not an address */
	assert_int_equal(sip_uri_parse(S("sip:user;par=u%40example.net@example.com;lr"), &u), 0);
	assert_true(eq(u.user, "user;par=u%40example.net"));
	assert_true(eq(u.params, ";lr"));
	/* other schemes stay opaque */
	assert_int_equal(sip_uri_parse(S("tel:+1-201-555-0123;phone-context=x"), &u), 0);
	assert_false(sip_uri_is_sip(&u));
	assert_true(eq(u.scheme, "tel"));
	assert_true(eq(u.user, "+1-201-555-0123;phone-context=x"));
	assert_int_equal(u.host.len, 0);
	assert_int_equal(sip_uri_parse(S("nobodyKnowsThisScheme:totallyopaquecontent"), &u), 0);
	assert_int_equal(sip_uri_parse(S("soap.beep://192.0.2.103:3002"), &u), 0);
}

static void test_uri_errors(void **state)
{
	const char *bad[] = {"",
			     "sip",
			     "sip:",
			     "sip:@host",
			     "sip:user@",
			     "sip:host:",
			     "sip:host:70000",
			     "sip:host:123456",
			     "sip:host:12a",
			     "sip:a b@host",
			     "<sip:a@b>",
			     "1sip:a@b",
			     "sip:host;lr>",
			     "sip:a\"b@host",
			     "tel:",
			     "sip:2001:db8::10",
			     "sip:[2001:db8::10",
			     "sip:[2001:db8::10]x",
			     "sip:[]",
			     "sip:[::g]",
			     "sip:[1:2:3:4:5:6:7:8:9]",
			     "sip:[1:2:3:4:5:6:7]",
			     "sip:[1::2::3]",
			     "sip:[2001:db8:::1]",
			     "sip:[:1::]",
			     "sip:[1::2:]",
			     "sip:[12345::]",
			     "sip:[::1.2.3]",
			     "sip:[::1.2.3.400]",
			     "sip:[2001:db8::::1.2.3.4]"};
	struct sip_uri u;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sip_uri_parse(S(bad[i]), &u) != -EBADMSG)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_uri_ipv6(void **state)
{
	const char *good[] = {"sip:[::1]",
			      "sip:[2001:db8::1]:5061",
			      "sip:[::ffff:192.0.2.10]:19823",
			      "sip:[2001:db8::192.0.2.1]",
			      "sip:[2001:db8:::192.0.2.1]",
			      "sip:[1:2:3:4:5:6:7:8]",
			      "sip:[1:2:3:4:5:6::]",
			      "sip:[::]",
			      "sip:user@[2001:DB8::9:1];transport=udp"};
	struct sip_uri u;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (sip_uri_parse(S(good[i]), &u) != 0)
			fail_msg("'%s' rejected", good[i]);
		assert_true(u.host_is_ipv6);
		assert_int_equal(u.host.p[0], '[');
		assert_int_equal(u.host.p[u.host.len - 1], ']');
	}
	assert_int_equal(sip_uri_parse(S("sip:[2001:db8::1]:5061"), &u), 0);
	assert_true(eq(u.host, "[2001:db8::1]"));
	assert_int_equal(u.port, 5061);
	assert_int_equal(sip_uri_parse(S("sip:[2001:db8::10:5070]"), &u), 0);
	assert_false(u.has_port);
}

static void test_unescape(void **state)
{
	char out[16];
	assert_int_equal(sip_unescape(S("%41%62c"), out, sizeof(out)), 3);
	assert_memory_equal(out, "Abc", 3);
	assert_int_equal(sip_unescape(S("a%00b"), out, sizeof(out)), 3);
	assert_memory_equal(out, "a\0b", 3);
	assert_int_equal(sip_unescape(S("%2541"), out, sizeof(out)), 3);
	assert_memory_equal(out, "%41", 3); /* decoded once only */
	assert_int_equal(sip_unescape(S(""), out, sizeof(out)), 0);
	assert_int_equal(sip_unescape(S("%4"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_unescape(S("ab%"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_unescape(S("%G1"), out, sizeof(out)), -EBADMSG);
	assert_int_equal(sip_unescape(S("abcd"), out, 3), -ENOSPC);
	assert_int_equal(sip_unescape(S("abc"), out, 3), 3);
}

/* ---------------------------------------------------------------- name-addr */

static void test_nameaddr_forms(void **state)
{
	struct sip_nameaddr na;
	assert_int_equal(sip_nameaddr_parse(S("\"J \\\"R\\\" Doe\" <sip:j@x>;tag=1"), &na), 0);
	assert_true(eq(na.display, "J \\\"R\\\" Doe"));
	assert_true(eq(na.uri, "sip:j@x"));
	assert_true(na.bracketed);
	assert_true(eq(na.params, ";tag=1"));
	assert_int_equal(sip_nameaddr_parse(S("  Bob   Smith <sip:b@x> "), &na), 0);
	assert_true(eq(na.display, "Bob   Smith"));
	assert_int_equal(na.params.len, 0);
	assert_int_equal(sip_nameaddr_parse(S("J\xc3\xbcrgen M\xc3\xbcller <sip:j@x>"), &na), 0);
	assert_int_equal(na.display.len, 15);
	assert_int_equal(sip_nameaddr_parse(S("caller<sip:caller@example.com>;tag=323"), &na), 0);
	assert_true(eq(na.display, "caller"));
	assert_true(eq(na.params, ";tag=323"));
	assert_int_equal(sip_nameaddr_parse(S("<sip:a@b;lr;x=y>"), &na), 0);
	assert_int_equal(na.display.len, 0);
	assert_true(eq(na.uri, "sip:a@b;lr;x=y"));
	/* addr-spec: ';' starts header params, not URI params (RFC 4475 cparam01) */
	assert_int_equal(sip_nameaddr_parse(S("sip:a@b;unknownparam;tag=x"), &na), 0);
	assert_false(na.bracketed);
	assert_true(eq(na.uri, "sip:a@b"));
	assert_true(eq(na.params, ";unknownparam;tag=x"));
	assert_int_equal(sip_nameaddr_parse(S("<sip:a@b;unknownparam>"), &na), 0);
	assert_true(eq(na.uri, "sip:a@b;unknownparam"));
	/* folded LWS around params, quoted value with ';' and ',' */
	assert_int_equal(sip_nameaddr_parse(S("<sip:a@b>\r\n ;\r\n q = 0.5 ; x=\"a;b,c\""), &na),
			 0);
	struct slice v;
	assert_true(sip_param_find(na.params, SLICE_LIT("Q"), &v));
	assert_true(eq(v, "0.5"));
	assert_true(sip_param_find(na.params, SLICE_LIT("x"), &v));
	assert_true(eq(v, "\"a;b,c\""));
	assert_false(sip_param_find(na.params, SLICE_LIT("tag"), &v));
	/* space inside <> is trimmed (RFC 4475 badaspec tolerated) */
	assert_int_equal(sip_nameaddr_parse(S("\"W\" < sip:w@x >"), &na), 0);
	assert_true(eq(na.uri, "sip:w@x"));
	/* display name with quoted-pairs of control bytes (RFC 4475 intmeth) */
	static const char ctl[] = "\"BEL:\\\x07 NUL:\\\0 DEL:\\\x7f\" <sip:a@b>";
	assert_int_equal(sip_nameaddr_parse(slice_make(ctl, sizeof(ctl) - 1), &na), 0);
	assert_int_equal(na.display.len, 20);
}

static void test_nameaddr_errors(void **state)
{
	const char *bad[] = {"",
			     "   ",
			     "\"Mr. J. User <sip:j.user@example.com>",
			     "<sip:a@b",
			     "Bell, Alexander <sip:a@b>",
			     "\"x\" sip:a@b",
			     "<>",
			     "<sip:a@b> junk",
			     "<sip:a@b>;;tag=1",
			     "<sip:a@b>;tag=",
			     "<sip:a@b>;=x",
			     "sip:a@b c",
			     "<sip:a@b>;x=\"open",
			     "\"a\\"};
	struct sip_nameaddr na;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sip_nameaddr_parse(S(bad[i]), &na) != -EBADMSG)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_param_find(void **state)
{
	struct slice v;
	const struct slice p = S(";lr;Tag=abc ; expires = 60;x=\"q\"");
	assert_true(sip_param_find(p, SLICE_LIT("lr"), &v));
	assert_int_equal(v.len, 0);
	assert_true(sip_param_find(p, SLICE_LIT("tag"), &v));
	assert_true(eq(v, "abc"));
	assert_true(sip_param_find(p, SLICE_LIT("EXPIRES"), &v));
	assert_true(eq(v, "60"));
	assert_true(sip_param_find(p, SLICE_LIT("x"), NULL));
	assert_false(sip_param_find(p, SLICE_LIT("ex"), &v));
	assert_false(sip_param_find(SLICE_NULL, SLICE_LIT("lr"), &v));
}

/* ---------------------------------------------------------------- Via, CSeq */

static void test_via(void **state)
{
	struct sip_via v;
	assert_int_equal(
	    sip_via_parse(S("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=10.1.1.1"),
			  &v),
	    0);
	assert_true(eq(v.proto, "SIP/2.0/UDP"));
	assert_true(eq(v.transport, "UDP"));
	assert_true(eq(v.host, "192.0.2.1"));
	assert_int_equal(v.port, 5060);
	assert_true(eq(v.branch, "z9hG4bK1"));
	assert_true(eq(v.received, "10.1.1.1"));
	assert_true(v.has_rport);
	assert_int_equal(v.rport.len, 0);
	assert_true(eq(v.params, ";branch=z9hG4bK1;rport;received=10.1.1.1"));
	assert_int_equal(
	    sip_via_parse(
		S(" SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  "),
		&v),
	    0);
	assert_true(eq(v.transport, "TCP"));
	assert_true(eq(v.host, "spindle.example.com"));
	assert_int_equal(v.port, 0);
	assert_true(eq(v.branch, "z9hG4bK9ikj8"));
	assert_int_equal(
	    sip_via_parse(S("SIP/2.0/TLS "
			    "[2001:db8::9:1]:6050;Branch=zz;RPORT=4321;received=[2001:db8::9:255]"),
			  &v),
	    0);
	assert_true(eq(v.host, "[2001:db8::9:1]"));
	assert_int_equal(v.port, 6050);
	assert_true(eq(v.branch, "zz"));
	assert_true(eq(v.rport, "4321"));
	assert_true(eq(v.received, "[2001:db8::9:255]"));
	assert_int_equal(sip_via_parse(S("SIP/2.0/UNKNOWN h"), &v), 0);
	assert_int_equal(v.branch.len, 0);
	assert_int_equal(v.params.len, 0);
	const char *bad[] = {"",
			     "SIP/2.0/UDP",
			     "SIP/2.0/UDP ",
			     "SIP/2.0 UDP h",
			     "SIP/2.0/UDPh",
			     "SIP/2.0/UDP h;;",
			     "SIP/2.0/UDP h;branch",
			     "SIP/2.0/UDP h;branch=",
			     "SIP/2.0/UDP h:abc",
			     "SIP/2.0/UDP 2001:db8::1",
			     "SIP/2.0/UDP h x",
			     "SIP//UDP h"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sip_via_parse(S(bad[i]), &v) != -EBADMSG)
			fail_msg("'%s' accepted", bad[i]);
}

static void test_cseq(void **state)
{
	uint32_t n = 7;
	struct slice m;
	assert_int_equal(sip_cseq_parse(S("1 INVITE"), &n, &m), 0);
	assert_int_equal(n, 1);
	assert_true(eq(m, "INVITE"));
	assert_int_equal(sip_cseq_parse(S(" 0009\r\n  INVITE "), &n, &m), 0);
	assert_int_equal(n, 9);
	assert_true(eq(m, "INVITE"));
	assert_int_equal(sip_cseq_parse(S("4294967295 X"), &n, &m), 0);
	assert_int_equal(n, 4294967295u);
	const char *bad[] = {"",
			     "1",
			     "INVITE",
			     "1INVITE",
			     "4294967296 INVITE",
			     "36893488147419103232 REGISTER",
			     "1 INVITE x",
			     "-1 INVITE",
			     "1 IN<VITE"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sip_cseq_parse(S(bad[i]), &n, &m) != -EBADMSG)
			fail_msg("'%s' accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_full),
	    cmocka_unit_test(test_uri_simple_forms),
	    cmocka_unit_test(test_uri_errors),
	    cmocka_unit_test(test_uri_ipv6),
	    cmocka_unit_test(test_unescape),
	    cmocka_unit_test(test_nameaddr_forms),
	    cmocka_unit_test(test_nameaddr_errors),
	    cmocka_unit_test(test_param_find),
	    cmocka_unit_test(test_via),
	    cmocka_unit_test(test_cseq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
