/* test_sip_parse.c - unit tests of sip_parse (start line, header section,
 * folding, compact names, comma splitting, framing, scalars, limits), the
 * header/method tables derived from SIP_HEADER_LIST and sip_msg_check.
 * Truncated inputs are copied into exact-size heap buffers so ASan sees any
 * read past the end. RFC 3261 §7, §18.3, §20. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sip.h"

static struct sip_msg msg;

static int parse(const char *s) { return sip_parse(s, strlen(s), &msg); }

static bool eq(struct slice s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static int count_id(enum sip_hdr_id id)
{
	int n = 0;
	for (unsigned i = 0; i < msg.n_hdrs; i++)
		n += msg.hdrs[i].id == id;
	return n;
}

#define INVITE_HEAD                                                                                \
	"INVITE sip:bob@example.com SIP/2.0\r\n"                                                   \
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"                              \
	"Max-Forwards: 70\r\n"                                                                     \
	"To: Bob <sip:bob@example.com>\r\n"                                                        \
	"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"                                   \
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n"                                             \
	"CSeq: 314159 INVITE\r\n"                                                                  \
	"Contact: <sip:alice@pc33.example.com>\r\n"

static const char invite[] = INVITE_HEAD "Content-Type: application/sdp\r\n"
					 "Content-Length: 4\r\n"
					 "\r\n"
					 "v=0\n";

/* ---------------------------------------------------------------- tables */

