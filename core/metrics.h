#pragma once
/* metrics.h - Prometheus counters, gauges and a histogram, per thread.
 *
 * Families are registered at startup (before threads start) and return a
 * series handle; each thread that counts calls metrics_thread_init() once
 * and then increments its own shard with relaxed stores (single writer, no
 * atomic read-modify-write, no contention). The exporter sums every shard at
 * scrape time. Names follow STYLE.md §18: referee_<module>_<what>_<unit>. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_SERIES 2048
#define METRICS_MAX_THREADS 64

/**
 * metrics_counter - register a counter family with one label.
 * @label: label name, or NULL for a family with a single series.
 * @values, @n_values: the closed set of label values (ignored when @label is NULL).
 * Returns the handle of the first series; series i is handle + i. Startup only;
 * aborts the process on overflow (a programming error).
 */
unsigned metrics_counter(const char *name, const char *help, const char *label,
			 const char *const *values, unsigned n_values);
/* metrics_gauge - like metrics_counter; set with metrics_set from one thread at a time,
 * or summed over threads when each thread sets its own shard. */
unsigned metrics_gauge(const char *name, const char *help, const char *label,
		       const char *const *values, unsigned n_values);
/* metrics_histogram - seconds histogram with fixed @bounds (ascending). */
unsigned metrics_histogram(const char *name, const char *help, const double *bounds, unsigned n_bounds);

/* metrics_thread_init - give the calling thread its shard. 0 or -ENOSPC. */
int metrics_thread_init(void);

void metrics_add(unsigned series, uint64_t n);
static inline void metrics_inc(unsigned series)
{
	metrics_add(series, 1);
}
void metrics_set(unsigned series, int64_t value);
void metrics_observe(unsigned histogram, double seconds);
/* metrics_observe_ns - the same for a duration in nanoseconds (no floating point: the hot path). */
void metrics_observe_ns(unsigned histogram, uint64_t ns);

/* Collected gauges: a family whose series are written at scrape time by a
 * callback (label sets that change with the configuration, such as one
 * series per route destination). @fn runs on the scraping thread and calls
 * metrics_sink_gauge once per series. Register at startup. */
struct metrics_sink;
typedef void (*metrics_collect_fn)(struct metrics_sink *sink, void *arg);
void metrics_collector_add(const char *name, const char *help, metrics_collect_fn fn, void *arg);
void metrics_sink_gauge(struct metrics_sink *sink, const char *const *label_names,
			const char *const *label_values, unsigned n_labels, int64_t value);

/**
 * metrics_render - write the text exposition format into @buf.
 * Returns bytes written, or the size needed (> @cap) when @buf is too small.
 */
size_t metrics_render(char *buf, size_t cap);
/* metrics_value - sum over threads of one series (tests, /health). */
int64_t metrics_value(unsigned series);

/* ---- HTTP exporter (metrics.listen): GET /metrics and GET /health (SPEC §8) */
struct cfg_addr;
/**
 * metrics_http_start - serve /metrics and /health on @listen from one
 * libmicrohttpd thread (never a worker). @healthy decides /health: 200 when
 * it returns true, 503 otherwise. Returns 0 or a negative errno.
 */
int metrics_http_start(const struct cfg_addr *listen, bool (*healthy)(void));
void metrics_http_stop(void);
