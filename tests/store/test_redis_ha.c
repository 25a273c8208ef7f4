/* test_redis_ha.c - the pure parts of Redis HA (SPEC §12) without a server:
 * the one store.redis URL parser (cfg_redis_url_parse), the Sentinel replies
 * (get-master-addr-by-name, ROLE, +switch-master), CLUSTER SLOTS, MOVED/ASK
 * and the hash slot. Replies are built from raw RESP bytes by hiredis's own
 * reader, so malformed ones are what a broken or hostile server would send:
 * each must be an error code, never a crash or an accepted address. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_redis_priv.h"

/* resp_n - one reply decoded from @len bytes of @wire (the test owns it: freeReplyObject). */
static redisReply *resp_n(const char *wire, size_t len)
{
	redisReader *rd = redisReaderCreate();
	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, wire, len), REDIS_OK);
	void *r = NULL;
	assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
	assert_non_null(r);
	redisReaderFree(rd);
	return r;
}

static redisReply *resp(const char *wire)
{
	return resp_n(wire, strlen(wire));
}

/* ================================================================ URLs */

static void test_url_single(void **state)
{
	struct cfg_redis_url u;
	assert_null(cfg_redis_url_parse("redis://127.0.0.1:6380/2", &u));
	assert_int_equal(u.kind, CFG_REDIS_SINGLE);
	assert_int_equal(u.n_hosts, 1);
	assert_string_equal(u.hosts[0].host, "127.0.0.1");
	assert_int_equal(u.hosts[0].port, 6380);
	assert_int_equal(u.db, 2);
	assert_null(cfg_redis_url_parse("redis://localhost", &u));
	assert_int_equal(u.hosts[0].port, 6379);
	assert_int_equal(u.db, 0);
	assert_null(cfg_redis_url_parse("redis://[::1]:7000", &u));
	assert_string_equal(u.hosts[0].host, "::1");
	assert_int_equal(u.hosts[0].port, 7000);
	assert_null(cfg_redis_url_parse("redis://db.local:6379/255", &u));
	assert_int_equal(u.db, 255);
	const char *bad[] = {
		"http://x:1", "redis://x:0", "redis://x:99999", "redis://x:1/a", "redis://:1", "redis://",
		"redis://x:1/256", "redis://x:1/", "redis://a,b", "redis://x y", "redis://[::1", "redis://[]:1",
		"redis://x:", "redis://x:1x", "redis-sentinel", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = cfg_redis_url_parse(bad[i], &u);
		if (!why)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_string_equal(cfg_redis_url_parse("redis://x:1/256", &u), "has a bad database number (0..255)");
}

static void test_url_sentinel_cluster(void **state)
{
	struct cfg_redis_url u;
	assert_null(cfg_redis_url_parse("redis-sentinel://10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/3", &u));
	assert_int_equal(u.kind, CFG_REDIS_SENTINEL);
	assert_int_equal(u.n_hosts, 3);
	assert_int_equal(u.hosts[0].port, 26380);
	assert_string_equal(u.hosts[1].host, "10.0.0.2");
	assert_int_equal(u.hosts[1].port, 26379); /* the sentinel default */
	assert_string_equal(u.hosts[2].host, "::1");
	assert_string_equal(u.master, "mymaster");
	assert_int_equal(u.db, 3);
	assert_null(cfg_redis_url_parse("redis-sentinel://s1/m", &u));
	assert_int_equal(u.db, 0);
	assert_null(cfg_redis_url_parse("redis-cluster://127.0.0.1:7000,127.0.0.1:7001", &u));
	assert_int_equal(u.kind, CFG_REDIS_CLUSTER);
	assert_int_equal(u.n_hosts, 2);
	assert_int_equal(u.hosts[1].port, 7001);
	assert_null(cfg_redis_url_parse("redis-cluster://n1", &u));
	assert_int_equal(u.hosts[0].port, 6379);
	const char *bad[] = {
		"redis-sentinel://s1",		  /* no master */
		"redis-sentinel://s1/",		  /* empty master */
		"redis-sentinel://s1/m/x",	  /* bad db */
		"redis-sentinel://s1/m/1/2",	  /* too much path */
		"redis-sentinel://s1,/m",	  /* empty host */
		"redis-sentinel://s1/m a",	  /* bad name */
		"redis-cluster://n1/0",		  /* a cluster has no db */
		"redis-cluster://n1,,n2",
		"redis-cluster://a,b,c,d,e,f,g,h,i", /* more than 8 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!cfg_redis_url_parse(bad[i], &u))
			fail_msg("accepted '%s'", bad[i]);
}

/* ================================================================ Sentinel */

static void test_sentinel_addr(void **state)
{
	struct cfg_redis_host h = { "untouched", 1 };
	redisReply *r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
	assert_int_equal(store_sentinel_parse_addr(r, &h), 0);
	assert_string_equal(h.host, "127.0.0.1");
	assert_int_equal(h.port, 6380);
	freeReplyObject(r);
	struct {
		const char *wire;
		int rc;
	} bad[] = {
		{ "$-1\r\n", -ENOENT },					   /* unknown master */
		{ "*-1\r\n", -ENOENT },					   /* nil array */
		{ "-ERR no such master\r\n", -EIO },			   /* error */
		{ "*1\r\n$9\r\n127.0.0.1\r\n", -EINVAL },		   /* one element */
		{ "*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\n1\r\n", -EINVAL }, /* three */
		{ "*2\r\n$9\r\n127.0.0.1\r\n:6380\r\n", -EINVAL },	   /* port as integer */
		{ "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n99999\r\n", -EINVAL }, /* port range */
		{ "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n63a0\r\n", -EINVAL },
		{ "*2\r\n$0\r\n\r\n$4\r\n6380\r\n", -EINVAL },		   /* empty ip */
		{ "*2\r\n$3\r\na b\r\n$4\r\n6380\r\n", -EINVAL },	   /* blank in host */
		{ "*2\r\n*0\r\n$4\r\n6380\r\n", -EINVAL },		   /* nested */
		{ ":1\r\n", -EINVAL },
		{ "+OK\r\n", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		redisReply *rep = resp(bad[i].wire);
		int rc = store_sentinel_parse_addr(rep, &h);
		if (rc != bad[i].rc)
			fail_msg("case %zu: got %d, want %d", i, rc, bad[i].rc);
		freeReplyObject(rep);
	}
	static const char nul[] = "*2\r\n$3\r\na\0b\r\n$4\r\n6380\r\n"; /* NUL inside the host */
	r = resp_n(nul, sizeof(nul) - 1);
	assert_int_equal(store_sentinel_parse_addr(r, &h), -EINVAL);
	freeReplyObject(r);
	assert_int_equal(store_sentinel_parse_addr(NULL, &h), -EINVAL);
	assert_int_equal(h.port, 6380); /* never half-written */
}

static void test_sentinel_role(void **state)
{
	redisReply *r = resp("*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n");
	assert_int_equal(store_sentinel_parse_role(r), 1);
	freeReplyObject(r);
	r = resp("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9538\r\n$9\r\nconnected\r\n:3167038\r\n");
	assert_int_equal(store_sentinel_parse_role(r), 0);
	freeReplyObject(r);
	r = resp("*2\r\n$8\r\nsentinel\r\n*0\r\n");
	assert_int_equal(store_sentinel_parse_role(r), 0);
	freeReplyObject(r);
	const char *bad[] = { "*0\r\n", "$6\r\nmaster\r\n", "-ERR unknown command\r\n", "*1\r\n:1\r\n", "*1\r\n*0\r\n",
			      "*-1\r\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = resp(bad[i]);
		assert_int_equal(store_sentinel_parse_role(r), -EINVAL);
		freeReplyObject(r);
	}
	assert_int_equal(store_sentinel_parse_role(NULL), -EINVAL);
}

static void test_sentinel_switch(void **state)
{
	struct cfg_redis_host h = { "", 0 };
	const char ok[] = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
	assert_int_equal(store_sentinel_parse_switch(ok, strlen(ok), "mymaster", &h), 0);
	assert_string_equal(h.host, "127.0.0.1");
	assert_int_equal(h.port, 6380);
	assert_int_equal(store_sentinel_parse_switch(ok, strlen(ok), "other", &h), -ENOENT);
	assert_int_equal(store_sentinel_parse_switch(ok, strlen(ok), "mymast", &h), -ENOENT);
	const char *bad[] = {
		"", "mymaster", "mymaster 1.1.1.1 1 2.2.2.2", "mymaster 1.1.1.1 1 2.2.2.2 0",
		"mymaster 1.1.1.1 1 2.2.2.2 65536", "mymaster 1.1.1.1 1 2.2.2.2 12x", "mymaster 1.1.1.1 1 2.2.2.2 1 extra",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (store_sentinel_parse_switch(bad[i], strlen(bad[i]), "mymaster", &h) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	/* a length that cuts the message short is honoured (no read past it) */
	assert_int_equal(store_sentinel_parse_switch(ok, strlen(ok) - 5, "mymaster", &h), -EINVAL);
	assert_int_equal(store_sentinel_parse_switch(NULL, 0, "mymaster", &h), -EINVAL);
}

static void test_pubsub(void **state)
{
	const char *kind = NULL;
	struct slice payload = SLICE_NULL;
	redisReply *r = resp("*3\r\n$7\r\nmessage\r\n$18\r\nreferee:invalidate\r\n$16\r\n1001@example.com\r\n");
	assert_int_equal(store_pubsub_parse(r, &kind, &payload), 0);
	assert_string_equal(kind, "message");
	assert_true(slice_eq(payload, SLICE_LIT("1001@example.com")));
	freeReplyObject(r);
	r = resp("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
	assert_int_equal(store_pubsub_parse(r, &kind, &payload), 0);
	assert_string_equal(kind, "subscribe");
	freeReplyObject(r);
	r = resp("*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n");
	assert_int_equal(store_pubsub_parse(r, &kind, &payload), -ENOENT);
	freeReplyObject(r);
	const char *bad[] = {
		"*2\r\n$7\r\nmessage\r\n$1\r\nx\r\n",			  /* two elements */
		"*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n:5\r\n",		  /* message with an integer */
		"*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n$1\r\n1\r\n", /* count as a string */
		"*3\r\n:1\r\n$1\r\nx\r\n$1\r\ny\r\n",		  /* kind not a string */
		"*3\r\n$7\r\nmessage\r\n*0\r\n$1\r\ny\r\n",	  /* channel not a string */
		"*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$-1\r\n",	  /* nil payload */
		"*4\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n",
		"$7\r\nmessage\r\n", "-ERR x\r\n", "*-1\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = resp(bad[i]);
		if (store_pubsub_parse(r, &kind, &payload) != -EINVAL)
			fail_msg("case %zu accepted", i);
		freeReplyObject(r);
	}
	assert_int_equal(store_pubsub_parse(NULL, &kind, &payload), -EINVAL);
}

/* ================================================================ Cluster */

static void test_cluster_slot(void **state)
{
	/* values from redis-cli CLUSTER KEYSLOT */
	assert_int_equal(store_cluster_slot("foo", 3), 12182);
	assert_int_equal(store_cluster_slot("123456789", 9), 0x31c3 & 16383);
	assert_int_equal(store_cluster_slot("{user1000}.following", 20), store_cluster_slot("user1000", 8));
	assert_int_equal(store_cluster_slot("foo{}{bar}", 10), store_cluster_slot("foo{}{bar}", 10));
	/* an empty tag hashes the whole key; only the first '{' counts */
	assert_int_equal(store_cluster_slot("foo{}{bar}", 10) == store_cluster_slot("bar", 3), 0);
	assert_int_equal(store_cluster_slot("foo{{bar}}zap", 13), store_cluster_slot("{bar", 4));
	assert_int_equal(store_cluster_slot("foo{bar}{zap}", 13), store_cluster_slot("bar", 3));
	assert_true(store_cluster_slot("{", 1) < 16384);
	assert_true(store_cluster_slot("", 0) < 16384);
}

static const char slots_ok[] =
	"*3\r\n"
	"*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:30001\r\n$3\r\nid1\r\n"
	"*4\r\n:5461\r\n:10922\r\n*3\r\n$0\r\n\r\n:30002\r\n$3\r\nid2\r\n*3\r\n$9\r\n127.0.0.1\r\n:30005\r\n$3\r\nid5\r\n"
	"*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:30003\r\n";

static void test_cluster_slots(void **state)
{
	struct store_topo *t = calloc(1, sizeof(*t));
	char why[128];
	struct cfg_redis_host asked = { "10.9.9.9", 30002 };
	redisReply *r = resp(slots_ok);
	assert_int_equal(store_cluster_parse_slots(r, &asked, t, why, sizeof(why)), 16384);
	freeReplyObject(r);
	assert_int_equal(t->n_nodes, 3);
	assert_string_equal(t->nodes[0].host, "127.0.0.1");
	assert_int_equal(t->nodes[0].port, 30001);
	assert_string_equal(t->nodes[1].host, "10.9.9.9"); /* "" = the node asked */
	assert_int_equal(t->slot_node[0], 0);
	assert_int_equal(t->slot_node[5461], 1);
	assert_int_equal(t->slot_node[16383], 2);
	/* a partial map keeps the holes unserved */
	r = resp("*1\r\n*3\r\n:100\r\n:200\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	assert_int_equal(store_cluster_parse_slots(r, NULL, t, why, sizeof(why)), 101);
	assert_int_equal(t->slot_node[99], STORE_SLOT_NONE);
	assert_int_equal(t->slot_node[150], 0);
	freeReplyObject(r);
	const char *bad[] = {
		"*0\r\n",						 /* nothing served */
		"-CLUSTERDOWN The cluster is down\r\n", ":1\r\n", "$3\r\nabc\r\n",
		"*1\r\n:1\r\n",						 /* range not an array */
		"*1\r\n*2\r\n:0\r\n:1\r\n",				 /* no master */
		"*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",	 /* start > end */
		"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",	 /* past the last slot */
		"*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",	 /* negative */
		"*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* slot as string */
		"*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",		 /* master without port */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n",	 /* port 0 */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:70000\r\n",	 /* port range */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:7\r\n:1\r\n",		 /* ip as integer */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$0\r\n\r\n:1\r\n",	 /* empty ip, nobody asked */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\n?\r\n:1\r\n",	 /* unknown endpoint */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na b\r\n:1\r\n",	 /* blank */
		"*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n:9\r\n", /* one good range, one junk */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = resp(bad[i]);
		int rc = store_cluster_parse_slots(r, NULL, t, why, sizeof(why));
		if (rc >= 0)
			fail_msg("case %zu accepted (%d)", i, rc);
		assert_int_equal(rc, -EINVAL);
		freeReplyObject(r);
	}
	/* more masters than we hold: refused, not overflowed */
	char wire[16384];
	size_t n = (size_t)snprintf(wire, sizeof(wire), "*%d\r\n", STORE_REDIS_MAX_NODES + 1);
	for (int i = 0; i <= STORE_REDIS_MAX_NODES; i++)
		n += (size_t)snprintf(wire + n, sizeof(wire) - n, "*3\r\n:%d\r\n:%d\r\n*2\r\n$1\r\nh\r\n:%d\r\n", i, i,
				      1000 + i);
	r = resp(wire);
	assert_int_equal(store_cluster_parse_slots(r, NULL, t, why, sizeof(why)), -ENOSPC);
	freeReplyObject(r);
	assert_int_equal(store_cluster_parse_slots(NULL, NULL, t, why, sizeof(why)), -EINVAL);
	free(t);
}

static void test_cluster_redirect(void **state)
{
	bool ask = true;
	unsigned slot = 0;
	struct cfg_redis_host to;
	const char moved[] = "MOVED 3999 127.0.0.1:6381";
	assert_int_equal(store_cluster_parse_redirect(moved, strlen(moved), &ask, &slot, &to), 0);
	assert_false(ask);
	assert_int_equal(slot, 3999);
	assert_string_equal(to.host, "127.0.0.1");
	assert_int_equal(to.port, 6381);
	const char asked[] = "ASK 16383 ::1:7002";
	assert_int_equal(store_cluster_parse_redirect(asked, strlen(asked), &ask, &slot, &to), 0);
	assert_true(ask);
	assert_int_equal(slot, 16383);
	assert_string_equal(to.host, "::1");
	const char *other[] = { "NOSCRIPT No matching script", "ERR x", "MOVEDX", "" };
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		assert_int_equal(store_cluster_parse_redirect(other[i], strlen(other[i]), &ask, &slot, &to), -ENOENT);
	const char *bad[] = {
		"MOVED ", "MOVED x 1.1.1.1:1", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:", "MOVED 1 :5",
		"MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:1x", "MOVED 1", "ASK 1234567 h:1", "MOVED 1  h:1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (store_cluster_parse_redirect(bad[i], strlen(bad[i]), &ask, &slot, &to) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	assert_int_equal(store_cluster_parse_redirect(NULL, 0, &ask, &slot, &to), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_single),	 cmocka_unit_test(test_url_sentinel_cluster),
		cmocka_unit_test(test_sentinel_addr),	 cmocka_unit_test(test_sentinel_role),
		cmocka_unit_test(test_sentinel_switch), cmocka_unit_test(test_pubsub),
		cmocka_unit_test(test_cluster_slot),
		cmocka_unit_test(test_cluster_slots),	 cmocka_unit_test(test_cluster_redirect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
