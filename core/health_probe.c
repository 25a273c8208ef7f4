/* health_probe.c - OPTIONS probes to every route destination (SPEC §10), on a
 * thread of its own (never a packet thread), from its own UDP sockets (one per
 * address family, bound next to the first listen address of that family), so
 * probe answers never enter the pipeline.
 *
 * Per destination: a probe every health.interval seconds; one unanswered
 * within min(1 s, interval / 2) is a failure. health.failures failures in a
 * row make an up destination down, health.successes answers in a row make a
 * down one up; any response counts as an answer (SPEC: a 404 or 503 from the
 * PBX still proves it is there). Every destination starts up. Worst case from
 * a destination's death to "down": interval x failures + the probe timeout
 * (<= 1 s), the target of issue 11.
 *
 * Publication: the up masks live in an immutable snapshot (struct health_snap)
 * that the prober replaces with a release store, waits for a grace period
 * (synchronize_rcu: every worker reads it inside its read-side section) and
 * frees. A snapshot names the destination set it describes by its id, so a
 * worker still on an older configuration never applies another set's bits.
 * Each transition is one log line. Answers are matched by Call-ID, which
 * carries a random per-process nonce (a forged answer cannot raise a
 * destination without it). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "dest.h"
#include "log.h"
#include "metrics.h"
#include "sip.h"

/* TSan cannot see that synchronize_rcu separates the readers from the free:
 * under TSan the readers release a marker after reading a snapshot and the
 * prober acquires it before freeing one. No cost otherwise. */
#if defined(__SANITIZE_THREAD__)
#define HEALTH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEALTH_TSAN 1
#endif
#endif
#ifdef HEALTH_TSAN
#include <sanitizer/tsan_interface.h>
static char health_tsan_gp;
#define HEALTH_TSAN_RELEASE() __tsan_release(&health_tsan_gp)
#define HEALTH_TSAN_ACQUIRE() __tsan_acquire(&health_tsan_gp)
#else
#define HEALTH_TSAN_RELEASE() ((void)0)
#define HEALTH_TSAN_ACQUIRE() ((void)0)
#endif

#define HEALTH_MAX_TARGETS (DEST_ROUTE_COUNT * CFG_MAX_DESTS)
#define HEALTH_FAMILIES 2 /* [0] IPv4, [1] IPv6 */

struct health_snap {
	uint64_t set_id[DEST_ROUTE_COUNT];
	uint32_t up[DEST_ROUTE_COUNT];
};

struct health_target {
	enum dest_route route;
	unsigned idx; /* in its destination set */
	char uri[CFG_NAME_MAX];
	char ruri[CFG_NAME_MAX + 8];
	struct sockaddr_storage addr;
	socklen_t alen;
	bool up;
	unsigned fails, oks; /* in a row */
	uint32_t seq;	     /* of the last probe sent */
	bool outstanding;    /* that probe is not answered and not timed out yet */
	uint64_t sent_ns, due_ns;
};

/* What the prober needs from a configuration (copied: cfgs are freed on reload). */
struct health_conf {
	struct cfg_destset sets[DEST_ROUTE_COUNT];
	unsigned interval, failures, successes;
	char domain[CFG_NAME_MAX];
	unsigned n_listen;
	struct cfg_addr listen[CFG_MAX_LISTEN];
};

static struct {
	pthread_t thread;
	bool started;
	int wake_fd; /* eventfd: stop or a new conf */
	atomic_bool stop;
	pthread_mutex_t mu; /* guards pending, targets/n_targets for the metrics scrape */
	struct health_conf *pending;
	struct health_conf conf; /* prober thread only */
	struct health_target targets[HEALTH_MAX_TARGETS];
	unsigned n_targets;
	int fd[HEALTH_FAMILIES];
	char via[HEALTH_FAMILIES][80]; /* sent-by of each socket */
	char nonce[17];
	struct health_snap *snap; /* read by workers: acquire/release */
	bool snap_dirty;
} hp = { .wake_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .fd = { -1, -1 } };

static const char *const route_names[DEST_ROUTE_COUNT] = { "local", "outbound" };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- hot path */

