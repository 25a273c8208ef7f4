/* test_pipeline_mt.c - pipeline_run end to end over 127.0.0.1 (core/pipeline.c,
 * core/worker.c) with the real sip_parse and proxy_process and a test stage:
 * OPTIONS get 200 whose reason is the config's realm; Call-IDs starting with
 * "park-" are parked first and resumed from a worker tick (txn_resume), or
 * from inside the chain of a "kick-" request (deferred resume). Checks
 * that every request is answered once, the counters, truncated and malformed
 * datagrams, SIGHUP reloads (RCU config swap; through the signalfd and through
 * the handler for threads that do not block it) and a drain that still answers
 * parked requests after pipeline_stop. Named _mt: also runs under TSan. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cfg.h"
#include "metrics.h"
#include "proxy.h"
#include "stage.h"
#include "txn.h"

#define N_REQUESTS 3000
#define WINDOW 64
#define N_WORKERS 2
#define MAX_PARKED 4096

/* ---------------------------------------------------------------- the test stage */

struct parked_list {
	struct txn *t[MAX_PARKED];
	unsigned n;
};
static struct parked_list parked[N_WORKERS]; /* each touched by its own worker only */
static atomic_uint hooks_init, hooks_fini, reloads;
static char park_marker;

static void tick_resume(void *arg)
{
	struct worker *w = arg;
	struct parked_list *pl = &parked[worker_id(w)];
	unsigned n = pl->n;
	pl->n = 0;
	for (unsigned i = 0; i < n; i++)
		txn_resume(pl->t[i]);
}

static enum stage_rc test_stage(struct txn *t)
{
	if (!t->msg.is_request || t->msg.method_id != SIP_METHOD_OPTIONS)
		return STAGE_DROP;
	unsigned idx = t->stage_idx;
	if (slice_has_caseprefix(t->msg.call_id, SLICE_LIT("park-")) && t->stage_ctx[idx] == NULL) {
		struct parked_list *pl = &parked[worker_id(t->worker)];
		if (pl->n < MAX_PARKED) {
			t->stage_ctx[idx] = &park_marker;
			pl->t[pl->n++] = t;
			return STAGE_PARK;
		}
	}
	/* "kick-": resume this worker's parked txns from inside a chain (the
	 * worker defers them until this chain is done) */
	if (slice_has_caseprefix(t->msg.call_id, SLICE_LIT("kick-")))
		tick_resume(t->worker);
	txn_reply(t, 200, slice_from_cstr(t->cfg->realm));
	return STAGE_REPLY;
}

static int hook_init(struct worker *w, void *arg)
{
	(void)arg;
	atomic_fetch_add(&hooks_init, 1);
	return worker_tick_add(w, tick_resume, w);
}

static void hook_fini(struct worker *w, void *arg)
{
	(void)w;
	(void)arg;
	atomic_fetch_add(&hooks_fini, 1);
}

/* ---------------------------------------------------------------- config, reload */

static uint16_t test_port, test_port6; /* test_port6 0: IPv4 only */
static bool test_inline; /* threads.inline_receive: the workers read the sockets */

static struct cfg *cfg_make(uint16_t port, const char *realm)
{
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->n_listen = 1;
	struct sockaddr_in *a = (struct sockaddr_in *)&c->listen[0].sa;
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->listen[0].salen = sizeof(*a);
	snprintf(c->listen[0].text, sizeof(c->listen[0].text), "127.0.0.1:%u", port);
	if (test_port6) {
		/* a second listen socket, IPv6: one socket per address per receiver */
		c->n_listen = 2;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->listen[1].sa;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(test_port6);
		a6->sin6_addr = in6addr_loopback;
		c->listen[1].salen = sizeof(*a6);
		snprintf(c->listen[1].text, sizeof(c->listen[1].text), "[::1]:%u", test_port6);
	}
	c->n_domains = 1;
	snprintf(c->domains[0], sizeof(c->domains[0]), "example.com");
	snprintf(c->realm, sizeof(c->realm), "%s", realm);
	c->threads.receivers = 2;
	c->threads.workers = N_WORKERS;
	c->threads.inline_receive = test_inline;
	return c;
}

static int test_reload(void *arg)
{
	(void)arg;
	pipeline_cfg_publish(cfg_make(test_port, "second"));
	/* counted once published: the test sends its "second" requests as soon
	 * as it sees the count, and they must find the new config */
	atomic_fetch_add(&reloads, 1);
	return 0;
}

struct run {
	struct cfg *c;
	struct stage_table st;
	int rc;
};

