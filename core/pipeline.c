/* pipeline.c - receivers, startup/shutdown and signals of the UDP pipeline (SPEC §1, §7, §8).
 *
 * N receiver threads each own one SO_REUSEPORT socket per listen address and
 * a pool of txns; they recvmmsg a batch, sip_parse it and push each txn into
 * the SPSC ring of the worker chosen by Call-ID (so a dialog stays on one
 * worker). Receivers never block on a worker: a full ring, an empty pool and a
 * truncated datagram are counted drops. Workers live in worker.c.
 * Inline mode (threads.inline_receive, receivers == workers): no receiver
 * threads; worker i reads receiver i's sockets itself (pipeline_rx_read), so
 * the datagrams it keeps cost no cross-thread wakeup; requests still go to
 * their Call-ID's worker through the rings (see receiver_pick).
 * Fields shared across threads: `stop` (main writes, receivers read relaxed:
 * rx_stop_efd carries the wakeup), the rings (see ring.h), worker->sleeping
 * (see worker.c), pipeline_cfg_rcu (main publishes with cfg_publish_ptr,
 * workers read with rcu_dereference inside rcu_read_lock).
 * Signals: SIGTERM/SIGINT/SIGHUP are blocked in every pipeline thread and read
 * by the main thread from a signalfd (a handler covers threads we did not
 * create); SIGTERM = stop reading, drain the rings and parked txns (bounded),
 * join, return 0. SIGHUP = @reload on the main thread. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
/* rcu_dereference inline (a C11 consume load that TSan sees); rcu_read_lock
 * and unlock stay calls into liburcu (once per batch; TSan does not model
 * urcu's own volatile-based internals, so they must not be inlined). */
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "log.h"
#include "metrics.h"
#include "pipeline_priv.h"
#include "proxy.h"
#include "proxy_priv.h"
#include "sip.h"

struct pipeline_metrics pipeline_metrics;
struct cfg *pipeline_cfg_rcu;

static atomic_bool pipeline_stop_requested; /* pipeline_stop or a SIGTERM handled off-thread */
static atomic_bool pipeline_hup_requested;  /* a SIGHUP handled off-thread */
/* Wakes the main thread for pipeline_stop. Created once and never closed, so
 * a pipeline_stop racing with the end of pipeline_run never writes into a
 * reused descriptor. */
static int pipeline_main_efd = -1;
static pthread_once_t pipeline_main_efd_once = PTHREAD_ONCE_INIT;

