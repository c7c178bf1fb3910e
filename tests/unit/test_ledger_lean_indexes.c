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
#include "test_ledger_util.h"

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
    fw_store *st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
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

/* After "ledger_write_lean" (reservations_indicator dropped,
 * ledger_entries_funding partial): the trace, whose funding walk names
 * ledger_entries_funding, and the entries view still search an index, and
 * the funding index holds the documents and transfers but no voucher
 * entry. */
static void test_trace_stays_indexed(void **state)
{
    (void)state;
    char err[256];
    fw_store *st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    fw_ledger *l = fw_ledger_new(st);
    assert_int_equal(lt_allocate(l, "a1", "101001", "A", 10000000, NULL, LT_T0, NULL),
                     FW_LEDGER_APPLIED);
    assert_int_equal(lt_allocate(l, "b1", "101001", "B", 5000000, NULL, LT_T0 + 1, NULL),
                     FW_LEDGER_APPLIED);
    assert_int_equal(lt_transfer(l, "t1", "101001", "B", "A", 1000000, LT_T0 + 2, NULL),
                     FW_LEDGER_APPLIED);
    lt_voucher v = {
        .unit = "101001", .no = "V1", .indicator = "A", .amount = 250000, .at = LT_T0 + 3};
    assert_int_equal(lt_created(l, "v1", &v, NULL), FW_LEDGER_APPLIED);
    lt_vevent(l, "v1s", "101001", "V1", "signed", LT_T0 + 4, NULL);
    lt_vevent(l, "v1t", "101001", "V1", "sent", LT_T0 + 5, NULL);
    assert_int_equal(lt_vevent(l, "v1p", "101001", "V1", "paid", LT_T0 + 6, NULL),
                     FW_LEDGER_APPLIED);

    sqlite3_trace_v2(fw_store_db(st), SQLITE_TRACE_STMT, on_trace, NULL);
    json_t *t = fw_ledger_trace_view(l, "V1");
    assert_non_null(t);
    expect_indexed(st, "trace");
    json_t *e = fw_ledger_entries_view(l, "A", 10);
    assert_non_null(e);
    expect_indexed(st, "entries");
    sqlite3_trace_v2(fw_store_db(st), 0, NULL, NULL);
    /* The trace's funding: A's allocation and the transfer in from B. */
    json_t *funding = json_object_get(json_object_get(t, "indicator"), "funding");
    assert_int_equal(json_array_size(funding), 2);
    /* A's entries: allocate, transfer_in, the voucher's freeze and post. */
    assert_int_equal(json_array_size(json_object_get(e, "items")), 4);
    /* The funding index is partial (voucher entries stay out of it) and no
     * index of reservations is keyed by indicator. */
    assert_int_equal(lt_sql_int(st,
                                "SELECT count(*) FROM sqlite_schema WHERE name = ?1 AND sql LIKE "
                                "'%WHERE cause_type = ''doc'' OR cause_type = ''transfer'''",
                                "ledger_entries_funding"),
                     1);
    assert_int_equal(lt_sql_int(st,
                                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
                                "tbl_name = ?1 AND sql IS NOT NULL",
                                "reservations"),
                     0);
    /* The invariant checks that summed reservations through
     * reservations_indicator still see a reservation that disagrees. */
    char why[256];
    assert_int_equal(fw_ledger_check_invariants(l, why, sizeof why), 0);
    assert_int_equal(fw_store_exec(st, "UPDATE reservations SET amount = amount + 1"), 0);
    assert_int_equal(fw_ledger_check_invariants(l, why, sizeof why), -1);
    assert_string_equal(why, "paid differs from posted reservations plus payroll: A");
    assert_int_equal(fw_store_exec(st, "UPDATE reservations SET amount = amount - 1,"
                                       " state = 'pending'"),
                     0);
    assert_int_equal(fw_ledger_check_invariants(l, why, sizeof why), -1);
    assert_string_equal(why, "frozen differs from its pending reservations: A");
    json_decref(t);
    json_decref(e);
    fw_ledger_free(l);
    fw_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_windows_stay_indexed),
        cmocka_unit_test(test_trace_stays_indexed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
