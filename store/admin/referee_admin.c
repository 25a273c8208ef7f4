/* referee_admin.c - referee-admin, the operator's tool for users and
 * permissions (SPEC §7): user add|del|show|list, permission grant|revoke,
 * explain. With Redis it writes referee:user:<id> hashes (HA1s only, never
 * the password) over a synchronous hiredis connection (to the server, the
 * master the sentinels name, or the cluster master of each key: store_redis_sync.c)
 * and publishes the id on referee:invalidate; with the file backend it prints the YAML to add. Keys
 * are built by store_keys.c. Exit 2 for usage errors, 1 for failures. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <urcu.h>

#include "admin_import.h"
#include "auth.h"
#include "cfg.h"
#include "hex.h"
#include "log.h"
#include "store.h"
#include "store_priv.h"
#include "store_redis_priv.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define MAX_PERMS 64

struct admin {
	const char *cfg_path;
	struct cfg *cfg;
	struct store_sync *redis;
};

static const char *const help_main =
	"usage: referee-admin -c FILE COMMAND ...\n"
	"  user add ID --password PW [--permission P]...   create a user (HA1s stored, never the password)\n"
	"  user del ID                                     delete a user\n"
	"  user show ID [--secrets]                        identity and permissions (HA1s with --secrets)\n"
	"  user list                                       every user id\n"
	"  permission grant ID P...                        add permissions to a user\n"
	"  permission revoke ID P...                       remove permissions from a user\n"
	"  explain URI [--as ID]                           which rule decides URI, and the verdict\n"
	"  import-authrules FILE                           sipXecs authrules.xml -> rules: YAML on stdout (no -c)\n"
	"  import-users FILE.csv                           id,ha1_md5[,ha1_sha256],permissions rows into the store\n"
	"Each command takes --help. Exit status: 0 done, 1 failed, 2 usage error.\n";

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("referee-admin: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

static bool is_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

/* ================================================================ backend access */

static int redis_open(struct admin *a)
{
	struct cfg_redis_url u;
	char why[512];
	const char *bad = cfg_redis_url_parse(a->cfg->store.redis, &u);
	if (bad)
		return fail(EXIT_FAIL, "store.redis '%s' %s", a->cfg->store.redis, bad);
	/* the sentinels' master (ROLE-checked) or the cluster's slot map, as referee finds them */
	a->redis = store_sync_open(&u, why, sizeof(why));
	if (!a->redis)
		return fail(EXIT_FAIL, "cannot reach Redis %s: %s", a->cfg->store.redis, why);
	return 0;
}

#define CMD_KEY (-1) /* cmd_at: the master of the key argv[1] */
#define CMD_ANY (-2) /* cmd_at: the first master that answers */

/* cmd_at - run one command on master @node, CMD_KEY or CMD_ANY; NULL (message
 * printed) on a transport or Redis error. */
