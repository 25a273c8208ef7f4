#pragma once
/* transfer_fixture.h - shared setup of the transfer stage tests: a temp
 * folder with a config (grant and sipx variants), users file and secret, the
 * real store (file backend), auth and transfer modules, and helpers that put
 * raw SIP through sip_parse into a txn and run the identity and transfer
 * stages the way the worker does (each with its own stage_ctx slot). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu.h>

#include "auth.h"
#include "cfg.h"
#include "metrics.h"
#include "secret.h"
#include "sip.h"
#include "store.h"
#include "transfer.h"
#include "transfer_priv.h"
#include "txn.h"

static char fx_dir[64];
static struct cfg *fx_grant, *fx_sipx, *fx_nocheck;
static struct secret fx_secret;

static void fx_write(const char *name, const char *text, mode_t mode)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", fx_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static struct cfg *fx_cfg(const char *name, const char *transfer)
{
	char text[2048], path[128], err[512] = "";
	snprintf(text, sizeof(text),
		 "listen: [udp://127.0.0.1:5060]\n"
		 "domains: [example.edu, sipx.example.edu]\n"
		 "realm: example.edu\n"
		 "secret_file: referee.secret\n"
		 "routes:\n  local: udp://127.0.0.1:5080\n  outbound: udp://127.0.0.1:5090\n"
		 "trusted: [10.0.0.0/8]\n"
		 "store: {backend: file, file: users.yaml}\n"
		 "rules:\n"
		 "  - {hosts: [example.edu], users: [\"9xxx\"], permissions: [InternationalDialing]}\n"
		 "  - {hosts: [example.edu], users: [\"1xxx\"], permissions: []}\n"
		 "  - {hosts: [example.edu], users: [forbidden], permissions: [NoAccess]}\n"
		 "transfer: %s\n",
		 transfer);
	fx_write(name, text, 0600);
	snprintf(path, sizeof(path), "%s/%s", fx_dir, name);
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("cfg_load: %s", err);
	return c;
}

static int fx_setup(void **state)
{
	snprintf(fx_dir, sizeof(fx_dir), "/tmp/referee-transfer-test-XXXXXX");
	if (!mkdtemp(fx_dir))
		return -1;
	rcu_register_thread();
	fx_write("users.yaml",
		 "users:\n"
		 "  - {id: 1001@example.edu, password: pw1001, permissions: [LocalDialing, InternationalDialing]}\n"
		 "  - {id: 1002@example.edu, password: pw1002, permissions: []}\n"
		 "  - {id: 1003@example.edu, password: pw1003, permissions: [LocalDialing]}\n",
		 0600);
	fx_write("referee.secret", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\n", 0600);
	fx_grant = fx_cfg("grant.yaml", "{identity: grant, grant_ttl: 60}");
	fx_sipx = fx_cfg("sipx.yaml", "{identity: sipx, sipx_validity: 300}");
	fx_nocheck = fx_cfg("nocheck.yaml", "{identity: grant, check_at_refer: false}");
	char err[512] = "";
	const uint8_t raw[] = "secret-secret-secret-secret-1234";
	if (secret_set(&fx_secret, raw, sizeof(raw) - 1) < 0)
		return -1;
	if (store_init(fx_grant, err, sizeof(err)) < 0 || auth_init(fx_grant, &fx_secret, err, sizeof(err)) < 0 ||
	    transfer_init(fx_grant, &fx_secret, err, sizeof(err)) < 0) {
		fprintf(stderr, "init: %s\n", err);
		return -1;
	}
	metrics_thread_init();
	return 0;
}

static int fx_teardown(void **state)
{
	char cmd[128];
	auth_fini();
	store_fini();
	cfg_free(fx_grant);
	cfg_free(fx_sipx);
	cfg_free(fx_nocheck);
	secret_wipe(&fx_secret);
	rcu_unregister_thread();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx_dir);
	return system(cmd);
}

/* fx_txn - a txn holding @text ('\n' becomes CRLF) from @src_ip, parsed. Free with free(). */
static struct txn *fx_txn(const struct cfg *c, const char *src_ip, const char *text)
{
	struct txn *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	size_t n = 0;
	for (const char *p = text; *p && n + 2 < sizeof(t->rx); p++) {
		if (*p == '\n')
			t->rx[n++] = '\r';
		t->rx[n++] = *p;
	}
	txn_received(t, t->rx, n);
	assert_true(t->parse_rc >= 0);
	t->cfg = c;
	struct sockaddr_in *sin = (struct sockaddr_in *)&t->src;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(5060);
	assert_int_equal(inet_pton(AF_INET, src_ip, &sin->sin_addr), 1);
	t->srclen = sizeof(*sin);
	return t;
}

/* fx_login - what auth_identity_stage does after a good Proxy-Authorization. */
static inline void fx_login(struct txn *t, const char *id)
{
	struct store_op op = { 0 };
	struct store_user u;
	assert_int_equal(store_user_get(t, &op, slice_from_cstr(id), &u), STORE_OK);
	t->identity = txn_copy(t, slice_from_cstr(id));
	t->id_source = TXN_ID_DIGEST;
	t->perms[0] = u.perms[0];
	t->perms[1] = u.perms[1];
	store_perms_add(t->perms, STORE_PERM_VALID_USER);
	t->perms_known = true;
}

/* fx_identity - the identity stage in slot 0 */
static inline enum stage_rc fx_identity(struct txn *t)
{
	t->stage_idx = 0;
	return auth_identity_stage(t);
}

/* fx_transfer - the transfer stage in slot 1 (the file backend never parks) */
static inline enum stage_rc fx_transfer(struct txn *t)
{
	t->stage_idx = 1;
	enum stage_rc rc = transfer_stage(t);
	assert_int_not_equal(rc, STAGE_PARK);
	return rc;
}

static inline int64_t fx_grants(enum transfer_grant_metric m)
{
	return metrics_value(transfer_metrics.grants + m);
}

static inline bool fx_any_edit(const struct txn *t)
{
	for (unsigned i = 0; i < SIP_MAX_HDRS; i++)
		if (txn_hdr_removed(t, i) || txn_hdr_replacement(t, i).p)
			return true;
	return t->edits.n_added || t->edits.ruri.p;
}

/* fx_reason - reply reason as a C string (static buffer) */
static inline const char *fx_reason(const struct txn *t)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%.*s", SLICE_FMT(t->reply_reason));
	return buf;
}
