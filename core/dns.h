#pragma once
/* dns.h - RFC 3263 resolution of SIP next hops (SPEC §10).
 *
 *   dns_msg.c       DNS answers as hostile input: header, compressed names
 *                   (bounded, loop-proof), A / AAAA / SRV / NAPTR records
 *                   with their TTLs; anything malformed is an error code,
 *                   never a read past the buffer
 *   dns_select.c    a target from a resolved set: the lowest SRV priority
 *                   present, then weighted rendezvous on the request's key
 *   dns_resolver.c  one thread owning a c-ares channel and its poll loop:
 *                   NAPTR -> SRV -> A/AAAA, a cache with TTLs and negative
 *                   entries in an RCU hash table, route names refreshed as
 *                   their TTLs run out, foreign hosts resolved on demand
 *
 * Hot path (workers): dns_lookup is a lock-free cache read; a miss queues a
 * resolution (at most one per name) and answers DNS_PENDING at once: a
 * packet thread never waits for DNS. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "slice.h"

#define DNS_NAME_MAX 256   /* presentation form, with the final NUL */
#define DNS_MAX_RECORDS 32 /* records kept from one answer (more: the rest ignored, counted) */
#define DNS_MAX_TARGETS 16 /* addresses kept for one name */

enum dns_type { DNS_T_A = 1, DNS_T_SRV = 33, DNS_T_AAAA = 28, DNS_T_NAPTR = 35 };

/* Why an answer was refused (and the label of referee_dns_errors_total). */
enum dns_error {
	DNS_OK = 0,
	DNS_E_MALFORMED,  /* truncated, bad name, bad lengths, pointer loop */
	DNS_E_NXDOMAIN,   /* the name does not exist */
	DNS_E_SERVFAIL,   /* server failure, refused, or another error rcode */
	DNS_E_TIMEOUT,    /* no server answered */
	DNS_E_NODATA,     /* no usable record (after NAPTR/SRV/A fallbacks) */
	DNS_E_OVERFLOW,   /* more records than kept (the rest ignored) */
	DNS_E_COUNT
};
extern const char *const dns_error_names[DNS_E_COUNT];

/* One record of an answer section, already checked. */
struct dns_rr {
	uint16_t type;
	uint32_t ttl;
	union {
		uint8_t a[4];
		uint8_t aaaa[16];
		struct {
			uint16_t priority, weight, port;
			char target[DNS_NAME_MAX];
		} srv;
		struct {
			uint16_t order, preference;
			char flags[16];
			char service[32];
			char replacement[DNS_NAME_MAX];
		} naptr;
	} u;
};

struct dns_answer {
	uint8_t rcode;
	bool truncated;
	unsigned n;                       /* records of the asked type, kept */
	unsigned skipped;                 /* other types (CNAME...), or past DNS_MAX_RECORDS */
	struct dns_rr rr[DNS_MAX_RECORDS];
	uint32_t min_ttl;                 /* over the kept records; 0 when none */
	uint32_t neg_ttl;                 /* SOA minimum of the authority section (negative caching), 0 if absent */
};

/**
 * dns_answer_parse - check and decode the DNS message @buf (@len bytes) that
 * answers a query of @qtype: keeps its answer records of that type (at most
 * DNS_MAX_RECORDS), follows no CNAME, reads the SOA minimum for negative
 * caching. Returns DNS_OK, DNS_E_MALFORMED, DNS_E_NXDOMAIN or DNS_E_SERVFAIL
 * (rcode), or DNS_E_OVERFLOW (still usable: the first records are kept).
 */
enum dns_error dns_answer_parse(const uint8_t *buf, size_t len, uint16_t qtype, struct dns_answer *out);

/* A resolved next hop: addresses with the SRV priority/weight they came from. */
struct dns_target {
	struct sockaddr_storage sa;
	socklen_t salen;
	uint16_t priority, weight;
	enum cfg_transport transport;
	uint64_t seed; /* rendezvous identity: hash of address and port */
};

struct dns_targets {
	unsigned n;
	struct dns_target t[DNS_MAX_TARGETS];
};

/**
 * dns_pick - the target for @key among those of address family @family: the
 * lowest priority present, then weighted rendezvous (weight 0 counts as a
 * small weight, RFC 2782). Returns the index, or -1 when none has @family.
 */
int dns_pick(const struct dns_targets *ts, uint64_t key, int family);

/* ---- the resolver (dns_resolver.c) */

enum dns_lookup_rc { DNS_HIT = 0, DNS_PENDING, DNS_FAILED, DNS_OFF };

/**
 * dns_lookup - the next hop for SIP host @host (a name; [@port] when written)
 * for a request with rendezvous @key, whose socket is of @family. DNS_HIT
 * fills @out; DNS_PENDING: not resolved yet (a resolution is queued, answer
 * 503 with Retry-After); DNS_FAILED: the name does not resolve (negative
 * entry, or not a valid name). Worker threads, inside their RCU read-side
 * section. Without a running resolver (unit tests): DNS_OFF.
 */
enum dns_lookup_rc dns_lookup(struct slice host, uint16_t port, bool has_port, uint64_t key,
			      int family, struct sockaddr_storage *out, socklen_t *outlen);

/* dns_start - start the resolver thread for @c (dns.servers; route names are
 * resolved at once). 0 or a negative errno (logged). Main thread. */
int dns_start(const struct cfg *c);
/* dns_reload - resolve and keep fresh the route names of @c from now on. */
void dns_reload(const struct cfg *c);
void dns_stop(void);
