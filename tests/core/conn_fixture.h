#pragma once
/* conn_fixture.h - drives conn_threads without the pipeline (unit tests of
 * core/conn_*.c): N owner threads, each an RCU reader polling its
 * conn_thread; a "worker" thread that answers every delivered message by
 * conn_send from another thread than the owner (the cross-thread queue), so
 * responses travel exactly like the pipeline's. Answer: "ECHO <len>\r\n" +
 * the message, to the peer the message came from. fx_stop ends the threads
 * and drains (conn_threads_drain) as the pipeline does at SIGTERM;
 * fx_stop_owners ends the owners alone first, so later sends wait in their
 * queues for that drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "cfg.h"
#include "conn.h"
#include "metrics.h"

#define FX_THREADS 2
#define FX_PENDING 4096

struct fx_pending {
	struct sockaddr_storage peer;
	enum cfg_transport transport;
	bool trusted;
	uint32_t len;
	char buf[2048];
};

static struct {
	struct conn_thread *ct[FX_THREADS];
	pthread_t owner[FX_THREADS], worker;
	atomic_bool stop, owners_stop;
	bool owners_joined;
	uint64_t drain_ns; /* how long fx_stop's drain may take (fx_start: 1 s) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fx_pending *pending[FX_PENDING]; /* FIFO: order per connection is kept */
	unsigned head, n_pending;
	atomic_uint delivered, trusted_seen, flushes;
} fx;

static void fx_deliver(void *arg, const struct conn_msg *m)
{
	(void)arg;
	atomic_fetch_add(&fx.delivered, 1);
	if (m->trusted_name)
		atomic_fetch_add(&fx.trusted_seen, 1);
	struct fx_pending *p = malloc(sizeof(*p));
	if (!p)
		return;
	memcpy(&p->peer, m->peer, m->peerlen);
	p->transport = m->transport;
	p->trusted = m->trusted_name;
	p->len = m->len < sizeof(p->buf) ? m->len : (uint32_t)sizeof(p->buf);
	memcpy(p->buf, m->buf, p->len);
	pthread_mutex_lock(&fx.mu);
	if (fx.n_pending < FX_PENDING)
		fx.pending[(fx.head + fx.n_pending++) % FX_PENDING] = p;
	else
		free(p);
	pthread_cond_signal(&fx.cv);
	pthread_mutex_unlock(&fx.mu);
}

static void fx_flush(void *arg)
{
	(void)arg;
	atomic_fetch_add(&fx.flushes, 1);
}

static atomic_uint fx_unsent_503;

static size_t fx_reply(void *arg, const struct conn_msg *m, uint16_t code, char *out, size_t cap)
{
	(void)arg;
	(void)m;
	if (code != 503)
		return (size_t)snprintf(out, cap, "SIP/2.0 %u Bad\r\nContent-Length: 0\r\n\r\n", code);
	atomic_fetch_add(&fx_unsent_503, 1);
	/* delivered upstream: "ECHO" so the fixture's worker does not answer it */
	return (size_t)snprintf(out, cap, "ECHO 503\r\nContent-Length: 0\r\n\r\n");
}

static inline uint64_t fx_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *fx_owner_main(void *arg)
{
	struct conn_thread *ct = arg;
	rcu_register_thread();
	metrics_thread_init();
	conn_thread_attach(ct);
	struct pollfd pfd = { .fd = conn_thread_pollfd(ct), .events = POLLIN };
	while (!atomic_load(&fx.stop) && !atomic_load(&fx.owners_stop)) {
		poll(&pfd, 1, 20);
		conn_thread_run(ct);
		conn_thread_tick(ct, fx_now_ns());
	}
	rcu_unregister_thread();
	return NULL;
}

