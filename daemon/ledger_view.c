/*
 * ledger_view.c - the people-facing views of the ledger and its CLI.
 *
 * Views are what the API returns and `fundwatch ledger ... --json` prints:
 * money as yuan strings (fw_money_format), times as RFC 3339 in the
 * business zone.  The trace view answers "where did this payment's money
 * come from" (逆向可溯): voucher -> its reservation -> the indicator -> the
 * documents that funded the indicator -> for a transfer, the source
 * indicator and its own documents, and so on.  The walk is bounded (depth,
 * documents per indicator, indicators in all) and never revisits an
 * indicator, so a cycle of transfers cannot loop; every query it makes is
 * on an index, so the trace costs the same whatever the number of voucher
 * entries on the indicators involved.
 */
#include "daemon/ledger.h"
#include "daemon/ledger_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/money.h"
#include "daemon/timeutil.h"

#define TRACE_MAX_DEPTH 4       /* transfer hops followed back from the voucher's indicator */
#define TRACE_MAX_DOCS 200      /* funding documents listed per indicator (the latest) */
#define TRACE_MAX_INDICATORS 50 /* indicators expanded in one trace */

static json_t *yuan_json(int64_t fen)
{
    char buf[32];
    return json_string(fw_money_format(fen, buf, sizeof buf));
}

static json_t *time_json(int64_t at)
{
    char buf[40];
    return json_string(fw_time_format(at, buf, sizeof buf));
}

static json_t *flags_json(int flags)
{
    json_t *a = json_array();
    for (int bit = 1; bit <= FW_FLAG_UNION; bit <<= 1)
        if ((flags & bit) && fw_flag_name(bit))
            json_array_append_new(a, json_string(fw_flag_name(bit)));
    return a;
}

json_t *fw_ledger_indicator_view(fw_ledger *l, const char *indicator_id)
{
    sqlite3_stmt *s = fw_store_stmt(
        l->st, "SELECT indicator_id, unit_code, year, func_class, econ_class, fund_type,"
               " fund_source, project_code, flags, allocated, frozen, paid, created_doc,"
               " created_at FROM indicators WHERE indicator_id = ?1");
    fw_bind_text(s, 1, indicator_id ? indicator_id : "");
    json_t *v = NULL;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int64_t a = sqlite3_column_int64(s, 9), f = sqlite3_column_int64(s, 10),
                p = sqlite3_column_int64(s, 11);
        v = json_object();
        json_object_set_new(v, "indicator_id", json_string(fw_col_text(s, 0)));
        json_object_set_new(v, "unit_code", json_string(fw_col_text(s, 1)));
        json_object_set_new(v, "year", json_integer(sqlite3_column_int(s, 2)));
        json_object_set_new(v, "func_class", json_string(fw_col_text(s, 3)));
        json_object_set_new(v, "econ_class", json_string(fw_col_text(s, 4)));
        json_object_set_new(v, "fund_type", json_string(fw_col_text(s, 5)));
        json_object_set_new(v, "fund_source", json_string(fw_col_text(s, 6)));
        json_object_set_new(v, "project_code", json_string(fw_col_text(s, 7)));
        json_object_set_new(v, "flags", flags_json(sqlite3_column_int(s, 8)));
        json_object_set_new(v, "allocated", yuan_json(a));
        json_object_set_new(v, "frozen", yuan_json(f));
        json_object_set_new(v, "paid", yuan_json(p));
        json_object_set_new(v, "available", yuan_json(a - f - p));
        json_object_set_new(v, "overdrawn", json_boolean(a - f - p < 0));
        json_object_set_new(v, "created_doc", json_string(fw_col_text(s, 12)));
        json_object_set_new(v, "created_at", time_json(sqlite3_column_int64(s, 13)));
    }
    fw_store_done(s);
    return v;
}

/* One ledger entry row (columns as in ENTRY_COLS) as people read it. */
#define ENTRY_COLS                                                                                 \
    "seq, kind, amount, allocated, frozen, paid, cause_type, cause_id, counterparty, pair_id,"     \
    " event_id, occurred_at"

