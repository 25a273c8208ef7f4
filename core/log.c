/* log.c - leveled, rate-limitable lines on stderr (systemd captures them).
 * One write(2) per line so lines from several threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "now.h"
#include "slice.h"

static _Atomic int current_level = CFG_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum cfg_log_level lvl)
{
	atomic_store_explicit(&current_level, (int)lvl, memory_order_relaxed);
}

bool log_enabled(enum cfg_log_level lvl)
{
	return (int)lvl <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

void log_write(enum cfg_log_level lvl, const char *module, const char *fmt, ...)
{
	if (!log_enabled(lvl))
		return;
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s %s: ", level_names[lvl], module);
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* Messages may quote packet bytes (a Call-ID, a user name): a CR, LF or
	 * other control byte must not forge a second log line or a terminal escape. */
	for (size_t i = (size_t)n; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

bool log_limit_pass(struct log_limit *l, uint64_t *suppressed)
{
	uint64_t now = now_mono_sec() + 1; /* +1: 0 means "never logged" */
	uint64_t last = atomic_load_explicit(&l->last_sec, memory_order_relaxed);
	if (last != now &&
	    atomic_compare_exchange_strong_explicit(&l->last_sec, &last, now, memory_order_relaxed,
						    memory_order_relaxed)) {
		*suppressed = atomic_exchange_explicit(&l->suppressed, 0, memory_order_relaxed);
		return true;
	}
	atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
	return false;
}

bool log_limit_pass_key(struct log_limit_keyed *l, const char *key, size_t len, uint64_t *suppressed)
{
	uint64_t sec = (now_mono_sec() + 1) & 0xffffffu; /* +1: 0 means "never logged" */
	uint64_t h = slice_hash(slice_make(key, len));
	unsigned i = (unsigned)(h % LOG_KEYS_MAX);
	uint64_t want = (h & ~0xffffffull) | sec;
	uint64_t seen = atomic_load_explicit(&l->slot[i].hash_sec, memory_order_relaxed);
	/* this key logged in this second already (or lost the race for it) */
	if (seen == want ||
	    !atomic_compare_exchange_strong_explicit(&l->slot[i].hash_sec, &seen, want, memory_order_relaxed,
						     memory_order_relaxed)) {
		atomic_fetch_add_explicit(&l->slot[i].suppressed, 1, memory_order_relaxed);
		return false;
	}
	/* the event's cap: LOG_KEYED_PER_SEC lines a second across keys */
	uint64_t cur = atomic_load_explicit(&l->sec_lines, memory_order_relaxed), next;
	do {
		next = (cur >> 24) == sec ? cur + 1 : (sec << 24) | 1;
		if ((next & 0xffffffu) > LOG_KEYED_PER_SEC) {
			atomic_fetch_add_explicit(&l->overflow, 1, memory_order_relaxed);
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(&l->sec_lines, &cur, next, memory_order_relaxed,
							memory_order_relaxed));
	*suppressed = atomic_exchange_explicit(&l->slot[i].suppressed, 0, memory_order_relaxed) +
		      atomic_exchange_explicit(&l->overflow, 0, memory_order_relaxed);
	return true;
}
