/* test_proxy_torture.c - every row of the shared RFC 4475 and RFC 5118
 * MANIFEST.tsv (REFEREE_SHARED_DIR, default /work/shared) through sip_parse +
 * proxy_process (chain: checks -> forward); the outcome must be one of the
 * row's proxy_action alternatives: accept/tolerate/rfc2543-match -> forwarded
 * (and what we send parses cleanly), reject-NNN -> a reply NNN or a counted
 * drop when nothing can be answered, drop -> nothing sent, counted.
 * A response arrives as if it came back through us: with one Via ours is
 * put on top; with more, the top one is taken to be ours and rewritten. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "metrics.h"
#include "proxy.h"
#include "proxy_fixture.h"
#include "proxy_priv.h" /* metric handles */
#include "secret.h"
#include "sip.h"
#include "stage.h"
#include "txn.h"

#define OUR_VIA "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=" PROXY_BRANCH_PREFIX \
		"0123456789abcdef.0123456789abcdef\r\n"

static struct cfg g_cfg;
static struct secret g_secret;
static struct stage_table g_chain;
static char g_out[TXN_RX_MAX + 4096];
static struct txn *g_txn;

static const char *shared_dir(void)
{
	const char *d = getenv("REFEREE_SHARED_DIR");
	return d && *d ? d : "/work/shared";
}

static int group_setup(void **state)
{
	struct cfg *c = &g_cfg;
	proxy_fixture_cfg(c);
	static const uint8_t key[20] = "torture test secret";
	assert_int_equal(secret_set(&g_secret, key, sizeof(key)), 0);
	assert_int_equal(metrics_thread_init(), 0);
	assert_int_equal(proxy_init(c, &g_secret), 0);
	assert_int_equal(stage_add(&g_chain, "checks", proxy_checks_stage, true), 0);
	assert_int_equal(stage_add(&g_chain, "forward", proxy_forward_stage, false), 0);
	g_txn = malloc(sizeof(*g_txn));
	assert_non_null(g_txn);
	return 0;
}

static int group_teardown(void **state)
{
	free(g_txn);
	return 0;
}

static int64_t drops_total(void)
{
	int64_t n = 0;
	for (unsigned i = 0; i < PROXY_DROP_COUNT; i++)
		n += metrics_value(proxy_counts.drops + i);
	return n;
}

/* Reads testdata/<sub>/<name> into @buf; returns its length. */
static size_t load(const char *sub, const char *name, char *buf, size_t cap)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/testdata/%s/%s", shared_dir(), sub, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("missing test file %s", path);
	const size_t n = fread(buf, 1, cap, f);
	fclose(f);
	assert_true(n < cap);
	return n;
}

/* A response as it reaches us (see the file comment). Returns the new length. */
static size_t response_through_us(const char *in, size_t n, char *buf, size_t cap)
{
	static struct sip_msg m;
	if (sip_parse(in, n, &m) < 0 || m.is_request || m.first[SIP_HDR_VIA] == SIP_NO_HDR) {
		memcpy(buf, in, n);
		return n;
	}
	const struct sip_hdr *via = &m.hdrs[m.first[SIP_HDR_VIA]];
	const bool one = m.last[SIP_HDR_VIA] == m.first[SIP_HDR_VIA];
	const size_t cut = one ? via->line_off : via->line_off + via->line_len;
	const size_t ol = sizeof(OUR_VIA) - 1;
	assert_true(n + ol < cap);
	memcpy(buf, in, via->line_off);
	memcpy(buf + via->line_off, OUR_VIA, ol);
	memcpy(buf + via->line_off + ol, in + cut, n - cut);
	return via->line_off + ol + (n - cut);
}

struct outcome {
	enum stage_rc rc;
	uint32_t out_len;
	unsigned status; /* of a local reply, else 0 */
	bool counted;    /* a drop counter moved */
	bool request;
};

