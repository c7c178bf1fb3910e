/*
 * api.c - the alerts and silences HTTP API (contract §8).
 *
 *   GET  /api/alerts?status=&level=&unit=&rule=&since=&limit=   viewer
 *        {"items": [alert...]} newest first; status and level may be comma
 *        lists, unit is a prefix, since RFC 3339 (first_seen >= since),
 *        limit 1..1000 (default 100)
 *   GET  /api/alerts/{alert_id}                                viewer
 *        the alert with "history": [{from, to, by, at, note, kind}]
 *   POST /api/alerts/{alert_id}/transition                     supervisor
 *        {"to": "...", "by": "...", "note": "..."}; `by` defaults to the
 *        token's name.  200 the alert with history; 400 bad/missing field;
 *        404 unknown alert; 409 the workflow does not allow it
 *   GET  /api/silences?status=active|pending|expired&limit=    viewer
 *   POST /api/silences                                         supervisor
 *        {"rule": "*", "unit": "*", "from": "now", "until": RFC 3339 | "for":
 *         "2h", "by": ..., "reason": "..."}; 201 the silence
 *   POST /api/silences/{silence_id}/expire                     supervisor
 *        {"by": ...} optional; 200 the silence; 404; 409 already expired
 *
 * The HTTP layer checks the token and the role before a handler runs.
 */
#include "alerts/alerts_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/timeutil.h"

static int words_ok(const char *list, int (*ok)(const char *), char *bad, size_t badlen)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!ok(w)) {
            snprintf(bad, badlen, "%s", w);
            return 0;
        }
    }
    return 1;
}

static int level_ok(const char *s)
{
    return fw_level_rank(s) >= 0;
}

static int status_code(int rc)
{
    return rc == FW_ALERTS_BAD || rc == FW_ALERTS_NOT_FOUND || rc == FW_ALERTS_REFUSED ? rc : 500;
}

static int query_limit(const fw_http_req *req, fw_http_resp *resp, int *limit)
{
    char buf[32];
    *limit = 100;
    if (!fw_http_query(req, "limit", buf, sizeof buf) || !*buf)
        return 0;
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (*end || v < 1 || v > 1000) {
        fw_http_error(resp, 400, "limit: must be a number from 1 to 1000");
        return -1;
    }
    *limit = (int)v;
    return 0;
}

void fw_al_h_list(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    char status[128] = "", level[128] = "", unit[64] = "", rule[128] = "", since[64] = "";
    char bad[64];
    int64_t since_t = 0;
    int limit;
    fw_http_query(req, "status", status, sizeof status);
    fw_http_query(req, "level", level, sizeof level);
    fw_http_query(req, "unit", unit, sizeof unit);
    fw_http_query(req, "rule", rule, sizeof rule);
    if (*status && !words_ok(status, fw_al_status_ok, bad, sizeof bad)) {
        fw_http_error(resp, 400, "status: unknown status \"%s\"", bad);
        return;
    }
    if (*level && !words_ok(level, level_ok, bad, sizeof bad)) {
        fw_http_error(resp, 400, "level: unknown level \"%s\"", bad);
        return;
    }
    if (fw_http_query(req, "since", since, sizeof since) && *since &&
        fw_al_parse_when(since, fw_clock_now(), -1, &since_t) != 0) {
        fw_http_error(resp, 400, "since: must be an RFC 3339 time, a date or a duration");
        return;
    }
    if (query_limit(req, resp, &limit) != 0)
        return;
    fw_http_json(resp, 200, fw_al_list_json(a, status, level, unit, rule, since_t, limit));
}

void fw_al_h_show(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    const char *id = req->nparams > 0 ? req->params[0] : "";
    json_t *o = fw_alerts_get_json(a, id);
    if (!o) {
        fw_http_error(resp, 404, "alert %s not found", id);
        return;
    }
    fw_http_json(resp, 200, o);
}

/* The request body as a JSON object (an empty body is {}); NULL after
 * answering 400. */
static json_t *body_object(const fw_http_req *req, fw_http_resp *resp)
{
    if (!req->body || req->body_len == 0)
        return json_object();
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        fw_http_error(resp, 400, "body: must be a JSON object");
        return NULL;
    }
    return o;
}

/* A string member, NULL when absent; -1 after answering 400 when it is not
 * a string. */
