/* test_auth_stage.c - raw SIP through sip_parse, auth_identity_stage and
 * auth_rules_stage, with a cfg built in code, a secret from secret_set and the
 * real store (file backend, temp users file): the 407 content, credentials
 * computed here as a client would, wrong password vs unknown user, nc replay,
 * retransmissions while the nonce count is checked, stale and forged nonces, the
 * failure limiter, 403 Requires, relaying, challenge_local_from, trusted sources and in-dialog skips (SPEC §1-§4). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include <cmocka.h>

#include "auth_priv.h"
#include "hex.h"
#include "metrics.h"
#include "now.h"
#include "secret.h"

static struct cfg *cfg;
static struct secret sec;
static struct txn *T;
static char users_path[] = "/tmp/referee-auth-users-XXXXXX";

static const char users_yaml[] = "users:\n"
				 "  - id: 1001@example.com\n"
				 "    password: \"pw-1001\"\n"
				 "    permissions: [LocalDialing]\n"
				 "  - id: 1002@example.com\n"
				 "    password: \"pw-1002\"\n"
				 "    permissions: [LocalDialing, LongDistance]\n";

/* ---------------------------------------------------------------- setup */

static void add_rule(const char *host, const char *user, const char *perm)
{
	struct cfg_rule *r = &cfg->rules[cfg->n_rules];
	r->line = 40 + cfg->n_rules;
	snprintf(r->hosts[r->n_hosts++], CFG_NAME_MAX, "%s", host);
	snprintf(r->users[r->n_users++], CFG_NAME_MAX, "%s", user);
	if (perm[0])
		snprintf(r->permissions[r->n_permissions++], 64, "%s", perm);
	cfg->n_rules++;
}

static int setup(void **state)
{
	(void)state;
	rcu_register_thread();
	metrics_thread_init();
	int fd = mkstemp(users_path);
	if (fd < 0 || write(fd, users_yaml, sizeof(users_yaml) - 1) != (ssize_t)(sizeof(users_yaml) - 1))
		return -1;
	close(fd);
	cfg = calloc(1, sizeof(*cfg));
	T = calloc(1, sizeof(*T));
	cfg->rules = calloc(8, sizeof(struct cfg_rule));
	if (!cfg || !T || !cfg->rules)
		return -1;
	snprintf(cfg->path, sizeof(cfg->path), "/tmp/referee-auth-test.yaml");
	cfg->n_domains = 2;
	snprintf(cfg->domains[0], CFG_NAME_MAX, "example.com");
	snprintf(cfg->domains[1], CFG_NAME_MAX, "alias.example.com");
	snprintf(cfg->realm, CFG_NAME_MAX, "example.com");
	cfg->auth.n_algorithms = 2;
	cfg->auth.algorithms[0] = CFG_ALGO_SHA256;
	cfg->auth.algorithms[1] = CFG_ALGO_MD5;
	cfg->auth.nonce_ttl = 300;
	cfg->auth.challenge_local_from = true;
	cfg->auth.failure_limit.count = 20;
	cfg->auth.failure_limit.window = 60;
	cfg->n_trusted = 1;
	if (cfg_cidr_parse("10.9.0.0/16", &cfg->trusted[0]) < 0)
		return -1;
	cfg->store.backend = CFG_STORE_FILE;
	snprintf(cfg->store.file, sizeof(cfg->store.file), "%s", users_path);
	add_rule("example.com", "100x", "ValidUser");
	add_rule("gw.example.net", "9.", "LongDistance");
	add_rule("*.example.net", ".", "LocalDialing");
	char err[512] = "";
	static const uint8_t bytes[24] = "referee-test-secret-1234";
	if (secret_set(&sec, bytes, sizeof(bytes)) < 0)
		return -1;
	if (store_init(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "store_init: %s\n", err);
		return -1;
	}
	return auth_init(cfg, &sec, err, sizeof(err));
}

