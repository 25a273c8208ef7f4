/* conn_io.c - the event loop half of a conn_thread (conn.h): accept, read
 * and frame, write with a per-connection backlog, cross-thread sends,
 * outbound connects, timeouts, the drain; plus the runtime (limits; the
 * trusted names are conn_tls.c's).
 *
 * Memory per idle connection: struct conn (~500 bytes) and, for TLS, the SSL
 * object with its record buffers released. An unfinished message lives in a
 * heap buffer of exactly its size (copied into the thread's scratch buffer
 * for each read); a connection with nothing unfinished holds no buffer.
 * Fairness: at most CONN_READS_PER_EVENT reads per connection per run, so a
 * busy or slow peer never holds up the others (level-triggered epoll brings
 * it back). conn_thread_run holds rcu_read_lock for its batch: a connection
 * closed in the batch is freed only after it (call_rcu), so later events of
 * the same batch still find valid memory (fd = -1, skipped). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "conn_priv.h"
#include "log.h"
#include "metrics.h"
#include "now.h"
#include "slice.h"
#include "tcp_frame.h"

#define CONN_READ_CHUNK 16384u
#define CONN_SCRATCH (CONN_MSG_MAX + CONN_READ_CHUNK)
#define CONN_READS_PER_EVENT 8
#define CONN_ACCEPTS_PER_EVENT 64
#define CONN_SWEEP_NS (1000ull * 1000 * 1000)
#define CONN_TICK_NS (100ull * 1000 * 1000)
#define CONN_QUEUE_SPINS 64

struct conn_runtime conn_rt;
_Thread_local struct conn_thread *conn_self;

uint64_t conn_now_ns(void)
{
	return now_mono_coarse_ns();
}

static unsigned rt_get(atomic_uint *v)
{
	return atomic_load_explicit(v, memory_order_relaxed); /* settings: no ordering needed */
}

static uint32_t msg_limit(void)
{
	unsigned m = rt_get(&conn_rt.max_message);
	return m < CONN_MSG_MAX ? m : CONN_MSG_MAX;
}

/* ---------------------------------------------------------------- gauges */

static _Thread_local int64_t open_here[CFG_TRANSPORT_COUNT];

static void open_gauge(enum cfg_transport t, int delta)
{
	open_here[t] += delta;
	if (conn_rt.metrics_registered)
		metrics_set(conn_rt.m.open + (unsigned)t, open_here[t]);
}

/* ---------------------------------------------------------------- life cycle */

static struct conn *conn_new(struct conn_thread *ct, int fd, const struct sockaddr_storage *peer, socklen_t len,
			     enum cfg_transport t, uint16_t listen_idx)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->kind = CONN_EV_CONN;
	c->owner = ct;
	c->id = atomic_fetch_add_explicit(&conn_rt.next_id, 1, memory_order_relaxed) + 1;
	c->fd = fd;
	c->listen_idx = listen_idx;
	memcpy(&c->peer, peer, len);
	c->peerlen = len;
	conn_key_from_sa(peer, t, &c->key);
	atomic_init(&c->doomed, false);
	c->last_rx_ns = conn_now_ns();
	c->next = ct->conns;
	if (ct->conns)
		ct->conns->prev = c;
	ct->conns = c;
	ct->n_conns++;
	atomic_fetch_add_explicit(&conn_rt.n_open, 1, memory_order_relaxed);
	open_gauge(t, 1);
	return c;
}

static void conn_free_rcu(struct rcu_head *head)
{
	CONN_TSAN_ACQUIRE(&conn_rt); /* a grace period separates the lookups from this */
	free(caa_container_of(head, struct conn, rcu));
}

/* SPEC §9: a next hop we could not reach answers, in effect, 503: each
 * request still queued on the failed connection (nothing of it was sent:
 * one message per chunk before the connection opened) gets a 503 delivered
 * upstream as if the hop had sent it. */
static void answer_message(struct conn_thread *ct, const struct sockaddr_storage *peer, socklen_t peerlen,
			   uint16_t listen_idx, enum cfg_transport t, const char *buf, uint32_t len)
{
	if (!ct->host.reply)
		return;
	struct conn_msg m = { .buf = buf, .len = len, .peer = peer, .peerlen = peerlen, .listen_idx = listen_idx,
			      .transport = t };
	size_t n = ct->host.reply(ct->host.arg, &m, 503, ct->scratch_reply, CONN_MSG_MAX);
	if (n == 0 || n > CONN_MSG_MAX)
		return;
	m.buf = ct->scratch_reply;
	m.len = (uint32_t)n;
	ct->host.deliver(ct->host.arg, &m);
}

