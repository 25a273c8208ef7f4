/* pipeline_metrics.c - registration of the receive/send path's metric
 * families (README metrics list). Startup only, single-threaded: the hot path
 * only adds to the handles kept in pipeline_metrics. */
#include <stdio.h>
#include <string.h>

#include "pipeline_metrics.h"
#include "sip.h"

struct pipeline_metrics pipeline_metrics;

void pipeline_metrics_register(unsigned n_workers)
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
