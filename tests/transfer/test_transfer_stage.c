/* test_transfer_stage.c - the transfer stage end to end (SPEC §5) with the
 * real parser, store (file backend), auth (challenge, rules) and identity
 * stage: the applicable rows of reference §6.1 (TransferControlTest), REFER
 * foreign / anonymous / authenticated / trusted / check_at_refer, the grant
 * coming back in the INVITE's Request-URI, in the header only, in both,
 * replay in another dialog (403) and retransmission in the same one, and the
 * rejected-token reasons counted in referee_transfer_grants_total. */
#include "transfer_fixture.h"

#define REFER_FMT                                            \
	"REFER sip:1002@example.edu SIP/2.0\n"               \
	"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-r1\n" \
	"Max-Forwards: 70\n"                                 \
	"From: <sip:1001@example.edu>;tag=30543f34\n"        \
	"To: <sip:1002@example.edu>%s\n"                     \
	"Call-ID: f88dfabc@192.0.2.5\n"                      \
	"CSeq: 2 REFER\n"                                    \
	"Contact: <sip:caller@127.0.0.1>\n"                  \
	"Refer-To: %s\n"                                     \
	"Content-Length: 0\n\n"

static struct txn *refer(const char *src, const char *refer_to, bool in_dialog)
{
	char text[2048];
	snprintf(text, sizeof(text), REFER_FMT, in_dialog ? ";tag=to1" : "", refer_to);
	return fx_txn(fx_grant, src, text);
}

static struct txn *invite(const struct cfg *c, const char *ruri, const char *call_id, const char *from_tag,
			  const char *extra)
{
	char text[4096];
	snprintf(text, sizeof(text),
		 "INVITE %s SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-i1\n"
		 "Max-Forwards: 70\n"
		 "From: <sip:transferee@elsewhere.net>;tag=%s\n"
		 "To: <sip:1002@example.edu>\n"
		 "Call-ID: %s\n"
		 "CSeq: 1 INVITE\n"
		 "Contact: <sip:transferee@192.0.2.9>\n"
		 "%s"
		 "Content-Length: 0\n\n",
		 ruri, from_tag, call_id, extra);
	return fx_txn(c, "192.0.2.9", text);
}

/* ---------------------------------------------------------------- REFER */

/* §6.1 UnAuthenticatedForiegnRefer: forwarded untouched, never challenged */
static void test_refer_foreign(void **state)
{
	const char *targets[] = { "<sip:other@elsewhere.edu>", "<sip:1002@example.edu.evil.net>",
				  "<sips:1002@example.edu>", "<tel:+15551234>", "<sip:else@example.edu;method=INFO>" };
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		struct txn *t = refer("192.0.2.5", targets[i], false);
		assert_int_equal(fx_identity(t), STAGE_CONTINUE);
		assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
		assert_false(fx_any_edit(t));
		assert_int_equal(t->reply_code, 0);
		fx_login(t, "1001@example.edu"); /* authenticated: still never annotated */
		assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
		assert_false(fx_any_edit(t));
		free(t);
	}
}

/* §6.1 UnAuthenticatedReferWithoutReplaces / WithReplaces: 407 */
static void test_refer_anonymous(void **state)
{
	const char *targets[] = {
		"<sip:1002@example.edu>",
		"other@example.edu",
		"<other@example.edu;transport=udp?replaces=valid%40callid%3Bto-tag%3Dtotagvalue%3Bfrom-tag%3dfromtagvalue>",
		"\"Target\" <sip:1002@SIPX.example.edu;method=invite>",
	};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		for (int dlg = 0; dlg < 2; dlg++) { /* in-dialog REFERs too */
			int64_t before = metrics_value(transfer_metrics.challenges);
			struct txn *t = refer("192.0.2.5", targets[i], dlg);
			assert_int_equal(fx_identity(t), STAGE_CONTINUE);
			assert_int_equal(fx_transfer(t), STAGE_REPLY);
			assert_int_equal(t->reply_code, 407);
			assert_true(t->n_reply_hdrs >= 1);
			assert_true(slice_has_caseprefix(t->reply_hdrs[0], SLICE_LIT("Proxy-Authenticate: Digest")));
			assert_false(fx_any_edit(t)); /* Refer-To unmodified */
			assert_int_equal(metrics_value(transfer_metrics.challenges), before + 1);
			free(t);
		}
	}
}

