/*
 * ledger.c - applying events to the budget indicator ledger.
 *
 * fw_ledger_apply() dispatches on the event type.  Every balance change goes
 * through change_balances(), which updates the indicator row, appends one
 * ledger entry (deltas, balances after, cause) and keeps unit_flag_totals in
 * step, so the three can never disagree.  Refusals change no balance: they
 * append a `refusals` row and, when the indicator exists, a `refused` entry
 * with zero deltas, so its history shows what was attempted.
 *
 * Voucher events follow the two-phase flow of ledger.h; an event the flow
 * does not allow is kept in voucher_events with outcome flow_error and
 * changes nothing else.  Nothing here reads the wall clock: every time is
 * the event's occurred_at, so a replay writes identical rows.
 */
#include "daemon/ledger.h"
#include "daemon/ledger_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/voucher_cache.h"
#include "daemon/money.h"
#include "daemon/timeutil.h"

/* Balances stay far from int64 overflow: no single field may pass this. */
#define FW_LEDGER_MAX_BALANCE (FW_MONEY_MAX_FEN * 1000)

static const struct {
    const char *name;
    int flag;
} flag_names[] = {
    {"salary", FW_FLAG_SALARY},   {"sangong", FW_FLAG_SANGONG}, {"direct", FW_FLAG_DIRECT},
    {"subsidy", FW_FLAG_SUBSIDY}, {"union", FW_FLAG_UNION},
};

int fw_flag_from_name(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (strcmp(flag_names[i].name, name) == 0)
            return flag_names[i].flag;
    return 0;
}

const char *fw_flag_name(int flag)
{
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (flag_names[i].flag == flag)
            return flag_names[i].name;
    return NULL;
}

const char *fw_ledger_outcome_name(fw_ledger_outcome o)
{
    switch (o) {
    case FW_LEDGER_APPLIED:
        return "applied";
    case FW_LEDGER_NOOP:
        return "noop";
    case FW_LEDGER_REFUSED:
        return "refused";
    case FW_LEDGER_FLOW_ERROR:
        return "flow_error";
    case FW_LEDGER_OVERDRAWN:
        return "overdrawn";
    }
    return "unknown";
}

fw_ledger *fw_ledger_new(fw_store *st)
{
    if (!st)
        return NULL;
    fw_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->st = st;
    return l;
}

void fw_ledger_free(fw_ledger *l)
{
    if (l)
        free(l->text);
    free(l);
}

/* ---- small helpers shared with the readers ---- */

const char *fw_ledger_jstr(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

int fw_ledger_jint(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return 0;
    *out = (int64_t)json_integer_value(v);
    return 1;
}

/* Bind text the statement only reads while it runs: every statement here
 * is bound, stepped and released (fw_store_done clears the bindings) in
 * one go, while the strings (the event body, the ledger's own buffers and
 * structs) are alive, so SQLite need not copy each one (SQLITE_TRANSIENT,
 * as fw_bind_text does, is a malloc and a copy per string, ~30 per
 * voucher).  NULL binds NULL. */
static int bind_str(sqlite3_stmt *s, int idx, const char *v)
{
    return v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
}

/* Step a statement that returns no row, then release it. */
int fw_ledger_step_done(fw_ledger *l, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        FW_ERROR("ledger.sql", "what=%s rc=%d msg=\"%s\"", what, rc,
                 sqlite3_errmsg(fw_store_db(l->st)));
        fw_store_done(s);
        return -1;
    }
    fw_store_done(s);
    return 0;
}

static void set_result(fw_ledger_result *res, fw_ledger_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_result(fw_ledger_result *res, fw_ledger_outcome o, const char *fmt, ...)
{
    res->outcome = o;
    res->reason[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->reason, sizeof res->reason, fmt, ap);
        va_end(ap);
    }
}

static const char *yuan(int64_t fen, char buf[32])
{
    return fw_money_format(fen, buf, 32);
}

/* ---- balances ---- */

typedef struct cause {
    const char *kind;         /* entry kind */
    int64_t amount;           /* the operation's amount (signed for adjust) */
    const char *type;         /* doc | voucher | payroll | transfer */
    const char *id;           /* doc_no / voucher_no / run_id */
    const char *counterparty; /* transfers: the other indicator */
    const char *pair_id;      /* transfers: shared by both entries */
    const char *event_id;
    int64_t at;
} cause;

static int add_flag_totals(fw_ledger *l, const fw_indicator *ind, int64_t d_allocated)
{
    if (d_allocated == 0)
        return 0;
    for (int bit = 1; bit <= FW_FLAG_UNION; bit <<= 1) {
        if (!(ind->flags & bit))
            continue;
        sqlite3_stmt *s =
            fw_store_stmt(l->st, "INSERT INTO unit_flag_totals(unit_code, year, flag, allocated)"
                                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(unit_code, year, flag)"
                                 " DO UPDATE SET allocated = allocated + excluded.allocated");
        bind_str(s, 1, ind->unit_code);
        sqlite3_bind_int(s, 2, ind->year);
        sqlite3_bind_int(s, 3, bit);
        sqlite3_bind_int64(s, 4, d_allocated);
        if (fw_ledger_step_done(l, s, "flag_totals") < 0)
            return -1;
    }
    return 0;
}

static int append_entry(fw_ledger *l, const fw_indicator *ind, int64_t d_allocated,
                        int64_t d_frozen, int64_t d_paid, const cause *c);

/* Apply deltas to *ind (already loaded), write the row, append the entry. */
static int change_balances(fw_ledger *l, fw_indicator *ind, int64_t d_allocated, int64_t d_frozen,
                           int64_t d_paid, const cause *c)
{
    ind->allocated += d_allocated;
    ind->frozen += d_frozen;
    ind->paid += d_paid;
    ind->available = ind->allocated - ind->frozen - ind->paid;

    if (d_allocated || d_frozen || d_paid) {
        sqlite3_stmt *s = fw_store_stmt(l->st, "UPDATE indicators SET allocated = ?2, frozen = ?3,"
                                               " paid = ?4 WHERE indicator_id = ?1");
        fw_vcache_indicator_written(l, ind->indicator_id);
        bind_str(s, 1, ind->indicator_id);
        sqlite3_bind_int64(s, 2, ind->allocated);
        sqlite3_bind_int64(s, 3, ind->frozen);
        sqlite3_bind_int64(s, 4, ind->paid);
        if (fw_ledger_step_done(l, s, "update_indicator") < 0)
            return -1;
        fw_vcache_indicator_balances(l, ind);
        if (add_flag_totals(l, ind, d_allocated) < 0)
            return -1;
    }
    return append_entry(l, ind, d_allocated, d_frozen, d_paid, c);
}

/* The ledger entry of a change already written to the indicator row: its
 * deltas, the balances after (*ind) and its cause. */
static int append_entry(fw_ledger *l, const fw_indicator *ind, int64_t d_allocated,
                        int64_t d_frozen, int64_t d_paid, const cause *c)
{
    sqlite3_stmt *e = fw_store_stmt(
        l->st,
        "INSERT INTO ledger_entries(indicator_id, kind, amount, d_allocated, d_frozen,"
        " d_paid, allocated, frozen, paid, cause_type, cause_id, counterparty, pair_id,"
        " event_id, occurred_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)");
    bind_str(e, 1, ind->indicator_id);
    bind_str(e, 2, c->kind);
    sqlite3_bind_int64(e, 3, c->amount);
    sqlite3_bind_int64(e, 4, d_allocated);
    sqlite3_bind_int64(e, 5, d_frozen);
    sqlite3_bind_int64(e, 6, d_paid);
    sqlite3_bind_int64(e, 7, ind->allocated);
    sqlite3_bind_int64(e, 8, ind->frozen);
    sqlite3_bind_int64(e, 9, ind->paid);
    bind_str(e, 10, c->type);
    bind_str(e, 11, c->id ? c->id : "");
    bind_str(e, 12, c->counterparty);
    bind_str(e, 13, c->pair_id);
    bind_str(e, 14, c->event_id ? c->event_id : "");
    sqlite3_bind_int64(e, 15, c->at);
    return fw_ledger_step_done(l, e, "insert_entry");
}