static json_t *entry_json(sqlite3_stmt *s)
{
    int64_t a = sqlite3_column_int64(s, 3), f = sqlite3_column_int64(s, 4),
            p = sqlite3_column_int64(s, 5);
    json_t *e = json_object();
    json_object_set_new(e, "seq", json_integer(sqlite3_column_int64(s, 0)));
    json_object_set_new(e, "kind", json_string(fw_col_text(s, 1)));
    json_object_set_new(e, "amount", yuan_json(sqlite3_column_int64(s, 2)));
    json_object_set_new(e, "allocated", yuan_json(a));
    json_object_set_new(e, "frozen", yuan_json(f));
    json_object_set_new(e, "paid", yuan_json(p));
    json_object_set_new(e, "available", yuan_json(a - f - p));
    json_object_set_new(
        e, "cause", json_pack("{s:s, s:s}", "type", fw_col_text(s, 6), "id", fw_col_text(s, 7)));
    if (sqlite3_column_type(s, 8) != SQLITE_NULL)
        json_object_set_new(e, "counterparty", json_string(fw_col_text(s, 8)));
    if (sqlite3_column_type(s, 9) != SQLITE_NULL)
        json_object_set_new(e, "pair_id", json_string(fw_col_text(s, 9)));
    json_object_set_new(e, "event_id", json_string(fw_col_text(s, 10)));
    json_object_set_new(e, "occurred_at", time_json(sqlite3_column_int64(s, 11)));
    return e;
}

json_t *fw_ledger_entries_view(fw_ledger *l, const char *indicator_id, int limit)
{
    fw_indicator ind;
    if (fw_ledger_get_indicator(l, indicator_id, &ind) != 1)
        return NULL;
    /* The latest `limit` entries (all when limit <= 0), oldest first. */
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT * FROM (SELECT " ENTRY_COLS
                                           " FROM ledger_entries WHERE indicator_id = ?1"
                                           " ORDER BY seq DESC LIMIT ?2) ORDER BY seq");
    fw_bind_text(s, 1, indicator_id);
    sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1);
    json_t *items = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(items, entry_json(s));
    fw_store_done(s);
    if (rc != SQLITE_DONE) {
        json_decref(items);
        return NULL;
    }
    return json_pack("{s:s, s:o}", "indicator_id", indicator_id, "items", items);
}

static json_t *voucher_events_json(fw_ledger *l, const char *voucher_no)
{
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT event, event_id, occurred_at, outcome, reason"
                                           " FROM voucher_events WHERE voucher_no = ?1 ORDER BY n");
    fw_bind_text(s, 1, voucher_no);
    json_t *a = json_array();
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_t *e = json_pack("{s:s, s:s, s:o, s:s}", "event", fw_col_text(s, 0), "id",
                              fw_col_text(s, 1), "occurred_at",
                              time_json(sqlite3_column_int64(s, 2)), "outcome", fw_col_text(s, 3));
        if (fw_col_text(s, 4)[0])
            json_object_set_new(e, "reason", json_string(fw_col_text(s, 4)));
        json_array_append_new(a, e);
    }
    fw_store_done(s);
    return a;
}

static json_t *reservation_json(fw_ledger *l, const char *voucher_no)
{
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT indicator_id, amount, state, created_event,"
                                           " created_at, resolved_event, resolved_at"
                                           " FROM reservations WHERE voucher_no = ?1");
    fw_bind_text(s, 1, voucher_no);
    json_t *r = NULL;
    if (sqlite3_step(s) == SQLITE_ROW) {
        r = json_pack("{s:s, s:o, s:s, s:s, s:o}", "indicator_id", fw_col_text(s, 0), "amount",
                      yuan_json(sqlite3_column_int64(s, 1)), "state", fw_col_text(s, 2),
                      "created_event", fw_col_text(s, 3), "created_at",
                      time_json(sqlite3_column_int64(s, 4)));
        if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
            json_object_set_new(r, "resolved_event", json_string(fw_col_text(s, 5)));
            json_object_set_new(r, "resolved_at", time_json(sqlite3_column_int64(s, 6)));
        }
    }
    fw_store_done(s);
    return r ? r : json_null();
}

