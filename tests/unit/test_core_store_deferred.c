/* test_core_store_deferred.c - store.synchronous = deferred: batch commits
 * become durable through the sync thread (tickets, the notification fd),
 * other commits are durable when they return, the checkpointer thread
 * checkpoints while batches keep committing, the WAL stays bounded under
 * continuous load (with the caller's hold for a big WAL), and the data
 * survives close and reopen; the WAL appends the store buffers are in the
 * file before a commit is visible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/store.h"
#include "tests/support/harness.h"

static const fw_migration k_mig[] = {
    {"one", "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL) STRICT;"
            "CREATE INDEX t_v ON t(v);"},
};

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Wait on the store's notification fd until `ticket` is durable. */
static void wait_durable(fw_store *st, uint64_t ticket)
{
    for (int i = 0; i < 500 && fw_store_durable(st) < ticket; i++) {
        struct pollfd p = {fw_store_sync_fd(st), POLLIN, 0};
        poll(&p, 1, 10);
        assert_int_equal(fw_store_sync_poll(st), 0);
    }
    assert_true(fw_store_durable(st) >= ticket);
}

/* Rows keyed from..from+n-1 whose indexed value starts random-ish (the
 * index dirties many pages, the WAL grows) and is padded with 'x' to
 * `width` bytes when that is longer. */
static void insert_rows_of(fw_store *st, int from, int n, size_t width)
{
    sqlite3_stmt *s = fw_store_stmt(st, "INSERT INTO t(k, v) VALUES (?1, ?2)");
    for (int i = from; i < from + n; i++) {
        char v[700];
        int len = snprintf(v, sizeof v, "%08x-%d", (unsigned)(i * 2654435761u), i);
        if (width >= sizeof v)
            width = sizeof v - 1;
        if ((size_t)len < width) {
            v[len] = '-';
            memset(v + len + 1, 'x', width - (size_t)len - 1);
            v[width] = 0;
        }
        sqlite3_bind_int(s, 1, i);
        sqlite3_bind_text(s, 2, v, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        fw_store_done(s);
    }
}

static void insert_rows(fw_store *st, int from, int n)
{
    insert_rows_of(st, from, n, 0);
}

static void test_deferred_tickets_and_checkpoints(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store-deferred");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/d.db", tmp);
    fw_store *st = fw_store_open(path, k_mig, 1, 0, FW_SYNC_DEFERRED, err, sizeof err);
    assert_non_null(st);
    assert_true(fw_store_sync_fd(st) >= 0);

    /* A batch: committed at once, durable when the sync thread says so. */
    uint64_t before = fw_store_committed(st);
    assert_int_equal(fw_store_begin(st), 0);
    insert_rows(st, 0, 100);
    uint64_t ticket = 0;
    assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
    assert_int_equal(ticket, before + 1);
    assert_int_equal(fw_store_committed(st), ticket);
    wait_durable(st, ticket);
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), 100);

    /* fw_store_sync_now makes every commit durable at once. */
    assert_int_equal(fw_store_begin(st), 0);
    insert_rows(st, 101, 50);
    assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
    assert_int_equal(fw_store_sync_now(st), 0);
    assert_int_equal(fw_store_durable(st), ticket);
    assert_int_equal(fw_store_sync_now(st), 0); /* nothing in flight: nothing to do */
    wait_durable(st, ticket);                   /* the sync thread's answer comes too, harmlessly */
    assert_int_equal(fw_store_durable(st), ticket);

    /* Any other commit is durable when it returns. */
    assert_int_equal(fw_store_begin(st), 0);
    insert_rows(st, 100, 1);
    assert_int_equal(fw_store_commit(st), 0);
    assert_int_equal(fw_store_durable(st), fw_store_committed(st));
    assert_int_equal(fw_store_exec(st, "INSERT INTO t(k, v) VALUES (1000000, 'auto')"), 0);
    assert_int_equal(fw_store_durable(st), fw_store_committed(st));

    /* Batches keep committing (no pause, nothing but polling the
     * notification fd between them, as the loop does): the checkpointer
     * thread checkpoints meanwhile, on its own. */
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int k = 200;
    for (int i = 0; fw_store_checkpoints(st) < 3; i++) {
        assert_true(i < 2000);
        assert_int_equal(fw_store_begin(st), 0);
        insert_rows(st, k, 500);
        k += 500;
        assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
        assert_int_equal(fw_store_sync_poll(st), 0);
        assert_false(fw_store_wal_too_big(st));
    }
    wait_durable(st, ticket);
    /* Another connection sees every row, whatever was copied where. */
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), 100 + 50 + 1 + 1 + (k - 200));
    fw_store_close(st);
    assert_int_equal(file_size(wal), -1);

    /* Everything committed is there (the close checkpointed and removed
     * the WAL). */
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), 100 + 50 + 1 + 1 + (k - 200));
    assert_int_equal(
        fw_t_sql_int(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);

    fw_t_rmtree(tmp);
    free(tmp);
}

