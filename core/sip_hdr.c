/* sip_hdr.c - tables derived from SIP_HEADER_LIST and the method list:
 * header name <-> id (full and compact forms, ASCII case-insensitive, through a
 * small open-addressing hash built once at load time), method lookup and
 * header access helpers (RFC 3261 §7.3.1, §20; the parsers' byte classes are
 * charclass.c). It does not parse header values. Lookups never allocate. */
#include <errno.h>

#include "sip_priv.h"

/* ---------------------------------------------------------------- header table */

struct hdr_row {
	struct slice name;
	char compact;
	unsigned flags;
};

/* clang-format off */
static const struct hdr_row hdr_rows[SIP_HDR_COUNT] = {
	[SIP_HDR_OTHER] = { { "", 0 }, 0, 0 },
#define X(e, name, c, f) [SIP_HDR_##e] = { SLICE_LIT(name), (c), (f) },
	SIP_HEADER_LIST(X)
#undef X
};
/* clang-format on */

/* Open addressing over (length, first, last byte), case folded; with the
 * current list every known name lands in its own slot (no probing), and a
 * new row at worst adds a short probe chain. Filled once before main(), then
 * read-only, so any thread may look up without synchronisation. */
#define HDR_SLOTS 128u
static uint8_t hdr_slot[HDR_SLOTS]; /* id, or SIP_HDR_OTHER for an empty slot */
static uint8_t hdr_compact[128];    /* lower-case compact letter -> id */

/* Header names are tokens; for token bytes OR 0x20 folds case exactly
 * (the only non-letter it could confuse, '_' vs DEL, is not a token byte). */
static inline unsigned fold(char c) { return (unsigned char)c | 0x20u; }

static inline unsigned hdr_hash(const char *p, size_t n)
{
	return (unsigned)(n + fold(p[0]) * 13u + fold(p[n - 1])) & (HDR_SLOTS - 1);
}

/* n >= 2 here (one-letter names are compact forms). Overlapping loads, so every
 * length is two or three compares and nothing is read past either name. */
static inline bool name_caseeq(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		const uint64_t lower = 0x2020202020202020ull;
		uint64_t x, y;
		for (size_t i = 0; i + 8 <= n; i += 8) {
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if ((x | lower) != (y | lower))
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return (x | lower) == (y | lower);
	}
	if (n >= 4) {
		const uint32_t lower = 0x20202020u;
		uint32_t x0, y0, x1, y1;
		memcpy(&x0, a, 4);
		memcpy(&y0, b, 4);
		memcpy(&x1, a + n - 4, 4);
		memcpy(&y1, b + n - 4, 4);
		return ((x0 | lower) == (y0 | lower)) & ((x1 | lower) == (y1 | lower));
	}
	for (size_t i = 0; i < n; i++)
		if (fold(a[i]) != fold(b[i]))
			return false;
	return true;
}

__attribute__((constructor)) static void hdr_table_build(void)
{
	for (unsigned id = 1; id < SIP_HDR_COUNT; id++) {
		const struct hdr_row *r = &hdr_rows[id];
		unsigned h = hdr_hash(r->name.p, r->name.len);
		while (hdr_slot[h] != SIP_HDR_OTHER)
			h = (h + 1) & (HDR_SLOTS - 1);
		hdr_slot[h] = (uint8_t)id;
		if (r->compact)
			hdr_compact[fold(r->compact) & 0x7f] = (uint8_t)id;
	}
}

enum sip_hdr_id sip_hdr_id_lookup(struct slice name)
{
	if (name.len == 0)
		return SIP_HDR_OTHER;
	if (name.len == 1) {
		unsigned c = fold(name.p[0]);
		return c < 128 ? hdr_compact[c] : SIP_HDR_OTHER;
	}
	for (unsigned h = hdr_hash(name.p, name.len);; h = (h + 1) & (HDR_SLOTS - 1)) {
		unsigned id = hdr_slot[h];
		if (id == SIP_HDR_OTHER)
			return SIP_HDR_OTHER;
		const struct slice *cand = &hdr_rows[id].name;
		if (cand->len == name.len && name_caseeq(cand->p, name.p, name.len))
			return (enum sip_hdr_id)id;
	}
}

struct slice sip_hdr_name(enum sip_hdr_id id)
{
	return (unsigned)id < SIP_HDR_COUNT ? hdr_rows[id].name : SLICE_NULL;
}

unsigned sip_hdr_flags(enum sip_hdr_id id)
{
	return (unsigned)id < SIP_HDR_COUNT ? hdr_rows[id].flags : 0;
}

