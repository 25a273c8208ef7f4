#pragma once
/* b64url.h - base64url without padding (RFC 4648 §5): the alphabet of every
 * token referee mints (nonces, grants, Record-Route MACs), so each fits a
 * quoted string, a URI parameter and a header value without escaping.
 * Decoding is strict: one text per value (no padding, no spare bits set). */
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

/* b64url_len - characters that @n bytes encode to (no padding). */
static inline size_t b64url_len(size_t n)
{
	return (n * 4 + 2) / 3;
}

/* b64url_encode - encode @n bytes into @out (no NUL). Returns the length or -ENOSPC. */
int b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/**
 * b64url_decode - decode unpadded base64url. Rejects bytes outside the
 * alphabet, impossible lengths (len % 4 == 1) and non-zero spare bits, so a
 * value has exactly one text. Returns the byte count, -EBADMSG or -ENOSPC.
 */
int b64url_decode(struct slice in, uint8_t *out, size_t cap);
