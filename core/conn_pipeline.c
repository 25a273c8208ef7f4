/* conn_pipeline.c - the stream transports inside the pipeline (SPEC §9).
 *
 * Each receiver (the reading context: its receiver thread, or its worker in
 * inline mode) owns one conn_thread: it accepts on the tcp:// and tls://
 * addresses (SO_REUSEPORT: the kernel spreads connections over receivers),
 * reads, frames, and stages each message into a txn of its own pool exactly
 * like a datagram (rx_stream), so the worker a datagram from the same source
 * would go to runs the stages. The worker hands the output to conn_send: written at once when
 * the worker itself owns the connection (inline mode), otherwise copied into
 * the owner's bounded queue. */
#include <errno.h>
#include <string.h>
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "pipeline_rx.h"
#include "worker.h"
#include "proxy_priv.h"
#include "tls_ctx.h"

static bool stream_in_use(const struct cfg *c)
{
	if (cfg_has_transport(c, CFG_TRANSPORT_TCP) || cfg_has_transport(c, CFG_TRANSPORT_TLS))
		return true;
	for (unsigned i = 0; i < c->routes.local.n; i++)
		if (c->routes.local.d[i].transport != CFG_TRANSPORT_UDP)
			return true;
	for (unsigned i = 0; i < c->routes.outbound.n; i++)
		if (c->routes.outbound.d[i].transport != CFG_TRANSPORT_UDP)
			return true;
	return false;
}

static bool tls_in_use(const struct cfg *c)
{
	return cfg_has_transport(c, CFG_TRANSPORT_TLS) || c->tls.certificate[0] || c->tls.ca_file[0];
}

static bool conn_active;
static bool tls_active;

static void on_deliver(void *arg, const struct conn_msg *m)
{
	rx_stream(arg, m);
}

static void on_flush(void *arg)
{
	rx_stream_flush(arg);
}

/* SPEC §9: a message without Content-Length gets 400 (then the connection
 * closes); a request a next hop never got gets 503 (delivered upstream).
 * Built by the stateless reply builder on the receiver's scratch txn. A
 * message past its inline buffer (a header section up to tcp.max_message, a
 * large forwarded request) is parsed in a big-slab buffer borrowed for the
 * call, as rx_stream keeps one; none free (all held by txns in flight): no
 * reply, the connection closes all the same (counted). */
static size_t on_reply(void *arg, const struct conn_msg *m, uint16_t code, char *out, size_t cap)
{
	struct receiver *rx = arg;
	struct txn *t = rx->scratch;
	if (m->len > TXN_RX_MAX)
		return 0;
	char *big = m->len > sizeof(t->rx) ? rx_big_take(rx) : NULL;
	if (m->len > sizeof(t->rx) && !big)
		return 0;
	char *buf = big ? big : t->rx;
	txn_reset(t);
	memcpy(buf, m->buf, m->len);
	t->rx_len = m->len;
	memcpy(&t->src, m->peer, m->peerlen);
	t->srclen = m->peerlen;
	t->listen_idx = m->listen_idx;
	t->rx_transport = m->transport;
	size_t n = 0;
	rcu_read_lock();
	t->cfg = rcu_dereference(worker_cfg_rcu);
	if (t->cfg && txn_received(t, buf, t->rx_len) >= 0 && t->msg.is_request &&
	    t->msg.method_id != SIP_METHOD_ACK) {
		t->out = out;
		t->out_cap = (uint32_t)cap;
		txn_reply(t, code, code == 400 ? SLICE_LIT("Missing Content-Length") : SLICE_LIT("Next Hop Unreachable"));
		if (proxy_reply_build(t) == 0) {
			if (code == 400)
				proxy_count_reply(400); /* a 503 is counted when relayed */
			n = t->out_len;
		}
	}
	rcu_read_unlock();
	if (big)
		rx_big_give(rx, big);
	return n;
}

int conn_pipeline_setup(struct receiver *rx, unsigned n_rx, const struct cfg *c)
{
	if (!stream_in_use(c))
		return 0;
	int rc = conn_runtime_start(c, n_rx);
	if (rc < 0)
		return rc;
	conn_active = true;
	if (tls_in_use(c)) {
		rc = tls_ctx_start(c);
		if (rc < 0)
			return rc;
		tls_active = true;
	}
	for (unsigned r = 0; r < n_rx; r++) {
		const struct conn_host host = { .deliver = on_deliver, .flush = on_flush, .reply = on_reply,
						.arg = &rx[r] };
		rx[r].conn = conn_thread_new(r, c, &host, &rc);
		if (!rx[r].conn)
			return rc;
	}
	return 0;
}

void conn_pipeline_drain(struct receiver *rx, unsigned n_rx, uint64_t deadline_ns)
{
	if (!conn_active)
		return;
	struct conn_thread *cts[CONN_MAX_THREADS];
	unsigned n = n_rx < CONN_MAX_THREADS ? n_rx : CONN_MAX_THREADS;
	for (unsigned r = 0; r < n; r++)
		cts[r] = rx[r].conn;
	rcu_register_thread();
	conn_threads_drain(cts, n, deadline_ns);
	rcu_unregister_thread();
}

void conn_pipeline_free(struct receiver *rx, unsigned n_rx)
{
	if (!conn_active)
		return;
	rcu_register_thread(); /* conn_thread_free hands connections to call_rcu */
	for (unsigned r = 0; r < n_rx; r++) {
		conn_thread_free(rx[r].conn);
		rx[r].conn = NULL;
	}
	rcu_unregister_thread();
	conn_runtime_stop();
	conn_active = false;
	if (tls_active)
		tls_ctx_stop();
	tls_active = false;
}

void conn_pipeline_reload(const struct cfg *c)
{
	if (!conn_active)
		return;
	conn_runtime_reconfigure(c);
	/* new certificate and key for new connections; established ones keep theirs */
	if (tls_active && tls_ctx_reload(c) < 0)
		log_error("tls", "reload kept the previous certificate and key");
}

void conn_pipeline_send(struct txn *t)
{
	const struct conn_dest d = { .addr = &t->dst,
				     .addrlen = t->dstlen,
				     .transport = t->dst_transport,
				     .listen_idx = t->out_listen_idx,
				     .may_connect = t->dst_may_connect,
				     .tls_name = t->dst_tls_name };
	if (!conn_active || conn_send(&d, t->out, t->out_len) < 0)
		metrics_inc(pipeline_metrics.tx_errors);
}
