#pragma once
/* tcp_frame.h - where one SIP message ends on a byte stream (SPEC §9,
 * RFC 3261 §18.3, RFC 5626 §4.4.1). Pure function of the bytes received so
 * far: no state, no allocation, so the reader can call it on whatever it has
 * and keep only an unfinished tail. */
#include <stddef.h>
#include <stdint.h>

enum tcp_frame_kind {
	TCP_FRAME_MORE = 0,   /* incomplete: keep the bytes, read more */
	TCP_FRAME_MESSAGE,    /* a whole message of len bytes (headers, CRLFCRLF, body) */
	TCP_FRAME_PING,       /* CRLFCRLF keepalive (len 4): answer CRLF */
	TCP_FRAME_PONG,       /* a lone CRLF (len 2): the peer's keepalive answer, skip */
	TCP_FRAME_NO_LENGTH,  /* headers of len bytes without Content-Length: 400 and close */
	TCP_FRAME_TOO_BIG,    /* the message exceeds the limit (or its headers never end): close */
	TCP_FRAME_BAD_LENGTH, /* Content-Length unparseable or given twice differently: 400 and close */
};

struct tcp_frame {
	enum tcp_frame_kind kind;
	uint32_t len; /* bytes this frame covers (MESSAGE, PING, PONG, NO_LENGTH, BAD_LENGTH) */
};

/**
 * tcp_frame_next - classify the first frame of @p[0..@n).
 * @max_message: largest message accepted (headers + body), tcp.max_message.
 * A message is complete once its header section (ending in CRLFCRLF) and
 * Content-Length body bytes have arrived; the compact form "l" counts.
 */
struct tcp_frame tcp_frame_next(const char *p, size_t n, uint32_t max_message);
