/*
 * alerts.c - the alert store: dedup by fingerprint, the lifecycle, JSON
 * views, and the level/status metrics.  See alerts.h for the policy.
 */
#include "alerts/alerts_internal.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"

static const char *const status_names[5] = {"open", "acknowledged", "confirmed", "dismissed",
                                            "resolved"};
static const char *const level_names[4] = {"blue", "yellow", "orange", "red"};

#define ALERT_COLS                                                                                 \
    "n, alert_id, rule, level, status, unit_code, subject_kind, subject_id, message, details,"     \
    " fingerprint, occurrences, first_seen, last_seen, ruleset, shadow, silence_n, created_at,"    \
    " updated_at, acked_at, escalation_step, escalate_at"

static int status_index(const char *s)
{
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, status_names[i]) == 0)
            return i;
    return -1;
}

int fw_al_status_ok(const char *s)
{
    return status_index(s) >= 0;
}

void fw_al_sha256_hex(const char *a, size_t alen, const char *b, size_t blen, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        abort(); /* only on allocation failure inside OpenSSL */
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

const char *fw_al_duration_text(int64_t secs, char *buf, size_t buflen)
{
    if (secs % 86400 == 0 && secs >= 86400)
        snprintf(buf, buflen, "%" PRId64 "d", secs / 86400);
    else if (secs % 3600 == 0 && secs >= 3600)
        snprintf(buf, buflen, "%" PRId64 "h", secs / 3600);
    else if (secs % 60 == 0 && secs >= 60)
        snprintf(buf, buflen, "%" PRId64 "m", secs / 60);
    else
        snprintf(buf, buflen, "%" PRId64 "s", secs);
    return buf;
}

int fw_al_begin(fw_alerts *a, int *own)
{
    *own = 0;
    if (fw_store_in_txn(a->st))
        return 0;
    if (fw_store_begin(a->st) != 0)
        return -1;
    *own = 1;
    return 0;
}

int fw_al_end(fw_alerts *a, int own, int rc)
{
    if (!own)
        return rc;
    if (rc < 0) {
        fw_store_rollback(a->st);
        return rc;
    }
    return fw_store_commit(a->st) == 0 ? rc : -1;
}

/* ---- configuration ---- */

static int64_t cfg_duration(const fw_config *cfg, const char *name)
{
    const char *v = cfg ? fw_config_get(cfg, name) : NULL;
    int64_t secs = 0;
    if (v && fw_al_parse_duration(v, &secs) == 0)
        return secs;
    if (v) /* a form only the config parser knows */
        return fw_config_int(cfg, name);
    for (int i = 0; i < fw_alerts_config_nkeys; i++)
        if (strcmp(fw_alerts_config_keys[i].name, name) == 0 &&
            fw_al_parse_duration(fw_alerts_config_keys[i].def, &secs) == 0)
            return secs;
    return 0;
}

static int64_t cfg_int(const fw_config *cfg, const char *name)
{
    const char *v = cfg ? fw_config_get(cfg, name) : NULL;
    if (!v) {
        for (int i = 0; i < fw_alerts_config_nkeys; i++)
            if (strcmp(fw_alerts_config_keys[i].name, name) == 0)
                v = fw_alerts_config_keys[i].def;
    }
    return v ? strtoll(v, NULL, 10) : 0;
}

static void metrics_init(fw_alerts *a)
{
    char labels[96];
    for (int l = 0; l < 4; l++) {
        for (int s = 0; s < 5; s++) {
            snprintf(labels, sizeof labels, "level=\"%s\",status=\"%s\"", level_names[l],
                     status_names[s]);
            a->m_gauge[l][s] =
                fw_metric_gauge("fundwatch_alerts", "Alerts by level and status", labels);
        }
        snprintf(labels, sizeof labels, "level=\"%s\"", level_names[l]);
        a->m_created[l] =
            fw_metric_counter("fundwatch_alerts_created_total", "Alerts created by level", labels);
        a->m_escalations[l] = fw_metric_counter("fundwatch_alert_escalations_total",
                                                "Alert escalation steps taken, by level", labels);
    }
    a->m_notify_failures[0] = fw_metric_counter("fundwatch_alert_notification_failures_total",
                                                "Alert notifications given up after their retries",
                                                "channel=\"webhook\"");
    a->m_notify_failures[1] =
        fw_metric_counter("fundwatch_alert_notification_failures_total",
                          "Alert notifications given up after their retries", "channel=\"sms\"");
    static const double bounds[] = {60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600, 72 * 3600};
    a->m_ack_seconds = fw_metric_histogram("fundwatch_alert_ack_seconds",
                                           "Time from an alert's creation to its acknowledgement",
                                           "", bounds, (int)(sizeof bounds / sizeof bounds[0]));
}

void fw_al_refresh_gauges(fw_alerts *a)
{
    int64_t counts[4][5] = {{0}};
    sqlite3_stmt *s =
        fw_store_stmt(a->st, "SELECT level, status, count(*) FROM alerts GROUP BY level, status");
    while (sqlite3_step(s) == SQLITE_ROW) {
        int l = fw_level_rank(fw_col_text(s, 0));
        int st = status_index(fw_col_text(s, 1));
        if (l >= 0 && st >= 0)
            counts[l][st] = sqlite3_column_int64(s, 2);
    }
    fw_store_done(s);
    for (int l = 0; l < 4; l++)
        for (int st = 0; st < 5; st++)
            fw_metric_set(a->m_gauge[l][st], (double)counts[l][st]);
    a->gauges_dirty = 0;
}

fw_alerts *fw_alerts_new(fw_store *st, const fw_config *cfg, char *err, int errlen)
{
    fw_alerts *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, (size_t)errlen, "out of memory");
        return NULL;
    }
    a->st = st;
    a->group_window = cfg_duration(cfg, "alerts.group_window");
    a->deadline[0] = 0; /* blue never escalates */
    a->deadline[1] = cfg_duration(cfg, "alerts.escalate_yellow");
    a->deadline[2] = cfg_duration(cfg, "alerts.escalate_orange");
    a->deadline[3] = cfg_duration(cfg, "alerts.escalate_red");
    a->webhook_retries = (int)cfg_int(cfg, "alerts.webhook_retries");
    if (a->webhook_retries < 1)
        a->webhook_retries = 1;
    a->webhook_backoff = cfg_duration(cfg, "alerts.webhook_backoff");
    if (a->webhook_backoff < 1)
        a->webhook_backoff = 1;
    a->rng = (uint64_t)fw_clock_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    if (fw_al_routes_load(a, cfg, err, errlen) != 0) {
        fw_alerts_free(a);
        return NULL;
    }
    metrics_init(a);
    fw_al_refresh_gauges(a);
    return a;
}

