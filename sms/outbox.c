/*
 * outbox.c - writing SMS rows (in the caller's transaction), crash
 * reconciliation, and delivery receipts.
 *
 * Rows are only ever inserted with INSERT OR IGNORE on out_id, so the
 * outbox is the idempotency record: a redelivered event, or a payroll run
 * re-sent under a new event id, finds its out_ids taken and queues nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/money.h"
#include "daemon/timeutil.h"
#include "sms/sms_impl.h"

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static int64_t jfen(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* Last four characters (accounts, cards): never more. */
static void tail4(const char *s, char out[8])
{
    size_t n = strlen(s);
    snprintf(out, 8, "%s", n > 4 ? s + n - 4 : s);
}

/* "2024-06" -> "2024年6月"; anything else is copied. */
static void period_text(const char *p, char *out, size_t outlen)
{
    int y, m;
    const char *why;
    if (fw_period_parse(p, &y, &m, &why) == 0)
        snprintf(out, outlen, "%d年%d月", y, m);
    else
        snprintf(out, outlen, "%s", p);
}

/* "2024-06-12" or an RFC 3339 time -> "2024年6月12日" (business zone). */
static void date_text(const char *s, char *out, size_t outlen)
{
    int y, m, d, h, mi, sec, wd;
    int64_t t;
    const char *why;
    if (fw_date_parse(s, &y, &m, &d, &why) == 0) {
        snprintf(out, outlen, "%d年%d月%d日", y, m, d);
    } else if (fw_time_parse(s, &t, &why) == 0) {
        fw_time_local(t, &y, &m, &d, &h, &mi, &sec, &wd);
        snprintf(out, outlen, "%d年%d月%d日", y, m, d);
    } else {
        snprintf(out, outlen, "%s", s);
    }
}

/* "养老保险480.00元、职业年金240.00元" from [{name, amount}]; *total summed. */
static char *items_text(const json_t *arr, int64_t *total, int *count)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    *total = 0;
    *count = 0;
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        char money[48], piece[512];
        int64_t fen = jfen(it, "amount");
        *total += fen;
        (*count)++;
        fw_money_format_grouped(fen, money, sizeof money);
        int n = snprintf(piece, sizeof piece, "%s%s%s元", len ? "、" : "", jstr(it, "name"), money);
        if (n < 0)
            continue;
        if (len + (size_t)n + 1 > cap) {
            while (len + (size_t)n + 1 > cap)
                cap *= 2;
            char *nb = realloc(out, cap);
            if (!nb) {
                free(out);
                return NULL;
            }
            out = nb;
        }
        memcpy(out + len, piece, (size_t)n + 1);
        len += (size_t)n;
    }
    return out;
}