static void answer_unsent(struct conn *c)
{
	if (c->state == CONN_OPEN)
		return;
	for (struct conn_chunk *k = c->out_head; k; k = k->next)
		if (k->off == 0)
			answer_message(c->owner, &c->peer, c->peerlen, c->listen_idx,
				       (enum cfg_transport)c->key.transport, k->bytes, k->len);
}

void conn_close(struct conn *c, enum conn_close_reason why)
{
	if (c->fd < 0)
		return;
	struct conn_thread *ct = c->owner;
	if (c->outbound && why == CONN_CLOSE_CONNECT)
		answer_unsent(c);
	/* counted before the peer can see the close (tests read the counters then) */
	conn_count_close((enum cfg_transport)c->key.transport, why);
	if (why == CONN_CLOSE_CONNECT)
		conn_count_connect_failure((enum cfg_transport)c->key.transport);
	conn_table_del(c);
	conn_tls_free(c);
	epoll_ctl(ct->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->in);
	c->in = NULL;
	while (c->out_head) {
		struct conn_chunk *k = c->out_head;
		c->out_head = k->next;
		free(k);
	}
	c->out_tail = NULL;
	if (c->counted_source)
		conn_source_release(&c->peer);
	if (c->prev)
		c->prev->next = c->next;
	else
		ct->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ct->n_conns--;
	atomic_fetch_sub_explicit(&conn_rt.n_open, 1, memory_order_relaxed);
	open_gauge((enum cfg_transport)c->key.transport, -1);
	CONN_TSAN_RELEASE(&conn_rt);
	call_rcu(&c->rcu, conn_free_rcu);
}

/* owner: set EPOLLIN/EPOLLOUT for @c's state */
static void conn_want_events(struct conn *c, bool want_write)
{
	if (c->fd < 0 || c->watching_out == want_write)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(c->owner->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->watching_out = want_write;
}

/* ---------------------------------------------------------------- writing */

static long raw_write(struct conn *c, const char *p, size_t n)
{
	if (c->ssl)
		return conn_tls_write(c, p, n);
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w >= 0)
		return w;
	return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -EIO;
}

/* write what is queued; returns false when the connection was closed */
static bool conn_flush(struct conn *c)
{
	if (c->state != CONN_OPEN)
		return true;
	while (c->out_head) {
		struct conn_chunk *k = c->out_head;
		long w = raw_write(c, k->bytes + k->off, k->len - k->off);
		if (w == -EAGAIN) {
			conn_want_events(c, true);
			return true;
		}
		if (w < 0) {
			conn_close(c, CONN_CLOSE_ERROR);
			return false;
		}
		k->off += (uint32_t)w;
		c->out_bytes -= (uint32_t)w;
		if (k->off < k->len)
			continue;
		c->out_head = k->next;
		free(k);
	}
	c->out_tail = NULL;
	conn_want_events(c, false);
	return true;
}

/* conn_write - owner thread: send now, keep what the socket refuses. */
static int conn_write(struct conn *c, const char *p, size_t n)
{
	if (c->fd < 0)
		return -ENOTCONN;
	size_t done = 0;
	if (!c->out_head && c->state == CONN_OPEN) {
		while (done < n) {
			long w = raw_write(c, p + done, n - done);
			if (w == -EAGAIN)
				break;
			if (w < 0) {
				conn_close(c, CONN_CLOSE_ERROR);
				return -EIO;
			}
			done += (size_t)w;
		}
		if (done == n)
			return 0;
	}
	if (c->out_bytes + (n - done) > CONN_OUT_MAX) {
		conn_count_queue_full(CONN_QFULL_CONNECTION);
		conn_close(c, CONN_CLOSE_QUEUE_FULL);
		return -ENOBUFS;
	}
	struct conn_chunk *k = malloc(sizeof(*k) + (n - done));
	if (!k)
		return -ENOMEM;
	k->next = NULL;
	k->len = (uint32_t)(n - done);
	k->off = 0;
	memcpy(k->bytes, p + done, n - done);
	if (c->out_tail)
		c->out_tail->next = k;
	else
		c->out_head = k;
	c->out_tail = k;
	c->out_bytes += k->len;
	if (c->state == CONN_OPEN)
		conn_want_events(c, true);
	return 0;
}

