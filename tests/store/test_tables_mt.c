/* test_tables_mt.c - the RCU tables under concurrency (named _mt: also runs
 * under TSan): readers never see a torn or freed user while a writer
 * replaces and deletes entries or reload swaps whole tables; nc
 * check-and-set accepts each count at most once across threads; a JTI binds
 * to exactly one of several racing dialogs; sweeps run beside checks. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu.h>

#include "log.h"
#include "store.h"
#include "store_priv.h"

#define READERS 3
#define CHECKERS 4

static atomic_bool stop;
static _Atomic unsigned long bad_reads, good_reads;

/* ---- users: replace/delete under readers */

static struct store_users *tb;

static void user_fill(struct store_user *u, const char *id, uint8_t gen)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->id, sizeof(u->id), "%s", id);
	u->has_md5 = u->has_sha256 = true;
	memset(u->ha1_md5, gen, sizeof(u->ha1_md5));
	memset(u->ha1_sha256, gen, sizeof(u->ha1_sha256));
	u->perms[0] = gen;
}

static bool user_consistent(const struct store_user *u)
{
	uint8_t gen = u->ha1_md5[0];
	for (size_t i = 0; i < sizeof(u->ha1_md5); i++)
		if (u->ha1_md5[i] != gen)
			return false;
	for (size_t i = 0; i < sizeof(u->ha1_sha256); i++)
		if (u->ha1_sha256[i] != gen)
			return false;
	return u->perms[0] == gen && strcmp(u->id, "1001@example.com") == 0;
}

static void *user_reader(void *arg)
{
	rcu_register_thread();
	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		struct store_user u;
		rcu_read_lock();
		int rc = store_users_get_rcu(tb, SLICE_LIT("1001@example.com"), &u, NULL);
		rcu_read_unlock();
		if (rc == 1) {
			if (!user_consistent(&u))
				atomic_fetch_add(&bad_reads, 1);
			else
				atomic_fetch_add_explicit(&good_reads, 1, memory_order_relaxed);
		}
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_users_replace_delete(void **state)
{
	pthread_t th[READERS];
	tb = store_users_new();
	assert_non_null(tb);
	atomic_store(&stop, false);
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, user_reader, NULL), 0);
	for (unsigned n = 0; n < 20000; n++) {
		struct store_user u;
		user_fill(&u, "1001@example.com", (uint8_t)(n % 251 + 1));
		assert_int_equal(store_users_put(tb, &u, true), 0);
		if (n % 7 == 0)
			store_users_del(tb, SLICE_LIT("1001@example.com"));
		if (n % 1000 == 0)
			store_users_clear(tb);
	}
	atomic_store_explicit(&stop, true, memory_order_release);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&bad_reads), 0);
	/* an entry put stale (fetch raced an invalidation) reads back past any max-age */
	struct store_user u, got;
	uint64_t age = 0;
	user_fill(&u, "1001@example.com", 9);
	assert_int_equal(store_users_put_aged(tb, &u, true, true), 0);
	rcu_read_lock();
	assert_int_equal(store_users_get_rcu(tb, SLICE_LIT("1001@example.com"), &got, &age), 1);
	rcu_read_unlock();
	assert_true(age + 1 >= store_now_sec() && user_consistent(&got));
	store_users_expire(tb, 60);
	assert_int_equal(store_users_count(tb), 0);
	store_users_free(tb);
	tb = NULL;
}

/* ---- whole-table swap through store_reload */

static char dir[64];

static void write_users(const char *perm, const char *extra)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/users.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "users:\n  - id: 1001@example.com\n    password: pw-%s\n    permissions: [%s]\n%s", perm, perm,
		extra);
	fclose(f);
}