/* A voucher's reservation moving on its indicator: frozen and paid change
 * by the deltas in one statement that also returns the row after it (what
 * a read before the update gave, without a second lookup).  With
 * frozen_cap > 0 the row is only changed while frozen stays <= frozen_cap.
 * 1 changed (*ind holds the row after), 0 no such row or over the cap
 * (nothing changed), -1 store error. */
static int move_reserved(fw_ledger *l, const char *indicator_id, int64_t d_frozen, int64_t d_paid,
                         int64_t frozen_cap, fw_indicator *ind)
{
    fw_vcache *vc = fw_vcache_of(l);
    if (vc) {
        /* The row from the cache (exact: see voucher_cache.h), then an
         * UPDATE of the two balances by primary key: RETURNING made SQLite
         * open and close an ephemeral table for its one row on every
         * voucher (~5 us, 15% of the loop under bench_intake). */
        fw_indicator cur;
        int found = fw_vcache_indicator(vc, indicator_id, &cur);
        if (found <= 0)
            return found;
        if (frozen_cap > 0 && cur.frozen + d_frozen > frozen_cap)
            return 0;
        int64_t frozen, paid;
        if (__builtin_add_overflow(cur.frozen, d_frozen, &frozen) ||
            __builtin_add_overflow(cur.paid, d_paid, &paid)) {
            FW_ERROR("ledger.sql", "what=move_reserved msg=\"integer overflow\"");
            return -1; /* as the UPDATE's own arithmetic failed */
        }
        sqlite3_stmt *s = fw_store_stmt(l->st, "UPDATE indicators SET frozen = ?2, paid = ?3"
                                               " WHERE indicator_id = ?1");
        fw_vcache_indicator_written(l, indicator_id);
        bind_str(s, 1, indicator_id);
        sqlite3_bind_int64(s, 2, frozen);
        sqlite3_bind_int64(s, 3, paid);
        if (fw_ledger_step_done(l, s, "move_reserved") < 0)
            return -1;
        if (sqlite3_changes(fw_store_db(l->st)) != 1) {
            FW_ERROR("ledger.sql", "what=move_reserved msg=\"indicator row not updated\"");
            return -1; /* the cache and the table disagree: a bug */
        }
        *ind = cur;
        ind->frozen = frozen;
        ind->paid = paid;
        ind->available = ind->allocated - ind->frozen - ind->paid;
        fw_vcache_indicator_balances(l, ind);
        return 1;
    }
    sqlite3_stmt *s =
        frozen_cap > 0
            ? fw_store_stmt(l->st, "UPDATE indicators SET frozen = frozen + ?2, paid = paid + ?3"
                                   " WHERE indicator_id = ?1 AND frozen + ?2 <= ?4"
                                   " RETURNING indicator_id, unit_code, year, func_class,"
                                   " econ_class, fund_type, fund_source, project_code, flags,"
                                   " allocated, frozen, paid")
            : fw_store_stmt(l->st, "UPDATE indicators SET frozen = frozen + ?2, paid = paid + ?3"
                                   " WHERE indicator_id = ?1"
                                   " RETURNING indicator_id, unit_code, year, func_class,"
                                   " econ_class, fund_type, fund_source, project_code, flags,"
                                   " allocated, frozen, paid");
    fw_vcache_indicator_written(l, indicator_id);
    bind_str(s, 1, indicator_id);
    sqlite3_bind_int64(s, 2, d_frozen);
    sqlite3_bind_int64(s, 3, d_paid);
    if (frozen_cap > 0)
        sqlite3_bind_int64(s, 4, frozen_cap);
    int rc = sqlite3_step(s), found = 0;
    if (rc == SQLITE_ROW) {
        found = 1;
        memset(ind, 0, sizeof *ind);
        static const struct {
            size_t off, size;
        } text[] = {
            {offsetof(fw_indicator, indicator_id), sizeof ind->indicator_id},
            {offsetof(fw_indicator, unit_code), sizeof ind->unit_code},
            {0, 0},
            {offsetof(fw_indicator, func_class), sizeof ind->func_class},
            {offsetof(fw_indicator, econ_class), sizeof ind->econ_class},
            {offsetof(fw_indicator, fund_type), sizeof ind->fund_type},
            {offsetof(fw_indicator, fund_source), sizeof ind->fund_source},
            {offsetof(fw_indicator, project_code), sizeof ind->project_code},
        };
        for (int i = 0; i < 8; i++) {
            if (!text[i].size)
                continue;
            /* Truncated as fw_ledger_get_indicator does. */
            const char *t = fw_col_text(s, i);
            size_t len = strlen(t);
            if (len >= text[i].size)
                len = text[i].size - 1;
            memcpy((char *)ind + text[i].off, t, len);
        }
        ind->year = sqlite3_column_int(s, 2);
        ind->flags = sqlite3_column_int(s, 8);
        ind->allocated = sqlite3_column_int64(s, 9);
        ind->frozen = sqlite3_column_int64(s, 10);
        ind->paid = sqlite3_column_int64(s, 11);
        ind->available = ind->allocated - ind->frozen - ind->paid;
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) {
        FW_ERROR("ledger.sql", "what=move_reserved rc=%d msg=\"%s\"", rc,
                 sqlite3_errmsg(fw_store_db(l->st)));
        fw_store_done(s);
        return -1;
    }
    fw_store_done(s);
    if (found)
        fw_vcache_indicator_balances(l, ind);
    return found;
}

/* A refused indicator operation: the refusals row, and a zero-delta entry on
 * the indicator when it exists. */
static int record_refusal(fw_ledger *l, const fw_event *ev, const char *op,
                          const char *indicator_id, const char *doc_no, int64_t amount,
                          fw_ledger_result *res)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "INSERT INTO refusals(event_id, op, indicator_id, doc_no,"
                             " amount, reason, occurred_at)"
                             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    bind_str(s, 1, ev->id ? ev->id : "");
    bind_str(s, 2, op);
    bind_str(s, 3, indicator_id);
    bind_str(s, 4, doc_no);
    sqlite3_bind_int64(s, 5, amount);
    bind_str(s, 6, res->reason);
    sqlite3_bind_int64(s, 7, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "insert_refusal") < 0)
        return -1;

    fw_indicator ind;
    int found = fw_ledger_get_indicator(l, indicator_id, &ind);
    if (found < 0)
        return -1;
    if (found) {
        cause c = {"refused", amount, "doc", doc_no, NULL, NULL, ev->id, ev->occurred_at};
        if (change_balances(l, &ind, 0, 0, 0, &c) < 0)
            return -1;
    }
    FW_INFO("ledger.refused", "op=%s indicator=%s event=%s", op, indicator_id,
            ev->id ? ev->id : "");
    return 0;
}

/* ---- indicator operations ---- */

/* Flags from the optional `flags` array.  -1 on an unknown name. */
static int parse_flags(const json_t *arr, int *flags, const char **bad)
{
    *flags = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        int f = json_is_string(v) ? fw_flag_from_name(json_string_value(v)) : 0;
        if (!f) {
            *bad = json_is_string(v) ? json_string_value(v) : "(not a string)";
            return -1;
        }
        *flags |= f;
    }
    return 0;
}

/* The first descriptive field of an allocate that contradicts the stored
 * indicator, or NULL.  Optional fields only count when the event has them. */
static const char *allocate_mismatch(const fw_indicator *ind, const json_t *b, int64_t year,
                                     int has_flags, int flags)
{
    if (strcmp(ind->unit_code, fw_ledger_jstr(b, "unit_code")) != 0)
        return "unit_code";
    if (ind->year != year)
        return "year";
    if (strcmp(ind->func_class, fw_ledger_jstr(b, "func_class")) != 0)
        return "func_class";
    if (strcmp(ind->econ_class, fw_ledger_jstr(b, "econ_class")) != 0)
        return "econ_class";
    static const char *const optional[] = {"fund_type", "fund_source", "project_code"};
    const char *stored[] = {ind->fund_type, ind->fund_source, ind->project_code};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(b, optional[i]);
        if (v && !json_is_null(v) && strcmp(stored[i], fw_ledger_jstr(b, optional[i])) != 0)
            return optional[i];
    }
    if (has_flags && flags != ind->flags)
        return "flags";
    return NULL;
}

