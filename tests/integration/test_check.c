/*
 * test_check.c - the pre-payment check (contract §3) from outside the
 * process: NATS request/reply on `fundwatch.check` and `POST /api/check`.
 *
 * One nats-server and one daemon (the shipped rule pack) per test.  An
 * indicator of 3,000.00 yuan is allocated through JetStream; then vouchers
 * that do not exist yet are checked: over the balance (block, with the
 * over_balance message and the available balance), small and clean (allow),
 * a yellow or orange finding only (warn), an unknown indicator (available
 * null, block) and malformed requests ({"error"} naming the field).  The
 * store must not change (balances, alerts, events, vouchers).  The latency
 * of 1,000 NATS checks is printed, not asserted.  Checks are answered on
 * the daemon's check thread: with the loop stuck behind another process's
 * write lock, they are still answered at once, against the committed state.
 * The decisions are also checked with [check] thread = false (the loop
 * answers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <nats/nats.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/harness.h"

#define UNIT "101001"
#define IND "ZB2024-101001-CHK1"
#define BIG_IND "ZB2024-101001-CHK2"

typedef struct env {
    char *tmp;
    fw_t_nats nats;
    fw_t_daemon d;
    natsConnection *nc;
} env;

static int ready(void *ud)
{
    env *e = ud;
    return fw_t_http(e->d.http_port, "GET", "/readyz", NULL, NULL, NULL) == 200;
}

static int setup_with(void **state, const char *extra_conf)
{
    env *e = calloc(1, sizeof *e);
    e->tmp = fw_t_tmpdir("check");
    assert_non_null(e->tmp);
    assert_int_equal(fw_t_nats_start(&e->nats, e->tmp), 0);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/daemon", e->tmp);
    mkdir(dir, 0755);
    char conf[512];
    snprintf(conf, sizeof conf, "[sms]\nrate = 1000\nquiet_hours = off\n%s", extra_conf);
    assert_int_equal(fw_t_daemon_start(&e->d, dir, e->nats.url, NULL, conf), 0);
    assert_true(fw_t_wait_until(ready, e, 30000));
    assert_int_equal(natsConnection_ConnectTo(&e->nc, e->nats.url), NATS_OK);
    *state = e;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "");
}

/* Checks answered on the loop, as before the check thread. */
static int setup_loop(void **state)
{
    return setup_with(state, "[check]\nthread = false\n");
}

static int teardown(void **state)
{
    env *e = *state;
    natsConnection_Destroy(e->nc);
    if (e->d.pid)
        fw_t_daemon_kill(&e->d, SIGKILL);
    fw_t_nats_stop(&e->nats);
    fw_t_rmtree(e->tmp);
    free(e->tmp);
    free(e);
    return 0;
}

static void publish1(env *e, const char *subject, const char *body)
{
    assert_int_equal(fw_t_js_publish(e->nats.url, 1, &subject, &body), 1);
}

static void allocate(env *e, const char *evt_id, const char *indicator, const char *amount)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
             "\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"%s\",\"year\":2024,"
             "\"unit_code\":\"" UNIT "\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
             "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"%s\","
             "\"note\":\"年初预算\"}",
             evt_id, indicator, amount);
    publish1(e, "fiscal.indicator." UNIT, body);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM indicators WHERE indicator_id = '%s'",
             indicator);
    assert_true(fw_t_wait_sql(e->d.db, sql, 1, 60000));
}

