/* test_cfg.c - the configuration loader (core/cfg.c, core/cfg_keys.c; SPEC §7):
 * a full config round-trips into struct cfg, defaults apply, a table of bad
 * configs each fails with the exact "file:LINE:" and a meaningful message,
 * address/CIDR parsing and matching, packaging/referee.yaml loads, and
 * packaging/CONFIG.md and README.md hold the table rendered from the key tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "cfg_priv.h"
#include "tls_fixture.h"

static char tmp_dir[64];

/* source_dir - the tree whose packaging/ and README.md are checked:
 * $REFEREE_SOURCE_DIR (ctest sets it), else the tree this test was built from. */
static const char *source_dir(void)
{
	const char *d = getenv("REFEREE_SOURCE_DIR");
	return d && *d ? d : REFEREE_TEST_SOURCE_DIR;
}
static unsigned tmp_seq;

static int group_setup(void **state)
{
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/referee-test-cfg-XXXXXX");
	return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* conf_write - a new file in the temp folder holding @text; path into @path. */
static void conf_write(const char *text, char *path, size_t size)
{
	snprintf(path, size, "%s/c%u.yaml", tmp_dir, tmp_seq++);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* clang-format off */
static const char full_conf[] =
	"# every key\n"                                   /* 1 */
	"listen:\n"                                       /* 2 */
	"  - udp://127.0.0.1:5060\n"                      /* 3 */
	"  - udp://[::1]:5070\n"                          /* 4 */
	"domains: [Example.COM, pbx.example.com]\n"       /* 5 */
	"realm: Example Realm\n"                          /* 6 */
	"secret_file: keys/referee.secret\n"              /* 7 */
	"threads: {receivers: 4,\n"                       /* 8 */
	"  workers: 32,\n"                                /* 9 */
	"  inline_receive: false}\n"                      /* 10 */
	"routes:\n"                                       /* 11 */
	"  local: udp://10.0.0.1:5080\n"                  /* 12 */
	"  outbound: \"udp://[2001:db8::1]:5090\"\n"      /* 13 */
	"trusted: [10.0.0.0/8, 192.0.2.1, \"2001:db8::/32\", \"::ffff:172.16.0.0/108\"]\n"
	"store: {backend: redis,\n"                       /* 15 */
	"  file: /etc/referee/users.yaml,\n"              /* 16 */
	"  redis: \"redis://127.0.0.1:6379/2\",\n"        /* 17 */
	"  cache_max_age: 30, cache_max_entries: 5000,\n" /* 18 */
	"  marks_max_entries: 4096,\n"                    /* 19 */
	"  max_inflight: 512}\n"                          /* 20 */
	"auth:\n"                                         /* 21 */
	"  algorithms: [MD5]\n"                           /* 22 */
	"  nonce_ttl: 600\n"                              /* 23 */
	"  check_uri: yes\n"                              /* 24 */
	"  challenge_local_from: no\n"                    /* 25 */
	"  failure_limit: {count: 5, window: 120}\n"      /* 26 */
	"rules:\n"                                        /* 27 */
	"  - hosts: [example.com]\n"                      /* 28 */
	"    users: [\"[2-9]xxxxxx\"]\n"                  /* 29 */
	"    permissions: [LocalDialing]\n"               /* 30 */
	"  - hosts: [\"*.example.com\", 10.0.0.0/8]\n"    /* 31 */
	"    users: [\"011.\", \"re:^00[1-9]\"]\n"        /* 32 */
	"    permissions: [InternationalDialing, LongDistanceDialing]\n"
	"  -\n"                                           /* 34 */
	"    hosts: [example.com]\n"                      /* 35 */
	"    users: [.]\n"                                /* 36 */
	"    permissions: []\n"                           /* 37 */
	"transfer:\n"                                     /* 38 */
	"  identity: sipx\n"                              /* 39 */
	"  check_at_refer: false\n"                       /* 40 */
	"  grant_ttl: 30\n"                               /* 41 */
	"  sipx_validity: 600\n"                          /* 42 */
	"metrics:\n"                                      /* 43 */
	"  listen: 127.0.0.1:9090\n"                      /* 44 */
	"log_level: debug\n"                              /* 45 */
	"tls: {certificate: server.pem, private_key: server.key, ca_file: ca.pem,\n"
	"  verify_client: optional, trusted_names: [Client.test]}\n" /* 47 */
	"tcp: {max_connections: 100, max_per_source: 10, idle_timeout: 60,\n"
	"  read_timeout: 5, max_message: 4096}\n"        /* 49 */
	"health: {interval: 5, failures: 2, successes: 4}\n" /* 50 */
	"load_balancers: [192.0.2.200/31]\n"              /* 51 */
	"dns: {servers: [127.0.0.1, \"[::1]:5353\"], negative_ttl: 7}\n" /* 52 */
	"limits: {source_rate: {rate: 50, burst: 100}, sources_max: 1000}\n";
/* clang-format on */

/* keys_all_in - every key of @sec (and its subsections) is written in @text. */
static void keys_all_in(const struct cfg_section *sec, const char *text)
{
	for (size_t i = 0; i < sec->n_keys; i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "%s:", sec->keys[i].name);
		if (!strstr(text, needle))
			fail_msg("full_conf lacks key '%s' of section '%s'", sec->keys[i].name,
				 sec->name);
		if (sec->keys[i].sub)
			keys_all_in(sec->keys[i].sub, text);
	}
}

static void test_full_config(void **state)
{
	keys_all_in(&cfg_root_section, full_conf);
	assert_int_equal(tls_fixture_make(tmp_dir), 0); /* the files tls.* name */
	char path[128], err[512];
	conf_write(full_conf, path, sizeof(path));
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->path, path);
	/* lines of keys, for errors found after loading (an unreadable secret_file or store.file) */
	assert_int_equal(cfg_key_line(c, "secret_file"), 7);
	assert_int_equal(cfg_key_line(c, "store.file"), 16);
	assert_int_equal(cfg_key_line(c, "routes.local"), 12);
	assert_int_equal(c->n_listen, 2);
	assert_string_equal(c->listen[0].text, "127.0.0.1:5060");
	assert_int_equal(c->listen[0].sa.ss_family, AF_INET);
	assert_int_equal(c->listen[0].salen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&c->listen[0].sa)->sin_port), 5060);
	assert_string_equal(c->listen[1].text, "[::1]:5070");
	assert_int_equal(c->listen[1].sa.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&c->listen[1].sa)->sin6_port), 5070);
	assert_int_equal(c->n_domains, 2);
	assert_string_equal(c->domains[0], "example.com");
	assert_string_equal(c->domains[1], "pbx.example.com");
	assert_string_equal(c->realm, "Example Realm");
	char want[256];
	snprintf(want, sizeof(want), "%s/keys/referee.secret", tmp_dir);
	assert_string_equal(c->secret_file, want);
	assert_int_equal(c->threads.receivers, 4);
	assert_int_equal(c->threads.workers, 32);
	assert_true(c->routes.local.n == 1 && c->routes.outbound.n == 1);
	assert_string_equal(c->routes.local.d[0].addr.text, "10.0.0.1:5080");
	assert_string_equal(c->routes.outbound.d[0].addr.text, "[2001:db8::1]:5090");
	assert_int_equal(c->n_trusted, 4);
	assert_int_equal(c->trusted[0].family, AF_INET);
	assert_int_equal(c->trusted[0].prefix, 8);
	assert_int_equal(c->trusted[1].prefix, 32);
	assert_int_equal(c->trusted[2].family, AF_INET6);
	assert_int_equal(c->trusted[2].prefix, 32);
	assert_int_equal(c->trusted[3].family, AF_INET); /* v4-mapped stored as IPv4 */
	assert_int_equal(c->trusted[3].prefix, 12);
	assert_int_equal(c->store.backend, CFG_STORE_REDIS);
	assert_string_equal(c->store.file, "/etc/referee/users.yaml");
	assert_string_equal(c->store.redis, "redis://127.0.0.1:6379/2");
	assert_int_equal(c->store.cache_max_age, 30);
	assert_int_equal(c->store.max_inflight, 512);
	assert_int_equal(c->store.cache_max_entries, 5000);
	assert_int_equal(c->store.marks_max_entries, 4096);
	assert_int_equal(c->limits.source_rate.rate, 50);
	assert_int_equal(c->limits.source_rate.burst, 100);
	assert_int_equal(c->limits.sources_max, 1000);
	assert_int_equal(c->auth.n_algorithms, 1);
	assert_int_equal(c->auth.algorithms[0], CFG_ALGO_MD5);
	assert_int_equal(c->auth.nonce_ttl, 600);
	assert_true(c->auth.check_uri);
	assert_false(c->auth.challenge_local_from);
	assert_int_equal(c->auth.failure_limit.count, 5);
	assert_int_equal(c->auth.failure_limit.window, 120);
	assert_int_equal(c->n_rules, 3);
	assert_int_equal(c->rules[0].line, 28);
	assert_int_equal(c->rules[0].n_hosts, 1);
	assert_string_equal(c->rules[0].hosts[0], "example.com");
	assert_string_equal(c->rules[0].users[0], "[2-9]xxxxxx");
	assert_int_equal(c->rules[0].n_permissions, 1);
	assert_string_equal(c->rules[0].permissions[0], "LocalDialing");
	assert_int_equal(c->rules[1].line, 31);
	assert_int_equal(c->rules[1].n_hosts, 2);
	assert_string_equal(c->rules[1].hosts[1], "10.0.0.0/8");
	assert_int_equal(c->rules[1].n_users, 2);
	assert_string_equal(c->rules[1].users[1], "re:^00[1-9]");
	assert_int_equal(c->rules[1].n_permissions, 2);
	assert_string_equal(c->rules[1].permissions[1], "LongDistanceDialing");
	assert_int_equal(c->rules[2].line, 35);
	assert_int_equal(c->rules[2].n_permissions, 0);
	assert_string_equal(c->rules[2].users[0], ".");
	assert_int_equal(c->transfer.identity, CFG_TRANSFER_SIPX);
	assert_false(c->transfer.check_at_refer);
	assert_int_equal(c->transfer.grant_ttl, 30);
	assert_int_equal(c->transfer.sipx_validity, 600);
	assert_true(c->metrics.enabled);
	assert_string_equal(c->metrics.listen.text, "127.0.0.1:9090");
	assert_int_equal(c->log_level, CFG_LOG_DEBUG);
	assert_int_equal(c->tls.verify_client, CFG_TLS_VERIFY_OPTIONAL);
	assert_int_equal(c->tls.n_trusted_names, 1);
	assert_string_equal(c->tls.trusted_names[0], "client.test");
	assert_int_equal(c->tcp.max_connections, 100);
	assert_int_equal(c->tcp.max_message, 4096);
	assert_int_equal(c->health.interval, 5);
	assert_int_equal(c->health.failures, 2);
	assert_int_equal(c->health.successes, 4);
	assert_int_equal(c->n_load_balancers, 1);
	assert_int_equal(c->load_balancers[0].prefix, 31);
	assert_int_equal(c->dns.n_servers, 2);
	assert_string_equal(c->dns.servers[1], "[::1]:5353");
	assert_int_equal(c->dns.negative_ttl, 7);
	cfg_free(c);
}

