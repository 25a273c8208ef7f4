/* dns_select.c - choosing among resolved targets (RFC 2782 as RFC 3263 §4.4
 * uses it): only the lowest priority present is eligible; within it the
 * weights share the requests, by weighted rendezvous on the request's key so
 * a dialog stays on one target (a random pick would move retransmissions and
 * CANCELs). Weight 0 is "very rarely, when nothing else": it ranks as 1/100
 * of a weight-1 target, which keeps such targets in use without a special case. */
#include "dest.h"
#include "dns.h"

int dns_pick(const struct dns_targets *ts, uint64_t key, int family)
{
	const unsigned n = ts->n < DNS_MAX_TARGETS ? ts->n : DNS_MAX_TARGETS;
	int lowest = -1;
	for (unsigned i = 0; i < n; i++)
		if (ts->t[i].sa.ss_family == family &&
		    (lowest < 0 || ts->t[i].priority < ts->t[lowest].priority))
			lowest = (int)i;
	if (lowest < 0)
		return -1;
	const uint16_t prio = ts->t[lowest].priority;
	int best = -1;
	double low = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct dns_target *t = &ts->t[i];
		if (t->sa.ss_family != family || t->priority != prio)
			continue;
		const double cost = dest_cost(key, t->seed, t->weight ? (unsigned)t->weight * 100u : 1u);
		if (best < 0 || cost < low) {
			low = cost;
			best = (int)i;
		}
	}
	return best;
}
