/*
 * test_sms_sender.c - the sender against a fake carrier (contract §6):
 * normal flow with the right figures, 500s then success, 429, timeouts,
 * THROTTLED for one number while others flow, permanent 400, carrier down
 * then up, crash reconciliation (generic-json and aliyun), the aliyun
 * adapter end to end (signature verified by the carrier), delivery
 * receipts over HTTP, quiet hours with a controlled clock, the rate limit,
 * the shared HTTP client, and metrics.
 *
 * The tests drive the libevent loop themselves; the carrier runs in its
 * own thread (tests/support/carrier.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <pthread.h>

#include "daemon/http.h"
#include "daemon/metrics.h"
#include "daemon/money.h"
#include "daemon/timeutil.h"
#include "sms/sms.h"
#include "tests/support/carrier.h"
#include "tests/support/harness.h"

/* The fake carrier has no library of its own (see carrier.h). */
#include "tests/support/carrier.c"

typedef struct fx {
    char *dir;
    char db[600];
    fw_store *st;
    fw_config *cfg;
    fw_sms *sms;
    struct event_base *base;
    fw_t_carrier *car;
    int port;
    char url[128];
} fx;

static int64_t mono_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until pred() or timeout; 1 if pred became true. */
static int run_until(fx *f, int (*pred)(fx *), int timeout_ms)
{
    int64_t end = mono_now_ms() + timeout_ms;
    while (!pred(f)) {
        if (mono_now_ms() >= end)
            return 0;
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->base, &tv);
        if (event_base_dispatch(f->base) == 1)
            usleep(1000);
    }
    return 1;
}

static void run_for(fx *f, int ms)
{
    int64_t end = mono_now_ms() + ms;
    while (mono_now_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->base, &tv);
        if (event_base_dispatch(f->base) == 1)
            usleep(1000);
    }
}

