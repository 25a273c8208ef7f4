/* proxy_branch.c - the Via branch we add when forwarding (RFC 3261 §16.6
 * item 8, §16.11) and its loop part (§16.3 item 4). The loop hash leaves out
 * the Routes the route decision pops (txn_route, proxy_route_is_ours), so this
 * file sits above proxy_route.c; the keys are proxy_ids.c's. Same input bytes,
 * same branch, on every instance behind the load balancer. */
#include <string.h>

#include "proxy_priv.h"

bool proxy_branch_is_3261(struct slice branch)
{
	return branch.len > 7 && memcmp(branch.p, "z9hG4bK", 7) == 0;
}

uint64_t proxy_loop_hash(struct txn *t)
{
	const struct sip_msg *m = &t->msg;
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.branch_key);
	proxy_hash_add(&h, "loop", 4);
	proxy_hash_field(&h, m->ruri);
	proxy_hash_field(&h, m->call_id);
	proxy_hash_field(&h, txn_from_tag(t));
	proxy_hash_u32(&h, m->cseq);
	/* Route values that are not ours: the ones we pop are gone when the
	 * request comes back, those left still steer it. The leading ones that
	 * are ours are known from the route decision. */
	unsigned i = m->first[SIP_HDR_ROUTE];
	if (i == SIP_NO_HDR)
		return proxy_hash_final(&h);
	for (unsigned n = txn_route(t)->n_pop; n > 0 && i != SIP_NO_HDR; n--)
		i = sip_msg_next(m, i);
	for (; i != SIP_NO_HDR; i = sip_msg_next(m, i)) {
		struct sip_uri u;
		if (!proxy_route_is_ours(t->cfg, m->call_id, m->hdrs[i].value, &u))
			proxy_hash_field(&h, m->hdrs[i].value);
	}
	return proxy_hash_final(&h);
}

void proxy_branch(struct txn *t, const struct sip_via *top, char out[PROXY_BRANCH_LEN])
{
	const struct sip_msg *m = &t->msg;
	struct proxy_hash h;
	proxy_hash_init(&h, proxy_g.branch_key);
	if (proxy_branch_is_3261(top->branch)) {
		/* §16.11: a hash of the received branch (and sent-by, which makes
		 * it unique across clients); no method, so CANCEL and the ACK of a
		 * non-2xx land on the INVITE's branch. */
		proxy_hash_add(&h, "3261", 4);
		proxy_hash_field(&h, top->branch);
		proxy_hash_field(&h, top->host);
		proxy_hash_u32(&h, top->port);
	} else {
		/* RFC 2543 sender: topmost Via, To tag, From tag, Call-ID, CSeq
		 * number and Request-URI (§16.11). */
		proxy_hash_add(&h, "2543", 4);
		const struct sip_hdr *via = sip_msg_hdr(m, SIP_HDR_VIA);
		proxy_hash_field(&h, via ? via->value : SLICE_NULL);
		proxy_hash_field(&h, txn_to_tag(t));
		proxy_hash_field(&h, txn_from_tag(t));
		proxy_hash_field(&h, m->call_id);
		proxy_hash_u32(&h, m->cseq);
		proxy_hash_field(&h, m->ruri);
	}
	const uint64_t txn_part = proxy_hash_final(&h);
	const size_t pl = sizeof(PROXY_BRANCH_PREFIX) - 1;
	memcpy(out, PROXY_BRANCH_PREFIX, pl);
	proxy_hex64(txn_part, out + pl);
	out[pl + 16] = '.';
	proxy_hex64(proxy_loop_hash(t), out + pl + 17);
}
