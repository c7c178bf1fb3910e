/*
 * test_ledger_history.c - the history queries and aggregates against brute
 * force, and their query plans.
 *
 * A few hundred random vouchers (units, payee accounts, classes, amounts
 * with deliberate repeats, times over two months) go through random flows;
 * the test keeps its own copy of every voucher and answers each random
 * fw_history_query by looping over that copy.  Per-flag allocated totals
 * are compared with a sum over every indicator.  Every query the ledger
 * runs for these reads is captured (sqlite3_trace_v2) and its EXPLAIN QUERY
 * PLAN must search an index, never scan the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "daemon/log.h"
#include "test_ledger_util.h"

#define NV 400
#define NINDS 8

typedef struct hv {
    char no[16], unit[8], payee[8], econ[8], settle[12], ptype[12], ind[8];
    int64_t amount, created_at, paid_at, returned_at, cancelled_at, sent_at, signed_at;
    char state[12];
} hv;

static uint64_t rs = 88172645463325252ULL;
static int rn(int n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (int)(rs % (uint64_t)n);
}

static const char *const units[] = {"101001", "101002", "101003"};
static const char *const payees[] = {"A0", "A1", "A2", "A3", "A4", "A5", "A6"};
static const char *const econs[] = {"30201", "30202", "30217", "30231", "31013"};
static const char *const settles[] = {"transfer", "cash", "card"};
static const char *const ptypes[] = {"company", "individual"};
static const int64_t amounts[] = {100000, 499999, 500000, 1234567, 20000};

/* ---- SQL capture ---- */

#define MAXCAP 32
static char captured[MAXCAP][1600];
static int ncaptured;

static int trace_cb(unsigned type, void *ctx, void *p, void *x)
{
    (void)ctx, (void)x;
    if (type == SQLITE_TRACE_STMT && ncaptured < MAXCAP) {
        const char *sql = sqlite3_sql((sqlite3_stmt *)p);
        if (sql && strncmp(sql, "SELECT", 6) == 0)
            snprintf(captured[ncaptured++], sizeof captured[0], "%s", sql);
    }
    return 0;
}

static void plan_of(fw_store *st, const char *sql, char *out, size_t outlen)
{
    char q[1700];
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(fw_store_db(st), q, -1, &s, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        strncat(out, (const char *)sqlite3_column_text(s, 3), outlen - strlen(out) - 1);
        strncat(out, "; ", outlen - strlen(out) - 1);
    }
    sqlite3_finalize(s);
}

/* Every captured statement finds its rows through indexes: its plan
 * searches, and scans nothing but json_each (a bound set), constant rows or
 * its own subquery results.  `what` names the reads for the message. */
static void expect_indexed(fw_store *st, const char *what)
{
    assert_true(ncaptured > 0);
    for (int i = 0; i < ncaptured; i++) {
        char plan[1024];
        plan_of(st, captured[i], plan, sizeof plan);
        int ok = strstr(plan, "SEARCH ") != NULL;
        for (const char *p = strstr(plan, "SCAN "); p && ok; p = strstr(p + 5, "SCAN ")) {
            const char *x = p + 5;
            /* "SCAN t USING INDEX" walks a whole index: also a scan. */
            ok = strncmp(x, "json_each", 9) == 0 || strncmp(x, "CONSTANT", 8) == 0 ||
                 strncmp(x, "(subquery", 9) == 0;
        }
        if (!ok)
            fail_msg("%s: not indexed: %s\n  plan: %s", what, captured[i], plan);
    }
    ncaptured = 0;
}

typedef struct world {
    fw_store *st;
    fw_ledger *l;
    hv v[NV];
    int nv;
} world;