static fw_config *make_cfg(fx *f, const char *const *extra, int nextra)
{
    char err[512];
    const char *over[32];
    int n = 0;
    static char url[200];
    snprintf(url, sizeof url, "sms.url=%s", f->url);
    over[n++] = "sms.carrier=generic-json";
    over[n++] = url;
    over[n++] = "sms.token=carrier-token";
    over[n++] = "sms.quiet_hours=off";
    over[n++] = "sms.rate=0";
    over[n++] = "sms.per_number_interval=0";
    over[n++] = "sms.retry_min_ms=40";
    over[n++] = "sms.retry_max=1";
    over[n++] = "sms.timeout=1";
    over[n++] = "sms.dlr_secret=dlr-s3cret";
    for (int i = 0; i < nextra; i++)
        over[n++] = extra[i];
    fw_config *c = fw_config_new();
    fw_config_add_keys(c, fw_sms_config_keys, fw_sms_config_nkeys);
    if (fw_config_load(c, NULL, (char *const *)over, n, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    return c;
}

static void open_sms(fx *f, const char *const *extra, int nextra)
{
    char err[512];
    f->cfg = make_cfg(f, extra, nextra);
    f->sms = fw_sms_new(f->st, f->cfg, f->base, err, sizeof err);
    if (!f->sms)
        fail_msg("fw_sms_new: %s", err);
}

static void close_sms(fx *f)
{
    fw_sms_free(f->sms);
    fw_config_free(f->cfg);
    f->sms = NULL;
    f->cfg = NULL;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char err[512];
    fw_metrics_reset(); /* counters start from zero in every test */
    f->dir = fw_t_tmpdir("sms-sender");
    snprintf(f->db, sizeof f->db, "%s/fw.db", f->dir);
    static const fw_migration migs[] = {{"sms", fw_sms_schema}};
    f->st = fw_store_open(f->db, migs, 1, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(f->st);
    f->base = event_base_new();
    f->car = fw_t_carrier_start(0);
    assert_non_null(f->car);
    f->port = fw_t_carrier_port(f->car);
    fw_t_carrier_set_token(f->car, "carrier-token");
    fw_t_carrier_url(f->port, f->url, sizeof f->url);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    close_sms(f);
    fw_t_carrier_stop(f->car);
    fw_store_close(f->st);
    event_base_free(f->base);
    fw_clock_set(NULL);
    fw_t_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void queue_event(fx *f, const char *subject, const char *json)
{
    fw_event ev;
    fw_decode_error e;
    if (fw_event_decode(subject, json, strlen(json), &ev, &e) != 0)
        fail_msg("decode: %s: %s", e.field, e.reason);
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_sms_on_event(f->sms, &ev), 0);
    assert_int_equal(fw_store_commit(f->st), 0);
    fw_event_clear(&ev);
    fw_sms_kick(f->sms);
}

/* Subsidy payout `id` to `phone` of `fen`. */
static void queue_subsidy(fx *f, const char *id, const char *phone, int64_t fen)
{
    char j[800], amount[32];
    fw_money_format(fen, amount, sizeof amount);
    snprintf(
        j, sizeof j,
        "{\"id\":\"evt-%s\",\"payout_id\":\"%s\",\"occurred_at\":\"2024-06-05T10:00:00+08:00\","
        "\"unit_code\":\"101001\",\"emp_id\":\"E1\",\"name\":\"张三\",\"phone\":\"%s\","
        "\"kind\":\"取暖补贴\",\"amount\":\"%s\",\"paid_at\":\"2024-06-05T10:00:00+08:00\"}",
        id, id, phone, amount);
    queue_event(f, "fiscal.subsidy.101001", j);
}

static char *row_text(fx *f, const char *out_id, const char *col)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT %s FROM sms_outbox WHERE out_id = ?1", col);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fw_store_db(f->st), sql, -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_text(q, 1, out_id, -1, SQLITE_STATIC);
    char *v = NULL;
    if (sqlite3_step(q) == SQLITE_ROW)
        v = strdup(sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
    return v;
}

static void expect_col(fx *f, const char *out_id, const char *col, const char *want)
{
    char *v = row_text(f, out_id, col);
    if (!v || strcmp(v, want) != 0)
        fail_msg("%s.%s = %s, want %s", out_id, col, v ? v : "(no row)", want);
    free(v);
}

static int64_t g_want;
static int sent_all(fx *f)
{
    return fw_sms_count(f->sms, "sent") >= g_want;
}
static int none_queued(fx *f)
{
    return fw_sms_count(f->sms, "queued") == 0 && fw_sms_count(f->sms, "sending") == 0;
}

/* ---- tests ---- */

static void test_payroll_run_reaches_carrier(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    /* 1,000 lines, line 17 with broken arithmetic. */
    size_t cap = 1000 * 700 + 1024, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b, cap,
                            "{\"id\":\"evt-r1\",\"run_id\":\"GZ-7\",\"part\":1,\"parts\":1,"
                            "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":"
                            "\"101001\",\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
                            "\"indicator_id\":\"ZB1\",\"lines\":[");
    for (int i = 0; i < 1000; i++) {
        int64_t gross = 1000000 + i * 37, d = 12345 + i, net = gross - d + (i == 17);
        char g[32], dd[32], n[32];
        fw_money_format(gross, g, sizeof g);
        fw_money_format(d, dd, sizeof dd);
        fw_money_format(net, n, sizeof n);
        len += (size_t)snprintf(
            b + len, cap - len,
            "%s{\"emp_id\":\"E%d\",\"name\":\"员工%d\",\"id_no\":\"X%d\",\"phone\":\"137%08d\","
            "\"account\":\"62220200%08d\",\"earnings\":[{\"name\":\"基本工资\",\"amount\":\"%s\"}],"
            "\"deductions\":[{\"name\":\"个人所得税\",\"amount\":\"%s\"}],\"gross\":\"%s\","
            "\"net\":\"%s\"}",
            i ? "," : "", i, i, i, i, i, g, dd, g, n);
    }
    snprintf(b + len, cap - len, "]}");
    queue_event(f, "fiscal.payroll.101001", b);
    free(b);
    g_want = 999;
    assert_true(run_until(f, sent_all, 60000));
    assert_int_equal(fw_t_carrier_unique(f->car), 999);
    assert_int_equal(fw_t_carrier_count(f->car), 999);
    /* The carrier got the right figures, phone, template and signature. */
    int checked = 0;
    for (int k = 0; k < fw_t_carrier_count(f->car); k++) {
        fw_t_carrier_req r;
        assert_int_equal(fw_t_carrier_get(f->car, k, &r), 0);
        int i = -1;
        assert_int_equal(sscanf(r.out_id, "pay:GZ-7:E%d", &i), 1);
        assert_true(i != 17);
        int64_t gross = 1000000 + i * 37, d = 12345 + i;
        char g[48], dd[48], n[48], want[200], phone[16];
        snprintf(want, sizeof want, "应发%s元，扣除个人所得税%s元，实发%s元",
                 fw_money_format_grouped(gross, g, sizeof g),
                 fw_money_format_grouped(d, dd, sizeof dd),
                 fw_money_format_grouped(gross - d, n, sizeof n));
        if (!strstr(r.content, want))
            fail_msg("%s: want %s in %s", r.out_id, want, r.content);
        assert_int_equal(strncmp(r.content, "【三门峡财政】", strlen("【三门峡财政】")), 0);
        snprintf(phone, sizeof phone, "137%08d", i);
        assert_string_equal(r.phone, phone);
        assert_string_equal(r.template_name, "payroll");
        checked++;
    }
    assert_int_equal(checked, 999);
    /* the outbox knows each message_id */
    fw_t_carrier_req r0;
    fw_t_carrier_get(f->car, 0, &r0);
    char *mid = row_text(f, r0.out_id, "message_id");
    assert_non_null(mid);
    assert_true(strncmp(mid, "msg-", 4) == 0);
    free(mid);
    char *m = fw_metrics_render();
    assert_non_null(strstr(m, "fundwatch_sms_outbox{status=\"sent\",kind=\"payroll\"} 999"));
    assert_non_null(strstr(m, "fundwatch_sms_sent_total{kind=\"payroll\"} 999"));
    assert_non_null(strstr(m, "fundwatch_sms_send_seconds_count"));
    free(m);
}

static void test_500_then_ok_and_429(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    fw_t_carrier_fail_next(f->car, 3, 500);
    queue_subsidy(f, "S500", "13800000001", 180000);
    g_want = 1;
    assert_true(run_until(f, sent_all, 10000));
    expect_col(f, "sub:S500", "attempts", "4");
    expect_col(f, "sub:S500", "status", "sent");
    assert_int_equal(fw_t_carrier_count(f->car), 4);
    assert_int_equal(fw_t_carrier_unique(f->car), 1);

    fw_t_carrier_fail_next(f->car, 2, 429);
    queue_subsidy(f, "S429", "13800000002", 180000);
    g_want = 2;
    assert_true(run_until(f, sent_all, 10000));
    expect_col(f, "sub:S429", "attempts", "3");
    assert_int_equal(fw_t_carrier_count_out_id(f->car, "sub:S429"), 3);
    char *m = fw_metrics_render();
    assert_non_null(strstr(m, "fundwatch_sms_carrier_errors_total{reason=\"http_5xx\"} 3"));
    assert_non_null(strstr(m, "fundwatch_sms_carrier_errors_total{reason=\"http_429\"} 2"));
    free(m);
}

static void test_timeout_then_ok(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    fw_t_carrier_set_delay_ms(f->car, 1600); /* sms.timeout is 1 s */
    queue_subsidy(f, "ST", "13800000003", 100);
    run_for(f, 1300);
    /* timed out and back to queued (or already retrying) */
    char *err = row_text(f, "sub:ST", "error");
    assert_non_null(err);
    assert_non_null(strstr(err, "timeout"));
    free(err);
    fw_t_carrier_set_delay_ms(f->car, 0);
    g_want = 1;
    assert_true(run_until(f, sent_all, 10000));
    /* The carrier had the first request too: dedup by out_id answers the
     * same message_id and sends nothing again. */
    assert_true(fw_t_carrier_count_out_id(f->car, "sub:ST") >= 2);
    assert_int_equal(fw_t_carrier_unique(f->car), 1);
    expect_col(f, "sub:ST", "message_id", "msg-1");
}

static void test_throttled_number_others_flow(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    fw_t_carrier_throttle(f->car, "13900000000", 4);
    queue_subsidy(f, "T0", "13900000000", 100);
    for (int i = 1; i <= 20; i++) {
        char id[16], phone[16];
        snprintf(id, sizeof id, "T%d", i);
        snprintf(phone, sizeof phone, "139%08d", i);
        queue_subsidy(f, id, phone, 100);
    }
    g_want = 20;
    assert_true(run_until(f, sent_all, 10000));
    /* the other 20 went through while T0 waits */
    expect_col(f, "sub:T0", "status", "queued");
    g_want = 21;
    assert_true(run_until(f, sent_all, 20000));
    expect_col(f, "sub:T0", "attempts", "5");
    assert_int_equal(fw_t_carrier_count_out_id(f->car, "sub:T0"), 5);
    assert_int_equal(fw_t_carrier_unique(f->car), 21);
}

static void test_permanent_400(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    fw_t_carrier_fail_next(f->car, 1, 400);
    queue_subsidy(f, "S400", "13800000004", 100);
    assert_true(run_until(f, none_queued, 5000));
    run_for(f, 300);
    expect_col(f, "sub:S400", "status", "failed");
    expect_col(f, "sub:S400", "attempts", "1");
    char *err = row_text(f, "sub:S400", "error");
    assert_non_null(strstr(err, "HTTP 400"));
    free(err);
    assert_int_equal(fw_t_carrier_count(f->car), 1);

    /* 200 with an unknown code: failed as well. */
    fw_t_carrier_set_token(f->car, "something-else"); /* carrier answers 401 */
    queue_subsidy(f, "S401", "13800000005", 100);
    assert_true(run_until(f, none_queued, 5000));
    expect_col(f, "sub:S401", "status", "failed");
}

static void test_carrier_down_then_up(void **state)
{
    fx *f = *state;
    fw_t_carrier_stop(f->car); /* the port is closed for the whole first part */
    f->car = NULL;
    open_sms(f, NULL, 0);
    for (int i = 0; i < 30; i++) {
        char id[16], phone[16];
        snprintf(id, sizeof id, "D%d", i);
        snprintf(phone, sizeof phone, "135%08d", i);
        queue_subsidy(f, id, phone, 100 + i);
    }
    run_for(f, 1500);
    assert_int_equal(fw_sms_count(f->sms, "sent"), 0);
    assert_int_equal(fw_sms_count(f->sms, "failed") + fw_sms_count(f->sms, "expired"), 0);
    char *err = row_text(f, "sub:D0", "error");
    assert_non_null(err);
    assert_non_null(strstr(err, "transport"));
    free(err);
    f->car = fw_t_carrier_start(f->port);
    assert_non_null(f->car);
    fw_t_carrier_set_token(f->car, "carrier-token");
    g_want = 30;
    assert_true(run_until(f, sent_all, 15000));
    assert_int_equal(fw_t_carrier_unique(f->car), 30);
    assert_int_equal(fw_t_carrier_count(f->car), 30);
}

static void test_crash_reconciliation_generic(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    for (int i = 0; i < 10; i++) {
        char id[16], phone[16];
        snprintf(id, sizeof id, "C%d", i);
        snprintf(phone, sizeof phone, "133%08d", i);
        queue_subsidy(f, id, phone, 100);
    }
    g_want = 10;
    assert_true(run_until(f, sent_all, 10000));
    char *before = row_text(f, "sub:C4", "message_id");
    close_sms(f);
    /* As if the process died after the carrier took C3..C5 but before their
     * `sent` was committed: they are still `sending` at the next start. */
    assert_int_equal(fw_store_exec(f->st, "UPDATE sms_outbox SET status = 'sending',"
                                          " message_id = NULL, sent_at = NULL"
                                          " WHERE out_id IN ('sub:C3', 'sub:C4', 'sub:C5')"),
                     0);
    /* and C9 was claimed but never reached the carrier */
    assert_int_equal(fw_store_exec(f->st, "UPDATE sms_outbox SET status = 'sending',"
                                          " message_id = NULL WHERE out_id = 'sub:C9'"),
                     0);
    open_sms(f, NULL, 0);
    assert_true(run_until(f, sent_all, 10000));
    assert_true(run_until(f, none_queued, 10000));
    /* resent with the same out_id; the carrier deduplicated: no new SMS */
    assert_int_equal(fw_t_carrier_unique(f->car), 10);
    for (int i = 0; i < 10; i++) {
        char out_id[16];
        snprintf(out_id, sizeof out_id, "sub:C%d", i);
        int want = (i >= 3 && i <= 5) || i == 9 ? 2 : 1;
        assert_int_equal(fw_t_carrier_count_out_id(f->car, out_id), want);
        expect_col(f, out_id, "status", "sent");
    }
    /* the carrier answered the repeat with the first message_id */
    char *a = row_text(f, "sub:C4", "message_id");
    assert_string_equal(a, before);
    free(a);
    free(before);
}

static const char *aliyun_over[] = {
    "sms.carrier=aliyun",
    "sms.access_key_id=testid",
    "sms.access_key_secret=testsecret",
    "sms.aliyun_template_payroll=SMS_1001",
    "sms.aliyun_template_reimburse=SMS_1002",
    "sms.aliyun_template_subsidy=SMS_1003",
    "sms.aliyun_template_alert=SMS_1004",
};

static void test_aliyun_adapter(void **state)
{
    fx *f = *state;
    fw_t_carrier_set_aliyun(f->car, "testsecret");
    open_sms(f, aliyun_over, 7);
    queue_subsidy(f, "A1", "13700000001", 180000);
    queue_subsidy(f, "A2", "13700000002", 123456789);
    g_want = 2;
    assert_true(run_until(f, sent_all, 10000));
    for (int k = 0; k < 2; k++) {
        fw_t_carrier_req r;
        assert_int_equal(fw_t_carrier_get(f->car, k, &r), 0);
        assert_true(r.sig_ok); /* the carrier verified our HMAC-SHA1 signature */
        assert_string_equal(r.template_name, "SMS_1003");
        json_error_t je;
        json_t *p = json_loads(r.content, 0, &je);
        assert_non_null(p);
        const char *amount = json_string_value(json_object_get(p, "amount"));
        assert_string_equal(amount, strcmp(r.out_id, "sub:A1") == 0 ? "1,800.00" : "1,234,567.89");
        assert_string_equal(json_string_value(json_object_get(p, "name")), "张三");
        json_decref(p);
    }
    char *mid = row_text(f, "sub:A1", "message_id");
    assert_true(strncmp(mid, "msg-", 4) == 0); /* the BizId */
    free(mid);

    /* BUSINESS_LIMIT_CONTROL: throttled, retried later */
    fw_t_carrier_throttle(f->car, "13700000003", 2);
    queue_subsidy(f, "A3", "13700000003", 100);
    g_want = 3;
    assert_true(run_until(f, sent_all, 10000));
    expect_col(f, "sub:A3", "attempts", "3");
    /* MOBILE_NUMBER_ILLEGAL: permanent */
    fw_t_carrier_fail_next(f->car, 1, 400);
    queue_subsidy(f, "A4", "13700000004", 100);
    assert_true(run_until(f, none_queued, 5000));
    expect_col(f, "sub:A4", "status", "failed");
    char *err = row_text(f, "sub:A4", "error");
    assert_non_null(strstr(err, "isv.MOBILE_NUMBER_ILLEGAL"));
    free(err);

    /* A timeout after the request was sent is ambiguous: SendSms is not
     * idempotent, so it is not resent. */
    fw_t_carrier_set_delay_ms(f->car, 1500);
    queue_subsidy(f, "A5", "13700000005", 100);
    assert_true(run_until(f, none_queued, 5000));
    expect_col(f, "sub:A5", "status", "failed");
    err = row_text(f, "sub:A5", "error");
    assert_non_null(strstr(err, "not resent"));
    free(err);
    fw_t_carrier_set_delay_ms(f->car, 0);
    run_for(f, 600);
    assert_int_equal(fw_t_carrier_count_out_id(f->car, "sub:A5"), 1);

    /* Crash with rows in `sending`: failed, never sent twice. */
    close_sms(f);
    assert_int_equal(fw_store_exec(f->st, "UPDATE sms_outbox SET status = 'sending'"
                                          " WHERE out_id = 'sub:A2'"),
                     0);
    int before = fw_t_carrier_count(f->car);
    open_sms(f, aliyun_over, 7);
    run_for(f, 300);
    expect_col(f, "sub:A2", "status", "failed");
    err = row_text(f, "sub:A2", "error");
    assert_non_null(strstr(err, "not resent (carrier not idempotent)"));
    free(err);
    assert_int_equal(fw_t_carrier_count(f->car), before);
}

/* ---- HTTP from a helper thread (the server runs on our loop) ---- */

typedef struct http_call {
    int port;
    const char *method, *path, *token, *body;
    int status;
    char *resp;
    volatile int done;
} http_call;

static void *http_thread(void *arg)
{
    http_call *c = arg;
    c->status = fw_t_http(c->port, c->method, c->path, c->token, c->body, &c->resp);
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static http_call *g_call;
static int call_done(fx *f)
{
    return __atomic_load_n(&g_call->done, __ATOMIC_SEQ_CST);
}

static int http(fx *f, int port, const char *method, const char *path, const char *token,
                const char *body, char **resp)
{
    http_call c = {port, method, path, token, body, -1, NULL, 0};
    pthread_t t;
    g_call = &c;
    pthread_create(&t, NULL, http_thread, &c);
    assert_true(run_until(f, call_done, 10000));
    pthread_join(t, NULL);
    if (resp)
        *resp = c.resp;
    else
        free(c.resp);
    return c.status;
}

static void test_dlr_and_api(void **state)
{
    fx *f = *state;
    char err[512], listen[64], tokens[700];
    open_sms(f, NULL, 0);
    snprintf(tokens, sizeof tokens, "%s/tokens", f->dir);
    fw_t_write_file(tokens, "viewer-token viewer vera\n");
    int hport = fw_t_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", hport);
    fw_http *h = fw_http_start(f->base, listen, tokens, err, sizeof err);
    if (!h)
        fail_msg("http: %s", err);
    fw_sms_register_http(f->sms, h);

    queue_subsidy(f, "R1", "13800000011", 100);
    queue_subsidy(f, "R2", "13800000012", 100);
    g_want = 2;
    assert_true(run_until(f, sent_all, 10000));
    char *mid = row_text(f, "sub:R1", "message_id");

    char body[300];
    snprintf(body, sizeof body,
             "{\"message_id\":\"%s\",\"out_id\":\"sub:R1\",\"status\":\"DELIVERED\"}", mid);
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", NULL, body, NULL), 401);
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "wrong", body, NULL), 401);
    expect_col(f, "sub:R1", "status", "sent");
    char *resp = NULL;
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret", body, &resp), 200);
    assert_non_null(strstr(resp, "delivered"));
    free(resp);
    expect_col(f, "sub:R1", "status", "delivered");
    /* repeated: idempotent */
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret", body, NULL), 200);
    expect_col(f, "sub:R1", "status", "delivered");
    /* a contradicting late receipt does not move it back */
    snprintf(body, sizeof body, "{\"out_id\":\"sub:R1\",\"status\":\"UNDELIVERED\"}");
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret", body, NULL), 200);
    expect_col(f, "sub:R1", "status", "delivered");
    /* by message_id only, undelivered with the carrier's error */
    char *mid2 = row_text(f, "sub:R2", "message_id");
    snprintf(body, sizeof body,
             "{\"message_id\":\"%s\",\"status\":\"UNDELIVERED\",\"error\":\"MK:0001\"}", mid2);
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret", body, NULL), 200);
    expect_col(f, "sub:R2", "status", "undelivered");
    expect_col(f, "sub:R2", "dlr_error", "MK:0001");
    free(mid2);
    /* unknown, malformed */
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret",
                          "{\"out_id\":\"nope\",\"status\":\"DELIVERED\"}", NULL),
                     404);
    assert_int_equal(http(f, hport, "POST", "/sms/dlr", "dlr-s3cret",
                          "{\"out_id\":\"sub:R2\",\"status\":\"READ\"}", NULL),
                     400);
    /* a receipt for a row still queued moves it forward (and it is not sent) */
    fw_t_carrier_stop(f->car);
    f->car = NULL;
    queue_subsidy(f, "R3", "13800000013", 100);
    run_for(f, 200);
    assert_int_equal(
        http(f, hport, "POST", "/sms/dlr", "dlr-s3cret",
             "{\"out_id\":\"sub:R3\",\"message_id\":\"m-R3\",\"status\":\"DELIVERED\"}", NULL),
        200);
    expect_col(f, "sub:R3", "status", "delivered");
    expect_col(f, "sub:R3", "message_id", "m-R3");
    /* aliyun's SmsReport push: an array, secret in the URL */
    assert_int_equal(http(f, hport, "POST", "/sms/dlr?secret=dlr-s3cret", NULL,
                          "[{\"phone_number\":\"13800000012\",\"success\":false,"
                          "\"err_code\":\"DELIVRD\",\"biz_id\":\"x\",\"out_id\":\"sub:nope\"}]",
                          &resp),
                     200);
    assert_non_null(strstr(resp, "\"code\": 0") ? resp : strstr(resp, "\"code\":0"));
    free(resp);

    /* GET /api/sms */
    assert_int_equal(http(f, hport, "GET", "/api/sms", NULL, NULL, NULL), 401);
    assert_int_equal(http(f, hport, "GET", "/api/sms?status=delivered&kind=subsidy", "viewer-token",
                          NULL, &resp),
                     200);
    json_error_t je;
    json_t *o = json_loads(resp, 0, &je);
    assert_non_null(o);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *it = json_array_get(items, 0); /* newest first */
    assert_string_equal(json_string_value(json_object_get(it, "out_id")), "sub:R3");
    assert_string_equal(json_string_value(json_object_get(it, "phone")), "138****0013");
    assert_non_null(json_object_get(it, "segments"));
    assert_non_null(json_object_get(it, "attempts"));
    assert_non_null(json_object_get(it, "queued_at"));
    assert_non_null(json_object_get(it, "sent_at"));
    assert_null(strstr(resp, "13800000013"));
    json_decref(o);
    free(resp);
    assert_int_equal(http(f, hport, "GET", "/api/sms?status=nope", "viewer-token", NULL, NULL),
                     400);
    free(mid);
    fw_http_stop(h);
}