static redisReply *cmd_at(struct admin *a, int node, int argc, const char **argv)
{
	char why[512];
	redisReply *r = node == CMD_KEY   ? store_sync_key_cmd(a->redis, argv[1], argc, argv, why, sizeof(why))
			: node == CMD_ANY ? store_sync_any_cmd(a->redis, argc, argv, why, sizeof(why))
					  : store_sync_node_cmd(a->redis, (unsigned)node, argc, argv, why, sizeof(why));
	if (!r) {
		fail(EXIT_FAIL, "%s", why);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fail(EXIT_FAIL, "Redis %s: %s", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static redisReply *cmd(struct admin *a, int argc, const char **argv)
{
	return cmd_at(a, CMD_KEY, argc, argv);
}

static int publish(struct admin *a, const char *id)
{
	/* any node that answers: in a cluster PUBLISH reaches the subscribers of every node */
	const char *argv[] = { "PUBLISH", STORE_REDIS_CHANNEL, id };
	redisReply *r = cmd_at(a, CMD_ANY, 3, argv);
	freeReplyObject(r);
	return r ? 0 : EXIT_FAIL;
}

/* A permission referee knows: built in, or named by a rule (interned by auth_init). */
static bool perm_known(const char *p)
{
	return store_perm_id(p, strlen(p)) >= 0;
}

static int check_id(const char *in, char *id)
{
	size_t len;
	int rc = store_id_norm(slice_from_cstr(in), id, &len);
	if (rc < 0)
		return fail(EXIT_USAGE, "'%s' is not an id of the form user@domain", in);
	return 0;
}

/* user_fetch - read a Redis user. 1 found, 0 absent, -1 error. */
static int user_fetch(struct admin *a, const char *id, char *ha1_md5, char *ha1_sha, char *perms, size_t cap)
{
	char key[STORE_ID_MAX + 32];
	store_key_user(key, sizeof(key), slice_from_cstr(id));
	const char *argv[] = { "HGETALL", key };
	redisReply *r = cmd(a, 2, argv);
	if (!r)
		return -1;
	ha1_md5[0] = ha1_sha[0] = perms[0] = '\0';
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
		if (!f || !v)
			continue;
		if (strcmp(f, STORE_FIELD_HA1_MD5) == 0)
			snprintf(ha1_md5, 65, "%s", v);
		else if (strcmp(f, STORE_FIELD_HA1_SHA256) == 0)
			snprintf(ha1_sha, 65, "%s", v);
		else if (strcmp(f, STORE_FIELD_PERMISSIONS) == 0)
			snprintf(perms, cap, "%s", v);
	}
	int found = r->elements > 0;
	freeReplyObject(r);
	return found;
}

/* ================================================================ permissions as text */

/* perms_edit - add (@grant) or remove @names in the comma list @list (in place, @cap bytes). */
static int perms_edit(char *list, size_t cap, char **names, int n, bool grant)
{
	char *items[MAX_PERMS];
	int count = 0;
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *save, *tok = strtok_r(copy, ",", &save); tok && count < MAX_PERMS; tok = strtok_r(NULL, ",", &save))
		if (*tok)
			items[count++] = tok;
	for (int i = 0; i < n; i++) {
		int at = -1;
		for (int j = 0; j < count; j++)
			if (strcmp(items[j], names[i]) == 0)
				at = j;
		if (grant && at < 0 && count < MAX_PERMS)
			items[count++] = names[i];
		else if (!grant && at >= 0)
			items[at] = items[--count];
	}
	size_t used = 0;
	list[0] = '\0';
	for (int j = 0; j < count; j++) {
		int w = snprintf(list + used, cap - used, "%s%s", used ? "," : "", items[j]);
		if (w < 0 || (size_t)w >= cap - used)
			return -ENOSPC;
		used += (size_t)w;
	}
	return 0;
}

/* ================================================================ user commands */

static const char *const help_add =
	"usage: referee-admin -c FILE user add ID --password PW [--permission P]...\n"
	"  Stores ha1_md5 and ha1_sha256 of ID's user part with the configured realm.\n"
	"  File backend: prints the users-file entry to add instead.\n";

static int user_add(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_add, stdout), 0;
	const char *raw_id = NULL;
	char *pw = NULL, *perms[MAX_PERMS];
	int n_perms = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--password") == 0 && i + 1 < argc)
			pw = argv[++i];
		else if (strcmp(argv[i], "--permission") == 0 && i + 1 < argc && n_perms < MAX_PERMS)
			perms[n_perms++] = argv[++i];
		else if (argv[i][0] != '-' && !raw_id)
			raw_id = argv[i];
		else
			return fail(EXIT_USAGE, "user add: unexpected '%s' (try user add --help)", argv[i]);
	}
	if (!raw_id || !pw || !*pw)
		return fail(EXIT_USAGE, "user add needs ID and --password PW (try user add --help)");
	char id[STORE_ID_MAX], list[4096] = "";
	if (check_id(raw_id, id))
		return EXIT_USAGE;
	for (int i = 0; i < n_perms; i++) {
		if (!admin_perm_name_ok(perms[i]))
			return fail(EXIT_USAGE, "'%s' is not a permission name", perms[i]);
		if (a->cfg->store.backend == CFG_STORE_REDIS && !perm_known(perms[i]))
			return fail(EXIT_FAIL, "permission '%s' is used by no rule in %s: referee would treat the user as unknown",
				    perms[i], a->cfg_path);
	}
	perms_edit(list, sizeof(list), perms, n_perms, true);
	uint8_t md5[16], sha[32];
	char md5_hex[33], sha_hex[65];
	int rc = store_ha1_compute(id, a->cfg->realm, pw, strlen(pw), md5, sha);
	OPENSSL_cleanse(pw, strlen(pw)); /* also off /proc/PID/cmdline */
	if (rc < 0)
		return fail(EXIT_FAIL, "cannot compute HA1");
	md5_hex[hex_encode(md5, 16, md5_hex)] = '\0';
	sha_hex[hex_encode(sha, 32, sha_hex)] = '\0';
	if (a->cfg->store.backend == CFG_STORE_FILE) {
		printf("# add under 'users:' in %s, then reload referee (SIGHUP)\n"
		       "  - id: %s\n    ha1_md5: %s\n    ha1_sha256: %s\n    permissions: [",
		       a->cfg->store.file, id, md5_hex, sha_hex);
		for (int i = 0; i < n_perms; i++)
			printf("%s%s", i ? ", " : "", perms[i]);
		printf("]\n");
		return 0;
	}
	char key[STORE_ID_MAX + 32];
	store_key_user(key, sizeof(key), slice_from_cstr(id));
	const char *ex[] = { "EXISTS", key };
	redisReply *r = cmd(a, 2, ex);
	if (!r)
		return EXIT_FAIL;
	bool exists = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	if (exists)
		return fail(EXIT_FAIL, "user %s already exists (user del first, or permission grant)", id);
	const char *hs[] = { "HSET", key, STORE_FIELD_HA1_MD5, md5_hex, STORE_FIELD_HA1_SHA256, sha_hex,
			     STORE_FIELD_PERMISSIONS, list };
	r = cmd(a, 8, hs);
	freeReplyObject(r);
	OPENSSL_cleanse(md5_hex, sizeof(md5_hex));
	OPENSSL_cleanse(sha_hex, sizeof(sha_hex));
	if (!r || publish(a, id))
		return EXIT_FAIL;
	printf("added %s\n", id);
	return 0;
}