json_t *fw_ledger_voucher_view(fw_ledger *l, const char *voucher_no)
{
    if (!voucher_no)
        return NULL;
    json_t *raw = fw_ledger_voucher_json(l, voucher_no);
    json_t *events = voucher_events_json(l, voucher_no);
    if (!raw) {
        /* Events for a voucher never created are kept; show them. */
        if (json_array_size(events) == 0) {
            json_decref(events);
            return NULL;
        }
        return json_pack("{s:s, s:n, s:b, s:o}", "voucher_no", voucher_no, "state", "known", 0,
                         "events", events);
    }
    json_t *v = json_object();
    const char *key;
    json_t *val;
    json_object_foreach(raw, key, val)
    {
        if (strcmp(key, "events") == 0 || strcmp(key, "reservation") == 0)
            continue;
        if (strcmp(key, "amount") == 0 && json_is_integer(val))
            json_object_set_new(v, key, yuan_json(json_integer_value(val)));
        else if (strlen(key) > 3 && strcmp(key + strlen(key) - 3, "_at") == 0 &&
                 json_is_integer(val))
            json_object_set_new(v, key, time_json(json_integer_value(val)));
        else
            json_object_set(v, key, val);
    }
    json_decref(raw);
    json_object_set_new(v, "known", json_true());
    json_object_set_new(v, "reservation", reservation_json(l, voucher_no));
    json_object_set_new(v, "events", events);
    return v;
}

/* ---- trace ---- */

typedef struct trace_walk {
    fw_ledger *l;
    char **seen;
    int nseen, cap;
} trace_walk;

static int walk_seen(trace_walk *w, const char *id)
{
    for (int i = 0; i < w->nseen; i++)
        if (strcmp(w->seen[i], id) == 0)
            return 1;
    return 0;
}

static int walk_mark(trace_walk *w, const char *id)
{
    if (w->nseen == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        char **n = realloc(w->seen, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        w->seen = n, w->cap = cap;
    }
    w->seen[w->nseen] = strdup(id);
    return w->seen[w->nseen++] ? 0 : -1;
}

static json_t *trace_indicator(trace_walk *w, const char *indicator_id, int depth);

/* The funding documents of one indicator (allocate, adjust, transfers), the
 * latest TRACE_MAX_DOCS of them oldest first; transfers in from another
 * indicator carry that indicator's own trace under "from". */
static json_t *trace_funding(trace_walk *w, const char *indicator_id, int depth)
{
    /* Documents and transfers are read newest first, each straight off the
     * funding index (indicator_id, cause_type, seq), and merged: the cost
     * does not grow with the indicator's voucher entries. */
#define FUNDING_SELECT                                                                             \
    "SELECT * FROM (SELECT seq, kind, amount, cause_id, counterparty, event_id, occurred_at"       \
    " FROM ledger_entries INDEXED BY ledger_entries_funding WHERE indicator_id = ?1"               \
    " AND cause_type = "
    sqlite3_stmt *s = fw_store_stmt(
        w->l->st, "SELECT * FROM (" FUNDING_SELECT "'doc' AND kind <> 'refused'"
                  " ORDER BY seq DESC LIMIT ?2) UNION ALL " FUNDING_SELECT "'transfer'"
                  " ORDER BY seq DESC LIMIT ?2) ORDER BY seq DESC LIMIT ?2) ORDER BY seq");
#undef FUNDING_SELECT
    fw_bind_text(s, 1, indicator_id);
    sqlite3_bind_int(s, 2, TRACE_MAX_DOCS + 1);
    json_t *docs = json_array();
    /* Collect first: expanding a source indicator reuses this statement. */
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_t *d = json_object();
        json_object_set_new(d, "seq", json_integer(sqlite3_column_int64(s, 0)));
        json_object_set_new(d, "kind", json_string(fw_col_text(s, 1)));
        json_object_set_new(d, "doc_no", json_string(fw_col_text(s, 3)));
        json_object_set_new(d, "amount", yuan_json(sqlite3_column_int64(s, 2)));
        json_object_set_new(d, "event_id", json_string(fw_col_text(s, 5)));
        json_object_set_new(d, "occurred_at", time_json(sqlite3_column_int64(s, 6)));
        if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
            const char *other = fw_col_text(s, 4);
            json_object_set_new(d, strcmp(fw_col_text(s, 1), "transfer_in") == 0 ? "from" : "to",
                                json_string(other));
        }
        json_array_append_new(docs, d);
    }
    fw_store_done(s);
    /* One more than the cap was asked for: its presence means truncation. */
    int truncated = json_array_size(docs) > TRACE_MAX_DOCS;
    if (truncated)
        json_array_remove(docs, 0);

    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d)
    {
        const char *kind = json_string_value(json_object_get(d, "kind"));
        json_t *from = json_object_get(d, "from");
        if (!kind || strcmp(kind, "transfer_in") != 0 || !from)
            continue;
        json_t *src;
        const char *src_id = json_string_value(from);
        if (depth >= TRACE_MAX_DEPTH)
            src = json_pack("{s:s, s:b}", "indicator_id", src_id, "depth_limit", 1);
        else if (walk_seen(w, src_id))
            src = json_pack("{s:s, s:b}", "indicator_id", src_id, "see_above", 1);
        else if (w->nseen >= TRACE_MAX_INDICATORS)
            src = json_pack("{s:s, s:b}", "indicator_id", src_id, "limit_reached", 1);
        else
            src = trace_indicator(w, src_id, depth + 1);
        json_object_set_new(d, "source", src ? src : json_null());
    }
    json_t *out = json_object();
    json_object_set_new(out, "documents", docs);
    json_object_set_new(out, "truncated", json_boolean(truncated));
    return out;
}