static int64_t g_clock_offset;
static int64_t shifted_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + g_clock_offset;
}

static void test_quiet_hours(void **state)
{
    fx *f = *state;
    fw_time_set_zone(8 * 60);
    /* put the business clock at 23:00 today */
    int64_t now = shifted_clock();
    int y, mo, d, h, mi, s, wd;
    fw_time_local(now, &y, &mo, &d, &h, &mi, &s, &wd);
    g_clock_offset = fw_time_from_local(y, mo, d, 23, 0, 0) - now;
    fw_clock_set(shifted_clock);
    const char *q[] = {"sms.quiet_hours=22:00-08:00"};
    open_sms(f, q, 1);
    queue_subsidy(f, "Q1", "13800000021", 100);
    json_t *alert =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "alert_id", "AL-1", "rule", "over_balance", "level",
                  "red", "message", "超过可用余额", "unit_code", "101001");
    assert_int_equal(fw_sms_enqueue_alert(f->sms, "al:AL-1:s1", "13800000022", "赵", alert, 1), 0);
    json_object_set_new(alert, "level", json_string("yellow"));
    assert_int_equal(fw_sms_enqueue_alert(f->sms, "al:AL-1:s2", "13800000023", "钱", alert, 0), 0);
    json_decref(alert);
    fw_sms_kick(f->sms);
    g_want = 1;
    assert_true(run_until(f, sent_all, 5000));
    run_for(f, 500);
    /* only the red alert went out at 23:00 */
    expect_col(f, "al:AL-1:s1", "status", "sent");
    expect_col(f, "sub:Q1", "status", "queued");
    expect_col(f, "al:AL-1:s2", "status", "queued");
    assert_int_equal(fw_t_carrier_count(f->car), 1);
    /* 07:59:50 the next morning: still quiet */
    g_clock_offset += 8 * 3600 + 59 * 60 + 50; /* 23:00 -> 07:59:50 */
    fw_sms_kick(f->sms);
    run_for(f, 300);
    assert_int_equal(fw_t_carrier_count(f->car), 1);
    /* 08:00:02: the rest go */
    g_clock_offset += 12;
    fw_sms_kick(f->sms);
    g_want = 3;
    assert_true(run_until(f, sent_all, 5000));
    assert_int_equal(fw_t_carrier_count(f->car), 3);
}