static int insert_row(fw_sms *s, const char *out_id, int kind, const char *phone,
                      const char *content, const char *params, int segments, const char *error,
                      int urgent, const char *unit, const char *event_id)
{
    int64_t now = fw_clock_now();
    int64_t now_ms = fw_clock_now_ms();
    sqlite3_stmt *q = fw_store_stmt(
        s->st, "INSERT OR IGNORE INTO sms_outbox(out_id, kind, phone, content, params, segments,"
               " status, attempts, next_at, expires_at, queued_at, error, urgent, unit_code,"
               " event_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    sqlite3_bind_text(q, 1, out_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, sms_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, phone ? phone : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, content ? content : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, params ? params : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, segments);
    sqlite3_bind_text(q, 7, error ? "failed" : "queued", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, now_ms);
    sqlite3_bind_int64(q, 9, now_ms + s->expiry_ms);
    sqlite3_bind_int64(q, 10, now);
    fw_bind_text(q, 11, error);
    sqlite3_bind_int(q, 12, urgent ? 1 : 0);
    fw_bind_text(q, 13, unit);
    fw_bind_text(q, 14, event_id);
    int rc = sqlite3_step(q);
    fw_store_done(q);
    if (rc != SQLITE_DONE) {
        FW_ERROR("sms.outbox_insert", "out_id=%s err=%d", out_id, rc);
        return -1;
    }
    if (sqlite3_changes(fw_store_db(s->st)) == 1) {
        fw_metric_add(s->m_queued[kind], 1);
        if (error) {
            char mp[32], q1[300];
            FW_WARN("sms.not_queued", "out_id=%s kind=%s phone=%s reason=%s", out_id,
                    sms_kind_name(kind), fw_mask_phone(phone, mp),
                    fw_log_quote(error, q1, sizeof q1));
        }
    }
    return 0;
}

/* Render, check the phone and length, insert.  `fallback(vals)` may make the
 * text shorter once when it is over SMS_MAX_CHARS. */
typedef int (*shorten_fn)(const char **vals, void *ud);

static int queue_one(fw_sms *s, const char *out_id, int kind, const char *phone, const char **vals,
                     int urgent, const char *unit, const char *event_id, shorten_fn shorten,
                     void *ud)
{
    const char *reason = NULL;
    char errbuf[160];
    char *content = sms_render(s->tpl, kind, s->sign, vals);
    if (!content)
        return -1;
    int chars = fw_sms_text_chars(content);
    if (chars > SMS_MAX_CHARS && shorten && shorten(vals, ud) == 0) {
        free(content);
        content = sms_render(s->tpl, kind, s->sign, vals);
        if (!content)
            return -1;
        chars = fw_sms_text_chars(content);
    }
    /* A bad phone, or text that cannot fit, is recorded as failed with the
     * reason: nothing else is raised (contract §6). */
    if (fw_sms_phone_ok(phone, &reason)) {
        reason = NULL;
        if (chars > SMS_MAX_CHARS) {
            snprintf(errbuf, sizeof errbuf, "content: %d characters, over the %d limit", chars,
                     SMS_MAX_CHARS);
            reason = errbuf;
        }
    }
    json_t *pj = sms_params(s->tpl, kind, vals);
    char *params = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    int rc = insert_row(s, out_id, kind, phone, content, params, fw_sms_segments(chars), reason,
                        urgent, unit, event_id);
    free(params);
    free(content);
    return rc;
}

typedef struct payroll_short {
    int var;
    char text[128];
} payroll_short;

static int payroll_shorten(const char **vals, void *ud)
{
    payroll_short *ps = ud;
    vals[ps->var] = ps->text;
    return 0;
}

static int on_payroll(fw_sms *s, const fw_event *ev)
{
    const json_t *b = ev->body;
    const char *run_id = jstr(b, "run_id");
    const char *unit = jstr(b, "unit_name");
    if (!*unit)
        unit = ev->unit_code ? ev->unit_code : "";
    char period[64], date[64];
    period_text(jstr(b, "period"), period, sizeof period);
    date_text(jstr(b, "pay_date"), date, sizeof date);
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(b, "lines"), i, line)
    {
        /* A line whose figures do not add up gets an alert elsewhere and no
         * SMS: we never tell someone a wrong amount. */
        if (!fw_payroll_line_arith_ok(line))
            continue;
        const char *emp = jstr(line, "emp_id");
        char out_id[128], gross[48], net[48], dtotal[48], acct[8];
        snprintf(out_id, sizeof out_id, "pay:%s:%s", run_id, emp);
        fw_money_format_grouped(jfen(line, "gross"), gross, sizeof gross);
        fw_money_format_grouped(jfen(line, "net"), net, sizeof net);
        tail4(jstr(line, "account"), acct);
        int64_t etot, dtot;
        int ecount, dcount;
        char *earn = items_text(json_object_get(line, "earnings"), &etot, &ecount);
        char *ded = items_text(json_object_get(line, "deductions"), &dtot, &dcount);
        if (!earn || !ded) {
            free(earn);
            free(ded);
            return -1;
        }
        fw_money_format_grouped(dtot, dtotal, sizeof dtotal);
        const char *vals[16] = {0};
        vals[sms_var_index(SMS_PAYROLL, "name")] = jstr(line, "name");
        vals[sms_var_index(SMS_PAYROLL, "unit")] = unit;
        vals[sms_var_index(SMS_PAYROLL, "emp_id")] = emp;
        vals[sms_var_index(SMS_PAYROLL, "period")] = period;
        vals[sms_var_index(SMS_PAYROLL, "date")] = date;
        vals[sms_var_index(SMS_PAYROLL, "gross")] = gross;
        vals[sms_var_index(SMS_PAYROLL, "earnings")] = earn;
        vals[sms_var_index(SMS_PAYROLL, "deductions")] = dcount ? ded : "无";
        vals[sms_var_index(SMS_PAYROLL, "deduction_total")] = dtotal;
        vals[sms_var_index(SMS_PAYROLL, "net")] = net;
        vals[sms_var_index(SMS_PAYROLL, "account_tail")] = acct;
        payroll_short ps = {.var = sms_var_index(SMS_PAYROLL, "deductions")};
        snprintf(ps.text, sizeof ps.text, "共%d项合计%s元", dcount, dtotal);
        int rc = queue_one(s, out_id, SMS_PAYROLL, jstr(line, "phone"), vals, 0, ev->unit_code,
                           ev->id, payroll_shorten, &ps);
        free(earn);
        free(ded);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int on_reimburse(fw_sms *s, const fw_event *ev)
{
    const json_t *b = ev->body;
    char out_id[128], amount[48], card[8], date[64], spent[64];
    snprintf(out_id, sizeof out_id, "rmb:%s", jstr(b, "reimb_id"));
    fw_money_format_grouped(jfen(b, "amount"), amount, sizeof amount);
    tail4(jstr(b, "card_last4"), card);
    date_text(*jstr(b, "paid_at") ? jstr(b, "paid_at") : jstr(b, "occurred_at"), date, sizeof date);
    date_text(jstr(b, "spent_on"), spent, sizeof spent);
    const char *vals[16] = {0};
    vals[sms_var_index(SMS_REIMBURSE, "name")] = jstr(b, "name");
    vals[sms_var_index(SMS_REIMBURSE, "unit")] = ev->unit_code;
    vals[sms_var_index(SMS_REIMBURSE, "emp_id")] = jstr(b, "emp_id");
    vals[sms_var_index(SMS_REIMBURSE, "amount")] = amount;
    vals[sms_var_index(SMS_REIMBURSE, "card_tail")] = card;
    vals[sms_var_index(SMS_REIMBURSE, "date")] = date;
    vals[sms_var_index(SMS_REIMBURSE, "spent_on")] = spent;
    vals[sms_var_index(SMS_REIMBURSE, "summary")] = jstr(b, "summary");
    return queue_one(s, out_id, SMS_REIMBURSE, jstr(b, "phone"), vals, 0, ev->unit_code, ev->id,
                     NULL, NULL);
}

static int on_subsidy(fw_sms *s, const fw_event *ev)
{
    const json_t *b = ev->body;
    char out_id[128], amount[48], date[64];
    snprintf(out_id, sizeof out_id, "sub:%s", jstr(b, "payout_id"));
    fw_money_format_grouped(jfen(b, "amount"), amount, sizeof amount);
    date_text(*jstr(b, "paid_at") ? jstr(b, "paid_at") : jstr(b, "occurred_at"), date, sizeof date);
    const char *vals[16] = {0};
    vals[sms_var_index(SMS_SUBSIDY, "name")] = jstr(b, "name");
    vals[sms_var_index(SMS_SUBSIDY, "unit")] = ev->unit_code;
    vals[sms_var_index(SMS_SUBSIDY, "emp_id")] = jstr(b, "emp_id");
    vals[sms_var_index(SMS_SUBSIDY, "kind")] = jstr(b, "kind");
    vals[sms_var_index(SMS_SUBSIDY, "amount")] = amount;
    vals[sms_var_index(SMS_SUBSIDY, "date")] = date;
    return queue_one(s, out_id, SMS_SUBSIDY, jstr(b, "phone"), vals, 0, ev->unit_code, ev->id, NULL,
                     NULL);
}

int fw_sms_on_event(fw_sms *s, const fw_event *ev)
{
    if (!s || !ev || !ev->body)
        return 0;
    switch (ev->kind) {
    case FW_KIND_PAYROLL:
        return on_payroll(s, ev);
    case FW_KIND_REIMBURSE:
        return on_reimburse(s, ev);
    case FW_KIND_SUBSIDY:
        return on_subsidy(s, ev);
    default:
        return 0;
    }
}

/* Cut the alert message (code points) so the whole SMS fits. */
typedef struct alert_short {
    int var;
    int over; /* characters to remove */
    char *buf;
} alert_short;

static int alert_shorten(const char **vals, void *ud)
{
    alert_short *as = ud;
    const char *msg = vals[as->var] ? vals[as->var] : "";
    int chars = fw_sms_text_chars(msg);
    int keep = chars - as->over - 1; /* room for "…" */
    if (keep < 0)
        return -1;
    size_t bytes = 0;
    int seen = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if ((*p & 0xC0) != 0x80) {
            if (seen == keep)
                break;
            seen++;
        }
        bytes++;
    }
    as->buf = malloc(bytes + 4);
    if (!as->buf)
        return -1;
    memcpy(as->buf, msg, bytes);
    memcpy(as->buf + bytes, "…", 4); /* U+2026 is 3 bytes + NUL */
    vals[as->var] = as->buf;
    return 0;
}

static const char *level_text(const char *level)
{
    if (strcmp(level, "red") == 0)
        return "红色";
    if (strcmp(level, "orange") == 0)
        return "橙色";
    if (strcmp(level, "yellow") == 0)
        return "黄色";
    if (strcmp(level, "blue") == 0)
        return "蓝色";
    return level;
}

int fw_sms_enqueue_alert(fw_sms *s, const char *out_id, const char *phone, const char *name,
                         const json_t *alert, int urgent)
{
    if (!s || !out_id || !alert)
        return -1;
    const json_t *subj = json_object_get(alert, "subject");
    char subject[256], date[64];
    snprintf(subject, sizeof subject, "%s%s%s", jstr(subj, "kind"), *jstr(subj, "id") ? " " : "",
             jstr(subj, "id"));
    const char *seen =
        *jstr(alert, "last_seen") ? jstr(alert, "last_seen") : jstr(alert, "first_seen");
    date_text(seen, date, sizeof date);
    const char *vals[16] = {0};
    vals[sms_var_index(SMS_ALERT, "name")] = name ? name : "";
    vals[sms_var_index(SMS_ALERT, "level")] = level_text(jstr(alert, "level"));
    vals[sms_var_index(SMS_ALERT, "rule")] = jstr(alert, "rule");
    vals[sms_var_index(SMS_ALERT, "message")] = jstr(alert, "message");
    vals[sms_var_index(SMS_ALERT, "alert_id")] = jstr(alert, "alert_id");
    vals[sms_var_index(SMS_ALERT, "unit")] = jstr(alert, "unit_code");
    vals[sms_var_index(SMS_ALERT, "subject")] = subject;
    vals[sms_var_index(SMS_ALERT, "date")] = date;
    /* A resolved notice asks nothing of its reader; every other notice (new
     * alert, escalation, summary) asks the supervisor to act. */
    const char *kind = jstr(json_object_get(alert, "notification"), "kind");
    vals[sms_var_index(SMS_ALERT, "action")] =
        strcmp(kind, "resolved") == 0 ? "无需再处理。" : "请及时核实处理。";

    /* How much too long is it?  Rendered once to find out. */
    alert_short as = {.var = sms_var_index(SMS_ALERT, "message")};
    char *probe = sms_render(s->tpl, SMS_ALERT, s->sign, vals);
    if (!probe)
        return -1;
    as.over = fw_sms_text_chars(probe) - SMS_MAX_CHARS;
    free(probe);
    int rc = queue_one(s, out_id, SMS_ALERT, phone, vals, urgent,
                       *jstr(alert, "unit_code") ? jstr(alert, "unit_code") : NULL,
                       jstr(alert, "alert_id"), alert_shorten, &as);
    free(as.buf);
    if (rc == 0 && fw_store_in_txn(s->st) == 0)
        fw_sms_kick(s);
    return rc;
}

int sms_outbox_reconcile(fw_sms *s)
{
    sqlite3 *db = fw_store_db(s->st);
    int n = 0;
    fw_store_begin(s->st);
    if (s->carrier == SMS_CARRIER_ALIYUN) {
        /* SendSms has no idempotency key: resending could text someone
         * twice.  Record the doubt; an SmsReport receipt, if it comes, still
         * moves the row to delivered. */
        sqlite3_stmt *q = fw_store_stmt(
            s->st, "UPDATE sms_outbox SET status = 'failed', error = 'in flight at shutdown or "
                   "crash; outcome unknown, not resent (carrier not idempotent)' "
                   "WHERE status = 'sending'");
        int rc = sqlite3_step(q);
        fw_store_done(q);
        if (rc != SQLITE_DONE)
            goto fail;
    } else {
        /* generic-json dedups by out_id (contract §6): sending again is how
         * we find out; the log carrier has nothing external to duplicate. */
        sqlite3_stmt *q =
            fw_store_stmt(s->st, "UPDATE sms_outbox SET status = 'queued', next_at = ?1 "
                                 "WHERE status = 'sending'");
        sqlite3_bind_int64(q, 1, fw_clock_now_ms());
        int rc = sqlite3_step(q);
        fw_store_done(q);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    n = sqlite3_changes(db);
    if (fw_store_commit(s->st) < 0)
        return -1;
    if (n > 0)
        FW_WARN("sms.reconciled", "rows=%d action=%s", n,
                s->carrier == SMS_CARRIER_ALIYUN ? "failed" : "requeued");
    return n;
fail:
    fw_store_rollback(s->st);
    return -1;
}

json_t *sms_outbox_row_json(sqlite3_stmt *q)
{
    char mp[32], t1[40], t2[40], t3[40];
    json_t *o = json_object();
    json_object_set_new(o, "out_id", json_string(fw_col_text(q, 0)));
    json_object_set_new(o, "kind", json_string(fw_col_text(q, 1)));
    json_object_set_new(o, "phone", json_string(fw_mask_phone(fw_col_text(q, 2), mp)));
    json_object_set_new(o, "status", json_string(fw_col_text(q, 3)));
    json_object_set_new(o, "segments", json_integer(sqlite3_column_int(q, 4)));
    json_object_set_new(o, "attempts", json_integer(sqlite3_column_int(q, 5)));
    json_object_set_new(o, "queued_at",
                        json_string(fw_time_format(sqlite3_column_int64(q, 6), t1, sizeof t1)));
    json_object_set_new(
        o, "sent_at",
        sqlite3_column_type(q, 7) == SQLITE_NULL
            ? json_null()
            : json_string(fw_time_format(sqlite3_column_int64(q, 7), t2, sizeof t2)));
    json_object_set_new(o, "message_id",
                        sqlite3_column_type(q, 8) == SQLITE_NULL ? json_null()
                                                                 : json_string(fw_col_text(q, 8)));
    json_object_set_new(o, "error",
                        sqlite3_column_type(q, 9) == SQLITE_NULL ? json_null()
                                                                 : json_string(fw_col_text(q, 9)));
    json_object_set_new(o, "urgent", json_boolean(sqlite3_column_int(q, 10)));
    json_object_set_new(
        o, "delivered_at",
        sqlite3_column_type(q, 11) == SQLITE_NULL
            ? json_null()
            : json_string(fw_time_format(sqlite3_column_int64(q, 11), t3, sizeof t3)));
    json_object_set_new(
        o, "receipt_error",
        sqlite3_column_type(q, 12) == SQLITE_NULL ? json_null() : json_string(fw_col_text(q, 12)));
    return o;
}

int sms_outbox_apply_receipt(fw_sms *s, const char *out_id, const char *message_id, int delivered,
                             const char *error, const char **new_status)
{
    static char status_buf[16];
    sqlite3_stmt *q;
    if (out_id && *out_id) {
        q = fw_store_stmt(s->st, "SELECT n, status FROM sms_outbox WHERE out_id = ?1");
        sqlite3_bind_text(q, 1, out_id, -1, SQLITE_STATIC);
    } else if (message_id && *message_id) {
        q = fw_store_stmt(s->st, "SELECT n, status FROM sms_outbox WHERE message_id = ?1");
        sqlite3_bind_text(q, 1, message_id, -1, SQLITE_STATIC);
    } else {
        return 0;
    }
    int64_t n = -1;
    if (sqlite3_step(q) == SQLITE_ROW) {
        n = sqlite3_column_int64(q, 0);
        snprintf(status_buf, sizeof status_buf, "%s", fw_col_text(q, 1));
    }
    fw_store_done(q);
    if (n < 0)
        return 0;
    *new_status = status_buf;
    /* Final states stay: a repeated receipt changes nothing, and a
     * contradicting late one does not undo the first. */
    if (strcmp(status_buf, "delivered") == 0 || strcmp(status_buf, "undelivered") == 0)
        return 1;
    const char *to = delivered ? "delivered" : "undelivered";
    /* queued / sending / sent / failed / expired: the receipt proves the
     * carrier took the message, so it moves forward to the receipt's state
     * (and a queued row will not be sent again). */
    q = fw_store_stmt(s->st, "UPDATE sms_outbox SET status = ?2, dlr_at = ?3, dlr_error = ?4,"
                             " message_id = coalesce(message_id, ?5),"
                             " sent_at = coalesce(sent_at, ?3) WHERE n = ?1");
    sqlite3_bind_int64(q, 1, n);
    sqlite3_bind_text(q, 2, to, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, fw_clock_now());
    fw_bind_text(q, 4, error && *error ? error : NULL);
    fw_bind_text(q, 5, message_id && *message_id ? message_id : NULL);
    int rc = sqlite3_step(q);
    fw_store_done(q);
    if (rc != SQLITE_DONE)
        return -1;
    snprintf(status_buf, sizeof status_buf, "%s", to);
    return 1;
}
