/* pipeline.c - start-up, signals and shutdown of the UDP pipeline (SPEC §1,
 * §7, §8): builds the receivers (pipeline_rx.c) and workers (worker.c),
 * starts the threads (workers first, waiting for their init hooks), waits for
 * SIGTERM/SIGINT/SIGHUP, drains, and publishes configurations with RCU.
 * Two shapes, one code path: receiver threads that feed the workers through
 * the rings, or (threads.inline_receive, receivers == workers, the default)
 * worker i reading receiver i's sockets itself, which saves a thread hop and
 * a wakeup per batch (bench/README.md).
 * Fields shared across threads: `stop` (main writes, readers read relaxed:
 * rx_stop_efd or the workers' efd carries the wakeup), the rings (ring.h),
 * rx_consumer.sleeping (pipeline_rx.h), worker_cfg_rcu (main publishes with
 * rcu_ptr_publish (rcu_tsan.h), workers read with rcu_dereference inside rcu_read_lock).
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
#include <unistd.h>
/* synchronize_rcu and friends are calls into liburcu (see worker.c) */
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "log.h"
#include "pipeline_metrics.h"
#include "pipeline_rx.h"
#include "proxy.h"
#include "rcu_tsan.h"
#include "worker.h"

struct pipeline {
	struct worker_group g;
	struct receiver *rx;      /* n_rx */
	int rx_stop_efd;          /* readable once receivers must stop */
	atomic_bool stop;         /* main -> readers */
};

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

static atomic_bool pipeline_serving;

static void pipeline_free(struct pipeline *p)
{
	for (unsigned r = 0; p->rx && r < p->g.n_rx; r++)
		rx_cleanup(&p->rx[r]);
	for (unsigned w = 0; p->g.workers && w < p->g.n_workers; w++)
		worker_cleanup(&p->g.workers[w]);
	if (p->rx)
		conn_pipeline_free(p->rx, p->g.n_rx);
	if (p->rx_stop_efd >= 0)
		close(p->rx_stop_efd);
	free(p->rx);
	free(p->g.workers);
	pthread_mutex_destroy(&p->g.start_mu);
	pthread_cond_destroy(&p->g.start_cv);
}

static int pipeline_setup(struct pipeline *p, const struct cfg *c, const struct stage_table *st)
{
	*p = (struct pipeline){ .rx_stop_efd = -1 };
	struct worker_group *g = &p->g;
	*g = (struct worker_group){ .st = st, .n_rx = c->threads.receivers, .n_workers = c->threads.workers,
				    .n_listen = c->n_listen, .stop = &p->stop };
	pthread_mutex_init(&g->start_mu, NULL);
	pthread_cond_init(&g->start_cv, NULL);
	atomic_init(&p->stop, false);
	atomic_init(&g->n_rx_done, 0);
	if (g->n_rx == 0 || g->n_rx > PIPELINE_MAX_RECEIVERS || g->n_workers == 0 ||
	    g->n_workers > PIPELINE_MAX_WORKERS || g->n_listen == 0 || g->n_listen > CFG_MAX_LISTEN) {
		log_error("pipeline", "bad thread or listen counts receivers=%u workers=%u listen=%u (max %d/%d/%d)",
			  g->n_rx, g->n_workers, g->n_listen, PIPELINE_MAX_RECEIVERS, PIPELINE_MAX_WORKERS,
			  CFG_MAX_LISTEN);
		return -EINVAL;
	}
	pipeline_metrics_register(g->n_workers);
	p->rx = calloc(g->n_rx, sizeof(*p->rx));
	g->rx = p->rx;
	g->workers = aligned_alloc(64, g->n_workers * sizeof(*g->workers));
	p->rx_stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!p->rx || !g->workers || p->rx_stop_efd < 0)
		return -ENOMEM;
	for (unsigned r = 0; r < g->n_rx; r++)
		rx_init(&p->rx[r]);
	int rc = 0;
	struct rx_consumer *consumers[PIPELINE_MAX_WORKERS];
	for (unsigned w = 0; w < g->n_workers; w++) {
		int e = worker_setup(&g->workers[w], g, w);
		rc = rc ? rc : e;
		consumers[w] = &g->workers[w].wake;
	}
	struct cfg_addr listen[CFG_MAX_LISTEN];
	memcpy(listen, c->listen, sizeof(listen));
	for (unsigned r = 0; r < g->n_rx && rc == 0; r++) {
		rc = rx_setup(&p->rx[r], r, g->n_workers, g->n_listen, listen, consumers);
		p->rx[r].paired = g->n_rx == g->n_workers;
		p->rx[r].stop = &p->stop;
		p->rx[r].stop_efd = p->rx_stop_efd;
	}
	if (rc == 0)
		rc = conn_pipeline_setup(p->rx, g->n_rx, c);
	/* threads.inline_receive (cfg_finish checks receivers == workers): worker
	 * i reads receiver i's sockets (one thread less per pair and no wakeup) */
	g->inline_rx = c->threads.inline_receive && g->n_rx == g->n_workers;
	for (unsigned w = 0; w < g->n_workers && rc == 0 && g->inline_rx; w++)
		rc = worker_attach_rx(&g->workers[w], &p->rx[w]);
	return rc;
}