static int refuse(fw_ledger *l, const fw_event *ev, const char *op, const char *indicator_id,
                  const char *doc_no, int64_t amount, fw_ledger_result *res)
{
    res->outcome = FW_LEDGER_REFUSED;
    return record_refusal(l, ev, op, indicator_id, doc_no, amount, res);
}

static int apply_allocate(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    const char *id = fw_ledger_jstr(b, "indicator_id");
    const char *doc = fw_ledger_jstr(b, "doc_no");
    int64_t amount = 0, year = 0;
    char y1[32];
    if (!fw_ledger_jint(b, "amount", &amount) || amount < 0) {
        set_result(res, FW_LEDGER_REFUSED, "allocate needs a non-negative amount");
        return refuse(l, ev, "allocate", id, doc, amount, res);
    }
    fw_ledger_jint(b, "year", &year);
    int flags = 0;
    const char *bad = NULL;
    const json_t *jf = json_object_get(b, "flags");
    int has_flags = json_is_array(jf);
    if (has_flags && parse_flags(jf, &flags, &bad) < 0) {
        set_result(res, FW_LEDGER_REFUSED, "unknown flag \"%.40s\"", bad);
        return refuse(l, ev, "allocate", id, doc, amount, res);
    }

    fw_indicator ind;
    int found = fw_ledger_get_indicator(l, id, &ind);
    if (found < 0)
        return -1;
    if (found) {
        const char *field = allocate_mismatch(&ind, b, year, has_flags, flags);
        if (field) {
            set_result(res, FW_LEDGER_REFUSED, "allocate to %.64s: %s differs from the indicator's",
                       id, field);
            return refuse(l, ev, "allocate", id, doc, amount, res);
        }
        if (ind.allocated + amount > FW_LEDGER_MAX_BALANCE) {
            set_result(res, FW_LEDGER_REFUSED, "allocate to %.64s: total too large", id);
            return refuse(l, ev, "allocate", id, doc, amount, res);
        }
    } else {
        if (year <= 0 || year > 9999) {
            set_result(res, FW_LEDGER_REFUSED, "allocate creating %.64s needs a year", id);
            return refuse(l, ev, "allocate", id, doc, amount, res);
        }
        memset(&ind, 0, sizeof ind);
        snprintf(ind.indicator_id, sizeof ind.indicator_id, "%s", id);
        snprintf(ind.unit_code, sizeof ind.unit_code, "%s", fw_ledger_jstr(b, "unit_code"));
        ind.year = (int)year;
        snprintf(ind.func_class, sizeof ind.func_class, "%s", fw_ledger_jstr(b, "func_class"));
        snprintf(ind.econ_class, sizeof ind.econ_class, "%s", fw_ledger_jstr(b, "econ_class"));
        snprintf(ind.fund_type, sizeof ind.fund_type, "%s", fw_ledger_jstr(b, "fund_type"));
        snprintf(ind.fund_source, sizeof ind.fund_source, "%s", fw_ledger_jstr(b, "fund_source"));
        snprintf(ind.project_code, sizeof ind.project_code, "%s",
                 fw_ledger_jstr(b, "project_code"));
        ind.flags = flags;
        sqlite3_stmt *s = fw_store_stmt(
            l->st, "INSERT INTO indicators(indicator_id, unit_code, year, func_class, econ_class,"
                   " fund_type, fund_source, project_code, flags, allocated, frozen, paid,"
                   " created_doc, created_event, created_at)"
                   " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,0,0,0,?10,?11,?12)");
        fw_vcache_indicator_written(l, id);
        /* Bind the event's full strings, not the struct's bounded copies. */
        bind_str(s, 1, id);
        bind_str(s, 2, fw_ledger_jstr(b, "unit_code"));
        sqlite3_bind_int(s, 3, ind.year);
        bind_str(s, 4, fw_ledger_jstr(b, "func_class"));
        bind_str(s, 5, fw_ledger_jstr(b, "econ_class"));
        bind_str(s, 6, fw_ledger_jstr(b, "fund_type"));
        bind_str(s, 7, fw_ledger_jstr(b, "fund_source"));
        bind_str(s, 8, fw_ledger_jstr(b, "project_code"));
        sqlite3_bind_int(s, 9, flags);
        bind_str(s, 10, doc);
        bind_str(s, 11, ev->id ? ev->id : "");
        sqlite3_bind_int64(s, 12, ev->occurred_at);
        if (fw_ledger_step_done(l, s, "insert_indicator") < 0)
            return -1;
    }
    cause c = {"allocate", amount, "doc", doc, NULL, NULL, ev->id, ev->occurred_at};
    if (change_balances(l, &ind, amount, 0, 0, &c) < 0)
        return -1;
    set_result(res, FW_LEDGER_APPLIED, "%s %.64s +%s", found ? "allocated to" : "created", id,
               yuan(amount, y1));
    return 0;
}

static int apply_adjust(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    const char *id = fw_ledger_jstr(b, "indicator_id");
    const char *doc = fw_ledger_jstr(b, "doc_no");
    int64_t amount = 0;
    char y1[32], y2[32];
    if (!fw_ledger_jint(b, "amount", &amount)) {
        set_result(res, FW_LEDGER_REFUSED, "adjust needs an amount");
        return refuse(l, ev, "adjust", id, doc, 0, res);
    }
    fw_indicator ind;
    int found = fw_ledger_get_indicator(l, id, &ind);
    if (found < 0)
        return -1;
    if (!found) {
        set_result(res, FW_LEDGER_REFUSED, "adjust of unknown indicator %.64s", id);
        return refuse(l, ev, "adjust", id, doc, amount, res);
    }
    if (strcmp(ind.unit_code, fw_ledger_jstr(b, "unit_code")) != 0) {
        set_result(res, FW_LEDGER_REFUSED, "adjust of %.64s: it belongs to unit %s", id,
                   ind.unit_code);
        return refuse(l, ev, "adjust", id, doc, amount, res);
    }
    if (amount < 0 && ind.allocated + amount < ind.frozen + ind.paid) {
        set_result(res, FW_LEDGER_REFUSED, "reduction of %.64s by %s below frozen+paid %s", id,
                   yuan(-amount, y1), yuan(ind.frozen + ind.paid, y2));
        return refuse(l, ev, "adjust", id, doc, amount, res);
    }
    if (amount > 0 && ind.allocated + amount > FW_LEDGER_MAX_BALANCE) {
        set_result(res, FW_LEDGER_REFUSED, "adjust of %.64s: total too large", id);
        return refuse(l, ev, "adjust", id, doc, amount, res);
    }
    if (amount == 0) {
        set_result(res, FW_LEDGER_NOOP, "adjust by zero");
        return 0;
    }
    cause c = {"adjust", amount, "doc", doc, NULL, NULL, ev->id, ev->occurred_at};
    if (change_balances(l, &ind, amount, 0, 0, &c) < 0)
        return -1;
    set_result(res, FW_LEDGER_APPLIED, "adjusted %.64s by %s", id, yuan(amount, y1));
    return 0;
}

