#pragma once
/* store_priv.h - what the store's files share among themselves (never
 * included outside store/). Tables are liburcu cds_lfht behind small typed
 * wrappers; the Redis side is split off so the file backend never touches it. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "now.h"
#include "store.h"

/* RCU pointers and grace periods TSan can follow: the one shim of core's
 * rcu_tsan.h, under the names the store's files use. Include <urcu.h> first. */
#include "rcu_tsan.h"
#ifdef REFEREE_TSAN
#define STORE_TSAN 1
#endif
#define STORE_TSAN_RELEASE(p) rcu_tsan_release(p)
#define STORE_TSAN_ACQUIRE(p) rcu_tsan_acquire(p)
#define store_rcu_assign(p, v) rcu_ptr_publish(p, v)
#define store_rcu_deref(p) rcu_ptr_load(p)
#define store_rcu_xchg(p, v) rcu_ptr_xchg(p, v)

#define STORE_KEY_MAX 256     /* nonce / jti length we keep */
#define STORE_DIALOG_MAX 512  /* Call-ID + From tag */
#define STORE_PERM_NAME_MAX 64

/* Settings copied out of the cfg at init (the cfg may be freed). The atomic ones
 * a reload changes (store_gen_commit); the others are written before threads start. */
struct store_settings {
	enum cfg_store_backend backend;
	struct cfg_redis_url redis; /* parsed store.redis (cfg_redis_url_parse) */
	_Atomic unsigned cache_max_age; /* read relaxed: store_redis.c, the sweep */
	unsigned max_inflight;
	_Atomic unsigned cache_max_entries;
	_Atomic unsigned marks_max_entries;
};

extern struct store_settings store_conf; /* written at init; reload stores the _Atomic fields */
/* store_conf_load - @c's store settings into store_conf (defaults filled in).
 * 0, or -EINVAL with "file:line: ..." in @err (store_conf.c). Startup. */
int store_conf_load(const struct cfg *c, char *err, size_t errlen);
/* The settings a reload may change, as @c gives them with defaults filled in (store_conf.c). */
unsigned store_conf_max_age(const struct cfg *c);
unsigned store_conf_cache_max(const struct cfg *c);
unsigned store_conf_marks_max(const struct cfg *c);

/* ---- clock (store_tables.c) */
/* store_now_sec - CLOCK_MONOTONIC seconds (coarse clock, no syscall via vDSO). */
uint64_t store_now_sec(void);
/* store_clock_offset - seconds added to store_now_sec (tests age tables at once; 0 otherwise). */
extern _Atomic uint64_t store_clock_offset;

/* ---- slab of fixed-size table nodes (store_slab.c) */
struct store_slab;
/* store_slab_new - nodes of @obj_size bytes, at most @max_objs handed out at once
 * (the cap starts there; store_slab_set_cap moves it below). */
struct store_slab *store_slab_new(size_t obj_size, size_t max_objs);
void store_slab_destroy(struct store_slab *s);
/* store_slab_get - a zeroed-head node, or NULL at the cap (or out of memory). Any thread. */
void *store_slab_get(struct store_slab *s);
/* store_slab_put - give a node back (after the grace period of whoever could read it). */
void store_slab_put(struct store_slab *s, void *obj);
/* store_slab_slots / store_slab_slot - slots that exist so far, and slot @idx (NULL past them): the sweeper's walk. */
size_t store_slab_slots(const struct store_slab *s);
void *store_slab_slot(const struct store_slab *s, size_t idx);
size_t store_slab_in_use(const struct store_slab *s);
size_t store_slab_cap(const struct store_slab *s);
/* store_slab_set_cap - hand out at most @cap nodes (1..max_objs; what is out stays out).
 * Returns the cap set. Any thread. */
size_t store_slab_set_cap(struct store_slab *s, size_t cap);
size_t store_slab_bytes(const struct store_slab *s);

#define STORE_USERS_FILE_MAX (16u * 1024 * 1024) /* users of one users file */
#define STORE_MARKS_DEFAULT_MAX 2000000u	      /* store.marks_max_entries default */
/* the largest caps a reload may set (cfg_keys.c: the maxima of store.cache_max_entries and
 * store.marks_max_entries): a capped table's slab is sized for them, its cap is an atomic */
#define STORE_CACHE_MAX_CEIL 16777216u
#define STORE_MARKS_MAX_CEIL 67108864u

/* ---- users table (store_tables.c) */
struct store_users;
/* store_users_new - a table for the users file; store_users_new_capped - the
 * Redis cache: at most @cap entries, positive and negative together. */