uint32_t health_up_mask(enum dest_route route, const struct cfg_destset *set)
{
	/* acquire pairs with the release store in snap_publish */
	const struct health_snap *s = __atomic_load_n(&hp.snap, __ATOMIC_ACQUIRE);
	if (!s || route >= DEST_ROUTE_COUNT || s->set_id[route] != set->id) {
		HEALTH_TSAN_RELEASE();
		return dest_all_up(set);
	}
	const uint32_t up = s->up[route];
	HEALTH_TSAN_RELEASE();
	return up;
}

unsigned health_retry_after(const struct cfg *c)
{
	const unsigned s = c->health.interval * c->health.successes;
	return s ? s : 1;
}

/* ---------------------------------------------------------------- publication */

static void snap_publish(void)
{
	struct health_snap *next = calloc(1, sizeof(*next));
	if (!next) {
		log_error("health", "out of memory: destination states not published");
		return;
	}
	for (unsigned r = 0; r < DEST_ROUTE_COUNT; r++)
		next->set_id[r] = hp.conf.sets[r].id;
	for (unsigned i = 0; i < hp.n_targets; i++)
		if (hp.targets[i].up)
			next->up[hp.targets[i].route] |= 1u << hp.targets[i].idx;
	struct health_snap *old = hp.snap;
	__atomic_store_n(&hp.snap, next, __ATOMIC_RELEASE);
	synchronize_rcu(); /* no worker still reads `old` */
	HEALTH_TSAN_ACQUIRE();
	free(old);
	hp.snap_dirty = false;
}

/* referee_route_up{route,destination} at scrape time (metrics thread) */
static void route_up_collect(struct metrics_sink *sink, void *arg)
{
	(void)arg;
	static const char *const names[2] = { "route", "destination" };
	pthread_mutex_lock(&hp.mu);
	for (unsigned i = 0; i < hp.n_targets; i++) {
		const char *values[2] = { route_names[hp.targets[i].route], hp.targets[i].uri };
		metrics_sink_gauge(sink, names, values, 2, hp.targets[i].up ? 1 : 0);
	}
	pthread_mutex_unlock(&hp.mu);
}

/* ---------------------------------------------------------------- sockets */

static int family_slot(int family) { return family == AF_INET6 ? 1 : 0; }

/* one UDP socket per family, next to the first listen address of that family */
static int socket_for(const struct health_conf *hc, int family)
{
	const int slot = family_slot(family);
	if (hp.fd[slot] >= 0)
		return hp.fd[slot];
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	for (unsigned i = 0; i < hc->n_listen; i++) {
		if (hc->listen[i].sa.ss_family == family) {
			memcpy(&ss, &hc->listen[i].sa, hc->listen[i].salen);
			len = hc->listen[i].salen;
			break;
		}
	}
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	else
		((struct sockaddr_in *)&ss)->sin_port = 0;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	char ip[INET6_ADDRSTRLEN];
	const void *a = family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
					   : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
	unsigned port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	inet_ntop(family, a, ip, sizeof(ip));
	snprintf(hp.via[slot], sizeof(hp.via[slot]), family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
		 port);
	hp.fd[slot] = fd;
	return fd;
}

/* ---------------------------------------------------------------- targets */

static void ruri_of(const struct cfg_dest *d, char *out, size_t cap)
{
	const bool v6 = strchr(d->host, ':') != NULL;
	snprintf(out, cap, "%s:%s%s%s:%u", d->transport == CFG_TRANSPORT_TLS ? "sips" : "sip",
		 v6 ? "[" : "", d->host, v6 ? "]" : "", (unsigned)d->port);
}

static void transition_log(const struct health_target *t, const char *why)
{
	if (t->up)
		log_info("health", "destination up route=%s destination=%s after %u answered probes",
			 route_names[t->route], t->uri, t->oks);
	else
		log_warn("health", "destination down route=%s destination=%s after %u %s",
			 route_names[t->route], t->uri, t->fails, why ? why : "failed probes");
}

