/*
 * ledger_read.c - the ledger's queries for rules, the pre-check and tests.
 *
 * Every windowed query is answered through an index (see the schema in
 * ledger_schema.c): the history query is built from the criteria actually
 * given, so that the planner sees plain equalities and one range on the
 * time column and picks the matching (key, time) index.  Each distinct
 * criteria combination is one cached statement; there are few in practice.
 * fw_ledger_check_invariants() is the exception: it scans on purpose.
 */
#include "daemon/ledger.h"
#include "daemon/ledger_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/json_fast.h"
#include "daemon/log.h"
#include "daemon/voucher_cache.h"

/* Copy column text into a fixed field, truncated as snprintf("%s") would
 * (this runs for every rule evaluation: no printf machinery). */
static void copy_col(char *dst, size_t n, sqlite3_stmt *s, int col)
{
    const char *t = fw_col_text(s, col);
    size_t len = strlen(t);
    if (len >= n)
        len = n - 1;
    memcpy(dst, t, len);
    dst[len] = '\0';
}

int fw_ledger_get_indicator(fw_ledger *l, const char *indicator_id, fw_indicator *out)
{
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT indicator_id, unit_code, year, func_class, econ_class, fund_type,"
               " fund_source, project_code, flags, allocated, frozen, paid"
               " FROM indicators WHERE indicator_id = ?1");
    fw_bind_text(s, 1, indicator_id ? indicator_id : "");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && out) {
        memset(out, 0, sizeof *out);
        copy_col(out->indicator_id, sizeof out->indicator_id, s, 0);
        copy_col(out->unit_code, sizeof out->unit_code, s, 1);
        out->year = sqlite3_column_int(s, 2);
        copy_col(out->func_class, sizeof out->func_class, s, 3);
        copy_col(out->econ_class, sizeof out->econ_class, s, 4);
        copy_col(out->fund_type, sizeof out->fund_type, s, 5);
        copy_col(out->fund_source, sizeof out->fund_source, s, 6);
        copy_col(out->project_code, sizeof out->project_code, s, 7);
        out->flags = sqlite3_column_int(s, 8);
        out->allocated = sqlite3_column_int64(s, 9);
        out->frozen = sqlite3_column_int64(s, 10);
        out->paid = sqlite3_column_int64(s, 11);
        out->available = out->allocated - out->frozen - out->paid;
    }
    fw_store_done(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    FW_ERROR("ledger.sql", "what=get_indicator rc=%d", rc);
    return -1;
}

static void set_time(json_t *o, const char *key, sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) != SQLITE_NULL)
        json_object_set_new(o, key, json_integer(sqlite3_column_int64(s, col)));
}

/* A voucher's row: the stored body (0), the columns put_row_columns reads
 * (1-8), the number of its last event (9), the amount column (10). */
static const char k_voucher_row_sql[] =
    "SELECT b.body, v.state, v.created_at, v.signed_at, v.sent_at, v.paid_at,"
    " v.returned_at, v.cancelled_at, r.state,"
    " (SELECT max(n) FROM voucher_events e WHERE e.voucher_no = v.voucher_no), v.amount"
    " FROM vouchers v LEFT JOIN reservations r USING (voucher_no)"
    " LEFT JOIN voucher_bodies b ON b.n = v.n"
    " WHERE v.voucher_no = ?1";

/* state, the *_at times and the reservation's state, from that row. */
static void put_row_columns(json_t *v, sqlite3_stmt *s)
{
    json_object_set_new(v, "state", json_string(fw_col_text(s, 1)));
    set_time(v, "created_at", s, 2);
    set_time(v, "signed_at", s, 3);
    set_time(v, "sent_at", s, 4);
    set_time(v, "paid_at", s, 5);
    set_time(v, "returned_at", s, 6);
    set_time(v, "cancelled_at", s, 7);
    json_object_set_new(v, "reservation",
                        sqlite3_column_type(s, 8) == SQLITE_NULL ? json_null()
                                                                 : json_string(fw_col_text(s, 8)));
}

