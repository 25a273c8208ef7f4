/* store_conf.c - what every store file reads and nothing in store/ below it
 * writes: the settings copied out of the cfg at init (store_conf) and the
 * base of the referee_store_events_total family (STORE_COUNT). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "store_priv.h"

struct store_settings store_conf;
unsigned store_metric_base;
static const char *const store_event_names[STORE_EV_COUNT] = {
	"hit", "miss", "error", "degraded", "overload", "unavailable", "bad_data",
};

unsigned store_conf_max_age(const struct cfg *c)
{
	return c->store.cache_max_age ? c->store.cache_max_age : 60;
}

unsigned store_conf_cache_max(const struct cfg *c)
{
	return c->store.cache_max_entries ? c->store.cache_max_entries : 100000;
}

unsigned store_conf_marks_max(const struct cfg *c)
{
	return c->store.marks_max_entries ? c->store.marks_max_entries : STORE_MARKS_DEFAULT_MAX;
}

int store_conf_load(const struct cfg *c, char *err, size_t errlen)
{
	memset(&store_conf, 0, sizeof(store_conf));
	store_conf.backend = c->store.backend;
	atomic_store(&store_conf.cache_max_age, store_conf_max_age(c));
	store_conf.max_inflight = c->store.max_inflight ? c->store.max_inflight : 1024;
	atomic_store(&store_conf.cache_max_entries, store_conf_cache_max(c));
	atomic_store(&store_conf.marks_max_entries, store_conf_marks_max(c));
	const char *why = c->store.backend == CFG_STORE_REDIS ? cfg_redis_url_parse(c->store.redis, &store_conf.redis)
							      : NULL;
	if (why) {
		unsigned line = cfg_key_line(c, "store.redis");
		snprintf(err, errlen, "%s:%u: store.redis '%s' %s", c->path, line ? line : 1, c->store.redis, why);
		return -EINVAL;
	}
	return 0;
}

void store_events_register(void)
{
	static bool registered; /* families are per process; store_init may run again (tests) */
	if (registered)
		return;
	store_metric_base = metrics_counter("referee_store_events_total",
					    "Store lookups and checks by outcome (degraded: decided by the "
					    "local table while Redis was away)",
					    "event", store_event_names, STORE_EV_COUNT);
	registered = true;
}
