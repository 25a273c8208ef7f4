#pragma once
/* pipeline_metrics.h - the series handles of the receive/send path
 * (referee_requests_total, referee_rx_drops_total, queue depth and drops per
 * worker, the receive-to-send histogram). Registered once by pipeline_run
 * before any thread starts; read-only afterwards. */
#include <stdbool.h>

#include "cfg.h"
#include "metrics.h"

#define PIPELINE_MAX_WORKERS CFG_MAX_THREADS

/* referee_rx_drops_total{reason}: the closed set, in label order */
enum pipeline_rx_drop {
	PIPELINE_DROP_TRUNCATED = 0,
	PIPELINE_DROP_POOL_EMPTY,
	PIPELINE_DROP_MALFORMED,
	PIPELINE_DROP_SHUTDOWN, /* parked txns still unfinished at the end of the drain */
	PIPELINE_DROP_COUNT
};

struct pipeline_metrics {
	bool registered;
	unsigned n_worker_labels;
	unsigned requests;        /* + enum sip_method */
	unsigned responses;
	unsigned queue_drops;     /* + worker id */
	unsigned rx_drops;        /* + enum pipeline_rx_drop */
	unsigned queue_depth;     /* + worker id (gauge) */
	unsigned tx_errors;
	unsigned duration;        /* histogram */
};
extern struct pipeline_metrics pipeline_metrics;

/* pipeline_metrics_register - the families, once (labels for @n_workers workers). */
void pipeline_metrics_register(unsigned n_workers);

/* pipeline_worker_label - series offset of worker @w in the {worker} families.
 * Labels are registered once, for the worker count of the first
 * pipeline_run; a later run with more workers counts the extra ones under the
 * last label rather than in another family's series. */
static inline unsigned pipeline_worker_label(unsigned w)
{
	return w < pipeline_metrics.n_worker_labels ? w : pipeline_metrics.n_worker_labels - 1;
}
