/* metrics.c - per-thread metric shards summed into Prometheus text format (SPEC §8, STYLE §18).
 *
 * Not an HTTP server: metrics_render only produces the exposition text.
 * Concurrency: families are registered at startup before threads start.
 *   shard->v[i]   written by the owning thread only (relaxed load + relaxed
 *                 store, no read-modify-write), read by metrics_render /
 *                 metrics_value on any thread (relaxed: a scrape is a snapshot).
 *   shards[]      filled by metrics_thread_init (release store of the pointer,
 *                 pairs with the acquire loads in shard_sum); never freed.
 *   shard->owned  1 while a live thread owns it; cleared by the thread-exit
 *                 destructor, so a later thread adopts the shard (and its
 *                 counts: sums stay right) instead of using a new one.
 * Threads that never called metrics_thread_init count into a shared shard
 * with atomic adds (correct, slower). Histograms use n_bounds + 2 series:
 * one per bucket (non-cumulative, +Inf last) and the sum in nanoseconds.
 * Registration refuses (aborts on) names that would break the exposition format
 * or promtool's lint, and returns the existing handle for a repeated family. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define METRICS_MAX_FAMILIES 256
#define METRICS_MAX_BOUNDS 32

enum metrics_kind { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics_family {
	enum metrics_kind kind;
	const char *name;
	const char *help;
	const char *label; /* NULL: one series */
	const char *const *values;
	unsigned n_series; /* series used (histogram: n_bounds + 2) */
	unsigned first;
	double bounds[METRICS_MAX_BOUNDS];
	uint64_t bounds_ns[METRICS_MAX_BOUNDS]; /* the same in ns: metrics_observe_ns compares integers */
	unsigned n_bounds;
};

struct metrics_shard {
	_Atomic uint64_t v[METRICS_MAX_SERIES];
	atomic_bool owned;
};

static struct metrics_family families[METRICS_MAX_FAMILIES];
static _Atomic unsigned n_families;
static unsigned n_series_used;

static _Atomic(struct metrics_shard *) shards[METRICS_MAX_THREADS];
static _Atomic unsigned n_shards;
static struct metrics_shard shared_shard; /* threads without a shard: atomic adds */
static _Thread_local struct metrics_shard *tls_shard;
static pthread_key_t shard_key;
static pthread_once_t shard_key_once = PTHREAD_ONCE_INIT;

/* ---------------------------------------------------------------- registration */

#define METRICS_NAME_MAX 96 /* keeps every rendered line within out_printf's buffer */

/* name_ok - a metric name [a-zA-Z_:][a-zA-Z0-9_:]*, or for @label a label name
 * [a-zA-Z_][a-zA-Z0-9_]* not starting with "__" (reserved) and not "le". */
static bool name_ok(const char *s, bool label)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > METRICS_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	if (label && (strncmp(s, "__", 2) == 0 || strcmp(s, "le") == 0))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			  ch == '_' || (ch == ':' && !label);
		if (!ok)
			return false;
	}
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* family_misnamed - why @name/@label would break the exposition format or the
 * promtool lint (STYLE §18), or NULL when they are fine. */
static const char *family_misnamed(enum metrics_kind kind, const char *name, const char *label,
				   const char *const *values, unsigned n_values)
{
	if (!name_ok(name, false))
		return "not a valid metric name";
	if (label && !name_ok(label, true))
		return "not a valid label name";
	for (unsigned i = 0; label && i < n_values; i++)
		if (!values || !values[i])
			return "a label value is NULL";
	if (kind == METRICS_COUNTER && !ends_with(name, "_total"))
		return "a counter's name must end in _total";
	if (kind != METRICS_COUNTER && ends_with(name, "_total"))
		return "only counters end in _total";
	if (kind == METRICS_HISTOGRAM && !ends_with(name, "_seconds"))
		return "a histogram measures durations: its name ends in _seconds";
	return NULL;
}

/* The histogram family whose first series is the index: metrics_observe
 * finds its bounds in one load instead of a search over the families. */
static _Atomic(const struct metrics_family *) histogram_at[METRICS_MAX_SERIES];