static const char *const help_del = "usage: referee-admin -c FILE user del ID\n";

static int user_del(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_del, stdout), 0;
	char id[STORE_ID_MAX];
	if (argc != 1)
		return fail(EXIT_USAGE, "user del needs exactly one ID (try user del --help)");
	if (check_id(argv[0], id))
		return EXIT_USAGE;
	if (a->cfg->store.backend == CFG_STORE_FILE)
		return fail(EXIT_FAIL, "store.backend is file: remove %s from %s and reload referee", id,
			    a->cfg->store.file);
	char key[STORE_ID_MAX + 32];
	store_key_user(key, sizeof(key), slice_from_cstr(id));
	const char *del[] = { "DEL", key };
	redisReply *r = cmd(a, 2, del);
	if (!r)
		return EXIT_FAIL;
	bool gone = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	if (!gone)
		return fail(EXIT_FAIL, "no user %s", id);
	if (publish(a, id))
		return EXIT_FAIL;
	printf("deleted %s\n", id);
	return 0;
}

/* file_user - the users file's entry for @id. 1 found, 0 not, or an exit code (< 0). */
static int file_user(struct admin *a, const char *id, struct store_user *u)
{
	char err[512];
	struct store_users *tb = store_users_file_load(a->cfg->store.file, a->cfg->realm, err, sizeof(err));
	if (!tb) {
		fail(EXIT_FAIL, "%s", err);
		return -1;
	}
	rcu_read_lock();
	int rc = store_users_get_rcu(tb, slice_from_cstr(id), u, NULL);
	rcu_read_unlock();
	store_users_free(tb);
	return rc > 0;
}

static const char *const help_show =
	"usage: referee-admin -c FILE user show ID [--secrets]\n"
	"  Prints the identity and its permissions; the HA1s only with --secrets.\n";

