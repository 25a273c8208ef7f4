/* test_stream_cfg.c - SPEC §9 configuration: listen URLs of every transport,
 * the tls.* and tcp.* keys, their defaults and their FILE:LINE errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cfg.h"
#include "tls_fixture.h"

static char dir[64];
static unsigned seq;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/referee-test-scfg-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return tls_fixture_make(dir);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct cfg *load(const char *text, char *err, size_t errlen)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/s%u.yaml", dir, seq++);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("domains: [example.com]\nstore: {file: users.yaml}\n", f);
	fputs(text, f);
	fclose(f);
	return cfg_load(path, err, errlen);
}

static void test_url_parse(void **state)
{
	(void)state;
	struct cfg_addr a;
	assert_null(cfg_url_explain("tcp://127.0.0.1:5060", &a));
	assert_int_equal(a.transport, CFG_TRANSPORT_TCP);
	assert_string_equal(a.text, "127.0.0.1:5060");
	assert_null(cfg_url_explain("TLS://[::1]:5061", &a));
	assert_int_equal(a.transport, CFG_TRANSPORT_TLS);
	assert_string_equal(a.text, "[::1]:5061");
	assert_null(cfg_url_explain("udp://10.0.0.1:1", &a));
	assert_int_equal(a.transport, CFG_TRANSPORT_UDP);
	assert_non_null(cfg_url_explain("sctp://10.0.0.1:1", &a));
	assert_non_null(cfg_url_explain("tcp:/10.0.0.1:1", &a));
	assert_non_null(cfg_url_explain("tcp://host.example:5060", &a));
	assert_non_null(cfg_url_explain("tls://10.0.0.1", &a));
	assert_string_equal(cfg_transport_name(CFG_TRANSPORT_TLS), "tls");
}

static void test_mixed_listen_and_defaults(void **state)
{
	(void)state;
	char err[512];
	struct cfg *c = load("listen: [udp://127.0.0.1:5060, tcp://127.0.0.1:5060, tls://127.0.0.1:5061]\n"
			     "tls: {certificate: server.pem, private_key: server.key}\n"
			     "routes: {local: tcp://127.0.0.1:5080}\n",
			     err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->n_listen, 3);
	assert_int_equal(c->listen[1].transport, CFG_TRANSPORT_TCP);
	assert_int_equal(c->listen[2].transport, CFG_TRANSPORT_TLS);
	assert_true(cfg_has_transport(c, CFG_TRANSPORT_TLS));
	assert_int_equal(c->routes.local.d[0].transport, CFG_TRANSPORT_TCP);
	assert_int_equal(c->tls.verify_client, CFG_TLS_VERIFY_NONE);
	assert_int_equal(c->tcp.max_connections, 16384);
	assert_int_equal(c->tcp.max_per_source, 64);
	assert_int_equal(c->tcp.idle_timeout, 600);
	assert_int_equal(c->tcp.read_timeout, 10);
	assert_int_equal(c->tcp.max_message, 65535);
	cfg_free(c);
}

static void test_errors(void **state)
{
	(void)state;
	char open_key[160];
	snprintf(open_key, sizeof(open_key), "%s/open.key", dir);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp '%s/server.key' '%s'", dir, open_key);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(chmod(open_key, 0644), 0);
	static const struct {
		const char *text;
		const char *want; /* after "FILE:" */
	} cases[] = {
		{ "listen: [tls://127.0.0.1:5061]\n", "3: a tls:// listen address needs tls.certificate" },
		{ "listen: [tcp://127.0.0.1:5061, tcp://127.0.0.1:5061]\n", "3: listen: 'tcp://127.0.0.1:5061' is listed twice" },
		{ "listen: [sctp://127.0.0.1:5061]\n", "3: listen: bad address 'sctp://127.0.0.1:5061': must start with udp://, tcp:// or tls://" },
		{ "listen: [tls://127.0.0.1:5061]\ntls:\n  certificate: server.pem\n  private_key: open.key\n",
		  "6: tls.private_key: " },
		{ "listen: [tls://127.0.0.1:5061]\ntls:\n  certificate: client.pem\n  private_key: server.key\n",
		  "6: tls.private_key: does not match tls.certificate" },
		{ "listen: [tls://127.0.0.1:5061]\ntls:\n  certificate: nothere.pem\n  private_key: server.key\n",
		  "5: tls.certificate: " },
		{ "listen: [tls://127.0.0.1:5061]\ntls:\n  certificate: server.pem\n  private_key: server.key\n"
		  "  verify_client: require\n",
		  "7: tls.verify_client require needs tls.ca_file" },
		{ "listen: [tls://127.0.0.1:5061]\ntls:\n  certificate: server.pem\n  private_key: server.key\n"
		  "  ca_file: ca.pem\n  trusted_names: [a.example]\n",
		  "8: tls.trusted_names needs tls.verify_client" },
		{ "listen: [udp://127.0.0.1:5061]\ntls: {verify_client: sometimes}\n",
		  "4: tls.verify_client: 'sometimes' is not one of none|optional|require" },
		{ "listen: [udp://127.0.0.1:5061]\nroutes:\n  local: tls://127.0.0.1:5061\n",
		  "5: routes.local: a TLS next hop needs a host name" },
		{ "listen: [udp://127.0.0.1:5061]\ntcp:\n  max_connections: 10\n  max_per_source: 11\n",
		  "6: tcp.max_per_source (11) is larger than tcp.max_connections (10)" },
		{ "listen: [udp://127.0.0.1:5061]\ntcp: {max_message: 100}\n",
		  "4: tcp.max_message: 100 is out of range 512..65535" },
		{ "listen: [udp://127.0.0.1:5061]\ntcp: {idle: 1}\n", "4: unknown key 'tcp.idle'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512];
		struct cfg *c = load(cases[i].text, err, sizeof(err));
		if (c) {
			cfg_free(c);
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		}
		const char *colon = strstr(err, ".yaml:");
		if (!colon || strncmp(colon + 6, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got '%s', want ':%s'", i, err, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_mixed_listen_and_defaults),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