/* trusted sources: no challenge, no rewrite */
static void test_refer_trusted(void **state)
{
	struct txn *t = refer("10.1.2.3", "<sip:1002@example.edu>", false);
	assert_int_equal(fx_identity(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRUSTED);
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_false(fx_any_edit(t));
	free(t);
}

/* decode the rewritten Refer-To: refgrant (always) and the header's grant
 * (when it fits the 255-character budget) must be the same valid token */
static void check_grant_referto(struct slice v, const char *target, const char *identity, bool want_hdr,
				struct slice *token)
{
	static char scratch[1024];
	struct transfer_referto r;
	assert_int_equal(transfer_referto_parse(v, scratch, sizeof(scratch), &r), 0);
	struct slice tok, hv;
	assert_true(sip_uri_param(&r.uri, SLICE_LIT("refgrant"), &tok));
	assert_int_equal(sip_uri_header(&r.uri, SLICE_LIT("X-Sipx-Authidentity"), &hv), want_hdr);
	if (want_hdr) {
		char dec[512];
		int d = sip_unescape(hv, dec, sizeof(dec));
		assert_true(d > 0);
		struct sip_nameaddr na;
		struct sip_uri iu;
		struct slice tok2;
		assert_int_equal(sip_nameaddr_parse(slice_make(dec, (size_t)d), &na), 0);
		assert_int_equal(sip_uri_parse(na.uri, &iu), 0);
		assert_true(sip_uri_param(&iu, SLICE_LIT("grant"), &tok2));
		assert_true(slice_eq(tok, tok2));
		assert_true(v.len <= TRANSFER_REFERTO_MAX);
	}
	struct transfer_grant g;
	assert_int_equal(transfer_grant_verify(transfer_keys(), tok, slice_from_cstr(target), now_unix_sec(), &g),
			 TRANSFER_OK);
	assert_true(slice_eq(slice_make(g.id, g.id_len), slice_from_cstr(identity)));
	*token = tok;
}

/* §6.1 AuthenticatedRefer: the Refer-To carries the token in both carriers */
static void test_refer_authenticated(void **state)
{
	for (int dlg = 0; dlg < 2; dlg++) {
		int64_t issued = fx_grants(TRANSFER_M_ISSUED), rewrites = metrics_value(transfer_metrics.rewrites);
		struct txn *t = refer("192.0.2.5", "<sip:1002@example.edu>", dlg);
		assert_int_equal(fx_identity(t), STAGE_CONTINUE);
		fx_login(t, "1001@example.edu");
		assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
		struct slice v = txn_hdr_replacement(t, t->msg.first[SIP_HDR_REFER_TO]);
		assert_non_null(v.p);
		assert_true(slice_has_caseprefix(v, SLICE_LIT("<sip:1002@example.edu;refgrant=v1.")));
		const char *mid = "?X-Sipx-Authidentity=%3Csip%3A1001%40example.edu%3Bgrant%3Dv1.";
		assert_non_null(memmem(v.p, v.len, mid, strlen(mid)));
		struct slice tok;
		check_grant_referto(v, "1002@example.edu", "1001@example.edu", true, &tok);
		assert_int_equal(fx_grants(TRANSFER_M_ISSUED), issued + 1);
		assert_int_equal(metrics_value(transfer_metrics.rewrites), rewrites + 1);
		free(t);
	}
}

/* attended transfer: Replaces, display name, header params kept byte for byte,
 * the sender's tokens removed; over 255 characters only the URI parameter stays */
static void test_refer_replaces(void **state)
{
	struct txn *t = refer("192.0.2.5",
			      "\"Bob\" <sip:1002@example.edu;refgrant=forged"
			      "?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2&X-Sipx-Authidentity=forged>;x=y",
			      true);
	fx_login(t, "1001@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	struct slice v = txn_hdr_replacement(t, t->msg.first[SIP_HDR_REFER_TO]);
	assert_non_null(v.p);
	assert_true(slice_has_caseprefix(v, SLICE_LIT("\"Bob\" <sip:1002@example.edu;refgrant=v1.")));
	const char *tail = "?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>;x=y";
	assert_true(v.len > strlen(tail) && memcmp(v.p + v.len - strlen(tail), tail, strlen(tail)) == 0);
	assert_null(memmem(v.p, v.len, "forged", 6));
	assert_true(v.len <= TRANSFER_REFERTO_MAX);
	struct slice tok;
	check_grant_referto(v, "1002@example.edu", "1001@example.edu", false, &tok);
	free(t);
}

/* check_at_refer: 403 "Requires ..." at once; off: rewritten anyway */
static void test_refer_check_at_refer(void **state)
{
	struct txn *t = refer("192.0.2.5", "<sip:9123@example.edu>", false);
	fx_identity(t);
	fx_login(t, "1002@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_REPLY);
	assert_int_equal(t->reply_code, 403);
	assert_string_equal(fx_reason(t), "Requires InternationalDialing");
	assert_false(fx_any_edit(t));
	free(t);

	t = refer("192.0.2.5", "<sip:forbidden@example.edu>", false);
	fx_login(t, "1001@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_REPLY);
	assert_string_equal(fx_reason(t), "Requires NoAccess");
	free(t);

	t = refer("192.0.2.5", "<sip:9123@example.edu>", false);
	fx_login(t, "1001@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_non_null(txn_hdr_replacement(t, t->msg.first[SIP_HDR_REFER_TO]).p);
	free(t);

	t = refer("192.0.2.5", "<sip:9123@example.edu>", false);
	t->cfg = fx_nocheck;
	fx_login(t, "1002@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	struct slice tok;
	check_grant_referto(txn_hdr_replacement(t, t->msg.first[SIP_HDR_REFER_TO]), "9123@example.edu",
			    "1002@example.edu", true, &tok);
	free(t);
}

static void test_refer_bad(void **state)
{
	struct txn *t = refer("192.0.2.5", "<sip:1002@example.edu", false);
	assert_int_equal(fx_transfer(t), STAGE_REPLY);
	assert_int_equal(t->reply_code, 400);
	free(t);
	char text[2048];
	snprintf(text, sizeof(text), REFER_FMT, "", "<sip:1002@example.edu>\nRefer-To: <sip:x@elsewhere.edu>");
	t = fx_txn(fx_grant, "192.0.2.5", text);
	assert_int_equal(fx_transfer(t), STAGE_REPLY);
	assert_int_equal(t->reply_code, 400);
	free(t);
}

/* §6.1 nonInvite, normalInvite, InviteWithReplaces: untouched (the rules decide) */
static void test_non_refer_untouched(void **state)
{
	struct txn *t = invite(fx_grant, "sip:1002@example.edu", "n1@x", "f1", "");
	fx_identity(t);
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_false(fx_any_edit(t));
	assert_int_equal(t->id_source, TXN_ID_NONE);
	free(t);
	t = invite(fx_grant, "sip:1002@example.edu", "n2@x", "f1",
		   "Replaces: valid@callid;to-tag=totagvalue;from-tag=fromtagvalue\n");
	fx_identity(t);
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_false(fx_any_edit(t));
	free(t);
	t = fx_txn(fx_grant, "192.0.2.5",
		   "INFO sip:1002@example.edu SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-x\n"
		   "From: <sip:a@b>;tag=1\nTo: <sip:1002@example.edu>;tag=2\nCall-ID: info@x\nCSeq: 3 INFO\n"
		   "Content-Length: 0\n\n");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_false(fx_any_edit(t));
	free(t);
}

/* ---------------------------------------------------------------- INVITE with a grant */

static int mint(const char *identity, const char *target, int64_t ttl, char *out, size_t cap)
{
	int n = transfer_grant_issue(transfer_keys(), slice_from_cstr(identity), slice_from_cstr(target),
				     (uint64_t)((int64_t)now_unix_sec() + ttl), out, cap);
	assert_true(n > 0);
	out[n] = '\0';
	return n;
}

static void expect_identity(struct txn *t, const char *id)
{
	assert_int_equal(t->id_source, TXN_ID_TRANSFER);
	assert_true(slice_eq(t->identity, slice_from_cstr(id)));
	assert_true(t->perms_known);
	int intl = store_perm_id("InternationalDialing", 20);
	assert_true(intl >= 0);
	assert_true(store_perms_has(t->perms, (unsigned)intl));
	assert_true(store_perms_has(t->perms, STORE_PERM_VALID_USER));
}

/* refer_grant - an authenticated REFER to @target; the UA's view of the
 * rewritten Refer-To: Request-URI (URI without headers) and the header line */
static void refer_grant(const char *target, char *ruri, size_t rcap, char *hdr_line, size_t hcap)
{
	struct txn *r = refer("192.0.2.5", target, false);
	fx_login(r, "1001@example.edu");
	assert_int_equal(fx_transfer(r), STAGE_CONTINUE);
	static char scratch[1024];
	struct transfer_referto rt;
	assert_int_equal(transfer_referto_parse(txn_hdr_replacement(r, r->msg.first[SIP_HDR_REFER_TO]), scratch,
						sizeof(scratch), &rt),
			 0);
	struct slice hv;
	assert_true(sip_uri_header(&rt.uri, SLICE_LIT("X-Sipx-Authidentity"), &hv));
	char hdr[512];
	int d = sip_unescape(hv, hdr, sizeof(hdr));
	assert_true(d > 0);
	snprintf(ruri, rcap, "%.*s", (int)(rt.uri.headers.p - rt.uri.whole.p), rt.uri.whole.p);
	snprintf(hdr_line, hcap, "X-Sipx-Authidentity: %.*s\n", d, hdr);
	free(r);
}

/* the whole transfer: authenticated REFER, then the INVITE a UA builds from it:
 * grant in the Request-URI only (baresip, Twinkle...), header only, both */
static void test_refer_then_invite(void **state)
{
	for (int mode = 0; mode < 3; mode++) {
		char ruri[512], extra[600], cid[32];
		refer_grant("<sip:9123@example.edu>", ruri, sizeof(ruri), extra, sizeof(extra));
		snprintf(cid, sizeof(cid), "xfer-%d@192.0.2.9", mode);
		struct txn *t = invite(fx_grant, mode == 1 ? "sip:9123@EXAMPLE.edu;transport=udp" : ruri, cid, "tt",
				       mode == 0 ? "" : extra);
		int64_t acc = fx_grants(TRANSFER_M_ACCEPTED);
		assert_int_equal(fx_identity(t), STAGE_CONTINUE);
		assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
		expect_identity(t, "1001@example.edu");
		assert_int_equal(fx_grants(TRANSFER_M_ACCEPTED), acc + 1);
		if (mode != 1)
			assert_true(slice_eq(t->edits.ruri, SLICE_LIT("sip:9123@example.edu")));
		else
			assert_null(t->edits.ruri.p);
		if (mode != 0)
			assert_true(txn_hdr_removed(t, t->msg.last[SIP_HDR_X_SIPX_AUTHIDENTITY]));
		assert_null(txn_hdr_replacement(t, t->msg.first[SIP_HDR_TO]).p); /* To left alone */
		free(t);
	}
}

/* a grant binds to its first dialog: retransmissions/re-INVITEs pass, other dialogs get 403 */
static void test_invite_replay(void **state)
{
	char tok[128], ruri[256];
	mint("1001@example.edu", "1002@example.edu", 60, tok, sizeof(tok));
	snprintf(ruri, sizeof(ruri), "sip:1002@example.edu;refgrant=%s", tok);
	struct txn *t = invite(fx_grant, ruri, "d1@x", "tagA", "");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	expect_identity(t, "1001@example.edu");
	free(t);
	t = invite(fx_grant, ruri, "d1@x", "tagA", ""); /* retransmission */
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	expect_identity(t, "1001@example.edu");
	free(t);
	int64_t rep = fx_grants(TRANSFER_M_REPLAYED);
	const char *dialogs[][2] = { { "d2@x", "tagA" }, { "d1@x", "tagB" } };
	for (int i = 0; i < 2; i++) {
		t = invite(fx_grant, ruri, dialogs[i][0], dialogs[i][1], "");
		assert_int_equal(fx_transfer(t), STAGE_REPLY);
		assert_int_equal(t->reply_code, 403);
		assert_int_not_equal(t->id_source, TXN_ID_TRANSFER);
		free(t);
	}
	assert_int_equal(fx_grants(TRANSFER_M_REPLAYED), rep + 2);
}

/* invalid grants are ignored (anonymous INVITE), removed, and counted by reason */
static void test_invite_rejected_grants(void **state)
{
	char tok[128], ruri[300];
	struct {
		const char *identity, *target, *ruri_target;
		int64_t ttl;
		int tamper;
		enum transfer_grant_metric m;
	} cases[] = {
		{ "1001@example.edu", "1002@example.edu", "9123@example.edu", 60, 0, TRANSFER_M_WRONG_TARGET },
		{ "1001@example.edu", "1002@example.edu", "1002@example.edu", -5, 0, TRANSFER_M_EXPIRED },
		{ "1001@example.edu", "1002@example.edu", "1002@example.edu", 60, 1, TRANSFER_M_BAD_MAC },
		{ "1001@example.edu", "1002@example.edu", "1002@example.edu", 60, 2, TRANSFER_M_MALFORMED },
		{ "ghost@example.edu", "1002@example.edu", "1002@example.edu", 60, 0, TRANSFER_M_UNKNOWN_USER },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = mint(cases[i].identity, cases[i].target, cases[i].ttl, tok, sizeof(tok));
		if (cases[i].tamper == 1)
			tok[n - 3] = tok[n - 3] == 'A' ? 'B' : 'A';
		if (cases[i].tamper == 2)
			tok[5] = '!'; /* not base64url */
		snprintf(ruri, sizeof(ruri), "sip:%s;refgrant=%s", cases[i].ruri_target, tok);
		int64_t before = fx_grants(cases[i].m);
		char cid[32];
		snprintf(cid, sizeof(cid), "rej-%zu@x", i);
		struct txn *t = invite(fx_grant, ruri, cid, "t1", "");
		assert_int_equal(fx_identity(t), STAGE_CONTINUE);
		assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
		assert_int_equal(t->id_source, TXN_ID_NONE);
		assert_int_equal(t->identity.len, 0);
		char want[64];
		snprintf(want, sizeof(want), "sip:%s", cases[i].ruri_target);
		assert_true(slice_eq(t->edits.ruri, slice_from_cstr(want))); /* removed all the same */
		assert_int_equal(fx_grants(cases[i].m), before + 1);
		free(t);
	}
}

/* grants only count on INVITE; trusted sources are not evaluated (but the grant is stripped) */
static void test_invite_grant_scope(void **state)
{
	char tok[128], extra[300];
	mint("1001@example.edu", "1002@example.edu", 60, tok, sizeof(tok));
	snprintf(extra, sizeof(extra), "X-Sipx-Authidentity: <sip:1001@example.edu;grant=%s>\n", tok);
	char text[1024];
	snprintf(text, sizeof(text),
		 "MESSAGE sip:1002@example.edu SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-m\n"
		 "From: <sip:x@elsewhere.net>;tag=1\nTo: <sip:1002@example.edu>\nCall-ID: msg@x\nCSeq: 1 MESSAGE\n"
		 "%sContent-Length: 0\n\n",
		 extra);
	struct txn *t = fx_txn(fx_grant, "192.0.2.9", text);
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	free(t);

	t = invite(fx_grant, "sip:1002@example.edu", "tr@x", "t", extra);
	struct sockaddr_in *sin = (struct sockaddr_in *)&t->src;
	inet_pton(AF_INET, "10.9.9.9", &sin->sin_addr);
	assert_int_equal(fx_identity(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRUSTED);
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRUSTED);
	assert_true(txn_hdr_removed(t, t->msg.last[SIP_HDR_X_SIPX_AUTHIDENTITY]));
	free(t);
}

/* a valid grant overrides a digest identity (SPEC §2 order: item 2 before item 3) */
static void test_invite_grant_over_digest(void **state)
{
	char tok[128], ruri[256];
	mint("1001@example.edu", "1002@example.edu", 60, tok, sizeof(tok));
	snprintf(ruri, sizeof(ruri), "sip:1002@example.edu;refgrant=%s", tok);
	struct txn *t = invite(fx_grant, ruri, "dig@x", "t", "");
	fx_login(t, "1003@example.edu");
	assert_int_equal(fx_transfer(t), STAGE_CONTINUE);
	expect_identity(t, "1001@example.edu");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refer_foreign),
		cmocka_unit_test(test_refer_anonymous),
		cmocka_unit_test(test_refer_trusted),
		cmocka_unit_test(test_refer_authenticated),
		cmocka_unit_test(test_refer_replaces),
		cmocka_unit_test(test_refer_check_at_refer),
		cmocka_unit_test(test_refer_bad),
		cmocka_unit_test(test_non_refer_untouched),
		cmocka_unit_test(test_refer_then_invite),
		cmocka_unit_test(test_invite_replay),
		cmocka_unit_test(test_invite_rejected_grants),
		cmocka_unit_test(test_invite_grant_scope),
		cmocka_unit_test(test_invite_grant_over_digest),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