/* ---------------------------------------------------------------- reading */

static long raw_read(struct conn *c, char *p, size_t n)
{
	if (c->ssl)
		return conn_tls_read(c, p, n);
	ssize_t r = recv(c->fd, p, n, MSG_DONTWAIT);
	if (r >= 0)
		return r;
	return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -EIO;
}

static void deliver(struct conn *c, const char *p, uint32_t len)
{
	struct conn_msg m = { .buf = p,
			      .len = len,
			      .peer = &c->peer,
			      .peerlen = c->peerlen,
			      .listen_idx = c->listen_idx,
			      .transport = (enum cfg_transport)c->key.transport,
			      .trusted_name = c->trusted_name };
	c->owner->host.deliver(c->owner->host.arg, &m);
}

/* frame what @buf holds; returns bytes consumed, or -1 when @c was closed */
static long frame_all(struct conn *c, const char *buf, size_t have)
{
	size_t off = 0;
	const uint32_t limit = msg_limit();
	while (off < have) {
		struct tcp_frame f = tcp_frame_next(buf + off, have - off, limit);
		switch (f.kind) {
		case TCP_FRAME_MORE:
			return (long)off;
		case TCP_FRAME_MESSAGE:
			deliver(c, buf + off, f.len);
			break;
		case TCP_FRAME_PING:
			/* RFC 5626 §4.4.1: the pong is one CRLF */
			if (conn_write(c, "\r\n", 2) < 0)
				return -1;
			break;
		case TCP_FRAME_PONG:
			break;
		case TCP_FRAME_NO_LENGTH:
		case TCP_FRAME_BAD_LENGTH: {
			/* SPEC §9: 400, then close (where the body ends is unknown) */
			struct conn_thread *ct = c->owner;
			if (ct->host.reply) {
				struct conn_msg m = { .buf = buf + off, .len = f.len, .peer = &c->peer,
						      .peerlen = c->peerlen, .listen_idx = c->listen_idx,
						      .transport = (enum cfg_transport)c->key.transport };
				size_t n = ct->host.reply(ct->host.arg, &m, 400, ct->scratch_reply, CONN_MSG_MAX);
				if (n > 0 && n <= CONN_MSG_MAX)
					conn_write(c, ct->scratch_reply, n);
			}
			if (c->fd >= 0)
				conn_close(c, CONN_CLOSE_BAD_FRAMING);
			return -1;
		}
		case TCP_FRAME_TOO_BIG:
			conn_close(c, CONN_CLOSE_TOO_BIG);
			return -1;
		}
		if (c->fd < 0)
			return -1;
		off += f.len;
	}
	return (long)off;
}

/* keep the unfinished tail @p[0..@n) of @c (n may be 0) */
static bool keep_tail(struct conn *c, const char *p, size_t n, bool new_message, uint64_t now)
{
	if (n == 0) {
		free(c->in);
		c->in = NULL;
		c->in_len = 0;
		c->msg_start_ns = 0;
		return true;
	}
	char *buf = n == c->in_len && c->in ? c->in : realloc(c->in, n);
	if (!buf) {
		conn_close(c, CONN_CLOSE_ERROR);
		return false;
	}
	memmove(buf, p, n);
	c->in = buf;
	c->in_len = (uint32_t)n;
	if (new_message || c->msg_start_ns == 0)
		c->msg_start_ns = now;
	return true;
}

static void conn_on_readable(struct conn *c)
{
	char *scratch = c->owner->scratch;
	const uint64_t now = conn_now_ns();
	/* TLS: records OpenSSL already holds raise no socket event: read them all */
	for (int i = 0; c->fd >= 0 && (i < CONN_READS_PER_EVENT || (c->ssl && conn_tls_pending(c))); i++) {
		size_t have = c->in_len;
		if (have)
			memcpy(scratch, c->in, have);
		long r = raw_read(c, scratch + have, CONN_SCRATCH - have);
		if (r == -EAGAIN)
			return;
		if (r == 0) {
			conn_close(c, CONN_CLOSE_PEER);
			return;
		}
		if (r < 0) {
			conn_close(c, CONN_CLOSE_ERROR);
			return;
		}
		c->last_rx_ns = now;
		have += (size_t)r;
		long used = frame_all(c, scratch, have);
		if (used < 0)
			return;
		if (!keep_tail(c, scratch + used, have - (size_t)used, used > 0, now))
			return;
		if (c->in_len >= msg_limit() + 4u) { /* cannot happen: frame_all refuses first */
			conn_close(c, CONN_CLOSE_TOO_BIG);
			return;
		}
	}
}

