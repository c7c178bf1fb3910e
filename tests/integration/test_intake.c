/*
 * test_intake.c - the spine against a real nats-server.
 *
 * Each test starts its own nats-server (JetStream, free loopback port) and
 * the fundwatch daemon as a child process, publishes a realistic mix of the
 * five inbound kinds plus malformed messages, and checks from outside the
 * process: every valid message stored exactly once, balances exact, no
 * voucher event applied out of order (no flow alert), malformed messages on
 * the DLQ subject with their headers - also across a SIGKILL of the daemon
 * and a restart of nats-server in the middle of the stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nats/nats.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/harness.h"

typedef struct corpus {
    fw_t_msgs m;
    int vouchers;
    int64_t voucher_total_fen; /* all vouchers are paid in the end */
    int sms_expected;
} corpus;

static const char *const k_units[] = {"101001", "101002", "102001", "103005"};

/* ~n_vouchers * 4 voucher events, indicators, payroll, reimbursements,
 * subsidies and a sprinkling of malformed messages.  `tag` keeps ids unique
 * across two corpora published into one stream. */
static void build_corpus(corpus *c, const char *tag, int n_vouchers, int with_indicators)
{
    char subj[128];
    int evt = 0;
    if (with_indicators) {
        for (int u = 0; u < 4; u++) {
            snprintf(subj, sizeof subj, "fiscal.indicator.%s", k_units[u]);
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-ind-%d\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+"
                "08:00\","
                "\"doc_no\":\"三财预〔2024〕%d号\",\"indicator_id\":\"ZB2024-%s-0001\",\"year\":"
                "2024,"
                "\"unit_code\":\"%s\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
                "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"900000000.00\","
                "\"note\":\"年初预算\"}",
                tag, u, u + 1, k_units[u], k_units[u]);
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-ind-s%d\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+"
                "08:00\","
                "\"doc_no\":\"三财预〔2024〕%d号\",\"indicator_id\":\"ZB2024-%s-0009\",\"year\":"
                "2024,"
                "\"unit_code\":\"%s\",\"func_class\":\"2080501\",\"econ_class\":\"30101\","
                "\"fund_type\":\"1\",\"amount\":\"90000000.00\",\"flags\":[\"salary\"]}",
                tag, u, u + 11, k_units[u], k_units[u]);
        }
    }
    for (int v = 0; v < n_vouchers; v++) {
        const char *unit = k_units[v % 4];
        snprintf(subj, sizeof subj, "fiscal.voucher.%s", unit);
        int64_t fen = 100000 + (int64_t)((v * 7919) % 900000); /* 1,000.00 .. 10,000.00 */
        int minute = v % 50;
        c->voucher_total_fen += fen;
        c->vouchers++;
        fw_t_msgs_add(
            &c->m, subj, 1,
            "{\"id\":\"%s-v%d-c\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:%02d:00+08:"
            "00\","
            "\"voucher_no\":\"ZF%s%06d\",\"year\":2024,\"unit_code\":\"%s\",\"unit_name\":"
            "\"测试单位\","
            "\"indicator_id\":\"ZB2024-%s-0001\",\"func_class\":\"2050201\",\"econ_class\":"
            "\"30201\","
            "\"pay_method\":\"direct\",\"settle_method\":\"transfer\",\"payee_name\":\"某某公司%"
            "d\","
            "\"payee_account\":\"6217%012d\",\"payee_bank\":\"中国建设银行\",\"payee_type\":"
            "\"company\","
            "\"amount\":\"%lld.%02lld\",\"purpose\":\"办公用品采购%d\"}",
            tag, v, minute, tag, v, unit, unit, v, v, (long long)(fen / 100),
            (long long)(fen % 100), v);
        static const char *const flow[] = {"signed", "sent", "paid"};
        for (int f = 0; f < 3; f++)
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-v%d-%d\",\"event\":\"%s\",\"occurred_at\":\"2024-06-12T11:%02d:%02d+"
                "08:00\","
                "\"voucher_no\":\"ZF%s%06d\",\"unit_code\":\"%s\"}",
                tag, v, f, flow[f], minute, f * 10, tag, v, unit);
        if (v % 97 == 0) {
            /* Complete but for the amount, sent as a JSON number. */
            fw_t_msgs_add(
                &c->m, subj, 0,
                "{\"id\":\"%s-bad-%d\",\"event\":\"created\","
                "\"occurred_at\":\"2024-06-12T10:00:00+08:00\",\"voucher_no\":\"ZFBAD%s%d\","
                "\"year\":2024,\"unit_code\":\"%s\",\"unit_name\":\"测试单位\","
                "\"indicator_id\":\"ZB2024-%s-0001\",\"func_class\":\"2050201\","
                "\"econ_class\":\"30201\",\"pay_method\":\"direct\",\"settle_method\":\"transfer\","
                "\"payee_name\":\"某某公司\",\"payee_account\":\"6217000000000000\","
                "\"payee_bank\":\"中国建设银行\",\"payee_type\":\"company\",\"amount\":12.5,"
                "\"purpose\":\"办公用品采购\"}",
                tag, v, tag, v, unit, unit);
        }
        if (v % 10 == 0) {
            snprintf(subj, sizeof subj, "fiscal.reimburse.%s", unit);
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-r%d\",\"reimb_id\":\"BX%s-%d\",\"occurred_at\":\"2024-06-12T10:00:00+"
                "08:00\","
                "\"unit_code\":\"%s\",\"emp_id\":\"E%04d\",\"name\":\"张三\",\"phone\":\"1380000%"
                "04d\","
                "\"amount\":\"1234.00\",\"card_last4\":\"1234\",\"spent_on\":\"2024-05-28\","
                "\"paid_at\":\"2024-06-05T10:00:00+08:00\",\"summary\":\"差旅费\"}",
                tag, v, tag, v, unit, v % 10000, v % 10000);
            c->sms_expected++;
            snprintf(subj, sizeof subj, "fiscal.subsidy.%s", unit);
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-s%d\",\"payout_id\":\"BT%s-%d\",\"occurred_at\":\"2024-06-12T10:00:"
                "00+08:00\","
                "\"unit_code\":\"%s\",\"emp_id\":\"E%04d\",\"name\":\"李四\",\"phone\":\"1390000%"
                "04d\","
                "\"kind\":\"取暖补贴\",\"amount\":\"1800.00\",\"paid_at\":\"2024-06-05T10:00:00+08:"
                "00\"}",
                tag, v, tag, v, unit, v % 10000, v % 10000);
            c->sms_expected++;
        }
    }
    /* One payroll run per unit, two parts of 3 lines. */
    for (int u = 0; u < 4 && with_indicators; u++) {
        snprintf(subj, sizeof subj, "fiscal.payroll.%s", k_units[u]);
        for (int part = 1; part <= 2; part++) {
            char lines[3000] = "";
            for (int l = 0; l < 3; l++) {
                char line[900];
                snprintf(
                    line, sizeof line,
                    "%s{\"emp_id\":\"E%d%d%d\",\"name\":\"王五\",\"id_no\":\"411202198001011236\","
                    "\"phone\":\"1370000%d%d%d0\",\"account\":\"622202123456789%d%d%d\","
                    "\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"3000.00\"},"
                    "{\"name\":\"津贴补贴\",\"amount\":\"2500.00\"}],"
                    "\"deductions\":[{\"name\":\"养老保险\",\"amount\":\"440.00\"}],"
                    "\"gross\":\"5500.00\",\"net\":\"5060.00\"}",
                    l ? "," : "", u, part, l, u, part, l, u, part, l);
                strcat(lines, line);
                c->sms_expected++;
            }
            fw_t_msgs_add(
                &c->m, subj, 1,
                "{\"id\":\"%s-pay-%d-%d\",\"run_id\":\"GZ-%s-%s-202406\",\"part\":%d,\"parts\":2,"
                "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":\"%s\","
                "\"unit_name\":\"测试单位\",\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
                "\"indicator_id\":\"ZB2024-%s-0009\",\"lines\":[%s]}",
                tag, u, part, tag, k_units[u], part, k_units[u], k_units[u], lines);
        }
    }
    /* A subject outside the five kinds, and a unit mismatch. */
    fw_t_msgs_add(&c->m, "fiscal.budget.101001", 0, "{\"id\":\"%s-unknown-%d\"}", tag, evt);
    fw_t_msgs_add(
        &c->m, "fiscal.voucher.101001", 0,
        "{\"id\":\"%s-mismatch\",\"event\":\"paid\",\"occurred_at\":\"2024-06-12T10:00:00+08:00\","
        "\"voucher_no\":\"ZFX\",\"unit_code\":\"999999\"}",
        tag);
}

