/* test_users_file.c - the file backend: a good users file (passwords turned
 * into the RFC 2617 / RFC 7616 HA1 vectors, given HA1s, permissions, domain
 * case), every rejected shape with its exact "file:line: message", and
 * store_init / store_user_get / store_reload (swap keeps the old table on error). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu.h>

#include "hex.h"
#include "store.h"
#include "store_priv.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/referee-store-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	rcu_register_thread();
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rcu_unregister_thread();
	return system(cmd);
}

static void hex_is(const uint8_t *bin, size_t n, const char *hex)
{
	char out[65];
	out[hex_encode(bin, n, out)] = '\0';
	assert_string_equal(out, hex);
}

static void get_ok(struct store_users *tb, const char *id, struct store_user *u)
{
	rcu_read_lock();
	int rc = store_users_get_rcu(tb, slice_from_cstr(id), u, NULL);
	rcu_read_unlock();
	assert_int_equal(rc, 1);
}

static void test_good_file(void **state)
{
	const char *p = write_file("good.yaml",
				   "# users\n"
				   "users:\n"
				   "  - id: Mufasa@Example.COM\n"
				   "    password: \"Circle Of Life\"\n"
				   "    permissions: [LocalDialing, InternationalDialing]\n"
				   "  - {id: 1002@example.com, ha1_md5: 939E7578ED9E3C518A452ACEE763BCE9}\n"
				   "  - id: 1003@example.com\n"
				   "    ha1_sha256: 7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232\n"
				   "    permissions: []\n");
	char err[256] = "";
	struct store_users *tb = store_users_file_load(p, "testrealm@host.com", err, sizeof(err));
	assert_non_null(tb);
	assert_int_equal(store_users_count(tb), 3);
	struct store_user u;
	get_ok(tb, "Mufasa@example.com", &u); /* domain lowercased, user part kept */
	assert_true(u.has_md5 && u.has_sha256);
	hex_is(u.ha1_md5, 16, "939e7578ed9e3c518a452acee763bce9");
	int ld = store_perm_id("LocalDialing", 12), intl = store_perm_id("InternationalDialing", 20);
	assert_true(ld >= 2 && intl >= 2 && ld != intl);
	assert_true(store_perms_has(u.perms, (unsigned)ld) && store_perms_has(u.perms, (unsigned)intl));
	assert_false(store_perms_has(u.perms, STORE_PERM_NO_ACCESS));
	get_ok(tb, "1002@example.com", &u);
	assert_true(u.has_md5 && !u.has_sha256);
	hex_is(u.ha1_md5, 16, "939e7578ed9e3c518a452acee763bce9");
	get_ok(tb, "1003@example.com", &u);
	assert_true(!u.has_md5 && u.has_sha256);
	rcu_read_lock();
	assert_int_equal(store_users_get_rcu(tb, SLICE_LIT("1004@example.com"), &u, NULL), -ENOENT);
	rcu_read_unlock();
	store_users_free(tb);

	/* RFC 7616 §3.9.1 vector for the SHA-256 HA1 */
	p = write_file("sha.yaml", "users:\n- id: Mufasa@example.org\n  password: Circle of Life\n");
	tb = store_users_file_load(p, "http-auth@example.org", err, sizeof(err));
	assert_non_null(tb);
	get_ok(tb, "Mufasa@example.org", &u);
	hex_is(u.ha1_sha256, 32, "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232");
	store_users_free(tb);

	p = write_file("empty.yaml", "users: []\n");
	tb = store_users_file_load(p, "r", err, sizeof(err));
	assert_non_null(tb);
	assert_int_equal(store_users_count(tb), 0);
	store_users_free(tb);
}

struct bad_case {
	const char *text;
	const char *want; /* after "<path>:" */
};

