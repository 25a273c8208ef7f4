/* dns_msg.c - decode DNS answers (RFC 1035 §4, RFC 2782 SRV, RFC 3403 NAPTR,
 * RFC 2308 negative caching) as hostile input. Every read is bounds-checked
 * against the message; compressed names may only point backwards (no loops)
 * and are limited to 255 bytes and 63-byte labels; a name with a byte that
 * is not a letter, digit, '-' or '_' is refused (it could not be a SIP host
 * or an SRV owner anyway). Nothing is allocated. */
#include <string.h>

#include "dns.h"

const char *const dns_error_names[DNS_E_COUNT] = {
	[DNS_OK] = "ok",	       [DNS_E_MALFORMED] = "malformed", [DNS_E_NXDOMAIN] = "nxdomain",
	[DNS_E_SERVFAIL] = "servfail", [DNS_E_TIMEOUT] = "timeout",	[DNS_E_NODATA] = "nodata",
	[DNS_E_OVERFLOW] = "overflow",
};

#define DNS_HEADER 12
#define DNS_CLASS_IN 1
#define DNS_T_SOA 6

struct rd {
	const uint8_t *p;
	size_t len;
};

static bool u16_at(struct rd m, size_t off, uint16_t *v)
{
	if (off + 2 > m.len)
		return false;
	*v = (uint16_t)(m.p[off] << 8 | m.p[off + 1]);
	return true;
}

static bool u32_at(struct rd m, size_t off, uint32_t *v)
{
	if (off + 4 > m.len)
		return false;
	*v = (uint32_t)m.p[off] << 24 | (uint32_t)m.p[off + 1] << 16 | (uint32_t)m.p[off + 2] << 8 |
	     m.p[off + 3];
	return true;
}

static bool label_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/**
 * name_read - the name at *@off into @out (dotted, lowercased, "" for the
 * root; NULL @out: only skip it). *@off moves past the name where it is
 * written (a pointer counts 2 bytes). false when malformed.
 */
static bool name_read(struct rd m, size_t *off, char *out, size_t cap)
{
	if (out && cap == 0)
		return false;
	size_t pos = *off, used = 0, end = 0;
	bool jumped = false;
	size_t floor = *off; /* a pointer must go below every position seen so far */
	for (;;) {
		if (pos >= m.len)
			return false;
		const uint8_t l = m.p[pos];
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= m.len)
				return false;
			const size_t to = (size_t)(l & 0x3f) << 8 | m.p[pos + 1];
			if (to >= floor)
				return false; /* forward or self pointer: a loop or garbage */
			if (!jumped)
				end = pos + 2;
			jumped = true;
			floor = to;
			pos = to;
			continue;
		}
		if (l & 0xc0)
			return false; /* 0x40 / 0x80: extended label types are not used */
		if (l == 0) {
			if (!jumped)
				end = pos + 1;
			break;
		}
		if (pos + 1 + l > m.len || used + l + 1 > DNS_NAME_MAX - 1)
			return false;
		for (size_t i = 0; i < l; i++)
			if (!label_char(m.p[pos + 1 + i]))
				return false;
		if (out) {
			if (used + l + 2 > cap)
				return false;
			if (used)
				out[used++] = '.';
			for (size_t i = 0; i < l; i++) {
				const uint8_t c = m.p[pos + 1 + i];
				out[used++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
			}
		} else {
			used += l + 1;
		}
		pos += 1 + l;
	}
	if (out)
		out[used] = '\0'; /* room checked above (cap >= 1 for the root) */
	*off = end;
	return true;
}

/* a <character-string> (RFC 1035 §3.3) into @out, NUL-terminated; false when it does not fit */
static bool cstring_read(struct rd m, size_t *off, size_t rd_end, char *out, size_t cap)
{
	if (*off >= rd_end)
		return false;
	const size_t l = m.p[*off];
	if (*off + 1 + l > rd_end || l + 1 > cap)
		return false;
	for (size_t i = 0; i < l; i++) {
		const uint8_t c = m.p[*off + 1 + i];
		if (c < 0x20 || c > 0x7e)
			return false;
		out[i] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
	}
	out[l] = '\0';
	*off += 1 + l;
	return true;
}

