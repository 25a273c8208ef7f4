/* cfg_keys.c - the configuration key tables (SPEC §7, STYLE rule 19): one table
 * per section giving each key's kind, field, default, range, check and
 * meaning; the value checks; the cross-key rules applied after loading; and
 * the Markdown rendering of the tables (packaging/CONFIG.md).
 * Key names are contract: never rename one, only add. */
#include "cfg.h"
#include "cfg_priv.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tls_ctx.h"

/* ENUM and ENUMLIST fields are written through int pointers. */
static_assert(sizeof(enum cfg_algo) == sizeof(int), "enum cfg_algo is int-sized");
static_assert(sizeof(enum cfg_store_backend) == sizeof(int), "enum is int-sized");
static_assert(sizeof(enum cfg_transfer_identity) == sizeof(int), "enum is int-sized");
static_assert(sizeof(enum cfg_log_level) == sizeof(int), "enum is int-sized");
static_assert(sizeof(enum cfg_tls_verify) == sizeof(int), "enum is int-sized");

#define OFF(f) offsetof(struct cfg, f)
#define SIZE(f) sizeof(((struct cfg *)0)->f)
#define ROFF(f) offsetof(struct cfg_rule, f)
#define RSIZE(f) sizeof(((struct cfg_rule *)0)->f)
#define KEYS(arr) arr, sizeof(arr) / sizeof(arr[0])

/* ----------------------------------------------------------------- checks */

static bool ch_is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* domain_check - a lowercased host name or IPv4 literal, no port. */
static const char *domain_check(char *v)
{
	if (v[0] == '.' || v[0] == '-')
		return "is not a domain name (starts with '.' or '-')";
	for (const char *p = v; *p; p++) {
		if (!ch_is_alnum(*p) && *p != '.' && *p != '-' && *p != '_')
			return "is not a domain name (letters, digits, '.', '-' only; no port)";
		if (p[0] == '.' && (p[1] == '.' || p[1] == '\0'))
			return "is not a domain name (empty label)";
	}
	return NULL;
}

