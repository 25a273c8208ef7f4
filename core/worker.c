/* worker.c - a worker thread: drain the rings, run the stage chain, sendmmsg.
 *
 * Not here: sockets and txn pools (pipeline_rx.c), the chain itself
 * (proxy_process), thread start and drain (pipeline.c).
 * Each worker is an RCU reader (urcu memb): it holds rcu_read_lock while it
 * processes a batch or runs epoll/tick callbacks, never while it sleeps.
 * Fields: see worker.h. Sleep protocol: struct rx_consumer (pipeline_rx.h);
 * the efd's edge-triggered event stays on epoll's ready list, so a write
 * before epoll_wait still wakes the worker. Cost: one xchg per pushed batch
 * and per sleep, no fences (TSan does not model fences).
 * Txns go back to their receiver through the (worker, receiver) return ring,
 * sized to hold the whole pool, so it can never be full.
 * Inline mode (worker.rx set): the worker also reads its receiver's sockets
 * (watched level-triggered in its epoll) and stops at the drain; it exits only
 * once every inline reader has stopped (g->n_rx_done), so no datagram
 * read before the stop is left in a ring. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
/* rcu_dereference inline (a C11 consume load that TSan sees); rcu_read_lock
 * and unlock stay calls into liburcu (once per batch; TSan does not model
 * urcu's own volatile-based internals, so they must not be inlined). */
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "worker.h"

#define WORKER_EFD_TAG UINT64_MAX
#define WORKER_RX_TAG (UINT64_MAX - 1)
#define WORKER_CONN_TAG (UINT64_MAX - 2)
#define WORKER_RX_EVERY 4 /* inline mode: busy batches between forced socket reads */

struct cfg *worker_cfg_rcu;

/* ---------------------------------------------------------------- services */

unsigned worker_id(const struct worker *w)
{
	return w->id;
}

int worker_fd_watch(struct worker *w, int fd, unsigned events,
		    void (*cb)(void *arg, unsigned events), void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	int free_idx = -1;
	for (int i = 0; i < WORKER_MAX_WATCH; i++) {
		struct worker_watch *e = &w->watch[i];
		if (e->fd == fd) {
			struct epoll_event ev = { .events = events,
						  .data.u64 = ((uint64_t)e->gen << 32) | (uint32_t)i };
			if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
				return -errno;
			e->cb = cb;
			e->arg = arg;
			return 0;
		}
		if (e->fd < 0 && free_idx < 0)
			free_idx = i;
	}
	if (free_idx < 0)
		return -ENOSPC;
	struct worker_watch *e = &w->watch[free_idx];
	e->gen++;
	struct epoll_event ev = { .events = events, .data.u64 = ((uint64_t)e->gen << 32) | (uint32_t)free_idx };
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	e->fd = fd;
	e->cb = cb;
	e->arg = arg;
	w->n_watch++;
	return 0;
}

int worker_fd_unwatch(struct worker *w, int fd)
{
	for (int i = 0; i < WORKER_MAX_WATCH; i++) {
		if (w->watch[i].fd != fd || fd < 0)
			continue;
		/* the fd may already be closed (then the kernel dropped it) */
		if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
			return -errno;
		w->watch[i].fd = -1;
		w->watch[i].gen++;
		w->n_watch--;
		return 0;
	}
	return -ENOENT;
}

static int cb_add(struct worker_cb *list, unsigned *n, unsigned max, void (*cb)(void *arg), void *arg)
{
	if (!cb)
		return -EINVAL;
	if (*n >= max)
		return -ENOSPC;
	list[(*n)++] = (struct worker_cb){ cb, arg };
	return 0;
}

int worker_tick_add(struct worker *w, void (*cb)(void *arg), void *arg)
{
	return cb_add(w->ticks, &w->n_ticks, WORKER_MAX_TICKS, cb, arg);
}

int worker_batch_end_add(struct worker *w, void (*cb)(void *arg), void *arg)
{
	return cb_add(w->batch_end, &w->n_batch_end, WORKER_MAX_BATCH_END, cb, arg);
}

void worker_wake(struct worker *w)
{
	rx_consumer_wake(&w->wake);
}

/* ---------------------------------------------------------------- sending */

static void worker_return(struct worker *w, struct txn *t)
{
	rx_txn_return(t, w->id);
}

/* send every queued datagram (one sendmmsg per run of equal sockets), then
 * observe latency and give the txns back. Caller holds the RCU read lock or not. */
