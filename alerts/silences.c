/*
 * silences.c - silences: rule (or *) x unit prefix (or *) x [from, until).
 *
 * A silence is active while starts_at <= now < ends_at and nobody expired
 * it.  It suppresses the webhook/SMS notice of alerts created while it is
 * active and defers their escalation; storage and the NATS feed are never
 * silenced, nor the resolved notice (see alerts.h).  When ends_at passes,
 * fw_alerts_tick records the expiry (expired_by "fundwatch") in the audit
 * log; expiring one by hand ends it at once.  Silences are never deleted.
 */
#include "alerts/alerts_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"

#define SILENCE_COLS                                                                               \
    "n, rule, unit, starts_at, ends_at, author, reason, created_at, expired_at, expired_by"

int64_t fw_al_silence_n(const char *silence_id)
{
    if (!silence_id)
        return 0;
    const char *p = silence_id;
    if (strncmp(p, "SL-", 3) == 0)
        p += 3;
    if (!*p)
        return 0;
    int64_t n = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p) || n > INT64_MAX / 10 - 10)
            return 0;
        n = n * 10 + (*p - '0');
    }
    return n;
}

int64_t fw_al_silence_match(fw_alerts *a, const char *rule, const char *unit, int64_t now)
{
    sqlite3_stmt *s = fw_store_stmt(
        a->st, "SELECT n FROM silences WHERE expired_at IS NULL AND starts_at <= ?1"
               " AND ends_at > ?1 AND (rule = '*' OR rule = ?2)"
               " AND (unit = '*' OR substr(?3, 1, length(unit)) = unit) ORDER BY n LIMIT 1");
    sqlite3_bind_int64(s, 1, now);
    fw_bind_text(s, 2, rule);
    fw_bind_text(s, 3, unit ? unit : "");
    int step = sqlite3_step(s);
    int64_t n = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : (step == SQLITE_DONE ? 0 : -1);
    fw_store_done(s);
    return n;
}

static json_t *silence_from_row(sqlite3_stmt *s, int64_t now)
{
    char buf[40], sid[32];
    json_t *o = json_object();
    int64_t n = sqlite3_column_int64(s, 0);
    int64_t starts = sqlite3_column_int64(s, 3), ends = sqlite3_column_int64(s, 4);
    int expired = sqlite3_column_type(s, 8) != SQLITE_NULL || ends <= now;
    snprintf(sid, sizeof sid, "SL-%06" PRId64, n);
    json_object_set_new(o, "silence_id", json_string(sid));
    json_object_set_new(o, "rule", json_string(fw_col_text(s, 1)));
    json_object_set_new(o, "unit", json_string(fw_col_text(s, 2)));
    json_object_set_new(o, "starts_at", json_string(fw_time_format(starts, buf, sizeof buf)));
    json_object_set_new(o, "ends_at", json_string(fw_time_format(ends, buf, sizeof buf)));
    json_object_set_new(o, "author", json_string(fw_col_text(s, 5)));
    json_object_set_new(o, "reason", json_string(fw_col_text(s, 6)));
    json_object_set_new(o, "created_at",
                        json_string(fw_time_format(sqlite3_column_int64(s, 7), buf, sizeof buf)));
    json_object_set_new(o, "status",
                        json_string(expired        ? "expired"
                                    : starts > now ? "pending"
                                                   : "active"));
    if (sqlite3_column_type(s, 8) != SQLITE_NULL) {
        json_object_set_new(
            o, "expired_at",
            json_string(fw_time_format(sqlite3_column_int64(s, 8), buf, sizeof buf)));
        json_object_set_new(o, "expired_by", json_string(fw_col_text(s, 9)));
    }
    return o;
}

json_t *fw_al_silence_json(fw_alerts *a, int64_t n)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT " SILENCE_COLS " FROM silences WHERE n = ?");
    sqlite3_bind_int64(s, 1, n);
    json_t *o = sqlite3_step(s) == SQLITE_ROW ? silence_from_row(s, fw_clock_now()) : NULL;
    fw_store_done(s);
    return o;
}