/* start workers (waiting for their init hooks), then receivers */
static int pipeline_start(struct pipeline *p, unsigned *n_workers_started, unsigned *n_rx_started)
{
	struct worker_group *g = &p->g;
	for (unsigned w = 0; w < g->n_workers; w++) {
		if (pthread_create(&g->workers[w].thread, NULL, worker_main, &g->workers[w]) != 0)
			return -EAGAIN;
		(*n_workers_started)++;
	}
	int rc = 0;
	pthread_mutex_lock(&g->start_mu);
	while (g->n_started < g->n_workers)
		pthread_cond_wait(&g->start_cv, &g->start_mu);
	for (unsigned w = 0; w < g->n_workers; w++)
		rc = rc ? rc : g->workers[w].init_rc;
	pthread_mutex_unlock(&g->start_mu);
	if (rc < 0) {
		log_error("pipeline", "worker init failed: %s", strerror(-rc));
		return rc;
	}
	if (g->inline_rx)
		return 0; /* the workers read the sockets themselves */
	for (unsigned r = 0; r < g->n_rx; r++) {
		if (pthread_create(&p->rx[r].thread, NULL, rx_thread_main, &p->rx[r]) != 0)
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

/* stop receivers, join them, then let workers drain and join them; last,
 * what they sent toward stream connections goes out (bounded by the drain) */
static void pipeline_drain(struct pipeline *p, unsigned n_workers_started, unsigned n_rx_started)
{
	const uint64_t deadline = pipeline_now_ns() + PIPELINE_DRAIN_NS;
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
		atomic_store_explicit(&p->g.workers[w].draining, true, memory_order_release);
		worker_wake(&p->g.workers[w]);
	}
	for (unsigned w = 0; w < n_workers_started; w++)
		pthread_join(p->g.workers[w].thread, NULL);
	if (p->rx)
		conn_pipeline_drain(p->rx, p->g.n_rx, deadline);
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
	rcu_ptr_publish(worker_cfg_rcu, (struct cfg *)c); /* owned from now on */
	rc = pipeline_setup(p, c, st);
	if (rc == 0)
		rc = pipeline_start(p, &n_workers_started, &n_rx_started);
	if (rc == 0) {
		atomic_store_explicit(&pipeline_serving, true, memory_order_relaxed);
		log_info("pipeline", "serving receivers=%u workers=%u inline_receive=%s", p->g.n_rx, p->g.n_workers,
			 p->g.inline_rx ? "yes" : "no");
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
	struct cfg *old = worker_cfg_rcu;
	rcu_ptr_publish(worker_cfg_rcu, c);
	synchronize_rcu(); /* no worker holds `old` once this returns */
	cfg_free(old);
	if (c)
		conn_pipeline_reload(c);
}
