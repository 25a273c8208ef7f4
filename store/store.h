#pragma once
/* store.h - who is this user, what may they call, has this nonce-count or
 * grant been seen (SPEC §6). The only door to store/: no hiredis, cds_lfht
 * or YAML type crosses it, and the Redis keys are built in one store file.
 *
 * Calls that may need Redis take the txn and a struct store_op kept in the
 * calling stage's txn context: the first call starts the lookup and returns
 * STORE_PARKED (the stage returns STAGE_PARK); the store calls txn_resume()
 * when the answer arrives and the stage calls again with the same op, which
 * then holds the result. Worker threads only. */
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "slice.h"
#include "stage.h"
#include "txn.h"

#define STORE_MAX_PERMISSIONS 128 /* interned names; a set is two uint64_t */
#define STORE_ID_MAX 256

enum store_rc {
	STORE_OK = 0,       /* lookup hit / check passed */
	STORE_NOT_FOUND,    /* unknown user (or bad data in the backend, logged) */
	STORE_REJECT,       /* nonce-count not increasing / grant bound to another dialog */
	STORE_PARKED,       /* asked the backend; txn_resume() will follow */
	STORE_UNAVAILABLE,  /* backend down and not cached: answer 503 */
	STORE_OVERLOAD,     /* too many lookups in flight: answer 503 */
};

struct store_op {
	uint8_t state;  /* 0 = not started; owned by store/ */
	int8_t result;  /* enum store_rc once complete */
	void *priv;
};

struct store_user {
	char id[STORE_ID_MAX]; /* "user@domain", lowercase domain */
	bool has_md5, has_sha256;
	uint8_t ha1_md5[16];
	uint8_t ha1_sha256[32];
	uint64_t perms[2];
};

/* store_init - build tables and start the backend of @c. 0 or -errno with @err. Startup. */
int store_init(const struct cfg *c, char *err, size_t errlen);
/* store_reload - re-read the users file (file backend) and swap it in whole. */
int store_reload(const struct cfg *c, char *err, size_t errlen);
void store_fini(void);
/* store_gen_build - load @next's users file (file backend) into a table
 * attached to @next (SPEC §7 reload): nothing live changes until @next is
 * published. 0 or -EINVAL with "file:line: ..." in @err. Main thread. */
int store_gen_build(struct cfg *next, char *err, size_t errlen);
/* store_gen_commit - @next (built by store_gen_build) is about to be published:
 * non-txn lookups (tools, stats) follow it too. Main thread, after every check passed. */
void store_gen_commit(const struct cfg *next);
/* store_register - per-worker hooks (Redis connections driven by the worker's loop). */
int store_register(struct stage_table *st);

/**
 * store_user_get - copy the user @id ("user@domain") into @out.
 * Returns STORE_OK, STORE_NOT_FOUND, STORE_PARKED, STORE_UNAVAILABLE or STORE_OVERLOAD.
 * Takes its own RCU read lock; nothing it returns points into store memory.
 */
enum store_rc store_user_get(struct txn *t, struct store_op *op, struct slice id, struct store_user *out);
/**
 * store_nc_check - nonce-count @nc for @nonce must be higher than any seen
 * (atomic across instances with Redis). Entries expire after @ttl seconds.
 * STORE_OK, STORE_REJECT, STORE_PARKED (Redis down: falls back to local table, counted degraded).
 */
enum store_rc store_nc_check(struct txn *t, struct store_op *op, struct slice nonce, uint32_t nc, unsigned ttl);
/**
 * store_jti_bind - first use binds grant @jti to @dialog (Call-ID + From tag);
 * the same dialog passes again; another dialog gets STORE_REJECT.
 */
enum store_rc store_jti_bind(struct txn *t, struct store_op *op, struct slice jti, struct slice dialog, unsigned ttl);

/* store_perm_id - interned index of a permission name, or -ENOENT. Any thread. */
int store_perm_id(const char *name, size_t len);
/* store_perm_name - name of interned index, or NULL. */
const char *store_perm_name(unsigned idx);
/* store_perm_intern - add a name (startup / reload / rules compile). index or -ENOSPC. */
int store_perm_intern(const char *name, size_t len);
static inline bool store_perms_has(const uint64_t set[2], unsigned idx)
{
	return (set[idx >> 6] >> (idx & 63)) & 1;
}
static inline void store_perms_add(uint64_t set[2], unsigned idx)
{
	set[idx >> 6] |= 1ULL << (idx & 63);
}

/* Pre-interned permissions (SPEC §4); auth relies on these ids. */
#define STORE_PERM_VALID_USER 0 /* held by every authenticated user */
#define STORE_PERM_NO_ACCESS 1  /* held by nobody */

/* store_perms_held - what a user whose record lists @own holds once
 * authenticated (SPEC §4): @own, plus ValidUser, never NoAccess. */
static inline void store_perms_held(const uint64_t own[2], uint64_t out[2])
{
	out[0] = own[0];
	out[1] = own[1];
	store_perms_add(out, STORE_PERM_VALID_USER);
	out[STORE_PERM_NO_ACCESS >> 6] &= ~(1ULL << (STORE_PERM_NO_ACCESS & 63));
}

/* store_invalidate - drop @id from this instance's cache (the subscriber calls it). */
void store_invalidate(struct slice id);
/* store_is_usable - false when the backend is down (for /health). */
bool store_is_usable(void);

/* ---- threads that are not workers, statistics */

/**
 * store_thread_attach - let a thread that is not a worker (tests, tools)
 * use the backend: with Redis it gets its own connection, driven by
 * store_poll() on that thread. @resume is called instead of txn_resume()
 * when a parked op completes (NULL: nothing is called; look at op->state).
 * The thread must be a registered RCU reader. 0 or -errno. No-op for the
 * file backend apart from the periodic sweep done by store_poll().
 */
int store_thread_attach(void (*resume)(struct txn *t));
/* store_thread_detach - close the calling thread's connection; parked ops get their answer
 * (user lookups UNAVAILABLE, nc/jti from the local tables) without a resume call. */
void store_thread_detach(void);
/**
 * store_poll - wait up to @timeout_ms for the calling thread's Redis socket
 * and handle what arrived (replies, reconnects, timeouts, sweeps), like a
 * worker's loop does. Returns the number of events handled, or -errno.
 * Only on a thread that called store_thread_attach().
 */
int store_poll(int timeout_ms);
/* store_op_is_done - the op parked earlier has its answer (call the store again to read it). */
bool store_op_is_done(const struct store_op *op);

/* What a table holds against its cap (store_stats_get, the housekeeping gauges). */
struct store_table_limits {
	size_t entries, cap, bytes;
	uint64_t full;	  /* inserts refused at the cap */
	uint64_t evicted; /* cache entries the CLOCK hand made room with */
};

struct store_stats {
	uint64_t hits, misses, errors, degraded, overload, unavailable, bad_data;
	unsigned long users, nc_marks, jti_marks;
	/* against the caps (store.marks_max_entries, store.cache_max_entries) */
	struct store_table_limits nc_limits, jti_limits, users_limits;
	uint64_t sweep_max_ns;  /* longest housekeeping step so far */
	uint64_t sweep_removed; /* entries the housekeeping steps removed */
	uint64_t sweep_looked;  /* table slots the housekeeping steps looked at */
};
/* store_stats_get - counters since the process started (any thread; a snapshot), table sizes. */
void store_stats_get(struct store_stats *out);