static int teardown(void **state)
{
	(void)state;
	auth_fini();
	store_fini();
	unlink(users_path);
	free(cfg->rules);
	free(cfg);
	free(T);
	rcu_unregister_thread();
	return 0;
}

static int each(void **state)
{
	(void)state;
	cfg->auth.check_uri = false;
	cfg->auth.challenge_local_from = true;
	cfg->auth.failure_limit.count = 20;
	auth_limit_reset();
	return 0;
}

/* ---------------------------------------------------------------- running a request */

#define IDENTITY_IDX 1
#define RULES_IDX 3

/* prepare - a fresh txn holding @raw, parsed, from @src. */
static void prepare(const char *raw, const char *src)
{
	memset(T, 0, offsetof(struct txn, arena));
	size_t len = strlen(raw);
	assert_true(len < sizeof(T->rx));
	memcpy(T->rx, raw, len);
	txn_received(T, T->rx, len);
	assert_true(T->parse_rc >= 0);
	struct sockaddr_in *sin = (struct sockaddr_in *)&T->src;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(5060);
	assert_int_equal(inet_pton(AF_INET, src, &sin->sin_addr), 1);
	T->srclen = sizeof(*sin);
	T->cfg = cfg;
}

/* run - parse @raw from @src and run identity then (when it continues) rules. */
static enum stage_rc run(const char *raw, const char *src)
{
	prepare(raw, src);
	T->stage_idx = IDENTITY_IDX;
	enum stage_rc rc = auth_identity_stage(T);
	if (rc != STAGE_CONTINUE)
		return rc;
	T->stage_idx = RULES_IDX;
	return auth_rules_stage(T);
}

static char msgbuf[8192];
static unsigned branch_no; /* every request gets its own transaction unless resent */

/* req - a request; @extra is more header lines, each ending in CRLF. */
static const char *req(const char *method, const char *ruri, const char *from, const char *to_tag, const char *extra)
{
	snprintf(msgbuf, sizeof(msgbuf),
		 "%s %s SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-test-%u\r\n"
		 "Max-Forwards: 70\r\n"
		 "From: <%s>;tag=from-tag-1\r\n"
		 "To: <%s>%s%s\r\n"
		 "Call-ID: call-1@192.0.2.10\r\n"
		 "CSeq: 2 %s\r\n"
		 "%s"
		 "Content-Length: 0\r\n\r\n",
		 method, ruri, ++branch_no, from, ruri, to_tag ? ";tag=" : "", to_tag ? to_tag : "", method, extra ? extra : "");
	return msgbuf;
}

/* nonce_of - the nonce of reply header @i of the last 407. */
static void nonce_of(unsigned i, char out[AUTH_NONCE_LEN + 1])
{
	assert_true(i < T->n_reply_hdrs);
	struct slice h = T->reply_hdrs[i];
	const char *p = memmem(h.p, h.len, "nonce=\"", 7);
	assert_non_null(p);
	memcpy(out, p + 7, AUTH_NONCE_LEN);
	out[AUTH_NONCE_LEN] = '\0';
	assert_int_equal(p[7 + AUTH_NONCE_LEN], '"');
}

/* creds - a Proxy-Authorization line computed as a client would. */
static const char *creds(enum cfg_algo a, const char *user, const char *password, const char *realm,
			 const char *nonce, const char *method, const char *uri, unsigned nc)
{
	static char line[1024];
	char nc_text[9];
	snprintf(nc_text, sizeof(nc_text), "%08x", nc);
	struct auth_creds c = {
		.username = slice_from_cstr(user), .realm = slice_from_cstr(realm), .nonce = slice_from_cstr(nonce),
		.uri = slice_from_cstr(uri), .cnonce = SLICE_LIT("c0ffee42"), .qop = SLICE_LIT("auth"),
		.nc_text = slice_from_cstr(nc_text), .algo = a,
	};
	uint8_t ha1[AUTH_HASH_MAX], resp[AUTH_HASH_MAX];
	auth_digest_ha1(a, c.username, c.realm, slice_from_cstr(password), ha1);
	int n = auth_digest_response(a, ha1, slice_from_cstr(method), &c, resp);
	assert_true(n > 0);
	char hex[2 * AUTH_HASH_MAX + 1];
	hex[hex_encode(resp, (size_t)n, hex)] = '\0';
	snprintf(line, sizeof(line),
		 "Proxy-Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
		 "response=\"%s\", algorithm=%s, cnonce=\"c0ffee42\", qop=auth, nc=%s, opaque=\"x\"\r\n",
		 user, realm, nonce, uri, hex, auth_algo_name(a), nc_text);
	return line;
}