/* realm_check - printable, and safe inside a quoted challenge parameter. */
static const char *realm_check(char *v)
{
	for (const char *p = v; *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			return "must be printable ASCII without '\"' or '\\'";
	return NULL;
}

/* pattern_check - a rule host or user pattern: interpreted by auth/, here only non-blank. */
static const char *pattern_check(char *v)
{
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "must not contain spaces or control characters";
	return NULL;
}

static const char *permission_check(char *v)
{
	for (const char *p = v; *p; p++)
		if (!ch_is_alnum(*p) && *p != '_' && *p != '-' && *p != '.')
			return "is not a permission name (letters, digits, '_', '-', '.')";
	return NULL;
}

/* redis_check - the store's own URL parser decides (cfg_redis_url.c). */
static const char *redis_check(char *v)
{
	struct cfg_redis_url u;
	return cfg_redis_url_parse(v, &u);
}

/* ----------------------------------------------------------------- tables */

/* One key per entry reads better than one field per line. */
/* clang-format off */

static const char *const algo_names[] = { "SHA-256", "MD5", NULL };
static const char *const backend_names[] = { "file", "redis", NULL };
static const char *const identity_names[] = { "grant", "sipx", NULL };
static const char *const level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const verify_names[] = { "none", "optional", "require", NULL };

static const struct cfg_key threads_keys[] = {
	{ .name = "receivers", .kind = CFG_K_UINT, .off = OFF(threads.receivers), .min = 1,
	  .max = CFG_MAX_THREADS, .def = 2, .doc = "threads reading the listen sockets" },
	{ .name = "workers", .kind = CFG_K_UINT, .off = OFF(threads.workers), .min = 1, .max = CFG_MAX_THREADS,
	  .def = 2, .doc = "threads running the request stages" },
	{ .name = "inline_receive", .kind = CFG_K_BOOL, .off = OFF(threads.inline_receive), .def = true,
	  .doc = "each worker hosts its receiver (reads its sockets: no thread hop, no wakeup); needs receivers = workers (default: on when they are equal); false: receiver threads feed the workers" },
};
static const struct cfg_section threads_section = { "threads", KEYS(threads_keys) };

static const struct cfg_key routes_keys[] = {
	{ .name = "local", .kind = CFG_K_DESTSET, .off = OFF(routes.local),
	  .doc = "next hops for requests to our domains (registrar/PBX); one Call-ID stays on one destination" },
	{ .name = "outbound", .kind = CFG_K_DESTSET, .off = OFF(routes.outbound),
	  .doc = "next hops for requests to other domains (SBC/trunk)" },
};
static const struct cfg_section routes_section = { "routes", KEYS(routes_keys) };

/* dns_server_check - "IP" or "IP:port", IPv6 as "[v6]" or "[v6]:port" */
static const char *dns_server_check(char *v)
{
	static const char want[] = "is not IP[:port] (IPv6 as [2001:db8::1]:53)";
	char buf[72];
	const char *port = NULL;
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (!close || (close[1] && close[1] != ':'))
			return want;
		port = close[1] ? close + 2 : NULL;
		snprintf(buf, sizeof(buf), "%.*s", (int)(close - v - 1), v + 1);
		struct in6_addr a6;
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return want;
	} else {
		const char *colon = strchr(v, ':');
		snprintf(buf, sizeof(buf), "%.*s", colon ? (int)(colon - v) : (int)strlen(v), v);
		port = colon ? colon + 1 : NULL;
		struct in_addr a4;
		if (inet_pton(AF_INET, buf, &a4) != 1)
			return strchr(colon ? colon + 1 : "", ':') ? "IPv6 addresses need brackets: [::1]:53" : want;
	}
	if (port) {
		unsigned n = 0;
		const char *q = port;
		while (*q >= '0' && *q <= '9' && q - port < 6)
			n = n * 10 + (unsigned)(*q++ - '0');
		if (q == port || *q || n == 0 || n > 65535)
			return want;
	}
	return NULL;
}

static const struct cfg_key dns_keys[] = {
	{ .name = "servers", .kind = CFG_K_STRLIST, .off = OFF(dns.servers), .size = SIZE(dns.servers[0]),
	  .aux_off = OFF(dns.n_servers), .min = 1, .max = CFG_MAX_DNS_SERVERS, .flags = CFG_F_UNIQUE,
	  .check = dns_server_check, .doc_default = "/etc/resolv.conf",
	  .doc = "DNS servers (`IP[:port]`) for route names and foreign Request-URI hosts (RFC 3263)" },
	{ .name = "negative_ttl", .kind = CFG_K_UINT, .off = OFF(dns.negative_ttl), .min = 1, .max = 3600,
	  .def = 30, .doc = "seconds a name that does not resolve is cached when the answer has no SOA" },
};
static const struct cfg_section dns_section = { "dns", KEYS(dns_keys) };

static const struct cfg_key health_keys[] = {
	{ .name = "interval", .kind = CFG_K_UINT, .off = OFF(health.interval), .min = 0,
	  .max = 3600, .def = 10, .doc = "seconds between OPTIONS probes to each route destination; 0 = no probes" },
	{ .name = "failures", .kind = CFG_K_UINT, .off = OFF(health.failures), .min = 1,
	  .max = 100, .def = 3, .doc = "unanswered probes in a row before a destination is down" },
	{ .name = "successes", .kind = CFG_K_UINT, .off = OFF(health.successes), .min = 1,
	  .max = 100, .def = 2, .doc = "answered probes in a row before a down destination is up again" },
};
static const struct cfg_section health_section = { "health", KEYS(health_keys) };