static json_t *trace_indicator(trace_walk *w, const char *indicator_id, int depth)
{
    if (walk_mark(w, indicator_id) < 0)
        return NULL;
    json_t *v = fw_ledger_indicator_view(w->l, indicator_id);
    if (!v)
        return json_pack("{s:s, s:b}", "indicator_id", indicator_id, "known", 0);
    json_t *f = trace_funding(w, indicator_id, depth);
    json_object_set(v, "funding", json_object_get(f, "documents"));
    json_object_set(v, "funding_truncated", json_object_get(f, "truncated"));
    json_decref(f);
    return v;
}

json_t *fw_ledger_trace_view(fw_ledger *l, const char *voucher_no)
{
    json_t *voucher = fw_ledger_voucher_view(l, voucher_no);
    if (!voucher)
        return NULL;
    json_t *out = json_object();
    json_object_set_new(out, "voucher_no", json_string(voucher_no));
    json_t *summary = json_object();
    static const char *const keys[] = {"voucher_no", "state",      "unit_code",     "indicator_id",
                                       "amount",     "payee_name", "payee_account", "purpose",
                                       "created_at", "known"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *x = json_object_get(voucher, keys[i]);
        if (x)
            json_object_set(summary, keys[i], x);
    }
    json_object_set_new(out, "voucher", summary);
    json_object_set(out, "events", json_object_get(voucher, "events"));
    json_t *res = json_object_get(voucher, "reservation");
    json_object_set(out, "reservation", res ? res : json_null());

    /* The voucher's own entries on its indicator (freeze, post, void, refund). */
    sqlite3_stmt *s = fw_store_stmt(l->st, "SELECT " ENTRY_COLS " FROM ledger_entries"
                                           " WHERE cause_type = 'voucher' AND cause_id = ?1"
                                           " ORDER BY seq");
    fw_bind_text(s, 1, voucher_no);
    json_t *entries = json_array();
    while (sqlite3_step(s) == SQLITE_ROW)
        json_array_append_new(entries, entry_json(s));
    fw_store_done(s);
    json_object_set_new(out, "entries", entries);

    const char *ind_id = json_string_value(json_object_get(voucher, "indicator_id"));
    if (ind_id) {
        trace_walk w = {.l = l};
        json_t *ind = trace_indicator(&w, ind_id, 0);
        json_object_set_new(out, "indicator", ind ? ind : json_null());
        for (int i = 0; i < w.nseen; i++)
            free(w.seen[i]);
        free(w.seen);
    } else {
        json_object_set_new(out, "indicator", json_null());
    }
    json_decref(voucher);
    return out;
}

/* ---- CLI ---- */