static struct outcome run(const char *raw, size_t n)
{
	struct txn *t = g_txn;
	memset(t, 0, sizeof(*t));
	static char big[TXN_RX_MAX];
	char *buf = n <= sizeof(t->rx) ? t->rx : big;
	memcpy(buf, raw, n);
	txn_received(t, buf, n);
	struct sockaddr_in *in = (struct sockaddr_in *)&t->src;
	in->sin_family = AF_INET;
	in->sin_port = htons(5062);
	assert_int_equal(inet_pton(AF_INET, "192.0.2.99", &in->sin_addr), 1);
	t->srclen = sizeof(*in);
	t->cfg = &g_cfg;
	t->out = g_out;
	t->out_cap = sizeof(g_out);
	const int64_t before = drops_total();
	struct outcome o = { proxy_process(&g_chain, t), t->out_len, 0, false, t->msg.is_request };
	/* an unparsable datagram the stages drop is counted once, by the pipeline
	 * (worker_complete: referee_rx_drops_total{reason="malformed"}, checked in
	 * test_pipeline_mt and test_metrics_prom.sh), not by the checks stage */
	o.counted = t->parse_rc < 0 ? drops_total() == before && t->out_len == 0 : drops_total() > before;
	if (o.rc == STAGE_REPLY) {
		/* A reply copies From/To/Call-ID/CSeq as received (RFC 3261 §8.2.6):
		 * when those were the broken part, so is the reply; the status
		 * line and the Via it is routed by are always ours to get right. */
		static struct sip_msg m;
		const char *why = "unparseable";
		const int prc = sip_parse(g_out, t->out_len, &m);
		const bool good_request = t->parse_rc >= 0 && sip_msg_check(&t->msg, NULL) == SIP_CHECK_OK;
		if (good_request && (prc < 0 || m.is_request ||
					 sip_msg_check(&m, &why) != SIP_CHECK_OK))
			fail_msg("our reply is not a good message (%s):\n%.*s", why,
				 (int)t->out_len, g_out);
		unsigned code = 0;
		assert_int_equal(sscanf(g_out, "SIP/2.0 %3u ", &code), 1);
		assert_non_null(memmem(g_out, t->out_len, "\r\nVia: ", 7));
		o.status = code;
	}
	return o;
}

static bool is_forward_action(const char *act)
{
	return !strcmp(act, "accept") || !strcmp(act, "tolerate") ||
	       !strcmp(act, "rfc2543-match") || !strcmp(act, "accept-tolerate");
}

static bool alternative_holds(const char *file, const char *act, const struct outcome *o)
{
	if (is_forward_action(act))
		return o->rc == STAGE_SENT && o->out_len > 0;
	if (!strcmp(act, "drop"))
		return o->rc == STAGE_DROP && o->out_len == 0 && o->counted;
	unsigned code;
	if (sscanf(act, "reject-%u", &code) == 1)
		return (o->rc == STAGE_REPLY && o->status == code) ||
		       (o->rc == STAGE_DROP && o->out_len == 0 && o->counted);
	fail_msg("%s: unknown proxy_action '%s'", file, act);
	return false;
}

/* What every forwarded message must look like. */
static void forwarded_sane(const char *file, const char *orig, size_t n, bool request)
{
	const uint32_t len = g_txn->out_len;
	static struct sip_msg m, in;
	assert_true(sip_parse(g_out, len, &m) >= 0);
	assert_int_equal(sip_msg_check(&m, NULL), SIP_CHECK_OK);
	assert_true(sip_parse(orig, n, &in) >= 0);
	assert_memory_equal(m.body.p, in.body.p, in.body.len);
	assert_int_equal(m.body.len, in.body.len);
	if (!request) {
		assert_false(m.is_request);
		return;
	}
	assert_true(m.is_request);
	/* request line: single SPs, no trailing SP, no URI headers, no <> */
	const char *eol = memchr(g_out, '\r', len);
	assert_non_null(eol);
	unsigned sp = 0;
	for (const char *p = g_out; p < eol; p++)
		sp += *p == ' ';
	if (sp != 2)
		fail_msg("%s: request line '%.*s'", file, (int)(eol - g_out), g_out);
	assert_int_equal(memcmp(eol - 8, " SIP/2.0", 8), 0);
	assert_null(memchr(m.ruri.p, '<', m.ruri.len));
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(m.ruri, &u), 0);
	assert_int_equal(u.headers.len, 0);
	/* our Via on top, then theirs */
	assert_int_equal(memcmp(eol + 2, "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-rf-", 50), 0);
	assert_int_equal(m.max_forwards + 1, (in.has_max_forwards ? in.max_forwards : 71));
}