static void worker_flush(struct worker *w)
{
	unsigned i = 0;
	while (i < w->n_send) {
		unsigned j = i + 1;
		while (j < w->n_send && w->send_fd[j] == w->send_fd[i])
			j++;
		unsigned k = i;
		while (k < j) {
			int r = sendmmsg(w->send_fd[i], &w->send_msg[k], j - k, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				/* this datagram is refused (bad address, unreachable): skip it */
				static struct log_limit lim;
				uint64_t sup;
				if (log_limit_pass(&lim, &sup))
					log_warn("worker", "sendmmsg failed: %s suppressed=%llu", strerror(errno),
						 (unsigned long long)sup);
				metrics_inc(pipeline_metrics.tx_errors);
				k++;
				continue;
			}
			k += (unsigned)r;
		}
		i = j;
	}
	if (w->n_send == 0)
		return;
	uint64_t now = pipeline_now_ns();
	for (unsigned s = 0; s < w->n_send; s++) {
		struct txn *t = w->send_txn[s];
		metrics_observe_ns(pipeline_metrics.duration, now - t->rx_ns);
		worker_return(w, t);
	}
	w->n_send = 0;
}

/* point t->out at the next free send slot (flushing when all are taken) */
static void worker_slot_prepare(struct worker *w, struct txn *t)
{
	if (w->n_send == PIPELINE_SEND_SLOTS)
		worker_flush(w);
	t->out = w->send_buf + (size_t)w->n_send * PIPELINE_OUT_MAX;
	t->out_cap = PIPELINE_OUT_MAX;
	t->out_len = 0;
}

/* the chain is done with @t: queue its datagram or give it back */
static void worker_complete(struct worker *w, struct txn *t)
{
	if (t->out_len == 0 || t->out_len > t->out_cap || t->dstlen == 0) {
		if (t->out_len > 0) /* a builder bug: never send past the slot */
			metrics_inc(pipeline_metrics.tx_errors);
		else if (t->parse_rc < 0)
			metrics_inc(pipeline_metrics.rx_drops + PIPELINE_DROP_MALFORMED);
		worker_return(w, t);
		return;
	}
	if (t->dst_transport != CFG_TRANSPORT_UDP) {
		conn_pipeline_send(t); /* copied or written at once: the txn is free again */
		metrics_observe_ns(pipeline_metrics.duration, pipeline_now_ns() - t->rx_ns);
		worker_return(w, t);
		return;
	}
	unsigned s = w->n_send++;
	w->send_txn[s] = t;
	/* from the UDP socket the builder chose (the one it came in on, unless it
	 * arrived on a stream: then a UDP listen address) */
	w->send_fd[s] = t->owner->fds[t->out_listen_idx < CFG_MAX_LISTEN ? t->out_listen_idx : 0];
	w->send_iov[s] = (struct iovec){ .iov_base = t->out, .iov_len = t->out_len };
	w->send_msg[s] = (struct mmsghdr){ .msg_hdr = { .msg_name = &t->dst, .msg_namelen = t->dstlen,
							.msg_iov = &w->send_iov[s], .msg_iovlen = 1 } };
}

/* run the chain on @t; @resumed: it was parked before (counted in n_parked) */
static void worker_run_chain(struct worker *w, struct txn *t, bool resumed)
{
	worker_slot_prepare(w, t);
	w->in_chain = true;
	enum stage_rc rc = proxy_process(w->g->st, t);
	w->in_chain = false;
	if (rc == STAGE_PARK) {
		if (!resumed)
			w->n_parked++;
		return;
	}
	if (resumed)
		w->n_parked--;
	worker_complete(w, t);
}

static void worker_run_deferred(struct worker *w)
{
	while (w->n_deferred > 0) {
		struct txn *t = w->deferred[--w->n_deferred];
		t->cfg = rcu_dereference(worker_cfg_rcu);
		worker_run_chain(w, t, true);
	}
}

/* the end of a batch: the batch-end callbacks, then the datagrams leave. The
 * callbacks run as a dispatch: a txn they resume (a Redis write that failed
 * completes its requests) is sent with the batch, not on its own; output such a
 * txn queues is the callback's to take in the same call (store_conn_flush loops
 * until no link is marked). */
