/* admin_import_users.c - referee-admin import-users FILE.csv (SPEC §14): the
 * users of a sipXecs or Kamailio `subscriber` export, rows
 *   id,ha1_md5[,ha1_sha256],permissions
 * (3 columns: no SHA-256 HA1; a field may be "double-quoted"; permissions are
 * separated by ';', ',' inside quotes, or spaces). A first row naming the
 * columns (first field "id"), blank lines and '#' lines are skipped.
 * All or nothing: every row is checked before anything is written, and the
 * first bad one is reported as FILE:LINE: why. Redis: every user in one
 * MULTI/EXEC (an existing id is replaced: re-running an import converges),
 * then the ids published on referee:invalidate; a Redis Cluster cannot run one
 * transaction across slots, so there each user is its own MULTI/EXEC. File backend: the users-file
 * entries are printed, as `user add` does. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin_import.h"
#include "store.h"
#include "store_priv.h"
#include "store_redis_priv.h"

#define CSV_FIELDS 4
#define CSV_LINE_MAX 8192
#define PERMS_TEXT_MAX 4096

struct csv_user {
	char id[STORE_ID_MAX];
	char md5[33], sha[65];
	char perms[PERMS_TEXT_MAX]; /* comma-separated, as the Redis field */
	unsigned n_perms;
	unsigned line;
};

struct users_import {
	const char *path;
	const struct cfg *cfg;
	struct csv_user *u;
	size_t n, cap;
};

static int row_error(const struct users_import *ui, unsigned line, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s:%u: ", ui->path, line);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return -EINVAL;
}

/* csv_split - fields of @line in place (quotes removed, "" inside quotes = ").
 * Returns the field count, or -1 for an unterminated quote / too many fields. */
static int csv_split(char *line, char *field[CSV_FIELDS])
{
	int n = 0;
	char *r = line, *w = line;
	for (;;) {
		if (n == CSV_FIELDS)
			return -1;
		field[n++] = w;
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r == '"') {
			r++;
			for (;;) {
				if (!*r)
					return -1;
				if (r[0] == '"' && r[1] == '"') {
					*w++ = '"';
					r += 2;
				} else if (*r == '"') {
					r++;
					break;
				} else {
					*w++ = *r++;
				}
			}
			while (*r == ' ' || *r == '\t')
				r++;
			if (*r && *r != ',')
				return -1;
		} else {
			while (*r && *r != ',')
				*w++ = *r++;
			while (w > field[n - 1] && (w[-1] == ' ' || w[-1] == '\t'))
				w--;
		}
		bool more = *r == ',';
		*w++ = '\0';
		if (!more)
			return n;
		r++;
	}
}

