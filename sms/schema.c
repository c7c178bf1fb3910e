/*
 * schema.c - the SMS outbox table (migration 5, see daemon/schema.c).
 *
 * One row per message, keyed by out_id (derived from the cause, UNIQUE so a
 * redelivered event never queues twice).  `phone` is kept whole because the
 * sender needs it; it is never logged whole.  Times: queued_at, sent_at,
 * dlr_at in unix seconds; next_at and expires_at in unix milliseconds (the
 * retry backoff starts below one second).  `params` is the JSON object of the
 * template placeholders, needed by carriers (aliyun) that render remotely.
 */
#include "sms/sms.h"

const char fw_sms_schema[] =
    "CREATE TABLE sms_outbox ("
    "  n INTEGER PRIMARY KEY,"
    "  out_id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('payroll','reimburse','subsidy','alert')),"
    "  phone TEXT NOT NULL,"
    "  content TEXT NOT NULL,"
    "  params TEXT NOT NULL DEFAULT '{}',"
    "  segments INTEGER NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('queued','sending','sent','delivered',"
    "    'undelivered','failed','expired')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  queued_at INTEGER NOT NULL,"
    "  sent_at INTEGER,"
    "  message_id TEXT,"
    "  error TEXT,"
    "  urgent INTEGER NOT NULL DEFAULT 0,"
    "  unit_code TEXT,"
    "  event_id TEXT,"
    "  dlr_at INTEGER,"
    "  dlr_error TEXT"
    ") STRICT;"
    "CREATE INDEX sms_outbox_due ON sms_outbox(next_at) WHERE status = 'queued';"
    "CREATE INDEX sms_outbox_due_urgent ON sms_outbox(next_at)"
    "  WHERE status = 'queued' AND urgent = 1;"
    "CREATE INDEX sms_outbox_sending ON sms_outbox(status) WHERE status = 'sending';"
    "CREATE INDEX sms_outbox_msgid ON sms_outbox(message_id) WHERE message_id IS NOT NULL;"
    "CREATE INDEX sms_outbox_status_kind ON sms_outbox(status, kind);";
