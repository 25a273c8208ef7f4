#pragma once
/* ring.h - lock-free bounded single-producer single-consumer ring of pointers.
 *
 * Fields, writers and readers:
 *   head        next slot to pop. Written by the consumer only (release),
 *               read by the producer (acquire) to know which slots are free.
 *   tail_cache  the consumer's last view of tail (consumer-private).
 *   tail        next slot to fill. Written by the producer only (release),
 *               read by the consumer (acquire) to know which slots are filled.
 *   head_cache  the producer's last view of head (producer-private).
 *   mask, slots set by ring_init before the ring is shared; read-only after.
 * head and tail are free-running 32-bit counters (wrap is fine: only their
 * difference is used, and capacity <= 2^31). Ordering: a slot is written by
 * the producer before the release store of tail that publishes it, and read by
 * the consumer before the release store of head that frees it. ring_push_batch
 * and ring_is_empty use seq_cst on tail for the worker wakeup handshake
 * (worker.c), which needs no fences (TSan does not model them). Progress: both
 * sides are wait-free. Full: ring_push fails and the caller drops and counts;
 * nothing ever blocks. NULL cannot be stored (ring_pop returns NULL = empty).
 * Calls are named for the side that may call them (ring_push*: the single
 * producer thread; ring_pop*, ring_is_empty: the single consumer thread).
 */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define RING_CACHE_LINE 64

struct ring {
	/* consumer cache line */
	alignas(RING_CACHE_LINE) _Atomic uint32_t head;
	uint32_t tail_cache;
	/* producer cache line */
	alignas(RING_CACHE_LINE) _Atomic uint32_t tail;
	uint32_t head_cache;
	/* read-only after ring_init */
	alignas(RING_CACHE_LINE) uint32_t mask;
	void **slots;
};

static_assert(offsetof(struct ring, head) == 0, "head opens the consumer line");
static_assert(offsetof(struct ring, tail) == RING_CACHE_LINE, "tail has its own cache line");
static_assert(offsetof(struct ring, mask) == 2 * RING_CACHE_LINE, "read-only fields have their own line");
static_assert(sizeof(struct ring) == 3 * RING_CACHE_LINE, "ring is three cache lines");

/**
 * ring_init - prepare @r over caller-owned @slots of @capacity entries.
 * @capacity: a power of two, 2 .. 2^31.
 * Returns 0 or -EINVAL. Call before the ring is shared between threads.
 */
static inline int ring_init(struct ring *r, void **slots, uint32_t capacity)
{
	if (capacity < 2 || capacity > (1u << 31) || (capacity & (capacity - 1)) != 0 || !slots)
		return -EINVAL;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->tail_cache = 0;
	r->head_cache = 0;
	r->mask = capacity - 1;
	r->slots = slots;
	return 0;
}

/* ring_capacity - number of slots. Any thread. */
static inline uint32_t ring_capacity(const struct ring *r)
{
	return r->mask + 1;
}

/* ring_count - entries currently queued, as seen now (approximate when the
 * other side is active). Any thread; for gauges and drain checks. */
static inline uint32_t ring_count(struct ring *r)
{
	/* relaxed: a snapshot for statistics, orders nothing */
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t n = t - h;
	return n > r->mask + 1 ? r->mask + 1 : n;
}

/* free slots as seen by the producer; refreshes head_cache when needed. */
static inline uint32_t ring_producer_room(struct ring *r, uint32_t want)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed); /* own index */
	uint32_t room = r->mask + 1 - (t - r->head_cache);
	if (room < want) {
		/* acquire pairs with the release store of head in ring_pop /
		 * ring_pop_batch: the consumer is done reading the slots it freed. */
		r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		room = r->mask + 1 - (t - r->head_cache);
	}
	return room;
}

/**
 * ring_push - append @p (not NULL). Producer thread only.
 * Returns true, or false when the ring is full (nothing changed).
 */
static inline bool ring_push(struct ring *r, void *p)
{
	if (ring_producer_room(r, 1) == 0)
		return false;
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed); /* own index */
	r->slots[t & r->mask] = p;
	/* release pairs with the acquire load of tail in ring_consumer_avail:
	 * the slot write above is visible before the consumer sees the new tail. */
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