static void build_world(world *w)
{
    w->st = lt_open(NULL);
    w->l = fw_ledger_new(w->st);
    for (int i = 0; i < NINDS; i++) {
        char id[16], eid[16];
        snprintf(id, sizeof id, "H%d", i);
        snprintf(eid, sizeof eid, "ha%d", i);
        lt_allocate(w->l, eid, units[i % 3], id, 50000000, NULL, LT_T0 - 86400, NULL);
    }
    int64_t t = LT_T0;
    for (int i = 0; i < NV; i++) {
        hv *v = &w->v[w->nv++];
        memset(v, 0, sizeof *v);
        int ind = rn(NINDS);
        snprintf(v->no, sizeof v->no, "HV%03d", i);
        snprintf(v->ind, sizeof v->ind, "H%d", ind);
        snprintf(v->unit, sizeof v->unit, "%s", units[ind % 3]);
        snprintf(v->payee, sizeof v->payee, "%s", payees[rn(7)]);
        snprintf(v->econ, sizeof v->econ, "%s", econs[rn(5)]);
        snprintf(v->settle, sizeof v->settle, "%s", settles[rn(3)]);
        snprintf(v->ptype, sizeof v->ptype, "%s", ptypes[rn(2)]);
        v->amount = rn(3) ? amounts[rn(5)] : 1 + rn(3000000);
        t += rn(4 * 3600);
        v->created_at = t;
        snprintf(v->state, sizeof v->state, "created");
        lt_voucher lv = {.unit = v->unit,
                         .no = v->no,
                         .indicator = v->ind,
                         .payee_account = v->payee,
                         .settle = v->settle,
                         .econ = v->econ,
                         .payee_type = v->ptype,
                         .amount = v->amount,
                         .at = t};
        char eid[24];
        snprintf(eid, sizeof eid, "hc%d", i);
        lt_created(w->l, eid, &lv, NULL);
        /* Walk a random distance along a random flow. */
        int64_t at = t;
        int fate = rn(10);
        const char *steps[4] = {NULL};
        if (fate < 2)
            steps[0] = "cancelled";
        else if (fate < 4)
            steps[0] = "signed", steps[1] = "sent";
        else if (fate < 8)
            steps[0] = "signed", steps[1] = "sent", steps[2] = "paid";
        else if (fate < 9)
            steps[0] = "signed", steps[1] = "sent", steps[2] = "returned";
        else
            steps[0] = "signed", steps[1] = "sent", steps[2] = "paid", steps[3] = "returned";
        for (int k = 0; k < 4 && steps[k]; k++) {
            at += 60 + rn(48 * 3600);
            snprintf(eid, sizeof eid, "hv%d-%d", i, k);
            lt_vevent(w->l, eid, v->unit, v->no, steps[k], at, NULL);
            snprintf(v->state, sizeof v->state, "%s", steps[k]);
            if (!strcmp(steps[k], "signed"))
                v->signed_at = at;
            else if (!strcmp(steps[k], "sent"))
                v->sent_at = at;
            else if (!strcmp(steps[k], "paid"))
                v->paid_at = at;
            else if (!strcmp(steps[k], "returned"))
                v->returned_at = at;
            else
                v->cancelled_at = at;
        }
    }
}

static int in_set(const char *x, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(x, *set))
            return 1;
    return 0;
}

static void brute(const world *w, const fw_history_query *q, fw_history_result *r)
{
    r->count = r->total = 0;
    for (int i = 0; i < w->nv; i++) {
        const hv *v = &w->v[i];
        int64_t t;
        if (!q->state) {
            if (!strcmp(v->state, "cancelled") || !strcmp(v->state, "returned"))
                continue;
            t = v->created_at;
        } else {
            if (strcmp(v->state, q->state))
                continue;
            t = !strcmp(q->state, "returned")    ? v->returned_at
                : !strcmp(q->state, "paid")      ? v->paid_at
                : !strcmp(q->state, "cancelled") ? v->cancelled_at
                : !strcmp(q->state, "sent")      ? v->sent_at
                : !strcmp(q->state, "signed")    ? v->signed_at
                                                 : v->created_at;
        }
        if ((q->unit_code && strcmp(q->unit_code, v->unit)) ||
            (q->payee_account && strcmp(q->payee_account, v->payee)) ||
            (q->indicator_id && strcmp(q->indicator_id, v->ind)) ||
            (q->econ_class && strcmp(q->econ_class, v->econ)) ||
            (q->econ_classes && !in_set(v->econ, q->econ_classes)) ||
            (q->settle_method && strcmp(q->settle_method, v->settle)) ||
            (q->payee_type && strcmp(q->payee_type, v->ptype)) ||
            (q->has_amount && q->amount != v->amount) ||
            (q->amount_below > 0 && v->amount >= q->amount_below) || (q->since && t < q->since) ||
            (q->until && t > q->until) ||
            (q->exclude_voucher && !strcmp(q->exclude_voucher, v->no)))
            continue;
        r->count++;
        r->total += v->amount;
    }
}

