/*
 * test_ledger_vcache.c - the voucher cache (daemon/voucher_cache.h) gives
 * exactly the SQL path's answer (fw_ledger_history) for every query it
 * takes, over random sequences of voucher creations and flow events mixed
 * with transactions, savepoints, ROLLBACK TO, RELEASE, COMMIT and ROLLBACK;
 * a read-only transaction rolled back (the readiness probe) does not make
 * it reload; and queries of another form are left to SQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/event.h"
#include "daemon/ledger.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "daemon/voucher_cache.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define T0 1717380000LL /* 2024-06-03 */

static void apply(fw_ledger *lg, const char *subject, const char *json)
{
    fw_event ev;
    fw_decode_error e;
    if (fw_event_decode(subject, json, strlen(json), &ev, &e) != 0)
        fail_msg("decode: %s: %s: %s", e.field, e.reason, json);
    fw_ledger_result res;
    assert_int_equal(fw_ledger_apply(lg, &ev, &res), 0);
    fw_event_clear(&ev);
}

static void create_voucher(fw_ledger *lg, int seq, int no)
{
    char json[2048], ts[40];
    int unit = (int)(xr() % 3), payee = (int)(xr() % 4);
    static const char *const amounts[] = {"100.00", "250.00", "999.99", "1000.00", "20000.00"};
    fw_time_format(T0 + (int64_t)(xr() % (20 * 86400)), ts, sizeof ts);
    snprintf(
        json, sizeof json,
        "{\"id\":\"evt-v%d\",\"event\":\"created\",\"occurred_at\":\"%s\","
        "\"voucher_no\":\"ZF%d\",\"year\":2024,\"unit_code\":\"10100%d\",\"unit_name\":\"单位\","
        "\"indicator_id\":\"ZB2024-101001-0001\",\"func_class\":\"2050201\","
        "\"econ_class\":\"30201\",\"pay_method\":\"direct\",\"settle_method\":\"transfer\","
        "\"payee_name\":\"某公司\",\"payee_account\":\"6222000%d\",\"payee_bank\":\"建行\","
        "\"payee_type\":\"company\",\"amount\":\"%s\",\"purpose\":\"办公用品采购\"}",
        seq, ts, no, unit, payee, amounts[xr() % 5]);
    char subj[64];
    snprintf(subj, sizeof subj, "fiscal.voucher.10100%d", unit);
    apply(lg, subj, json);
}

static void voucher_event(fw_ledger *lg, int seq)
{
    static const char *const evs[] = {"signed", "sent", "paid", "returned", "cancelled"};
    const char *e = evs[xr() % 5];
    char json[1024], ts[40];
    fw_time_format(T0 + 21 * 86400 + seq, ts, sizeof ts);
    int no = (int)(xr() % 300);
    snprintf(json, sizeof json,
             "{\"id\":\"evt-e%d\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZF%d\","
             "\"unit_code\":\"101000\"%s}",
             seq, e, ts, no,
             strcmp(e, "returned") == 0 || strcmp(e, "cancelled") == 0 ? ",\"reason\":\"退票\""
                                                                       : "");
    apply(lg, "fiscal.voucher.101000", json);
}

static void random_query(fw_history_query *q, char *unit, char *payee, char *excl)
{
    memset(q, 0, sizeof *q);
    snprintf(unit, 16, "10100%d", (int)(xr() % 4)); /* 101003: no such unit */
    snprintf(payee, 16, "6222000%d", (int)(xr() % 5));
    q->unit_code = unit;
    q->payee_account = payee;
    static const int64_t amounts[] = {10000, 25000, 99999, 100000, 2000000};
    switch (xr() % 3) {
    case 0:
        q->has_amount = 1;
        q->amount = amounts[xr() % 5];
        break;
    case 1:
        q->amount_below = amounts[xr() % 5];
        break;
    default:
        break;
    }
    if (xr() % 4)
        q->since = T0 + (int64_t)(xr() % (20 * 86400)) - 86400;
    q->until = xr() % 4 ? q->since + (int64_t)(xr() % (10 * 86400)) : INT64_MAX;
    if (xr() % 2) {
        snprintf(excl, 16, "ZF%d", (int)(xr() % 300));
        q->exclude_voucher = excl;
    }
}

static void exec(fw_store *st, const char *sql)
{
    assert_int_equal(fw_store_exec(st, sql), 0);
}

