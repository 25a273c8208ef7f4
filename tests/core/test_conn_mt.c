/* test_conn_mt.c - TCP connections owned by threads (core/conn_*.c, SPEC §9):
 * messages split and coalesced over many connections, answered from another
 * thread through the owner's queue; keepalive; 400 and close without
 * Content-Length; oversize close; per-source and total limits; read and idle
 * timeouts; outbound connects; the cross-thread queue bound; concurrent
 * table lookups while connections open and close; and the drain: what was
 * queued for a connection after its owner stopped still reaches the peer,
 * bounded for a peer that does not read. Named _mt: runs under TSan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conn_fixture.h"
#include "conn_priv.h"

static struct cfg *cfg_make(uint16_t port, unsigned per_source, unsigned read_to, unsigned idle)
{
	struct cfg *c = calloc(1, sizeof(*c));
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	assert_int_equal(cfg_addr_parse(url, true, &c->listen[0]), 0);
	c->n_listen = 1;
	c->tcp.max_connections = 1000;
	c->tcp.max_per_source = per_source;
	c->tcp.read_timeout = read_to;
	c->tcp.idle_timeout = idle;
	c->tcp.max_message = 4096;
	return c;
}

static int64_t closed(enum conn_close_reason why)
{
	return metrics_value(conn_rt.m.closed + why);
}

#define N_CLIENTS 8
#define N_MSGS 40

static const char *msg_fmt = "MESSAGE sip:b@example.com SIP/2.0\r\nCall-ID: c%u-%u\r\nContent-Length: %u\r\n\r\n%s";

static void test_echo_split_and_coalesced(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, 64, 10, 600);
	fx_start(c);
	int fds[N_CLIENTS];
	for (unsigned k = 0; k < N_CLIENTS; k++) {
		char src[32];
		snprintf(src, sizeof(src), "127.0.0.%u", 10 + k);
		fds[k] = fx_connect(port, src);
		assert_true(fds[k] >= 0);
	}
	/* every client writes its messages as one stream cut into uneven pieces */
	static char stream[N_CLIENTS][N_MSGS * 200];
	size_t len[N_CLIENTS] = { 0 };
	for (unsigned k = 0; k < N_CLIENTS; k++)
		for (unsigned i = 0; i < N_MSGS; i++) {
			const char *body = (i % 3) ? "hello" : "";
			len[k] += (size_t)sprintf(stream[k] + len[k], msg_fmt, k, i, (unsigned)strlen(body), body);
		}
	size_t pos[N_CLIENTS] = { 0 };
	for (unsigned round = 0;; round++) {
		bool any = false;
		for (unsigned k = 0; k < N_CLIENTS; k++) {
			if (pos[k] >= len[k])
				continue;
			size_t piece = 1 + (round * 37 + k * 11) % 300;
			if (piece > len[k] - pos[k])
				piece = len[k] - pos[k];
			assert_int_equal(send(fds[k], stream[k] + pos[k], piece, 0), (ssize_t)piece);
			pos[k] += piece;
			any = true;
		}
		if (!any)
			break;
		if (round % 16 == 0)
			usleep(1000);
	}
	for (unsigned k = 0; k < N_CLIENTS; k++) {
		static char in[N_MSGS * 260];
		size_t want = 0;
		for (unsigned i = 0; i < N_MSGS; i++) {
			char one[256];
			const char *body = (i % 3) ? "hello" : "";
			int n = sprintf(one, msg_fmt, k, i, (unsigned)strlen(body), body);
			want += (size_t)snprintf(NULL, 0, "ECHO %d\r\n", n) + (size_t)n;
		}
		size_t got = fx_read_until(fds[k], in, sizeof(in), want);
		if (got != want)
			fail_msg("client %u: %zu of %zu bytes", k, got, want);
		/* order is kept per connection: message i of client k is the i-th echo */
		char needle[32];
		snprintf(needle, sizeof(needle), "Call-ID: c%u-%u\r", k, N_MSGS - 1);
		assert_non_null(strstr(in, needle));
		snprintf(needle, sizeof(needle), "Call-ID: c%u-0\r", k);
		assert_true(strstr(in, needle) < strstr(in, "-1\r"));
		close(fds[k]);
	}
	assert_int_equal(atomic_load(&fx.delivered), N_CLIENTS * N_MSGS);
	FX_WAIT(conn_count_open() == 0);
	assert_int_equal(conn_count_open(), 0);
	fx_stop();
	free(c);
}

