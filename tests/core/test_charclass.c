/* test_charclass.c - the byte-class table (core/charclass.c) against the
 * RFC 3261 §25.1 definitions written out independently, for all 256 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "charclass.h"

static bool alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool in(int c, const char *set)
{
	return c != 0 && strchr(set, c) != NULL;
}

static void test_table_matches_rfc3261(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		const char ch = (char)c;
		const bool uri = c >= 0x21 && c != 0x7f && !in(c, "<>\"");
		assert_int_equal(sip_cc_is(ch, SIP_CC_TOKEN), alnum(c) || in(c, "-.!%*_+`'~"));
		assert_int_equal(sip_cc_is(ch, SIP_CC_WS), c == ' ' || c == '\t');
		assert_int_equal(sip_cc_is(ch, SIP_CC_LWS), in(c, " \t\r\n"));
		assert_int_equal(sip_cc_is(ch, SIP_CC_DIGIT), c >= '0' && c <= '9');
		assert_int_equal(sip_cc_is(ch, SIP_CC_HEX), (c >= '0' && c <= '9') || in(c, "abcdefABCDEF"));
		assert_int_equal(sip_cc_is(ch, SIP_CC_HOST), alnum(c) || in(c, "-._"));
		assert_int_equal(sip_cc_is(ch, SIP_CC_URI), uri);
		assert_int_equal(sip_cc_is(ch, SIP_CC_PVAL), uri && !in(c, ";,="));
	}
}

static void test_skip_lws(void **state)
{
	(void)state;
	const char s[] = " \t\r\n x";
	assert_int_equal(sip_skip_lws(s, 0, sizeof(s) - 1), 5);
	assert_int_equal(sip_skip_lws(s, 5, sizeof(s) - 1), 5);
	assert_int_equal(sip_skip_lws(s, 0, 3), 3); /* stops at the end it is given */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_rfc3261),
		cmocka_unit_test(test_skip_lws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
