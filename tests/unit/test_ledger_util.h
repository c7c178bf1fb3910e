/*
 * test_ledger_util.h - helpers shared by the ledger's unit tests.
 *
 * Events are built as wire JSON (money as yuan strings) and decoded with
 * the real fw_event_decode(), so the ledger sees exactly what the pipeline
 * hands it.  Every apply checks fw_ledger_check_invariants() afterwards.
 * Include after cmocka.h.
 */
#ifndef FW_TEST_LEDGER_UTIL_H
#define FW_TEST_LEDGER_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/event.h"
#include "daemon/ledger.h"
#include "daemon/money.h"
#include "daemon/schema.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"

#define LT_T0 1717380900LL /* 2024-06-03T10:15:00+08:00 */

static inline fw_store *lt_open(const char *path)
{
    char err[256];
    /* With ledger_write_lean and ledger_bodies, as in the daemon (its invariant checks and
     * the trace must work without the indexes it drops).  ledger_lean is
     * left out: test_ledger_history checks that every form of history query
     * has an index, also those no shipped rule asks (the daemon's lean set
     * is checked by test_ledger_lean_indexes). */
    const fw_migration m[] = {{"ledger", fw_ledger_schema},
                              {"ledger_write_lean", fw_ledger_write_lean_schema},
                              {"ledger_bodies", fw_ledger_bodies_schema}};
    fw_store *st =
        fw_store_open(path ? path : ":memory:", m, 3, 0, FW_SYNC_NORMAL, err, sizeof err);
    if (!st)
        fail_msg("store open: %s", err);
    return st;
}

static inline const char *lt_yuan(int64_t fen, char buf[32])
{
    return fw_money_format(fen, buf, 32);
}

static inline const char *lt_time(int64_t at, char buf[40])
{
    return fw_time_format(at, buf, 40);
}

/* Decode subject + printf-built JSON; fails the test if malformed. */
static inline void lt_decode(fw_event *ev, const char *subject, const char *fmt, ...)
{
    char json[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < (int)sizeof json);
    fw_decode_error e;
    if (fw_event_decode(subject, json, strlen(json), ev, &e) != 0)
        fail_msg("decode %s: %s: %s", json, e.field, e.reason);
}

/* Apply a decoded event, release it, check the invariants. */
static inline fw_ledger_outcome lt_apply_ev(fw_ledger *l, fw_event *ev, fw_ledger_result *out)
{
    fw_ledger_result res;
    assert_int_equal(fw_ledger_apply(l, ev, &res), 0);
    fw_event_clear(ev);
    char err[256];
    if (fw_ledger_check_invariants(l, err, sizeof err) != 0)
        fail_msg("invariant: %s", err);
    if (out)
        *out = res;
    return res.outcome;
}

static inline fw_ledger_outcome lt_allocate(fw_ledger *l, const char *eid, const char *unit,
                                            const char *ind, int64_t fen, const char *flags,
                                            int64_t at, fw_ledger_result *res)
{
    char subj[96], y[32], t[40];
    fw_event ev;
    snprintf(subj, sizeof subj, "fiscal.indicator.%s", unit);
    lt_decode(
        &ev, subj,
        "{\"id\":\"%s\",\"op\":\"allocate\",\"occurred_at\":\"%s\",\"doc_no\":\"DOC-%s\","
        "\"indicator_id\":\"%s\",\"year\":2024,\"unit_code\":\"%s\",\"func_class\":\"2050201\","
        "\"econ_class\":\"30201\",\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\","
        "\"amount\":\"%s\"%s%s}",
        eid, lt_time(at, t), eid, ind, unit, lt_yuan(fen, y), flags ? ",\"flags\":" : "",
        flags ? flags : "");
    return lt_apply_ev(l, &ev, res);
}

static inline fw_ledger_outcome lt_adjust(fw_ledger *l, const char *eid, const char *unit,
                                          const char *ind, int64_t fen, int64_t at,
                                          fw_ledger_result *res)
{
    char subj[96], y[32], t[40];
    fw_event ev;
    snprintf(subj, sizeof subj, "fiscal.indicator.%s", unit);
    lt_decode(&ev, subj,
              "{\"id\":\"%s\",\"op\":\"adjust\",\"occurred_at\":\"%s\",\"doc_no\":\"DOC-%s\","
              "\"indicator_id\":\"%s\",\"unit_code\":\"%s\",\"amount\":\"%s\"}",
              eid, lt_time(at, t), eid, ind, unit, lt_yuan(fen, y));
    return lt_apply_ev(l, &ev, res);
}

static inline fw_ledger_outcome lt_transfer(fw_ledger *l, const char *eid, const char *unit,
                                            const char *from, const char *to, int64_t fen,
                                            int64_t at, fw_ledger_result *res)
{
    char subj[96], y[32], t[40];
    fw_event ev;
    snprintf(subj, sizeof subj, "fiscal.indicator.%s", unit);
    lt_decode(&ev, subj,
              "{\"id\":\"%s\",\"op\":\"transfer\",\"occurred_at\":\"%s\",\"doc_no\":\"DOC-%s\","
              "\"indicator_id\":\"%s\",\"from_indicator_id\":\"%s\",\"unit_code\":\"%s\","
              "\"amount\":\"%s\"}",
              eid, lt_time(at, t), eid, to, from, unit, lt_yuan(fen, y));
    return lt_apply_ev(l, &ev, res);
}