static void test_defaults(void **state)
{
	char path[128], err[512];
	conf_write("listen: [udp://192.0.2.1:5060]\ndomains: [B.example.org, a.example.org]\n"
		   "store: {file: users.yaml}\n",
		   path, sizeof(path));
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->realm, "b.example.org");
	assert_string_equal(c->secret_file, "");
	assert_int_equal(cfg_key_line(c, "store.file"), 3);
	assert_int_equal(cfg_key_line(c, "secret_file"), 0); /* not written */
	assert_int_equal(c->threads.receivers, 2);
	assert_int_equal(c->threads.workers, 2);
	assert_int_equal(c->routes.local.n, 0);
	assert_int_equal(c->routes.outbound.n, 0);
	assert_int_equal(c->health.interval, 10);
	assert_int_equal(c->health.failures, 3);
	assert_int_equal(c->health.successes, 2);
	assert_int_equal(c->n_trusted, 0);
	assert_int_equal(c->store.backend, CFG_STORE_FILE);
	char want[256];
	snprintf(want, sizeof(want), "%s/users.yaml", tmp_dir);
	assert_string_equal(c->store.file, want);
	assert_int_equal(c->store.cache_max_age, 60);
	assert_int_equal(c->store.max_inflight, 1024);
	assert_int_equal(c->store.cache_max_entries, 100000);
	assert_int_equal(c->store.marks_max_entries, 2000000);
	assert_int_equal(c->limits.source_rate.rate, 200);
	assert_int_equal(c->limits.source_rate.burst, 400);
	assert_int_equal(c->limits.sources_max, 100000);
	assert_int_equal(c->auth.n_algorithms, 2);
	assert_int_equal(c->auth.algorithms[0], CFG_ALGO_SHA256);
	assert_int_equal(c->auth.algorithms[1], CFG_ALGO_MD5);
	assert_int_equal(c->auth.nonce_ttl, 300);
	assert_false(c->auth.check_uri);
	assert_true(c->auth.challenge_local_from);
	assert_int_equal(c->auth.failure_limit.count, 20);
	assert_int_equal(c->auth.failure_limit.window, 60);
	assert_int_equal(c->n_rules, 0);
	assert_null(c->rules);
	assert_int_equal(c->transfer.identity, CFG_TRANSFER_GRANT);
	assert_true(c->transfer.check_at_refer);
	assert_int_equal(c->transfer.grant_ttl, 60);
	assert_int_equal(c->transfer.sipx_validity, 300);
	assert_false(c->metrics.enabled);
	assert_int_equal(c->log_level, CFG_LOG_INFO);
	cfg_free(c);
}

