/* test_parse_once.c - every stage reads the txn's parsed view (txn.h) instead
 * of parsing the message again: the whole chain as main() registers it
 * (checks, identity, transfer, rules, egress, forward) runs on real requests
 * and the debug build's per-thread parse counters (sip_parse_counts) must show
 * the Request-URI parsed exactly once per request, the top Via once and From /
 * To once each. Before the view, one INVITE parsed its Request-URI 7 times.
 * Release builds have no counters: the tests say SKIP there. */
#include "../transfer/transfer_fixture.h"

#include <openssl/evp.h>

#include "auth_priv.h"
#include "hex.h"
#include "proxy.h"

static struct stage_table chain;

static int setup(void **state)
{
	if (fx_setup(state) < 0)
		return -1;
	if (proxy_init(fx_grant, &fx_secret) < 0)
		return -1;
	int rc = stage_add(&chain, "checks", proxy_checks_stage, true);
	rc |= stage_add(&chain, "identity", auth_identity_stage, true);
	rc |= stage_add(&chain, "transfer", transfer_stage, true);
	rc |= stage_add(&chain, "rules", auth_rules_stage, true);
	rc |= stage_add(&chain, "egress", transfer_egress_stage, true);
	rc |= stage_add(&chain, "forward", proxy_forward_stage, false);
	return rc;
}

/* a Proxy-Authorization line of user @user (password pw<user>) for an INVITE */
static const char *creds(const char *user, const char *ruri)
{
	static char line[1024];
	char nonce[AUTH_NONCE_LEN + 1], id[64], pw[64];
	auth_nonce_make(&auth_g.nonce_key, SLICE_LIT("example.edu"), now_unix_sec(), nonce);
	nonce[AUTH_NONCE_LEN] = '\0';
	snprintf(id, sizeof(id), "%s@example.edu", user);
	snprintf(pw, sizeof(pw), "%s:example.edu:pw%s", user, user);
	uint8_t ha1[32];
	unsigned len = 0;
	assert_int_equal(EVP_Digest(pw, strlen(pw), ha1, &len, EVP_sha256(), NULL), 1);
	struct auth_creds c = { .username = slice_from_cstr(user), .realm = SLICE_LIT("example.edu"),
				.nonce = slice_from_cstr(nonce), .uri = slice_from_cstr(ruri),
				.cnonce = SLICE_LIT("cn"), .qop = SLICE_LIT("auth"), .nc_text = SLICE_LIT("00000001"),
				.algo = CFG_ALGO_SHA256 };
	uint8_t resp[AUTH_HASH_MAX];
	auth_digest_response(CFG_ALGO_SHA256, ha1, SLICE_LIT("INVITE"), &c, resp);
	char hex[65];
	hex[hex_encode(resp, 32, hex)] = '\0';
	snprintf(line, sizeof(line),
		 "Proxy-Authorization: Digest username=\"%s\", realm=\"example.edu\", nonce=\"%s\", uri=\"%s\", "
		 "response=\"%s\", algorithm=SHA-256, cnonce=\"cn\", qop=auth, nc=00000001\n",
		 user, nonce, ruri, hex);
	return line;
}

struct counted {
	enum stage_rc rc;
	uint16_t code;
	struct sip_parse_counts n;
};

/* run the chain on @text from @src_ip the way the worker does; the parses it made */
static struct counted run_chain(const char *src_ip, const char *text)
{
	struct counted r = { 0 };
	static char out[TXN_OUT_MAX];
#ifndef NDEBUG
	const struct sip_parse_counts before = sip_parse_counts;
#endif
	struct txn *t = fx_txn(fx_grant, src_ip, text); /* txn_received: the receiver's one sip_parse */
	t->out = out;
	t->out_cap = sizeof(out);
	r.rc = proxy_process(&chain, t);
	r.code = t->reply_code;
#ifndef NDEBUG
	r.n.uri = sip_parse_counts.uri - before.uri;
	r.n.via = sip_parse_counts.via - before.via;
	r.n.nameaddr = sip_parse_counts.nameaddr - before.nameaddr;
#endif
	free(t);
	return r;
}

static void test_authenticated_invite_parses_once(void **state)
{
#ifdef NDEBUG
	skip();
#endif
	char msg[2048];
	snprintf(msg, sizeof(msg),
		 "INVITE sip:9001@example.edu SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-once1;rport\n"
		 "Max-Forwards: 70\n"
		 "From: \"Alice\" <sip:1001@example.edu>;tag=f1\n"
		 "To: <sip:9001@example.edu>\n"
		 "Call-ID: once-1@192.0.2.7\n"
		 "CSeq: 1 INVITE\n"
		 "Contact: <sip:1001@192.0.2.7:5060>\n"
		 "%s"
		 "Content-Length: 0\n\n",
		 creds("1001", "sip:9001@example.edu"));
	struct counted r = run_chain("192.0.2.7", msg);
	assert_int_equal(r.rc, STAGE_SENT); /* authenticated, permitted, forwarded to routes.local */
	assert_int_equal(r.n.uri, 1);       /* the Request-URI, once, for six stages */
	assert_int_equal(r.n.via, 1);
	assert_int_equal(r.n.nameaddr, 2); /* From and To */
}

static void test_anonymous_invite_challenged_parses_once(void **state)
{
#ifdef NDEBUG
	skip();
#endif
	/* anonymous, to a number that needs a permission: the rules stage challenges */
	struct counted r = run_chain("192.0.2.8", "INVITE sip:9001@example.edu SIP/2.0\n"
						  "Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK-once2\n"
						  "Max-Forwards: 70\n"
						  "From: <sip:1002@example.edu>;tag=f2\n"
						  "To: <sip:9001@example.edu>\n"
						  "Call-ID: once-2@192.0.2.8\n"
						  "CSeq: 1 INVITE\n"
						  "Content-Length: 0\n\n");
	assert_int_equal(r.rc, STAGE_REPLY);
	assert_int_equal(r.code, 407);
	assert_int_equal(r.n.uri, 1);
	assert_int_equal(r.n.via, 1);
	assert_int_equal(r.n.nameaddr, 2);
}

static void test_response_parses_once(void **state)
{
#ifdef NDEBUG
	skip();
#endif
	/* a 200 relayed back: our Via (parsed by the check and the relay: once) and the next one */
	struct counted r = run_chain("127.0.0.1", "SIP/2.0 200 OK\n"
						 "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-rf-0123456789abcdef.0123456789abcdef\n"
						 "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-once1;rport=5060;received=192.0.2.7\n"
						 "From: <sip:1001@example.edu>;tag=f1\n"
						 "To: <sip:9001@example.edu>;tag=t9\n"
						 "Call-ID: once-1@192.0.2.7\n"
						 "CSeq: 1 INVITE\n"
						 "Content-Length: 0\n\n");
	assert_int_equal(r.rc, STAGE_SENT);
	assert_int_equal(r.n.uri, 0);
	assert_int_equal(r.n.via, 2); /* each Via value once */
	assert_int_equal(r.n.nameaddr, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authenticated_invite_parses_once),
		cmocka_unit_test(test_anonymous_invite_challenged_parses_once),
		cmocka_unit_test(test_response_parses_once),
	};
	return cmocka_run_group_tests(tests, setup, fx_teardown);
}
