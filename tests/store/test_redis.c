/* test_redis.c - the Redis backend without a server (URL parsing, key names,
 * Redis unreachable: uncached users UNAVAILABLE, nc/jti fall back to the local
 * tables, not usable) and, as "store_test_redis driver URL [PERM...] < commands", the
 * client that tests/integration/test_store_redis.sh runs against a real
 * redis-server: one store instance on this thread driven by store_poll(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu.h>

#include "log.h"
#include "store.h"
#include "store_priv.h"

static void test_url_and_keys(void **state)
{
	char key[64];
	/* URLs: tests/store/test_redis_ha.c (cfg_redis_url_parse) */
	assert_true(store_key_user(key, sizeof(key), SLICE_LIT("1001@example.com")) > 0);
	assert_string_equal(key, "referee:user:1001@example.com");
	assert_true(store_key_nc(key, sizeof(key), SLICE_LIT("abc")) > 0);
	assert_string_equal(key, "referee:nc:abc");
	assert_true(store_key_jti(key, sizeof(key), SLICE_LIT("j1")) > 0);
	assert_string_equal(key, "referee:jti:j1");
	assert_int_equal(store_key_jti(key, 8, SLICE_LIT("j1")), -ENAMETOOLONG);
	assert_int_equal(strlen(store_script_sha()), 40);
}

static struct cfg *cfg_redis(const char *url)
{
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->realm, sizeof(c->realm), "example.com");
	c->store.backend = CFG_STORE_REDIS;
	snprintf(c->store.redis, sizeof(c->store.redis), "%s", url);
	c->store.cache_max_age = 60;
	c->store.max_inflight = 4;
	return c;
}

static void test_redis_down(void **state)
{
	char url[64], err[256];
	/* port 1 (tcpmux) is served nowhere we test: connect is refused at once */
	snprintf(url, sizeof(url), "redis://127.0.0.1:1");
	struct cfg *c = cfg_redis(url);
	assert_int_equal(store_init(c, err, sizeof(err)), 0);
	assert_int_equal(store_thread_attach(NULL), 0);
	for (int i = 0; i < 5; i++)
		store_poll(20);
	assert_false(store_is_usable());
	struct store_op op = { 0 };
	struct store_user u;
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1001@example.com"), &u), STORE_UNAVAILABLE);
	/* nonce-count and grants keep working on the local tables, counted degraded */
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n"), 1, 30), STORE_OK);
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n"), 1, 30), STORE_REJECT);
	assert_int_equal(store_jti_bind(NULL, &op, SLICE_LIT("j"), SLICE_LIT("d1"), 30), STORE_OK);
	assert_int_equal(store_jti_bind(NULL, &op, SLICE_LIT("j"), SLICE_LIT("d2"), 30), STORE_REJECT);
	struct store_stats st;
	store_stats_get(&st);
	assert_int_equal(st.degraded, 2);
	assert_int_equal(st.unavailable, 1);
	store_thread_detach();
	store_fini();
	/* a bad URL is refused at init */
	snprintf(c->store.redis, sizeof(c->store.redis), "redis:/nope");
	assert_int_equal(store_init(c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "store.redis 'redis:/nope'"));
	free(c);
}

/* ================================================================ driver */

static const char *rc_name(enum store_rc rc)
{
	static const char *const names[] = { "OK", "NOT_FOUND", "REJECT", "PARKED", "UNAVAILABLE", "OVERLOAD" };
	return (unsigned)rc < 6 ? names[rc] : "?";
}

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* wait_done - drive the loop until the parked op has its answer (3 s at most). */
static bool wait_done(struct store_op *op)
{
	uint64_t end = ms_now() + 3000;
	while (!store_op_is_done(op) && ms_now() < end)
		store_poll(50);
	return store_op_is_done(op);
}

static enum store_rc drv_get(const char *id, struct store_user *u)
{
	struct store_op op = { 0 };
	enum store_rc rc = store_user_get(NULL, &op, slice_from_cstr(id), u);
	if (rc == STORE_PARKED && wait_done(&op))
		rc = store_user_get(NULL, &op, slice_from_cstr(id), u);
	return rc;
}