static int user_show(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_show, stdout), 0;
	bool secrets = false;
	const char *raw = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--secrets") == 0)
			secrets = true;
		else if (!raw && argv[i][0] != '-')
			raw = argv[i];
		else
			return fail(EXIT_USAGE, "user show: unexpected '%s' (try user show --help)", argv[i]);
	}
	char id[STORE_ID_MAX], md5[65] = "", sha[65] = "", perms[4096] = "";
	if (!raw)
		return fail(EXIT_USAGE, "user show needs an ID (try user show --help)");
	if (check_id(raw, id))
		return EXIT_USAGE;
	int found;
	if (a->cfg->store.backend == CFG_STORE_FILE) {
		struct store_user u;
		found = file_user(a, id, &u);
		if (found < 0)
			return EXIT_FAIL;
		if (found) {
			store_perms_format(u.perms, perms, sizeof(perms));
			if (u.has_md5)
				md5[hex_encode(u.ha1_md5, 16, md5)] = '\0';
			if (u.has_sha256)
				sha[hex_encode(u.ha1_sha256, 32, sha)] = '\0';
		}
		OPENSSL_cleanse(&u, sizeof(u));
	} else {
		found = user_fetch(a, id, md5, sha, perms, sizeof(perms));
		if (found < 0)
			return EXIT_FAIL;
	}
	if (!found)
		return fail(EXIT_FAIL, "no user %s", id);
	printf("id: %s\npermissions: %s\n", id, perms);
	if (secrets)
		printf("ha1_md5: %s\nha1_sha256: %s\n", md5[0] ? md5 : "-", sha[0] ? sha : "-");
	OPENSSL_cleanse(md5, sizeof(md5));
	OPENSSL_cleanse(sha, sizeof(sha));
	return 0;
}

static int str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static const char *const help_list = "usage: referee-admin -c FILE user list\n  One id per line, sorted.\n";

/* list_add - keep a copy of @s in the growing array. */
static int list_add(char ***ids, size_t *n, size_t *cap, const char *s)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char **nids = realloc(*ids, ncap * sizeof(**ids));
		if (!nids)
			return -ENOMEM;
		*ids = nids;
		*cap = ncap;
	}
	if (!((*ids)[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void list_one(const struct store_user *u, void *arg)
{
	void **ctx = arg;
	list_add((char ***)ctx[0], (size_t *)ctx[1], (size_t *)ctx[2], u->id);
}

static int user_list(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_list, stdout), 0;
	if (argc)
		return fail(EXIT_USAGE, "user list takes no argument");
	char **ids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (a->cfg->store.backend == CFG_STORE_FILE) {
		char err[512];
		struct store_users *tb = store_users_file_load(a->cfg->store.file, a->cfg->realm, err, sizeof(err));
		if (!tb)
			return fail(EXIT_FAIL, "%s", err);
		void *ctx[3] = { &ids, &n, &cap };
		store_users_each(tb, list_one, ctx);
		store_users_free(tb);
	} else {
		/* SCAN, not KEYS: never blocks a production Redis; every master of a cluster */
		for (unsigned node = 0; node < store_sync_nodes(a->redis) && rc == 0; node++) {
			char cursor[32] = "0";
			do {
				const char *scan[] = { "SCAN", cursor, "MATCH", store_key_user_pattern(), "COUNT", "500" };
				redisReply *r = cmd_at(a, (int)node, 6, scan);
				if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
				    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
					freeReplyObject(r);
					rc = EXIT_FAIL;
					break;
				}
				snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
				for (size_t i = 0; i < r->element[1]->elements; i++) {
					const redisReply *k = r->element[1]->element[i];
					if (k->type == REDIS_REPLY_STRING && k->len >= store_key_user_prefix_len() &&
					    list_add(&ids, &n, &cap, k->str + store_key_user_prefix_len()) < 0)
						rc = EXIT_FAIL;
				}
				freeReplyObject(r);
			} while (strcmp(cursor, "0") != 0 && rc == 0);
		}
	}
	qsort(ids, n, sizeof(*ids), str_cmp);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			printf("%s\n", ids[i]);
		free(ids[i]);
	}
	free(ids);
	return rc;
}

/* ================================================================ permission, explain */

static const char *const help_perm =
	"usage: referee-admin -c FILE permission grant|revoke ID P...\n"
	"  Adds or removes permissions of a Redis user (each P must be used by a rule).\n";