static void test_header_table_round_trip(void **state)
{
	int rows = 0;
	/* clang-format off */
#define X(e, name, compact, flags)                                                             \
	do {                                                                                   \
		char up[64], low[64];                                                          \
		const size_t n = strlen(name);                                                 \
		for (size_t i = 0; i < n; i++) {                                               \
			up[i] = (char)((name[i] >= 'a' && name[i] <= 'z') ? name[i] - 32 : name[i]); \
			low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]); \
		}                                                                              \
		assert_int_equal(sip_hdr_id_lookup(SLICE_LIT(name)), SIP_HDR_##e);             \
		assert_int_equal(sip_hdr_id_lookup(slice_make(up, n)), SIP_HDR_##e);           \
		assert_int_equal(sip_hdr_id_lookup(slice_make(low, n)), SIP_HDR_##e);          \
		assert_true(slice_eq(sip_hdr_name(SIP_HDR_##e), SLICE_LIT(name)));              \
		assert_int_equal(sip_hdr_flags(SIP_HDR_##e), (flags));                         \
		if (compact) {                                                                 \
			char c[2] = { (char)(compact), (char)((compact) - 32) };               \
			assert_int_equal(sip_hdr_id_lookup(slice_make(c, 1)), SIP_HDR_##e);    \
			assert_int_equal(sip_hdr_id_lookup(slice_make(c + 1, 1)), SIP_HDR_##e); \
		}                                                                              \
		rows++;                                                                        \
	} while (0);
	SIP_HEADER_LIST(X)
#undef X
	/* clang-format on */
	assert_int_equal(rows, SIP_HDR_COUNT - 1);
	assert_int_equal(sip_hdr_id_lookup(SLICE_LIT("X-Foo")), SIP_HDR_OTHER);
	assert_int_equal(sip_hdr_id_lookup(SLICE_LIT("Viaa")), SIP_HDR_OTHER);
	assert_int_equal(sip_hdr_id_lookup(SLICE_LIT("Vi")), SIP_HDR_OTHER);
	assert_int_equal(sip_hdr_id_lookup(SLICE_LIT("C%6Fntact")), SIP_HDR_OTHER);
	assert_int_equal(sip_hdr_id_lookup(SLICE_LIT("z")), SIP_HDR_OTHER);
	assert_int_equal(sip_hdr_id_lookup(SLICE_NULL), SIP_HDR_OTHER);
}

static void test_method_table(void **state)
{
	for (int m = 1; m < SIP_METHOD_COUNT; m++)
		assert_int_equal(sip_method_lookup(sip_method_name((enum sip_method)m)), m);
	assert_int_equal(sip_method_lookup(SLICE_LIT("invite")), SIP_METHOD_OTHER);
	assert_int_equal(sip_method_lookup(SLICE_LIT("INVITEX")), SIP_METHOD_OTHER);
	assert_int_equal(sip_method_lookup(SLICE_LIT("RE%47IST%45R")), SIP_METHOD_OTHER);
	assert_int_equal(sip_method_lookup(SLICE_LIT("IN")), SIP_METHOD_OTHER);
}

/* ---------------------------------------------------------------- basic parse */

static void test_invite(void **state)
{
	const int rc = parse(invite);
	assert_int_equal(rc, (int)strlen(invite));
	assert_int_equal(msg.len, rc);
	assert_true(msg.is_request);
	assert_true(eq(msg.method, "INVITE"));
	assert_int_equal(msg.method_id, SIP_METHOD_INVITE);
	assert_true(eq(msg.ruri, "sip:bob@example.com"));
	assert_true(eq(msg.version, "SIP/2.0"));
	assert_int_equal(msg.start_line_len, strlen("INVITE sip:bob@example.com SIP/2.0\r\n"));
	assert_int_equal(msg.n_hdrs, 9);
	assert_int_equal(msg.cseq, 314159);
	assert_true(eq(msg.cseq_method, "INVITE"));
	assert_true(msg.has_max_forwards);
	assert_int_equal(msg.max_forwards, 70);
	assert_true(eq(msg.call_id, "a84b4c76e66710@pc33.example.com"));
	assert_true(eq(msg.body, "v=0\n"));
	assert_true(msg.seen & (1ull << SIP_HDR_VIA));
	assert_false(msg.seen & (1ull << SIP_HDR_ROUTE));
	assert_int_equal(msg.first[SIP_HDR_ROUTE], SIP_NO_HDR);
	assert_null(sip_msg_hdr(&msg, SIP_HDR_ROUTE));
	const struct sip_hdr *h = sip_msg_hdr(&msg, SIP_HDR_TO);
	assert_non_null(h);
	assert_true(eq(h->name, "To"));
	assert_true(eq(h->value, "Bob <sip:bob@example.com>"));
	assert_true(eq(slice_make(msg.buf + h->line_off, h->line_len),
		       "To: Bob <sip:bob@example.com>\r\n"));
	assert_memory_equal(msg.buf + msg.hdr_end, "\r\n", 2);
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK);
}

static void test_response(void **state)
{
	static const char r[] = "SIP/2.0 180 Ringing\r\n"
				"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
				"To: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\n"
				"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(parse(r), (int)strlen(r));
	assert_false(msg.is_request);
	assert_int_equal(msg.status, 180);
	assert_true(eq(msg.reason, "Ringing"));
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK);
	/* status codes: 3 digits, 100..699 */
	assert_true(parse("SIP/2.0 200\r\nCall-ID: x\r\n\r\n") >= 0);
	assert_int_equal(msg.status, 200);
	assert_true(parse("SIP/2.0 099 Low\r\nCall-ID: x\r\n\r\n") < 0);
	assert_true(parse("SIP/2.0 700 High\r\nCall-ID: x\r\n\r\n") < 0);
	assert_true(parse("SIP/2.0 1000 Long\r\nCall-ID: x\r\n\r\n") < 0);
	assert_true(parse("SIP/2.0 4294967301 Big\r\nCall-ID: x\r\n\r\n") < 0);
	assert_true(parse("SIP/2.0 2x0 Bad\r\nCall-ID: x\r\n\r\n") < 0);
	assert_true(parse("SIP/2.0 20\r\n\r\n") < 0);
	assert_false(msg.is_request);
}

static void test_request_line_errors(void **state)
{
	assert_int_equal(parse("INVITE  sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("INVITE sip:a@b SIP/2.0 \r\nCall-ID: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(msg.version.len, 0); /* not a 505 case */
	assert_int_equal(parse("INVITE sip:a@b\r\nCall-ID: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("INVITE sip:a@b HTTP/1.1\r\nCall-ID: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("INVITE <sip:a@b> SIP/2.0\r\nCall-ID: x\r\n\r\n"), -EBADMSG);
	/* headers are still there after a start-line error, enough to answer 400 */
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_CALL_ID));
	assert_int_equal(parse("INV@ITE sip:a@b SIP/2.0\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("no line end"), -EBADMSG);
	assert_int_equal(parse(""), -EBADMSG);
	assert_int_equal(parse("\r\n\r\n"), -EBADMSG);
	/* other versions parse; sip_msg_check answers 505 */
	assert_true(parse("OPTIONS sip:a@b SIP/7.0\r\n\r\n") >= 0);
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_BAD_VERSION);
}

static void test_leading_crlf_skipped(void **state)
{
	char buf[sizeof(invite) + 4];
	memcpy(buf, "\r\n\r\n", 4);
	memcpy(buf + 4, invite, sizeof(invite));
	assert_int_equal(sip_parse(buf, sizeof(buf) - 1, &msg), (int)sizeof(buf) - 1);
	assert_ptr_equal(msg.buf, buf + 4);
	assert_int_equal(msg.len, strlen(invite));
}

/* ---------------------------------------------------------------- header section */

static void test_compact_and_lws(void **state)
{
	static const char s[] = "BYE sip:a@b SIP/2.0\r\n"
				"v : SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
				"f:<sip:a@b>;tag=1\r\n"
				"T\t:\t<sip:c@d>\r\n"
				"I:   cid  \r\n"
				"CSEQ: 2 BYE\r\n"
				"m: <sip:a@h>\r\n"
				"k: timer\r\n"
				"L: 0\r\n\r\n";
	assert_int_equal(parse(s), (int)strlen(s));
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_VIA));
	assert_true(eq(sip_msg_hdr(&msg, SIP_HDR_VIA)->name, "v"));
	assert_true(eq(sip_msg_hdr(&msg, SIP_HDR_TO)->value, "<sip:c@d>"));
	assert_true(eq(msg.call_id, "cid"));
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_CONTACT));
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_SUPPORTED));
	assert_true(msg.has_content_length);
	assert_non_null(sip_msg_hdr_by_name(&msg, SLICE_LIT("Content-Length")));
	assert_non_null(sip_msg_hdr_by_name(&msg, SLICE_LIT("l")));
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK);
}

static void test_comma_split(void **state)
{
	static const char s[] =
	    INVITE_HEAD "Contact: \"Doe, John\" <sip:j@x>, <sip:a@b;p=1,2>;q=0.5 ,sip:c@d\r\n"
			"Supported: a,,b ,\r\n"
			"Subject: not, split\r\n"
			"Via: SIP/2.0/UDP h2;x=\"a,b\", SIP/2.0/TCP h3\r\n"
			"Allow:\r\n"
			"\r\n";
	assert_true(parse(s) >= 0);
	assert_int_equal(count_id(SIP_HDR_CONTACT), 4); /* one from INVITE_HEAD */
	const struct sip_hdr *c = &msg.hdrs[msg.first[SIP_HDR_CONTACT] + 1];
	assert_true(eq(c[0].value, "\"Doe, John\" <sip:j@x>"));
	assert_true(eq(c[1].value, "<sip:a@b;p=1,2>;q=0.5"));
	assert_true(eq(c[2].value, "sip:c@d"));
	assert_int_equal(c[0].line_off, c[2].line_off);
	assert_int_equal(c[0].line_len, c[2].line_len);
	assert_true(eq(slice_make(msg.buf + c[0].line_off, 8), "Contact:"));
	assert_int_equal(count_id(SIP_HDR_SUPPORTED), 2);
	assert_int_equal(count_id(SIP_HDR_SUBJECT), 1);
	assert_int_equal(count_id(SIP_HDR_VIA), 3);
	assert_true(eq(msg.hdrs[msg.last[SIP_HDR_VIA]].value, "SIP/2.0/TCP h3"));
	/* an empty comma header is still present, once */
	assert_int_equal(count_id(SIP_HDR_ALLOW), 1);
	assert_int_equal(sip_msg_hdr(&msg, SIP_HDR_ALLOW)->value.len, 0);
	/* an unbalanced quote is an error, but the message is still filled */
	assert_int_equal(parse(INVITE_HEAD "Contact: \"open <sip:a@b>, <sip:c@d>\r\n\r\n"),
			 -EBADMSG);
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_CSEQ));
}