void fw_alerts_free(fw_alerts *a)
{
    if (!a)
        return;
    fw_al_routes_free(a);
    free(a);
}

void fw_alerts_set_sinks(fw_alerts *a, const fw_alerts_sinks *s)
{
    if (s)
        a->sinks = *s;
    else
        memset(&a->sinks, 0, sizeof a->sinks);
}

/* ---- JSON views ---- */

static void set_time(json_t *o, const char *key, int64_t t)
{
    char buf[40];
    json_object_set_new(o, key, json_string(fw_time_format(t, buf, sizeof buf)));
}

/* The §4 shape plus shadow, silenced, escalations, acknowledged_at.  `full`
 * adds the wall-clock bookkeeping (created_at, updated_at, escalate_at) for
 * the API and CLI; what is published, sent and printed by replay leaves it
 * out, so that replay output depends on the input alone. */
static json_t *alert_from_row(sqlite3_stmt *s, int full)
{
    json_t *o = json_object();
    json_object_set_new(o, "alert_id", json_string(fw_col_text(s, 1)));
    json_object_set_new(o, "rule", json_string(fw_col_text(s, 2)));
    json_object_set_new(o, "level", json_string(fw_col_text(s, 3)));
    json_object_set_new(o, "status", json_string(fw_col_text(s, 4)));
    json_object_set_new(o, "unit_code", json_string(fw_col_text(s, 5)));
    json_t *subj = json_object();
    json_object_set_new(subj, "kind", json_string(fw_col_text(s, 6)));
    json_object_set_new(subj, "id", json_string(fw_col_text(s, 7)));
    json_object_set_new(o, "subject", subj);
    json_object_set_new(o, "message", json_string(fw_col_text(s, 8)));
    json_t *details = json_loads(fw_col_text(s, 9), JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "details", details ? details : json_object());
    json_object_set_new(o, "fingerprint", json_string(fw_col_text(s, 10)));
    json_object_set_new(o, "occurrences", json_integer(sqlite3_column_int64(s, 11)));
    set_time(o, "first_seen", sqlite3_column_int64(s, 12));
    set_time(o, "last_seen", sqlite3_column_int64(s, 13));
    json_object_set_new(o, "ruleset", json_string(fw_col_text(s, 14)));
    json_object_set_new(o, "shadow", json_boolean(sqlite3_column_int(s, 15)));
    int64_t silence = sqlite3_column_int64(s, 16);
    json_object_set_new(o, "silenced", json_boolean(silence != 0));
    if (silence) {
        char sid[32];
        snprintf(sid, sizeof sid, "SL-%06" PRId64, silence);
        json_object_set_new(o, "silence_id", json_string(sid));
    }
    if (sqlite3_column_type(s, 19) != SQLITE_NULL)
        set_time(o, "acknowledged_at", sqlite3_column_int64(s, 19));
    json_object_set_new(o, "escalations", json_integer(sqlite3_column_int64(s, 20)));
    if (full) {
        set_time(o, "created_at", sqlite3_column_int64(s, 17));
        set_time(o, "updated_at", sqlite3_column_int64(s, 18));
        if (sqlite3_column_type(s, 21) != SQLITE_NULL)
            set_time(o, "escalate_at", sqlite3_column_int64(s, 21));
    }
    return o;
}