static void worker_batch_end(struct worker *w)
{
	if (w->n_batch_end > 0 && !w->in_batch_end) {
		bool in_dispatch = w->in_dispatch;
		w->in_batch_end = true;
		w->in_dispatch = true;
		for (unsigned i = 0; i < w->n_batch_end; i++) {
			w->batch_end[i].cb(w->batch_end[i].arg);
			worker_run_deferred(w);
		}
		w->in_dispatch = in_dispatch;
		w->in_batch_end = false;
	}
	worker_flush(w);
}

void txn_resume(struct txn *t)
{
	struct worker *w = t->worker;
	if (w->in_chain) {
		/* called from inside a stage: run it once the current chain is done.
		 * deferred[] holds every txn of every pool, so it cannot overflow. */
		if (w->n_deferred >= w->deferred_cap)
			abort();
		w->deferred[w->n_deferred++] = t;
		return;
	}
	rcu_read_lock(); /* nests inside the dispatcher's read-side section */
	/* A parked txn sees the config current at resume time: the snapshot it
	 * started with may have been freed by a reload while it was parked
	 * (parked txns are outside any read-side section). */
	t->cfg = rcu_dereference(worker_cfg_rcu);
	worker_run_chain(w, t, true);
	worker_run_deferred(w);
	if (!w->in_dispatch)
		worker_batch_end(w);
	rcu_read_unlock();
}

/* ---------------------------------------------------------------- the loop */

/* pop one batch from each receiver's ring and process it. Returns txns handled. */
static unsigned worker_drain_rings(struct worker *w)
{
	struct worker_group *g = w->g;
	unsigned total = 0;
	uint32_t depth = 0;
	for (unsigned r = 0; r < g->n_rx; r++) {
		struct ring *ring = g->rx[r].to_worker[w->id];
		unsigned n = ring_pop_batch(ring, w->popped, PIPELINE_WORKER_BATCH);
		if (n == 0)
			continue;
		rcu_read_lock();
		w->cfg_now = rcu_dereference(worker_cfg_rcu);
		for (unsigned i = 0; i < n; i++) {
			struct txn *t = w->popped[i];
			txn_reset(t);
			t->worker = w;
			t->cfg = w->cfg_now;
			worker_run_chain(w, t, false);
			worker_run_deferred(w);
		}
		worker_batch_end(w);
		rcu_read_unlock();
		total += n;
	}
	if (total) {
		for (unsigned r = 0; r < g->n_rx; r++)
			depth += ring_count(g->rx[r].to_worker[w->id]);
		metrics_set(pipeline_metrics.queue_depth + pipeline_worker_label(w->id), depth);
	}
	return total;
}

static bool worker_rings_empty(struct worker *w)
{
	for (unsigned r = 0; r < w->g->n_rx; r++)
		if (!ring_is_empty(w->g->rx[r].to_worker[w->id]))
			return false;
	return true;
}

/* wait up to @timeout_ms for fds/efd and run the callbacks. */
static void worker_poll(struct worker *w, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(w->epfd, ev, 32, timeout_ms);
	if (n <= 0)
		return;
	rcu_read_lock();
	w->in_dispatch = true;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == WORKER_EFD_TAG)
			continue; /* edge-triggered: every write is an event, no read needed */
		if (ev[i].data.u64 == WORKER_RX_TAG) {
			w->rx_want = !w->rx_done; /* a listen socket is readable (inline mode) */
			continue;
		}
		if (ev[i].data.u64 == WORKER_CONN_TAG) {
			w->conn_want = true; /* our receiver's connections have events (inline mode) */
			continue;
		}
		uint32_t idx = (uint32_t)ev[i].data.u64;
		uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
		if (idx < WORKER_MAX_WATCH && w->watch[idx].fd >= 0 && w->watch[idx].gen == gen)
			w->watch[idx].cb(w->watch[idx].arg, ev[i].events);
		worker_run_deferred(w);
	}
	worker_batch_end(w);
	w->in_dispatch = false;
	rcu_read_unlock();
}

static void worker_ticks(struct worker *w, uint64_t now)
{
	w->next_tick_ns = now + WORKER_TICK_NS;
	if (w->rx && w->rx->conn)
		conn_thread_tick(w->rx->conn, now);
	if (w->n_ticks == 0)
		return;
	rcu_read_lock();
	w->in_dispatch = true;
	for (unsigned i = 0; i < w->n_ticks; i++) {
		w->ticks[i].cb(w->ticks[i].arg);
		worker_run_deferred(w);
	}
	worker_batch_end(w);
	w->in_dispatch = false;
	rcu_read_unlock();
}