static void test_rate_limit(void **state)
{
    fx *f = *state;
    const char *r[] = {"sms.rate=40"};
    open_sms(f, r, 1);
    for (int i = 0; i < 120; i++) {
        char id[16], phone[16];
        snprintf(id, sizeof id, "L%d", i);
        snprintf(phone, sizeof phone, "131%08d", i);
        queue_subsidy(f, id, phone, 100);
    }
    int64_t t0 = mono_now_ms();
    g_want = 120;
    assert_true(run_until(f, sent_all, 20000));
    int64_t ms = mono_now_ms() - t0;
    int peak = fw_t_carrier_max_per_second(f->car);
    print_message("rate 40/s: 120 SMS in %lld ms, busiest second %d\n", (long long)ms, peak);
    /* no 1 s window of our send times holds more than 40; the carrier sees
     * them with some jitter: allow 3 more */
    assert_true(peak <= 43);
    assert_true(peak >= 30);
    assert_true(ms >= 2000); /* 120 at 40/s: at least two full windows */
}

static void test_per_number_interval(void **state)
{
    fx *f = *state;
    const char *r[] = {"sms.per_number_interval=1s"};
    open_sms(f, r, 1);
    queue_subsidy(f, "N1", "13800000031", 100);
    queue_subsidy(f, "N2", "13800000031", 200);
    queue_subsidy(f, "N3", "13800000032", 300);
    g_want = 3;
    assert_true(run_until(f, sent_all, 5000));
    fw_t_carrier_req a = {0}, b = {0};
    int ia = -1, ib = -1;
    for (int k = 0; k < 3; k++) {
        fw_t_carrier_req r0;
        fw_t_carrier_get(f->car, k, &r0);
        if (strcmp(r0.out_id, "sub:N1") == 0)
            ia = k, a = r0;
        if (strcmp(r0.out_id, "sub:N2") == 0)
            ib = k, b = r0;
    }
    assert_true(ia >= 0 && ib >= 0);
    int64_t gap = b.at_ms > a.at_ms ? b.at_ms - a.at_ms : a.at_ms - b.at_ms;
    assert_true(gap >= 900);
}