/* ---------------------------------------------------------------- events */

static void conn_established(struct conn *c)
{
	c->state = CONN_OPEN;
	c->msg_start_ns = 0;
	conn_flush(c);
}

static void conn_on_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		conn_close(c, CONN_CLOSE_CONNECT);
		return;
	}
	if (c->key.transport != CFG_TRANSPORT_TLS) {
		conn_established(c);
		return;
	}
	c->state = CONN_HANDSHAKE;
	c->msg_start_ns = conn_now_ns(); /* the handshake is bounded by tcp.read_timeout */
}

static void conn_on_handshake(struct conn *c)
{
	bool want_write = false;
	int r = conn_tls_handshake(c, &want_write);
	if (r < 0) {
		conn_close(c, c->outbound ? CONN_CLOSE_CONNECT : CONN_CLOSE_HANDSHAKE);
		return;
	}
	if (r == 0) {
		conn_want_events(c, want_write);
		return;
	}
	conn_established(c);
	if (c->fd >= 0)
		conn_on_readable(c); /* records that came with the last handshake flight */
}

static void conn_on_event(struct conn *c, uint32_t events)
{
	if (c->fd < 0)
		return;
	if (c->state == CONN_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_on_connected(c);
		if (c->fd < 0 || c->state == CONN_CONNECTING)
			return;
	}
	if (c->state == CONN_HANDSHAKE) {
		conn_on_handshake(c);
		return;
	}
	if ((events & EPOLLOUT) && !conn_flush(c))
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_on_readable(c);
}

static bool refuse(int fd, enum conn_refuse_reason why)
{
	conn_count_refuse(why);
	close(fd);
	return false;
}

static void on_accept(struct conn_thread *ct, struct conn_listener *l)
{
	for (int i = 0; i < CONN_ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
				static struct log_limit lim;
				uint64_t sup;
				if (log_limit_pass(&lim, &sup))
					log_warn("conn", "accept failed: %s suppressed=%llu", strerror(errno),
						 (unsigned long long)sup);
			}
			return;
		}
		if (rt_get(&conn_rt.n_open) >= rt_get(&conn_rt.max_connections)) {
			refuse(fd, CONN_REFUSE_MAX_CONNECTIONS);
			continue;
		}
		if (conn_source_acquire(&peer, rt_get(&conn_rt.max_per_source)) < 0) {
			refuse(fd, CONN_REFUSE_MAX_PER_SOURCE);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = conn_new(ct, fd, &peer, len, l->transport, l->listen_idx);
		if (!c) {
			conn_source_release(&peer);
			close(fd);
			continue;
		}
		c->counted_source = true;
		c->state = CONN_OPEN;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(ct->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_close(c, CONN_CLOSE_ERROR);
			continue;
		}
		if (l->transport == CFG_TRANSPORT_TLS) {
			int rc = conn_tls_begin(c, true, NULL);
			if (rc < 0) {
				conn_count_refuse(CONN_REFUSE_NO_TLS_CONTEXT);
				conn_close(c, CONN_CLOSE_HANDSHAKE);
				continue;
			}
			c->state = CONN_HANDSHAKE;
			c->msg_start_ns = c->last_rx_ns; /* bounded by tcp.read_timeout */
		}
		conn_count_accept(l->transport);
		/* a peer with the same address and port twice cannot exist for TCP;
		 * if the key is taken (a stale entry), the connection still works
		 * for what it reads, responses find the older one */
		conn_table_add(c);
	}
}