static void test_aliases(void **state)
{
	char path[128], err[512];
	conf_write("listen: [udp://127.0.0.1:5060]\ndomains: &d [example.com]\n"
		   "store: {file: u}\n"
		   "rules:\n"
		   "  - {hosts: *d, users: [\"[2-9]xxxxxx\"], permissions: &p [LocalDialing]}\n"
		   "  - {hosts: *d, users: [\"011.\"], permissions: *p}\n",
		   path, sizeof(path));
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->n_rules, 2);
	assert_int_equal(c->rules[0].line, 5);
	assert_int_equal(c->rules[1].line, 6);
	assert_string_equal(c->rules[1].hosts[0], "example.com");
	assert_string_equal(c->rules[1].permissions[0], "LocalDialing");
	cfg_free(c);
}

/* Lines 1-3 of most bad configs: valid on their own. */
#define BASE "listen: [udp://127.0.0.1:5060]\ndomains: [example.com]\nstore: {file: u.yaml}\n"

struct bad_conf {
	const char *text;
	unsigned line;
	const char *message; /* must appear after "file:LINE: " */
};

/* clang-format off */
static const struct bad_conf bad_confs[] = {
	{ "", 1, "empty configuration" },
	{ "- listen\n", 1, "expected a mapping" },
	{ "listen: [udp://1.2.3.4:5060\ndomains: [a]\n", 2, "YAML syntax error" },
	{ BASE "log_level: info\n---\nlisten: []\n", 6, "only one YAML document" },
	{ BASE "listen_port: 5060\n", 4, "unknown key 'listen_port'" },
	{ BASE "auth:\n  nonce_tl: 30\n", 5, "unknown key 'auth.nonce_tl'" },
	{ BASE "auth:\n  failure_limit:\n    counts: 3\n", 6, "unknown key 'auth.failure_limit.counts'" },
	{ BASE "domains: [b.com]\n", 4, "duplicate key 'domains' (first at line 2)" },
	{ BASE "auth:\n  nonce_ttl: 30\n  check_uri: true\n  nonce_ttl: 40\n", 7,
	  "duplicate key 'auth.nonce_ttl' (first at line 5)" },
	{ "domains: [a.com]\nstore: {file: u}\n", 1, "missing required key 'listen'" },
	{ "\n\nlisten: [udp://127.0.0.1:5060]\nstore: {file: u}\n", 3,
	  "missing required key 'domains'" },
	{ "listen: udp://127.0.0.1:5060\ndomains: [a.com]\nstore: {file: u}\n", 1,
	  "listen: expected a list, got a single value" },
	{ "listen: []\ndomains: [a.com]\nstore: {file: u}\n", 1, "listen: must not be empty" },
	{ "listen: [udp://0.0.0.0:5060]\ndomains: [a.com]\nstore: {file: u}\n", 1, "is a wildcard address" },
	{ "listen: [\"udp://[::]:5060\"]\ndomains: [a.com]\nstore: {file: u}\n", 1, "is a wildcard address" },
	{ "listen:\n  - udp://localhost:5060\ndomains: [a.com]\n", 2, "not a name" },
	{ "listen:\n  - 127.0.0.1:5060\n", 2, "must start with udp://" },
	{ "listen:\n  - udp://127.0.0.1:0\n", 2, "port must be a number 1..65535" },
	{ "listen:\n  - udp://127.0.0.1:65536\n", 2, "port must be a number 1..65535" },
	{ "listen:\n  - udp://127.0.0.1\n", 2, "needs a port" },
	{ "listen:\n  - udp://::1:5060\n", 2, "IPv6 addresses need brackets" },
	{ "listen:\n  - udp://[::1]\n", 2, "needs a port" },
	{ "listen:\n  - udp://[::g]:5060\n", 2, "bad IPv6 address" },
	{ "listen:\n  - udp://127.0.0.1:5060\n  - udp://127.0.0.1:5060\n", 3, "listed twice" },
	{ "listen: [udp://1.1.1.1:1, udp://1.1.1.1:2, udp://1.1.1.1:3, udp://1.1.1.1:4,\n"
	  "  udp://1.1.1.1:5, udp://1.1.1.1:6, udp://1.1.1.1:7, udp://1.1.1.1:8,\n"
	  "  udp://1.1.1.1:9]\n",
	  3, "listen: too many entries (at most 8)" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [example.com:5060]\n", 2, "not a domain name" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com, A.COM]\n", 2, "listed twice" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: a.com\n", 2, "domains: expected a list" },
	{ BASE "realm:\n", 4, "realm: has no value" },
	{ BASE "realm: 'a\"b'\n", 4, "printable ASCII" },
	{ BASE "realm: \"\"\n", 4, "realm: must not be an empty string" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com, '']\n", 2, "domains: must not be an empty" },
	{ BASE "store:\n  file: ''\n", 4, "duplicate key 'store'" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\nstore:\n  file: ''\n", 4,
	  "store.file: must not be an empty string" },
	{ BASE "rules:\n  - hosts: [a.com]\n    users: ['']\n    permissions: []\n", 6,
	  "rules[0].users: must not be an empty string" },
	{ BASE "auth:\n  nonce_ttl: 9\n", 5, "auth.nonce_ttl: 9 is out of range 10..86400" },
	{ BASE "threads:\n  workers: 1.5\n", 5, "'1.5' is not a whole number" },
	{ BASE "listen: &l [udp://127.0.0.1:5061]\n", 4, "duplicate key 'listen' (first at line 1)" },
	{ BASE "secret_file: [a, b]\n", 4, "secret_file: expected a path, got a list" },
	{ BASE "threads: 4\n", 4, "threads: expected a mapping" },
	{ BASE "threads:\n  workers: 33\n", 5, "threads.workers: 33 is out of range 1..32" },
	{ BASE "threads:\n  receivers: 0\n", 5, "threads.receivers: 0 is out of range 1..32" },
	{ BASE "threads:\n  receivers: 2\n  workers: 3\n  inline_receive: true\n", 7,
	  "threads.inline_receive needs as many receivers as workers" },
	{ BASE "threads:\n  workers: two\n", 5, "'two' is not a whole number" },
	{ BASE "threads:\n  workers: -1\n", 5, "'-1' is not a whole number" },
	{ BASE "threads:\n  workers: \"4\"\n", 5, "is not a whole number" },
	{ BASE "auth:\n  nonce_ttl: 99999999999\n", 5, "auth.nonce_ttl: '99999999999' is not a whole" },
	{ BASE "routes:\n  local: udp://example.net:5060\n", 5, "routes.local: bad destination" },
	{ BASE "trusted: 10.0.0.0/8\n", 4, "trusted: expected a list" },
	{ BASE "trusted: [10.0.0.0/33]\n", 4, "prefix must be 0..32" },
	{ BASE "trusted:\n  - 10.1.0.0/8\n", 5, "bits set past the prefix" },
	{ BASE "trusted:\n  - 10.0.0.0/8\n  - gateway\n", 6, "bad CIDR 'gateway'" },
	{ BASE "trusted:\n  - \"2001:db8::/129\"\n", 5, "prefix must be 0..128" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\n", 1,
	  "store.file (the users file) is required" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\nstore:\n  backend: redis\n", 4,
	  "store.redis is required" },
	{ BASE "store:\n  backend: mysql\n", 4, "duplicate key 'store'" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\nstore:\n  backend: mysql\n", 4,
	  "store.backend: 'mysql' is not one of file|redis" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\nstore:\n  backend: redis\n"
	  "  redis: redis://127.0.0.1:0\n",
	  5, "has a bad port (1..65535)" },
	{ "listen: [udp://127.0.0.1:5060]\ndomains: [a.com]\nstore:\n  backend: redis\n"
	  "  redis: redis://db.local:6379/999\n",
	  5, "has a bad database number (0..255)" },
	{ BASE "auth:\n  algorithms: [MD5, md5]\n", 5, "auth.algorithms: 'MD5' is listed twice" },
	{ BASE "auth:\n  algorithms: [SHA-1]\n", 5, "'SHA-1' is not one of SHA-256|MD5" },
	{ BASE "auth:\n  algorithms: []\n", 5, "auth.algorithms: must not be empty" },
	{ BASE "auth:\n  check_uri: maybe\n", 5, "auth.check_uri: 'maybe' is not a boolean" },
	{ BASE "auth:\n  check_uri: \"true\"\n", 5, "is not a boolean" },
	{ BASE "auth:\n  failure_limit: {count: 0}\n", 5, "auth.failure_limit.count: 0 is out of range" },
	{ BASE "rules: {hosts: [a]}\n", 4, "rules: expected a list" },
	{ BASE "rules:\n  - example.com\n", 5, "rules[0]: expected a mapping" },
	{ BASE "rules:\n  - hosts: [a.com]\n    users: [.]\n    permissions: []\n"
	       "  - users: [.]\n    permissions: []\n",
	  8, "rules[1]: missing required key 'hosts'" },
	{ BASE "rules:\n  - hosts: [a.com]\n    users: [.]\n", 5,
	  "rules[0]: missing required key 'permissions'" },
	{ BASE "rules:\n  - hosts: []\n    users: [.]\n    permissions: []\n", 5,
	  "rules[0].hosts: must not be empty" },
	{ BASE "rules:\n  - hosts: a.com\n", 5, "rules[0].hosts: expected a list" },
	{ BASE "rules:\n  - hosts: [a.com]\n    users: [.]\n    permissions: [Local Dialing]\n", 7,
	  "is not a permission name" },
	{ BASE "rules:\n  - hosts: [a.com]\n    users: [.]\n    permissions: []\n    perms: []\n", 8,
	  "unknown key 'rules[0].perms'" },
	{ BASE "transfer:\n  identity: jwt\n", 5, "transfer.identity: 'jwt' is not one of grant|sipx" },
	{ BASE "transfer:\n  grant_ttl: 3601\n", 5, "transfer.grant_ttl: 3601 is out of range 1..3600" },
	{ BASE "metrics:\n  listen: udp://127.0.0.1:9090\n", 5, "takes no scheme" },
	{ BASE "metrics:\n  listen: 9090\n", 5, "metrics.listen: bad address" },
	{ BASE "log_level: verbose\n", 4, "log_level: 'verbose' is not one of error|warn|info|debug" },
	{ BASE "? [a, b]\n: 1\n", 4, "keys must be plain words" },
};
/* clang-format on */

static void test_bad_configs(void **state)
{
	for (size_t i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
		const struct bad_conf *b = &bad_confs[i];
		char path[128], err[512], prefix[160];
		conf_write(b->text, path, sizeof(path));
		memset(err, 'x', sizeof(err));
		struct cfg *c = cfg_load(path, err, sizeof(err));
		if (c) {
			cfg_free(c);
			fail_msg("bad config #%zu loaded:\n%s", i, b->text);
		}
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, b->line);
		if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, b->message))
			fail_msg("bad config #%zu: want '%s...%s', got '%s'", i, prefix, b->message,
				 err);
	}
}