/* full (the old behaviour) and :memory: need no sync thread: every ticket
 * is durable when the commit returns. */
static void test_other_modes_are_durable_at_once(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store-full");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/f.db", tmp);
    const char *paths[2] = {path, ":memory:"};
    fw_sync_mode modes[2] = {FW_SYNC_FULL, FW_SYNC_DEFERRED};
    for (int m = 0; m < 2; m++) {
        fw_store *st = fw_store_open(paths[m], k_mig, 1, 0, modes[m], err, sizeof err);
        assert_non_null(st);
        assert_int_equal(fw_store_sync_fd(st), -1);
        uint64_t ticket = 0;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(fw_store_begin(st), 0);
            insert_rows(st, i * 10, 10);
            assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
            assert_int_equal(ticket, (uint64_t)i + 1);
            assert_int_equal(fw_store_durable(st), ticket);
        }
        assert_false(fw_store_wal_too_big(st));
        assert_int_equal(fw_store_checkpoints(st), 0);
        fw_store_close(st);
    }
    fw_t_rmtree(tmp);
    free(tmp);
}

static int64_t reader_count(sqlite3 *db)
{
    sqlite3_stmt *s;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(v)), 0) FROM t", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void expect_integrity(sqlite3 *db)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
}

/* The writing connection's WAL appends are buffered (store.c, walbuf) and
 * must reach the file before the commit is visible: another connection
 * (the default VFS, as `fundwatch ledger show` would be) sees each commit
 * the moment it returns, whole, and never a batch in progress, also when
 * the batch is larger than the buffer and spills pages from a tiny cache
 * (frames written before the commit and read back by the writer), when it
 * rolls back, and across checkpoints and a reopen. */
static void test_wal_appends_reach_the_file_before_the_commit(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store-walbuf");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/w.db", tmp);
    fw_sync_mode modes[2] = {FW_SYNC_DEFERRED, FW_SYNC_FULL};
    int64_t rows = 0;
    for (int m = 0; m < 2; m++) {
        fw_store *st = fw_store_open(path, k_mig, 1, 0, modes[m], err, sizeof err);
        assert_non_null(st);
        /* The store turns spilling off (see walbuf); on again here, with a
         * tiny cache, to spill frames before the commit (one writer). */
        assert_int_equal(fw_store_exec(st, "PRAGMA cache_spill=ON; PRAGMA cache_size=16"), 0);
        sqlite3 *rd;
        assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        for (int i = 0; i < 6; i++) {
            int n = i % 3 == 0 ? 4000 : 7; /* 4000 rows: ~1 MiB of frames */
            assert_int_equal(fw_store_begin(st), 0);
            insert_rows(st, (int)rows + 1000000 * m, n);
            /* Read back through the writer (pages spilled to the WAL). */
            sqlite3_stmt *s = fw_store_stmt(st, "SELECT count(*) FROM t");
            assert_int_equal(sqlite3_step(s), SQLITE_ROW);
            assert_int_equal(sqlite3_column_int64(s, 0), rows + n);
            fw_store_done(s);
            assert_int_equal(reader_count(rd), rows);
            if (i == 4) {
                fw_store_rollback(st);
            } else {
                uint64_t ticket;
                assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
                rows += n;
            }
            assert_int_equal(reader_count(rd), rows);
            expect_integrity(rd);
            if (fw_store_sync_fd(st) >= 0)
                wait_durable(st, fw_store_committed(st));
        }
        sqlite3_close(rd);
        fw_store_close(st);
        assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(reader_count(rd), rows);
        expect_integrity(rd);
        sqlite3_close(rd);
    }
    fw_t_rmtree(tmp);
    free(tmp);
}

/* Under continuous load (a batch right after the other), the WAL grows
 * past 64 MiB; the caller holds new batches while fw_store_wal_too_big()
 * (as daemon/app.c does), the checkpointer copies all of it meanwhile, and
 * the next batch restarts the WAL: it never grows much past 64 MiB,
 * however much is written.  A reader of another connection sees every
 * commit whole throughout, and after close and reopen everything is there
 * and intact. */
