/* test_rules.c - permission rules (SPEC §4): the sipXecs EnforceAuthRulesTest
 * and AuthRulesUrlMappingTest cases of reference §6.3 / §6.5, encoded from the
 * reference text; CIDR, *.domain, ports, digit and re: user patterns,
 * ValidUser, NoAccess, "Requires A|B", compile errors with file:line, reload,
 * and the explain text for referee-admin. */
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
#include "secret.h"

#define MAX_TEST_RULES 32

static struct cfg *cfg_new(void)
{
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "/etc/referee/test.yaml");
	c->n_domains = 1;
	snprintf(c->domains[0], sizeof(c->domains[0]), "enforce.example.com");
	snprintf(c->realm, sizeof(c->realm), "enforce.example.com");
	c->auth.n_algorithms = 2;
	c->auth.algorithms[0] = CFG_ALGO_SHA256;
	c->auth.algorithms[1] = CFG_ALGO_MD5;
	c->auth.nonce_ttl = 300;
	c->rules = calloc(MAX_TEST_RULES, sizeof(struct cfg_rule));
	assert_non_null(c->rules);
	return c;
}

static void cfg_del(struct cfg *c)
{
	free(c->rules);
	free(c);
}

/* add_rule - items separated by ',' in each list ("" = empty list). */
static void add_rule(struct cfg *c, const char *hosts, const char *users, const char *perms)
{
	struct cfg_rule *r = &c->rules[c->n_rules];
	r->line = 10 + 3 * c->n_rules;
	const char *lists[3] = { hosts, users, perms };
	for (int l = 0; l < 3; l++) {
		char tmp[1024];
		snprintf(tmp, sizeof(tmp), "%s", lists[l]);
		for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (l == 0)
				snprintf(r->hosts[r->n_hosts++], CFG_NAME_MAX, "%s", tok);
			else if (l == 1)
				snprintf(r->users[r->n_users++], CFG_NAME_MAX, "%s", tok);
			else
				snprintf(r->permissions[r->n_permissions++], 64, "%s", tok);
		}
	}
	c->n_rules++;
}

static struct secret sec;

static void install(struct cfg *c)
{
	char err[512] = "";
	int rc = auth_init(c, &sec, err, sizeof(err));
	if (rc != 0)
		fail_msg("auth_init: %s", err);
}

static enum auth_rules_verdict check(const char *uri, bool anonymous, const uint64_t perms[2], char *missing)
{
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(slice_from_cstr(uri), &u), 0);
	static char scratch[256];
	return auth_rules_check(NULL, &u, anonymous, perms, missing ? missing : scratch, 256);
}

static void perms_of(uint64_t set[2], const char *names)
{
	set[0] = set[1] = 0;
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s", names);
	for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int id = store_perm_intern(tok, strlen(tok));
		assert_true(id >= 0);
		store_perms_add(set, (unsigned)id);
	}
}

static int setup(void **state)
{
	(void)state;
	rcu_register_thread();
	static const uint8_t bytes[16] = "0123456789abcdef";
	return secret_set(&sec, bytes, sizeof(bytes));
}

static int teardown(void **state)
{
	(void)state;
	auth_fini();
	rcu_unregister_thread();
	return 0;
}

/* ---------------------------------------------------------------- reference §6.3 */

