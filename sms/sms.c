/*
 * sms.c - the module object: configuration, lifecycle, template reload,
 * the HTTP API (/api/sms, /sms/dlr), the `sms list` command, and the
 * shared HTTP client entry point.  See sms.h for the overview.
 */
#include <event2/event.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/timeutil.h"
#include "sms/sms_impl.h"

/* ---- configuration ---- */

static const char *validate_carrier(const char *v)
{
    return strcmp(v, "log") == 0 || strcmp(v, "generic-json") == 0 || strcmp(v, "aliyun") == 0
               ? NULL
               : "must be log, generic-json or aliyun";
}

/* "HH:MM-HH:MM" -> minutes; 0 or -1. */
static int parse_quiet(const char *v, int *start, int *end)
{
    int h1, m1, h2, m2;
    char tail;
    if (sscanf(v, "%2d:%2d-%2d:%2d%c", &h1, &m1, &h2, &m2, &tail) != 4)
        return -1;
    if (strlen(v) != 11 || h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59 || h1 < 0 || h2 < 0 || m1 < 0 ||
        m2 < 0)
        return -1;
    *start = h1 * 60 + m1;
    *end = h2 * 60 + m2;
    return 0;
}

static const char *validate_quiet(const char *v)
{
    int a, b;
    if (strcmp(v, "off") == 0 || parse_quiet(v, &a, &b) == 0)
        return NULL;
    return "must be HH:MM-HH:MM or off";
}

static const char *validate_sign(const char *v)
{
    return *v && strlen(v) <= 60 && !strpbrk(v, "【】") ? NULL : "must be 1-60 bytes without 【】";
}

