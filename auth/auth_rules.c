/* auth_rules.c - the permission rules (SPEC §4, reference §3.3-3.4): compiled
 * from cfg->rules into an immutable table, published with rcu_assign_pointer
 * and retired with call_rcu on reload. First rule whose host and user patterns
 * both match decides; its permissions are OR'ed; none, or an empty list,
 * requires nothing. ValidUser is held by every identity, NoAccess by nobody.
 * Also auth_rules_explain for referee-admin. The stage itself is in auth_rules_stage.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include "auth_priv.h"
#include "rcu_tsan.h"

struct auth_rule {
	unsigned line;
	unsigned n_hosts, n_users, n_perms;
	struct auth_host_pat *hosts;
	struct auth_user_pat *users;
	uint16_t perms[CFG_MAX_RULE_ITEMS];   /* config order */
	uint16_t by_name[CFG_MAX_RULE_ITEMS]; /* the same ids sorted by name: "Requires A|B" as sipXecs (reference §3.3) */
	char *text; /* "file:line hosts=[..] users=[..] permissions=[..]" for explain */
};

struct auth_rules {
	struct rcu_head rcu;
	unsigned n;
	struct auth_rule rule[];
};

/* Written by auth_rules_install/uninstall (startup, reload: one thread at a
 * time); read by workers under rcu_read_lock (rcu_dereference). */
static struct auth_rules *rules_cur;

/* RCU publication TSan can follow (core's rcu_tsan.h): readers release
 * rules_gp after their last read, the free acquires it after the grace period. */
static char rules_gp __attribute__((unused)); /* only TSan reads it */
#define rules_xchg(v) rcu_ptr_xchg(rules_cur, (v))
#define rules_deref() rcu_ptr_load(rules_cur)
#define rules_reads_done() rcu_tsan_release(&rules_gp)
#define rules_gp_passed() rcu_tsan_acquire(&rules_gp)

/* ---------------------------------------------------------------- compile */

static void rules_free(struct auth_rules *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->n; i++) {
		struct auth_rule *ru = &r->rule[i];
		for (unsigned k = 0; ru->users && k < ru->n_users; k++)
			auth_user_pat_free(&ru->users[k]);
		free(ru->users);
		free(ru->hosts);
		free(ru->text);
	}
	free(r);
}

static void rules_free_rcu(struct rcu_head *h)
{
	rules_gp_passed();
	rules_free(caa_container_of(h, struct auth_rules, rcu));
}

/* list_text - "[a, b]" appended to @buf at *@off. */
static void list_text(char *buf, size_t cap, size_t *off, const char *label, unsigned n, const char *items,
		      size_t stride)
{
	int w = snprintf(buf + *off, cap - *off, " %s=[", label);
	*off += w > 0 ? (size_t)w : 0;
	for (unsigned i = 0; i < n && *off < cap; i++) {
		w = snprintf(buf + *off, cap - *off, "%s%s", i ? ", " : "", items + i * stride);
		*off += w > 0 ? (size_t)w : 0;
	}
	if (*off < cap) {
		w = snprintf(buf + *off, cap - *off, "]");
		*off += w > 0 ? (size_t)w : 0;
	}
	if (*off >= cap)
		*off = cap - 1;
}

static char *rule_text(const struct cfg *c, const struct cfg_rule *cr)
{
	size_t cap = 1024;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	int w = snprintf(buf, cap, "%s:%u", c->path[0] ? c->path : "(config)", cr->line);
	size_t off = w > 0 && (size_t)w < cap ? (size_t)w : cap - 1;
	list_text(buf, cap, &off, "hosts", cr->n_hosts, cr->hosts[0], sizeof(cr->hosts[0]));
	list_text(buf, cap, &off, "users", cr->n_users, cr->users[0], sizeof(cr->users[0]));
	list_text(buf, cap, &off, "permissions", cr->n_permissions, cr->permissions[0], sizeof(cr->permissions[0]));
	return buf;
}

/* sort_by_name - insertion sort of the rule's permission ids by name (byte order). */
static const char *perm_name(unsigned id)
{
	const char *name = store_perm_name(id);
	return name ? name : "";
}

static void sort_by_name(struct auth_rule *ru)
{
	for (unsigned i = 0; i < ru->n_perms; i++) {
		uint16_t id = ru->perms[i];
		const char *name = perm_name(id);
		unsigned j = i;
		while (j > 0 && strcmp(perm_name(ru->by_name[j - 1]), name) > 0) {
			ru->by_name[j] = ru->by_name[j - 1];
			j--;
		}
		ru->by_name[j] = id;
	}
}