static const struct cfg_key store_keys[] = {
	{ .name = "backend", .kind = CFG_K_ENUM, .off = OFF(store.backend), .def = CFG_STORE_FILE,
	  .names = backend_names, .doc = "where users live: a YAML file or Redis" },
	{ .name = "file", .kind = CFG_K_PATH, .off = OFF(store.file), .size = SIZE(store.file),
	  .doc_default = "required with `file`",
	  .doc = "users file (SPEC §6), relative to the config's folder" },
	{ .name = "redis", .kind = CFG_K_STR, .off = OFF(store.redis), .size = SIZE(store.redis),
	  .check = redis_check, .doc_default = "required with `redis`",
	  .doc = "`redis://host[:port][/db]`, `redis-sentinel://host[:port][,...]/master[/db]` or `redis-cluster://host[:port][,...]` (SPEC §12)" },
	{ .name = "cache_max_age", .kind = CFG_K_UINT, .off = OFF(store.cache_max_age), .min = 1,
	  .max = 86400, .def = 60, .doc = "seconds a cached user is kept (redis backend)" },
	{ .name = "max_inflight", .kind = CFG_K_UINT, .off = OFF(store.max_inflight), .min = 1,
	  .max = 1048576, .def = 1024, .doc = "store lookups in flight per worker" },
	{ .name = "cache_max_entries", .kind = CFG_K_UINT, .off = OFF(store.cache_max_entries), .min = 16,
	  .max = 16777216, .def = 100000,
	  .doc = "cached users, known and unknown together (redis backend); past it the least recently used go" },
	{ .name = "marks_max_entries", .kind = CFG_K_UINT, .off = OFF(store.marks_max_entries), .min = 16,
	  .max = 67108864, .def = 2000000,
	  .doc = "nonce counts (and, separately, grant bindings) kept at once; past it a new one is refused and counted" },
};
static const struct cfg_section store_section = { "store", KEYS(store_keys) };

static const struct cfg_key failure_limit_keys[] = {
	{ .name = "count", .kind = CFG_K_UINT, .off = OFF(auth.failure_limit.count), .min = 1,
	  .max = 1000000, .def = 20, .doc = "failed authentications from one address before 403" },
	{ .name = "window", .kind = CFG_K_UINT, .off = OFF(auth.failure_limit.window), .min = 1,
	  .max = 86400, .def = 60, .doc = "seconds the failure count covers and the block lasts" },
};
static const struct cfg_section failure_limit_section = { "auth.failure_limit",
							   KEYS(failure_limit_keys) };

static const struct cfg_key auth_keys[] = {
	{ .name = "algorithms", .kind = CFG_K_ENUMLIST, .off = OFF(auth.algorithms),
	  .aux_off = OFF(auth.n_algorithms), .min = 1, .max = CFG_MAX_ALGOS,
	  .names = algo_names, .doc_default = "`[SHA-256, MD5]`",
	  .doc = "digest algorithms offered, most preferred first" },
	{ .name = "nonce_ttl", .kind = CFG_K_UINT, .off = OFF(auth.nonce_ttl), .min = 10,
	  .max = 86400, .def = 300, .doc = "seconds a nonce stays valid (then stale=true)" },
	{ .name = "check_uri", .kind = CFG_K_BOOL, .off = OFF(auth.check_uri), .def = false,
	  .doc = "require the digest uri to equal the Request-URI" },
	{ .name = "challenge_local_from", .kind = CFG_K_BOOL, .off = OFF(auth.challenge_local_from),
	  .def = true, .doc = "challenge anonymous INVITEs whose From is a local user" },
	{ .name = "failure_limit", .kind = CFG_K_SECTION, .sub = &failure_limit_section,
	  .doc = "rate limit of failed authentications per source address" },
};
static const struct cfg_section auth_section = { "auth", KEYS(auth_keys) };

