/*
 * app.h - the daemon: every module wired into one pipeline.
 *
 * For each inbound message, in one batch transaction:
 *
 *   decode ──malformed──> dlq row (+ publish fundwatch.dlq.<kind> after commit)
 *     │
 *   events (INSERT OR IGNORE by id) ──duplicate──> nothing
 *     │
 *   rules (state before the event) ──hits──> alerts (store, dedup, route)
 *     │
 *   ledger (freeze / post / void / refund / allocate / ...)
 *     │
 *   sms outbox (payroll lines, reimbursements, subsidies)
 *     │
 *   meta intake.last_seq = stream sequence
 *
 * then COMMIT, then ack every message of the batch, publish alert changes
 * and DLQ copies, and wake the SMS sender.  If a module fails on one
 * message, its partial effects are rolled back and the message is
 * dead-lettered with field "internal", so a poison message never stalls the
 * stream: a batch runs without per-message savepoints, and the batch that
 * meets such a message is rolled back and run again with each message in
 * its own SAVEPOINT (app.c: redo_batch_carefully).
 *
 * `fundwatch run` drives the pipeline from NATS (fw_app_run); `fundwatch
 * replay` drives the very same code from a file with an in-memory store
 * (fw_app_open_offline + fw_app_feed), so a replay shows what the daemon
 * would have done.
 */
#ifndef FW_APP_H
#define FW_APP_H

#include <stdint.h>
#include <stdio.h>

#include "daemon/config.h"

typedef struct fw_app fw_app;

/* Register every module's configuration keys and section prefixes. */
void fw_app_register_config(fw_config *cfg);

/* Run the daemon until SIGTERM/SIGINT.  Returns the exit status. */
int fw_app_run(fw_config *cfg);

/* Offline pipeline on an in-memory store (replay).  rules_dir overrides
 * rules.dir when not NULL.  Alerts created are written as JSON lines to
 * `alerts_out` (may be NULL). */
fw_app *fw_app_open_offline(fw_config *cfg, const char *rules_dir, FILE *alerts_out, char *err,
                            int errlen);
/* Feed one message; simulated hourly ticks are run for the hours between
 * the previous and this event's time.  Returns 0, or -1 with err filled
 * when the message was malformed (it is still recorded, as the daemon
 * would). */
int fw_app_feed(fw_app *a, const char *subject, const char *data, int len, char *err, int errlen);
/* Number of alerts created so far. */
int64_t fw_app_alerts_created(const fw_app *a);
void fw_app_close(fw_app *a);

#endif
