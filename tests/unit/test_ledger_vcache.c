/*
 * test_ledger_vcache.c - the voucher cache (daemon/voucher_cache.h) gives
 * exactly the SQL path's answer (fw_ledger_history) for every query it
 * takes, over random sequences of voucher creations and flow events mixed
 * with transactions, savepoints, ROLLBACK TO, RELEASE, COMMIT and ROLLBACK;
 * a read-only transaction rolled back (the readiness probe) does not make
 * it reload; and queries of another form are left to SQL.  Its indicator
 * rows (fw_vcache_indicator) likewise equal fw_ledger_get_indicator over
 * random allocations, adjustments, transfers and vouchers (which freeze,
 * post and release) through the same transactions and rollbacks, for known
 * and unknown ids, and follow another connection's commit.  Its voucher
 * records (fw_vcache_voucher) and ctx.voucher's columns built from them
 * equal fw_ledger_voucher_rec and the row read by SQL over random
 * creations (repeated numbers, unknown indicators) and
 * flow events (also for numbers never created), rows written outside the
 * ledger (vouchers inserted too, on its connection and on another one) and
 * the same transactions and rollbacks; after a voucher's own operations its
 * record is read from nowhere but the cache, and a number that does not
 * exist is answered without SQL (the fingerprints), which SQL confirms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <unistd.h>

#include "daemon/event.h"
#include "daemon/ledger.h"
#include "daemon/schema.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "daemon/voucher_cache.h"
#include "tests/support/harness.h"

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

/* A random walk through transactions and savepoints, interleaved with the
 * ledger writes of a test: one step of kind TXN_OPEN (BEGIN, or a SAVEPOINT
 * inside one), TXN_UNDO (ROLLBACK TO the savepoint, sometimes released),
 * TXN_RELEASE or TXN_END (COMMIT, or ROLLBACK one time in three). */
enum { TXN_OPEN, TXN_UNDO, TXN_RELEASE, TXN_END };
typedef struct txn_walk {
    int in_txn, savepoints;
    long rollbacks;
} txn_walk;

static void txn_step(fw_store *st, txn_walk *w, int kind)
{
    if (kind == TXN_OPEN) {
        if (!w->in_txn) {
            exec(st, "BEGIN");
            w->in_txn = 1;
        } else {
            exec(st, "SAVEPOINT sp");
            w->savepoints++;
        }
    } else if (kind == TXN_UNDO) {
        if (w->savepoints) {
            exec(st, "ROLLBACK TO sp");
            w->rollbacks++;
            if (xr() % 2) {
                exec(st, "RELEASE sp");
                w->savepoints--;
            }
        }
    } else if (kind == TXN_RELEASE) {
        if (w->savepoints) {
            exec(st, "RELEASE sp");
            w->savepoints--;
        }
    } else if (w->in_txn) {
        int rb = xr() % 3 == 0;
        exec(st, rb ? "ROLLBACK" : "COMMIT");
        w->rollbacks += rb;
        w->in_txn = 0;
        w->savepoints = 0;
    }
}

/* The indicator every test voucher draws on, 1,000,000.00 yuan. */
static void allocate_test_indicator(fw_ledger *lg)
{
    apply(lg, "fiscal.indicator.101001",
          "{\"id\":\"evt-a\",\"op\":\"allocate\",\"occurred_at\":\"2024-06-01T09:00:00+08:00\","
          "\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"ZB2024-101001-0001\",\"year\":2024,"
          "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
          "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"100000000.00\","
          "\"flags\":[]}");
}

/* Every unit and payee of create_voucher's, asked of the cache and of
 * SQL: the same answers. */