static int rule_compile(const struct cfg *c, const struct cfg_rule *cr, struct auth_rule *ru, char *err,
			size_t errlen)
{
	const char *path = c->path[0] ? c->path : "(config)";
	char why[256];
	ru->line = cr->line;
	ru->hosts = calloc(cr->n_hosts ? cr->n_hosts : 1, sizeof(*ru->hosts));
	ru->users = calloc(cr->n_users ? cr->n_users : 1, sizeof(*ru->users));
	ru->text = rule_text(c, cr);
	if (!ru->hosts || !ru->users || !ru->text) {
		snprintf(err, errlen, "%s:%u: out of memory", path, cr->line);
		return -ENOMEM;
	}
	if (cr->n_hosts == 0 || cr->n_users == 0 || cr->n_hosts > CFG_MAX_RULE_ITEMS ||
	    cr->n_users > CFG_MAX_RULE_ITEMS || cr->n_permissions > CFG_MAX_RULE_ITEMS) {
		snprintf(err, errlen, "%s:%u: a rule needs 1..%d hosts and users", path, cr->line, CFG_MAX_RULE_ITEMS);
		return -EINVAL;
	}
	for (unsigned k = 0; k < cr->n_hosts; k++, ru->n_hosts++) {
		const char *hwhy;
		if (auth_host_pat_compile(cr->hosts[k], &ru->hosts[k], &hwhy) < 0) {
			snprintf(err, errlen, "%s:%u: host pattern \"%s\": %s", path, cr->line, cr->hosts[k], hwhy);
			return -EINVAL;
		}
	}
	for (unsigned k = 0; k < cr->n_users; k++) {
		if (auth_user_pat_compile(cr->users[k], &ru->users[k], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%u: user pattern \"%s\": %s", path, cr->line, cr->users[k], why);
			return -EINVAL;
		}
		ru->n_users++;
	}
	for (unsigned k = 0; k < cr->n_permissions; k++) {
		int id = store_perm_intern(cr->permissions[k], strlen(cr->permissions[k]));
		if (id < 0) {
			snprintf(err, errlen, "%s:%u: permission \"%s\": %s", path, cr->line, cr->permissions[k],
				 id == -ENOSPC ? "too many permission names" : "not a valid name");
			return -EINVAL;
		}
		bool dup = false;
		for (unsigned j = 0; j < ru->n_perms; j++)
			dup |= ru->perms[j] == id;
		if (!dup)
			ru->perms[ru->n_perms++] = (uint16_t)id;
	}
	sort_by_name(ru);
	return 0;
}

static struct auth_rules *rules_compile(const struct cfg *c, char *err, size_t errlen)
{
	struct auth_rules *r = calloc(1, sizeof(*r) + (size_t)c->n_rules * sizeof(struct auth_rule));
	if (!r) {
		snprintf(err, errlen, "%s: out of memory compiling rules", c->path);
		return NULL;
	}
	for (unsigned i = 0; i < c->n_rules; i++) {
		r->n = i + 1; /* rules_free cleans what was started */
		if (rule_compile(c, &c->rules[i], &r->rule[i], err, errlen) < 0) {
			rules_free(r);
			return NULL;
		}
	}
	r->n = c->n_rules;
	return r;
}

int auth_rules_install(const struct cfg *c, char *err, size_t errlen)
{
	struct auth_rules *next = rules_compile(c, err, errlen);
	if (!next)
		return -EINVAL;
	/* pairs with rules_deref (rcu_dereference) in auth_rules_check / auth_rules_explain */
	struct auth_rules *old = rules_xchg(next);
	if (!old)
		return 0;
#ifdef REFEREE_TSAN
	/* liburcu's call_rcu thread and rcu_barrier are invisible to TSan: wait here instead. */
	synchronize_rcu();
	rules_free_rcu(&old->rcu);
#else
	call_rcu(&old->rcu, rules_free_rcu);
#endif
	return 0;
}

static void rules_release(void *data)
{
	rules_free(data); /* cfg_free: the publisher waited for a grace period */
}

int auth_rules_attach(struct cfg *c, char *err, size_t errlen)
{
	struct auth_rules *r = rules_compile(c, err, errlen);
	if (!r)
		return -EINVAL;
	cfg_gen_attach(c, CFG_GEN_RULES, r, rules_release);
	return 0;
}

/* rules_for - the rules of the generation @c when it carries some, else the
 * installed ones (auth_init/auth_reload: referee-admin, tests). Read lock held. */
static const struct auth_rules *rules_for(const struct cfg *c)
{
	const struct auth_rules *r = cfg_gen_get(c, CFG_GEN_RULES);
	return r ? r : rules_deref();
}

void auth_rules_uninstall(void)
{
	struct auth_rules *old = rules_xchg(NULL);
	synchronize_rcu();
	rules_gp_passed();
	rules_free(old);
#ifndef REFEREE_TSAN
	rcu_barrier(); /* earlier call_rcu frees have run */
#endif
}

/* ---------------------------------------------------------------- match and decide */

