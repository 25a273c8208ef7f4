/* slice.c - helpers on borrowed byte ranges. No allocation, no NUL assumptions. */
#include <string.h>

#include "slice.h"
#include "proxy_priv.h" /* proxy_siphash */

#include "charclass.h"

static inline char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* eight bytes lowered at once: for each byte below 0x80, 'A'..'Z' gains 0x20 (the
 * sums cannot carry into the next byte: the high bit is masked off first); bytes
 * from 0x80 up are left as they are, as ascii_lower leaves them */
static inline uint64_t ascii_lower8(uint64_t x)
{
	const uint64_t high = 0x8080808080808080ull;
	const uint64_t low7 = x & ~high;
	const uint64_t ge_a = low7 + 0x3f3f3f3f3f3f3f3full; /* high bit: byte >= 'A' */
	const uint64_t gt_z = low7 + 0x2525252525252525ull; /* high bit: byte > 'Z' */
	const uint64_t upper = (ge_a ^ gt_z) & ~x & high;
	return x | (upper >> 2);
}

static inline uint64_t load8(const char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

bool slice_caseeq(struct slice a, struct slice b)
{
	if (a.len != b.len)
		return false;
	const size_t n = a.len;
	if (n >= 8) {
		/* whole words, then the last eight bytes (overlapping): never past the end */
		for (size_t i = 0; i + 8 <= n; i += 8)
			if (ascii_lower8(load8(a.p + i)) != ascii_lower8(load8(b.p + i)))
				return false;
		return ascii_lower8(load8(a.p + n - 8)) == ascii_lower8(load8(b.p + n - 8));
	}
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a.p[i]) != ascii_lower(b.p[i]))
			return false;
	return true;
}

bool slice_has_caseprefix(struct slice s, struct slice prefix)
{
	return s.len >= prefix.len && slice_caseeq(slice_make(s.p, prefix.len), prefix);
}

struct slice slice_trim(struct slice s)
{
	while (s.len && sip_cc_is(s.p[0], SIP_CC_LWS)) {
		s.p++;
		s.len--;
	}
	while (s.len && sip_cc_is(s.p[s.len - 1], SIP_CC_LWS))
		s.len--;
	return s;
}

bool slice_to_u32(struct slice s, uint32_t *out)
{
	if (s.len == 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

ptrdiff_t slice_find_char(struct slice s, char c)
{
	const char *hit = s.len ? memchr(s.p, c, s.len) : NULL;
	return hit ? hit - s.p : -1;
}

/* The key of slice_hash: written once at start (slice_hash_key_set, before
 * any thread), read by every thread. The default only serves tools and tests
 * that never load a secret. */
static uint64_t slice_hash_key[2] = { 0x736c6963652d6b65ull, 0x792d64656661756cull };

void slice_hash_key_set(const uint64_t key[2])
{
	slice_hash_key[0] = key[0];
	slice_hash_key[1] = key[1];
}

uint64_t slice_hash(struct slice s)
{
	/* keyed SipHash-2-4: text from packets (Call-IDs, user names, nonces,
	 * JTIs) cannot be chosen to pile onto one worker or one bucket chain */
	return proxy_siphash(slice_hash_key, s.p, s.len);
}