static const struct cfg_key transfer_keys[] = {
	{ .name = "identity", .kind = CFG_K_ENUM, .off = OFF(transfer.identity),
	  .def = CFG_TRANSFER_GRANT, .names = identity_names,
	  .doc = "token put in a rewritten Refer-To (SPEC §5)" },
	{ .name = "check_at_refer", .kind = CFG_K_BOOL, .off = OFF(transfer.check_at_refer),
	  .def = true, .doc = "check the transferor's permission for the target at REFER time" },
	{ .name = "grant_ttl", .kind = CFG_K_UINT, .off = OFF(transfer.grant_ttl), .min = 1,
	  .max = 3600, .def = 60, .doc = "seconds a grant token is valid" },
	{ .name = "sipx_validity", .kind = CFG_K_UINT, .off = OFF(transfer.sipx_validity), .min = 1,
	  .max = 86400, .def = 300, .doc = "seconds a sipx signature is valid" },
};
static const struct cfg_section transfer_section = { "transfer", KEYS(transfer_keys) };

static const struct cfg_key source_rate_keys[] = {
	{ .name = "rate", .kind = CFG_K_UINT, .off = OFF(limits.source_rate.rate), .min = 1,
	  .max = 1000000, .def = 200, .doc = "requests per second one source address may send (token bucket refill)" },
	{ .name = "burst", .kind = CFG_K_UINT, .off = OFF(limits.source_rate.burst), .min = 1,
	  .max = 10000000, .def = 400, .doc = "requests one source may send at once (bucket size)" },
};
static const struct cfg_section source_rate_section = { "limits.source_rate", KEYS(source_rate_keys) };

static const struct cfg_key limits_keys[] = {
	{ .name = "source_rate", .kind = CFG_K_SECTION, .sub = &source_rate_section,
	  .doc = "flood protection per source address (SPEC §13)" },
	{ .name = "sources_max", .kind = CFG_K_UINT, .off = OFF(limits.sources_max), .min = 16,
	  .max = 16777216, .def = 100000,
	  .doc = "source addresses the flood limiter tracks at once; past it the idlest are forgotten" },
};
static const struct cfg_section limits_section = { "limits", KEYS(limits_keys) };

static const struct cfg_key metrics_keys[] = {
	{ .name = "listen", .kind = CFG_K_ADDR, .off = OFF(metrics.listen),
	  .aux_off = OFF(metrics.enabled), .flags = CFG_F_HAS, .doc_default = "off",
	  .doc = "HTTP address of /metrics and /health; absent: no HTTP server" },
};
static const struct cfg_section metrics_section = { "metrics", KEYS(metrics_keys) };

static const struct cfg_key tls_keys[] = {
	{ .name = "certificate", .kind = CFG_K_PATH, .off = OFF(tls.certificate),
	  .size = SIZE(tls.certificate), .doc_default = "required with `tls://`",
	  .doc = "PEM certificate chain presented to peers, relative to the config's folder" },
	{ .name = "private_key", .kind = CFG_K_PATH, .off = OFF(tls.private_key),
	  .size = SIZE(tls.private_key), .doc_default = "required with `tls://`",
	  .doc = "PEM private key of the certificate, mode 0600 (refused when group/others may read it)" },
	{ .name = "ca_file", .kind = CFG_K_PATH, .off = OFF(tls.ca_file), .size = SIZE(tls.ca_file),
	  .doc_default = "system CAs for next hops",
	  .doc = "PEM CAs that verify peer certificates (clients, and next hops)" },
	{ .name = "verify_client", .kind = CFG_K_ENUM, .off = OFF(tls.verify_client),
	  .def = CFG_TLS_VERIFY_NONE, .names = verify_names,
	  .doc = "client certificates: not asked, checked when sent, or required (needs `tls.ca_file`)" },
	{ .name = "trusted_names", .kind = CFG_K_STRLIST, .off = OFF(tls.trusted_names),
	  .size = SIZE(tls.trusted_names[0]), .aux_off = OFF(tls.n_trusted_names), .min = 0,
	  .max = CFG_MAX_TRUSTED_NAMES, .flags = CFG_F_LOWER | CFG_F_UNIQUE, .check = domain_check,
	  .doc_default = "`[]`",
	  .doc = "a client whose verified certificate has one of these subjectAltName DNS names is trusted (like `trusted`)" },
};
static const struct cfg_section tls_section = { "tls", KEYS(tls_keys) };

