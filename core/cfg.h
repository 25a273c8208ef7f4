#pragma once
/* cfg.h - the configuration file (SPEC §7) as plain data.
 *
 * One YAML file; dotted names are nested mappings. The struct mirrors the
 * YAML paths (cfg->auth.nonce_ttl is auth: {nonce_ttl: ...}). core only
 * holds and validates the data; auth/, transfer/ and store/ interpret their
 * sections (rules are compiled by auth). A loaded cfg is immutable and is
 * replaced whole on SIGHUP (published with rcu_assign_pointer). */
#include <netinet/in.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CFG_MAX_LISTEN 8
#define CFG_MAX_THREADS 32 /* threads.receivers and threads.workers (the engine's limit too) */
#define CFG_MAX_DOMAINS 16
#define CFG_MAX_TRUSTED 64
#define CFG_MAX_ALGOS 2
#define CFG_MAX_RULES 256
#define CFG_MAX_RULE_ITEMS 32
#define CFG_NAME_MAX 256
#define CFG_MAX_TRUSTED_NAMES 64

/* Transport of a listen address or next hop (SPEC §9: udp://, tcp://, tls://). */
enum cfg_transport { CFG_TRANSPORT_UDP = 0, CFG_TRANSPORT_TCP, CFG_TRANSPORT_TLS, CFG_TRANSPORT_COUNT };
#define CFG_MAX_DNS_SERVERS 4
#define CFG_MAX_DESTS 16 /* destinations per route (a 32-bit up mask holds them) */

struct cfg_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	char text[80]; /* "host:port" as written in the file (after the scheme) */
	enum cfg_transport transport; /* from the scheme; UDP when written without one */
};

struct cfg_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};


/* One destination of a route (SPEC §10): udp://IP:port, or
 * sip:HOST[:PORT][;transport=udp|tcp|tls][;maddr=IP] / sips:HOST[:PORT]. */
struct cfg_dest {
	char uri[CFG_NAME_MAX];   /* as written: the metric label and the log name */
	char host[CFG_NAME_MAX];  /* HOST: a name (what TLS verifies) or an IP literal */
	uint16_t port;            /* explicit port, or the default of the transport */
	bool has_port;            /* written with a port (RFC 3263: no SRV lookup then) */
	enum cfg_transport transport;
	bool has_addr;            /* addr is known without DNS (IP literal or maddr); else HOST is resolved (RFC 3263) */
	struct cfg_addr addr;     /* where to send */
	unsigned weight;          /* 1..1000, default 1 */
	uint64_t seed;            /* rendezvous-hash identity (hash of uri), same on every instance */
};

/* A route: one or more destinations, chosen per Call-ID (core/dest_select.c). */
struct cfg_destset {
	unsigned n;               /* 0 = route not configured */
	struct cfg_dest d[CFG_MAX_DESTS];
	uint64_t id;              /* hash of every uri and weight: health state is kept per id */
	bool same_weights;        /* every weight equal: selection skips the logarithm */
};

/* advertise of a listen item {url: URL, advertise: HOST[:PORT]} (SPEC §11):
 * written in Via sent-by and Record-Route instead of the bound address. */
struct cfg_advertise {
	bool set;
	char text[CFG_NAME_MAX]; /* "HOST[:PORT]" as written */
	char host[CFG_NAME_MAX]; /* HOST, lowercased, IPv6 without brackets */
	uint16_t port;           /* 0 = not written (5060) */
};

enum cfg_algo { CFG_ALGO_SHA256 = 0, CFG_ALGO_MD5 = 1 };
enum cfg_store_backend { CFG_STORE_FILE = 0, CFG_STORE_REDIS = 1 };
enum cfg_transfer_identity { CFG_TRANSFER_GRANT = 0, CFG_TRANSFER_SIPX = 1 };
enum cfg_log_level { CFG_LOG_ERROR = 0, CFG_LOG_WARN, CFG_LOG_INFO, CFG_LOG_DEBUG };
enum cfg_tls_verify { CFG_TLS_VERIFY_NONE = 0, CFG_TLS_VERIFY_OPTIONAL, CFG_TLS_VERIFY_REQUIRE };

struct cfg_rule {
	unsigned line; /* line in the config file, for error messages */
	unsigned n_hosts, n_users, n_permissions;
	char hosts[CFG_MAX_RULE_ITEMS][CFG_NAME_MAX];
	char users[CFG_MAX_RULE_ITEMS][CFG_NAME_MAX];
	char permissions[CFG_MAX_RULE_ITEMS][64];
};

/* A running generation is one cfg plus what the modules compiled from it
 * (SPEC §7 reload): a reload builds a whole new cfg, lets each module attach
 * its part (compiled rules, users table, later TLS material), validates all of
 * it and only then publishes the one cfg pointer. Readers reach every part
 * through the cfg they hold (txn->cfg), so they never see a mix. Each part is
 * released with its cfg (cfg_free, after the publisher's grace period). */