/* one answer record's rdata into @rr; false when malformed */
static bool rdata_read(struct rd m, size_t off, size_t rdlen, uint16_t type, struct dns_rr *rr)
{
	const size_t end = off + rdlen;
	switch (type) {
	case DNS_T_A:
		if (rdlen != 4)
			return false;
		memcpy(rr->u.a, m.p + off, 4);
		return true;
	case DNS_T_AAAA:
		if (rdlen != 16)
			return false;
		memcpy(rr->u.aaaa, m.p + off, 16);
		return true;
	case DNS_T_SRV: {
		if (rdlen < 7 || !u16_at(m, off, &rr->u.srv.priority) ||
		    !u16_at(m, off + 2, &rr->u.srv.weight) || !u16_at(m, off + 4, &rr->u.srv.port))
			return false;
		size_t p = off + 6;
		return name_read(m, &p, rr->u.srv.target, sizeof(rr->u.srv.target)) && p == end;
	}
	case DNS_T_NAPTR: {
		char regexp[256];
		if (rdlen < 7 || !u16_at(m, off, &rr->u.naptr.order) ||
		    !u16_at(m, off + 2, &rr->u.naptr.preference))
			return false;
		size_t p = off + 4;
		return cstring_read(m, &p, end, rr->u.naptr.flags, sizeof(rr->u.naptr.flags)) &&
		       cstring_read(m, &p, end, rr->u.naptr.service, sizeof(rr->u.naptr.service)) &&
		       cstring_read(m, &p, end, regexp, sizeof(regexp)) &&
		       name_read(m, &p, rr->u.naptr.replacement, sizeof(rr->u.naptr.replacement)) &&
		       p == end;
	}
	default:
		return false;
	}
}

enum dns_error dns_answer_parse(const uint8_t *buf, size_t len, uint16_t qtype, struct dns_answer *out)
{
	memset(out, 0, sizeof(*out));
	const struct rd m = { buf, len };
	uint16_t flags, qd, an, ns;
	if (!buf || len < DNS_HEADER || !u16_at(m, 2, &flags) || !u16_at(m, 4, &qd) ||
	    !u16_at(m, 6, &an) || !u16_at(m, 8, &ns))
		return DNS_E_MALFORMED;
	if (!(flags & 0x8000))
		return DNS_E_MALFORMED; /* a query, not a response */
	out->truncated = flags & 0x0200;
	out->rcode = (uint8_t)(flags & 0x000f);
	size_t off = DNS_HEADER;
	for (unsigned i = 0; i < qd; i++) {
		if (!name_read(m, &off, NULL, 0) || off + 4 > len)
			return DNS_E_MALFORMED;
		off += 4;
	}
	bool overflow = false;
	/* answer then authority records; the authority section only for the SOA */
	for (unsigned i = 0; i < (unsigned)an + ns; i++) {
		uint16_t type, class, rdlen;
		uint32_t ttl;
		if (!name_read(m, &off, NULL, 0) || !u16_at(m, off, &type) || !u16_at(m, off + 2, &class) ||
		    !u32_at(m, off + 4, &ttl) || !u16_at(m, off + 8, &rdlen) || off + 10 + rdlen > len)
			return DNS_E_MALFORMED;
		const size_t rd = off + 10;
		off = rd + rdlen;
		if (ttl > 0x7fffffffu)
			ttl = 0; /* RFC 2181 §8: treated as zero */
		if (class != DNS_CLASS_IN)
			continue;
		if (i >= an) {
			if (type == DNS_T_SOA) {
				size_t p = rd;
				uint32_t minimum;
				if (!name_read(m, &p, NULL, 0) || !name_read(m, &p, NULL, 0) ||
				    p + 20 != off || !u32_at(m, p + 16, &minimum))
					return DNS_E_MALFORMED;
				out->neg_ttl = minimum < ttl ? minimum : ttl;
			}
			continue;
		}
		if (type != qtype) {
			out->skipped++;
			continue;
		}
		if (out->n >= DNS_MAX_RECORDS) {
			overflow = true;
			out->skipped++;
			continue;
		}
		struct dns_rr *rr = &out->rr[out->n];
		rr->type = type;
		rr->ttl = ttl;
		if (!rdata_read(m, rd, rdlen, type, rr))
			return DNS_E_MALFORMED;
		out->min_ttl = out->n == 0 || ttl < out->min_ttl ? ttl : out->min_ttl;
		out->n++;
	}
	if (out->rcode == 3)
		return DNS_E_NXDOMAIN;
	if (out->rcode != 0)
		return DNS_E_SERVFAIL;
	return overflow ? DNS_E_OVERFLOW : DNS_OK;
}
