#pragma once
/* conn.h - TCP and TLS connections owned by threads (SPEC §9).
 *
 * A conn_thread is the connection half of one reading context (a receiver
 * thread, or the worker that reads in inline mode). It owns its listening
 * sockets (SO_REUSEPORT, so the kernel spreads accepted connections over
 * the threads) and every connection it accepted or opened: only it reads,
 * writes, and drives TLS on them. The host loop watches conn_thread_pollfd()
 * and calls conn_thread_run() when it is readable, conn_thread_tick() now
 * and then (timeouts).
 * Whole messages (tcp_frame.h) are handed to the host through @deliver, with
 * the peer address and transport; the host puts them into txns as it does
 * datagrams. Sending (conn_send) works from any thread: on the owner it
 * writes at once, elsewhere the bytes are copied into the owner's bounded
 * queue and the owner is woken (eventfd). A connection that cannot take more
 * (its queue over CONN_OUT_MAX bytes, or the owner's queue full) is closed
 * and counted, never waited for.
 * The table (conn_table.c, cds_lfht under RCU) maps (peer address, port,
 * transport) - and RFC 5923 aliases - to the connection, so a response or a
 * request to a stream next hop finds it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"

#define CONN_OUT_MAX (512u * 1024u)  /* bytes queued on one connection before it is closed */
#define CONN_QUEUE_MAX 8192u         /* items waiting in one thread's cross-thread queue */
/* The largest stream message: a txn's big-slab buffer (TXN_RX_MAX), so that
 * tcp.max_message's default (65535, SPEC §9) is what a peer gets. An
 * unfinished message is buffered at its size only, so a slow sender costs
 * at most this per connection until tcp.read_timeout cuts it off. */
#define CONN_MSG_MAX 65535u
#define CONN_MAX_THREADS 32

struct conn_thread;

/* One framed message, valid during the deliver call only. */
struct conn_msg {
	const char *buf;
	uint32_t len;
	const struct sockaddr_storage *peer;
	socklen_t peerlen;
	uint16_t listen_idx;          /* cfg->listen index of the connection's side */
	enum cfg_transport transport; /* TCP or TLS */
	bool trusted_name;            /* TLS client certificate verified with a tls.trusted_names SAN */
};

struct conn_host {
	/* a message arrived (owner thread) */
	void (*deliver)(void *arg, const struct conn_msg *m);
	/* the messages of this conn_thread_run are all delivered (push them on) */
	void (*flush)(void *arg);
	/* the stateless reply @code to the request in @m (m->buf, m->len) into
	 * @out (at most @cap bytes); its length, or 0 (not a request, ACK, ...).
	 * 400: headers without a usable Content-Length (sent, then the
	 * connection closes). 503: a request we could not deliver to a next hop
	 * (the connection failed); the reply is delivered as if that hop had
	 * answered, so it travels upstream like any response. */
	size_t (*reply)(void *arg, const struct conn_msg *m, uint16_t code, char *out, size_t cap);
	void *arg;
};

/* Where a stream send goes. */
struct conn_dest {
	const struct sockaddr_storage *addr;
	socklen_t addrlen;
	enum cfg_transport transport; /* TCP or TLS */
	uint16_t listen_idx;          /* our side, when a connection must be opened */
	bool may_connect;             /* a request to a next hop: open one when none is up */
	const char *tls_name;         /* TLS: host name to verify and send as SNI (NULL: the IP) */
};

/* ---- setup (main thread, before the host threads run) */

/* conn_runtime_start - global state for @c: table, limits, metrics. 0 or -errno. */
int conn_runtime_start(const struct cfg *c, unsigned n_threads);
/* conn_runtime_stop - after every conn_thread is freed. */
void conn_runtime_stop(void);
/* conn_runtime_reconfigure - limits and timeouts of a reloaded @c (main thread). */
void conn_runtime_reconfigure(const struct cfg *c);

/* conn_thread_new - thread @id's listening sockets for the stream addresses
 * of @c. Returns NULL with *@err set (-errno, logged). */
struct conn_thread *conn_thread_new(unsigned id, const struct cfg *c, const struct conn_host *host, int *err);
/* conn_threads_drain - SIGTERM drain (SPEC §7), after the host threads of
 * the @n conn_threads @cts and every thread that sends on them ended
 * (joined): the caller takes them over, stops accepting, runs what their
 * queues hold and writes what their connections still have to send
 * (finishing a connect or handshake for it), until all is out or
 * @deadline_ns (CLOCK_MONOTONIC): a peer that does not read never holds it
 * longer. Reads and delivers nothing. Caller registered with RCU; then
 * conn_thread_free. */
void conn_threads_drain(struct conn_thread *const *cts, unsigned n, uint64_t deadline_ns);
/* conn_thread_free - close everything it owns (after its host thread ended). */
void conn_thread_free(struct conn_thread *ct);

/* ---- on the owning thread */

/* conn_thread_attach - the calling thread is @ct's owner (once, at its start;
 * registered with RCU before). */
void conn_thread_attach(struct conn_thread *ct);
/* conn_thread_pollfd - readable when conn_thread_run has work (epoll fd). */
int conn_thread_pollfd(const struct conn_thread *ct);
/* conn_thread_run - accept, read, write, drain the queue; never blocks.
 * Caller holds rcu_read_lock or not (it takes its own). */
void conn_thread_run(struct conn_thread *ct);
/* conn_thread_tick - close idle connections and slow senders; does its work at
 * most every 100 ms, so a host may call it on every loop (@now_ns: CLOCK_MONOTONIC). */
void conn_thread_tick(struct conn_thread *ct, uint64_t now_ns);
/* conn_thread_stop_accepting - drain: close the listening sockets. */
void conn_thread_stop_accepting(struct conn_thread *ct);

/* ---- any thread (registered with RCU) */

/**
 * conn_send - send @len bytes to @d over a stream connection.
 * Returns 0 (written or queued), -ENOTCONN (no connection and may_connect
 * false), -ENOBUFS (the connection could not keep up: it is being closed,
 * counted), -EMSGSIZE, -ENOMEM.
 */
int conn_send(const struct conn_dest *d, const void *buf, size_t len);
/* conn_alias_add - RFC 5923: later requests to @alias over @transport may use
 * the connection whose peer is @peer (a Via ;alias seen on it). Any thread. */
void conn_alias_add(const struct sockaddr_storage *peer, const struct sockaddr_storage *alias,
		    enum cfg_transport transport);
/* conn_is_up - a connection to @addr over @transport is in the table. */
bool conn_is_up(const struct sockaddr_storage *addr, enum cfg_transport transport);

/* conn_count_open - connections open now, all transports (tests, /metrics). */
unsigned conn_count_open(void);