static void test_missing_file(void **state)
{
	char path[128], err[256];
	snprintf(path, sizeof(path), "%s/absent.yaml", tmp_dir);
	assert_null(cfg_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "absent.yaml:1: cannot open"));
	assert_null(cfg_load(path, NULL, 0)); /* no error buffer: still fails cleanly */
}

static void test_addr_parse(void **state)
{
	struct cfg_addr a;
	assert_int_equal(cfg_addr_parse("udp://192.0.2.1:5060", true, &a), 0);
	assert_string_equal(a.text, "192.0.2.1:5060");
	assert_int_equal(cfg_addr_parse("UDP://[2001:db8::5]:1", true, &a), 0);
	assert_int_equal(a.sa.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.sa)->sin6_port), 1);
	assert_int_equal(cfg_addr_parse("127.0.0.1:65535", false, &a), 0);
	assert_int_equal(cfg_addr_parse("127.0.0.1:65535", true, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("udp://127.0.0.1:5060", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("sctp://127.0.0.1:5060", true, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("127.1:5060", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("127.0.0.1:+5060", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("127.0.0.1:5060x", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("[::1]x5060", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse(":5060", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("", false, &a), -EINVAL);
	assert_int_equal(cfg_addr_parse("[]:5060", false, &a), -EINVAL);
}

static struct sockaddr_storage sa_make(const char *ip)
{
	struct sockaddr_storage ss = {0};
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static bool cidr_has(const char *cidr, const char *ip)
{
	struct cfg_cidr c;
	assert_int_equal(cfg_cidr_parse(cidr, &c), 0);
	struct sockaddr_storage ss = sa_make(ip);
	return cfg_cidr_match(&c, (struct sockaddr *)&ss);
}

static void test_cidr(void **state)
{
	struct cfg_cidr c;
	assert_int_equal(cfg_cidr_parse("192.0.2.1", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(cfg_cidr_parse("::1", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(cfg_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(cfg_cidr_parse("10.0.0.0/8/8", &c), -EINVAL);
	assert_int_equal(cfg_cidr_parse("10.0.0.0/", &c), -EINVAL);
	assert_int_equal(cfg_cidr_parse("10.0.0.1/31", &c), -EINVAL);
	assert_int_equal(cfg_cidr_parse("/8", &c), -EINVAL);
	assert_int_equal(cfg_cidr_parse("example.com", &c), -EINVAL);

	assert_true(cidr_has("10.0.0.0/8", "10.255.1.2"));
	assert_false(cidr_has("10.0.0.0/8", "11.0.0.1"));
	assert_true(cidr_has("192.168.0.0/23", "192.168.1.200"));
	assert_false(cidr_has("192.168.0.0/23", "192.168.2.1"));
	assert_true(cidr_has("0.0.0.0/0", "203.0.113.9"));
	assert_false(cidr_has("0.0.0.0/0", "2001:db8::1"));
	assert_true(cidr_has("192.0.2.1", "192.0.2.1"));
	assert_false(cidr_has("192.0.2.1", "192.0.2.2"));
	/* An IPv4-mapped IPv6 source (dual-stack socket) matches IPv4 CIDRs. */
	assert_true(cidr_has("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_false(cidr_has("10.0.0.0/8", "::ffff:11.1.2.3"));
	assert_true(cidr_has("::ffff:10.0.0.0/104", "10.9.9.9"));
	assert_true(cidr_has("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(cidr_has("2001:db8::/33", "2001:db8:8000::1"));
	assert_false(cidr_has("2001:db8::/32", "10.0.0.1"));
	assert_true(cidr_has("::/0", "::1"));
}

static void test_predicates(void **state)
{
	char path[128], err[512];
	conf_write("listen: [udp://127.0.0.1:5060]\ndomains: [Example.com, voip.example.net]\n"
		   "trusted: [192.0.2.0/24, \"2001:db8::1\"]\nstore: {file: u}\n",
		   path, sizeof(path));
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	/* The host is packet bytes: only len bytes may be read. */
	const char pkt[] = "EXAMPLE.COM:5060";
	assert_true(cfg_is_our_domain(c, pkt, 11));
	assert_false(cfg_is_our_domain(c, pkt, 10));
	assert_false(cfg_is_our_domain(c, pkt, 12));
	assert_true(cfg_is_our_domain(c, "voip.example.net", 16));
	assert_false(cfg_is_our_domain(c, "example.net", 11));
	assert_false(cfg_is_our_domain(c, "", 0));
	struct sockaddr_storage in = sa_make("192.0.2.77"), out = sa_make("198.51.100.1");
	struct sockaddr_storage in6 = sa_make("2001:db8::1"), mapped = sa_make("::ffff:192.0.2.5");
	assert_true(cfg_is_trusted(c, (struct sockaddr *)&in));
	assert_false(cfg_is_trusted(c, (struct sockaddr *)&out));
	assert_true(cfg_is_trusted(c, (struct sockaddr *)&in6));
	assert_true(cfg_is_trusted(c, (struct sockaddr *)&mapped));
	cfg_free(c);
	cfg_free(NULL);
}

/* The embedded default must pass the loader (what `referee --check` runs first). */
static void test_default_file(void **state)
{
	const char *src = source_dir();
	char path[4096], err[512], want[4200];
	snprintf(path, sizeof(path), "%s/packaging/referee.yaml", src);
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->listen[0].text, "127.0.0.1:5060");
	assert_string_equal(c->domains[0], "example.com");
	assert_string_equal(c->realm, "example.com");
	assert_int_equal(c->store.backend, CFG_STORE_FILE);
	snprintf(want, sizeof(want), "%s/packaging/users.yaml", src);
	assert_string_equal(c->store.file, want);
	assert_int_equal(access(c->store.file, R_OK), 0);
	assert_string_equal(c->routes.local.d[0].addr.text, "127.0.0.1:5080");
	assert_string_equal(c->routes.outbound.d[0].addr.text, "127.0.0.1:5090");
	assert_true(c->n_rules >= 2);
	assert_string_equal(c->rules[0].permissions[0], "LocalDialing");
	assert_string_equal(c->rules[1].permissions[0], "InternationalDialing");
	cfg_free(c);
}

/* packaging/CONFIG.md must hold the table rendered from the key tables, so
 * the documentation cannot drift from the loader. REFEREE_CONFIG_MD_OUT=FILE
 * writes the table to FILE (to refresh the document). */
static void test_config_doc(void **state)
{
	char *table = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&table, &len);
	assert_non_null(mem);
	cfg_doc_write(mem);
	assert_int_equal(fclose(mem), 0);
	const char *out = getenv("REFEREE_CONFIG_MD_OUT");
	if (out) {
		FILE *f = fopen(out, "w");
		assert_non_null(f);
		fputs(table, f);
		fclose(f);
	}
	const char *src = source_dir();
	/* the reference lives in packaging/CONFIG.md and in the README */
	static const char *const docs[] = { "packaging/CONFIG.md", "README.md" };
	bool found = true;
	for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", src, docs[d]);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		static char md[131072];
		size_t got = fread(md, 1, sizeof(md) - 1, f);
		md[got] = '\0';
		fclose(f);
		if (len > 500 && strstr(md, table) != NULL)
			continue;
		found = false;
		print_error("%s does not hold the current key table; regenerate it with "
			    "REFEREE_CONFIG_MD_OUT=FILE and paste it:\n%s",
			    docs[d], table);
	}
	free(table);
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_config), cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_bad_configs), cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_addr_parse),	cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_predicates),	cmocka_unit_test(test_default_file),
	    cmocka_unit_test(test_config_doc),	cmocka_unit_test(test_aliases),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
