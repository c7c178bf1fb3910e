/*
 * notify.c - getting alerts to people: the NATS feed, the notification
 * queue (webhook, SMS), grouping, escalation, webhook retries, flush, tick.
 *
 * Everything that leaves the process is first a row written in the same
 * transaction as its cause (alert_feed, alert_notifications), so a rolled
 * back batch notifies nobody and a crash loses nothing:
 * - feed rows are published by fw_alerts_flush after the commit, then
 *   deleted (at least once: a crash between the two publishes again);
 * - SMS notifications are handed to the SMS outbox (its own durable queue)
 *   inside the transaction when the sink is set, else by the next tick;
 * - webhook rows go pending -> sending (committed before the POST starts)
 *   -> sent, or back to pending with backoff, or failed after
 *   alerts.webhook_retries attempts.  Rows found `sending` at start (a crash
 *   mid-POST) are sent again: a webhook receiver must tolerate a duplicate,
 *   which carries the same notification id.
 *
 * Notification kinds: alert (a new alert, sent at once), grouped (held in a
 * group window; summary_n names the summary), summary (one notice for the
 * held alerts, due at the end of the window), escalation, resolved.
 */
#include "alerts/alerts_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"

#define MAX_RCPT 64

/* ---- the NATS feed ---- */

int fw_al_feed_queue(fw_alerts *a, const json_t *alert)
{
    const char *level = json_string_value(json_object_get(alert, "level"));
    const char *unit = json_string_value(json_object_get(alert, "unit_code"));
    char token[64];
    /* A subject token may not be empty or hold '.', '*', '>' or spaces. */
    size_t k = 0;
    for (const char *p = unit ? unit : ""; *p && k < sizeof token - 1; p++)
        token[k++] = (*p == '.' || *p == '*' || *p == '>' || *p <= ' ') ? '_' : *p;
    token[k] = '\0';
    char subject[128];
    snprintf(subject, sizeof subject, "fundwatch.alert.%s.%s", level ? level : "unknown",
             k ? token : "none");
    char *payload = json_dumps(alert, JSON_COMPACT);
    if (!payload)
        return -1;
    sqlite3_stmt *s =
        fw_store_stmt(a->st, "INSERT INTO alert_feed (subject, payload) VALUES (?, ?)");
    fw_bind_text(s, 1, subject);
    fw_bind_text(s, 2, payload);
    int step = sqlite3_step(s);
    fw_store_done(s);
    free(payload);
    return step == SQLITE_DONE ? 0 : -1;
}

/* ---- notification rows ---- */

static const char *channel_name(unsigned ch)
{
    return ch == FW_AL_CH_SMS ? "sms" : "webhook";
}

static int sup_index(const fw_alerts *a, const char *name)
{
    for (int i = 0; i < a->nsups; i++)
        if (strcmp(a->sups[i].name, name) == 0)
            return i;
    return -1;
}

/* The payload of notification row n: the alert JSON plus "notification".
 * *channel, *recipient (borrowed into bufs) and *urgent are filled. */