json_t *fw_ledger_voucher_row_json(fw_ledger *l, const char *voucher_no, int64_t *last_event)
{
    sqlite3_stmt *s = fw_store_stmt(l->st, k_voucher_row_sql);
    fw_bind_text(s, 1, voucher_no ? voucher_no : "");
    json_t *v = NULL;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        /* The stored body is canonical JSON: the fast parser takes it (it
         * was ~5 us of a 16 us ctx.voucher with json_loads). */
        const char *body = fw_col_text(s, 0);
        size_t blen = (size_t)sqlite3_column_bytes(s, 0);
        v = fw_json_load_fast(body, blen);
        if (!v)
            v = json_loadb(body, blen, 0, NULL);
        if (v && json_is_object(v)) {
            json_object_del(v, "id"); /* the created event's id is in events[] */
            json_object_del(v, "event");
            put_row_columns(v, s);
            if (last_event)
                *last_event = sqlite3_column_int64(s, 9); /* NULL (no event): 0 */
        } else {
            json_decref(v);
            v = NULL;
        }
    }
    fw_store_done(s);
    return v;
}

/* Copy column text into a record field; 1 when it had to be cut. */
static int rec_text(char *dst, size_t n, sqlite3_stmt *s, int col)
{
    size_t len = (size_t)sqlite3_column_bytes(s, col);
    copy_col(dst, n, s, col);
    return len >= n;
}

int fw_ledger_voucher_rec(fw_ledger *l, const char *voucher_no, fw_voucher_rec *out)
{
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT v.state, v.indicator_id, v.amount, v.created_at, v.signed_at, v.sent_at,"
               " v.paid_at, v.returned_at, v.cancelled_at, r.state,"
               " (SELECT max(n) FROM voucher_events e WHERE e.voucher_no = v.voucher_no), v.n"
               " FROM vouchers v LEFT JOIN reservations r USING (voucher_no)"
               " WHERE v.voucher_no = ?1");
    fw_bind_text(s, 1, voucher_no ? voucher_no : "");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->truncated |= rec_text(out->state, sizeof out->state, s, 0);
        out->truncated |= rec_text(out->indicator_id, sizeof out->indicator_id, s, 1);
        out->amount = sqlite3_column_int64(s, 2);
        for (int i = 0; i < 6; i++)
            if (sqlite3_column_type(s, 3 + i) != SQLITE_NULL) {
                out->at[i] = sqlite3_column_int64(s, 3 + i);
                out->has_at |= 1u << i;
            }
        if (sqlite3_column_type(s, 9) != SQLITE_NULL) {
            out->has_reservation = 1;
            out->truncated |= rec_text(out->reservation, sizeof out->reservation, s, 9);
        }
        out->last_event = sqlite3_column_int64(s, 10); /* NULL (no event): 0 */
        out->rowid = sqlite3_column_int64(s, 11);
    }
    fw_store_done(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    FW_ERROR("ledger.sql", "what=voucher_rec rc=%d", rc);
    return -1;
}