static unsigned family_add(enum metrics_kind kind, const char *name, const char *help,
			   const char *label, const char *const *values, unsigned n_values,
			   const double *bounds, unsigned n_bounds)
{
	unsigned nf = atomic_load_explicit(&n_families, memory_order_relaxed);
	unsigned n = label ? n_values : 1;
	if (kind == METRICS_HISTOGRAM)
		n = n_bounds + 2;
	const char *why = family_misnamed(kind, name, label, values, n_values);
	if (why) {
		log_error("metrics", "cannot register %s: %s", name ? name : "(null)", why);
		abort();
	}
	/* A module initialised twice in one process registers the same family
	 * again: hand back the first registration (two TYPE lines of one name
	 * would make the exposition invalid). A different shape is a bug. */
	for (unsigned i = 0; i < nf; i++) {
		const struct metrics_family *o = &families[i];
		if (strcmp(o->name, name) != 0)
			continue;
		if (o->kind != kind || o->n_series != n || (o->label == NULL) != (label == NULL) ||
		    (label && strcmp(o->label, label) != 0)) {
			log_error("metrics", "cannot register %s: registered before with another type or labels",
				  name);
			abort();
		}
		return o->first;
	}
	if (nf >= METRICS_MAX_FAMILIES || n == 0 || n > METRICS_MAX_SERIES - n_series_used) {
		log_error("metrics", "cannot register %s: registry full", name);
		abort();
	}
	struct metrics_family *f = &families[nf];
	*f = (struct metrics_family){ .kind = kind, .name = name, .help = help, .label = label,
				      .values = values, .n_series = n, .first = n_series_used,
				      .n_bounds = n_bounds };
	if (n_bounds)
		memcpy(f->bounds, bounds, n_bounds * sizeof(*bounds));
	for (unsigned b = 0; b < n_bounds; b++)
		f->bounds_ns[b] = (uint64_t)llround(bounds[b] * 1e9);
	n_series_used += n;
	if (kind == METRICS_HISTOGRAM)
		atomic_store_explicit(&histogram_at[f->first], f, memory_order_release);
	/* release pairs with the acquire loads in metrics_render:
	 * the family entry is complete before a reader counts it. */
	atomic_store_explicit(&n_families, nf + 1, memory_order_release);
	return f->first;
}

unsigned metrics_counter(const char *name, const char *help, const char *label,
			 const char *const *values, unsigned n_values)
{
	return family_add(METRICS_COUNTER, name, help, label, values, n_values, NULL, 0);
}

unsigned metrics_gauge(const char *name, const char *help, const char *label,
		       const char *const *values, unsigned n_values)
{
	return family_add(METRICS_GAUGE, name, help, label, values, n_values, NULL, 0);
}

unsigned metrics_histogram(const char *name, const char *help, const double *bounds, unsigned n_bounds)
{
	bool ascending = n_bounds > 0 && n_bounds <= METRICS_MAX_BOUNDS;
	for (unsigned i = 1; ascending && i < n_bounds; i++)
		ascending = bounds[i] > bounds[i - 1];
	if (!ascending) {
		log_error("metrics", "histogram %s: need 1..%d ascending bounds", name, METRICS_MAX_BOUNDS);
		abort();
	}
	return family_add(METRICS_HISTOGRAM, name, help, NULL, NULL, 0, bounds, n_bounds);
}

/* ---------------------------------------------------------------- shards */

static void shard_release(void *p)
{
	struct metrics_shard *s = p;
	/* release pairs with the acquire exchange in metrics_thread_init: our
	 * last stores are visible to the thread that adopts the shard. */
	atomic_store_explicit(&s->owned, false, memory_order_release);
}

static void shard_key_create(void)
{
	if (pthread_key_create(&shard_key, shard_release) != 0)
		abort();
}