/* A voucher `created` body without an `id` (a check needs none). */
static void voucher(char *buf, size_t cap, const char *vno, const char *indicator,
                    const char *amount, const char *settle, const char *purpose)
{
    snprintf(buf, cap,
             "{\"event\":\"created\",\"occurred_at\":\"2024-06-03T10:15:00+08:00\","
             "\"voucher_no\":\"%s\",\"year\":2024,\"unit_code\":\"" UNIT "\","
             "\"unit_name\":\"三门峡市教育局\",\"indicator_id\":\"%s\","
             "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
             "\"settle_method\":\"%s\",\"payee_name\":\"三门峡市某某办公用品有限公司\","
             "\"payee_account\":\"41050166880800000123\",\"payee_bank\":\"中国建设银行三门峡分行\","
             "\"payee_type\":\"company\",\"payer_name\":\"三门峡市教育局\","
             "\"payer_account\":\"41050166880800000001\",\"fund_type\":\"1\","
             "\"amount\":\"%s\",\"purpose\":\"%s\"}",
             vno, indicator, settle, amount, purpose);
}

/* NATS request/reply; the reply parsed (the caller frees it). */
static json_t *nats_check(env *e, const char *body)
{
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000);
    if (s != NATS_OK) {
        print_error("request failed: %s\n", natsStatus_GetText(s));
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &jerr);
    if (!j)
        print_error("reply is not JSON: %.*s\n", natsMsg_GetDataLength(reply),
                    natsMsg_GetData(reply));
    natsMsg_Destroy(reply);
    return j;
}

static json_t *http_check(env *e, const char *body, int *status)
{
    char *resp = NULL;
    *status = fw_t_http(e->d.http_port, "POST", "/api/check", "viewer-token", body, &resp);
    json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
    if (!j)
        print_error("HTTP %d body is not JSON: %s\n", *status, resp ? resp : "(none)");
    free(resp);
    return j;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The hit of `rule` in reply.hits, or NULL. */
static json_t *find_hit(const json_t *reply, const char *rule)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(reply, "hits"), i, h)
    {
        if (jstr(h, "rule") && strcmp(jstr(h, "rule"), rule) == 0)
            return h;
    }
    return NULL;
}

static void print_hits(const char *what, const json_t *reply)
{
    char *s = json_dumps(reply, JSON_COMPACT);
    print_message("%s: %s\n", what, s ? s : "(null)");
    free(s);
}

/* Everything a check must leave alone. */
typedef struct snapshot {
    int64_t allocated, frozen, paid, alerts, events, vouchers, entries, sms, audit;
} snapshot;

static void take_snapshot(env *e, snapshot *s)
{
    const char *db = e->d.db;
    s->allocated = fw_t_sql_int(db, "SELECT total(allocated) FROM indicators");
    s->frozen = fw_t_sql_int(db, "SELECT total(frozen) FROM indicators");
    s->paid = fw_t_sql_int(db, "SELECT total(paid) FROM indicators");
    s->alerts = fw_t_sql_int(db, "SELECT count(*) FROM alerts");
    s->events = fw_t_sql_int(db, "SELECT count(*) FROM events");
    s->vouchers = fw_t_sql_int(db, "SELECT count(*) FROM vouchers");
    s->entries = fw_t_sql_int(db, "SELECT count(*) FROM ledger_entries");
    s->sms = fw_t_sql_int(db, "SELECT count(*) FROM sms_outbox");
    s->audit = fw_t_sql_int(db, "SELECT count(*) FROM audit");
}

static void assert_same_snapshot(const snapshot *a, const snapshot *b)
{
    assert_int_equal(a->allocated, b->allocated);
    assert_int_equal(a->frozen, b->frozen);
    assert_int_equal(a->paid, b->paid);
    assert_int_equal(a->alerts, b->alerts);
    assert_int_equal(a->events, b->events);
    assert_int_equal(a->vouchers, b->vouchers);
    assert_int_equal(a->entries, b->entries);
    assert_int_equal(a->sms, b->sms);
    assert_int_equal(a->audit, b->audit);
}

