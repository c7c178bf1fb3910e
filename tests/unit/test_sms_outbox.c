/*
 * test_sms_outbox.c - SMS text and the outbox, without a carrier: phone
 * checks, segment counting, templates, what a payroll run / reimbursement /
 * subsidy / alert queues (contract §2.3-2.5, §6), idempotency by out_id,
 * the 500-character cap, template reload, and `sms list`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/money.h"
#include "daemon/timeutil.h"
#include "sms/sms.h"
#include "tests/support/harness.h"

typedef struct fx {
    char *dir;
    fw_store *st;
    fw_config *cfg;
    fw_sms *sms;
} fx;

static fw_config *make_cfg(const char *const *over, int n)
{
    char err[512];
    fw_config *c = fw_config_new();
    fw_config_add_keys(c, fw_sms_config_keys, fw_sms_config_nkeys);
    if (fw_config_load(c, NULL, (char *const *)over, n, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    return c;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char path[600], err[512];
    f->dir = fw_t_tmpdir("sms-outbox");
    snprintf(path, sizeof path, "%s/fw.db", f->dir);
    static const fw_migration migs[] = {{"sms", fw_sms_schema}};
    f->st = fw_store_open(path, migs, 1, 0, FW_SYNC_NORMAL, err, sizeof err);
    assert_non_null(f->st);
    f->cfg = make_cfg(NULL, 0);
    f->sms = fw_sms_new(f->st, f->cfg, NULL, err, sizeof err);
    if (!f->sms)
        fail_msg("fw_sms_new: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fw_sms_free(f->sms);
    fw_config_free(f->cfg);
    fw_store_close(f->st);
    fw_t_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Decode a real inbound message, as the pipeline does. */
static void decode(const char *subject, const char *json, fw_event *ev)
{
    fw_decode_error e;
    if (fw_event_decode(subject, json, strlen(json), ev, &e) != 0)
        fail_msg("decode %s: %s: %s", subject, e.field, e.reason);
}

static void queue_event(fx *f, const char *subject, const char *json)
{
    fw_event ev;
    decode(subject, json, &ev);
    assert_int_equal(fw_store_begin(f->st), 0);
    assert_int_equal(fw_sms_on_event(f->sms, &ev), 0);
    assert_int_equal(fw_store_commit(f->st), 0);
    fw_event_clear(&ev);
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

static int64_t sql_int(fx *f, const char *sql)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fw_store_db(f->st), sql, -1, &q, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return v;
}

/* A payroll run of n lines.  Line i earns 3000.00 + i fen-steps and so on;
 * line `bad` (or -1) has a net that does not add up. */
static char *payroll_json(const char *event_id, const char *run_id, int n, int bad)
{
    size_t cap = (size_t)n * 800 + 1024, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b + len, cap - len,
                            "{\"id\":\"%s\",\"run_id\":\"%s\",\"part\":1,\"parts\":1,"
                            "\"occurred_at\":\"2024-06-12T08:00:00+08:00\","
                            "\"unit_code\":\"101001\",\"unit_name\":\"三门峡市教育局\","
                            "\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
                            "\"indicator_id\":\"ZB2024-101001-0001\",\"lines\":[",
                            event_id, run_id);
    for (int i = 0; i < n; i++) {
        int64_t post = 300000 + i * 101, grade = 120000, allow = 250000;
        int64_t d1 = 48000, d2 = 24000, d3 = 12000, d4 = 72000, d5 = 5600 + i;
        int64_t gross = post + grade + allow;
        int64_t net = gross - d1 - d2 - d3 - d4 - d5 + (i == bad ? 1 : 0);
        char a[8][32];
        int64_t v[8] = {post, grade, allow, d1, d2, d3, d4, d5};
        for (int k = 0; k < 8; k++)
            fw_money_format(v[k], a[k], sizeof a[k]);
        char g[32], nt[32];
        fw_money_format(gross, g, sizeof g);
        fw_money_format(net, nt, sizeof nt);
        len += (size_t)snprintf(
            b + len, cap - len,
            "%s{\"emp_id\":\"E%04d\",\"name\":\"员工%d\",\"id_no\":\"41120219800101%04d\","
            "\"phone\":\"139%08d\",\"account\":\"6222021234567%06d\","
            "\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"%s\"},"
            "{\"name\":\"薪级工资\",\"amount\":\"%s\"},{\"name\":\"津贴补贴\",\"amount\":\"%s\"}],"
            "\"deductions\":[{\"name\":\"养老保险\",\"amount\":\"%s\"},"
            "{\"name\":\"职业年金\",\"amount\":\"%s\"},{\"name\":\"医疗保险\",\"amount\":\"%s\"},"
            "{\"name\":\"住房公积金\",\"amount\":\"%s\"},{\"name\":\"个人所得税\",\"amount\":\"%"
            "s\"}],"
            "\"gross\":\"%s\",\"net\":\"%s\"}",
            i ? "," : "", i, i, i, i, i, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], g, nt);
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