static const char usage[] = "usage: fundwatch ledger show INDICATOR_ID [--json] [--limit N]\n"
                            "       fundwatch ledger trace VOUCHER_NO [--json]\n";

static const char *jget(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void print_json(const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2));
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
}

static void print_balances(const json_t *v, const char *indent)
{
    json_t *flags = json_object_get(v, "flags");
    char fl[128] = "";
    size_t i;
    json_t *f;
    json_array_foreach(flags, i, f)
    {
        if (i)
            strncat(fl, ",", sizeof fl - strlen(fl) - 1);
        strncat(fl, json_string_value(f), sizeof fl - strlen(fl) - 1);
    }
    printf("%sIndicator %s  unit %s  year %d\n", indent, jget(v, "indicator_id"),
           jget(v, "unit_code"), (int)json_integer_value(json_object_get(v, "year")));
    printf("%s  func_class %s  econ_class %s  fund_type %s  fund_source %s  project %s"
           "  flags %s\n",
           indent, jget(v, "func_class"), jget(v, "econ_class"), jget(v, "fund_type"),
           jget(v, "fund_source"), jget(v, "project_code")[0] ? jget(v, "project_code") : "-",
           fl[0] ? fl : "-");
    printf("%s  allocated %18s\n", indent, jget(v, "allocated"));
    printf("%s  frozen    %18s\n", indent, jget(v, "frozen"));
    printf("%s  paid      %18s\n", indent, jget(v, "paid"));
    printf("%s  available %18s%s\n", indent, jget(v, "available"),
           json_is_true(json_object_get(v, "overdrawn")) ? "  OVERDRAWN" : "");
}

static void print_entry_row(const json_t *e)
{
    const json_t *c = json_object_get(e, "cause");
    const char *cp = jget(e, "counterparty");
    printf("%8lld  %-25s  %-12s %16s %16s %16s %16s %16s  %s %s%s%s  %s\n",
           (long long)json_integer_value(json_object_get(e, "seq")), jget(e, "occurred_at"),
           jget(e, "kind"), jget(e, "amount"), jget(e, "allocated"), jget(e, "frozen"),
           jget(e, "paid"), jget(e, "available"), jget(c, "type"), jget(c, "id"),
           cp[0] ? " <-> " : "", cp, jget(e, "event_id"));
}

static int cli_show(fw_ledger *l, const char *id, int as_json, int limit)
{
    json_t *v = fw_ledger_indicator_view(l, id);
    if (!v) {
        fprintf(stderr, "ledger show: indicator %s not found\n", id);
        return 1;
    }
    if (as_json) {
        print_json(v);
        json_decref(v);
        return 0;
    }
    print_balances(v, "");
    json_decref(v);

    int64_t total = 0;
    sqlite3_stmt *s =
        fw_store_stmt(l->st, "SELECT count(*) FROM ledger_entries WHERE indicator_id = ?1");
    fw_bind_text(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW)
        total = sqlite3_column_int64(s, 0);
    fw_store_done(s);

    json_t *ev = fw_ledger_entries_view(l, id, limit);
    json_t *items = json_object_get(ev, "items");
    printf("\nEntries (oldest first; %zu of %lld):\n", json_array_size(items), (long long)total);
    printf("%8s  %-25s  %-12s %16s %16s %16s %16s %16s  %s  %s\n", "SEQ", "OCCURRED_AT", "KIND",
           "AMOUNT", "ALLOCATED", "FROZEN", "PAID", "AVAILABLE", "CAUSE", "EVENT");
    size_t i;
    json_t *e;
    json_array_foreach(items, i, e) print_entry_row(e);
    if ((int64_t)json_array_size(items) < total)
        printf("(earlier entries omitted; --limit 0 shows all)\n");
    json_decref(ev);
    return 0;
}