static void main_efd_create(void)
{
	pipeline_main_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* rcu_assign_pointer, written out: urcu 0.13 publishes with a barrier and a
 * volatile store that TSan cannot see, so the stress test would report every
 * reload. A release store is the same publication (what urcu does with
 * atomic builtins); it pairs with the consume load in rcu_dereference. */
static void cfg_publish_ptr(struct cfg *c)
{
	__atomic_store_n(&pipeline_cfg_rcu, c, __ATOMIC_RELEASE);
}
static atomic_bool pipeline_serving;

uint64_t pipeline_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct receiver *pipeline_txn_owner(struct pipeline *p, const struct txn *t)
{
	for (unsigned r = 0; r < p->n_rx; r++) {
		const struct txn *base = p->rx[r].pool;
		if (t >= base && t < base + PIPELINE_POOL_TXNS)
			return &p->rx[r];
	}
	abort(); /* a txn that belongs to no pool: memory corruption */
}

/* ---------------------------------------------------------------- metrics */

static void pipeline_metrics_register(unsigned n_workers)
{
	static char method_names[SIP_METHOD_COUNT][24];
	static const char *method_values[SIP_METHOD_COUNT];
	static char worker_names[PIPELINE_MAX_WORKERS][12];
	static const char *worker_values[PIPELINE_MAX_WORKERS];
	static const char *const drop_values[PIPELINE_DROP_COUNT] = { "truncated", "pool_empty", "malformed",
								       "shutdown" };
	static const double bounds[] = { 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
					 5e-3,  10e-3,  25e-3,  50e-3,  100e-3 };
	struct pipeline_metrics *m = &pipeline_metrics;
	if (m->registered)
		return;
	for (unsigned i = 0; i < SIP_METHOD_COUNT; i++) {
		struct slice s = sip_method_name((enum sip_method)i);
		if (s.len == 0 || s.len >= sizeof(method_names[i]))
			s = SLICE_LIT("OTHER");
		memcpy(method_names[i], s.p, s.len);
		method_values[i] = method_names[i];
	}
	for (unsigned i = 0; i < PIPELINE_MAX_WORKERS; i++) {
		snprintf(worker_names[i], sizeof(worker_names[i]), "%u", i);
		worker_values[i] = worker_names[i];
	}
	m->n_worker_labels = n_workers;
	m->requests = metrics_counter("referee_requests_total", "SIP requests received, by method", "method",
				      method_values, SIP_METHOD_COUNT);
	m->responses = metrics_counter("referee_responses_received_total", "SIP responses received", NULL,
				       NULL, 0);
	m->queue_drops = metrics_counter("referee_queue_drops_total",
					 "Messages dropped because the worker's queue was full", "worker",
					 worker_values, n_workers);
	m->rx_drops = metrics_counter("referee_rx_drops_total", "Datagrams dropped before or without processing",
				      "reason", drop_values, PIPELINE_DROP_COUNT);
	m->queue_depth = metrics_gauge("referee_queue_depth", "Messages waiting in the worker's queues", "worker",
				       worker_values, n_workers);
	m->tx_errors = metrics_counter("referee_tx_errors_total", "Datagrams the kernel refused to send", NULL,
				       NULL, 0);
	m->duration = metrics_histogram("referee_request_duration_seconds",
					"Time from receiving a message to sending the datagram it produced (forwarded or answered)", bounds,
					sizeof(bounds) / sizeof(bounds[0]));
	m->registered = true;
}

/* ---------------------------------------------------------------- receivers */

/* worker for @t: hash of Call-ID, or of the source address without one.
 * Inline mode: two kinds of message stay with the worker that read them, at
 * no ring hop and no wakeup. Messages from one source always reach the same
 * socket (SO_REUSEPORT hashes the 4-tuple), hence the same worker, so their
 * order is kept either way:
 *   - responses: relaying one is a function of the message and the config
 *     alone (Via), no stage keeps state for them;
 *   - an out-of-dialog OPTIONS (no To tag): no dialog to keep together, and
 *     its retransmissions come from its source (load balancer probes).
 * Every other request keeps Call-ID affinity. */
static unsigned receiver_pick(const struct pipeline *p, const struct receiver *rx, const struct txn *t)
{
	if (p->inline_rx && t->parse_rc >= 0 &&
	    (!t->msg.is_request ||
	     (t->msg.method_id == SIP_METHOD_OPTIONS && proxy_hdr_tag(&t->msg, SIP_HDR_TO).len == 0)))
		return rx->id;
	struct slice key = t->msg.call_id;
	if (key.len == 0 || !key.p) {
		if (t->src.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&t->src;
			key = slice_make((const char *)&a->sin6_addr, sizeof(a->sin6_addr));
		} else {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&t->src;
			key = slice_make((const char *)&a->sin_addr, sizeof(a->sin_addr));
		}
	}
	return (unsigned)(slice_hash(key) % p->n_workers);
}

static void receiver_refill(struct receiver *rx)
{
	for (unsigned w = 0; w < rx->p->n_workers; w++)
		rx->n_free += ring_pop_batch(rx->from_worker[w], rx->free_txns + rx->n_free,
					     PIPELINE_POOL_TXNS - rx->n_free);
}

/* the pool is empty: read and count what waits in the socket */
static int receiver_discard(struct receiver *rx, int fd)
{
	struct mmsghdr msgs[PIPELINE_RX_BATCH];
	struct iovec iov = { .iov_base = rx->scratch->rx, .iov_len = TXN_RX_MAX };
	for (unsigned j = 0; j < PIPELINE_RX_BATCH; j++)
		msgs[j] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
	int n = recvmmsg(fd, msgs, PIPELINE_RX_BATCH, MSG_DONTWAIT, NULL);
	if (n > 0)
		metrics_add(pipeline_metrics.rx_drops + PIPELINE_DROP_POOL_EMPTY, (uint64_t)n);
	return n;
}

/* push the staged txns and wake sleeping workers (at most one write each) */
static void receiver_push(struct receiver *rx)
{
	struct pipeline *p = rx->p;
	bool pushed_any = false;
	for (unsigned w = 0; w < p->n_workers; w++) {
		unsigned n = rx->n_staged[w];
		if (n == 0)
			continue;
		unsigned ok = ring_push_batch(rx->to_worker[w], rx->staged[w], n);
		if (ok < n) {
			metrics_add(pipeline_metrics.queue_drops + pipeline_worker_label(w), n - ok);
			for (unsigned i = ok; i < n; i++)
				rx->free_txns[rx->n_free++] = rx->staged[w][i];
		}
		pushed_any |= ok > 0;
		rx->n_staged[w] = ok; /* remember who got something, for the wakeup below */
	}
	if (!pushed_any)
		return;
	for (unsigned w = 0; w < p->n_workers; w++) {
		if (rx->n_staged[w] == 0)
			continue;
		rx->n_staged[w] = 0;
		struct worker *wk = &p->workers[w];
		/* seq_cst load: after our seq_cst tail store (ring_push_batch) in the
		 * total order; pairs with the seq_cst store in worker_sleep_begin:
		 * either the worker's re-check sees our entries or we see `sleeping`.
		 * The exchange picks the one receiver that writes the eventfd. */
		if (atomic_load_explicit(&wk->sleeping, memory_order_seq_cst) &&
		    atomic_exchange_explicit(&wk->sleeping, false, memory_order_relaxed))
			worker_wake(wk);
	}
}

static void receiver_accept(struct receiver *rx, struct txn *t, unsigned listen_idx, uint64_t now)
{
	t->listen_idx = (uint16_t)listen_idx;
	t->rx_ns = now;
	t->parse_rc = sip_parse(t->rx, t->rx_len, &t->msg);
	if (t->parse_rc >= 0) {
		if (t->msg.is_request)
			metrics_inc(pipeline_metrics.requests +
				    (t->msg.method_id < SIP_METHOD_COUNT ? t->msg.method_id : 0));
		else
			metrics_inc(pipeline_metrics.responses);
	}
	unsigned w = receiver_pick(rx->p, rx, t);
	rx->staged[w][rx->n_staged[w]++] = t;
}

int pipeline_rx_read(struct receiver *rx, unsigned i, bool *full)
{
	struct mmsghdr msgs[PIPELINE_RX_BATCH];
	struct iovec iov[PIPELINE_RX_BATCH];
	if (rx->fds[i] < 0)
		return 0; /* not a UDP listen address */
	receiver_refill(rx);
	unsigned k = rx->n_free < PIPELINE_RX_BATCH ? rx->n_free : PIPELINE_RX_BATCH;
	if (k == 0) {
		int n = receiver_discard(rx, rx->fds[i]);
		*full |= n > 0;
		return n;
	}
	void **top = rx->free_txns + rx->n_free - k;
	for (unsigned j = 0; j < k; j++) {
		struct txn *t = top[j];
		iov[j] = (struct iovec){ .iov_base = t->rx, .iov_len = TXN_RX_MAX };
		msgs[j] = (struct mmsghdr){ .msg_hdr = { .msg_name = &t->src, .msg_namelen = sizeof(t->src),
							 .msg_iov = &iov[j], .msg_iovlen = 1 } };
	}
	int n = recvmmsg(rx->fds[i], msgs, k, MSG_DONTWAIT, NULL);
	*full |= n == (int)k;
	if (n <= 0) {
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			static struct log_limit lim;
			uint64_t sup;
			if (log_limit_pass(&lim, &sup))
				log_warn("receiver", "recvmmsg failed: %s suppressed=%llu", strerror(errno),
					 (unsigned long long)sup);
		}
		return 0;
	}
	/* the first n entries of top[] are taken; keep the unused ones on the stack */
	void *taken[PIPELINE_RX_BATCH];
	memcpy(taken, top, (size_t)n * sizeof(*taken));
	memmove(top, top + n, (k - (unsigned)n) * sizeof(*top));
	rx->n_free -= (unsigned)n;
	uint64_t now = pipeline_now_ns();
	for (int j = 0; j < n; j++) {
		struct txn *t = taken[j];
		if (msgs[j].msg_hdr.msg_flags & MSG_TRUNC) {
			metrics_inc(pipeline_metrics.rx_drops + PIPELINE_DROP_TRUNCATED);
			rx->free_txns[rx->n_free++] = t;
			continue;
		}
		t->rx_len = msgs[j].msg_len;
		t->srclen = msgs[j].msg_hdr.msg_namelen;
		receiver_accept(rx, t, i, now);
	}
	receiver_push(rx);
	return n;
}

