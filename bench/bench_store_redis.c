/* bench_store_redis.c - the Redis miss path of the store: user lookups that
 * are not cached, answered by a real redis-server (HGETALL on the worker's own
 * async connection, pipelined up to a window of parked lookups), per thread.
 * Loads USERS users under the SPEC §6 keys first, looks each one up once
 * (every lookup is a miss), then looks them all up again (hits from the cache).
 * Standalone, not part of ctest. Build and run (needs a redis-server on loopback):
 *   cmake --build build --target bench_store_redis
 *   redis-server --port 6390 --save '' --appendonly no &
 *   build/bench/bench_store_redis redis://127.0.0.1:6390 [users] [window]
 * Any store.redis URL works (redis-sentinel://, redis-cluster://: the same path through
 * the discovered master or the slot map); with those the users are loaded first by
 * bench/redisha_load_users.sh (this program pipelines them only into a redis:// server).
 * Prints lookups/s and this process's CPU µs per lookup (Redis's own CPU not included). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <urcu.h>

#include "cfg.h"
#include "log.h"
#include "store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* load_users - HSET referee:user:<id> through one pipelined synchronous connection. */
static int load_users(const char *host, unsigned port, unsigned db, int users)
{
	redisContext *r = redisConnect(host, (int)port);
	if (!r || r->err) {
		fprintf(stderr, "bench_store_redis: cannot connect to %s:%u\n", host, port);
		return -1;
	}
	redisAppendCommand(r, "SELECT %u", db);
	for (int i = 0; i < users; i++)
		redisAppendCommand(r, "HSET referee:user:%d@example.com ha1_md5 %s permissions %s", 200000 + i,
				   "0123456789abcdef0123456789abcdef", "LocalDialing");
	int rc = 0;
	for (int i = 0; i < users + 1; i++) {
		redisReply *rep = NULL;
		if (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep || rep->type == REDIS_REPLY_ERROR)
			rc = -1;
		freeReplyObject(rep);
	}
	redisFree(r);
	return rc;
}

/* run_pass - look every user up once with up to @window lookups parked. */
static int run_pass(int users, int window, const char *what)
{
	struct store_op *ops = calloc((size_t)window, sizeof(*ops));
	int *who = calloc((size_t)window, sizeof(*who));
	struct store_user u;
	char id[64];
	int next = 0, done = 0, failed = 0, parked = 0;
	double t0 = now_s(), c0 = cpu_s();
	while (done < users) {
		for (int s = 0; s < window; s++) {
			struct store_op *op = &ops[s];
			if (op->state == 0 && next < users) { /* free slot: start a lookup */
				who[s] = next++;
			} else if (op->state == 0 || !store_op_is_done(op)) {
				continue;
			}
			int len = snprintf(id, sizeof(id), "%d@example.com", 200000 + who[s]);
			enum store_rc rc = store_user_get(NULL, op, (struct slice){ id, (size_t)len }, &u);
			if (rc == STORE_PARKED) {
				parked++;
				continue;
			}
			failed += rc != STORE_OK;
			done++;
			*op = (struct store_op){ 0 };
		}
		if (store_poll(parked ? 10 : 0) < 0)
			break;
		parked = 0;
	}
	double dt = now_s() - t0, dc = cpu_s() - c0;
	printf("%-30s %d lookups  %.0f lookups/s  %.2f us CPU/lookup  failures %d\n", what, users,
	       (double)users / dt, dc * 1e6 / users, failed);
	free(ops);
	free(who);
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_store_redis redis://127.0.0.1:PORT[/db] [users] [window]\n");
		return 2;
	}
	int users = argc > 2 ? atoi(argv[2]) : 50000, window = argc > 3 ? atoi(argv[3]) : 256;
	struct cfg_redis_url url;
	const char *bad = cfg_redis_url_parse(argv[1], &url);
	if (bad || users < 1 || window < 1 || window > 4096) {
		fprintf(stderr, "bench_store_redis: bad arguments (%s %s, users, window 1..4096)\n", argv[1],
			bad ? bad : "");
		return 2;
	}
	if (url.kind == CFG_REDIS_SINGLE && load_users(url.hosts[0].host, url.hosts[0].port, url.db, users) < 0)
		return 1;
	static struct cfg c;
	snprintf(c.realm, sizeof(c.realm), "example.com");
	c.n_domains = 1;
	snprintf(c.domains[0], sizeof(c.domains[0]), "example.com");
	c.store.backend = CFG_STORE_REDIS;
	snprintf(c.store.redis, sizeof(c.store.redis), "%s", argv[1]);
	c.store.cache_max_age = 600;
	c.store.max_inflight = (unsigned)window;
	char err[256];
	rcu_register_thread();
	log_set_level(CFG_LOG_WARN);
	/* referee interns the permission names its rules use; unknown names make a user unknown */
	if (store_perm_intern("LocalDialing", 12) < 0 || store_init(&c, err, sizeof(err)) < 0 ||
	    store_thread_attach(NULL) < 0) {
		fprintf(stderr, "bench_store_redis: %s\n", err);
		return 1;
	}
	for (int i = 0; i < 300 && !store_is_usable(); i++) /* discover (sentinels, slot map), connect */
		store_poll(10);
	/* and let the invalidation subscriber subscribe: its first subscription makes what is
	 * cached by then stale (fetched again), which would count misses in the hit pass */
	for (int i = 0; i < 50; i++)
		store_poll(10);
	int rc = run_pass(users, window, "store_user_get (redis, miss)");
	rc |= run_pass(users, window, "store_user_get (cached, hit)");
	store_thread_detach();
	store_fini();
	rcu_unregister_thread();
	return rc ? 1 : 0;
}