struct store_users *store_users_new(void);
struct store_users *store_users_new_capped(size_t cap);
/* store_users_set_cap - a new cap (reload): inserts obey it at once, the CLOCK hand
 * evicts down to it as fills come. Any thread. */
void store_users_set_cap(struct store_users *tb, size_t cap);
/* store_users_free - destroy a table nobody can reach any more (after a grace period). */
void store_users_free(struct store_users *u);
/**
 * store_users_put - insert or replace @u (copied). @found false records a
 * negative entry. Any registered thread; takes the RCU read lock itself.
 * 0 or -ENOMEM.
 */
int store_users_put(struct store_users *tb, const struct store_user *u, bool found);
/* store_users_put_aged - the same; @stale inserts it already past any max-age. */
int store_users_put_aged(struct store_users *tb, const struct store_user *u, bool found, bool stale);
/**
 * store_users_get_rcu - look @id up (exact bytes). Caller holds rcu_read_lock.
 * Returns 1 found (copied into @out when non-NULL), 0 negative entry, -ENOENT
 * absent. *@age_sec receives the entry's age.
 */
int store_users_get_rcu(struct store_users *tb, struct slice id, struct store_user *out, uint64_t *age_sec);
/* store_users_del - remove @id. true when an entry was removed. Any registered thread. */
bool store_users_del(struct store_users *tb, struct slice id);
/* store_users_clear - remove every entry (cache flush). Any registered thread. */
void store_users_clear(struct store_users *tb);
/* store_users_each - call @fn on every known user (referee-admin; takes the read lock). */
void store_users_each(struct store_users *tb, void (*fn)(const struct store_user *u, void *arg), void *arg);
/* store_users_count - number of entries (tests, logs). */
unsigned long store_users_count(struct store_users *tb);
/* store_users_expire - drop entries older than @max_age seconds (0: none by age) and
 * flushed ones, the whole table in one go (tests). */
void store_users_expire(struct store_users *tb, unsigned max_age);
/* store_users_sweep_step - the same from the table's cursor, until @deadline_ns
 * (CLOCK_MONOTONIC; UINT64_MAX: no deadline) or 1/@pass_steps of the slots (1: a
 * whole pass) have been looked at. Adds what it removed to *@removed; returns the
 * slots it looked at. */
size_t store_users_sweep_step(struct store_users *tb, unsigned max_age, uint64_t deadline_ns, unsigned pass_steps,
			      unsigned *removed);
void store_users_limits(struct store_users *tb, struct store_table_limits *out);

/* Bumped (seq_cst) before every invalidation or flush of the cache: a fetch
 * that saw another value when it was sent may carry data older than the
 * change, so its answer is cached as stale (store_redis_client.c). */
extern _Atomic uint64_t store_inval_epoch;

/* The current users table (file backend: swapped whole on reload; Redis: the
 * cache). Written by store_main.c; store_users_current_rcu is the reader's door. */
extern struct store_users *store_users_cur;
struct store_users *store_users_current_rcu(void);

/* ---- nonce counters and grant JTIs (store_tables.c) */
struct store_marks;
struct store_marks *store_marks_new(void);
struct store_marks *store_marks_new_capped(size_t cap);
/* store_marks_set_cap - a new cap (reload): new marks past it are refused and counted;
 * those held stay until they expire. Any thread. */
void store_marks_set_cap(struct store_marks *m, size_t cap);
void store_marks_free(struct store_marks *m);
/**
 * store_marks_nc - nc for @nonce must be above every one seen. STORE_OK or
 * STORE_REJECT; -ENOMEM mapped to STORE_REJECT (fail closed). Any registered
 * thread, lock-free, atomic against concurrent callers (see store_tables.c).
 */
enum store_rc store_marks_nc(struct store_marks *m, struct slice nonce, uint32_t nc, unsigned ttl);
/* store_marks_jti - first use binds @jti to @dialog; same dialog OK; other
 * STORE_REJECT. With !@bind only looks (an unbound JTI is OK, nothing stored). */
enum store_rc store_marks_jti(struct store_marks *m, struct slice jti, struct slice dialog, unsigned ttl,
			      bool bind);
/* store_marks_sweep - delete expired entries, one full pass. Returns how many. */
unsigned store_marks_sweep(struct store_marks *m);
/* store_marks_sweep_step - the same from the table's cursor until @deadline_ns
 * (CLOCK_MONOTONIC) or 1/@pass_steps of each slab's slots (1: a whole pass). Adds
 * the deleted to *@killed; returns the slots looked at. */