static const struct cfg_key tcp_keys[] = {
	{ .name = "max_connections", .kind = CFG_K_UINT, .off = OFF(tcp.max_connections), .min = 1,
	  .max = 1048576, .def = 16384, .doc = "open TCP and TLS connections at most (more are refused, counted)" },
	{ .name = "max_per_source", .kind = CFG_K_UINT, .off = OFF(tcp.max_per_source), .min = 1,
	  .max = 1048576, .def = 64, .doc = "open connections from one IP address at most (more are refused, counted)" },
	{ .name = "idle_timeout", .kind = CFG_K_UINT, .off = OFF(tcp.idle_timeout), .min = 1,
	  .max = 86400, .def = 600, .doc = "seconds without any byte after which a connection is closed" },
	{ .name = "read_timeout", .kind = CFG_K_UINT, .off = OFF(tcp.read_timeout), .min = 1,
	  .max = 3600, .def = 10, .doc = "seconds a started message (or TLS handshake) may take to complete (slow senders are cut off)" },
	{ .name = "max_message", .kind = CFG_K_UINT, .off = OFF(tcp.max_message), .min = 512,
	  .max = 65535, .def = 65535, .doc = "bytes of a message (headers and body) on a stream; larger closes the connection, counted" },
};
static const struct cfg_section tcp_section = { "tcp", KEYS(tcp_keys) };

static const struct cfg_key rule_keys[] = {
	{ .name = "hosts", .kind = CFG_K_STRLIST, .off = ROFF(hosts), .size = RSIZE(hosts[0]),
	  .aux_off = ROFF(n_hosts), .min = 1, .max = CFG_MAX_RULE_ITEMS, .flags = CFG_F_REQUIRED,
	  .check = pattern_check, .doc = "Request-URI host patterns: host[:port], `*.domain`, CIDR" },
	{ .name = "users", .kind = CFG_K_STRLIST, .off = ROFF(users), .size = RSIZE(users[0]),
	  .aux_off = ROFF(n_users), .min = 1, .max = CFG_MAX_RULE_ITEMS, .flags = CFG_F_REQUIRED,
	  .check = pattern_check, .doc = "Request-URI user patterns: sipXecs digits or `re:REGEX`" },
	{ .name = "permissions", .kind = CFG_K_STRLIST, .off = ROFF(permissions),
	  .size = RSIZE(permissions[0]), .aux_off = ROFF(n_permissions), .min = 0,
	  .max = CFG_MAX_RULE_ITEMS, .flags = CFG_F_REQUIRED | CFG_F_UNIQUE,
	  .check = permission_check, .doc = "any one of these is needed; `[]` requires nothing" },
};
static const struct cfg_section rule_section = { "rules[]", KEYS(rule_keys) };

