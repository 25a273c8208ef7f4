/* conn_tls.c - the TLS state of one connection, driven by its owner thread
 * only (SPEC §9): non-blocking handshake, SSL_read/SSL_write on the socket,
 * the peer certificate's names and the tls.trusted_names they are held
 * against. It calls nothing of conn_io.c: what the socket waits for next is
 * returned, the event loop sets it. The SSL comes from the shared contexts of
 * tls_ctx.c (a reference is taken, so a reload never pulls it away).
 * Outbound: SNI and the host name check (RFC 5922: subjectAltName DNS, or
 * the IP when the route has no name) are set before the handshake, so a
 * next hop that does not prove the name fails the handshake (counted).
 * OpenSSL's error queue is per thread: every failure path clears it, so one
 * connection's error never shows up in another's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <strings.h>

#include "conn_priv.h"
#include "log.h"
#include "tls_ctx.h"

/* tls.trusted_names of the running configuration: published by the main
 * thread (release), read inside rcu_read_lock, freed after a grace period. */
struct conn_names {
	unsigned n;
	char names[][CFG_NAME_MAX];
};
static struct conn_names *conn_names_rcu;

int conn_tls_begin(struct conn *c, bool server, const char *name)
{
	rcu_read_lock();
	SSL_CTX *ctx = server ? tls_ctx_server() : tls_ctx_client();
	SSL *ssl = ctx ? SSL_new(ctx) : NULL; /* takes its own reference to ctx */
	rcu_read_unlock();
	if (!ssl) {
		ERR_clear_error();
		return ctx ? -ENOMEM : -ENOENT;
	}
	if (SSL_set_fd(ssl, c->fd) != 1)
		goto fail;
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		unsigned char ip[16];
		bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
		if (is_ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
				goto fail;
		} else if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1) {
			goto fail;
		}
		SSL_set_connect_state(ssl);
	}
	c->ssl = ssl;
	return 0;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return -EINVAL;
}

/* why a handshake failed, for the metric */
static enum conn_tls_failure failure_reason(struct conn *c)
{
	unsigned long e = ERR_peek_last_error();
	long v = SSL_get_verify_result(c->ssl);
	if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return CONN_TLS_FAIL_NO_CERTIFICATE;
	if (v != X509_V_OK || (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED))
		return CONN_TLS_FAIL_BAD_CERTIFICATE;
	return CONN_TLS_FAIL_PROTOCOL;
}

int conn_tls_handshake(struct conn *c, bool *want_write)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->trusted_name = !c->outbound && conn_tls_name_trusted(c);
		return 1;
	}
	int err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		*want_write = err == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	enum conn_tls_failure why = failure_reason(c);
	conn_count_tls_failure(why);
	if (c->outbound) {
		char buf[INET6_ADDRSTRLEN] = "?";
		struct sockaddr_storage sa;
		conn_key_to_sa(&c->key, &sa);
		inet_ntop(c->key.family, c->key.addr, buf, sizeof(buf));
		static struct log_limit lim;
		uint64_t sup;
		if (log_limit_pass(&lim, &sup))
			log_warn("tls", "next hop handshake failed peer=%s port=%u verify=%s suppressed=%llu", buf,
				 c->key.port, X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)),
				 (unsigned long long)sup);
	}
	ERR_clear_error();
	return -EPROTO;
}

/* SSL_read/SSL_write result @r as read(2)/write(2) would give it */
static long io_result(struct conn *c, int r)
{
	if (r > 0)
		return r;
	int err = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	return err == SSL_ERROR_ZERO_RETURN ? 0 : -EIO;
}

long conn_tls_read(struct conn *c, char *buf, size_t len)
{
	return io_result(c, SSL_read(c->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len)));
}

long conn_tls_write(struct conn *c, const char *buf, size_t len)
{
	long r = io_result(c, SSL_write(c->ssl, buf, (int)(len > 0x7fffffff ? 0x7fffffff : len)));
	return r == 0 ? -EIO : r; /* a close_notify while writing: the connection is gone */
}

bool conn_tls_pending(struct conn *c)
{
	return SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl);
}

void conn_tls_free(struct conn *c)
{
	if (!c->ssl)
		return;
	if (c->state == CONN_OPEN)
		SSL_shutdown(c->ssl); /* one close_notify, never waits */
	ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
}

bool conn_tls_name_trusted(struct conn *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	if (!cert || SSL_get_verify_result(c->ssl) != X509_V_OK)
		return false;
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (!sans)
		return false;
	bool trusted = false;
	rcu_read_lock();
	const struct conn_names *tn = rcu_dereference(conn_names_rcu);
	for (int i = 0; tn && !trusted && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type != GEN_DNS)
			continue;
		const char *dns = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		int len = ASN1_STRING_length(g->d.dNSName);
		for (unsigned j = 0; j < tn->n && !trusted; j++)
			trusted = (size_t)len == strlen(tn->names[j]) && strncasecmp(dns, tn->names[j], (size_t)len) == 0;
	}
	rcu_read_unlock();
	GENERAL_NAMES_free(sans);
	return trusted;
}

void conn_tls_names_publish(const struct cfg *c)
{
	struct conn_names *n = NULL;
	if (c && c->tls.n_trusted_names) {
		n = malloc(sizeof(*n) + (size_t)c->tls.n_trusted_names * CFG_NAME_MAX);
		if (n) {
			n->n = c->tls.n_trusted_names;
			memcpy(n->names, c->tls.trusted_names, (size_t)n->n * CFG_NAME_MAX);
		}
	}
	struct conn_names *old = conn_names_rcu; /* only the main thread writes it */
	__atomic_store_n(&conn_names_rcu, n, __ATOMIC_RELEASE); /* pairs with rcu_dereference */
	if (old) {
		synchronize_rcu();
		free(old);
	}
}
