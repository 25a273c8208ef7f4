/* dest_balancer.c - referee behind a load balancer (SPEC §11).
 *   - advertised addresses (listen[].advertise): a Via sent-by or Route that
 *     names one is ours, like a listen address;
 *   - a Record-Route signed with the shared secret by any instance (ra= MAC
 *     over the Call-ID) is popped locally, so a dialog outlives the instance
 *     that record-routed it (the MAC is signed and checked in proxy_ids.c:
 *     proxy_rr_signed);
 *   - load_balancers: a request from one of them counts as coming from the
 *     client named by the Via below the balancer's (received/rport, else
 *     sent-by), for trusted matching, failure and flood limits and logs.
 *     Responses and local replies still go to the balancer (the top Via).
 * No allocation, no syscall. */
#include <arpa/inet.h>
#include <string.h>

#include "proxy.h"
#include "proxy_priv.h"
#include "sockaddr.h"

static bool host_eq(const struct cfg_advertise *a, struct slice host)
{
	if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
		host = slice_make(host.p + 1, host.len - 2);
	if (strchr(a->host, ':')) {
		/* IPv6: compare addresses, not spellings */
		char buf[INET6_ADDRSTRLEN + 1];
		struct in6_addr x, y;
		if (host.len == 0 || host.len >= sizeof(buf))
			return false;
		memcpy(buf, host.p, host.len);
		buf[host.len] = '\0';
		return inet_pton(AF_INET6, buf, &x) == 1 && inet_pton(AF_INET6, a->host, &y) == 1 &&
		       memcmp(&x, &y, sizeof(x)) == 0;
	}
	return slice_caseeq(host, slice_make(a->host, strnlen(a->host, sizeof(a->host))));
}

bool dest_advertised_is(const struct cfg *c, struct slice host, uint16_t port, bool has_port,
			bool strict)
{
	for (unsigned i = 0; i < c->n_listen && i < CFG_MAX_LISTEN; i++) {
		const struct cfg_advertise *a = &c->advertise[i];
		if (!a->set || !host_eq(a, host))
			continue;
		const uint16_t want = a->port ? a->port : PROXY_DEFAULT_PORT;
		if (has_port ? port == want : (!strict || want == PROXY_DEFAULT_PORT))
			return true;
	}
	return false;
}

static bool from_balancer(const struct cfg *c, const struct sockaddr *sa)
{
	for (unsigned i = 0; i < c->n_load_balancers && i < CFG_MAX_TRUSTED; i++)
		if (cfg_cidr_match(&c->load_balancers[i], sa))
			return true;
	return false;
}

const struct sockaddr *txn_client_addr(const struct txn *t, struct sockaddr_storage *buf)
{
	const struct sockaddr *src = (const struct sockaddr *)&t->src;
	const struct cfg *c = t->cfg;
	if (!c || c->n_load_balancers == 0 || t->parse_rc < 0 || !t->msg.is_request ||
	    !from_balancer(c, src))
		return src;
	const struct sip_msg *m = &t->msg;
	const unsigned top = m->first[SIP_HDR_VIA];
	const unsigned below = top == SIP_NO_HDR ? SIP_NO_HDR : sip_msg_next(m, top);
	struct sip_via v;
	if (below == SIP_NO_HDR || sip_via_parse(m->hdrs[below].value, &v) < 0)
		return src; /* the balancer sent it without a client Via: it is the client */
	const struct slice host = v.received.len ? v.received : v.host;
	uint32_t port = v.port ? v.port : PROXY_DEFAULT_PORT, rport;
	if (v.rport.len && slice_to_u32(v.rport, &rport) && rport > 0 && rport <= 65535)
		port = rport;
	socklen_t len;
	/* a sent-by name without received= names no address: keep the balancer's */
	if (!sockaddr_from_ip(host, (uint16_t)port, buf, &len))
		return src;
	return (const struct sockaddr *)buf;
}
