/* sockaddr.c - IP literals to struct sockaddr and back to comparisons
 * (sockaddr.h). Moved out of proxy_route.c so that the DNS resolver, the
 * load-balancer code and the forwarder read addresses without reaching up
 * into the routing decision. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "sockaddr.h"

/* dotted-quad IPv4 as inet_pton reads it (four decimal parts 0..255, no
 * leading zeros), without its NUL-terminated copy: the common case of every
 * "is this us?" test, several per message. */
static bool ipv4_parse(struct slice s, struct in_addr *out)
{
	uint32_t a = 0;
	unsigned parts = 0;
	size_t i = 0;
	while (parts < 4) {
		if (i >= s.len || s.p[i] < '0' || s.p[i] > '9')
			return false;
		const size_t start = i;
		unsigned v = 0;
		while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s.p[i++] - '0');
		if (v > 255 || (i - start > 1 && s.p[start] == '0'))
			return false;
		a = a << 8 | v;
		if (++parts < 4 && (i >= s.len || s.p[i++] != '.'))
			return false;
	}
	if (i != s.len)
		return false;
	out->s_addr = htonl(a);
	return true;
}

bool sockaddr_from_ip(struct slice host, uint16_t port, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct in_addr a4;
	if (ipv4_parse(host, &a4)) {
		memset(ss, 0, sizeof(struct sockaddr_in));
		struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		in4->sin_addr = a4;
		*len = sizeof(*in4);
		return true;
	}
	if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
		host = slice_make(host.p + 1, host.len - 2);
	/* not dotted-quad IPv4 (ipv4_parse is as strict as inet_pton's AF_INET): an IP
	 * literal left must be IPv6, which has a colon; a host name ends here, without
	 * the copy and inet_pton a name like "example.com" used to cost per message */
	char buf[SOCKADDR_TEXT_MAX];
	if (host.len == 0 || host.len >= sizeof(buf) || !memchr(host.p, ':', host.len))
		return false;
	/* NUL-terminated copy for inet_pton; RFC 5118 §4.10: a third colon in a
	 * row ("2001:db8:::192.0.2.1") is an ABNF bug to tolerate, so it is skipped */
	size_t n = 0;
	for (size_t i = 0; i < host.len; i++)
		if (!(host.p[i] == ':' && n >= 2 && buf[n - 1] == ':' && buf[n - 2] == ':'))
			buf[n++] = host.p[i];
	buf[n] = '\0';
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(in6, 0, sizeof(*in6));
	if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return true;
	}
	return false;
}

bool sockaddr_is_bad_destination(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		const uint32_t a = ntohl(in4->sin_addr.s_addr);
		return in4->sin_port == 0 || a == INADDR_ANY || a == INADDR_BROADCAST ||
		       (a >> 28) == 0xe; /* 224.0.0.0/4 */
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		return in6->sin6_port == 0 || IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
		       IN6_IS_ADDR_MULTICAST(&in6->sin6_addr);
	}
	return true;
}

const void *sockaddr_v4_mapped(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
		return NULL;
	return in6->sin6_addr.s6_addr + 12;
}

bool sockaddr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		const struct sockaddr_storage *v4 = a->ss_family == AF_INET ? a : b;
		const void *mapped = sockaddr_v4_mapped(v4 == a ? b : a);
		return v4->ss_family == AF_INET && mapped &&
		       memcmp(&((const struct sockaddr_in *)v4)->sin_addr, mapped, 4) == 0;
	}
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return false;
}

uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}
