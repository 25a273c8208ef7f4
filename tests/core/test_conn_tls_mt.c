/* test_conn_tls_mt.c - TLS on conn_threads (core/conn_tls.c, core/tls_ctx.c,
 * SPEC §9) with certificates made by openssl at test time: a verified
 * handshake and echo, tls.verify_client require without a client
 * certificate, a trusted client name, garbage on the TLS port, an outbound
 * TLS connection verified against the route's name (and refused for a wrong
 * name), and a certificate reload with a connection open. Named _mt: TSan. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conn_fixture.h"
#include "conn_priv.h"
#include "tls_ctx.h"
#include "tls_fixture.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/referee-test-tls-XXXXXX");
	return mkdtemp(dir) && tls_fixture_make(dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct cfg *cfg_make(uint16_t port, enum cfg_tls_verify verify)
{
	struct cfg *c = calloc(1, sizeof(*c));
	char url[64];
	snprintf(url, sizeof(url), "tls://127.0.0.1:%u", port);
	assert_int_equal(cfg_addr_parse(url, true, &c->listen[0]), 0);
	c->n_listen = 1;
	snprintf(c->tls.certificate, sizeof(c->tls.certificate), "%s/server.pem", dir);
	snprintf(c->tls.private_key, sizeof(c->tls.private_key), "%s/server.key", dir);
	snprintf(c->tls.ca_file, sizeof(c->tls.ca_file), "%s/ca.pem", dir);
	c->tls.verify_client = verify;
	c->tls.n_trusted_names = 1;
	strcpy(c->tls.trusted_names[0], "client.test");
	c->tcp.max_connections = 100;
	c->tcp.max_per_source = 100;
	c->tcp.read_timeout = 2;
	c->tcp.idle_timeout = 600;
	c->tcp.max_message = 4096;
	return c;
}

/* a blocking TLS client; @with_cert: present client.pem */
static SSL *client_open(uint16_t port, bool with_cert, int *fd_out, SSL_CTX **ctx_out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char path[160], key[160];
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (with_cert) {
		snprintf(path, sizeof(path), "%s/client.pem", dir);
		snprintf(key, sizeof(key), "%s/client.key", dir);
		assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	}
	int fd = fx_connect(port, NULL);
	assert_true(fd >= 0);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "proxy.test");
	SSL_set1_host(ssl, "proxy.test");
	*fd_out = fd;
	*ctx_out = ctx;
	return ssl;
}

static void client_close(SSL *ssl, int fd, SSL_CTX *ctx)
{
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

static const char msg[] = "OPTIONS sip:proxy.test SIP/2.0\r\nCall-ID: t\r\nContent-Length: 0\r\n\r\n";

/* send msg and read its echo over @ssl */
static void echo_once(SSL *ssl)
{
	assert_int_equal(SSL_write(ssl, msg, sizeof(msg) - 1), (int)sizeof(msg) - 1);
	char buf[512];
	size_t want = sizeof(msg) - 1 + (size_t)snprintf(NULL, 0, "ECHO %zu\r\n", sizeof(msg) - 1), have = 0;
	while (have < want) {
		int r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
		if (r <= 0)
			fail_msg("SSL_read: %d after %zu bytes", SSL_get_error(ssl, r), have);
		have += (size_t)r;
	}
	assert_memory_equal(buf + want - (sizeof(msg) - 1), msg, sizeof(msg) - 1);
}

static int64_t tls_failures(enum conn_tls_failure why)
{
	return metrics_value(conn_rt.m.tls_failures + why);
}

static void test_handshake_trust_garbage_reload(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, CFG_TLS_VERIFY_OPTIONAL);
	assert_int_equal(tls_ctx_start(c), 0);
	fx_start(c);
	/* verified server, no client certificate (optional): works, not trusted */
	int fd;
	SSL_CTX *cctx;
	SSL *ssl = client_open(port, false, &fd, &cctx);
	assert_int_equal(SSL_connect(ssl), 1);
	echo_once(ssl);
	assert_int_equal(atomic_load(&fx.trusted_seen), 0);
	/* reload the certificate with this connection open: it keeps working */
	const unsigned gen = tls_ctx_generation();
	assert_int_equal(tls_ctx_reload(c), 0);
	assert_int_equal(tls_ctx_generation(), gen + 1);
	echo_once(ssl);
	/* a client certificate with a trusted name: its messages are trusted */
	int fd2;
	SSL_CTX *cctx2;
	SSL *ssl2 = client_open(port, true, &fd2, &cctx2);
	assert_int_equal(SSL_connect(ssl2), 1);
	echo_once(ssl2);
	assert_int_equal(atomic_load(&fx.trusted_seen), 1);
	client_close(ssl2, fd2, cctx2);
	client_close(ssl, fd, cctx);
	/* plain bytes on the TLS port: a protocol failure, closed */
	const int64_t proto0 = tls_failures(CONN_TLS_FAIL_PROTOCOL);
	int g = fx_connect(port, NULL);
	assert_int_equal(send(g, msg, sizeof(msg) - 1, 0), (ssize_t)sizeof(msg) - 1);
	assert_true(fx_eof(g));
	close(g);
	FX_WAIT(tls_failures(CONN_TLS_FAIL_PROTOCOL) == proto0 + 1);
	assert_int_equal(tls_failures(CONN_TLS_FAIL_PROTOCOL), proto0 + 1);
	/* a client that connects and says nothing: cut off after read_timeout */
	const int64_t slow0 = tls_failures(CONN_TLS_FAIL_TIMEOUT);
	g = fx_connect(port, NULL);
	assert_true(fx_eof(g));
	close(g);
	FX_WAIT(tls_failures(CONN_TLS_FAIL_TIMEOUT) == slow0 + 1);
	assert_int_equal(tls_failures(CONN_TLS_FAIL_TIMEOUT), slow0 + 1);
	fx_stop();
	tls_ctx_stop();
	free(c);
}