/* conf_apply - make @next the probed configuration; destinations that stay
 * (same route, same URI) keep their state. Prober thread. */
static void conf_apply(struct health_conf *next)
{
	struct health_target old[HEALTH_MAX_TARGETS];
	const unsigned n_old = hp.n_targets;
	memcpy(old, hp.targets, n_old * sizeof(old[0]));
	struct health_target fresh[HEALTH_MAX_TARGETS];
	unsigned n = 0;
	const uint64_t now = now_ns();
	for (unsigned r = 0; r < DEST_ROUTE_COUNT; r++) {
		const struct cfg_destset *set = &next->sets[r];
		for (unsigned i = 0; i < set->n && n < HEALTH_MAX_TARGETS; i++) {
			const struct cfg_dest *d = &set->d[i];
			struct health_target *t = &fresh[n];
			*t = (struct health_target){ .route = (enum dest_route)r, .idx = i, .up = true,
						     .due_ns = now };
			for (unsigned j = 0; j < n_old; j++)
				if (old[j].route == t->route && strcmp(old[j].uri, d->uri) == 0) {
					*t = old[j];
					t->idx = i;
					t->outstanding = false;
					break;
				}
			snprintf(t->uri, sizeof(t->uri), "%s", d->uri);
			ruri_of(d, t->ruri, sizeof(t->ruri));
			/* names without maddr are not probed (their addresses follow DNS);
			 * neither are TCP/TLS destinations: the prober speaks UDP only, and a
			 * stream next hop need not listen on UDP (connect failures answer
			 * 503 upstream instead, core/conn_io.c) */
			if (d->has_addr && d->transport == CFG_TRANSPORT_UDP) {
				memcpy(&t->addr, &d->addr.sa, d->addr.salen);
				t->alen = d->addr.salen;
			}
			n++;
		}
	}
	pthread_mutex_lock(&hp.mu);
	memcpy(hp.targets, fresh, n * sizeof(fresh[0]));
	hp.n_targets = n;
	hp.conf = *next;
	pthread_mutex_unlock(&hp.mu);
	hp.snap_dirty = true;
}

static void probe_send(struct health_target *t, uint64_t now)
{
	if (t->alen == 0)
		return; /* a name: its addresses come and go with DNS; not probed (stays up) */
	t->seq++;
	t->sent_ns = now;
	t->outstanding = true;
	const int family = t->addr.ss_family;
	const int fd = socket_for(&hp.conf, family);
	if (fd < 0) {
		static struct log_limit lim;
		uint64_t sup;
		if (log_limit_pass(&lim, &sup))
			log_error("health", "cannot open a probe socket: %s suppressed=%llu",
				  strerror(-fd), (unsigned long long)sup);
		return; /* counts as unanswered */
	}
	const char *via = hp.via[family_slot(family)];
	const unsigned id = (unsigned)(t - hp.targets);
	char buf[1024];
	int len = snprintf(buf, sizeof(buf),
			   "OPTIONS %s SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP %s;branch=z9hG4bK-rf-hc%s%u.%u;rport\r\n"
			   "Max-Forwards: 70\r\n"
			   "From: <sip:referee@%s>;tag=%s\r\n"
			   "To: <%s>\r\n"
			   "Call-ID: rf-hc-%s-%u-%u\r\n"
			   "CSeq: %u OPTIONS\r\n"
			   "User-Agent: referee health probe\r\n"
			   "Content-Length: 0\r\n\r\n",
			   t->ruri, via, hp.nonce, id, t->seq, hp.conf.domain, hp.nonce, t->ruri,
			   hp.nonce, id, t->seq, t->seq);
	if (len <= 0 || (size_t)len >= sizeof(buf))
		return;
	if (sendto(fd, buf, (size_t)len, 0, (struct sockaddr *)&t->addr, t->alen) < 0) {
		static struct log_limit lim;
		uint64_t sup;
		if (log_limit_pass(&lim, &sup))
			log_warn("health", "probe to %s not sent: %s suppressed=%llu", t->uri,
				 strerror(errno), (unsigned long long)sup);
	}
}

