#pragma once
/* stage.h - the stage chain (nginx phases, SPEC order).
 *
 * Every stage has one signature and returns a verdict with the same meaning
 * everywhere. main() registers the stages of each module in SPEC order:
 * core checks, digest (auth), transfer, rules (auth), forward (core). The
 * forwarder is always last and is registered by core itself.
 *
 * The verdicts are five. Any stage may return the first four; STAGE_SENT is
 * the forwarder's: the request (or, relayed, the response) leaves as the
 * forwarder built it, so the chain ends without a reply (a request that runs
 * past the last stage with STAGE_CONTINUE is a wiring bug: proxy_process
 * drops and counts it). proxy_process returns the chain's outcome in the
 * same terms, minus STAGE_CONTINUE. The worker only tells STAGE_PARK from
 * the rest: it sends whatever t->out holds. */
#include <stdbool.h>

#include "txn.h"

enum stage_rc {
	STAGE_CONTINUE = 0, /* not my business, or my work is done: next stage */
	STAGE_REPLY,        /* answer with t->reply_code (set through txn_reply) */
	STAGE_DROP,         /* drop the message (the stage counted why) */
	STAGE_PARK,         /* waiting for the store: same stage is called again on resume */
	STAGE_SENT,         /* the forwarder built the outgoing message in t->out (t->dst): send it */
};

typedef enum stage_rc (*stage_fn)(struct txn *t);

struct worker;
/* Per-worker hooks for modules with per-thread state (store connections).
 * Called on the worker thread, after rcu_register_thread. */
typedef int (*stage_worker_init_fn)(struct worker *w, void *arg);
typedef void (*stage_worker_fini_fn)(struct worker *w, void *arg);

struct stage {
	const char *name;
	stage_fn fn;
	bool requests_only; /* not run for responses */
};

struct stage_table {
	unsigned n;
	struct stage stages[TXN_MAX_STAGES];
	unsigned n_hooks;
	struct {
		stage_worker_init_fn init;
		stage_worker_fini_fn fini;
		void *arg;
	} hooks[8];
};

/**
 * stage_reply_unavailable - answer 503 with `Retry-After: 5` (SPEC §6: the
 * store cannot answer now, or the txn arena is full; the client retries).
 * Returns STAGE_REPLY, for `return stage_reply_unavailable(t);`.
 */
enum stage_rc stage_reply_unavailable(struct txn *t);

/* stage_add - append a stage. Returns 0 or -ENOSPC. Startup only. */
int stage_add(struct stage_table *st, const char *name, stage_fn fn, bool requests_only);
int stage_add_worker_hooks(struct stage_table *st, stage_worker_init_fn init,
			   stage_worker_fini_fn fini, void *arg);

/* ---- worker services for modules (call only on the worker's own thread) */

unsigned worker_id(const struct worker *w);
/* worker_fd_watch - add/modify @fd in the worker's epoll set with @events
 * (EPOLLIN/EPOLLOUT); @cb runs on the worker thread. 0 or negative errno. */
int worker_fd_watch(struct worker *w, int fd, unsigned events,
		    void (*cb)(void *arg, unsigned events), void *arg);
int worker_fd_unwatch(struct worker *w, int fd);
/* worker_tick_add - @cb runs on the worker thread about every 100 ms (timeouts, reconnects). */
int worker_tick_add(struct worker *w, void (*cb)(void *arg), void *arg);
/* worker_batch_end_add - @cb runs on the worker thread at the end of every batch (of
 * datagrams, of epoll events, of ticks, of a resume), before the batch's datagrams
 * leave: output a module buffered during the batch (the store's Redis commands) goes
 * out then in one write. A txn @cb resumes is sent with the batch. */
int worker_batch_end_add(struct worker *w, void (*cb)(void *arg), void *arg);
/**
 * txn_resume - re-run the chain of a parked txn from t->stage_idx (the same
 * stage is called again) and send what it decides. Worker thread only.
 */
void txn_resume(struct txn *t);
