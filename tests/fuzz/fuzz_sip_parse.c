/* fuzz_sip_parse.c - libFuzzer entry: sip_parse, sip_msg_check, then every
 * sub-parser on what was parsed (Request-URI, each Via, From/To/Contact
 * name-addrs and their URIs and params, CSeq, unescaping). The input is copied
 * into an exact-size buffer so ASan catches any read past the datagram. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip.h"

static void uri_walk(struct slice s)
{
	struct sip_uri u;
	char out[256];
	if (sip_uri_parse(s, &u) < 0)
		return;
	struct slice v;
	(void)sip_uri_param(&u, SLICE_LIT("transport"), &v);
	(void)sip_uri_param(&u, SLICE_LIT("lr"), &v);
	(void)sip_uri_header(&u, SLICE_LIT("route"), &v);
	(void)sip_uri_is_sip(&u);
	(void)sip_unescape(u.user, out, sizeof(out));
	(void)sip_unescape(u.params, out, 4);
}

static void nameaddr_walk(struct slice s)
{
	struct sip_nameaddr na;
	struct slice v;
	if (sip_nameaddr_parse(s, &na) < 0)
		return;
	(void)sip_param_find(na.params, SLICE_LIT("tag"), &v);
	(void)sip_param_find(na.params, SLICE_LIT("expires"), &v);
	uri_walk(na.uri);
}

/* Invariants of a successful parse; any breach aborts (a finding). */
static void msg_invariants(const struct sip_msg *m, size_t avail)
{
	if (m->len > avail || m->hdr_end > m->len || m->start_line_len > m->hdr_end ||
	    m->body.p != m->buf + m->len - m->body.len)
		abort();
	uint64_t seen = 0;
	for (unsigned i = 0; i < m->n_hdrs; i++) {
		const struct sip_hdr *h = &m->hdrs[i];
		const char *line = m->buf + h->line_off;
		if (h->id >= SIP_HDR_COUNT || h->line_off < m->start_line_len ||
		    h->line_off + h->line_len > m->hdr_end || h->name.p != line ||
		    h->value.p < line || h->value.p + h->value.len > line + h->line_len ||
		    m->first[h->id] > i || m->last[h->id] < i)
			abort();
		seen |= 1ull << h->id;
	}
	if (seen != m->seen)
		abort();
	for (unsigned id = 0; id < SIP_HDR_COUNT; id++)
		if ((m->first[id] == SIP_NO_HDR) != !(seen >> id & 1u))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sip_msg m;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	const int rc = sip_parse(buf, size, &m);
	if (rc >= 0) {
		if ((size_t)rc > size || m.len > size || m.n_hdrs > SIP_MAX_HDRS)
			abort();
		msg_invariants(&m, size - (size_t)(m.buf - buf));
		const char *why;
		(void)sip_msg_check(&m, &why);
	}
	/* sub-parsers also run on a failed parse: whatever is in @m must be safe */
	if (m.n_hdrs > SIP_MAX_HDRS)
		abort();
	if (m.is_request && m.ruri.p)
		uri_walk(m.ruri);
	for (unsigned i = 0; i < m.n_hdrs; i++) {
		const struct sip_hdr *h = &m.hdrs[i];
		if (h->value.p < m.buf ||
		    h->value.p + h->value.len > m.buf + (size - (size_t)(m.buf - buf)))
			abort();
		struct sip_via v;
		uint32_t n;
		struct slice meth;
		switch (h->id) {
		case SIP_HDR_VIA:
			(void)sip_via_parse(h->value, &v);
			break;
		case SIP_HDR_FROM:
		case SIP_HDR_TO:
		case SIP_HDR_CONTACT:
		case SIP_HDR_ROUTE:
		case SIP_HDR_RECORD_ROUTE:
		case SIP_HDR_REFER_TO:
			nameaddr_walk(h->value);
			break;
		case SIP_HDR_CSEQ:
			(void)sip_cseq_parse(h->value, &n, &meth);
			break;
		default:
			(void)sip_msg_hdr_by_name(&m, h->name);
			break;
		}
	}
	free(buf);
	return 0;
}