json_t *fw_ledger_voucher_columns_json(fw_ledger *l, const char *voucher_no, int64_t *last_event)
{
    fw_voucher_rec rec;
    fw_vcache *vc = fw_vcache_of(l);
    int found =
        vc ? fw_vcache_voucher(vc, voucher_no, &rec) : fw_ledger_voucher_rec(l, voucher_no, &rec);
    if (found <= 0)
        return NULL;
    if (rec.truncated) {
        /* the columns' whole text (never in practice) */
        sqlite3_stmt *s = fw_store_stmt(l->st, k_voucher_row_sql);
        fw_bind_text(s, 1, voucher_no ? voucher_no : "");
        json_t *v = NULL;
        if (sqlite3_step(s) == SQLITE_ROW) {
            v = json_object();
            json_object_set_new(v, "amount", json_integer(sqlite3_column_int64(s, 10)));
            put_row_columns(v, s);
            *last_event = sqlite3_column_int64(s, 9);
        }
        fw_store_done(s);
        return v;
    }
    static const char *const at_keys[6] = {"created_at", "signed_at",   "sent_at",
                                           "paid_at",    "returned_at", "cancelled_at"};
    /* the keys in put_row_columns' order; the amount column holds the
     * body's amount (apply_created) */
    json_t *v = json_object();
    json_object_set_new(v, "amount", json_integer(rec.amount));
    json_object_set_new(v, "state", json_string(rec.state));
    for (int i = 0; i < 6; i++)
        if (rec.has_at & (1u << i))
            json_object_set_new(v, at_keys[i], json_integer(rec.at[i]));
    json_object_set_new(v, "reservation",
                        rec.has_reservation ? json_string(rec.reservation) : json_null());
    *last_event = rec.last_event;
    return v;
}

int fw_ledger_voucher_add_stored_body(fw_ledger *l, json_t *v, const char *voucher_no)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "SELECT b.body FROM vouchers v JOIN voucher_bodies b ON b.n = v.n"
                             " WHERE v.voucher_no = ?1");
    fw_bind_text(s, 1, voucher_no ? voucher_no : "");
    json_t *b = NULL;
    if (sqlite3_step(s) == SQLITE_ROW) {
        /* parsed from SQLite's own buffer: the text is not copied */
        const char *text = fw_col_text(s, 0);
        size_t len = (size_t)sqlite3_column_bytes(s, 0);
        b = fw_json_load_fast(text, len);
        if (!b)
            b = json_loadb(text, len, 0, NULL);
    }
    fw_store_done(s);
    if (!json_is_object(b)) {
        json_decref(b);
        return -1;
    }
    const char *k;
    json_t *x;
    json_object_foreach(b, k, x)
    {
        /* as fw_ledger_voucher_row_json: the created event's id and name are
         * not the voucher's; the columns and `events` take precedence */
        if (strcmp(k, "id") == 0 || strcmp(k, "event") == 0 || strcmp(k, "events") == 0 ||
            json_object_get(v, k))
            continue;
        json_object_set(v, k, x);
    }
    json_decref(b);
    return 0;
}

json_t *fw_ledger_voucher_events_json(fw_ledger *l, const char *voucher_no, int64_t last_event)
{
    json_t *events = json_array();
    if (last_event <= 0)
        return events;
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT event, occurred_at, event_id, outcome"
                                           " FROM voucher_events"
                                           " WHERE voucher_no = ?1 AND n <= ?2 ORDER BY n");
    fw_bind_text(s, 1, voucher_no ? voucher_no : "");
    sqlite3_bind_int64(s, 2, last_event);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *e = json_object();
        json_object_set_new(e, "event", json_string(fw_col_text(s, 0)));
        json_object_set_new(e, "occurred_at", json_integer(sqlite3_column_int64(s, 1)));
        json_object_set_new(e, "id", json_string(fw_col_text(s, 2)));
        json_object_set_new(e, "outcome", json_string(fw_col_text(s, 3)));
        json_array_append_new(events, e);
    }
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        FW_ERROR("ledger.sql", "what=voucher_events rc=%d", rc);
        json_decref(events);
        return NULL;
    }
    return events;
}

json_t *fw_ledger_voucher_json(fw_ledger *l, const char *voucher_no)
{
    int64_t last = 0;
    json_t *v = fw_ledger_voucher_row_json(l, voucher_no, &last);
    if (!v)
        return NULL;
    json_t *events = fw_ledger_voucher_events_json(l, voucher_no, last);
    if (!events) {
        json_decref(v);
        return NULL;
    }
    json_object_set_new(v, "events", events);
    return v;
}

