/* test_sip_torture.c - runs every RFC 4475 / RFC 5118 torture message listed in
 * the shared MANIFEST.tsv files through sip_parse + sip_msg_check and asserts
 * the parser-level class of its proxy_action; the file's sha256 must match.
 * Then specific facts of dblreq, mpart01, esc01, escnull, semiuri, the IPv6
 * port cases, ipv6-bad, via-received-param-no-delim, wsinv and longreq. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "sip.h"

#define MAX_FILE 70000

struct blob {
	char data[MAX_FILE];
	size_t len;
};

static const char *shared_dir(void)
{
	const char *d = getenv("REFEREE_SHARED_DIR");
	return d && *d ? d : "/work/shared";
}

/* Reads testdata/<sub>/<name>; fails the test when missing. */
static void load(const char *sub, const char *name, struct blob *b)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/testdata/%s/%s", shared_dir(), sub, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("missing test file %s", path);
	b->len = fread(b->data, 1, sizeof(b->data), f);
	fclose(f);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	assert_int_equal(EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(mdlen, 32);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static struct sip_msg msg;

/* ---------------------------------------------------------------- manifest rows */

/* Parser-level meaning of one proxy_action alternative. */
static bool action_holds(const char *file, const char *act, int rc, enum sip_check ck)
{
	const bool ok = rc >= 0 && ck == SIP_CHECK_OK;
	if (!strcmp(act, "accept") || !strcmp(act, "accept-tolerate") || !strcmp(act, "tolerate") ||
	    !strcmp(act, "rfc2543-match") || !strcmp(act, "reject-416") ||
	    !strcmp(act, "reject-420") || !strcmp(act, "reject-483") || !strcmp(act, "reject-404"))
		return ok; /* decided later by application stages, not the parser */
	if (!strcmp(act, "drop"))
		return !strcmp(file, "bcast.dat") ? ok /* a routing decision */
						  : (rc < 0 || ck == SIP_CHECK_DROP);
	if (!strcmp(act, "reject-400"))
		return rc < 0 || ck == SIP_CHECK_BAD_REQUEST;
	if (!strcmp(act, "reject-505"))
		return rc >= 0 && ck == SIP_CHECK_BAD_VERSION;
	if (!strcmp(act, "reject-501"))
		return rc >= 0 && ck == SIP_CHECK_NOT_IMPL;
	fail_msg("%s: unknown proxy_action '%s' in manifest", file, act);
	return false;
}

/* Facts every accepted message must have. */
static void accepted_sane(const char *file, const struct blob *b, int rc)
{
	if (msg.call_id.len == 0 || msg.cseq_method.len == 0 || msg.n_hdrs < 5 ||
	    (size_t)rc > b->len || msg.len < msg.hdr_end ||
	    msg.body.p + msg.body.len > msg.buf + msg.len)
		fail_msg("%s: accepted but parsed facts are not sane", file);
	if (msg.is_request && (msg.method.len == 0 || msg.ruri.len == 0))
		fail_msg("%s: request without method or Request-URI", file);
	if (!msg.is_request && (msg.status < 100 || msg.status > 699))
		fail_msg("%s: response with status %u", file, msg.status);
}

static int col_index(char *hdr, const char *name)
{
	int i = 0;
	for (char *save = NULL, *t = strtok_r(hdr, "\t\n", &save); t;
	     t = strtok_r(NULL, "\t\n", &save), i++)
		if (!strcmp(t, name))
			return i;
	return -1;
}

static void split_tabs(char *line, char **cols, int max, int *n)
{
	*n = 0;
	for (char *p = line; *n < max;) {
		cols[(*n)++] = p;
		char *t = strchr(p, '\t');
		if (!t)
			break;
		*t = 0;
		p = t + 1;
	}
	char *nl = strchr(cols[*n - 1], '\n');
	if (nl)
		*nl = 0;
}

static int run_manifest(const char *sub)
{
	char path[1024], line[8192], hdr[8192];
	snprintf(path, sizeof(path), "%s/testdata/%s/MANIFEST.tsv", shared_dir(), sub);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("missing manifest %s", path);
	assert_non_null(fgets(line, sizeof(line), f));
	int cfile, cact, cbytes, csha;
	memcpy(hdr, line, sizeof(hdr));
	cfile = col_index(hdr, "file");
	memcpy(hdr, line, sizeof(hdr));
	cact = col_index(hdr, "proxy_action");
	memcpy(hdr, line, sizeof(hdr));
	cbytes = col_index(hdr, "bytes");
	memcpy(hdr, line, sizeof(hdr));
	csha = col_index(hdr, "sha256");
	assert_true(cfile >= 0 && cact >= 0 && cbytes >= 0 && csha >= 0);
	static struct blob b;
	int rows = 0;
	while (fgets(line, sizeof(line), f)) {
		char *cols[16];
		int n;
		split_tabs(line, cols, 16, &n);
		if (n <= csha || n <= cact)
			fail_msg("%s: short manifest row", path);
		const char *file = cols[cfile];
		load(sub, file, &b);
		char hex[65];
		sha256_hex(b.data, b.len, hex);
		if (strcmp(hex, cols[csha]) || b.len != strtoul(cols[cbytes], NULL, 10))
			fail_msg("%s/%s: sha256 or size differs from the manifest", sub, file);
		const int rc = sip_parse(b.data, b.len, &msg);
		const char *why = "parse failed";
		const enum sip_check ck = rc >= 0 ? sip_msg_check(&msg, &why) : SIP_CHECK_OK;
		bool any = false, accept_row = false;
		char acts[256];
		snprintf(acts, sizeof(acts), "%s", cols[cact]);
		for (char *save = NULL, *a = strtok_r(acts, "|", &save); a;
		     a = strtok_r(NULL, "|", &save)) {
			accept_row |= !strncmp(a, "accept", 6);
			any |= action_holds(file, a, rc, ck);
		}
		if (!any)
			fail_msg("%s/%s: expected %s, got parse=%d check=%d (%s)", sub, file,
				 cols[cact], rc, (int)ck, why);
		if (accept_row)
			accepted_sane(file, &b, rc);
		rows++;
	}
	fclose(f);
	return rows;
}

static void test_manifest_rfc4475(void **state) { assert_int_equal(run_manifest("rfc4475"), 49); }

static void test_manifest_rfc5118(void **state) { assert_int_equal(run_manifest("rfc5118"), 12); }

/* ---------------------------------------------------------------- specific facts */

static struct blob fb;

static void parse_ok(const char *sub, const char *name)
{
	load(sub, name, &fb);
	const int rc = sip_parse(fb.data, fb.len, &msg);
	if (rc < 0)
		fail_msg("%s: parse %d", name, rc);
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_OK);
}