static void test_framing_errors(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, 64, 10, 600);
	fx_start(c);
	const int64_t bad0 = closed(CONN_CLOSE_BAD_FRAMING), big0 = closed(CONN_CLOSE_TOO_BIG);
	/* keepalive: CRLFCRLF gets CRLF, the connection stays */
	int fd = fx_connect(port, NULL);
	assert_int_equal(send(fd, "\r\n\r\n", 4, 0), 4);
	char buf[512];
	assert_int_equal(fx_read_until(fd, buf, 2, 2), 2);
	assert_memory_equal(buf, "\r\n", 2);
	/* no Content-Length: 400, then closed */
	static const char no_cl[] = "MESSAGE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\nbody";
	assert_int_equal(send(fd, no_cl, sizeof(no_cl) - 1, 0), (ssize_t)sizeof(no_cl) - 1);
	size_t n = fx_read_until(fd, buf, sizeof(buf) - 1, 12);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "SIP/2.0 400"));
	assert_true(fx_eof(fd));
	close(fd);
	/* oversize (max_message 4096): closed, counted */
	fd = fx_connect(port, NULL);
	static char big[6000];
	int hl = sprintf(big, "MESSAGE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n");
	memset(big + hl, 'x', sizeof(big) - (size_t)hl);
	send(fd, big, sizeof(big), MSG_NOSIGNAL);
	assert_true(fx_eof(fd));
	close(fd);
	FX_WAIT(closed(CONN_CLOSE_BAD_FRAMING) == bad0 + 1 && closed(CONN_CLOSE_TOO_BIG) == big0 + 1);
	assert_int_equal(closed(CONN_CLOSE_BAD_FRAMING), bad0 + 1);
	assert_int_equal(closed(CONN_CLOSE_TOO_BIG), big0 + 1);
	fx_stop();
	free(c);
}

static void test_limits_and_timeouts(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, 4, 1, 2);
	fx_start(c);
	const int64_t refused0 = metrics_value(conn_rt.m.refused + CONN_REFUSE_MAX_PER_SOURCE);
	const int64_t slow0 = closed(CONN_CLOSE_READ_TIMEOUT), idle0 = closed(CONN_CLOSE_IDLE);
	int fds[6];
	for (int i = 0; i < 6; i++)
		fds[i] = fx_connect(port, "127.0.0.99");
	FX_WAIT(metrics_value(conn_rt.m.refused + CONN_REFUSE_MAX_PER_SOURCE) == refused0 + 2);
	assert_int_equal(metrics_value(conn_rt.m.refused + CONN_REFUSE_MAX_PER_SOURCE), refused0 + 2);
	/* another source is not limited by that one */
	int other = fx_connect(port, "127.0.0.98");
	/* a slow sender: a started message not finished within read_timeout (1 s) */
	static const char part[] = "MESSAGE sip:a SIP/2.0\r\nCall-ID: slow\r\n";
	assert_int_equal(send(other, part, sizeof(part) - 1, 0), (ssize_t)sizeof(part) - 1);
	assert_true(fx_eof(other));
	close(other);
	FX_WAIT(closed(CONN_CLOSE_READ_TIMEOUT) == slow0 + 1);
	assert_int_equal(closed(CONN_CLOSE_READ_TIMEOUT), slow0 + 1);
	/* the accepted ones of 127.0.0.99 go idle (2 s) and are closed */
	for (int i = 0; i < 6; i++) {
		assert_true(fx_eof(fds[i]));
		close(fds[i]);
	}
	FX_WAIT(closed(CONN_CLOSE_IDLE) == idle0 + 4);
	assert_int_equal(closed(CONN_CLOSE_IDLE), idle0 + 4);
	fx_stop();
	free(c);
}