static void *receiver_main(void *arg)
{
	struct receiver *rx = arg;
	struct pipeline *p = rx->p;
	struct pollfd pfd[CFG_MAX_LISTEN + 1];
	if (metrics_thread_init() < 0)
		log_warn("receiver", "no metrics shard left: counting on the shared one id=%u", rx->id);
	for (unsigned i = 0; i < p->n_listen; i++)
		pfd[i] = (struct pollfd){ .fd = rx->fds[i], .events = POLLIN };
	pfd[p->n_listen] = (struct pollfd){ .fd = p->rx_stop_efd, .events = POLLIN };
	/* relaxed: rx_stop_efd makes poll return; the flag itself orders nothing */
	while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
		/* a short batch drained the socket: sleep in poll (level-triggered,
		 * so a datagram that arrived since wakes it at once) instead of
		 * paying another recvmmsg that would find nothing */
		bool full = false;
		for (unsigned i = 0; i < p->n_listen; i++)
			pipeline_rx_read(rx, i, &full);
		if (!full && poll(pfd, p->n_listen + 1, -1) < 0 && errno != EINTR)
			break;
	}
	return NULL;
}

/* ---------------------------------------------------------------- setup */

static void socket_bufsize(int fd, int opt_force, int opt, const char *what)
{
	int size = PIPELINE_SOCKBUF;
	if (setsockopt(fd, SOL_SOCKET, opt_force, &size, sizeof(size)) == 0)
		return; /* needs CAP_NET_ADMIN; otherwise capped by net.core.*mem_max */
	if (setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size)) < 0)
		log_warn("pipeline", "cannot set %s: %s", what, strerror(errno));
}

