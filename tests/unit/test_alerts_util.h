/*
 * test_alerts_util.h - fixture shared by the alert store's unit tests.
 *
 * at_open() makes a temp dir, a store file with the alerts schema, a
 * configuration from INI text (loaded through the real fw_config with the
 * module's keys and section prefixes), a controllable clock, and recording
 * sinks: every NATS publish, webhook start and SMS is kept so a test can
 * check exactly what left.  The webhook sink fails its first `webhook_fail`
 * starts (returns -1) to exercise retries.  Include after cmocka.h.
 */
#ifndef FW_TEST_ALERTS_UTIL_H
#define FW_TEST_ALERTS_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alerts.h"
#include "alerts/alerts_internal.h"
#include "daemon/config.h"
#include "daemon/metrics.h"
#include "daemon/store.h"
#include "daemon/timeutil.h"
#include "tests/support/harness.h"

#define AT_T0 1717380900LL /* 2024-06-03T10:15:00+08:00 */
#define AT_MAX 256

static int64_t g_at_now = AT_T0;

static inline int64_t at_clock(void)
{
    return g_at_now;
}

typedef struct at_rec {
    char *a, *b, *c; /* publish: subject, payload; webhook: url, body; sms: out_id, phone, alert */
    int64_t id;      /* webhook notification id; sms urgent */
} at_rec;

typedef struct at_fx {
    char *dir;
    char db[600];
    fw_store *st;
    fw_config *cfg;
    fw_alerts *a;
    at_rec pubs[AT_MAX], hooks[AT_MAX], sms[AT_MAX];
    int npubs, nhooks, nsms;
    int webhook_fail; /* fail this many webhook starts (return -1) */
} at_fx;

static inline void at_rec_set(at_rec *r, const char *a, const char *b, const char *c, int64_t id)
{
    r->a = strdup(a ? a : "");
    r->b = strdup(b ? b : "");
    r->c = strdup(c ? c : "");
    r->id = id;
}

static inline void at_sink_publish(void *ud, const char *subject, const char *json)
{
    at_fx *f = ud;
    assert_true(f->npubs < AT_MAX);
    at_rec_set(&f->pubs[f->npubs++], subject, json, NULL, 0);
}

static inline int at_sink_webhook(void *ud, const char *url, const char *json, int64_t id)
{
    at_fx *f = ud;
    assert_true(f->nhooks < AT_MAX);
    at_rec_set(&f->hooks[f->nhooks++], url, json, NULL, id);
    if (f->webhook_fail > 0) {
        f->webhook_fail--;
        return -1;
    }
    return 0;
}

static inline int at_sink_sms(void *ud, const char *out_id, const char *phone, const char *name,
                              const json_t *alert, int urgent)
{
    at_fx *f = ud;
    assert_true(f->nsms < AT_MAX);
    char *text = json_dumps(alert, JSON_COMPACT);
    at_rec_set(&f->sms[f->nsms++], out_id, phone, text, urgent);
    free(text);
    (void)name;
    return 0;
}

static inline void at_clear_recs(at_fx *f)
{
    at_rec *sets[3] = {f->pubs, f->hooks, f->sms};
    int *ns[3] = {&f->npubs, &f->nhooks, &f->nsms};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < *ns[k]; i++) {
            free(sets[k][i].a);
            free(sets[k][i].b);
            free(sets[k][i].c);
        }
        *ns[k] = 0;
    }
}

/* Open a fixture with `ini` as the configuration (NULL: none). */
static inline at_fx *at_open(const char *ini)
{
    char err[512], path[700];
    at_fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    g_at_now = AT_T0;
    fw_clock_set(at_clock);
    fw_metrics_reset();
    f->dir = fw_t_tmpdir("alerts");
    snprintf(f->db, sizeof f->db, "%s/fw.db", f->dir);
    f->st = fw_store_open(f->db, fw_alerts_migrations, fw_alerts_nmigrations, 0, FW_SYNC_NORMAL,
                          err, sizeof err);
    if (!f->st)
        fail_msg("store: %s", err);
    f->cfg = fw_config_new();
    fw_config_add_keys(f->cfg, fw_alerts_config_keys, fw_alerts_config_nkeys);
    for (int i = 0; i < fw_alerts_config_nprefixes; i++)
        fw_config_add_prefix(f->cfg, fw_alerts_config_prefixes[i]);
    const char *cpath = NULL;
    if (ini) {
        snprintf(path, sizeof path, "%s/fw.conf", f->dir);
        assert_int_equal(fw_t_write_file(path, ini), 0);
        cpath = path;
    }
    if (fw_config_load(f->cfg, cpath, NULL, 0, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    f->a = fw_alerts_new(f->st, f->cfg, err, sizeof err);
    if (!f->a)
        fail_msg("alerts: %s", err);
    fw_alerts_sinks s = {at_sink_publish, at_sink_webhook, at_sink_sms, f};
    fw_alerts_set_sinks(f->a, &s);
    return f;
}

static inline void at_close(at_fx *f)
{
    at_clear_recs(f);
    fw_alerts_free(f->a);
    fw_store_close(f->st);
    fw_config_free(f->cfg);
    fw_t_rmtree(f->dir);
    free(f->dir);
    free(f);
    fw_clock_set(NULL);
}

/* A hit with borrowed strings (fw_alerts_raise copies what it keeps). */
static inline fw_hit at_hit(const char *rule, const char *level, const char *unit,
                            const char *subject_id, const char *event_id)
{
    fw_hit h = {0};
    h.rule = (char *)rule;
    h.level = (char *)level;
    h.message = (char *)"测试预警";
    h.details = NULL;
    h.subject_kind = (char *)"voucher";
    h.subject_id = (char *)subject_id;
    h.unit_code = (char *)unit;
    h.event_id = (char *)event_id;
    h.at = g_at_now;
    return h;
}

/* Raise one hit in its own batch transaction, flush, return the result
 * and (if id != NULL) the alert id. */
static inline int at_raise(at_fx *f, const fw_hit *h, char id[32])
{
    json_t *alert = NULL;
    assert_int_equal(fw_store_begin(f->st), 0);
    int rc = fw_alerts_raise(f->a, h, "rs-1", &alert);
    assert_int_equal(fw_store_commit(f->st), 0);
    fw_alerts_flush(f->a);
    assert_true(rc >= 0);
    assert_non_null(alert);
    if (id)
        snprintf(id, 32, "%s", json_string_value(json_object_get(alert, "alert_id")));
    json_decref(alert);
    return rc;
}

static inline int64_t at_sql(at_fx *f, const char *sql)
{
    return fw_t_sql_int(f->db, sql);
}

static inline int at_transition(at_fx *f, const char *id, const char *to, const char *note)
{
    char err[256];
    return fw_alerts_transition(f->a, id, to, "sam", note, err, sizeof err);
}

#endif