static json_t *notif_payload(fw_alerts *a, int64_t n, char *channel, size_t chlen, char *recipient,
                             size_t rlen, int *urgent)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT alert_n, kind, recipient, channel, grouped,"
                                           " step FROM alert_notifications WHERE n = ?");
    sqlite3_bind_int64(s, 1, n);
    if (sqlite3_step(s) != SQLITE_ROW) {
        fw_store_done(s);
        return NULL;
    }
    int64_t alert_n = sqlite3_column_int64(s, 0);
    char kind[16];
    snprintf(kind, sizeof kind, "%s", fw_col_text(s, 1));
    snprintf(recipient, rlen, "%s", fw_col_text(s, 2));
    snprintf(channel, chlen, "%s", fw_col_text(s, 3));
    int64_t grouped = sqlite3_column_int64(s, 4);
    int64_t step = sqlite3_column_int64(s, 5);
    fw_store_done(s);

    json_t *alert = fw_al_alert_json(a, alert_n);
    if (!alert)
        return NULL;
    const char *level = json_string_value(json_object_get(alert, "level"));
    *urgent = level && strcmp(level, "red") == 0;
    json_t *note = json_object();
    json_object_set_new(note, "id", json_integer(n));
    json_object_set_new(note, "kind", json_string(kind));
    json_object_set_new(note, "recipient", json_string(recipient));
    if (strcmp(kind, "escalation") == 0)
        json_object_set_new(note, "step", json_integer(step));
    if (strcmp(kind, "summary") == 0) {
        json_t *ids = json_array();
        s = fw_store_stmt(a->st, "SELECT a.alert_id FROM alert_notifications g JOIN alerts a ON"
                                 " a.n = g.alert_n WHERE g.summary_n = ? ORDER BY g.n");
        sqlite3_bind_int64(s, 1, n);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_array_append_new(ids, json_string(fw_col_text(s, 0)));
        fw_store_done(s);
        char text[256], win[32];
        snprintf(text, sizeof text, "单位 %s 规则 %s 在 %s 内另有 %" PRId64 " 条预警",
                 json_string_value(json_object_get(alert, "unit_code")),
                 json_string_value(json_object_get(alert, "rule")),
                 fw_al_duration_text(a->group_window, win, sizeof win), grouped);
        json_object_set_new(note, "count", json_integer(grouped));
        json_object_set_new(note, "alert_ids", ids);
        json_object_set_new(note, "text", json_string(text));
    }
    json_object_set_new(alert, "notification", note);
    return alert;
}

/* The SMS template (etc/templates/alert.txt) shows the alert's message; for
 * notices other than a new alert, say in it what kind of notice this is, so
 * an SMS reader (who has no "notification" member) is not misled. */
static void sms_mark_message(json_t *payload, const char *kind, const json_t *note)
{
    const char *msg = json_string_value(json_object_get(payload, "message"));
    char buf[1024];
    if (strcmp(kind, "summary") == 0)
        snprintf(buf, sizeof buf, "【汇总】%s；最近一条：%s",
                 json_string_value(json_object_get(note, "text")), msg ? msg : "");
    else if (strcmp(kind, "escalation") == 0)
        snprintf(buf, sizeof buf, "【升级第%lld级：超时未确认】%s",
                 (long long)json_integer_value(json_object_get(note, "step")), msg ? msg : "");
    else if (strcmp(kind, "resolved") == 0)
        snprintf(buf, sizeof buf, "【已处理完毕】%s", msg ? msg : "");
    else
        return;
    json_object_set_new(payload, "message", json_string(buf));
}

/* Hand SMS notification n to the outbox (inside the caller's txn).  Leaves
 * it pending when there is no sink (CLI); the daemon's tick delivers it. */
