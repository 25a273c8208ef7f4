/* auth_identity.c - the identity stage (SPEC §2.1, §2.3, §3): trusted source,
 * else a valid Proxy-Authorization for our realm, else anonymous; and the 407
 * challenge. A failed credential does not answer by itself: the request stays
 * anonymous (the rules stage decides whether to challenge), except a source
 * over auth.failure_limit (403) and a store that cannot answer (503).
 * Per-txn state lives in the txn arena (stage_ctx slot) across STAGE_PARK;
 * what other stages read of it is a typed txn field (t->nonce_stale). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "auth_priv.h"
#include "log.h"
#include "metrics.h"
#include "now.h"

enum id_phase { ID_LOOKUP = 0, ID_NC, ID_DONE };

struct id_ctx {
	uint8_t phase;
	struct store_op op_user, op_nc;
	struct auth_retx_key retx; /* this request in the retransmission table (ID_NC) */
	struct auth_creds creds;
	char id[STORE_ID_MAX];
	size_t id_len;
	struct store_user user;
};

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	const void *a = NULL;
	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	if (!a || !inet_ntop(ss->ss_family, a, buf, (socklen_t)cap))
		snprintf(buf, cap, "?");
}

void auth_count_failure(struct txn *t, enum auth_reason r)
{
	metrics_inc(auth_g.m_failures + (unsigned)r);
	struct sockaddr_storage client_buf;
	const struct sockaddr *client = txn_client_addr(t, &client_buf); /* SPEC §11 */
	if (log_enabled(CFG_LOG_DEBUG)) {
		char ip[INET6_ADDRSTRLEN];
		addr_text((const struct sockaddr_storage *)(const void *)client, ip, sizeof(ip));
		log_debug("auth", "credentials refused reason=%s src=%s call_id=%.*s", auth_reason_names[r], ip,
			  SLICE_FMT(t->msg.call_id));
	}
	/* Guess-like failures feed the limiter. A replay does not: it proves the
	 * sender once knew the password (or copied a packet). A stale
	 * nonce does not either: honest clients meet it every nonce_ttl. */
	if (r != AUTH_REASON_BAD_HEADER && r != AUTH_REASON_FORGED_NONCE && r != AUTH_REASON_WRONG_RESPONSE)
		return;
	/* true once per source and window: the transition to "limited" */
	static struct log_limit limit_log;
	uint64_t suppressed;
	if (auth_limit_fail(t->cfg, client) && log_limit_pass(&limit_log, &suppressed)) {
		char ip[INET6_ADDRSTRLEN];
		addr_text((const struct sockaddr_storage *)(const void *)client, ip, sizeof(ip));
		log_warn("auth", "too many failed credentials, refusing the source until the window ends src=%s "
				 "limit=%u window=%u suppressed=%llu",
			 ip, t->cfg->auth.failure_limit.count, t->cfg->auth.failure_limit.window,
			 (unsigned long long)suppressed);
	}
}

void auth_challenge(struct txn *t, bool stale)
{
	const struct cfg *c = t->cfg;
	stale = stale || t->nonce_stale; /* also for challenges made by other stages (transfer) */
	char nonce[AUTH_NONCE_LEN];
	auth_nonce_make(&auth_g.nonce_key, slice_from_cstr(c->realm), now_unix_sec(), nonce);
	txn_reply(t, 407, SLICE_NULL);
	for (unsigned i = 0; i < c->auth.n_algorithms && i < CFG_MAX_ALGOS; i++) {
		struct slice line = txn_printf(t,
					       "Proxy-Authenticate: Digest realm=\"%s\", nonce=\"%.*s\", "
					       "opaque=\"%s\", algorithm=%s, qop=\"auth\"%s",
					       c->realm, AUTH_NONCE_LEN, nonce, auth_g.opaque,
					       auth_algo_name(c->auth.algorithms[i]), stale ? ", stale=true" : "");
		static struct log_limit no_room;
		uint64_t suppressed;
		if ((!line.p || txn_reply_hdr(t, line) < 0) && log_limit_pass(&no_room, &suppressed))
			log_error("auth", "no room for a Proxy-Authenticate header suppressed=%llu",
				  (unsigned long long)suppressed);
	}
	metrics_inc(auth_g.m_challenges);
}