int64_t fw_al_alert_n(fw_alerts *a, const char *alert_id)
{
    if (!alert_id)
        return 0;
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n FROM alerts WHERE alert_id = ?");
    fw_bind_text(s, 1, alert_id);
    int step = sqlite3_step(s);
    int64_t n = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : (step == SQLITE_DONE ? 0 : -1);
    fw_store_done(s);
    return n;
}

static json_t *alert_json(fw_alerts *a, int64_t n, int full)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT " ALERT_COLS " FROM alerts WHERE n = ?");
    sqlite3_bind_int64(s, 1, n);
    json_t *o = sqlite3_step(s) == SQLITE_ROW ? alert_from_row(s, full) : NULL;
    fw_store_done(s);
    return o;
}

json_t *fw_al_alert_json(fw_alerts *a, int64_t n)
{
    return alert_json(a, n, 0);
}

json_t *fw_al_history_json(fw_alerts *a, int64_t n)
{
    json_t *arr = json_array();
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT kind, from_status, to_status, by, at, note"
                                           " FROM alert_history WHERE alert_n = ? ORDER BY n");
    sqlite3_bind_int64(s, 1, n);
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_t *h = json_object();
        json_object_set_new(h, "from", json_string(fw_col_text(s, 1)));
        json_object_set_new(h, "to", json_string(fw_col_text(s, 2)));
        json_object_set_new(h, "by", json_string(fw_col_text(s, 3)));
        set_time(h, "at", sqlite3_column_int64(s, 4));
        json_object_set_new(h, "note", json_string(fw_col_text(s, 5)));
        json_object_set_new(h, "kind", json_string(fw_col_text(s, 0)));
        json_array_append_new(arr, h);
    }
    fw_store_done(s);
    return arr;
}

json_t *fw_alerts_get_json(fw_alerts *a, const char *alert_id)
{
    int64_t n = fw_al_alert_n(a, alert_id);
    if (n <= 0)
        return NULL;
    json_t *o = alert_json(a, n, 1);
    if (o)
        json_object_set_new(o, "history", fw_al_history_json(a, n));
    return o;
}

