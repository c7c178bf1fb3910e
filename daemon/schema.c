/*
 * schema.c - the store's migrations, in order.
 *
 * Migration i (1-based) is applied when PRAGMA user_version < i.  Each
 * module owns its schema string; the list here only orders them.  Once a
 * migration has shipped it is never edited: changes are new migrations
 * appended at the end.
 */
#include "daemon/schema.h"

/* The intake's own tables: every accepted event once (idempotency by id,
 * stream order by seq) and every dead-lettered message with its bytes. */
const char fw_core_schema[] =
    /* A rowid table: rows (with their bodies) are appended in arrival
     * order, and only the small unique index on id takes the random
     * inserts of upstream ids.  (Keyed WITHOUT ROWID by id, every insert
     * put a whole body at a random place in the tree.) */
    "CREATE TABLE events ("
    "  n INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  unit_code TEXT NOT NULL,"
    "  stream_seq INTEGER,"
    "  occurred_at INTEGER NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  body TEXT NOT NULL"
    ") STRICT;"
    "CREATE INDEX events_seq ON events(stream_seq);"
    "CREATE TABLE dlq ("
    "  n INTEGER PRIMARY KEY,"
    "  stream_seq INTEGER,"
    "  subject TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  field TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE UNIQUE INDEX dlq_seq ON dlq(stream_seq) WHERE stream_seq IS NOT NULL;";

/* Nothing reads events by stream_seq (the intake keeps the last committed
 * sequence in meta): the index only cost every insert. */
const char fw_core_lean_schema[] = "DROP INDEX events_seq;";

const fw_migration fw_migrations[] = {
    {"core", fw_core_schema},
    {"ledger", fw_ledger_schema},
    {"rules", fw_rules_schema},
    {"alerts", fw_alerts_schema},
    {"sms", fw_sms_schema},
    {"ledger_lean", fw_ledger_lean_schema},
    {"core_lean", fw_core_lean_schema},
    {"ledger_write_lean", fw_ledger_write_lean_schema},
    {"ledger_bodies", fw_ledger_bodies_schema},
    {"alerts_feed_seq", fw_alerts_feed_seq_schema},
};
const int fw_nmigrations = (int)(sizeof fw_migrations / sizeof fw_migrations[0]);