static int permission(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_perm, stdout), 0;
	if (argc < 3 || (strcmp(argv[0], "grant") != 0 && strcmp(argv[0], "revoke") != 0))
		return fail(EXIT_USAGE, "permission grant|revoke ID P... (try permission --help)");
	bool grant = argv[0][0] == 'g';
	char id[STORE_ID_MAX];
	if (check_id(argv[1], id))
		return EXIT_USAGE;
	if (argc - 2 > MAX_PERMS)
		return fail(EXIT_USAGE, "at most %d permissions at once", MAX_PERMS);
	for (int i = 2; i < argc; i++) {
		if (!admin_perm_name_ok(argv[i]))
			return fail(EXIT_USAGE, "'%s' is not a permission name", argv[i]);
		if (grant && a->cfg->store.backend == CFG_STORE_REDIS && !perm_known(argv[i]))
			return fail(EXIT_FAIL, "permission '%s' is used by no rule in %s: referee would treat the user as unknown",
				    argv[i], a->cfg_path);
	}
	if (a->cfg->store.backend == CFG_STORE_FILE)
		return fail(EXIT_FAIL, "store.backend is file: edit the permissions of %s in %s and reload referee", id,
			    a->cfg->store.file);
	char md5[65], sha[65], list[4096];
	int found = user_fetch(a, id, md5, sha, list, sizeof(list));
	OPENSSL_cleanse(md5, sizeof(md5));
	OPENSSL_cleanse(sha, sizeof(sha));
	if (found < 0)
		return EXIT_FAIL;
	if (!found)
		return fail(EXIT_FAIL, "no user %s", id);
	if (perms_edit(list, sizeof(list), argv + 2, argc - 2, grant) < 0)
		return fail(EXIT_FAIL, "too many permissions for %s", id);
	char key[STORE_ID_MAX + 32];
	store_key_user(key, sizeof(key), slice_from_cstr(id));
	const char *hs[] = { "HSET", key, STORE_FIELD_PERMISSIONS, list };
	redisReply *r = cmd(a, 4, hs);
	freeReplyObject(r);
	if (!r || publish(a, id))
		return EXIT_FAIL;
	printf("%s permissions: %s\n", id, list);
	return 0;
}

static const char *const help_explain =
	"usage: referee-admin -c FILE explain URI [--as ID]\n"
	"  Which rule decides URI, the permissions it needs, and the verdict for ID\n"
	"  (anonymous without --as).\n";

static int explain(struct admin *a, int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_explain, stdout), 0;
	const char *uri = NULL, *as = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--as") == 0 && i + 1 < argc)
			as = argv[++i];
		else if (!uri && argv[i][0] != '-')
			uri = argv[i];
		else
			return fail(EXIT_USAGE, "explain: unexpected '%s' (try explain --help)", argv[i]);
	}
	if (!uri)
		return fail(EXIT_USAGE, "explain needs a URI (try explain --help)");
	uint64_t perms[2] = { 0, 0 };
	if (as) {
		char id[STORE_ID_MAX], md5[65], sha[65], list[4096];
		if (check_id(as, id))
			return EXIT_USAGE;
		if (a->cfg->store.backend == CFG_STORE_FILE) {
			struct store_user u;
			int found = file_user(a, id, &u);
			if (found < 0)
				return EXIT_FAIL;
			if (!found)
				return fail(EXIT_FAIL, "no user %s", id);
			perms[0] = u.perms[0];
			perms[1] = u.perms[1];
			OPENSSL_cleanse(&u, sizeof(u));
		} else {
			int found = user_fetch(a, id, md5, sha, list, sizeof(list));
			OPENSSL_cleanse(md5, sizeof(md5));
			OPENSSL_cleanse(sha, sizeof(sha));
			if (found <= 0)
				return found < 0 ? EXIT_FAIL : fail(EXIT_FAIL, "no user %s", id);
			struct slice bad;
			if (store_perms_parse(slice_from_cstr(list), perms, &bad) < 0)
				return fail(EXIT_FAIL, "user %s has permission '%.*s' that no rule uses: referee treats it as unknown",
					    id, SLICE_FMT(bad));
		}
		store_perms_add(perms, STORE_PERM_VALID_USER); /* every authenticated user holds it */
	}
	char buf[8192];
	int n = auth_rules_explain(uri, perms, as == NULL, buf, sizeof(buf));
	if (n == -EINVAL)
		return fail(EXIT_USAGE, "'%s' is not a sip: or sips: URI", uri);
	if (n < 0)
		return fail(EXIT_FAIL, "explain failed: %s", strerror(-n));
	fputs(buf, stdout);
	if (n > 0 && (size_t)n < sizeof(buf) && buf[n - 1] != '\n')
		fputc('\n', stdout);
	return 0;
}

/* ================================================================ import (admin_import_*.c) */

static const char *const help_import_rules =
	"usage: referee-admin import-authrules FILE\n"
	"  Prints the referee rules: list equivalent to the sipXecs authrules.xml FILE (same\n"
	"  decisions); what cannot be expressed exactly is an error FILE:LINE: element: why (exit 1).\n";

