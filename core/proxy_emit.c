/* proxy_emit.c - the bytes shared by forwarded requests, relayed responses
 * and local replies: header lines written from a per-value plan (kept lines
 * copied byte for byte, edited ones rewritten), decimal numbers, and the
 * sender's Via with received/rport (RFC 3261 §18.2.1, RFC 3581). Writes only
 * into the caller's proxy_out (bounded: overflow is a flag) and the arena. */
#include <string.h>

#include "proxy_priv.h"

void proxy_out_u32(struct proxy_out *o, uint32_t v)
{
	char buf[10];
	unsigned n = 0;
	do {
		buf[sizeof(buf) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	proxy_out_put(o, buf + sizeof(buf) - n, n);
}

/* ---------------------------------------------------------------- header lines */

static void emit_group(struct proxy_out *o, const struct sip_msg *m,
		       const struct proxy_hdr_plan *plan, unsigned i, unsigned j)
{
	bool all_kept = true;
	for (unsigned k = i; k < j; k++)
		all_kept = all_kept && plan->action[k] == PROXY_HDR_KEEP;
	if (all_kept) {
		proxy_out_put(o, m->buf + m->hdrs[i].line_off, m->hdrs[i].line_len);
		return;
	}
	bool first = true;
	for (unsigned k = i; k < j; k++) {
		if (plan->action[k] == PROXY_HDR_DROP)
			continue;
		if (first) {
			proxy_out_slice(o, m->hdrs[i].name);
			proxy_out_lit(o, ": ");
			first = false;
		} else {
			proxy_out_lit(o, ", ");
		}
		proxy_out_slice(o, plan->action[k] == PROXY_HDR_REPLACE ? plan->repl[k]
									: m->hdrs[k].value);
	}
	if (!first)
		proxy_out_lit(o, "\r\n");
}

void proxy_emit_hdrs(struct proxy_out *o, const struct sip_msg *m,
		     const struct proxy_hdr_plan *plan, uint64_t only)
{
	uint32_t cursor = m->start_line_len;
	unsigned i = 0;
	while (i < m->n_hdrs) {
		const struct sip_hdr *h = &m->hdrs[i];
		unsigned j = i + 1;
		while (j < m->n_hdrs && m->hdrs[j].line_off == h->line_off)
			j++;
		if (only == 0) {
			/* bytes the parser did not claim as a header line travel as they are */
			if (h->line_off > cursor && h->line_off <= m->hdr_end)
				proxy_out_put(o, m->buf + cursor, h->line_off - cursor);
			emit_group(o, m, plan, i, j);
			if (h->line_off + h->line_len > cursor)
				cursor = h->line_off + h->line_len;
		} else if (h->id < 64 && (only >> h->id) & 1) {
			emit_group(o, m, plan, i, j);
		}
		i = j;
	}
	if (only == 0 && cursor < m->hdr_end)
		proxy_out_put(o, m->buf + cursor, m->hdr_end - cursor);
}

/* ---------------------------------------------------------------- Via received/rport */

struct via_spans {
	const char *rport_end;  /* just after a bare "rport" name, or NULL */
	const char *recv_start; /* an existing ";received=..." piece, or NULL */
	const char *recv_end;
	struct slice recv_value;
};

/* Locate the bare rport and any received in @params (";a=b;rport"). */
static void via_spans_find(struct slice params, struct via_spans *s)
{
	memset(s, 0, sizeof(*s));
	size_t pos = 0;
	while (pos < params.len) {
		size_t end = pos + 1;
		bool quoted = false;
		while (end < params.len && (quoted || params.p[end] != ';')) {
			if (params.p[end] == '"')
				quoted = !quoted;
			end++;
		}
		struct slice piece = slice_make(params.p + pos + 1, end - pos - 1);
		const ptrdiff_t eq = slice_find_char(piece, '=');
		struct slice name = slice_trim(eq < 0 ? piece : slice_make(piece.p, (size_t)eq));
		if (eq < 0 && slice_caseeq(name, SLICE_LIT("rport"))) {
			s->rport_end = name.p + name.len;
		} else if (eq >= 0 && slice_caseeq(name, SLICE_LIT("received"))) {
			s->recv_start = params.p + pos;
			s->recv_end = params.p + end;
			s->recv_value = slice_trim(slice_advance(piece, (size_t)eq + 1));
		}
		pos = end;
	}
}

struct slice proxy_via_fixup(struct txn *t, struct slice value, const struct sip_via *v)
{
	char ip[PROXY_IP_TEXT_MAX];
	const size_t iplen = proxy_src_ip_text(t, ip);
	if (!iplen)
		return value;
	struct via_spans s = { 0 };
	const bool params_inside = v->params.len && v->params.p >= value.p &&
				   v->params.p + v->params.len <= value.p + value.len;
	if (params_inside)
		via_spans_find(v->params, &s);
	/* RFC 3581 §4: with rport, received is added even when sent-by is the source. */
	/* On a stream received and rport are always added: the response must
	 * find the connection, whose peer port is not the sent-by port
	 * (RFC 3261 §18.2.2). */
	const bool stream = t->rx_transport != CFG_TRANSPORT_UDP;
	const bool force_rport = stream && !v->has_rport;
	const bool sent_by_is_src = proxy_host_is_src(t, v->host, slice_make(ip, iplen));
	const bool want_received = v->has_rport || stream || !sent_by_is_src;
	const bool recv_ok = s.recv_start && slice_eq(s.recv_value, slice_make(ip, iplen));
	/* a received the sender wrote itself (stale) is replaced by ours */
	const bool drop_stale = s.recv_start && !recv_ok;
	const bool add_received = !recv_ok && (want_received || drop_stale);
	if (!add_received && !s.rport_end && !force_rport)
		return value;
	const size_t cap = value.len + iplen + 32;
	char *buf = txn_alloc(t, cap);
	if (!buf)
		return SLICE_NULL;
	struct proxy_out o = { buf, 0, (uint32_t)cap, false };
	const char *p = value.p, *end = value.p + value.len;
	const char *ins = s.rport_end;
	const char *del = drop_stale ? s.recv_start : NULL;
	while (ins || del) {
		if (ins && (!del || ins < del)) {
			proxy_out_put(&o, p, (size_t)(ins - p));
			proxy_out_lit(&o, "=");
			proxy_out_u32(&o, proxy_src_port(t));
			p = ins;
			ins = NULL;
		} else {
			proxy_out_put(&o, p, (size_t)(del - p));
			p = s.recv_end;
			del = NULL;
		}
	}
	proxy_out_put(&o, p, (size_t)(end - p));
	if (add_received) {
		proxy_out_lit(&o, ";received=");
		proxy_out_put(&o, ip, iplen);
	}
	if (force_rport) {
		proxy_out_lit(&o, ";rport=");
		proxy_out_u32(&o, proxy_src_port(t));
	}
	return o.overflow ? SLICE_NULL : slice_make(buf, o.len);
}
