#pragma once
/* slice.h - a view into bytes someone else owns (pointer + length).
 * Packet bytes are never NUL-terminated: print with "%.*s", (int)s.len, s.p. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct slice {
	const char *p;
	size_t len;
};

#define SLICE_LIT(s) ((struct slice){ (s), sizeof(s) - 1 })
#define SLICE_NULL ((struct slice){ NULL, 0 })
#define SLICE_FMT(s) (int)(s).len, (s).p

static inline struct slice slice_make(const char *p, size_t len)
{
	return (struct slice){ p, len };
}

static inline struct slice slice_from_cstr(const char *s)
{
	return (struct slice){ s, s ? strlen(s) : 0 };
}

static inline bool slice_is_empty(struct slice s)
{
	return s.len == 0;
}

static inline bool slice_eq(struct slice a, struct slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ASCII case-insensitive comparison (SIP tokens, header names, hosts). */
bool slice_caseeq(struct slice a, struct slice b);
bool slice_has_caseprefix(struct slice s, struct slice prefix);
/* slice_trim - drop leading and trailing SP / HTAB / CR / LF. */
struct slice slice_trim(struct slice s);
/* slice_to_u32 - whole slice is decimal digits (leading zeros allowed), value
 * fits in 32 bits. Returns false (and leaves *out untouched) otherwise. */
bool slice_to_u32(struct slice s, uint32_t *out);
/* slice_find_char - first index of c, or -1. */
ptrdiff_t slice_find_char(struct slice s, char c);
/* slice_advance - drop n bytes from the front (n clamped to len). */
static inline struct slice slice_advance(struct slice s, size_t n)
{
	if (n > s.len)
		n = s.len;
	return (struct slice){ s.p + n, s.len - n };
}
/* slice_hash - keyed 64-bit SipHash-2-4 (key from the secret, slice_hash_key_set),
 * for choosing a worker and for every hash table keyed by packet text. */
uint64_t slice_hash(struct slice s);
/* slice_hash_key_set - the key of slice_hash. Once at start, before threads. */
void slice_hash_key_set(const uint64_t key[2]);
