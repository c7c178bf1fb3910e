/*
 * alerts.h - the alert store: dedup, lifecycle, routing, escalation,
 * silences, the hash-chained audit log, and their CLI and HTTP API.
 *
 * Flow (contract §4):
 *
 *   pipeline txn:  fw_alerts_raise() per rule hit
 *                    fingerprint = hex sha256(rule|subject.kind|subject.id|key);
 *                    a live alert (open, acknowledged, confirmed) with that
 *                    fingerprint absorbs the hit (occurrences+1, last_seen),
 *                    unless this event id was already counted (redelivery:
 *                    nothing changes); otherwise a new alert AL-000017.
 *                    Queues, as rows in the same transaction: the NATS
 *                    publish, webhook/SMS notifications (not for shadow hits
 *                    or silenced alerts), and an audit row.
 *   after commit:  fw_alerts_flush() publishes queued rows on
 *                    fundwatch.alert.<level>.<unit> ("none" when the unit is
 *                    empty) and starts due webhooks.
 *   timer:         fw_alerts_tick() escalations, group summaries, webhook
 *                    retries, silence expiry.
 *
 * Lifecycle: open -> acknowledged -> confirmed | dismissed -> resolved.
 * An alert must be acknowledged before it is confirmed or dismissed (the
 * verification starts with someone taking it); open -> resolved is refused
 * too, as is any move out of `resolved` or to the same status.  Dismissing
 * an orange or red alert needs a note (the evidence); resolving needs a note
 * (the action taken).  Every transition is kept in alert_history (never
 * rewritten), audited, and published on NATS.
 *
 * Notification policy:
 * - NATS is the system-of-record feed: every live alert is published at
 *   creation and at each status change, whatever the routes and silences say
 *   (a silenced alert carries "silenced": true).  Shadow alerts are stored
 *   and visible (API, CLI, replay) but never published or notified.
 * - Routes ([route.<name>]: units, levels, to, channels, escalate_to) send a
 *   new alert, its escalations and its resolved notice to supervisors
 *   ([supervisor.<name>]: phone, webhook) by webhook (the alert JSON with a
 *   "notification" member) and SMS (the SMS outbox, kind `alert`).  The
 *   intermediate transitions (acknowledged, confirmed, dismissed) go to NATS
 *   only.
 * - Grouping: the first alert for one unit + rule + recipient + channel is
 *   sent at once and opens a window of alerts.group_window; alerts in that
 *   window are held and sent at its end as one summary ("count" and
 *   "alert_ids").  Escalations and resolved notices are never grouped.
 * - Silences ([rule or *] x [unit prefix or *] x [from, until)) suppress the
 *   webhook/SMS notice of alerts created while they are active (the alert is
 *   marked silenced) and defer escalations while active; they never suppress
 *   storage or the NATS feed, and never the resolved notice.  They expire by
 *   themselves (tick records the expiry in the audit log).
 * - Escalation: an alert still open alerts.escalate_<level> after creation
 *   goes to step 1 of the matching routes' escalate_to, step k after k
 *   deadlines, once per step; blue never escalates.  escalate_to is a comma
 *   list of steps, each step one name or names joined by '+'
 *   ("deputy, director+chief").  With no escalate_to the alert still gets
 *   one escalation step, recorded as overdue with no one to notify.
 *
 * The alert JSON (§4 shape) also carries "shadow", "silenced" (and
 * "silence_id"), "escalations" and, once acknowledged, "acknowledged_at".
 * What raise returns, NATS publishes and webhooks/SMS receive has no other
 * wall-clock field, so replay output depends on its input alone; the API
 * and CLI views add "created_at", "updated_at", "escalate_at" and "history".
 * SMS of summaries, escalations and resolved notices get a 【汇总】 /
 * 【升级第k级…】 / 【已处理完毕】 prefix on "message", since the SMS
 * template shows the message only.
 *
 * Configuration: keys alerts.* (fw_alerts_config_keys), and the sections
 * with prefixes "supervisor." and "route." (the app registers them with
 * fw_config_add_prefix; fw_alerts_new validates them and names the key in
 * its errors).  See etc/alerts.example.conf.
 *
 * Everything runs on the loop thread.
 */
#ifndef FW_ALERTS_H
#define FW_ALERTS_H

#include <jansson.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/hit.h"
#include "daemon/http.h"
#include "daemon/store.h"

typedef struct fw_alerts fw_alerts;

/* Migration 4 (daemon/schema.c). */
extern const char fw_alerts_schema[];
/* The alert store's migrations in order (fw_alerts_schema first), as the
 * daemon's store applies them among the other modules' (daemon/schema.c);
 * a store of the alerts alone (tests) opens with this list. */
extern const fw_migration fw_alerts_migrations[];
extern const int fw_alerts_nmigrations;

/* alerts.group_window 60s, alerts.escalate_red 30m, alerts.escalate_orange
 * 4h, alerts.escalate_yellow 24h, alerts.webhook_retries 8,
 * alerts.webhook_backoff 30s. */
extern const fw_config_key fw_alerts_config_keys[];
extern const int fw_alerts_config_nkeys;
/* The section prefixes read by fw_alerts_new: "supervisor.", "route.". */
extern const char *const fw_alerts_config_prefixes[];
extern const int fw_alerts_config_nprefixes;

/* Result codes of transitions and silence operations; the positive ones are
 * the HTTP status the API answers with. */
