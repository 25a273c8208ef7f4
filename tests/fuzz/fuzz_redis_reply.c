/* fuzz_redis_reply.c - libFuzzer entry: Redis replies as referee reads them:
 * the bytes go through hiredis's protocol reader with the bounded builders
 * (store_redis_bound.c, as the async and blocking clients read), and every
 * reply it builds is handed to the user-hash parser of the store
 * (store_redis_user_parse, SPEC §6: HGETALL of referee:user:<id>). A user it
 * accepts must have a usable HA1; no reply may cost more than the bound. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store_redis_priv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* names the data may carry, as the rules and users of a running instance intern them */
	store_perm_intern("LocalDialing", 12);
	store_perm_intern("InternationalDialing", 20);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	/* bounded as every reader of store/ (store_redis_bound.c): "*123456789" is
	 * refused at its header instead of allocating a gigabyte */
	struct store_reply_budget budget;
	redisReader *rd = redisReaderCreate();
	if (!rd)
		return 0;
	store_reply_bound(rd, &budget);
	if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
		void *reply = NULL;
		for (int i = 0; i < 64 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply; i++) {
			const redisReply *r = reply;
			if (r->type == REDIS_REPLY_ARRAY) {
				struct store_user u;
				char why[128];
				memset(&u, 0, sizeof(u));
				const char *bad = store_redis_user_parse(r, &u, why, sizeof(why));
				if (!bad && !u.has_md5 && !u.has_sha256)
					abort();
			}
			freeReplyObject(reply);
			reply = NULL;
		}
		if (budget.used > STORE_REPLY_MAX_BYTES)
			abort(); /* the bound did not hold */
	}
	redisReaderFree(rd);
	return 0;
}