json_t *fw_al_list_json(fw_alerts *a, const char *status, const char *level, const char *unit,
                        const char *rule, int64_t since, int limit)
{
    /* status and level may be comma lists ("open,acknowledged"). */
    sqlite3_stmt *s = fw_store_stmt(
        a->st, "SELECT " ALERT_COLS " FROM alerts"
               " WHERE (?1 IS NULL OR instr(',' || ?1 || ',', ',' || status || ',') > 0)"
               " AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || level || ',') > 0)"
               " AND (?3 IS NULL OR substr(unit_code, 1, length(?3)) = ?3)"
               " AND (?4 IS NULL OR rule = ?4)"
               " AND first_seen >= ?5"
               " ORDER BY n DESC LIMIT ?6");
    fw_bind_text(s, 1, status && *status ? status : NULL);
    fw_bind_text(s, 2, level && *level ? level : NULL);
    fw_bind_text(s, 3, unit && *unit ? unit : NULL);
    fw_bind_text(s, 4, rule && *rule ? rule : NULL);
    sqlite3_bind_int64(s, 5, since > 0 ? since : INT64_MIN);
    sqlite3_bind_int(s, 6, limit > 0 ? limit : 100);
    json_t *items = json_array();
    while (sqlite3_step(s) == SQLITE_ROW)
        json_array_append_new(items, alert_from_row(s, 1));
    fw_store_done(s);
    json_t *o = json_object();
    json_object_set_new(o, "items", items);
    return o;
}

/* ---- raise ---- */

static void fingerprint(const fw_hit *hit, char out[65])
{
    const char *key = hit->key ? hit->key : "";
    size_t len =
        strlen(hit->rule) + strlen(hit->subject_kind) + strlen(hit->subject_id) + strlen(key) + 4;
    char *buf = malloc(len);
    if (!buf)
        abort();
    int n = snprintf(buf, len, "%s|%s|%s|%s", hit->rule, hit->subject_kind, hit->subject_id, key);
    fw_al_sha256_hex(buf, (size_t)n, NULL, 0, out);
    free(buf);
}

static int count_event(fw_alerts *a, const char *fp, const char *event_id, int64_t alert_n)
{
    if (!event_id || !*event_id)
        return 0;
    sqlite3_stmt *s = fw_store_stmt(a->st, "INSERT OR IGNORE INTO alert_hits (fingerprint,"
                                           " event_id, alert_n) VALUES (?, ?, ?)");
    fw_bind_text(s, 1, fp);
    fw_bind_text(s, 2, event_id);
    sqlite3_bind_int64(s, 3, alert_n);
    int step = sqlite3_step(s);
    fw_store_done(s);
    return step == SQLITE_DONE ? 0 : -1;
}

static int audit_json(fw_alerts *a, const char *actor, const char *action, const char *object,
                      json_t *detail)
{
    char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(detail);
    if (!text)
        return -1;
    int rc = fw_audit_append(a->st, actor, action, object, text);
    free(text);
    return rc;
}