enum cfg_gen_slot {
	CFG_GEN_RULES = 0, /* auth: compiled permission rules */
	CFG_GEN_USERS,     /* store: users table of the file backend */
	CFG_GEN_TLS,       /* stream transports: certificates and keys (hook for issue 10) */
	CFG_GEN_COUNT
};

struct cfg_gen_part {
	void *data;
	void (*release)(void *data); /* called by cfg_free; no reader holds the cfg any more */
};

#define CFG_KEY_LINES_MAX 64

struct cfg {
	char path[4096]; /* file this was loaded from */
	unsigned root_line;  /* line of the top-level mapping */
	unsigned n_key_lines; /* dotted section keys as written, with their lines */
	struct {
		char name[48];
		unsigned line;
	} key_lines[CFG_KEY_LINES_MAX];
	struct cfg_gen_part gen[CFG_GEN_COUNT];

	unsigned n_listen;
	struct cfg_addr listen[CFG_MAX_LISTEN];
	struct cfg_advertise advertise[CFG_MAX_LISTEN]; /* [i] belongs to listen[i] */
	unsigned n_domains;
	char domains[CFG_MAX_DOMAINS][CFG_NAME_MAX]; /* lowercased; [0] is canonical */
	char realm[CFG_NAME_MAX];                    /* default: domains[0] */
	char secret_file[4096];                      /* may be empty only with --check */

	struct {
		unsigned receivers; /* default 2 */
		unsigned workers;   /* default 2 */
		bool inline_receive; /* default true when receivers == workers: workers read the sockets themselves */
	} threads;

	struct {
		struct cfg_destset local;    /* requests to our domains */
		struct cfg_destset outbound; /* requests to other domains */
	} routes;

	struct {
		unsigned n_servers;
		char servers[CFG_MAX_DNS_SERVERS][64]; /* "IP[:port]" ("[v6]:port"); none: /etc/resolv.conf */
		unsigned negative_ttl; /* seconds a failed name is cached without an SOA, default 30 */
	} dns;

	struct {
		unsigned interval;  /* seconds between OPTIONS probes, default 10; 0 = off */
		unsigned failures;  /* unanswered probes before down, default 3 */
		unsigned successes; /* answered probes before up again, default 2 */
	} health;

	unsigned n_trusted;
	struct cfg_cidr trusted[CFG_MAX_TRUSTED];
	/* load balancers in front (SPEC §11): their requests come from the client
	 * named by the Via below theirs (core/dest_balancer.c) */
	unsigned n_load_balancers;
	struct cfg_cidr load_balancers[CFG_MAX_TRUSTED];

	struct {
		enum cfg_store_backend backend; /* default file */
		char file[4096];                /* users file, relative to the config's folder */
		char redis[512];                /* "redis://host:port[/db]" */
		unsigned cache_max_age;         /* seconds, default 60 */
		unsigned max_inflight;          /* per worker, default 1024 */
		unsigned cache_max_entries;     /* cached users, positive and negative; default 100000 */
		unsigned marks_max_entries;     /* nonce counts, and grant bindings; default 2000000 each */
	} store;

	struct {
		struct {
			unsigned rate;  /* requests per second per source, default 200 */
			unsigned burst; /* bucket size, default 400 */
		} source_rate;
		unsigned sources_max; /* sources tracked at once, default 100000 */
	} limits;

	struct {
		unsigned n_algorithms;
		enum cfg_algo algorithms[CFG_MAX_ALGOS]; /* default [SHA-256, MD5] */
		unsigned nonce_ttl;                      /* default 300 */
		bool check_uri;                          /* default false */
		bool challenge_local_from;               /* default true */
		struct {
			unsigned count;  /* default 20 */
			unsigned window; /* default 60 */
		} failure_limit;
	} auth;

	unsigned n_rules;
	struct cfg_rule *rules; /* n_rules entries, owned by the cfg */

	struct {
		enum cfg_transfer_identity identity; /* default grant */
		bool check_at_refer;                 /* default true */
		unsigned grant_ttl;                  /* default 60 */
		unsigned sipx_validity;              /* default 300 */
	} transfer;

	struct {
		bool enabled;
		struct cfg_addr listen; /* "host:port" */
	} metrics;

	enum cfg_log_level log_level; /* key "log_level", default info */

	struct {
		char certificate[4096];             /* PEM chain; required with a tls:// listen */
		char private_key[4096];             /* PEM; mode 0600 like the secret */
		char ca_file[4096];                 /* CAs that verify peers; "" = none */
		enum cfg_tls_verify verify_client;  /* default none */
		unsigned n_trusted_names;
		char trusted_names[CFG_MAX_TRUSTED_NAMES][CFG_NAME_MAX]; /* lowercased SAN DNS names */
	} tls;

	struct {
		unsigned max_connections; /* default 16384 */
		unsigned max_per_source;  /* default 64 */
		unsigned idle_timeout;    /* seconds, default 600 */
		unsigned read_timeout;    /* seconds for a started message, default 10 */
		unsigned max_message;     /* bytes, default 65535 */
	} tcp;
};

