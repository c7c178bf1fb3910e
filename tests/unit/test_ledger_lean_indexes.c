/* test_ledger_lean_indexes.c - after the "ledger_lean" migration (indexes
 * no query needs are dropped) every read of the shipped rule pack and of
 * the views still finds its rows through an index: the SELECTs that
 * fw_ledger_history & co. run are captured with a statement trace and their
 * query plans must SEARCH and never SCAN a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/ledger.h"
#include "daemon/schema.h"
#include "daemon/store.h"

#define MAXCAP 32
static char captured[MAXCAP][1600];
static int ncaptured;

static int on_trace(unsigned type, void *ctx, void *p, void *x)
{
    (void)ctx, (void)x;
    if (type == SQLITE_TRACE_STMT && ncaptured < MAXCAP) {
        const char *sql = sqlite3_sql((sqlite3_stmt *)p);
        if (sql && strncmp(sql, "SELECT", 6) == 0)
            snprintf(captured[ncaptured++], sizeof captured[0], "%s", sql);
    }
    return 0;
}

static void expect_indexed(fw_store *st, const char *what)
{
    assert_true(ncaptured > 0);
    for (int i = 0; i < ncaptured; i++) {
        char q[1700], plan[1024] = "";
        snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %.*s", (int)sizeof captured[0], captured[i]);
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(fw_store_db(st), q, -1, &s, NULL), SQLITE_OK);
        while (sqlite3_step(s) == SQLITE_ROW) {
            strncat(plan, (const char *)sqlite3_column_text(s, 3), sizeof plan - strlen(plan) - 1);
            strncat(plan, "; ", sizeof plan - strlen(plan) - 1);
        }
        sqlite3_finalize(s);
        int ok = strstr(plan, "SEARCH ") != NULL;
        for (const char *p = strstr(plan, "SCAN "); p && ok; p = strstr(p + 5, "SCAN "))
            ok = strncmp(p + 5, "json_each", 9) == 0 || strncmp(p + 5, "CONSTANT", 8) == 0 ||
                 strncmp(p + 5, "(subquery", 9) == 0;
        if (!ok)
            fail_msg("%s: not indexed: %s\n  plan: %s", what, captured[i], plan);
    }
    ncaptured = 0;
}

static void test_rule_windows_stay_indexed(void **state)
{
    (void)state;
    char err[256];
    const fw_migration migs[] = {{"ledger", fw_ledger_schema},
                                 {"ledger_lean", fw_ledger_lean_schema}};
    fw_store *st = fw_store_open(":memory:", migs, 2, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    /* The migration really dropped something. */
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(fw_store_db(st),
                                        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                        "AND tbl_name = 'vouchers' AND sql IS NOT NULL",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 6);
    sqlite3_finalize(s);

    fw_ledger *l = fw_ledger_new(st);
    sqlite3_trace_v2(fw_store_db(st), SQLITE_TRACE_STMT, on_trace, NULL);
    fw_history_result r;
    /* cash_over_limit */
    fw_history_query co = {.unit_code = "101001", .settle_method = "cash", .since = 1, .until = 2};
    assert_int_equal(fw_ledger_history(l, &co, &r), 0);
    expect_indexed(st, "cash_over_limit");
    /* sangong_budget */
    static const char *const sangong[] = {"30211", "30215", "30217", NULL};
    fw_history_query sg = {.unit_code = "101002", .econ_classes = sangong, .since = 1, .until = 2};
    assert_int_equal(fw_ledger_history(l, &sg, &r), 0);
    expect_indexed(st, "sangong_budget");
    /* split_payment, duplicate_payment */
    fw_history_query sp = {.unit_code = "101001",
                           .payee_account = "A1",
                           .amount_below = 5000000,
                           .since = 1,
                           .until = 2,
                           .exclude_voucher = "V1"};
    assert_int_equal(fw_ledger_history(l, &sp, &r), 0);
    expect_indexed(st, "split_payment");
    fw_history_query dp = {.unit_code = "101001",
                           .payee_account = "A1",
                           .has_amount = 1,
                           .amount = 500000,
                           .since = 1,
                           .until = 2,
                           .exclude_voucher = "V1"};
    assert_int_equal(fw_ledger_history(l, &dp, &r), 0);
    expect_indexed(st, "duplicate_payment");
    /* returned_repeatedly */
    fw_history_query rr = {
        .payee_account = "A3", .state = "returned", .since = 1, .until = 2, .exclude_voucher = "V"};
    assert_int_equal(fw_ledger_history(l, &rr, &r), 0);
    expect_indexed(st, "returned_repeatedly");
    /* year_end_rush */
    fw_history_query ye = {.indicator_id = "H3", .state = "paid", .since = 1, .until = 2};
    assert_int_equal(fw_ledger_history(l, &ye, &r), 0);
    expect_indexed(st, "year_end_rush");
    /* stuck_voucher, the voucher itself, the views */
    json_decref(fw_ledger_vouchers_sent_before(l, 2));
    expect_indexed(st, "stuck_voucher");
    json_decref(fw_ledger_voucher_json(l, "V1"));
    expect_indexed(st, "voucher");
    sqlite3_trace_v2(fw_store_db(st), 0, NULL, NULL);
    fw_ledger_free(l);
    fw_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_windows_stay_indexed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
