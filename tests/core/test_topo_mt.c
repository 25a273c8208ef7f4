/* test_topo_mt.c - the prober and resolver threads against concurrent readers
 * (runs in the TSan build too): reader threads pick destinations
 * (health_up_mask + dest_pick) and read the DNS cache (dns_lookup) inside RCU
 * read-side sections while health_probe.c publishes up/down snapshots and
 * dns_resolver.c fills its table. A UDP thread answers OPTIONS like a PBX for
 * one destination (the other port is closed), another answers DNS for one
 * name. Checks: the dead destination goes down and readers stop picking it,
 * the live one stays up, a reload that keeps the set keeps its state, the
 * name resolves to what the server said, and nothing races (TSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above */

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "cfg.h"
#include "dest.h"
#include "dns.h"
#include "metrics.h"
#include "../dns_fake.h"

static atomic_bool stop_servers;

static int udp_bound(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* answers every request with "SIP/2.0 200 OK" and its Via/Call-ID/CSeq lines */
static void *pbx_main(void *arg)
{
	const int fd = *(int *)arg;
	while (!atomic_load(&stop_servers)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		char in[2048], out[2048];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, in, sizeof(in) - 1, 0, (struct sockaddr *)&from, &fl);
		if (n <= 0)
			continue;
		in[n] = '\0';
		size_t o = (size_t)snprintf(out, sizeof(out), "SIP/2.0 200 OK\r\n");
		for (char *line = strtok(in, "\r\n"); line; line = strtok(NULL, "\r\n"))
			if (!strncmp(line, "Via:", 4) || !strncmp(line, "Call-ID:", 8) || !strncmp(line, "CSeq:", 5) ||
			    !strncmp(line, "From:", 5) || !strncmp(line, "To:", 3))
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s\r\n", line);
		o += (size_t)snprintf(out + o, sizeof(out) - o, "Content-Length: 0\r\n\r\n");
		sendto(fd, out, o, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static struct cfg g_cfg;
static atomic_bool stop_readers;
static atomic_uint picks_dead_after; /* picks of the dead destination once readers saw it down */
static atomic_uint dns_hits;
static atomic_uint dns_wrong;
static atomic_bool seen_down;

static void *reader_main(void *arg)
{
	(void)arg;
	rcu_register_thread();
	unsigned i = 0;
	while (!atomic_load(&stop_readers)) {
		char cid[32];
		int n = snprintf(cid, sizeof(cid), "%u-%p@x", i++, (void *)&i);
		rcu_read_lock();
		const uint32_t up = health_up_mask(DEST_ROUTE_LOCAL, &g_cfg.routes.local);
		const int d = dest_pick(&g_cfg.routes.local, dest_key(slice_make(cid, (size_t)n)), up);
		if (!(up & 2u))
			atomic_store(&seen_down, true);
		if (!(up & 2u) && d == 1)
			atomic_fetch_add(&picks_dead_after, 1);
		struct sockaddr_storage out;
		socklen_t len;
		if (dns_lookup(SLICE_LIT("pbx.topo.test"), 5060, true, 7, AF_INET, &out, &len) == DNS_HIT) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&out;
			/* no cmocka asserts off the main thread: counted, checked there */
			if (ntohl(in->sin_addr.s_addr) != 0x0a090807u || ntohs(in->sin_port) != 5060)
				atomic_fetch_add(&dns_wrong, 1);
			atomic_fetch_add(&dns_hits, 1);
		}
		rcu_read_unlock();
	}
	rcu_unregister_thread();
	return NULL;
}

static void test_probe_and_resolve_under_readers(void **state)
{
	(void)state;
	assert_int_equal(metrics_thread_init(), 0);
	uint16_t pbx_port, dead_port;
	int pbx_fd = udp_bound(&pbx_port);
	static struct dns_fake dns;
	static const uint8_t ip[4] = { 10, 9, 8, 7 };
	assert_int_equal(dns_fake_start(&dns, ip, 60), 0);
	int dead_fd = udp_bound(&dead_port);
	close(dead_fd); /* nobody there */
	pthread_t pbx, readers[3];
	assert_int_equal(pthread_create(&pbx, NULL, pbx_main, &pbx_fd), 0);

	g_cfg.n_listen = 1;
	assert_int_equal(cfg_addr_parse("udp://127.0.0.1:5060", true, &g_cfg.listen[0]), 0);
	g_cfg.n_domains = 1;
	strcpy(g_cfg.domains[0], "example.com");
	char url[64];
	snprintf(url, sizeof(url), "udp://127.0.0.1:%u", pbx_port);
	assert_int_equal(cfg_destset_add(&g_cfg.routes.local, url, 1), 0);
	snprintf(url, sizeof(url), "udp://127.0.0.1:%u", dead_port);
	assert_int_equal(cfg_destset_add(&g_cfg.routes.local, url, 1), 0);
	g_cfg.health.interval = 1;
	g_cfg.health.failures = 1;
	g_cfg.health.successes = 1;
	g_cfg.dns.n_servers = 1;
	snprintf(g_cfg.dns.servers[0], sizeof(g_cfg.dns.servers[0]), "127.0.0.1:%u", dns.port);
	g_cfg.dns.negative_ttl = 30;

	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, reader_main, NULL), 0);
	assert_int_equal(health_start(&g_cfg), 0);
	assert_int_equal(dns_start(&g_cfg), 0);
	/* down after one unanswered probe: <= interval + 0.5 s timeout, allow 4 s */
	for (int i = 0; i < 80 && !atomic_load(&seen_down); i++)
		usleep(50000);
	assert_true(atomic_load(&seen_down));
	health_reload(&g_cfg); /* the same set: state kept */
	usleep(300000);
	const unsigned dead_before = atomic_load(&picks_dead_after);
	usleep(500000);
	assert_int_equal(atomic_load(&picks_dead_after), dead_before);
	rcu_register_thread();
	rcu_read_lock();
	assert_int_equal(health_up_mask(DEST_ROUTE_LOCAL, &g_cfg.routes.local), 1u);
	rcu_read_unlock();
	rcu_unregister_thread();
	for (int i = 0; i < 60 && atomic_load(&dns_hits) == 0; i++)
		usleep(50000);
	assert_true(atomic_load(&dns_hits) > 0);
	assert_int_equal(atomic_load(&dns_wrong), 0);

	atomic_store(&stop_readers, true);
	for (int i = 0; i < 3; i++)
		pthread_join(readers[i], NULL);
	dns_stop();
	health_stop();
	atomic_store(&stop_servers, true);
	pthread_join(pbx, NULL);
	dns_fake_stop(&dns);
	close(pbx_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_and_resolve_under_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
