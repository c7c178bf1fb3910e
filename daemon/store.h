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
 * of those messages is acknowledged.  The store's statements and its
 * writing connection are the event-loop thread's; the store's own threads
 * (deferred mode, below) are the only others that touch its files.
 *
 * Durability modes (store.synchronous):
 *
 * - full: synchronous=FULL, SQLite's own auto-checkpoint.  Every COMMIT
 *   fsyncs the WAL, and a checkpoint (up to 64 MiB of WAL) runs inside the
 *   COMMIT that crosses the threshold: both on the loop.
 * - normal: synchronous=NORMAL: survives a process crash, not a power loss.
 * - deferred (the default): durable like full, with neither an fsync nor a
 *   checkpoint on the loop.  The writing connection runs with
 *   synchronous=OFF and never checkpoints (wal_autocheckpoint=0).  Two
 *   threads of the store do the rest:
 *   - the sync thread never calls SQLite: it only fdatasync()s a descriptor
 *     the store opened itself on "<db>-wal".  A batch is committed with
 *     fw_store_commit_deferred(), which returns a ticket; the sync thread
 *     makes the WAL durable and tells the loop through fw_store_sync_fd();
 *     the caller acks the batch's messages only when fw_store_durable() >=
 *     its ticket.  Every other commit (fw_store_commit, autocommit
 *     statements: ticks, SMS and alert state, API writes) fsyncs the WAL
 *     inline before returning, as full did, so their callers' promises
 *     (e.g. "the outbox row is durable before the HTTP call") still hold,
 *     and each such sync also covers every earlier deferred batch.
 *   - the checkpointer thread owns a second connection of its own (opened
 *     before the thread starts, then used by that thread alone, closed
 *     after it ends; default VFS, synchronous=FULL).  After every ~4 MiB
 *     of WAL the loop's WAL hook asks it (a counter and a condition
 *     variable: no waiting on the loop), and it runs a PASSIVE checkpoint;
 *     after one that copied part of the WAL it also fdatasync()s a
 *     descriptor the store opened on "<db>", so that the checkpoint of the
 *     whole WAL (below) has little left to sync.  It tells the loop what
 *     it copied through the same descriptor as the sync thread.  It does
 *     not advance fw_store_durable(): tickets are the sync thread's.
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
 *    included, but only if the WAL has the frames).  A checkpoint copies
 *    only frames of commits published (in the wal-index) when it starts,
 *    and a commit is published only after all its frames were written to
 *    the file (the writer's WAL buffer, below, is written out at the commit
 *    frame, before SQLite publishes).  With synchronous=FULL on its
 *    connection, SQLite fdatasyncs the WAL after choosing the frames and
 *    before copying any (sqlite3 wal.c, walCheckpoint): every frame it
 *    copies is on disk in the WAL first.  Later commits go on meanwhile:
 *    a PASSIVE checkpoint takes no writer lock and never copies past them
 *    (nor past the snapshot of any live reader).
 * 3. After a checkpoint, a writer may restart the WAL (write it again from
 *    the start with a new salt: the old frames stop counting) only when
 *    the checkpoint recorded every frame as copied (nBackfill = the WAL's
 *    last frame) and no reader uses the WAL.  Before that, the copied
 *    pages must be on disk in the database file.  SQLite fdatasyncs the
 *    database file in the checkpoint that copies the whole WAL, before it
 *    records that (a partial checkpoint records its progress without a
 *    database sync, which is safe: the WAL stays, and is replayed over the
 *    database file at recovery).  So the writer, ours or another
 *    process's, restarts the WAL only over frames whose pages are durable
 *    in the database file.
 * 4. fw_store_close() stops the checkpointer (after the checkpoint it is
 *    in), lets the sync thread finish the syncs asked for, closes the
 *    checkpointer's connection and switches the writer to
 *    synchronous=FULL before closing it, so the checkpoint SQLite runs at
 *    close (which then deletes the WAL) syncs the WAL before and the
 *    database after copying.
 *
 * While batches keep coming, a checkpoint rarely copies the whole WAL just
 * between one commit and the next write, so the WAL seldom restarts and
 * grows; past 64 MiB fw_store_wal_too_big() asks the caller to hold new
 * batches for one quiet moment: every commit then asks for a checkpoint of
 * all of it (retried every few ms while a reader holds frames back), and
 * once one that started after the last commit copied everything,
 * fw_store_sync_poll() turns fw_store_wal_too_big() false and the next
 * write restarts the WAL.  Nothing else holds the intake for a checkpoint,
 * and durability does not wait for one.
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
/* A descriptor that turns readable when the sync or checkpointer thread
 * finished something (-1 without them); then call fw_store_sync_poll(): it
 * updates fw_store_durable() and what the last checkpoint copied.  -1 if
 * an fsync or a checkpoint failed: nothing more may be acked, the process
 * should stop. */
int fw_store_sync_fd(const fw_store *st);
int fw_store_sync_poll(fw_store *st);
/* Make every commit so far durable now, on the loop: one fdatasync of the
 * WAL when some are in flight, nothing otherwise.  For the rare callers
 * that act on everything committed without knowing which batches are
 * durable (an alert flush after a tick or an API action).  0, or -1 when
 * the fdatasync failed (then act on nothing). */
int fw_store_sync_now(fw_store *st);
/* Checkpoints (on the checkpointer thread) that copied frames, as of the
 * last fw_store_sync_poll(). */
uint64_t fw_store_checkpoints(const fw_store *st);
/* The WAL is past 64 MiB and cannot restart while batches keep coming:
 * hold new batches until this turns false (after fw_store_sync_poll() saw
 * a checkpoint of the whole WAL that started after the last commit; the
 * next write then restarts the WAL). */
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