/* fresh_nonce - get a 407 for an anonymous request and return its nonce. */
static void fresh_nonce(char nonce[AUTH_NONCE_LEN + 1])
{
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.10"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	nonce_of(0, nonce);
}

static int64_t failures(enum auth_reason r)
{
	return metrics_value(auth_g.m_failures + r);
}

static bool reply_has(unsigned i, const char *needle)
{
	return i < T->n_reply_hdrs && memmem(T->reply_hdrs[i].p, T->reply_hdrs[i].len, needle, strlen(needle));
}

/* ---------------------------------------------------------------- tests */

static void test_challenge_content(void **state)
{
	(void)state;
	int64_t before = metrics_value(auth_g.m_challenges);
	char n0[AUTH_NONCE_LEN + 1], n1[AUTH_NONCE_LEN + 1];
	fresh_nonce(n0);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	assert_int_equal(T->n_reply_hdrs, 2);
	nonce_of(1, n1);
	assert_string_equal(n0, n1); /* one nonce for both algorithms */
	char want[512];
	snprintf(want, sizeof(want),
		 "Proxy-Authenticate: Digest realm=\"example.com\", nonce=\"%s\", opaque=\"%s\", algorithm=SHA-256, "
		 "qop=\"auth\"",
		 n0, auth_g.opaque);
	assert_int_equal(T->reply_hdrs[0].len, strlen(want));
	assert_memory_equal(T->reply_hdrs[0].p, want, strlen(want));
	assert_true(reply_has(1, "algorithm=MD5, qop=\"auth\""));
	assert_false(reply_has(0, "stale"));
	assert_int_equal(metrics_value(auth_g.m_challenges), before + 1);
	/* MD5 only: one header */
	cfg->auth.n_algorithms = 1;
	cfg->auth.algorithms[0] = CFG_ALGO_MD5;
	fresh_nonce(n0);
	assert_int_equal(T->n_reply_hdrs, 1);
	assert_true(reply_has(0, "algorithm=MD5"));
	cfg->auth.n_algorithms = 2;
	cfg->auth.algorithms[0] = CFG_ALGO_SHA256;
}

static void test_credentials_accepted(void **state)
{
	(void)state;
	const enum cfg_algo algos[2] = { CFG_ALGO_SHA256, CFG_ALGO_MD5 };
	for (int i = 0; i < 2; i++) {
		char nonce[AUTH_NONCE_LEN + 1];
		fresh_nonce(nonce);
		const char *pa = creds(algos[i], "1001", "pw-1001", "example.com", nonce, "INVITE",
				       "sip:1002@example.com", 1);
		assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa),
				     "192.0.2.10"),
				 STAGE_CONTINUE);
		assert_int_equal(T->id_source, TXN_ID_DIGEST);
		assert_true(slice_eq(T->identity, SLICE_LIT("1001@example.com")));
		assert_true(T->perms_known);
		assert_true(store_perms_has(T->perms, STORE_PERM_VALID_USER));
		assert_true(store_perms_has(T->perms, (unsigned)store_perm_id("LocalDialing", 12)));
		assert_false(store_perms_has(T->perms, (unsigned)store_perm_id("LongDistance", 12)));
		assert_true(T->dialog_authorized);
	}
	/* the uri need not be the Request-URI (SIPp sends its peer address)... */
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	const char *pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:127.0.0.1:5060", 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.10"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
	/* ...unless auth.check_uri */
	cfg->auth.check_uri = true;
	pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:127.0.0.1:5060", 2);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.10"),
			 STAGE_REPLY);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:1002@example.com", 3);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.10"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
}