static void test_enforce_auth_rules(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "emergency-gw", "911", "");
	add_rule(c, "lodge", ".", "hunting");
	add_rule(c, "boat", ".", "fishing");
	add_rule(c, "forbidden", ".", "NoAccess");
	add_rule(c, "both", ".", "hunting,fishing");
	install(c);
	uint64_t mightyhunter[2], supercaster[2], nobody[2], both[2];
	perms_of(mightyhunter, "hunting");
	perms_of(supercaster, "fishing");
	perms_of(nobody, "");
	perms_of(both, "hunting,fishing");
	char missing[256];

	/* isAuthorized: {hunting, fishing} with both, or with only one of them */
	assert_int_equal(check("sip:x@both", false, both, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:x@both", false, mightyhunter, NULL), AUTH_RULES_ALLOW);
	/* testNoPermNeededOut / ...AuthIdentity: nothing required, with or without identity */
	assert_int_equal(check("sip:911@emergency-gw", true, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:911@emergency-gw", false, supercaster, NULL), AUTH_RULES_ALLOW);
	/* testForbidden: anonymous -> challenge (empty reason); identity -> Requires NoAccess */
	assert_int_equal(check("sip:somewhere@forbidden", true, nobody, missing), AUTH_RULES_CHALLENGE);
	assert_string_equal(missing, "");
	assert_int_equal(check("sip:somewhere@forbidden", false, nobody, missing), AUTH_RULES_DENY);
	assert_string_equal(missing, "NoAccess");
	/* testNoChallengeAuth, testChallengeAuthSpiral */
	assert_int_equal(check("sip:user@boat", false, supercaster, missing), AUTH_RULES_ALLOW);
	assert_string_equal(missing, "");
	assert_int_equal(check("sip:user@lodge", true, nobody, NULL), AUTH_RULES_CHALLENGE);
	/* testAuthIdentity */
	assert_int_equal(check("sip:user@boat", false, mightyhunter, missing), AUTH_RULES_DENY);
	assert_string_equal(missing, "fishing");
	assert_int_equal(check("sip:user@lodge", false, supercaster, missing), AUTH_RULES_DENY);
	assert_string_equal(missing, "hunting");
	assert_int_equal(check("sip:user@lodge", false, mightyhunter, NULL), AUTH_RULES_ALLOW);
	/* "Requires A|B": both unmet, sorted by name as sipXecs does (reference §3.3) */
	assert_int_equal(check("sip:x@both", false, nobody, missing), AUTH_RULES_DENY);
	assert_string_equal(missing, "fishing|hunting");
	/* 911 is only the exact user: 9111 at the same host matches no rule */
	assert_int_equal(check("sip:9111@emergency-gw", true, nobody, NULL), AUTH_RULES_ALLOW);
	cfg_del(c);
}

/* ---------------------------------------------------------------- reference §6.5 */

static void test_url_mapping(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	/* mapdata/authrules.xml: four permissions in document order ("eat like a pig" is not a
	 * valid permission name here: names are tokens) */
	add_rule(c, "thisdomain,thishost.thisdomain", "thisuser,thatuser", "steal,lie,cheat,eat_like_a_pig");
	add_rule(c, "emptyhost", ".", "");
	add_rule(c, "example.com:4242", ".", "NoAccess");
	add_rule(c, "*.example.com", ".", "NoAccess");
	add_rule(c, "192.168/16", ".", "NoAccess");
	install(c);
	uint64_t nobody[2] = { 0, 0 }, liar[2];
	perms_of(liar, "lie");
	char missing[256];
	const char *hit[] = { "sip:thisuser@thisdomain", "sip:thatuser@thisdomain", "sip:thisuser@thishost.thisdomain",
			      "sip:thatuser@THISHOST.thisdomain" };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(check(hit[i], false, nobody, missing), AUTH_RULES_DENY);
		assert_string_equal(missing, "cheat|eat_like_a_pig|lie|steal");
		assert_int_equal(check(hit[i], false, liar, NULL), AUTH_RULES_ALLOW);
	}
	assert_int_equal(check("sip:otheruser@thisdomain", false, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:thisuser@otherdomain", false, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:anyone@emptyhost", false, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:anyone@emptyhost", true, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:u@example.com:4242", false, nobody, missing), AUTH_RULES_DENY);
	assert_string_equal(missing, "NoAccess");
	assert_int_equal(check("sip:u@EXAMPLE.COM:4242", false, nobody, NULL), AUTH_RULES_DENY);
	assert_int_equal(check("sip:u@a.b.c.d.e.f.example.com", false, nobody, NULL), AUTH_RULES_DENY);
	assert_int_equal(check("sip:u@example.com", false, nobody, NULL), AUTH_RULES_DENY); /* *.dom also matches dom */
	assert_int_equal(check("sip:u@notexample.com", false, nobody, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:u@192.168.1.1", false, nobody, NULL), AUTH_RULES_DENY);
	assert_int_equal(check("sip:u@192.169.1.1", false, nobody, NULL), AUTH_RULES_ALLOW);
	cfg_del(c);
}

/* ---------------------------------------------------------------- hosts and ports */

static void test_hosts_ports_cidr(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "gw.example.net", ".", "A");
	add_rule(c, "gw2.example.net:5080", ".", "B");
	add_rule(c, "gw3.example.net:5060", ".", "C");
	add_rule(c, "10.0.0.0/8,2001:db8::/32", ".", "D");
	add_rule(c, "[2001:db9::1]:5070,198.51.100.7", ".", "E");
	install(c);
	uint64_t none[2] = { 0, 0 };
	char m[256];
	/* no port in the pattern matches none, 5060 and 5061 */
	assert_int_equal(check("sip:1@gw.example.net", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1@gw.example.net:5060", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1@gw.example.net:5061", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1@gw.example.net:5062", false, none, m), AUTH_RULES_ALLOW);
	/* a port in the pattern: equal, or 5060/5061 against none */
	assert_int_equal(check("sip:1@gw2.example.net:5080", false, none, m), AUTH_RULES_DENY);
	assert_string_equal(m, "B");
	assert_int_equal(check("sip:1@gw2.example.net", false, none, m), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:1@gw3.example.net", false, none, m), AUTH_RULES_DENY);
	assert_string_equal(m, "C");
	assert_int_equal(check("sip:1@gw3.example.net:5070", false, none, m), AUTH_RULES_ALLOW);
	/* CIDR matches IP literals only */
	assert_int_equal(check("sip:1@10.1.2.3", false, none, m), AUTH_RULES_DENY);
	assert_string_equal(m, "D");
	assert_int_equal(check("sip:1@10.1.2.3:7000", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1@11.1.2.3", false, none, m), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:1@[2001:db8::5]", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1@[2001:db7::5]", false, none, m), AUTH_RULES_ALLOW);
	/* IP literal patterns compare addresses, not spellings */
	assert_int_equal(check("sip:1@[2001:DB9:0::1]:5070", false, none, m), AUTH_RULES_DENY);
	assert_string_equal(m, "E");
	assert_int_equal(check("sip:1@[2001:db9::1]", false, none, m), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:1@198.51.100.7:5061", false, none, m), AUTH_RULES_DENY);
	cfg_del(c);
}

/* ---------------------------------------------------------------- user patterns */

static bool user_matches(const char *pat, const char *user)
{
	struct auth_user_pat p;
	char why[128];
	assert_int_equal(auth_user_pat_compile(pat, &p, why, sizeof(why)), 0);
	bool r = auth_user_pat_match(&p, slice_from_cstr(user));
	auth_user_pat_free(&p);
	return r;
}

static void test_user_patterns(void **state)
{
	(void)state;
	assert_true(user_matches("9xxxx", "91234"));
	assert_false(user_matches("9xxxx", "9123"));
	assert_false(user_matches("9xxxx", "912345"));
	assert_false(user_matches("9xxxx", "81234"));
	assert_true(user_matches(".", ""));
	assert_true(user_matches(".", "anything at all"));
	assert_true(user_matches("911", "911"));
	assert_false(user_matches("911", "9111"));
	assert_true(user_matches("7xxx", "7000"));
	assert_true(user_matches("[2-9]xx", "411"));
	assert_false(user_matches("[2-9]xx", "111"));
	assert_true(user_matches("[^0]x", "12"));
	assert_false(user_matches("[^0]x", "02"));
	assert_true(user_matches("011.", "01144123"));
	assert_true(user_matches("011.", "011"));
	assert_true(user_matches("1.9", "1239"));
	assert_false(user_matches("1.9", "1238"));
	assert_true(user_matches("+1xxx", "+1555"));     /* + is literal */
	assert_true(user_matches("\\x1", "x1"));         /* escaped x is a literal x */
	assert_false(user_matches("\\x1", "y1"));
	assert_true(user_matches("re:^(10|20)[0-9]{2}$", "1042"));
	assert_false(user_matches("re:(10|20)[0-9]{2}", "10423")); /* anchored both ends */
	assert_true(user_matches("re:mighty.*", "mightyhunter"));
	assert_false(user_matches("re:hunter", "mightyhunter"));

	struct auth_user_pat p;
	char why[128];
	assert_int_equal(auth_user_pat_compile("[2-9", &p, why, sizeof(why)), -EINVAL);
	assert_int_equal(auth_user_pat_compile("[]", &p, why, sizeof(why)), -EINVAL);
	assert_int_equal(auth_user_pat_compile("12\\", &p, why, sizeof(why)), -EINVAL);
	assert_int_equal(auth_user_pat_compile("re:(", &p, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "regex"));
}

static void test_user_in_rules_and_escapes(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "*", "re:\\+44.*", "International");
	add_rule(c, "*", "9xxxx,[2-9]xxxxxx", "Local");
	install(c);
	uint64_t none[2] = { 0, 0 };
	char m[256];
	assert_int_equal(check("sip:%2B4420123@any.where", false, none, m), AUTH_RULES_DENY); /* %-decoded */
	assert_string_equal(m, "International");
	assert_int_equal(check("sip:91234@x", false, none, m), AUTH_RULES_DENY);
	assert_string_equal(m, "Local");
	assert_int_equal(check("sip:5551234@x", false, none, m), AUTH_RULES_DENY);
	assert_int_equal(check("sip:1551234@x", false, none, m), AUTH_RULES_ALLOW);
	cfg_del(c);
}

/* ---------------------------------------------------------------- ValidUser, NoAccess */

static void test_validuser_noaccess(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "valid", ".", "ValidUser");
	add_rule(c, "never", ".", "NoAccess");
	install(c);
	uint64_t none[2] = { 0, 0 }, cheat[2] = { 0, 0 };
	store_perms_add(cheat, STORE_PERM_NO_ACCESS); /* granted in the users file: still held by nobody */
	char m[256];
	assert_int_equal(check("sip:1@valid", true, none, NULL), AUTH_RULES_CHALLENGE);
	assert_int_equal(check("sip:1@valid", false, none, NULL), AUTH_RULES_ALLOW);
	assert_int_equal(check("sip:1@never", true, none, NULL), AUTH_RULES_CHALLENGE);
	assert_int_equal(check("sip:1@never", false, cheat, m), AUTH_RULES_DENY);
	assert_string_equal(m, "NoAccess");
	/* no rule: nothing required */
	assert_int_equal(check("sip:1@elsewhere", true, none, NULL), AUTH_RULES_ALLOW);
	cfg_del(c);
}

/* ---------------------------------------------------------------- compile errors, reload, explain */

static void test_compile_errors_keep_old_rules(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "lodge", ".", "hunting");
	install(c);
	struct cfg *bad = cfg_new();
	add_rule(bad, "ok", ".", "");
	add_rule(bad, "*.", ".", "x");
	char err[512] = "";
	assert_int_equal(auth_reload(bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/etc/referee/test.yaml:13:"));
	assert_int_equal(check("sip:u@lodge", true, NULL, NULL), AUTH_RULES_CHALLENGE); /* old rules still in place */

	const char *bad_items[][3] = {
		{ "10.0.0.0/33", ".", "" }, { "h:99999", ".", "" }, { "h", "[x", "" },
		{ "h", "re:a(", "" },       { "h", ".", "bad name" }, { "[::1", ".", "" },
	};
	for (size_t i = 0; i < sizeof(bad_items) / sizeof(bad_items[0]); i++) {
		struct cfg *b = cfg_new();
		add_rule(b, bad_items[i][0], bad_items[i][1], bad_items[i][2]);
		err[0] = '\0';
		assert_int_equal(auth_reload(b, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "test.yaml:10: "));
		cfg_del(b);
	}
	/* a good reload replaces them */
	struct cfg *next = cfg_new();
	add_rule(next, "lodge", ".", "");
	assert_int_equal(auth_reload(next, err, sizeof(err)), 0);
	assert_int_equal(check("sip:u@lodge", true, NULL, NULL), AUTH_RULES_ALLOW);
	cfg_del(next);
	cfg_del(bad);
	cfg_del(c);
}

static void test_explain(void **state)
{
	(void)state;
	struct cfg *c = cfg_new();
	add_rule(c, "emergency-gw", "911", "");
	add_rule(c, "gw.example.net", "9.", "LongDistance,International");
	install(c);
	char buf[1024];
	uint64_t ld[2];
	perms_of(ld, "LongDistance");
	int n = auth_rules_explain("sip:9123@gw.example.net", NULL, true, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_non_null(strstr(buf, "rule: /etc/referee/test.yaml:13 hosts=[gw.example.net] users=[9.] "
				    "permissions=[LongDistance, International]"));
	assert_non_null(strstr(buf, "requires: LongDistance or International"));
	assert_non_null(strstr(buf, "verdict: challenge (407"));
	auth_rules_explain("sip:9123@gw.example.net", (uint64_t[2]){ 0, 0 }, false, buf, sizeof(buf));
	assert_non_null(strstr(buf, "verdict: deny (403 Requires International|LongDistance)"));
	auth_rules_explain("sip:9123@gw.example.net", ld, false, buf, sizeof(buf));
	assert_non_null(strstr(buf, "verdict: allow"));
	auth_rules_explain("sip:911@emergency-gw", NULL, true, buf, sizeof(buf));
	assert_non_null(strstr(buf, "test.yaml:10"));
	assert_non_null(strstr(buf, "requires: nothing"));
	auth_rules_explain("sip:1@nowhere", NULL, true, buf, sizeof(buf));
	assert_non_null(strstr(buf, "rule: none matches"));
	assert_non_null(strstr(buf, "verdict: allow"));
	assert_int_equal(auth_rules_explain("tel:+123", NULL, true, buf, sizeof(buf)), -EINVAL);
	/* truncation reports the size it needed, and the buffer stays terminated */
	char small[16];
	n = auth_rules_explain("sip:1@nowhere", NULL, true, small, sizeof(small));
	assert_true(n > (int)sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	cfg_del(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enforce_auth_rules),
		cmocka_unit_test(test_url_mapping),
		cmocka_unit_test(test_hosts_ports_cidr),
		cmocka_unit_test(test_user_patterns),
		cmocka_unit_test(test_user_in_rules_and_escapes),
		cmocka_unit_test(test_validuser_noaccess),
		cmocka_unit_test(test_compile_errors_keep_old_rules),
		cmocka_unit_test(test_explain),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