static void expect_every_pair_as_sql(fw_ledger *lg, fw_vcache *c)
{
    for (int u = 0; u < 3; u++)
        for (int p = 0; p < 4; p++) {
            char unit[16], payee[16];
            snprintf(unit, sizeof unit, "10100%d", u);
            snprintf(payee, sizeof payee, "6222000%d", p);
            fw_history_query hq;
            memset(&hq, 0, sizeof hq);
            hq.unit_code = unit;
            hq.payee_account = payee;
            hq.until = INT64_MAX;
            fw_history_result want = {0, 0}, got = {-1, -1};
            assert_int_equal(fw_ledger_history(lg, &hq, &want), 0);
            assert_int_equal(fw_vcache_history(c, &hq, &got), 1);
            assert_int_equal(want.count, got.count);
            assert_int_equal(want.total, got.total);
        }
}

static void cache_matches_sql_through_rollbacks(void **state)
{
    (void)state;
    char err[256];
    fw_store *st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    fw_ledger *lg = fw_ledger_new(st);
    allocate_test_indicator(lg);
    for (int i = 0; i < 40; i++)
        create_voucher(lg, 100000 + i, i);
    fw_vcache *c = fw_vcache_new(lg);
    assert_non_null(c);
    assert_null(fw_vcache_new(lg)); /* one cache per connection */

    int seq = 0;
    txn_walk w = {0};
    long queries = 0, nonzero = 0;
    for (int step = 0; step < 6000; step++) {
        unsigned op = (unsigned)(xr() % 100);
        if (op < 25) {
            create_voucher(lg, seq, seq % 300); /* numbers repeat: refused creations too */
            seq++;
        } else if (op < 40) {
            voucher_event(lg, seq++);
        } else if (op < 55) {
            txn_step(st, &w,
                     op < 45   ? TXN_OPEN
                     : op < 49 ? TXN_UNDO
                     : op < 52 ? TXN_RELEASE
                               : TXN_END);
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
    if (w.in_txn)
        exec(st, "COMMIT");
    /* The sequence exercised what it is meant to. */
    assert_true(queries > 2000);
    assert_true(nonzero > 200);
    assert_true(w.rollbacks > 20);
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
    /* A new voucher's row is handed over by the ledger, not re-read, and
     * answers as SQL does (every unit and payee asked). */
    long reads = fw_vcache_row_reads(c);
    create_voucher(lg, seq, 1002);
    expect_every_pair_as_sql(lg, c);
    assert_int_equal(fw_vcache_row_reads(c), reads);
    seq++;
    /* Its state changes are handed over too (signed, sent and paid keep it
     * in the sums, cancelled takes it out), and answer as SQL does. */
    static const char *const later[] = {"signed", "sent", "paid", "cancelled"};
    for (int k = 0; k < 4; k++) {
        char json[512], ts[40];
        fw_time_format(T0 + 21 * 86400 + seq, ts, sizeof ts);
        snprintf(json, sizeof json,
                 "{\"id\":\"evt-s%d\",\"event\":\"%s\",\"occurred_at\":\"%s\","
                 "\"voucher_no\":\"ZF1002\",\"unit_code\":\"101000\"%s}",
                 seq++, later[k], ts, k == 3 ? ",\"reason\":\"作废\"" : "");
        apply(lg, "fiscal.voucher.101000", json);
        expect_every_pair_as_sql(lg, c);
    }
    assert_int_equal(fw_vcache_row_reads(c), reads);
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

/* ---- indicators ---- */

#define NIDS 5 /* ZB2024-101001-000{1..5}; 4 and 5 are allocated later, or never */

/* The classes and flags vary: an indicator created, rolled back and created
 * again may differ in everything. */
static void indicator_op(fw_ledger *lg, int seq)
{
    static const char *const amounts[] = {"100.00", "2500.00", "-300.00", "99999.99", "-5000.00"};
    char json[2048], ts[40];
    int id = 1 + (int)(xr() % NIDS), from = 1 + (int)(xr() % NIDS);
    if (from == id)
        from = id % NIDS + 1;
    const char *amount = amounts[xr() % 5];
    unsigned op = (unsigned)(xr() % 3);
    fw_time_format(T0 + seq, ts, sizeof ts);
    if (op != 1 && amount[0] == '-')
        amount++; /* allocate and transfer take positive amounts */
    snprintf(json, sizeof json,
             "{\"id\":\"evt-i%d\",\"op\":\"%s\",\"occurred_at\":\"%s\","
             "\"doc_no\":\"三财预〔2024〕%d号\",\"indicator_id\":\"ZB2024-101001-000%d\","
             "\"from_indicator_id\":\"ZB2024-101001-000%d\",\"year\":2024,"
             "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"3020%d\","
             "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"%s\","
             "\"flags\":[%s]}",
             seq,
             op == 0   ? "allocate"
             : op == 1 ? "adjust"
                       : "transfer",
             ts, seq, id, from, (int)(xr() % 9), amount, xr() % 2 ? "\"salary\"" : "");
    apply(lg, "fiscal.indicator.101001", json);
}

static void voucher_on_indicator(fw_ledger *lg, int seq, int no)
{
    static const char *const amounts[] = {"100.00", "1000.00", "30000.00"};
    char json[2048], ts[40];
    fw_time_format(T0 + seq, ts, sizeof ts);
    snprintf(
        json, sizeof json,
        "{\"id\":\"evt-w%d\",\"event\":\"created\",\"occurred_at\":\"%s\","
        "\"voucher_no\":\"ZI%d\",\"year\":2024,\"unit_code\":\"101001\","
        "\"unit_name\":\"单位\",\"indicator_id\":\"ZB2024-101001-000%d\","
        "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
        "\"settle_method\":\"transfer\",\"payee_name\":\"某公司\",\"payee_account\":\"62220001\","
        "\"payee_bank\":\"建行\",\"payee_type\":\"company\",\"amount\":\"%s\","
        "\"purpose\":\"办公用品采购\"}",
        seq, ts, no, 1 + (int)(xr() % NIDS), amounts[xr() % 3]);
    apply(lg, "fiscal.voucher.101001", json);
}

static void voucher_flow(fw_ledger *lg, int seq)
{
    static const char *const evs[] = {"paid", "returned", "cancelled"};
    const char *e = evs[xr() % 3];
    char json[1024], ts[40];
    fw_time_format(T0 + seq, ts, sizeof ts);
    snprintf(json, sizeof json,
             "{\"id\":\"evt-f%d\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZI%d\","
             "\"unit_code\":\"101001\"%s}",
             seq, e, ts, (int)(xr() % 100), strcmp(e, "paid") ? ",\"reason\":\"退票\"" : "");
    apply(lg, "fiscal.voucher.101001", json);
}

static void check_indicator(fw_vcache *c, fw_ledger *lg, int i, int step)
{
    char id[64];
    snprintf(id, sizeof id, "ZB2024-101001-000%d", i);
    fw_indicator want, got;
    memset(&want, 0, sizeof want);
    memset(&got, 0, sizeof got);
    int rw = fw_ledger_get_indicator(lg, id, &want);
    int rg = fw_vcache_indicator(c, id, &got);
    if (rw != rg || (rw == 1 && memcmp(&want, &got, sizeof want) != 0))
        fail_msg("step %d: %s: sql %d alloc %lld frozen %lld paid %lld, cache %d alloc %lld "
                 "frozen %lld paid %lld",
                 step, id, rw, (long long)want.allocated, (long long)want.frozen,
                 (long long)want.paid, rg, (long long)got.allocated, (long long)got.frozen,
                 (long long)got.paid);
}

static void indicators_match_sql_through_rollbacks(void **state)
{
    (void)state;
    char err[256];
    fw_store *st = fw_store_open(":memory:", fw_ledger_migrations, fw_ledger_nmigrations, 0,
                                 FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    fw_ledger *lg = fw_ledger_new(st);
    fw_vcache *c = fw_vcache_new(lg);
    assert_non_null(c);
    int seq = 0, vno = 0;
    txn_walk w = {0};
    long checks = 0, found = 0;
    for (int step = 0; step < 8000; step++) {
        unsigned op = (unsigned)(xr() % 100);
        if (op < 15) {
            indicator_op(lg, seq++);
        } else if (op < 30) {
            voucher_on_indicator(lg, seq++, vno++ % 100);
        } else if (op < 40) {
            voucher_flow(lg, seq++);
        } else if (op < 53) {
            txn_step(st, &w,
                     op < 44   ? TXN_OPEN
                     : op < 48 ? TXN_UNDO
                     : op < 50 ? TXN_RELEASE
                               : TXN_END);
        } else {
            int i = 1 + (int)(xr() % (NIDS + 1)); /* NIDS + 1: never allocated */
            check_indicator(c, lg, i, step);
            checks++;
            found += fw_ledger_get_indicator(lg, "ZB2024-101001-0004", NULL) == 1;
        }
    }
    if (w.in_txn)
        exec(st, "COMMIT");
    for (int i = 1; i <= NIDS + 1; i++)
        check_indicator(c, lg, i, -1);
    /* The sequence exercised what it is meant to, and the cache answered
     * most reads itself. */
    assert_true(checks > 3000);
    assert_true(found > 100); /* an id unknown at first, allocated later */
    assert_true(w.rollbacks > 40);
    assert_true(fw_vcache_indicator_reads(c) < checks / 2);

    /* Created, read, rolled back and created again with other classes: the
     * second creation's balances UPDATE must not revive the first's row. */
    static const char *const again[] = {"30201", "30202"};
    for (int k = 0; k < 2; k++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"id\":\"evt-q%d\",\"op\":\"allocate\",\"occurred_at\":"
                 "\"2024-06-01T09:00:00+08:00\",\"doc_no\":\"三财预〔2024〕9号\","
                 "\"indicator_id\":\"ZB2024-101001-0099\",\"year\":2024,"
                 "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"%s\","
                 "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"100.00\","
                 "\"flags\":[]}",
                 k, again[k]);
        if (k == 0)
            exec(st, "BEGIN");
        apply(lg, "fiscal.indicator.101001", json);
        fw_indicator ind;
        assert_int_equal(fw_vcache_indicator(c, "ZB2024-101001-0099", &ind), 1);
        assert_string_equal(ind.econ_class, again[k]);
        if (k == 0)
            exec(st, "ROLLBACK"); /* and no read before the second creation */
    }
    assert_int_equal(fw_vcache_indicator(c, "ZB2024-101001-0099", NULL), 1);

    /* An id of 64 bytes or more goes to SQL each time (never cached). */
    char longid[80];
    memset(longid, 'Z', 70);
    longid[70] = '\0';
    long reads = fw_vcache_indicator_reads(c);
    assert_int_equal(fw_vcache_indicator(c, longid, NULL), 0);
    assert_int_equal(fw_vcache_indicator_reads(c), reads);
    fw_vcache_free(c);
    fw_ledger_free(lg);
    fw_store_close(st);
}

/* ---- voucher records ---- */

static void record_create(fw_ledger *lg, int seq, int no)
{
    static const char *const amounts[] = {"100.00", "1000.00", "30000.00"};
    char json[2048], ts[40];
    fw_time_format(T0 + seq, ts, sizeof ts);
    unsigned k = (unsigned)(xr() % 10);
    snprintf(
        json, sizeof json,
        "{\"id\":\"evt-rc%d\",\"event\":\"created\",\"occurred_at\":\"%s\","
        "\"voucher_no\":\"ZR%d\",\"year\":2024,\"unit_code\":\"101001\","
        "\"unit_name\":\"单位\",\"indicator_id\":\"ZB2024-101001-000%d\","
        "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
        "\"settle_method\":\"transfer\",\"payee_name\":\"某公司\",\"payee_account\":\"62220001\","
        "\"payee_bank\":\"建行\",\"payee_type\":\"company\",\"amount\":\"%s\","
        "\"purpose\":\"办公用品采购\"}",
        seq, ts, no, k < 8 ? 1 : 2, /* 0002: never allocated, nothing frozen */
        amounts[xr() % 3]);
    apply(lg, "fiscal.voucher.101001", json);
}

static void record_event(fw_ledger *lg, int seq, int no)
{
    static const char *const evs[] = {"signed", "sent", "paid", "returned", "cancelled"};
    const char *e = evs[xr() % 5];
    char json[1024], ts[40];
    fw_time_format(T0 + seq, ts, sizeof ts);
    snprintf(json, sizeof json,
             "{\"id\":\"evt-re%d\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"ZR%d\","
             "\"unit_code\":\"101001\"%s}",
             seq, e, ts, no,
             strcmp(e, "returned") == 0 || strcmp(e, "cancelled") == 0 ? ",\"reason\":\"退票\""
                                                                       : "");
    apply(lg, "fiscal.voucher.101001", json);
}

/* The cache's record equals SQL's, and so do ctx.voucher's columns
 * (fw_ledger_voucher_columns_json, from the record) and the row's. */
static void check_record(fw_vcache *c, fw_ledger *lg, const char *no, int step)
{
    fw_voucher_rec want, got;
    memset(&want, 0, sizeof want);
    memset(&got, 0, sizeof got);
    int rw = fw_ledger_voucher_rec(lg, no, &want);
    int rg = fw_vcache_voucher(c, no, &got);
    if (rw != rg)
        fail_msg("step %d: %s: sql %d, cache %d", step, no, rw, rg);
    if (rw != 1)
        return;
    if (strcmp(want.state, got.state) != 0 || strcmp(want.indicator_id, got.indicator_id) != 0 ||
        strcmp(want.reservation, got.reservation) != 0 ||
        want.has_reservation != got.has_reservation || want.truncated != got.truncated ||
        want.has_at != got.has_at || want.amount != got.amount ||
        want.last_event != got.last_event || want.rowid != got.rowid ||
        memcmp(want.at, got.at, sizeof want.at) != 0)
        fail_msg("step %d: %s: sql %s/%s/%lld/res %s/at %x/last %lld, cache %s/%s/%lld/res %s/at "
                 "%x/last %lld",
                 step, no, want.state, want.indicator_id, (long long)want.amount, want.reservation,
                 want.has_at, (long long)want.last_event, got.state, got.indicator_id,
                 (long long)got.amount, got.reservation, got.has_at, (long long)got.last_event);
    int64_t last_cols = -1, last_row = -2;
    json_t *cols = fw_ledger_voucher_columns_json(lg, no, &last_cols);
    json_t *row = fw_ledger_voucher_row_json(lg, no, &last_row);
    assert_non_null(cols);
    assert_non_null(row);
    assert_int_equal(last_cols, last_row);
    static const char *const keys[] = {"amount",      "state",        "created_at",
                                       "signed_at",   "sent_at",      "paid_at",
                                       "returned_at", "cancelled_at", "reservation"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *a = json_object_get(cols, keys[i]), *b = json_object_get(row, keys[i]);
        if (!(a == NULL && b == NULL) && !(a && b && json_equal(a, b)))
            fail_msg("step %d: %s: columns and row differ at %s", step, no, keys[i]);
    }
    assert_int_equal(json_object_size(cols), 3 + __builtin_popcount(want.has_at));
    /* and the columns with the stored body added are the row */
    assert_int_equal(fw_ledger_voucher_add_stored_body(lg, cols, no), 0);
    if (!json_equal(cols, row))
        fail_msg("step %d: %s: columns and body differ from the row", step, no);
    json_decref(cols);
    json_decref(row);
}

/* Voucher ZR<no>'s row (and body) written by plain SQL on db, not by the
 * ledger: nothing hands it to the cache.  Nothing when the number exists. */
static void insert_voucher_outside(sqlite3 *db, int no, int seq)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO vouchers(voucher_no, unit_code, indicator_id, year,"
             " func_class, econ_class, pay_method, settle_method, payee_type, payee_name,"
             " payee_account, amount, state, spend, created_event, created_at)"
             " VALUES ('ZR%d', '101001', 'ZB2024-101001-0001', 2024, '2050201', '30201',"
             " 'direct', 'transfer', 'company', 'payee', '62220001', %d, 'created', 1,"
             " 'evt-o%d', %d);"
             "INSERT OR IGNORE INTO voucher_bodies(n, body)"
             " SELECT n, '{\"amount\":' || amount || '}' FROM vouchers WHERE voucher_no = 'ZR%d'",
             no, 100 + no, seq, (int)(T0 + seq), no);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* A ledger store in a file of a fresh temp directory (*dir, removed by
 * close_file_store), with the first nmig ledger migrations; its path in
 * path (another connection may open it). */
static fw_store *open_file_store(char **dir, char *path, size_t pathlen, int nmig)
{
    char err[256];
    *dir = fw_t_tmpdir("vcache");
    assert_non_null(*dir);
    snprintf(path, pathlen, "%s/ledger.db", *dir);
    fw_store *st =
        fw_store_open(path, fw_ledger_migrations, nmig, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(st);
    return st;
}

static void close_file_store(fw_store *st, char *dir)
{
    fw_store_close(st);
    fw_t_rmtree(dir);
    free(dir);
}

static void records_match_sql_through_rollbacks(void **state)
{
    (void)state;
    char *dir, path[1100];
    fw_store *st = open_file_store(&dir, path, sizeof path, fw_ledger_nmigrations);
    fw_ledger *lg = fw_ledger_new(st);
    allocate_test_indicator(lg);
    fw_vcache *c = fw_vcache_new(lg);
    assert_non_null(c);
    sqlite3 *other; /* another connection's commits */
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    int seq = 0;
    txn_walk w = {0};
    long checks = 0, found = 0, outside = 0, events = 0, others = 0;
    /* The ledger creates ZR0..149; ZR150..399 are inserted by plain SQL on
     * the cache's connection, ZR400..649 on another one (both rarely: most
     * stay absent, and asked). */
    for (int step = 0; step < 10000; step++) {
        unsigned op = (unsigned)(xr() % 100);
        int no = (int)(xr() % 150);
        char vno[32];
        if (op >= 58 && xr() % 3 == 0)
            no = 150 + (int)(xr() % 500);
        snprintf(vno, sizeof vno, "ZR%d", no);
        if (op < 15) {
            record_create(lg, seq++, no); /* numbers repeat: refused creations too */
        } else if (op < 40) {
            record_event(lg, seq++, no); /* also for numbers never created */
            events++;
        } else if (op < 53) {
            txn_step(st, &w,
                     op < 44   ? TXN_OPEN
                     : op < 48 ? TXN_UNDO
                     : op < 50 ? TXN_RELEASE
                               : TXN_END);
        } else if (op < 55) {
            /* rows written outside the ledger's operations */
            char sql[256];
            if (op == 53)
                snprintf(sql, sizeof sql,
                         "UPDATE vouchers SET state = 'sent', sent_at = %d WHERE voucher_no = '%s'",
                         seq++, vno);
            else
                snprintf(sql, sizeof sql,
                         "INSERT INTO voucher_events(event_id, voucher_no, unit_code, event,"
                         " occurred_at, outcome, reason, body) VALUES ('x%d', '%s', '101001',"
                         " 'sent', %d, 'noop', '', '{}')",
                         seq, vno, seq);
            seq++;
            exec(st, sql);
            outside++;
        } else if (op < 56) {
            insert_voucher_outside(fw_store_db(st), 150 + (int)(xr() % 250), seq++);
            outside++;
        } else if (op < 58) {
            if (!w.in_txn) { /* else it would wait for this one's lock */
                insert_voucher_outside(other, 400 + (int)(xr() % 250), seq++);
                others++;
            }
        } else {
            check_record(c, lg, vno, step);
            checks++;
            found += fw_ledger_voucher_rec(lg, vno, &(fw_voucher_rec){0}) == 1;
        }
    }
    if (w.in_txn)
        exec(st, "COMMIT");
    long absent = 0;
    for (int no = 0; no < 650; no++) {
        char vno[32];
        snprintf(vno, sizeof vno, "ZR%d", no);
        check_record(c, lg, vno, -1);
        absent += fw_ledger_voucher_rec(lg, vno, &(fw_voucher_rec){0}) == 0;
    }
    /* The sequence exercised what it is meant to: every kind of number
     * present and absent at the end, and "no such voucher" answered from
     * the fingerprints (as SQL did) throughout. */
    assert_true(checks > 3000);
    assert_true(found > checks / 3);
    assert_true(outside > 200);
    assert_true(others > 50);
    assert_true(w.rollbacks > 40);
    assert_true(absent > 100 && absent < 550);
    assert_true(fw_vcache_absent_answers(c) > checks / 10);
    assert_true(fw_vcache_voucher_reads(c) < checks + events);
    /* Without rollbacks or outside writes, each number is read from SQL
     * at most once, whatever the ledger does to it. */
    long reads0 = fw_vcache_voucher_reads(c);
    for (int step = 0; step < 3000; step++) {
        unsigned op = (unsigned)(xr() % 100);
        int no = (int)(xr() % 150);
        char vno[32];
        snprintf(vno, sizeof vno, "ZR%d", no);
        if (op < 10)
            record_create(lg, seq++, no);
        else if (op < 40)
            record_event(lg, seq++, no);
        else
            check_record(c, lg, vno, step);
    }
    assert_true(fw_vcache_voucher_reads(c) - reads0 <= 150);

    /* A number never created is answered without SQL, by
     * fw_vcache_voucher and by the ledger's `created` (its peek) ... */
    long reads = fw_vcache_voucher_reads(c), absents = fw_vcache_absent_answers(c);
    fw_voucher_rec r;
    assert_int_equal(fw_vcache_voucher(c, "ZR1000", &r), 0);
    assert_int_equal(fw_vcache_voucher_peek(c, "ZR1000", &r), 0);
    assert_int_equal(fw_vcache_voucher_reads(c), reads);
    assert_int_equal(fw_vcache_absent_answers(c), absents + 2);
    /* ... found once created, absent again once that is rolled back, and
     * found once another connection inserts it. */
    exec(st, "BEGIN");
    record_create(lg, seq++, 1001);
    check_record(c, lg, "ZR1001", -3);
    assert_int_equal(fw_vcache_voucher(c, "ZR1001", &r), 1);
    exec(st, "ROLLBACK");
    assert_int_equal(fw_vcache_voucher(c, "ZR1001", &r), 0);
    check_record(c, lg, "ZR1001", -3);
    insert_voucher_outside(other, 1001, seq++);
    assert_int_equal(fw_vcache_voucher(c, "ZR1001", &r), 1);
    check_record(c, lg, "ZR1001", -3);
    sqlite3_close(other);

    /* A voucher's operations hand its record over: no read after them. */
    record_create(lg, seq++, 1000);
    reads = fw_vcache_voucher_reads(c);
    for (int i = 0; i < 6; i++) {
        record_event(lg, seq++, 1000);
        check_record(c, lg, "ZR1000", -2);
    }
    assert_int_equal(fw_vcache_voucher_reads(c), reads);

    /* A number of REC_NO_MAX bytes or more takes no record (absent: the
     * fingerprints answer; present, SQL would). */
    char longno[80];
    memset(longno, 'Z', 70);
    longno[70] = '\0';
    assert_int_equal(fw_vcache_voucher(c, longno, &r), 0);
    assert_int_equal(fw_vcache_voucher_reads(c), reads);
    fw_vcache_free(c);
    fw_ledger_free(lg);
    close_file_store(st, dir);
}

/* The migration that moves the bodies out of the rows keeps every body
 * (rows written as the daemon wrote them before it), and the ledger reads
 * them and goes on with the bodies apart. */
static void bodies_move_with_their_migration(void **state)
{
    (void)state;
    /* every ledger migration before ledger_bodies */
    int before = fw_ledger_nmigrations - 1;
    assert_string_equal(fw_ledger_migrations[before].name, "ledger_bodies");
    char *dir, path[1100], err[256];
    fw_store *st = open_file_store(&dir, path, sizeof path, before);
    for (int no = 0; no < 60; no++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "INSERT INTO vouchers(voucher_no, unit_code, indicator_id, year, func_class,"
                 " econ_class, pay_method, settle_method, payee_type, payee_name, payee_account,"
                 " amount, state, spend, created_event, created_at, body)"
                 " VALUES ('ZR%d', '101001', 'ZB2024-101001-0001', 2024, '2050201', '30201',"
                 " 'direct', 'transfer', 'company', 'payee %d', '6222%08d', %d, 'created', 1,"
                 " 'evt-%d', %d, '{\"voucher_no\":\"ZR%d\",\"purpose\":\"办公用品采购 %d\","
                 "\"amount\":%d}')",
                 no, no, no, 100 + no, no, 1717200000 + no, no, no, 100 + no);
        assert_int_equal(fw_store_exec(st, sql), 0);
    }
    fw_store_close(st);

    st = fw_store_open(path, fw_ledger_migrations, fw_ledger_nmigrations, 0, FW_SYNC_NORMAL, err,
                       sizeof err);
    assert_non_null(st);
    fw_ledger *lg = fw_ledger_new(st);
    for (int no = 0; no < 60; no++) {
        char vno[32], purpose[64];
        snprintf(vno, sizeof vno, "ZR%d", no);
        snprintf(purpose, sizeof purpose, "办公用品采购 %d", no);
        json_t *v = fw_ledger_voucher_json(lg, vno);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "purpose")), purpose);
        assert_int_equal(json_integer_value(json_object_get(v, "amount")), 100 + no);
        assert_string_equal(json_string_value(json_object_get(v, "state")), "created");
        json_decref(v);
    }
    /* the body column is gone; new vouchers keep theirs apart */
    assert_int_equal(fw_store_exec(st, "SELECT body FROM vouchers"), -1);
    int seq = 0;
    allocate_test_indicator(lg);
    record_create(lg, seq++, 500);
    json_t *v = fw_ledger_voucher_json(lg, "ZR500");
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "purpose")), "办公用品采购");
    json_decref(v);
    fw_ledger_free(lg);
    close_file_store(st, dir);
}