json_t *fw_al_silences_list_json(fw_alerts *a, const char *status, int64_t now, int limit)
{
    int want = 0; /* 0 all, 1 active, 2 pending, 3 expired */
    if (status && strcmp(status, "active") == 0)
        want = 1;
    else if (status && strcmp(status, "pending") == 0)
        want = 2;
    else if (status && strcmp(status, "expired") == 0)
        want = 3;
    sqlite3_stmt *s = fw_store_stmt(
        a->st, "SELECT " SILENCE_COLS " FROM silences WHERE"
               " (?1 = 0)"
               " OR (?1 = 1 AND expired_at IS NULL AND starts_at <= ?2 AND ends_at > ?2)"
               " OR (?1 = 2 AND expired_at IS NULL AND starts_at > ?2 AND ends_at > ?2)"
               " OR (?1 = 3 AND (expired_at IS NOT NULL OR ends_at <= ?2))"
               " ORDER BY n DESC LIMIT ?3");
    sqlite3_bind_int(s, 1, want);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : 100);
    json_t *items = json_array();
    while (sqlite3_step(s) == SQLITE_ROW)
        json_array_append_new(items, silence_from_row(s, now));
    fw_store_done(s);
    json_t *o = json_object();
    json_object_set_new(o, "items", items);
    return o;
}

