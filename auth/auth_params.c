/* auth_params.c - strict parser of one `Proxy-Authorization: Digest ...` value
 * (RFC 7616 §3.4, RFC 2617 §3.2.2, RFC 3261 §25.1 for LWS and token). It only
 * slices the value: no allocation, no copy, no NUL assumption. It does not judge
 * the realm, the nonce or the response (auth_digest.c does). SPEC §3.
 * Quoted-pairs are refused: no value we use may contain one, and refusing them
 * keeps every value a plain slice of the message. */
#include <errno.h>

#include "auth_priv.h"
#include "charclass.h"

enum param_kind {
	P_QUOTED = 0, /* must be a quoted-string */
	P_TOKEN,      /* must be a token */
	P_TOKEN_Q,    /* a token; a quoted form is tolerated (clients differ) */
};

enum param_id {
	P_USERNAME = 0,
	P_REALM,
	P_NONCE,
	P_URI,
	P_RESPONSE,
	P_ALGORITHM,
	P_CNONCE,
	P_OPAQUE,
	P_QOP,
	P_NC,
	P_USERHASH,
	P_COUNT
};

static const struct {
	struct slice name;
	enum param_kind kind;
	size_t max;
} params[P_COUNT] = {
	[P_USERNAME] = { SLICE_LIT("username"), P_QUOTED, AUTH_VALUE_MAX },
	[P_REALM] = { SLICE_LIT("realm"), P_QUOTED, AUTH_VALUE_MAX },
	[P_NONCE] = { SLICE_LIT("nonce"), P_QUOTED, AUTH_VALUE_MAX },
	[P_URI] = { SLICE_LIT("uri"), P_QUOTED, AUTH_URI_MAX },
	[P_RESPONSE] = { SLICE_LIT("response"), P_QUOTED, 2 * AUTH_HASH_MAX },
	[P_ALGORITHM] = { SLICE_LIT("algorithm"), P_TOKEN_Q, 32 },
	[P_CNONCE] = { SLICE_LIT("cnonce"), P_QUOTED, AUTH_VALUE_MAX },
	[P_OPAQUE] = { SLICE_LIT("opaque"), P_QUOTED, AUTH_VALUE_MAX },
	[P_QOP] = { SLICE_LIT("qop"), P_TOKEN_Q, 32 },
	[P_NC] = { SLICE_LIT("nc"), P_TOKEN, 8 },
	[P_USERHASH] = { SLICE_LIT("userhash"), P_TOKEN_Q, 8 },
};

#define UNKNOWN_VALUE_MAX AUTH_URI_MAX /* an unknown parameter may be long, not unbounded */

/* A cursor over the value: p .. end. */
struct cur {
	const char *p, *end;
};

static void skip_lws(struct cur *c)
{
	while (c->p < c->end && sip_cc_is(*c->p, SIP_CC_LWS))
		c->p++;
}

static struct slice take_token(struct cur *c)
{
	const char *start = c->p;
	while (c->p < c->end && sip_cc_is(*c->p, SIP_CC_TOKEN))
		c->p++;
	return slice_make(start, (size_t)(c->p - start));
}

/* take_quoted - after the opening quote: up to the closing one. -EBADMSG on a
 * quoted-pair, a control character or a missing closing quote. */
