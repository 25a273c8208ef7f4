/* test_tcp_frame.c - stream framing (SPEC §9): coalesced and split messages at
 * every byte boundary, keepalive ping/pong, missing/bad/oversize
 * Content-Length, a header section that never ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tcp_frame.h"

#define INV "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\n" \
	    "Call-ID: a\r\nContent-Type: application/sdp\r\nContent-Length:  5 \r\n\r\nv=0\r\n"
#define BYE "BYE sip:b@example.com SIP/2.0\r\nCall-ID: a\r\nl: 0\r\n\r\n"
#define OPT "OPTIONS sip:x SIP/2.0\r\nSubject: folded\r\n content-length: 99\r\nCONTENT-LENGTH\t: 3\r\n\r\nabc"

static const char stream[] = INV "\r\n\r\n" BYE "\r\n" OPT;
static const struct tcp_frame want[] = {
	{ TCP_FRAME_MESSAGE, sizeof(INV) - 1 }, { TCP_FRAME_PING, 4 }, { TCP_FRAME_MESSAGE, sizeof(BYE) - 1 },
	{ TCP_FRAME_PONG, 2 },			{ TCP_FRAME_MESSAGE, sizeof(OPT) - 1 },
};
#define N_WANT (sizeof(want) / sizeof(want[0]))

/* a reader that gets the stream in chunks ending at @cuts (ascending), frames
 * what it has after each chunk and keeps the tail, like conn_io.c */
static void feed(const size_t *cuts, size_t n_cuts)
{
	char buf[sizeof(stream)];
	size_t have = 0, pos = 0, got = 0;
	for (size_t c = 0; c <= n_cuts; c++) {
		size_t upto = c < n_cuts ? cuts[c] : sizeof(stream) - 1;
		memcpy(buf + have, stream + pos, upto - pos);
		have += upto - pos;
		pos = upto;
		size_t off = 0;
		for (;;) {
			struct tcp_frame f = tcp_frame_next(buf + off, have - off, 65535);
			if (f.kind == TCP_FRAME_MORE)
				break;
			assert_true(got < N_WANT);
			if (f.kind != want[got].kind || f.len != want[got].len)
				fail_msg("cut at %zu: frame %zu is kind %d len %u, want %d len %u", cuts[0], got, f.kind,
					 f.len, want[got].kind, want[got].len);
			got++;
			off += f.len;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	assert_int_equal(got, N_WANT);
	assert_int_equal(have, 0);
}

static void test_coalesced(void **state)
{
	(void)state;
	feed(NULL, 0);
}

static void test_split_every_boundary(void **state)
{
	(void)state;
	for (size_t k = 1; k < sizeof(stream) - 1; k++) {
		size_t cut = k;
		feed(&cut, 1);
	}
	for (size_t k = 1; k < sizeof(stream) - 2; k += 3) /* two cuts, the second one everywhere after */
		for (size_t j = k + 1; j < sizeof(stream) - 1; j += 7) {
			size_t cuts[2] = { k, j };
			feed(cuts, 2);
		}
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	size_t cuts[sizeof(stream)];
	for (size_t k = 0; k < sizeof(stream) - 2; k++)
		cuts[k] = k + 1;
	feed(cuts, sizeof(stream) - 2);
}

static void test_errors(void **state)
{
	(void)state;
	static const char no_cl[] = "MESSAGE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\nhello";
	struct tcp_frame f = tcp_frame_next(no_cl, sizeof(no_cl) - 1, 65535);
	assert_int_equal(f.kind, TCP_FRAME_NO_LENGTH);
	assert_int_equal(f.len, sizeof(no_cl) - 1 - 5);
	static const char bad_cl[] = "BYE sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n";
	assert_int_equal(tcp_frame_next(bad_cl, sizeof(bad_cl) - 1, 65535).kind, TCP_FRAME_BAD_LENGTH);
	static const char two_cl[] = "BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
	assert_int_equal(tcp_frame_next(two_cl, sizeof(two_cl) - 1, 65535).kind, TCP_FRAME_BAD_LENGTH);
	static const char huge[] = "BYE sip:a SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n";
	assert_int_equal(tcp_frame_next(huge, sizeof(huge) - 1, 65535).kind, TCP_FRAME_TOO_BIG);
	static const char big[] = "BYE sip:a SIP/2.0\r\nContent-Length: 1000\r\n\r\n";
	/* known too big from the headers alone, before the body arrives */
	assert_int_equal(tcp_frame_next(big, sizeof(big) - 1, 1000).kind, TCP_FRAME_TOO_BIG);
	assert_int_equal(tcp_frame_next(big, sizeof(big) - 1, 2000).kind, TCP_FRAME_MORE);
	char endless[3000];
	memset(endless, 'a', sizeof(endless));
	assert_int_equal(tcp_frame_next(endless, 1999, 2000).kind, TCP_FRAME_MORE);
	assert_int_equal(tcp_frame_next(endless, 2000, 2000).kind, TCP_FRAME_TOO_BIG);
	assert_int_equal(tcp_frame_next(endless, sizeof(endless), 2000).kind, TCP_FRAME_TOO_BIG);
	/* a message exactly at the limit passes */
	static const char exact[] = "BYE sip:a SIP/2.0\r\nl: 2\r\n\r\nab";
	f = tcp_frame_next(exact, sizeof(exact) - 1, sizeof(exact) - 1);
	assert_int_equal(f.kind, TCP_FRAME_MESSAGE);
	assert_int_equal(tcp_frame_next(exact, sizeof(exact) - 1, sizeof(exact) - 2).kind, TCP_FRAME_TOO_BIG);
	/* keepalives split */
	assert_int_equal(tcp_frame_next("\r", 1, 100).kind, TCP_FRAME_MORE);
	assert_int_equal(tcp_frame_next("\r\n", 2, 100).kind, TCP_FRAME_MORE);
	assert_int_equal(tcp_frame_next("\r\n\r", 3, 100).kind, TCP_FRAME_MORE);
	assert_int_equal(tcp_frame_next("\r\n\r\n", 4, 100).kind, TCP_FRAME_PING);
	assert_int_equal(tcp_frame_next("\r\nB", 3, 100).kind, TCP_FRAME_PONG);
	assert_int_equal(tcp_frame_next("", 0, 100).kind, TCP_FRAME_MORE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coalesced),
		cmocka_unit_test(test_split_every_boundary),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
