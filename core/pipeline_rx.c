/* pipeline_rx.c - the receive hot path (SPEC §1, §7): recvmmsg a batch into
 * pool txns, parse each once (txn_received), stage it for its worker, push
 * the batch into the rings and wake each sleeping worker once; plus the
 * receiver's setup (pool, big slab, its sockets from pipeline_socket.c) and its thread.
 *
 * Which worker: no Call-ID affinity. A stateless proxy keeps no dialog state
 * in a thread (users, nonce counts and grants are shared lock-free tables);
 * what must meet again on one worker is a request and its retransmissions
 * (auth_retx's per-thread table), and those come from one source, which
 * SO_REUSEPORT always hands to the same socket. So a receiver feeds its own
 * worker when there are as many of each (receiver i -> worker i: one ring,
 * one wakeup per batch), else the worker of a hash of the source address and
 * port. bench/README.md has the measurements behind the choice.
 *
 * Datagrams fit the txn's TXN_RX_INLINE bytes; a larger one spills (second
 * iovec) into a TXN_RX_MAX buffer of the receiver's big slab, which the txn
 * keeps (t->rx_big) until it comes back. No allocation, lock or extra
 * syscall per message. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "conn.h"
#include "log.h"
#include "pipeline_rx.h"
#include "pipeline_socket.h"
#include "sip.h"

void rx_consumer_wake(struct rx_consumer *c)
{
	uint64_t one = 1;
	ssize_t n = write(c->efd, &one, sizeof(one));
	(void)n; /* EAGAIN only when the counter is saturated: already awake */
}

/* ---------------------------------------------------------------- worker choice */

static unsigned rx_pick(const struct receiver *rx, const struct txn *t)
{
	if (rx->paired)
		return rx->id;
	/* address and port: a source is one client (or one NAT binding) */
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&t->src;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&t->src;
	const struct slice key = t->src.ss_family == AF_INET6
					 ? slice_make((const char *)&a6->sin6_addr, sizeof(a6->sin6_addr))
					 : slice_make((const char *)&a4->sin_addr, sizeof(a4->sin_addr));
	const uint16_t port = t->src.ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port;
	return (unsigned)((slice_hash(key) ^ port) % rx->n_workers);
}

/* ---------------------------------------------------------------- the hot path */

/* @t is free again: its big buffer (if any) goes back to the slab */
static void rx_txn_free(struct receiver *rx, struct txn *t)
{
	if (t->rx_big) {
		rx->big_free[rx->n_big_free++] = t->rx_big;
		t->rx_big = NULL;
	}
	rx->free_txns[rx->n_free++] = t;
}

/* take back the txns workers are done with (and the big buffers they held) */
static void rx_refill(struct receiver *rx)
{
	for (unsigned w = 0; w < rx->n_workers; w++) {
		unsigned n = ring_pop_batch(rx->from_worker[w], rx->free_txns + rx->n_free,
					    PIPELINE_POOL_TXNS - rx->n_free);
		for (unsigned i = 0; i < n; i++) {
			struct txn *t = rx->free_txns[rx->n_free + i];
			if (t->rx_big) {
				rx->big_free[rx->n_big_free++] = t->rx_big;
				t->rx_big = NULL;
			}
		}
		rx->n_free += n;
	}
}

char *rx_big_take(struct receiver *rx)
{
	if (rx->n_big_free == 0)
		rx_refill(rx);
	return rx->n_big_free ? rx->big_free[--rx->n_big_free] : NULL;
}

void rx_big_give(struct receiver *rx, char *buf)
{
	rx->big_free[rx->n_big_free++] = buf;
}

/* the pool is empty: read and count what waits in the socket */
static int rx_discard(struct receiver *rx, int fd)
{
	struct mmsghdr msgs[PIPELINE_RX_BATCH];
	struct iovec iov = { .iov_base = rx->scratch->rx, .iov_len = sizeof(rx->scratch->rx) };
	for (unsigned j = 0; j < PIPELINE_RX_BATCH; j++)
		msgs[j] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
	int n = recvmmsg(fd, msgs, PIPELINE_RX_BATCH, MSG_DONTWAIT, NULL);
	if (n > 0)
		metrics_add(pipeline_metrics.rx_drops + PIPELINE_DROP_POOL_EMPTY, (uint64_t)n);
	return n;
}

