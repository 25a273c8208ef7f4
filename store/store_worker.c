/* store_worker.c - the store on each thread. Core's worker threads:
 * store_register adds per-worker hooks that give each worker its own Redis
 * connection, watched by the worker's epoll (worker_fd_watch) and ticked by
 * worker_tick_add, with txn_resume waking parked txns; the commands a batch queued
 * leave in one write at its end (worker_batch_end_add). The file backend only
 * needs the tick (sweeps of the nonce-count and grant tables). Other threads
 * (tests, tools): store_thread_attach gives the thread a poll loop
 * (store_poll.c) and its own connection, and store_poll drives both. SPEC §6. */
#include <errno.h>

#include "store_priv.h"

static int worker_watch(void *impl, int fd, unsigned events, void (*cb)(void *arg, unsigned events), void *arg)
{
	return worker_fd_watch(impl, fd, events, cb, arg);
}

static int worker_unwatch(void *impl, int fd)
{
	return worker_fd_unwatch(impl, fd);
}

static const struct store_loop_ops worker_ops = { worker_watch, worker_unwatch };

static void store_worker_tick(void *arg)
{
	/* expiry runs on the store's housekeeping thread, never here (issue 13) */
	if (store_tls_conn)
		store_conn_tick(store_tls_conn);
}

static void store_worker_batch_end(void *arg)
{
	if (store_tls_conn)
		store_conn_flush(store_tls_conn);
}

static int store_worker_init(struct worker *w, void *arg)
{
	int rc = worker_tick_add(w, store_worker_tick, NULL);
	if (rc < 0)
		return rc;
	if (store_conf.backend == CFG_STORE_REDIS) {
		/* batched: the Redis commands of a batch leave in one write at its end */
		store_tls_conn = store_conn_new(&worker_ops, w, true, txn_resume);
		if (!store_tls_conn)
			return -ENOMEM;
		rc = worker_batch_end_add(w, store_worker_batch_end, NULL);
	}
	return rc;
}

static void store_worker_fini(struct worker *w, void *arg)
{
	store_conn_free(store_tls_conn); /* parked txns are abandoned by the worker */
	store_tls_conn = NULL;
}

int store_register(struct stage_table *st)
{
	return stage_add_worker_hooks(st, store_worker_init, store_worker_fini, NULL);
}

/* ---- threads that are not workers */

static _Thread_local struct store_poll_loop *tls_loop;

int store_thread_attach(void (*resume)(struct txn *t))
{
	if (tls_loop)
		return -EALREADY;
	tls_loop = store_poll_loop_new();
	if (!tls_loop)
		return -ENOMEM;
	if (store_conf.backend == CFG_STORE_REDIS) {
		store_tls_conn = store_conn_new(&store_poll_ops, tls_loop, false, resume);
		if (!store_tls_conn) {
			store_poll_loop_free(tls_loop);
			tls_loop = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

void store_thread_detach(void)
{
	store_conn_free(store_tls_conn);
	store_tls_conn = NULL;
	store_poll_loop_free(tls_loop);
	tls_loop = NULL;
}

int store_poll(int timeout_ms)
{
	if (!tls_loop)
		return -EINVAL;
	bool tick_due;
	int n = store_poll_loop_run(tls_loop, timeout_ms, &tick_due);
	if (tick_due && store_tls_conn)
		store_conn_tick(store_tls_conn);
	return n;
}