static int apply_transfer(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    const char *to = fw_ledger_jstr(b, "indicator_id");
    const char *from = fw_ledger_jstr(b, "from_indicator_id");
    const char *doc = fw_ledger_jstr(b, "doc_no");
    int64_t amount = 0;
    char y1[32], y2[32];
    if (!fw_ledger_jint(b, "amount", &amount) || amount <= 0) {
        set_result(res, FW_LEDGER_REFUSED, "transfer needs a positive amount");
        return refuse(l, ev, "transfer", from[0] ? from : to, doc, amount, res);
    }
    if (strcmp(from, to) == 0) {
        set_result(res, FW_LEDGER_REFUSED, "transfer from %.64s to itself", from);
        return refuse(l, ev, "transfer", from, doc, amount, res);
    }
    fw_indicator src, dst;
    int fs = fw_ledger_get_indicator(l, from, &src);
    int fd = fs < 0 ? -1 : fw_ledger_get_indicator(l, to, &dst);
    if (fs < 0 || fd < 0)
        return -1;
    if (!fs) {
        set_result(res, FW_LEDGER_REFUSED, "transfer from unknown indicator %.64s", from);
        return refuse(l, ev, "transfer", from, doc, amount, res);
    }
    if (!fd) {
        set_result(res, FW_LEDGER_REFUSED, "transfer to unknown indicator %.64s", to);
        return refuse(l, ev, "transfer", to, doc, amount, res);
    }
    if (strcmp(dst.unit_code, fw_ledger_jstr(b, "unit_code")) != 0) {
        set_result(res, FW_LEDGER_REFUSED, "transfer to %.64s: it belongs to unit %s", to,
                   dst.unit_code);
        return refuse(l, ev, "transfer", to, doc, amount, res);
    }
    if (src.allocated - amount < src.frozen + src.paid) {
        set_result(res, FW_LEDGER_REFUSED, "transfer of %s would take %.64s below frozen+paid %s",
                   yuan(amount, y1), from, yuan(src.frozen + src.paid, y2));
        return refuse(l, ev, "transfer", from, doc, amount, res);
    }
    if (dst.allocated + amount > FW_LEDGER_MAX_BALANCE) {
        set_result(res, FW_LEDGER_REFUSED, "transfer to %.64s: total too large", to);
        return refuse(l, ev, "transfer", to, doc, amount, res);
    }
    /* One pair: both entries share pair_id (the event id) and name each other. */
    cause out = {"transfer_out", -amount, "transfer", doc, to, ev->id, ev->id, ev->occurred_at};
    cause in = {"transfer_in", amount, "transfer", doc, from, ev->id, ev->id, ev->occurred_at};
    if (change_balances(l, &src, -amount, 0, 0, &out) < 0 ||
        change_balances(l, &dst, amount, 0, 0, &in) < 0)
        return -1;
    set_result(res, FW_LEDGER_APPLIED, "moved %s from %.60s to %.60s", yuan(amount, y1), from, to);
    return 0;
}

static int apply_indicator(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const char *op = strncmp(ev->type, "indicator.", 10) == 0 ? ev->type + 10 : "";
    if (strcmp(op, "allocate") == 0)
        return apply_allocate(l, ev, res);
    if (strcmp(op, "adjust") == 0)
        return apply_adjust(l, ev, res);
    if (strcmp(op, "transfer") == 0)
        return apply_transfer(l, ev, res);
    set_result(res, FW_LEDGER_REFUSED, "unknown indicator op \"%.32s\"", op);
    return refuse(l, ev, op, fw_ledger_jstr(ev->body, "indicator_id"),
                  fw_ledger_jstr(ev->body, "doc_no"), 0, res);
}

/* ---- vouchers ---- */

/* The stored body text: exactly json_dumps(body, JSON_COMPACT |
 * JSON_SORT_KEYS) (jansson 2.14: keys in byte order, strings escaped as
 * \\ \" \b \f \n \r \t and \uXXXX for other control characters, UTF-8
 * kept), written into the ledger's reused buffer: json_dumps cost a malloc
 * per growth step and a qsort per object on every voucher event.  A body
 * holding a real (decoded bodies have none: money is integer fen) is left
 * to json_dumps, so the text never differs from what jansson writes. */
static int text_reserve(fw_ledger *l, size_t more)
{
    if (l->text_len + more <= l->text_cap)
        return 0;
    size_t cap = l->text_cap ? l->text_cap : 1024;
    while (cap < l->text_len + more)
        cap *= 2;
    char *p = realloc(l->text, cap);
    if (!p)
        return -1;
    l->text = p;
    l->text_cap = cap;
    return 0;
}

static int text_put(fw_ledger *l, const char *s, size_t n)
{
    if (text_reserve(l, n) < 0)
        return -1;
    memcpy(l->text + l->text_len, s, n);
    l->text_len += n;
    return 0;
}

static int text_string(fw_ledger *l, const char *s, size_t n)
{
    /* Worst case every byte becomes \u00XX. */
    if (text_reserve(l, 6 * n + 2) < 0)
        return -1;
    char *o = l->text + l->text_len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default: {
            static const char hex[] = "0123456789ABCDEF";
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        }
    }
    *o++ = '"';
    l->text_len = (size_t)(o - l->text);
    return 0;
}

static int text_integer(fw_ledger *l, json_int_t v)
{
    char buf[24], *e = buf + sizeof buf, *p = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return text_put(l, p, (size_t)(e - p));
}

typedef struct text_key {
    const char *key;
    size_t len;
    const json_t *value;
} text_key;

/* jansson's order: memcmp of the common prefix, then the shorter first. */
static int text_key_before(const text_key *a, const text_key *b)
{
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    return c < 0 || (c == 0 && a->len < b->len);
}

/* 0 written, 1 not of the fast form (a real, or too many keys), -1 no memory. */
static int text_value(fw_ledger *l, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return text_string(l, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return text_integer(l, json_integer_value(v));
    case JSON_TRUE:
        return text_put(l, "true", 4);
    case JSON_FALSE:
        return text_put(l, "false", 5);
    case JSON_NULL:
        return text_put(l, "null", 4);
    case JSON_ARRAY: {
        if (depth > 32)
            return 1;
        if (text_put(l, "[", 1) < 0)
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i && text_put(l, ",", 1) < 0)
                return -1;
            int rc = text_value(l, json_array_get(v, i), depth + 1);
            if (rc)
                return rc;
        }
        return text_put(l, "]", 1);
    }
    case JSON_OBJECT: {
        enum { MAX_KEYS = 64 };
        text_key keys[MAX_KEYS];
        size_t n = 0;
        if (depth > 32 || json_object_size(v) > MAX_KEYS)
            return 1;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            text_key k = {json_object_iter_key(it), json_object_iter_key_len(it),
                          json_object_iter_value(it)};
            size_t j = n++;
            /* Insertion sort: a body has a few dozen keys at most. */
            while (j > 0 && text_key_before(&k, &keys[j - 1])) {
                keys[j] = keys[j - 1];
                j--;
            }
            keys[j] = k;
        }
        if (text_put(l, "{", 1) < 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (i && text_put(l, ",", 1) < 0)
                return -1;
            if (text_string(l, keys[i].key, keys[i].len) < 0 || text_put(l, ":", 1) < 0)
                return -1;
            int rc = text_value(l, keys[i].value, depth + 1);
            if (rc)
                return rc;
        }
        return text_put(l, "}", 1);
    }
    default:
        return 1; /* a real: jansson's own formatting */
    }
}

/* The body's canonical text, NUL-terminated: valid until the next call (the
 * ledger's buffer) or, when *owned is set, to be freed by the caller.  NULL
 * when out of memory. */
static const char *body_text(fw_ledger *l, const json_t *body, char **owned)
{
    *owned = NULL;
    l->text_len = 0;
    int rc = text_value(l, body, 0);
    if (rc == 0 && text_put(l, "", 1) == 0)
        return l->text;
    if (rc < 0)
        return NULL;
    *owned = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    return *owned;
}

static int record_voucher_event(fw_ledger *l, const fw_event *ev, const char *voucher_no,
                                const char *event, const fw_ledger_result *res, int keep_body)
{
    char *owned = NULL;
    const char *text = keep_body ? body_text(l, ev->body, &owned) : NULL;
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "INSERT INTO voucher_events(event_id, voucher_no, unit_code, event, occurred_at,"
               " outcome, reason, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    bind_str(s, 1, ev->id ? ev->id : "");
    bind_str(s, 2, voucher_no);
    bind_str(s, 3, ev->unit_code ? ev->unit_code : "");
    bind_str(s, 4, event);
    sqlite3_bind_int64(s, 5, ev->occurred_at);
    bind_str(s, 6, fw_ledger_outcome_name(res->outcome));
    bind_str(s, 7, res->reason);
    bind_str(s, 8, text ? text : "{}");
    int rc = fw_ledger_step_done(l, s, "insert_voucher_event");
    free(owned);
    return rc;
}