static void *pipeline_thread(void *arg)
{
	struct run *r = arg;
	r->rc = pipeline_run(r->c, &r->st, test_reload, NULL);
	return NULL;
}

/* ---------------------------------------------------------------- client */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* a UDP socket on the loopback of @family, connected to the pipeline's @port */
static int client_open(int family, uint16_t port, uint16_t *my_port)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int size = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	struct sockaddr_storage me = { 0 }, server = { 0 };
	socklen_t len;
	if (family == AF_INET) {
		*(struct sockaddr_in *)&me = (struct sockaddr_in){ .sin_family = AF_INET,
								    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		server = me;
		((struct sockaddr_in *)&server)->sin_port = htons(port);
		len = sizeof(struct sockaddr_in);
	} else {
		*(struct sockaddr_in6 *)&me = (struct sockaddr_in6){ .sin6_family = AF_INET6,
								      .sin6_addr = in6addr_loopback };
		server = me;
		((struct sockaddr_in6 *)&server)->sin6_port = htons(port);
		len = sizeof(struct sockaddr_in6);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&me, len), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
	*my_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port
					   : ((struct sockaddr_in6 *)&me)->sin6_port);
	assert_int_equal(connect(fd, (struct sockaddr *)&server, len), 0);
	return fd;
}

static void send_options(int fd, uint16_t my_port, const char *call_id)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg),
			 "OPTIONS sip:127.0.0.1:%u SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK-%s;rport\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <sip:probe@example.com>;tag=t1\r\n"
			 "To: <sip:127.0.0.1:%u>\r\n"
			 "Call-ID: %s\r\n"
			 "CSeq: 1 OPTIONS\r\n"
			 "Content-Length: 0\r\n\r\n",
			 test_port, my_port, call_id, test_port, call_id);
	assert_int_equal(send(fd, msg, (size_t)n, 0), n);
}

/* wait up to @ms for one reply; copies its Call-ID into @cid. Returns the
 * reply length, 0 on timeout. */
static ssize_t recv_reply(int fd, int ms, char *buf, size_t cap, char *cid, size_t cid_cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, ms) <= 0)
		return 0;
	ssize_t n = recv(fd, buf, cap - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	const char *c = strstr(buf, "\r\nCall-ID: ");
	assert_non_null(c);
	c += strlen("\r\nCall-ID: ");
	size_t len = strcspn(c, "\r");
	assert_true(len < cid_cap);
	memcpy(cid, c, len);
	cid[len] = '\0';
	return n;
}

static long long metric(const char *line_prefix)
{
	static char text[65536];
	size_t n = metrics_render(text, sizeof(text));
	assert_true(n < sizeof(text));
	size_t pl = strlen(line_prefix);
	for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line_prefix, pl) == 0)
			return strtoll(p + pl, NULL, 10);
	fail_msg("metric line '%s' missing", line_prefix);
	return -1;
}

static uint16_t free_port(void)
{
	uint16_t port;
	int fd = client_open(AF_INET, 9, &port); /* bound to an ephemeral port */
	close(fd);
	return port;
}

static uint16_t free_port6(void)
{
	uint16_t port;
	int fd = client_open(AF_INET6, 9, &port);
	close(fd);
	return port;
}

/* ---------------------------------------------------------------- the test */

/* send requests "<prefix><i>" for i in [0, n) with at most WINDOW unanswered;
 * every reply must be a 200 whose reason is @realm, each Call-ID answered once. */
static void exchange(int fd, uint16_t my_port, unsigned n, const char *realm)
{
	static uint8_t seen[N_REQUESTS];
	memset(seen, 0, sizeof(seen));
	char buf[4096], cid[128], want[128];
	snprintf(want, sizeof(want), "SIP/2.0 200 %s\r\n", realm);
	unsigned sent = 0, got = 0;
	uint64_t deadline = now_ms() + 20000;
	while (got < n) {
		while (sent < n && sent - got < WINDOW) {
			char id[64];
			const char *kind = sent % 10 == 3 ? "park-" : sent % 10 == 7 ? "kick-" : "call-";
			snprintf(id, sizeof(id), "%s%u", kind, sent);
			send_options(fd, my_port, id);
			sent++;
		}
		if (now_ms() > deadline)
			fail_msg("only %u of %u replies after 20 s", got, n);
		if (recv_reply(fd, 500, buf, sizeof(buf), cid, sizeof(cid)) == 0)
			continue;
		assert_memory_equal(buf, want, strlen(want));
		const char *digits = cid + strcspn(cid, "0123456789");
		unsigned i = (unsigned)strtoul(digits, NULL, 10);
		assert_true(i < n);
		assert_int_equal(seen[i], 0);
		seen[i] = 1;
		got++;
	}
}

