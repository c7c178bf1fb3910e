/* test_core_store.c - migrations by user_version, the statement cache,
 * batch transactions and the meta table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics.h"
#include "daemon/store.h"
#include "tests/support/harness.h"

static const fw_migration k_v1[] = {
    {"one", "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL) STRICT;"},
};
static const fw_migration k_v2[] = {
    {"one", "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL) STRICT;"},
    {"two", "ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 7;"},
};

static void test_migrations_apply_once(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("store");
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/sub/dir/t.db", tmp);
    fw_store *st = fw_store_open(path, k_v1, 1, 0, FW_SYNC_FULL, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(fw_store_exec(st, "INSERT INTO t VALUES ('a', 1)"), 0);
    fw_store_close(st);
    /* Reopen with a second migration: only the new one runs. */
    st = fw_store_open(path, k_v2, 2, 0, FW_SYNC_FULL, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(fw_t_sql_int(path, "PRAGMA user_version"), 2);
    assert_int_equal(fw_t_sql_int(path, "SELECT w FROM t WHERE k = 'a'"), 7);
    fw_store_close(st);
    /* A database newer than the build is refused, not damaged. */
    st = fw_store_open(path, k_v1, 1, 0, FW_SYNC_FULL, err, sizeof err);
    assert_null(st);
    assert_non_null(strstr(err, "newer than this build"));
    assert_int_equal(fw_t_sql_int(path, "SELECT count(*) FROM t"), 1);
    /* A failing migration names itself and leaves the version alone. */
    static const fw_migration bad[] = {
        {"one", "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL) STRICT;"},
        {"two", "ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 7;"},
        {"three", "CREATE TABLE oops (;"},
    };
    st = fw_store_open(path, bad, 3, 0, FW_SYNC_FULL, err, sizeof err);
    assert_null(st);
    assert_non_null(strstr(err, "migration 3 (three)"));
    assert_int_equal(fw_t_sql_int(path, "PRAGMA user_version"), 2);
    assert_int_equal(fw_t_sql_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    fw_t_rmtree(tmp);
    free(tmp);
}

static void test_stmt_cache_and_txn(void **state)
{
    (void)state;
    char err[512];
    fw_store *st = fw_store_open(":memory:", k_v1, 1, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    const char *ins = "INSERT INTO t(k, v) VALUES (?1, ?2)";
    sqlite3_stmt *a = fw_store_stmt(st, ins);
    /* Same SQL text from another buffer: the same cached statement. */
    char copy[128];
    snprintf(copy, sizeof copy, "%s", ins);
    assert_ptr_equal(fw_store_stmt(st, copy), a);
    assert_int_equal(fw_store_begin(st), 0);
    assert_int_equal(fw_store_begin(st), 0); /* nested: counted */
    for (int i = 0; i < 300; i++) {
        char k[16], sql[64];
        snprintf(k, sizeof k, "k%d", i);
        sqlite3_stmt *s = fw_store_stmt(st, ins);
        fw_bind_text(s, 1, k);
        sqlite3_bind_int64(s, 2, i);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        fw_store_done(s);
        /* Many distinct statements: the cache grows without losing any. */
        snprintf(sql, sizeof sql, "SELECT v + %d FROM t WHERE k = ?1", i);
        s = fw_store_stmt(st, sql);
        fw_bind_text(s, 1, k);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(s, 0), 2 * i);
        fw_store_done(s);
    }
    assert_int_equal(fw_store_commit(st), 0);
    assert_true(fw_store_in_txn(st));
    assert_int_equal(fw_store_commit(st), 0);
    assert_false(fw_store_in_txn(st));
    /* Rollback drops a whole batch. */
    assert_int_equal(fw_store_begin(st), 0);
    assert_int_equal(fw_store_exec(st, "DELETE FROM t"), 0);
    fw_store_rollback(st);
    sqlite3_stmt *c = fw_store_stmt(st, "SELECT count(*) FROM t");
    assert_int_equal(sqlite3_step(c), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(c, 0), 300);
    fw_store_done(c);
    /* meta */
    int64_t v = 0;
    assert_int_equal(fw_store_meta_get_int(st, "intake.last_seq", &v), 0);
    assert_int_equal(fw_store_meta_set_int(st, "intake.last_seq", 42), 0);
    assert_int_equal(fw_store_meta_set_int(st, "intake.last_seq", 43), 0);
    assert_int_equal(fw_store_meta_get_int(st, "intake.last_seq", &v), 1);
    assert_int_equal(v, 43);
    assert_string_equal(fw_col_text(c, 5), "");
    fw_store_close(st);
}

static void test_metrics_render(void **state)
{
    (void)state;
    fw_metrics_reset();
    fw_metric *a = fw_metric_counter("t_total", "things", "kind=\"a\"");
    fw_metric *b = fw_metric_counter("t_total", "things", "kind=\"b\"");
    assert_ptr_equal(fw_metric_counter("t_total", "things", "kind=\"a\""), a);
    fw_metric_add(a, 2);
    fw_metric_add(b, 1);
    static const double bounds[] = {0.001, 0.01};
    fw_metric *h = fw_metric_histogram("t_seconds", "latency", NULL, bounds, 2);
    fw_metric_observe(h, 0.0005);
    fw_metric_observe(h, 0.5);
    char *text = fw_metrics_render();
    assert_non_null(
        strstr(text, "# TYPE t_total counter\nt_total{kind=\"a\"} 2\nt_total{kind=\"b\"} 1\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.01\"} 1\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "t_seconds_count 2\n"));
    /* HELP/TYPE once per name */
    assert_null(strstr(strstr(text, "# TYPE t_total") + 5, "# TYPE t_total"));
    free(text);
    fw_metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_apply_once),
        cmocka_unit_test(test_stmt_cache_and_txn),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
