#pragma once
/* sip_priv.h - helpers shared by the core/sip_*.c parsers (byte classes: charclass.h).
 * Private to core: not part of the sip.h contract, may change freely. */
#include <stdbool.h>
#include <stdint.h>

#include "charclass.h"
#include "sip.h"

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