const fw_config_key fw_sms_config_keys[] = {
    {"sms.carrier", FW_CFG_STRING, "log", 0, 0, validate_carrier,
     "generic-json, aliyun, or log (write each SMS to the log only)"},
    {"sms.url", FW_CFG_STRING, NULL, 0, 0, NULL,
     "carrier endpoint (aliyun default https://dysmsapi.aliyuncs.com/)"},
    {"sms.token", FW_CFG_STRING, NULL, 0, 0, NULL, "generic-json bearer token"},
    {"sms.sign", FW_CFG_STRING, "三门峡财政", 0, 0, validate_sign, "signature put in 【】"},
    {"sms.rate", FW_CFG_INT, "50", 0, 100000, NULL, "messages per second overall (0: unlimited)"},
    {"sms.quiet_hours", FW_CFG_STRING, "22:00-08:00", 0, 0, validate_quiet,
     "staff SMS wait out these hours (business zone); HH:MM-HH:MM or off"},
    {"sms.dlr_secret", FW_CFG_STRING, NULL, 0, 0, NULL,
     "shared secret for POST /sms/dlr (unset: every receipt is refused)"},
    {"sms.expiry", FW_CFG_DURATION, "24h", 60, 30 * 86400, NULL,
     "give up (expired) this long after queuing"},
    {"sms.templates", FW_CFG_STRING, "etc/templates", 0, 0, NULL, "templates directory"},
    {"sms.per_number_interval", FW_CFG_DURATION, "1s", 0, 86400, NULL,
     "least time between two SMS to one number"},
    {"sms.timeout", FW_CFG_DURATION, "10s", 1, 300, NULL, "carrier request timeout"},
    {"sms.retry_min_ms", FW_CFG_INT, "1000", 1, 3600000, NULL, "first retry backoff"},
    {"sms.retry_max", FW_CFG_DURATION, "10m", 1, 86400, NULL, "longest retry backoff"},
    {"sms.max_inflight", FW_CFG_INT, "32", 1, 1024, NULL, "concurrent carrier requests"},
    {"sms.access_key_id", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun AccessKey ID"},
    {"sms.access_key_secret", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun AccessKey secret"},
    {"sms.aliyun_sign_name", FW_CFG_STRING, NULL, 0, 0, NULL,
     "aliyun SignName (default: sms.sign)"},
    {"sms.aliyun_region", FW_CFG_STRING, "cn-hangzhou", 0, 0, NULL, "aliyun RegionId"},
    {"sms.aliyun_template_payroll", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun TemplateCode"},
    {"sms.aliyun_template_reimburse", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun TemplateCode"},
    {"sms.aliyun_template_subsidy", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun TemplateCode"},
    {"sms.aliyun_template_alert", FW_CFG_STRING, NULL, 0, 0, NULL, "aliyun TemplateCode"},
};
const int fw_sms_config_nkeys = (int)(sizeof fw_sms_config_keys / sizeof fw_sms_config_keys[0]);

static char *cfg_dup(const fw_config *c, const char *name, const char *def)
{
    const char *v = fw_config_get(c, name);
    if (!v || !*v)
        v = def;
    return v ? strdup(v) : NULL;
}

static int64_t cfg_int(const fw_config *c, const char *name, int64_t def)
{
    return fw_config_get(c, name) ? fw_config_int(c, name) : def;
}

static int read_config(fw_sms *s, const fw_config *c, char *err, int errlen)
{
    const char *carrier = fw_config_get(c, "sms.carrier");
    if (!carrier || strcmp(carrier, "log") == 0)
        s->carrier = SMS_CARRIER_LOG;
    else if (strcmp(carrier, "generic-json") == 0)
        s->carrier = SMS_CARRIER_GENERIC;
    else if (strcmp(carrier, "aliyun") == 0)
        s->carrier = SMS_CARRIER_ALIYUN;
    else {
        snprintf(err, (size_t)errlen, "sms.carrier: unknown carrier %s", carrier);
        return -1;
    }
    s->url = cfg_dup(c, "sms.url",
                     s->carrier == SMS_CARRIER_ALIYUN ? "https://dysmsapi.aliyuncs.com/" : NULL);
    s->token = cfg_dup(c, "sms.token", NULL);
    s->sign = cfg_dup(c, "sms.sign", "三门峡财政");
    s->dlr_secret = cfg_dup(c, "sms.dlr_secret", NULL);
    s->templates_dir = cfg_dup(c, "sms.templates", "etc/templates");
    s->ak_id = cfg_dup(c, "sms.access_key_id", NULL);
    s->ak_secret = cfg_dup(c, "sms.access_key_secret", NULL);
    s->ali_sign_name = cfg_dup(c, "sms.aliyun_sign_name", NULL);
    s->ali_region = cfg_dup(c, "sms.aliyun_region", "cn-hangzhou");
    for (int k = 0; k < SMS_NKINDS; k++) {
        char key[64];
        snprintf(key, sizeof key, "sms.aliyun_template_%s", sms_kind_name(k));
        s->ali_tpl[k] = cfg_dup(c, key, NULL);
    }
    s->rate = cfg_int(c, "sms.rate", 50);
    s->per_number_ms = cfg_int(c, "sms.per_number_interval", 1) * 1000;
    s->expiry_ms = cfg_int(c, "sms.expiry", 86400) * 1000;
    s->timeout_ms = cfg_int(c, "sms.timeout", 10) * 1000;
    s->retry_min_ms = cfg_int(c, "sms.retry_min_ms", 1000);
    s->retry_max_ms = cfg_int(c, "sms.retry_max", 600) * 1000;
    if (s->retry_max_ms < s->retry_min_ms)
        s->retry_max_ms = s->retry_min_ms;
    s->max_inflight = (int)cfg_int(c, "sms.max_inflight", 32);
    const char *quiet = fw_config_get(c, "sms.quiet_hours");
    if (!quiet)
        quiet = "22:00-08:00";
    if (strcmp(quiet, "off") != 0) {
        if (parse_quiet(quiet, &s->quiet_start, &s->quiet_end) != 0) {
            snprintf(err, (size_t)errlen, "sms.quiet_hours: must be HH:MM-HH:MM or off");
            return -1;
        }
        s->quiet_on = 1;
    }
    if (!s->sign) {
        snprintf(err, (size_t)errlen, "out of memory");
        return -1;
    }
    if (s->carrier == SMS_CARRIER_GENERIC && !s->url) {
        snprintf(err, (size_t)errlen, "sms.url: required for sms.carrier = generic-json");
        return -1;
    }
    if (s->carrier == SMS_CARRIER_ALIYUN) {
        if (!s->ak_id || !s->ak_secret) {
            snprintf(err, (size_t)errlen,
                     "sms.access_key_id and sms.access_key_secret: required for aliyun");
            return -1;
        }
        for (int k = 0; k < SMS_NKINDS; k++)
            if (!s->ali_tpl[k]) {
                snprintf(err, (size_t)errlen, "sms.aliyun_template_%s: required for aliyun",
                         sms_kind_name(k));
                return -1;
            }
    }
    return 0;
}

/* ---- lifecycle ---- */

fw_sms *fw_sms_new(fw_store *st, const fw_config *cfg, struct event_base *base, char *err,
                   int errlen)
{
    fw_sms *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, (size_t)errlen, "out of memory");
        return NULL;
    }
    s->st = st;
    s->cfg = cfg;
    s->base = base;
    if (read_config(s, cfg, err, errlen) != 0)
        goto fail;
    s->tpl = sms_templates_load(s->templates_dir, err, errlen);
    if (!s->tpl)
        goto fail;
    sms_metrics_init(s);
    if (base) {
        if (sms_outbox_reconcile(s) < 0) {
            snprintf(err, (size_t)errlen, "sms: cannot reconcile the outbox");
            goto fail;
        }
        if (sms_sender_start(s, err, errlen) != 0)
            goto fail;
    }
    FW_INFO("sms.started", "carrier=%s rate=%lld quiet=%s sending=%s",
            s->carrier == SMS_CARRIER_LOG       ? "log"
            : s->carrier == SMS_CARRIER_GENERIC ? "generic-json"
                                                : "aliyun",
            (long long)s->rate, s->quiet_on ? "on" : "off", base ? "yes" : "no");
    return s;
fail:
    fw_sms_free(s);
    return NULL;
}

void fw_sms_free(fw_sms *s)
{
    if (!s)
        return;
    sms_sender_stop(s);
    sms_metrics_detach(s);
    sms_templates_free(s->tpl);
    free(s->url);
    free(s->token);
    free(s->sign);
    free(s->dlr_secret);
    free(s->templates_dir);
    free(s->ak_id);
    free(s->ak_secret);
    free(s->ali_sign_name);
    free(s->ali_region);
    for (int k = 0; k < SMS_NKINDS; k++)
        free(s->ali_tpl[k]);
    free(s);
}

int fw_sms_reload_templates(fw_sms *s, char *err, int errlen)
{
    sms_templates *t = sms_templates_load(s->templates_dir, err, errlen);
    if (!t)
        return -1;
    sms_templates_free(s->tpl);
    s->tpl = t;
    FW_INFO("sms.templates_reloaded", "dir=%s", s->templates_dir);
    return 0;
}

int64_t fw_sms_count(fw_sms *s, const char *status)
{
    sqlite3_stmt *q =
        fw_store_stmt(s->st, "SELECT count(*) FROM sms_outbox WHERE ?1 IS NULL OR status = ?1");
    fw_bind_text(q, 1, status);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    fw_store_done(q);
    return n;
}

/* ---- the shared HTTP client ---- */

typedef struct post_ctx {
    fw_httpc_done_fn done;
    void *ud;
} post_ctx;

static void on_post_done(void *ud, const sms_http_result *r)
{
    post_ctx *p = ud;
    p->done(p->ud, r->status, r->body, r->status < 0 ? (r->error ? r->error : "error") : NULL);
    free(p);
}

int fw_sms_http_post(fw_sms *s, const char *url, const char *const *headers, const char *body,
                     long timeout_ms, fw_httpc_done_fn done, void *ud)
{
    if (!s || !s->hc || !done)
        return -1;
    post_ctx *p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->done = done;
    p->ud = ud;
    if (sms_httpc_post(s->hc, url, headers, body, timeout_ms, on_post_done, p) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

/* ---- listing (API and CLI) ---- */

#define LIST_SQL                                                                                   \
    "SELECT out_id, kind, phone, status, segments, attempts, queued_at, sent_at, message_id,"      \
    " error, urgent, dlr_at, dlr_error FROM sms_outbox"                                            \
    " WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)"                             \
    " AND (?3 IS NULL OR substr(phone, -4) = ?3) ORDER BY n DESC LIMIT ?4"

static const char *check_status(const char *v)
{
    static const char *const ok[] = {"queued",      "sending", "sent",   "delivered",
                                     "undelivered", "failed",  "expired"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(v, ok[i]) == 0)
            return NULL;
    return "status: must be queued, sending, sent, delivered, undelivered, failed or expired";
}

static const char *check_filters(const char *status, const char *kind, const char *tail, long limit)
{
    if (status && check_status(status))
        return check_status(status);
    if (kind && sms_kind_parse(kind) < 0)
        return "kind: must be payroll, reimburse, subsidy or alert";
    if (tail && (strlen(tail) != 4 || strspn(tail, "0123456789") != 4))
        return "phone-tail: must be the last 4 digits";
    if (limit < 1 || limit > 10000)
        return "limit: must be 1..10000";
    return NULL;
}

static json_t *list_rows(fw_sms *s, const char *status, const char *kind, const char *tail,
                         long limit)
{
    json_t *items = json_array();
    sqlite3_stmt *q = fw_store_stmt(s->st, LIST_SQL);
    fw_bind_text(q, 1, status);
    fw_bind_text(q, 2, kind);
    fw_bind_text(q, 3, tail);
    sqlite3_bind_int64(q, 4, limit);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(items, sms_outbox_row_json(q));
    fw_store_done(q);
    return items;
}

static void handle_list(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_sms *s = ud;
    char status[32], kind[32], tail[16], lim[16];
    int has_status = fw_http_query(req, "status", status, sizeof status);
    int has_kind = fw_http_query(req, "kind", kind, sizeof kind);
    int has_tail = fw_http_query(req, "phone_tail", tail, sizeof tail);
    long limit = 100;
    if (fw_http_query(req, "limit", lim, sizeof lim)) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || end == lim)
            limit = -1;
    }
    const char *bad =
        check_filters(has_status && *status ? status : NULL, has_kind && *kind ? kind : NULL,
                      has_tail && *tail ? tail : NULL, limit);
    if (bad) {
        fw_http_error(resp, 400, "%s", bad);
        return;
    }
    json_t *items =
        list_rows(s, has_status && *status ? status : NULL, has_kind && *kind ? kind : NULL,
                  has_tail && *tail ? tail : NULL, limit);
    fw_http_json(resp, 200, json_pack("{s:o}", "items", items));
}

/* ---- delivery receipts ---- */

static int secret_ok(const fw_sms *s, const fw_http_req *req)
{
    if (!s->dlr_secret || !*s->dlr_secret)
        return 0;
    size_t n = strlen(s->dlr_secret);
    const char *a = req->authorization;
    if (a && strncmp(a, "Bearer ", 7) == 0 && strlen(a + 7) == n &&
        CRYPTO_memcmp(a + 7, s->dlr_secret, n) == 0)
        return 1;
    /* Aliyun's SmsReport push cannot set headers: the secret may ride in the
     * configured callback URL as ?secret=. */
    char q[256];
    if (fw_http_query(req, "secret", q, sizeof q) && strlen(q) == n &&
        CRYPTO_memcmp(q, s->dlr_secret, n) == 0)
        return 1;
    return 0;
}

static void handle_aliyun_reports(fw_sms *s, const json_t *arr, fw_http_resp *resp)
{
    size_t i;
    json_t *r;
    int applied = 0, unknown = 0;
    fw_store_begin(s->st);
    json_array_foreach(arr, i, r)
    {
        const char *out_id = json_string_value(json_object_get(r, "out_id"));
        const char *biz = json_string_value(json_object_get(r, "biz_id"));
        json_t *succ = json_object_get(r, "success");
        int delivered = json_is_true(succ) ||
                        (json_is_string(succ) && strcmp(json_string_value(succ), "true") == 0);
        const char *code = json_string_value(json_object_get(r, "err_code"));
        const char *msg = json_string_value(json_object_get(r, "err_msg"));
        char e[256];
        snprintf(e, sizeof e, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
        const char *now = NULL;
        int rc =
            sms_outbox_apply_receipt(s, out_id, biz, delivered, delivered || !*e ? NULL : e, &now);
        if (rc > 0)
            applied++;
        else if (rc == 0)
            unknown++;
    }
    fw_store_commit(s->st);
    FW_INFO("sms.dlr", "format=aliyun applied=%d unknown=%d", applied, unknown);
    /* Aliyun wants exactly this answer, or it pushes again. */
    fw_http_json(resp, 200, json_pack("{s:i, s:s}", "code", 0, "msg", "成功"));
}

static void handle_dlr(const fw_http_req *req, fw_http_resp *resp, void *ud)
{
    fw_sms *s = ud;
    if (!secret_ok(s, req)) {
        fw_http_error(resp, 401, "unauthorized");
        return;
    }
    json_error_t je;
    json_t *j = json_loadb(req->body, req->body_len, 0, &je);
    if (!j) {
        fw_http_error(resp, 400, "body: not JSON (%s)", je.text);
        return;
    }
    if (json_is_array(j)) {
        handle_aliyun_reports(s, j, resp);
        json_decref(j);
        return;
    }
    const char *out_id = json_string_value(json_object_get(j, "out_id"));
    const char *mid = json_string_value(json_object_get(j, "message_id"));
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *error = json_string_value(json_object_get(j, "error"));
    if (!json_is_object(j) || ((!out_id || !*out_id) && (!mid || !*mid))) {
        fw_http_error(resp, 400, "out_id or message_id: required");
        goto cleanup;
    }
    if (!status || (strcmp(status, "DELIVERED") != 0 && strcmp(status, "UNDELIVERED") != 0)) {
        fw_http_error(resp, 400, "status: must be DELIVERED or UNDELIVERED");
        goto cleanup;
    }
    int delivered = strcmp(status, "DELIVERED") == 0;
    const char *now = NULL;
    fw_store_begin(s->st);
    int rc = sms_outbox_apply_receipt(s, out_id, mid, delivered, error, &now);
    if (fw_store_commit(s->st) != 0)
        rc = -1;
    if (rc < 0) {
        fw_http_error(resp, 500, "store error");
    } else if (rc == 0) {
        fw_http_error(resp, 404, "unknown message");
    } else {
        FW_INFO("sms.dlr", "out_id=%s status=%s now=%s", out_id ? out_id : "-", status, now);
        fw_http_json(resp, 200,
                     json_pack("{s:b, s:s?, s:s}", "ok", 1, "out_id", out_id, "status", now));
    }
cleanup:
    json_decref(j);
}

void fw_sms_register_http(fw_sms *s, fw_http *h)
{
    fw_http_route(h, "GET", "/api/sms", FW_ROLE_VIEWER, handle_list, s);
    fw_http_route(h, "POST", "/sms/dlr", FW_ROLE_NONE, handle_dlr, s);
}

/* ---- command line ---- */

static void cli_usage(FILE *f)
{
    fprintf(f, "usage: fundwatch sms list [--status S] [--kind K] [--phone-tail NNNN] "
               "[--limit N] [--json]\n");
}

int fw_sms_cli_main(fw_sms *s, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "list") != 0) {
        cli_usage(stderr);
        return 2;
    }
    static const struct option opts[] = {{"status", required_argument, NULL, 's'},
                                         {"kind", required_argument, NULL, 'k'},
                                         {"phone-tail", required_argument, NULL, 't'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *status = NULL, *kind = NULL, *tail = NULL;
    long limit = 100;
    int as_json = 0, c;
    optind = 0; /* glibc: full re-initialisation */
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            status = optarg;
            break;
        case 'k':
            kind = optarg;
            break;
        case 't':
            tail = optarg;
            break;
        case 'l': {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || end == optarg)
                limit = -1;
            break;
        }
        case 'j':
            as_json = 1;
            break;
        case 'h':
            cli_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "fundwatch sms list: unknown option or missing value\n");
            cli_usage(stderr);
            return 2;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "fundwatch sms list: unexpected argument %s\n", argv[optind + 1]);
        return 2;
    }
    const char *bad = check_filters(status, kind, tail, limit);
    if (bad) {
        fprintf(stderr, "fundwatch sms list: %s\n", bad);
        return 2;
    }
    json_t *items = list_rows(s, status, kind, tail, limit);
    if (as_json) {
        json_t *o = json_pack("{s:o}", "items", items);
        char *txt = json_dumps(o, JSON_COMPACT);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
        return 0;
    }
    printf("%-28s %-9s %-11s %-11s %3s %3s %-25s %-20s %s\n", "OUT_ID", "KIND", "PHONE", "STATUS",
           "SEG", "TRY", "QUEUED_AT", "MESSAGE_ID", "ERROR");
    size_t i;
    json_t *r;
    json_array_foreach(items, i, r)
    {
        const char *mid = json_string_value(json_object_get(r, "message_id"));
        const char *err = json_string_value(json_object_get(r, "error"));
        printf("%-28s %-9s %-11s %-11s %3d %3d %-25s %-20s %s\n",
               json_string_value(json_object_get(r, "out_id")),
               json_string_value(json_object_get(r, "kind")),
               json_string_value(json_object_get(r, "phone")),
               json_string_value(json_object_get(r, "status")),
               (int)json_integer_value(json_object_get(r, "segments")),
               (int)json_integer_value(json_object_get(r, "attempts")),
               json_string_value(json_object_get(r, "queued_at")), mid ? mid : "-", err ? err : "");
    }
    json_decref(items);
    return 0;
}