static void test_phone_check(void **state)
{
    const char *why = NULL;
    assert_true(fw_sms_phone_ok("13800000000", &why));
    assert_true(fw_sms_phone_ok("19912345678", &why));
    assert_false(fw_sms_phone_ok("12800000000", &why)); /* 12x is not mobile */
    assert_non_null(strstr(why, "prefix"));
    assert_false(fw_sms_phone_ok("1380000000", &why)); /* 10 digits */
    assert_false(fw_sms_phone_ok("138000000001", &why));
    assert_false(fw_sms_phone_ok("+8613800000000", &why));
    assert_false(fw_sms_phone_ok("1380000000a", &why));
    assert_false(fw_sms_phone_ok("", &why));
    assert_string_equal(why, "phone: missing");
    assert_false(fw_sms_phone_ok("23800000000", &why));
}

static void test_segments(void **state)
{
    assert_int_equal(fw_sms_text_chars("【三门峡财政】abc"), 10);
    assert_int_equal(fw_sms_segments(1), 1);
    assert_int_equal(fw_sms_segments(70), 1);
    assert_int_equal(fw_sms_segments(71), 2);
    assert_int_equal(fw_sms_segments(134), 2);
    assert_int_equal(fw_sms_segments(135), 3);
    assert_int_equal(fw_sms_segments(500), 8);
}

/* The documented example of Alibaba Cloud's RPC signature (v1, HMAC-SHA1):
 * https://developer.aliyun.com/ask/210168 ("API 签名机制(示例)"): DescribeRegions
 * with AccessKeyId testid, secret testsecret, SignatureNonce
 * 3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf, TimeStamp 2016-02-23T12:46:24Z, GET:
 * Signature CT9X0VtwR86fNWSnsc6v8YGOjuE= (the same value appears in the
 * "Signature mechanism" overview pages, e.g.
 * https://help.aliyun.com/en/document_detail/145075.html). */
