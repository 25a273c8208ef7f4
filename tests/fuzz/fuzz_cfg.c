/* fuzz_cfg.c - libFuzzer entry: the configuration loader (cfg_load, SPEC §7)
 * and the users file parser (store_users_file_load, SPEC §6) on arbitrary
 * bytes, read from a memfd as a file would be. Every failure must be one
 * "FILE:LINE: ..." message; a success must satisfy the loader's own promises
 * (counts within their caps, a realm, a users file with the file backend). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <urcu.h>

#include "cfg.h"
#include "store_priv.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("referee-fuzz-cfg", 0);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rcu_register_thread();
	return 0;
}

static void error_shape(const char *err)
{
	/* "PATH:LINE: message" */
	size_t n = strlen(path);
	if (strncmp(err, path, n) != 0 || err[n] != ':' || err[n + 1] < '1' || err[n + 1] > '9' || !strstr(err + n + 1, ": "))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536 || size < 1)
		return 0;
	/* the first byte picks the parser, the rest is the file */
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	char err[512];
	if (data[0] & 1) {
		struct store_users *tb = store_users_file_load(path, "example.com", err, sizeof(err));
		if (!tb)
			error_shape(err);
		else {
			synchronize_rcu();
			store_users_free(tb);
		}
		return 0;
	}
	struct cfg *c = cfg_load(path, err, sizeof(err));
	if (!c) {
		error_shape(err);
		return 0;
	}
	if (c->n_listen < 1 || c->n_listen > CFG_MAX_LISTEN || c->n_domains < 1 || c->n_domains > CFG_MAX_DOMAINS ||
	    c->n_trusted > CFG_MAX_TRUSTED || c->n_rules > CFG_MAX_RULES || !c->realm[0] ||
	    (c->store.backend == CFG_STORE_FILE && !c->store.file[0]) ||
	    (c->store.backend == CFG_STORE_REDIS && !c->store.redis[0]))
		abort();
	/* a reload to itself changes nothing a restart is needed for */
	if (cfg_reload_check(c, c, err, sizeof(err)) != 0)
		abort();
	cfg_free(c);
	return 0;
}