/* a response: "rf-hc-<nonce>-<target>-<seq>" in its Call-ID */
static void answer_handle(const char *buf, size_t len)
{
	struct sip_msg m;
	if (sip_parse(buf, len, &m) < 0 || m.is_request)
		return;
	char want[40];
	int wl = snprintf(want, sizeof(want), "rf-hc-%s-", hp.nonce);
	struct slice id = m.call_id;
	if (wl <= 0 || id.len <= (size_t)wl || memcmp(id.p, want, (size_t)wl) != 0)
		return;
	id = slice_advance(id, (size_t)wl);
	const ptrdiff_t dash = slice_find_char(id, '-');
	uint32_t idx, seq;
	if (dash <= 0 || !slice_to_u32(slice_make(id.p, (size_t)dash), &idx) ||
	    !slice_to_u32(slice_advance(id, (size_t)dash + 1), &seq) || idx >= hp.n_targets)
		return;
	struct health_target *t = &hp.targets[idx];
	if (!t->outstanding || t->seq != seq)
		return; /* late (already counted as unanswered) or a duplicate */
	t->outstanding = false;
	t->fails = 0;
	t->oks++;
	if (!t->up && t->oks >= hp.conf.successes) {
		pthread_mutex_lock(&hp.mu);
		t->up = true;
		pthread_mutex_unlock(&hp.mu);
		transition_log(t, NULL);
		hp.snap_dirty = true;
	}
}

static void answers_read(int fd)
{
	char buf[4096];
	for (int n = 0; n < 64; n++) {
		ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (got <= 0)
			return;
		answer_handle(buf, (size_t)got);
	}
}

/* timeouts and due probes; returns the next deadline */
static uint64_t targets_run(uint64_t now)
{
	const uint64_t interval = (uint64_t)hp.conf.interval * 1000000000ull;
	const uint64_t timeout = interval / 2 < 1000000000ull ? interval / 2 : 1000000000ull;
	uint64_t next = now + 1000000000ull;
	for (unsigned i = 0; i < hp.n_targets; i++) {
		struct health_target *t = &hp.targets[i];
		if (t->outstanding && now >= t->sent_ns + timeout) {
			t->outstanding = false;
			t->oks = 0;
			t->fails++;
			if (t->up && t->fails >= hp.conf.failures) {
				pthread_mutex_lock(&hp.mu);
				t->up = false;
				pthread_mutex_unlock(&hp.mu);
				transition_log(t, "unanswered probes");
				hp.snap_dirty = true;
			}
		}
		if (now >= t->due_ns) {
			probe_send(t, now);
			t->due_ns = now + interval;
		}
		if (t->outstanding && t->sent_ns + timeout < next)
			next = t->sent_ns + timeout;
		if (t->due_ns < next)
			next = t->due_ns;
	}
	return next;
}

static void *health_main(void *arg)
{
	(void)arg;
	if (metrics_thread_init() < 0)
		log_warn("health", "no metrics shard left: counting on the shared one");
	while (!atomic_load_explicit(&hp.stop, memory_order_relaxed)) {
		pthread_mutex_lock(&hp.mu);
		struct health_conf *next = hp.pending;
		hp.pending = NULL;
		pthread_mutex_unlock(&hp.mu);
		if (next) {
			conf_apply(next);
			free(next);
		}
		const uint64_t now = now_ns();
		uint64_t deadline = now + 1000000000ull;
		if (hp.conf.interval > 0) {
			deadline = targets_run(now);
		} else {
			/* probes off: everything is up (SPEC §10: 0 = off) */
			for (unsigned i = 0; i < hp.n_targets; i++) {
				hp.snap_dirty |= !hp.targets[i].up;
				hp.targets[i].up = true;
			}
		}
		if (hp.snap_dirty)
			snap_publish();
		struct pollfd pfd[3] = { { .fd = hp.wake_fd, .events = POLLIN },
					 { .fd = hp.fd[0], .events = POLLIN },
					 { .fd = hp.fd[1], .events = POLLIN } };
		const uint64_t after = now_ns();
		int ms = deadline > after ? (int)((deadline - after + 999999) / 1000000) : 0;
		if (poll(pfd, 3, ms) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			ssize_t n = read(hp.wake_fd, &v, sizeof(v));
			(void)n;
		}
		for (int f = 0; f < HEALTH_FAMILIES; f++)
			if (pfd[1 + f].revents & POLLIN)
				answers_read(hp.fd[f]);
	}
	return NULL;
}