static void test_aliyun_signature_documented_example(void **state)
{
    fw_sms_kv p[] = {
        {"TimeStamp", "2016-02-23T12:46:24Z"},
        {"Format", "XML"},
        {"AccessKeyId", "testid"},
        {"Action", "DescribeRegions"},
        {"SignatureMethod", "HMAC-SHA1"},
        {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
        {"Version", "2014-05-26"},
        {"SignatureVersion", "1.0"},
    };
    char sig[64];
    char *sts = NULL, *canon = NULL;
    assert_int_equal(fw_sms_aliyun_sign("GET", p, 8, "testsecret", sig, sizeof sig, &sts, &canon),
                     0);
    assert_string_equal(sts, "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%"
                             "3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-"
                             "83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26TimeStamp%"
                             "3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26");
    assert_string_equal(sig, "CT9X0VtwR86fNWSnsc6v8YGOjuE=");
    free(sts);
    free(canon);

    /* Encoding rules: unreserved kept, space %20 (not +), '*' %2A, '~' kept,
     * UTF-8 bytes encoded one by one. */
    char *e = fw_sms_aliyun_encode("a b*c~d/é{\"}");
    assert_string_equal(e, "a%20b%2Ac~d%2F%C3%A9%7B%22%7D");
    free(e);
}

static void test_payroll_line_content(void **state)
{
    fx *f = *state;
    queue_event(
        f, "fiscal.payroll.101001",
        "{\"id\":\"evt-200001\",\"run_id\":\"GZ-101001-202406\",\"part\":1,\"parts\":1,"
        "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":\"101001\","
        "\"unit_name\":\"三门峡市教育局\",\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\","
        "\"indicator_id\":\"ZB2024-101001-0001\",\"lines\":[{\"emp_id\":\"E0001\","
        "\"name\":\"张三\",\"id_no\":\"411202198001011236\",\"phone\":\"13800000000\","
        "\"account\":\"6222021234567890123\",\"earnings\":[{\"name\":\"岗位工资\",\"amount\":"
        "\"3000.00\"},{\"name\":\"薪级工资\",\"amount\":\"1200.00\"},{\"name\":\"津贴补贴\","
        "\"amount\":\"2500.00\"}],\"deductions\":[{\"name\":\"养老保险\",\"amount\":\"480.00\"},"
        "{\"name\":\"职业年金\",\"amount\":\"240.00\"},{\"name\":\"医疗保险\",\"amount\":"
        "\"120.00\"},{\"name\":\"住房公积金\",\"amount\":\"720.00\"},{\"name\":\"个人所得税\","
        "\"amount\":\"56.00\"}],\"gross\":\"6700.00\",\"net\":\"5084.00\"}]}");
    char *c = row_text(f, "pay:GZ-101001-202406:E0001", "content");
    assert_non_null(c);
    assert_string_equal(
        c, "【三门峡财政】张三您好，您2024年6月工资已发放：应发6,700.00元，扣除养老保险"
           "480.00元、职业年金240.00元、医疗保险120.00元、住房公积金720.00元、个人所"
           "得税56.00元，实发5,084.00元，已存入尾号0123账户。");
    /* never the whole account or ID number */
    assert_null(strstr(c, "6222021234567890123"));
    assert_null(strstr(c, "411202198001011236"));
    char *seg = row_text(f, "pay:GZ-101001-202406:E0001", "segments");
    char expect[8];
    snprintf(expect, sizeof expect, "%d", fw_sms_segments(fw_sms_text_chars(c)));
    assert_string_equal(seg, expect);
    assert_string_equal(seg, "2");
    char *st = row_text(f, "pay:GZ-101001-202406:E0001", "status");
    assert_string_equal(st, "queued");
    char *kind = row_text(f, "pay:GZ-101001-202406:E0001", "kind");
    assert_string_equal(kind, "payroll");
    free(c);
    free(seg);
    free(st);
    free(kind);
}

static void test_payroll_1000_lines(void **state)
{
    fx *f = *state;
    char *j = payroll_json("evt-p1", "GZ-1", 1000, 417);
    queue_event(f, "fiscal.payroll.101001", j);
    /* the line with broken arithmetic gets none; every other exactly one */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM sms_outbox"), 999);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM sms_outbox WHERE status = 'queued'"), 999);
    char *none = row_text(f, "pay:GZ-1:E0417", "content");
    assert_null(none);
    for (int i = 0; i < 1000; i++) {
        if (i == 417)
            continue;
        char out_id[64], want[128], g[48], n[48], d5[48];
        snprintf(out_id, sizeof out_id, "pay:GZ-1:E%04d", i);
        char *c = row_text(f, out_id, "content");
        assert_non_null(c);
        int64_t gross = 300000 + i * 101 + 120000 + 250000;
        int64_t net = gross - 48000 - 24000 - 12000 - 72000 - (5600 + i);
        snprintf(want, sizeof want, "应发%s元", fw_money_format_grouped(gross, g, sizeof g));
        if (!strstr(c, want))
            fail_msg("%s: %s missing from %s", out_id, want, c);
        snprintf(want, sizeof want, "实发%s元", fw_money_format_grouped(net, n, sizeof n));
        if (!strstr(c, want))
            fail_msg("%s: %s missing from %s", out_id, want, c);
        snprintf(want, sizeof want, "个人所得税%s元",
                 fw_money_format_grouped(5600 + i, d5, sizeof d5));
        if (!strstr(c, want))
            fail_msg("%s: %s missing", out_id, want);
        snprintf(want, sizeof want, "员工%d您好", i);
        assert_non_null(strstr(c, want));
        snprintf(want, sizeof want, "尾号%04d账户", i % 10000);
        assert_non_null(strstr(c, want));
        free(c);
        char *phone = row_text(f, out_id, "phone");
        snprintf(want, sizeof want, "139%08d", i);
        assert_string_equal(phone, want);
        free(phone);
    }
    /* A redelivery, and a re-sent run under a new event id: nothing new. */
    queue_event(f, "fiscal.payroll.101001", j);
    free(j);
    j = payroll_json("evt-p1-resent", "GZ-1", 1000, 417);
    queue_event(f, "fiscal.payroll.101001", j);
    free(j);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM sms_outbox"), 999);
    assert_int_equal(fw_sms_count(f->sms, "queued"), 999);
    /* A different run for the same people is new SMS. */
    j = payroll_json("evt-p2", "GZ-2", 3, -1);
    queue_event(f, "fiscal.payroll.101001", j);
    free(j);
    assert_int_equal(fw_sms_count(f->sms, NULL), 1002);
}