/* ---------------------------------------------------------------- methods */

static const struct slice method_names[SIP_METHOD_COUNT] = {
    [SIP_METHOD_OTHER] = {"", 0},
    [SIP_METHOD_INVITE] = SLICE_LIT("INVITE"),
    [SIP_METHOD_ACK] = SLICE_LIT("ACK"),
    [SIP_METHOD_BYE] = SLICE_LIT("BYE"),
    [SIP_METHOD_CANCEL] = SLICE_LIT("CANCEL"),
    [SIP_METHOD_OPTIONS] = SLICE_LIT("OPTIONS"),
    [SIP_METHOD_REGISTER] = SLICE_LIT("REGISTER"),
    [SIP_METHOD_REFER] = SLICE_LIT("REFER"),
    [SIP_METHOD_SUBSCRIBE] = SLICE_LIT("SUBSCRIBE"),
    [SIP_METHOD_NOTIFY] = SLICE_LIT("NOTIFY"),
    [SIP_METHOD_MESSAGE] = SLICE_LIT("MESSAGE"),
    [SIP_METHOD_INFO] = SLICE_LIT("INFO"),
    [SIP_METHOD_PRACK] = SLICE_LIT("PRACK"),
    [SIP_METHOD_UPDATE] = SLICE_LIT("UPDATE"),
    [SIP_METHOD_PUBLISH] = SLICE_LIT("PUBLISH"),
};

/* Methods are case-sensitive (RFC 3261 §7.1): "invite" is an unknown method.
 * Dispatch on the first byte, then one memcmp. */
enum sip_method sip_method_lookup(struct slice s)
{
	enum sip_method c1 = SIP_METHOD_OTHER, c2 = SIP_METHOD_OTHER;
	if (s.len < 3)
		return SIP_METHOD_OTHER;
	switch (s.p[0]) {
	case 'I':
		c1 = SIP_METHOD_INVITE;
		c2 = SIP_METHOD_INFO;
		break;
	case 'A':
		c1 = SIP_METHOD_ACK;
		break;
	case 'B':
		c1 = SIP_METHOD_BYE;
		break;
	case 'C':
		c1 = SIP_METHOD_CANCEL;
		break;
	case 'O':
		c1 = SIP_METHOD_OPTIONS;
		break;
	case 'R':
		c1 = SIP_METHOD_REGISTER;
		c2 = SIP_METHOD_REFER;
		break;
	case 'S':
		c1 = SIP_METHOD_SUBSCRIBE;
		break;
	case 'N':
		c1 = SIP_METHOD_NOTIFY;
		break;
	case 'M':
		c1 = SIP_METHOD_MESSAGE;
		break;
	case 'P':
		c1 = SIP_METHOD_PRACK;
		c2 = SIP_METHOD_PUBLISH;
		break;
	case 'U':
		c1 = SIP_METHOD_UPDATE;
		break;
	default:
		return SIP_METHOD_OTHER;
	}
	if (slice_eq(s, method_names[c1]))
		return c1;
	if (c2 != SIP_METHOD_OTHER && slice_eq(s, method_names[c2]))
		return c2;
	return SIP_METHOD_OTHER;
}

struct slice sip_method_name(enum sip_method m)
{
	return (unsigned)m < SIP_METHOD_COUNT ? method_names[m] : SLICE_NULL;
}

/* ---------------------------------------------------------------- message access */

const struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id)
{
	if ((unsigned)id >= SIP_HDR_COUNT || m->first[id] == SIP_NO_HDR)
		return NULL;
	return &m->hdrs[(hdr_rows[id].flags & SIP_HF_LAST) ? m->last[id] : m->first[id]];
}

unsigned sip_msg_next(const struct sip_msg *m, unsigned i)
{
	const uint8_t id = m->hdrs[i].id;
	if (m->last[id] == SIP_NO_HDR || i >= m->last[id])
		return SIP_NO_HDR;
	for (unsigned j = i + 1; j < m->n_hdrs; j++)
		if (m->hdrs[j].id == id)
			return j;
	return SIP_NO_HDR;
}

const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, struct slice name)
{
	const enum sip_hdr_id id = sip_hdr_id_lookup(name);
	if (id != SIP_HDR_OTHER)
		return sip_msg_hdr(m, id);
	if (!(m->seen & 1u))
		return NULL;
	for (unsigned i = m->first[SIP_HDR_OTHER]; i < m->n_hdrs; i++)
		if (m->hdrs[i].id == SIP_HDR_OTHER && slice_caseeq(m->hdrs[i].name, name))
			return &m->hdrs[i];
	return NULL;
}