static void test_bad_files(void **state)
{
	static const struct bad_case cases[] = {
		{ "users:\n  - id: 1001@example.com\n    password: x\n    pasword: y\n",
		  "4: unknown key 'pasword' (id, password, ha1_md5, ha1_sha256, permissions)" },
		{ "users:\n  - id: 1001@example.com\n    ha1_md5: 939e7578ed9e3c518a452acee763bcez\n",
		  "3: ha1_md5 must be 32 hex digits" },
		{ "users:\n  - id: 1001@example.com\n    ha1_sha256: abcd\n", "3: ha1_sha256 must be 64 hex digits" },
		{ "users:\n  - password: x\n    permissions: [A]\n", "2: user has no id" },
		{ "users:\n  - id: a@b.c\n    password: x\n  - id: 1001@x.org\n    password: y\n  - id: a@B.C\n"
		  "    password: z\n",
		  "6: duplicate id 'a@b.c'" },
		{ "users:\n  - id: a@b.c\n    password: x\n\n  - id: a@B.C\n    password: y\n", "5: duplicate id 'a@b.c'" },
		{ "users:\n  - id: 1001\n    password: x\n", "2: id '1001' must be user@domain" },
		{ "users:\n  - id: 1001@\n    password: x\n", "2: id '1001@' must be user@domain" },
		{ "users:\n  - id: 1001@example.com\n    password: x\n    ha1_md5: 939e7578ed9e3c518a452acee763bce9\n",
		  "3: user 1001@example.com: give either password or ha1_md5/ha1_sha256, not both" },
		{ "users:\n  - id: 1001@example.com\n    permissions: [A]\n",
		  "2: user 1001@example.com has no password, ha1_md5 or ha1_sha256" },
		{ "users:\n  - id: 1001@example.com\n    password: x\n    permissions: [\"bad name\"]\n",
		  "4: bad permission name 'bad name'" },
		{ "users:\n  - id: 1001@example.com\n    password: x\n    permissions: A\n",
		  "4: permissions must be a list of names" },
		{ "usrs: []\n", "1: unknown key 'usrs' (only 'users')" },
		{ "users: {id: x}\n", "1: users must be a list" },
		{ "users:\n  - [a, b]\n", "2: each user must be a mapping {id: ..., ...}" },
		{ "users:\n  - id: a@b.c\n    password: [x]\n", "3: 'password' must be a single value" },
		{ "users:\n  - id: a@b.c\n    id: d@e.f\n", "3: key 'id' given twice" },
		{ "users:\n  - id: a@b.c\n    password: \"x\n", "4: found unexpected end of stream" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = write_file("bad.yaml", cases[i].text);
		char err[256] = "", want[512];
		struct store_users *tb = store_users_file_load(p, "example.com", err, sizeof(err));
		snprintf(want, sizeof(want), "%s:%s", p, cases[i].want);
		if (tb || strcmp(err, want) != 0)
			fail_msg("case %zu: got '%s' want '%s'", i, tb ? "(loaded)" : err, want);
	}
	char err[256];
	assert_null(store_users_file_load("/nonexistent/users.yaml", "r", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/users.yaml: cannot open users file: No such file or directory");
}

static void test_store_file_backend(void **state)
{
	write_file("users.yaml", "users:\n  - id: 1001@example.com\n    password: pw\n    permissions: [LocalDialing]\n");
	struct cfg *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "%s/referee.yaml", dir);
	snprintf(c->realm, sizeof(c->realm), "example.com");
	snprintf(c->store.file, sizeof(c->store.file), "%s/users.yaml", dir); /* as cfg_load resolves it */
	c->store.backend = CFG_STORE_FILE;
	char err[256] = "";
	assert_int_equal(store_init(c, err, sizeof(err)), 0);
	assert_true(store_is_usable());
	struct store_op op = { 0 };
	struct store_user u;
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1001@EXAMPLE.com"), &u), STORE_OK);
	assert_string_equal(u.id, "1001@example.com");
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1002@example.com"), &u), STORE_NOT_FOUND);
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1001"), &u), STORE_NOT_FOUND);

	/* reload: a broken file keeps the old table, a good one replaces it whole */
	write_file("users.yaml", "users:\n  - id: 1002@example.com\n    pasword: pw\n");
	assert_int_equal(store_reload(c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "users.yaml:3: unknown key 'pasword'"));
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1001@example.com"), &u), STORE_OK);
	write_file("users.yaml", "users:\n  - id: 1002@example.com\n    password: pw\n");
	assert_int_equal(store_reload(c, err, sizeof(err)), 0);
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1001@example.com"), &u), STORE_NOT_FOUND);
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1002@example.com"), &u), STORE_OK);
	/* a users file that cannot be read is reported at the config's store.file line */
	c->n_key_lines = 1;
	snprintf(c->key_lines[0].name, sizeof(c->key_lines[0].name), "store.file");
	c->key_lines[0].line = 9;
	char gone[512], want[1024];
	snprintf(gone, sizeof(gone), "%s/users.yaml", dir);
	snprintf(want, sizeof(want), "%s/referee.yaml:9: store.file: %s/missing.yaml: cannot open users file: "
		 "No such file or directory", dir, dir);
	snprintf(c->store.file, sizeof(c->store.file), "%s/missing.yaml", dir);
	assert_int_equal(store_reload(c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	snprintf(c->store.file, sizeof(c->store.file), "%s", gone);
	assert_int_equal(store_user_get(NULL, &op, SLICE_LIT("1002@example.com"), &u), STORE_OK);

	/* nc and jti on the local tables */
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n1"), 1, 30), STORE_OK);
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n1"), 1, 30), STORE_REJECT);
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n1"), 3, 30), STORE_OK);
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n1"), 2, 30), STORE_REJECT);
	assert_int_equal(store_nc_check(NULL, &op, SLICE_LIT("n2"), 1, 30), STORE_OK);
	assert_int_equal(store_jti_bind(NULL, &op, SLICE_LIT("j1"), SLICE_LIT("call1;tag1"), 30), STORE_OK);
	assert_int_equal(store_jti_bind(NULL, &op, SLICE_LIT("j1"), SLICE_LIT("call1;tag1"), 30), STORE_OK);
	assert_int_equal(store_jti_bind(NULL, &op, SLICE_LIT("j1"), SLICE_LIT("call2;tag1"), 30), STORE_REJECT);
	struct store_stats st;
	store_stats_get(&st);
	assert_int_equal(st.users, 1);
	assert_int_equal(st.nc_marks, 2);
	assert_int_equal(st.jti_marks, 1);
	store_fini();
	assert_false(store_is_usable());

	/* a broken file at startup is an error */
	write_file("users.yaml", "users:\n  - id: x\n    password: pw\n");
	assert_int_equal(store_init(c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "users.yaml:2: id 'x' must be user@domain"));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_store_file_backend),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
