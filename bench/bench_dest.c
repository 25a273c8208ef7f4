/* bench_dest.c - CPU per request of route destination selection (SPEC §10):
 * dest_key (hash of the Call-ID) + health_up_mask (the published up/down
 * snapshot) + dest_pick (weighted rendezvous over the destinations up), for
 * sets of 1, 2, 4 and 16 destinations, equal and unequal weights; then
 * dns_lookup of a resolved name (RCU hash table read + SRV/rendezvous pick),
 * with the resolver answered by a tiny in-process DNS server on 127.0.0.1.
 * The budget is 1 us per request for selection and DNS cache
 * lookups together.
 *   cmake --build build --target bench_dest && build/bench/bench_dest [iterations]
 * One thread, no I/O. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "cfg.h"
#include "dest.h"
#include "dns.h"
#include "../tests/dns_fake.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: other load does not count */
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile int sink;

#define N_CALLIDS 4096
static char callids[N_CALLIDS][48];
static size_t callid_len[N_CALLIDS];

static double run(const struct cfg_destset *set, long iters)
{
	double t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		const unsigned k = (unsigned)i % N_CALLIDS;
		const uint32_t up = health_up_mask(DEST_ROUTE_LOCAL, set);
		sink = dest_pick(set, dest_key(slice_make(callids[k], callid_len[k])), up);
	}
	return (now_ns() - t0) / (double)iters;
}

static double run_dns(long iters)
{
	const struct slice host = SLICE_LIT("pbx.example.test");
	struct sockaddr_storage out;
	socklen_t len;
	rcu_register_thread();
	/* the first lookup queues the name; wait (bounded) for the answer */
	for (int i = 0; i < 300; i++) {
		rcu_read_lock();
		const enum dns_lookup_rc rc = dns_lookup(host, 5060, true, 1, AF_INET, &out, &len);
		rcu_read_unlock();
		if (rc == DNS_HIT)
			break;
		usleep(10000);
	}
	double t0 = now_ns();
	unsigned hits = 0;
	for (long i = 0; i < iters; i++) {
		const unsigned k = (unsigned)i % N_CALLIDS;
		rcu_read_lock(); /* workers hold it for a whole batch; here once per lookup */
		hits += dns_lookup(host, 5060, true, dest_key(slice_make(callids[k], callid_len[k])), AF_INET,
				   &out, &len) == DNS_HIT;
		rcu_read_unlock();
	}
	const double ns = (now_ns() - t0) / (double)iters;
	rcu_unregister_thread();
	return hits == (unsigned)iters ? ns : -1;
}

int main(int argc, char **argv)
{
	const long iters = argc > 1 ? atol(argv[1]) : 2000000;
	/* SIPp-like Call-IDs (20 bytes) */
	for (unsigned i = 0; i < N_CALLIDS; i++)
		callid_len[i] = (size_t)snprintf(callids[i], sizeof(callids[i]), "%u-3171@192.0.2.20", i + 1);
	static const unsigned sizes[] = { 1, 2, 4, 16 };
	printf("destinations  weights   ns/request (Call-ID hash + up mask + pick)\n");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int weighted = 0; weighted < 2; weighted++) {
			struct cfg_destset set = { 0 };
			for (unsigned i = 0; i < sizes[s]; i++) {
				char url[64];
				snprintf(url, sizeof(url), "udp://10.0.%u.%u:5060", i / 250, i % 250 + 1);
				if (cfg_destset_add(&set, url, weighted ? i + 1 : 1) < 0)
					return 1;
			}
			if (sizes[s] == 1 && weighted)
				continue;
			printf("%12u  %-8s  %6.1f\n", sizes[s], weighted ? "1..n" : "equal",
			       run(&set, iters));
		}
	}
	/* the DNS cache read */
	static struct dns_fake fake;
	static const uint8_t ip[4] = { 127, 0, 0, 1 };
	if (dns_fake_start(&fake, ip, 3600) < 0)
		return 1;
	static struct cfg c;
	c.dns.n_servers = 1;
	snprintf(c.dns.servers[0], sizeof(c.dns.servers[0]), "127.0.0.1:%u", fake.port);
	c.dns.negative_ttl = 30;
	if (dns_start(&c) < 0)
		return 1;
	printf("dns_lookup of a cached name (key hash included): %.1f ns/request\n", run_dns(iters));
	dns_stop();
	dns_fake_stop(&fake);
	return 0;
}
