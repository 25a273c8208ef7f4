#pragma once
/* proxy.h - core stages and the receiver/worker pipeline.
 *
 *   proxy_checks_stage   SPEC §1 local handling: 400/416/420/482/483, OPTIONS
 *                        to ourselves, ACK of our own final replies, signed
 *                        Record-Route detection (t->in_authorized_dialog)
 *   proxy_forward_stage  routing, Via/Record-Route, egress edits, send (always last)
 * main() registers them: checks first, module stages, forward last. */
#include <stdbool.h>

#include "cfg.h"
#include "secret.h"
#include "stage.h"
#include "txn.h"

/* proxy_init - keep the record-route key; 0 or -errno. Startup. */
int proxy_init(const struct cfg *c, const struct secret *s);
enum stage_rc proxy_checks_stage(struct txn *t);
enum stage_rc proxy_forward_stage(struct txn *t);


/**
 * proxy_process - run the stage chain on @t from t->stage_idx (worker thread)
 * and build the datagram to send, if any, in t->out (t->out_len, t->dst).
 * Local replies (STAGE_REPLY, and 400 for a malformed request that can be
 * answered) are built here. Exposed for unit tests, which put raw SIP through
 * it without threads. Returns the final verdict: STAGE_SENT (a forwarded
 * request or relayed response in t->out), STAGE_REPLY (a local reply in
 * t->out), STAGE_DROP (nothing to send; counted) or STAGE_PARK (call again
 * later); never STAGE_CONTINUE.
 */
enum stage_rc proxy_process(const struct stage_table *st, struct txn *t);

/* pipeline_cfg_publish - make @c the configuration of new txns (RCU swap;
 * the old one is freed after a grace period). Main thread, after pipeline_run started. */
void pipeline_cfg_publish(struct cfg *c);

/* pipeline_run - bind, start receivers and workers, serve until SIGTERM
 * (drain, return 0). @reload is called on the main thread on SIGHUP. */
int pipeline_run(const struct cfg *c, const struct stage_table *st,
		 int (*reload)(void *arg), void *arg);

/* Ownership (pipeline_run, pipeline_cfg_publish): pipeline_run owns @c from
 * the call on, also when it fails, and frees with cfg_free whichever config
 * is current when it returns. pipeline_cfg_publish waits for a grace period
 * (synchronize_rcu) and then frees the config it replaced. Parked txns take
 * the current config when they are resumed. */

/* pipeline_stop - do what SIGTERM does (stop receiving, drain, make
 * pipeline_run return 0). Any thread. A stop requested before pipeline_run
 * reaches its wait makes it drain at once; the request is cleared when
 * pipeline_run returns. Tests use it because signals are process-wide. */
void pipeline_stop(void);
/* pipeline_is_serving - true between "all threads started" and the start of
 * the drain (for /health and tests). Any thread. */
bool pipeline_is_serving(void);