static void test_wal_stays_bounded_under_load(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store-walbound");
    char path[600], err[512], wal[700];
    snprintf(path, sizeof path, "%s/b.db", tmp);
    snprintf(wal, sizeof wal, "%s-wal", path);
    fw_store *st = fw_store_open(path, k_mig, 1, 0, FW_SYNC_DEFERRED, err, sizeof err);
    assert_non_null(st);
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    const long max_wal = 64L << 20;
    long biggest = 0;
    int rows = 0, holds = 0;
    uint64_t ticket = 0;
    /* Several hundred MiB of WAL, in batches of 1-9 MiB. */
    for (int b = 0; b < 150; b++) {
        assert_int_equal(fw_store_begin(st), 0);
        insert_rows_of(st, rows, 500, 699); /* wide: a batch dirties many pages */
        rows += 500;
        assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
        assert_int_equal(fw_store_sync_poll(st), 0);
        if (b % 10 == 0)
            assert_int_equal(reader_count(rd), rows);
        long size = file_size(wal);
        if (size > biggest)
            biggest = size;
        if (fw_store_wal_too_big(st)) {
            /* The hold: no batch until the WAL can restart (not waiting
             * for the batches in flight to be durable). */
            holds++;
            for (int i = 0; i < 500 && fw_store_wal_too_big(st); i++) {
                struct pollfd p = {fw_store_sync_fd(st), POLLIN, 0};
                poll(&p, 1, 10);
                assert_int_equal(fw_store_sync_poll(st), 0);
            }
            assert_false(fw_store_wal_too_big(st));
        }
    }
    wait_durable(st, ticket);
    assert_true(holds >= 2);
    assert_true(fw_store_checkpoints(st) > 0);
    /* One batch (here < 10 MiB) over the limit at most. */
    assert_true(biggest > max_wal / 2);
    assert_true(biggest < max_wal + (16L << 20));
    assert_int_equal(reader_count(rd), rows);
    sqlite3_close(rd);
    fw_store_close(st);
    assert_int_equal(file_size(wal), -1);
    st = fw_store_open(path, k_mig, 1, 0, FW_SYNC_DEFERRED, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), rows);
    assert_int_equal(
        fw_t_sql_int(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
    fw_store_close(st);
    fw_t_rmtree(tmp);
    free(tmp);
}

/* A reader's snapshot keeps the checkpoint from copying the frames after
 * it: a WAL past 64 MiB cannot restart while the reader lasts (the hold
 * goes on), and once it ends the checkpointer, trying again on its own (no
 * commit asks it), copies the rest and the hold can end. */
static void test_big_wal_waits_for_a_reader(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store-walreader");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/r.db", tmp);
    fw_store *st = fw_store_open(path, k_mig, 1, 0, FW_SYNC_DEFERRED, err, sizeof err);
    assert_non_null(st);
    sqlite3 *rd;
    assert_int_equal(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(reader_count(rd), 0); /* the snapshot starts here */
    int rows = 0;
    uint64_t ticket = 0;
    while (!fw_store_wal_too_big(st)) {
        assert_true(rows < 400000);
        assert_int_equal(fw_store_begin(st), 0);
        insert_rows_of(st, rows, 500, 699); /* wide: a batch dirties many pages */
        rows += 500;
        assert_int_equal(fw_store_commit_deferred(st, &ticket), 0);
        assert_int_equal(fw_store_sync_poll(st), 0);
    }
    /* Held: no commit.  The reader still needs the WAL. */
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fw_store_sync_fd(st), POLLIN, 0};
        poll(&p, 1, 10);
        assert_int_equal(fw_store_sync_poll(st), 0);
    }
    assert_true(fw_store_wal_too_big(st));
    assert_int_equal(reader_count(rd), 0);
    assert_int_equal(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 500 && fw_store_wal_too_big(st); i++) {
        struct pollfd p = {fw_store_sync_fd(st), POLLIN, 0};
        poll(&p, 1, 10);
        assert_int_equal(fw_store_sync_poll(st), 0);
    }
    assert_false(fw_store_wal_too_big(st));
    wait_durable(st, ticket);
    assert_int_equal(reader_count(rd), rows);
    sqlite3_close(rd);
    fw_store_close(st);
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), rows);
    fw_t_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deferred_tickets_and_checkpoints),
        cmocka_unit_test(test_other_modes_are_durable_at_once),
        cmocka_unit_test(test_wal_appends_reach_the_file_before_the_commit),
        cmocka_unit_test(test_wal_stays_bounded_under_load),
        cmocka_unit_test(test_big_wal_waits_for_a_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