static void test_reimburse_subsidy(void **state)
{
    fx *f = *state;
    const char *r = "{\"id\":\"evt-300001\",\"reimb_id\":\"BX2024-0042\","
                    "\"occurred_at\":\"2024-06-05T10:00:00+08:00\",\"unit_code\":\"101001\","
                    "\"emp_id\":\"E0001\",\"name\":\"张三\",\"phone\":\"13800000000\","
                    "\"amount\":\"12345.60\",\"card_last4\":\"1234\",\"spent_on\":\"2024-05-28\","
                    "\"paid_at\":\"2024-06-05T10:00:00+08:00\",\"summary\":\"差旅费\"}";
    queue_event(f, "fiscal.reimburse.101001", r);
    queue_event(f, "fiscal.reimburse.101001", r);
    const char *s = "{\"id\":\"evt-400001\",\"payout_id\":\"BT2024-0007\","
                    "\"occurred_at\":\"2024-06-05T10:00:00+08:00\",\"unit_code\":\"101001\","
                    "\"emp_id\":\"E0001\",\"name\":\"张三\",\"phone\":\"13800000000\","
                    "\"kind\":\"取暖补贴\",\"amount\":\"1800.00\","
                    "\"paid_at\":\"2024-06-05T23:30:00+08:00\"}";
    queue_event(f, "fiscal.subsidy.101001", s);
    char *c = row_text(f, "rmb:BX2024-0042", "content");
    assert_string_equal(
        c, "【三门峡财政】张三您好，您2024年5月28日的公务卡消费（差旅费）已于2024年6月5日"
           "报销12,345.60元，还款至尾号1234的公务卡。");
    free(c);
    c = row_text(f, "sub:BT2024-0007", "content");
    assert_string_equal(
        c, "【三门峡财政】张三您好，您的取暖补贴1,800.00元已于2024年6月5日发放，请注意查收。");
    free(c);
    c = row_text(f, "sub:BT2024-0007", "segments");
    assert_string_equal(c, "1");
    free(c);
    assert_int_equal(fw_sms_count(f->sms, NULL), 2);
}

static void test_bad_phone_failed(void **state)
{
    fx *f = *state;
    const char *s = "{\"id\":\"evt-400002\",\"payout_id\":\"BT-9\","
                    "\"occurred_at\":\"2024-06-05T10:00:00+08:00\",\"unit_code\":\"101001\","
                    "\"emp_id\":\"E0002\",\"name\":\"李四\",\"phone\":\"1380000\","
                    "\"kind\":\"取暖补贴\",\"amount\":\"1800.00\","
                    "\"paid_at\":\"2024-06-05T10:00:00+08:00\"}";
    queue_event(f, "fiscal.subsidy.101001", s);
    char *st = row_text(f, "sub:BT-9", "status");
    char *err = row_text(f, "sub:BT-9", "error");
    assert_string_equal(st, "failed");
    assert_non_null(strstr(err, "phone"));
    free(st);
    free(err);
    assert_int_equal(fw_sms_count(f->sms, "queued"), 0);
}

