/* test_rules_mt.c - concurrency of auth's shared state under TSan: worker
 * threads check rules (RCU readers, per-thread pcre2 match data), count
 * failures in the lock-free limiter and make/check nonces (per-thread counter
 * and EVP context) while the main thread swaps the rules with auth_reload.
 * Bounded: a fixed number of iterations per thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include <cmocka.h>

#include "auth_priv.h"
#include "secret.h"

#define THREADS 3
#define ITERATIONS 4000
#define RELOADS 60

static struct cfg *make_cfg(bool strict)
{
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->n_domains = 1;
	snprintf(c->domains[0], CFG_NAME_MAX, "example.com");
	snprintf(c->realm, CFG_NAME_MAX, "example.com");
	c->auth.n_algorithms = 1;
	c->auth.algorithms[0] = CFG_ALGO_MD5;
	c->auth.failure_limit.count = 1000000;
	c->auth.failure_limit.window = 3600;
	c->rules = calloc(2, sizeof(struct cfg_rule));
	assert_non_null(c->rules);
	c->n_rules = 2;
	struct cfg_rule *r = &c->rules[0];
	r->n_hosts = r->n_users = r->n_permissions = 1;
	snprintf(r->hosts[0], CFG_NAME_MAX, "*.example.net");
	snprintf(r->users[0], CFG_NAME_MAX, "re:9[0-9]+");
	snprintf(r->permissions[0], 64, "%s", strict ? "NoAccess" : "ValidUser");
	r = &c->rules[1];
	r->n_hosts = r->n_users = 1;
	snprintf(r->hosts[0], CFG_NAME_MAX, "10.0.0.0/8");
	snprintf(r->users[0], CFG_NAME_MAX, "[2-9]xx");
	return c;
}

static void free_cfg(struct cfg *c)
{
	free(c->rules);
	free(c);
}

static struct secret sec;

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	rcu_register_thread();
	struct sip_uri u, ip;
	sip_uri_parse(SLICE_LIT("sip:9123@gw.example.net"), &u);
	sip_uri_parse(SLICE_LIT("sip:234@10.1.1.1"), &ip);
	struct cfg *c = make_cfg(false);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0xc0000200 + id) };
	uintptr_t bad = 0;
	for (unsigned i = 0; i < ITERATIONS; i++) {
		char missing[64];
		enum auth_rules_verdict v = auth_rules_check(NULL, &u, false, NULL, missing, sizeof(missing));
		if (v == AUTH_RULES_CHALLENGE)
			bad++; /* an identity is never challenged, whichever rules are in place */
		if (auth_rules_check(NULL, &ip, true, NULL, NULL, 0) != AUTH_RULES_ALLOW)
			bad++;
		auth_limit_fail(c, (const struct sockaddr *)&sa);
		(void)auth_limit_is_over(c, (const struct sockaddr *)&sa);
		char n[AUTH_NONCE_LEN];
		auth_nonce_make(&auth_g.nonce_key, SLICE_LIT("example.com"), 1700000000, n);
		if (auth_nonce_check(&auth_g.nonce_key, SLICE_LIT("example.com"), slice_make(n, sizeof(n)), 1700000000,
				     300) != AUTH_NONCE_OK)
			bad++;
	}
	free_cfg(c);
	rcu_unregister_thread();
	return (void *)bad;
}

static void test_reload_while_checking(void **state)
{
	(void)state;
	rcu_register_thread();
	static const uint8_t bytes[16] = "mt-test-secret!!";
	secret_set(&sec, bytes, sizeof(bytes));
	struct cfg *c0 = make_cfg(false);
	char err[256];
	assert_int_equal(auth_init(c0, &sec, err, sizeof(err)), 0);
	pthread_t th[THREADS];
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < RELOADS; i++) {
		struct cfg *c = make_cfg(i & 1);
		assert_int_equal(auth_reload(c, err, sizeof(err)), 0);
		free_cfg(c); /* the compiled rules own copies of everything */
	}
	for (unsigned i = 0; i < THREADS; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		assert_int_equal((uintptr_t)bad, 0);
	}
	auth_fini();
	free_cfg(c0);
	rcu_unregister_thread();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_while_checking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
