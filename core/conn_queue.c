/* conn_queue.c - the bounded multi-producer single-consumer queue of a
 * conn_thread (bytes other threads send on its connections) and its wakeup.
 * Vyukov's intrusive MPSC queue: a producer exchanges the head and then links
 * the previous head to its item (wait-free, no lock); the owner pops from the
 * tail following next pointers. Between a producer's exchange and its link
 * the items after it are not visible yet: pop returns NULL and q_count tells
 * the owner to look again (conn_io.c). Bound: q_count is raised before the
 * push and refused past CONN_QUEUE_MAX, so memory stays bounded.
 * Wakeup: a producer that turns wake_pending from false to true writes the
 * eventfd (one write per batch); the owner clears wake_pending before it
 * drains, so an item pushed after the drain always gets a write. */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "conn_priv.h"

void conn_queue_init(struct conn_thread *ct)
{
	atomic_init(&ct->q_stub.next, NULL);
	atomic_init(&ct->q_head, &ct->q_stub);
	ct->q_tail = &ct->q_stub;
	atomic_init(&ct->q_count, 0);
	atomic_init(&ct->wake_pending, false);
}

static void queue_link(struct conn_thread *ct, struct conn_item *it)
{
	atomic_store_explicit(&it->next, NULL, memory_order_relaxed);
	/* acq_rel: our item's contents are published with the link below; the
	 * acquire side orders us after the producer we follow */
	struct conn_item *prev = atomic_exchange_explicit(&ct->q_head, it, memory_order_acq_rel);
	/* release pairs with the acquire loads of next in conn_queue_pop */
	atomic_store_explicit(&prev->next, it, memory_order_release);
}

bool conn_queue_push(struct conn_thread *ct, struct conn_item *it)
{
	/* relaxed: a counter for the bound only */
	if (atomic_fetch_add_explicit(&ct->q_count, 1, memory_order_relaxed) >= CONN_QUEUE_MAX) {
		atomic_fetch_sub_explicit(&ct->q_count, 1, memory_order_relaxed);
		return false;
	}
	queue_link(ct, it);
	return true;
}

struct conn_item *conn_queue_pop(struct conn_thread *ct)
{
	struct conn_item *tail = ct->q_tail;
	struct conn_item *next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (tail == &ct->q_stub) {
		if (!next)
			return NULL;
		ct->q_tail = next;
		tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (!next) {
		/* tail is the last linked item: take it only if no push is mid-way */
		if (tail != atomic_load_explicit(&ct->q_head, memory_order_acquire))
			return NULL;
		queue_link(ct, &ct->q_stub);
		next = atomic_load_explicit(&tail->next, memory_order_acquire);
		if (!next)
			return NULL;
	}
	ct->q_tail = next;
	atomic_fetch_sub_explicit(&ct->q_count, 1, memory_order_relaxed);
	return tail;
}

void conn_thread_wake(struct conn_thread *ct)
{
	/* acq_rel exchange: one producer per batch writes; the owner's clearing
	 * exchange (conn_io.c) precedes its drain */
	if (atomic_exchange_explicit(&ct->wake_pending, true, memory_order_acq_rel))
		return;
	uint64_t one = 1;
	ssize_t n = write(ct->wake_fd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter is saturated, so it is readable anyway */
}
