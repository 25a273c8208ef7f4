/* store_users_file.c - the users file of the file backend (SPEC §6, contract):
 *   users: [{id: 1001@example.com, password: "..." | ha1_md5: <32 hex> |
 *            ha1_sha256: <64 hex>, permissions: [LocalDialing]}]
 * parsed with libyaml into a fresh users table; every problem is reported as
 * "file:line: message". Passwords become HA1s (MD5 and SHA-256 with the
 * realm) and are wiped. Not here: swapping the table in (store_main.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <urcu.h>
#include <yaml.h>

#include "hex.h"
#include "store_priv.h"

struct ufile {
	const char *path;
	const char *realm;
	yaml_document_t doc;
	struct store_users *tb;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int ufile_err(struct ufile *f, const yaml_node_t *at,
							   const char *fmt, ...)
{
	int n = snprintf(f->err, f->errlen, "%s:%lu: ", f->path, at ? (unsigned long)at->start_mark.line + 1 : 1UL);
	if (n >= 0 && (size_t)n < f->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(f->err + n, f->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static struct slice node_str(const yaml_node_t *n)
{
	return slice_make((const char *)n->data.scalar.value, n->data.scalar.length);
}

static int user_permissions(struct ufile *f, const yaml_node_t *v, struct store_user *u)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return ufile_err(f, v, "permissions must be a list of names");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		const yaml_node_t *p = yaml_document_get_node(&f->doc, *it);
		if (!p || p->type != YAML_SCALAR_NODE)
			return ufile_err(f, p ? p : v, "permission must be a name");
		struct slice name = node_str(p);
		int id = store_perm_intern(name.p, name.len);
		if (id == -ENOSPC)
			return ufile_err(f, p, "too many permission names (at most %d)", STORE_MAX_PERMISSIONS);
		if (id < 0)
			return ufile_err(f, p, "bad permission name '%.*s'", SLICE_FMT(name));
		store_perms_add(u->perms, (unsigned)id);
	}
	return 0;
}

/* user_one - one mapping of the users list into @u. */
static int user_one(struct ufile *f, const yaml_node_t *m, struct store_user *u, unsigned *id_line)
{
	const yaml_node_t *id = NULL, *pw = NULL, *md5 = NULL, *sha = NULL;
	memset(u, 0, sizeof(*u));
	if (m->type != YAML_MAPPING_NODE)
		return ufile_err(f, m, "each user must be a mapping {id: ..., ...}");
	for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
		const yaml_node_t *k = yaml_document_get_node(&f->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(&f->doc, pr->value);
		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return ufile_err(f, k ? k : m, "bad key");
		struct slice key = node_str(k);
		const yaml_node_t **slot = NULL;
		if (slice_eq(key, SLICE_LIT("id")))
			slot = &id;
		else if (slice_eq(key, SLICE_LIT("password")))
			slot = &pw;
		else if (slice_eq(key, SLICE_LIT("ha1_md5")))
			slot = &md5;
		else if (slice_eq(key, SLICE_LIT("ha1_sha256")))
			slot = &sha;
		else if (slice_eq(key, SLICE_LIT("permissions"))) {
			if (user_permissions(f, v, u) < 0)
				return -EINVAL;
			continue;
		} else
			return ufile_err(f, k, "unknown key '%.*s' (id, password, ha1_md5, ha1_sha256, permissions)",
					 SLICE_FMT(key));
		if (*slot)
			return ufile_err(f, k, "key '%.*s' given twice", SLICE_FMT(key));
		if (v->type != YAML_SCALAR_NODE)
			return ufile_err(f, v, "'%.*s' must be a single value", SLICE_FMT(key));
		*slot = v;
	}
	if (!id)
		return ufile_err(f, m, "user has no id");
	*id_line = (unsigned)id->start_mark.line + 1;
	size_t idlen;
	int rc = store_id_norm(node_str(id), u->id, &idlen);
	if (rc == -ENAMETOOLONG)
		return ufile_err(f, id, "id is longer than %d characters", STORE_ID_MAX - 1);
	if (rc < 0)
		return ufile_err(f, id, "id '%.*s' must be user@domain", SLICE_FMT(node_str(id)));
	if (pw && (md5 || sha))
		return ufile_err(f, pw, "user %s: give either password or ha1_md5/ha1_sha256, not both", u->id);
	if (!pw && !md5 && !sha)
		return ufile_err(f, id, "user %s has no password, ha1_md5 or ha1_sha256", u->id);
	if (md5 && !(u->has_md5 = hex_decode(node_str(md5), u->ha1_md5, 16)))
		return ufile_err(f, md5, "ha1_md5 must be 32 hex digits");
	if (sha && !(u->has_sha256 = hex_decode(node_str(sha), u->ha1_sha256, 32)))
		return ufile_err(f, sha, "ha1_sha256 must be 64 hex digits");
	if (pw) {
		struct slice p = node_str(pw);
		if (p.len == 0)
			return ufile_err(f, pw, "user %s: empty password", u->id);
		if (store_ha1_compute(u->id, f->realm, p.p, p.len, u->ha1_md5, u->ha1_sha256) < 0)
			return ufile_err(f, pw, "cannot compute HA1");
		u->has_md5 = u->has_sha256 = true;
		OPENSSL_cleanse(pw->data.scalar.value, pw->data.scalar.length);
	}
	return 0;
}