size_t store_marks_sweep_step(struct store_marks *m, uint64_t deadline_ns, unsigned pass_steps, unsigned *killed);
void store_marks_limits(struct store_marks *m, struct store_table_limits *out);
unsigned long store_marks_count(struct store_marks *m);

extern struct store_marks *store_nc_marks, *store_jti_marks;

/* ---- id normalisation and HA1 (store_id.c); permission sets (store_perm.c) */
/* store_id_norm - copy @id into @buf lowercasing the domain; -EINVAL without
 * exactly one '@' with both sides non-empty, -ENAMETOOLONG past STORE_ID_MAX-1. */
int store_id_norm(struct slice id, char buf[STORE_ID_MAX], size_t *len);
/* store_ha1_compute - MD5 and SHA-256 of "user:realm:password" (user = part before '@'). */
int store_ha1_compute(const char *id, const char *realm, const char *pw, size_t pwlen,
		      uint8_t md5[16], uint8_t sha256[32]);
/* store_perms_parse - comma-separated interned names into @set. -ENOENT names the bad one in @bad. */
int store_perms_parse(struct slice list, uint64_t set[2], struct slice *bad);
/* store_perms_format - "A,B" into @buf; returns length or -ENOSPC. */
int store_perms_format(const uint64_t set[2], char *buf, size_t cap);

/* ---- users file (store_users_file.c) */
/**
 * store_users_file_load - parse @path into a new table (file backend, SPEC §6).
 * Passwords become HA1s with @realm and are wiped. Unknown permission names
 * are interned. NULL on failure with "file:line: message" in @err ("file:
 * message" when the file cannot be read at all).
 * Main thread (startup/reload); allocates.
 */
struct store_users *store_users_file_load(const char *path, const char *realm, char *err, size_t errlen);
/* store_users_file_load_cfg - the same for @c's store.file; a file that cannot
 * be read is reported at the store.file line of the configuration. */
struct store_users *store_users_file_load_cfg(const struct cfg *c, char *err, size_t errlen);

/* ---- keys (store_keys.c): the only place Redis key names are spelt */
#define STORE_REDIS_CHANNEL "referee:invalidate"
/* The fields of a referee:user:<id> hash (SPEC §6, contract): read by the
 * store, written by referee-admin. */
#define STORE_FIELD_HA1_MD5 "ha1_md5"
#define STORE_FIELD_HA1_SHA256 "ha1_sha256"
#define STORE_FIELD_PERMISSIONS "permissions"
int store_key_user(char *buf, size_t cap, struct slice id);
int store_key_nc(char *buf, size_t cap, struct slice nonce);
int store_key_jti(char *buf, size_t cap, struct slice jti);
/* The user-key prefix, for SCAN MATCH in referee-admin. */
const char *store_key_user_pattern(void);
size_t store_key_user_prefix_len(void);
/* The Lua script doing nc check-and-set and jti binding; its SHA-1 in hex. */
const char *store_script_text(void);
const char *store_script_sha(void);

/* ---- Redis backend (store_redis_client.c; start/stop: store_redis_topo.c) */
struct store_loop; /* where a connection's fd is watched: a worker or a poll loop */
struct store_loop_ops {
	int (*watch)(void *impl, int fd, unsigned events, void (*cb)(void *arg, unsigned events), void *arg);
	int (*unwatch)(void *impl, int fd);
};
struct store_conn;
/* store_conn_new - a Redis connection driven by @ops/@impl; @resume wakes a parked txn.
 * @batched: the owner calls store_conn_flush at the end of each batch, and commands
 * queued meanwhile wait for it (one write per link per batch); otherwise each leaves
 * at once or on the loop's EPOLLOUT. */
struct store_conn *store_conn_new(const struct store_loop_ops *ops, void *impl, bool batched,
				  void (*resume)(struct txn *t));
/* store_conn_flush - write what the batch queued (batched connections). Owner thread. */
void store_conn_flush(struct store_conn *c);
void store_conn_free(struct store_conn *c);
/* store_conn_tick - reconnect/backoff, timeouts, sweeps. Owner thread, ~every 100 ms. */
void store_conn_tick(struct store_conn *c);
/* The calling thread's command connection (NULL when none). */
extern _Thread_local struct store_conn *store_tls_conn;

/* store_redis_user_get - cache, then HGETALL (@id already normalised). */
enum store_rc store_redis_user_get(struct store_conn *c, struct txn *t, struct store_op *op,
				   struct slice id, struct store_user *out);