static void test_long_content_capped(void **state)
{
    fx *f = *state;
    /* A payroll line with 40 deductions: the detail no longer fits in 500
     * characters and is replaced by its count and total. */
    char *b = malloc(20000);
    size_t len = (size_t)sprintf(
        b, "{\"id\":\"evt-L\",\"run_id\":\"GZ-L\",\"part\":1,\"parts\":1,"
           "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":\"101001\","
           "\"period\":\"2024-06\",\"pay_date\":\"2024-06-12\",\"indicator_id\":\"ZB1\","
           "\"lines\":[{\"emp_id\":\"E1\",\"name\":\"王五\",\"id_no\":\"1\",\"phone\":"
           "\"13700000000\",\"account\":\"62220000\",\"earnings\":[{\"name\":\"岗位工资\","
           "\"amount\":\"10000.00\"}],\"deductions\":[");
    for (int i = 0; i < 40; i++)
        len += (size_t)sprintf(b + len, "%s{\"name\":\"代扣款项第%d项\",\"amount\":\"10.00\"}",
                               i ? "," : "", i);
    sprintf(b + len, "],\"gross\":\"10000.00\",\"net\":\"9600.00\"}]}");
    queue_event(f, "fiscal.payroll.101001", b);
    free(b);
    char *c = row_text(f, "pay:GZ-L:E1", "content");
    assert_non_null(c);
    assert_true(fw_sms_text_chars(c) <= 500);
    assert_non_null(strstr(c, "扣除共40项合计400.00元"));
    assert_non_null(strstr(c, "实发9,600.00元"));
    free(c);
    char *st = row_text(f, "pay:GZ-L:E1", "status");
    assert_string_equal(st, "queued");
    free(st);

    /* An alert whose message is too long is cut with "…". */
    char msg[3000] = "";
    for (int i = 0; i < 300; i++)
        strcat(msg, "超额");
    json_t *alert =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s}", "alert_id", "AL-000017", "rule",
                  "over_balance", "level", "red", "message", msg, "unit_code", "101001", "subject",
                  "kind", "voucher", "id", "ZF1", "first_seen", "2024-06-03T10:15:00+08:00");
    assert_int_equal(
        fw_sms_enqueue_alert(f->sms, "al:AL-000017:sup1", "13600000000", "赵主任", alert, 1), 0);
    json_decref(alert);
    c = row_text(f, "al:AL-000017:sup1", "content");
    assert_int_equal(fw_sms_text_chars(c), 500);
    assert_non_null(strstr(c, "赵主任：红色预警AL-000017（over_balance）"));
    assert_non_null(strstr(c, "…请及时核实处理。"));
    free(c);
    c = row_text(f, "al:AL-000017:sup1", "urgent");
    assert_string_equal(c, "1");
    free(c);

    /* A resolved notice does not ask the supervisor to act. */
    alert =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s}}", "alert_id", "AL-000018",
                  "rule", "over_balance", "level", "red", "message", "【已处理完毕】超出指标余额",
                  "unit_code", "101001", "subject", "kind", "voucher", "id", "ZF2", "first_seen",
                  "2024-06-03T10:15:00+08:00", "notification", "kind", "resolved");
    assert_int_equal(
        fw_sms_enqueue_alert(f->sms, "al:AL-000018:sup1", "13600000000", "赵主任", alert, 0), 0);
    json_decref(alert);
    c = row_text(f, "al:AL-000018:sup1", "content");
    assert_non_null(strstr(c, "【已处理完毕】超出指标余额无需再处理。"));
    assert_null(strstr(c, "请及时核实处理"));
    free(c);
}

