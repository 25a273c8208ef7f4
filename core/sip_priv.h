#pragma once
/* sip_priv.h - byte classes and helpers shared by the core/sip_*.c parsers.
 * Private to core: not part of the sip.h contract, may change freely. */
#include <stdbool.h>
#include <stdint.h>

#include "sip.h"

/* Bits of sip_cc[] (one table lookup per byte, no function call). */
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

/**
 * sip_hostport_scan - read host [":" port] at @p[*i..n) (sip_uri.c).
 * IPv6 references keep their brackets; a bare IPv6 address is an error.
 * Stops at the first byte that cannot continue host or port; *i is left there.
 * Returns 0 or -EBADMSG.
 */
int sip_hostport_scan(const char *p, size_t *i, size_t n, struct slice *host, uint16_t *port,
		      bool *has_port, bool *is_v4, bool *is_v6);

/**
 * sip_param_next - read one ";name[=value]" starting at @p[*i] (sip_nameaddr.c).
 * LWS (folds included) may surround ';' and '='; a value is a token/host run or
 * a quoted string (returned with its quotes). Returns 1 with *i just past the
 * parameter, 0 when the next non-LWS byte is not ';' (*i is left on that byte,
 * or n), or -EBADMSG (empty name or value, unterminated quote).
 */
int sip_param_next(const char *p, size_t *i, size_t n, struct slice *name, struct slice *value);
