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
 * every module write its rows for several messages, and commits before any
 * of those messages is acknowledged.  Only the event-loop thread touches
 * SQLite.
 *
 * Durability modes (store.synchronous):
 *
 * - full: synchronous=FULL, SQLite's own auto-checkpoint.  Every COMMIT
 *   fsyncs the WAL, and a checkpoint (up to 64 MiB of WAL) runs inside the
 *   COMMIT that crosses the threshold: both on the loop.
 * - normal: synchronous=NORMAL: survives a process crash, not a power loss.
 * - deferred (the default): durable like full, without the fsync on the
 *   loop.  The connection runs with synchronous=OFF and no auto-checkpoint.
 *   A batch is committed with fw_store_commit_deferred(), which returns a
 *   ticket; a sync thread (the only thread besides the loop that touches the
 *   store, and it never calls SQLite: it only fdatasync()s two file
 *   descriptors the store opened itself on "<db>-wal" and "<db>") makes the
 *   WAL durable and tells the loop through fw_store_sync_fd(); the caller
 *   acks the batch's messages only when fw_store_durable() >= its ticket.
 *   Every other commit (fw_store_commit, autocommit statements: ticks, SMS
 *   and alert state, API writes) fsyncs the WAL inline before returning, as
 *   full did, so their callers' promises (e.g. "the outbox row is durable
 *   before the HTTP call") still hold, and each such sync also covers every
 *   earlier deferred batch.
 *
 * Why this is as safe as full across a power loss:
 *
 * 1. A commit appends frames to the WAL; each frame carries a checksum
 *    chained from the WAL header and the header's salt.  After a power loss
 *    SQLite replays the longest valid prefix of frames that ends at a commit
 *    frame, so whatever part of the unsynced tail reached the disk, the
 *    database recovers to some commit boundary at or after the last
 *    fdatasync.  Every batch acked (and every inline-synced commit) is at or
 *    before that fdatasync, so nothing acked is lost, and nothing is ever
 *    half applied (intake.last_seq commits with the batch's effects, so the
 *    unacked tail is redelivered and applied again).
 * 2. A checkpoint copies WAL frames into the database file: the database
 *    file must never receive a page whose WAL frame could still be lost
 *    (the WAL replays over whatever the copy left on disk, torn pages
 *    included, but only if the WAL has the frames).  Checkpoints run only
 *    from fw_store_checkpoint_step(), on the loop, between batches, in steps
 *    of ~1 MiB of WAL, and are bounded by a "pin": a second, read-only
 *    connection of the store (also used on the loop only) opens a read
 *    transaction at commit N; SQLite's PASSIVE checkpoint never copies
 *    frames past the read mark of a live reader, and the step runs only
 *    once commit N is durable.  So batches after N may be committed and in
 *    flight meanwhile.
 * 3. After a checkpoint, a writer may restart the WAL (write it again from
 *    the start with a new salt: the old frames stop counting) once every
 *    frame is copied and no reader uses the WAL.  Before that, the copied
 *    pages must be on disk in the database file.  The pin is kept open
 *    until the sync thread has fdatasync()ed the database file: a live
 *    reader with a read mark keeps every writer (ours, or another process's)
 *    from restarting the WAL, so writes go on (appended) meanwhile.
 * 4. fw_store_close() finishes outstanding syncs, closes the pin and
 *    switches the connection to synchronous=FULL before closing, so the
 *    checkpoint SQLite runs at close (which then deletes the WAL) syncs the
 *    WAL before and the database after copying.
 *
 * While batches keep coming, a checkpoint never copies the whole WAL, so
 * the WAL never restarts and grows; past 64 MiB fw_store_wal_too_big() asks
 * the caller to hold new batches for one quiet moment (every commit
 * durable, a checkpoint of everything, the database fdatasync), after which
 * the next write restarts the WAL.
 *
 * The store sets the connection's WAL hook (SQLite keeps one per
 * connection; sqlite3_wal_autocheckpoint would replace it).
 *
 * The writing connection opens its files through a small VFS ("fw_walbuf",
 * store.c): the unix VFS, except that the WAL's frame appends are buffered
 * and written with one pwrite per 124 KiB at the commit frame, before SQLite
 * publishes the commit to any reader (other connections, threads and
 * processes read the WAL as before).  That connection runs with
 * cache_spill=OFF, so a transaction writes frames only in its COMMIT.
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

typedef enum { FW_SYNC_NORMAL = 1, FW_SYNC_FULL = 2, FW_SYNC_DEFERRED = 3 } fw_sync_mode;

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

/* A read-only stretch (the pre-payment check): outside a batch, one deferred
 * read transaction around all its reads, so the WAL snapshot and its file
 * locks are taken once instead of once per statement.  Inside a batch it
 * does nothing (the reads see the batch).  Returns a token for
 * fw_store_read_end. */
int fw_store_read_begin(fw_store *st);
void fw_store_read_end(fw_store *st, int token);

/* Deferred durability (FW_SYNC_DEFERRED on a database file; in the other
 * modes and for :memory: every commit is durable, or as durable as it gets,
 * when it returns, and these degrade to that).
 *
 * Commit the open batch without waiting for the disk; *ticket is the commit
 * to wait for: the batch is durable once fw_store_durable() >= *ticket. */
int fw_store_commit_deferred(fw_store *st, uint64_t *ticket);
/* The highest durable commit as last seen by the loop, and the number of
 * commits made so far (durable == committed: nothing in flight). */
uint64_t fw_store_durable(const fw_store *st);
uint64_t fw_store_committed(const fw_store *st);
/* A descriptor that turns readable when the sync thread finished something
 * (-1 without a sync thread); then call fw_store_sync_poll(): it updates
 * fw_store_durable() and ends a checkpoint whose database fdatasync is
 * done.  -1 if an fsync failed: nothing more may be acked, the process
 * should stop. */
int fw_store_sync_fd(const fw_store *st);
int fw_store_sync_poll(fw_store *st);
/* Whether the WAL has grown enough since the last checkpoint for one. */
int fw_store_checkpoint_due(const fw_store *st);
/* Call between transactions, after commits and after fw_store_sync_poll:
 * pins the last commit when a checkpoint is due, and once that commit is
 * durable runs a PASSIVE checkpoint up to it and has the sync thread
 * fdatasync the database file.  Returns 1 when a checkpoint ran, 0 when
 * not (not due, or waiting for an fsync), -1 on error. */
int fw_store_checkpoint_step(fw_store *st);
/* The WAL is past 64 MiB and cannot restart while batches keep coming:
 * hold new batches until this turns false (it takes every commit durable,
 * then fw_store_checkpoint_step calls after fw_store_sync_poll). */
int fw_store_wal_too_big(const fw_store *st);

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