static void *fx_worker_main(void *arg)
{
	(void)arg;
	rcu_register_thread();
	metrics_thread_init();
	char out[4096];
	for (;;) {
		pthread_mutex_lock(&fx.mu);
		while (fx.n_pending == 0 && !atomic_load(&fx.stop))
			pthread_cond_wait(&fx.cv, &fx.mu);
		if (fx.n_pending == 0) {
			pthread_mutex_unlock(&fx.mu);
			break;
		}
		struct fx_pending *p = fx.pending[fx.head];
		fx.head = (fx.head + 1) % FX_PENDING;
		fx.n_pending--;
		pthread_mutex_unlock(&fx.mu);
		if (p->len >= 4 && memcmp(p->buf, "ECHO", 4) == 0) { /* an echo of ours came back: done */
			free(p);
			continue;
		}
		int n = snprintf(out, sizeof(out), "ECHO %u\r\n", p->len);
		memcpy(out + n, p->buf, p->len);
		struct conn_dest d = { .addr = &p->peer,
				       .addrlen = p->peer.ss_family == AF_INET ? sizeof(struct sockaddr_in)
									       : sizeof(struct sockaddr_in6),
				       .transport = p->transport };
		conn_send(&d, out, (size_t)n + p->len);
		free(p);
	}
	rcu_unregister_thread();
	return NULL;
}

/* fx_free_port - a TCP port free on 127.0.0.1 now */
static inline uint16_t fx_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

static void fx_start(const struct cfg *c)
{
	const struct conn_host host = { .deliver = fx_deliver, .flush = fx_flush, .reply = fx_reply };
	memset(&fx, 0, sizeof(fx));
	pthread_mutex_init(&fx.mu, NULL);
	pthread_cond_init(&fx.cv, NULL);
	fx.drain_ns = 1000ull * 1000 * 1000;
	if (conn_runtime_start(c, FX_THREADS) < 0)
		abort();
	for (unsigned i = 0; i < FX_THREADS; i++) {
		int err = 0;
		fx.ct[i] = conn_thread_new(i, c, &host, &err);
		if (!fx.ct[i])
			abort();
	}
	for (unsigned i = 0; i < FX_THREADS; i++)
		pthread_create(&fx.owner[i], NULL, fx_owner_main, fx.ct[i]);
	pthread_create(&fx.worker, NULL, fx_worker_main, NULL);
}

/* fx_stop_owners - the owner threads end, as the pipeline's do at a drain */
static inline void fx_stop_owners(void)
{
	atomic_store(&fx.owners_stop, true);
	for (unsigned i = 0; i < FX_THREADS; i++)
		pthread_join(fx.owner[i], NULL);
	fx.owners_joined = true;
}

static void fx_stop(void)
{
	atomic_store(&fx.stop, true);
	pthread_mutex_lock(&fx.mu);
	pthread_cond_broadcast(&fx.cv);
	pthread_mutex_unlock(&fx.mu);
	pthread_join(fx.worker, NULL);
	if (!fx.owners_joined)
		for (unsigned i = 0; i < FX_THREADS; i++)
			pthread_join(fx.owner[i], NULL);
	rcu_register_thread();
	conn_threads_drain(fx.ct, FX_THREADS, fx_now_ns() + fx.drain_ns);
	for (unsigned i = 0; i < FX_THREADS; i++)
		conn_thread_free(fx.ct[i]);
	rcu_unregister_thread();
	conn_runtime_stop();
	for (unsigned i = 0; i < fx.n_pending; i++)
		free(fx.pending[(fx.head + i) % FX_PENDING]);
}

/* fx_connect - a blocking client from @src_ip (NULL: any) to 127.0.0.1:@port, 3 s timeouts */
static inline int fx_connect(uint16_t port, const char *src_ip)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (src_ip) {
		struct sockaddr_in s = { .sin_family = AF_INET };
		inet_pton(AF_INET, src_ip, &s.sin_addr);
		if (bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0)
			abort();
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* fx_read_until - read into @buf until it holds @want bytes, EOF or timeout; bytes read */
static inline size_t fx_read_until(int fd, char *buf, size_t cap, size_t want)
{
	size_t have = 0;
	while (have < want && have < cap) {
		ssize_t r = recv(fd, buf + have, cap - have, 0);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	return have;
}

/* fx_eof - the peer closes within three receive timeouts (after any bytes;
 * the machine may be loaded) */
static inline bool fx_eof(int fd)
{
	char tmp[512];
	for (int i = 0, waits = 0; i < 100 && waits < 3; i++) {
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return false;
		waits += r < 0;
	}
	return false;
}

/* fx_wait - poll @cond up to 5 s */
#define FX_WAIT(cond)                                                              \
	do {                                                                       \
		for (int fx_i = 0; fx_i < 500 && !(cond); fx_i++)                  \
			usleep(10000);                                             \
	} while (0)