static void cache_matches_sql_through_rollbacks(void **state)
{
    (void)state;
    char err[256];
    fw_migration m = {"ledger", fw_ledger_schema};
    fw_store *st = fw_store_open(":memory:", &m, 1, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    fw_ledger *lg = fw_ledger_new(st);
    apply(lg, "fiscal.indicator.101001",
          "{\"id\":\"evt-a\",\"op\":\"allocate\",\"occurred_at\":\"2024-06-01T09:00:00+08:00\","
          "\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"ZB2024-101001-0001\",\"year\":2024,"
          "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
          "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"100000000.00\","
          "\"flags\":[]}");
    for (int i = 0; i < 40; i++)
        create_voucher(lg, 100000 + i, i);
    fw_vcache *c = fw_vcache_new(lg);
    assert_non_null(c);
    assert_null(fw_vcache_new(lg)); /* one cache per connection */

    int in_txn = 0, savepoints = 0, seq = 0;
    long queries = 0, nonzero = 0, rollbacks = 0;
    for (int step = 0; step < 6000; step++) {
        unsigned op = (unsigned)(xr() % 100);
        if (op < 25) {
            create_voucher(lg, seq, seq % 300); /* numbers repeat: refused creations too */
            seq++;
        } else if (op < 40) {
            voucher_event(lg, seq++);
        } else if (op < 45) {
            if (!in_txn) {
                exec(st, "BEGIN");
                in_txn = 1;
            } else {
                exec(st, "SAVEPOINT sp");
                savepoints++;
            }
        } else if (op < 49) {
            if (savepoints) {
                exec(st, "ROLLBACK TO sp");
                rollbacks++;
                if (xr() % 2) {
                    exec(st, "RELEASE sp");
                    savepoints--;
                }
            }
        } else if (op < 52) {
            if (savepoints) {
                exec(st, "RELEASE sp");
                savepoints--;
            }
        } else if (op < 55) {
            if (in_txn) {
                exec(st, xr() % 3 ? "COMMIT" : "ROLLBACK");
                in_txn = 0;
                savepoints = 0;
            }
        } else {
            fw_history_query q;
            char unit[16], payee[16], excl[16];
            random_query(&q, unit, payee, excl);
            fw_history_result want = {0, 0}, got = {-1, -1};
            assert_int_equal(fw_ledger_history(lg, &q, &want), 0);
            assert_int_equal(fw_vcache_history(c, &q, &got), 1);
            if (want.count != got.count || want.total != got.total)
                fail_msg(
                    "step %d: %s/%s amount=%lld below=%lld [%lld, %lld] excl=%s: sql %lld/%lld,"
                    " cache %lld/%lld",
                    step, unit, payee, (long long)(q.has_amount ? q.amount : -1),
                    (long long)q.amount_below, (long long)q.since, (long long)q.until,
                    q.exclude_voucher ? q.exclude_voucher : "-", (long long)want.count,
                    (long long)want.total, (long long)got.count, (long long)got.total);
            queries++;
            nonzero += want.count > 0;
        }
    }
    if (in_txn)
        exec(st, "COMMIT");
    /* The sequence exercised what it is meant to. */
    assert_true(queries > 2000);
    assert_true(nonzero > 200);
    assert_true(rollbacks > 20);
    assert_true(fw_vcache_loads(c) > 1);

    /* Other forms are left to SQL. */
    fw_history_query q;
    memset(&q, 0, sizeof q);
    q.unit_code = "101001";
    fw_history_result r;
    assert_int_equal(fw_vcache_history(c, &q, &r), 0);
    q.payee_account = "62220001";
    q.state = "paid";
    assert_int_equal(fw_vcache_history(c, &q, &r), 0);

    /* A read-only transaction rolled back (the readiness probe) and a
     * committed write do not reload; a rolled-back write does. */
    q.state = NULL;
    assert_int_equal(fw_vcache_history(c, &q, &r), 1);
    long loads = fw_vcache_loads(c);
    assert_int_equal(fw_store_begin(st), 0);
    fw_store_rollback(st);
    create_voucher(lg, seq++, 1000);
    assert_int_equal(fw_vcache_history(c, &q, &r), 1);
    assert_int_equal(fw_vcache_loads(c), loads);
    assert_int_equal(fw_store_begin(st), 0);
    create_voucher(lg, seq++, 1001);
    fw_store_rollback(st);
    assert_int_equal(fw_vcache_history(c, &q, &r), 1);
    assert_int_equal(fw_vcache_loads(c), loads + 1);

    fw_vcache_free(c);
    /* Detached: another cache may attach now. */
    c = fw_vcache_new(lg);
    assert_non_null(c);
    fw_vcache_free(c);
    fw_ledger_free(lg);
    fw_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_matches_sql_through_rollbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
