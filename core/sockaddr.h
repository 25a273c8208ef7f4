#pragma once
/* sockaddr.h - IP-literal addresses as struct sockaddr (private to core): the
 * text to address reader every "is this us?" and next-hop test uses, and the
 * comparisons behind them. The bottom of the proxy's routing files: it knows
 * nothing of SIP, the config or the txn. No allocation, no syscall. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "slice.h"

#define SOCKADDR_TEXT_MAX 48 /* inet_ntop of any address, with room to spare */

/* sockaddr_from_ip - IP literal @host (dotted quad; IPv6 with or without
 * brackets) and @port into @ss and *@len; false for anything else (names,
 * leading zeros, parts over 255). */
bool sockaddr_from_ip(struct slice host, uint16_t port, struct sockaddr_storage *ss,
		      socklen_t *len);
/* sockaddr_is_bad_destination - unspecified, broadcast, multicast, port 0 or
 * not IPv4/IPv6: never a next hop. */
bool sockaddr_is_bad_destination(const struct sockaddr *sa);
/* sockaddr_v4_mapped - the 4 address bytes inside an IPv4-mapped IPv6
 * address (a dual-stack socket's view of an IPv4 peer), or NULL. */
const void *sockaddr_v4_mapped(const struct sockaddr_storage *ss);
/* sockaddr_same_ip - same address, ports aside; an IPv4 address equals its
 * IPv4-mapped IPv6 form. */
bool sockaddr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* sockaddr_port - the port in host order; 0 when not IPv4/IPv6. */
uint16_t sockaddr_port(const struct sockaddr_storage *ss);