static int rule_pattern_ok(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int unit_pattern_ok(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int blank(const char *s)
{
    if (!s)
        return 1;
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

int fw_alerts_silence_add(fw_alerts *a, const char *rule, const char *unit, int64_t from,
                          int64_t until, const char *author, const char *reason, char *id_out,
                          char *err, int errlen)
{
    int64_t now = fw_clock_now();
    if (!rule || !*rule)
        rule = "*";
    if (!unit || !*unit)
        unit = "*";
    if (!rule_pattern_ok(rule)) {
        snprintf(err, (size_t)errlen, "rule: must be a rule id ([a-z0-9_]+) or *");
        return FW_ALERTS_BAD;
    }
    if (!unit_pattern_ok(unit)) {
        snprintf(err, (size_t)errlen, "unit: must be a unit code prefix or *");
        return FW_ALERTS_BAD;
    }
    if (until <= from) {
        snprintf(err, (size_t)errlen, "until: must be after from");
        return FW_ALERTS_BAD;
    }
    if (until <= now) {
        snprintf(err, (size_t)errlen, "until: must be in the future");
        return FW_ALERTS_BAD;
    }
    if (blank(author)) {
        snprintf(err, (size_t)errlen, "by: required (the author of the silence)");
        return FW_ALERTS_BAD;
    }
    if (blank(reason)) {
        snprintf(err, (size_t)errlen, "reason: required");
        return FW_ALERTS_BAD;
    }
    int own = 0, rc = -1;
    if (fw_al_begin(a, &own) != 0) {
        snprintf(err, (size_t)errlen, "store: cannot begin a transaction");
        return FW_ALERTS_ERROR;
    }
    sqlite3_stmt *s = fw_store_stmt(a->st, "INSERT INTO silences (rule, unit, starts_at, ends_at,"
                                           " author, reason, created_at) VALUES (?, ?, ?, ?, ?, ?,"
                                           " ?)");
    fw_bind_text(s, 1, rule);
    fw_bind_text(s, 2, unit);
    sqlite3_bind_int64(s, 3, from);
    sqlite3_bind_int64(s, 4, until);
    fw_bind_text(s, 5, author);
    fw_bind_text(s, 6, reason);
    sqlite3_bind_int64(s, 7, now);
    int step = sqlite3_step(s);
    fw_store_done(s);
    if (step == SQLITE_DONE) {
        int64_t n = sqlite3_last_insert_rowid(fw_store_db(a->st));
        snprintf(id_out, 16, "SL-%06" PRId64, n);
        char fbuf[40], ubuf[40];
        json_t *detail = json_pack("{s:s, s:s, s:s, s:s, s:s}", "rule", rule, "unit", unit, "from",
                                   fw_time_format(from, fbuf, sizeof fbuf), "until",
                                   fw_time_format(until, ubuf, sizeof ubuf), "reason", reason);
        char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(detail);
        rc = text ? fw_audit_append(a->st, author, "silence.add", id_out, text) : -1;
        free(text);
    }
    rc = fw_al_end(a, own, rc);
    if (rc != 0) {
        snprintf(err, (size_t)errlen, "store: %s", sqlite3_errmsg(fw_store_db(a->st)));
        return FW_ALERTS_ERROR;
    }
    char qa[64];
    FW_INFO("silence.added", "silence_id=%s rule=%s unit=%s by=%s", id_out, rule, unit,
            fw_log_quote(author, qa, sizeof qa));
    return FW_ALERTS_OK;
}

/* Mark silence n expired at `at` by `by`, audited.  In a transaction. */
static int silence_mark_expired(fw_alerts *a, int64_t n, int64_t at, const char *by,
                                const char *why)
{
    sqlite3_stmt *s = fw_store_stmt(a->st, "UPDATE silences SET expired_at = ?, expired_by = ?"
                                           " WHERE n = ? AND expired_at IS NULL");
    sqlite3_bind_int64(s, 1, at);
    fw_bind_text(s, 2, by);
    sqlite3_bind_int64(s, 3, n);
    int step = sqlite3_step(s);
    fw_store_done(s);
    if (step != SQLITE_DONE)
        return -1;
    char sid[32];
    snprintf(sid, sizeof sid, "SL-%06" PRId64, n);
    json_t *detail = json_pack("{s:s}", "why", why);
    char *text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(detail);
    int rc = text ? fw_audit_append(a->st, by, "silence.expire", sid, text) : -1;
    free(text);
    return rc;
}

int fw_alerts_silence_expire(fw_alerts *a, const char *silence_id, const char *by, char *err,
                             int errlen)
{
    int64_t now = fw_clock_now();
    int64_t n = fw_al_silence_n(silence_id);
    if (blank(by)) {
        snprintf(err, (size_t)errlen, "by: required (who expires the silence)");
        return FW_ALERTS_BAD;
    }
    sqlite3_stmt *s =
        fw_store_stmt(a->st, "SELECT ends_at, expired_at IS NOT NULL FROM silences WHERE n = ?");
    sqlite3_bind_int64(s, 1, n);
    int step = sqlite3_step(s);
    int64_t ends = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    int expired = step == SQLITE_ROW ? sqlite3_column_int(s, 1) : 0;
    fw_store_done(s);
    if (step != SQLITE_ROW) {
        snprintf(err, (size_t)errlen, "silence %s not found", silence_id ? silence_id : "");
        return step == SQLITE_DONE ? FW_ALERTS_NOT_FOUND : FW_ALERTS_ERROR;
    }
    if (expired || ends <= now) {
        snprintf(err, (size_t)errlen, "silence %s has already expired", silence_id);
        return FW_ALERTS_REFUSED;
    }
    int own = 0;
    if (fw_al_begin(a, &own) != 0) {
        snprintf(err, (size_t)errlen, "store: cannot begin a transaction");
        return FW_ALERTS_ERROR;
    }
    int rc = silence_mark_expired(a, n, now, by, "expired by hand");
    if (rc == 0) {
        /* Escalations deferred to the planned end are due now instead. */
        s = fw_store_stmt(a->st, "UPDATE alerts SET escalate_at = ?1 WHERE status = 'open'"
                                 " AND escalate_at = ?2 AND escalate_at > ?1");
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, ends);
        rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
        fw_store_done(s);
    }
    rc = fw_al_end(a, own, rc);
    if (rc != 0) {
        snprintf(err, (size_t)errlen, "store: %s", sqlite3_errmsg(fw_store_db(a->st)));
        return FW_ALERTS_ERROR;
    }
    char qa[64];
    FW_INFO("silence.expired", "silence_id=SL-%06" PRId64 " by=%s", n,
            fw_log_quote(by, qa, sizeof qa));
    return FW_ALERTS_OK;
}

int fw_al_silences_expire_due(fw_alerts *a, int64_t now)
{
    int64_t ids[64], ends[64];
    int n = 0;
    sqlite3_stmt *s = fw_store_stmt(a->st, "SELECT n, ends_at FROM silences WHERE expired_at IS"
                                           " NULL AND ends_at <= ? ORDER BY n LIMIT 64");
    sqlite3_bind_int64(s, 1, now);
    while (n < 64 && sqlite3_step(s) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(s, 0);
        ends[n] = sqlite3_column_int64(s, 1);
        n++;
    }
    fw_store_done(s);
    for (int i = 0; i < n; i++) {
        if (silence_mark_expired(a, ids[i], ends[i], "fundwatch", "ended") != 0)
            return -1;
        FW_INFO("silence.ended", "silence_id=SL-%06" PRId64, ids[i]);
    }
    return n;
}