static void test_history_matches_brute_force(void **state)
{
    (void)state;
    world *w = calloc(1, sizeof *w);
    build_world(w);
    sqlite3_trace_v2(fw_store_db(w->st), SQLITE_TRACE_STMT, trace_cb, NULL);
    static const char *const sangong[] = {"30212", "30217", "30231", "31013", NULL};
    static const char *const states[] = {NULL,        NULL,   NULL,     "returned", "paid",
                                         "cancelled", "sent", "signed", "created"};
    int64_t span = w->v[w->nv - 1].created_at - LT_T0 + 5 * 86400;
    int nonzero = 0, checked = 0;
    for (int k = 0; k < 4000; k++) {
        fw_history_query q = {0};
        q.state = states[rn(9)];
        int key = rn(4);
        if (key == 0)
            q.unit_code = units[rn(3)];
        else if (key == 1)
            q.payee_account = payees[rn(7)];
        else if (key == 2)
            q.indicator_id = w->v[rn(w->nv)].ind;
        if (key == 3 || rn(2)) {
            q.since = LT_T0 + rn((int)span);
            q.until = rn(3) ? q.since + rn(30 * 86400) : 0;
        }
        if (key != 1 && rn(3) == 0)
            q.payee_account = payees[rn(7)];
        if (rn(4) == 0)
            q.econ_class = econs[rn(5)];
        if (rn(5) == 0)
            q.econ_classes = sangong;
        if (rn(4) == 0)
            q.settle_method = settles[rn(3)];
        if (rn(6) == 0)
            q.payee_type = ptypes[rn(2)];
        if (rn(4) == 0) {
            q.has_amount = 1;
            q.amount = amounts[rn(5)];
        }
        if (rn(4) == 0)
            q.amount_below = amounts[rn(5)];
        if (rn(5) == 0)
            q.exclude_voucher = w->v[rn(w->nv)].no;

        fw_history_result got, want;
        ncaptured = 0;
        assert_int_equal(fw_ledger_history(w->l, &q, &got), 0);
        brute(w, &q, &want);
        if (got.count != want.count || got.total != want.total)
            fail_msg("query %d: ledger %lld/%lld brute %lld/%lld", k, (long long)got.count,
                     (long long)got.total, (long long)want.count, (long long)want.total);
        nonzero += want.count > 0;
        checked++;
        /* A key or a window on an indexed time column: must not scan. */
        int indexed_time = !q.state || !strcmp(q.state, "returned") || !strcmp(q.state, "paid") ||
                           !strcmp(q.state, "created") || !strcmp(q.state, "sent");
        if (key != 3 || indexed_time)
            expect_indexed(w->st, "vouchers");
    }
    assert_true(nonzero > checked / 3); /* the queries mostly find something */
    assert_int_equal(
        fw_ledger_history(w->l, &(fw_history_query){.state = "bogus"}, &(fw_history_result){0}),
        -1);
    sqlite3_trace_v2(fw_store_db(w->st), 0, NULL, NULL);
    fw_ledger_free(w->l);
    fw_store_close(w->st);
    free(w);
}