/* ---- the history query ---- */

#define QB_MAX_BINDS 16

typedef struct qbuild {
    char sql[1400];
    size_t len;
    int n;
    struct {
        const char *text; /* NULL: integer */
        int64_t i;
    } b[QB_MAX_BINDS];
    int overflow;
} qbuild;

/* Append text (the query is built for every history call: no printf). */
static void qb_str(qbuild *q, const char *s)
{
    size_t n = strlen(s);
    if (q->len + n >= sizeof q->sql) {
        q->overflow = 1;
        return;
    }
    memcpy(q->sql + q->len, s, n + 1);
    q->len += n;
}

/* " AND <cond> ?N" for bind number q->n (1..QB_MAX_BINDS). */
static void qb_cond(qbuild *q, const char *cond)
{
    char num[8];
    int i = 0;
    num[i++] = ' ';
    num[i++] = '?';
    if (q->n >= 10)
        num[i++] = (char)('0' + q->n / 10);
    num[i++] = (char)('0' + q->n % 10);
    num[i] = '\0';
    qb_str(q, " AND ");
    qb_str(q, cond);
    qb_str(q, num);
}

/* " AND <col> <op> ?N" with a text or integer bind. */
static void qb_text(qbuild *q, const char *cond, const char *v)
{
    if (q->n >= QB_MAX_BINDS) {
        q->overflow = 1;
        return;
    }
    q->b[q->n].text = v;
    q->n++;
    qb_cond(q, cond);
}

static void qb_int(qbuild *q, const char *cond, int64_t v)
{
    if (q->n >= QB_MAX_BINDS) {
        q->overflow = 1;
        return;
    }
    q->b[q->n].text = NULL;
    q->b[q->n].i = v;
    q->n++;
    qb_cond(q, cond);
}

int fw_ledger_history(fw_ledger *l, const fw_history_query *q, fw_history_result *r)
{
    r->count = r->total = 0;
    const char *tcol, *scond;
    if (!q->state) {
        tcol = "created_at", scond = "spend = 1";
    } else if (strcmp(q->state, "returned") == 0) {
        tcol = "returned_at", scond = "state = 'returned' AND returned_at IS NOT NULL";
    } else if (strcmp(q->state, "paid") == 0) {
        tcol = "paid_at", scond = "state = 'paid' AND paid_at IS NOT NULL";
    } else if (strcmp(q->state, "cancelled") == 0) {
        tcol = "cancelled_at", scond = "state = 'cancelled'";
    } else if (strcmp(q->state, "sent") == 0) {
        tcol = "sent_at", scond = "state = 'sent'";
    } else if (strcmp(q->state, "signed") == 0) {
        tcol = "signed_at", scond = "state = 'signed'";
    } else if (strcmp(q->state, "created") == 0) {
        tcol = "created_at", scond = "state = 'created'";
    } else {
        FW_WARN("ledger.history", "reason=\"unknown state\"");
        return -1;
    }

    qbuild b = {.len = 0};
    qb_str(&b, "SELECT count(*), coalesce(sum(amount), 0) FROM vouchers WHERE ");
    qb_str(&b, scond);
    if (q->unit_code)
        qb_text(&b, "unit_code =", q->unit_code);
    if (q->payee_account)
        qb_text(&b, "payee_account =", q->payee_account);
    if (q->indicator_id)
        qb_text(&b, "indicator_id =", q->indicator_id);
    if (q->econ_class)
        qb_text(&b, "econ_class =", q->econ_class);
    char *set = NULL;
    if (q->econ_classes) {
        json_t *arr = json_array();
        for (const char *const *c = q->econ_classes; *c; c++)
            json_array_append_new(arr, json_string(*c));
        set = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        if (!set)
            return -1;
        if (b.n < QB_MAX_BINDS) {
            b.b[b.n].text = set;
            b.n++;
            qb_cond(&b, "econ_class IN (SELECT value FROM json_each(");
            qb_str(&b, "))");
        } else {
            b.overflow = 1;
        }
    }
    if (q->settle_method)
        qb_text(&b, "settle_method =", q->settle_method);
    if (q->payee_type)
        qb_text(&b, "payee_type =", q->payee_type);
    if (q->has_amount)
        qb_int(&b, "amount =", q->amount);
    if (q->amount_below > 0)
        qb_int(&b, "amount <", q->amount_below);
    char cond[40];
    if (q->since) {
        cond[0] = '\0';
        strcat(strcat(cond, tcol), " >=");
        qb_int(&b, cond, q->since);
    }
    if (q->until) {
        cond[0] = '\0';
        strcat(strcat(cond, tcol), " <=");
        qb_int(&b, cond, q->until);
    }
    if (q->exclude_voucher)
        qb_text(&b, "voucher_no <>", q->exclude_voucher);
    if (b.overflow) {
        free(set);
        return -1;
    }

    sqlite3_stmt *s = fw_store_stmt(l->st, b.sql);
    for (int i = 0; i < b.n; i++) {
        if (b.b[i].text)
            fw_bind_text(s, i + 1, b.b[i].text);
        else
            sqlite3_bind_int64(s, i + 1, b.b[i].i);
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        r->count = sqlite3_column_int64(s, 0);
        r->total = sqlite3_column_int64(s, 1);
    }
    fw_store_done(s);
    free(set);
    return rc == SQLITE_ROW ? 0 : -1;
}

