/* store_perm.c - permission names interned to small integers (bits of a
 * 128-bit set). "ValidUser" = 0 and "NoAccess" = 1 exist from the start.
 * Names are added only at startup/reload (under a mutex) and never removed,
 * so readers scan lock-free: a slot is fully written before the count that
 * exposes it is published (release store, acquire load). SPEC §4, §6. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "store_priv.h"

static char perm_names[STORE_MAX_PERMISSIONS][STORE_PERM_NAME_MAX] = { "ValidUser", "NoAccess" };
static uint8_t perm_lens[STORE_MAX_PERMISSIONS] = { 9, 8 };
/* Written by store_perm_intern under perm_lock (release), read by anyone (acquire). */
static _Atomic unsigned perm_count = 2;
static pthread_mutex_t perm_lock = PTHREAD_MUTEX_INITIALIZER;

static bool perm_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-' || c == '.';
}

static int perm_find(const char *name, size_t len, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (perm_lens[i] == len && memcmp(perm_names[i], name, len) == 0)
			return (int)i;
	return -ENOENT;
}

int store_perm_id(const char *name, size_t len)
{
	/* pairs with the release store in store_perm_intern */
	unsigned n = atomic_load_explicit(&perm_count, memory_order_acquire);
	return perm_find(name, len, n);
}

const char *store_perm_name(unsigned idx)
{
	unsigned n = atomic_load_explicit(&perm_count, memory_order_acquire);
	return idx < n ? perm_names[idx] : NULL;
}

int store_perm_intern(const char *name, size_t len)
{
	if (len == 0 || len >= STORE_PERM_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!perm_char_ok(name[i]))
			return -EINVAL;
	pthread_mutex_lock(&perm_lock);
	unsigned n = atomic_load_explicit(&perm_count, memory_order_relaxed);
	int rc = perm_find(name, len, n);
	if (rc >= 0)
		goto out;
	if (n >= STORE_MAX_PERMISSIONS) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(perm_names[n], name, len);
	perm_names[n][len] = '\0';
	perm_lens[n] = (uint8_t)len;
	/* pairs with the acquire loads in store_perm_id / store_perm_name */
	atomic_store_explicit(&perm_count, n + 1, memory_order_release);
	rc = (int)n;
out:
	pthread_mutex_unlock(&perm_lock);
	return rc;
}

int store_perms_parse(struct slice list, uint64_t set[2], struct slice *bad)
{
	set[0] = set[1] = 0;
	while (list.len) {
		ptrdiff_t comma = slice_find_char(list, ',');
		size_t n = comma < 0 ? list.len : (size_t)comma;
		struct slice name = slice_trim(slice_make(list.p, n));
		list = slice_advance(list, comma < 0 ? n : n + 1);
		if (name.len == 0)
			continue;
		int id = store_perm_id(name.p, name.len);
		if (id < 0) {
			if (bad)
				*bad = name;
			return -ENOENT;
		}
		store_perms_add(set, (unsigned)id);
	}
	return 0;
}

int store_perms_format(const uint64_t set[2], char *buf, size_t cap)
{
	size_t used = 0;
	if (cap == 0)
		return -ENOSPC;
	buf[0] = '\0';
	for (unsigned i = 0; i < STORE_MAX_PERMISSIONS; i++) {
		if (!store_perms_has(set, i))
			continue;
		const char *name = store_perm_name(i);
		if (!name)
			continue;
		size_t len = strlen(name);
		if (used + len + 2 > cap)
			return -ENOSPC;
		if (used)
			buf[used++] = ',';
		memcpy(buf + used, name, len + 1);
		used += len;
	}
	return (int)used;
}