static void test_require_client_cert(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, CFG_TLS_VERIFY_REQUIRE);
	assert_int_equal(tls_ctx_start(c), 0);
	fx_start(c);
	const int64_t nocert0 = tls_failures(CONN_TLS_FAIL_NO_CERTIFICATE);
	int fd;
	SSL_CTX *cctx;
	SSL *ssl = client_open(port, false, &fd, &cctx);
	/* TLS 1.3: the client may finish before the server's alert; its first read fails */
	if (SSL_connect(ssl) == 1) {
		SSL_write(ssl, msg, sizeof(msg) - 1);
		char b[64];
		assert_true(SSL_read(ssl, b, sizeof(b)) <= 0);
	}
	client_close(ssl, fd, cctx);
	FX_WAIT(tls_failures(CONN_TLS_FAIL_NO_CERTIFICATE) == nocert0 + 1);
	assert_int_equal(tls_failures(CONN_TLS_FAIL_NO_CERTIFICATE), nocert0 + 1);
	ssl = client_open(port, true, &fd, &cctx);
	assert_int_equal(SSL_connect(ssl), 1);
	echo_once(ssl);
	client_close(ssl, fd, cctx);
	fx_stop();
	tls_ctx_stop();
	free(c);
}

/* outbound: conn_send to our own TLS listener, verified as proxy.test */
static void test_outbound_verification(void **state)
{
	(void)state;
	uint16_t port = fx_free_port();
	struct cfg *c = cfg_make(port, CFG_TLS_VERIFY_NONE);
	c->tls.n_trusted_names = 0;
	assert_int_equal(tls_ctx_start(c), 0);
	fx_start(c);
	rcu_register_thread();
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage dst;
	memcpy(&dst, &a, sizeof(a));
	const unsigned before = atomic_load(&fx.delivered);
	struct conn_dest d = { .addr = &dst, .addrlen = sizeof(a), .transport = CFG_TRANSPORT_TLS,
			       .may_connect = true, .tls_name = "proxy.test" };
	assert_int_equal(conn_send(&d, msg, sizeof(msg) - 1), 0);
	/* the listener side delivers it, its echo comes back on the outbound side */
	FX_WAIT(atomic_load(&fx.delivered) >= before + 2);
	assert_int_equal(atomic_load(&fx.delivered), before + 2);
	assert_true(conn_is_up(&dst, CFG_TRANSPORT_TLS));
	rcu_unregister_thread();
	fx_stop();
	/* a wrong name: the handshake fails, counted as a connect failure */
	port = fx_free_port();
	struct cfg *c2 = cfg_make(port, CFG_TLS_VERIFY_NONE);
	c2->tls.n_trusted_names = 0;
	fx_start(c2);
	rcu_register_thread();
	const int64_t fail0 = metrics_value(conn_rt.m.connect_failures + CFG_TRANSPORT_TLS);
	a.sin_port = htons(port);
	memcpy(&dst, &a, sizeof(a));
	d.tls_name = "wrong.test";
	const unsigned before2 = atomic_load(&fx.delivered);
	assert_int_equal(conn_send(&d, msg, sizeof(msg) - 1), 0);
	FX_WAIT(metrics_value(conn_rt.m.connect_failures + CFG_TRANSPORT_TLS) == fail0 + 1);
	assert_int_equal(metrics_value(conn_rt.m.connect_failures + CFG_TRANSPORT_TLS), fail0 + 1);
	usleep(100000);
	assert_int_equal(atomic_load(&fx.delivered), before2); /* never sent in clear or unverified */
	rcu_unregister_thread();
	fx_stop();
	tls_ctx_stop();
	free(c);
	free(c2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_trust_garbage_reload),
		cmocka_unit_test(test_require_client_cert),
		cmocka_unit_test(test_outbound_verification),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