/* push the staged txns and wake sleeping workers (at most one write each) */
static void rx_push(struct receiver *rx)
{
	bool pushed_any = false;
	for (unsigned w = 0; w < rx->n_workers; w++) {
		unsigned n = rx->n_staged[w];
		if (n == 0)
			continue;
		unsigned ok = ring_push_batch(rx->to_worker[w], rx->staged[w], n);
		if (ok < n) {
			metrics_add(pipeline_metrics.queue_drops + pipeline_worker_label(w), n - ok);
			for (unsigned i = ok; i < n; i++)
				rx_txn_free(rx, rx->staged[w][i]);
		}
		pushed_any |= ok > 0;
		rx->n_staged[w] = ok; /* remember who got something, for the wakeup below */
	}
	if (!pushed_any)
		return;
	for (unsigned w = 0; w < rx->n_workers; w++) {
		if (rx->n_staged[w] == 0)
			continue;
		rx->n_staged[w] = 0;
		struct rx_consumer *c = rx->consumer[w];
		/* seq_cst load: after our seq_cst tail store (ring_push_batch) in the
		 * total order; pairs with the consumer's seq_cst store of `sleeping`
		 * (see struct rx_consumer). The exchange picks the one writer. */
		if (atomic_load_explicit(&c->sleeping, memory_order_seq_cst) &&
		    atomic_exchange_explicit(&c->sleeping, false, memory_order_relaxed))
			rx_consumer_wake(c);
	}
}

/* stage @t for its worker; returns that worker's index */
static unsigned rx_accept(struct receiver *rx, struct txn *t, const char *buf, unsigned listen_idx, uint64_t now)
{
	t->listen_idx = (uint16_t)listen_idx;
	t->rx_ns = now;
	if (txn_received(t, buf, t->rx_len) >= 0) {
		if (t->msg.is_request)
			metrics_inc(pipeline_metrics.requests +
				    (t->msg.method_id < SIP_METHOD_COUNT ? t->msg.method_id : 0));
		else
			metrics_inc(pipeline_metrics.responses);
	}
	unsigned w = rx_pick(rx, t);
	rx->staged[w][rx->n_staged[w]++] = t;
	return w;
}

void rx_stream(struct receiver *rx, const struct conn_msg *m)
{
	if (rx->n_free == 0)
		rx_refill(rx);
	const bool big = m->len > TXN_RX_INLINE;
	if (rx->n_free == 0 || m->len > TXN_RX_MAX || (big && rx->n_big_free == 0)) {
		metrics_inc(pipeline_metrics.rx_drops +
			    (m->len > TXN_RX_MAX ? PIPELINE_DROP_TRUNCATED : PIPELINE_DROP_POOL_EMPTY));
		return;
	}
	struct txn *t = rx->free_txns[--rx->n_free];
	t->owner = rx;
	t->rx_big = big ? rx->big_free[--rx->n_big_free] : NULL;
	char *buf = big ? t->rx_big : t->rx;
	memcpy(buf, m->buf, m->len);
	t->rx_len = m->len;
	memcpy(&t->src, m->peer, m->peerlen);
	t->srclen = m->peerlen;
	t->rx_transport = m->transport;
	t->rx_trusted_name = m->trusted_name;
	if (rx->n_staged[rx_accept(rx, t, buf, m->listen_idx, pipeline_now_ns())] == PIPELINE_RX_BATCH)
		rx_push(rx);
}

void rx_stream_flush(struct receiver *rx)
{
	rx_push(rx);
}

