/*
 * test_poison.c - a message a module fails on ("poison") in the middle of
 * a batch: exactly that message is dead-lettered with field `internal`, and
 * every other message of the batch (before and after it) is stored exactly
 * once, with exact ledger sums and exact counters (nothing counted twice).
 *
 * The failure is real: a trigger in the daemon's database file makes the
 * INSERT of one voucher RAISE(ABORT).  The whole stream is published before
 * the daemon starts, so it arrives as a backlog in full batches, with
 * malformed messages, SMS-producing events and alert-raising events on both
 * sides of the poison message in its batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/harness.h"

#define N_VOUCHERS 600
#define POISON 300 /* the voucher whose "created" fails */

typedef struct corpus {
    fw_t_msgs m;
    int sms;
    int64_t paid_fen; /* sum of the vouchers paid in the end (all but the poison) */
} corpus;

static void build_corpus(corpus *c)
{
    fw_t_msgs_add(
        &c->m, "fiscal.indicator.101001", 1,
        "{\"id\":\"ind-1\",\"op\":\"allocate\",\"occurred_at\":\"2024-01-05T09:00:00+08:00\","
        "\"doc_no\":\"三财预〔2024〕1号\",\"indicator_id\":\"ZB2024-101001-0001\",\"year\":2024,"
        "\"unit_code\":\"101001\",\"func_class\":\"2050201\",\"econ_class\":\"30201\","
        "\"fund_type\":\"1\",\"fund_source\":\"一般公共预算\",\"amount\":\"900000000.00\"}");
    for (int v = 0; v < N_VOUCHERS; v++) {
        int64_t fen = 100000 + (int64_t)((v * 7919) % 900000);
        int minute = v % 50;
        if (v != POISON)
            c->paid_fen += fen;
        /* Every 50th voucher is paid in cash over the single limit: an alert. */
        /* Right before the poison: an alert, a malformed message and an SMS
         * in the same batch. */
        int cash = v % 50 == 7 || v == POISON - 1;
        const char *settle = cash ? "cash" : "transfer";
        if (cash)
            fen += 5000000;
        if (cash && v != POISON)
            c->paid_fen += 5000000;
        fw_t_msgs_add(
            &c->m, "fiscal.voucher.101001", 1,
            "{\"id\":\"v%d-c\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:%02d:00+08:"
            "00\","
            "\"voucher_no\":\"ZFP%06d\",\"year\":2024,\"unit_code\":\"101001\",\"unit_name\":"
            "\"测试单位\",\"indicator_id\":\"ZB2024-101001-0001\",\"func_class\":\"2050201\","
            "\"econ_class\":\"30201\",\"pay_method\":\"direct\",\"settle_method\":\"%s\","
            "\"payee_name\":\"某某公司%d\",\"payee_account\":\"6217%012d\",\"payee_bank\":"
            "\"中国建设银行\",\"payee_type\":\"company\",\"amount\":\"%lld.%02lld\","
            "\"purpose\":\"办公用品采购%d\"}",
            v, minute, v, settle, v, v, (long long)(fen / 100), (long long)(fen % 100), v);
        static const char *const flow[] = {"signed", "sent", "paid"};
        for (int f = 0; f < 3; f++)
            fw_t_msgs_add(
                &c->m, "fiscal.voucher.101001", 1,
                "{\"id\":\"v%d-%d\",\"event\":\"%s\",\"occurred_at\":\"2024-06-12T11:%02d:%02d+08:"
                "00\",\"voucher_no\":\"ZFP%06d\",\"unit_code\":\"101001\"}",
                v, f, flow[f], minute, f * 10, v);
        if (v % 40 == 5 || v == POISON - 1) { /* malformed: the amount as a JSON number */
            fw_t_msgs_add(
                &c->m, "fiscal.voucher.101001", 0,
                "{\"id\":\"bad-%d\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:00:00+"
                "08:00\",\"voucher_no\":\"ZFBAD%d\",\"year\":2024,\"unit_code\":\"101001\","
                "\"unit_name\":\"测试单位\",\"indicator_id\":\"ZB2024-101001-0001\","
                "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
                "\"settle_method\":\"transfer\",\"payee_name\":\"某某公司\",\"payee_account\":"
                "\"6217000000000000\",\"payee_bank\":\"中国建设银行\",\"payee_type\":\"company\","
                "\"amount\":12.5,\"purpose\":\"办公用品采购\"}",
                v, v);
        }
        if (v % 20 == 3 || v == POISON - 1) { /* an SMS each */
            fw_t_msgs_add(
                &c->m, "fiscal.reimburse.101001", 1,
                "{\"id\":\"r%d\",\"reimb_id\":\"BX-%d\",\"occurred_at\":\"2024-06-12T10:00:00+08:"
                "00\",\"unit_code\":\"101001\",\"emp_id\":\"E%04d\",\"name\":\"张三\",\"phone\":"
                "\"1380000%04d\",\"amount\":\"1234.00\",\"card_last4\":\"1234\",\"spent_on\":"
                "\"2024-05-28\",\"paid_at\":\"2024-06-05T10:00:00+08:00\",\"summary\":\"差旅费\"}",
                v, v, v, v);
            c->sms++;
        }
    }
}