static int g_post_status = 0;
static char g_post_body[200];
static void on_post(void *ud, long status, const char *body, const char *error)
{
    g_post_status = (int)status;
    snprintf(g_post_body, sizeof g_post_body, "%s", body ? body : error);
}
static int posted(fx *f)
{
    return g_post_status != 0;
}

static void test_shared_http_client_and_shutdown(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    const char *hdr[] = {"Content-Type: application/json", "Authorization: Bearer carrier-token",
                         NULL};
    assert_int_equal(fw_sms_http_post(f->sms, f->url, hdr,
                                      "{\"out_id\":\"w1\",\"phone\":\"13800000000\",\"sign\":\"x\","
                                      "\"template\":\"alert\",\"content\":\"hi\"}",
                                      2000, on_post, NULL),
                     0);
    assert_true(run_until(f, posted, 5000));
    assert_int_equal(g_post_status, 200);
    assert_non_null(strstr(g_post_body, "message_id"));
    /* shutdown with a request in flight: the loop runs until it finishes */
    fw_t_carrier_set_delay_ms(f->car, 300);
    queue_subsidy(f, "X1", "13800000041", 100);
    run_for(f, 100);
    expect_col(f, "sub:X1", "status", "sending");
    fw_sms_shutdown(f->sms, 2000);
    expect_col(f, "sub:X1", "status", "sent");
    /* nothing new starts after shutdown */
    queue_subsidy(f, "X2", "13800000042", 100);
    run_for(f, 300);
    expect_col(f, "sub:X2", "status", "queued");
}