/* bind one SO_REUSEPORT socket to @a (whose port is fixed by the first bind). */
static int socket_open(struct cfg_addr *a)
{
	int fd = socket(a->sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	socket_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
	socket_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
	if (bind(fd, (struct sockaddr *)&a->sa, a->salen) < 0)
		goto fail;
	/* port 0: every later receiver binds the port the kernel chose */
	socklen_t len = sizeof(a->sa);
	if (getsockname(fd, (struct sockaddr *)&a->sa, &len) < 0)
		goto fail;
	a->salen = len;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

static int receiver_setup(struct receiver *rx, struct pipeline *p, unsigned id, struct cfg_addr *listen)
{
	rx->id = id;
	rx->p = p;
	size_t bytes = ((size_t)PIPELINE_POOL_TXNS + 1) * sizeof(struct txn);
	rx->pool = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	rx->free_txns = calloc(PIPELINE_POOL_TXNS, sizeof(*rx->free_txns));
	if (!rx->pool || !rx->free_txns)
		return -ENOMEM;
	rx->scratch = rx->pool + PIPELINE_POOL_TXNS;
	for (unsigned i = 0; i < PIPELINE_POOL_TXNS; i++)
		rx->free_txns[rx->n_free++] = &rx->pool[i];
	for (unsigned w = 0; w < p->n_workers; w++) {
		rx->to_worker[w] = ring_new(PIPELINE_RING_SLOTS);
		rx->from_worker[w] = ring_new(PIPELINE_POOL_TXNS);
		if (!rx->to_worker[w] || !rx->from_worker[w])
			return -ENOMEM;
	}
	for (unsigned i = 0; i < p->n_listen; i++) {
		if (listen[i].transport != CFG_TRANSPORT_UDP)
			continue; /* stream listeners: core/conn_*.c (fds[i] stays -1) */
		rx->fds[i] = socket_open(&listen[i]);
		if (rx->fds[i] < 0) {
			int err = rx->fds[i];
			log_error("pipeline", "cannot listen on %s: %s", listen[i].text, strerror(-err));
			return err;
		}
	}
	return 0;
}

static void receiver_cleanup(struct receiver *rx)
{
	for (unsigned i = 0; i < CFG_MAX_LISTEN; i++)
		if (rx->fds[i] >= 0)
			close(rx->fds[i]);
	for (unsigned w = 0; w < PIPELINE_MAX_WORKERS; w++) {
		ring_free(rx->to_worker[w]);
		ring_free(rx->from_worker[w]);
	}
	free(rx->pool);
	free(rx->free_txns);
}

static void pipeline_free(struct pipeline *p)
{
	for (unsigned r = 0; p->rx && r < p->n_rx; r++)
		receiver_cleanup(&p->rx[r]);
	for (unsigned w = 0; p->workers && w < p->n_workers; w++)
		worker_cleanup(&p->workers[w]);
	if (p->rx_stop_efd >= 0)
		close(p->rx_stop_efd);
	free(p->rx);
	free(p->workers);
	pthread_mutex_destroy(&p->start_mu);
	pthread_cond_destroy(&p->start_cv);
}

static int pipeline_setup(struct pipeline *p, const struct cfg *c, const struct stage_table *st)
{
	*p = (struct pipeline){ .st = st, .n_rx = c->threads.receivers, .n_workers = c->threads.workers,
				.n_listen = c->n_listen, .rx_stop_efd = -1 };
	pthread_mutex_init(&p->start_mu, NULL);
	pthread_cond_init(&p->start_cv, NULL);
	atomic_init(&p->stop, false);
	atomic_init(&p->n_rx_done, 0);
	if (p->n_rx == 0 || p->n_rx > PIPELINE_MAX_RECEIVERS || p->n_workers == 0 ||
	    p->n_workers > PIPELINE_MAX_WORKERS || p->n_listen == 0 || p->n_listen > CFG_MAX_LISTEN) {
		log_error("pipeline", "bad thread or listen counts receivers=%u workers=%u listen=%u (max %d/%d/%d)",
			  p->n_rx, p->n_workers, p->n_listen, PIPELINE_MAX_RECEIVERS, PIPELINE_MAX_WORKERS,
			  CFG_MAX_LISTEN);
		return -EINVAL;
	}
	/* interim (issue 10): the config takes tcp:// and tls://, the connection
	 * threads (core/conn_*.c) are not in the pipeline yet: refuse, never
	 * pretend to listen or send */
	bool stream_hop = false; /* any route destination over TCP or TLS (SPEC §10 sets) */
	for (unsigned i = 0; i < c->routes.local.n; i++)
		stream_hop |= c->routes.local.d[i].transport != CFG_TRANSPORT_UDP;
	for (unsigned i = 0; i < c->routes.outbound.n; i++)
		stream_hop |= c->routes.outbound.d[i].transport != CFG_TRANSPORT_UDP;
	if (cfg_has_transport(c, CFG_TRANSPORT_TCP) || cfg_has_transport(c, CFG_TRANSPORT_TLS) || stream_hop) {
		log_error("pipeline", "tcp:// and tls:// addresses are not served by this build yet; use udp://");
		return -EPROTONOSUPPORT;
	}
	pipeline_metrics_register(p->n_workers);
	p->rx = calloc(p->n_rx, sizeof(*p->rx));
	p->workers = aligned_alloc(64, p->n_workers * sizeof(*p->workers));
	p->rx_stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!p->rx || !p->workers || p->rx_stop_efd < 0)
		return -ENOMEM;
	for (unsigned r = 0; r < p->n_rx; r++)
		for (unsigned i = 0; i < CFG_MAX_LISTEN; i++)
			p->rx[r].fds[i] = -1;
	int rc = 0;
	for (unsigned w = 0; w < p->n_workers; w++) {
		int e = worker_setup(&p->workers[w], p, w);
		rc = rc ? rc : e;
	}
	struct cfg_addr listen[CFG_MAX_LISTEN];
	memcpy(listen, c->listen, sizeof(listen));
	for (unsigned r = 0; r < p->n_rx && rc == 0; r++)
		rc = receiver_setup(&p->rx[r], p, r, listen);
	/* threads.inline_receive (cfg_finish checks receivers == workers): worker
	 * i reads receiver i's sockets (one thread less per pair and no wakeup
	 * for its own share of the traffic) */
	p->inline_rx = c->threads.inline_receive && p->n_rx == p->n_workers;
	for (unsigned w = 0; w < p->n_workers && rc == 0 && p->inline_rx; w++)
		rc = worker_attach_rx(&p->workers[w], &p->rx[w]);
	return rc;
}

/* start workers (waiting for their init hooks), then receivers */
static int pipeline_start(struct pipeline *p, unsigned *n_workers_started, unsigned *n_rx_started)
{
	for (unsigned w = 0; w < p->n_workers; w++) {
		if (pthread_create(&p->workers[w].thread, NULL, worker_main, &p->workers[w]) != 0)
			return -EAGAIN;
		(*n_workers_started)++;
	}
	int rc = 0;
	pthread_mutex_lock(&p->start_mu);
	while (p->n_started < p->n_workers)
		pthread_cond_wait(&p->start_cv, &p->start_mu);
	for (unsigned w = 0; w < p->n_workers; w++)
		rc = rc ? rc : p->workers[w].init_rc;
	pthread_mutex_unlock(&p->start_mu);
	if (rc < 0) {
		log_error("pipeline", "worker init failed: %s", strerror(-rc));
		return rc;
	}
	if (p->inline_rx)
		return 0; /* the workers read the sockets themselves */
	for (unsigned r = 0; r < p->n_rx; r++) {
		if (pthread_create(&p->rx[r].thread, NULL, receiver_main, &p->rx[r]) != 0)
			return -EAGAIN;
		(*n_rx_started)++;
	}
	return 0;
}

/* Threads that pipeline_run did not create (libmicrohttpd's, a test's) may
 * not block our signals: the kernel may hand SIGTERM/SIGHUP to one of them.
 * This handler turns that into the same request as the signalfd path, so the
 * process never dies of a default action while the pipeline runs.
 * Async-signal-safe: lock-free atomic stores and write(2). */
static void pipeline_on_signal(int sig)
{
	int saved = errno;
	atomic_store_explicit(sig == SIGHUP ? &pipeline_hup_requested : &pipeline_stop_requested, true,
			      memory_order_relaxed);
	uint64_t one = 1;
	ssize_t n = write(pipeline_main_efd, &one, sizeof(one));
	(void)n;
	errno = saved;
}

static void pipeline_reload(int (*reload)(void *arg), void *arg)
{
	int rc = reload ? reload(arg) : 0;
	if (rc < 0)
		log_error("pipeline", "reload failed, keeping the running configuration: %s", strerror(-rc));
	else
		log_info("pipeline", "configuration reloaded");
}

/* wait for SIGTERM/SIGINT or pipeline_stop; run @reload on SIGHUP */
static void pipeline_wait(int sfd, int (*reload)(void *arg), void *arg)
{
	struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = pipeline_main_efd, .events = POLLIN } };
	for (;;) {
		/* relaxed: the signalfd or the eventfd wakes us and the flags are
		 * re-read after every wakeup; they order nothing else */
		if (atomic_load_explicit(&pipeline_stop_requested, memory_order_relaxed))
			return;
		if (atomic_exchange_explicit(&pipeline_hup_requested, false, memory_order_relaxed)) {
			pipeline_reload(reload, arg);
			continue;
		}
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return;
		uint64_t v;
		if ((pfd[1].revents & POLLIN) && read(pipeline_main_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return;
		struct signalfd_siginfo si;
		if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			pipeline_reload(reload, arg);
			continue;
		}
		log_info("pipeline", "signal %u: draining", si.ssi_signo);
		return;
	}
}

