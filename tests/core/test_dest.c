/* test_dest.c - route destination sets (SPEC §10): the URL forms and their
 * config errors (FILE:LINE), and weighted rendezvous selection: a Call-ID
 * stays on one destination, a destination going down moves only its own
 * share, and the spread follows the weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "dest.h"

static char conf_path[64];

/* load_text - cfg_load of @head followed by @body (written to a temp file). */
static struct cfg *load_text(const char *head, const char *body, char *err, size_t errlen)
{
	snprintf(conf_path, sizeof(conf_path), "/tmp/referee-test-dest-%d.yaml", (int)getpid());
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	fprintf(f, "%s%s", head, body);
	fclose(f);
	struct cfg *c = cfg_load(conf_path, err, errlen);
	unlink(conf_path);
	return c;
}

/* lines 1-3; the routes under test start at line 4 */
#define HEAD_ROUTES "listen: [udp://127.0.0.1:5060]\ndomains: [example.com]\nstore: {file: u.yaml}\n"
/* lines 1-2; the listen list under test starts at line 3 */
#define HEAD_LISTEN "domains: [example.com]\nstore: {file: u.yaml}\n"

static struct cfg *load(const char *routes, char *err, size_t errlen)
{
	return load_text(HEAD_ROUTES, routes, err, errlen);
}

struct bad_case {
	const char *text;
	unsigned line;
	const char *needle;
};

/* every case fails to load with "FILE:LINE: ..." holding its needle */
static void expect_errors(const char *head, const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char err[512], want[96];
		struct cfg *c = load_text(head, cases[i].text, err, sizeof(err));
		if (c)
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		snprintf(want, sizeof(want), "%s:%u: ", conf_path, cases[i].line);
		if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].needle))
			fail_msg("case %zu: got '%s', want line %u and '%s'", i, err, cases[i].line,
				 cases[i].needle);
	}
}