static void print_funding(const json_t *ind, int depth)
{
    char indent[64];
    int n = depth * 4 + 2;
    if (n > (int)sizeof indent - 1)
        n = (int)sizeof indent - 1;
    memset(indent, ' ', (size_t)n);
    indent[n] = '\0';
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(ind, "funding"), i, d)
    {
        const char *from = jget(d, "from"), *to = jget(d, "to");
        printf("%s%-12s %16s  %s  %s%s%s%s%s\n", indent, jget(d, "kind"), jget(d, "amount"),
               jget(d, "occurred_at"), jget(d, "doc_no"), from[0] ? "  from " : "", from,
               to[0] ? "  to " : "", to);
        json_t *src = json_object_get(d, "source");
        if (json_is_object(src)) {
            if (json_object_get(src, "allocated")) {
                char ind2[72];
                snprintf(ind2, sizeof ind2, "%s    ", indent);
                print_balances(src, ind2);
                print_funding(src, depth + 1);
            } else {
                printf("%s    (%s: %s)\n", indent, jget(src, "indicator_id"),
                       json_object_get(src, "see_above")     ? "shown above"
                       : json_object_get(src, "depth_limit") ? "depth limit"
                                                             : "not expanded");
            }
        }
    }
    if (json_is_true(json_object_get(ind, "funding_truncated")))
        printf("%s(earlier documents omitted)\n", indent);
}

static int cli_trace(fw_ledger *l, const char *no, int as_json)
{
    json_t *t = fw_ledger_trace_view(l, no);
    if (!t) {
        fprintf(stderr, "ledger trace: voucher %s not found\n", no);
        return 1;
    }
    if (as_json) {
        print_json(t);
        json_decref(t);
        return 0;
    }
    json_t *v = json_object_get(t, "voucher");
    json_t *state = json_object_get(v, "state");
    printf("Voucher %s  state %s  amount %s  unit %s  created %s\n", no,
           json_is_string(state) ? json_string_value(state) : "(never created)", jget(v, "amount"),
           jget(v, "unit_code"), jget(v, "created_at"));
    if (jget(v, "payee_name")[0])
        printf("  payee %s  purpose %s\n", jget(v, "payee_name"), jget(v, "purpose"));
    printf("\nEvents:\n");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(t, "events"), i, e)
    {
        printf("  %-25s  %-10s %-10s  %s  %s\n", jget(e, "occurred_at"), jget(e, "event"),
               jget(e, "outcome"), jget(e, "id"), jget(e, "reason"));
    }
    json_t *r = json_object_get(t, "reservation");
    if (json_is_object(r))
        printf("\nReservation: %s %s on %s\n", jget(r, "state"), jget(r, "amount"),
               jget(r, "indicator_id"));
    else
        printf("\nReservation: none (nothing frozen)\n");
    if (json_array_size(json_object_get(t, "entries")))
        printf("%8s  %-25s  %-12s %16s %16s %16s %16s %16s  %s  %s\n", "SEQ", "OCCURRED_AT", "KIND",
               "AMOUNT", "ALLOCATED", "FROZEN", "PAID", "AVAILABLE", "CAUSE", "EVENT");
    json_array_foreach(json_object_get(t, "entries"), i, e) print_entry_row(e);
    json_t *ind = json_object_get(t, "indicator");
    if (json_is_object(ind) && json_object_get(ind, "allocated")) {
        printf("\n");
        print_balances(ind, "");
        printf("\nFunded by:\n");
        print_funding(ind, 0);
    } else if (json_is_object(ind)) {
        printf("\nIndicator %s: unknown\n", jget(ind, "indicator_id"));
    }
    json_decref(t);
    return 0;
}

int fw_ledger_cli_main(fw_ledger *l, int argc, char **argv)
{
    if (argc < 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[0], *id = NULL;
    int as_json = 0, limit = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc && strcmp(cmd, "show") == 0) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 0 || n > 100000000) {
                fprintf(stderr, "ledger show: --limit: not a count: %s\n", argv[i]);
                return 2;
            }
            limit = (int)n;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ledger %s: unknown option %s\n%s", cmd, argv[i], usage);
            return 2;
        } else if (!id) {
            id = argv[i];
        } else {
            fprintf(stderr, "ledger %s: unexpected argument %s\n%s", cmd, argv[i], usage);
            return 2;
        }
    }
    if (!id || (strcmp(cmd, "show") != 0 && strcmp(cmd, "trace") != 0)) {
        fputs(usage, stderr);
        return 2;
    }
    return strcmp(cmd, "show") == 0 ? cli_show(l, id, as_json, limit) : cli_trace(l, id, as_json);
}
