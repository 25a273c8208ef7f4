/* store_cluster.c - Redis Cluster (SPEC §12): the key's hash slot (CRC16
 * of the key, or of the part between the first '{' and the next '}' when
 * that part is not empty: the cluster specification's hash tags), the pure
 * parsers of CLUSTER SLOTS and of MOVED/ASK redirects, and the blocking
 * CLUSTER SLOTS fetch the topology thread and referee-admin run. Anything
 * malformed from Redis is an error code, never a crash.
 *
 * The nc/JTI script names exactly one key (KEYS[1]), so each call touches
 * one slot and is routed like any single-key command; a key that carries a
 * {tag} is hashed by the tag, so keys sharing it share a node. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store_redis_priv.h"

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), one entry per byte value. */
static const uint16_t crc16_tab[256] = {
	0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
	0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
	0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
	0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
	0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
	0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
	0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
	0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
	0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
	0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
	0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
	0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
	0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
	0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
	0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
	0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
	0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
	0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
	0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
	0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
	0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
	0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
	0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
	0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
	0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
	0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
	0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
	0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
	0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
	0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
	0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
	0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t crc16(const char *p, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++)
		crc = (uint16_t)((crc << 8) ^ crc16_tab[((crc >> 8) ^ (uint8_t)p[i]) & 0xff]);
	return crc;
}

unsigned store_cluster_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open) {
		const char *from = open + 1;
		const char *close = memchr(from, '}', len - (size_t)(from - key));
		if (close && close > from)
			return crc16(from, (size_t)(close - from)) & (STORE_CLUSTER_SLOTS - 1);
	}
	return crc16(key, len) & (STORE_CLUSTER_SLOTS - 1);
}

/* node_index - index of @h in @t's nodes, added when new. -ENOSPC when full. */
static int node_index(struct store_topo *t, const struct cfg_redis_host *h)
{
	for (unsigned i = 0; i < t->n_nodes; i++)
		if (t->nodes[i].port == h->port && strcmp(t->nodes[i].host, h->host) == 0)
			return (int)i;
	if (t->n_nodes == STORE_REDIS_MAX_NODES)
		return -ENOSPC;
	t->nodes[t->n_nodes] = *h;
	return (int)t->n_nodes++;
}

/* slot_bound - an integer element in 0..16383. */
static bool slot_bound(const redisReply *e, unsigned *out)
{
	if (!e || e->type != REDIS_REPLY_INTEGER || e->integer < 0 || e->integer >= STORE_CLUSTER_SLOTS)
		return false;
	*out = (unsigned)e->integer;
	return true;
}

/* master_addr - [ip, port, ...] of a range's first node. An empty ip is the node asked. */
static bool master_addr(const redisReply *m, const struct cfg_redis_host *asked, struct cfg_redis_host *out)
{
	if (!m || m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !m->element)
		return false;
	const redisReply *ip = m->element[0], *port = m->element[1];
	if (!ip || !port || ip->type != REDIS_REPLY_STRING || !ip->str || port->type != REDIS_REPLY_INTEGER ||
	    port->integer < 1 || port->integer > 65535)
		return false;
	const char *host = ip->len ? ip->str : asked ? asked->host : NULL;
	size_t hlen = ip->len ? ip->len : host ? strlen(host) : 0;
	if (!host || (hlen == 1 && host[0] == '?') || !store_redis_host_copy(host, hlen, out))
		return false;
	out->port = (unsigned)port->integer;
	return true;
}

int store_cluster_parse_slots(const redisReply *r, const struct cfg_redis_host *asked, struct store_topo *out,
			      char *why, size_t whylen)
{
	out->n_nodes = 0;
	memset(out->slot_node, STORE_SLOT_NONE, sizeof(out->slot_node));
	if (!r || r->type != REDIS_REPLY_ARRAY || (r->elements && !r->element)) {
		snprintf(why, whylen, "CLUSTER SLOTS: %s", r && r->type == REDIS_REPLY_ERROR && r->str ? r->str : "not an array");
		return -EINVAL;
	}
	unsigned covered = 0;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *range = r->element[i];
		unsigned lo, hi;
		struct cfg_redis_host h;
		if (!range || range->type != REDIS_REPLY_ARRAY || range->elements < 3 || !range->element ||
		    !slot_bound(range->element[0], &lo) || !slot_bound(range->element[1], &hi) || lo > hi ||
		    !master_addr(range->element[2], asked, &h)) {
			snprintf(why, whylen, "CLUSTER SLOTS: malformed range %zu", i);
			return -EINVAL;
		}
		int n = node_index(out, &h);
		if (n < 0) {
			snprintf(why, whylen, "CLUSTER SLOTS: more than %d masters", STORE_REDIS_MAX_NODES);
			return -ENOSPC;
		}
		for (unsigned s = lo; s <= hi; s++) {
			covered += out->slot_node[s] == STORE_SLOT_NONE;
			out->slot_node[s] = (uint8_t)n;
		}
	}
	if (!covered) {
		snprintf(why, whylen, "CLUSTER SLOTS: no slot is served");
		return -EINVAL;
	}
	return (int)covered;
}

int store_cluster_parse_redirect(const char *err, size_t len, bool *ask, unsigned *slot, struct cfg_redis_host *to)
{
	size_t skip;
	if (!err)
		return -EINVAL;
	if (len >= 6 && memcmp(err, "MOVED ", 6) == 0) {
		*ask = false;
		skip = 6;
	} else if (len >= 4 && memcmp(err, "ASK ", 4) == 0) {
		*ask = true;
		skip = 4;
	} else {
		return -ENOENT;
	}
	const char *p = err + skip, *end = err + len;
	unsigned s = 0;
	size_t digits = 0;
	for (; p < end && *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
		s = s * 10 + (unsigned)(*p - '0');
	if (!digits || s >= STORE_CLUSTER_SLOTS || p == end || *p != ' ')
		return -EINVAL;
	const char *addr = p + 1;
	const char *colon = NULL; /* the last one: an IPv6 address has several */
	for (const char *q = addr; q < end; q++)
		if (*q == ':')
			colon = q;
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(to->host))
		return -EINVAL;
	unsigned port = 0;
	size_t plen = (size_t)(end - colon - 1);
	if (plen == 0 || plen > 5)
		return -EINVAL;
	for (const char *q = colon + 1; q < end; q++) {
		if (*q < '0' || *q > '9')
			return -EINVAL;
		port = port * 10 + (unsigned)(*q - '0');
	}
	if (port < 1 || port > 65535)
		return -EINVAL;
	if (!store_redis_host_copy(addr, (size_t)(colon - addr), to))
		return -EINVAL;
	to->port = port;
	*slot = s;
	return 0;
}

int store_cluster_fetch(const struct cfg_redis_host *nodes, unsigned n, unsigned timeout_ms, struct store_topo *out,
			char *why, size_t whylen)
{
	snprintf(why, whylen, "no cluster node configured");
	for (unsigned i = 0; i < n; i++) {
		redisContext *rc = store_redis_sync_connect(&nodes[i], timeout_ms, why, whylen);
		if (!rc)
			continue;
		redisReply *r = store_redis_sync_cmd(rc, why, whylen, "CLUSTER SLOTS");
		int got = r ? store_cluster_parse_slots(r, &nodes[i], out, why, whylen) : -EIO;
		freeReplyObject(r);
		redisFree(rc);
		if (got > 0)
			return 0;
	}
	return -EAGAIN;
}
