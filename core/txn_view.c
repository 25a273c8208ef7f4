/* txn_view.c - the parsed view of a txn (txn.h): the Request-URI, top Via,
 * From and To (with their tags) parsed on first use and kept, so however many
 * stages ask, each part is parsed once per message. sip_msg_check_parsed
 * fills the four parts while it validates a message (proxy_process); parts it
 * did not get to are parsed here when a stage first asks. The route decision
 * of the view is proxy_route.c's (txn_route). */
#include <string.h>

#include "txn.h"

int txn_received(struct txn *t, const char *buf, size_t len)
{
	t->rx_len = (uint32_t)len;
	t->view.looked = 0;
	t->view.ok = 0;
	t->parse_rc = sip_parse(buf, len, &t->msg);
	return t->parse_rc;
}

/* part - true when @bit has not been looked at yet (the caller parses it now) */
static bool part_todo(struct txn *t, unsigned bit)
{
	if (t->view.looked & bit)
		return false;
	t->view.looked |= (uint8_t)bit;
	return true;
}

const struct sip_uri *txn_ruri(struct txn *t)
{
	struct txn_view *v = &t->view;
	if (part_todo(t, TXN_VIEW_RURI) && t->msg.is_request && sip_uri_parse(t->msg.ruri, &v->p.ruri) == 0)
		v->ok |= TXN_VIEW_RURI;
	return v->ok & TXN_VIEW_RURI ? &v->p.ruri : NULL;
}

const struct sip_via *txn_top_via(struct txn *t)
{
	struct txn_view *v = &t->view;
	if (part_todo(t, TXN_VIEW_VIA)) {
		const struct sip_hdr *h = sip_msg_hdr(&t->msg, SIP_HDR_VIA);
		if (h && sip_via_parse(h->value, &v->p.top_via) == 0)
			v->ok |= TXN_VIEW_VIA;
	}
	return v->ok & TXN_VIEW_VIA ? &v->p.top_via : NULL;
}

const struct sip_via *txn_second_via(struct txn *t)
{
	struct txn_view *v = &t->view;
	if (part_todo(t, TXN_VIEW_VIA2)) {
		const unsigned first = t->msg.first[SIP_HDR_VIA];
		const unsigned second = first == SIP_NO_HDR ? SIP_NO_HDR : sip_msg_next(&t->msg, first);
		if (second != SIP_NO_HDR && sip_via_parse(t->msg.hdrs[second].value, &v->p.next_via) == 0)
			v->ok |= TXN_VIEW_VIA2;
	}
	return v->ok & TXN_VIEW_VIA2 ? &v->p.next_via : NULL;
}

static struct slice tag_of(const struct sip_nameaddr *na)
{
	struct slice tag;
	return sip_param_find(na->params, SLICE_LIT("tag"), &tag) ? tag : slice_make("", 0);
}

/* name-addr part @bit of header @id into @na */
static const struct sip_nameaddr *nameaddr_part(struct txn *t, unsigned bit, enum sip_hdr_id id,
						 struct sip_nameaddr *na)
{
	struct txn_view *v = &t->view;
	if (part_todo(t, bit)) {
		const struct sip_hdr *h = sip_msg_hdr(&t->msg, id);
		if (h && sip_nameaddr_parse(h->value, na) == 0)
			v->ok |= (uint8_t)bit;
	}
	return v->ok & bit ? na : NULL;
}

const struct sip_nameaddr *txn_from(struct txn *t)
{
	return nameaddr_part(t, TXN_VIEW_FROM, SIP_HDR_FROM, &t->view.p.from);
}

const struct sip_nameaddr *txn_to(struct txn *t)
{
	return nameaddr_part(t, TXN_VIEW_TO, SIP_HDR_TO, &t->view.p.to);
}

/* the tag of a parsed name-addr, looked up once (empty: none, or no name-addr) */
static struct slice tag_part(struct txn *t, unsigned bit, const struct sip_nameaddr *na, struct slice *tag)
{
	if (part_todo(t, bit))
		*tag = na ? tag_of(na) : slice_make("", 0);
	return *tag;
}

struct slice txn_from_tag(struct txn *t)
{
	return tag_part(t, TXN_VIEW_FROM_TAG, txn_from(t), &t->view.from_tag);
}

struct slice txn_to_tag(struct txn *t)
{
	return tag_part(t, TXN_VIEW_TO_TAG, txn_to(t), &t->view.to_tag);
}

void txn_view_checked(struct txn *t)
{
	struct txn_view *v = &t->view;
	uint8_t parts = TXN_VIEW_VIA | TXN_VIEW_FROM | TXN_VIEW_TO;
	if (t->msg.is_request)
		parts |= TXN_VIEW_RURI;
	const unsigned first = t->msg.first[SIP_HDR_VIA];
	if (sip_msg_next(&t->msg, first) != SIP_NO_HDR)
		parts |= TXN_VIEW_VIA2;
	else
		v->looked |= TXN_VIEW_VIA2; /* looked at: there is none */
	v->looked |= parts;
	v->ok |= parts; /* the tags are looked up when first asked for (responses never ask) */
}