static void test_forms(void **state)
{
	(void)state;
	char err[512];
	struct cfg *c = load("routes:\n"
			     "  local:\n"
			     "    - udp://10.0.0.1:5080\n"
			     "    - {uri: \"sip:10.0.0.2\", weight: 3}\n"
			     "    - sip:pbx.example.com:5070;transport=udp;maddr=10.0.0.3\n"
			     "    - \"sip:[2001:db8::7]:5062\"\n"
			     "  outbound: {uri: udp://192.0.2.9:5090}\n",
			     err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	const struct cfg_destset *l = &c->routes.local;
	assert_int_equal(l->n, 4);
	assert_false(l->same_weights);
	assert_string_equal(l->d[0].addr.text, "10.0.0.1:5080");
	assert_int_equal(l->d[0].weight, 1);
	assert_string_equal(l->d[1].host, "10.0.0.2");
	assert_int_equal(l->d[1].port, 5060); /* default port */
	assert_false(l->d[1].has_port);
	assert_int_equal(l->d[1].weight, 3);
	assert_string_equal(l->d[2].host, "pbx.example.com"); /* the name TLS would verify */
	assert_string_equal(l->d[2].addr.text, "10.0.0.3:5070"); /* maddr: where to send */
	assert_string_equal(l->d[3].addr.text, "[2001:db8::7]:5062");
	assert_int_equal(l->d[3].addr.sa.ss_family, AF_INET6);
	assert_int_equal(c->routes.outbound.n, 1);
	assert_true(c->routes.outbound.same_weights);
	assert_string_equal(c->routes.outbound.d[0].uri, "udp://192.0.2.9:5090");
	assert_int_not_equal(l->id, c->routes.outbound.id);
	cfg_free(c);

	/* transports are parsed and kept (issue 10 sends over them) */
	struct cfg_dest d;
	assert_null(cfg_dest_explain("sips:10.0.0.5", &d));
	assert_int_equal(d.transport, CFG_TRANSPORT_TLS);
	assert_int_equal(d.port, 5061);
	assert_null(cfg_dest_explain("sip:sbc.example.net;transport=tcp;maddr=10.0.0.6", &d));
	assert_int_equal(d.transport, CFG_TRANSPORT_TCP);
	assert_string_equal(d.addr.text, "10.0.0.6:5060");
	assert_null(cfg_dest_explain("SIP:10.0.0.5;transport=TLS", &d));
	assert_int_equal(d.transport, CFG_TRANSPORT_TLS);
	assert_int_equal(d.port, 5061);
	/* a name without maddr: resolved per RFC 3263, no address yet */
	assert_null(cfg_dest_explain("sip:PBX.example.com", &d));
	assert_false(d.has_addr);
	assert_false(d.has_port);
	assert_string_equal(d.host, "PBX.example.com");
	assert_non_null(cfg_dest_explain("sips:10.0.0.5;transport=udp", &d));
	assert_non_null(cfg_dest_explain("sip:alice@10.0.0.5", &d));
	assert_non_null(cfg_dest_explain("sip:10.0.0.5:0", &d));
	assert_non_null(cfg_dest_explain("sip:10.0.0.5;foo=bar", &d));
	assert_non_null(cfg_dest_explain("sip:10.0.0.5;maddr=pbx", &d));
	assert_non_null(cfg_dest_explain("sip:::1", &d));
	assert_null(cfg_dest_explain("tcp://10.0.0.5:5060", &d)); /* stream's URL forms */
	assert_int_equal(d.transport, CFG_TRANSPORT_TCP);
	assert_string_equal(d.addr.text, "10.0.0.5:5060");
	assert_non_null(cfg_dest_explain("sctp://10.0.0.5:5060", &d));
}

static void test_errors(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "routes:\n  local: sip:pbx..example.com\n", 5, "bad host name" },
		{ "routes:\n  local: sip:-pbx.example.com\n", 5, "bad host name" },
		{ "routes:\n  local: []\n", 5, "routes.local: must not be empty" },
		{ "routes:\n  local:\n    - udp://10.0.0.1:5080\n    - udp://10.0.0.1:5080\n", 7,
		  "listed twice" },
		{ "routes:\n  local:\n    - {uri: udp://10.0.0.1:5080, weight: 0}\n", 6,
		  "not a weight 1..1000" },
		{ "routes:\n  local:\n    - {uri: udp://10.0.0.1:5080, weight: \"2\"}\n", 6,
		  "not a weight" },
		{ "routes:\n  local:\n    - {url: udp://10.0.0.1:5080}\n", 6, "unknown key 'routes.local.url'" },
		{ "routes:\n  local:\n    - {weight: 2}\n", 6, "missing required key 'uri'" },
		{ "routes:\n  local: sips:10.0.0.1\n", 5, "a TLS next hop needs a host name" },
		{ "routes:\n  local: [udp://10.0.0.2:5060, tls://10.0.0.1:5061]\n", 5, "needs a host name" },
		{ "routes:\n  outbound:\n\n    - udp://10.0.0.1\n", 7, "routes.outbound: bad destination" },
		{ "routes:\n  local: [[udp://10.0.0.1:5080]]\n", 5, "expected a destination URL" },
		{ "health:\n  interval: 3601\n", 5, "out of range 0..3600" },
		{ "health:\n  failures: 0\n", 5, "out of range 1..100" },
		{ "dns:\n  servers: [localhost]\n", 5, "is not IP[:port]" },
		{ "dns:\n  servers: [\"127.0.0.1:0\"]\n", 5, "is not IP[:port]" },
		{ "dns:\n  servers: [\"::1\"]\n", 5, "need brackets" },
		{ "dns:\n  servers: []\n", 5, "must not be empty" },
	};
	expect_errors(HEAD_ROUTES, cases, sizeof(cases) / sizeof(cases[0]));
	/* more than CFG_MAX_DESTS */
	char big[4096] = "routes:\n  local:\n";
	for (unsigned i = 0; i <= CFG_MAX_DESTS; i++) {
		char line[64];
		snprintf(line, sizeof(line), "    - udp://10.0.0.%u:5060\n", i + 1);
		strcat(big, line);
	}
	char err[512];
	assert_null(load(big, err, sizeof(err)));
	assert_non_null(strstr(err, "too many destinations"));
}

/* listen items as {url, advertise} (SPEC §11) */
static void test_listen_advertise(void **state)
{
	(void)state;
	char err[512];
	struct cfg *c = load_text(HEAD_LISTEN,
				  "listen:\n"
				    "  - {url: udp://127.0.0.1:5060, advertise: SIP.Example.COM}\n"
				    "  - udp://127.0.0.1:5070\n"
				    "  - {url: \"udp://[::1]:5080\", advertise: \"[2001:db8::9]:5090\"}\n"
				    "  - {url: udp://127.0.0.1:5090}\n",
				    err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->n_listen, 4);
	assert_true(c->advertise[0].set);
	assert_string_equal(c->advertise[0].text, "SIP.Example.COM");
	assert_string_equal(c->advertise[0].host, "sip.example.com");
	assert_int_equal(c->advertise[0].port, 0);
	assert_false(c->advertise[1].set);
	assert_string_equal(c->listen[2].text, "[::1]:5080");
	assert_string_equal(c->advertise[2].host, "2001:db8::9");
	assert_int_equal(c->advertise[2].port, 5090);
	assert_false(c->advertise[3].set);
	cfg_free(c);
	static const struct bad_case cases[] = {
		{ "listen:\n  - {advertise: lb.example.net}\n", 4, "missing required key 'url'" },
		{ "listen:\n  - {url: udp://127.0.0.1:5060, via: x}\n", 4, "unknown key 'listen.via'" },
		{ "listen:\n  - {url: udp://127.0.0.1:5060, advertise: \"lb:0\"}\n", 4,
		  "port must be a number" },
		{ "listen:\n  - {url: udp://127.0.0.1:5060, advertise: \"2001:db8::1\"}\n", 4,
		  "need brackets" },
		{ "listen:\n  - {url: udp://127.0.0.1:5060, advertise: \"lb example\"}\n", 4,
		  "not HOST[:PORT]" },
		{ "listen:\n  - {url: udp://127.0.0.1:5060,\n     advertise: [a]}\n", 5,
		  "expected HOST[:PORT]" },
		{ "listen:\n  - {url: udp://localhost:5060, advertise: lb}\n", 4, "not a name" },
		{ "listen: [udp://127.0.0.1:5060]\nload_balancers: [lb]\n", 4, "bad CIDR 'lb'" },
	};
	expect_errors(HEAD_LISTEN, cases, sizeof(cases) / sizeof(cases[0]));
}

