#pragma once
/* pipeline_priv.h - receiver and worker state shared by pipeline.c and worker.c.
 *
 * Thread ownership (see the opening comments of pipeline.c and worker.c):
 *   struct receiver   owned by its receiver thread (inline mode: by the worker
 *                     with the same index, which reads its sockets), except
 *                     from_worker[w] (producer = worker w) and to_worker[w]
 *                     (consumer = worker w).
 *   struct worker     owned by its worker thread, except `sleeping` (set by the
 *                     worker, cleared by receivers with an exchange), `draining`
 *                     (set by the main thread) and `efd` (written by anyone).
 *   struct pipeline   written by the main thread before threads start; `stop`
 *                     is the only field written while they run. */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "ring.h"
#include "stage.h"
#include "txn.h"

#define PIPELINE_MAX_RECEIVERS 16
#define PIPELINE_MAX_WORKERS 32
#define PIPELINE_POOL_TXNS 2048   /* txns per receiver; a return ring holds them all */
#define PIPELINE_RING_SLOTS 1024  /* receiver -> worker ring capacity */
#define PIPELINE_RX_BATCH 32      /* datagrams per recvmmsg */
#define PIPELINE_WORKER_BATCH 32  /* txns popped from one ring at a time */
#define PIPELINE_SEND_SLOTS 64    /* datagrams per sendmmsg */
#define PIPELINE_OUT_MAX (TXN_RX_MAX + 4096) /* room for our Via/Record-Route on top */
#define PIPELINE_SOCKBUF (4 << 20)
#define WORKER_MAX_WATCH 64
#define WORKER_MAX_TICKS 16
#define WORKER_TICK_NS (100 * 1000 * 1000ull)
#define PIPELINE_DRAIN_NS (2000 * 1000 * 1000ull)

/* referee_rx_drops_total{reason}: the closed set, in label order */
enum pipeline_rx_drop {
	PIPELINE_DROP_TRUNCATED = 0,
	PIPELINE_DROP_POOL_EMPTY,
	PIPELINE_DROP_MALFORMED,
	PIPELINE_DROP_SHUTDOWN, /* parked txns still unfinished at the end of the drain */
	PIPELINE_DROP_COUNT
};

/* Series handles registered once by pipeline.c (first of each family). */
struct pipeline_metrics {
	bool registered;
	unsigned n_worker_labels;
	unsigned requests;        /* + enum sip_method */
	unsigned responses;
	unsigned queue_drops;     /* + worker id */
	unsigned rx_drops;        /* + enum pipeline_rx_drop */
	unsigned queue_depth;     /* + worker id (gauge) */
	unsigned tx_errors;
	unsigned duration;        /* histogram */
};
extern struct pipeline_metrics pipeline_metrics;

/* pipeline_worker_label - series offset of worker @w in the {worker} families.
 * Labels are registered once, for the worker count of the first
 * pipeline_run; a later run with more workers counts the extra ones under the
 * last label rather than in another family's series. */
static inline unsigned pipeline_worker_label(unsigned w)
{
	return w < pipeline_metrics.n_worker_labels ? w : pipeline_metrics.n_worker_labels - 1;
}

struct pipeline;

struct receiver {
	unsigned id;
	struct pipeline *p;
	pthread_t thread;
	int fds[CFG_MAX_LISTEN];
	struct txn *pool;         /* PIPELINE_POOL_TXNS txns, one allocation */
	struct txn *scratch;      /* receive buffer when the pool is empty (counted drop) */
	void **free_txns;         /* stack of free txns (void *: what rings carry) */
	unsigned n_free;
	struct ring *to_worker[PIPELINE_MAX_WORKERS];   /* producer: this receiver */
	struct ring *from_worker[PIPELINE_MAX_WORKERS]; /* consumer: this receiver */
	void *staged[PIPELINE_MAX_WORKERS][PIPELINE_RX_BATCH]; /* txns per worker, this batch */
	unsigned n_staged[PIPELINE_MAX_WORKERS];
};

struct worker_watch {
	int fd;       /* -1: free entry */
	uint32_t gen; /* bumped on reuse so stale epoll events are ignored */
	void (*cb)(void *arg, unsigned events);
	void *arg;
};