static void test_wrong_password_and_unknown_user_alike(void **state)
{
	(void)state;
	int64_t before = failures(AUTH_REASON_WRONG_RESPONSE);
	const char *who[][2] = { { "1001", "not-the-password" }, { "7777", "pw-1001" }, { "1001@example.com", "pw-1001" } };
	uint16_t code[3];
	unsigned nh[3];
	for (int i = 0; i < 3; i++) {
		char nonce[AUTH_NONCE_LEN + 1];
		fresh_nonce(nonce);
		const char *pa = creds(CFG_ALGO_SHA256, who[i][0], who[i][1], "example.com", nonce, "INVITE",
				       "sip:1002@example.com", 1);
		enum stage_rc rc = run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa),
				       "192.0.2.10");
		assert_int_equal(rc, STAGE_REPLY);
		assert_int_equal(T->id_source, TXN_ID_NONE);
		code[i] = T->reply_code;
		nh[i] = T->n_reply_hdrs;
		assert_false(reply_has(0, "stale"));
	}
	assert_int_equal(code[0], 407);
	assert_int_equal(code[1], code[0]);
	assert_int_equal(code[2], code[0]);
	assert_int_equal(nh[1], nh[0]);
	assert_int_equal(nh[2], nh[0]);
	assert_int_equal(failures(AUTH_REASON_WRONG_RESPONSE), before + 3);
}

static void test_nc_replay(void **state)
{
	(void)state;
	int64_t before = failures(AUTH_REASON_REPLAY);
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	char pa[1024];
	snprintf(pa, sizeof(pa), "%s",
		 creds(CFG_ALGO_MD5, "1002", "pw-1002", "example.com", nonce, "INVITE", "sip:1001@example.com", 5));
	const char *r = req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, pa);
	assert_int_equal(run(r, "192.0.2.11"), STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
	/* a retransmission (the same bytes) is forwarded again with its identity */
	static char first[sizeof(msgbuf)];
	memcpy(first, msgbuf, sizeof(first));
	assert_int_equal(run(first, "192.0.2.11"), STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
	/* the same nonce-count on another request, or a lower one: refused, and the request is anonymous */
	r = req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, pa);
	assert_int_equal(run(r, "192.0.2.11"), STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	snprintf(pa, sizeof(pa), "%s",
		 creds(CFG_ALGO_MD5, "1002", "pw-1002", "example.com", nonce, "INVITE", "sip:1001@example.com", 4));
	assert_int_equal(run(req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, pa), "192.0.2.11"),
			 STAGE_REPLY);
	assert_int_equal(failures(AUTH_REASON_REPLAY), before + 2);
	/* a higher one passes */
	snprintf(pa, sizeof(pa), "%s",
		 creds(CFG_ALGO_MD5, "1002", "pw-1002", "example.com", nonce, "INVITE", "sip:1001@example.com", 6));
	assert_int_equal(run(req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, pa), "192.0.2.11"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
}

/* The retransmission table's three answers (auth_retx.c): a copy that comes while the
 * original's nonce count is still being checked (parked on Redis) is dropped, not
 * challenged as a replay; once accepted, copies pass; a refused or unchecked original
 * leaves nothing behind, and another transaction with the same credential is new. */
static void test_retx_while_the_check_waits(void **state)
{
	(void)state;
	const struct auth_creds c = {
		.username = SLICE_LIT("1002"), .nonce = SLICE_LIT("AAAAnonce"), .nc_text = SLICE_LIT("00000001"),
		.cnonce = SLICE_LIT("c0ffee42"), .response = SLICE_LIT("0123456789abcdef0123456789abcdef"),
	};
	static char first[sizeof(msgbuf)];
	snprintf(first, sizeof(first), "%s", req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, NULL));
	struct auth_retx_key orig, copy;
	prepare(first, "192.0.2.11");
	assert_int_equal(auth_retx_begin(T, &c, &orig), AUTH_RETX_NEW);
	prepare(first, "192.0.2.11");
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_WAITING);
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_WAITING);
	auth_retx_end(&orig, true);
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_ACCEPTED);
	/* the same credential on another transaction: new, and its refusal leaves nothing */
	prepare(req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, NULL), "192.0.2.11");
	assert_int_equal(auth_retx_begin(T, &c, &orig), AUTH_RETX_NEW);
	auth_retx_end(&orig, false);
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_NEW);
	/* an original the store could not check (503) leaves its copy to be checked again */
	auth_retx_end(&copy, false);
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_NEW);
	/* the first request's copies still pass */
	prepare(first, "192.0.2.11");
	assert_int_equal(auth_retx_begin(T, &c, &copy), AUTH_RETX_ACCEPTED);
}