enum store_rc store_redis_mark(struct store_conn *c, struct txn *t, struct store_op *op, bool is_nc,
			       struct slice key, uint32_t nc, struct slice dialog, unsigned ttl);
/* store_redis_user_parse - an HGETALL reply (@r: an array) into @u; NULL, or why the data is bad
 * (@why may hold the text). Pure; exported for the fuzz target of Redis replies. */
struct redisReply;
const char *store_redis_user_parse(const struct redisReply *r, struct store_user *u, char *why, size_t whylen);
int store_redis_start(void);
void store_redis_stop(void);
bool store_redis_is_up(void);

/* struct store_op.state values */
enum { STORE_OP_NEW = 0, STORE_OP_WAIT = 1, STORE_OP_DONE = 2 };

/* ---- poll loop for non-worker threads (store_poll.c) */
struct store_poll_loop;
struct store_poll_loop *store_poll_loop_new(void);
void store_poll_loop_free(struct store_poll_loop *l);
extern const struct store_loop_ops store_poll_ops; /* impl = struct store_poll_loop * */
/* store_poll_loop_run - one epoll_wait of up to @timeout_ms; *@tick_due (when
 * non-NULL) says the 100 ms tick is due: the caller ticks its connection. */
int store_poll_loop_run(struct store_poll_loop *l, int timeout_ms, bool *tick_due);

/* ---- statistics (store_conf.c): referee_store_events_total{event}, per-thread
 * metric shards (no shared cache line on the lookup path). */
enum store_event {
	STORE_EV_HIT,
	STORE_EV_MISS,
	STORE_EV_ERROR,
	STORE_EV_DEGRADED,
	STORE_EV_OVERLOAD,
	STORE_EV_UNAVAILABLE,
	STORE_EV_BAD_DATA,
	STORE_EV_COUNT
};
extern unsigned store_metric_base;
/* store_events_register - the family, once per process (store_init). */
void store_events_register(void);
#define STORE_COUNT(ev) metrics_inc(store_metric_base + STORE_EV_##ev)

/* store_sweep_maybe (store_main.c) - one housekeeping step (issue 13): expired nonce counts,
 * grant bindings and cache entries, from each table's cursor, for at most
 * STORE_SWEEP_BUDGET_NS. Run by the store's housekeeping thread, never by a packet
 * thread; one caller at a time (a concurrent call returns at once).
 * Pace: a step every STORE_SWEEP_CALM_MS looks at a tenth of each table, at most
 * STORE_SWEEP_STEP_SLOTS slots: one pass a second for a table up to 40 000 slots,
 * slower for a bigger one (a slot looked at is a cache miss: walking 600 000 nonce
 * counts every second, 2000 calls/s for their 300 s, would be 5 % of a core).
 * Expiry is counted in whole seconds, and what a pass has not reached yet is
 * still refused by every lookup (expired is expired). Busy - a step found a
 * quarter of what it looked at expired, or a marks table is 7/8 full (its free
 * slots are what new entries need: it is walked whole) - the next step follows
 * after STORE_SWEEP_PERIOD_MS, as Redis's active expiry repeats while it keeps
 * finding expired keys. Before: a walk of up to 8 192 slots per table every 10 ms
 * whatever it found, 17 % of referee's CPU at 1000 authenticated calls/s. */
#define STORE_SWEEP_BUDGET_NS (200 * 1000ull)
#define STORE_SWEEP_PERIOD_MS 10
#define STORE_SWEEP_CALM_MS 100
#define STORE_SWEEP_IDLE_MS 1000 /* the period while every table is empty */
#define STORE_SWEEP_PASS_STEPS 10
#define STORE_SWEEP_STEP_SLOTS 4096u
/* ... and at most this much work per table and step whatever the clock says
 * (a look at a slot is 1, an unlink 16): a step stays short on a machine whose
 * clock readings cannot be trusted to stop it (a descheduled vCPU). A step
 * removes at most STORE_SWEEP_MAX_REMOVED entries per table. */
#define STORE_SWEEP_MAX_WORK 8192u
#define STORE_SWEEP_MAX_REMOVED ((STORE_SWEEP_MAX_WORK + 64u) / 16u + 4u)
/* returns how many entries it removed */
unsigned store_sweep_maybe(void);
/* store_sweep_removed - entries the housekeeping steps removed so far (O(1), tests). */
uint64_t store_sweep_removed(void);