static void *swap_reader(void *arg)
{
	int a = store_perm_id("GenA", 4), b = store_perm_id("GenB", 4);
	rcu_register_thread();
	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		struct store_op op = { 0 };
		struct store_user u;
		enum store_rc rc = store_user_get(NULL, &op, SLICE_LIT("1001@example.com"), &u);
		bool has_a = store_perms_has(u.perms, (unsigned)a), has_b = store_perms_has(u.perms, (unsigned)b);
		/* present in every generation, and always one generation whole */
		if (rc != STORE_OK || has_a == has_b)
			atomic_fetch_add(&bad_reads, 1);
		rc = store_user_get(NULL, &op, SLICE_LIT("1002@example.com"), &u);
		if (rc != STORE_OK && rc != STORE_NOT_FOUND)
			atomic_fetch_add(&bad_reads, 1);
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_reload_swap(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/referee-store-mt-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_true(store_perm_intern("GenA", 4) >= 0 && store_perm_intern("GenB", 4) >= 0);
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->realm, sizeof(c->realm), "example.com");
	snprintf(c->store.file, sizeof(c->store.file), "%s/users.yaml", dir);
	write_users("GenA", "");
	char err[256];
	assert_int_equal(store_init(c, err, sizeof(err)), 0);
	atomic_store(&stop, false);
	atomic_store(&bad_reads, 0);
	pthread_t th[READERS];
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, swap_reader, NULL), 0);
	for (int n = 0; n < 60; n++) {
		write_users(n % 2 ? "GenA" : "GenB", n % 3 ? "  - id: 1002@example.com\n    password: x\n" : "");
		assert_int_equal(store_reload(c, err, sizeof(err)), 0);
	}
	atomic_store_explicit(&stop, true, memory_order_release);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&bad_reads), 0);
	store_fini();
	free(c);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- nc: each count accepted at most once, across threads */

#define NONCES 8
#define NC_MAX 3000
static struct store_marks *marks;
static _Atomic unsigned accepted[NONCES][NC_MAX + 1];

static void *nc_checker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	rcu_register_thread();
	for (uint32_t nc = 1; nc <= NC_MAX; nc++) {
		for (unsigned k = 0; k < NONCES; k++) {
			char nonce[16];
			int len = snprintf(nonce, sizeof(nonce), "nonce-%u", (k + seed) % NONCES);
			if (store_marks_nc(marks, slice_make(nonce, (size_t)len), nc, 600) == STORE_OK)
				atomic_fetch_add(&accepted[(k + seed) % NONCES][nc], 1);
		}
	}
	rcu_unregister_thread();
	return NULL;
}