/**
 * cfg_load - read and validate @path into a new cfg.
 * @err, @errlen: on failure receives "file:line: what is wrong".
 * Returns the cfg (free with cfg_free) or NULL on failure. Allocates; call
 * only at start, on reload or from referee-admin.
 */
struct cfg *cfg_load(const char *path, char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* cfg_gen_attach - give @c the module part @slot (released with @c). A part
 * already there is released first. Startup / reload thread only. */
void cfg_gen_attach(struct cfg *c, enum cfg_gen_slot slot, void *data, void (*release)(void *data));
/* cfg_gen_get - the part @slot of @c, NULL when none (or @c is NULL). Any thread holding @c. */
static inline void *cfg_gen_get(const struct cfg *c, enum cfg_gen_slot slot)
{
	return c ? c->gen[slot].data : NULL;
}
/* cfg_key_line - line where the dotted key @name ("threads.workers") was written; 0 when absent. */
unsigned cfg_key_line(const struct cfg *c, const char *name);
/**
 * cfg_reload_check - refuse a reload to @next that changes a key only a
 * restart can apply (listen, threads.*, store.backend, store.redis,
 * store.max_inflight, metrics.listen, secret_file; the store's max-age and caps
 * are applied by store_gen_commit, limits.sources_max by flood_reload). 0, or -EINVAL with
 * "FILE:LINE: KEY cannot change on reload; restart" in @err.
 */
int cfg_reload_check(const struct cfg *cur, const struct cfg *next, char *err, size_t errlen);

/* ---- store.redis URLs (cfg_redis_url.c): the one parser, shared by the config
 * check, the store and referee-admin (SPEC §6, §12). */
#define CFG_REDIS_MAX_HOSTS 8
enum cfg_redis_kind { CFG_REDIS_SINGLE = 0, CFG_REDIS_SENTINEL, CFG_REDIS_CLUSTER };
struct cfg_redis_host {
	char host[256]; /* name, IPv4 or IPv6 (without brackets) */
	unsigned port;
};
struct cfg_redis_url {
	enum cfg_redis_kind kind;
	unsigned n_hosts;                                /* 1 for redis:// */
	struct cfg_redis_host hosts[CFG_REDIS_MAX_HOSTS]; /* the server, the sentinels or the seed nodes */
	char master[128];                                /* sentinel: the monitored master's name */
	unsigned db;                                     /* 0..255 (always 0 for a cluster) */
};
/**
 * cfg_redis_url_parse - "redis://HOST[:PORT][/DB]",
 * "redis-sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]" or
 * "redis-cluster://HOST[:PORT][,HOST[:PORT]...]" into @out. Returns NULL, or
 * a short reason ("has a bad port (1..65535)") to print after the URL.
 */
const char *cfg_redis_url_parse(const char *url, struct cfg_redis_url *out);

/* cfg_is_our_domain - host (any case, no port) is one of cfg->domains. */
bool cfg_is_our_domain(const struct cfg *c, const char *host, size_t len);
/* cfg_is_trusted - address falls in one of the trusted CIDRs. */
bool cfg_is_trusted(const struct cfg *c, const struct sockaddr *sa);
/* cfg_cidr_match - @sa falls inside @cidr (IPv4-mapped IPv6 matches IPv4). */
bool cfg_cidr_match(const struct cfg_cidr *cidr, const struct sockaddr *sa);
/* cfg_cidr_parse - "10.0.0.0/8", "::1", "192.0.2.1" (host prefix). 0 or -EINVAL. */
int cfg_cidr_parse(const char *s, struct cfg_cidr *out);
/* cfg_addr_parse - "udp://host:port", "tcp://...", "tls://..." (@with_scheme)
 * or "host:port"; IP literals only. */
int cfg_addr_parse(const char *s, bool with_scheme, struct cfg_addr *out);
/* cfg_dest_explain - parse destination URL @s (SPEC §10) into @out (weight 1);
 * NULL on success, else a short reason (core/dest_cfg.c). */
const char *cfg_dest_explain(const char *s, struct cfg_dest *out);
/* cfg_destset_add - append destination URL @s with @weight to @set and
 * refresh the set's id. 0, -EINVAL (bad URL or weight) or -ENOSPC (full). */
int cfg_destset_add(struct cfg_destset *set, const char *s, unsigned weight);
/**
 * cfg_url_explain - the one parser of listen/next-hop URLs: "udp://IP:port",
 * "tcp://IP:port" or "tls://IP:port" (scheme in any case) into @out
 * (out->transport set). Returns NULL, or a short reason for an error message.
 */
const char *cfg_url_explain(const char *s, struct cfg_addr *out);
/* cfg_transport_name - "udp", "tcp", "tls" (lowercase, URL scheme). */
const char *cfg_transport_name(enum cfg_transport t);
/* cfg_has_transport - some listen address uses @t. */
bool cfg_has_transport(const struct cfg *c, enum cfg_transport t);