int metrics_thread_init(void)
{
	if (tls_shard)
		return 0;
	pthread_once(&shard_key_once, shard_key_create);
	struct metrics_shard *s = NULL;
	unsigned n = atomic_load_explicit(&n_shards, memory_order_acquire);
	for (unsigned i = 0; i < n && !s; i++) {
		struct metrics_shard *c = atomic_load_explicit(&shards[i], memory_order_acquire);
		bool expected = false;
		/* acquire pairs with the release store in shard_release */
		if (c && atomic_compare_exchange_strong_explicit(&c->owned, &expected, true,
								 memory_order_acquire, memory_order_relaxed))
			s = c;
	}
	if (!s) {
		unsigned idx = atomic_fetch_add_explicit(&n_shards, 1, memory_order_relaxed);
		if (idx >= METRICS_MAX_THREADS) {
			atomic_fetch_sub_explicit(&n_shards, 1, memory_order_relaxed);
			return -ENOSPC;
		}
		s = aligned_alloc(64, (sizeof(*s) + 63) & ~(size_t)63);
		if (!s)
			return -ENOMEM;
		memset(s, 0, sizeof(*s));
		atomic_store_explicit(&s->owned, true, memory_order_relaxed);
		/* release pairs with the acquire loads in shard_sum / above */
		atomic_store_explicit(&shards[idx], s, memory_order_release);
	}
	tls_shard = s;
	pthread_setspecific(shard_key, s);
	return 0;
}

void metrics_add(unsigned series, uint64_t n)
{
	if (series >= METRICS_MAX_SERIES)
		return;
	struct metrics_shard *s = tls_shard;
	if (!s) {
		atomic_fetch_add_explicit(&shared_shard.v[series], n, memory_order_relaxed);
		return;
	}
	/* single writer: relaxed load + store, no RMW; readers only sum */
	uint64_t v = atomic_load_explicit(&s->v[series], memory_order_relaxed);
	atomic_store_explicit(&s->v[series], v + n, memory_order_relaxed);
}

void metrics_set(unsigned series, int64_t value)
{
	if (series >= METRICS_MAX_SERIES)
		return;
	struct metrics_shard *s = tls_shard ? tls_shard : &shared_shard;
	atomic_store_explicit(&s->v[series], (uint64_t)value, memory_order_relaxed);
}

void metrics_observe_ns(unsigned histogram, uint64_t ns)
{
	if (histogram >= METRICS_MAX_SERIES)
		return;
	/* acquire pairs with the release store in family_add */
	const struct metrics_family *f = atomic_load_explicit(&histogram_at[histogram], memory_order_acquire);
	if (!f)
		return;
	unsigned b = 0;
	while (b < f->n_bounds && ns > f->bounds_ns[b])
		b++;
	metrics_inc(histogram + b);
	metrics_add(histogram + f->n_bounds + 1, ns);
}

void metrics_observe(unsigned histogram, double seconds)
{
	/* one bucket search, in ns (where the sum always was): a value within half
	 * a nanosecond of a bound lands where its rounded value does; negative and
	 * NaN durations count as 0 */
	metrics_observe_ns(histogram, seconds > 0 ? (uint64_t)llround(seconds * 1e9) : 0);
}

/* sum of one series over every shard (relaxed: a snapshot). */
static uint64_t shard_sum(unsigned series)
{
	uint64_t sum = atomic_load_explicit(&shared_shard.v[series], memory_order_relaxed);
	unsigned n = atomic_load_explicit(&n_shards, memory_order_acquire);
	if (n > METRICS_MAX_THREADS)
		n = METRICS_MAX_THREADS;
	for (unsigned i = 0; i < n; i++) {
		/* acquire pairs with the release store in metrics_thread_init */
		struct metrics_shard *s = atomic_load_explicit(&shards[i], memory_order_acquire);
		if (s)
			sum += atomic_load_explicit(&s->v[series], memory_order_relaxed);
	}
	return sum;
}

int64_t metrics_value(unsigned series)
{
	if (series >= METRICS_MAX_SERIES)
		return 0;
	return (int64_t)shard_sum(series);
}

/* ---------------------------------------------------------------- rendering */

struct out {
	char *buf;
	size_t cap, len; /* len counts every byte, also past cap */
};

static void out_bytes(struct out *o, const char *p, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, p, n < room ? n : room);
	}
	o->len += n;
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
	char tmp[256]; /* names are at most METRICS_NAME_MAX: a line fits */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* @s with the exposition-format escapes: \\ and \n always, \" in label values. */
static void out_escaped(struct out *o, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			out_bytes(o, "\\\\", 2);
		else if (*s == '\n')
			out_bytes(o, "\\n", 2);
		else if (quote && *s == '"')
			out_bytes(o, "\\\"", 2);
		else
			out_bytes(o, s, 1);
	}
}

