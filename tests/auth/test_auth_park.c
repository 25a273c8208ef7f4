/* test_auth_park.c - the STAGE_PARK paths of the auth stages, which the file
 * store never takes: a test-local fake of the four store.h calls auth uses
 * (defining them here keeps the real store objects out of this binary) that
 * parks every first call like the Redis backend does, then answers. Checks
 * that the stages keep their state across resumes, and the 503 + Retry-After
 * answers when the store is unavailable or overloaded (SPEC §6). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include <cmocka.h>

#include "auth_priv.h"
#include "hex.h"
#include "now.h"
#include "secret.h"

/* ---------------------------------------------------------------- fake store */

static enum store_rc user_answer = STORE_OK, nc_answer = STORE_OK;
static unsigned user_calls, nc_calls;
static struct store_user fake_user;
static char perm_names[8][32] = { "ValidUser", "NoAccess" };
static unsigned n_perms = 2;

enum store_rc store_user_get(struct txn *t, struct store_op *op, struct slice id, struct store_user *out)
{
	(void)t;
	user_calls++;
	if (op->state == 0) {
		op->state = 1; /* asked the backend */
		return STORE_PARKED;
	}
	op->state = 0;
	if (user_answer != STORE_OK)
		return user_answer;
	if (!slice_eq(id, slice_from_cstr(fake_user.id)))
		return STORE_NOT_FOUND;
	*out = fake_user;
	return STORE_OK;
}

enum store_rc store_nc_check(struct txn *t, struct store_op *op, struct slice nonce, uint32_t nc, unsigned ttl)
{
	(void)t, (void)nonce, (void)nc, (void)ttl;
	nc_calls++;
	if (op->state == 0) {
		op->state = 1;
		return STORE_PARKED;
	}
	op->state = 0;
	return nc_answer;
}

int store_perm_intern(const char *name, size_t len)
{
	for (unsigned i = 0; i < n_perms; i++)
		if (strlen(perm_names[i]) == len && memcmp(perm_names[i], name, len) == 0)
			return (int)i;
	if (n_perms == 8 || len >= 32)
		return -ENOSPC;
	memcpy(perm_names[n_perms], name, len);
	perm_names[n_perms][len] = '\0';
	return (int)n_perms++;
}

const char *store_perm_name(unsigned idx)
{
	return idx < n_perms ? perm_names[idx] : NULL;
}

/* ---------------------------------------------------------------- fixture */

static struct cfg *cfg;
static struct secret sec;
static struct txn *T;

static int setup(void **state)
{
	(void)state;
	rcu_register_thread();
	cfg = calloc(1, sizeof(*cfg));
	T = calloc(1, sizeof(*T));
	cfg->rules = calloc(1, sizeof(struct cfg_rule));
	if (!cfg || !T || !cfg->rules)
		return -1;
	cfg->n_domains = 1;
	snprintf(cfg->domains[0], CFG_NAME_MAX, "example.com");
	snprintf(cfg->realm, CFG_NAME_MAX, "example.com");
	cfg->auth.n_algorithms = 1;
	cfg->auth.algorithms[0] = CFG_ALGO_SHA256;
	cfg->auth.nonce_ttl = 300;
	cfg->auth.challenge_local_from = true;
	cfg->auth.failure_limit.count = 20;
	cfg->auth.failure_limit.window = 60;
	struct cfg_rule *r = &cfg->rules[0];
	r->line = 7;
	r->n_hosts = r->n_users = r->n_permissions = 1;
	snprintf(r->hosts[0], CFG_NAME_MAX, "gw.example.net");
	snprintf(r->users[0], CFG_NAME_MAX, ".");
	snprintf(r->permissions[0], 64, "Trunk");
	cfg->n_rules = 1;
	static const uint8_t bytes[16] = "park-test-secret";
	secret_set(&sec, bytes, sizeof(bytes));
	snprintf(fake_user.id, sizeof(fake_user.id), "1001@example.com");
	fake_user.has_sha256 = true;
	auth_digest_ha1(CFG_ALGO_SHA256, SLICE_LIT("1001"), SLICE_LIT("example.com"), SLICE_LIT("pw"),
			fake_user.ha1_sha256);
	char err[256];
	if (auth_init(cfg, &sec, err, sizeof(err)) < 0)
		return -1;
	store_perms_add(fake_user.perms, (unsigned)store_perm_intern("Trunk", 5));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	auth_fini();
	free(cfg->rules);
	free(cfg);
	free(T);
	rcu_unregister_thread();
	return 0;
}

static int each(void **state)
{
	(void)state;
	user_answer = nc_answer = STORE_OK;
	user_calls = nc_calls = 0;
	return 0;
}

static char raw[4096];

static void prepare(const char *ruri, const char *from, const char *pa)
{
	memset(T, 0, offsetof(struct txn, arena));
	int n = snprintf(raw, sizeof(raw),
			 "INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <%s>;tag=a\r\n"
			 "To: <%s>\r\nCall-ID: park@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n",
			 ruri, from, ruri, pa ? pa : "");
	memcpy(T->rx, raw, (size_t)n);
	assert_true((size_t)n <= sizeof(T->rx));
	assert_true(txn_received(T, T->rx, (size_t)n) >= 0);
	struct sockaddr_in *sin = (struct sockaddr_in *)&T->src;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	T->cfg = cfg;
}

