/* fuzz_dns_answer.c - libFuzzer entry over DNS answer handling (SPEC §10:
 * answers are input): dns_answer_parse for each record type the resolver
 * asks for, then what the resolver does with the records (NAPTR choice
 * fields, SRV targets and ports, addresses into targets and dns_pick). The
 * input is copied into an exact-size buffer so ASan catches any overread. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	static const uint16_t types[] = { DNS_T_NAPTR, DNS_T_SRV, DNS_T_A, DNS_T_AAAA };
	static struct dns_answer a;
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		const enum dns_error e = dns_answer_parse(buf, size, types[k], &a);
		if (e != DNS_OK && e != DNS_E_OVERFLOW)
			continue;
		struct dns_targets ts = { 0 };
		for (unsigned i = 0; i < a.n && i < DNS_MAX_RECORDS; i++) {
			const struct dns_rr *r = &a.rr[i];
			if (r->type == DNS_T_NAPTR) {
				if (strlen(r->u.naptr.flags) >= sizeof(r->u.naptr.flags) ||
				    strlen(r->u.naptr.replacement) >= DNS_NAME_MAX)
					abort();
			} else if (r->type == DNS_T_SRV) {
				if (strlen(r->u.srv.target) >= DNS_NAME_MAX)
					abort();
			} else if (ts.n < DNS_MAX_TARGETS) {
				struct dns_target *t = &ts.t[ts.n++];
				memset(t, 0, sizeof(*t));
				if (r->type == DNS_T_A) {
					struct sockaddr_in *in = (struct sockaddr_in *)&t->sa;
					in->sin_family = AF_INET;
					memcpy(&in->sin_addr, r->u.a, 4);
				} else {
					struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->sa;
					in6->sin6_family = AF_INET6;
					memcpy(&in6->sin6_addr, r->u.aaaa, 16);
				}
				t->priority = (uint16_t)r->ttl;
				t->weight = (uint16_t)(r->ttl >> 16);
				t->seed = r->ttl * 0x9e3779b97f4a7c15ull;
			}
		}
		(void)dns_pick(&ts, size, AF_INET);
		(void)dns_pick(&ts, size, AF_INET6);
	}
	free(buf);
	return 0;
}