/* outbound: connect from our listen address (port chosen by the kernel) */
static struct conn *conn_connect(struct conn_thread *ct, const struct conn_item *it)
{
	if (rt_get(&conn_rt.n_open) >= rt_get(&conn_rt.max_connections)) {
		conn_count_refuse(CONN_REFUSE_MAX_CONNECTIONS);
		return NULL;
	}
	int fd = socket(it->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&it->addr, it->addrlen) < 0 && errno != EINPROGRESS) {
		close(fd);
		conn_count_connect_failure((enum cfg_transport)it->key.transport);
		return NULL;
	}
	struct conn *c = conn_new(ct, fd, &it->addr, it->addrlen, (enum cfg_transport)it->key.transport,
				  it->listen_idx);
	if (!c) {
		close(fd);
		return NULL;
	}
	c->outbound = true;
	c->state = CONN_CONNECTING;
	c->msg_start_ns = c->last_rx_ns; /* connect and handshake bounded by tcp.read_timeout */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	c->watching_out = true;
	if (epoll_ctl(ct->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		conn_close(c, CONN_CLOSE_CONNECT);
		return NULL;
	}
	if (c->key.transport == CFG_TRANSPORT_TLS) {
		char ip[INET6_ADDRSTRLEN];
		const char *name = it->tls_name[0] ? it->tls_name : inet_ntop(c->key.family, c->key.addr, ip, sizeof(ip));
		if (!name || conn_tls_begin(c, false, name) < 0) {
			conn_close(c, CONN_CLOSE_CONNECT);
			return NULL;
		}
	}
	conn_table_add(c);
	return c;
}

/* an item from another thread: find (or open) its connection and write */
static void item_send(struct conn_thread *ct, struct conn_item *it)
{
	struct conn *c = conn_table_find(&it->key);
	if (c && c->owner != ct)
		c = NULL; /* it moved to a connection another thread owns: only that one may write */
	if (!c && it->may_connect) {
		c = conn_connect(ct, it);
		if (!c) { /* refused at once (loopback does): the hop answers 503 all the same */
			answer_message(ct, &it->addr, it->addrlen, it->listen_idx, (enum cfg_transport)it->key.transport,
				       it->bytes, it->len);
			return;
		}
	}
	if (!c) {
		conn_count_dropped();
		return;
	}
	conn_write(c, it->bytes, it->len);
}

static void queue_drain(struct conn_thread *ct)
{
	/* acq_rel: clear before draining, so a push after our last pop wakes us again */
	atomic_exchange_explicit(&ct->wake_pending, false, memory_order_acq_rel);
	for (int spins = 0;;) {
		struct conn_item *it = conn_queue_pop(ct);
		if (it) {
			CONN_TSAN_ACQUIRE(it);
			item_send(ct, it);
			free(it);
			continue;
		}
		/* a producer between its exchange and its link: it is a few
		 * instructions from done; look again a bounded number of times,
		 * then come back on the next wakeup or tick */
		if (atomic_load_explicit(&ct->q_count, memory_order_relaxed) == 0 || ++spins > CONN_QUEUE_SPINS)
			break;
		sched_yield();
	}
}

void conn_thread_run(struct conn_thread *ct)
{
	struct epoll_event ev[64];
	rcu_read_lock();
	for (int round = 0; round < 4; round++) {
		int n = epoll_wait(ct->epfd, ev, 64, 0);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			uint8_t kind = *(const uint8_t *)ev[i].data.ptr;
			if (kind == CONN_EV_WAKE) {
				uint64_t v;
				ssize_t r = read(ct->wake_fd, &v, sizeof(v));
				(void)r;
				queue_drain(ct);
			} else if (kind == CONN_EV_LISTENER) {
				on_accept(ct, ev[i].data.ptr);
			} else {
				conn_on_event(ev[i].data.ptr, ev[i].events);
			}
		}
		if (n < 64)
			break;
	}
	conn_rcu_unlock();
	if (ct->host.flush)
		ct->host.flush(ct->host.arg);
}

void conn_thread_tick(struct conn_thread *ct, uint64_t now)
{
	if (now < ct->next_tick_ns)
		return; /* hosts may call it on every loop */
	ct->next_tick_ns = now + CONN_TICK_NS;
	rcu_read_lock();
	queue_drain(ct); /* safety net for an item left by a slow producer */
	if (now >= ct->next_sweep_ns) {
		ct->next_sweep_ns = now + CONN_SWEEP_NS;
		const uint64_t idle = (uint64_t)rt_get(&conn_rt.idle_timeout_s) * 1000000000ull;
		const uint64_t read_to = (uint64_t)rt_get(&conn_rt.read_timeout_s) * 1000000000ull;
		struct conn *next;
		for (struct conn *c = ct->conns; c; c = next) {
			next = c->next;
			if (atomic_load_explicit(&c->doomed, memory_order_relaxed)) {
				conn_count_queue_full(CONN_QFULL_THREAD);
				conn_close(c, CONN_CLOSE_QUEUE_FULL);
			} else if (c->msg_start_ns && now > c->msg_start_ns + read_to) {
				if (c->state == CONN_HANDSHAKE && !c->outbound)
					conn_count_tls_failure(CONN_TLS_FAIL_TIMEOUT);
				conn_close(c, c->state == CONN_OPEN	  ? CONN_CLOSE_READ_TIMEOUT
					      : c->outbound		  ? CONN_CLOSE_CONNECT
									  : CONN_CLOSE_HANDSHAKE);
			} else if (now > c->last_rx_ns + idle && !c->out_head) {
				conn_close(c, CONN_CLOSE_IDLE);
			}
		}
	}
	conn_rcu_unlock();
	if (ct->host.flush)
		ct->host.flush(ct->host.arg); /* 503s of next hops that timed out */
}