static void *sweeper(void *arg)
{
	rcu_register_thread();
	while (!atomic_load_explicit(&stop, memory_order_acquire)) {
		store_marks_sweep(marks);
		usleep(100);
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_nc_atomic(void **state)
{
	marks = store_marks_new();
	assert_non_null(marks);
	atomic_store(&stop, false);
	pthread_t th[CHECKERS], sw;
	assert_int_equal(pthread_create(&sw, NULL, sweeper, NULL), 0);
	for (uintptr_t i = 0; i < CHECKERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, nc_checker, (void *)i), 0);
	for (int i = 0; i < CHECKERS; i++)
		pthread_join(th[i], NULL);
	atomic_store_explicit(&stop, true, memory_order_release);
	pthread_join(sw, NULL);
	for (unsigned k = 0; k < NONCES; k++) {
		unsigned total = 0;
		for (unsigned nc = 1; nc <= NC_MAX; nc++) {
			if (atomic_load(&accepted[k][nc]) > 1)
				fail_msg("nonce %u nc %u accepted %u times", k, nc, atomic_load(&accepted[k][nc]));
			total += atomic_load(&accepted[k][nc]);
		}
		assert_true(total >= NC_MAX / CHECKERS); /* every count is tried by all: at least the winners */
		assert_int_equal(atomic_load(&accepted[k][NC_MAX]), 1); /* the top count always wins once */
	}
	assert_int_equal(store_marks_count(marks), NONCES);
	store_marks_free(marks);
	marks = NULL;
}

/* ---- jti: one dialog wins the binding */

#define JTIS 500
static _Atomic unsigned jti_wins[JTIS];
static _Atomic unsigned jti_winner[JTIS];

static void *jti_binder(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	char dialog[32];
	int dlen = snprintf(dialog, sizeof(dialog), "call-%u;tag-%u", me, me);
	rcu_register_thread();
	for (unsigned j = 0; j < JTIS; j++) {
		char jti[16];
		int len = snprintf(jti, sizeof(jti), "jti-%u", j);
		struct slice k = slice_make(jti, (size_t)len), d = slice_make(dialog, (size_t)dlen);
		if (store_marks_jti(marks, k, d, 600, true) == STORE_OK) {
			atomic_fetch_add(&jti_wins[j], 1);
			atomic_store(&jti_winner[j], me);
			/* the winner's dialog passes again (retransmission / re-INVITE) */
			if (store_marks_jti(marks, k, d, 600, true) != STORE_OK)
				atomic_fetch_add(&bad_reads, 1);
		}
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_jti_atomic(void **state)
{
	marks = store_marks_new();
	assert_non_null(marks);
	atomic_store(&bad_reads, 0);
	atomic_store(&stop, false);
	pthread_t th[CHECKERS], sw;
	assert_int_equal(pthread_create(&sw, NULL, sweeper, NULL), 0);
	for (uintptr_t i = 0; i < CHECKERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, jti_binder, (void *)i), 0);
	for (int i = 0; i < CHECKERS; i++)
		pthread_join(th[i], NULL);
	atomic_store_explicit(&stop, true, memory_order_release);
	pthread_join(sw, NULL);
	assert_int_equal(atomic_load(&bad_reads), 0);
	for (unsigned j = 0; j < JTIS; j++)
		if (atomic_load(&jti_wins[j]) != 1)
			fail_msg("jti %u bound %u times", j, atomic_load(&jti_wins[j]));
	store_marks_free(marks);
	marks = NULL;
}

/* ---- expiry: dead entries vanish and the key can be used afresh */

static void test_expiry_sweep(void **state)
{
	marks = store_marks_new();
	assert_int_equal(store_marks_nc(marks, SLICE_LIT("old"), 5, 1), STORE_OK);
	assert_int_equal(store_marks_nc(marks, SLICE_LIT("old"), 5, 1), STORE_REJECT);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("j"), SLICE_LIT("d1"), 1, true), STORE_OK);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("j"), SLICE_LIT("d2"), 1, true), STORE_REJECT);
	/* a peek judges without binding */
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("j"), SLICE_LIT("d2"), 1, false), STORE_REJECT);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("j"), SLICE_LIT("d1"), 1, false), STORE_OK);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("free"), SLICE_LIT("d1"), 1, false), STORE_OK);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("free"), SLICE_LIT("d2"), 1, false), STORE_OK);
	assert_int_equal(store_marks_nc(marks, SLICE_LIT("young"), 5, 600), STORE_OK);
	sleep(3); /* coarse clock: past a 1 s ttl for sure */
	assert_int_equal(store_marks_sweep(marks), 2);
	assert_int_equal(store_marks_count(marks), 1);
	assert_int_equal(store_marks_jti(marks, SLICE_LIT("j"), SLICE_LIT("d2"), 1, true), STORE_OK);
	assert_int_equal(store_marks_nc(marks, SLICE_LIT("young"), 5, 600), STORE_REJECT);
	/* bounds: fail closed */
	char big[STORE_KEY_MAX + 2];
	memset(big, 'k', sizeof(big));
	assert_int_equal(store_marks_nc(marks, slice_make(big, sizeof(big)), 1, 10), STORE_REJECT);
	store_marks_free(marks);
	marks = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_replace_delete),
		cmocka_unit_test(test_reload_swap),
		cmocka_unit_test(test_nc_atomic),
		cmocka_unit_test(test_jti_atomic),
		cmocka_unit_test(test_expiry_sweep),
	};
	rcu_register_thread(); /* the main thread reads and reloads too */
	log_set_level(CFG_LOG_WARN);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