static void test_pipeline_end_to_end(void **state)
{
	(void)state;
	/* every thread created from here on blocks SIGHUP: the pipeline's
	 * signalfd is then the only taker of the SIGHUP we raise below */
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);

	test_port = free_port();
	test_port6 = free_port6();
	static struct run r;
	memset(&r, 0, sizeof(r));
	/* counters are process-wide: a second run (inline mode) checks deltas */
	const unsigned init0 = atomic_load(&hooks_init), fini0 = atomic_load(&hooks_fini),
		       reloads0 = atomic_load(&reloads);
#define BASE(prefix) (test_inline ? metric(prefix) : 0)
	const long long trunc0 = BASE("referee_rx_drops_total{reason=\"truncated\"} "),
			malformed0 = BASE("referee_rx_drops_total{reason=\"malformed\"} "),
			pool0 = BASE("referee_rx_drops_total{reason=\"pool_empty\"} "),
			shutdown0 = BASE("referee_rx_drops_total{reason=\"shutdown\"} "),
			options0 = BASE("referee_requests_total{method=\"OPTIONS\"} "),
			qd0 = BASE("referee_queue_drops_total{worker=\"0\"} "),
			qd1 = BASE("referee_queue_drops_total{worker=\"1\"} "),
			dur0 = BASE("referee_request_duration_seconds_count ");
#undef BASE
	r.c = cfg_make(test_port, "first");
	assert_int_equal(stage_add(&r.st, "test", test_stage, false), 0);
	assert_int_equal(stage_add_worker_hooks(&r.st, hook_init, hook_fini, NULL), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, pipeline_thread, &r), 0);
	uint64_t until = now_ms() + 5000;
	while (!pipeline_is_serving() && now_ms() < until)
		usleep(1000);
	assert_true(pipeline_is_serving());
	assert_int_equal(atomic_load(&hooks_init) - init0, N_WORKERS);

	uint16_t my_port;
	int fd = client_open(AF_INET, test_port, &my_port);
	exchange(fd, my_port, N_REQUESTS, "first");
	/* the same over the IPv6 listen address: replies leave from that socket */
	uint16_t my_port6;
	int fd6 = client_open(AF_INET6, test_port6, &my_port6);
	exchange(fd6, my_port6, 200, "first");
	close(fd6);

	/* a datagram larger than a txn's inline buffer (it spills into the big
	 * slab) that is not SIP, one that is not SIP at all, and a large OPTIONS
	 * that is answered like a small one */
	static char big[3 * TXN_RX_INLINE];
	memset(big, 'x', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
	assert_int_equal(send(fd, "hello", 5, 0), 5);
	for (int k = 0; k < 3; k++) {
		int n = snprintf(big, sizeof(big),
				 "OPTIONS sip:127.0.0.1:%u SIP/2.0\r\n"
				 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK-big%d;rport\r\n"
				 "Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=t1\r\n"
				 "To: <sip:127.0.0.1:%u>\r\nCall-ID: big-%d\r\nCSeq: 1 OPTIONS\r\nX-Pad: ",
				 test_port, my_port, k, test_port, k);
		const size_t pad = 2 * TXN_RX_INLINE + 100;
		memset(big + n, 'p', pad);
		static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
		memcpy(big + n + pad, tail, sizeof(tail) - 1);
		const size_t len = (size_t)n + pad + sizeof(tail) - 1;
		assert_int_equal(send(fd, big, len, 0), (ssize_t)len);
		char rbuf[4096], rcid[128];
		assert_true(recv_reply(fd, 5000, rbuf, sizeof(rbuf), rcid, sizeof(rcid)) > 0);
		assert_memory_equal(rbuf, "SIP/2.0 200 ", 12);
		char want[32];
		snprintf(want, sizeof(want), "big-%d", k);
		assert_string_equal(rcid, want);
	}

	/* SIGHUP: reload publishes a config whose realm is "second" */
	kill(getpid(), SIGHUP);
	until = now_ms() + 5000;
	while (atomic_load(&reloads) == reloads0 && now_ms() < until)
		usleep(1000);
	assert_int_equal(atomic_load(&reloads) - reloads0, 1);
	exchange(fd, my_port, 100, "second");
	/* a SIGHUP taken by a thread the pipeline did not create (this one,
	 * unblocked) goes through pipeline_run's handler to the same reload */
	pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
	kill(getpid(), SIGHUP);
	until = now_ms() + 5000;
	while (atomic_load(&reloads) - reloads0 < 2 && now_ms() < until)
		usleep(1000);
	assert_int_equal(atomic_load(&reloads) - reloads0, 2);

	until = now_ms() + 5000;
	/* the worker observes the latency right after sendmmsg: it may trail the reply */
	while ((metric("referee_rx_drops_total{reason=\"malformed\"} ") - malformed0 < 2 ||
		metric("referee_request_duration_seconds_count ") - dur0 < N_REQUESTS + 303) && now_ms() < until)
		usleep(1000);
	/* nothing is truncated: the big slab takes any UDP datagram */
	assert_int_equal(metric("referee_rx_drops_total{reason=\"truncated\"} ") - trunc0, 0);
	assert_int_equal(metric("referee_rx_drops_total{reason=\"malformed\"} ") - malformed0, 2);
	if (getenv("TEST_DUMP")) {
		static char text[65536];
		metrics_render(text, sizeof(text));
		fputs(text, stderr);
	}
	assert_int_equal(metric("referee_rx_drops_total{reason=\"pool_empty\"} ") - pool0, 0);
	assert_int_equal(metric("referee_requests_total{method=\"OPTIONS\"} ") - options0, N_REQUESTS + 303);
	assert_int_equal(metric("referee_queue_drops_total{worker=\"0\"} ") - qd0, 0);
	assert_int_equal(metric("referee_queue_drops_total{worker=\"1\"} ") - qd1, 0);
	assert_int_equal(metric("referee_request_duration_seconds_count ") - dur0, N_REQUESTS + 303);

	/* drain: parked requests received before the stop are still answered */
	for (unsigned i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "park-drain-%u", i);
		send_options(fd, my_port, id);
	}
	until = now_ms() + 5000;
	while (metric("referee_requests_total{method=\"OPTIONS\"} ") - options0 < N_REQUESTS + 323 && now_ms() < until)
		usleep(1000);
	pipeline_stop();
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(r.rc, 0);
	assert_false(pipeline_is_serving());
	assert_int_equal(atomic_load(&hooks_fini) - fini0, N_WORKERS);
	unsigned drained = 0;
	char buf[4096], cid[128];
	while (drained < 20 && recv_reply(fd, 1000, buf, sizeof(buf), cid, sizeof(cid)) > 0) {
		assert_memory_equal(cid, "park-drain-", 11);
		drained++;
	}
	assert_int_equal(drained, 20);
	assert_int_equal(metric("referee_rx_drops_total{reason=\"shutdown\"} ") - shutdown0, 0);
	close(fd);
	pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
}