static bool eq(struct slice s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void test_dblreq(void **state)
{
	parse_ok("rfc4475", "dblreq.dat");
	assert_true(msg.len < fb.len);
	assert_int_equal(msg.content_length, 0);
	assert_int_equal(msg.body.len, 0);
	assert_int_equal(msg.len, msg.hdr_end + 2);
	assert_true(eq(msg.method, "REGISTER"));
	/* the stray INVITE is outside the message */
	const char *inv = memmem(fb.data, fb.len, "INVITE sip:", 11);
	assert_non_null(inv);
	assert_true(inv >= msg.buf + msg.len);
}

static void test_mpart01(void **state)
{
	parse_ok("rfc4475", "mpart01.dat");
	assert_int_equal(msg.content_length, 553);
	assert_int_equal(msg.body.len, 553);
	assert_non_null(memchr(msg.body.p, 0, msg.body.len));
	assert_int_equal(msg.len, fb.len);
}

static void test_esc01(void **state)
{
	parse_ok("rfc4475", "esc01.dat");
	struct sip_uri u;
	char out[64];
	assert_int_equal(sip_uri_parse(msg.ruri, &u), 0);
	assert_true(eq(u.scheme, "sip"));
	assert_true(eq(u.host, "example.net"));
	int n = sip_unescape(u.user, out, sizeof(out));
	assert_int_equal(n, 21);
	assert_memory_equal(out, "sips:user@example.com", 21);
	/* To user %75se%72 -> user */
	struct sip_nameaddr na;
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_TO)->value, &na), 0);
	assert_int_equal(sip_uri_parse(na.uri, &u), 0);
	assert_int_equal(sip_unescape(u.user, out, sizeof(out)), 4);
	assert_memory_equal(out, "user", 4);
	/* Contact URI param n%61me=v%61lue%25%34%31 decodes once to value%41 */
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_CONTACT)->value, &na), 0);
	assert_int_equal(sip_uri_parse(na.uri, &u), 0);
	struct slice v;
	assert_true(sip_uri_param(&u, SLICE_LIT("n%61me"), &v));
	n = sip_unescape(v, out, sizeof(out));
	assert_int_equal(n, 8);
	assert_memory_equal(out, "value%41", 8);
}