/* sip_msg_hdr gives the instance that counts: the last for SIP_HF_LAST headers. */
static void test_instance_that_counts(void **state)
{
	static const char s[] = INVITE_HEAD "X-Sipx-Authidentity: <sip:first@x>\r\n"
					    "Subject: one\r\n"
					    "X-Sipx-Authidentity: <sip:last@x>\r\n"
					    "Subject: two\r\n"
					    "\r\n";
	assert_true(parse(s) >= 0);
	assert_true(sip_hdr_flags(SIP_HDR_X_SIPX_AUTHIDENTITY) & SIP_HF_LAST);
	assert_true(eq(sip_msg_hdr(&msg, SIP_HDR_X_SIPX_AUTHIDENTITY)->value, "<sip:last@x>"));
	assert_false(sip_hdr_flags(SIP_HDR_SUBJECT) & SIP_HF_LAST);
	assert_true(eq(sip_msg_hdr(&msg, SIP_HDR_SUBJECT)->value, "one"));
}

static void test_folding_and_bare_lf(void **state)
{
	static const char s[] = "OPTIONS sip:a@b SIP/2.0\n"
				"Via: SIP/2.0/UDP h\n ;branch=z9hG4bK1\n"
				"To: <sip:a@b>\nFrom: <sip:c@d>\n\t;tag=9\n"
				"Call-ID: x\nCSeq: 7\n  OPTIONS\nX-Long: one\n two\n\tthree\n"
				"\nbody";
	assert_int_equal(parse(s), (int)strlen(s));
	assert_int_equal(msg.cseq, 7);
	assert_true(eq(msg.cseq_method, "OPTIONS"));
	const struct sip_hdr *h = sip_msg_hdr_by_name(&msg, SLICE_LIT("x-long"));
	assert_non_null(h);
	assert_true(eq(h->value, "one\n two\n\tthree"));
	assert_true(
	    eq(slice_make(msg.buf + h->line_off, h->line_len), "X-Long: one\n two\n\tthree\n"));
	assert_true(eq(msg.body, "body"));
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK);
	struct sip_via v;
	assert_int_equal(sip_via_parse(sip_msg_hdr(&msg, SIP_HDR_VIA)->value, &v), 0);
	assert_true(eq(v.branch, "z9hG4bK1"));
}