/* A full set of the retransmission table gives up its oldest entry, not the one a
 * new request happens to hash to: four accepted requests in one set, a fifth in the
 * same set, and only the first is forgotten (counted). The direct-mapped table it
 * replaced lost the fourth's predecessor on every collision. */
static void test_retx_full_set_evicts_the_oldest(void **state)
{
	(void)state;
	char cnonce[5][16];
	struct auth_creds c[5];
	struct auth_retx_key k[5];
	prepare(req("INVITE", "sip:1001@example.com", "sip:1002@example.com", NULL, NULL), "192.0.2.12");
	unsigned found = 0;
	uint32_t set = 0;
	for (unsigned i = 0; i < 1u << 20 && found < 5; i++) {
		snprintf(cnonce[found], sizeof(cnonce[found]), "s%08x", i);
		c[found] = (struct auth_creds){
			.username = SLICE_LIT("1002"), .nonce = SLICE_LIT("AAAAnonce"), .nc_text = SLICE_LIT("00000001"),
			.cnonce = slice_make(cnonce[found], strlen(cnonce[found])),
			.response = SLICE_LIT("0123456789abcdef0123456789abcdef"),
		};
		struct auth_retx_key probe;
		if (auth_retx_begin(T, &c[found], &probe) != AUTH_RETX_NEW)
			continue;
		auth_retx_end(&probe, false); /* not accepted: leaves the way free again */
		if (found > 0 && auth_retx_set(&probe) != set)
			continue;
		set = auth_retx_set(&probe);
		found++;
	}
	assert_int_equal(found, 5);
	const uint64_t evicted = metrics_value(auth_g.m_retx_evicted);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(auth_retx_begin(T, &c[i], &k[i]), AUTH_RETX_NEW);
		auth_retx_end(&k[i], true);
	}
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(auth_retx_begin(T, &c[i], &k[i]), AUTH_RETX_ACCEPTED);
	assert_int_equal(metrics_value(auth_g.m_retx_evicted), evicted);
	/* same second: the first inserted is the oldest (ties go to the lowest way) */
	assert_int_equal(auth_retx_begin(T, &c[4], &k[4]), AUTH_RETX_NEW);
	auth_retx_end(&k[4], true);
	assert_int_equal(metrics_value(auth_g.m_retx_evicted), evicted + 1);
	for (unsigned i = 1; i < 5; i++)
		assert_int_equal(auth_retx_begin(T, &c[i], &k[i]), AUTH_RETX_ACCEPTED);
	struct auth_retx_key again;
	assert_int_equal(auth_retx_begin(T, &c[0], &again), AUTH_RETX_NEW);
	auth_retx_end(&again, false);
}