static void test_escnull(void **state)
{
	parse_ok("rfc4475", "escnull.dat");
	struct sip_nameaddr na;
	struct sip_uri u;
	char out[32];
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_TO)->value, &na), 0);
	assert_int_equal(sip_uri_parse(na.uri, &u), 0);
	assert_int_equal(sip_unescape(u.user, out, sizeof(out)), 11);
	assert_memory_equal(out, "null-\0-null", 11);
	/* two distinct Contacts: one NUL and two NULs */
	assert_int_equal(msg.first[SIP_HDR_CONTACT] != msg.last[SIP_HDR_CONTACT], 1);
	int lens[2];
	const uint16_t idx[2] = {msg.first[SIP_HDR_CONTACT], msg.last[SIP_HDR_CONTACT]};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sip_nameaddr_parse(msg.hdrs[idx[i]].value, &na), 0);
		assert_int_equal(sip_uri_parse(na.uri, &u), 0);
		lens[i] = sip_unescape(u.user, out, sizeof(out));
		assert_true(lens[i] > 0);
		for (int k = 0; k < lens[i]; k++)
			assert_int_equal(out[k], 0);
	}
	assert_int_equal(lens[0], 1);
	assert_int_equal(lens[1], 2);
}

static void test_semiuri(void **state)
{
	parse_ok("rfc4475", "semiuri.dat");
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(msg.ruri, &u), 0);
	assert_true(eq(u.user, "user;par=u%40example.net"));
	assert_true(eq(u.host, "example.com"));
	assert_int_equal(u.params.len, 0);
}

static void test_ipv6_ports(void **state)
{
	struct sip_uri u;
	parse_ok("rfc5118", "port-ambiguous.dat");
	assert_int_equal(sip_uri_parse(msg.ruri, &u), 0);
	assert_true(eq(u.host, "[2001:db8::10:5070]"));
	assert_false(u.has_port);
	assert_true(u.host_is_ipv6);
	parse_ok("rfc5118", "port-unambiguous.dat");
	assert_int_equal(sip_uri_parse(msg.ruri, &u), 0);
	assert_true(eq(u.host, "[2001:db8::10]"));
	assert_true(u.has_port);
	assert_int_equal(u.port, 5070);
}

static void test_ipv6_bad(void **state)
{
	load("rfc5118", "ipv6-bad.dat", &fb);
	assert_true(sip_parse(fb.data, fb.len, &msg) >= 0);
	struct sip_uri u;
	assert_int_equal(sip_uri_parse(msg.ruri, &u), -EBADMSG);
	assert_int_equal(sip_msg_check(&msg, NULL), SIP_CHECK_BAD_REQUEST);
}

