/* test_txn.c - the txn arena (alignment, exhaustion, printf, copy), local
 * reply headers, request edits and txn_reset (core/txn.c), the 503 helper
 * (stage_reply_unavailable, core/stage.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "stage.h"
#include "txn.h"

static int setup(void **state)
{
	struct txn *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void test_arena_alignment_and_exhaustion(void **state)
{
	struct txn *t = *state;
	char *a = txn_alloc(t, 3);
	char *b = txn_alloc(t, 5);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal((uintptr_t)a % 8, 0);
	assert_int_equal((uintptr_t)b % 8, 0);
	assert_ptr_equal(b, a + 8);
	/* fill up to the last byte, then nothing more fits */
	size_t left = TXN_ARENA_SIZE - 16;
	assert_non_null(txn_alloc(t, left));
	assert_int_equal(t->arena_used, TXN_ARENA_SIZE);
	assert_null(txn_alloc(t, 1));
	assert_null(txn_alloc(t, SIZE_MAX));
	/* a failed allocation leaves the arena as it was */
	assert_int_equal(t->arena_used, TXN_ARENA_SIZE);
	txn_reset(t);
	assert_int_equal(t->arena_used, 0);
	assert_null(txn_alloc(t, TXN_ARENA_SIZE + 1));
	assert_non_null(txn_alloc(t, TXN_ARENA_SIZE));
}

static void test_copy_and_printf(void **state)
{
	struct txn *t = *state;
	char src[] = "alice@example.com";
	struct slice c = txn_copy(t, slice_make(src, 5));
	src[0] = 'X'; /* the copy is independent of the source */
	assert_true(slice_eq(c, SLICE_LIT("alice")));
	struct slice p = txn_printf(t, "%s;tag=%u", "sip:bob@x", 42u);
	assert_true(slice_eq(p, SLICE_LIT("sip:bob@x;tag=42")));
	assert_true(p.p >= t->arena && p.p < t->arena + TXN_ARENA_SIZE);
	/* a line that does not fit returns SLICE_NULL and consumes nothing */
	uint32_t used = t->arena_used;
	struct slice big = txn_printf(t, "%*s", TXN_ARENA_SIZE, "x");
	assert_null(big.p);
	assert_int_equal(t->arena_used, used);
	while (txn_alloc(t, 1))
		;
	assert_null(txn_copy(t, SLICE_LIT("no room left, really none at all, sorry")).p);
}

static void test_reply_headers(void **state)
{
	struct txn *t = *state;
	txn_reply(t, 407, SLICE_NULL);
	assert_int_equal(t->reply_code, 407);
	assert_null(t->reply_reason.p);
	txn_reply(t, 403, SLICE_LIT("Relaying Denied"));
	assert_int_equal(t->reply_code, 403);
	assert_true(slice_eq(t->reply_reason, SLICE_LIT("Relaying Denied")));
	for (unsigned i = 0; i < TXN_MAX_REPLY_HDRS; i++)
		assert_int_equal(txn_reply_hdr(t, SLICE_LIT("Proxy-Authenticate: Digest realm=\"x\"")), 0);
	assert_int_equal(txn_reply_hdr(t, SLICE_LIT("Unsupported: foo")), -ENOSPC);
	assert_int_equal(t->n_reply_hdrs, TXN_MAX_REPLY_HDRS);
	txn_reset(t);
	assert_int_equal(t->n_reply_hdrs, 0);
	assert_int_equal(txn_reply_hdr(t, SLICE_NULL), -EINVAL);
	assert_int_equal(txn_reply_hdr(t, SLICE_LIT("Unsupported: foo")), 0);
	assert_true(slice_eq(t->reply_hdrs[0], SLICE_LIT("Unsupported: foo")));
}

