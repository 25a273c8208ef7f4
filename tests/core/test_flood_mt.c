/* test_flood_mt.c - the flood table swapped by reloads while workers use it
 * (flood_reload, SPEC §13): reader threads check sources inside their RCU
 * read-side section as workers do, the main thread changes
 * limits.sources_max back and forth. Nothing may read a freed table (ASan,
 * TSan: this file runs in the TSan build too), and a source kept at its
 * limit by the readers is still limited after every resize. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <urcu.h>

#include "cfg.h"
#include "flood.h"

#define READERS 3

static atomic_bool stop;
static _Atomic unsigned long checks;
static uint64_t t_base;

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

static struct sockaddr_in v4(uint32_t host)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(host);
	return a;
}

static void *reader(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, n = 0;
	rcu_register_thread();
	while (!atomic_load(&stop)) {
		struct sockaddr_in a = v4(0xc6336400u + (id << 16) + (n++ & 0xffff)); /* 198.51.100.0 + ... */
		rcu_read_lock();
		/* their TATs stay below t_base + 1.05 s, the hot source's is t_base + 2 s */
		(void)flood_check((struct sockaddr *)&a, t_base + (n & 0xfffff), 200, 400);
		rcu_read_unlock();
		atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed);
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_reload_while_checking(void **state)
{
	(void)state;
	struct cfg c;
	memset(&c, 0, sizeof(c));
	c.limits.sources_max = 4096;
	assert_int_equal(flood_init(&c), 0);
	t_base = mono_us() + 300000000; /* far ahead: every source starts fresh */
	struct sockaddr_in hot = v4(0xcb007101u); /* 203.0.113.1 */
	for (int i = 0; i < 400; i++)
		assert_true(flood_check((struct sockaddr *)&hot, t_base, 200, 400));
	pthread_t th[READERS];
	for (unsigned i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)i), 0);
	static const unsigned sizes[] = { 100000, 16, 4096, 1000, 65536 };
	unsigned limited = 0;
	for (unsigned r = 0; r < 40; r++) {
		c.limits.sources_max = sizes[r % 5];
		assert_int_equal(flood_reload(&c), 0);
		limited += !flood_check((struct sockaddr *)&hot, t_base, 200, 400);
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	print_message("%lu checks by %d readers across 40 reloads; hot source limited after %u of them\n",
		      (unsigned long)atomic_load(&checks), READERS, limited);
	assert_true(atomic_load(&checks) > 0);
	/* the readers' sources have older TATs: the hot source wins its set at every resize */
	assert_int_equal(limited, 40);
	flood_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_while_checking),
	};
	return cmocka_run_group_tests_name("test_flood_mt", tests, NULL, NULL);
}
