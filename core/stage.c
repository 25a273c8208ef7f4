/* stage.c - building the stage table at startup (STYLE §11). The chain is
 * run by proxy_process, not here; this file only appends entries and hooks.
 * Not thread-safe: the table is filled before pipeline_run and is read-only
 * afterwards (workers read it without synchronisation). */
#include "stage.h"

#include <errno.h>

enum stage_rc stage_reply_unavailable(struct txn *t)
{
	txn_reply(t, 503, SLICE_NULL);
	txn_reply_hdr(t, SLICE_LIT("Retry-After: 5"));
	return STAGE_REPLY;
}

int stage_add(struct stage_table *st, const char *name, stage_fn fn, bool requests_only)
{
	if (!st || !fn)
		return -EINVAL;
	if (st->n >= TXN_MAX_STAGES)
		return -ENOSPC;
	st->stages[st->n++] = (struct stage){ .name = name, .fn = fn, .requests_only = requests_only };
	return 0;
}

int stage_add_worker_hooks(struct stage_table *st, stage_worker_init_fn init,
			   stage_worker_fini_fn fini, void *arg)
{
	if (!st || (!init && !fini))
		return -EINVAL;
	const unsigned cap = sizeof(st->hooks) / sizeof(st->hooks[0]);
	if (st->n_hooks >= cap)
		return -ENOSPC;
	st->hooks[st->n_hooks].init = init;
	st->hooks[st->n_hooks].fini = fini;
	st->hooks[st->n_hooks].arg = arg;
	st->n_hooks++;
	return 0;
}
