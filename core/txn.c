/* txn.c - the per-txn arena and the helpers stages use to record a local
 * reply and edits to the outgoing request (txn.h). Nothing here builds bytes
 * for the wire: proxy_process and the forwarder read these fields. No malloc,
 * no locks: a txn belongs to one thread at a time (receiver, then worker).
 * Invariant: arena_used <= TXN_ARENA_SIZE and every allocation is 8-aligned. */
#include "txn.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

void *txn_alloc(struct txn *t, size_t n)
{
	size_t off = ((size_t)t->arena_used + 7u) & ~(size_t)7u;
	if (off > TXN_ARENA_SIZE || n > TXN_ARENA_SIZE - off)
		return NULL;
	t->arena_used = (uint32_t)(off + n);
	return t->arena + off;
}

struct slice txn_copy(struct txn *t, struct slice s)
{
	if (s.len == 0)
		return slice_make(t->arena, 0);
	char *p = txn_alloc(t, s.len);
	if (!p)
		return SLICE_NULL;
	memcpy(p, s.p, s.len);
	return slice_make(p, s.len);
}

struct slice txn_printf(struct txn *t, const char *fmt, ...)
{
	size_t off = ((size_t)t->arena_used + 7u) & ~(size_t)7u;
	if (off >= TXN_ARENA_SIZE)
		return SLICE_NULL;
	size_t room = TXN_ARENA_SIZE - off;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->arena + off, room, fmt, ap);
	va_end(ap);
	/* n == room would need one more byte for vsnprintf's NUL: too long */
	if (n < 0 || (size_t)n >= room)
		return SLICE_NULL;
	t->arena_used = (uint32_t)(off + (size_t)n);
	return slice_make(t->arena + off, (size_t)n);
}

void txn_reply(struct txn *t, uint16_t code, struct slice reason)
{
	t->reply_code = code;
	t->reply_reason = reason;
}

int txn_reply_hdr(struct txn *t, struct slice line)
{
	if (t->n_reply_hdrs >= TXN_MAX_REPLY_HDRS)
		return -ENOSPC;
	if (!line.p || line.len == 0)
		return -EINVAL;
	t->reply_hdrs[t->n_reply_hdrs++] = line;
	return 0;
}

void txn_hdr_remove(struct txn *t, unsigned idx)
{
	if (idx < SIP_MAX_HDRS)
		t->edits.removed[idx / 64] |= 1ull << (idx % 64);
}

int txn_hdr_replace(struct txn *t, unsigned idx, struct slice value)
{
	struct txn_edits *e = &t->edits;
	if (idx >= SIP_MAX_HDRS || !value.p)
		return -EINVAL;
	for (unsigned i = 0; i < e->n_replaced; i++)
		if (e->replaced_idx[i] == idx) {
			e->replaced[i] = value;
			return 0;
		}
	if (e->n_replaced >= TXN_MAX_REPLACED)
		return -ENOSPC;
	e->replaced_idx[e->n_replaced] = (uint8_t)idx;
	e->replaced[e->n_replaced++] = value;
	return 0;
}

bool txn_hdr_removed(const struct txn *t, unsigned idx)
{
	return idx < SIP_MAX_HDRS && (t->edits.removed[idx / 64] >> (idx % 64) & 1u);
}

struct slice txn_hdr_replacement(const struct txn *t, unsigned idx)
{
	for (unsigned i = 0; i < t->edits.n_replaced; i++)
		if (t->edits.replaced_idx[i] == idx)
			return t->edits.replaced[i];
	return SLICE_NULL;
}

int txn_hdr_add(struct txn *t, struct slice line)
{
	if (t->edits.n_added >= TXN_MAX_ADD_HDRS)
		return -ENOSPC;
	if (!line.p || line.len == 0)
		return -EINVAL;
	t->edits.added[t->edits.n_added++] = line;
	return 0;
}

void txn_ruri_set(struct txn *t, struct slice ruri)
{
	if (ruri.p && ruri.len) {
		t->edits.ruri = ruri;
		t->view.looked &= (uint8_t)~TXN_VIEW_ROUTE; /* decided again for the new URI */
	}
}

void txn_reset(struct txn *t)
{
	/* everything from `worker` up to the arena bytes: worker/stage state,
	 * identity, reply, edits, output and arena_used. The arena bytes are
	 * garbage by contract and not cleared (8 KB per message for nothing). */
	size_t from = offsetof(struct txn, worker);
	size_t to = offsetof(struct txn, arena);
	memset((char *)t + from, 0, to - from);
}
