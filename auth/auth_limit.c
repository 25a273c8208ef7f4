/* auth_limit.c - per source address failure limiter (SPEC §3 auth.failure_limit):
 * past `count` failed credentials within a fixed `window`, the source gets 403
 * until the window ends. Lock-free: a fixed array of 64-bit atomic slots, each
 * packing window epoch (24 bits) ‖ address tag (24 bits) ‖ count (16 bits),
 * updated with CAS. Any worker reads and writes any slot (relaxed: the counter
 * is advisory, no other data is published through it). Two addresses that share
 * a slot evict each other: a salted hash keeps that rare and unsteerable. */
#include <netinet/in.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#include "auth_priv.h"
#include "now.h"

#define LIMIT_SLOTS 4096 /* power of two */
#define LIMIT_COUNT_MAX 0xffffu

static _Atomic uint64_t limit_slots[LIMIT_SLOTS];
static _Atomic uint64_t limit_salt; /* set once by auth_limit_reset; relaxed reads */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* addr_hash - hash of the IP address only (ports change per socket); an
 * IPv4-mapped IPv6 address hashes like the IPv4 one. */
static uint64_t addr_hash(const struct sockaddr *sa)
{
	const uint8_t *b = NULL;
	size_t n = 0;
	if (sa->sa_family == AF_INET) {
		b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		n = 4;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		b = a6->s6_addr;
		n = 16;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			b += 12;
			n = 4;
		}
	}
	uint64_t h = atomic_load_explicit(&limit_salt, memory_order_relaxed) ^ (uint64_t)n;
	for (size_t i = 0; i < n; i++)
		h = mix64(h ^ b[i]);
	return mix64(h);
}

static uint64_t window_epoch(const struct cfg *c)
{
	unsigned w = c->auth.failure_limit.window ? c->auth.failure_limit.window : 1;
	return (now_mono_sec() / w) & 0xffffff;
}

static uint64_t pack(uint64_t epoch, uint64_t tag, uint64_t count)
{
	return epoch << 40 | (tag & 0xffffff) << 16 | count;
}

bool auth_limit_is_over(const struct cfg *c, const struct sockaddr *sa)
{
	unsigned limit = c->auth.failure_limit.count;
	if (limit == 0)
		return false; /* 0 disables the limiter */
	uint64_t h = addr_hash(sa);
	uint64_t s = atomic_load_explicit(&limit_slots[h & (LIMIT_SLOTS - 1)], memory_order_relaxed);
	uint64_t tag = (h >> 40) & 0xffffff;
	return (s >> 40) == window_epoch(c) && ((s >> 16) & 0xffffff) == tag && (s & 0xffff) >= limit;
}

bool auth_limit_fail(const struct cfg *c, const struct sockaddr *sa)
{
	unsigned limit = c->auth.failure_limit.count;
	if (limit == 0)
		return false;
	uint64_t h = addr_hash(sa);
	_Atomic uint64_t *slot = &limit_slots[h & (LIMIT_SLOTS - 1)];
	uint64_t tag = (h >> 40) & 0xffffff, epoch = window_epoch(c);
	uint64_t old = atomic_load_explicit(slot, memory_order_relaxed), next;
	do {
		uint64_t count = 1;
		if ((old >> 40) == epoch && ((old >> 16) & 0xffffff) == tag) {
			count = (old & 0xffff) + 1;
			if (count > LIMIT_COUNT_MAX)
				return false;
		}
		next = pack(epoch, tag, count);
	} while (!atomic_compare_exchange_weak_explicit(slot, &old, next, memory_order_relaxed,
							memory_order_relaxed));
	return (next & 0xffff) == limit;
}

void auth_limit_reset(void)
{
	for (size_t i = 0; i < LIMIT_SLOTS; i++)
		atomic_store_explicit(&limit_slots[i], 0, memory_order_relaxed);
	uint64_t salt = 0;
	if (RAND_bytes((unsigned char *)&salt, sizeof(salt)) != 1)
		salt = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
	atomic_store_explicit(&limit_salt, salt, memory_order_relaxed);
}