static int body_string(json_t *o, const char *key, const char **out, fw_http_resp *resp)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        fw_http_error(resp, 400, "%s: must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

void fw_al_h_transition(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    const char *id = req->nparams > 0 ? req->params[0] : "";
    const char *to, *by, *note;
    char err[256];
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    if (body_string(body, "to", &to, resp) != 0 || body_string(body, "by", &by, resp) != 0 ||
        body_string(body, "note", &note, resp) != 0)
        goto cleanup;
    if (!to) {
        fw_http_error(resp, 400, "to: required");
        goto cleanup;
    }
    if (!by || !*by)
        by = req->user;
    int rc = fw_alerts_transition(a, id, to, by, note, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fw_http_error(resp, status_code(rc), "%s", err);
        goto cleanup;
    }
    json_t *o = fw_alerts_get_json(a, id);
    if (o)
        fw_http_json(resp, 200, o);
    else
        fw_http_error(resp, 500, "alert %s vanished", id);

cleanup:
    json_decref(body);
}

void fw_al_h_silences_list(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    char status[32] = "";
    int limit;
    if (fw_http_query(req, "status", status, sizeof status) && *status &&
        strcmp(status, "active") != 0 && strcmp(status, "pending") != 0 &&
        strcmp(status, "expired") != 0) {
        fw_http_error(resp, 400, "status: must be active, pending or expired");
        return;
    }
    if (query_limit(req, resp, &limit) != 0)
        return;
    fw_http_json(resp, 200,
                 fw_al_silences_list_json(a, *status ? status : NULL, fw_clock_now(), limit));
}

void fw_al_h_silences_add(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    const char *rule, *unit, *from, *until, *dur, *by, *reason;
    int64_t now = fw_clock_now(), t_from = now, t_until = 0, secs = 0;
    char err[256], id[16];
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    if (body_string(body, "rule", &rule, resp) || body_string(body, "unit", &unit, resp) ||
        body_string(body, "from", &from, resp) || body_string(body, "until", &until, resp) ||
        body_string(body, "for", &dur, resp) || body_string(body, "by", &by, resp) ||
        body_string(body, "reason", &reason, resp))
        goto cleanup;
    if (from && fw_al_parse_when(from, now, 1, &t_from) != 0) {
        fw_http_error(resp, 400, "from: must be an RFC 3339 time or \"now\"");
        goto cleanup;
    }
    if (until && dur) {
        fw_http_error(resp, 400, "until, for: give one of them");
        goto cleanup;
    }
    if (until) {
        if (fw_al_parse_when(until, now, 1, &t_until) != 0) {
            fw_http_error(resp, 400, "until: must be an RFC 3339 time");
            goto cleanup;
        }
    } else if (dur) {
        if (fw_al_parse_duration(dur, &secs) != 0 || secs <= 0) {
            fw_http_error(resp, 400, "for: must be a duration such as 30m, 4h or 2d");
            goto cleanup;
        }
        t_until = t_from + secs;
    } else {
        fw_http_error(resp, 400, "until: required (or \"for\": a duration)");
        goto cleanup;
    }
    if (!by || !*by)
        by = req->user;
    int rc = fw_alerts_silence_add(a, rule, unit, t_from, t_until, by, reason, id, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fw_http_error(resp, status_code(rc), "%s", err);
        goto cleanup;
    }
    fw_http_json(resp, 201, fw_al_silence_json(a, fw_al_silence_n(id)));

cleanup:
    json_decref(body);
}

void fw_al_h_silences_expire(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_alerts *a = ud;
    const char *id = req->nparams > 0 ? req->params[0] : "";
    const char *by;
    char err[256];
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    if (body_string(body, "by", &by, resp) != 0)
        goto cleanup;
    if (!by || !*by)
        by = req->user;
    int rc = fw_alerts_silence_expire(a, id, by, err, sizeof err);
    if (rc != FW_ALERTS_OK) {
        fw_http_error(resp, status_code(rc), "%s", err);
        goto cleanup;
    }
    fw_http_json(resp, 200, fw_al_silence_json(a, fw_al_silence_n(id)));

cleanup:
    json_decref(body);
}

void fw_alerts_register_http(fw_alerts *a, fw_http *h)
{
    fw_http_route(h, "GET", "/api/alerts", FW_ROLE_VIEWER, fw_al_h_list, a);
    fw_http_route(h, "GET", "/api/alerts/*", FW_ROLE_VIEWER, fw_al_h_show, a);
    fw_http_route(h, "POST", "/api/alerts/*/transition", FW_ROLE_SUPERVISOR, fw_al_h_transition, a);
    fw_http_route(h, "GET", "/api/silences", FW_ROLE_VIEWER, fw_al_h_silences_list, a);
    fw_http_route(h, "POST", "/api/silences", FW_ROLE_SUPERVISOR, fw_al_h_silences_add, a);
    fw_http_route(h, "POST", "/api/silences/*/expire", FW_ROLE_SUPERVISOR, fw_al_h_silences_expire,
                  a);
}
