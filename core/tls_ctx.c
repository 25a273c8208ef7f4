/* tls_ctx.c - builds and swaps the shared SSL_CTX pair (SPEC §9, tls_ctx.h).
 *
 * Settings, once per context (never per connection): TLS 1.2 minimum, ECDHE
 * key exchange only (groups X25519, P-256, P-384; TLS 1.2 suites ECDHE with
 * AES-GCM or ChaCha20), session tickets on (the default ticket keys of the
 * context, so a reload starts new ones), SSL_MODE_RELEASE_BUFFERS (an idle
 * connection keeps no record buffers), partial writes allowed with a moving
 * buffer (our send queue hands SSL_write the same bytes again after
 * WANT_WRITE from a possibly moved head). OpenSSL 3 fetches the algorithms
 * (EVP_CIPHER, EVP_MD, ...) of a context when it is created and handshakes
 * reuse them, so one shared context is what "fetched once" needs.
 * Swap: publish the new pointers (release stores), synchronize_rcu, then drop
 * our reference to the old ones; SSL objects hold their own reference. */
#include "tls_ctx.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#define URCU_INLINE_SMALL_FUNCTIONS
#include <urcu.h>

#include "log.h"

#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

static SSL_CTX *tls_server_rcu;
static SSL_CTX *tls_client_rcu;
static unsigned tls_generation;

/* the first OpenSSL error as text (the queue is cleared) */
static void ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(buf, len, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static int ctx_common(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1)
		return -EINVAL;
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	return 0;
}

/* server_new - our certificate and key, client verification per the config.
 * On failure *key names the key at fault and @why the reason. */
static SSL_CTX *server_new(const struct cfg *c, const char **key, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || ctx_common(ctx) < 0) {
		*key = "tls";
		ssl_error_text(why, whylen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls.certificate) != 1) {
		*key = "tls.certificate";
		goto fail;
	}
	*key = "tls.private_key";
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls.private_key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			goto mismatch;
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		goto mismatch;
	if (c->tls.ca_file[0]) {
		*key = "tls.ca_file";
		if (SSL_CTX_load_verify_locations(ctx, c->tls.ca_file, NULL) != 1)
			goto fail;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls.ca_file);
		if (!names)
			goto fail;
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	int mode = SSL_VERIFY_NONE;
	if (c->tls.verify_client == CFG_TLS_VERIFY_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	else if (c->tls.verify_client == CFG_TLS_VERIFY_REQUIRE)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, NULL);
	/* resumption is per context; the id context ties sessions to referee */
	static const unsigned char sid_ctx[] = "referee";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	return ctx;
mismatch:
	ERR_clear_error();
	snprintf(why, whylen, "does not match tls.certificate");
	SSL_CTX_free(ctx);
	return NULL;
fail:
	ssl_error_text(why, whylen);
	SSL_CTX_free(ctx);
	return NULL;
}

/* client_new - next hops: peer verification always on (RFC 5922). */
static SSL_CTX *client_new(const struct cfg *c, const char **key, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	*key = "tls.ca_file";
	if (!ctx || ctx_common(ctx) < 0)
		goto fail;
	if (c->tls.ca_file[0] ? SSL_CTX_load_verify_locations(ctx, c->tls.ca_file, NULL) != 1
			      : SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto fail;
	/* our certificate too, for next hops that ask for one (mutual TLS trunks) */
	if (c->tls.certificate[0] &&
	    (SSL_CTX_use_certificate_chain_file(ctx, c->tls.certificate) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, c->tls.private_key, SSL_FILETYPE_PEM) != 1)) {
		*key = "tls.certificate";
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
fail:
	ssl_error_text(why, whylen);
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_files_check(const struct cfg *c, const char **key, char *why, size_t whylen)
{
	SSL_CTX *s = NULL, *cl;
	if (c->tls.certificate[0] && !(s = server_new(c, key, why, whylen)))
		return -EINVAL;
	cl = client_new(c, key, why, whylen);
	SSL_CTX_free(s);
	if (!cl)
		return -EINVAL;
	SSL_CTX_free(cl);
	return 0;
}

static void ctx_publish(SSL_CTX **slot, SSL_CTX *ctx)
{
	/* release: the context is fully set up before a reader sees it
	 * (pairs with rcu_dereference in tls_ctx_server/client) */
	__atomic_store_n(slot, ctx, __ATOMIC_RELEASE);
}

static int ctx_build(const struct cfg *c, SSL_CTX **server, SSL_CTX **client)
{
	char why[256];
	const char *key = "tls";
	*server = NULL;
	if (c->tls.certificate[0] && !(*server = server_new(c, &key, why, sizeof(why))))
		goto fail;
	if (!(*client = client_new(c, &key, why, sizeof(why)))) {
		SSL_CTX_free(*server);
		goto fail;
	}
	return 0;
fail:
	log_error("tls", "cannot set up TLS: %s: %s", key, why);
	return -EINVAL;
}

int tls_ctx_start(const struct cfg *c)
{
	SSL_CTX *s, *cl;
	if (ctx_build(c, &s, &cl) < 0)
		return -EINVAL;
	tls_ctx_stop();
	ctx_publish(&tls_server_rcu, s);
	ctx_publish(&tls_client_rcu, cl);
	return 0;
}

int tls_ctx_reload(const struct cfg *c)
{
	SSL_CTX *s, *cl;
	if (ctx_build(c, &s, &cl) < 0)
		return -EINVAL;
	SSL_CTX *old_s = tls_server_rcu, *old_c = tls_client_rcu; /* only we write them */
	ctx_publish(&tls_server_rcu, s);
	ctx_publish(&tls_client_rcu, cl);
	synchronize_rcu(); /* no reader is between rcu_dereference and SSL_new */
	SSL_CTX_free(old_s); /* connections made with them keep their reference */
	SSL_CTX_free(old_c);
	__atomic_add_fetch(&tls_generation, 1, __ATOMIC_RELAXED);
	log_info("tls", "certificate and key reloaded generation=%u", tls_ctx_generation());
	return 0;
}

void tls_ctx_stop(void)
{
	SSL_CTX *old_s = tls_server_rcu, *old_c = tls_client_rcu;
	ctx_publish(&tls_server_rcu, NULL);
	ctx_publish(&tls_client_rcu, NULL);
	if (old_s || old_c)
		synchronize_rcu();
	SSL_CTX_free(old_s);
	SSL_CTX_free(old_c);
}

SSL_CTX *tls_ctx_server(void)
{
	return rcu_dereference(tls_server_rcu);
}

SSL_CTX *tls_ctx_client(void)
{
	return rcu_dereference(tls_client_rcu);
}

unsigned tls_ctx_generation(void)
{
	return __atomic_load_n(&tls_generation, __ATOMIC_RELAXED);
}