static void set_make(struct cfg_destset *s, unsigned n, const unsigned *weights)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n; i++) {
		char url[64];
		snprintf(url, sizeof(url), "udp://10.1.0.%u:5060", i + 1);
		assert_int_equal(cfg_destset_add(s, url, weights ? weights[i] : 1), 0);
	}
}

static uint64_t key_of(unsigned i)
{
	char callid[64];
	int n = snprintf(callid, sizeof(callid), "%u-%x@client.example.net", i, i * 2654435761u);
	return dest_key(slice_make(callid, (size_t)n));
}

#define N_KEYS 60000

/* one Call-ID, one destination: the same answer every time and for a copy of the set */
static void test_sticky(void **state)
{
	(void)state;
	struct cfg_destset a, b;
	set_make(&a, 5, NULL);
	set_make(&b, 5, NULL);
	for (unsigned i = 0; i < 2000; i++) {
		const uint64_t k = key_of(i);
		const int d = dest_pick(&a, k, dest_all_up(&a));
		assert_true(d >= 0 && d < 5);
		assert_int_equal(dest_pick(&a, k, dest_all_up(&a)), d);
		assert_int_equal(dest_pick(&b, k, dest_all_up(&b)), d); /* another instance */
	}
	assert_int_equal(dest_pick(&a, key_of(1), 0), DEST_NONE);
}

/* a destination going down moves only the keys it had; coming back, they return */
static void test_down_moves_only_its_share(void **state)
{
	(void)state;
	static const unsigned w[4] = { 1, 2, 3, 4 };
	struct cfg_destset s;
	set_make(&s, 4, w);
	const uint32_t all = dest_all_up(&s), without2 = all & ~(1u << 2);
	unsigned moved = 0, had2 = 0;
	for (unsigned i = 0; i < N_KEYS; i++) {
		const uint64_t k = key_of(i);
		const int before = dest_pick(&s, k, all);
		const int after = dest_pick(&s, k, without2);
		assert_int_not_equal(after, 2);
		if (before == 2) {
			had2++;
			moved++;
		} else {
			assert_int_equal(after, before); /* nobody else moves */
		}
		assert_int_equal(dest_pick(&s, k, all), before);
	}
	/* destination 2 had weight 3 of 10: about 30 % of the keys */
	assert_true(had2 > N_KEYS * 27 / 100 && had2 < N_KEYS * 33 / 100);
	assert_int_equal(moved, had2);
}

static void spread_check(unsigned n, const unsigned *w)
{
	struct cfg_destset s;
	set_make(&s, n, w);
	unsigned count[CFG_MAX_DESTS] = { 0 }, total_w = 0;
	for (unsigned i = 0; i < n; i++)
		total_w += w ? w[i] : 1;
	for (unsigned i = 0; i < N_KEYS; i++)
		count[dest_pick(&s, key_of(i), dest_all_up(&s))]++;
	for (unsigned i = 0; i < n; i++) {
		const double want = (double)(w ? w[i] : 1) / total_w;
		const double got = (double)count[i] / N_KEYS;
		if (got < want - 0.015 || got > want + 0.015)
			fail_msg("destination %u of %u: share %.3f, want %.3f", i, n, got, want);
	}
}

static void test_weight_spread(void **state)
{
	(void)state;
	static const unsigned w31[2] = { 3, 1 };
	static const unsigned w5[5] = { 1, 1, 2, 5, 1 };
	spread_check(2, w31);
	spread_check(5, w5);
	spread_check(4, NULL); /* equal weights: the logarithm-free path */
	spread_check(CFG_MAX_DESTS, NULL);
}

/* a set the prober never published (probes off, or unit tests) is all up */
static void test_unknown_set_is_up(void **state)
{
	(void)state;
	struct cfg_destset s;
	set_make(&s, 3, NULL);
	assert_int_equal(health_up_mask(DEST_ROUTE_LOCAL, &s), 7u);
	struct cfg c = { 0 };
	c.health.interval = 10;
	c.health.successes = 2;
	assert_int_equal(health_retry_after(&c), 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_down_moves_only_its_share),
		cmocka_unit_test(test_weight_spread),
		cmocka_unit_test(test_unknown_set_is_up),
		cmocka_unit_test(test_listen_advertise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
