/* fuzz_digest_params.c - libFuzzer entry: the Digest parameter parser of
 * Proxy-Authorization (auth_params.c, RFC 7616 §3.4): every slice it returns
 * must lie inside the value, a success must carry the required fields within
 * their limits, and parsing must not depend on bytes past the value (the
 * input is copied into an exact-size buffer for ASan). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_priv.h"

static void inside(struct slice s, const char *base, size_t n)
{
	if (s.len && (s.p < base || s.p + s.len > base + n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *value = malloc(size ? size : 1);
	memcpy(value, data, size);
	struct auth_creds c;
	memset(&c, 0, sizeof(c));
	int rc = auth_creds_parse(slice_make(value, size), &c);
	const struct slice all[] = { c.username, c.realm, c.nonce, c.uri, c.response, c.cnonce, c.opaque, c.qop, c.nc_text };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		inside(all[i], value, size);
	if (rc == 0) {
		if (c.username.len == 0 || c.nonce.len == 0 || c.response.len == 0 || c.uri.len > AUTH_URI_MAX ||
		    c.username.len > AUTH_VALUE_MAX || c.nonce.len > AUTH_VALUE_MAX)
			abort();
		if (c.qop.len && c.nc_text.len != 8)
			abort();
	} else if (rc != -ENOENT && rc != -EBADMSG && rc != -ENOTSUP) {
		abort();
	}
	free(value);
	return 0;
}