typedef fw_t_env env;

static int setup(void **state)
{
    env *e = fw_t_env_new("intake");
    assert_non_null(e);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    fw_t_env_free(*state);
    return 0;
}

static void start_daemon(env *e)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/daemon", e->tmp);
    mkdir(dir, 0755);
    assert_int_equal(
        fw_t_daemon_start(&e->d, dir, e->nats.url, NULL, "[sms]\nrate = 1000\nquiet_hours = off\n"),
        0);
}

typedef struct count_wait {
    const char *db;
    int64_t want_events, want_dlq;
} count_wait;

static int all_stored(void *ud)
{
    count_wait *w = ud;
    return fw_t_sql_int(w->db, "SELECT count(*) FROM events") >= w->want_events &&
           fw_t_sql_int(w->db, "SELECT count(*) FROM dlq") >= w->want_dlq;
}

static void publish_all(env *e, corpus *c)
{
    int acked = fw_t_msgs_publish(&c->m, e->nats.url);
    assert_int_equal(acked, c->m.n);
}

/* The balances tell whether any voucher was applied twice or skipped. */
static void check_exact(env *e, const corpus *c, int64_t valid, int64_t malformed)
{
    const char *db = e->d.db;
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM events"), valid);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM dlq"), malformed);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM vouchers WHERE state = 'paid'"),
                     c->vouchers);
    int64_t vouchers_paid =
        fw_t_sql_int(db, "SELECT sum(paid) FROM indicators WHERE indicator_id LIKE '%-0001'");
    assert_int_equal(vouchers_paid, c->voucher_total_fen);
    assert_int_equal(fw_t_sql_int(db, "SELECT sum(frozen) FROM indicators"), 0);
    /* In-order processing: no voucher event was ever out of order. */
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM alerts WHERE rule LIKE 'flow_%'"), 0);
    /* Every stored message's stream sequence is distinct. */
    assert_int_equal(fw_t_sql_int(db, "SELECT count(DISTINCT stream_seq) FROM events"), valid);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM sms_outbox WHERE kind != 'alert'"),
                     c->sms_expected);
}