static int raise_in_txn(fw_alerts *a, const fw_hit *hit, const char *level, const char *ruleset,
                        json_t **alert_out)
{
    char fp[65];
    int64_t now = fw_clock_now();
    int64_t at = hit->at ? hit->at : now;
    int64_t n = 0;
    const char *unit = hit->unit_code ? hit->unit_code : "";
    int step;
    fingerprint(hit, fp);

    /* Redelivery: this event was already counted for this case. */
    if (hit->event_id && *hit->event_id) {
        sqlite3_stmt *s = fw_store_stmt(
            a->st, "SELECT alert_n FROM alert_hits WHERE fingerprint = ? AND event_id = ?");
        fw_bind_text(s, 1, fp);
        fw_bind_text(s, 2, hit->event_id);
        step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            n = sqlite3_column_int64(s, 0);
        fw_store_done(s);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return -1;
        if (n > 0) {
            if (alert_out)
                *alert_out = fw_al_alert_json(a, n);
            return 0;
        }
    }

    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n FROM alerts WHERE fingerprint = ? AND"
                                           " status IN ('open','acknowledged','confirmed')");
    fw_bind_text(s, 1, fp);
    step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    fw_store_done(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return -1;

    if (n > 0) {
        s = fw_store_stmt(a->st, "UPDATE alerts SET occurrences = occurrences + 1,"
                                 " last_seen = max(last_seen, ?), updated_at = ? WHERE n = ?");
        sqlite3_bind_int64(s, 1, at);
        sqlite3_bind_int64(s, 2, now);
        sqlite3_bind_int64(s, 3, n);
        step = sqlite3_step(s);
        fw_store_done(s);
        if (step != SQLITE_DONE || count_event(a, fp, hit->event_id, n) != 0)
            return -1;
        if (alert_out)
            *alert_out = fw_al_alert_json(a, n);
        return 0;
    }

    /* A new alert. */
    s = fw_store_stmt(a->st, "SELECT coalesce(max(n), 0) + 1 FROM alerts");
    step = sqlite3_step(s);
    n = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    fw_store_done(s);
    if (n <= 0)
        return -1;
    char alert_id[32];
    snprintf(alert_id, sizeof alert_id, "AL-%06" PRId64, n);
    int rank = fw_level_rank(level);
    int64_t silence = hit->shadow ? 0 : fw_al_silence_match(a, hit->rule, unit, now);
    if (silence < 0)
        return -1;
    /* Sorted keys: the engine builds details from Lua tables, whose order
     * varies from run to run; replay output must not. */
    char *details =
        hit->details ? json_dumps(hit->details, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    if (!details)
        return -1;

    s = fw_store_stmt(a->st,
                      "INSERT INTO alerts (n, alert_id, rule, level, status, unit_code,"
                      " subject_kind, subject_id, rule_key, message, details, fingerprint, ruleset,"
                      " shadow, silence_n, event_id, occurrences, first_seen, last_seen,"
                      " created_at, updated_at, escalate_at)"
                      " VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                      " ?14, ?15, 1, ?16, ?16, ?17, ?17, ?18)");
    sqlite3_bind_int64(s, 1, n);
    fw_bind_text(s, 2, alert_id);
    fw_bind_text(s, 3, hit->rule);
    fw_bind_text(s, 4, level);
    fw_bind_text(s, 5, unit);
    fw_bind_text(s, 6, hit->subject_kind);
    fw_bind_text(s, 7, hit->subject_id);
    fw_bind_text(s, 8, hit->key);
    fw_bind_text(s, 9, hit->message ? hit->message : "");
    fw_bind_text(s, 10, details);
    fw_bind_text(s, 11, fp);
    fw_bind_text(s, 12, ruleset ? ruleset : "");
    sqlite3_bind_int(s, 13, hit->shadow ? 1 : 0);
    if (silence > 0)
        sqlite3_bind_int64(s, 14, silence);
    fw_bind_text(s, 15, hit->event_id);
    sqlite3_bind_int64(s, 16, at);
    sqlite3_bind_int64(s, 17, now);
    /* Shadow alerts never notify, so they never escalate either. */
    if (rank > 0 && !hit->shadow && a->deadline[rank] > 0)
        sqlite3_bind_int64(s, 18, now + a->deadline[rank]);
    step = sqlite3_step(s);
    fw_store_done(s);
    free(details);
    if (step != SQLITE_DONE || count_event(a, fp, hit->event_id, n) != 0)
        return -1;

    json_t *alert = fw_al_alert_json(a, n);
    if (!alert)
        return -1;
    json_t *detail =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:b, s:b}", "rule", hit->rule, "level",
                  level, "unit_code", unit, "subject", "kind", hit->subject_kind, "id",
                  hit->subject_id, "fingerprint", fp, "ruleset", ruleset ? ruleset : "", "shadow",
                  hit->shadow != 0, "silenced", silence > 0);
    int rc = audit_json(a, "fundwatch", "alert.create", alert_id, detail);
    if (rc == 0 && !hit->shadow)
        rc = fw_al_feed_queue(a, alert);
    if (rc == 0 && !hit->shadow && silence == 0)
        rc = fw_al_notify_new(a, n, alert, now);
    if (rc != 0) {
        json_decref(alert);
        return -1;
    }
    if (rank >= 0)
        fw_metric_add(a->m_created[rank], 1);
    if (alert_out)
        *alert_out = alert;
    else
        json_decref(alert);
    char qrule[96];
    FW_INFO("alert.created", "alert_id=%s rule=%s level=%s unit=%s shadow=%d silenced=%d", alert_id,
            fw_log_quote(hit->rule, qrule, sizeof qrule), level, unit, hit->shadow != 0,
            silence > 0);
    return 1;
}

