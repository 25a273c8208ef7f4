/* proxy_count.c - the core proxy's metrics: local replies by code, messages
 * forwarded by direction, drops by reason, ACKs absorbed (SPEC §8, STYLE §18:
 * closed label sets). Handles are registered once by proxy_init, before the
 * threads start; counting is metrics_inc on the calling thread's shard. */
#include "metrics.h"
#include "proxy_priv.h"

struct proxy_counts proxy_counts;

static const char *const drop_reasons[PROXY_DROP_COUNT] = {
	[PROXY_DROP_MALFORMED] = "malformed",
	[PROXY_DROP_BAD_VIA] = "bad_via",
	[PROXY_DROP_NOT_OUR_VIA] = "not_our_via",
	[PROXY_DROP_NO_NEXT_VIA] = "no_next_via",
	[PROXY_DROP_BAD_DESTINATION] = "bad_destination",
	[PROXY_DROP_TOO_BIG] = "too_big",
	[PROXY_DROP_REPLY_SUPPRESSED] = "reply_suppressed",
	[PROXY_DROP_NO_FORWARDER] = "no_forwarder",
};

static const char *const directions[PROXY_DIR_COUNT] = { "request", "response" };

/* Codes core and the module stages answer with; anything else is "other". */
static const uint16_t reply_codes[] = { 200, 400, 403, 404, 407, 416, 420,
					 481, 482, 483, 488, 500, 501, 503, 505, 513 };
#define N_REPLY_CODES (sizeof(reply_codes) / sizeof(reply_codes[0]))
static const char *const reply_code_labels[N_REPLY_CODES + 1] = {
	"200", "400", "403", "404", "407", "416", "420", "481",
	"482", "483", "488", "500", "501", "503", "505", "513", "other",
};

void proxy_count_register(void)
{
	if (proxy_counts.registered)
		return;
	proxy_counts.responses = metrics_counter("referee_responses_sent_total",
					      "Local replies sent by status code", "code",
					      reply_code_labels, N_REPLY_CODES + 1);
	proxy_counts.forwarded = metrics_counter("referee_forwarded_total",
					      "Messages forwarded statelessly", "direction",
					      directions, PROXY_DIR_COUNT);
	proxy_counts.drops = metrics_counter("referee_drops_total", "Messages dropped by reason",
					  "reason", drop_reasons, PROXY_DROP_COUNT);
	proxy_counts.absorbed = metrics_counter("referee_acks_absorbed_total",
					     "ACKs of our own local replies, absorbed", NULL, NULL, 0);
	proxy_counts.registered = true;
}

void proxy_count_drop(enum proxy_drop why)
{
	if (proxy_counts.registered && why < PROXY_DROP_COUNT)
		metrics_inc(proxy_counts.drops + (unsigned)why);
}

void proxy_count_forwarded(enum proxy_direction dir)
{
	if (proxy_counts.registered)
		metrics_inc(proxy_counts.forwarded + (unsigned)dir);
}

void proxy_count_reply(uint16_t code)
{
	if (!proxy_counts.registered)
		return;
	unsigned i = 0;
	while (i < N_REPLY_CODES && reply_codes[i] != code)
		i++;
	metrics_inc(proxy_counts.responses + i);
}

void proxy_count_absorbed(void)
{
	if (proxy_counts.registered)
		metrics_inc(proxy_counts.absorbed);
}
