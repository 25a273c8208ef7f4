/* conn_metrics.c - the stream transport metrics (SPEC §9, README metrics list).
 * Registered once by conn_runtime_start (before threads start); counted by
 * the owner threads on their own shards. */
#include "conn_priv.h"
#include "metrics.h"

static const char *const transport_labels[CFG_TRANSPORT_COUNT] = { "udp", "tcp", "tls" };
static const char *const close_labels[CONN_CLOSE_COUNT] = {
	[CONN_CLOSE_PEER] = "peer",		  [CONN_CLOSE_ERROR] = "error",
	[CONN_CLOSE_IDLE] = "idle_timeout",	  [CONN_CLOSE_READ_TIMEOUT] = "read_timeout",
	[CONN_CLOSE_TOO_BIG] = "too_big",	  [CONN_CLOSE_BAD_FRAMING] = "bad_framing",
	[CONN_CLOSE_QUEUE_FULL] = "queue_full",	  [CONN_CLOSE_HANDSHAKE] = "handshake",
	[CONN_CLOSE_CONNECT] = "connect_failed", [CONN_CLOSE_SHUTDOWN] = "shutdown",
};
static const char *const refuse_labels[CONN_REFUSE_COUNT] = {
	[CONN_REFUSE_MAX_CONNECTIONS] = "max_connections",
	[CONN_REFUSE_MAX_PER_SOURCE] = "max_per_source",
	[CONN_REFUSE_NO_TLS_CONTEXT] = "no_tls_context",
};
static const char *const tls_labels[CONN_TLS_FAIL_COUNT] = {
	[CONN_TLS_FAIL_NO_CERTIFICATE] = "no_certificate",
	[CONN_TLS_FAIL_BAD_CERTIFICATE] = "bad_certificate",
	[CONN_TLS_FAIL_PROTOCOL] = "protocol",
	[CONN_TLS_FAIL_TIMEOUT] = "timeout",
};
static const char *const qfull_labels[CONN_QFULL_COUNT] = { "connection", "thread" };

void conn_metrics_register(void)
{
	if (conn_rt.metrics_registered)
		return;
	conn_rt.m.open = metrics_gauge("referee_connections_open", "Stream connections open now, by transport",
				       "transport", transport_labels, CFG_TRANSPORT_COUNT);
	conn_rt.m.accepted = metrics_counter("referee_connections_accepted_total",
					     "Stream connections accepted, by transport", "transport",
					     transport_labels, CFG_TRANSPORT_COUNT);
	conn_rt.m.refused = metrics_counter("referee_connections_refused_total",
					    "Stream connections refused at accept, by reason", "reason",
					    refuse_labels, CONN_REFUSE_COUNT);
	conn_rt.m.closed = metrics_counter("referee_connections_closed_total",
					   "Stream connections closed, by reason", "reason", close_labels,
					   CONN_CLOSE_COUNT);
	conn_rt.m.tls_failures = metrics_counter("referee_tls_handshake_failures_total",
						 "TLS handshakes that failed, by reason", "reason", tls_labels,
						 CONN_TLS_FAIL_COUNT);
	conn_rt.m.queue_full = metrics_counter("referee_connection_queue_full_total",
					       "Sends refused because a connection or its thread could not keep up "
					       "(the connection is closed)",
					       "where", qfull_labels, CONN_QFULL_COUNT);
	conn_rt.m.connect_failures = metrics_counter("referee_connect_failures_total",
						     "Outbound stream connections that failed (connect, TLS "
						     "verification of the next hop)",
						     "transport", transport_labels, CFG_TRANSPORT_COUNT);
	conn_rt.m.dropped = metrics_counter("referee_stream_send_drops_total",
					    "Messages for a stream peer with no connection open (and none to open)",
					    NULL, NULL, 0);
	conn_rt.metrics_registered = true;
}

/* one series of a family registered above, when it exists */
static void count_in(unsigned family, unsigned i, unsigned n)
{
	if (conn_rt.metrics_registered && i < n)
		metrics_inc(family + i);
}

void conn_count_close(enum cfg_transport t, enum conn_close_reason why)
{
	(void)t;
	count_in(conn_rt.m.closed, why, CONN_CLOSE_COUNT);
}

void conn_count_refuse(enum conn_refuse_reason why)
{
	count_in(conn_rt.m.refused, why, CONN_REFUSE_COUNT);
}

void conn_count_tls_failure(enum conn_tls_failure why)
{
	count_in(conn_rt.m.tls_failures, why, CONN_TLS_FAIL_COUNT);
}

void conn_count_accept(enum cfg_transport t)
{
	count_in(conn_rt.m.accepted, t, CFG_TRANSPORT_COUNT);
}

void conn_count_queue_full(enum conn_queue_full_where where)
{
	count_in(conn_rt.m.queue_full, where, CONN_QFULL_COUNT);
}

void conn_count_connect_failure(enum cfg_transport t)
{
	count_in(conn_rt.m.connect_failures, t, CFG_TRANSPORT_COUNT);
}

void conn_count_dropped(void)
{
	count_in(conn_rt.m.dropped, 0, 1);
}