/* true when the worker may sleep (nothing arrived after `sleeping` was set) */
static bool worker_sleep_begin(struct worker *w)
{
	/* seq_cst: pairs with the seq_cst load of `sleeping` in rx_push;
	 * must precede our seq_cst tail loads (ring_is_empty) in the total order */
	atomic_store_explicit(&w->wake.sleeping, true, memory_order_seq_cst);
	if (worker_rings_empty(w))
		return true;
	atomic_store_explicit(&w->wake.sleeping, false, memory_order_relaxed);
	return false;
}

/* inline mode: read every listen socket of w->rx (the batches land in the
 * rings, ours included); rx_want stays set while a batch came back full */
static void worker_rx_read(struct worker *w)
{
	bool full = false;
	for (unsigned i = 0; i < w->g->n_listen; i++)
		rx_read(w->rx, i, &full);
	w->rx_want = full;
}

/* inline mode: stop reading for good (SIGTERM drain) */
static void worker_rx_stop(struct worker *w)
{
	for (unsigned i = 0; i < w->g->n_listen; i++)
		if (w->rx->fds[i] >= 0)
			epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->rx->fds[i], NULL);
	w->rx_done = true;
	w->rx_want = false;
	/* release pairs with the acquire load in worker_drained: our last
	 * pushes into the other workers' rings are visible before the count */
	atomic_fetch_add_explicit(&w->g->n_rx_done, 1, memory_order_release);
}

/* draining: nothing queued or parked here, and nobody reads any more */
static bool worker_drained(struct worker *w)
{
	if (w->g->inline_rx && atomic_load_explicit(&w->g->n_rx_done, memory_order_acquire) < w->g->n_workers)
		return false;
	return w->n_parked == 0 && worker_rings_empty(w);
}

static void worker_loop(struct worker *w)
{
	uint64_t deadline = 0;
	w->next_tick_ns = pipeline_now_ns() + WORKER_TICK_NS;
	for (;;) {
		bool read_more = false;
		if (w->conn_want || (w->rx && w->rx->conn && w->rx_want)) {
			/* inline mode: our receiver's TCP/TLS connections (when the
			 * datagram sockets are read anyway, look at them too) */
			w->conn_want = false;
			conn_thread_run(w->rx->conn);
		}
		if (w->rx_want) {
			/* relaxed: `draining` (acquire) below is what orders the drain */
			if (atomic_load_explicit(w->g->stop, memory_order_relaxed)) {
				worker_rx_stop(w);
			} else {
				worker_rx_read(w);
				read_more = w->rx_want;
			}
		}
		unsigned n = worker_drain_rings(w);
		if (n > 0 || read_more) {
			/* a steady flow into our rings from other receivers never lets
			 * us reach epoll_wait, which is what reports our socket
			 * readable: look at it every WORKER_RX_EVERY busy batches
			 * anyway, so it is never starved. A paired receiver (the
			 * inline default) feeds only its own worker: our rings fill
			 * only from our own reads, and the forced read would be one
			 * empty recvmmsg in four wakeups. */
			if (n > 0 && w->rx && !w->rx_done && !w->rx->paired && ++w->rx_busy % WORKER_RX_EVERY == 0)
				w->rx_want = true;
			uint64_t now = pipeline_now_ns();
			if (now >= w->next_tick_ns)
				worker_ticks(w, now);
			/* keep store sockets serviced while the rings are busy: one
			 * epoll_wait per batch while a txn waits for them (what else
			 * comes on them, a lost connection, can wait for the idle poll) */
			if (w->n_watch > 0 && w->n_parked > 0)
				worker_poll(w, 0);
			continue;
		}
		/* idle: no spinning, sleep at once. Measured (SIPp call, 2 vCPUs,
		 * inline mode): 200 empty polls before sleeping cost ~30 us CPU per
		 * call at 500 cps and saved nothing at 2000 cps (the sockets cannot
		 * be polled without a syscall, so a spin only caught ring pushes). */
		uint64_t now = pipeline_now_ns();
		if (now >= w->next_tick_ns)
			worker_ticks(w, now);
		/* acquire pairs with the release store in pipeline_drain */
		if (atomic_load_explicit(&w->draining, memory_order_acquire)) {
			if (w->rx && !w->rx_done)
				worker_rx_stop(w);
			if (deadline == 0)
				deadline = now + PIPELINE_DRAIN_NS;
			if (worker_drained(w) || now >= deadline)
				return;
		}
		if (!worker_sleep_begin(w))
			continue;
		uint64_t wait_ns = w->next_tick_ns > now ? w->next_tick_ns - now : 0;
		int timeout = (int)(wait_ns / 1000000u) + 1;
		if (deadline && timeout > 10)
			timeout = 10;
		worker_poll(w, timeout);
		atomic_store_explicit(&w->wake.sleeping, false, memory_order_relaxed);
	}
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct worker_group *g = w->g;
	rcu_register_thread();
	if (metrics_thread_init() < 0)
		log_warn("worker", "no metrics shard left: counting on the shared one id=%u", w->id);
	if (w->rx && w->rx->conn)
		conn_thread_attach(w->rx->conn); /* inline mode: we own our receiver's connections */
	int rc = 0;
	for (unsigned i = 0; i < g->st->n_hooks && rc == 0; i++) {
		if (g->st->hooks[i].init)
			rc = g->st->hooks[i].init(w, g->st->hooks[i].arg);
		if (rc == 0)
			w->n_hooks_done = i + 1;
	}
	pthread_mutex_lock(&g->start_mu);
	w->init_rc = rc < 0 ? rc : 0;
	g->n_started++;
	pthread_cond_broadcast(&g->start_cv);
	pthread_mutex_unlock(&g->start_mu);
	if (rc == 0)
		worker_loop(w);
	for (unsigned i = w->n_hooks_done; i-- > 0;)
		if (g->st->hooks[i].fini)
			g->st->hooks[i].fini(w, g->st->hooks[i].arg);
	worker_flush(w);
	/* after a drain timeout: whatever is still queued or parked is counted */
	unsigned queued = 0;
	for (unsigned r = 0; r < g->n_rx; r++)
		queued += ring_count(g->rx[r].to_worker[w->id]);
	if (w->n_parked > 0 || queued > 0) {
		log_warn("worker", "drain timeout: requests abandoned id=%u parked=%u queued=%u", w->id,
			 w->n_parked, queued);
		metrics_add(pipeline_metrics.rx_drops + PIPELINE_DROP_SHUTDOWN, (uint64_t)w->n_parked + queued);
	}
	rcu_unregister_thread();
	return NULL;
}

