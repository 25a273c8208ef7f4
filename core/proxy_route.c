/* proxy_route.c - where a request goes next (SPEC §1, RFC 3261 §16.4, §16.5,
 * §16.12 loose routing) and the "is this us?" tests over our listen
 * addresses (IP literals are read by sockaddr.c).
 * Order: pop leading Routes that name one of our listen addresses; a Route
 * left over wins (IP literal -> that address; one of our domains ->
 * routes.local; other hostnames -> routes.outbound, or DNS without it);
 * otherwise the Request-URI: our domain or one of our listen addresses ->
 * routes.local, IP literal -> that address (URI port or 5060), anything else
 * -> routes.outbound. A route with several destinations picks one per Call-ID
 * among those up (dest.h). A needed route that is not configured is -ENOENT,
 * which the forwarder answers with "503 No Route" (another instance may have
 * one; 503 lets a client fail over); one whose destinations are all down is
 * -EHOSTUNREACH (503 with Retry-After). A name with no maddr, and a foreign
 * host when routes.outbound is not set, are resolved per RFC 3263 (dns.h: a
 * cache read; not resolved yet -EAGAIN, not resolvable -ENXIO). Routes naming
 * an advertised address, and Record-Routes any instance signed, are ours
 * (SPEC §11). Strict routing (Route without lr) is not done: our own
 * Record-Route always carries lr. Broadcast, multicast and unspecified
 * destinations are refused. No blocking DNS, no syscalls. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "dest.h"
#include "dns.h"
#include "proxy_priv.h"

/* ---------------------------------------------------------------- addresses */

bool proxy_hostport_is_ours(const struct cfg *c, struct slice host, uint16_t port, bool has_port,
			    bool strict)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (dest_advertised_is(c, host, port, has_port, strict))
		return true; /* SPEC §11: the balancer's address we write in Via and Record-Route */
	if (!sockaddr_from_ip(host, 0, &ss, &len))
		return false; /* listen addresses are IP literals (cfg_addr_parse) */
	for (unsigned i = 0; i < c->n_listen && i < CFG_MAX_LISTEN; i++) {
		const struct sockaddr_storage *l = &c->listen[i].sa;
		if (!sockaddr_same_ip(&ss, l))
			continue;
		if (has_port ? port == sockaddr_port(l) : (!strict || sockaddr_port(l) == PROXY_DEFAULT_PORT))
			return true;
	}
	return false;
}

bool proxy_via_is_ours(const struct cfg *c, const struct sip_via *v)
{
	const struct slice prefix = SLICE_LIT(PROXY_BRANCH_PREFIX);
	return v->branch.len > prefix.len && memcmp(v->branch.p, prefix.p, prefix.len) == 0 &&
	       proxy_hostport_is_ours(c, v->host, v->port, v->port != 0, true);
}

bool proxy_uri_is_ours(const struct cfg *c, const struct sip_uri *u)
{
	return sip_uri_is_sip(u) && proxy_hostport_is_ours(c, u->host, u->port, u->has_port, true);
}

bool proxy_route_is_ours(const struct cfg *c, struct slice call_id, struct slice value,
			 struct sip_uri *u)
{
	struct sip_nameaddr na;
	return sip_nameaddr_parse(value, &na) == 0 && sip_uri_parse(na.uri, u) == 0 &&
	       (proxy_uri_is_ours(c, u) || (sip_uri_is_sip(u) && proxy_rr_signed(call_id, u)));
}

/* a.b.c.d of @a (network order) into @out; its length (no NUL needed by callers, one is written) */
static size_t ipv4_text(const uint8_t a[4], char out[PROXY_IP_TEXT_MAX])
{
	size_t n = 0;
	for (int i = 0; i < 4; i++) {
		const unsigned v = a[i];
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
		if (i < 3)
			out[n++] = '.';
	}
	out[n] = '\0';
	return n;
}

size_t proxy_src_ip_text(const struct txn *t, char out[PROXY_IP_TEXT_MAX])
{
	/* received= carries an IPv4 peer as a.b.c.d, not ::ffff:a.b.c.d */
	const void *addr = sockaddr_v4_mapped(&t->src);
	if (addr)
		return ipv4_text(addr, out);
	if (t->src.ss_family == AF_INET)
		return ipv4_text((const uint8_t *)&((const struct sockaddr_in *)&t->src)->sin_addr, out);
	if (t->src.ss_family != AF_INET6)
		return 0;
	if (!inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->src)->sin6_addr, out, PROXY_IP_TEXT_MAX))
		return 0;
	return strnlen(out, PROXY_IP_TEXT_MAX);
}