int fw_alerts_raise(fw_alerts *a, const fw_hit *hit, const char *ruleset, json_t **alert_out)
{
    if (alert_out)
        *alert_out = NULL;
    if (!a || !hit || !hit->rule || !*hit->rule || !hit->subject_kind || !hit->subject_id)
        return -1;
    const char *level = hit->level;
    if (fw_level_rank(level) < 0) {
        /* The engine validates levels; a bad one must not block the stream. */
        char q[48];
        FW_WARN("alert.bad_level", "rule=%s level=%s stored_as=yellow", hit->rule,
                fw_log_quote(level ? level : "", q, sizeof q));
        level = "yellow";
    }
    int own = 0;
    if (fw_al_begin(a, &own) != 0)
        return -1;
    int rc = raise_in_txn(a, hit, level, ruleset, alert_out);
    if (rc < 0) {
        char q[200];
        FW_ERROR("alert.raise_failed", "rule=%s err=%s", hit->rule,
                 fw_log_quote(sqlite3_errmsg(fw_store_db(a->st)), q, sizeof q));
        if (alert_out && *alert_out) {
            json_decref(*alert_out);
            *alert_out = NULL;
        }
    }
    a->gauges_dirty = 1;
    rc = fw_al_end(a, own, rc);
    if (own && rc >= 0)
        fw_alerts_flush(a);
    return rc;
}

/* ---- lifecycle ---- */

/* Whether the workflow allows from -> to; NULL if so, else why not. */
static const char *transition_refusal(const char *from, const char *to, char *buf, size_t len)
{
    if (strcmp(from, to) == 0) {
        snprintf(buf, len, "the alert is already %s", from);
        return buf;
    }
    if (strcmp(from, "resolved") == 0)
        return "the alert is resolved; resolved is final";
    if (strcmp(to, "open") == 0)
        return "an alert cannot be reopened (a new hit opens a new alert)";
    if (strcmp(to, "acknowledged") == 0) {
        if (strcmp(from, "open") == 0)
            return NULL;
        snprintf(buf, len, "only an open alert can be acknowledged (this one is %s)", from);
        return buf;
    }
    if (strcmp(to, "confirmed") == 0 || strcmp(to, "dismissed") == 0) {
        if (strcmp(from, "acknowledged") == 0)
            return NULL;
        if (strcmp(from, "open") == 0)
            snprintf(buf, len, "acknowledge the alert before it is %s", to);
        else
            snprintf(buf, len, "the alert was already verified as %s", from);
        return buf;
    }
    /* to == resolved */
    if (strcmp(from, "confirmed") == 0 || strcmp(from, "dismissed") == 0)
        return NULL;
    snprintf(buf, len, "an alert that is %s must be confirmed or dismissed before it is resolved",
             from);
    return buf;
}

static int note_empty(const char *note)
{
    if (!note)
        return 1;
    for (; *note; note++)
        if (*note != ' ' && *note != '\t' && *note != '\n' && *note != '\r')
            return 0;
    return 1;
}