static void test_template_errors_and_reload(void **state)
{
    fx *f = *state;
    char d[700], p[800], err[512];
    snprintf(d, sizeof d, "%s/tpl", f->dir);
    assert_int_equal(mkdir(d, 0700), 0);
    const char *kinds[] = {"payroll", "reimburse", "subsidy", "alert"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s.txt", d, kinds[i]);
        fw_t_write_file(p, "# comment\n{name}，收到{{通知}}。\n");
    }
    snprintf(p, sizeof p, "%s/subsidy.txt", d);
    fw_t_write_file(p, "{name}您的{kidn}到账\n");
    char over[800];
    snprintf(over, sizeof over, "sms.templates=%s", d);
    const char *ov[] = {over};
    fw_config *c = make_cfg(ov, 1);
    fw_sms *s = fw_sms_new(f->st, c, NULL, err, sizeof err);
    assert_null(s);
    /* the file and the placeholder are named */
    assert_non_null(strstr(err, "subsidy.txt"));
    assert_non_null(strstr(err, "{kidn}"));

    fw_t_write_file(p, "{name}您的{kind}{amount}元到账\n");
    s = fw_sms_new(f->st, c, NULL, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    queue_event(f, "fiscal.subsidy.101001",
                "{\"id\":\"e1\",\"payout_id\":\"T1\",\"occurred_at\":\"2024-06-05T10:00:00+08:00\","
                "\"unit_code\":\"101001\",\"emp_id\":\"E\",\"name\":\"甲\",\"phone\":"
                "\"13800000001\",\"kind\":\"补贴\",\"amount\":\"1234567.89\",\"paid_at\":"
                "\"2024-06-05T10:00:00+08:00\"}");
    /* queued through f->sms (default templates); now through s */
    fw_event ev;
    decode("fiscal.subsidy.101001",
           "{\"id\":\"e2\",\"payout_id\":\"T2\",\"occurred_at\":\"2024-06-05T10:00:00+08:00\","
           "\"unit_code\":\"101001\",\"emp_id\":\"E\",\"name\":\"乙\",\"phone\":"
           "\"13800000002\",\"kind\":\"补贴\",\"amount\":\"1234567.89\",\"paid_at\":"
           "\"2024-06-05T10:00:00+08:00\"}",
           &ev);
    assert_int_equal(fw_sms_on_event(s, &ev), 0);
    fw_event_clear(&ev);
    char *txt = row_text(f, "sub:T2", "content");
    assert_string_equal(txt, "【三门峡财政】乙您的补贴1,234,567.89元到账");
    free(txt);

    /* A broken reload keeps the old set and says why. */
    fw_t_write_file(p, "{name}{oops\n");
    assert_int_equal(fw_sms_reload_templates(s, err, sizeof err), -1);
    assert_non_null(strstr(err, "subsidy.txt"));
    fw_t_write_file(p, "新{name}\n");
    assert_int_equal(fw_sms_reload_templates(s, err, sizeof err), 0);
    decode("fiscal.subsidy.101001",
           "{\"id\":\"e3\",\"payout_id\":\"T3\",\"occurred_at\":\"2024-06-05T10:00:00+08:00\","
           "\"unit_code\":\"101001\",\"emp_id\":\"E\",\"name\":\"丙\",\"phone\":"
           "\"13800000003\",\"kind\":\"补贴\",\"amount\":\"1.00\",\"paid_at\":"
           "\"2024-06-05T10:00:00+08:00\"}",
           &ev);
    assert_int_equal(fw_sms_on_event(s, &ev), 0);
    fw_event_clear(&ev);
    txt = row_text(f, "sub:T3", "content");
    assert_string_equal(txt, "【三门峡财政】新丙");
    free(txt);
    fw_sms_free(s);
    fw_config_free(c);
}

static void test_cli_list(void **state)
{
    fx *f = *state;
    char *j = payroll_json("evt-c", "GZ-C", 3, -1);
    queue_event(f, "fiscal.payroll.101001", j);
    free(j);
    fflush(stdout);
    char out[700];
    snprintf(out, sizeof out, "%s/out.txt", f->dir);
    int saved = dup(1);
    FILE *fo = freopen(out, "w", stdout);
    assert_non_null(fo);
    char *a1[] = {"sms", "list", "--status", "queued", "--phone-tail", "0001", "--json"};
    int rc = fw_sms_cli_main(f->sms, 7, a1);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(rc, 0);
    char *txt = fw_t_read_file(out, NULL);
    json_error_t je;
    json_t *o = json_loads(txt, 0, &je);
    assert_non_null(o);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *it = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(it, "out_id")), "pay:GZ-C:E0001");
    assert_string_equal(json_string_value(json_object_get(it, "phone")), "139****0001");
    assert_string_equal(json_string_value(json_object_get(it, "status")), "queued");
    assert_int_equal(json_integer_value(json_object_get(it, "segments")), 2);
    assert_null(strstr(txt, "13900000001")); /* never the whole phone */
    json_decref(o);
    free(txt);
    char *a2[] = {"sms", "list", "--status", "bogus"};
    assert_int_equal(fw_sms_cli_main(f->sms, 4, a2), 2);
    char *a3[] = {"sms", "list", "--phone-tail", "12"};
    assert_int_equal(fw_sms_cli_main(f->sms, 4, a3), 2);
    char *a4[] = {"sms", "frobnicate"};
    assert_int_equal(fw_sms_cli_main(f->sms, 2, a4), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone_check),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_aliyun_signature_documented_example),
        cmocka_unit_test_setup_teardown(test_payroll_line_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payroll_1000_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reimburse_subsidy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_phone_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_content_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_errors_and_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
