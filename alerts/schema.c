/*
 * schema.c - the alert store's tables (migration 4, see daemon/schema.c).
 *
 * alerts               one row per alert; alert_id "AL-%06d" of n.  Times in
 *                      unix seconds: first_seen/last_seen are the hits' own
 *                      times (hit->at); created_at, acked_at, escalate_at are
 *                      wall-clock (fw_clock_now), because deadlines run from
 *                      the moment supervisors could have heard of the alert.
 *                      The partial unique index makes "one live alert per
 *                      fingerprint" a database invariant: open, acknowledged
 *                      and confirmed alerts absorb repeats; dismissed and
 *                      resolved ones do not.
 * alert_hits           (fingerprint, event_id) pairs already counted, so a
 *                      redelivered event never adds an occurrence or a second
 *                      alert, even after the first alert was resolved.
 * alert_history        append-only: every transition and escalation with
 *                      from/to/by/at/note.  Never updated.
 * silences             rule or '*', unit prefix or '*', [starts_at, ends_at).
 * alert_notifications  durable notification queue (webhook, sms) with its
 *                      grouping, retry and delivery state.
 * alert_feed           NATS publishes waiting for the batch commit; written in
 *                      the same transaction as their cause, deleted once
 *                      published, so a rollback never publishes and a crash
 *                      between commit and publish publishes at the next start.
 *                      Its n never repeats (AUTOINCREMENT, migration
 *                      alerts_feed_seq): a batch's rows are "those up to n".
 * audit, audit_head    the hash-chained audit log (audit.c).
 */
#include "alerts/alerts.h"

const char fw_alerts_schema[] =
    "CREATE TABLE alerts ("
    "  n INTEGER PRIMARY KEY,"
    "  alert_id TEXT NOT NULL UNIQUE,"
    "  rule TEXT NOT NULL,"
    "  level TEXT NOT NULL CHECK (level IN ('red','orange','yellow','blue')),"
    "  status TEXT NOT NULL CHECK (status IN ('open','acknowledged','confirmed','dismissed',"
    "    'resolved')),"
    "  unit_code TEXT NOT NULL,"
    "  subject_kind TEXT NOT NULL,"
    "  subject_id TEXT NOT NULL,"
    "  rule_key TEXT,"
    "  message TEXT NOT NULL,"
    "  details TEXT NOT NULL DEFAULT '{}',"
    "  fingerprint TEXT NOT NULL,"
    "  ruleset TEXT NOT NULL DEFAULT '',"
    "  shadow INTEGER NOT NULL DEFAULT 0,"
    "  silence_n INTEGER,"
    "  event_id TEXT,"
    "  occurrences INTEGER NOT NULL DEFAULT 1,"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  acked_at INTEGER,"
    "  escalation_step INTEGER NOT NULL DEFAULT 0,"
    "  escalate_at INTEGER"
    ") STRICT;"
    "CREATE UNIQUE INDEX alerts_live_fp ON alerts(fingerprint)"
    "  WHERE status IN ('open','acknowledged','confirmed');"
    "CREATE INDEX alerts_fp ON alerts(fingerprint);"
    "CREATE INDEX alerts_level_status ON alerts(level, status);"
    "CREATE INDEX alerts_status ON alerts(status);"
    "CREATE INDEX alerts_unit ON alerts(unit_code);"
    "CREATE INDEX alerts_rule ON alerts(rule);"
    "CREATE INDEX alerts_escalate ON alerts(escalate_at) WHERE escalate_at IS NOT NULL;"
    "CREATE TABLE alert_hits ("
    "  fingerprint TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  alert_n INTEGER NOT NULL,"
    "  PRIMARY KEY (fingerprint, event_id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE alert_history ("
    "  n INTEGER PRIMARY KEY,"
    "  alert_n INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('transition','escalation')),"
    "  from_status TEXT NOT NULL,"
    "  to_status TEXT NOT NULL,"
    "  by TEXT NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  note TEXT NOT NULL DEFAULT ''"
    ") STRICT;"
    "CREATE INDEX alert_history_alert ON alert_history(alert_n, n);"
    "CREATE TABLE silences ("
    "  n INTEGER PRIMARY KEY,"
    "  rule TEXT NOT NULL,"
    "  unit TEXT NOT NULL,"
    "  starts_at INTEGER NOT NULL,"
    "  ends_at INTEGER NOT NULL,"
    "  author TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expired_at INTEGER,"
    "  expired_by TEXT"
    ") STRICT;"
    "CREATE INDEX silences_live ON silences(ends_at) WHERE expired_at IS NULL;"
    "CREATE TABLE alert_notifications ("
    "  n INTEGER PRIMARY KEY,"
    "  alert_n INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('alert','grouped','summary','escalation',"
    "    'resolved')),"
    "  recipient TEXT NOT NULL,"
    "  channel TEXT NOT NULL CHECK (channel IN ('webhook','sms')),"
    "  group_key TEXT,"
    "  summary_n INTEGER,"
    "  grouped INTEGER NOT NULL DEFAULT 0,"
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL CHECK (status IN ('waiting','pending','sending','sent','failed',"
    "    'grouped')),"
    "  due_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  sent_at INTEGER"
    ") STRICT;"
    "CREATE INDEX alert_notif_due ON alert_notifications(status, due_at)"
    "  WHERE status IN ('waiting','pending');"
    "CREATE INDEX alert_notif_group ON alert_notifications(group_key, n)"
    "  WHERE group_key IS NOT NULL;"
    "CREATE INDEX alert_notif_summary ON alert_notifications(summary_n)"
    "  WHERE summary_n IS NOT NULL;"
    "CREATE INDEX alert_notif_alert ON alert_notifications(alert_n);"
    "CREATE TABLE alert_feed ("
    "  n INTEGER PRIMARY KEY,"
    "  subject TEXT NOT NULL,"
    "  payload TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE audit_head ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  seq INTEGER NOT NULL,"
    "  hash TEXT NOT NULL"
    ") STRICT;";

/* Migration "alerts_feed_seq": alert_feed's n from AUTOINCREMENT, so that a
 * number is never given twice, even after every row was published and
 * deleted.  The daemon publishes a batch's rows once the batch is durable,
 * as "the rows up to the newest n at its commit" (fw_alerts_flush_upto): a
 * reused n would let rows of a later batch, not yet durable, pass. */
const char fw_alerts_feed_seq_schema[] =
    "CREATE TABLE alert_feed_seq ("
    "  n INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  subject TEXT NOT NULL,"
    "  payload TEXT NOT NULL"
    ") STRICT;"
    "INSERT INTO alert_feed_seq (n, subject, payload) SELECT n, subject, payload FROM alert_feed;"
    "DROP TABLE alert_feed;"
    "ALTER TABLE alert_feed_seq RENAME TO alert_feed;";

const fw_migration fw_alerts_migrations[] = {
    {"alerts", fw_alerts_schema},
    {"alerts_feed_seq", fw_alerts_feed_seq_schema},
};
const int fw_alerts_nmigrations =
    (int)(sizeof fw_alerts_migrations / sizeof fw_alerts_migrations[0]);