static int deliver_sms(fw_alerts *a, int64_t n, int64_t now)
{
    if (!a->sinks.sms)
        return 0;
    char channel[16], recipient[96];
    int urgent = 0;
    json_t *payload =
        notif_payload(a, n, channel, sizeof channel, recipient, sizeof recipient, &urgent);
    if (!payload)
        return -1;
    int sup = sup_index(a, recipient);
    const char *status = "sent", *error = NULL;
    int rc = 0;
    if (sup < 0 || !a->sups[sup].phone) {
        status = "failed";
        error = "supervisor no longer configured with a phone";
        fw_metric_add(a->m_notify_failures[1], 1);
    } else {
        json_t *note = json_object_get(payload, "notification");
        char out_id[160];
        const char *kind = json_string_value(json_object_get(note, "kind"));
        const char *alert_id = json_string_value(json_object_get(payload, "alert_id"));
        /* Derived from the cause, so the outbox keeps one row per notice. */
        if (strcmp(kind, "escalation") == 0)
            snprintf(out_id, sizeof out_id, "alert:%s:esc%" PRId64 ":%s", alert_id,
                     (int64_t)json_integer_value(json_object_get(note, "step")), recipient);
        else if (strcmp(kind, "alert") == 0)
            snprintf(out_id, sizeof out_id, "alert:%s:%s", alert_id, recipient);
        else if (strcmp(kind, "resolved") == 0)
            snprintf(out_id, sizeof out_id, "alert:%s:resolved:%s", alert_id, recipient);
        else
            snprintf(out_id, sizeof out_id, "alert:summary:%" PRId64 ":%s", n, recipient);
        sms_mark_message(payload, kind, note);
        rc = a->sinks.sms(a->sinks.ud, out_id, a->sups[sup].phone, a->sups[sup].name, payload,
                          urgent);
    }
    json_decref(payload);
    if (rc != 0)
        return -1;
    sqlite3_stmt *s = fw_store_stmt(a->st, "UPDATE alert_notifications SET status = ?,"
                                           " attempts = attempts + 1, sent_at = ?, error = ?"
                                           " WHERE n = ?");
    fw_bind_text(s, 1, status);
    sqlite3_bind_int64(s, 2, now);
    fw_bind_text(s, 3, error);
    sqlite3_bind_int64(s, 4, n);
    int step = sqlite3_step(s);
    fw_store_done(s);
    return step == SQLITE_DONE ? 0 : -1;
}

static int64_t insert_notif(fw_alerts *a, int64_t alert_n, const char *kind, const fw_al_rcpt *r,
                            const char *group_key, int64_t summary_n, int64_t grouped, int step_no,
                            const char *status, int64_t due, int64_t now)
{
    sqlite3_stmt *s = fw_store_stmt(
        a->st, "INSERT INTO alert_notifications (alert_n, kind, recipient, channel, group_key,"
               " summary_n, grouped, step, status, due_at, created_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_bind_int64(s, 1, alert_n);
    fw_bind_text(s, 2, kind);
    fw_bind_text(s, 3, a->sups[r->sup].name);
    fw_bind_text(s, 4, channel_name(r->channel));
    fw_bind_text(s, 5, group_key);
    if (summary_n > 0)
        sqlite3_bind_int64(s, 6, summary_n);
    sqlite3_bind_int64(s, 7, grouped);
    sqlite3_bind_int(s, 8, step_no);
    fw_bind_text(s, 9, status);
    sqlite3_bind_int64(s, 10, due);
    sqlite3_bind_int64(s, 11, now);
    int step = sqlite3_step(s);
    fw_store_done(s);
    return step == SQLITE_DONE ? sqlite3_last_insert_rowid(fw_store_db(a->st)) : -1;
}

/* An immediate notice: a pending row, and the SMS handed over at once. */
static int notify_now(fw_alerts *a, int64_t alert_n, const char *kind, const fw_al_rcpt *r,
                      const char *group_key, int step_no, int64_t now)
{
    int64_t n = insert_notif(a, alert_n, kind, r, group_key, 0, 0, step_no, "pending", now, now);
    if (n < 0)
        return -1;
    return r->channel == FW_AL_CH_SMS ? deliver_sms(a, n, now) : 0;
}

/* A new alert's notice to one recipient, grouped per unit+rule+recipient+
 * channel: the first goes at once and opens the window; the others in the
 * window are held for the summary due at its end. */
static int notify_grouped(fw_alerts *a, int64_t alert_n, const json_t *alert, const fw_al_rcpt *r,
                          int64_t now)
{
    char group_key[256];
    snprintf(group_key, sizeof group_key, "%s|%s|%s|%s",
             json_string_value(json_object_get(alert, "unit_code")),
             json_string_value(json_object_get(alert, "rule")), a->sups[r->sup].name,
             channel_name(r->channel));
    if (a->group_window > 0) {
        int64_t leader_at = 0;
        sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT created_at FROM alert_notifications"
                                               " WHERE group_key = ? AND kind = 'alert'"
                                               " ORDER BY n DESC LIMIT 1");
        fw_bind_text(s, 1, group_key);
        int found = sqlite3_step(s) == SQLITE_ROW;
        if (found)
            leader_at = sqlite3_column_int64(s, 0);
        fw_store_done(s);
        if (found && now < leader_at + a->group_window) {
            int64_t summary = 0;
            s = fw_store_stmt(a->st, "SELECT n FROM alert_notifications WHERE group_key = ?"
                                     " AND kind = 'summary' AND status = 'waiting'"
                                     " ORDER BY n DESC LIMIT 1");
            fw_bind_text(s, 1, group_key);
            if (sqlite3_step(s) == SQLITE_ROW)
                summary = sqlite3_column_int64(s, 0);
            fw_store_done(s);
            if (summary == 0) {
                summary = insert_notif(a, alert_n, "summary", r, group_key, 0, 1, 0, "waiting",
                                       leader_at + a->group_window, now);
                if (summary < 0)
                    return -1;
            } else {
                s = fw_store_stmt(a->st, "UPDATE alert_notifications SET grouped = grouped + 1,"
                                         " alert_n = ? WHERE n = ?");
                sqlite3_bind_int64(s, 1, alert_n);
                sqlite3_bind_int64(s, 2, summary);
                int step = sqlite3_step(s);
                fw_store_done(s);
                if (step != SQLITE_DONE)
                    return -1;
            }
            return insert_notif(a, alert_n, "grouped", r, NULL, summary, 0, 0, "grouped", now,
                                now) < 0
                       ? -1
                       : 0;
        }
    }
    return notify_now(a, alert_n, "alert", r, group_key, 0, now);
}

