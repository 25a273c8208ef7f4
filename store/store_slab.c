/* store_slab.c - fixed-size table nodes in chunks (issue 13): no malloc per
 * nonce, grant or cache fill, a hard cap on how many nodes a table may hold,
 * and slots addressable by index so the sweeper can walk them a few at a time
 * (store_tables.c) instead of iterating a whole hash table in one go.
 *
 * Chunks of STORE_SLAB_CHUNK slots are allocated when the free list runs dry
 * and kept until the slab is destroyed (memory never shrinks, but it never
 * grows past the cap either). A chunk pointer is published with a release
 * store and the chunk count read with an acquire load, so a walker that sees
 * index i can read the chunk holding it. Slots come back through
 * store_slab_put, after the grace period of the table that unlinked them.
 * The free list is one mutex: taken once per new node, never per lookup.
 * The cap a table obeys (limit) is an atomic at most max_objs, so a reload
 * can move it either way (store.cache_max_entries, store.marks_max_entries):
 * the chunk pointer array is sized for max_objs, chunks only for what is used. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store_priv.h"

#define STORE_SLAB_CHUNK 4096u

struct slab_free {
	struct slab_free *next;
};

struct store_slab {
	size_t obj_size;
	size_t max_objs;
	size_t max_chunks;
	_Atomic size_t n_chunks; /* published chunks (acquire/release) */
	_Atomic size_t in_use;   /* handed out and not yet put back */
	_Atomic size_t limit;    /* nodes handed out at most (<= max_objs) */
	pthread_mutex_t mu;      /* free list and chunk growth */
	struct slab_free *free;
	_Atomic(char *) *chunks;
};

struct store_slab *store_slab_new(size_t obj_size, size_t max_objs)
{
	if (obj_size < sizeof(struct slab_free) || max_objs == 0)
		return NULL;
	struct store_slab *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->obj_size = (obj_size + 15) & ~(size_t)15;
	s->max_objs = max_objs;
	s->max_chunks = (max_objs + STORE_SLAB_CHUNK - 1) / STORE_SLAB_CHUNK;
	atomic_init(&s->limit, max_objs);
	s->chunks = calloc(s->max_chunks, sizeof(*s->chunks));
	if (!s->chunks) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

void store_slab_destroy(struct store_slab *s)
{
	if (!s)
		return;
	size_t n = atomic_load_explicit(&s->n_chunks, memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		free(atomic_load_explicit(&s->chunks[i], memory_order_relaxed));
	free(s->chunks);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* grow - one more chunk on the free list. Caller holds mu. -ENOSPC at the cap. */
static int grow(struct store_slab *s)
{
	size_t n = atomic_load_explicit(&s->n_chunks, memory_order_relaxed);
	if (n >= s->max_chunks)
		return -ENOSPC;
	size_t objs = STORE_SLAB_CHUNK;
	char *chunk = calloc(objs, s->obj_size); /* zeroed: a never-used slot reads as dead */
	if (!chunk)
		return -ENOMEM;
	/* slots past max_objs in the last chunk are never handed out */
	size_t usable = s->max_objs - n * STORE_SLAB_CHUNK;
	if (usable < objs)
		objs = usable;
	for (size_t i = objs; i-- > 0;) {
		struct slab_free *f = (struct slab_free *)(chunk + i * s->obj_size);
		f->next = s->free;
		s->free = f;
	}
	atomic_store_explicit(&s->chunks[n], chunk, memory_order_release);
	atomic_store_explicit(&s->n_chunks, n + 1, memory_order_release);
	return 0;
}

void *store_slab_get(struct store_slab *s)
{
	pthread_mutex_lock(&s->mu);
	/* counted under mu: concurrent gets never pass the limit together (puts only lower it) */
	if (atomic_load_explicit(&s->in_use, memory_order_relaxed) >=
		    atomic_load_explicit(&s->limit, memory_order_relaxed) ||
	    (!s->free && grow(s) < 0)) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	struct slab_free *f = s->free;
	s->free = f->next;
	atomic_fetch_add_explicit(&s->in_use, 1, memory_order_relaxed);
	pthread_mutex_unlock(&s->mu);
	memset(f, 0, sizeof(*f));
	return f;
}

void store_slab_put(struct store_slab *s, void *obj)
{
	if (!obj)
		return;
	struct slab_free *f = obj;
	atomic_fetch_sub_explicit(&s->in_use, 1, memory_order_relaxed);
	pthread_mutex_lock(&s->mu);
	f->next = s->free;
	s->free = f;
	pthread_mutex_unlock(&s->mu);
}

size_t store_slab_slots(const struct store_slab *s)
{
	size_t n = atomic_load_explicit(&((struct store_slab *)s)->n_chunks, memory_order_acquire);
	size_t slots = n * STORE_SLAB_CHUNK;
	return slots < s->max_objs ? slots : s->max_objs;
}

void *store_slab_slot(const struct store_slab *s, size_t idx)
{
	size_t c = idx / STORE_SLAB_CHUNK;
	if (idx >= s->max_objs || c >= atomic_load_explicit(&((struct store_slab *)s)->n_chunks, memory_order_acquire))
		return NULL;
	char *chunk = atomic_load_explicit(&s->chunks[c], memory_order_acquire);
	return chunk + (idx % STORE_SLAB_CHUNK) * s->obj_size;
}

size_t store_slab_in_use(const struct store_slab *s)
{
	return atomic_load_explicit(&((struct store_slab *)s)->in_use, memory_order_relaxed);
}

size_t store_slab_cap(const struct store_slab *s)
{
	return atomic_load_explicit(&((struct store_slab *)s)->limit, memory_order_relaxed);
}

size_t store_slab_set_cap(struct store_slab *s, size_t cap)
{
	if (cap == 0)
		cap = 1;
	if (cap > s->max_objs)
		cap = s->max_objs;
	atomic_store_explicit(&s->limit, cap, memory_order_relaxed);
	return cap;
}

size_t store_slab_bytes(const struct store_slab *s)
{
	return atomic_load_explicit(&((struct store_slab *)s)->n_chunks, memory_order_relaxed) * STORE_SLAB_CHUNK *
	       s->obj_size;
}