typedef struct voucher_state {
    char state[16];
    char indicator_id[128];
    int64_t amount;
    char res_state[16]; /* reservation state, "" when none */
} voucher_state;

/* 1 found, 0 unknown, -1 error. */
static int load_voucher(fw_ledger *l, const char *voucher_no, voucher_state *vs)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "SELECT v.state, v.indicator_id, v.amount, coalesce(r.state, '')"
                             " FROM vouchers v LEFT JOIN reservations r USING (voucher_no)"
                             " WHERE v.voucher_no = ?1");
    bind_str(s, 1, voucher_no);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        snprintf(vs->state, sizeof vs->state, "%s", fw_col_text(s, 0));
        snprintf(vs->indicator_id, sizeof vs->indicator_id, "%s", fw_col_text(s, 1));
        vs->amount = sqlite3_column_int64(s, 2);
        snprintf(vs->res_state, sizeof vs->res_state, "%s", fw_col_text(s, 3));
    }
    fw_store_done(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return -1;
}

/* What load_voucher gives, from the voucher cache's record. */
static void state_from_rec(const fw_voucher_rec *r, voucher_state *vs)
{
    snprintf(vs->state, sizeof vs->state, "%s", r->state);
    snprintf(vs->indicator_id, sizeof vs->indicator_id, "%s", r->indicator_id);
    vs->amount = r->amount;
    snprintf(vs->res_state, sizeof vs->res_state, "%s", r->reservation);
}

/* The voucher: from the record when the caller has one (rec: the cache's,
 * *known: 1 found, 0 unknown, -2 not cached: read by SQL into *rec now),
 * else by SQL.  1 found, 0 unknown, -1 error. */
static int voucher_before(fw_ledger *l, const char *no, fw_voucher_rec *rec, int *known,
                          voucher_state *vs)
{
    if (!rec)
        return load_voucher(l, no, vs);
    if (*known == -2 && (*known = fw_ledger_voucher_rec(l, no, rec)) < 0)
        return -1;
    if (*known > 0)
        state_from_rec(rec, vs);
    return *known > 0;
}

/* A `created` for a voucher number already stored: kept, nothing else. */
static int created_again(fw_ledger *l, const fw_event *ev, const char *no, const voucher_state *vs,
                         fw_ledger_result *res)
{
    set_result(res, FW_LEDGER_FLOW_ERROR, "voucher %.64s already created (state %s)", no,
               vs->state);
    return record_voucher_event(l, ev, no, "created", res, 1);
}

/* rec / known: as voucher_before, and on return what the voucher is after
 * the event (*known 1 or 0). */
static int apply_created(fw_ledger *l, const fw_event *ev, const char *no, fw_ledger_result *res,
                         fw_voucher_rec *rec, int *known)
{
    const json_t *b = ev->body;
    char y1[32], y2[32];
    voucher_state vs;
    int64_t amount = 0;
    if (!fw_ledger_jint(b, "amount", &amount) || amount < 0 || amount > FW_MONEY_MAX_FEN) {
        /* A repeated voucher number is the reason even then. */
        int found = voucher_before(l, no, rec, known, &vs);
        if (found < 0)
            return -1;
        if (found)
            return created_again(l, ev, no, &vs, res);
        set_result(res, FW_LEDGER_FLOW_ERROR, "created without a valid amount");
        return record_voucher_event(l, ev, no, "created", res, 1);
    }
    if (rec && *known > 0) { /* the INSERT below would do nothing */
        state_from_rec(rec, &vs);
        return created_again(l, ev, no, &vs, res);
    }
    const char *ind_id = fw_ledger_jstr(b, "indicator_id");
    char *owned;
    const char *text = body_text(l, b, &owned);
    if (!text)
        return -1;
    int64_t year = 0;
    int has_year = fw_ledger_jint(b, "year", &year);
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "INSERT INTO vouchers(voucher_no, unit_code, indicator_id, year, func_class,"
               " econ_class, pay_method, settle_method, payee_type, payee_name, payee_account,"
               " amount, state, spend, created_event, created_at)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,'created',1,?13,?14)"
               " ON CONFLICT(voucher_no) DO NOTHING");
    bind_str(s, 1, no);
    bind_str(s, 2, ev->unit_code ? ev->unit_code : fw_ledger_jstr(b, "unit_code"));
    bind_str(s, 3, ind_id);
    if (has_year)
        sqlite3_bind_int64(s, 4, year);
    bind_str(s, 5, fw_ledger_jstr(b, "func_class"));
    bind_str(s, 6, fw_ledger_jstr(b, "econ_class"));
    bind_str(s, 7, fw_ledger_jstr(b, "pay_method"));
    bind_str(s, 8, fw_ledger_jstr(b, "settle_method"));
    bind_str(s, 9, fw_ledger_jstr(b, "payee_type"));
    bind_str(s, 10, fw_ledger_jstr(b, "payee_name"));
    bind_str(s, 11, fw_ledger_jstr(b, "payee_account"));
    sqlite3_bind_int64(s, 12, amount);
    bind_str(s, 13, ev->id ? ev->id : "");
    sqlite3_bind_int64(s, 14, ev->occurred_at);
    int rc = fw_ledger_step_done(l, s, "insert_voucher");
    int inserted = rc == 0 && sqlite3_changes(fw_store_db(l->st)) > 0;
    int64_t rowid = sqlite3_last_insert_rowid(fw_store_db(l->st));
    if (inserted) {
        s = fw_store_stmt(l->st, "INSERT INTO voucher_bodies(n, body) VALUES (?1, ?2)");
        sqlite3_bind_int64(s, 1, rowid);
        bind_str(s, 2, text);
        rc = fw_ledger_step_done(l, s, "insert_voucher_body");
    }
    free(owned);
    if (rc < 0)
        return -1;
    if (!inserted) {
        /* The number was taken: read what it holds only now (the common
         * case, a new voucher, needs no read before the insert). */
        if (rec && *known == 0) {
            FW_ERROR("ledger.vcache", "voucher=%s reason=\"record said unknown\"", no);
            return -1; /* a bug: the batch is rolled back, the records dropped */
        }
        int found = voucher_before(l, no, rec, known, &vs);
        if (found <= 0)
            return -1;
        return created_again(l, ev, no, &vs, res);
    }
    if (rec) { /* the row just written; the reservation below, if any */
        memset(rec, 0, sizeof *rec);
        rec->rowid = rowid;
        memcpy(rec->state, "created", sizeof "created");
        rec->truncated = snprintf(rec->indicator_id, sizeof rec->indicator_id, "%s", ind_id) >=
                         (int)sizeof rec->indicator_id;
        rec->amount = amount;
        rec->at[FW_VAT_CREATED] = ev->occurred_at;
        rec->has_at = 1u << FW_VAT_CREATED;
        *known = 1;
    }
    fw_vcache_voucher_inserted(l, rowid,
                               ev->unit_code ? ev->unit_code : fw_ledger_jstr(b, "unit_code"),
                               fw_ledger_jstr(b, "payee_account"), ev->occurred_at, amount, no);

    /* Frozen in full even over the balance: it happened upstream. */
    fw_indicator ind;
    int moved = move_reserved(l, ind_id, amount, 0, FW_LEDGER_MAX_BALANCE, &ind);
    if (moved < 0)
        return -1;
    if (!moved) {
        int have = fw_ledger_get_indicator(l, ind_id, &ind);
        if (have < 0)
            return -1;
        if (!have) {
            /* Nothing to reserve on: the voucher is kept, rules flag it. */
            set_result(res, FW_LEDGER_NOOP, "indicator %.64s unknown: nothing frozen", ind_id);
            return record_voucher_event(l, ev, no, "created", res, 0);
        }
        set_result(res, FW_LEDGER_NOOP, "indicator %.64s: frozen total too large", ind_id);
        return record_voucher_event(l, ev, no, "created", res, 0);
    }
    s = fw_store_stmt(l->st, "INSERT INTO reservations(voucher_no, indicator_id, amount, state,"
                             " created_event, created_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)");
    bind_str(s, 1, no);
    bind_str(s, 2, ind_id);
    sqlite3_bind_int64(s, 3, amount);
    bind_str(s, 4, ev->id ? ev->id : "");
    sqlite3_bind_int64(s, 5, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "insert_reservation") < 0)
        return -1;
    if (rec) {
        memcpy(rec->reservation, "pending", sizeof "pending");
        rec->has_reservation = 1;
    }
    cause c = {"freeze", amount, "voucher", no, NULL, NULL, ev->id, ev->occurred_at};
    if (append_entry(l, &ind, 0, amount, 0, &c) < 0)
        return -1;
    if (ind.available < 0)
        set_result(res, FW_LEDGER_OVERDRAWN, "froze %s on %.64s: available %s", yuan(amount, y1),
                   ind_id, yuan(ind.available, y2));
    else
        set_result(res, FW_LEDGER_APPLIED, "froze %s on %.64s", yuan(amount, y1), ind_id);
    return record_voucher_event(l, ev, no, "created", res, 0);
}

