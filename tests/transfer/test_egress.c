/* test_egress.c - egress hygiene (transfer_egress.c, SPEC §5 last paragraph):
 * what leaves toward non-trusted and trusted next hops, Proxy-Authorization
 * kept for other realms, P-Asserted-Identity added once for a user identity
 * and never passed on from a non-trusted source. */
#include "transfer_fixture.h"

#define MSG                                                                                 \
	"INVITE sip:9123@example.edu SIP/2.0\n"                                             \
	"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-e1\n"                                \
	"From: <sip:1001@example.edu>;tag=f\n"                                              \
	"To: <sip:9123@example.edu>\n"                                                      \
	"Call-ID: eg@x\n"                                                                   \
	"CSeq: 1 INVITE\n"                                                                  \
	"X-Sipx-Authidentity: <sip:1001@example.edu;grant=x>\n"                             \
	"P-Preferred-Identity: <sip:boss@example.edu>\n"                                    \
	"Proxy-Authorization: Digest username=\"1001\", realm=\"example.edu\", nonce=\"n\"\n" \
	"Proxy-Authorization: Digest username=\"a,realm=\\\"example.edu\\\"\", realm=\"other.net\"\n" \
	"P-Asserted-Identity: <sip:ceo@example.edu>\n"                                      \
	"Subject: hi\n"                                                                     \
	"Content-Length: 0\n\n"

static int idx(const struct txn *t, enum sip_hdr_id id, unsigned nth)
{
	for (unsigned i = 0; i < t->msg.n_hdrs; i++)
		if (t->msg.hdrs[i].id == id && nth-- == 0)
			return (int)i;
	fail();
	return -1;
}

static void test_untrusted_hop(void **state)
{
	struct txn *t = fx_txn(fx_grant, "192.0.2.9", MSG);
	fx_login(t, "1001@example.edu");
	t->next_hop_trusted = false;
	assert_int_equal(transfer_egress_stage(t), STAGE_CONTINUE);
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_X_SIPX_AUTHIDENTITY, 0)));
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_P_PREFERRED_IDENTITY, 0)));
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_PROXY_AUTHORIZATION, 0)));
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_PROXY_AUTHORIZATION, 1))); /* another realm's */
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_P_ASSERTED_IDENTITY, 0)));
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_SUBJECT, 0)));
	assert_int_equal(t->edits.n_added, 0); /* no identity assertion toward untrusted hops */
	free(t);
}

static void test_trusted_hop(void **state)
{
	struct txn *t = fx_txn(fx_grant, "192.0.2.9", MSG);
	fx_login(t, "1001@example.edu");
	t->next_hop_trusted = true;
	transfer_egress(t);
	transfer_egress(t); /* idempotent: the stage and a direct call may both run */
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_X_SIPX_AUTHIDENTITY, 0)));
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_P_PREFERRED_IDENTITY, 0)));
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_PROXY_AUTHORIZATION, 0)));
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_P_ASSERTED_IDENTITY, 0))); /* the client's own claim */
	assert_int_equal(t->edits.n_added, 1);
	assert_true(slice_eq(t->edits.added[0], SLICE_LIT("P-Asserted-Identity: <sip:1001@example.edu>")));
	free(t);
}

static void test_no_user_identity(void **state)
{
	/* anonymous toward a trusted hop: nothing asserted */
	struct txn *t = fx_txn(fx_grant, "192.0.2.9", MSG);
	t->next_hop_trusted = true;
	transfer_egress(t);
	assert_int_equal(t->edits.n_added, 0);
	free(t);
	/* trusted source: its P-Asserted-Identity is kept, nothing added */
	t = fx_txn(fx_grant, "10.0.0.7", MSG);
	assert_int_equal(fx_identity(t), STAGE_CONTINUE);
	assert_int_equal(t->id_source, TXN_ID_TRUSTED);
	t->next_hop_trusted = true;
	transfer_egress(t);
	assert_false(txn_hdr_removed(t, idx(t, SIP_HDR_P_ASSERTED_IDENTITY, 0)));
	assert_int_equal(t->edits.n_added, 0);
	/* ...but toward a non-trusted hop the private headers still go */
	t->next_hop_trusted = false;
	transfer_egress(t);
	assert_true(txn_hdr_removed(t, idx(t, SIP_HDR_X_SIPX_AUTHIDENTITY, 0)));
	free(t);
}

static void test_transfer_identity_asserted(void **state)
{
	/* an identity from a grant is asserted like a digest one */
	struct txn *t = fx_txn(fx_grant, "192.0.2.9", MSG);
	t->id_source = TXN_ID_TRANSFER;
	t->identity = SLICE_LIT("1003@example.edu");
	t->next_hop_trusted = true;
	transfer_egress(t);
	assert_int_equal(t->edits.n_added, 1);
	assert_true(slice_eq(t->edits.added[0], SLICE_LIT("P-Asserted-Identity: <sip:1003@example.edu>")));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untrusted_hop),
		cmocka_unit_test(test_trusted_hop),
		cmocka_unit_test(test_no_user_identity),
		cmocka_unit_test(test_transfer_identity_asserted),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
