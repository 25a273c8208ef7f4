/* bench_dest.c - CPU per request of route destination selection (SPEC §10):
 * dest_key (hash of the Call-ID) + health_up_mask (the published up/down
 * snapshot) + dest_pick (weighted rendezvous over the destinations up), for
 * sets of 1, 2, 4 and 16 destinations, equal and unequal weights. The issue's
 * budget is 1 us per request for selection and DNS cache lookups together.
 *   cmake --build build --target bench_dest && build/bench/bench_dest [iterations]
 * One thread, no I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cfg.h"
#include "dest.h"

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
	return 0;
}