static int log_sent(fx *f)
{
    return fw_sms_count(f->sms, "sent") == 2;
}

static void test_log_carrier_default(void **state)
{
    fx *f = *state;
    char err[512];
    /* only the defaults: carrier `log`, nothing leaves the process */
    f->cfg = fw_config_new();
    fw_config_add_keys(f->cfg, fw_sms_config_keys, fw_sms_config_nkeys);
    const char *q[] = {"sms.quiet_hours=off"};
    assert_int_equal(fw_config_load(f->cfg, NULL, (char *const *)q, 1, err, sizeof err), 0);
    assert_string_equal(fw_config_get(f->cfg, "sms.carrier"), "log");
    assert_int_equal(fw_config_int(f->cfg, "sms.rate"), 50);
    f->sms = fw_sms_new(f->st, f->cfg, f->base, err, sizeof err);
    assert_non_null(f->sms);
    queue_subsidy(f, "G1", "13800000051", 100);
    queue_subsidy(f, "G2", "13800000052", 100);
    assert_true(run_until(f, log_sent, 5000));
    char *m1 = row_text(f, "sub:G1", "message_id");
    char *m2 = row_text(f, "sub:G2", "message_id");
    assert_true(strncmp(m1, "log-", 4) == 0 && strncmp(m2, "log-", 4) == 0);
    assert_string_not_equal(m1, m2);
    free(m1);
    free(m2);
    assert_int_equal(fw_t_carrier_count(f->car), 0);
}

