/* store_redis_link.c - one hiredis *async* context to one Redis server,
 * driven by the owning thread's loop through a small adapter (hiredis's
 * ev.addRead/delRead/addWrite/delWrite/cleanup hooks map to the loop's
 * watch/unwatch), with connect and reply timeouts and reconnect with
 * backoff. What is sent on it is the owner's business (hooks): command links
 * of a thread's client (store_redis_client.c), the invalidation subscriber and the
 * +switch-master subscriber (store_redis_topo.c). Never blocks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "log.h"
#include "store_redis_priv.h"

#define CONNECT_TIMEOUT_MS 2000
#define REPLY_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static struct log_limit lim_conn;

uint64_t store_redis_now_ms(void)
{
	return now_mono_ms();
}

static void link_log(const struct store_link *l, const char *what, const char *detail)
{
	uint64_t suppressed = 0;
	if (log_limit_pass(&lim_conn, &suppressed))
		log_warn("store", "%s redis=%s:%u role=%s %s suppressed=%llu", what, l->host, l->port, l->role,
			 detail ? detail : "", (unsigned long long)suppressed);
}

/* ================================================================ adapter */

static void link_io(void *arg, unsigned events)
{
	struct store_link *l = arg;
	redisAsyncContext *ac = l->ac;
	if (!ac)
		return;
	l->in_io = true; /* inside hiredis on this context: store_link_flush must not write */
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		redisAsyncHandleRead(ac);
		/* the complete replies were taken: what is left belongs to one reply (a bulk
		 * string is buffered whole before hiredis builds it) */
		if (l->ac == ac && store_reply_buffer_over(ac->c.reader)) {
			l->in_io = false;
			store_link_drop(l); /* its requests complete as for a lost server */
			return;
		}
	}
	/* the read may have freed the context (EOF): only write to the same live one */
	if (l->ac == ac && (events & EPOLLOUT))
		redisAsyncHandleWrite(ac);
	l->in_io = false;
}

/* link_apply - tell the loop what hiredis wants watched; nothing when that did not
 * change (hiredis asks for EPOLLOUT again with every command it queues: one
 * epoll_ctl per command otherwise). */
static void link_apply(struct store_link *l)
{
	if (l->fd < 0 || l->corked)
		return;
	if (l->events) {
		if (l->watched && l->watched_events == l->events)
			return;
		if (l->ops->watch(l->impl, l->fd, l->events, link_io, l) == 0) {
			l->watched = true;
			l->watched_events = l->events;
		}
	} else if (l->watched) {
		l->ops->unwatch(l->impl, l->fd);
		l->watched = false;
	}
}

static void ev_add_read(void *d)
{
	struct store_link *l = d;
	l->events |= EPOLLIN;
	link_apply(l);
}

static void ev_del_read(void *d)
{
	struct store_link *l = d;
	l->events &= ~(unsigned)EPOLLIN;
	link_apply(l);
}

static void ev_add_write(void *d)
{
	struct store_link *l = d;
	l->events |= EPOLLOUT;
	link_apply(l);
}

static void ev_del_write(void *d)
{
	struct store_link *l = d;
	l->events &= ~(unsigned)EPOLLOUT;
	link_apply(l);
}

static void ev_cleanup(void *d)
{
	struct store_link *l = d;
	bool corked = l->corked;
	l->events = 0;
	l->corked = false; /* the fd is about to close: unwatch it now */
	link_apply(l);
	l->corked = corked;
	l->fd = -1;
}

void store_link_cork(struct store_link *l)
{
	l->corked = true;
}

void store_link_uncork(struct store_link *l)
{
	l->corked = false;
	link_apply(l);
}

void store_link_flush(struct store_link *l)
{
	/* Write now rather than on the next EPOLLOUT: one write() instead of two
	 * epoll_ctl, a wakeup and the write. Not from inside hiredis on this context
	 * (a failed write frees it), nor before the connect completed (hiredis would take
	 * the context for connected): then the loop writes it on EPOLLOUT. */
	if (!l->in_io && l->ac && (l->events & EPOLLOUT) && l->state != LINK_CONNECTING && l->state != LINK_DOWN)
		redisAsyncHandleWrite(l->ac);
	l->corked = false;
	link_apply(l);
}

/* ================================================================ life cycle */

