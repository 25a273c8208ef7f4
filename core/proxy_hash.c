/* proxy_hash.c - SipHash-2-4 (Aumasson & Bernstein), the keyed hash behind
 * the deterministic Via branch, the To tag of stateless replies and loop
 * detection (proxy_branch.c, proxy_ids.c), plus its hex form. Incremental, so a value made of
 * several message fields is hashed without copying them together. No state
 * of its own: keys are the caller's. */
#include <endian.h>
#include <string.h>

#include "proxy_priv.h"


static inline uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void sip_round(struct proxy_hash *h)
{
	h->v0 += h->v1;
	h->v1 = rotl(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = rotl(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = rotl(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = rotl(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = rotl(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = rotl(h->v2, 32);
}

static inline void sip_compress(struct proxy_hash *h, uint64_t m)
{
	h->v3 ^= m;
	sip_round(h);
	sip_round(h);
	h->v0 ^= m;
}

void proxy_hash_init(struct proxy_hash *h, const uint64_t key[2])
{
	h->v0 = key[0] ^ 0x736f6d6570736575ull;
	h->v1 = key[1] ^ 0x646f72616e646f6dull;
	h->v2 = key[0] ^ 0x6c7967656e657261ull;
	h->v3 = key[1] ^ 0x7465646279746573ull;
	h->tail = 0;
	h->ntail = 0;
	h->total = 0;
}

/* the first @n (< 8) bytes at @b as a little-endian word: a byte loop, because a
 * variable-length memcpy is a library call (fields are short: the calls were a
 * third of a hash's cost) */
static inline uint64_t load_partial(const uint8_t *b, size_t n)
{
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)b[i] << (8 * i);
	return w;
}

void proxy_hash_add(struct proxy_hash *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;
	h->total += n;
	/* top up a partial word, then whole little-endian words, then keep the
	 * rest (fields are length-prefixed, so partial words are the rule) */
	if (h->ntail && n) {
		size_t take = 8 - h->ntail < n ? 8 - h->ntail : n;
		h->tail |= load_partial(b, take) << (8 * h->ntail); /* ntail >= 1: shift <= 56 */
		h->ntail += (unsigned)take;
		i = take;
		if (h->ntail == 8) {
			sip_compress(h, h->tail);
			h->tail = 0;
			h->ntail = 0;
		}
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, sizeof(w));
		sip_compress(h, le64toh(w));
	}
	if (i < n) {
		/* here ntail == 0 (a partial word was completed above or n ran out) */
		h->tail = load_partial(b + i, n - i);
		h->ntail = (unsigned)(n - i);
	}
}

void proxy_hash_u32(struct proxy_hash *h, uint32_t v)
{
	/* the four little-endian bytes of @v, shifted into the partial word */
	const unsigned nt = h->ntail;
	h->total += 4;
	h->tail |= (uint64_t)v << (8 * nt); /* nt <= 7; the bytes past the word go below */
	if (nt + 4 < 8) {
		h->ntail = nt + 4;
		return;
	}
	sip_compress(h, h->tail);
	const unsigned used = 8 - nt; /* bytes of v that completed the word: 1..4 */
	h->tail = used == 4 ? 0 : (uint64_t)v >> (8 * used);
	h->ntail = 4 - used;
}

void proxy_hash_field(struct proxy_hash *h, struct slice s)
{
	proxy_hash_u32(h, (uint32_t)s.len);
	if (s.len)
		proxy_hash_add(h, s.p, s.len);
}

uint64_t proxy_hash_final(struct proxy_hash *h)
{
	sip_compress(h, h->tail | (h->total << 56));
	h->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(h);
	return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}

uint64_t proxy_siphash(const uint64_t key[2], const void *p, size_t n)
{
	struct proxy_hash h;
	proxy_hash_init(&h, key);
	proxy_hash_add(&h, p, n);
	return proxy_hash_final(&h);
}

void proxy_hex64(uint64_t v, char out[16])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = digits[v & 0xf];
		v >>= 4;
	}
}
