#pragma once
/* log.h - one line per event: "LEVEL module: message key=value" on stderr.
 * Never log secrets (HA1s, passwords, MACs, whole tokens). Repeated lines are
 * rate-limited with a struct log_limit kept next to the call site. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"

void log_set_level(enum cfg_log_level lvl);
bool log_enabled(enum cfg_log_level lvl);
void log_write(enum cfg_log_level lvl, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) log_write(CFG_LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write(CFG_LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_write(CFG_LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) \
	do { if (log_enabled(CFG_LOG_DEBUG)) log_write(CFG_LOG_DEBUG, mod, __VA_ARGS__); } while (0)

/* At most one line per second per limiter; the next line reports how many
 * were suppressed. Safe from any thread (static storage, atomics). */
struct log_limit {
	_Atomic uint64_t last_sec;
	_Atomic uint64_t suppressed;
};

/* log_limit_pass - true when a line may be written now; *suppressed gets the
 * number of lines swallowed since the last one that passed. */
bool log_limit_pass(struct log_limit *l, uint64_t *suppressed);

/* Per event AND key (SPEC §6: two bad Redis hashes within one second each get
 * a line naming their key): at most one line per second per key, for up to
 * LOG_KEYS_MAX keys at a time (a key past them takes the slot of the one it
 * hashes to), and at most LOG_KEYED_PER_SEC lines a second for the whole
 * event, so a flood of distinct keys cannot flood the log. Static storage. */
#define LOG_KEYS_MAX 64
#define LOG_KEYED_PER_SEC 20
struct log_limit_keyed {
	struct {
		_Atomic uint64_t hash_sec; /* key hash (high 40 bits) | second (low 24 bits) */
		_Atomic uint64_t suppressed;
	} slot[LOG_KEYS_MAX];
	_Atomic uint64_t sec_lines; /* second (high 40 bits) | lines this second (low 24 bits) */
	_Atomic uint64_t overflow;  /* lines the per-second cap swallowed */
};

/* log_limit_pass_key - true when a line for @key may be written now;
 * *@suppressed gets the lines swallowed for this key (and for the event's cap) since. */
bool log_limit_pass_key(struct log_limit_keyed *l, const char *key, size_t len, uint64_t *suppressed);