/* The indicator as GET /api/indicators/{id} shows it. */
static void assert_indicator(env *e, const char *id, const char *allocated, const char *frozen,
                             const char *available)
{
    char path[256], *resp = NULL;
    snprintf(path, sizeof path, "/api/indicators/%s", id);
    assert_int_equal(fw_t_http(e->d.http_port, "GET", path, "viewer-token", NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    assert_string_equal(jstr(j, "allocated"), allocated);
    assert_string_equal(jstr(j, "frozen"), frozen);
    assert_string_equal(jstr(j, "paid"), "0.00");
    assert_string_equal(jstr(j, "available"), available);
    json_decref(j);
}

/* Checks one decision both ways (NATS and HTTP) and returns the NATS reply. */
static json_t *check_both(env *e, const char *body, const char *decision)
{
    json_t *r = nats_check(e, body);
    assert_non_null(r);
    print_hits(decision, r);
    assert_string_equal(jstr(r, "decision"), decision);
    assert_true(json_is_array(json_object_get(r, "hits")));
    assert_non_null(json_object_get(r, "available")); /* present, maybe null */
    int status = 0;
    json_t *h = http_check(e, body, &status);
    assert_non_null(h);
    assert_int_equal(status, 200);
    assert_string_equal(jstr(h, "decision"), decision);
    /* Same answer over both transports. */
    assert_true(json_equal(json_object_get(r, "hits"), json_object_get(h, "hits")));
    assert_true(json_equal(json_object_get(r, "available"), json_object_get(h, "available")));
    json_decref(h);
    return r;
}

static void test_decisions(void **state)
{
    env *e = *state;
    allocate(e, "chk-ind-1", IND, "3000.00");
    allocate(e, "chk-ind-2", BIG_IND, "1000000.00");
    snapshot before, after;
    take_snapshot(e, &before);
    assert_int_equal(before.allocated, 300000 + 100000000);
    char body[2048];

    /* Over the balance: red over_balance, block. */
    voucher(body, sizeof body, "ZF2024CHK0001", IND, "12345.67", "transfer", "办公用品采购");
    json_t *r = check_both(e, body, "block");
    assert_string_equal(jstr(r, "voucher_no"), "ZF2024CHK0001");
    assert_string_equal(jstr(r, "available"), "3000.00");
    json_t *hit = find_hit(r, "over_balance");
    assert_non_null(hit);
    assert_string_equal(jstr(hit, "level"), "red");
    assert_string_equal(jstr(hit, "message"), "支付金额 12345.67 元超过指标可用余额 3000.00 元");
    json_decref(r);

    /* Small, clean: allow with no hits. */
    voucher(body, sizeof body, "ZF2024CHK0002", IND, "500.00", "transfer", "办公用品采购");
    r = check_both(e, body, "allow");
    assert_int_equal(json_array_size(json_object_get(r, "hits")), 0);
    assert_string_equal(jstr(r, "available"), "3000.00");
    assert_string_equal(jstr(r, "voucher_no"), "ZF2024CHK0002");
    json_decref(r);

    /* Exactly the available balance is not over it. */
    voucher(body, sizeof body, "ZF2024CHK0003", IND, "3000.00", "transfer", "办公用品采购");
    r = check_both(e, body, "allow");
    assert_null(find_hit(r, "over_balance"));
    json_decref(r);

    /* A yellow finding only (vague purpose): warn. */
    voucher(body, sizeof body, "ZF2024CHK0004", IND, "500.00", "transfer", "其他");
    r = check_both(e, body, "warn");
    hit = find_hit(r, "vague_purpose");
    assert_non_null(hit);
    assert_string_equal(jstr(hit, "level"), "yellow");
    assert_non_null(jstr(hit, "message"));
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(r, "hits"), i, h)
    {
        assert_string_not_equal(jstr(h, "level"), "red");
    }
    json_decref(r);

    /* Cash over the single limit (orange): warn, never block. */
    voucher(body, sizeof body, "ZF2024CHK0005", BIG_IND, "25000.00", "cash", "办公用品采购");
    r = check_both(e, body, "warn");
    hit = find_hit(r, "cash_over_limit");
    assert_non_null(hit);
    assert_string_equal(jstr(hit, "level"), "orange");
    assert_string_equal(jstr(r, "available"), "1000000.00");
    json_decref(r);

    /* Unknown indicator: available null, unknown_indicator red, block. */
    voucher(body, sizeof body, "ZF2024CHK0006", "ZB2024-101001-NOPE", "100.00", "transfer",
            "办公用品采购");
    r = check_both(e, body, "block");
    assert_true(json_is_null(json_object_get(r, "available")));
    hit = find_hit(r, "unknown_indicator");
    assert_non_null(hit);
    assert_string_equal(jstr(hit, "level"), "red");
    json_decref(r);

    /* Malformed requests: {"error": "..."} naming the field. */
    static const struct {
        const char *from, *to, *field;
    } bad[] = {
        {"\"amount\":\"500.00\"", "\"amount\":500", "amount"},
        {"\"amount\":\"500.00\"", "\"amount\":\"5.001\"", "amount"},
        {"\"voucher_no\":\"ZF2024CHK0007\",", "", "voucher_no"},
        {"\"settle_method\":\"transfer\"", "\"settle_method\":\"barter\"", "settle_method"},
    };
    voucher(body, sizeof body, "ZF2024CHK0007", IND, "500.00", "transfer", "办公用品采购");
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char mal[2048];
        const char *at = strstr(body, bad[k].from);
        assert_non_null(at);
        snprintf(mal, sizeof mal, "%.*s%s%s", (int)(at - body), body, bad[k].to,
                 at + strlen(bad[k].from));
        r = nats_check(e, mal);
        assert_non_null(r);
        print_hits(bad[k].field, r);
        assert_non_null(jstr(r, "error"));
        assert_non_null(strstr(jstr(r, "error"), bad[k].field));
        assert_null(json_object_get(r, "decision"));
        json_decref(r);
        int status = 0;
        r = http_check(e, mal, &status);
        assert_non_null(r);
        assert_int_equal(status, 400);
        assert_non_null(jstr(r, "error"));
        assert_non_null(strstr(jstr(r, "error"), bad[k].field));
        json_decref(r);
    }
    r = nats_check(e, "not json at all");
    assert_non_null(r);
    assert_non_null(jstr(r, "error"));
    json_decref(r);

    /* The check is viewer-readable but not anonymous. */
    assert_int_equal(fw_t_http(e->d.http_port, "POST", "/api/check", NULL, body, NULL), 401);

    /* Nothing changed: balances, alerts, events, vouchers, ledger, SMS, audit. */
    take_snapshot(e, &after);
    assert_same_snapshot(&before, &after);
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM events WHERE body LIKE "
                                           "'%ZF2024CHK%'"),
                     0);
    assert_indicator(e, IND, "3000.00", "0.00", "3000.00");
    assert_indicator(e, BIG_IND, "1000000.00", "0.00", "1000000.00");
    char *resp = NULL;
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/api/vouchers/ZF2024CHK0001", "viewer-token",
                               NULL, &resp),
                     404);
    free(resp);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* The check sees the ledger as it stands: once a real voucher freezes part
 * of the indicator, the same request is judged against the new balance. */