/* DLQ copies: subscribe before publishing, count them and check headers. */
typedef struct dlq_seen {
    int n, bad_header;
    char first_error[256];
} dlq_seen;

static void on_dlq(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub;
    dlq_seen *d = closure;
    const char *err = NULL, *orig = NULL;
    if (natsMsgHeader_Get(msg, "Fundwatch-Error", &err) != NATS_OK ||
        natsMsgHeader_Get(msg, "Fundwatch-Subject", &orig) != NATS_OK || !strchr(err, ':'))
        d->bad_header++;
    else if (!d->first_error[0])
        snprintf(d->first_error, sizeof d->first_error, "%s", err);
    d->n++;
    natsMsg_Destroy(msg);
}

static void test_exactly_once_and_dlq(void **state)
{
    env *e = *state;
    corpus c = {0};
    build_corpus(&c, "a", 2400, 1);
    assert_true(c.m.n >= 10000);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    dlq_seen seen = {0};
    assert_int_equal(natsConnection_ConnectTo(&nc, e->nats.url), NATS_OK);
    assert_int_equal(natsConnection_Subscribe(&sub, nc, "fundwatch.dlq.>", on_dlq, &seen), NATS_OK);
    natsConnection_Flush(nc);

    start_daemon(e);
    publish_all(e, &c);
    count_wait w = {e->d.db, c.m.valid, c.m.malformed};
    assert_true(fw_t_wait_until(all_stored, &w, 240000));
    sleep(1); /* anything more would be a duplicate: give it the chance */
    check_exact(e, &c, c.m.valid, c.m.malformed);
    for (int i = 0; i < 100 && seen.n < c.m.malformed; i++)
        usleep(50000);
    assert_int_equal(seen.n, c.m.malformed);
    assert_int_equal(seen.bad_header, 0);
    assert_non_null(strstr(seen.first_error, "amount"));
    assert_int_equal(fw_t_sql_int(e->d.db, "SELECT count(*) FROM dlq WHERE kind = 'unknown'"), 1);

    /* readyz, metrics */
    char *body = NULL;
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/readyz", NULL, NULL, &body), 200);
    free(body);
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/metrics", NULL, NULL, &body), 200);
    assert_non_null(strstr(body, "fundwatch_messages_total{kind=\"voucher\"}"));
    assert_non_null(strstr(body, "fundwatch_dlq_total{kind=\"voucher\",field=\"amount\"}"));
    assert_non_null(strstr(body, "fundwatch_commit_seconds_bucket"));
    free(body);

    /* SIGTERM drains and exits 0. */
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    fw_t_msgs_free(&c.m);
}