static const char *const help_import_users =
	"usage: referee-admin -c FILE import-users USERS.csv\n"
	"  Rows id,ha1_md5[,ha1_sha256],permissions (permissions separated by ';' or ' ';\n"
	"  '#' lines and a first line naming the columns are skipped). All rows or none:\n"
	"  the first bad row is reported as USERS.csv:LINE. Redis: one MULTI/EXEC;\n"
	"  file backend: prints the users-file entries to add.\n";

/* import_authrules - works without -c: the file alone decides the rules. */
static int import_authrules(int argc, char **argv)
{
	if (is_help(argc, argv))
		return fputs(help_import_rules, stdout), 0;
	if (argc != 1)
		return fail(EXIT_USAGE, "import-authrules needs exactly one FILE (try import-authrules --help)");
	return admin_import_authrules(argv[0], stdout);
}

/* ================================================================ main */

static int run(struct admin *a, int argc, char **argv)
{
	const char *what = argv[0];
	if (strcmp(what, "user") == 0 && argc >= 2) {
		const char *sub = argv[1];
		if (strcmp(sub, "add") == 0)
			return user_add(a, argc - 2, argv + 2);
		if (strcmp(sub, "del") == 0)
			return user_del(a, argc - 2, argv + 2);
		if (strcmp(sub, "show") == 0)
			return user_show(a, argc - 2, argv + 2);
		if (strcmp(sub, "list") == 0)
			return user_list(a, argc - 2, argv + 2);
	}
	if (strcmp(what, "user") == 0) {
		if (is_help(argc - 1, argv + 1))
			return printf("%s%s%s%s", help_add, help_del, help_show, help_list), 0;
		return fail(EXIT_USAGE, "user add|del|show|list (try --help)");
	}
	if (strcmp(what, "permission") == 0)
		return permission(a, argc - 1, argv + 1);
	if (strcmp(what, "explain") == 0)
		return explain(a, argc - 1, argv + 1);
	if (strcmp(what, "import-users") == 0) {
		if (is_help(argc - 1, argv + 1))
			return fputs(help_import_users, stdout), 0;
		if (argc != 2)
			return fail(EXIT_USAGE, "import-users needs exactly one FILE.csv (try import-users --help)");
		return admin_import_users(a->cfg, a->redis, argv[1]);
	}
	return fail(EXIT_USAGE, "unknown command '%s' (try --help)", what);
}

/* needs_redis - commands that talk to Redis (not --help, not the file backend). */
static bool needs_redis(const struct admin *a, int argc, char **argv)
{
	return a->cfg->store.backend == CFG_STORE_REDIS && !is_help(argc, argv);
}

int main(int argc, char **argv)
{
	struct admin a = { 0 };
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			a.cfg_path = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return fputs(help_main, stdout), 0;
		else
			return fail(EXIT_USAGE, "unknown option '%s' (try --help)", argv[i]);
	}
	if (i >= argc)
		return fail(EXIT_USAGE, "no command (try --help)");
	if (strcmp(argv[i], "import-authrules") == 0)
		return import_authrules(argc - i - 1, argv + i + 1);
	if (!a.cfg_path) {
		if (is_help(argc - i, argv + i)) { /* "referee-admin user add --help" works without -c */
			static struct cfg none;
			struct admin h = { .cfg = &none };
			return run(&h, argc - i, argv + i);
		}
		return fail(EXIT_USAGE, "no configuration file given; use -c FILE");
	}
	char err[512];
	log_set_level(CFG_LOG_WARN);
	rcu_register_thread();
	int rc = EXIT_FAIL;
	a.cfg = cfg_load(a.cfg_path, err, sizeof(err));
	if (!a.cfg) {
		fail(EXIT_FAIL, "%s", err);
		goto out;
	}
	/* the rules intern their permission names: what referee will know */
	if (auth_init(a.cfg, NULL, err, sizeof(err)) < 0) {
		fail(EXIT_FAIL, "%s", err);
		goto out_cfg;
	}
	if (needs_redis(&a, argc - i, argv + i) && redis_open(&a) != 0)
		goto out_auth;
	rc = run(&a, argc - i, argv + i);
out_auth:
	auth_fini();
	store_sync_close(a.redis);
out_cfg:
	cfg_free(a.cfg);
out:
	rcu_unregister_thread();
	return rc;
}