static void test_check_follows_ledger(void **state)
{
    env *e = *state;
    allocate(e, "chk-ind-3", IND, "3000.00");
    char body[2048], created[2300];
    voucher(body, sizeof body, "ZF2024CHK0100", IND, "2000.00", "transfer", "办公用品采购");
    json_t *r = check_both(e, body, "allow");
    json_decref(r);
    /* The same voucher, now really created (with an id). */
    snprintf(created, sizeof created, "{\"id\":\"chk-v100\",%s", body + 1);
    publish1(e, "fiscal.voucher." UNIT, created);
    assert_true(fw_t_wait_sql(
        e->d.db, "SELECT count(*) FROM vouchers WHERE voucher_no = 'ZF2024CHK0100'", 1, 60000));
    voucher(body, sizeof body, "ZF2024CHK0101", IND, "1500.00", "transfer", "办公用品采购");
    r = check_both(e, body, "block");
    assert_string_equal(jstr(r, "available"), "1000.00");
    json_t *hit = find_hit(r, "over_balance");
    assert_non_null(hit);
    assert_string_equal(jstr(hit, "message"), "支付金额 1500.00 元超过指标可用余额 1000.00 元");
    json_decref(r);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* The daemon answers in queue group `fundwatch`: with a second member in
 * that group, each request reaches one of the two, never both. */
typedef struct member {
    int calls;
} member;

static void on_member_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                              void *closure)
{
    (void)sub;
    member *m = closure;
    __atomic_add_fetch(&m->calls, 1, __ATOMIC_SEQ_CST);
    natsConnection_PublishString(nc, natsMsg_GetReply(msg), "{\"decision\":\"from-test\"}");
    natsMsg_Destroy(msg);
}

