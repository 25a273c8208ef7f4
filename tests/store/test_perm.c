/* test_perm.c - permission interning: fixed ids of the built-ins, lookups,
 * the 128-name limit, name validation, the comma-list helpers and the set
 * an authenticated identity holds (store_perms_held). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "store_priv.h"

static void test_builtins(void **state)
{
	(void)state;
	assert_int_equal(store_perm_id("ValidUser", 9), STORE_PERM_VALID_USER);
	assert_int_equal(store_perm_id("NoAccess", 8), STORE_PERM_NO_ACCESS);
	assert_string_equal(store_perm_name(0), "ValidUser");
	assert_string_equal(store_perm_name(1), "NoAccess");
	assert_int_equal(store_perm_intern("ValidUser", 9), 0);
	assert_int_equal(store_perm_id("validuser", 9), -ENOENT); /* names are case-sensitive */
}

static void test_held_by_an_identity(void **state)
{
	(void)state;
	/* the user's record lists NoAccess and bit 100: held = own + ValidUser - NoAccess */
	uint64_t own[2] = { 1ULL << STORE_PERM_NO_ACCESS, 1ULL << (100 - 64) }, held[2];
	store_perms_held(own, held);
	assert_true(store_perms_has(held, STORE_PERM_VALID_USER));
	assert_false(store_perms_has(held, STORE_PERM_NO_ACCESS));
	assert_true(store_perms_has(held, 100));
	assert_int_equal(held[0], 1ULL << STORE_PERM_VALID_USER);
	assert_int_equal(own[0], 1ULL << STORE_PERM_NO_ACCESS); /* input untouched */
	const uint64_t none[2] = { 0, 0 };
	store_perms_held(none, held);
	assert_int_equal(held[0], 1ULL << STORE_PERM_VALID_USER);
	assert_int_equal(held[1], 0);
}

static void test_intern_and_limit(void **state)
{
	(void)state;
	int a = store_perm_intern("LocalDialing", 12);
	assert_true(a >= 2);
	assert_int_equal(store_perm_intern("LocalDialing", 12), a);
	assert_int_equal(store_perm_id("LocalDialing", 12), a);
	assert_int_equal(store_perm_id("LocalDial", 9), -ENOENT);
	assert_string_equal(store_perm_name((unsigned)a), "LocalDialing");
	assert_int_equal(store_perm_intern("", 0), -EINVAL);
	assert_int_equal(store_perm_intern("a,b", 3), -EINVAL);
	assert_int_equal(store_perm_intern("a b", 3), -EINVAL);
	char big[80];
	memset(big, 'x', sizeof(big));
	assert_int_equal(store_perm_intern(big, sizeof(big)), -EINVAL);
	int last = a;
	for (int i = 0; i < STORE_MAX_PERMISSIONS; i++) {
		char name[32];
		int n = snprintf(name, sizeof(name), "Perm%d", i);
		int rc = store_perm_intern(name, (size_t)n);
		if (rc < 0) {
			assert_int_equal(rc, -ENOSPC);
			break;
		}
		last = rc;
	}
	assert_int_equal(last, STORE_MAX_PERMISSIONS - 1);
	assert_int_equal(store_perm_intern("OneTooMany", 10), -ENOSPC);
	assert_null(store_perm_name(STORE_MAX_PERMISSIONS));
	assert_int_equal(store_perm_id("LocalDialing", 12), a); /* old names still there */
}

static void test_list_helpers(void **state)
{
	(void)state;
	int a = store_perm_intern("LocalDialing", 12);
	assert_true(a >= 0);
	uint64_t set[2];
	struct slice bad = SLICE_NULL;
	assert_int_equal(store_perms_parse(SLICE_LIT("LocalDialing, ValidUser,"), set, &bad), 0);
	assert_true(store_perms_has(set, (unsigned)a));
	assert_true(store_perms_has(set, STORE_PERM_VALID_USER));
	assert_false(store_perms_has(set, STORE_PERM_NO_ACCESS));
	char buf[128];
	assert_true(store_perms_format(set, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "ValidUser,LocalDialing");
	assert_int_equal(store_perms_format(set, buf, 5), -ENOSPC);
	assert_int_equal(store_perms_parse(SLICE_LIT("LocalDialing,Nope"), set, &bad), -ENOENT);
	assert_true(slice_eq(bad, SLICE_LIT("Nope")));
	assert_int_equal(store_perms_parse(SLICE_LIT(""), set, &bad), 0);
	assert_true(set[0] == 0 && set[1] == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtins),
		cmocka_unit_test(test_list_helpers),
		cmocka_unit_test(test_held_by_an_identity),
		cmocka_unit_test(test_intern_and_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