static const struct cfg_key root_keys[] = {
	{ .name = "listen", .kind = CFG_K_ADDRLIST, .off = OFF(listen), .aux_off = OFF(n_listen),
	  .min = 1, .max = CFG_MAX_LISTEN, .flags = CFG_F_REQUIRED | CFG_F_SCHEME | CFG_F_UNIQUE,
	  .doc_type = "list of `udp://IP:port`, `tcp://IP:port`, `tls://IP:port` or `{url: URL, advertise: HOST[:PORT]}` (1..8)",
	  .doc = "addresses to receive SIP on, in any mix of transports (SPEC §9); `advertise` is written in Via and Record-Route instead (SPEC §11)" },
	{ .name = "domains", .kind = CFG_K_STRLIST, .off = OFF(domains), .size = SIZE(domains[0]),
	  .aux_off = OFF(n_domains), .min = 1, .max = CFG_MAX_DOMAINS,
	  .flags = CFG_F_REQUIRED | CFG_F_LOWER | CFG_F_UNIQUE, .check = domain_check,
	  .doc = "our domains (lowercased); the first is canonical" },
	{ .name = "realm", .kind = CFG_K_STR, .off = OFF(realm), .size = SIZE(realm),
	  .check = realm_check, .doc_default = "first domain", .doc = "digest realm" },
	{ .name = "secret_file", .kind = CFG_K_PATH, .off = OFF(secret_file),
	  .size = SIZE(secret_file), .doc_default = "required to run",
	  .doc = "base64 shared secret, mode 0600, relative to the config's folder" },
	{ .name = "threads", .kind = CFG_K_SECTION, .sub = &threads_section, .doc = "threads" },
	{ .name = "routes", .kind = CFG_K_SECTION, .sub = &routes_section, .doc = "next hops" },
	{ .name = "health", .kind = CFG_K_SECTION, .sub = &health_section, .doc = "route probes" },
	{ .name = "dns", .kind = CFG_K_SECTION, .sub = &dns_section, .doc = "resolver" },
	{ .name = "trusted", .kind = CFG_K_CIDRLIST, .off = OFF(trusted), .aux_off = OFF(n_trusted),
	  .min = 0, .max = CFG_MAX_TRUSTED, .doc_default = "`[]`",
	  .doc = "sources never challenged, rules not applied" },
	{ .name = "load_balancers", .kind = CFG_K_CIDRLIST, .off = OFF(load_balancers),
	  .aux_off = OFF(n_load_balancers), .min = 0, .max = CFG_MAX_TRUSTED, .doc_default = "`[]`",
	  .doc = "balancers in front: their requests count as from the client in the Via below theirs" },
	{ .name = "store", .kind = CFG_K_SECTION, .sub = &store_section, .doc = "user store" },
	{ .name = "auth", .kind = CFG_K_SECTION, .sub = &auth_section, .doc = "authentication" },
	{ .name = "rules", .kind = CFG_K_RULES, .min = 0, .max = CFG_MAX_RULES, .sub = &rule_section,
	  .doc_default = "`[]`", .doc = "permission rules, first match wins (SPEC §4)" },
	{ .name = "transfer", .kind = CFG_K_SECTION, .sub = &transfer_section, .doc = "REFER" },
	{ .name = "metrics", .kind = CFG_K_SECTION, .sub = &metrics_section, .doc = "metrics" },
	{ .name = "limits", .kind = CFG_K_SECTION, .sub = &limits_section, .doc = "flood protection" },
	{ .name = "log_level", .kind = CFG_K_ENUM, .off = OFF(log_level), .def = CFG_LOG_INFO,
	  .names = level_names, .doc = "least severe level logged" },
	{ .name = "tls", .kind = CFG_K_SECTION, .sub = &tls_section, .doc = "TLS" },
	{ .name = "tcp", .kind = CFG_K_SECTION, .sub = &tcp_section, .doc = "stream limits" },
};
const struct cfg_section cfg_root_section = { "", KEYS(root_keys) };
/* clang-format on */

/* ------------------------------------------------------ cross-key rules */

/* line of @key, else of its section, else of the document */
static unsigned key_line(const struct cfg_ctx *x, const char *key, const char *section)
{
	unsigned line = cfg_seen_line(x, key);
	if (!line && section)
		line = cfg_seen_line(x, section);
	return line ? line : x->root_line;
}