/* a next hop that listens: the worker thread's conn_send opens the connection */
static void test_outbound_connect(void **state)
{
	(void)state;
	uint16_t port = fx_free_port(), hop_port = fx_free_port();
	struct cfg *c = cfg_make(port, 64, 10, 600);
	fx_start(c);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in hop = { .sin_family = AF_INET, .sin_port = htons(hop_port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(lfd, (struct sockaddr *)&hop, sizeof(hop)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	rcu_register_thread();
	struct sockaddr_storage dst;
	memcpy(&dst, &hop, sizeof(hop));
	struct conn_dest d = { .addr = &dst, .addrlen = sizeof(hop), .transport = CFG_TRANSPORT_TCP };
	assert_int_equal(conn_send(&d, "X", 1), -ENOTCONN); /* a response: never opens one */
	d.may_connect = true;
	static const char req[] = "OPTIONS sip:hop SIP/2.0\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(conn_send(&d, req, sizeof(req) - 1), 0);
	assert_int_equal(conn_send(&d, req, sizeof(req) - 1), 0);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(afd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[256];
	assert_int_equal(fx_read_until(afd, buf, sizeof(buf), 2 * (sizeof(req) - 1)), 2 * (sizeof(req) - 1));
	/* the next hop answers over the same connection: delivered like any message */
	const unsigned before = atomic_load(&fx.delivered);
	static const char resp[] = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(send(afd, resp, sizeof(resp) - 1, 0), (ssize_t)sizeof(resp) - 1);
	FX_WAIT(atomic_load(&fx.delivered) == before + 1);
	assert_int_equal(atomic_load(&fx.delivered), before + 1);
	assert_true(conn_is_up(&dst, CFG_TRANSPORT_TCP));
	/* a next hop nobody listens on: connect fails, each queued request gets its 503 upstream */
	struct sockaddr_in dead = hop;
	dead.sin_port = htons(fx_free_port());
	struct sockaddr_storage dead_ss;
	memcpy(&dead_ss, &dead, sizeof(dead));
	struct conn_dest dd = { .addr = &dead_ss, .addrlen = sizeof(dead), .transport = CFG_TRANSPORT_TCP,
				.may_connect = true };
	const unsigned u0 = atomic_load(&fx_unsent_503), d0 = atomic_load(&fx.delivered);
	const int64_t cf0 = metrics_value(conn_rt.m.connect_failures + CFG_TRANSPORT_TCP);
	assert_int_equal(conn_send(&dd, req, sizeof(req) - 1), 0);
	assert_int_equal(conn_send(&dd, req, sizeof(req) - 1), 0);
	FX_WAIT(atomic_load(&fx.delivered) == d0 + 2);
	assert_int_equal(atomic_load(&fx_unsent_503), u0 + 2);
	assert_int_equal(atomic_load(&fx.delivered), d0 + 2);
	/* one or two attempts: the second send may find the first connection already gone */
	assert_true(metrics_value(conn_rt.m.connect_failures + CFG_TRANSPORT_TCP) >= cf0 + 1);
	rcu_unregister_thread();
	close(afd);
	close(lfd);
	fx_stop();
	free(c);
}

static void test_queue_bound(void **state)
{
	(void)state;
	struct conn_thread *ct = aligned_alloc(64, (sizeof(*ct) + 63) & ~(size_t)63);
	memset(ct, 0, sizeof(*ct));
	conn_queue_init(ct);
	for (unsigned i = 0; i < CONN_QUEUE_MAX; i++) {
		struct conn_item *it = calloc(1, sizeof(*it));
		it->len = i;
		assert_true(conn_queue_push(ct, it));
	}
	struct conn_item extra;
	assert_false(conn_queue_push(ct, &extra));
	for (unsigned i = 0; i < CONN_QUEUE_MAX; i++) {
		struct conn_item *it = conn_queue_pop(ct);
		assert_non_null(it);
		assert_int_equal(it->len, i); /* FIFO */
		free(it);
	}
	assert_null(conn_queue_pop(ct));
	free(ct);
}

/* ---------------------------------------------------------------- drain */

#define DRAIN_BYTES (480u * 1024u) /* far more than the small windows below hold */

/* a client whose receive buffer is small, so the server's output backs up */
static int connect_small_window(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int small = 4096;
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* a running fixture and a small-window client *@fd known to the server (one
 * echo back); then the owners stop and DRAIN_BYTES are sent to the client
 * from this thread: they can only wait in the owner's queue */
static struct cfg *queue_after_owners_stopped(int *fdp)
{
	const uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, 64, 10, 600);
	fx_start(c);
	int fd = *fdp = connect_small_window(port);
	static const char m[] = "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(send(fd, m, sizeof(m) - 1, 0), (ssize_t)sizeof(m) - 1);
	char buf[256];
	size_t want = sizeof(m) - 1 + (size_t)snprintf(NULL, 0, "ECHO %zu\r\n", sizeof(m) - 1);
	assert_int_equal(fx_read_until(fd, buf, sizeof(buf), want), want);
	fx_stop_owners();
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
	/* the kernel would take megabytes toward even a closed window: shrink
	 * the server side's send buffer so most of it stays pending with us
	 * (its owner is joined: nobody else touches the connection) */
	struct conn_key k;
	conn_key_from_sa(&me, CFG_TRANSPORT_TCP, &k);
	rcu_register_thread();
	rcu_read_lock();
	struct conn *sc = conn_table_find(&k);
	assert_non_null(sc);
	int small = 4096;
	assert_int_equal(setsockopt(sc->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	conn_rcu_unlock();
	rcu_unregister_thread();
	char *big = malloc(DRAIN_BYTES);
	for (unsigned i = 0; i < DRAIN_BYTES; i++)
		big[i] = (char)('a' + i % 26);
	const struct conn_dest d = { .addr = &me, .addrlen = len, .transport = CFG_TRANSPORT_TCP };
	rcu_register_thread();
	assert_int_equal(conn_send(&d, big, DRAIN_BYTES), 0);
	rcu_unregister_thread();
	free(big);
	return c;
}

struct drain_reader {
	int fd;
	size_t got;
	bool in_order;
};

static void *drain_reader_main(void *arg)
{
	struct drain_reader *r = arg;
	usleep(200 * 1000); /* the drain starts with the window full: output is left pending */
	char buf[16384];
	r->in_order = true;
	for (;;) {
		ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			r->in_order &= buf[i] == (char)('a' + (r->got + (size_t)i) % 26);
		r->got += (size_t)n;
	}
	return NULL;
}

static void test_drain_sends_queued(void **state)
{
	(void)state;
	int fd;
	struct cfg *c = queue_after_owners_stopped(&fd);
	struct drain_reader r = { .fd = fd };
	pthread_t th;
	pthread_create(&th, NULL, drain_reader_main, &r);
	fx.drain_ns = 5000ull * 1000 * 1000;
	fx_stop(); /* drains, then closes: the reader sees EOF after the last byte */
	pthread_join(th, NULL);
	if (r.got != DRAIN_BYTES || !r.in_order)
		fail_msg("the peer got %zu of %u bytes queued before the drain (in order: %d)", r.got, DRAIN_BYTES,
			 r.in_order);
	close(fd);
	free(c);
}

static void test_drain_bounded_when_peer_does_not_read(void **state)
{
	(void)state;
	int fd;
	struct cfg *c = queue_after_owners_stopped(&fd);
	fx.drain_ns = 300ull * 1000 * 1000;
	uint64_t t0 = fx_now_ns();
	fx_stop(); /* the client never reads: the drain gives up at its deadline */
	uint64_t ms = (fx_now_ns() - t0) / 1000000u;
	if (ms < 250 || ms > 2000)
		fail_msg("drain took %llu ms with a 300 ms deadline", (unsigned long long)ms);
	assert_int_equal(conn_count_open(), 0);
	close(fd);
	free(c);
}

/* ---------------------------------------------------------------- concurrency */

static atomic_bool hammer_stop;
static uint16_t hammer_port;

static void *hammer_main(void *arg)
{
	(void)arg;
	rcu_register_thread();
	metrics_thread_init();
	unsigned seed = 1;
	while (!atomic_load(&hammer_stop)) {
		/* look up and send to peers that come and go (ports near the clients') */
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 20) };
		seed = seed * 1103515245u + 12345u;
		a.sin_port = htons((uint16_t)(32768 + seed % 28000));
		struct sockaddr_storage ss;
		memcpy(&ss, &a, sizeof(a));
		conn_is_up(&ss, CFG_TRANSPORT_TCP);
		struct conn_dest d = { .addr = &ss, .addrlen = sizeof(a), .transport = CFG_TRANSPORT_TCP };
		conn_send(&d, "\r\n", 2);
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_concurrent_lookup_close(void **state)
{
	(void)state;
	hammer_port = fx_free_port();
	struct cfg *c = cfg_make(hammer_port, 1000, 10, 600);
	fx_start(c);
	atomic_store(&hammer_stop, false);
	pthread_t h[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&h[i], NULL, hammer_main, NULL);
	static const char m[] = "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
	for (int i = 0; i < 150; i++) {
		int fd = fx_connect(hammer_port, "127.0.0.20");
		assert_true(fd >= 0);
		/* the echo comes back through the table, from the worker thread */
		assert_int_equal(send(fd, m, sizeof(m) - 1, 0), (ssize_t)sizeof(m) - 1);
		char buf[256];
		size_t want = sizeof(m) - 1 + (size_t)snprintf(NULL, 0, "ECHO %zu\r\n", sizeof(m) - 1);
		assert_int_equal(fx_read_until(fd, buf, sizeof(buf), want), want);
		close(fd);
	}
	atomic_store(&hammer_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(h[i], NULL);
	FX_WAIT(conn_count_open() == 0);
	assert_int_equal(conn_count_open(), 0);
	fx_stop();
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_echo_split_and_coalesced),
		cmocka_unit_test(test_framing_errors),
		cmocka_unit_test(test_outbound_connect),
		cmocka_unit_test(test_concurrent_lookup_close),
		cmocka_unit_test(test_limits_and_timeouts),
		cmocka_unit_test(test_drain_sends_queued),
		cmocka_unit_test(test_drain_bounded_when_peer_does_not_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