/* Is `event` allowed from `state`? */
static int flow_allows(const char *state, const char *event)
{
    if (strcmp(event, "signed") == 0)
        return strcmp(state, "created") == 0;
    if (strcmp(event, "sent") == 0)
        return strcmp(state, "signed") == 0;
    if (strcmp(event, "paid") == 0)
        return strcmp(state, "sent") == 0;
    if (strcmp(event, "cancelled") == 0)
        return strcmp(state, "created") == 0 || strcmp(state, "signed") == 0 ||
               strcmp(state, "sent") == 0;
    if (strcmp(event, "returned") == 0)
        return strcmp(state, "sent") == 0 || strcmp(state, "paid") == 0;
    return 0;
}

/* rowid > 0: the row is found by it (the voucher cache's record holds it),
 * without a descent of the voucher_no index. */
static int set_voucher_state(fw_ledger *l, const char *no, int64_t rowid, const char *event,
                             int64_t at)
{
    /* The time column is chosen from a fixed list, never from input. */
    static const struct {
        const char *event;
        int clears_spend; /* no longer spending: out of the history's sums */
        const char *sql, *sql_rowid;
    } sqls[] = {
        {"signed", 0, "UPDATE vouchers SET state = 'signed', signed_at = ?2 WHERE voucher_no = ?1",
         "UPDATE vouchers SET state = 'signed', signed_at = ?2 WHERE n = ?1"},
        {"sent", 0, "UPDATE vouchers SET state = 'sent', sent_at = ?2 WHERE voucher_no = ?1",
         "UPDATE vouchers SET state = 'sent', sent_at = ?2 WHERE n = ?1"},
        {"paid", 0, "UPDATE vouchers SET state = 'paid', paid_at = ?2 WHERE voucher_no = ?1",
         "UPDATE vouchers SET state = 'paid', paid_at = ?2 WHERE n = ?1"},
        {"cancelled", 1,
         "UPDATE vouchers SET state = 'cancelled', spend = 0, cancelled_at = ?2"
         " WHERE voucher_no = ?1",
         "UPDATE vouchers SET state = 'cancelled', spend = 0, cancelled_at = ?2 WHERE n = ?1"},
        {"returned", 1,
         "UPDATE vouchers SET state = 'returned', spend = 0, returned_at = ?2"
         " WHERE voucher_no = ?1",
         "UPDATE vouchers SET state = 'returned', spend = 0, returned_at = ?2 WHERE n = ?1"},
    };
    for (size_t i = 0; i < sizeof sqls / sizeof sqls[0]; i++) {
        if (strcmp(sqls[i].event, event) != 0)
            continue;
        sqlite3_stmt *s = fw_store_stmt(l->st, rowid > 0 ? sqls[i].sql_rowid : sqls[i].sql);
        if (rowid > 0)
            sqlite3_bind_int64(s, 1, rowid);
        else
            bind_str(s, 1, no);
        sqlite3_bind_int64(s, 2, at);
        if (fw_ledger_step_done(l, s, "voucher_state") != 0)
            return -1;
        if (rowid > 0 && sqlite3_changes(fw_store_db(l->st)) == 1)
            fw_vcache_voucher_state_updated(l, rowid, sqls[i].clears_spend);
        return 0;
    }
    return -1;
}

static int resolve_reservation(fw_ledger *l, const char *no, const char *state, const fw_event *ev)
{
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "UPDATE reservations SET state = ?2, resolved_event = ?3,"
                             " resolved_at = ?4 WHERE voucher_no = ?1");
    bind_str(s, 1, no);
    bind_str(s, 2, state);
    bind_str(s, 3, ev->id ? ev->id : "");
    sqlite3_bind_int64(s, 4, ev->occurred_at);
    return fw_ledger_step_done(l, s, "resolve_reservation");
}

/* signed and sent move no money: the state changes when the flow allows it
 * (signed after created, sent after signed), checked by the UPDATE itself
 * instead of a read before it.  1 changed, 0 not (unknown voucher or another
 * state: the caller reads it for the reason), -1 store error. */
static int advance_without_money(fw_ledger *l, const char *no, const char *event, int64_t at)
{
    const char *sql = strcmp(event, "signed") == 0
                          ? "UPDATE vouchers SET state = 'signed', signed_at = ?2"
                            " WHERE voucher_no = ?1 AND state = 'created'"
                          : "UPDATE vouchers SET state = 'sent', sent_at = ?2 WHERE voucher_no = "
                            "?1 AND state = 'signed'";
    sqlite3_stmt *s = fw_store_stmt(l->st, sql);
    bind_str(s, 1, no);
    sqlite3_bind_int64(s, 2, at);
    if (fw_ledger_step_done(l, s, "voucher_state") < 0)
        return -1;
    return sqlite3_changes(fw_store_db(l->st)) > 0;
}

/* The record's time index of a later event. */
static int event_at_index(const char *event)
{
    static const char *const names[] = {"created", "signed",   "sent",
                                        "paid",    "returned", "cancelled"};
    for (int i = 0; i < 6; i++)
        if (strcmp(names[i], event) == 0)
            return i;
    return -1;
}

