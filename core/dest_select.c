/* dest_select.c - weighted rendezvous (highest random weight) hashing over a
 * route's destinations (SPEC §10). Each destination gets a pseudo-random
 * value from the request's key and its own seed; the highest weighted score
 * wins. Removing a destination (down) only moves the keys it was winning;
 * the others keep their winner, so dialogs stay where they are. Same inputs,
 * same answer on every instance (the seed is a hash of the URI text). */
#include <math.h>

#include "dest.h"

/* splitmix64's finaliser: every input bit flips about half the output bits */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t dest_key(struct slice call_id)
{
	return mix64(slice_hash(call_id));
}

int dest_pick(const struct cfg_destset *set, uint64_t key, uint32_t up_mask)
{
	int best = DEST_NONE;
	const unsigned n = set->n < CFG_MAX_DESTS ? set->n : CFG_MAX_DESTS;
	if (set->same_weights) {
		/* equal weights: the score is monotonic in the hash, no logarithm */
		uint64_t top = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!(up_mask & (1u << i)))
				continue;
			const uint64_t h = mix64(key ^ set->d[i].seed);
			if (best == DEST_NONE || h > top) {
				top = h;
				best = (int)i;
			}
		}
		return best;
	}
	double top = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!(up_mask & (1u << i)))
			continue;
		const uint64_t h = mix64(key ^ set->d[i].seed);
		/* u in (0,1): 53 bits of h, never 0 or 1, so -log(u) > 0 */
		const double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
		const double score = (double)set->d[i].weight / -log(u);
		if (best == DEST_NONE || score > top) {
			top = score;
			best = (int)i;
		}
	}
	return best;
}
