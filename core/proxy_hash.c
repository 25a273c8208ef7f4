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

void proxy_hash_add(struct proxy_hash *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;
	h->total += n;
	/* top up a partial word, then whole little-endian words, then keep the
	 * rest (fields are length-prefixed, so partial words are the rule: they
	 * are loaded with one memcpy, not byte by byte) */
	if (h->ntail && n) {
		size_t take = 8 - h->ntail < n ? 8 - h->ntail : n;
		uint64_t w = 0;
		memcpy(&w, b, take);
		h->tail |= le64toh(w) << (8 * h->ntail); /* ntail >= 1: shift <= 56 */
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
		uint64_t w = 0;
		memcpy(&w, b + i, n - i);
		h->tail = le64toh(w);
		h->ntail = (unsigned)(n - i);
	}
}

void proxy_hash_u32(struct proxy_hash *h, uint32_t v)
{
	const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	proxy_hash_add(h, b, sizeof(b));
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