/* rec / known: as apply_created. */
static int apply_voucher_later(fw_ledger *l, const fw_event *ev, const char *no, const char *event,
                               fw_ledger_result *res, fw_voucher_rec *rec, int *known)
{
    char y1[32];
    voucher_state vs;
    if (!rec && (strcmp(event, "signed") == 0 || strcmp(event, "sent") == 0)) {
        int moved = advance_without_money(l, no, event, ev->occurred_at);
        if (moved < 0)
            return -1;
        if (moved) {
            set_result(res, FW_LEDGER_NOOP, "%s: state only", event);
            return record_voucher_event(l, ev, no, event, res, 1);
        }
        /* Not allowed (or unknown): the read below gives the reason. */
    }
    int found = voucher_before(l, no, rec, known, &vs);
    if (found < 0)
        return -1;
    if (!found) {
        set_result(res, FW_LEDGER_FLOW_ERROR, "%s for unknown voucher %.64s", event, no);
        return record_voucher_event(l, ev, no, event, res, 1);
    }
    if (!flow_allows(vs.state, event)) {
        set_result(res, FW_LEDGER_FLOW_ERROR, "%s not allowed after %s", event, vs.state);
        return record_voucher_event(l, ev, no, event, res, 1);
    }
    if (set_voucher_state(l, no, rec ? rec->rowid : 0, event, ev->occurred_at) < 0)
        return -1;
    if (rec) {
        if (sqlite3_changes(fw_store_db(l->st)) != 1) {
            FW_ERROR("ledger.vcache", "voucher=%s reason=\"record and row disagree\"", no);
            return -1; /* a bug: the batch is rolled back, the records dropped */
        }
        int i = event_at_index(event);
        snprintf(rec->state, sizeof rec->state, "%s", event);
        rec->at[i] = ev->occurred_at;
        rec->has_at |= 1u << i;
    }

    /* Balance effect, only when the voucher holds a reservation. */
    const char *kind = NULL, *new_state = NULL;
    int64_t d_frozen = 0, d_paid = 0;
    if (strcmp(vs.res_state, "pending") == 0) {
        if (strcmp(event, "paid") == 0) {
            kind = "post", new_state = "posted";
            d_frozen = -vs.amount, d_paid = vs.amount;
        } else if (strcmp(event, "cancelled") == 0 || strcmp(event, "returned") == 0) {
            kind = "void", new_state = "voided";
            d_frozen = -vs.amount;
        }
    } else if (strcmp(vs.res_state, "posted") == 0 && strcmp(event, "returned") == 0) {
        kind = "refund", new_state = "refunded";
        d_paid = -vs.amount;
    }
    if (!kind) {
        set_result(res, FW_LEDGER_NOOP, "%s: state only", event);
        return record_voucher_event(l, ev, no, event, res, 1);
    }
    fw_indicator ind;
    int moved = move_reserved(l, vs.indicator_id, d_frozen, d_paid, 0, &ind);
    if (moved <= 0) {
        if (moved == 0)
            FW_ERROR("ledger.reservation", "voucher=%s reason=\"indicator row missing\"", no);
        return -1;
    }
    if (resolve_reservation(l, no, new_state, ev) < 0)
        return -1;
    if (rec)
        snprintf(rec->reservation, sizeof rec->reservation, "%s", new_state);
    cause c = {kind, vs.amount, "voucher", no, NULL, NULL, ev->id, ev->occurred_at};
    if (append_entry(l, &ind, 0, d_frozen, d_paid, &c) < 0)
        return -1;
    set_result(res,
               ind.available < 0 && strcmp(kind, "post") == 0 ? FW_LEDGER_OVERDRAWN
                                                              : FW_LEDGER_APPLIED,
               "%s %s on %.64s", kind, yuan(vs.amount, y1), vs.indicator_id);
    return record_voucher_event(l, ev, no, event, res, 1);
}

static int apply_voucher_event(fw_ledger *l, const fw_event *ev, const char *no, const char *event,
                               fw_ledger_result *res, fw_voucher_rec *rec, int *known)
{
    if (strcmp(event, "created") == 0)
        return apply_created(l, ev, no, res, rec, known);
    if (strcmp(event, "signed") == 0 || strcmp(event, "sent") == 0 || strcmp(event, "paid") == 0 ||
        strcmp(event, "cancelled") == 0 || strcmp(event, "returned") == 0)
        return apply_voucher_later(l, ev, no, event, res, rec, known);
    set_result(res, FW_LEDGER_FLOW_ERROR, "unknown voucher event \"%.32s\"", event);
    return record_voucher_event(l, ev, no, event, res, 1);
}

/* With a voucher cache on the connection, the voucher's record comes from
 * it (no read by SQL) and goes back to it as the event left it: every path
 * ends with the voucher_events INSERT, the newest row, so the record's last
 * event is the connection's last insert. */
static int apply_voucher(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const char *no = fw_ledger_jstr(ev->body, "voucher_no");
    const char *event = strncmp(ev->type, "voucher.", 8) == 0 ? ev->type + 8 : "";
    fw_vcache *vc = fw_vcache_of(l);
    if (!vc)
        return apply_voucher_event(l, ev, no, event, res, NULL, NULL);
    /* A `created` (usually of a new number) reads nothing when the cache
     * has no record: its INSERT tells whether the number was taken. */
    fw_voucher_rec rec;
    int known = strcmp(event, "created") == 0 ? fw_vcache_voucher_peek(vc, no, &rec)
                                              : fw_vcache_voucher(vc, no, &rec);
    if (known == -1)
        return -1;
    fw_vcache_voucher_begin(vc, no);
    int rc = apply_voucher_event(l, ev, no, event, res, &rec, &known);
    if (rc == 0 && known >= 0) {
        if (known)
            rec.last_event = sqlite3_last_insert_rowid(fw_store_db(l->st));
        fw_vcache_voucher_put(vc, no, known ? &rec : NULL);
    }
    return rc;
}

/* ---- payroll, reimbursements, subsidies ---- */

static int insert_payroll_lines(fw_ledger *l, const fw_event *ev, const char *run_id, int64_t part,
                                const char *period, int64_t *gross, int64_t *net, int64_t *nlines)
{
    const json_t *lines = json_object_get(ev->body, "lines");
    size_t i;
    const json_t *line;
    *gross = *net = *nlines = 0;
    json_array_foreach(lines, i, line)
    {
        int64_t g = 0, n = 0;
        fw_ledger_jint(line, "gross", &g);
        fw_ledger_jint(line, "net", &n);
        sqlite3_stmt *s = fw_store_stmt(
            l->st,
            "INSERT INTO payroll_lines(run_id, part, line_no, unit_code, period, emp_id,"
            " name, id_no, account, gross, net) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
        bind_str(s, 1, run_id);
        sqlite3_bind_int64(s, 2, part);
        sqlite3_bind_int64(s, 3, (int64_t)i);
        bind_str(s, 4, ev->unit_code ? ev->unit_code : "");
        bind_str(s, 5, period);
        bind_str(s, 6, fw_ledger_jstr(line, "emp_id"));
        bind_str(s, 7, fw_ledger_jstr(line, "name"));
        bind_str(s, 8, fw_ledger_jstr(line, "id_no"));
        bind_str(s, 9, fw_ledger_jstr(line, "account"));
        sqlite3_bind_int64(s, 10, g);
        sqlite3_bind_int64(s, 11, n);
        if (fw_ledger_step_done(l, s, "insert_payroll_line") < 0)
            return -1;
        *gross += g;
        *net += n;
        (*nlines)++;
    }
    return 0;
}

static int apply_payroll(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    const char *run_id = fw_ledger_jstr(b, "run_id");
    const char *period = fw_ledger_jstr(b, "period");
    int64_t part = 0, parts = 0;
    char y1[32], y2[32];
    fw_ledger_jint(b, "part", &part);
    fw_ledger_jint(b, "parts", &parts);

    /* The run as stored so far (its first part fixes parts and indicator). */
    int64_t run_parts = 0, seen = 0, run_gross = 0, run_net = 0;
    char ind_id[128] = "";
    int have_run = 0;
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT parts, parts_seen, gross, net, indicator_id"
                                           " FROM payroll_runs WHERE run_id = ?1");
    bind_str(s, 1, run_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        have_run = 1;
        run_parts = sqlite3_column_int64(s, 0);
        seen = sqlite3_column_int64(s, 1);
        run_gross = sqlite3_column_int64(s, 2);
        run_net = sqlite3_column_int64(s, 3);
        snprintf(ind_id, sizeof ind_id, "%s", fw_col_text(s, 4));
    }
    fw_store_done(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -1;
    if (!have_run) {
        run_parts = parts;
        snprintf(ind_id, sizeof ind_id, "%s", fw_ledger_jstr(b, "indicator_id"));
    }
    if (part < 1 || part > run_parts) {
        set_result(res, FW_LEDGER_NOOP, "run %.64s: part %" PRId64 " outside 1..%" PRId64, run_id,
                   part, run_parts);
        return 0;
    }
    if (have_run) {
        s = fw_store_stmt(l->st, "SELECT 1 FROM payroll_parts WHERE run_id = ?1 AND part = ?2");
        bind_str(s, 1, run_id);
        sqlite3_bind_int64(s, 2, part);
        rc = sqlite3_step(s);
        fw_store_done(s);
        if (rc == SQLITE_ROW) {
            set_result(res, FW_LEDGER_NOOP, "run %.64s: part %" PRId64 " already stored", run_id,
                       part);
            return 0;
        }
        if (rc != SQLITE_DONE)
            return -1;
    }
    int64_t gross, net, nlines;
    if (insert_payroll_lines(l, ev, run_id, part, period, &gross, &net, &nlines) < 0)
        return -1;
    s = fw_store_stmt(l->st, "INSERT INTO payroll_parts(run_id, part, event_id, nlines, gross, net,"
                             " occurred_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    bind_str(s, 1, run_id);
    sqlite3_bind_int64(s, 2, part);
    bind_str(s, 3, ev->id ? ev->id : "");
    sqlite3_bind_int64(s, 4, nlines);
    sqlite3_bind_int64(s, 5, gross);
    sqlite3_bind_int64(s, 6, net);
    sqlite3_bind_int64(s, 7, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "insert_payroll_part") < 0)
        return -1;

    seen++;
    run_gross += gross;
    run_net += net;
    int complete = seen == run_parts;
    s = fw_store_stmt(
        l->st, "INSERT INTO payroll_runs(run_id, unit_code, period, pay_date, indicator_id, parts,"
               " parts_seen, gross, net, complete, debited, completed_event, first_at)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,0,?11,?12)"
               " ON CONFLICT(run_id) DO UPDATE SET parts_seen = excluded.parts_seen,"
               " gross = excluded.gross, net = excluded.net, complete = excluded.complete,"
               " completed_event = excluded.completed_event");
    bind_str(s, 1, run_id);
    bind_str(s, 2, ev->unit_code ? ev->unit_code : "");
    bind_str(s, 3, period);
    bind_str(s, 4, fw_ledger_jstr(b, "pay_date"));
    bind_str(s, 5, ind_id);
    sqlite3_bind_int64(s, 6, run_parts);
    sqlite3_bind_int64(s, 7, seen);
    sqlite3_bind_int64(s, 8, run_gross);
    sqlite3_bind_int64(s, 9, run_net);
    sqlite3_bind_int(s, 10, complete);
    bind_str(s, 11, complete ? (ev->id ? ev->id : "") : NULL);
    sqlite3_bind_int64(s, 12, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "upsert_payroll_run") < 0)
        return -1;
    if (!complete) {
        set_result(res, FW_LEDGER_NOOP, "run %.64s: part %" PRId64 " of %" PRId64 " stored", run_id,
                   part, run_parts);
        return 0;
    }

    fw_indicator ind;
    int have = fw_ledger_get_indicator(l, ind_id, &ind);
    if (have < 0)
        return -1;
    if (!have) {
        set_result(res, FW_LEDGER_NOOP, "run %.64s complete; indicator %.48s unknown, not debited",
                   run_id, ind_id);
        return 0;
    }
    if (ind.paid + run_net > FW_LEDGER_MAX_BALANCE || run_net < 0) {
        set_result(res, FW_LEDGER_NOOP, "run %.64s complete; net %s not debitable", run_id,
                   yuan(run_net, y1));
        return 0;
    }
    cause c = {"payroll", run_net, "payroll", run_id, NULL, NULL, ev->id, ev->occurred_at};
    if (change_balances(l, &ind, 0, 0, run_net, &c) < 0)
        return -1;
    s = fw_store_stmt(l->st, "UPDATE payroll_runs SET debited = 1 WHERE run_id = ?1");
    bind_str(s, 1, run_id);
    if (fw_ledger_step_done(l, s, "payroll_debited") < 0)
        return -1;
    set_result(res, ind.available < 0 ? FW_LEDGER_OVERDRAWN : FW_LEDGER_APPLIED,
               "run %.64s paid %s from %.48s (available %s)", run_id, yuan(run_net, y1), ind_id,
               yuan(ind.available, y2));
    return 0;
}