static void test_structure_errors(void **state)
{
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n"),
			 -EBADMSG); /* no empty line */
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\n folded-first: x\r\n\r\n"), -EBADMSG);
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\nVia: x"), -EBADMSG);
	assert_int_equal(parse("OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r"), -EBADMSG);
}

/* ---------------------------------------------------------------- framing, scalars */

static void test_content_length(void **state)
{
	const char *h = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n";
	char buf[512];
	snprintf(buf, sizeof(buf), "%sContent-Length: 3\r\n\r\nabcEXTRA", h);
	assert_int_equal(parse(buf), (int)strlen(buf) - 5);
	assert_true(eq(msg.body, "abc"));
	snprintf(buf, sizeof(buf), "%s\r\nrest of datagram", h);
	assert_int_equal(parse(buf), (int)strlen(buf));
	assert_false(msg.has_content_length);
	assert_true(eq(msg.body, "rest of datagram"));
	snprintf(buf, sizeof(buf), "%sContent-Length: 30\r\n\r\nshort", h);
	assert_int_equal(parse(buf), -EMSGSIZE);
	const char *bad[] = {"-1", "12a", "", "99999999999", "4294967296", "1 2", "+5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%sContent-Length: %s\r\n\r\nabc", h, bad[i]);
		assert_int_equal(parse(buf), -EBADMSG);
	}
	snprintf(buf, sizeof(buf), "%sContent-Length: 3\r\nl: 003\r\n\r\nabc", h);
	assert_true(parse(buf) >= 0);
	snprintf(buf, sizeof(buf), "%sContent-Length: 3\r\nl: 2\r\n\r\nabc", h);
	assert_int_equal(parse(buf), -EBADMSG);
}