/* rule_match_rcu - first rule whose host and user patterns match; NULL when none. Caller holds the read lock. */
static const struct auth_rule *rule_match_rcu(const struct auth_rules *r, const struct sip_uri *u)
{
	if (!r)
		return NULL;
	char ubuf[AUTH_VALUE_MAX];
	struct slice user = u->user;
	int n = user.len ? sip_unescape(user, ubuf, sizeof(ubuf)) : 0;
	if (n > 0)
		user = slice_make(ubuf, (size_t)n); /* a bad escape is matched as written */
	for (unsigned i = 0; i < r->n; i++) {
		const struct auth_rule *ru = &r->rule[i];
		bool host = false;
		for (unsigned k = 0; k < ru->n_hosts && !host; k++)
			host = auth_host_pat_match(&ru->hosts[k], u);
		if (!host)
			continue;
		for (unsigned k = 0; k < ru->n_users; k++)
			if (auth_user_pat_match(&ru->users[k], user))
				return ru;
	}
	return NULL;
}

static enum auth_rules_verdict rule_verdict(const struct auth_rule *ru, bool anonymous, const uint64_t perms[2],
					    char *missing, size_t cap)
{
	if (missing && cap)
		missing[0] = '\0';
	if (!ru || ru->n_perms == 0)
		return AUTH_RULES_ALLOW;
	if (anonymous)
		return AUTH_RULES_CHALLENGE;
	for (unsigned k = 0; k < ru->n_perms; k++) {
		unsigned id = ru->perms[k];
		if (id == STORE_PERM_VALID_USER)
			return AUTH_RULES_ALLOW; /* every identity holds it */
		if (id != STORE_PERM_NO_ACCESS && perms && store_perms_has(perms, id))
			return AUTH_RULES_ALLOW;
	}
	size_t off = 0;
	for (unsigned k = 0; missing && k < ru->n_perms && off + 1 < cap; k++) {
		const char *name = store_perm_name(ru->by_name[k]);
		int w = snprintf(missing + off, cap - off, "%s%s", k ? "|" : "", name ? name : "?");
		off += w > 0 ? (size_t)w : 0;
	}
	return AUTH_RULES_DENY;
}

enum auth_rules_verdict auth_rules_check(const struct cfg *c, const struct sip_uri *target, bool anonymous,
					 const uint64_t perms[2], char *missing, size_t cap)
{
	rcu_read_lock();
	const struct auth_rules *r = rules_for(c);
	enum auth_rules_verdict v = rule_verdict(rule_match_rcu(r, target), anonymous, perms, missing, cap);
	rules_reads_done();
	rcu_read_unlock();
	return v;
}

/* ---------------------------------------------------------------- explain */

static size_t explain_put(char *buf, size_t cap, size_t off, const char *fmt, const char *a, const char *b)
{
	int w = snprintf(off < cap ? buf + off : NULL, off < cap ? cap - off : 0, fmt, a, b);
	return off + (w > 0 ? (size_t)w : 0);
}

int auth_rules_explain(const char *uri, const uint64_t perms[2], bool anonymous, char *buf, size_t cap)
{
	struct sip_uri u;
	if (!uri || sip_uri_parse(slice_from_cstr(uri), &u) < 0 || !sip_uri_is_sip(&u))
		return -EINVAL;
	char missing[512], needs[512] = "nothing";
	size_t off = explain_put(buf, cap, 0, "target: %s%s\n", uri, "");
	rcu_read_lock();
	const struct auth_rules *r = rules_deref();
	const struct auth_rule *ru = rule_match_rcu(r, &u);
	off = explain_put(buf, cap, off, "rule: %s%s\n", ru ? ru->text : "none matches", "");
	if (ru && ru->n_perms) {
		size_t n = 0;
		for (unsigned k = 0; k < ru->n_perms && n + 1 < sizeof(needs); k++) {
			const char *name = store_perm_name(ru->perms[k]);
			int w = snprintf(needs + n, sizeof(needs) - n, "%s%s", k ? " or " : "", name ? name : "?");
			n += w > 0 ? (size_t)w : 0;
		}
	}
	enum auth_rules_verdict v = rule_verdict(ru, anonymous, perms, missing, sizeof(missing));
	rules_reads_done();
	rcu_read_unlock();
	off = explain_put(buf, cap, off, "requires: %s%s\n", needs, "");
	if (v == AUTH_RULES_ALLOW)
		off = explain_put(buf, cap, off, "verdict: allow%s%s\n", "", "");
	else if (v == AUTH_RULES_CHALLENGE)
		off = explain_put(buf, cap, off, "verdict: challenge (407 Proxy Authentication Required)%s%s\n", "", "");
	else
		off = explain_put(buf, cap, off, "verdict: deny (403 Requires %s)%s\n", missing, "");
	return off > INT32_MAX ? -E2BIG : (int)off;
}