/* paid_at of the body when it parses, else NULL (bound as SQL NULL). */
static int body_paid_at(const json_t *b, int64_t *at)
{
    const char *s = fw_ledger_jstr(b, "paid_at");
    const char *reason;
    return s[0] && fw_time_parse(s, at, &reason) == 0;
}

static int apply_reimburse(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    int64_t amount = 0, paid_at = 0;
    fw_ledger_jint(b, "amount", &amount);
    int has_paid = body_paid_at(b, &paid_at);
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "INSERT OR IGNORE INTO reimbursements(reimb_id, event_id, unit_code, emp_id, name,"
               " amount, card_last4, spent_on, paid_at, summary, occurred_at)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
    bind_str(s, 1, fw_ledger_jstr(b, "reimb_id"));
    bind_str(s, 2, ev->id ? ev->id : "");
    bind_str(s, 3, ev->unit_code ? ev->unit_code : "");
    bind_str(s, 4, fw_ledger_jstr(b, "emp_id"));
    bind_str(s, 5, fw_ledger_jstr(b, "name"));
    sqlite3_bind_int64(s, 6, amount);
    bind_str(s, 7, fw_ledger_jstr(b, "card_last4"));
    bind_str(s, 8, fw_ledger_jstr(b, "spent_on"));
    if (has_paid)
        sqlite3_bind_int64(s, 9, paid_at);
    bind_str(s, 10, fw_ledger_jstr(b, "summary"));
    sqlite3_bind_int64(s, 11, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "insert_reimbursement") < 0)
        return -1;
    int stored = sqlite3_changes(fw_store_db(l->st)) > 0;
    if (stored)
        set_result(res, FW_LEDGER_NOOP, "reimbursement stored");
    else
        set_result(res, FW_LEDGER_NOOP, "reimbursement %.64s already stored",
                   fw_ledger_jstr(b, "reimb_id"));
    return 0;
}

static int apply_subsidy(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    const json_t *b = ev->body;
    int64_t amount = 0, paid_at = 0;
    fw_ledger_jint(b, "amount", &amount);
    int has_paid = body_paid_at(b, &paid_at);
    int y, mo, d, h, mi, sec, wd;
    fw_time_local(has_paid ? paid_at : ev->occurred_at, &y, &mo, &d, &h, &mi, &sec, &wd);
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "INSERT OR IGNORE INTO subsidies(payout_id, event_id, unit_code, emp_id, name,"
               " kind, amount, paid_at, pay_year, pay_month, occurred_at)"
               " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
    bind_str(s, 1, fw_ledger_jstr(b, "payout_id"));
    bind_str(s, 2, ev->id ? ev->id : "");
    bind_str(s, 3, ev->unit_code ? ev->unit_code : "");
    bind_str(s, 4, fw_ledger_jstr(b, "emp_id"));
    bind_str(s, 5, fw_ledger_jstr(b, "name"));
    bind_str(s, 6, fw_ledger_jstr(b, "kind"));
    sqlite3_bind_int64(s, 7, amount);
    if (has_paid)
        sqlite3_bind_int64(s, 8, paid_at);
    sqlite3_bind_int(s, 9, y);
    sqlite3_bind_int(s, 10, mo);
    sqlite3_bind_int64(s, 11, ev->occurred_at);
    if (fw_ledger_step_done(l, s, "insert_subsidy") < 0)
        return -1;
    int stored = sqlite3_changes(fw_store_db(l->st)) > 0;
    if (stored)
        set_result(res, FW_LEDGER_NOOP, "subsidy stored");
    else
        set_result(res, FW_LEDGER_NOOP, "subsidy %.64s already stored",
                   fw_ledger_jstr(b, "payout_id"));
    return 0;
}

int fw_ledger_apply(fw_ledger *l, const fw_event *ev, fw_ledger_result *res)
{
    fw_ledger_result scratch;
    if (!res)
        res = &scratch;
    set_result(res, FW_LEDGER_NOOP, NULL);
    if (!l || !ev || !json_is_object(ev->body))
        return -1;
    switch (ev->kind) {
    case FW_KIND_VOUCHER:
        return apply_voucher(l, ev, res);
    case FW_KIND_INDICATOR:
        return apply_indicator(l, ev, res);
    case FW_KIND_PAYROLL:
        return apply_payroll(l, ev, res);
    case FW_KIND_REIMBURSE:
        return apply_reimburse(l, ev, res);
    case FW_KIND_SUBSIDY:
        return apply_subsidy(l, ev, res);
    default:
        set_result(res, FW_LEDGER_NOOP, "no ledger effect for kind %d", (int)ev->kind);
        return 0;
    }
}
