/* transfer_count.c - the transfer metrics (referee_transfer_*): their
 * registration and the grants family's counters. Below the stage and its two
 * parts (transfer_identity.c, transfer_refer.c), which all count here. */
#include <stdbool.h>

#include "metrics.h"
#include "transfer_priv.h"

struct transfer_metrics transfer_metrics;

static const char *const grant_labels[TRANSFER_M_COUNT] = {
	[TRANSFER_M_ISSUED] = "issued",         [TRANSFER_M_ACCEPTED] = "accepted",
	[TRANSFER_M_MALFORMED] = "malformed",   [TRANSFER_M_BAD_MAC] = "bad_mac",
	[TRANSFER_M_WRONG_TARGET] = "wrong_target", [TRANSFER_M_EXPIRED] = "expired",
	[TRANSFER_M_REPLAYED] = "replayed",     [TRANSFER_M_UNKNOWN_USER] = "unknown_user",
};

void transfer_count(enum transfer_grant_metric m)
{
	if ((unsigned)m < TRANSFER_M_COUNT)
		metrics_inc(transfer_metrics.grants + m);
}

void transfer_count_result(enum transfer_result r)
{
	static const enum transfer_grant_metric map[TRANSFER_RESULT_COUNT] = {
		[TRANSFER_OK] = TRANSFER_M_ACCEPTED,
		[TRANSFER_MALFORMED] = TRANSFER_M_MALFORMED,
		[TRANSFER_BAD_MAC] = TRANSFER_M_BAD_MAC,
		[TRANSFER_WRONG_TARGET] = TRANSFER_M_WRONG_TARGET,
		[TRANSFER_EXPIRED] = TRANSFER_M_EXPIRED,
		[TRANSFER_REPLAYED] = TRANSFER_M_REPLAYED,
		[TRANSFER_UNKNOWN_USER] = TRANSFER_M_UNKNOWN_USER,
	};
	if ((unsigned)r < TRANSFER_RESULT_COUNT)
		transfer_count(map[r]);
}

void transfer_metrics_register(void)
{
	static bool done; /* startup only (single thread); tests call transfer_init repeatedly */
	if (done)
		return;
	done = true;
	transfer_metrics.rewrites = metrics_counter("referee_transfer_rewrites_total",
						    "REFERs whose Refer-To was rewritten with a signed token",
						    NULL, NULL, 0);
	transfer_metrics.challenges = metrics_counter("referee_transfer_challenges_total",
						      "anonymous REFERs to our domains answered with 407",
						      NULL, NULL, 0);
	transfer_metrics.grants = metrics_counter("referee_transfer_grants_total",
						  "transfer tokens issued, accepted and rejected by reason",
						  "result", grant_labels, TRANSFER_M_COUNT);
}
