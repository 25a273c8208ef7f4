/* test_cfg_reload.c - what cfg_reload_check lets a reload change (SPEC §7):
 * store.cache_max_age, the caps of the tables and limits.sources_max are applied, while
 * the keys only a restart can apply (store.max_inflight among them) are
 * refused with "FILE:LINE: KEY cannot change on reload; restart", LINE being
 * where the new file writes the key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

static char tmp_dir[64];
static unsigned tmp_seq;

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/referee-test-reload-XXXXXX");
	return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* load - a config whose store/limits lines are @store_keys and @limits_keys; path in @path. */
static struct cfg *load(const char *store_keys, const char *limits_keys, char *path, size_t size)
{
	char text[1024], err[512];
	snprintf(text, sizeof(text),
		 "listen: [udp://127.0.0.1:5060]\n" /* 1 */
		 "domains: [example.com]\n"	    /* 2 */
		 "store:\n"			    /* 3 */
		 "  file: users.yaml\n"		    /* 4 */
		 "%s"				    /* 5... */
		 "limits:\n"
		 "%s",
		 store_keys, limits_keys);
	snprintf(path, size, "%s/c%u.yaml", tmp_dir, tmp_seq++);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	return c;
}

static void test_reloadable_store_keys(void **state)
{
	(void)state;
	char p1[128], p2[128], err[512] = "";
	struct cfg *cur = load("  cache_max_age: 60\n", "  sources_max: 1000\n", p1, sizeof(p1));
	struct cfg *next = load("  cache_max_age: 5\n  cache_max_entries: 64\n  marks_max_entries: 32\n",
				"  sources_max: 1000\n", p2, sizeof(p2));
	assert_int_equal(cfg_reload_check(cur, next, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	/* and back */
	assert_int_equal(cfg_reload_check(next, cur, err, sizeof(err)), 0);
	cfg_free(cur);
	cfg_free(next);
}

static void test_max_inflight_refused(void **state)
{
	(void)state;
	char p1[128], p2[128], err[512], want[256];
	struct cfg *cur = load("", "  sources_max: 1000\n", p1, sizeof(p1));
	struct cfg *next = load("  cache_max_age: 5\n  max_inflight: 64\n", "  sources_max: 1000\n", p2, sizeof(p2));
	assert_int_equal(cfg_reload_check(cur, next, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:6: store.max_inflight cannot change on reload; restart", p2);
	assert_string_equal(err, want);
	cfg_free(cur);
	cfg_free(next);
}

static void test_sources_max(void **state)
{
	(void)state;
	char p1[128], p2[128], err[512], want[256];
	struct cfg *cur = load("", "  sources_max: 1000\n", p1, sizeof(p1));
	struct cfg *next = load("", "  sources_max: 5000\n", p2, sizeof(p2));
	(void)want;
	assert_int_equal(cfg_reload_check(cur, next, err, sizeof(err)), 0); /* flood_reload rebuilds the table */
	cfg_free(cur);
	cfg_free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reloadable_store_keys),
		cmocka_unit_test(test_max_inflight_refused),
		cmocka_unit_test(test_sources_max),
	};
	return cmocka_run_group_tests_name("test_cfg_reload", tests, group_setup, group_teardown);
}