int fw_ledger_allocated_by_flag(fw_ledger *l, const char *unit_code, int year, int flag,
                                int64_t *allocated)
{
    *allocated = 0;
    sqlite3_stmt *s;
    if (flag > 0 && (flag & (flag - 1)) == 0) {
        /* One flag: the maintained total. */
        s = fw_store_stmt(l->st, "SELECT allocated FROM unit_flag_totals"
                                 " WHERE unit_code = ?1 AND year = ?2 AND flag = ?3");
    } else {
        /* Several flags (all required) or none: the unit's indicators of the
         * year, through indicators_unit_year. */
        s = fw_store_stmt(l->st, "SELECT coalesce(sum(allocated), 0) FROM indicators"
                                 " WHERE unit_code = ?1 AND year = ?2 AND (flags & ?3) = ?3");
    }
    fw_bind_text(s, 1, unit_code ? unit_code : "");
    sqlite3_bind_int(s, 2, year);
    sqlite3_bind_int(s, 3, flag);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *allocated = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

json_t *fw_ledger_employee_json(fw_ledger *l, const char *id_no, const char *before_period)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "SELECT run_id, unit_code, period, emp_id, name, account, gross, net"
                             " FROM payroll_lines WHERE id_no = ?1 AND (?2 IS NULL OR period < ?2)"
                             " ORDER BY period DESC, n DESC");
    fw_bind_text(s, 1, id_no ? id_no : "");
    fw_bind_text(s, 2, before_period);
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(
            out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "run_id", fw_col_text(s, 0),
                           "unit_code", fw_col_text(s, 1), "period", fw_col_text(s, 2), "emp_id",
                           fw_col_text(s, 3), "name", fw_col_text(s, 4), "account",
                           fw_col_text(s, 5), "gross", (json_int_t)sqlite3_column_int64(s, 6),
                           "net", (json_int_t)sqlite3_column_int64(s, 7)));
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *fw_ledger_period_lines_json(fw_ledger *l, const char *period, const char *id_no,
                                    const char *account)
{
    /* NULL binds match nothing, so either criterion may be absent; the two
     * equalities are answered by payroll_lines_person / _account. */
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT run_id, unit_code, emp_id, id_no, account FROM payroll_lines"
               " WHERE (id_no = ?2 AND period = ?1) OR (account = ?3 AND period = ?1) ORDER BY n");
    fw_bind_text(s, 1, period ? period : "");
    fw_bind_text(s, 2, id_no);
    fw_bind_text(s, 3, account);
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "run_id", fw_col_text(s, 0),
                                        "unit_code", fw_col_text(s, 1), "emp_id", fw_col_text(s, 2),
                                        "id_no", fw_col_text(s, 3), "account", fw_col_text(s, 4)));
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int fw_ledger_run_progress(fw_ledger *l, const char *run_id, int *parts_seen, int64_t *net_so_far)
{
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT count(*), coalesce(sum(net), 0) FROM payroll_parts WHERE run_id = ?1");
    fw_bind_text(s, 1, run_id ? run_id : "");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *parts_seen = sqlite3_column_int(s, 0);
        *net_so_far = sqlite3_column_int64(s, 1);
    }
    fw_store_done(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

int fw_ledger_subsidy_count(fw_ledger *l, const char *emp_id, const char *unit_code,
                            const char *kind, int year, int month, const char *exclude_payout,
                            int64_t *count)
{
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT count(*) FROM subsidies WHERE emp_id = ?1 AND kind = ?2 AND pay_year = ?3"
               " AND pay_month = ?4 AND (?5 IS NULL OR unit_code = ?5)"
               " AND (?6 IS NULL OR payout_id <> ?6)");
    fw_bind_text(s, 1, emp_id ? emp_id : "");
    fw_bind_text(s, 2, kind ? kind : "");
    sqlite3_bind_int(s, 3, year);
    sqlite3_bind_int(s, 4, month);
    fw_bind_text(s, 5, unit_code);
    fw_bind_text(s, 6, exclude_payout);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

json_t *fw_ledger_vouchers_sent_before(fw_ledger *l, int64_t before)
{
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT voucher_no, unit_code, sent_at, amount"
                                           " FROM vouchers WHERE state = 'sent' AND sent_at <= ?1"
                                           " ORDER BY sent_at, voucher_no");
    sqlite3_bind_int64(s, 1, before);
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:I}", "voucher_no",
                                             fw_col_text(s, 0), "unit_code", fw_col_text(s, 1),
                                             "sent_at", (json_int_t)sqlite3_column_int64(s, 2),
                                             "amount", (json_int_t)sqlite3_column_int64(s, 3)));
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *fw_ledger_project_indicators(fw_ledger *l)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "SELECT indicator_id, unit_code, allocated, project_code,"
                             " year FROM indicators WHERE project_code <> ''"
                             " ORDER BY indicator_id");
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:s, s:i}", "indicator_id",
                                             fw_col_text(s, 0), "unit_code", fw_col_text(s, 1),
                                             "allocated", (json_int_t)sqlite3_column_int64(s, 2),
                                             "project_code", fw_col_text(s, 3), "year",
                                             sqlite3_column_int(s, 4)));
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- invariants ---- */

