#pragma once
/* charclass.h - byte classes of SIP text (RFC 3261 §25.1): one table lookup
 * per byte, no function call. Every scanner of SIP text (the core parsers,
 * the digest parameter parser, egress) uses these instead of its own. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bits of sip_cc[]. */
enum sip_cc_bits {
	SIP_CC_TOKEN = 1u << 0, /* RFC 3261 token: alphanum - . ! % * _ + ` ' ~ */
	SIP_CC_WS = 1u << 1,	/* SP HTAB */
	SIP_CC_LWS = 1u << 2,	/* SP HTAB CR LF (folded values keep their CRLFs) */
	SIP_CC_HEX = 1u << 3,
	SIP_CC_DIGIT = 1u << 4,
	SIP_CC_URI = 1u << 5,  /* printable or 8-bit, not SP CTL DEL < > " (lenient URI byte) */
	SIP_CC_HOST = 1u << 6, /* hostname byte: alphanum - . _ */
	SIP_CC_PVAL = 1u << 7, /* unquoted parameter value byte: URI byte minus ; , = */
};

extern const uint8_t sip_cc[256];

/* sip_cc_is - @c has one of the classes in @bits. */
static inline bool sip_cc_is(char c, unsigned bits)
{
	return (sip_cc[(unsigned char)c] & bits) != 0;
}

/* sip_skip_lws - index of the first byte at or after @i that is not SP/HTAB/CR/LF. */
static inline size_t sip_skip_lws(const char *p, size_t i, size_t n)
{
	while (i < n && sip_cc_is(p[i], SIP_CC_LWS))
		i++;
	return i;
}
