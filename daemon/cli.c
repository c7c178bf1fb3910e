/* cli.c - see cli.h */
#include "daemon/cli.h"

#include <jansson.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/app.h"
#include "daemon/intake.h"
#include "daemon/log.h"
#include "daemon/money.h"
#include "daemon/schema.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"

#define DEFAULT_CONFIG "etc/fundwatch.conf"

int fw_cli_parse_common(int argc, char **argv, fw_cli *out)
{
    const char *conf = NULL;
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    int nover = 0;
    memset(out, 0, sizeof *out);
    out->argv = calloc((size_t)argc + 1, sizeof *out->argv);
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            overrides[nover++] = argv[++i];
        } else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-o") == 0) {
            fprintf(stderr, "fundwatch: %s needs a value\n", argv[i]);
            free(overrides);
            fw_cli_free(out);
            return 2;
        } else {
            out->argv[out->argc++] = argv[i];
        }
    }
    if (!conf && access(DEFAULT_CONFIG, R_OK) == 0)
        conf = DEFAULT_CONFIG;
    out->cfg = fw_config_new();
    fw_app_register_config(out->cfg);
    char err[1024];
    int rc = fw_config_load(out->cfg, conf, overrides, nover, err, sizeof err);
    free(overrides);
    if (rc != 0) {
        fprintf(stderr, "fundwatch: %s\n", err);
        fw_cli_free(out);
        return 2;
    }
    int zone;
    if (fw_time_zone_parse(fw_config_get(out->cfg, "time.zone"), &zone) == 0)
        fw_time_set_zone(zone);
    int lvl = fw_log_level_parse(fw_config_get(out->cfg, "log.level"));
    if (lvl >= 0)
        fw_log_set_level((fw_log_level)lvl);
    return 0;
}

void fw_cli_free(fw_cli *c)
{
    fw_config_free(c->cfg);
    free(c->argv);
    memset(c, 0, sizeof *c);
}

/* ---- check ---- */

int fw_cli_check(fw_cli *c)
{
    long timeout_ms = 5000;
    const char *path = NULL;
    for (int i = 0; i < c->argc; i++) {
        if (strcmp(c->argv[i], "--timeout") == 0 && i + 1 < c->argc) {
            char *end;
            timeout_ms = strtol(c->argv[++i], &end, 10);
            if (*end || timeout_ms <= 0) {
                fprintf(stderr, "fundwatch check: --timeout: milliseconds expected\n");
                return 2;
            }
        } else if (!path) {
            path = c->argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: fundwatch check [-c FILE] [--timeout MS] BODY.json|-\n");
        return 2;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    char *body = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&body, &len);
    char buf[8192];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    if (mem)
        fclose(mem);
    if (f != stdin)
        fclose(f);
    int rc = 1;
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    json_t *j = NULL;
    natsStatus s =
        body ? natsConnection_ConnectTo(&nc, fw_config_get(c->cfg, "nats.url")) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = natsConnection_Request(&reply, nc, FW_CHECK_SUBJECT, body, (int)len, timeout_ms);
    if (s != NATS_OK) {
        fprintf(stderr, "fundwatch check: %s on %s: %s\n", FW_CHECK_SUBJECT,
                fw_config_get(c->cfg, "nats.url"),
                s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ? "no answer (is the daemon running?)"
                                                             : natsStatus_GetText(s));
        goto out;
    }
    printf("%.*s\n", natsMsg_GetDataLength(reply), natsMsg_GetData(reply));
    j = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    const char *decision = json_string_value(json_object_get(j, "decision"));
    if (decision)
        rc = strcmp(decision, "block") == 0 ? 3 : 0;
out:
    json_decref(j);
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    nats_Close();
    free(body);
    return rc;
}

/* ---- publish ---- */

static natsStatus ensure_stream(jsCtx *js, const fw_config *cfg)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *name = fw_config_get(cfg, "nats.stream");
    natsStatus s = js_GetStreamInfo(&si, js, name, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return s;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    const char *subjects[1] = {fw_config_get(cfg, "nats.subjects")};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return s;
}

int fw_cli_publish(fw_cli *c)
{
    if (c->argc != 1) {
        fprintf(stderr, "usage: fundwatch publish [-c FILE] INPUT.jsonl\n");
        return 2;
    }
    FILE *f = strcmp(c->argv[0], "-") == 0 ? stdin : fopen(c->argv[0], "r");
    if (!f) {
        perror(c->argv[0]);
        return 1;
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = 1;
    long lineno = 0, published = 0, bad = 0;
    char *line = NULL;
    size_t cap = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, fw_config_get(c->cfg, "nats.url"));
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 8192;
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, nc, &jo);
    if (s == NATS_OK)
        s = ensure_stream(js, c->cfg);
    if (s != NATS_OK) {
        fprintf(stderr, "fundwatch publish: nats.url %s: %s (%s)\n",
                fw_config_get(c->cfg, "nats.url"), natsStatus_GetText(s), nats_GetLastError(NULL));
        goto out;
    }
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)n, 0, &je);
        const char *subject = json_string_value(json_object_get(j, "subject"));
        json_t *data = json_object_get(j, "data");
        if (!j) {
            if (strspn(line, " \t\r\n") != (size_t)n) {
                fprintf(stderr, "%s:%ld: %s\n", c->argv[0], lineno, je.text);
                bad++;
            }
            continue;
        }
        if (!subject || !data) {
            fprintf(stderr, "%s:%ld: needs \"subject\" and \"data\"\n", c->argv[0], lineno);
            bad++;
            json_decref(j);
            continue;
        }
        /* A string `data` is sent verbatim (to publish deliberately broken
         * bodies); anything else is sent as compact JSON. */
        char *body =
            json_is_string(data) ? strdup(json_string_value(data)) : json_dumps(data, JSON_COMPACT);
        s = js_PublishAsync(js, subject, body, (int)strlen(body), NULL);
        free(body);
        json_decref(j);
        if (s != NATS_OK) {
            fprintf(stderr, "%s:%ld: publish failed: %s\n", c->argv[0], lineno,
                    natsStatus_GetText(s));
            goto out;
        }
        published++;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK) {
        fprintf(stderr, "fundwatch publish: not every message was acknowledged: %s\n",
                natsStatus_GetText(s));
        goto out;
    }
    printf("published %ld messages to %s (%ld bad lines skipped)\n", published,
           fw_config_get(c->cfg, "nats.stream"), bad);
    rc = bad ? 1 : 0;