static void test_queue_group(void **state)
{
    env *e = *state;
    natsConnection *nc2 = NULL;
    natsSubscription *sub = NULL;
    member m = {0};
    assert_int_equal(natsConnection_ConnectTo(&nc2, e->nats.url), NATS_OK);
    assert_int_equal(natsConnection_QueueSubscribe(&sub, nc2, "fundwatch.check", "fundwatch",
                                                   on_member_request, &m),
                     NATS_OK);
    assert_int_equal(natsConnection_Flush(nc2), NATS_OK);
    enum { N = 60 };
    int from_daemon = 0, from_test = 0;
    char body[2048];
    voucher(body, sizeof body, "ZF2024CHKQ", IND, "100.00", "transfer", "办公用品采购");
    for (int i = 0; i < N; i++) {
        natsMsg *reply = NULL;
        assert_int_equal(
            natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000), NATS_OK);
        if (strstr(natsMsg_GetData(reply), "from-test"))
            from_test++;
        else if (strstr(natsMsg_GetData(reply), "\"decision\""))
            from_daemon++;
        natsMsg_Destroy(reply);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc2);
    int calls = __atomic_load_n(&m.calls, __ATOMIC_SEQ_CST);
    print_message("queue group: %d answered by the daemon, %d by the other member (%d calls)\n",
                  from_daemon, from_test, calls);
    assert_int_equal(from_daemon + from_test, N);
    assert_true(from_daemon > 0);
    /* Outside the group the daemon would get every request as well, and the
     * other member would be called N times. */
    assert_true(calls < N);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_latency(void **state)
{
    env *e = *state;
    allocate(e, "chk-ind-4", IND, "3000.00");
    enum { N = 1000 };
    double *lat = calloc(N, sizeof *lat);
    char body[2048];
    int blocks = 0;
    double t_all = mono();
    for (int i = 0; i < N; i++) {
        char vno[32], amount[32];
        snprintf(vno, sizeof vno, "ZF2024LAT%05d", i);
        /* Half over the balance, half not. */
        snprintf(amount, sizeof amount, "%d.%02d", i % 2 ? 4000 + i : 100 + i, i % 100);
        voucher(body, sizeof body, vno, IND, amount, "transfer", "办公用品采购");
        natsMsg *reply = NULL;
        double t0 = mono();
        natsStatus s = natsConnection_RequestString(&reply, e->nc, "fundwatch.check", body, 10000);
        lat[i] = mono() - t0;
        assert_int_equal(s, NATS_OK);
        if (strstr(natsMsg_GetData(reply), "\"block\""))
            blocks++;
        natsMsg_Destroy(reply);
    }
    t_all = mono() - t_all;
    qsort(lat, N, sizeof *lat, cmp_double);
    print_message("fundwatch.check over NATS, %d requests one at a time: p50 %.3f ms, "
                  "p99 %.3f ms, max %.3f ms, %.0f checks/s\n",
                  N, lat[N / 2] * 1e3, lat[N * 99 / 100] * 1e3, lat[N - 1] * 1e3, N / t_all);
    assert_int_equal(blocks, N / 2);
    free(lat);
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM alerts"), 0);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* Checks have a thread of their own (daemon/precheck.h): while the loop is
 * stuck (here: another process holds the database's write lock, so the
 * loop's batch waits in SQLite's busy handler), checks are still answered
 * at once, against the last committed state; once the lock goes, the
 * voucher commits and checks see it. */
static void test_check_while_loop_blocked(void **state)
{
    env *e = *state;
    allocate(e, "chk-ind-5", IND, "3000.00");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(e->d.db, &db), SQLITE_OK);
    /* The daemon may be writing (a tick, an alert or SMS state): wait for
     * the lock as the daemon itself would. */
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    double locked_at = mono();
    char body[2048], created[2300];
    voucher(body, sizeof body, "ZF2024CHK0200", IND, "2000.00", "transfer", "办公用品采购");
    snprintf(created, sizeof created, "{\"id\":\"chk-v200\",%s", body + 1);
    publish1(e, "fiscal.voucher." UNIT, created);
    usleep(200 * 1000); /* the loop has the voucher and waits for the lock */
    voucher(body, sizeof body, "ZF2024CHK0201", IND, "1500.00", "transfer", "办公用品采购");
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double t0 = mono();
        json_t *r = nats_check(e, body);
        double dt = mono() - t0;
        worst = dt > worst ? dt : worst;
        assert_non_null(r);
        assert_string_equal(jstr(r, "decision"), "allow");
        assert_string_equal(jstr(r, "available"), "3000.00"); /* ZF2024CHK0200 not committed */
        json_decref(r);
    }
    double held = mono() - locked_at;
    print_message("20 checks while the loop waited for the write lock: slowest %.3f ms "
                  "(lock held %.0f ms)\n",
                  worst * 1e3, held * 1e3);
    assert_true(worst < 0.5);
    /* The loop's busy wait (5 s) would end the daemon; release well before. */
    assert_true(held < 3.0);
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM vouchers"), 0);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_true(fw_t_wait_sql(
        e->d.db, "SELECT count(*) FROM vouchers WHERE voucher_no = 'ZF2024CHK0200'", 1, 60000));
    json_t *r = nats_check(e, body);
    assert_non_null(r);
    assert_string_equal(jstr(r, "decision"), "block");
    assert_string_equal(jstr(r, "available"), "1000.00");
    json_decref(r);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
}