enum creds_found {
	CREDS_NONE = 0, /* no Digest credentials for our realm: the request is anonymous */
	CREDS_OURS,     /* parsed into the caller's auth_creds */
	CREDS_BAD,      /* present but unusable (failure counted): anonymous too */
};

/* find_creds - the Proxy-Authorization for our realm. Credentials for other
 * realms belong to other proxies and are ignored. */
static enum creds_found find_creds(struct txn *t, struct auth_creds *out)
{
	const struct sip_msg *m = &t->msg;
	struct slice realm = slice_from_cstr(t->cfg->realm);
	bool any_digest = false, saw_bad = false;
	for (unsigned i = 0; i < m->n_hdrs; i++) {
		if (m->hdrs[i].id != SIP_HDR_PROXY_AUTHORIZATION)
			continue;
		int rc = auth_creds_parse(m->hdrs[i].value, out);
		if (rc == -ENOENT)
			continue;
		any_digest = true;
		if (out->realm.p && slice_eq(out->realm, realm)) { /* exact, as sipXecs */
			if (rc == 0)
				return CREDS_OURS;
			auth_count_failure(t, AUTH_REASON_BAD_HEADER);
			return CREDS_BAD;
		}
		if (rc < 0 && !out->realm.p)
			saw_bad = true; /* cannot tell whose it is */
	}
	if (saw_bad) {
		auth_count_failure(t, AUTH_REASON_BAD_HEADER);
		return CREDS_BAD;
	}
	if (any_digest)
		auth_count_failure(t, AUTH_REASON_UNKNOWN_REALM);
	return CREDS_NONE;
}

static bool algo_enabled(const struct cfg *c, enum cfg_algo a)
{
	for (unsigned i = 0; i < c->auth.n_algorithms && i < CFG_MAX_ALGOS; i++)
		if (c->auth.algorithms[i] == a)
			return true;
	return false;
}

/* identity_begin - first run: trusted, limiter, credentials, nonce. Returns
 * a context to continue with, or NULL with *rc set. */
static struct id_ctx *identity_begin(struct txn *t, enum stage_rc *rc)
{
	const struct cfg *c = t->cfg;
	struct sockaddr_storage client_buf;
	const struct sockaddr *sa = txn_client_addr(t, &client_buf); /* SPEC §11 */
	*rc = STAGE_CONTINUE;
	/* SPEC §9: a verified TLS client named in tls.trusted_names is trusted too */
	if (t->rx_trusted_name || cfg_is_trusted(c, sa)) {
		t->id_source = TXN_ID_TRUSTED;
		return NULL;
	}
	if (auth_limit_is_over(c, sa)) {
		metrics_inc(auth_g.m_failures + AUTH_REASON_RATE_LIMITED);
		txn_reply(t, 403, SLICE_NULL);
		*rc = STAGE_REPLY;
		return NULL;
	}
	struct auth_creds cr;
	if (find_creds(t, &cr) != CREDS_OURS)
		return NULL;
	enum auth_nonce_rc nrc = auth_nonce_check(&auth_g.nonce_key, slice_from_cstr(c->realm), cr.nonce, now_unix_sec(),
						  c->auth.nonce_ttl);
	if (nrc == AUTH_NONCE_FORGED) {
		auth_count_failure(t, AUTH_REASON_FORGED_NONCE);
		return NULL;
	}
	if (c->auth.check_uri && !slice_eq(cr.uri, t->msg.ruri)) {
		auth_count_failure(t, AUTH_REASON_BAD_HEADER); /* credentials made for another request */
		return NULL;
	}
	if (!algo_enabled(c, cr.algo)) {
		auth_count_failure(t, AUTH_REASON_BAD_HEADER);
		return NULL;
	}
	size_t dlen = strlen(c->domains[0]);
	if (slice_find_char(cr.username, '@') >= 0 || cr.username.len + 1 + dlen >= STORE_ID_MAX) {
		auth_count_failure(t, AUTH_REASON_WRONG_RESPONSE); /* never a user of ours */
		return NULL;
	}
	struct id_ctx *x = txn_alloc(t, sizeof(*x));
	if (!x) {
		static struct log_limit arena_full;
		uint64_t suppressed;
		if (log_limit_pass(&arena_full, &suppressed))
			log_error("auth", "txn arena full suppressed=%llu", (unsigned long long)suppressed);
		*rc = stage_reply_unavailable(t);
		return NULL;
	}
	memset(x, 0, offsetof(struct id_ctx, user));
	x->phase = ID_LOOKUP;
	t->nonce_stale = nrc == AUTH_NONCE_STALE;
	x->creds = cr;
	memcpy(x->id, cr.username.p, cr.username.len);
	x->id[cr.username.len] = '@';
	memcpy(x->id + cr.username.len + 1, c->domains[0], dlen);
	x->id_len = cr.username.len + 1 + dlen;
	x->id[x->id_len] = '\0';
	t->stage_ctx[t->stage_idx] = x;
	return x;
}