int fw_alerts_transition(fw_alerts *a, const char *alert_id, const char *to, const char *by,
                         const char *note, char *err, int errlen)
{
    char why[160];
    if (!alert_id || !*alert_id) {
        snprintf(err, (size_t)errlen, "alert_id: required");
        return FW_ALERTS_BAD;
    }
    if (!to || !fw_al_status_ok(to)) {
        snprintf(err, (size_t)errlen,
                 "to: must be one of acknowledged, confirmed, dismissed, resolved");
        return FW_ALERTS_BAD;
    }
    if (!by || note_empty(by)) {
        snprintf(err, (size_t)errlen, "by: required (who makes the change)");
        return FW_ALERTS_BAD;
    }
    if (!note)
        note = "";

    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n, status, level, created_at, shadow"
                                           " FROM alerts WHERE alert_id = ?");
    fw_bind_text(s, 1, alert_id);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        fw_store_done(s);
        if (step != SQLITE_DONE) {
            snprintf(err, (size_t)errlen, "store: %s", sqlite3_errmsg(fw_store_db(a->st)));
            return FW_ALERTS_ERROR;
        }
        snprintf(err, (size_t)errlen, "alert %s not found", alert_id);
        return FW_ALERTS_NOT_FOUND;
    }
    int64_t n = sqlite3_column_int64(s, 0);
    char from[16], level[16];
    snprintf(from, sizeof from, "%s", fw_col_text(s, 1));
    snprintf(level, sizeof level, "%s", fw_col_text(s, 2));
    int64_t created_at = sqlite3_column_int64(s, 3);
    int shadow = sqlite3_column_int(s, 4);
    fw_store_done(s);

    const char *refusal = transition_refusal(from, to, why, sizeof why);
    if (refusal) {
        snprintf(err, (size_t)errlen, "%s: %s -> %s refused: %s", alert_id, from, to, refusal);
        return FW_ALERTS_REFUSED;
    }
    if (strcmp(to, "dismissed") == 0 && fw_level_rank(level) >= 2 && note_empty(note)) {
        snprintf(err, (size_t)errlen, "note: dismissing an alert of level %s needs the evidence",
                 level);
        return FW_ALERTS_BAD;
    }
    if (strcmp(to, "resolved") == 0 && note_empty(note)) {
        snprintf(err, (size_t)errlen, "note: resolving an alert needs the action taken");
        return FW_ALERTS_BAD;
    }

    int own = 0, rc = -1;
    int64_t now = fw_clock_now();
    json_t *alert = NULL;
    if (fw_al_begin(a, &own) != 0) {
        snprintf(err, (size_t)errlen, "store: cannot begin a transaction");
        return FW_ALERTS_ERROR;
    }
    s = fw_store_stmt(a->st, "UPDATE alerts SET status = ?1, updated_at = ?2, escalate_at = NULL,"
                             " acked_at = CASE WHEN ?1 = 'acknowledged' THEN ?2 ELSE acked_at END"
                             " WHERE n = ?3 AND status = ?4");
    fw_bind_text(s, 1, to);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, n);
    fw_bind_text(s, 4, from);
    step = sqlite3_step(s);
    int changed = sqlite3_changes(fw_store_db(a->st));
    fw_store_done(s);
    if (step != SQLITE_DONE || changed != 1)
        goto cleanup;

    s = fw_store_stmt(a->st, "INSERT INTO alert_history (alert_n, kind, from_status, to_status,"
                             " by, at, note) VALUES (?, 'transition', ?, ?, ?, ?, ?)");
    sqlite3_bind_int64(s, 1, n);
    fw_bind_text(s, 2, from);
    fw_bind_text(s, 3, to);
    fw_bind_text(s, 4, by);
    sqlite3_bind_int64(s, 5, now);
    fw_bind_text(s, 6, note);
    step = sqlite3_step(s);
    fw_store_done(s);
    if (step != SQLITE_DONE)
        goto cleanup;

    json_t *detail =
        json_pack("{s:s, s:s, s:s, s:s}", "from", from, "to", to, "note", note, "level", level);
    if (audit_json(a, by, "alert.transition", alert_id, detail) != 0)
        goto cleanup;
    alert = fw_al_alert_json(a, n);
    if (!alert)
        goto cleanup;
    if (!shadow && fw_al_feed_queue(a, alert) != 0)
        goto cleanup;
    if (!shadow && strcmp(to, "resolved") == 0 && fw_al_notify_resolved(a, n, alert, now) != 0)
        goto cleanup;
    rc = 0;

cleanup:
    json_decref(alert);
    a->gauges_dirty = 1;
    rc = fw_al_end(a, own, rc);
    if (rc != 0) {
        snprintf(err, (size_t)errlen, "store: %s", sqlite3_errmsg(fw_store_db(a->st)));
        return FW_ALERTS_ERROR;
    }
    if (strcmp(to, "acknowledged") == 0)
        fw_metric_observe(a->m_ack_seconds, (double)(now - created_at));
    char qby[96];
    FW_INFO("alert.transition", "alert_id=%s from=%s to=%s by=%s", alert_id, from, to,
            fw_log_quote(by, qby, sizeof qby));
    if (own)
        fw_alerts_flush(a);
    return FW_ALERTS_OK;
}