/* stream_finish - SPEC §9: what tls:// listen addresses and TLS next hops need. */
static int stream_finish(struct cfg_ctx *x)
{
	struct cfg *c = x->c;
	const struct cfg_destset *routes[2] = { &c->routes.local, &c->routes.outbound };
	static const char *const route_keys[2] = { "routes.local", "routes.outbound" };
	for (unsigned i = 0; i < 2; i++)
		for (unsigned j = 0; j < routes[i]->n; j++) {
			const struct cfg_dest *d = &routes[i]->d[j];
			struct in6_addr a6;
			struct in_addr a4;
			/* a TLS destination is verified against its host name (RFC 5922):
			 * tls://IP:port or sips:IP gives none (sips:NAME;maddr=IP does) */
			if (d->transport == CFG_TRANSPORT_TLS &&
			    (inet_pton(AF_INET, d->host, &a4) == 1 || inet_pton(AF_INET6, d->host, &a6) == 1))
				return cfg_fail(x, key_line(x, route_keys[i], "routes"),
						"%s: a TLS next hop needs a host name to verify, which %s "
						"does not give; use udp://, tcp:// or sips:NAME;maddr=IP",
						route_keys[i], d->uri);
		}
	const bool tls_listen = cfg_has_transport(c, CFG_TRANSPORT_TLS);
	if (tls_listen && (!c->tls.certificate[0] || !c->tls.private_key[0]))
		return cfg_fail(x, key_line(x, "tls", "listen"),
				"a tls:// listen address needs tls.certificate and tls.private_key");
	if (!!c->tls.certificate[0] != !!c->tls.private_key[0])
		return cfg_fail(x, key_line(x, "tls", NULL),
				"tls.certificate and tls.private_key go together");
	if (c->tls.verify_client != CFG_TLS_VERIFY_NONE && !c->tls.ca_file[0])
		return cfg_fail(x, key_line(x, "tls.verify_client", "tls"),
				"tls.verify_client %s needs tls.ca_file (the CAs that sign client certificates)",
				c->tls.verify_client == CFG_TLS_VERIFY_REQUIRE ? "require" : "optional");
	if (c->tls.n_trusted_names > 0 && c->tls.verify_client == CFG_TLS_VERIFY_NONE)
		return cfg_fail(x, key_line(x, "tls.trusted_names", "tls"),
				"tls.trusted_names needs tls.verify_client optional or require "
				"(names come from verified client certificates)");
	if (c->tcp.max_per_source > c->tcp.max_connections)
		return cfg_fail(x, key_line(x, "tcp.max_per_source", "tcp"),
				"tcp.max_per_source (%u) is larger than tcp.max_connections (%u)",
				c->tcp.max_per_source, c->tcp.max_connections);
	if (c->tls.private_key[0]) {
		struct stat st;
		if (stat(c->tls.private_key, &st) == 0 && (st.st_mode & 077))
			return cfg_fail(x, key_line(x, "tls.private_key", "tls"),
					"tls.private_key: %s is accessible by group or others (mode %04o); "
					"run chmod 600 on it",
					c->tls.private_key, (unsigned)(st.st_mode & 07777));
	}
	if (c->tls.certificate[0] || c->tls.ca_file[0]) {
		char why[256];
		const char *key = NULL;
		if (tls_files_check(c, &key, why, sizeof(why)) < 0)
			return cfg_fail(x, key_line(x, key, "tls"), "%s: %s", key, why);
	}
	return 0;
}

int cfg_finish(struct cfg_ctx *x)
{
	struct cfg *c = x->c;
	int rc = stream_finish(x);
	if (rc < 0)
		return rc;
	if (!c->realm[0])
		memcpy(c->realm, c->domains[0], sizeof(c->realm));
	if (c->auth.n_algorithms == 0) {
		c->auth.algorithms[0] = CFG_ALGO_SHA256;
		c->auth.algorithms[1] = CFG_ALGO_MD5;
		c->auth.n_algorithms = 2;
	}
	if (c->threads.inline_receive && c->threads.receivers != c->threads.workers) {
		/* asked for: an error; only defaulted: receiver threads it is */
		unsigned tl = cfg_seen_line(x, "threads.inline_receive");
		if (!tl)
			c->threads.inline_receive = false;
		else
			return cfg_fail(x, tl, "threads.inline_receive needs as many receivers as workers (%u receivers, %u workers)",
					c->threads.receivers, c->threads.workers);
	}
	unsigned line = cfg_seen_line(x, "store.backend");
	if (!line)
		line = cfg_seen_line(x, "store");
	if (!line)
		line = x->root_line;
	if (c->store.backend == CFG_STORE_FILE && !c->store.file[0])
		return cfg_fail(x, line,
				"store.file (the users file) is required with store.backend file");
	if (c->store.backend == CFG_STORE_REDIS && !c->store.redis[0])
		return cfg_fail(x, line, "store.redis is required with store.backend redis");
	return 0;
}