/* check_user - the looked-up user against the credentials. false: failure counted. */
static bool check_user(struct txn *t, struct id_ctx *x)
{
	const struct store_user *u = &x->user;
	const uint8_t *ha1 = NULL;
	if (x->creds.algo == CFG_ALGO_SHA256 && u->has_sha256)
		ha1 = u->ha1_sha256;
	else if (x->creds.algo == CFG_ALGO_MD5 && u->has_md5)
		ha1 = u->ha1_md5;
	if (!ha1 || !auth_digest_verify(x->creds.algo, ha1, t->msg.method, &x->creds)) {
		t->nonce_stale = false; /* stale=true only tells a client with the right password to retry */
		auth_count_failure(t, AUTH_REASON_WRONG_RESPONSE);
		return false;
	}
	return true;
}

static void identity_set(struct txn *t, struct id_ctx *x)
{
	t->identity = txn_copy(t, slice_make(x->id, x->id_len));
	t->id_source = TXN_ID_DIGEST;
	store_perms_held(x->user.perms, t->perms);
	t->perms_known = true;
}

enum stage_rc auth_identity_stage(struct txn *t)
{
	if (!t->msg.is_request || t->msg.method_id == SIP_METHOD_ACK || t->msg.method_id == SIP_METHOD_CANCEL)
		return STAGE_CONTINUE;
	struct id_ctx *x = t->stage_ctx[t->stage_idx];
	if (!x) {
		enum stage_rc rc;
		x = identity_begin(t, &rc);
		if (!x)
			return rc;
	}
	enum store_rc src;
	switch (x->phase) {
	case ID_LOOKUP:
		src = store_user_get(t, &x->op_user, slice_make(x->id, x->id_len), &x->user);
		if (src == STORE_PARKED)
			return STAGE_PARK;
		if (src == STORE_UNAVAILABLE || src == STORE_OVERLOAD)
			return stage_reply_unavailable(t);
		x->phase = ID_DONE;
		if (src != STORE_OK) {
			t->nonce_stale = false;
			auth_count_failure(t, AUTH_REASON_WRONG_RESPONSE); /* unknown user = wrong password */
			return STAGE_CONTINUE;
		}
		if (!check_user(t, x))
			return STAGE_CONTINUE;
		if (t->nonce_stale) {
			metrics_inc(auth_g.m_failures + AUTH_REASON_STALE_NONCE);
			return STAGE_CONTINUE;
		}
		switch (auth_retx_begin(t, &x->creds, &x->retx)) {
		case AUTH_RETX_ACCEPTED: /* forwarded again, as a stateless proxy does */
			x->phase = ID_DONE;
			identity_set(t, x);
			return STAGE_CONTINUE;
		case AUTH_RETX_WAITING: /* the original, parked on the store, answers for both */
			metrics_inc(auth_g.m_retx_dropped);
			return STAGE_DROP;
		case AUTH_RETX_NEW:
			break;
		}
		x->phase = ID_NC;
		/* fall through */
	case ID_NC:
		src = store_nc_check(t, &x->op_nc, x->creds.nonce, x->creds.nc, t->cfg->auth.nonce_ttl + AUTH_NONCE_SKEW);
		if (src == STORE_PARKED)
			return STAGE_PARK;
		x->phase = ID_DONE;
		auth_retx_end(&x->retx, src == STORE_OK);
		if (src == STORE_UNAVAILABLE || src == STORE_OVERLOAD)
			return stage_reply_unavailable(t);
		if (src != STORE_OK) {
			auth_count_failure(t, AUTH_REASON_REPLAY);
			return STAGE_CONTINUE;
		}
		identity_set(t, x);
		return STAGE_CONTINUE;
	default:
		return STAGE_CONTINUE;
	}
}