/* ---------------------------------------------------------------- drain */

/* what a connection with output waits for while draining */
static short drain_events(const struct conn *c)
{
	if (c->state == CONN_HANDSHAKE && !c->watching_out)
		return POLLIN; /* the TLS handshake waits for the peer's flight */
	return POLLOUT;    /* connect completing, or room to write */
}

/* drive @c toward sending its output: finish a connect or handshake, write */
static void drain_event(struct conn *c)
{
	if (c->state == CONN_CONNECTING) {
		conn_on_connected(c); /* TCP: established, flushed */
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		bool want_write = false;
		int r = conn_tls_handshake(c, &want_write);
		if (r < 0)
			conn_close(c, c->outbound ? CONN_CLOSE_CONNECT : CONN_CLOSE_HANDSHAKE);
		else if (r == 1)
			conn_established(c);
		else
			conn_want_events(c, want_write); /* drain_events reads it back */
		return;
	}
	conn_flush(c);
}

/* connections of @cts holding output, into @pfd/@pc (room for all); their count */
static unsigned drain_pending(struct conn_thread *const *cts, unsigned n, struct pollfd *pfd, struct conn **pc)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++)
		for (struct conn *c = cts[i] ? cts[i]->conns : NULL; c; c = c->next)
			if (c->out_head && c->fd >= 0) {
				pfd[k] = (struct pollfd){ .fd = c->fd, .events = drain_events(c) };
				pc[k++] = c;
			}
	return k;
}

void conn_threads_drain(struct conn_thread *const *cts, unsigned n, uint64_t deadline_ns)
{
	unsigned total = 0;
	rcu_read_lock();
	for (unsigned i = 0; i < n; i++) {
		struct conn_thread *ct = cts[i];
		if (!ct)
			continue;
		conn_thread_stop_accepting(ct);
		/* nobody upstream any more: nothing is read, delivered or answered */
		memset(&ct->host, 0, sizeof(ct->host));
		queue_drain(ct); /* its producers are joined: everything is linked */
		total += ct->n_conns;
	}
	conn_rcu_unlock();
	if (total == 0)
		return;
	/* only closes happen from here on, so the counts above are a bound */
	struct pollfd *pfd = malloc(total * sizeof(*pfd));
	struct conn **pc = malloc(total * sizeof(*pc));
	for (unsigned k; pfd && pc && (k = drain_pending(cts, n, pfd, pc)) > 0;) {
		uint64_t now = conn_now_ns();
		if (now >= deadline_ns)
			break; /* a peer that does not read keeps the rest (closed next) */
		uint64_t left_ms = (deadline_ns - now) / 1000000u + 1;
		if (poll(pfd, k, (int)(left_ms < 50 ? left_ms : 50)) < 0 && errno != EINTR)
			break;
		rcu_read_lock(); /* what closes here is freed after this section */
		for (unsigned j = 0; j < k; j++)
			if (pfd[j].revents && pc[j]->fd >= 0)
				drain_event(pc[j]);
		conn_rcu_unlock();
	}
	free(pfd);
	free(pc);
}

/* ---------------------------------------------------------------- any thread */