int fw_al_notify_new(fw_alerts *a, int64_t alert_n, const json_t *alert, int64_t now)
{
    fw_al_rcpt r[MAX_RCPT];
    int nr = fw_al_recipients(a, json_string_value(json_object_get(alert, "unit_code")),
                              json_string_value(json_object_get(alert, "level")), 0, r, MAX_RCPT);
    for (int i = 0; i < nr; i++)
        if (notify_grouped(a, alert_n, alert, &r[i], now) != 0)
            return -1;
    return 0;
}

int fw_al_notify_resolved(fw_alerts *a, int64_t alert_n, const json_t *alert, int64_t now)
{
    const char *unit = json_string_value(json_object_get(alert, "unit_code"));
    const char *level = json_string_value(json_object_get(alert, "level"));
    int steps = (int)json_integer_value(json_object_get(alert, "escalations"));
    fw_al_rcpt all[MAX_RCPT];
    int nall = 0;
    /* Everyone who was (or, silenced, would have been) told of it: the
     * route's recipients and the escalation steps taken. */
    for (int step = 0; step <= steps; step++) {
        fw_al_rcpt r[MAX_RCPT];
        int nr = fw_al_recipients(a, unit, level, step, r, MAX_RCPT);
        for (int i = 0; i < nr; i++) {
            int dup = 0;
            for (int j = 0; j < nall && !dup; j++)
                dup = all[j].sup == r[i].sup && all[j].channel == r[i].channel;
            if (!dup && nall < MAX_RCPT)
                all[nall++] = r[i];
        }
    }
    for (int i = 0; i < nall; i++)
        if (notify_now(a, alert_n, "resolved", &all[i], NULL, 0, now) != 0)
            return -1;
    return 0;
}

/* ---- escalation ---- */