/* ---------------------------------------------------------------- control */

static struct health_conf *conf_copy(const struct cfg *c)
{
	struct health_conf *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return NULL;
	hc->sets[DEST_ROUTE_LOCAL] = c->routes.local;
	hc->sets[DEST_ROUTE_OUTBOUND] = c->routes.outbound;
	hc->interval = c->health.interval;
	hc->failures = c->health.failures ? c->health.failures : 1;
	hc->successes = c->health.successes ? c->health.successes : 1;
	snprintf(hc->domain, sizeof(hc->domain), "%s", c->n_domains ? c->domains[0] : "invalid");
	hc->n_listen = c->n_listen < CFG_MAX_LISTEN ? c->n_listen : CFG_MAX_LISTEN;
	memcpy(hc->listen, c->listen, sizeof(hc->listen));
	return hc;
}

static void conf_hand_over(struct health_conf *hc)
{
	pthread_mutex_lock(&hp.mu);
	free(hp.pending);
	hp.pending = hc;
	pthread_mutex_unlock(&hp.mu);
	uint64_t one = 1;
	ssize_t n = write(hp.wake_fd, &one, sizeof(one));
	(void)n;
}

int health_start(const struct cfg *c)
{
	if (hp.started)
		return -EALREADY;
	uint8_t raw[8];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		log_error("health", "no random bytes for the probe nonce: %s", strerror(errno));
		return -EIO;
	}
	for (int i = 0; i < 8; i++)
		snprintf(hp.nonce + 2 * i, 3, "%02x", raw[i]);
	struct health_conf *hc = conf_copy(c);
	hp.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!hc || hp.wake_fd < 0) {
		free(hc);
		log_error("health", "cannot start the prober: %s", strerror(errno));
		return -ENOMEM;
	}
	metrics_collector_add("referee_route_up",
			      "Route destination state from OPTIONS probes (1 up, 0 down)",
			      route_up_collect, NULL);
	/* the first configuration is applied before anyone probes or scrapes */
	conf_apply(hc);
	free(hc);
	snap_publish();
	atomic_store_explicit(&hp.stop, false, memory_order_relaxed);
	if (pthread_create(&hp.thread, NULL, health_main, NULL) != 0) {
		log_error("health", "cannot start the prober thread");
		return -EAGAIN;
	}
	hp.started = true;
	return 0;
}

void health_reload(const struct cfg *c)
{
	if (!hp.started)
		return;
	struct health_conf *hc = conf_copy(c);
	if (!hc) {
		log_error("health", "out of memory: keeping the probed destinations");
		return;
	}
	conf_hand_over(hc);
}

void health_stop(void)
{
	if (hp.started) {
		atomic_store_explicit(&hp.stop, true, memory_order_relaxed);
		uint64_t one = 1;
		ssize_t n = write(hp.wake_fd, &one, sizeof(one));
		(void)n;
		pthread_join(hp.thread, NULL);
		hp.started = false;
	}
	free(hp.pending);
	hp.pending = NULL;
	struct health_snap *old = hp.snap;
	__atomic_store_n(&hp.snap, NULL, __ATOMIC_RELEASE);
	synchronize_rcu();
	HEALTH_TSAN_ACQUIRE();
	free(old);
	for (int f = 0; f < HEALTH_FAMILIES; f++) {
		if (hp.fd[f] >= 0)
			close(hp.fd[f]);
		hp.fd[f] = -1;
	}
	if (hp.wake_fd >= 0)
		close(hp.wake_fd);
	hp.wake_fd = -1;
	pthread_mutex_lock(&hp.mu);
	hp.n_targets = 0;
	pthread_mutex_unlock(&hp.mu);
}