int rx_read(struct receiver *rx, unsigned i, bool *full)
{
	struct mmsghdr msgs[PIPELINE_RX_BATCH];
	struct iovec iov[PIPELINE_RX_BATCH][2];
	char *spare[PIPELINE_RX_BATCH];
	if (rx->fds[i] < 0)
		return 0; /* not a UDP listen address */
	rx_refill(rx);
	/* as many slots as the last reads needed (each costs a header setup per
	 * read even when one datagram comes): grows to the batch while reads come
	 * back full, shrinks when they do not */
	unsigned k = rx->n_free < rx->batch ? rx->n_free : rx->batch;
	if (k == 0) {
		int n = rx_discard(rx, rx->fds[i]);
		*full |= n > 0;
		return n;
	}
	void **top = rx->free_txns + rx->n_free - k;
	/* one big buffer per slot while they last: the tail of a large datagram */
	unsigned n_spare = k < rx->n_big_free ? k : rx->n_big_free;
	rx->n_big_free -= n_spare;
	for (unsigned j = 0; j < k; j++) {
		struct txn *t = top[j];
		/* here, not at setup: an unused txn's pages stay untouched */
		t->owner = rx;
		t->rx_big = NULL; /* a free txn holds no big buffer */
		iov[j][0] = (struct iovec){ .iov_base = t->rx, .iov_len = TXN_RX_INLINE };
		spare[j] = j < n_spare ? rx->big_free[rx->n_big_free + j] : NULL;
		if (spare[j])
			iov[j][1] = (struct iovec){ .iov_base = spare[j] + TXN_RX_INLINE,
						    .iov_len = TXN_RX_MAX - TXN_RX_INLINE };
		msgs[j] = (struct mmsghdr){ .msg_hdr = { .msg_name = &t->src, .msg_namelen = sizeof(t->src),
							 .msg_iov = iov[j], .msg_iovlen = spare[j] ? 2 : 1 } };
	}
	int n = recvmmsg(rx->fds[i], msgs, k, MSG_DONTWAIT, NULL);
	*full |= n == (int)k;
	if (n == (int)k && rx->batch < PIPELINE_RX_BATCH)
		rx->batch = rx->batch * 2 < PIPELINE_RX_BATCH ? rx->batch * 2 : PIPELINE_RX_BATCH;
	else if (n < (int)k / 2 && rx->batch > PIPELINE_RX_BATCH_MIN)
		rx->batch /= 2;
	if (n <= 0) {
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			static struct log_limit lim;
			uint64_t sup;
			if (log_limit_pass(&lim, &sup))
				log_warn("receiver", "recvmmsg failed: %s suppressed=%llu", strerror(errno),
					 (unsigned long long)sup);
		}
		n = 0;
	}
	/* the first n entries of top[] are taken; keep the unused ones on the stack */
	void *taken[PIPELINE_RX_BATCH];
	memcpy(taken, top, (size_t)n * sizeof(*taken));
	memmove(top, top + n, (k - (unsigned)n) * sizeof(*top));
	rx->n_free -= (unsigned)n;
	uint64_t now = n > 0 ? pipeline_now_ns() : 0;
	for (int j = 0; j < n; j++) {
		struct txn *t = taken[j];
		if (msgs[j].msg_hdr.msg_flags & MSG_TRUNC) {
			metrics_inc(pipeline_metrics.rx_drops + PIPELINE_DROP_TRUNCATED);
			rx->free_txns[rx->n_free++] = t;
			continue;
		}
		t->rx_len = msgs[j].msg_len;
		t->srclen = msgs[j].msg_hdr.msg_namelen;
		t->rx_transport = CFG_TRANSPORT_UDP;
		t->rx_trusted_name = false;
		const char *buf = t->rx;
		if (t->rx_len > TXN_RX_INLINE) {
			/* the head landed in the txn, the tail in the spare: join them there */
			memcpy(spare[j], t->rx, TXN_RX_INLINE);
			t->rx_big = spare[j];
			spare[j] = NULL;
			buf = t->rx_big;
		}
		rx_accept(rx, t, buf, i, now);
	}
	for (unsigned j = 0; j < n_spare; j++)
		if (spare[j])
			rx->big_free[rx->n_big_free++] = spare[j];
	if (n > 0)
		rx_push(rx);
	return n;
}