static int take_quoted(struct cur *c, struct slice *out)
{
	const char *start = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p;
		if (ch == '\\' || (ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -EBADMSG;
		c->p++;
	}
	if (c->p >= c->end)
		return -EBADMSG;
	*out = slice_make(start, (size_t)(c->p - start));
	c->p++;
	return 0;
}

/* length and first letter before the compare: a header's ten parameters cost one
 * slice_caseeq each, not one per table row (and no strlen) */
static int param_lookup(struct slice name)
{
	if (name.len == 0)
		return -1;
	const unsigned first = (unsigned char)name.p[0] | 0x20u;
	for (int i = 0; i < P_COUNT; i++)
		if (params[i].name.len == name.len && ((unsigned char)params[i].name.p[0] | 0x20u) == first &&
		    slice_caseeq(name, params[i].name))
			return i;
	return -1;
}

static bool is_hex8(struct slice s)
{
	if (s.len != 8)
		return false;
	for (size_t i = 0; i < 8; i++) {
		char ch = s.p[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

static uint32_t hex8_value(struct slice s)
{
	uint32_t v = 0;
	for (size_t i = 0; i < 8; i++) {
		char ch = s.p[i];
		unsigned d = ch <= '9' ? (unsigned)(ch - '0') : (unsigned)((ch | 0x20) - 'a' + 10);
		v = (v << 4) | d;
	}
	return v;
}

/* read_param - one `name = value`; stores known values in @vals. */
static int read_param(struct cur *c, struct slice vals[P_COUNT], unsigned *seen, struct auth_creds *out)
{
	struct slice name = take_token(c);
	if (name.len == 0)
		return -EBADMSG;
	skip_lws(c);
	if (c->p >= c->end || *c->p != '=')
		return -EBADMSG;
	c->p++;
	skip_lws(c);
	if (c->p >= c->end)
		return -EBADMSG;
	struct slice v;
	bool quoted = *c->p == '"';
	if (quoted) {
		int rc = take_quoted(c, &v);
		if (rc < 0)
			return rc;
	} else {
		v = take_token(c);
		if (v.len == 0)
			return -EBADMSG;
	}
	int id = param_lookup(name);
	if (id < 0)
		return v.len > UNKNOWN_VALUE_MAX ? -EBADMSG : 0; /* RFC 7616 §3.4: ignore unknown */
	if (*seen & (1u << id))
		return -EBADMSG; /* duplicate */
	if (v.len > params[id].max)
		return -EBADMSG;
	if ((params[id].kind == P_QUOTED && !quoted) || (params[id].kind == P_TOKEN && quoted))
		return -EBADMSG;
	if (quoted && params[id].kind == P_TOKEN_Q)
		for (size_t i = 0; i < v.len; i++)
			if (!sip_cc_is(v.p[i], SIP_CC_TOKEN))
				return -EBADMSG;
	*seen |= 1u << id;
	vals[id] = v;
	if (id == P_REALM)
		out->realm = v;
	return 0;
}

/* finish - required fields, qop, nc, algorithm. */
static int finish(struct slice vals[P_COUNT], unsigned seen, struct auth_creds *c)
{
	const unsigned required = (1u << P_USERNAME) | (1u << P_REALM) | (1u << P_NONCE) | (1u << P_URI) |
				  (1u << P_RESPONSE) | (1u << P_QOP) | (1u << P_CNONCE) | (1u << P_NC);
	if ((seen & required) != required)
		return -EBADMSG; /* SPEC §3: qop=auth is offered, an answer without it is refused */
	if (!slice_caseeq(vals[P_QOP], SLICE_LIT("auth")))
		return -EBADMSG;
	if (!is_hex8(vals[P_NC]))
		return -EBADMSG;
	if (vals[P_USERNAME].len == 0 || vals[P_NONCE].len == 0 || vals[P_CNONCE].len == 0 ||
	    vals[P_RESPONSE].len == 0)
		return -EBADMSG;
	c->algo = CFG_ALGO_MD5;
	if (seen & (1u << P_ALGORITHM)) {
		if (slice_caseeq(vals[P_ALGORITHM], SLICE_LIT("SHA-256")))
			c->algo = CFG_ALGO_SHA256;
		else if (!slice_caseeq(vals[P_ALGORITHM], SLICE_LIT("MD5")))
			return -ENOTSUP;
	}
	if ((seen & (1u << P_USERHASH)) && !slice_caseeq(vals[P_USERHASH], SLICE_LIT("false")))
		return -ENOTSUP; /* we never offer userhash (RFC 7616 §3.4.4) */
	c->username = vals[P_USERNAME];
	c->realm = vals[P_REALM];
	c->nonce = vals[P_NONCE];
	c->uri = vals[P_URI];
	c->response = vals[P_RESPONSE];
	c->cnonce = vals[P_CNONCE];
	c->opaque = vals[P_OPAQUE];
	c->qop = vals[P_QOP];
	c->nc_text = vals[P_NC];
	c->nc = hex8_value(vals[P_NC]);
	return 0;
}

/* creds_scan - the parameters of @value in order; with @realm_only it stops at the
 * realm (what it found up to there is what a whole parse would have found) */
static int creds_scan(struct slice value, struct auth_creds *c, bool realm_only)
{
	*c = (struct auth_creds){ 0 };
	struct cur cur = { value.p, value.p + value.len };
	skip_lws(&cur);
	struct slice scheme = take_token(&cur);
	if (!slice_caseeq(scheme, SLICE_LIT("Digest")))
		return -ENOENT;
	if (cur.p >= cur.end || !sip_cc_is(*cur.p, SIP_CC_LWS))
		return -EBADMSG;
	struct slice vals[P_COUNT] = { 0 };
	unsigned seen = 0;
	for (;;) {
		skip_lws(&cur);
		int rc = read_param(&cur, vals, &seen, c);
		if (rc < 0)
			return rc;
		if (realm_only && c->realm.p)
			return 0;
		skip_lws(&cur);
		if (cur.p >= cur.end)
			break;
		if (*cur.p != ',')
			return -EBADMSG;
		cur.p++;
	}
	return realm_only ? -EBADMSG : finish(vals, seen, c);
}

int auth_creds_parse(struct slice value, struct auth_creds *c)
{
	return creds_scan(value, c, false);
}

bool auth_creds_realm(struct slice value, struct slice *realm)
{
	struct auth_creds c;
	int rc = creds_scan(value, &c, true);
	if (rc == -ENOENT || !c.realm.p)
		return false;
	*realm = c.realm;
	return true;
}