static void test_edits(void **state)
{
	struct txn *t = *state;
	txn_hdr_remove(t, 3);
	txn_hdr_remove(t, SIP_MAX_HDRS); /* out of range: ignored */
	assert_int_equal(txn_hdr_removed(t, 3), 1);
	assert_int_equal(txn_hdr_removed(t, 2), 0);
	txn_hdr_replace(t, 5, SLICE_LIT("<sip:carol@example.com>"));
	assert_true(slice_eq(txn_hdr_replacement(t, 5), SLICE_LIT("<sip:carol@example.com>")));
	assert_null(txn_hdr_replacement(t, 4).p);
	/* a second replace of the same value wins; a few values at most, then -ENOSPC */
	assert_int_equal(txn_hdr_replace(t, 5, SLICE_LIT("<sip:dave@example.com>")), 0);
	assert_true(slice_eq(txn_hdr_replacement(t, 5), SLICE_LIT("<sip:dave@example.com>")));
	for (unsigned i = 1; i < TXN_MAX_REPLACED; i++)
		assert_int_equal(txn_hdr_replace(t, 10 + i, SLICE_LIT("x")), 0);
	assert_int_equal(txn_hdr_replace(t, 40, SLICE_LIT("x")), -ENOSPC);
	assert_int_equal(txn_hdr_replace(t, SIP_MAX_HDRS, SLICE_LIT("x")), -EINVAL);
	assert_int_equal(txn_hdr_replace(t, 6, SLICE_NULL), -EINVAL);
	for (unsigned i = 0; i < TXN_MAX_ADD_HDRS; i++)
		assert_int_equal(txn_hdr_add(t, SLICE_LIT("Referred-By: <sip:a@b>")), 0);
	assert_int_equal(txn_hdr_add(t, SLICE_LIT("X: y")), -ENOSPC);
	txn_ruri_set(t, SLICE_LIT("sip:bob@10.0.0.1"));
	assert_true(slice_eq(t->edits.ruri, SLICE_LIT("sip:bob@10.0.0.1")));
}

static void test_reset_keeps_received_data(void **state)
{
	struct txn *t = *state;
	t->rx[0] = 'I';
	t->rx_len = 100;
	t->parse_rc = 100;
	t->listen_idx = 2;
	t->rx_ns = 12345;
	t->stage_idx = 4;
	t->stage_ctx[1] = t;
	t->id_source = TXN_ID_DIGEST;
	t->identity = SLICE_LIT("a@b");
	t->perms_known = true;
	t->perms[1] = 7;
	t->dialog_authorized = true;
	t->out_len = 10;
	t->dstlen = 16;
	txn_hdr_add(t, SLICE_LIT("X: y"));
	assert_non_null(txn_alloc(t, 100));
	txn_reset(t);
	assert_int_equal(t->rx[0], 'I');
	assert_int_equal(t->rx_len, 100);
	assert_int_equal(t->parse_rc, 100);
	assert_int_equal(t->listen_idx, 2);
	assert_int_equal(t->rx_ns, 12345);
	assert_int_equal(t->stage_idx, 0);
	assert_null(t->stage_ctx[1]);
	assert_int_equal(t->id_source, TXN_ID_NONE);
	assert_null(t->identity.p);
	assert_false(t->perms_known);
	assert_int_equal(t->perms[1], 0);
	assert_false(t->dialog_authorized);
	assert_int_equal(t->out_len, 0);
	assert_int_equal(t->dstlen, 0);
	assert_int_equal(t->edits.n_added, 0);
	assert_int_equal(t->arena_used, 0);
}

static enum stage_rc stage_nop(struct txn *t)
{
	(void)t;
	return STAGE_CONTINUE;
}

static int hook_init(struct worker *w, void *arg)
{
	(void)w;
	(void)arg;
	return 0;
}

static void test_reply_unavailable(void **state)
{
	struct txn *t = *state;
	assert_int_equal(stage_reply_unavailable(t), STAGE_REPLY);
	assert_int_equal(t->reply_code, 503);
	assert_int_equal(t->n_reply_hdrs, 1);
	assert_true(slice_eq(t->reply_hdrs[0], SLICE_LIT("Retry-After: 5")));
}

static void test_stage_table(void **state)
{
	(void)state;
	struct stage_table st = { 0 };
	for (unsigned i = 0; i < TXN_MAX_STAGES; i++)
		assert_int_equal(stage_add(&st, "nop", stage_nop, i % 2 == 0), 0);
	assert_int_equal(stage_add(&st, "one too many", stage_nop, false), -ENOSPC);
	assert_int_equal(st.n, TXN_MAX_STAGES);
	assert_true(st.stages[0].requests_only);
	assert_false(st.stages[1].requests_only);
	assert_int_equal(stage_add(&st, "null", NULL, false), -EINVAL);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(stage_add_worker_hooks(&st, hook_init, NULL, NULL), 0);
	assert_int_equal(stage_add_worker_hooks(&st, hook_init, NULL, NULL), -ENOSPC);
	assert_int_equal(stage_add_worker_hooks(&st, NULL, NULL, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arena_alignment_and_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_and_printf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_received_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_unavailable, setup, teardown),
		cmocka_unit_test(test_stage_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
