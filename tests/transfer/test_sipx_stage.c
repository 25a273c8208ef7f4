/* test_sipx_stage.c - the transfer stage in transfer.identity: sipx (SPEC §5,
 * reference §1.3, §2.4, §6.2): the REFER rewrite in sipXecs' exact encoding
 * (%253A%253A), and X-Sipx-Authidentity on incoming requests: unbound and
 * bound, %3A and ':' spellings, only the last instance counts, uppercase TS,
 * expiry (transfer.sipx_validity), unknown users, forged signatures, trusted
 * sources. Real parser, store, auth and identity stage. */
#include "transfer_fixture.h"

static struct txn *request(const char *method, const char *src, const char *call_id, const char *extra)
{
	char text[4096];
	snprintf(text, sizeof(text),
		 "%s sip:1002@example.edu SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-s1\n"
		 "Max-Forwards: 70\n"
		 "From: <sip:transferee@elsewhere.net>;tag=ftag1\n"
		 "To: <sip:1002@example.edu>\n"
		 "Call-ID: %s\n"
		 "CSeq: 1 %s\n"
		 "%s"
		 "Content-Length: 0\n\n",
		 method, call_id, method, extra);
	return fx_txn(fx_sipx, src, text);
}

/* hdr - "X-Sipx-Authidentity: <sip:ID;signature=SIG>\n" with the signature %3A-escaped or not */
static void hdr(char *out, size_t cap, const char *id, uint64_t ts, bool bound, const char *call_id,
		bool escaped)
{
	const struct transfer_keys *k = transfer_keys();
	char sig[64], esc[128];
	int n = transfer_sipx_sign(k->secret, k->secret_len, ts, bound, SLICE_LIT("ftag1"),
				   slice_from_cstr(call_id), slice_from_cstr(id), sig, sizeof(sig));
	assert_true(n > 0);
	int e = escaped ? transfer_escape(slice_make(sig, (size_t)n), esc, sizeof(esc)) : n;
	if (!escaped)
		memcpy(esc, sig, (size_t)n);
	snprintf(out, cap, "X-Sipx-Authidentity: <sip:%s;signature=%.*s>\n", id, e, esc);
}

static enum stage_rc run(struct txn *t)
{
	enum stage_rc rc = fx_identity(t);
	return rc == STAGE_CONTINUE ? fx_transfer(t) : rc;
}

static void test_sipx_refer_rewrite(void **state)
{
	struct txn *t = request("REFER", "192.0.2.5", "r@x", "Refer-To: <sip:1002@example.edu?Replaces=a%40b>\n");
	fx_identity(t);
	fx_login(t, "1001@example.edu");
	uint64_t now = now_unix_sec();
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	struct slice v = txn_hdr_replacement(t, t->msg.first[SIP_HDR_REFER_TO]);
	assert_non_null(v.p);
	assert_null(memmem(v.p, v.len, "refgrant", 8)); /* sipx mode: the sipXecs parameter only */
	const char *pre = "<sip:1002@example.edu?Replaces=a%40b&X-sipX-Authidentity=%3Csip%3A1001%40example.edu%3Bsignature%3D";
	assert_true(slice_has_caseprefix(v, slice_from_cstr(pre)));
	const char *sep = memmem(v.p, v.len, "%253A%253A", 10);
	assert_non_null(sep);
	/* decode as the transferee and then referee would: header unescape, URI param unescape */
	static char scratch[1024];
	struct transfer_referto r;
	assert_int_equal(transfer_referto_parse(v, scratch, sizeof(scratch), &r), 0);
	struct slice hv, sig;
	assert_true(sip_uri_header(&r.uri, SLICE_LIT("X-sipX-Authidentity"), &hv));
	char dec[256], sigdec[64];
	int d = sip_unescape(hv, dec, sizeof(dec));
	struct sip_nameaddr na;
	struct sip_uri iu;
	assert_int_equal(sip_nameaddr_parse(slice_make(dec, (size_t)d), &na), 0);
	assert_int_equal(sip_uri_parse(na.uri, &iu), 0);
	assert_true(sip_uri_param(&iu, SLICE_LIT("signature"), &sig));
	int sn = sip_unescape(sig, sigdec, sizeof(sigdec));
	assert_true(sn > 0);
	const struct transfer_keys *k = transfer_keys();
	assert_int_equal(transfer_sipx_verify(k->secret, k->secret_len, slice_make(sigdec, (size_t)sn),
					      SLICE_LIT("1001@example.edu"), SLICE_NULL, SLICE_NULL, now, 300),
			 TRANSFER_OK);
	free(t);
}