static const char *good_creds(const char *ruri)
{
	static char line[1024];
	char nonce[AUTH_NONCE_LEN + 1];
	auth_nonce_make(&auth_g.nonce_key, SLICE_LIT("example.com"), now_unix_sec(), nonce);
	nonce[AUTH_NONCE_LEN] = '\0';
	struct auth_creds c = { .username = SLICE_LIT("1001"), .realm = SLICE_LIT("example.com"),
				.nonce = slice_from_cstr(nonce), .uri = slice_from_cstr(ruri),
				.cnonce = SLICE_LIT("cn"), .qop = SLICE_LIT("auth"), .nc_text = SLICE_LIT("00000001"),
				.algo = CFG_ALGO_SHA256 };
	uint8_t resp[AUTH_HASH_MAX];
	auth_digest_response(CFG_ALGO_SHA256, fake_user.ha1_sha256, SLICE_LIT("INVITE"), &c, resp);
	char hex[65];
	hex[hex_encode(resp, 32, hex)] = '\0';
	snprintf(line, sizeof(line),
		 "Proxy-Authorization: Digest username=\"1001\", realm=\"example.com\", nonce=\"%s\", uri=\"%s\", "
		 "response=\"%s\", algorithm=SHA-256, cnonce=\"cn\", qop=auth, nc=00000001\r\n",
		 nonce, ruri, hex);
	return line;
}

/* ---------------------------------------------------------------- tests */

static void test_identity_parks_twice_then_authenticates(void **state)
{
	(void)state;
	prepare("sip:9@gw.example.net", "sip:1001@example.com", good_creds("sip:9@gw.example.net"));
	T->stage_idx = 2;
	assert_int_equal(auth_identity_stage(T), STAGE_PARK); /* user lookup */
	assert_int_equal(auth_identity_stage(T), STAGE_PARK); /* nonce-count check */
	assert_int_equal(auth_identity_stage(T), STAGE_CONTINUE);
	assert_int_equal(user_calls, 2);
	assert_int_equal(nc_calls, 2);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
	assert_true(slice_eq(T->identity, SLICE_LIT("1001@example.com")));
	T->stage_idx = 4;
	assert_int_equal(auth_rules_stage(T), STAGE_CONTINUE); /* holds Trunk */
}

static void test_identity_store_down_503(void **state)
{
	(void)state;
	const enum store_rc answers[2] = { STORE_UNAVAILABLE, STORE_OVERLOAD };
	for (int i = 0; i < 2; i++) {
		user_answer = answers[i];
		prepare("sip:9@gw.example.net", "sip:1001@example.com", good_creds("sip:9@gw.example.net"));
		T->stage_idx = 2;
		assert_int_equal(auth_identity_stage(T), STAGE_PARK);
		assert_int_equal(auth_identity_stage(T), STAGE_REPLY);
		assert_int_equal(T->reply_code, 503);
		assert_int_equal(T->n_reply_hdrs, 1);
		assert_true(slice_eq(T->reply_hdrs[0], SLICE_LIT("Retry-After: 5")));
	}
	/* the nonce-count check failing the same way */
	user_answer = STORE_OK;
	nc_answer = STORE_UNAVAILABLE;
	prepare("sip:9@gw.example.net", "sip:1001@example.com", good_creds("sip:9@gw.example.net"));
	T->stage_idx = 2;
	assert_int_equal(auth_identity_stage(T), STAGE_PARK);
	assert_int_equal(auth_identity_stage(T), STAGE_PARK);
	assert_int_equal(auth_identity_stage(T), STAGE_REPLY);
	assert_int_equal(T->reply_code, 503);
}

static void test_identity_replay_after_park(void **state)
{
	(void)state;
	nc_answer = STORE_REJECT;
	prepare("sip:9@gw.example.net", "sip:1001@example.com", good_creds("sip:9@gw.example.net"));
	T->stage_idx = 2;
	assert_int_equal(auth_identity_stage(T), STAGE_PARK);
	assert_int_equal(auth_identity_stage(T), STAGE_PARK);
	assert_int_equal(auth_identity_stage(T), STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	T->stage_idx = 4;
	assert_int_equal(auth_rules_stage(T), STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
}

static void test_local_from_parks(void **state)
{
	(void)state;
	prepare("sip:2000@example.com", "sip:1001@example.com", NULL);
	T->stage_idx = 2;
	assert_int_equal(auth_identity_stage(T), STAGE_CONTINUE); /* no credentials: nothing to look up */
	T->stage_idx = 4;
	assert_int_equal(auth_rules_stage(T), STAGE_PARK);
	assert_int_equal(auth_rules_stage(T), STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	/* unknown user: forwarded after the park */
	prepare("sip:2000@example.com", "sip:1002@example.com", NULL);
	T->stage_idx = 4;
	assert_int_equal(auth_rules_stage(T), STAGE_PARK);
	assert_int_equal(auth_rules_stage(T), STAGE_CONTINUE);
	/* store down: 503 */
	user_answer = STORE_UNAVAILABLE;
	prepare("sip:2000@example.com", "sip:1001@example.com", NULL);
	T->stage_idx = 4;
	assert_int_equal(auth_rules_stage(T), STAGE_PARK);
	assert_int_equal(auth_rules_stage(T), STAGE_REPLY);
	assert_int_equal(T->reply_code, 503);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_identity_parks_twice_then_authenticates, each),
		cmocka_unit_test_setup(test_identity_store_down_503, each),
		cmocka_unit_test_setup(test_identity_replay_after_park, each),
		cmocka_unit_test_setup(test_local_from_parks, each),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