out:
    free(line);
    if (f != stdin)
        fclose(f);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}

/* ---- report ---- */

static void print_rows(fw_store *st, const char *title, const char *sql, int ncols)
{
    printf("\n%s\n", title);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(fw_store_db(st), sql, -1, &s, NULL) != SQLITE_OK) {
        printf("  (unavailable: %s)\n", sqlite3_errmsg(fw_store_db(st)));
        return;
    }
    int rows = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        printf("  ");
        for (int i = 0; i < ncols; i++)
            printf("%s%s", i ? "  " : "", fw_col_text(s, i));
        printf("\n");
        rows++;
    }
    if (!rows)
        printf("  (none)\n");
    sqlite3_finalize(s);
}

/* yuan(fen) in SQL: money printed by the same exact formatter as the API. */
static void sql_yuan(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    char buf[40];
    fw_money_format_grouped(sqlite3_value_int64(argv[0]), buf, sizeof buf);
    sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
}

int fw_cli_report(fw_cli *c)
{
    char err[1024];
    fw_store *st = fw_store_open(fw_config_get(c->cfg, "store.path"), fw_migrations, fw_nmigrations,
                                 0, FW_SYNC_NORMAL, err, sizeof err);
    if (!st) {
        fprintf(stderr, "fundwatch report: %s\n", err);
        return 1;
    }
    sqlite3_create_function(fw_store_db(st), "yuan", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                            sql_yuan, NULL, NULL);
    printf("fundwatch report — %s\n", fw_config_get(c->cfg, "store.path"));
    print_rows(st, "Inbound messages stored, by kind:",
               "SELECT printf('%-10s', kind), printf('%8d', count(*)) FROM events GROUP BY kind "
               "ORDER BY kind",
               2);
    print_rows(st, "Dead-lettered (malformed) messages:",
               "SELECT printf('%-10s', kind), field || ': ' || reason, subject FROM dlq ORDER BY n "
               "LIMIT 10",
               3);
    print_rows(st, "Alerts by level and rule:",
               "SELECT printf('%-7s', level), printf('%-26s', rule), printf('%5d', count(*)), "
               "printf('(%d open)', sum(status = 'open')) FROM alerts GROUP BY level, rule "
               "ORDER BY CASE level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 "
               "ELSE 3 END, count(*) DESC",
               4);
    print_rows(st, "Examples (one per rule, red first):",
               "SELECT alert_id, printf('%-7s', level), rule, subject_id, message FROM alerts "
               "WHERE n IN (SELECT min(n) FROM alerts GROUP BY rule) ORDER BY CASE level WHEN "
               "'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 ELSE 3 END, n LIMIT 12",
               5);
    print_rows(st, "SMS by kind and state:",
               "SELECT printf('%-10s', kind), printf('%-12s', status), printf('%7d', count(*)), "
               "printf('%d segments', sum(segments)) FROM sms_outbox GROUP BY kind, status "
               "ORDER BY kind, status",
               4);
    print_rows(st, "A few SMS (phones masked):",
               "SELECT kind, substr(phone, 1, 3) || '****' || substr(phone, 8), status, content "
               "FROM sms_outbox WHERE n IN (SELECT min(n) FROM sms_outbox GROUP BY kind)",
               4);
    print_rows(st, "Most-drawn indicators (paid + frozen, yuan):",
               "SELECT printf('%-22s', indicator_id), unit_code, "
               "printf('allocated %18s', yuan(allocated)), "
               "printf('drawn %18s', yuan(paid + frozen)), "
               "printf('available %18s', yuan(allocated - frozen - paid)) "
               "FROM indicators ORDER BY paid + frozen DESC LIMIT 8",
               5);
    fw_store_close(st);
    return 0;
}