static int escalate_one(fw_alerts *a, int64_t n, int64_t now)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT alert_id, rule, level, unit_code, created_at,"
                                           " escalation_step FROM alerts WHERE n = ?"
                                           " AND status = 'open'");
    sqlite3_bind_int64(s, 1, n);
    if (sqlite3_step(s) != SQLITE_ROW) {
        fw_store_done(s);
        return 0;
    }
    char alert_id[32], rule[128], level[16], unit[64];
    snprintf(alert_id, sizeof alert_id, "%s", fw_col_text(s, 0));
    snprintf(rule, sizeof rule, "%s", fw_col_text(s, 1));
    snprintf(level, sizeof level, "%s", fw_col_text(s, 2));
    snprintf(unit, sizeof unit, "%s", fw_col_text(s, 3));
    int64_t created_at = sqlite3_column_int64(s, 4);
    int step = sqlite3_column_int(s, 5) + 1;
    fw_store_done(s);

    /* Deferred while silenced: looked at again when the silence ends. */
    int64_t silence = fw_al_silence_match(a, rule, unit, now);
    if (silence < 0)
        return -1;
    if (silence > 0) {
        s = fw_store_stmt(a->st, "UPDATE alerts SET escalate_at = max(escalate_at,"
                                 " (SELECT ends_at FROM silences WHERE n = ?)) WHERE n = ?");
        sqlite3_bind_int64(s, 1, silence);
        sqlite3_bind_int64(s, 2, n);
        int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
        fw_store_done(s);
        return rc;
    }

    int rank = fw_level_rank(level);
    int64_t deadline = rank > 0 ? a->deadline[rank] : 0;
    int routed_steps = fw_al_escalation_steps(a, unit, level);
    int nsteps = routed_steps > 0 ? routed_steps : 1;
    fw_al_rcpt r[MAX_RCPT];
    int nr = step <= routed_steps ? fw_al_recipients(a, unit, level, step, r, MAX_RCPT) : 0;

    json_t *names = json_array();
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < nr; i++) {
        const char *name = a->sups[r[i].sup].name;
        int seen = 0;
        for (size_t k = 0; k < json_array_size(names) && !seen; k++)
            seen = strcmp(json_string_value(json_array_get(names, k)), name) == 0;
        if (!seen) {
            json_array_append_new(names, json_string(name));
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", name);
            if (w > 0 && (size_t)w < sizeof list - used)
                used += (size_t)w;
        }
        if (notify_now(a, n, "escalation", &r[i], NULL, step, now) != 0) {
            json_decref(names);
            return -1;
        }
    }
    char note[700], dl[32];
    fw_al_duration_text(deadline, dl, sizeof dl);
    if (json_array_size(names) > 0)
        snprintf(note, sizeof note, "not acknowledged within %s: escalated (step %d) to %s", dl,
                 step, list);
    else
        snprintf(note, sizeof note,
                 "not acknowledged within %s: overdue (step %d), no escalation recipients "
                 "configured",
                 dl, step);

    s = fw_store_stmt(a->st, "INSERT INTO alert_history (alert_n, kind, from_status, to_status,"
                             " by, at, note) VALUES (?, 'escalation', 'open', 'open', 'fundwatch',"
                             " ?, ?)");
    sqlite3_bind_int64(s, 1, n);
    sqlite3_bind_int64(s, 2, now);
    fw_bind_text(s, 3, note);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    fw_store_done(s);

    s = fw_store_stmt(a->st, "UPDATE alerts SET escalation_step = ?, escalate_at = ?,"
                             " updated_at = ? WHERE n = ?");
    sqlite3_bind_int(s, 1, step);
    if (step < nsteps && deadline > 0)
        sqlite3_bind_int64(s, 2, created_at + (int64_t)(step + 1) * deadline);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, n);
    if (rc == 0 && sqlite3_step(s) != SQLITE_DONE)
        rc = -1;
    fw_store_done(s);

    if (rc == 0) {
        json_t *detail = json_pack("{s:i, s:O, s:s, s:s}", "step", step, "to", names, "level",
                                   level, "deadline", dl);
        char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(detail);
        rc = text ? fw_audit_append(a->st, "fundwatch", "alert.escalate", alert_id, text) : -1;
        free(text);
    }
    json_decref(names);
    if (rc != 0)
        return -1;
    if (rank >= 0)
        fw_metric_add(a->m_escalations[rank], 1);
    FW_INFO("alert.escalated", "alert_id=%s level=%s step=%d recipients=%d", alert_id, level, step,
            nr);
    return 1;
}