static bool hex_ok(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

bool admin_perm_name_ok(const char *p)
{
	size_t len = strlen(p);
	if (len == 0 || len >= STORE_PERM_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-' && p[i] != '.')
			return false;
	return true;
}

/* row_perms - the permission list of a row into u->perms. */
static int row_perms(const struct users_import *ui, struct csv_user *u, char *list)
{
	size_t used = 0;
	u->perms[0] = '\0';
	for (char *save, *tok = strtok_r(list, ",; \t", &save); tok; tok = strtok_r(NULL, ",; \t", &save)) {
		if (!admin_perm_name_ok(tok))
			return row_error(ui, u->line, "'%s' is not a permission name", tok);
		if (ui->cfg->store.backend == CFG_STORE_REDIS && store_perm_id(tok, strlen(tok)) < 0)
			return row_error(ui, u->line,
					 "permission '%s' is used by no rule of the configuration: referee would treat the user "
					 "as unknown",
					 tok);
		if (strcmp(tok, "NoAccess") == 0)
			return row_error(ui, u->line, "'%s' is held by nobody in referee (as in sipXecs): remove it", tok);
		int w = snprintf(u->perms + used, sizeof(u->perms) - used, "%s%s", used ? "," : "", tok);
		if (w < 0 || (size_t)w >= sizeof(u->perms) - used)
			return row_error(ui, u->line, "%s", "too many permissions");
		used += (size_t)w;
		u->n_perms++;
	}
	return 0;
}

static int row_parse(struct users_import *ui, char *line, unsigned lineno)
{
	char *f[CSV_FIELDS];
	int n = csv_split(line, f);
	if (n < 0)
		return row_error(ui, lineno, "%s", "not a CSV row of at most 4 fields (an unterminated quote?)");
	if (n < 3)
		return row_error(ui, lineno, "%s", "want id,ha1_md5[,ha1_sha256],permissions");
	if (ui->n == ui->cap) {
		size_t cap = ui->cap ? ui->cap * 2 : 256;
		void *v = realloc(ui->u, cap * sizeof(*ui->u));
		if (!v)
			return row_error(ui, lineno, "%s", "out of memory");
		ui->u = v;
		ui->cap = cap;
	}
	struct csv_user *u = &ui->u[ui->n];
	*u = (struct csv_user){ .line = lineno };
	size_t len;
	if (store_id_norm(slice_from_cstr(f[0]), u->id, &len) < 0)
		return row_error(ui, lineno, "'%s' is not an id of the form user@domain", f[0]);
	const char *md5 = f[1], *sha = n == 4 ? f[2] : "";
	if (md5[0] && !hex_ok(md5, 32))
		return row_error(ui, lineno, "ha1_md5 '%s' is not 32 hex digits", md5);
	if (sha[0] && !hex_ok(sha, 64))
		return row_error(ui, lineno, "ha1_sha256 '%s' is not 64 hex digits", sha);
	if (!md5[0] && !sha[0])
		return row_error(ui, lineno, "%s", "no HA1: ha1_md5 or ha1_sha256 is needed");
	for (size_t i = 0; md5[i]; i++)
		u->md5[i] = (char)tolower((unsigned char)md5[i]);
	for (size_t i = 0; sha[i]; i++)
		u->sha[i] = (char)tolower((unsigned char)sha[i]);
	if (row_perms(ui, u, f[n - 1]) < 0)
		return -EINVAL;
	for (size_t k = 0; k < ui->n; k++)
		if (strcmp(ui->u[k].id, u->id) == 0) {
			fprintf(stderr, "%s:%u: %s is already on line %u\n", ui->path, lineno, u->id, ui->u[k].line);
			return -EINVAL;
		}
	ui->n++;
	return 0;
}

static int csv_read(struct users_import *ui)
{
	FILE *f = fopen(ui->path, "r");
	if (!f) {
		fprintf(stderr, "%s:0: cannot open: %s\n", ui->path, strerror(errno));
		return -errno;
	}
	char line[CSV_LINE_MAX];
	unsigned lineno = 0;
	int rc = 0;
	bool first = true;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			rc = row_error(ui, lineno, "%s", "line too long");
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		bool header = first && strncmp(s, "id", 2) == 0 && (s[2] == ',' || s[2] == ' ');
		first = false;
		if (!header)
			rc = row_parse(ui, s, lineno);
	}
	if (rc == 0 && ferror(f))
		rc = row_error(ui, lineno, "%s", "read error");
	fclose(f);
	if (rc == 0 && ui->n == 0)
		rc = row_error(ui, lineno, "%s", "no user rows");
	return rc;
}

static void print_file_entries(const struct users_import *ui)
{
	printf("# add under 'users:' in %s, then reload referee (SIGHUP)\n", ui->cfg->store.file);
	for (size_t k = 0; k < ui->n; k++) {
		const struct csv_user *u = &ui->u[k];
		printf("  - id: %s\n", u->id);
		if (u->md5[0])
			printf("    ha1_md5: %s\n", u->md5);
		if (u->sha[0])
			printf("    ha1_sha256: %s\n", u->sha);
		printf("    permissions: [");
		for (const char *p = u->perms; *p; p++)
			fputs(*p == ',' ? ", " : (char[2]){ *p, 0 }, stdout);
		printf("]\n");
	}
}

/* sync_cmd - one command through the admin's Redis client: routed by @key
 * (cluster) or to master 0; false (printed) on a transport error, an error
 * reply or a reply of another type than @want (-1: any). */
static bool sync_cmd(struct store_sync *rs, const char *key, int want, int argc, const char **argv)
{
	char why[512];
	redisReply *r = key ? store_sync_key_cmd(rs, key, argc, argv, why, sizeof(why))
			    : store_sync_node_cmd(rs, 0, argc, argv, why, sizeof(why));
	if (!r) {
		fprintf(stderr, "referee-admin: Redis: %s\n", why);
		return false;
	}
	bool ok = r->type != REDIS_REPLY_ERROR && (want < 0 || r->type == want);
	if (!ok)
		fprintf(stderr, "referee-admin: Redis %s: %s\n", argv[0], r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	for (size_t i = 0; ok && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "referee-admin: Redis: %s\n", r->element[i]->str);
			ok = false;
		}
	freeReplyObject(r);
	return ok;
}

/* queue_user - DEL + HSET of one user inside an open MULTI (both answered QUEUED). */
static bool queue_user(struct store_sync *rs, const char *route, const struct csv_user *u, const char *key)
{
	const char *del[] = { "DEL", key };
	const char *hs[8] = { "HSET", key, "permissions", u->perms };
	int argc = 4;
	if (u->md5[0]) {
		hs[argc++] = "ha1_md5";
		hs[argc++] = u->md5;
	}
	if (u->sha[0]) {
		hs[argc++] = "ha1_sha256";
		hs[argc++] = u->sha;
	}
	return sync_cmd(rs, route, REDIS_REPLY_STATUS, 2, del) && sync_cmd(rs, route, REDIS_REPLY_STATUS, argc, hs);
}

/* redis_write - one server (or the sentinels' master): every user in one
 * MULTI/EXEC on one connection. A cluster cannot run a transaction across
 * slots: every row was validated first, then each user is written atomically
 * (its own MULTI/EXEC on its master) and a failure names the first row not written. */
static int redis_write(const struct users_import *ui, struct store_sync *rs, bool cluster)
{
	static const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" }, *discard[] = { "DISCARD" };
	char key[STORE_ID_MAX + 32];
	if (!cluster) {
		bool ok = sync_cmd(rs, NULL, REDIS_REPLY_STATUS, 1, multi);
		for (size_t k = 0; ok && k < ui->n; k++) {
			store_key_user(key, sizeof(key), slice_from_cstr(ui->u[k].id));
			ok = queue_user(rs, NULL, &ui->u[k], key);
		}
		if (!ok || !sync_cmd(rs, NULL, REDIS_REPLY_ARRAY, 1, exec)) {
			sync_cmd(rs, NULL, -1, 1, discard); /* an error while queueing: nothing ran */
			fprintf(stderr, "referee-admin: %s: nothing imported (the transaction did not run)\n", ui->path);
			return 1;
		}
	} else {
		for (size_t k = 0; k < ui->n; k++) {
			store_key_user(key, sizeof(key), slice_from_cstr(ui->u[k].id));
			bool ok = sync_cmd(rs, key, REDIS_REPLY_STATUS, 1, multi) && queue_user(rs, key, &ui->u[k], key) &&
				  sync_cmd(rs, key, REDIS_REPLY_ARRAY, 1, exec);
			if (!ok) {
				sync_cmd(rs, key, -1, 1, discard);
				fprintf(stderr, "%s:%u: not written (Redis Cluster: %zu users before it were imported)\n",
					ui->path, ui->u[k].line, k);
				return 1;
			}
		}
	}
	for (size_t k = 0; k < ui->n; k++) {
		const char *pub[] = { "PUBLISH", STORE_REDIS_CHANNEL, ui->u[k].id };
		if (!sync_cmd(rs, NULL, REDIS_REPLY_INTEGER, 3, pub))
			return 1;
	}
	printf("imported %zu users from %s\n", ui->n, ui->path);
	return 0;
}

int admin_import_users(const struct cfg *cfg, struct store_sync *rs, const char *path)
{
	struct users_import ui = { .path = path, .cfg = cfg };
	int code = 1;
	if (csv_read(&ui) == 0) {
		if (cfg->store.backend == CFG_STORE_FILE) {
			print_file_entries(&ui);
			code = 0;
		} else {
			struct cfg_redis_url u;
			bool cluster = !cfg_redis_url_parse(cfg->store.redis, &u) && u.kind == CFG_REDIS_CLUSTER;
			code = redis_write(&ui, rs, cluster);
		}
	}
	if (ui.u)
		OPENSSL_cleanse(ui.u, ui.cap * sizeof(*ui.u));
	free(ui.u);
	return code;
}