void store_link_init(struct store_link *l, const struct store_loop_ops *ops, void *impl,
		     const struct store_link_hooks *hooks, void *owner, const char *role)
{
	memset(l, 0, sizeof(*l));
	l->ops = ops;
	l->impl = impl;
	l->hooks = hooks;
	l->owner = owner;
	l->role = role;
	l->fd = -1;
}

void store_link_mark_down(struct store_link *l)
{
	bool was_up = l->state == LINK_UP;
	if (l->state != LINK_DOWN) {
		l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (l->backoff_ms > BACKOFF_MAX_MS)
			l->backoff_ms = BACKOFF_MAX_MS;
		l->next_try_ms = store_redis_now_ms() + l->backoff_ms;
		l->state = LINK_DOWN;
		l->ac = NULL;
		if (l->hooks->lost)
			l->hooks->lost(l, was_up);
	}
	l->ac = NULL;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct store_link *l = ac->data;
	if (status != REDIS_OK) {
		link_log(l, "cannot connect to Redis", ac->errstr);
		store_link_mark_down(l); /* hiredis frees the context after this callback */
		return;
	}
	l->backoff_ms = 0;
	/* a peer that vanished without a FIN (a subscriber has no reply clock) */
	redisEnableKeepAlive((redisContext *)&ac->c);
	l->last_reply_ms = store_redis_now_ms();
	l->state = LINK_VERIFYING;
	l->hooks->connected(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct store_link *l = ac->data;
	if (l->budget.refused) /* hiredis says "Out of memory": it was the bound */
		store_reply_refused(&l->budget, l->host, l->port, l->role);
	else if (!l->closing && !l->retargeting)
		link_log(l, "lost Redis connection", status == REDIS_OK ? "" : ac->errstr);
	store_link_mark_down(l);
}

void store_link_set_up(struct store_link *l)
{
	if (l->state != LINK_VERIFYING)
		return;
	l->state = LINK_UP;
	log_info("store", "connected to Redis redis=%s:%u role=%s", l->host, l->port, l->role);
}

int store_link_connect(struct store_link *l)
{
	if (!l->host[0])
		return -EINVAL;
	if (l->ac)
		return 0; /* already connecting or connected */
	redisAsyncContext *ac = redisAsyncConnect(l->host, (int)l->port);
	if (!ac || ac->err) {
		link_log(l, "cannot connect to Redis", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		l->state = LINK_CONNECTING; /* so mark_down plans a retry */
		store_link_mark_down(l);
		return -ECONNREFUSED;
	}
	store_reply_bound(ac->c.reader, &l->budget);
	l->ac = ac;
	l->fd = ac->c.fd;
	l->events = 0;
	l->watched = false;
	l->corked = false; /* a cork of the context before is not this one's */
	l->inflight = 0;
	l->state = LINK_CONNECTING;
	l->since_ms = store_redis_now_ms();
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return 0;
}

void store_link_drop(struct store_link *l)
{
	redisAsyncContext *ac = l->ac;
	if (!ac)
		return;
	redisAsyncFree(ac); /* pending requests complete with a NULL reply, then on_disconnect */
	store_link_mark_down(l);
}

void store_link_retire(struct store_link *l)
{
	l->retargeting = true;
	store_link_drop(l);
	l->retargeting = false;
	l->in_use = false;
}

void store_link_target(struct store_link *l, const char *host, unsigned port)
{
	if (l->in_use && store_link_is(l, host, port))
		return;
	store_link_retire(l);
	snprintf(l->host, sizeof(l->host), "%s", host);
	l->port = port;
	l->in_use = true;
	l->backoff_ms = 0;
	l->next_try_ms = 0; /* a new server: try at once */
}

void store_link_replied(struct store_link *l)
{
	l->last_reply_ms = store_redis_now_ms();
	if (l->inflight)
		l->inflight--;
}

void store_link_tick(struct store_link *l, uint64_t now)
{
	switch (l->state) {
	case LINK_DOWN:
		if (l->in_use && !l->closing && now >= l->next_try_ms)
			store_link_connect(l);
		break;
	case LINK_CONNECTING:
	case LINK_VERIFYING:
		if (now - l->since_ms > CONNECT_TIMEOUT_MS) {
			link_log(l, "Redis connect timeout", "");
			store_link_drop(l);
		}
		break;
	case LINK_UP:
		if (l->inflight && now - l->last_reply_ms > REPLY_TIMEOUT_MS) {
			link_log(l, "Redis not answering, reconnecting", "");
			store_link_drop(l);
		}
		break;
	}
}