int fw_al_escalate_due(fw_alerts *a, int64_t now)
{
    int64_t ids[256];
    int n = 0, done = 0;
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n FROM alerts WHERE escalate_at <= ?"
                                           " AND status = 'open' ORDER BY escalate_at LIMIT 256");
    sqlite3_bind_int64(s, 1, now);
    while (n < 256 && sqlite3_step(s) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    for (int i = 0; i < n; i++) {
        int rc = escalate_one(a, ids[i], now);
        if (rc < 0)
            return -1;
        done += rc;
    }
    return done;
}

/* ---- due rows: summaries, SMS left without a sink ---- */

static int release_due(fw_alerts *a, int64_t now)
{
    int64_t ids[256];
    char chans[256][8];
    int n = 0, done = 0;
    sqlite3_stmt *s =
        fw_store_stmt(a->st, "SELECT n, channel FROM alert_notifications WHERE due_at <= ? AND"
                             " (status = 'waiting' OR (status = 'pending' AND channel = 'sms'))"
                             " ORDER BY n LIMIT 256");
    sqlite3_bind_int64(s, 1, now);
    while (n < 256 && sqlite3_step(s) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(s, 0);
        snprintf(chans[n], sizeof chans[n], "%s", fw_col_text(s, 1));
        n++;
    }
    fw_store_done(s);
    for (int i = 0; i < n; i++) {
        int is_sms = strcmp(chans[i], "sms") == 0;
        if (is_sms && !a->sinks.sms)
            continue; /* the daemon delivers it */
        s = fw_store_stmt(a->st, "UPDATE alert_notifications SET status = 'pending', due_at = ?"
                                 " WHERE n = ? AND status = 'waiting'");
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, ids[i]);
        int step = sqlite3_step(s);
        fw_store_done(s);
        if (step != SQLITE_DONE)
            return -1;
        if (is_sms && deliver_sms(a, ids[i], now) != 0)
            return -1;
        done++;
    }
    return done;
}

/* ---- webhooks ---- */

static uint64_t next_random(fw_alerts *a)
{
    uint64_t x = a->rng ? a->rng : 0x2545f4914f6cdd1dull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    a->rng = x;
    return x;
}

typedef struct webhook_job {
    int64_t n;
    char *url;
    char *body;
} webhook_job;

/* Mark due webhook rows `sending` (committed), then start them.  Called
 * after every batch: when nothing is due it only reads. */