/* ----------------------------------------------------------- CONFIG.md */

static void words_write(FILE *out, const char *const *names, const char *sep)
{
	for (int i = 0; names[i]; i++)
		fprintf(out, "%s`%s`", i ? sep : "", names[i]);
}

static void doc_type(FILE *out, const struct cfg_key *k)
{
	if (k->doc_type) {
		fputs(k->doc_type, out);
		return;
	}
	switch (k->kind) {
	case CFG_K_UINT:
		fprintf(out, "integer %u..%u", k->min, k->max);
		break;
	case CFG_K_BOOL:
		fputs("boolean", out);
		break;
	case CFG_K_ENUM:
		words_write(out, k->names, ", ");
		break;
	case CFG_K_STR:
		fputs("string", out);
		break;
	case CFG_K_PATH:
		fputs("path", out);
		break;
	case CFG_K_STRLIST:
		fprintf(out, "list of strings (%s%u)", k->min ? "1.." : "at most ", k->max);
		break;
	case CFG_K_ADDR:
		fputs(k->flags & CFG_F_SCHEME ? "`udp://IP:port`" : "`IP:port`", out);
		break;
	case CFG_K_ADDRLIST:
		fprintf(out, "list of `udp://IP:port` or `{url: URL, advertise: HOST[:PORT]}` (1..%u)",
			k->max);
		break;
	case CFG_K_CIDRLIST:
		fprintf(out, "list of CIDR or IP (at most %u)", k->max);
		break;
	case CFG_K_ENUMLIST:
		fputs("list of ", out);
		words_write(out, k->names, ", ");
		break;
	case CFG_K_RULES:
		fprintf(out, "list of mappings (at most %u)", k->max);
		break;
	case CFG_K_DESTSET:
		fprintf(out, "destination or list of (1..%u): `udp://IP:port` (or `tcp://`, `tls://`), "
			     "`sip:HOST[:PORT][;transport=T][;maddr=IP]` (T: udp, tcp, tls), "
			     "`sips:HOST[:PORT]`, or `{uri: URL, weight: 1..1000}`", CFG_MAX_DESTS);
		break;
	case CFG_K_SECTION:
		fputs("mapping", out);
		break;
	}
}

static void doc_default(FILE *out, const struct cfg_key *k)
{
	if (k->flags & CFG_F_REQUIRED)
		fputs("required", out);
	else if (k->doc_default)
		fputs(k->doc_default, out);
	else if (k->kind == CFG_K_UINT)
		fprintf(out, "%u", k->def);
	else if (k->kind == CFG_K_BOOL)
		fputs(k->def ? "true" : "false", out);
	else if (k->kind == CFG_K_ENUM)
		fprintf(out, "`%s`", k->names[k->def]);
	else
		fputs("unset", out);
}

static void doc_section(FILE *out, const struct cfg_section *sec)
{
	for (size_t i = 0; i < sec->n_keys; i++) {
		const struct cfg_key *k = &sec->keys[i];
		if (k->kind == CFG_K_SECTION) {
			doc_section(out, k->sub);
			continue;
		}
		fprintf(out, "| `%s%s%s` | ", sec->name, sec->name[0] ? "." : "", k->name);
		doc_type(out, k);
		fputs(" | ", out);
		doc_default(out, k);
		fprintf(out, " | %s |\n", k->doc);
		if (k->kind == CFG_K_RULES)
			doc_section(out, k->sub);
	}
}

void cfg_doc_write(FILE *out)
{
	fputs("| key | type | default | meaning |\n|---|---|---|---|\n", out);
	doc_section(out, &cfg_root_section);
}
