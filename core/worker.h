#pragma once
/* worker.h - worker threads: each drains its rings (one per receiver), runs
 * the stage chain, sends in batches (sendmmsg) and gives the txns back; its
 * epoll loop also owns the fds modules watch (store connections, and
 * whatever a transport adds) and, with threads.inline_receive, the listen
 * sockets of its receiver, which it then reads itself (rx_read).
 * Thread ownership: everything in struct worker is its thread's, except the
 * rx_consumer part (sleeping: see pipeline_rx.h; efd: anyone writes) and
 * `draining` (set by the main thread, release; acquire in the worker).
 * struct worker_group is written by pipeline_run before the threads start;
 * n_rx_done and the start handshake are the only fields written after. */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"
#include "pipeline_rx.h"
#include "stage.h"
#include "txn.h"

#define PIPELINE_WORKER_BATCH 32  /* txns popped from one ring at a time */
#define PIPELINE_SEND_SLOTS 64    /* datagrams per sendmmsg */
#define PIPELINE_OUT_MAX TXN_OUT_MAX /* a send slot: the largest datagram we can send */
#define WORKER_MAX_WATCH 64
#define WORKER_MAX_TICKS 16
#define WORKER_MAX_BATCH_END 4
#define WORKER_TICK_NS (100 * 1000 * 1000ull)
#define PIPELINE_DRAIN_NS (2000 * 1000 * 1000ull)

/* a module's callback on the worker thread (worker_tick_add, worker_batch_end_add) */
struct worker_cb {
	void (*cb)(void *arg);
	void *arg;
};

/* What the workers of one pipeline_run share. */
struct worker_group {
	const struct stage_table *st;
	unsigned n_rx, n_workers, n_listen;
	struct receiver *rx;      /* n_rx */
	struct worker *workers;   /* n_workers */
	bool inline_rx;           /* worker i reads receiver i's sockets: no receiver threads */
	const atomic_bool *stop;  /* inline readers: stop reading (then the drain) */
	atomic_uint n_rx_done;    /* inline readers that stopped (drain) */
	/* startup handshake only (not the hot path) */
	pthread_mutex_t start_mu;
	pthread_cond_t start_cv;
	unsigned n_started;
};

struct worker_watch {
	int fd;       /* -1: free entry */
	uint32_t gen; /* bumped on reuse so stale epoll events are ignored */
	void (*cb)(void *arg, unsigned events);
	void *arg;
};

struct worker {
	struct rx_consumer wake;  /* sleeping + efd: receivers and the main thread wake us */
	alignas(64) atomic_bool draining; /* main thread -> worker */
	alignas(64) unsigned id;
	struct worker_group *g;
	pthread_t thread;
	int epfd;
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
	char *send_buf;          /* PIPELINE_SEND_SLOTS * PIPELINE_OUT_MAX (touched as used) */

	/* inline reading: this worker reads receiver `rx`'s sockets itself, so
	 * there is no receiver thread and no cross-thread wakeup. NULL: receiver threads. */
	struct receiver *rx;
	bool rx_want;            /* a socket may be readable: recvmmsg before draining */
	bool rx_done;            /* stopped reading (counted in g->n_rx_done) */
	unsigned rx_busy;        /* busy batches, for the periodic read when busy */
	bool conn_want;          /* inline mode: rx->conn has events (conn_thread_run) */

	struct worker_watch watch[WORKER_MAX_WATCH];
	unsigned n_watch;        /* entries in use */
	unsigned n_ticks;
	struct worker_cb ticks[WORKER_MAX_TICKS];
	unsigned n_batch_end;
	bool in_batch_end;       /* the batch-end callbacks are running (no recursion) */
	struct worker_cb batch_end[WORKER_MAX_BATCH_END];
	uint64_t next_tick_ns;
	void *popped[PIPELINE_WORKER_BATCH]; /* txns of the batch being processed */
};

/* The config snapshot workers read (rcu_dereference); published by pipeline.c. */
extern struct cfg *worker_cfg_rcu;

int worker_setup(struct worker *w, struct worker_group *g, unsigned id);
void worker_cleanup(struct worker *w);
void *worker_main(void *arg);
/* worker_attach_rx - inline mode: @w reads @rx's listen sockets itself
 * (watched in its epoll). Setup only, before the threads start. */
int worker_attach_rx(struct worker *w, struct receiver *rx);
/* worker_wake - write the eventfd (any thread). */
void worker_wake(struct worker *w);