typedef struct lt_voucher {
    const char *unit, *no, *indicator, *payee_account, *settle, *econ, *payee_type;
    int64_t amount, at;
} lt_voucher;

static inline fw_ledger_outcome lt_created(fw_ledger *l, const char *eid, const lt_voucher *v,
                                           fw_ledger_result *res)
{
    char subj[96], y[32], t[40];
    fw_event ev;
    snprintf(subj, sizeof subj, "fiscal.voucher.%s", v->unit);
    lt_decode(
        &ev, subj,
        "{\"id\":\"%s\",\"event\":\"created\",\"occurred_at\":\"%s\",\"voucher_no\":\"%s\","
        "\"year\":2024,\"unit_code\":\"%s\",\"unit_name\":\"测试单位\",\"indicator_id\":\"%s\","
        "\"func_class\":\"2050201\",\"econ_class\":\"%s\",\"pay_method\":\"direct\","
        "\"settle_method\":\"%s\",\"payee_name\":\"某公司\",\"payee_account\":\"%s\","
        "\"payee_bank\":\"某银行\",\"payee_type\":\"%s\",\"amount\":\"%s\","
        "\"purpose\":\"办公用品采购\"}",
        eid, lt_time(v->at, t), v->no, v->unit, v->indicator, v->econ ? v->econ : "30201",
        v->settle ? v->settle : "transfer",
        v->payee_account ? v->payee_account : "6222000011112222",
        v->payee_type ? v->payee_type : "company", lt_yuan(v->amount, y));
    return lt_apply_ev(l, &ev, res);
}

static inline fw_ledger_outcome lt_vevent(fw_ledger *l, const char *eid, const char *unit,
                                          const char *no, const char *event, int64_t at,
                                          fw_ledger_result *res)
{
    char subj[96], t[40];
    fw_event ev;
    int reason = strcmp(event, "returned") == 0 || strcmp(event, "cancelled") == 0;
    snprintf(subj, sizeof subj, "fiscal.voucher.%s", unit);
    lt_decode(&ev, subj,
              "{\"id\":\"%s\",\"event\":\"%s\",\"occurred_at\":\"%s\",\"voucher_no\":\"%s\","
              "\"unit_code\":\"%s\"%s}",
              eid, event, lt_time(at, t), no, unit, reason ? ",\"reason\":\"测试\"" : "");
    return lt_apply_ev(l, &ev, res);
}

/* A payroll part with `n` lines; line i: id_no ids[i], account accts[i],
 * gross = net + 100.00, net = nets[i] fen. */
static inline fw_ledger_outcome lt_payroll(fw_ledger *l, const char *eid, const char *unit,
                                           const char *run, int part, int parts, const char *period,
                                           const char *ind, int n, const char *const *ids,
                                           const char *const *accts, const int64_t *nets,
                                           int64_t at, fw_ledger_result *res)
{
    char subj[96], t[40];
    static char lines[6000];
    size_t len = 0;
    lines[0] = '\0';
    for (int i = 0; i < n; i++) {
        char g[32], nt[32];
        len += (size_t)snprintf(
            lines + len, sizeof lines - len,
            "%s{\"emp_id\":\"E%03d\",\"name\":\"员工%d\",\"id_no\":\"%s\",\"phone\":"
            "\"13800000000\","
            "\"account\":\"%s\",\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"%s\"}],"
            "\"deductions\":[{\"name\":\"养老保险\",\"amount\":\"100.00\"}],"
            "\"gross\":\"%s\",\"net\":\"%s\"}",
            i ? "," : "", i, i, ids[i], accts[i], lt_yuan(nets[i] + 10000, g), g,
            lt_yuan(nets[i], nt));
        assert_true(len < sizeof lines);
    }
    fw_event ev;
    snprintf(subj, sizeof subj, "fiscal.payroll.%s", unit);
    lt_decode(&ev, subj,
              "{\"id\":\"%s\",\"run_id\":\"%s\",\"part\":%d,\"parts\":%d,\"occurred_at\":\"%s\","
              "\"unit_code\":\"%s\",\"period\":\"%s\",\"pay_date\":\"%s-12\","
              "\"indicator_id\":\"%s\",\"lines\":[%s]}",
              eid, run, part, parts, lt_time(at, t), unit, period, period, ind, lines);
    return lt_apply_ev(l, &ev, res);
}

static inline void lt_expect_indicator(fw_ledger *l, const char *id, int64_t allocated,
                                       int64_t frozen, int64_t paid)
{
    fw_indicator ind;
    assert_int_equal(fw_ledger_get_indicator(l, id, &ind), 1);
    assert_int_equal(ind.allocated, allocated);
    assert_int_equal(ind.frozen, frozen);
    assert_int_equal(ind.paid, paid);
    assert_int_equal(ind.available, allocated - frozen - paid);
}

/* One integer from a query with up to one text bind. */
static inline int64_t lt_sql_int(fw_store *st, const char *sql, const char *arg)
{
    sqlite3_stmt *s = fw_store_stmt(st, sql);
    if (arg)
        fw_bind_text(s, 1, arg);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    return v;
}

#endif