int conn_send(const struct conn_dest *d, const void *buf, size_t len)
{
	if (len == 0 || len > CONN_OUT_MAX)
		return -EMSGSIZE;
	struct conn_key k;
	conn_key_from_sa(d->addr, d->transport, &k);
	struct conn_thread *owner = NULL;
	rcu_read_lock();
	struct conn *c = conn_table_find(&k);
	if (!c && !d->may_connect) {
		/* a response: the Via may name TCP for what is TLS to us (a client
		 * behind a TLS tunnel); a peer address and port is one connection */
		k.transport = d->transport == CFG_TRANSPORT_TLS ? CFG_TRANSPORT_TCP : CFG_TRANSPORT_TLS;
		c = conn_table_find(&k);
	}
	if (c && c->owner == conn_self) {
		int rc = conn_write(c, buf, len);
		conn_rcu_unlock();
		return rc;
	}
	if (c)
		owner = c->owner;
	else if (d->may_connect && conn_rt.n_threads > 0)
		owner = conn_self ? conn_self /* opens it where the request is: no hop */
				  : conn_rt.threads[slice_hash(slice_make((const char *)&k, sizeof(k))) % conn_rt.n_threads];
	if (!owner) {
		conn_rcu_unlock();
		conn_count_dropped();
		return -ENOTCONN;
	}
	if (owner == conn_self) { /* may_connect, none open: open it here */
		struct conn_item it = { .key = k, .addrlen = d->addrlen, .listen_idx = d->listen_idx, .may_connect = true };
		memcpy(&it.addr, d->addr, d->addrlen);
		if (d->tls_name)
			snprintf(it.tls_name, sizeof(it.tls_name), "%s", d->tls_name);
		c = conn_connect(owner, &it);
		if (!c) /* refused at once: the hop answers 503 all the same */
			answer_message(owner, d->addr, d->addrlen, d->listen_idx, d->transport, buf, (uint32_t)len);
		int rc = c ? conn_write(c, buf, len) : -ECONNREFUSED;
		conn_rcu_unlock();
		return rc;
	}
	struct conn_item *it = malloc(sizeof(*it) + len);
	if (!it) {
		conn_rcu_unlock();
		return -ENOMEM;
	}
	it->key = k;
	memcpy(&it->addr, d->addr, d->addrlen);
	it->addrlen = d->addrlen;
	it->listen_idx = d->listen_idx;
	it->may_connect = d->may_connect;
	it->tls_name[0] = '\0';
	if (d->tls_name)
		snprintf(it->tls_name, sizeof(it->tls_name), "%s", d->tls_name);
	it->len = (uint32_t)len;
	memcpy(it->bytes, buf, len);
	CONN_TSAN_RELEASE(it);
	if (!conn_queue_push(owner, it)) {
		free(it);
		if (c) /* this connection's thread cannot keep up: close it (its owner does) */
			atomic_store_explicit(&c->doomed, true, memory_order_relaxed);
		conn_rcu_unlock();
		conn_count_queue_full(CONN_QFULL_THREAD);
		conn_thread_wake(owner);
		return -ENOBUFS;
	}
	conn_rcu_unlock();
	conn_thread_wake(owner);
	return 0;
}

unsigned conn_count_open(void)
{
	return rt_get(&conn_rt.n_open);
}

/* ---------------------------------------------------------------- setup */

static int listener_open(struct conn_listener *l, const struct cfg_addr *a, unsigned idx)
{
	l->kind = CONN_EV_LISTENER;
	l->listen_idx = (uint16_t)idx;
	l->transport = a->transport;
	l->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l->fd, (const struct sockaddr *)&a->sa, a->salen) < 0 || listen(l->fd, 1024) < 0) {
		int err = -errno;
		close(l->fd);
		l->fd = -1;
		return err;
	}
	return 0;
}

