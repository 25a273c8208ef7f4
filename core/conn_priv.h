#pragma once
/* conn_priv.h - internals of the stream transports (conn_*.c, tests).
 *
 * Ownership: a struct conn is written only by its owner thread (ct), except
 *   `doomed`   set by any thread (the connection could not keep up), read by the owner;
 *   the table nodes, which cds_lfht manages (readers under rcu_read_lock).
 * A conn leaves the table before it is closed and is freed after a grace
 * period (call_rcu), so a reader that found it may still read the
 * immutable fields (owner, key, id) until its rcu_read_unlock.
 * Cross-thread sends travel as conn_item in the owner's MPSC queue (Vyukov's
 * intrusive queue: producers exchange the head, the single consumer follows
 * next pointers from the tail), bounded by ct->q_count. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "cfg.h"
#include "conn.h"

/* TSan annotations: core's one shim (rcu_tsan.h) under the names conn_* use. */
#include "rcu_tsan.h"
#ifdef REFEREE_TSAN
#define CONN_TSAN 1
#endif
#define CONN_TSAN_RELEASE(p) rcu_tsan_release(p)
#define CONN_TSAN_ACQUIRE(p) rcu_tsan_acquire(p)

typedef struct ssl_st SSL;

/* Table key: the peer as the socket sees it (IPv4-mapped IPv6 stored as IPv4). */
struct conn_key {
	uint8_t addr[16];
	uint16_t port;
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t transport;
};

enum conn_state {
	CONN_CONNECTING = 0, /* outbound, connect() in progress */
	CONN_HANDSHAKE,      /* TLS handshake running */
	CONN_OPEN,
};

/* referee_conn_closed_total{reason}: the closed set, in label order */
enum conn_close_reason {
	CONN_CLOSE_PEER = 0,   /* the peer closed (EOF) */
	CONN_CLOSE_ERROR,      /* read/write error, reset */
	CONN_CLOSE_IDLE,       /* tcp.idle_timeout */
	CONN_CLOSE_READ_TIMEOUT, /* a message (or handshake) not finished in tcp.read_timeout */
	CONN_CLOSE_TOO_BIG,    /* message over tcp.max_message */
	CONN_CLOSE_BAD_FRAMING, /* no/bad Content-Length (after the 400) */
	CONN_CLOSE_QUEUE_FULL, /* could not keep up with what was sent to it */
	CONN_CLOSE_HANDSHAKE,  /* TLS handshake failed */
	CONN_CLOSE_CONNECT,    /* outbound connect failed */
	CONN_CLOSE_SHUTDOWN,   /* referee stopping */
	CONN_CLOSE_COUNT
};

/* referee_conn_refused_total{reason} */
enum conn_refuse_reason {
	CONN_REFUSE_MAX_CONNECTIONS = 0,
	CONN_REFUSE_MAX_PER_SOURCE,
	CONN_REFUSE_NO_TLS_CONTEXT,
	CONN_REFUSE_COUNT
};

/* referee_tls_handshake_failures_total{reason} */
enum conn_tls_failure {
	CONN_TLS_FAIL_NO_CERTIFICATE = 0, /* verify_client require, none sent */
	CONN_TLS_FAIL_BAD_CERTIFICATE,    /* the peer's certificate did not verify (CA, expiry, name) */
	CONN_TLS_FAIL_PROTOCOL,           /* not TLS, version or cipher mismatch, alerts */
	CONN_TLS_FAIL_TIMEOUT,            /* not finished within tcp.read_timeout */
	CONN_TLS_FAIL_COUNT
};

enum conn_queue_full_where { CONN_QFULL_CONNECTION = 0, CONN_QFULL_THREAD, CONN_QFULL_COUNT };

struct conn_chunk {
	struct conn_chunk *next;
	uint32_t len, off;
	char bytes[];
};

struct conn {
	uint8_t kind;                  /* CONN_EV_CONN: first, shared with the listener */
	struct cds_lfht_node peer_node;
	struct cds_lfht_node alias_node;
	struct rcu_head rcu;
	struct conn_thread *owner;     /* immutable */
	uint64_t id;                   /* immutable, unique */
	struct conn_key key;           /* immutable */
	struct conn_key alias;         /* valid when has_alias */
	atomic_bool doomed;            /* any thread: close it at the next chance */
	int fd;
	enum conn_state state;
	uint16_t listen_idx;
	bool outbound, in_table, has_alias, counted_source, trusted_name, watching_out;
	SSL *ssl;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char *in;                      /* unfinished message bytes, NULL when none */
	uint32_t in_len;
	struct conn_chunk *out_head, *out_tail;
	uint32_t out_bytes;
	uint64_t last_rx_ns, msg_start_ns; /* msg_start_ns: 0 = nothing unfinished */
	struct conn *prev, *next;      /* the owner's list */
};

struct conn_item {
	_Atomic(struct conn_item *) next;
	struct conn_key key;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint16_t listen_idx;
	bool may_connect;
	char tls_name[256];
	uint32_t len;
	char bytes[];
};

enum { CONN_EV_CONN = 1, CONN_EV_LISTENER, CONN_EV_WAKE };

struct conn_listener {
	uint8_t kind; /* CONN_EV_LISTENER */
	int fd;
	uint16_t listen_idx;
	enum cfg_transport transport;
};