/* The windowed queries of the shipped rules, named. */
static void test_rule_query_plans(void **state)
{
    (void)state;
    world *w = calloc(1, sizeof *w);
    build_world(w);
    fw_store *st = w->st;
    sqlite3_trace_v2(fw_store_db(st), SQLITE_TRACE_STMT, trace_cb, NULL);
    fw_history_result r;
    static const char *const sangong[] = {"30212", "30217", "30231", "31013", NULL};
    /* cash_over_limit: unit's cash this month */
    fw_history_query cash = {.unit_code = "101001",
                             .settle_method = "cash",
                             .since = LT_T0,
                             .until = LT_T0 + 30 * 86400};
    ncaptured = 0;
    fw_ledger_history(w->l, &cash, &r);
    expect_indexed(st, "vouchers");
    /* sangong_budget: unit's 三公 spend this year */
    fw_history_query sg = {
        .unit_code = "101002", .econ_classes = sangong, .since = LT_T0 - 86400 * 150};
    fw_ledger_history(w->l, &sg, &r);
    expect_indexed(st, "vouchers");
    /* split_payment / duplicate_payment: unit + payee account within d days */
    fw_history_query sp = {.unit_code = "101001",
                           .payee_account = "A1",
                           .amount_below = 5000000,
                           .since = LT_T0,
                           .until = LT_T0 + 7 * 86400,
                           .exclude_voucher = "HV001"};
    fw_ledger_history(w->l, &sp, &r);
    expect_indexed(st, "vouchers");
    fw_history_query dp = {.unit_code = "101001",
                           .payee_account = "A1",
                           .has_amount = 1,
                           .amount = 500000,
                           .since = LT_T0,
                           .until = LT_T0 + 3 * 86400};
    fw_ledger_history(w->l, &dp, &r);
    expect_indexed(st, "vouchers");
    /* returned_repeatedly: payee's returned vouchers within 30 days */
    fw_history_query rr = {.payee_account = "A3", .state = "returned", .since = LT_T0};
    fw_ledger_history(w->l, &rr, &r);
    expect_indexed(st, "vouchers");
    /* year_end_rush: an indicator's paid amount since 1 November */
    fw_history_query ye = {.indicator_id = "H3", .state = "paid", .since = LT_T0};
    fw_ledger_history(w->l, &ye, &r);
    expect_indexed(st, "vouchers");
    /* stuck_voucher */
    json_t *j = fw_ledger_vouchers_sent_before(w->l, LT_T0 + 10 * 86400);
    assert_true(json_array_size(j) > 0);
    json_decref(j);
    expect_indexed(st, "vouchers");
    /* the voucher itself */
    j = fw_ledger_voucher_json(w->l, "HV010");
    json_decref(j);
    expect_indexed(st, "voucher");

    /* payroll and subsidies */
    const char *ids[] = {"ID1", "ID2"}, *acc[] = {"AC1", "AC2"};
    int64_t nets[] = {100, 200};
    lt_payroll(w->l, "pp1", "101001", "RUN1", 1, 1, "2024-06", "H0", 2, ids, acc, nets, LT_T0,
               NULL);
    ncaptured = 0;
    j = fw_ledger_employee_json(w->l, "ID1", "2024-07");
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);
    expect_indexed(st, "payroll_lines");
    j = fw_ledger_period_lines_json(w->l, "2024-06", "ID1", "AC2");
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    expect_indexed(st, "payroll_lines");
    int seen;
    int64_t net;
    fw_ledger_run_progress(w->l, "RUN1", &seen, &net);
    expect_indexed(st, "payroll_parts");
    int64_t n;
    fw_ledger_subsidy_count(w->l, "E1", "101001", "k", 2024, 6, "X", &n);
    expect_indexed(st, "subsidies");
    /* aggregates and the trace */
    int64_t a;
    fw_ledger_allocated_by_flag(w->l, "101001", 2024, FW_FLAG_SALARY, &a);
    expect_indexed(st, "unit_flag_totals");
    fw_ledger_allocated_by_flag(w->l, "101001", 2024, FW_FLAG_SALARY | FW_FLAG_DIRECT, &a);
    expect_indexed(st, "indicators");
    ncaptured = 0;
    j = fw_ledger_entries_view(w->l, "H1", 10);
    json_decref(j);
    expect_indexed(st, "entries view");
    j = fw_ledger_indicator_view(w->l, "H1");
    json_decref(j);
    expect_indexed(st, "indicator view");
    /* The trace: voucher, reservation, its entries, funding documents. */
    j = fw_ledger_trace_view(w->l, "HV020");
    assert_non_null(j);
    assert_true(json_array_size(json_object_get(json_object_get(j, "indicator"), "funding")) > 0);
    json_decref(j);
    expect_indexed(st, "trace view");
    /* Funding documents come off the funding index, not a walk over all the
     * indicator's entries (most of which are voucher entries). */
    j = fw_ledger_trace_view(w->l, "HV021");
    json_decref(j);
    int found = 0;
    for (int i = 0; i < ncaptured; i++) {
        if (!strstr(captured[i], "cause_type = 'doc'"))
            continue;
        char plan[1024];
        plan_of(st, captured[i], plan, sizeof plan);
        assert_non_null(strstr(plan, "ledger_entries_funding"));
        assert_null(strstr(plan, "ledger_entries_indicator"));
        found = 1;
    }
    assert_true(found);
    ncaptured = 0;

    sqlite3_trace_v2(fw_store_db(st), 0, NULL, NULL);
    fw_ledger_free(w->l);
    fw_store_close(st);
    free(w);
}