/* stop receivers, join them, then let workers drain and join them */
static void pipeline_drain(struct pipeline *p, unsigned n_workers_started, unsigned n_rx_started)
{
	atomic_store_explicit(&pipeline_serving, false, memory_order_relaxed);
	atomic_store_explicit(&p->stop, true, memory_order_relaxed);
	uint64_t one = 1;
	ssize_t n = write(p->rx_stop_efd, &one, sizeof(one));
	(void)n;
	for (unsigned r = 0; r < n_rx_started; r++)
		pthread_join(p->rx[r].thread, NULL);
	for (unsigned w = 0; w < n_workers_started; w++) {
		/* release pairs with the acquire load in worker_loop: every push of
		 * the joined receivers is visible before the worker sees draining */
		atomic_store_explicit(&p->workers[w].draining, true, memory_order_release);
		worker_wake(&p->workers[w]);
	}
	for (unsigned w = 0; w < n_workers_started; w++)
		pthread_join(p->workers[w].thread, NULL);
}

int pipeline_run(const struct cfg *c, const struct stage_table *st, int (*reload)(void *arg), void *arg)
{
	sigset_t mask, old;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &old); /* threads created below inherit it */
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	pthread_once(&pipeline_main_efd_once, main_efd_create);
	int efd = pipeline_main_efd;
	static const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa = { .sa_handler = pipeline_on_signal, .sa_flags = SA_RESTART }, old_sa[3];
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &sa, &old_sa[i]);
	struct pipeline *p = calloc(1, sizeof(*p));
	unsigned n_workers_started = 0, n_rx_started = 0;
	int rc = (sfd < 0 || efd < 0) ? -errno : (!p || !c || !st) ? -EINVAL : 0;
	if (rc < 0) {
		cfg_free((struct cfg *)c); /* owned from the call on, even on failure */
		goto out;
	}
	cfg_publish_ptr((struct cfg *)c); /* owned from now on */
	rc = pipeline_setup(p, c, st);
	if (rc == 0)
		rc = pipeline_start(p, &n_workers_started, &n_rx_started);
	if (rc == 0) {
		atomic_store_explicit(&pipeline_serving, true, memory_order_relaxed);
		log_info("pipeline", "serving receivers=%u workers=%u inline_receive=%s", p->n_rx, p->n_workers,
			 p->inline_rx ? "yes" : "no");
		pipeline_wait(sfd, reload, arg);
	}
	pipeline_drain(p, n_workers_started, n_rx_started);
	pipeline_cfg_publish(NULL); /* frees the current config (owned since the call) */
	if (rc == 0)
		log_info("pipeline", "drained and stopped");