static void start_due_webhooks(fw_alerts *a, int64_t now)
{
    if (!a->sinks.webhook)
        return;
    int own = 0;
    if (!a->sending_reset) {
        /* Rows a crash left mid-POST: send them again. */
        if (fw_al_begin(a, &own) != 0)
            return;
        sqlite3_stmt *s = fw_store_stmt(a->st, "UPDATE alert_notifications SET status ="
                                               " 'pending' WHERE status = 'sending'");
        int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
        fw_store_done(s);
        if (fw_al_end(a, own, rc) != 0)
            return;
        a->sending_reset = 1;
    }
    int64_t ids[128];
    int n = 0;
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n FROM alert_notifications WHERE status ="
                                           " 'pending' AND channel = 'webhook' AND due_at <= ?"
                                           " ORDER BY due_at, n LIMIT 128");
    sqlite3_bind_int64(s, 1, now);
    while (n < 128 && sqlite3_step(s) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    if (n == 0 || fw_al_begin(a, &own) != 0)
        return;

    webhook_job jobs[128];
    int njobs = 0;
    for (int i = 0; i < n; i++) {
        char channel[16], recipient[96];
        int urgent = 0;
        json_t *payload =
            notif_payload(a, ids[i], channel, sizeof channel, recipient, sizeof recipient, &urgent);
        int sup = sup_index(a, recipient);
        const char *status = "sending", *error = NULL;
        if (!payload || sup < 0 || !a->sups[sup].webhook) {
            status = "failed";
            error = "supervisor no longer configured with a webhook";
            fw_metric_add(a->m_notify_failures[0], 1);
        } else {
            char *body = json_dumps(payload, JSON_COMPACT);
            if (body) {
                jobs[njobs].n = ids[i];
                jobs[njobs].url = strdup(a->sups[sup].webhook);
                jobs[njobs].body = body;
                njobs++;
            } else {
                status = "pending"; /* out of memory: the next flush tries again */
            }
        }
        json_decref(payload);
        s = fw_store_stmt(a->st, "UPDATE alert_notifications SET status = ?, attempts ="
                                 " attempts + ?, error = coalesce(?, error) WHERE n = ?");
        fw_bind_text(s, 1, status);
        sqlite3_bind_int(s, 2, strcmp(status, "sending") == 0 ? 1 : 0);
        fw_bind_text(s, 3, error);
        sqlite3_bind_int64(s, 4, ids[i]);
        sqlite3_step(s);
        fw_store_done(s);
    }
    if (fw_al_end(a, own, 0) != 0) {
        for (int i = 0; i < njobs; i++) {
            free(jobs[i].url);
            free(jobs[i].body);
        }
        return;
    }
    for (int i = 0; i < njobs; i++) {
        if (a->sinks.webhook(a->sinks.ud, jobs[i].url, jobs[i].body, jobs[i].n) != 0)
            fw_alerts_webhook_done(a, jobs[i].n, 0, "could not start the request");
        free(jobs[i].url);
        free(jobs[i].body);
    }
}

void fw_alerts_webhook_done(fw_alerts *a, int64_t notif_id, int ok, const char *error)
{
    int64_t now = fw_clock_now();
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT attempts, status, recipient FROM"
                                           " alert_notifications WHERE n = ?");
    sqlite3_bind_int64(s, 1, notif_id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        fw_store_done(s);
        FW_WARN("alert.webhook_unknown", "notification=%" PRId64, notif_id);
        return;
    }
    int attempts = sqlite3_column_int(s, 0);
    int sending = strcmp(fw_col_text(s, 1), "sending") == 0;
    char recipient[96];
    snprintf(recipient, sizeof recipient, "%s", fw_col_text(s, 2));
    fw_store_done(s);
    if (!sending)
        return; /* already settled (e.g. a late answer after a restart) */

    const char *status = "sent";
    int64_t due = now;
    if (!ok) {
        if (attempts >= a->webhook_retries) {
            status = "failed";
            fw_metric_add(a->m_notify_failures[0], 1);
        } else {
            int shift = attempts - 1 < 20 ? attempts - 1 : 20;
            int64_t delay = a->webhook_backoff << (shift > 0 ? shift : 0);
            if (delay > 86400)
                delay = 86400;
            /* Jitter spreads retries from many alerts over [delay, 1.5 delay]. */
            int64_t jitter =
                delay / 2 > 0 ? (int64_t)(next_random(a) % (uint64_t)(delay / 2 + 1)) : 0;
            status = "pending";
            due = now + delay + jitter;
        }
    }
    int own = 0;
    if (fw_al_begin(a, &own) != 0)
        return;
    s = fw_store_stmt(a->st, "UPDATE alert_notifications SET status = ?, due_at = ?, error = ?,"
                             " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
                             " WHERE n = ?");
    fw_bind_text(s, 1, status);
    sqlite3_bind_int64(s, 2, due);
    fw_bind_text(s, 3, ok ? NULL : (error ? error : "failed"));
    fw_bind_text(s, 4, status);
    sqlite3_bind_int64(s, 5, now);
    sqlite3_bind_int64(s, 6, notif_id);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    fw_store_done(s);
    fw_al_end(a, own, rc);
    if (!ok) {
        char q[200];
        if (strcmp(status, "failed") == 0)
            FW_WARN("alert.webhook_failed",
                    "notification=%" PRId64 " recipient=%s attempts=%d"
                    " error=%s",
                    notif_id, recipient, attempts, fw_log_quote(error ? error : "", q, sizeof q));
        else
            FW_INFO("alert.webhook_retry",
                    "notification=%" PRId64 " recipient=%s attempts=%d"
                    " retry_in=%" PRId64 " error=%s",
                    notif_id, recipient, attempts, due - now,
                    fw_log_quote(error ? error : "", q, sizeof q));
    }
}

