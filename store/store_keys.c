/* store_keys.c - the only file that spells the Redis names of SPEC §6
 * (contract): referee:user:<id>, referee:nc:<nonce>, referee:jti:<jti>, the
 * referee:invalidate channel (STORE_REDIS_CHANNEL in store_priv.h), and the
 * Lua script that makes nc check-and-set and JTI binding atomic on the
 * server, shared by every instance. The user hash's field names are
 * STORE_FIELD_* in store_priv.h; URLs are parsed by core's cfg_redis_url_parse. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "hex.h"
#include "store_priv.h"

#define KEY_USER "referee:user:"
#define KEY_NC "referee:nc:"
#define KEY_JTI "referee:jti:"

static int key_build(char *buf, size_t cap, const char *prefix, struct slice tail)
{
	int n = snprintf(buf, cap, "%s%.*s", prefix, SLICE_FMT(tail));
	return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : n;
}

int store_key_user(char *buf, size_t cap, struct slice id)
{
	return key_build(buf, cap, KEY_USER, id);
}

int store_key_nc(char *buf, size_t cap, struct slice nonce)
{
	return key_build(buf, cap, KEY_NC, nonce);
}

int store_key_jti(char *buf, size_t cap, struct slice jti)
{
	return key_build(buf, cap, KEY_JTI, jti);
}

const char *store_key_user_pattern(void)
{
	return KEY_USER "*";
}

size_t store_key_user_prefix_len(void)
{
	return sizeof(KEY_USER) - 1;
}

/* KEYS[1] = referee:nc:<nonce> or referee:jti:<jti>
 * ARGV = "nc", count, ttl  -> 1 when count is above the stored one (stored), else 0
 * ARGV = "jti", dialog, ttl -> 1 when unbound (now bound) or bound to dialog, else 0 */
static const char script[] =
	"if ARGV[1] == 'nc' then\n"
	"  local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')\n"
	"  if tonumber(ARGV[2]) <= cur then return 0 end\n"
	"  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
	"  return 1\n"
	"end\n"
	"local cur = redis.call('GET', KEYS[1])\n"
	"if not cur then\n"
	"  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
	"  return 1\n"
	"end\n"
	"if cur == ARGV[2] then return 1 end\n"
	"return 0\n";

static char script_sha[41];

const char *store_script_text(void)
{
	return script;
}

const char *store_script_sha(void)
{
	if (!script_sha[0]) { /* first call at init, before any thread uses it */
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		EVP_Digest(script, sizeof(script) - 1, md, &mdlen, EVP_sha1(), NULL);
		script_sha[hex_encode(md, 20, script_sha)] = '\0';
	}
	return script_sha;
}