static void check_row(const char *sub, const char *file, char *actions)
{
	static char raw[70000], msg[72000];
	const size_t n0 = load(sub, file, raw, sizeof(raw));
	const size_t n = response_through_us(raw, n0, msg, sizeof(msg));
	if (n > TXN_RX_MAX)
		fail_msg("%s: larger than TXN_RX_MAX", file);
	const struct outcome o = run(msg, n);
	bool ok = false;
	for (char *save = NULL, *act = strtok_r(actions, "|", &save); act && !ok;
	     act = strtok_r(NULL, "|", &save))
		ok = alternative_holds(file, act, &o);
	if (!ok)
		fail_msg("%s/%s: outcome rc=%d status=%u out_len=%u counted=%d not in manifest", sub,
			 file, o.rc, o.status, o.out_len, o.counted);
	if (o.rc == STAGE_SENT) {
		forwarded_sane(file, msg, n, o.request);
		if (!o.request) /* a response relayed upstream is the original, byte for byte */
			assert_true(g_txn->out_len == n0 && memcmp(g_out, raw, n0) == 0);
	}
}

static void run_manifest(const char *sub, unsigned *rows)
{
	char path[1024], line[4096];
	snprintf(path, sizeof(path), "%s/testdata/%s/MANIFEST.tsv", shared_dir(), sub);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("missing %s", path);
	int col_file = -1, col_action = -1;
	bool header = true;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		char *cols[16];
		int nc = 0;
		for (char *save = NULL, *c = strtok_r(line, "\t", &save); c && nc < 16;
		     c = strtok_r(NULL, "\t", &save))
			cols[nc++] = c;
		if (header) {
			for (int i = 0; i < nc; i++) {
				if (!strcmp(cols[i], "file"))
					col_file = i;
				if (!strcmp(cols[i], "proxy_action"))
					col_action = i;
			}
			assert_true(col_file >= 0 && col_action >= 0);
			header = false;
			continue;
		}
		if (nc <= col_action)
			continue;
		check_row(sub, cols[col_file], cols[col_action]);
		(*rows)++;
	}
	fclose(f);
}

static void test_rfc4475_manifest(void **state)
{
	unsigned rows = 0;
	run_manifest("rfc4475", &rows);
	assert_int_equal(rows, 49);
}

static void test_rfc5118_manifest(void **state)
{
	unsigned rows = 0;
	run_manifest("rfc5118", &rows);
	assert_int_equal(rows, 12);
}

/* Specific facts beyond the manifest's verdicts. */
static const char *forward_file(const char *file)
{
	static char raw[70000];
	const size_t n = load("rfc4475", file, raw, sizeof(raw));
	const struct outcome o = run(raw, n);
	assert_int_equal(o.rc, STAGE_SENT);
	g_out[o.out_len] = '\0';
	return g_out;
}

static void test_torture_details(void **state)
{
	/* dblreq: the stray INVITE after the REGISTER is not forwarded */
	const char *out = forward_file("dblreq.dat");
	assert_int_equal(strncmp(out, "REGISTER ", 9), 0);
	assert_null(strstr(out, "INVITE"));
	/* inv2543: Max-Forwards and Content-Length added */
	out = forward_file("inv2543.dat");
	assert_non_null(strstr(out, "\r\nMax-Forwards: 70\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Length: "));
	/* wsinv: unknown headers untouched, leading-zero Max-Forwards decremented */
	out = forward_file("wsinv.dat");
	assert_non_null(strstr(out, "\r\nUnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"));
	assert_non_null(strstr(out, ": 67\r\n"));
	/* escruri: tolerated; the ?Route=... URI header is stripped, never turned
	 * into a Route header field */
	out = forward_file("escruri.dat");
	assert_null(strstr(out, "?Route"));
	assert_null(strstr(out, "\r\nRoute:"));
	/* esc02: the unknown method RE%47IST%45R is forwarded as written */
	out = forward_file("esc02.dat");
	assert_int_equal(strncmp(out, "RE%47IST%45R sip:", 17), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4475_manifest),
		cmocka_unit_test(test_rfc5118_manifest),
		cmocka_unit_test(test_torture_details),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