static void test_scalars(void **state)
{
	const char *h = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n";
	char buf[512];
	snprintf(buf, sizeof(buf), "%sCSeq: 4294967295 OPTIONS\r\nMax-Forwards: 0070\r\n\r\n", h);
	assert_true(parse(buf) >= 0);
	assert_int_equal(msg.cseq, 4294967295u);
	assert_int_equal(msg.max_forwards, 70);
	const char *bad[] = {"CSeq: 4294967296 OPTIONS",
			     "CSeq: 1",
			     "CSeq: OPTIONS",
			     "CSeq: 1OPTIONS",
			     "CSeq: -1 OPTIONS",
			     "Max-Forwards: abc",
			     "Max-Forwards: 99999999999",
			     "Max-Forwards: ",
			     "Call-ID: a b",
			     "Call-ID:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "OPTIONS sip:a@b SIP/2.0\r\n%s\r\n\r\n", bad[i]);
		if (parse(buf) != -EBADMSG)
			fail_msg("'%s' accepted", bad[i]);
	}
}

static void test_limits(void **state)
{
	static char buf[70000];
	/* SIP_MAX_HDRS values parse, one more is -E2BIG */
	for (int extra = 0; extra < 2; extra++) {
		size_t n = (size_t)snprintf(buf, sizeof(buf), "OPTIONS sip:a@b SIP/2.0\r\n");
		for (int i = 0; i < SIP_MAX_HDRS + extra; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-H%d: %d\r\n", i, i);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
		assert_int_equal(sip_parse(buf, n, &msg), extra ? -E2BIG : (int)n);
	}
	/* a 60 KiB header line parses, a 64 KiB one fails cleanly */
	for (int big = 0; big < 2; big++) {
		const size_t vlen = big ? 65536 : 60000;
		size_t n = (size_t)snprintf(buf, sizeof(buf), "OPTIONS sip:a@b SIP/2.0\r\nX-Big: ");
		char *p = malloc(n + vlen + 4);
		assert_non_null(p);
		memcpy(p, buf, n);
		memset(p + n, 'a', vlen);
		memcpy(p + n + vlen, "\r\n\r\n", 4);
		const int rc = sip_parse(p, n + vlen + 4, &msg);
		if (big)
			assert_true(rc < 0);
		else
			assert_int_equal(rc, (int)(n + vlen + 4));
		free(p);
	}
}

/* every prefix in an exact-size heap buffer: no read past the end (ASan) */
static void test_truncation(void **state)
{
	const size_t n = strlen(invite);
	for (size_t k = 0; k < n; k++) {
		char *p = malloc(k ? k : 1);
		assert_non_null(p);
		memcpy(p, invite, k);
		const int rc = sip_parse(p, k, &msg);
		const size_t hdr_end = (size_t)(strstr(invite, "\r\n\r\n") - invite) + 4;
		if (k < hdr_end)
			assert_true(rc < 0);
		else
			assert_int_equal(rc, -EMSGSIZE); /* Content-Length 4 not all there */
		free(p);
	}
}

static void test_reset(void **state)
{
	assert_true(parse(invite) >= 0);
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_CONTACT));
	assert_true(parse("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: y\r\n\r\n") >= 0);
	assert_null(sip_msg_hdr(&msg, SIP_HDR_CONTACT));
	assert_false(msg.has_max_forwards);
	assert_false(msg.has_content_length);
	assert_int_equal(msg.n_hdrs, 1);
	assert_int_equal(msg.cseq, 0);
	assert_int_equal(msg.seen, 1ull << SIP_HDR_CALL_ID);
}

/* ---------------------------------------------------------------- sip_msg_check */

static enum sip_check check_of(const char *s)
{
	if (parse(s) < 0)
		fail_msg("parse failed: %.40s", s);
	const char *why = NULL;
	const enum sip_check rc = sip_msg_check(&msg, &why);
	assert_non_null(why);
	return rc;
}