static enum store_rc drv_nc(const char *nonce, uint32_t nc)
{
	struct store_op op = { 0 };
	enum store_rc rc = store_nc_check(NULL, &op, slice_from_cstr(nonce), nc, 60);
	if (rc == STORE_PARKED && wait_done(&op))
		rc = store_nc_check(NULL, &op, slice_from_cstr(nonce), nc, 60);
	return rc;
}

static enum store_rc drv_jti(const char *jti, const char *dialog)
{
	struct store_op op = { 0 };
	enum store_rc rc = store_jti_bind(NULL, &op, slice_from_cstr(jti), slice_from_cstr(dialog), 60);
	if (rc == STORE_PARKED && wait_done(&op))
		rc = store_jti_bind(NULL, &op, slice_from_cstr(jti), slice_from_cstr(dialog), 60);
	return rc;
}

/* drv_line - one command: get ID | until STATE ID MS | expect-perms ID A,B MS |
 * nc NONCE FROM TO | nc-many PREFIX FROM TO NC | burst N PREFIX | jti JTI DIALOG | poll MS | wait-file PATH | touch PATH |
 * usable. One result line each (touch prints nothing). */
static void drv_line(char *line)
{
	char *argv[6] = { 0 };
	int argc = 0;
	for (char *tok = strtok(line, " \t\n"); tok && argc < 6; tok = strtok(NULL, " \t\n"))
		argv[argc++] = tok;
	if (argc == 0 || argv[0][0] == '#')
		return;
	struct store_user u;
	if (strcmp(argv[0], "get") == 0 && argc == 2) {
		enum store_rc rc = drv_get(argv[1], &u);
		char perms[512] = "";
		if (rc == STORE_OK)
			store_perms_format(u.perms, perms, sizeof(perms));
		printf("get %s %s%s%s\n", argv[1], rc_name(rc), rc == STORE_OK ? " perms=" : "", perms);
	} else if (strcmp(argv[0], "until") == 0 && argc == 4) {
		/* retry get until it returns STATE (recovery, invalidation) */
		uint64_t end = ms_now() + (uint64_t)atoi(argv[3]);
		enum store_rc rc = drv_get(argv[2], &u);
		while (strcmp(rc_name(rc), argv[1]) != 0 && ms_now() < end) {
			store_poll(50);
			rc = drv_get(argv[2], &u);
		}
		printf("until %s %s %s\n", argv[1], argv[2], rc_name(rc));
	} else if (strcmp(argv[0], "expect-perms") == 0 && argc == 4) {
		/* retry get until the permissions read back equal LIST (invalidation reached us) */
		uint64_t end = ms_now() + (uint64_t)atoi(argv[3]);
		char perms[512] = "";
		for (;;) {
			enum store_rc rc = drv_get(argv[1], &u);
			perms[0] = '\0';
			if (rc == STORE_OK)
				store_perms_format(u.perms, perms, sizeof(perms));
			if (strcmp(perms, argv[2]) == 0 || ms_now() >= end)
				break;
			store_poll(50);
		}
		printf("expect-perms %s %s\n", argv[1], strcmp(perms, argv[2]) == 0 ? "ok" : perms);
	} else if (strcmp(argv[0], "nc") == 0 && argc == 4) {
		unsigned ok = 0;
		for (long n = atol(argv[2]); n <= atol(argv[3]); n++) {
			if (drv_nc(argv[1], (uint32_t)n) == STORE_OK) {
				ok++;
				printf("nc-accepted %s %ld\n", argv[1], n);
			}
		}
		printf("nc %s accepted=%u\n", argv[1], ok);
	} else if (strcmp(argv[0], "nc-many") == 0 && argc == 5) {
		/* nonces PREFIX-i for i from FROM to TO (either direction), each with count NC */
		long from = atol(argv[2]), to = atol(argv[3]), step = from <= to ? 1 : -1;
		unsigned ok = 0;
		for (long i = from;; i += step) {
			char nonce[64];
			snprintf(nonce, sizeof(nonce), "%s-%ld", argv[1], i);
			if (drv_nc(nonce, (uint32_t)atol(argv[4])) == STORE_OK) {
				ok++;
				printf("nc-accepted %s\n", nonce);
			}
			if (i == to)
				break;
		}
		printf("nc-many %s accepted=%u\n", argv[1], ok);
	} else if (strcmp(argv[0], "burst") == 0 && argc == 3) {
		/* N uncached lookups started before any reply can arrive: max_inflight park, the rest overload */
		static struct store_op ops[1000];
		static char ids[1000][64];
		int n = atoi(argv[1]) < 1000 ? atoi(argv[1]) : 1000, parked = 0, overload = 0, done = 0;
		for (int i = 0; i < n; i++) {
			snprintf(ids[i], sizeof(ids[i]), "%s-%d@example.com", argv[2], i);
			memset(&ops[i], 0, sizeof(ops[i]));
			enum store_rc rc = store_user_get(NULL, &ops[i], slice_from_cstr(ids[i]), &u);
			parked += rc == STORE_PARKED;
			overload += rc == STORE_OVERLOAD;
		}
		uint64_t end = ms_now() + 3000;
		while (ms_now() < end) {
			done = 0;
			for (int i = 0; i < n; i++)
				done += store_op_is_done(&ops[i]);
			if (done == parked)
				break;
			store_poll(20);
		}
		printf("burst parked=%d overload=%d answered=%d\n", parked, overload, done);
	} else if (strcmp(argv[0], "jti") == 0 && argc == 3) {
		printf("jti %s %s %s\n", argv[1], argv[2], rc_name(drv_jti(argv[1], argv[2])));
	} else if (strcmp(argv[0], "poll") == 0 && argc == 2) {
		uint64_t end = ms_now() + (uint64_t)atoi(argv[1]);
		while (ms_now() < end)
			store_poll(20);
		printf("poll\n");
	} else if (strcmp(argv[0], "wait-file") == 0 && argc == 2) {
		uint64_t end = ms_now() + 20000;
		while (access(argv[1], F_OK) != 0 && ms_now() < end)
			store_poll(20);
		printf("wait-file %s\n", access(argv[1], F_OK) == 0 ? "ok" : "timeout");
	} else if (strcmp(argv[0], "touch") == 0 && argc == 2) {
		fflush(stdout);
		FILE *f = fopen(argv[1], "w");
		if (f)
			fclose(f);
	} else if (strcmp(argv[0], "usable") == 0) {
		printf("usable %s\n", store_is_usable() ? "yes" : "no");
	} else {
		printf("error unknown command '%s'\n", argv[0]);
	}
	fflush(stdout);
}