static int some_stored(void *ud)
{
    count_wait *w = ud;
    return fw_t_sql_int(w->db, "SELECT count(*) FROM events") >= w->want_events;
}

static void test_sigkill_mid_stream(void **state)
{
    env *e = *state;
    corpus c = {0};
    build_corpus(&c, "k", 2400, 1);
    start_daemon(e);
    publish_all(e, &c);
    count_wait part = {e->d.db, c.m.valid / 4, 0};
    assert_true(fw_t_wait_until(some_stored, &part, 120000));
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGKILL), 128 + SIGKILL);
    int64_t at_kill = fw_t_sql_int(e->d.db, "SELECT count(*) FROM events");
    assert_true(at_kill < c.m.valid); /* it really was mid-stream */
    assert_int_equal(fw_t_daemon_restart(&e->d), 0);
    count_wait w = {e->d.db, c.m.valid, c.m.malformed};
    assert_true(fw_t_wait_until(all_stored, &w, 240000));
    sleep(1);
    check_exact(e, &c, c.m.valid, c.m.malformed);
    fw_t_msgs_free(&c.m);
}

static void test_nats_restart_mid_stream(void **state)
{
    env *e = *state;
    corpus c1 = {0}, c2 = {0};
    build_corpus(&c1, "p", 1200, 1);
    build_corpus(&c2, "q", 1200, 0);
    start_daemon(e);
    publish_all(e, &c1);
    count_wait part = {e->d.db, c1.m.valid / 3, 0};
    assert_true(fw_t_wait_until(some_stored, &part, 120000));
    fw_t_nats_stop(&e->nats);
    usleep(500000);
    assert_int_equal(fw_t_nats_start(&e->nats, e->tmp), 0);
    publish_all(e, &c2);
    count_wait w = {e->d.db, c1.m.valid + c2.m.valid, c1.m.malformed + c2.m.malformed};
    assert_true(fw_t_wait_until(all_stored, &w, 240000));
    sleep(1);
    corpus all = c1;
    all.vouchers += c2.vouchers;
    all.voucher_total_fen += c2.voucher_total_fen;
    all.sms_expected += c2.sms_expected;
    check_exact(e, &all, c1.m.valid + c2.m.valid, c1.m.malformed + c2.m.malformed);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    fw_t_msgs_free(&c1.m);
    fw_t_msgs_free(&c2.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once_and_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_restart_mid_stream, setup, teardown),
    };
    if (getenv("FW_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