bool proxy_host_is_src(const struct txn *t, struct slice host, struct slice src_text)
{
	if (slice_eq(host, src_text))
		return true;
	/* An IPv4 source's text is canonical, and the IP parser refuses what is not
	 * (leading zeros): other text is another address, unless it is the bracketed
	 * IPv6 form of a mapped one. No parse for the common case. */
	const bool src_v4 = t->src.ss_family == AF_INET || sockaddr_v4_mapped(&t->src);
	if (src_v4 && (host.len == 0 || host.p[0] != '['))
		return false;
	struct sockaddr_storage ss;
	socklen_t len;
	return sockaddr_from_ip(host, 0, &ss, &len) && sockaddr_same_ip(&ss, &t->src);
}

uint16_t proxy_src_port(const struct txn *t)
{
	return sockaddr_port(&t->src);
}

struct slice proxy_listen_text(const struct txn *t)
{
	return proxy_listen_text_at(t->cfg, t->listen_idx);
}

/* What Via sent-by and Record-Route name for listen @idx: its advertised
 * HOST[:PORT] behind a load balancer (SPEC §11), else the bound address. */
struct slice proxy_listen_text_at(const struct cfg *c, unsigned idx)
{
	const unsigned i = idx < c->n_listen ? idx : 0;
	if (c->advertise[i].set)
		return slice_make(c->advertise[i].text,
				  strnlen(c->advertise[i].text, sizeof(c->advertise[i].text)));
	const char *text = c->listen[i].text;
	return slice_make(text, strnlen(text, sizeof(c->listen[i].text)));
}

unsigned proxy_listen_for(const struct cfg *c, enum cfg_transport tr, unsigned prefer, int family)
{
	if (prefer < c->n_listen && c->listen[prefer].transport == tr)
		return prefer;
	int any = -1;
	for (unsigned i = 0; i < c->n_listen && i < CFG_MAX_LISTEN; i++) {
		if (c->listen[i].transport != tr)
			continue;
		if (c->listen[i].sa.ss_family == family)
			return i;
		if (any < 0)
			any = (int)i;
	}
	return any >= 0 ? (unsigned)any : prefer;
}

enum cfg_transport proxy_transport_of_uri(const struct sip_uri *u)
{
	if (slice_caseeq(u->scheme, SLICE_LIT("sips")))
		return CFG_TRANSPORT_TLS;
	struct slice v;
	if (!sip_uri_param(u, SLICE_LIT("transport"), &v))
		return CFG_TRANSPORT_UDP;
	if (slice_caseeq(v, SLICE_LIT("tcp")))
		return CFG_TRANSPORT_TCP;
	if (slice_caseeq(v, SLICE_LIT("tls")))
		return CFG_TRANSPORT_TLS;
	return CFG_TRANSPORT_UDP;
}

enum cfg_transport proxy_transport_of_via(const struct sip_via *v)
{
	if (slice_caseeq(v->transport, SLICE_LIT("TCP")))
		return CFG_TRANSPORT_TCP;
	if (slice_caseeq(v->transport, SLICE_LIT("TLS")))
		return CFG_TRANSPORT_TLS;
	return CFG_TRANSPORT_UDP;
}

/* ---------------------------------------------------------------- routing */

/* dns_next_hop - a DNS name as next hop (RFC 3263, core/dns_resolver.c): 0,
 * -EAGAIN (not resolved yet: 503 with Retry-After) or -ENXIO (does not resolve). */
static int dns_next_hop(struct slice host, uint16_t port, bool has_port, uint64_t key, int family,
			struct txn_route *r)
{
	switch (dns_lookup(host, port, has_port, key, family, &r->dst, &r->dstlen)) {
	case DNS_HIT:
		return sockaddr_is_bad_destination((const struct sockaddr *)&r->dst) ? -EADDRNOTAVAIL : 0;
	case DNS_PENDING:
		return -EAGAIN;
	case DNS_OFF:
		return -ENOENT; /* no resolver (unit tests): as if no route */
	default:
		return -ENXIO;
	}
}

/* One destination of routes.local / routes.outbound: the Call-ID's choice
 * among those up (core/dest_select.c, core/health_probe.c). */
