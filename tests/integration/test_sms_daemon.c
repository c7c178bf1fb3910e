/*
 * test_sms_daemon.c - payroll SMS through the whole daemon to a carrier,
 * across a SIGKILL in the middle of sending.
 *
 * A fake generic-json carrier (tests/support/carrier.c) runs in this process;
 * nats-server and the daemon are child processes.  A 1,000-line payroll run
 * (one line with broken arithmetic) must give exactly 999 SMS at the carrier
 * with the right figures.  The daemon is killed with SIGKILL while SMS are
 * going out and restarted: every out_id reaches the carrier, and the only
 * out_ids sent twice are the ones that were in flight at the kill (at most
 * sms.max_inflight), which the carrier deduplicates by out_id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/carrier.c"
#include "tests/support/harness.h"

#define LINES 1000
#define PART_LINES 250

static char *payroll_part(int part, int parts, int first)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf + len, cap - len,
                            "{\"id\":\"pay-%d\",\"run_id\":\"GZ-101001-202406\",\"part\":%d,"
                            "\"parts\":%d,\"occurred_at\":\"2024-06-12T08:00:00+08:00\","
                            "\"unit_code\":\"101001\",\"unit_name\":\"三门峡市教育局\","
                            "\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
                            "\"indicator_id\":\"ZB2024-101001-0001\",\"lines\":[",
                            part, part, parts);
    for (int i = first; i < first + PART_LINES; i++) {
        /* Line 7 nets one fen too much: an alert, and no SMS. */
        const char *net = i == 7 ? "5084.01" : "5084.00";
        len += (size_t)snprintf(
            buf + len, cap - len,
            "%s{\"emp_id\":\"E%05d\",\"name\":\"张三\",\"id_no\":\"411202198001011236\","
            "\"phone\":\"138%08d\",\"account\":\"62220212345%08d\","
            "\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"3000.00\"},"
            "{\"name\":\"薪级工资\",\"amount\":\"1200.00\"},{\"name\":\"津贴补贴\",\"amount\":"
            "\"2500.00\"}],"
            "\"deductions\":[{\"name\":\"养老保险\",\"amount\":\"480.00\"},"
            "{\"name\":\"职业年金\",\"amount\":\"240.00\"},{\"name\":\"医疗保险\",\"amount\":\"120."
            "00\"},"
            "{\"name\":\"住房公积金\",\"amount\":\"720.00\"},{\"name\":\"个人所得税\",\"amount\":"
            "\"56.00\"}],"
            "\"gross\":\"6700.00\",\"net\":\"%s\"}",
            i == first ? "" : ",", i, i, i, net);
    }
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    return buf;
}

static void test_payroll_sms_across_sigkill(void **state)
{
    (void)state;
    char *tmp = fw_t_tmpdir("smsd");
    fw_t_nats nats = {0};
    assert_int_equal(fw_t_nats_start(&nats, tmp), 0);
    fw_t_carrier *car = fw_t_carrier_start(0);
    assert_non_null(car);
    fw_t_carrier_set_token(car, "carrier-token");
    /* Slow answers keep many requests in flight when the daemon dies. */
    fw_t_carrier_set_delay_ms(car, 20);
    char url[128], extra[512], dir[600];
    fw_t_carrier_url(fw_t_carrier_port(car), url, sizeof url);
    snprintf(extra, sizeof extra,
             "[sms]\ncarrier = generic-json\nurl = %s\ntoken = carrier-token\nrate = 200\n"
             "quiet_hours = off\nper_number_interval = 0\nmax_inflight = 16\n",
             url);
    snprintf(dir, sizeof dir, "%s/daemon", tmp);
    mkdir(dir, 0755);
    fw_t_daemon d = {0};
    assert_int_equal(fw_t_daemon_start(&d, dir, nats.url, NULL, extra), 0);

    const char *subjects[LINES / PART_LINES];
    char *bodies[LINES / PART_LINES];
    for (int p = 0; p < LINES / PART_LINES; p++) {
        subjects[p] = "fiscal.payroll.101001";
        bodies[p] = payroll_part(p + 1, LINES / PART_LINES, p * PART_LINES);
    }
    assert_int_equal(
        fw_t_js_publish(nats.url, LINES / PART_LINES, subjects, (const char *const *)bodies),
        LINES / PART_LINES);

    /* Kill it while sending: some SMS out, most still queued. */
    for (int i = 0; i < 1500 && fw_t_carrier_unique(car) < 150; i++)
        usleep(20000);
    assert_true(fw_t_carrier_unique(car) >= 150);
    assert_int_equal(fw_t_daemon_kill(&d, SIGKILL), 128 + SIGKILL);
    int at_kill = fw_t_carrier_unique(car);
    assert_true(at_kill < LINES - 1);
    int64_t sending =
        fw_t_sql_int(d.db, "SELECT count(*) FROM sms_outbox WHERE status = 'sending'");

    assert_int_equal(fw_t_daemon_restart(&d), 0);
    for (int i = 0; i < 3000 && fw_t_carrier_unique(car) < LINES - 1; i++)
        usleep(20000);
    for (int i = 0; i < 500 && fw_t_sql_int(d.db, "SELECT count(*) FROM sms_outbox WHERE "
                                                  "status = 'sent'") < LINES - 1;
         i++)
        usleep(20000);

    assert_int_equal(fw_t_carrier_unique(car), LINES - 1);
    assert_int_equal(fw_t_sql_int(d.db, "SELECT count(*) FROM sms_outbox"), LINES - 1);
    assert_int_equal(fw_t_sql_int(d.db, "SELECT count(*) FROM sms_outbox WHERE status = 'sent'"),
                     LINES - 1);
    assert_int_equal(fw_t_sql_int(d.db, "SELECT count(*) FROM alerts WHERE rule = "
                                        "'payroll_arithmetic'"),
                     1);
    /* The broken line got no SMS; the others carry the right figures. */
    assert_int_equal(fw_t_carrier_count_out_id(car, "pay:GZ-101001-202406:E00007"), 0);
    int dups = fw_t_carrier_count(car) - fw_t_carrier_unique(car);
    assert_true(dups <= 16);          /* only what was in flight at the kill */
    assert_true(dups <= sending + 1); /* ... which the store marked sending */
    fw_t_carrier_req r;
    int checked = 0;
    for (int i = 0; i < fw_t_carrier_count(car) && checked < 20; i++) {
        assert_int_equal(fw_t_carrier_get(car, i, &r), 0);
        assert_non_null(strstr(r.content, "【三门峡财政】"));
        assert_non_null(strstr(r.content, "5,084.00"));
        assert_non_null(strstr(r.content, "6,700.00"));
        assert_string_equal(r.template_name, "payroll");
        checked++;
    }
    /* The daemon's log never shows a whole phone number. */
    char *log = fw_t_read_file(d.log, NULL);
    assert_non_null(log);
    assert_null(strstr(log, "13800000123"));
    free(log);

    assert_int_equal(fw_t_daemon_kill(&d, SIGTERM), 0);
    fw_t_carrier_stop(car);
    fw_t_nats_stop(&nats);
    for (int p = 0; p < LINES / PART_LINES; p++)
        free(bodies[p]);
    fw_t_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payroll_sms_across_sigkill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