static int driver(const char *url)
{
	struct cfg *c = cfg_redis(url);
	c->store.max_inflight = 64;
	c->store.cache_max_age = 60;
	char err[256], line[512];
	if (store_init(c, err, sizeof(err)) < 0 || store_thread_attach(NULL) < 0) {
		fprintf(stderr, "driver: %s\n", err);
		free(c);
		return 1;
	}
	uint64_t end = ms_now() + 3000; /* connect first */
	while (!store_is_usable() && ms_now() < end)
		store_poll(20);
	while (fgets(line, sizeof(line), stdin))
		drv_line(line);
	store_thread_detach();
	store_fini();
	free(c);
	return 0;
}

int main(int argc, char **argv)
{
	rcu_register_thread();
	int rc;
	if (argc >= 3 && strcmp(argv[1], "driver") == 0) {
		/* "driver URL [PERMISSION...]": the names referee would intern from its rules */
		for (int i = 3; i < argc; i++)
			store_perm_intern(argv[i], strlen(argv[i]));
		rc = driver(argv[2]);
	} else {
		log_set_level(CFG_LOG_ERROR);
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(test_url_and_keys),
			cmocka_unit_test(test_redis_down),
		};
		rc = cmocka_run_group_tests(tests, NULL, NULL);
	}
	rcu_unregister_thread();
	return rc;
}