static void test_allocated_by_flag_matches_brute_force(void **state)
{
    (void)state;
    fw_store *st = lt_open(NULL);
    fw_ledger *l = fw_ledger_new(st);
    static const char *const fl[] = {"[]",
                                     "[\"salary\"]",
                                     "[\"sangong\"]",
                                     "[\"salary\",\"direct\"]",
                                     "[\"subsidy\",\"union\",\"sangong\"]",
                                     "[\"union\"]"};
    int nind = 30;
    char eid[32], id[32], from[32];
    for (int i = 0; i < nind; i++) {
        snprintf(id, sizeof id, "F%d", i);
        snprintf(eid, sizeof eid, "fa%d", i);
        lt_allocate(l, eid, units[i % 3], id, 1 + rn(10000000), fl[i % 6], LT_T0, NULL);
    }
    for (int k = 0; k < 600; k++) {
        int i = rn(nind);
        snprintf(id, sizeof id, "F%d", i);
        snprintf(eid, sizeof eid, "fx%d", k);
        int op = rn(3);
        if (op == 0)
            lt_allocate(l, eid, units[i % 3], id, 1 + rn(100000), fl[i % 6], LT_T0, NULL);
        else if (op == 1)
            lt_adjust(l, eid, units[i % 3], id, rn(2) ? 1 + rn(100000) : -(1 + rn(3000000)), LT_T0,
                      NULL);
        else {
            int j;
            do
                j = rn(nind);
            while (j == i);
            snprintf(from, sizeof from, "F%d", j);
            lt_transfer(l, eid, units[i % 3], from, id, 1 + rn(2000000), LT_T0, NULL);
        }
    }
    for (int u = 0; u < 3; u++) {
        for (int flag = 1; flag <= FW_FLAG_UNION; flag <<= 1) {
            int64_t want = 0, got = -1;
            for (int i = 0; i < nind; i++) {
                fw_indicator ind;
                snprintf(id, sizeof id, "F%d", i);
                assert_int_equal(fw_ledger_get_indicator(l, id, &ind), 1);
                if (!strcmp(ind.unit_code, units[u]) && ind.year == 2024 && (ind.flags & flag))
                    want += ind.allocated;
            }
            assert_int_equal(fw_ledger_allocated_by_flag(l, units[u], 2024, flag, &got), 0);
            assert_int_equal(got, want);
        }
    }
    int64_t got = -1;
    fw_ledger_allocated_by_flag(l, "101001", 2023, FW_FLAG_SALARY, &got);
    assert_int_equal(got, 0);
    fw_ledger_free(l);
    fw_store_close(st);
}

int main(void)
{
    fw_log_set_level(FW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_matches_brute_force),
        cmocka_unit_test(test_rule_query_plans),
        cmocka_unit_test(test_allocated_by_flag_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