struct worker {
	/* written by the worker and by receivers: its own cache line */
	alignas(64) atomic_bool sleeping;
	alignas(64) atomic_bool draining; /* main thread -> worker */
	alignas(64) unsigned id;
	struct pipeline *p;
	pthread_t thread;
	int epfd;
	int efd;                 /* eventfd: receivers and the main thread wake us */
	int init_rc;
	unsigned n_hooks_done;   /* init hooks that succeeded (their fini runs) */
	bool in_chain;           /* proxy_process running: txn_resume defers */
	bool in_dispatch;        /* epoll/tick callbacks running: flush at the end */
	unsigned n_parked;
	const struct cfg *cfg_now; /* rcu_dereference'd at the start of a batch */

	struct txn **deferred;   /* txn_resume calls made inside a chain */
	unsigned n_deferred, deferred_cap;

	unsigned n_send;
	struct txn *send_txn[PIPELINE_SEND_SLOTS];
	int send_fd[PIPELINE_SEND_SLOTS];
	struct mmsghdr send_msg[PIPELINE_SEND_SLOTS];
	struct iovec send_iov[PIPELINE_SEND_SLOTS];
	char *send_buf;          /* PIPELINE_SEND_SLOTS * PIPELINE_OUT_MAX */

	/* inline reading (n_rx == n_workers): this worker reads receiver `rx`'s
	 * sockets itself, so no receiver thread and no cross-thread wakeup for
	 * the datagrams whose Call-ID hashes to it. NULL: receiver threads. */
	struct receiver *rx;
	bool rx_want;            /* a socket may be readable: recvmmsg before draining */
	bool rx_done;            /* stopped reading (counted in pipeline.n_rx_done) */
	unsigned rx_busy;        /* busy batches, for the periodic read when busy */

	struct worker_watch watch[WORKER_MAX_WATCH];
	unsigned n_watch;        /* entries in use */
	unsigned n_ticks;
	struct {
		void (*cb)(void *arg);
		void *arg;
	} ticks[WORKER_MAX_TICKS];
	uint64_t next_tick_ns;
	void *popped[PIPELINE_WORKER_BATCH]; /* txns of the batch being processed */
};

struct pipeline {
	const struct stage_table *st;
	unsigned n_rx, n_workers, n_listen;
	struct receiver *rx;      /* n_rx */
	struct worker *workers;   /* n_workers, 64-aligned */
	int rx_stop_efd;          /* readable once receivers must stop */
	atomic_bool stop;         /* main -> receivers */
	bool inline_rx;           /* workers read the sockets (worker.rx), no receiver threads */
	atomic_uint n_rx_done;    /* inline workers that stopped reading (drain) */
	/* startup handshake only (not the hot path) */
	pthread_mutex_t start_mu;
	pthread_cond_t start_cv;
	unsigned n_started;
};

/* The config snapshot workers read (rcu_dereference); published by pipeline.c. */
extern struct cfg *pipeline_cfg_rcu;

uint64_t pipeline_now_ns(void);
/* pipeline_txn_owner - the receiver whose pool holds @t. */
struct receiver *pipeline_txn_owner(struct pipeline *p, const struct txn *t);

/* pipeline_rx_read - one recvmmsg on listen socket @i of @rx, parse, push to
 * the workers' rings and wake sleeping ones. Called by @rx's only reading
 * thread (its receiver thread, or its worker in inline mode). Returns the
 * datagrams read; sets *@full when the batch was full (more may wait). */
int pipeline_rx_read(struct receiver *rx, unsigned i, bool *full);

/* worker.c */
int worker_setup(struct worker *w, struct pipeline *p, unsigned id);
void worker_cleanup(struct worker *w);
void *worker_main(void *arg);
/* worker_attach_rx - inline mode: @w reads @rx's listen sockets itself
 * (watched in its epoll). Setup only, before the threads start. */
int worker_attach_rx(struct worker *w, struct receiver *rx);
/* worker_wake - write the eventfd (any thread). */
void worker_wake(struct worker *w);