static void test_stale_and_forged_nonce(void **state)
{
	(void)state;
	char old[AUTH_NONCE_LEN + 1];
	auth_nonce_make(&auth_g.nonce_key, SLICE_LIT("example.com"), now_unix_sec() - 1000, old);
	old[AUTH_NONCE_LEN] = '\0';
	int64_t stale_before = failures(AUTH_REASON_STALE_NONCE), forged_before = failures(AUTH_REASON_FORGED_NONCE);
	/* right password, expired nonce: 407 with stale=true */
	const char *pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", old, "INVITE", "sip:1002@example.com", 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.12"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	assert_true(reply_has(0, ", stale=true"));
	assert_true(reply_has(1, ", stale=true"));
	assert_int_equal(failures(AUTH_REASON_STALE_NONCE), stale_before + 1);
	/* wrong password with the expired nonce: no stale hint */
	pa = creds(CFG_ALGO_SHA256, "1001", "guess", "example.com", old, "INVITE", "sip:1002@example.com", 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.12"),
			 STAGE_REPLY);
	assert_false(reply_has(0, "stale"));
	/* a nonce made with another key: 407 without stale */
	struct secret other;
	static const uint8_t ob[16] = "another-secret!!";
	secret_set(&other, ob, sizeof(ob));
	char forged[AUTH_NONCE_LEN + 1];
	struct hmac_key other_key;
	hmac_key_init(&other_key, other.nonce_key, sizeof(other.nonce_key));
	auth_nonce_make(&other_key, SLICE_LIT("example.com"), now_unix_sec(), forged);
	hmac_key_wipe(&other_key);
	forged[AUTH_NONCE_LEN] = '\0';
	pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", forged, "INVITE", "sip:1002@example.com", 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.12"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	assert_false(reply_has(0, "stale"));
	assert_int_equal(failures(AUTH_REASON_FORGED_NONCE), forged_before + 1);
}

static void test_other_realm_and_bad_header(void **state)
{
	(void)state;
	int64_t realm_before = failures(AUTH_REASON_UNKNOWN_REALM), bad_before = failures(AUTH_REASON_BAD_HEADER);
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	/* credentials for another proxy's realm are ignored: anonymous */
	const char *pa = creds(CFG_ALGO_MD5, "1001", "pw-1001", "other.org", nonce, "INVITE", "sip:1002@example.com", 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.13"),
			 STAGE_REPLY);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	assert_int_equal(failures(AUTH_REASON_UNKNOWN_REALM), realm_before + 1);
	/* ours next to another realm's: ours counts */
	char two[2048];
	snprintf(two, sizeof(two), "%s", pa);
	strncat(two, creds(CFG_ALGO_MD5, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:1002@example.com", 1),
		sizeof(two) - strlen(two) - 1);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, two), "192.0.2.13"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
	/* malformed for our realm: bad_header, anonymous */
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL,
				 "Proxy-Authorization: Digest username=1001, realm=\"example.com\"\r\n"),
			     "192.0.2.13"),
			 STAGE_REPLY);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	assert_int_equal(failures(AUTH_REASON_BAD_HEADER), bad_before + 1);
}

