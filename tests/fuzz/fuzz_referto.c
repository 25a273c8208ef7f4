/* fuzz_referto.c - libFuzzer entry: the Refer-To rewrite of an authenticated
 * REFER (transfer_referto.c, SPEC §5): parse, "applies?", rewrite with a
 * grant parameter and an X-Sipx-Authidentity header, and the Request-URI
 * rewrite; the output must parse again as a Refer-To whose URI keeps the
 * host, carries exactly our refgrant and fits the buffer it was given. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip.h"
#include "transfer_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *value = malloc(size ? size : 1); /* exact size: ASan sees a read past the value */
	memcpy(value, data, size);
	char *scratch = malloc(size + 4);
	struct transfer_referto r;
	/* referee rewrites only a Refer-To that applies (sip:, INVITE or no method) */
	if (transfer_referto_parse(slice_make(value, size), scratch, size + 4, &r) == 0 &&
	    transfer_referto_applies(&r)) {
		char canon[512];
		(void)transfer_target_canon(&r.uri, canon, sizeof(canon));
		static const char grant[] = "refgrant=AAAABBBBCCCC";
		static const char hv[] = "<sip:1001@example.com>;signature=x%y \"z\"";
		size_t cap = size + 512;
		char *out = malloc(cap);
		int n = transfer_referto_rewrite(&r, SLICE_LIT(grant), SLICE_LIT("X-Sipx-Authidentity"),
						 SLICE_LIT(hv), out, cap);
		if (n > (int)cap)
			abort();
		if (n >= 0) {
			/* what we put in a REFER must be a Refer-To we would parse ourselves */
			char *again = malloc((size_t)n ? (size_t)n : 1), *scratch2 = malloc((size_t)n + 4);
			memcpy(again, out, (size_t)n);
			struct transfer_referto r2;
			if (transfer_referto_parse(slice_make(again, (size_t)n), scratch2, (size_t)n + 4, &r2) != 0)
				abort();
			if (!slice_eq(r2.uri.host, r.uri.host))
				abort();
			struct slice v;
			if (!sip_uri_param(&r2.uri, SLICE_LIT("refgrant"), &v) || !slice_eq(v, SLICE_LIT("AAAABBBBCCCC")))
				abort();
			free(again);
			free(scratch2);
		}
		n = transfer_uri_rewrite(&r.uri, SLICE_LIT(""), SLICE_LIT(""), SLICE_LIT(""), out, cap);
		if (n > (int)cap)
			abort();
		free(out);
	}
	free(scratch);
	free(value);
	return 0;
}