struct conn_thread *conn_thread_new(unsigned id, const struct cfg *c, const struct conn_host *host, int *err)
{
	struct conn_thread *ct = aligned_alloc(64, (sizeof(*ct) + 63) & ~(size_t)63);
	if (!ct) {
		*err = -ENOMEM;
		return NULL;
	}
	memset(ct, 0, sizeof(*ct));
	ct->id = id;
	ct->host = *host;
	ct->wake_kind = CONN_EV_WAKE;
	conn_queue_init(ct);
	ct->scratch = malloc(CONN_SCRATCH);
	ct->scratch_reply = malloc(CONN_MSG_MAX);
	ct->epfd = epoll_create1(EPOLL_CLOEXEC);
	ct->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (unsigned i = 0; i < CFG_MAX_LISTEN; i++)
		ct->listeners[i].fd = -1;
	*err = (!ct->scratch || !ct->scratch_reply) ? -ENOMEM : (ct->epfd < 0 || ct->wake_fd < 0) ? -errno : 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ct->wake_kind };
	if (*err == 0 && epoll_ctl(ct->epfd, EPOLL_CTL_ADD, ct->wake_fd, &ev) < 0)
		*err = -errno;
	for (unsigned i = 0; i < c->n_listen && *err == 0; i++) {
		if (c->listen[i].transport == CFG_TRANSPORT_UDP)
			continue;
		struct conn_listener *l = &ct->listeners[ct->n_listeners];
		*err = listener_open(l, &c->listen[i], i);
		if (*err < 0) {
			log_error("conn", "cannot listen on %s://%s: %s", cfg_transport_name(c->listen[i].transport),
				  c->listen[i].text, strerror(-*err));
			break;
		}
		ct->n_listeners++;
		struct epoll_event lev = { .events = EPOLLIN, .data.ptr = l };
		if (epoll_ctl(ct->epfd, EPOLL_CTL_ADD, l->fd, &lev) < 0)
			*err = -errno;
	}
	if (*err == 0 && id < CONN_MAX_THREADS) {
		conn_rt.threads[id] = ct;
		if (id >= conn_rt.n_threads)
			conn_rt.n_threads = id + 1;
	}
	if (*err < 0) {
		conn_thread_free(ct);
		return NULL;
	}
	return ct;
}

void conn_thread_stop_accepting(struct conn_thread *ct)
{
	for (unsigned i = 0; i < ct->n_listeners; i++) {
		if (ct->listeners[i].fd < 0)
			continue;
		epoll_ctl(ct->epfd, EPOLL_CTL_DEL, ct->listeners[i].fd, NULL);
		close(ct->listeners[i].fd);
		ct->listeners[i].fd = -1;
	}
}

void conn_thread_free(struct conn_thread *ct)
{
	if (!ct)
		return;
	rcu_read_lock();
	while (ct->conns)
		conn_close(ct->conns, CONN_CLOSE_SHUTDOWN);
	conn_rcu_unlock();
	struct conn_item *it;
	while ((it = conn_queue_pop(ct)) != NULL)
		free(it);
	conn_thread_stop_accepting(ct);
	if (ct->id < CONN_MAX_THREADS && conn_rt.threads[ct->id] == ct)
		conn_rt.threads[ct->id] = NULL;
	if (ct->epfd >= 0)
		close(ct->epfd);
	if (ct->wake_fd >= 0)
		close(ct->wake_fd);
	free(ct->scratch);
	free(ct->scratch_reply);
	free(ct);
}

void conn_thread_attach(struct conn_thread *ct)
{
	conn_self = ct;
	ct->next_sweep_ns = conn_now_ns() + CONN_SWEEP_NS;
}

int conn_thread_pollfd(const struct conn_thread *ct)
{
	return ct->epfd;
}

/* ---------------------------------------------------------------- runtime */

void conn_runtime_reconfigure(const struct cfg *c)
{
	atomic_store_explicit(&conn_rt.max_connections, c->tcp.max_connections, memory_order_relaxed);
	atomic_store_explicit(&conn_rt.max_per_source, c->tcp.max_per_source, memory_order_relaxed);
	atomic_store_explicit(&conn_rt.idle_timeout_s, c->tcp.idle_timeout, memory_order_relaxed);
	atomic_store_explicit(&conn_rt.read_timeout_s, c->tcp.read_timeout, memory_order_relaxed);
	atomic_store_explicit(&conn_rt.max_message, c->tcp.max_message, memory_order_relaxed);
	conn_tls_names_publish(c);
}

int conn_runtime_start(const struct cfg *c, unsigned n_threads)
{
	if (n_threads > CONN_MAX_THREADS)
		return -EINVAL;
	/* OpenSSL writes to its sockets with write(2): a peer that went away
	 * must be an EPIPE for that connection, never a signal that kills us */
	signal(SIGPIPE, SIG_IGN);
	conn_metrics_register();
	int rc = conn_table_init();
	if (rc < 0)
		return rc;
	conn_rt.n_threads = 0;
	atomic_init(&conn_rt.n_open, 0);
	conn_runtime_reconfigure(c);
	return 0;
}

void conn_runtime_stop(void)
{
	rcu_barrier(); /* every conn_free_rcu has run */
	conn_tls_names_publish(NULL);
	conn_table_fini();
	conn_rt.n_threads = 0;
}