static void test_rate_limit(void **state)
{
	(void)state;
	cfg->auth.failure_limit.count = 3;
	int64_t limited_before = failures(AUTH_REASON_RATE_LIMITED);
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	for (unsigned i = 1; i <= 3; i++) {
		const char *pa = creds(CFG_ALGO_SHA256, "1001", "guess", "example.com", nonce, "INVITE",
				       "sip:1002@example.com", i);
		assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa),
				     "192.0.2.66"),
				 STAGE_REPLY);
		assert_int_equal(T->reply_code, 407);
	}
	/* past the count: 403 for that source, even with the right password */
	const char *pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:1002@example.com", 9);
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.66"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 403);
	assert_int_equal(T->id_source, TXN_ID_NONE);
	assert_int_equal(failures(AUTH_REASON_RATE_LIMITED), limited_before + 1);
	/* another source is not affected */
	assert_int_equal(run(req("INVITE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.67"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_DIGEST);
}

static void test_requires(void **state)
{
	(void)state;
	int64_t before = metrics_value(auth_g.m_denials);
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	/* 1001 holds LocalDialing only */
	const char *pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:9555@gw.example.net", 1);
	assert_int_equal(run(req("INVITE", "sip:9555@gw.example.net", "sip:1001@example.com", NULL, pa), "192.0.2.14"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 403);
	assert_true(slice_eq(T->reply_reason, SLICE_LIT("Requires LongDistance")));
	assert_int_equal(metrics_value(auth_g.m_denials), before + 1);
	/* 1002 holds it */
	pa = creds(CFG_ALGO_SHA256, "1002", "pw-1002", "example.com", nonce, "INVITE", "sip:9555@gw.example.net", 2);
	assert_int_equal(run(req("INVITE", "sip:9555@gw.example.net", "sip:1002@example.com", NULL, pa), "192.0.2.14"),
			 STAGE_CONTINUE);
	/* anonymous: challenged */
	assert_int_equal(run(req("INVITE", "sip:9555@gw.example.net", "sip:1002@example.com", NULL, NULL), "192.0.2.14"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	/* ValidUser rule for our users: any identity */
	pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "MESSAGE", "sip:1002@example.com", 3);
	assert_int_equal(run(req("MESSAGE", "sip:1002@example.com", "sip:1001@example.com", NULL, pa), "192.0.2.14"),
			 STAGE_CONTINUE);
	assert_int_equal(run(req("MESSAGE", "sip:1002@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.14"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
}

static void test_relaying(void **state)
{
	(void)state;
	/* anonymous, foreign target, our From: challenge */
	assert_int_equal(run(req("INVITE", "sip:bob@foreign.org", "sip:1001@example.com", NULL, NULL), "192.0.2.15"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	/* anonymous, foreign target, foreign From: relaying denied */
	assert_int_equal(run(req("INVITE", "sip:bob@foreign.org", "sip:eve@evil.net", NULL, NULL), "192.0.2.15"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 403);
	assert_true(slice_eq(T->reply_reason, SLICE_LIT("Relaying Denied")));
	/* an IP literal is not ours either */
	assert_int_equal(run(req("OPTIONS", "sip:bob@198.51.100.20:5060", "sip:eve@evil.net", NULL, NULL), "192.0.2.15"),
			 STAGE_REPLY);
	assert_true(slice_eq(T->reply_reason, SLICE_LIT("Relaying Denied")));
	/* in dialog (To tag): not relaying; no rule for the host: allowed */
	assert_int_equal(run(req("BYE", "sip:bob@198.51.100.20:5060", "sip:eve@evil.net", "to-tag-9", NULL), "192.0.2.15"),
			 STAGE_CONTINUE);
	/* our alias domain is ours: no relaying rule, and the anonymous From is foreign */
	assert_int_equal(run(req("OPTIONS", "sip:2000@alias.example.com", "sip:eve@evil.net", NULL, NULL), "192.0.2.15"),
			 STAGE_CONTINUE);
	/* with an identity the rules decide (*.example.net needs LocalDialing, 1001 has it) */
	char nonce[AUTH_NONCE_LEN + 1];
	fresh_nonce(nonce);
	const char *pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:bob@foreign.org", 1);
	assert_int_equal(run(req("INVITE", "sip:bob@foreign.org", "sip:1001@example.com", NULL, pa), "192.0.2.15"),
			 STAGE_CONTINUE);
	pa = creds(CFG_ALGO_SHA256, "1001", "pw-1001", "example.com", nonce, "INVITE", "sip:bob@trunk.example.net", 2);
	assert_int_equal(run(req("INVITE", "sip:bob@trunk.example.net", "sip:1001@example.com", NULL, pa), "192.0.2.15"),
			 STAGE_CONTINUE);
}

static void test_challenge_local_from(void **state)
{
	(void)state;
	/* nothing required for sip:2000@example.com (rule 100x does not match) */
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.16"),
			 STAGE_REPLY);
	assert_int_equal(T->reply_code, 407);
	/* a From alias of our domain names the same user */
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:1001@ALIAS.example.com", NULL, NULL), "192.0.2.16"),
			 STAGE_REPLY);
	/* unknown local user, foreign user: forwarded */
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:4242@example.com", NULL, NULL), "192.0.2.16"),
			 STAGE_CONTINUE);
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:1001@elsewhere.org", NULL, NULL), "192.0.2.16"),
			 STAGE_CONTINUE);
	/* only out-of-dialog INVITEs */
	assert_int_equal(run(req("MESSAGE", "sip:2000@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.16"),
			 STAGE_CONTINUE);
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:1001@example.com", "tt", NULL), "192.0.2.16"),
			 STAGE_CONTINUE);
	/* an identity from transfer suppresses it */
	prepare(req("INVITE", "sip:2000@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.16");
	T->id_source = TXN_ID_TRANSFER;
	T->identity = SLICE_LIT("1002@example.com");
	T->stage_idx = RULES_IDX;
	assert_int_equal(auth_rules_stage(T), STAGE_CONTINUE);
	/* switched off */
	cfg->auth.challenge_local_from = false;
	assert_int_equal(run(req("INVITE", "sip:2000@example.com", "sip:1001@example.com", NULL, NULL), "192.0.2.16"),
			 STAGE_CONTINUE);
}

static void test_trusted_dialog_ack(void **state)
{
	(void)state;
	/* trusted source: identity TRUSTED, never challenged, rules not applied */
	assert_int_equal(run(req("INVITE", "sip:9555@gw.example.net", "sip:x@foreign.org", NULL, NULL), "10.9.1.2"),
			 STAGE_CONTINUE);
	assert_int_equal(T->id_source, TXN_ID_TRUSTED);
	/* ACK and CANCEL are never judged */
	assert_int_equal(run(req("ACK", "sip:9555@gw.example.net", "sip:x@foreign.org", NULL, NULL), "192.0.2.17"),
			 STAGE_CONTINUE);
	assert_int_equal(run(req("CANCEL", "sip:bob@foreign.org", "sip:x@foreign.org", NULL, NULL), "192.0.2.17"),
			 STAGE_CONTINUE);
	/* an authorized dialog skips the rules */
	run(req("INVITE", "sip:9555@gw.example.net", "sip:1001@example.com", "tt", NULL), "192.0.2.17");
	assert_int_equal(T->reply_code, 407);
	prepare(req("INVITE", "sip:9555@gw.example.net", "sip:1001@example.com", "tt", NULL), "192.0.2.17");
	T->in_authorized_dialog = true;
	T->stage_idx = RULES_IDX;
	assert_int_equal(auth_rules_stage(T), STAGE_CONTINUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_challenge_content, each),
		cmocka_unit_test_setup(test_credentials_accepted, each),
		cmocka_unit_test_setup(test_wrong_password_and_unknown_user_alike, each),
		cmocka_unit_test_setup(test_nc_replay, each),
		cmocka_unit_test_setup(test_retx_while_the_check_waits, each),
		cmocka_unit_test_setup(test_retx_full_set_evicts_the_oldest, each),
		cmocka_unit_test_setup(test_stale_and_forged_nonce, each),
		cmocka_unit_test_setup(test_other_realm_and_bad_header, each),
		cmocka_unit_test_setup(test_rate_limit, each),
		cmocka_unit_test_setup(test_requires, each),
		cmocka_unit_test_setup(test_relaying, each),
		cmocka_unit_test_setup(test_challenge_local_from, each),
		cmocka_unit_test_setup(test_trusted_dialog_ack, each),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
