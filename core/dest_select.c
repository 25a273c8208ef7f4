/* dest_select.c - weighted rendezvous (highest random weight) hashing over a
 * route's destinations (SPEC §10). Each destination gets a pseudo-random
 * value from the request's key and its own seed; the highest weighted score
 * wins. Removing a destination (down) only moves the keys it was winning;
 * the others keep their winner, so dialogs stay where they are. Same inputs,
 * same answer on every instance (the seed is a hash of the URI text). */
#include <string.h>

#include "dest.h"

/* splitmix64's finaliser: every input bit flips about half the output bits */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ln_unit - ln(u) for u in (0,1), without libm: exponent and mantissa split,
 * ln(m) for m in [1,2) by the atanh series (error < 1e-6, far below what
 * could move a share). About 4x cheaper than log(); the same bits in, the
 * same result out on every instance. */
static inline double ln_unit(double u)
{
	uint64_t bits;
	memcpy(&bits, &u, sizeof(bits));
	const int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
	double m;
	memcpy(&m, &bits, sizeof(m));
	const double z = (m - 1.0) / (m + 1.0), z2 = z * z;
	const double ln_m =
	    2.0 * z * (1.0 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 * (1.0 / 9 + z2 / 11)))));
	return (double)e * 0.69314718055994530942 + ln_m;
}

uint64_t dest_seed(const void *p, size_t n)
{
	/* FNV-1a, then mixed */
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return mix64(h);
}

uint64_t dest_key(struct slice call_id)
{
	return mix64(slice_hash(call_id));
}

double dest_cost(uint64_t key, uint64_t seed, unsigned weight)
{
	const uint64_t h = mix64(key ^ seed);
	/* u in (0,1): 53 bits of h, never 0 or 1, so -ln(u) > 0 */
	const double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
	return -ln_unit(u) / (double)(weight ? weight : 1);
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
	/* the highest weight / -ln(u) is the lowest -ln(u) / weight */
	double low = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!(up_mask & (1u << i)))
			continue;
		const double cost = dest_cost(key, set->d[i].seed, set->d[i].weight);
		if (best == DEST_NONE || cost < low) {
			low = cost;
			best = (int)i;
		}
	}
	return best;
}