/* `fundwatch check FILE`: the reply on stdout; exit 3 for block, 0 for
 * allow or warn, 1 when nobody answers. */
static int run_cli_check(env *e, const char *url, const char *body, char *out, size_t cap)
{
    char path[700], cmd[2400];
    snprintf(path, sizeof path, "%s/check-body.json", e->tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s check -c %s -o nats.url=%s --timeout 2000 %s", fw_t_bin(),
             e->d.conf, url, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_check(void **state)
{
    env *e = *state;
    allocate(e, "chk-ind-6", IND, "3000.00");
    char body[2048], out[4096];
    voucher(body, sizeof body, "ZF2024CHK0300", IND, "5000.00", "transfer", "办公用品采购");
    assert_int_equal(run_cli_check(e, e->nats.url, body, out, sizeof out), 3);
    assert_non_null(strstr(out, "\"decision\":\"block\""));
    assert_non_null(strstr(out, "\"available\":\"3000.00\""));
    voucher(body, sizeof body, "ZF2024CHK0301", IND, "100.00", "transfer", "办公用品采购");
    assert_int_equal(run_cli_check(e, e->nats.url, body, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"decision\":\"allow\""));
    /* A malformed body: the daemon's {"error"}, exit 1. */
    assert_int_equal(run_cli_check(e, e->nats.url, "{\"event\":\"created\"}", out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\""));
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    /* Nobody answers. */
    assert_int_equal(run_cli_check(e, e->nats.url, body, out, sizeof out), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_follows_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_while_loop_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decisions, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(test_check_follows_ledger, setup_loop, teardown),
    };
    if (getenv("FW_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