/* ---------------------------------------------------------------- setup */

int worker_setup(struct worker *w, struct worker_group *g, unsigned id)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->g = g;
	w->epfd = -1;
	w->wake.efd = -1;
	for (int i = 0; i < WORKER_MAX_WATCH; i++)
		w->watch[i].fd = -1;
	atomic_init(&w->wake.sleeping, false);
	atomic_init(&w->draining, false);
	w->deferred_cap = g->n_rx * PIPELINE_POOL_TXNS;
	w->deferred = calloc(w->deferred_cap, sizeof(*w->deferred));
	w->send_buf = aligned_alloc(64, (size_t)PIPELINE_SEND_SLOTS * PIPELINE_OUT_MAX);
	if (!w->deferred || !w->send_buf)
		return -ENOMEM;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wake.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->epfd < 0 || w->wake.efd < 0)
		return -errno;
	/* EPOLLET: each write re-arms the event, so the counter is never read
	 * (one syscall less per wakeup); it cannot saturate in 2^64 writes */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = WORKER_EFD_TAG };
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake.efd, &ev) < 0)
		return -errno;
	return 0;
}

int worker_attach_rx(struct worker *w, struct receiver *rx)
{
	w->rx = rx;
	w->rx_want = true;
	for (unsigned i = 0; i < w->g->n_listen; i++) {
		if (rx->fds[i] < 0)
			continue; /* a stream listen address */
		/* level-triggered: readable until recvmmsg has drained it */
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WORKER_RX_TAG };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, rx->fds[i], &ev) < 0)
			return -errno;
	}
	if (rx->conn) { /* level-triggered: readable while connections have events */
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WORKER_CONN_TAG };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, conn_thread_pollfd(rx->conn), &ev) < 0)
			return -errno;
	}
	return 0;
}

void worker_cleanup(struct worker *w)
{
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->wake.efd >= 0)
		close(w->wake.efd);
	free(w->deferred);
	free(w->send_buf);
	w->deferred = NULL;
	w->send_buf = NULL;
	w->epfd = w->wake.efd = -1;
}