/* A commit by another connection (a file database) is seen. */
static void indicators_follow_another_connection(void **state)
{
    (void)state;
    char *dir, path[1100];
    fw_store *st = open_file_store(&dir, path, sizeof path, fw_ledger_nmigrations);
    fw_ledger *lg = fw_ledger_new(st);
    apply(lg, "fiscal.indicator.101001",
          "{\"id\":\"evt-a\",\"op\":\"allocate\",\"occurred_at\":\"2024-06-01T09:00:00+08:00\","
          "\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"ZB2024-101001-0009\",\"year\":2024,"
          "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
          "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"100.00\","
          "\"flags\":[]}");
    fw_vcache *c = fw_vcache_new(lg);
    assert_non_null(c);
    fw_indicator ind;
    assert_int_equal(fw_vcache_indicator(c, "ZB2024-101001-0009", &ind), 1);
    assert_int_equal(ind.allocated, 10000);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other,
                                  "UPDATE indicators SET allocated = 20000 WHERE indicator_id ="
                                  " 'ZB2024-101001-0009'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(fw_vcache_indicator(c, "ZB2024-101001-0009", &ind), 1);
    assert_int_equal(ind.allocated, 20000);
    /* and so is a voucher's record */
    record_create(lg, 1, 7);
    fw_voucher_rec r;
    assert_int_equal(fw_vcache_voucher(c, "ZR7", &r), 1);
    assert_string_equal(r.state, "created");
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other,
                                  "UPDATE vouchers SET state = 'signed' WHERE voucher_no = 'ZR7'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(fw_vcache_voucher(c, "ZR7", &r), 1);
    assert_string_equal(r.state, "signed");
    fw_vcache_free(c);
    fw_ledger_free(lg);
    close_file_store(st, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_matches_sql_through_rollbacks),
        cmocka_unit_test(indicators_match_sql_through_rollbacks),
        cmocka_unit_test(records_match_sql_through_rollbacks),
        cmocka_unit_test(indicators_follow_another_connection),
        cmocka_unit_test(bodies_move_with_their_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