static void test_sipx_invite_identity(void **state)
{
	uint64_t now = now_unix_sec();
	struct {
		bool bound, escaped;
	} forms[] = { { false, true }, { false, false }, { true, true }, { true, false } };
	for (size_t i = 0; i < 4; i++) {
		char h[256];
		hdr(h, sizeof(h), "1001@example.edu", now - 10, forms[i].bound, "inv@x", forms[i].escaped);
		struct txn *t = request("INVITE", "192.0.2.9", "inv@x", h);
		int64_t acc = fx_grants(TRANSFER_M_ACCEPTED);
		assert_int_equal(run(t), STAGE_CONTINUE);
		assert_int_equal(t->id_source, TXN_ID_TRANSFER);
		assert_true(slice_eq(t->identity, SLICE_LIT("1001@example.edu")));
		assert_true(t->perms_known);
		assert_int_equal(fx_grants(TRANSFER_M_ACCEPTED), acc + 1);
		free(t);
	}
	/* SPEC §2: any request but ACK/CANCEL */
	char h[256];
	hdr(h, sizeof(h), "1001@example.edu", now, false, "m@x", true);
	struct txn *t = request("MESSAGE", "192.0.2.9", "m@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRANSFER);
	free(t);
	/* a bound signature is bound to its Call-ID */
	hdr(h, sizeof(h), "1001@example.edu", now, true, "other@x", true);
	t = request("INVITE", "192.0.2.9", "inv@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	free(t);
}

/* reference §6.2 testIdentityConstruction: only the LAST instance counts */
static void test_sipx_last_instance(void **state)
{
	uint64_t now = now_unix_sec();
	char good[256], bad[256], two[600];
	hdr(good, sizeof(good), "1001@example.edu", now, false, "x", true);
	snprintf(bad, sizeof(bad), "X-Sipx-Authidentity: <sip:1003@example.edu;signature=%llX%%3A%%3A%s>\n",
		 (unsigned long long)now, "0123456789abcdef0123456789abcdef");
	snprintf(two, sizeof(two), "%s%s", good, bad);
	struct txn *t = request("INVITE", "192.0.2.9", "l1@x", two);
	int64_t badmac = fx_grants(TRANSFER_M_BAD_MAC);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	assert_int_equal(fx_grants(TRANSFER_M_BAD_MAC), badmac + 1);
	free(t);
	snprintf(two, sizeof(two), "%s%s", bad, good);
	t = request("INVITE", "192.0.2.9", "l2@x", two);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRANSFER);
	assert_true(slice_eq(t->identity, SLICE_LIT("1001@example.edu")));
	unsigned first = t->msg.first[SIP_HDR_X_SIPX_AUTHIDENTITY], last = t->msg.last[SIP_HDR_X_SIPX_AUTHIDENTITY];
	assert_int_not_equal(first, last);
	assert_true(txn_hdr_removed(t, first));  /* normalized: the earlier one goes */
	assert_false(txn_hdr_removed(t, last));
	free(t);
	/* two values in one header line: not a name-addr */
	snprintf(two, sizeof(two), "X-Sipx-Authidentity: <sip:a@b;signature=1%%3A%%3Aab>, <sip:c@d;signature=2>\n");
	t = request("INVITE", "192.0.2.9", "l3@x", two);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	free(t);
}

static void test_sipx_rejected(void **state)
{
	uint64_t now = now_unix_sec();
	char h[256];
	/* expired: older than transfer.sipx_validity (300 s) */
	hdr(h, sizeof(h), "1001@example.edu", now - 301, false, "x", true);
	int64_t exp = fx_grants(TRANSFER_M_EXPIRED);
	struct txn *t = request("INVITE", "192.0.2.9", "e@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	assert_int_equal(fx_grants(TRANSFER_M_EXPIRED), exp + 1);
	free(t);
	/* lowercase TS */
	hdr(h, sizeof(h), "1001@example.edu", 0x6600abcd, false, "x", true);
	for (char *p = strstr(h, "signature=") + 10; *p != '%'; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
	int64_t mal = fx_grants(TRANSFER_M_MALFORMED);
	t = request("INVITE", "192.0.2.9", "lc@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	assert_int_equal(fx_grants(TRANSFER_M_MALFORMED), mal + 1);
	free(t);
	/* unknown user */
	hdr(h, sizeof(h), "ghost@example.edu", now, false, "x", true);
	int64_t unk = fx_grants(TRANSFER_M_UNKNOWN_USER);
	t = request("INVITE", "192.0.2.9", "u@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	assert_int_equal(fx_grants(TRANSFER_M_UNKNOWN_USER), unk + 1);
	free(t);
	/* signed with another secret (reference §2.6 vector B, secret "testsecret") */
	snprintf(h, sizeof(h), "X-Sipx-Authidentity: <sip:identity@example.com;signature=46A55D33%%3A%%3Af4857963090ab03bdef0bee556234b14>\n");
	t = request("INVITE", "192.0.2.9", "f@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	free(t);
	/* sips: and quoted signatures are not identities (reference §6.2) */
	const char *odd[] = { "X-Sipx-Authidentity: <sips:1001@example.edu;signature=1%3A%3Aab>\n",
			      "X-Sipx-Authidentity: <sip:user@domain;signature=\"Blah-Blah\">\n",
			      "X-Sipx-Authidentity: Blah-Blah\n" };
	for (size_t i = 0; i < 3; i++) {
		t = request("INVITE", "192.0.2.9", "o@x", odd[i]);
		assert_int_equal(run(t), STAGE_CONTINUE);
		assert_int_equal(t->id_source, TXN_ID_NONE);
		free(t);
	}
}

/* trusted sources keep TXN_ID_TRUSTED: SPEC §2 first match wins */
static void test_sipx_trusted(void **state)
{
	char h[256];
	hdr(h, sizeof(h), "1001@example.edu", now_unix_sec(), false, "x", true);
	struct txn *t = request("INVITE", "10.0.0.1", "t@x", h);
	assert_int_equal(run(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRUSTED);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sipx_refer_rewrite), cmocka_unit_test(test_sipx_invite_identity),
		cmocka_unit_test(test_sipx_last_instance), cmocka_unit_test(test_sipx_rejected),
		cmocka_unit_test(test_sipx_trusted),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