static void test_expiry(void **state)
{
    fx *f = *state;
    g_clock_offset = 0;
    fw_clock_set(shifted_clock);
    fw_t_carrier_stop(f->car); /* the carrier is down for good */
    f->car = NULL;
    const char *e[] = {"sms.expiry=1h"};
    open_sms(f, e, 1);
    queue_subsidy(f, "E1", "13800000061", 100);
    run_for(f, 400);
    expect_col(f, "sub:E1", "status", "queued");
    g_clock_offset = 3601; /* an hour later, still not delivered */
    fw_sms_kick(f->sms);
    assert_true(run_until(f, none_queued, 5000));
    expect_col(f, "sub:E1", "status", "expired");
    char *err = row_text(f, "sub:E1", "error");
    assert_non_null(strstr(err, "expired"));
    assert_non_null(strstr(err, "transport"));
    free(err);
}

static int g_cb_ran;
static void shutdown_from_callback(evutil_socket_t fd, short what, void *arg)
{
    fx *f = arg;
    fw_sms_shutdown(f->sms, 2000); /* inside the loop: must not block or break it */
    g_cb_ran = 1;
}
static int cb_ran(fx *f)
{
    return g_cb_ran;
}

static void test_shutdown_inside_loop_and_open_txn(void **state)
{
    fx *f = *state;
    open_sms(f, NULL, 0);
    /* A batch transaction is open: the sender must not commit it for us. */
    fw_event ev;
    fw_decode_error de;
    const char *j = "{\"id\":\"evt-K\",\"payout_id\":\"K1\",\"occurred_at\":"
                    "\"2024-06-05T10:00:00+08:00\",\"unit_code\":\"101001\",\"emp_id\":\"E1\","
                    "\"name\":\"张三\",\"phone\":\"13800000071\",\"kind\":\"补贴\","
                    "\"amount\":\"1.00\",\"paid_at\":\"2024-06-05T10:00:00+08:00\"}";
    assert_int_equal(fw_event_decode("fiscal.subsidy.101001", j, strlen(j), &ev, &de), 0);
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_sms_on_event(f->sms, &ev), 0);
    fw_event_clear(&ev);
    fw_sms_kick(f->sms);
    run_for(f, 200);
    assert_int_equal(fw_t_carrier_count(f->car), 0);
    assert_true(fw_store_in_txn(f->st));
    assert_int_equal(fw_store_commit(f->st), 0);
    g_want = 1;
    assert_true(run_until(f, sent_all, 5000));

    /* fw_sms_shutdown from a loop callback returns at once and leaves the
     * caller's loop running; the in-flight request still completes. */
    fw_t_carrier_set_delay_ms(f->car, 300);
    queue_subsidy(f, "K2", "13800000072", 100);
    run_for(f, 100);
    expect_col(f, "sub:K2", "status", "sending");
    g_cb_ran = 0;
    struct event *ev2 = evtimer_new(f->base, shutdown_from_callback, f);
    struct timeval tv = {0, 1000};
    evtimer_add(ev2, &tv);
    int64_t t0 = mono_now_ms();
    assert_true(run_until(f, cb_ran, 2000));
    assert_true(mono_now_ms() - t0 < 250);
    g_want = 2;
    assert_true(run_until(f, sent_all, 3000));
    event_free(ev2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_payroll_run_reaches_carrier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_then_ok_and_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled_number_others_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_carrier_down_then_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_reconciliation_generic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliyun_adapter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlr_and_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quiet_hours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_number_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_http_client_and_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_carrier_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_inside_loop_and_open_txn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
