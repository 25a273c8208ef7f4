#pragma once
/* pipeline_rx.h - a receiver: one SO_REUSEPORT socket per listen address,
 * the pool of txns it receives into, and one lock-free SPSC ring toward each
 * worker (plus one back, for the txns the worker is done with).
 *
 * A receiver has exactly one reading thread: its own (rx_thread_main), or,
 * with threads.inline_receive, the worker it is attached to. It never blocks
 * on a worker: a full ring, an empty pool and a truncated datagram are counted
 * drops. It knows workers only as ring consumers (struct rx_consumer), so
 * this file sits below worker.c: rx <- worker <- pipeline.
 * Thread ownership: everything is the reading thread's except
 * from_worker[w] (producer = worker w) and to_worker[w] (consumer = worker w). */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "cfg.h"
#include "now.h"
#include "pipeline_metrics.h"
#include "ring.h"
#include "txn.h"

#define PIPELINE_MAX_RECEIVERS CFG_MAX_THREADS
#define PIPELINE_POOL_TXNS 2048  /* txns per receiver; a return ring holds them all */
#define PIPELINE_RING_SLOTS 1024 /* receiver -> worker ring capacity */
#define PIPELINE_RX_BATCH 32     /* datagrams per recvmmsg, at most */
#define PIPELINE_RX_BATCH_MIN 4  /* ... and at least (the batch adapts to the load) */
#define PIPELINE_BIG_BUFS 64     /* TXN_RX_MAX buffers per receiver, for datagrams over TXN_RX_INLINE */

static inline uint64_t pipeline_now_ns(void)
{
	return now_mono_ns();
}

/**
 * struct rx_consumer - what a receiver needs to wake the thread that drains
 * its ring (a worker). Protocol (race-free, no syscall per message): the
 * consumer stores sleeping = true (seq_cst), re-checks its rings (seq_cst
 * tail loads) and only then sleeps on efd; a receiver stores the ring tail
 * (seq_cst, ring_push_batch), then loads sleeping (seq_cst). Either the
 * consumer's re-check sees the entry or the receiver sees `sleeping`; the
 * receiver that exchanges it from true to false writes efd: one write per
 * sleep at most, after a whole batch.
 */
struct rx_consumer {
	alignas(64) atomic_bool sleeping;
	int efd; /* eventfd; any thread may write it */
};

/* rx_consumer_wake - write @c's eventfd (any thread). */
void rx_consumer_wake(struct rx_consumer *c);

struct receiver {
	unsigned id;
	unsigned n_workers, n_listen;
	bool paired;              /* as many receivers as workers: receiver i feeds worker i */
	unsigned batch;           /* slots offered to the next recvmmsg (PIPELINE_RX_BATCH_MIN..PIPELINE_RX_BATCH) */
	pthread_t thread;
	const atomic_bool *stop;  /* rx_thread_main: stop reading (stop_efd wakes the poll) */
	int stop_efd;
	int fds[CFG_MAX_LISTEN];
	struct txn *pool;         /* PIPELINE_POOL_TXNS txns, one allocation */
	struct txn *scratch;      /* receive buffer when the pool is empty (counted drop) */
	void **free_txns;         /* stack of free txns (void *: what rings carry) */
	unsigned n_free;
	char *big_slab;           /* PIPELINE_BIG_BUFS * TXN_RX_MAX */
	char **big_free;          /* stack of free big buffers */
	unsigned n_big_free;
	struct ring *to_worker[PIPELINE_MAX_WORKERS];   /* producer: this receiver */
	struct ring *from_worker[PIPELINE_MAX_WORKERS]; /* consumer: this receiver */
	struct rx_consumer *consumer[PIPELINE_MAX_WORKERS];
	void *staged[PIPELINE_MAX_WORKERS][PIPELINE_RX_BATCH]; /* txns per worker, this batch */
	unsigned n_staged[PIPELINE_MAX_WORKERS];
	struct conn_thread *conn; /* TCP/TLS connections this reader owns (core/conn_*.c), or NULL */
};

/* rx_init - an empty receiver that rx_cleanup may free (before rx_setup). */
void rx_init(struct receiver *rx);
/**
 * rx_setup - pool, rings and sockets of receiver @id (bound to @listen; a
 * port 0 there is replaced by the port the first receiver got). @consumers:
 * the n_workers ring consumers. 0 or negative errno (rx_cleanup either way).
 */
int rx_setup(struct receiver *rx, unsigned id, unsigned n_workers, unsigned n_listen,
	     struct cfg_addr *listen, struct rx_consumer *const *consumers);
void rx_cleanup(struct receiver *rx);

/**
 * rx_read - one recvmmsg on listen socket @i of @rx: parse each datagram
 * (txn_received), push the batch to the workers' rings and wake the sleeping
 * ones (once each). Called by @rx's reading thread only. Returns the
 * datagrams read; sets *@full when the batch was full (more may wait).
 */
int rx_read(struct receiver *rx, unsigned i, bool *full);

/* rx_big_take - a free big-slab buffer (TXN_RX_MAX bytes) of @rx, taking back
 * what the workers returned when none is left; NULL when all are in use.
 * rx_big_give puts it back. @rx's reading thread only. */
char *rx_big_take(struct receiver *rx);
void rx_big_give(struct receiver *rx, char *buf);

struct conn_msg;
/* rx_stream - a whole message from one of @rx's connections (SPEC §9): into a
 * txn of @rx's pool (a big buffer past TXN_RX_INLINE) and staged for its
 * worker like a datagram; pushed when a batch is full or at rx_stream_flush.
 * @rx's reading thread only. */
void rx_stream(struct receiver *rx, const struct conn_msg *m);
/* rx_stream_flush - push what rx_stream staged and wake the workers. */
void rx_stream_flush(struct receiver *rx);

/* conn_pipeline.c - the stream transports in the pipeline (SPEC §9) */
/* conn_pipeline_setup - a conn_thread for each of the @n_rx receivers when @c
 * has a tcp:// or tls:// listen address or stream next hops. 0 or -errno. */
int conn_pipeline_setup(struct receiver *rx, unsigned n_rx, const struct cfg *c);
/* conn_pipeline_drain - SIGTERM, once every receiver and worker is joined:
 * send what the workers left queued for the connections, or still pending
 * on them, until @deadline_ns (conn_threads_drain). Main thread. */
void conn_pipeline_drain(struct receiver *rx, unsigned n_rx, uint64_t deadline_ns);
void conn_pipeline_free(struct receiver *rx, unsigned n_rx);
/* conn_pipeline_reload - limits, trusted names, certificate and key of @c (SIGHUP). */
void conn_pipeline_reload(const struct cfg *c);
/* conn_pipeline_send - @t's output over its stream destination (any worker). */
void conn_pipeline_send(struct txn *t);

/* rx_thread_main - a receiver thread: rx_read every socket, poll when they are dry. */
void *rx_thread_main(void *arg);

/* rx_txn_return - worker @w is done with @t: back to its receiver's pool. Worker @w only. */
static inline void rx_txn_return(struct txn *t, unsigned w)
{
	/* cannot fail: the return ring holds the receiver's whole pool */
	if (!ring_push(t->owner->from_worker[w], t))
		abort();
}
