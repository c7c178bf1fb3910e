/*
 * store.h - the SQLite store: one database file, one writer (the loop).
 *
 * The store opens the database in WAL mode with STRICT tables, applies the
 * schema migrations it is given (tracked by PRAGMA user_version: migration i
 * is applied when user_version < i, each in its own transaction), and keeps
 * every prepared statement for the life of the process.
 *
 * Modules never prepare statements themselves: fw_store_stmt(st, SQL) returns
 * the cached statement for that SQL text (prepared once, PERSISTENT), already
 * reset and with bindings cleared.  Call fw_store_done(stmt) after the last
 * step: an un-reset statement pins the WAL.
 *
 * Transactions are batches: the intake opens one with fw_store_begin(), lets
 * every module write its rows for several messages, and fw_store_commit()s
 * before any of those messages is acknowledged.  Only the event-loop thread
 * touches the store.
 */
#ifndef FW_STORE_H
#define FW_STORE_H

#include <sqlite3.h>
#include <stdint.h>

typedef struct fw_store fw_store;

typedef struct fw_migration {
    const char *name; /* "core", "ledger", "alerts", ... (for the log) */
    const char *sql;  /* one or more statements */
} fw_migration;

typedef enum { FW_SYNC_NORMAL = 1, FW_SYNC_FULL = 2 } fw_sync_mode;

/* Open (creating parent directories and the file) and migrate.  `readonly`
 * opens without migrating.  Returns NULL with a message in err. */
fw_store *fw_store_open(const char *path, const fw_migration *migs, int nmigs, int readonly,
                        fw_sync_mode sync, char *err, int errlen);
void fw_store_close(fw_store *st);
sqlite3 *fw_store_db(fw_store *st);
const char *fw_store_path(const fw_store *st);

/* The cached statement for this SQL text, reset and unbound.  Aborts the
 * process (with a log line) if the SQL does not prepare: that is a bug. */
sqlite3_stmt *fw_store_stmt(fw_store *st, const char *sql);
/* Reset and clear bindings. */
void fw_store_done(sqlite3_stmt *stmt);

/* Batch transactions.  begin is a no-op when one is open (depth counted). */
int fw_store_begin(fw_store *st);
int fw_store_commit(fw_store *st);
void fw_store_rollback(fw_store *st);
int fw_store_in_txn(const fw_store *st);

/* Exec a literal SQL script (no results). 0 or -1 (logged). */
int fw_store_exec(fw_store *st, const char *sql);

/* Small key/value table `meta` for the store's own state
 * (e.g. "intake.last_seq"). */
int fw_store_meta_get_int(fw_store *st, const char *key, int64_t *out);
int fw_store_meta_set_int(fw_store *st, const char *key, int64_t v);

/* Helpers for binding text that may be NULL. */
int fw_bind_text(sqlite3_stmt *s, int idx, const char *v);
const char *fw_col_text(sqlite3_stmt *s, int col); /* "" for NULL */

#endif
