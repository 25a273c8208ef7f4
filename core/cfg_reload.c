/* cfg_reload.c - what a reload may change (SPEC §7): the module parts a
 * generation carries (cfg_gen_*), the lines of the keys as written, and the
 * refusal of keys that only a restart can apply. The sockets, the threads,
 * the store backend, the metrics server and the secret are built once at
 * start; a reload that changes them is refused as a whole, naming the line. */
#include "cfg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void cfg_gen_attach(struct cfg *c, enum cfg_gen_slot slot, void *data, void (*release)(void *data))
{
	struct cfg_gen_part *g = &c->gen[slot];
	if (g->data && g->release)
		g->release(g->data);
	g->data = data;
	g->release = release;
}

unsigned cfg_key_line(const struct cfg *c, const char *name)
{
	for (unsigned i = 0; i < c->n_key_lines; i++)
		if (strcmp(c->key_lines[i].name, name) == 0)
			return c->key_lines[i].line;
	return 0;
}

static bool listen_same(const struct cfg *a, const struct cfg *b)
{
	if (a->n_listen != b->n_listen)
		return false;
	for (unsigned i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
			return false;
	return true;
}

/* refuse - "FILE:LINE: KEY cannot change on reload; restart", LINE of @key in
 * the new file, else of its section, else of the top-level mapping. */
static int refuse(const struct cfg *next, const char *key, const char *section, char *err, size_t errlen)
{
	unsigned line = cfg_key_line(next, key);
	if (!line && section)
		line = cfg_key_line(next, section);
	if (!line)
		line = next->root_line ? next->root_line : 1;
	snprintf(err, errlen, "%s:%u: %s cannot change on reload; restart", next->path, line, key);
	return -EINVAL;
}

int cfg_reload_check(const struct cfg *cur, const struct cfg *next, char *err, size_t errlen)
{
	if (!listen_same(cur, next))
		return refuse(next, "listen", NULL, err, errlen);
	if (cur->threads.receivers != next->threads.receivers)
		return refuse(next, "threads.receivers", "threads", err, errlen);
	if (cur->threads.workers != next->threads.workers)
		return refuse(next, "threads.workers", "threads", err, errlen);
	if (cur->threads.inline_receive != next->threads.inline_receive)
		return refuse(next, "threads.inline_receive", "threads", err, errlen);
	if (cur->store.backend != next->store.backend)
		return refuse(next, "store.backend", "store", err, errlen);
	if (strcmp(cur->store.redis, next->store.redis) != 0)
		return refuse(next, "store.redis", "store", err, errlen);
	if (cur->metrics.enabled != next->metrics.enabled ||
	    (cur->metrics.enabled && strcmp(cur->metrics.listen.text, next->metrics.listen.text) != 0))
		return refuse(next, "metrics.listen", "metrics", err, errlen);
	/* each worker's request slots are allocated at start; store.cache_max_age and the
	 * caps (store.cache_max_entries, store.marks_max_entries) are applied in place by
	 * store_gen_commit, limits.sources_max by flood_reload */
	if (cur->store.max_inflight != next->store.max_inflight)
		return refuse(next, "store.max_inflight", "store", err, errlen);
	if (strcmp(cur->secret_file, next->secret_file) != 0)
		return refuse(next, "secret_file", NULL, err, errlen);
	return 0;
}