enum {
    FW_ALERTS_OK = 0,
    FW_ALERTS_ERROR = -1,      /* store error */
    FW_ALERTS_BAD = 400,       /* bad or missing argument (err names it) */
    FW_ALERTS_NOT_FOUND = 404, /* no such alert / silence */
    FW_ALERTS_REFUSED = 409,   /* the workflow does not allow it (err says why) */
};

/* Reads the alerts.* keys, supervisors and routes (cfg may be NULL:
 * defaults, no routes).  NULL with err naming the key on a bad section. */
fw_alerts *fw_alerts_new(fw_store *st, const fw_config *cfg, char *err, int errlen);
void fw_alerts_free(fw_alerts *a);

/* In the caller's transaction.  1: a new alert; 0: a new occurrence of a
 * live one, or nothing when hit->event_id was already counted for this
 * fingerprint; -1 on a store error.  *alert_out (may be NULL) receives a new
 * reference to the alert JSON (§4 shape) when 1 or 0 is returned. */
int fw_alerts_raise(fw_alerts *a, const fw_hit *hit, const char *ruleset, json_t **alert_out);

/* Move alert_id to status `to` (FW_ALERTS_* result; err says why).  Runs in
 * the caller's transaction, or in its own (committed, then flushed) when
 * none is open. */
int fw_alerts_transition(fw_alerts *a, const char *alert_id, const char *to, const char *by,
                         const char *note, char *err, int errlen);

/* One alert with its "history" ([{from, to, by, at, note, kind}]); NULL if
 * unknown.  New reference. */
json_t *fw_alerts_get_json(fw_alerts *a, const char *alert_id);

typedef struct fw_alerts_sinks {
    /* NATS core publish, called from fw_alerts_flush after commit. */
    void (*publish)(void *ud, const char *subject, const char *json);
    /* Start an async POST of json to url (Content-Type application/json);
     * report with fw_alerts_webhook_done(notif_id, ...).  0 started, -1 not
     * started (counts as a failed attempt). */
    int (*webhook)(void *ud, const char *url, const char *json, int64_t notif_id);
    /* SMS kind "alert" into the outbox, inside the current transaction;
     * out_id is unique per notification.  0 or -1 (store error). */
    int (*sms)(void *ud, const char *out_id, const char *phone, const char *name,
               const json_t *alert, int urgent);
    void *ud;
} fw_alerts_sinks;

/* Sinks that are NULL leave their rows queued (e.g. the CLI has none: the
 * running daemon publishes and sends them at its next flush/tick). */
void fw_alerts_set_sinks(fw_alerts *a, const fw_alerts_sinks *s);

/* After the batch commit (no transaction open): publish queued NATS rows,
 * start due webhooks, refresh the level/status gauges. */
void fw_alerts_flush(fw_alerts *a);
/* The newest queued NATS row (0: none), read after a batch's commit. */
int64_t fw_alerts_feed_last(fw_alerts *a);
/* fw_alerts_flush, but NATS rows only up to `upto` (a fw_alerts_feed_last
 * value): the daemon publishes a batch's notices once that batch is
 * durable, while later batches, not yet durable, may have queued more.
 * (Webhooks need no bound: their rows are marked `sending` in a commit
 * that fsyncs the WAL, which makes every earlier batch durable, before the
 * request leaves.) */
void fw_alerts_flush_upto(fw_alerts *a, int64_t upto);
/* A webhook finished.  Failure: retried after alerts.webhook_backoff *
 * 2^(attempt-1) plus up to 50% jitter, until alerts.webhook_retries attempts,
 * then `failed` (counted in metrics). */
void fw_alerts_webhook_done(fw_alerts *a, int64_t notif_id, int ok, const char *error);
/* Escalations, group summaries, SMS rows queued without a sink, silence
 * expiry; in its own transaction, then flushes.  Returns the number of
 * things done, or -1 on a store error. */
int fw_alerts_tick(fw_alerts *a, int64_t now);

/* GET /api/alerts, GET /api/alerts/{id}, POST /api/alerts/{id}/transition,
 * GET /api/silences, POST /api/silences, POST /api/silences/{id}/expire. */
void fw_alerts_register_http(fw_alerts *a, fw_http *h);

/* argv[0] is "alerts", "silences" or "audit" (see the usage text).  Exit
 * status 0, 1 (not found, refused, audit broken), 2 (bad usage). */
int fw_alerts_cli_main(fw_alerts *a, int argc, char **argv);

/* Silences (also behind the CLI and API).  from/until in unix seconds;
 * rule and unit may be "*".  Returns FW_ALERTS_* and, on success, the
 * new silence's id "SL-000003" in id_out (>= 16 bytes). */
int fw_alerts_silence_add(fw_alerts *a, const char *rule, const char *unit, int64_t from,
                          int64_t until, const char *author, const char *reason, char *id_out,
                          char *err, int errlen);
int fw_alerts_silence_expire(fw_alerts *a, const char *silence_id, const char *by, char *err,
                             int errlen);

/* ---- audit log (also used by the app: rule reloads, config changes) ----
 * Each row: seq, at, actor, action, object, detail (JSON text), prev_hash,
 * hash = hex sha256(prev_hash || canonical(seq, at, actor, action, object,
 * detail)).  audit_head keeps the last seq and hash, so deleting the last
 * rows is detected too.  Append inside the caller's transaction, or in its
 * own.  0 or -1. */
int fw_audit_append(fw_store *st, const char *actor, const char *action, const char *object,
                    const char *detail_json);
/* 0 intact (err gets "N rows"), 1 broken (err names the first bad row),
 * -1 store error. */
int fw_audit_verify(fw_store *st, char *err, int errlen);

#endif