static void test_check(void **state)
{
	char buf[2048];
	assert_int_equal(check_of(invite), SIP_CHECK_OK);
	/* missing required headers */
	assert_int_equal(check_of("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"),
			 SIP_CHECK_BAD_REQUEST);
	/* a repeated single-value header */
	snprintf(buf, sizeof(buf), "%sTo: <sip:x@y>\r\n\r\n", INVITE_HEAD);
	assert_int_equal(check_of(buf), SIP_CHECK_BAD_REQUEST);
	/* CSeq method mismatch: known method 400, unknown method 501 */
	snprintf(buf, sizeof(buf), "%s", invite);
	memcpy(strstr(buf, "314159 INVITE") + 7, "INFO  ", 6);
	assert_int_equal(check_of(buf), SIP_CHECK_BAD_REQUEST);
	snprintf(buf, sizeof(buf), "NEWMETHOD%s", strchr(invite, ' '));
	assert_int_equal(check_of(buf), SIP_CHECK_NOT_IMPL);
	assert_int_equal(
	    check_of("NEWMETHOD sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
		     "To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\n"
		     "CSeq: 1 NEWMETHOD\r\n\r\n"),
	    SIP_CHECK_OK);
	/* bad Via, bad From, bad Request-URI */
	snprintf(buf, sizeof(buf), "%s", invite);
	memcpy(strstr(buf, "192.0.2.1:5060;"), "192.0.2.1:5060;;", 16);
	assert_int_equal(check_of(buf), SIP_CHECK_BAD_REQUEST);
	snprintf(buf, sizeof(buf), "%s", invite);
	memcpy(strstr(buf, "From: Alice"), "From: Al,ce", 11);
	assert_int_equal(check_of(buf), SIP_CHECK_BAD_REQUEST);
	snprintf(buf, sizeof(buf), "INVITE sip:bob@ SIP/2.0%s", strstr(invite, "\r\n"));
	assert_int_equal(check_of(buf), SIP_CHECK_BAD_REQUEST);
	/* headers in the Request-URI are tolerated (stripped when forwarded), even
	 * the mangled ones baresip 1.0 copies from a Refer-To */
	snprintf(buf, sizeof(buf), "INVITE sip:bob@h?Route=x SIP/2.0%s", strstr(invite, "\r\n"));
	assert_int_equal(check_of(buf), SIP_CHECK_OK);
	snprintf(buf, sizeof(buf),
		 "INVITE sip:2550001@example.com;refgrant=v1.a.b?X-Sipx-Authidentity=?sip?1001?xample.com?grant?v1.a.b? SIP/2.0%s",
		 strstr(invite, "\r\n"));
	assert_int_equal(check_of(buf), SIP_CHECK_OK);
	/* responses never get an answer */
	assert_int_equal(check_of("SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n"), SIP_CHECK_DROP);
	snprintf(buf, sizeof(buf), "SIP/3.0 200 OK%s", strstr(invite, "\r\n"));
	assert_int_equal(check_of(buf), SIP_CHECK_DROP);
	snprintf(buf, sizeof(buf), "SIP/2.0 200 OK%s", strstr(invite, "\r\n"));
	assert_int_equal(check_of(buf), SIP_CHECK_OK);
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK); /* why may be NULL */
}

/* baddn with its missing empty line added: the display names are caught by the check */
static void test_baddn_display(void **state)
{
	static const char s[] = "OPTIONS sip:t.watson@example.org SIP/2.0\r\n"
				"Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\r\n"
				"Max-Forwards:      70\r\n"
				"From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n"
				"To:      Watson, Thomas <sip:t.watson@example.org>\r\n"
				"Call-ID: baddn.31415@c.example.com\r\n"
				"CSeq:    3923239 OPTIONS\r\nl: 0\r\n\r\n";
	assert_int_equal(check_of(s), SIP_CHECK_BAD_REQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_table_round_trip),
	    cmocka_unit_test(test_method_table),
	    cmocka_unit_test(test_invite),
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_request_line_errors),
	    cmocka_unit_test(test_leading_crlf_skipped),
	    cmocka_unit_test(test_compact_and_lws),
	    cmocka_unit_test(test_comma_split),
	    cmocka_unit_test(test_instance_that_counts),
	    cmocka_unit_test(test_folding_and_bare_lf),
	    cmocka_unit_test(test_structure_errors),
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_scalars),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_baddn_display),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