static int route_configured(const struct cfg *c, struct slice call_id, int family,
			    enum txn_route_kind kind, struct txn_route *r)
{
	const struct cfg_destset *set = kind == TXN_ROUTE_LOCAL ? &c->routes.local : &c->routes.outbound;
	if (set->n == 0)
		return -ENOENT;
	r->kind = kind;
	const uint32_t up =
	    health_up_mask(kind == TXN_ROUTE_LOCAL ? DEST_ROUTE_LOCAL : DEST_ROUTE_OUTBOUND, set);
	const uint64_t key = dest_key(call_id);
	const int i = set->n == 1 ? (up & 1u ? 0 : DEST_NONE) : dest_pick(set, key, up);
	if (i == DEST_NONE)
		return -EHOSTUNREACH;
	const struct cfg_dest *d = &set->d[i];
	r->dest = d;
	r->transport = d->transport;
	if (!d->has_addr) /* a name without maddr */
		return dns_next_hop(slice_from_cstr(d->host), d->port, d->has_port, key, family, r);
	memcpy(&r->dst, &d->addr.sa, sizeof(r->dst));
	r->dstlen = d->addr.salen;
	return 0;
}

/* Next hop for @u, the remaining top Route (@from_route) or the Request-URI. */
static int route_to_uri(const struct cfg *c, struct slice call_id, int family, const struct sip_uri *u,
			bool from_route, struct txn_route *r)
{
	if (u->host_is_ipv4 || u->host_is_ipv6) {
		/* our own address in the Request-URI is a request for our domain */
		if (!from_route && proxy_uri_is_ours(c, u))
			return route_configured(c, call_id, family, TXN_ROUTE_LOCAL, r);
		r->transport = proxy_transport_of_uri(u);
		const uint16_t port = u->has_port ? u->port
				      : r->transport == CFG_TRANSPORT_TLS ? PROXY_DEFAULT_TLS_PORT : PROXY_DEFAULT_PORT;
		if (!sockaddr_from_ip(u->host, port, &r->dst, &r->dstlen))
			return -EBADMSG;
		if (sockaddr_is_bad_destination((const struct sockaddr *)&r->dst))
			return -EADDRNOTAVAIL;
		r->kind = TXN_ROUTE_DIRECT;
		return 0;
	}
	if (cfg_is_our_domain(c, u->host.p, u->host.len))
		return route_configured(c, call_id, family, TXN_ROUTE_LOCAL, r);
	if (c->routes.outbound.n == 0) {
		/* SPEC §10: no routes.outbound: the host itself, resolved per RFC 3263 */
		r->kind = TXN_ROUTE_DIRECT;
		r->transport = proxy_transport_of_uri(u);
		return dns_next_hop(u->host, u->port, u->has_port, dest_key(call_id), family, r);
	}
	return route_configured(c, call_id, family, TXN_ROUTE_OUTBOUND, r);
}

static int route_decide(struct txn *t, struct txn_route *r)
{
	const struct cfg *c = t->cfg;
	const struct sip_msg *m = &t->msg;
	/* we send from the socket that received: a resolved address must be of its family */
	const int family = c->listen[t->listen_idx < c->n_listen ? t->listen_idx : 0].sa.ss_family;
	struct sip_uri u;
	unsigned i = m->first[SIP_HDR_ROUTE];
	while (i != SIP_NO_HDR && proxy_route_is_ours(c, m->call_id, m->hdrs[i].value, &u)) {
		if (r->n_pop++ == 0)
			r->top_ours = u;
		i = sip_msg_next(m, i);
	}
	if (i != SIP_NO_HDR) {
		struct sip_nameaddr na;
		if (sip_nameaddr_parse(m->hdrs[i].value, &na) < 0 || sip_uri_parse(na.uri, &u) < 0 ||
		    !sip_uri_is_sip(&u))
			return -EBADMSG;
		return route_to_uri(c, m->call_id, family, &u, true, r);
	}
	/* a stage's new Request-URI (rare: transfer) is parsed here; the received one once, by the view */
	const struct sip_uri *ru = &u;
	if (t->edits.ruri.p) {
		if (sip_uri_parse(t->edits.ruri, &u) < 0)
			return -EBADMSG;
	} else if (!(ru = txn_ruri(t))) {
		return -EBADMSG;
	}
	if (!sip_uri_is_sip(ru))
		return -EBADMSG;
	return route_to_uri(c, m->call_id, family, ru, false, r);
}

const struct txn_route *txn_route(struct txn *t)
{
	struct txn_view *v = &t->view;
	if (!(v->looked & TXN_VIEW_ROUTE)) {
		memset(&v->route, 0, sizeof(v->route));
		v->route.rc = route_decide(t, &v->route);
		v->looked |= TXN_VIEW_ROUTE;
	}
	return &v->route;
}

bool txn_next_hop_trusted(struct txn *t)
{
	const struct txn_route *r = txn_route(t);
	return r->rc == 0 && cfg_is_trusted(t->cfg, (const struct sockaddr *)&r->dst);
}
