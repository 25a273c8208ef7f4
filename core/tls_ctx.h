#pragma once
/* tls_ctx.h - the shared OpenSSL 3 contexts of the TLS transport (SPEC §9).
 *
 * One server SSL_CTX (our certificate, client verification per
 * tls.verify_client, session tickets) and one client SSL_CTX (next hops:
 * verified against tls.ca_file or the system CAs, SNI and host name checked
 * per RFC 5922) for the whole process. Connections take a reference
 * (SSL_new) from whichever pair is current; tls_ctx_reload builds a new pair
 * from the files and swaps it, so established connections keep theirs and
 * the old contexts are freed with their last connection (no drop, no leak).
 * Readers: any thread, inside rcu_read_lock (tls_ctx_server/client). Writer:
 * the main thread (tls_ctx_start, tls_ctx_reload, tls_ctx_stop). */
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

typedef struct ssl_ctx_st SSL_CTX;

/**
 * tls_files_check - load what @c's tls.* keys name (certificate chain,
 * private key matching it, CA file) into a throwaway context.
 * Returns 0, or -EINVAL with *@key the key at fault ("tls.certificate") and
 * @why a short reason. Startup, reload and --check (cfg_finish).
 */
int tls_files_check(const struct cfg *c, const char **key, char *why, size_t whylen);

/* tls_ctx_start - build the contexts for @c (server only when it has a
 * certificate). 0 or -errno (logged). Main thread, before the threads start. */
int tls_ctx_start(const struct cfg *c);
/* tls_ctx_reload - rebuild from @c's files and swap (SIGHUP). A failure keeps
 * the running contexts. 0 or -errno (logged). Main thread. */
int tls_ctx_reload(const struct cfg *c);
/* tls_ctx_stop - drop the current contexts (after the threads stopped). */
void tls_ctx_stop(void);

/* tls_ctx_server / tls_ctx_client - the current contexts, or NULL. Caller is
 * inside rcu_read_lock and takes its own reference (SSL_new) before leaving. */
SSL_CTX *tls_ctx_server(void);
SSL_CTX *tls_ctx_client(void);

/* tls_ctx_generation - bumped by every successful reload (tests, logs). */
unsigned tls_ctx_generation(void);