typedef fw_t_env env;

static int setup(void **state)
{
    env *e = fw_t_env_new("poison");
    assert_non_null(e);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    fw_t_env_free(*state);
    return 0;
}

/* Sum of every series of `name` (name{...} value or name value lines). */
static double metric_sum(const char *body, const char *name)
{
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || (p[nl] != '{' && p[nl] != ' '))
            continue;
        const char *sp = p[nl] == '{' ? strchr(p, '}') : p + nl;
        if (sp)
            sum += strtod(sp + 1, NULL);
    }
    return sum;
}

static void exec_sql(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s\n", err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static void test_poison_mid_batch(void **state)
{
    env *e = *state;
    corpus c = {0};
    build_corpus(&c);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/daemon", e->tmp);
    mkdir(dir, 0755);
    /* First start creates the schema; then the poison trigger goes in. */
    assert_int_equal(
        fw_t_daemon_start(&e->d, dir, e->nats.url, NULL, "[sms]\nrate = 1000\nquiet_hours = off\n"),
        0);
    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    char sql[300];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER poison BEFORE INSERT ON vouchers WHEN NEW.voucher_no = 'ZFP%06d'"
             " BEGIN SELECT RAISE(ABORT, 'poison voucher'); END;",
             POISON);
    exec_sql(e->d.db, sql);

    int acked = fw_t_msgs_publish(&c.m, e->nats.url);
    assert_int_equal(acked, c.m.n);
    assert_int_equal(fw_t_daemon_restart(&e->d), 0);

    const char *db = e->d.db;
    /* The poison message is dead-lettered, so it is neither in events. */
    int64_t want_events = c.m.valid - 1, want_dlq = c.m.malformed + 1;
    assert_true(fw_t_wait_sql(db, "SELECT count(*) FROM events", want_events, 120000));
    assert_true(fw_t_wait_sql(db, "SELECT count(*) FROM dlq", want_dlq, 120000));
    sleep(1); /* anything more would be a duplicate: give it the chance */

    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM events"), want_events);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(DISTINCT stream_seq) FROM events"),
                     want_events);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM dlq"), want_dlq);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM dlq WHERE field = 'internal'"), 1);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM dlq WHERE field = 'internal'"
                                      " AND CAST(body AS TEXT) LIKE '%\"id\":\"v300-c\"%'"
                                      " AND reason LIKE '%poison voucher%'"),
                     1);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(DISTINCT stream_seq) FROM dlq"), want_dlq);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM events WHERE id = 'v300-c'"), 0);
    /* Ledger: every other voucher created once and paid, exact sums. */
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM vouchers"), N_VOUCHERS - 1);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM vouchers WHERE state = 'paid'"),
                     N_VOUCHERS - 1);
    assert_int_equal(fw_t_sql_int(db, "SELECT sum(paid) FROM indicators"), c.paid_fen);
    assert_int_equal(fw_t_sql_int(db, "SELECT sum(frozen) FROM indicators"), 0);
    assert_int_equal(fw_t_sql_int(db, "SELECT count(*) FROM sms_outbox WHERE kind != 'alert'"),
                     c.sms);
    int64_t alerts = fw_t_sql_int(db, "SELECT count(*) FROM alerts");
    assert_true(alerts > 0);

    /* Counters: each message counted once. */
    char *body = NULL;
    assert_int_equal(fw_t_http(e->d.http_port, "GET", "/metrics", NULL, NULL, &body), 200);
    /* Accepted messages: every valid one, the poison included (it was
     * accepted, then failed). */
    assert_int_equal((int64_t)metric_sum(body, "fundwatch_messages_total"), c.m.valid);
    assert_int_equal((int64_t)metric_sum(body, "fundwatch_duplicates_total"), 0);
    assert_int_equal((int64_t)metric_sum(body, "fundwatch_dlq_total"), want_dlq);
    assert_non_null(strstr(body, "fundwatch_dlq_total{kind=\"voucher\",field=\"internal\"} 1"));
    assert_int_equal((int64_t)metric_sum(body, "fundwatch_alerts_created_total"), alerts);
    assert_int_equal((int64_t)metric_sum(body, "fundwatch_sms_queued_total"),
                     fw_t_sql_int(db, "SELECT count(*) FROM sms_outbox"));
    free(body);

    /* The daemon's log: the poison dead-lettered once, no batch failure. */
    char *log = fw_t_read_file(e->d.log, NULL);
    assert_non_null(log);
    int ndlq = 0;
    for (const char *p = log; (p = strstr(p, "intake.dlq")); p++)
        if (strstr(p, "field=internal") && strstr(p, "field=internal") < strchr(p, '\n'))
            ndlq++;
    assert_int_equal(ndlq, 1);
    assert_null(strstr(log, "store.batch_failed"));
    free(log);

    assert_int_equal(fw_t_daemon_kill(&e->d, SIGTERM), 0);
    fw_t_msgs_free(&c.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_poison_mid_batch, setup, teardown),
    };
    if (getenv("FW_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