static const struct {
    const char *what;
    const char *sql; /* returns one row naming the first violation, or none */
} invariant_checks[] = {
    {"negative balance",
     "SELECT indicator_id FROM indicators WHERE allocated < 0 OR frozen < 0 OR paid < 0 LIMIT 1"},
    /* Reservations are summed per indicator in one scan: no index of
     * reservations is keyed by indicator (migration ledger_write_lean). */
    {"frozen differs from its pending reservations",
     "SELECT i.indicator_id FROM indicators i LEFT JOIN (SELECT indicator_id, sum(amount) s"
     " FROM reservations WHERE state = 'pending' GROUP BY indicator_id) r USING (indicator_id)"
     " WHERE i.frozen <> coalesce(r.s, 0) LIMIT 1"},
    {"paid differs from posted reservations plus payroll",
     "SELECT i.indicator_id FROM indicators i LEFT JOIN (SELECT indicator_id, sum(amount) s"
     " FROM reservations WHERE state = 'posted' GROUP BY indicator_id) r USING (indicator_id)"
     " WHERE i.paid <> coalesce(r.s, 0) + (SELECT coalesce(sum(e.d_paid), 0) FROM ledger_entries e"
     " WHERE e.indicator_id = i.indicator_id AND e.kind = 'payroll') LIMIT 1"},
    {"entry deltas do not sum to the balances",
     "SELECT i.indicator_id FROM indicators i LEFT JOIN (SELECT indicator_id, sum(d_allocated) a,"
     " sum(d_frozen) f, sum(d_paid) p FROM ledger_entries GROUP BY indicator_id) e"
     " USING (indicator_id) WHERE coalesce(e.a, 0) <> i.allocated OR coalesce(e.f, 0) <> i.frozen"
     " OR coalesce(e.p, 0) <> i.paid LIMIT 1"},
    {"an entry's balances do not follow from the previous entry",
     "SELECT indicator_id || ' seq ' || seq FROM (SELECT seq, indicator_id,"
     " allocated - d_allocated - coalesce(lag(allocated) OVER w, 0) da,"
     " frozen - d_frozen - coalesce(lag(frozen) OVER w, 0) df,"
     " paid - d_paid - coalesce(lag(paid) OVER w, 0) dp,"
     " allocated < 0 OR frozen < 0 OR paid < 0 neg FROM ledger_entries"
     " WINDOW w AS (PARTITION BY indicator_id ORDER BY seq))"
     " WHERE da <> 0 OR df <> 0 OR dp <> 0 OR neg LIMIT 1"},
    {"entry for an unknown indicator",
     "SELECT e.indicator_id FROM ledger_entries e WHERE NOT EXISTS (SELECT 1 FROM indicators i"
     " WHERE i.indicator_id = e.indicator_id) LIMIT 1"},
    {"reservation disagrees with its voucher's state",
     "SELECT r.voucher_no FROM reservations r LEFT JOIN vouchers v USING (voucher_no)"
     " WHERE NOT ((r.state = 'pending' AND v.state IN ('created', 'signed', 'sent'))"
     " OR (r.state = 'posted' AND v.state = 'paid')"
     " OR (r.state = 'voided' AND v.state IN ('cancelled', 'returned'))"
     " OR (r.state = 'refunded' AND v.state = 'returned')) OR v.state IS NULL LIMIT 1"},
    {"unit_flag_totals differs from a recount",
     "WITH r AS (SELECT unit_code, year, b.column1 AS flag, sum(allocated) AS allocated"
     " FROM indicators JOIN (VALUES (1), (2), (4), (8), (16)) b ON (flags & b.column1) <> 0"
     " GROUP BY 1, 2, 3), t AS (SELECT unit_code, year, flag, allocated FROM unit_flag_totals)"
     " SELECT unit_code || '/' || year || '/' || flag FROM"
     " (SELECT * FROM r WHERE allocated <> 0 EXCEPT SELECT * FROM t WHERE allocated <> 0)"
     " UNION ALL SELECT unit_code || '/' || year || '/' || flag FROM"
     " (SELECT * FROM t WHERE allocated <> 0 EXCEPT SELECT * FROM r WHERE allocated <> 0)"
     " LIMIT 1"},
};

int fw_ledger_check_invariants(fw_ledger *l, char *err, int errlen)
{
    for (size_t i = 0; i < sizeof invariant_checks / sizeof invariant_checks[0]; i++) {
        sqlite3_stmt *s = fw_store_stmt(l->st, invariant_checks[i].sql);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && err)
            snprintf(err, (size_t)errlen, "%s: %s", invariant_checks[i].what, fw_col_text(s, 0));
        else if (rc != SQLITE_DONE && rc != SQLITE_ROW && err)
            snprintf(err, (size_t)errlen, "%s: sqlite error %d", invariant_checks[i].what, rc);
        fw_store_done(s);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}