static int users_list(struct ufile *f, const yaml_node_t *list)
{
	if (list->type == YAML_SCALAR_NODE && list->data.scalar.length == 0)
		return 0; /* "users:" with nothing */
	if (list->type != YAML_SEQUENCE_NODE)
		return ufile_err(f, list, "users must be a list");
	for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
		const yaml_node_t *m = yaml_document_get_node(&f->doc, *it);
		struct store_user u;
		unsigned line = 0;
		int rc = m ? user_one(f, m, &u, &line) : ufile_err(f, list, "bad user entry");
		if (rc < 0) {
			OPENSSL_cleanse(&u, sizeof(u));
			return rc;
		}
		uint64_t prev;
		rcu_read_lock();
		int seen = store_users_get_rcu(f->tb, slice_from_cstr(u.id), NULL, &prev);
		rcu_read_unlock();
		if (seen >= 0)
			return ufile_err(f, m, "duplicate id '%s'", u.id);
		rc = store_users_put(f->tb, &u, true);
		OPENSSL_cleanse(&u, sizeof(u));
		if (rc < 0)
			return ufile_err(f, m, "out of memory");
	}
	return 0;
}

static int users_doc(struct ufile *f)
{
	const yaml_node_t *root = yaml_document_get_root_node(&f->doc);
	if (!root)
		return 0; /* empty file: no users */
	if (root->type != YAML_MAPPING_NODE)
		return ufile_err(f, root, "expected a mapping with a 'users' list");
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		const yaml_node_t *k = yaml_document_get_node(&f->doc, pr->key);
		const yaml_node_t *v = yaml_document_get_node(&f->doc, pr->value);
		struct slice name = k && k->type == YAML_SCALAR_NODE ? node_str(k) : SLICE_LIT("?");
		if (!v || !slice_eq(name, SLICE_LIT("users")))
			return ufile_err(f, k ? k : root, "unknown key '%.*s' (only 'users')", SLICE_FMT(name));
		if (users_list(f, v) < 0)
			return -EINVAL;
	}
	return 0;
}

/* file_slurp - the whole file; NULL with "@origin@path: why" in @err. */
static char *file_slurp(const char *origin, const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "%s%s: cannot open users file: %s", origin, path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t cap = 0, used = 0;
	for (;;) {
		if (used == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb = malloc(ncap);
			if (!nb)
				break;
			if (buf) {
				memcpy(nb, buf, used);
				OPENSSL_cleanse(buf, used);
				free(buf);
			}
			buf = nb;
			cap = ncap;
		}
		size_t n = fread(buf + used, 1, cap - used, fp);
		used += n;
		if (n == 0)
			break;
	}
	bool bad = ferror(fp) || !buf;
	fclose(fp);
	if (bad) {
		snprintf(err, errlen, "%s%s: cannot read users file", origin, path);
		free(buf);
		return NULL;
	}
	*len = used;
	return buf;
}

static struct store_users *file_load(const char *origin, const char *path, const char *realm, char *err,
				     size_t errlen)
{
	struct ufile f = { .path = path, .realm = realm, .err = err, .errlen = errlen };
	size_t len = 0;
	char *buf = file_slurp(origin, path, &len, err, errlen);
	if (!buf)
		return NULL;
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	int rc = -EINVAL;
	if (!yaml_parser_load(&parser, &f.doc)) {
		snprintf(err, errlen, "%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "YAML syntax error");
		goto out_parser;
	}
	f.tb = store_users_new();
	if (!f.tb) {
		snprintf(err, errlen, "%s%s: out of memory", origin, path);
		goto out_doc;
	}
	rc = users_doc(&f);
	if (rc < 0) {
		store_users_free(f.tb);
		f.tb = NULL;
	}
out_doc:
	yaml_document_delete(&f.doc);
out_parser:
	yaml_parser_delete(&parser);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc < 0 ? NULL : f.tb;
}

struct store_users *store_users_file_load(const char *path, const char *realm, char *err, size_t errlen)
{
	return file_load("", path, realm, err, errlen);
}

struct store_users *store_users_file_load_cfg(const struct cfg *c, char *err, size_t errlen)
{
	char origin[4200];
	unsigned line = cfg_key_line(c, "store.file");
	snprintf(origin, sizeof(origin), "%s:%u: store.file: ", c->path, line ? line : 1);
	return file_load(origin, c->store.file, c->realm, err, errlen);
}
