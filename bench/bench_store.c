/* bench_store.c - lookups per second per thread from the store's RCU tables:
 * store_user_get on the file backend (K users, random ids, hits), and
 * nonce-count check-and-set (a fresh nonce = one insert, then increments).
 * Standalone, not part of ctest. Build and run (bench/CMakeLists.txt):
 *   cmake --build build --target bench_store && build/bench/bench_store [threads] [seconds per phase]
 *   (defaults 2 and 1)
 * CPU time only, no I/O; on the shared 2-core machine use at most 2 threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "cfg.h"
#include "log.h"
#include "store.h"

#define USERS 10000

static atomic_bool go, stop;
static double seconds = 1.0;

struct worker_arg {
	int id, phase;
	unsigned long ops, misses;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_thread(void *p)
{
	struct worker_arg *a = p;
	unsigned seed = (unsigned)a->id * 7919u + 1;
	char id[64], nonce[32];
	struct store_user u;
	struct store_op op = { 0 };
	uint32_t nc = 0;
	int nlen = snprintf(nonce, sizeof(nonce), "bench-nonce-%d", a->id);
	rcu_register_thread();
	while (!atomic_load_explicit(&go, memory_order_acquire))
		;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int i = 0; i < 256; i++) {
			if (a->phase == 0) {
				seed = seed * 1103515245u + 12345u;
				int len = snprintf(id, sizeof(id), "%u@example.com", 100000 + (seed >> 8) % USERS);
				if (store_user_get(NULL, &op, (struct slice){ id, (size_t)len }, &u) != STORE_OK)
					a->misses++;
			} else if (store_nc_check(NULL, &op, (struct slice){ nonce, (size_t)nlen }, ++nc, 300) != STORE_OK) {
				a->misses++;
			}
		}
		a->ops += 256;
	}
	rcu_unregister_thread();
	return NULL;
}

static void run_phase(int threads, int phase, const char *what)
{
	pthread_t th[64];
	struct worker_arg args[64];
	atomic_store(&go, false);
	atomic_store(&stop, false);
	for (int i = 0; i < threads; i++) {
		args[i] = (struct worker_arg){ .id = i, .phase = phase };
		pthread_create(&th[i], NULL, bench_thread, &args[i]);
	}
	double t0 = now_s();
	atomic_store_explicit(&go, true, memory_order_release);
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	double dt = now_s() - t0;
	unsigned long total = 0, misses = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += args[i].ops;
		misses += args[i].misses;
	}
	printf("%-28s threads=%d  %.2f M ops/s per thread  (%.0f ns/op, failures %lu)\n", what, threads,
	       (double)total / dt / threads / 1e6, dt * threads * 1e9 / (double)total, misses);
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	if (argc > 2)
		seconds = atof(argv[2]);
	if (threads < 1 || threads > 64 || seconds <= 0 || seconds > 10) {
		fprintf(stderr, "usage: bench_store [threads 1..64] [seconds 0..10]\n");
		return 2;
	}
	char path[] = "/tmp/bench_store_users_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f)
		return 1;
	fprintf(f, "users:\n");
	for (int i = 0; i < USERS; i++)
		fprintf(f, "  - {id: %d@example.com, ha1_md5: 0123456789abcdef0123456789abcdef, permissions: [P%d]}\n",
			100000 + i, i % 100);
	fclose(f);
	static struct cfg c;
	snprintf(c.realm, sizeof(c.realm), "example.com");
	snprintf(c.store.file, sizeof(c.store.file), "%s", path);
	char err[256];
	rcu_register_thread();
	log_set_level(CFG_LOG_WARN);
	if (store_init(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	run_phase(threads, 0, "store_user_get (file, hit)");
	run_phase(threads, 1, "store_nc_check (increment)");
	store_fini();
	unlink(path);
	rcu_unregister_thread();
	return 0;
}
