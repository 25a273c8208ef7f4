/* store_poll.c - a tiny epoll loop for threads that are not workers (the
 * topology thread with its subscribers; tests and tools through
 * store_thread_attach, store_worker.c): it watches fds for the same adapter
 * hooks a worker's loop runs and says when the 100 ms tick (reconnect,
 * timeouts, sweeps) is due. Level-triggered; a handful of fds. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "store_priv.h"

#define LOOP_MAX_FDS 40 /* a cluster client: one link per master (STORE_REDIS_MAX_NODES) */
#define LOOP_TICK_MS 100

struct store_poll_loop {
	int epfd;
	uint64_t next_tick_ms;
	struct {
		int fd;
		void (*cb)(void *arg, unsigned events);
		void *arg;
	} w[LOOP_MAX_FDS];
};

static uint64_t loop_now_ms(void)
{
	return now_mono_ms();
}

struct store_poll_loop *store_poll_loop_new(void)
{
	struct store_poll_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	for (int i = 0; i < LOOP_MAX_FDS; i++)
		l->w[i].fd = -1;
	return l;
}

void store_poll_loop_free(struct store_poll_loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}

static int loop_watch(void *impl, int fd, unsigned events, void (*cb)(void *arg, unsigned events), void *arg)
{
	struct store_poll_loop *l = impl;
	int slot = -1;
	for (int i = 0; i < LOOP_MAX_FDS; i++) {
		if (l->w[i].fd == fd) {
			slot = i;
			break;
		}
		if (l->w[i].fd < 0 && slot < 0)
			slot = i;
	}
	if (slot < 0)
		return -ENOSPC;
	struct epoll_event ev = { .events = events, .data.fd = fd };
	int op = l->w[slot].fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0)
		return -errno;
	l->w[slot].fd = fd;
	l->w[slot].cb = cb;
	l->w[slot].arg = arg;
	return 0;
}

static int loop_unwatch(void *impl, int fd)
{
	struct store_poll_loop *l = impl;
	for (int i = 0; i < LOOP_MAX_FDS; i++) {
		if (l->w[i].fd != fd)
			continue;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT/EBADF: already gone */
		l->w[i].fd = -1;
		return 0;
	}
	return -ENOENT;
}

const struct store_loop_ops store_poll_ops = { loop_watch, loop_unwatch };

int store_poll_loop_run(struct store_poll_loop *l, int timeout_ms, bool *tick_due)
{
	if (tick_due)
		*tick_due = false;
	struct epoll_event evs[LOOP_MAX_FDS];
	uint64_t now = loop_now_ms();
	if (l->next_tick_ms > now && (uint64_t)timeout_ms > l->next_tick_ms - now)
		timeout_ms = (int)(l->next_tick_ms - now);
	int n = epoll_wait(l->epfd, evs, LOOP_MAX_FDS, timeout_ms < 0 ? 0 : timeout_ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		/* look the fd up now: an earlier callback may have unwatched it */
		for (int j = 0; j < LOOP_MAX_FDS; j++) {
			if (l->w[j].fd == evs[i].data.fd) {
				l->w[j].cb(l->w[j].arg, evs[i].events);
				break;
			}
		}
	}
	now = loop_now_ms();
	if (now >= l->next_tick_ms) {
		l->next_tick_ms = now + LOOP_TICK_MS;
		if (tick_due)
			*tick_due = true;
	}
	return n < 0 ? 0 : n;
}