struct conn_thread {
	unsigned id;
	int epfd;
	int wake_fd;
	uint8_t wake_kind; /* CONN_EV_WAKE: the epoll tag of wake_fd */
	struct conn_host host;
	unsigned n_listeners;
	struct conn_listener listeners[CFG_MAX_LISTEN];
	struct conn *conns;  /* every connection it owns */
	unsigned n_conns;
	char *scratch;       /* read buffer: CONN_MSG_MAX + room for a read */
	char *scratch_reply; /* the 400 of a message without Content-Length */
	uint64_t next_sweep_ns;
	uint64_t next_tick_ns; /* conn_thread_tick does its work at most every CONN_TICK_NS */
	/* cross-thread queue */
	alignas(64) _Atomic(struct conn_item *) q_head; /* producers */
	atomic_uint q_count;
	atomic_bool wake_pending;
	alignas(64) struct conn_item *q_tail;           /* consumer */
	struct conn_item q_stub;
};

/* Runtime settings (conn_runtime_*). Limits are read relaxed by the owners. */
struct conn_runtime {
	struct cds_lfht *table;   /* peer key -> conn */
	struct cds_lfht *aliases; /* RFC 5923 alias key -> conn */
	atomic_uint n_open;
	atomic_uint max_connections, max_per_source;
	atomic_uint idle_timeout_s, read_timeout_s, max_message;
	unsigned n_threads;
	struct conn_thread *threads[CONN_MAX_THREADS];
	atomic_uint_fast64_t next_id;
	bool metrics_registered;
	struct {
		unsigned open;        /* gauge {transport} */
		unsigned accepted;    /* {transport} */
		unsigned refused;     /* {reason} */
		unsigned closed;      /* {reason} */
		unsigned tls_failures; /* {reason} */
		unsigned queue_full;  /* {where} */
		unsigned connect_failures; /* {transport} */
		unsigned dropped;     /* sends with nowhere to go */
	} m;
};
extern struct conn_runtime conn_rt;

/* conn_rcu_unlock - rcu_read_unlock, telling TSan that every read of a
 * connection in the section comes before its free (call_rcu after the grace
 * period; urcu's own synchronisation is invisible to TSan). */
static inline void conn_rcu_unlock(void)
{
	CONN_TSAN_RELEASE(&conn_rt);
	rcu_read_unlock();
}

extern _Thread_local struct conn_thread *conn_self;

/* ---- conn_table.c */
void conn_key_from_sa(const struct sockaddr_storage *sa, enum cfg_transport t, struct conn_key *k);
/* conn_key_to_sa - the address of @k (port included). */
socklen_t conn_key_to_sa(const struct conn_key *k, struct sockaddr_storage *sa);
int conn_table_add(struct conn *c);            /* owner; -EEXIST when the key is taken */
void conn_table_del(struct conn *c);           /* owner; removes peer and alias */
/* conn_table_find - inside rcu_read_lock; NULL when none (or doomed). */
struct conn *conn_table_find(const struct conn_key *k);
int conn_source_acquire(const struct sockaddr_storage *peer, unsigned limit); /* 0 or -EUSERS */
void conn_source_release(const struct sockaddr_storage *peer);
int conn_table_init(void);
void conn_table_fini(void);

/* ---- conn_queue.c */
void conn_queue_init(struct conn_thread *ct);
/* conn_queue_push - any thread; false when the queue is full (nothing done). */
bool conn_queue_push(struct conn_thread *ct, struct conn_item *it);
/* conn_queue_pop - owner thread only; NULL when empty (or a push is mid-way). */
struct conn_item *conn_queue_pop(struct conn_thread *ct);
void conn_thread_wake(struct conn_thread *ct);

/* ---- conn_tls.c (owner thread) */
/* conn_tls_begin - SSL for @c (server side, or client with @name). 0 or -errno. */
int conn_tls_begin(struct conn *c, bool server, const char *name);
/* conn_tls_handshake - drive it: 1 done, 0 wants more (*@want_write: to
 * write, else to read; the caller sets the events), <0 failed (counted). */
int conn_tls_handshake(struct conn *c, bool *want_write);
/* conn_tls_read - like read(2): >0 bytes, 0 EOF, -EAGAIN, -EIO. */
long conn_tls_read(struct conn *c, char *buf, size_t len);
/* conn_tls_write - like write(2): >0 bytes, -EAGAIN, -EIO. */
long conn_tls_write(struct conn *c, const char *buf, size_t len);
void conn_tls_free(struct conn *c);
/* conn_tls_pending - decrypted bytes OpenSSL holds for @c (no socket event will say so). */
bool conn_tls_pending(struct conn *c);
/* conn_tls_name_trusted - the verified peer certificate has a SAN DNS name in tls.trusted_names. */
bool conn_tls_name_trusted(struct conn *c);
/* conn_tls_names_publish - tls.trusted_names of @c (NULL: none) for
 * conn_tls_name_trusted; the previous list is freed after a grace period.
 * Main thread. */
void conn_tls_names_publish(const struct cfg *c);

/* ---- conn_metrics.c */
void conn_metrics_register(void);
void conn_count_close(enum cfg_transport t, enum conn_close_reason why);
void conn_count_refuse(enum conn_refuse_reason why);
void conn_count_tls_failure(enum conn_tls_failure why);
void conn_count_accept(enum cfg_transport t);
void conn_count_queue_full(enum conn_queue_full_where where);
void conn_count_connect_failure(enum cfg_transport t);
void conn_count_dropped(void);

/* ---- conn_io.c */
/* conn_close - owner thread: leave the table, close, count, free after a grace period. */
void conn_close(struct conn *c, enum conn_close_reason why);
uint64_t conn_now_ns(void);