out:
	if (efd >= 0) {
		uint64_t v;
		ssize_t n = read(efd, &v, sizeof(v)); /* forget the stop we served */
		(void)n;
	}
	struct signalfd_siginfo si; /* consume signals still pending, then unblock */
	while (sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], &old_sa[i], NULL);
	atomic_store_explicit(&pipeline_stop_requested, false, memory_order_relaxed);
	atomic_store_explicit(&pipeline_hup_requested, false, memory_order_relaxed);
	if (p)
		pipeline_free(p);
	free(p);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void pipeline_stop(void)
{
	atomic_store_explicit(&pipeline_stop_requested, true, memory_order_relaxed);
	pthread_once(&pipeline_main_efd_once, main_efd_create);
	int efd = pipeline_main_efd;
	if (efd >= 0) {
		uint64_t one = 1;
		ssize_t n = write(efd, &one, sizeof(one));
		(void)n;
	}
}

bool pipeline_is_serving(void)
{
	return atomic_load_explicit(&pipeline_serving, memory_order_relaxed);
}

void pipeline_cfg_publish(struct cfg *c)
{
	/* only the main thread writes the pointer: a plain read is enough */
	struct cfg *old = pipeline_cfg_rcu;
	cfg_publish_ptr(c);
	synchronize_rcu(); /* no worker holds `old` once this returns */
	cfg_free(old);
}