/**
 * ring_push_batch - append up to @n entries of @items in order. Producer only.
 * Returns how many were appended (a prefix of @items; the rest did not fit).
 */
static inline unsigned ring_push_batch(struct ring *r, void *const *items, unsigned n)
{
	uint32_t room = ring_producer_room(r, n);
	if (room < n)
		n = room;
	if (n == 0)
		return 0;
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed); /* own index */
	for (unsigned i = 0; i < n; i++)
		r->slots[(t + i) & r->mask] = items[i];
	/* seq_cst (a release and more): pairs with the acquire load of tail in
	 * ring_consumer_avail, and is one side of the wakeup handshake with the
	 * seq_cst load in ring_is_empty (see worker.c): one xchg per batch. */
	atomic_store_explicit(&r->tail, t + n, memory_order_seq_cst);
	return n;
}

/* filled slots as seen by the consumer; refreshes tail_cache when needed. */
static inline uint32_t ring_consumer_avail(struct ring *r, uint32_t want)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed); /* own index */
	uint32_t avail = r->tail_cache - h;
	if (avail < want) {
		/* acquire pairs with the release store of tail in ring_push /
		 * ring_push_batch: the slots up to tail are written. */
		r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
		avail = r->tail_cache - h;
	}
	return avail;
}

/* ring_pop - oldest entry, or NULL when the ring is empty. Consumer only. */
static inline void *ring_pop(struct ring *r)
{
	if (ring_consumer_avail(r, 1) == 0)
		return NULL;
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed); /* own index */
	void *p = r->slots[h & r->mask];
	/* release pairs with the acquire load of head in ring_producer_room:
	 * the slot is read before the producer may overwrite it. */
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return p;
}

/**
 * ring_pop_batch - move up to @max oldest entries into @items. Consumer only.
 * Returns how many were moved (0 when empty).
 */
static inline unsigned ring_pop_batch(struct ring *r, void **items, unsigned max)
{
	uint32_t n = ring_consumer_avail(r, max);
	if (n > max)
		n = max;
	if (n == 0)
		return 0;
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed); /* own index */
	for (uint32_t i = 0; i < n; i++)
		items[i] = r->slots[(h + i) & r->mask];
	/* release pairs with the acquire load of head in ring_producer_room */
	atomic_store_explicit(&r->head, h + n, memory_order_release);
	return n;
}

/**
 * ring_is_empty - true when nothing is queued. Consumer only. Always reloads
 * tail with a seq_cst load: in the single total order of seq_cst operations
 * it either follows the seq_cst tail store of a ring_push_batch (and sees the
 * entries) or precedes it. The sleep protocol in worker.c relies on that.
 */
static inline bool ring_is_empty(struct ring *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed); /* own index */
	/* seq_cst (an acquire and more): pairs with the store of tail in
	 * ring_push / ring_push_batch, and with ring_push_batch in the total order */
	r->tail_cache = atomic_load_explicit(&r->tail, memory_order_seq_cst);
	return r->tail_cache == h;
}

/**
 * ring_new - allocate a ring with @capacity slots (power of two) in one
 * cache-aligned block. Returns NULL on a bad capacity or out of memory.
 * Startup only; free with ring_free once neither side uses it.
 */
static inline struct ring *ring_new(uint32_t capacity)
{
	if (capacity < 2 || capacity > (1u << 28) || (capacity & (capacity - 1)) != 0)
		return NULL;
	size_t bytes = sizeof(struct ring) + (size_t)capacity * sizeof(void *);
	bytes = (bytes + RING_CACHE_LINE - 1) & ~(size_t)(RING_CACHE_LINE - 1);
	struct ring *r = aligned_alloc(RING_CACHE_LINE, bytes);
	if (!r)
		return NULL;
	if (ring_init(r, (void **)(r + 1), capacity) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

static inline void ring_free(struct ring *r)
{
	free(r);
}