/* ---- flush and tick ---- */

/* Publish the queued NATS rows up to n = upto, then delete them.  A row
 * is published only once its commit is durable (a notice of an alert that
 * a power loss then erases would go out again, with another id, when the
 * message is redelivered): the daemon's flush after a batch passes the
 * bound of the batches known durable; any other flush (upto = INT64_MAX:
 * after a tick or an API action) first makes every commit durable. */
static void publish_feed(fw_alerts *a, int64_t upto)
{
    if (!a->sinks.publish)
        return;
    if (upto == INT64_MAX && fw_store_sync_now(a->st) != 0)
        return;
    for (;;) {
        int64_t last = 0;
        int count = 0;
        sqlite3_stmt *s = fw_store_stmt(
            a->st, "SELECT n, subject, payload FROM alert_feed WHERE n <= ? ORDER BY n LIMIT 256");
        sqlite3_bind_int64(s, 1, upto);
        while (sqlite3_step(s) == SQLITE_ROW) {
            last = sqlite3_column_int64(s, 0);
            a->sinks.publish(a->sinks.ud, fw_col_text(s, 1), fw_col_text(s, 2));
            count++;
        }
        fw_store_done(s);
        if (count == 0)
            return;
        int own = 0;
        if (fw_al_begin(a, &own) != 0)
            return;
        s = fw_store_stmt(a->st, "DELETE FROM alert_feed WHERE n <= ?");
        sqlite3_bind_int64(s, 1, last);
        int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
        fw_store_done(s);
        if (fw_al_end(a, own, rc) != 0 || count < 256)
            return;
    }
}

static void flush_at(fw_alerts *a, int64_t now, int64_t feed_upto)
{
    publish_feed(a, feed_upto);
    start_due_webhooks(a, now);
    if (a->gauges_dirty)
        fw_al_refresh_gauges(a);
}

void fw_alerts_flush(fw_alerts *a)
{
    if (a)
        flush_at(a, fw_clock_now(), INT64_MAX);
}

void fw_alerts_flush_upto(fw_alerts *a, int64_t upto)
{
    if (a)
        flush_at(a, fw_clock_now(), upto);
}

int64_t fw_alerts_feed_last(fw_alerts *a)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT max(n) FROM alert_feed");
    int64_t last = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    fw_store_done(s);
    return last;
}

int fw_alerts_tick(fw_alerts *a, int64_t now)
{
    int own = 0, done = 0, rc;
    if (fw_al_begin(a, &own) != 0)
        return -1;
    rc = fw_al_silences_expire_due(a, now);
    if (rc >= 0) {
        done += rc;
        rc = fw_al_escalate_due(a, now);
    }
    if (rc >= 0) {
        done += rc;
        if (rc > 0)
            a->gauges_dirty = 1;
        rc = release_due(a, now);
    }
    if (rc >= 0)
        done += rc;
    rc = fw_al_end(a, own, rc < 0 ? -1 : 0);
    if (rc < 0) {
        char q[200];
        FW_ERROR("alert.tick_failed", "err=%s",
                 fw_log_quote(sqlite3_errmsg(fw_store_db(a->st)), q, sizeof q));
        return -1;
    }
    if (own)
        flush_at(a, now, INT64_MAX);
    return done;
}