static void render_family(struct out *o, const struct metrics_family *f)
{
	static const char *const kinds[] = { "counter", "gauge", "histogram" };
	out_printf(o, "# HELP %s ", f->name);
	out_escaped(o, f->help ? f->help : "", false);
	out_printf(o, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
	if (f->kind == METRICS_HISTOGRAM) {
		uint64_t cum = 0;
		for (unsigned b = 0; b <= f->n_bounds; b++) {
			cum += shard_sum(f->first + b);
			if (b < f->n_bounds)
				out_printf(o, "%s_bucket{le=\"%.9g\"} %llu\n", f->name, f->bounds[b],
					   (unsigned long long)cum);
			else
				out_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", f->name, (unsigned long long)cum);
		}
		out_printf(o, "%s_sum %.9f\n", f->name, (double)shard_sum(f->first + f->n_bounds + 1) / 1e9);
		out_printf(o, "%s_count %llu\n", f->name, (unsigned long long)cum);
		return;
	}
	for (unsigned i = 0; i < f->n_series; i++) {
		uint64_t v = shard_sum(f->first + i);
		out_bytes(o, f->name, strlen(f->name));
		if (f->label) {
			out_printf(o, "{%s=\"", f->label);
			out_escaped(o, f->values[i], true);
			out_bytes(o, "\"}", 2);
		}
		if (f->kind == METRICS_GAUGE)
			out_printf(o, " %lld\n", (long long)(int64_t)v);
		else
			out_printf(o, " %llu\n", (unsigned long long)v);
	}
}

/* ---------------------------------------------------------------- collected gauges */

#define METRICS_MAX_COLLECTORS 8

struct metrics_collector {
	const char *name, *help;
	metrics_collect_fn fn;
	void *arg;
};
static struct metrics_collector collectors[METRICS_MAX_COLLECTORS];
static _Atomic unsigned n_collectors;

struct metrics_sink {
	struct out *o;
	const char *name;
};

void metrics_collector_add(const char *name, const char *help, metrics_collect_fn fn, void *arg)
{
	unsigned n = atomic_load_explicit(&n_collectors, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++)
		if (strcmp(collectors[i].name, name) == 0)
			return; /* a module started twice in one process (tests) */
	const char *why = family_misnamed(METRICS_GAUGE, name, NULL, NULL, 0);
	if (why || n >= METRICS_MAX_COLLECTORS || !fn) {
		log_error("metrics", "cannot register %s: %s", name ? name : "(null)",
			  why ? why : "too many collectors");
		abort();
	}
	collectors[n] = (struct metrics_collector){ name, help, fn, arg };
	/* release pairs with the acquire load in metrics_render */
	atomic_store_explicit(&n_collectors, n + 1, memory_order_release);
}

void metrics_sink_gauge(struct metrics_sink *s, const char *const *label_names,
			const char *const *label_values, unsigned n_labels, int64_t value)
{
	out_bytes(s->o, s->name, strlen(s->name));
	for (unsigned i = 0; i < n_labels; i++) {
		if (!name_ok(label_names[i], true))
			continue; /* a programming error; never break the exposition */
		out_printf(s->o, "%s%s=\"", i ? "," : "{", label_names[i]);
		out_escaped(s->o, label_values[i] ? label_values[i] : "", true);
		out_bytes(s->o, "\"", 1);
	}
	if (n_labels)
		out_bytes(s->o, "}", 1);
	out_printf(s->o, " %lld\n", (long long)value);
}

size_t metrics_render(char *buf, size_t cap)
{
	struct out o = { .buf = buf, .cap = cap, .len = 0 };
	/* acquire pairs with the release store in family_add */
	unsigned nf = atomic_load_explicit(&n_families, memory_order_acquire);
	for (unsigned i = 0; i < nf; i++)
		render_family(&o, &families[i]);
	unsigned nc = atomic_load_explicit(&n_collectors, memory_order_acquire);
	for (unsigned i = 0; i < nc; i++) {
		struct metrics_sink sink = { &o, collectors[i].name };
		out_printf(&o, "# HELP %s ", collectors[i].name);
		out_escaped(&o, collectors[i].help ? collectors[i].help : "", false);
		out_printf(&o, "\n# TYPE %s gauge\n", collectors[i].name);
		collectors[i].fn(&sink, collectors[i].arg);
	}
	if (o.len < cap)
		buf[o.len] = '\0';
	return o.len;
}
