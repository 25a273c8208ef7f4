/* tcp_frame.c - message boundaries on a stream (tcp_frame.h).
 * Only the header names are looked at (for Content-Length); the message is
 * parsed once, later, by sip_parse on the worker's txn. */
#include "tcp_frame.h"

#include <string.h>

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* is the header name [p, p+len) "content-length" or "l" (any case)? */
static int is_content_length(const char *p, size_t len)
{
	static const char name[] = "content-length";
	if (len == 1)
		return lower(p[0]) == 'l';
	if (len != sizeof(name) - 1)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (lower(p[i]) != name[i])
			return 0;
	return 1;
}

/* the value of a Content-Length line [p, end): digits between optional
 * whitespace. -1 when it is not a number, -2 when it is too large. */
static long long length_value(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (p == end)
		return -1;
	long long v = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > 0x7fffffff)
			return -2;
	}
	return v;
}

/* header section [p, p+hdr_len) -> Content-Length: >= 0, -1 absent, -3 bad, -2 huge */
static long long header_length(const char *p, size_t hdr_len)
{
	const char *end = p + hdr_len;
	const char *line = memchr(p, '\n', hdr_len); /* skip the start line */
	long long found = -1;
	while (line && ++line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		/* folded continuation lines (leading SP/HT) belong to the previous header */
		if (*line != ' ' && *line != '\t') {
			const char *colon = memchr(line, ':', (size_t)(eol - line));
			if (colon) {
				const char *name_end = colon;
				while (name_end > line && (name_end[-1] == ' ' || name_end[-1] == '\t'))
					name_end--;
				if (is_content_length(line, (size_t)(name_end - line))) {
					long long v = length_value(colon + 1, eol);
					if (v == -2)
						return -2;
					if (v < 0 || (found >= 0 && found != v))
						return -3;
					found = v;
				}
			}
		}
		line = eol;
	}
	return found;
}

/* offset just past the first CRLFCRLF in p[0..n), or 0 */
static size_t header_end(const char *p, size_t n)
{
	for (size_t i = 3; i < n; i++) {
		const char *q = memchr(p + i, '\n', n - i);
		if (!q)
			return 0;
		i = (size_t)(q - p);
		if (i >= 3 && q[-1] == '\r' && q[-2] == '\n' && q[-3] == '\r')
			return i + 1;
	}
	return 0;
}

struct tcp_frame tcp_frame_next(const char *p, size_t n, uint32_t max_message)
{
	struct tcp_frame f = { TCP_FRAME_MORE, 0 };
	if (n == 0)
		return f;
	if (p[0] == '\r') {
		/* keepalive: CRLFCRLF ping, or a lone CRLF pong */
		if (n < 2)
			return f;
		if (p[1] != '\n')
			goto message;
		if (n < 3)
			return f;
		if (p[2] != '\r') {
			f.kind = TCP_FRAME_PONG;
			f.len = 2;
			return f;
		}
		if (n < 4)
			return f;
		if (p[3] == '\n') {
			f.kind = TCP_FRAME_PING;
			f.len = 4;
			return f;
		}
		f.kind = TCP_FRAME_PONG; /* CRLF then something else: drop the CRLF */
		f.len = 2;
		return f;
	}
message:;
	size_t scan = n < max_message ? n : max_message;
	size_t hdr = header_end(p, scan);
	if (hdr == 0) {
		if (n >= max_message)
			f.kind = TCP_FRAME_TOO_BIG;
		return f;
	}
	long long cl = header_length(p, hdr);
	if (cl == -1) {
		f.kind = TCP_FRAME_NO_LENGTH;
		f.len = (uint32_t)hdr;
		return f;
	}
	if (cl == -3) {
		f.kind = TCP_FRAME_BAD_LENGTH;
		f.len = (uint32_t)hdr;
		return f;
	}
	if (cl == -2 || (unsigned long long)hdr + (unsigned long long)cl > max_message) {
		f.kind = TCP_FRAME_TOO_BIG;
		return f;
	}
	if (n < hdr + (size_t)cl)
		return f;
	f.kind = TCP_FRAME_MESSAGE;
	f.len = (uint32_t)(hdr + (size_t)cl);
	return f;
}