void *rx_thread_main(void *arg)
{
	struct receiver *rx = arg;
	struct pollfd pfd[CFG_MAX_LISTEN + 2];
	if (metrics_thread_init() < 0)
		log_warn("receiver", "no metrics shard left: counting on the shared one id=%u", rx->id);
	for (unsigned i = 0; i < rx->n_listen; i++)
		pfd[i] = (struct pollfd){ .fd = rx->fds[i], .events = POLLIN };
	pfd[rx->n_listen] = (struct pollfd){ .fd = rx->stop_efd, .events = POLLIN };
	unsigned n_pfd = rx->n_listen + 1;
	if (rx->conn) { /* stream connections: this thread owns them (conn.h) */
		rcu_register_thread();
		conn_thread_attach(rx->conn);
		pfd[n_pfd++] = (struct pollfd){ .fd = conn_thread_pollfd(rx->conn), .events = POLLIN };
	}
	/* relaxed: stop_efd makes poll return; the flag itself orders nothing */
	while (!atomic_load_explicit(rx->stop, memory_order_relaxed)) {
		/* a short batch drained the socket: sleep in poll (level-triggered,
		 * so a datagram that arrived since wakes it at once) instead of
		 * paying another recvmmsg that would find nothing */
		bool full = false;
		for (unsigned i = 0; i < rx->n_listen; i++)
			rx_read(rx, i, &full);
		if (rx->conn) {
			conn_thread_run(rx->conn);
			conn_thread_tick(rx->conn, pipeline_now_ns());
		}
		if (!full && poll(pfd, n_pfd, rx->conn ? 100 : -1) < 0 && errno != EINTR)
			break;
	}
	if (rx->conn)
		rcu_unregister_thread();
	return NULL;
}

/* ---------------------------------------------------------------- setup */

void rx_init(struct receiver *rx)
{
	memset(rx, 0, sizeof(*rx));
	for (unsigned i = 0; i < CFG_MAX_LISTEN; i++)
		rx->fds[i] = -1;
}

int rx_setup(struct receiver *rx, unsigned id, unsigned n_workers, unsigned n_listen,
	     struct cfg_addr *listen, struct rx_consumer *const *consumers)
{
	rx->id = id;
	rx->batch = PIPELINE_RX_BATCH_MIN;
	rx->n_workers = n_workers;
	rx->n_listen = n_listen;
	size_t bytes = ((size_t)PIPELINE_POOL_TXNS + 1) * sizeof(struct txn);
	rx->pool = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	rx->free_txns = calloc(PIPELINE_POOL_TXNS, sizeof(*rx->free_txns));
	rx->big_slab = malloc((size_t)PIPELINE_BIG_BUFS * TXN_RX_MAX);
	rx->big_free = calloc(PIPELINE_BIG_BUFS, sizeof(*rx->big_free));
	if (!rx->pool || !rx->free_txns || !rx->big_slab || !rx->big_free)
		return -ENOMEM;
	/* only the pointers are written: the pool's pages stay untouched until used */
	rx->scratch = rx->pool + PIPELINE_POOL_TXNS;
	for (unsigned i = 0; i < PIPELINE_POOL_TXNS; i++)
		rx->free_txns[rx->n_free++] = &rx->pool[PIPELINE_POOL_TXNS - 1 - i];
	for (unsigned i = 0; i < PIPELINE_BIG_BUFS; i++)
		rx->big_free[rx->n_big_free++] = rx->big_slab + (size_t)i * TXN_RX_MAX;
	for (unsigned w = 0; w < n_workers; w++) {
		rx->consumer[w] = consumers[w];
		rx->to_worker[w] = ring_new(PIPELINE_RING_SLOTS);
		rx->from_worker[w] = ring_new(PIPELINE_POOL_TXNS);
		if (!rx->to_worker[w] || !rx->from_worker[w])
			return -ENOMEM;
	}
	for (unsigned i = 0; i < n_listen; i++) {
		if (listen[i].transport != CFG_TRANSPORT_UDP)
			continue; /* stream listeners: core/conn_*.c (fds[i] stays -1) */
		rx->fds[i] = pipeline_udp_socket(&listen[i]);
		if (rx->fds[i] < 0) {
			int err = rx->fds[i];
			log_error("pipeline", "cannot listen on %s: %s", listen[i].text, strerror(-err));
			return err;
		}
	}
	return 0;
}

void rx_cleanup(struct receiver *rx)
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
	free(rx->big_slab);
	free(rx->big_free);
}