/* the same with threads.inline_receive: no receiver threads, the workers
 * read the sockets (a second pipeline_run in this process: deltas above) */
static void test_pipeline_end_to_end_inline(void **state)
{
	test_inline = true;
	test_pipeline_end_to_end(state);
	test_inline = false;
}

static atomic_uint failing_fini;

static int hook_init_fails_on_1(struct worker *w, void *arg)
{
	(void)arg;
	return worker_id(w) == 1 ? -EIO : 0;
}

static void hook_fini_count(struct worker *w, void *arg)
{
	(void)arg;
	assert_int_equal(worker_id(w), 0); /* only hooks whose init succeeded are finished */
	atomic_fetch_add(&failing_fini, 1);
}

/* errors come back as negative errno, with the cfg freed (ASan: no leak) */
static void test_pipeline_startup_errors(void **state)
{
	(void)state;
	struct stage_table st = { 0 };
	assert_int_equal(stage_add(&st, "test", test_stage, false), 0);
	struct cfg *c = cfg_make(free_port(), "x");
	c->threads.workers = 0;
	assert_int_equal(pipeline_run(c, &st, NULL, NULL), -EINVAL);

	c = cfg_make(5060, "x");
	struct sockaddr_in *a = (struct sockaddr_in *)&c->listen[0].sa;
	a->sin_addr.s_addr = inet_addr("192.0.2.1"); /* TEST-NET-1: not ours, bind fails */
	assert_true(pipeline_run(c, &st, NULL, NULL) < 0);
	assert_false(pipeline_is_serving());

	assert_int_equal(stage_add_worker_hooks(&st, hook_init_fails_on_1, hook_fini_count, NULL), 0);
	c = cfg_make(free_port(), "x");
	assert_int_equal(pipeline_run(c, &st, NULL, NULL), -EIO);
	assert_int_equal(atomic_load(&failing_fini), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipeline_end_to_end),
		cmocka_unit_test(test_pipeline_startup_errors),
		cmocka_unit_test(test_pipeline_end_to_end_inline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
