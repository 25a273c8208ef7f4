/* admin_import.h - referee-admin's migration commands (SPEC §14), private to
 * referee-admin: import-authrules (sipXecs authrules.xml -> rules: YAML) and
 * import-users (CSV -> the configured store). Both return the process exit
 * code: 0 done, 1 failed (the reason already printed on stderr). */
#ifndef REFEREE_ADMIN_IMPORT_H
#define REFEREE_ADMIN_IMPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "cfg.h"

struct store_sync; /* store_redis_priv.h: referee-admin's Redis client */

/* admin_import_authrules - convert the sipXecs authrules.xml at @path into an
 * equivalent rules: list written to @out. Every construct whose sipXecs
 * meaning referee's rules cannot reproduce exactly is an error
 * "PATH:LINE: element: why" and nothing is written. */
int admin_import_authrules(const char *path, FILE *out);

/* admin_import_users - load the CSV at @path (id,ha1_md5[,ha1_sha256],permissions)
 * into the store of @cfg: all rows or none. File backend: prints the users-file
 * entries; Redis (@rs connected): one MULTI/EXEC (per user in a cluster), then
 * one invalidation per id. */
int admin_import_users(const struct cfg *cfg, struct store_sync *rs, const char *path);

/* admin_perm_name_ok - the syntax of a permission name (what store_perm_intern
 * accepts: letters, digits, '_', '-', '.', under STORE_PERM_NAME_MAX bytes). */
bool admin_perm_name_ok(const char *p);

#endif