static void test_via_received_no_delim(void **state)
{
	parse_ok("rfc5118", "via-received-param-no-delim.dat");
	struct sip_via v;
	assert_int_equal(sip_via_parse(sip_msg_hdr(&msg, SIP_HDR_VIA)->value, &v), 0);
	assert_true(eq(v.received, "2001:db8::9:255"));
	assert_true(eq(v.branch, "z9hG4bKas3"));
}

static void test_wsinv(void **state)
{
	parse_ok("rfc4475", "wsinv.dat");
	assert_true(msg.has_max_forwards);
	assert_int_equal(msg.max_forwards, 68);
	assert_int_equal(msg.cseq, 9);
	assert_true(eq(msg.cseq_method, "INVITE"));
	assert_int_equal(msg.content_length, 150);
	/* one folded Via line plus "v:" with two values */
	int vias = 0;
	for (unsigned i = 0; i < msg.n_hdrs; i++)
		vias += msg.hdrs[i].id == SIP_HDR_VIA;
	assert_int_equal(vias, 3);
	struct sip_via v;
	assert_int_equal(sip_via_parse(sip_msg_hdr(&msg, SIP_HDR_VIA)->value, &v), 0);
	assert_true(eq(v.transport, "UDP"));
	assert_true(eq(v.host, "192.0.2.2"));
	assert_true(eq(v.branch, "390skdjuw"));
	assert_int_equal(sip_via_parse(msg.hdrs[msg.last[SIP_HDR_VIA]].value, &v), 0);
	assert_true(eq(v.branch, "z9hG4bK30239"));
	/* folded unknown header keeps its continuation */
	const struct sip_hdr *h = sip_msg_hdr_by_name(&msg, SLICE_LIT("newfangledheader"));
	assert_non_null(h);
	assert_non_null(memmem(h->value.p, h->value.len, "continued newfangled value", 26));
	/* To tag across LWS around ';' and '=' */
	struct sip_nameaddr na;
	struct slice tag;
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_TO)->value, &na), 0);
	assert_true(sip_param_find(na.params, SLICE_LIT("tag"), &tag));
	assert_true(eq(tag, "1918181833n"));
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_FROM)->value, &na), 0);
	assert_true(sip_param_find(na.params, SLICE_LIT("TAG"), &tag));
	assert_true(eq(tag, "98asjd8"));
	/* "s :" is an empty Subject, still present */
	assert_non_null(sip_msg_hdr(&msg, SIP_HDR_SUBJECT));
	assert_int_equal(sip_msg_hdr(&msg, SIP_HDR_SUBJECT)->value.len, 0);
}

static void test_longreq(void **state)
{
	parse_ok("rfc4475", "longreq.dat");
	int vias = 0;
	struct sip_via v;
	for (unsigned i = 0; i < msg.n_hdrs; i++)
		if (msg.hdrs[i].id == SIP_HDR_VIA) {
			assert_int_equal(sip_via_parse(msg.hdrs[i].value, &v), 0);
			vias++;
		}
	assert_int_equal(vias, 34);
	assert_true(msg.call_id.len > 100);
	struct sip_nameaddr na;
	assert_int_equal(sip_nameaddr_parse(sip_msg_hdr(&msg, SIP_HDR_TO)->value, &na), 0);
	assert_true(na.display.len > 90);
	assert_int_equal(msg.len, fb.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manifest_rfc4475),
	    cmocka_unit_test(test_manifest_rfc5118),
	    cmocka_unit_test(test_dblreq),
	    cmocka_unit_test(test_mpart01),
	    cmocka_unit_test(test_esc01),
	    cmocka_unit_test(test_escnull),
	    cmocka_unit_test(test_semiuri),
	    cmocka_unit_test(test_ipv6_ports),
	    cmocka_unit_test(test_ipv6_bad),
	    cmocka_unit_test(test_via_received_no_delim),
	    cmocka_unit_test(test_wsinv),
	    cmocka_unit_test(test_longreq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
