/*
 * test_core_decode.c - the five inbound decoders (contract §1-§2.5) and the
 * pre-payment check request (§3).
 *
 * Each kind starts from the contract's own example message.  Table-driven
 * cases then remove or replace one field (addressed by a path such as
 * "lines[0].earnings[1].amount") and expect the decoder's error to name
 * that field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/event.h"
#include "daemon/money.h"

static const char VOUCHER_CREATED[] =
    "{\"id\": \"evt-000001\", \"event\": \"created\","
    " \"occurred_at\": \"2024-06-03T10:15:00+08:00\","
    " \"voucher_no\": \"ZF2024000123\", \"year\": 2024,"
    " \"unit_code\": \"101001\", \"unit_name\": \"三门峡市教育局\","
    " \"indicator_id\": \"ZB2024-101001-0007\","
    " \"func_class\": \"2050201\", \"econ_class\": \"30201\","
    " \"pay_method\": \"direct\", \"settle_method\": \"transfer\","
    " \"payee_name\": \"三门峡市某某办公用品有限公司\","
    " \"payee_account\": \"41050166880800000123\","
    " \"payee_bank\": \"中国建设银行三门峡分行\", \"payee_type\": \"company\","
    " \"payer_name\": \"三门峡市教育局\", \"payer_account\": \"41050166880800000001\","
    " \"fund_type\": \"1\", \"project_code\": \"P2024-0031\","
    " \"amount\": \"12345.67\", \"purpose\": \"办公用品采购\"}";

static const char VOUCHER_RETURNED[] =
    "{\"id\": \"evt-000009\", \"event\": \"returned\","
    " \"occurred_at\": \"2024-06-05T10:15:00+08:00\", \"voucher_no\": \"ZF2024000123\","
    " \"unit_code\": \"101001\", \"amount\": \"12345.67\", \"bank_ref\": \"B123\","
    " \"reason\": \"账户已销户\"}";

static const char INDICATOR_ALLOCATE[] =
    "{\"id\": \"evt-100001\", \"op\": \"allocate\","
    " \"occurred_at\": \"2024-01-05T09:00:00+08:00\", \"doc_no\": \"三财预〔2024〕1号\","
    " \"indicator_id\": \"ZB2024-101001-0007\", \"year\": 2024,"
    " \"unit_code\": \"101001\", \"func_class\": \"2050201\", \"econ_class\": \"30201\","
    " \"fund_type\": \"1\", \"fund_source\": \"一般公共预算\","
    " \"project_code\": \"P2024-0031\", \"amount\": \"500000.00\", \"note\": \"年初预算\","
    " \"flags\": [\"sangong\"]}";

static const char INDICATOR_TRANSFER[] =
    "{\"id\": \"evt-100002\", \"op\": \"transfer\","
    " \"occurred_at\": \"2024-03-05T09:00:00+08:00\", \"doc_no\": \"三财预〔2024〕9号\","
    " \"indicator_id\": \"ZB2024-101001-0001\", \"from_indicator_id\": \"ZB2024-101001-0007\","
    " \"unit_code\": \"101001\", \"amount\": \"2000.50\"}";

static const char PAYROLL[] =
    "{\"id\": \"evt-200001\", \"run_id\": \"GZ-101001-202406\", \"part\": 1, \"parts\": 1,"
    " \"occurred_at\": \"2024-06-12T08:00:00+08:00\","
    " \"unit_code\": \"101001\", \"unit_name\": \"三门峡市教育局\","
    " \"period\": \"2024-06\", \"pay_date\": \"2024-06-12\","
    " \"indicator_id\": \"ZB2024-101001-0001\","
    " \"lines\": [{"
    "   \"emp_id\": \"E0001\", \"name\": \"张三\", \"id_no\": \"411202198001011236\","
    "   \"phone\": \"13800000000\", \"account\": \"6222021234567890123\","
    "   \"earnings\":   [{\"name\": \"岗位工资\", \"amount\": \"3000.00\"},"
    "                    {\"name\": \"薪级工资\", \"amount\": \"1200.00\"},"
    "                    {\"name\": \"津贴补贴\", \"amount\": \"2500.00\"}],"
    "   \"deductions\": [{\"name\": \"养老保险\", \"amount\": \"480.00\"},"
    "                    {\"name\": \"职业年金\", \"amount\": \"240.00\"},"
    "                    {\"name\": \"医疗保险\", \"amount\": \"120.00\"},"
    "                    {\"name\": \"住房公积金\", \"amount\": \"720.00\"},"
    "                    {\"name\": \"个人所得税\", \"amount\": \"56.00\"}],"
    "   \"gross\": \"6700.00\", \"net\": \"5084.00\""
    " }, {"
    "   \"emp_id\": \"E0002\", \"name\": \"李四\", \"id_no\": \"411202198002021234\","
    "   \"phone\": \"13900000000\", \"account\": \"6222021234567890999\","
    "   \"earnings\": [{\"name\": \"岗位工资\", \"amount\": \"2800.5\"}],"
    "   \"deductions\": [],"
    "   \"gross\": \"2800.50\", \"net\": \"2800.50\""
    " }]}";

static const char REIMBURSE[] =
    "{\"id\": \"evt-300001\", \"reimb_id\": \"BX2024-0042\","
    " \"occurred_at\": \"2024-06-05T10:00:00+08:00\","
    " \"unit_code\": \"101001\", \"emp_id\": \"E0001\", \"name\": \"张三\","
    " \"phone\": \"13800000000\", \"amount\": \"1234.00\", \"card_last4\": \"1234\","
    " \"spent_on\": \"2024-05-28\", \"paid_at\": \"2024-06-05T10:00:00+08:00\","
    " \"summary\": \"差旅费\"}";

static const char SUBSIDY[] =
    "{\"id\": \"evt-400001\", \"payout_id\": \"BT2024-0007\","
    " \"occurred_at\": \"2024-06-05T10:00:00+08:00\","
    " \"unit_code\": \"101001\", \"emp_id\": \"E0001\", \"name\": \"张三\","
    " \"phone\": \"13800000000\", \"kind\": \"取暖补贴\", \"amount\": \"1800.00\","
    " \"paid_at\": \"2024-06-05T10:00:00+08:00\"}";

/* ---- helpers ---- */

static int decode_text(const char *subject, const char *text, fw_event *ev, fw_decode_error *err)
{
    return fw_event_decode(subject, text, strlen(text), ev, err);
}

/* Follow "a.b[2].c" to the parent object/array of the last step; *last is
 * the final key (for objects) or *index the final index (for arrays). */
static json_t *walk_to_parent(json_t *root, const char *path, char *last, size_t lastlen,
                              long *index)
{
    char buf[128];
    json_t *cur = root;
    snprintf(buf, sizeof buf, "%s", path);
    char *p = buf;
    *index = -1;
    for (;;) {
        /* One step: a key up to '.', '[' or end; then any [n] parts. */
        size_t n = strcspn(p, ".[");
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        p += n;
        if (*p == '\0') {
            snprintf(last, lastlen, "%s", key);
            return cur;
        }
        cur = json_object_get(cur, key);
        while (*p == '[') {
            long i = strtol(p + 1, &p, 10);
            assert_true(*p == ']');
            p++;
            if (*p == '\0') {
                *index = i;
                last[0] = '\0';
                return cur;
            }
            cur = json_array_get(cur, (size_t)i);
        }
        assert_true(*p == '.');
        p++;
    }
}

/* Apply: value == NULL deletes the field at path, else sets it to the
 * JSON text value.  Returns the new message text (malloc'd). */
static char *mutate(const char *text, const char *path, const char *value)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    char last[64];
    long index;
    if (root == NULL)
        fail_msg("fixture does not parse: %s", jerr.text);
    json_t *parent = walk_to_parent(root, path, last, sizeof last, &index);
    assert_non_null(parent);
    json_t *v = NULL;
    if (value) {
        v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (v == NULL)
            fail_msg("bad replacement %s: %s", value, jerr.text);
    }
    if (index >= 0) {
        assert_true(json_is_array(parent));
        if (v)
            assert_int_equal(json_array_set_new(parent, (size_t)index, v), 0);
        else
            assert_int_equal(json_array_remove(parent, (size_t)index), 0);
    } else {
        assert_true(json_is_object(parent));
        if (v)
            assert_int_equal(json_object_set_new(parent, last, v), 0);
        else
            assert_int_equal(json_object_del(parent, last), 0);
    }
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

static void expect_ok(const char *subject, const char *text, fw_event *ev)
{
    fw_decode_error err;
    if (decode_text(subject, text, ev, &err) != 0)
        fail_msg("%s: rejected: %s: %s", subject, err.field, err.reason);
}

/* Expect rejection naming `field`; `reason` (a substring) may be NULL. */
static void expect_error(const char *subject, const char *text, const char *field,
                         const char *reason)
{
    fw_event ev;
    fw_decode_error err;
    int rc = decode_text(subject, text, &ev, &err);
    if (rc == 0) {
        fw_event_clear(&ev);
        fail_msg("%s: accepted, expected %s error in %s", subject, field, text);
    }
    assert_null(ev.body);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: error field \"%s\" (%s), want \"%s\"", subject, err.field, err.reason, field);
    if (reason && strstr(err.reason, reason) == NULL)
        fail_msg("%s: %s: reason \"%s\", want \"%s\"", subject, field, err.reason, reason);
}

typedef struct mutation {
    const char *path;   /* field to change */
    const char *value;  /* JSON text, or NULL to remove it */
    const char *field;  /* expected error field (NULL: same as path) */
    const char *reason; /* expected reason substring, or NULL */
} mutation;

static void run_mutations(const char *subject, const char *base, const mutation *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *text = mutate(base, m[i].path, m[i].value);
        expect_error(subject, text, m[i].field ? m[i].field : m[i].path, m[i].reason);
        free(text);
    }
}

/* Every listed field removed -> "<field>: missing". */
static void run_missing(const char *subject, const char *base, const char *const *fields)
{
    for (size_t i = 0; fields[i]; i++) {
        char *text = mutate(base, fields[i], NULL);
        expect_error(subject, text, fields[i], "missing");
        free(text);
    }
}

/* Every listed optional field removed, or set to null -> still valid. */
static void run_optional(const char *subject, const char *base, const char *const *fields)
{
    for (size_t i = 0; fields[i]; i++) {
        fw_event ev;
        char *text = mutate(base, fields[i], NULL);
        expect_ok(subject, text, &ev);
        fw_event_clear(&ev);
        free(text);
        text = mutate(base, fields[i], "null");
        expect_ok(subject, text, &ev);
        assert_null(json_object_get(ev.body, fields[i])); /* null means absent */
        fw_event_clear(&ev);
        free(text);
    }
}

static json_int_t int_at(json_t *body, const char *path)
{
    char last[64];
    long index;
    json_t *parent = walk_to_parent(body, path, last, sizeof last, &index);
    json_t *v = index >= 0 ? json_array_get(parent, (size_t)index) : json_object_get(parent, last);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", path);
    return json_integer_value(v);
}

/* ---- voucher ---- */

static void test_voucher_created_valid(void **state)
{
    (void)state;
    fw_event ev;
    expect_ok("fiscal.voucher.101001", VOUCHER_CREATED, &ev);
    assert_int_equal(ev.kind, FW_KIND_VOUCHER);
    assert_string_equal(ev.type, "voucher.created");
    assert_string_equal(ev.subject, "fiscal.voucher.101001");
    assert_string_equal(ev.id, "evt-000001");
    assert_string_equal(ev.unit_code, "101001");
    assert_int_equal(ev.occurred_at, 1717380900);
    /* Money became integer fen; everything else kept its type. */
    assert_int_equal(int_at(ev.body, "amount"), 1234567);
    assert_int_equal(int_at(ev.body, "year"), 2024);
    assert_string_equal(json_string_value(json_object_get(ev.body, "occurred_at")),
                        "2024-06-03T10:15:00+08:00");
    assert_string_equal(json_string_value(json_object_get(ev.body, "purpose")), "办公用品采购");
    fw_event_clear(&ev);
    assert_null(ev.body);
}

static void test_voucher_created_missing(void **state)
{
    (void)state;
    static const char *const required[] = {
        "id",         "event",         "occurred_at", "voucher_no", "year",       "unit_code",
        "unit_name",  "indicator_id",  "func_class",  "econ_class", "pay_method", "settle_method",
        "payee_name", "payee_account", "payee_bank",  "payee_type", "amount",     "purpose",
        NULL};
    static const char *const optional[] = {"payer_name", "payer_account", "fund_type",
                                           "project_code", NULL};
    run_missing("fiscal.voucher.101001", VOUCHER_CREATED, required);
    run_optional("fiscal.voucher.101001", VOUCHER_CREATED, optional);
}

static void test_voucher_created_mistyped(void **state)
{
    (void)state;
    static const mutation m[] = {
        {"id", "42", NULL, "must be a string"},
        {"id", "\"\"", NULL, "must not be empty"},
        {"event", "\"approved\"", NULL, "must be one of created|signed|sent|paid"},
        {"event", "1", NULL, "must be a string"},
        {"occurred_at", "\"2024-06-03T10:15:00\"", NULL, "must be an RFC 3339 time"},
        {"occurred_at", "\"2024-02-30T10:15:00+08:00\"", NULL, "RFC 3339"},
        {"occurred_at", "1717380900", NULL, "must be a string"},
        {"voucher_no", "[]", NULL, "must be a string"},
        {"year", "\"2024\"", NULL, "must be an integer"},
        {"year", "2024.0", NULL, "must be an integer"},
        {"year", "1999", NULL, "must be between 2000 and 2100"},
        {"year", "2101", NULL, "between"},
        {"unit_code", "101001", NULL, "must be a string"},
        {"unit_name", "{}", NULL, "must be a string"},
        {"unit_name", "null", NULL, "must be a string"},
        {"indicator_id", "true", NULL, "must be a string"},
        {"func_class", "2050201", NULL, "must be a string"},
        {"econ_class", "30201", NULL, "must be a string"},
        {"pay_method", "\"cheque\"", NULL, "must be one of direct|authorized"},
        {"settle_method", "\"wire\"", NULL, "must be one of transfer|cash|card|check"},
        {"payee_name", "1", NULL, "must be a string"},
        {"payee_account", "4105016688", NULL, "must be a string"},
        {"payee_bank", "null", NULL, "must be a string"},
        {"payee_type", "\"person\"", NULL, "must be one of company|individual|own_unit|government"},
        {"amount", "12345.67", NULL, "must be a string of yuan"},
        {"amount", "12345", NULL, "must be a string of yuan"},
        {"amount", "\"12345.678\"", NULL, "more than two decimals"},
        {"amount", "\"1e3\"", NULL, "exponent"},
        {"amount", "\"+1\"", NULL, "'+'"},
        {"amount", "\"\"", NULL, "empty"},
        {"amount", "\"-5.00\"", NULL, "negative"},
        {"amount", "\"0.00\"", NULL, "must be greater than zero"},
        {"amount", "\"10000000000000.01\"", NULL, "over 10^13 yuan"},
        {"purpose", "null", NULL, "must be a string"},
        {"payer_name", "5", NULL, "must be a string"},
        {"payer_account", "5", NULL, "must be a string"},
        {"fund_type", "1", NULL, "must be a string"},
        {"project_code", "[1]", NULL, "must be a string"},
    };
    run_mutations("fiscal.voucher.101001", VOUCHER_CREATED, m, sizeof m / sizeof m[0]);
}

static void test_voucher_created_limits(void **state)
{
    (void)state;
    char big[1100];
    char value[1200];
    fw_event ev;
    /* 256 bytes is fine for a name; 257 is too long. */
    memset(big, 'a', 256);
    big[256] = '\0';
    snprintf(value, sizeof value, "\"%s\"", big);
    char *text = mutate(VOUCHER_CREATED, "payee_name", value);
    expect_ok("fiscal.voucher.101001", text, &ev);
    fw_event_clear(&ev);
    free(text);
    memset(big, 'a', 257);
    big[257] = '\0';
    snprintf(value, sizeof value, "\"%s\"", big);
    text = mutate(VOUCHER_CREATED, "payee_name", value);
    expect_error("fiscal.voucher.101001", text, "payee_name", "too long");
    free(text);
    /* purpose may be empty, and up to 1024 bytes. */
    text = mutate(VOUCHER_CREATED, "purpose", "\"\"");
    expect_ok("fiscal.voucher.101001", text, &ev);
    fw_event_clear(&ev);
    free(text);
    memset(big, 'p', 1025);
    big[1025] = '\0';
    snprintf(value, sizeof value, "\"%s\"", big);
    text = mutate(VOUCHER_CREATED, "purpose", value);
    expect_error("fiscal.voucher.101001", text, "purpose", "too long");
    free(text);
}

static void test_voucher_later_events(void **state)
{
    (void)state;
    static const char *const events[] = {"signed", "sent", "paid"};
    fw_event ev;
    for (size_t i = 0; i < 3; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\"id\": \"evt-%zu\", \"event\": \"%s\","
                 " \"occurred_at\": \"2024-06-04T09:00:00+08:00\","
                 " \"voucher_no\": \"ZF2024000123\", \"unit_code\": \"101001\"}",
                 i, events[i]);
        expect_ok("fiscal.voucher.101001", text, &ev);
        char want[32];
        snprintf(want, sizeof want, "voucher.%s", events[i]);
        assert_string_equal(ev.type, want);
        assert_null(json_object_get(ev.body, "amount"));
        fw_event_clear(&ev);
        static const char *const required[] = {"id",         "event",     "occurred_at",
                                               "voucher_no", "unit_code", NULL};
        run_missing("fiscal.voucher.101001", text, required);
    }

    expect_ok("fiscal.voucher.101001", VOUCHER_RETURNED, &ev);
    assert_string_equal(ev.type, "voucher.returned");
    assert_int_equal(int_at(ev.body, "amount"), 1234567);
    fw_event_clear(&ev);
    static const char *const required[] = {"id",        "event",  "occurred_at", "voucher_no",
                                           "unit_code", "reason", NULL};
    run_missing("fiscal.voucher.101001", VOUCHER_RETURNED, required);
    static const char *const optional[] = {"amount", "bank_ref", NULL};
    run_optional("fiscal.voucher.101001", VOUCHER_RETURNED, optional);
    char *text = mutate(VOUCHER_RETURNED, "event", "\"cancelled\"");
    expect_ok("fiscal.voucher.101001", text, &ev);
    assert_string_equal(ev.type, "voucher.cancelled");
    fw_event_clear(&ev);
    free(text);

    static const mutation m[] = {
        {"amount", "12345.67", NULL, "must be a string of yuan"},
        {"amount", "\"1.234\"", NULL, "more than two decimals"},
        {"bank_ref", "7", NULL, "must be a string"},
        {"reason", "7", NULL, "must be a string"},
        {"voucher_no", "\"\"", NULL, "must not be empty"},
        {"occurred_at", "\"yesterday\"", NULL, "RFC 3339"},
    };
    run_mutations("fiscal.voucher.101001", VOUCHER_RETURNED, m, sizeof m / sizeof m[0]);
}

/* ---- indicator ---- */

static void test_indicator_valid(void **state)
{
    (void)state;
    fw_event ev;
    expect_ok("fiscal.indicator.101001", INDICATOR_ALLOCATE, &ev);
    assert_int_equal(ev.kind, FW_KIND_INDICATOR);
    assert_string_equal(ev.type, "indicator.allocate");
    assert_string_equal(ev.id, "evt-100001");
    assert_int_equal(int_at(ev.body, "amount"), 50000000);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ev.body, "flags"), 0)),
                        "sangong");
    fw_event_clear(&ev);

    expect_ok("fiscal.indicator.101001", INDICATOR_TRANSFER, &ev);
    assert_string_equal(ev.type, "indicator.transfer");
    assert_int_equal(int_at(ev.body, "amount"), 200050);
    fw_event_clear(&ev);

    /* adjust may reduce (negative), and needs none of year/func/econ. */
    char *text = mutate(INDICATOR_TRANSFER, "op", "\"adjust\"");
    char *text2 = mutate(text, "amount", "\"-1500.5\"");
    expect_ok("fiscal.indicator.101001", text2, &ev);
    assert_string_equal(ev.type, "indicator.adjust");
    assert_int_equal(int_at(ev.body, "amount"), -150050);
    fw_event_clear(&ev);
    free(text2);
    text2 = mutate(text, "amount", "\"0.00\"");
    expect_error("fiscal.indicator.101001", text2, "amount", "must not be zero");
    free(text2);
    text2 = mutate(text, "amount", "\"-0.001\"");
    expect_error("fiscal.indicator.101001", text2, "amount", "more than two decimals");
    free(text2);
    free(text);
}

static void test_indicator_missing(void **state)
{
    (void)state;
    static const char *const allocate_required[] = {
        "id",   "op",         "occurred_at", "doc_no", "indicator_id", "unit_code", "amount",
        "year", "func_class", "econ_class",  NULL};
    static const char *const allocate_optional[] = {"fund_type", "fund_source", "project_code",
                                                    "note",      "flags",       NULL};
    static const char *const transfer_required[] = {
        "id",        "op",     "occurred_at",       "doc_no", "indicator_id",
        "unit_code", "amount", "from_indicator_id", NULL};
    run_missing("fiscal.indicator.101001", INDICATOR_ALLOCATE, allocate_required);
    run_optional("fiscal.indicator.101001", INDICATOR_ALLOCATE, allocate_optional);
    run_missing("fiscal.indicator.101001", INDICATOR_TRANSFER, transfer_required);
}

static void test_indicator_mistyped(void **state)
{
    (void)state;
    static const mutation alloc[] = {
        {"op", "\"freeze\"", NULL, "must be one of allocate|adjust|transfer"},
        {"op", "null", NULL, "must be a string"},
        {"doc_no", "1", NULL, "must be a string"},
        {"amount", "500000", NULL, "must be a string of yuan"},
        {"amount", "\"-100.00\"", NULL, "negative"},
        {"amount", "\"0\"", NULL, "greater than zero"},
        {"year", "\"2024\"", NULL, "must be an integer"},
        {"func_class", "2050201", NULL, "must be a string"},
        {"econ_class", "false", NULL, "must be a string"},
        {"fund_type", "1", NULL, "must be a string"},
        {"fund_source", "1", NULL, "must be a string"},
        {"project_code", "1", NULL, "must be a string"},
        {"note", "{}", NULL, "must be a string"},
        {"flags", "\"sangong\"", NULL, "must be an array"},
        {"flags", "[\"sangong\", \"travel\"]", "flags[1]",
         "must be one of salary|sangong|direct|subsidy|union"},
        {"flags", "[1]", "flags[0]", "must be a string"},
        {"occurred_at", "\"2024-01-05\"", NULL, "RFC 3339"},
    };
    run_mutations("fiscal.indicator.101001", INDICATOR_ALLOCATE, alloc,
                  sizeof alloc / sizeof alloc[0]);
    static const mutation transfer[] = {
        {"from_indicator_id", "7", NULL, "must be a string"},
        {"from_indicator_id", "\"ZB2024-101001-0001\"", NULL, "must differ"},
        {"amount", "\"-1.00\"", NULL, "negative"},
        {"year", "\"x\"", NULL, "must be an integer"},
    };
    run_mutations("fiscal.indicator.101001", INDICATOR_TRANSFER, transfer,
                  sizeof transfer / sizeof transfer[0]);

    /* All five flags are accepted. */
    fw_event ev;
    char *text = mutate(INDICATOR_ALLOCATE, "flags",
                        "[\"salary\", \"sangong\", \"direct\", \"subsidy\", \"union\"]");
    expect_ok("fiscal.indicator.101001", text, &ev);
    fw_event_clear(&ev);
    free(text);
}

/* ---- payroll ---- */

static void test_payroll_valid(void **state)
{
    (void)state;
    fw_event ev;
    expect_ok("fiscal.payroll.101001", PAYROLL, &ev);
    assert_int_equal(ev.kind, FW_KIND_PAYROLL);
    assert_string_equal(ev.type, "payroll.run");
    assert_string_equal(ev.id, "evt-200001");
    assert_int_equal(int_at(ev.body, "lines[0].earnings[0].amount"), 300000);
    assert_int_equal(int_at(ev.body, "lines[0].earnings[2].amount"), 250000);
    assert_int_equal(int_at(ev.body, "lines[0].deductions[4].amount"), 5600);
    assert_int_equal(int_at(ev.body, "lines[0].gross"), 670000);
    assert_int_equal(int_at(ev.body, "lines[0].net"), 508400);
    assert_int_equal(int_at(ev.body, "lines[1].earnings[0].amount"), 280050);
    assert_int_equal(int_at(ev.body, "part"), 1);
    /* Personal fields are kept verbatim for rules and SMS. */
    json_t *line0 = json_array_get(json_object_get(ev.body, "lines"), 0);
    assert_string_equal(json_string_value(json_object_get(line0, "id_no")), "411202198001011236");
    assert_true(fw_payroll_line_arith_ok(line0));
    assert_true(fw_payroll_line_arith_ok(json_array_get(json_object_get(ev.body, "lines"), 1)));
    fw_event_clear(&ev);
}

static void test_payroll_missing(void **state)
{
    (void)state;
    static const char *const required[] = {"id",
                                           "run_id",
                                           "part",
                                           "parts",
                                           "occurred_at",
                                           "unit_code",
                                           "period",
                                           "pay_date",
                                           "indicator_id",
                                           "lines",
                                           "lines[0].emp_id",
                                           "lines[0].name",
                                           "lines[0].id_no",
                                           "lines[0].phone",
                                           "lines[0].account",
                                           "lines[0].earnings",
                                           "lines[0].deductions",
                                           "lines[0].gross",
                                           "lines[0].net",
                                           "lines[1].net",
                                           "lines[0].earnings[1].name",
                                           "lines[0].earnings[1].amount",
                                           "lines[0].deductions[3].amount",
                                           "lines[1].earnings[0].amount",
                                           NULL};
    static const char *const optional[] = {"unit_name", NULL};
    run_missing("fiscal.payroll.101001", PAYROLL, required);
    run_optional("fiscal.payroll.101001", PAYROLL, optional);
}

static void test_payroll_mistyped(void **state)
{
    (void)state;
    static const mutation m[] = {
        {"run_id", "1", NULL, "must be a string"},
        {"part", "\"1\"", NULL, "must be an integer"},
        {"part", "0", NULL, "between 1 and"},
        {"parts", "1.5", NULL, "must be an integer"},
        {"part", "2", "parts", "must be at least part"},
        {"period", "\"2024-6\"", NULL, "must be a period YYYY-MM"},
        {"period", "\"2024-13\"", NULL, "period"},
        {"period", "202406", NULL, "must be a string"},
        {"pay_date", "\"2024-02-30\"", NULL, "must be a date YYYY-MM-DD"},
        {"pay_date", "\"2024-06-12T08:00:00+08:00\"", NULL, "date"},
        {"indicator_id", "null", NULL, "must be a string"},
        {"unit_name", "1", NULL, "must be a string"},
        {"lines", "{}", NULL, "must be an array"},
        {"lines", "[]", NULL, "must not be empty"},
        {"lines[1]", "\"E0002\"", NULL, "must be an object"},
        {"lines[0].emp_id", "1", NULL, "must be a string"},
        {"lines[0].name", "1", NULL, "must be a string"},
        {"lines[0].id_no", "411202198001011236", NULL, "must be a string"},
        {"lines[0].phone", "13800000000", NULL, "must be a string"},
        {"lines[0].account", "[]", NULL, "must be a string"},
        {"lines[0].earnings", "{}", NULL, "must be an array"},
        {"lines[0].deductions", "\"none\"", NULL, "must be an array"},
        {"lines[0].earnings[2]", "3", NULL, "must be an object"},
        {"lines[0].earnings[2].name", "3", NULL, "must be a string"},
        {"lines[0].earnings[2].amount", "2500", NULL, "must be a string of yuan"},
        {"lines[1].earnings[0].amount", "\"-1\"", NULL, "negative"},
        {"lines[0].deductions[0].amount", "\"480.001\"", NULL, "more than two decimals"},
        {"lines[0].deductions[4].amount", "56.0", NULL, "must be a string of yuan"},
        {"lines[1].gross", "2800.5", NULL, "must be a string of yuan"},
        {"lines[1].net", "\"1e3\"", NULL, "exponent"},
        {"lines[0].net", "\"\"", NULL, "empty"},
    };
    run_mutations("fiscal.payroll.101001", PAYROLL, m, sizeof m / sizeof m[0]);
}

static void test_payroll_line_count_limit(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *root = json_loads(PAYROLL, 0, &jerr);
    /* Small lines: 20000 full lines would exceed FW_EVENT_MAX_BYTES. */
    json_t *line =
        json_loads("{\"emp_id\":\"E\",\"name\":\"n\",\"id_no\":\"i\",\"phone\":\"p\","
                   "\"account\":\"a\",\"earnings\":[{\"name\":\"w\",\"amount\":\"2800.5\"}],"
                   "\"deductions\":[],\"gross\":\"2800.50\",\"net\":\"2800.50\"}",
                   0, &jerr);
    json_t *lines = json_array();
    fw_event ev;
    fw_decode_error err;
    while (json_array_size(lines) < 20000)
        json_array_append(lines, line);
    json_object_set_new(root, "lines", lines);
    char *text = json_dumps(root, JSON_COMPACT);
    assert_int_equal(decode_text("fiscal.payroll.101001", text, &ev, &err), 0);
    assert_int_equal(json_array_size(json_object_get(ev.body, "lines")), 20000);
    assert_int_equal(int_at(ev.body, "lines[19999].gross"), 280050);
    fw_event_clear(&ev);
    free(text);
    json_array_append(lines, line);
    text = json_dumps(root, JSON_COMPACT);
    expect_error("fiscal.payroll.101001", text, "lines", "more than 20000 lines");
    free(text);
    json_decref(line);
    json_decref(root);
}

static void test_payroll_arith(void **state)
{
    (void)state;
    fw_event ev;
    /* Wrong sums are not malformed (a rule alerts on them). */
    char *text = mutate(PAYROLL, "lines[0].gross", "\"6700.01\"");
    expect_ok("fiscal.payroll.101001", text, &ev);
    json_t *lines = json_object_get(ev.body, "lines");
    assert_false(fw_payroll_line_arith_ok(json_array_get(lines, 0)));
    assert_true(fw_payroll_line_arith_ok(json_array_get(lines, 1)));
    fw_event_clear(&ev);
    free(text);

    text = mutate(PAYROLL, "lines[0].net", "\"5084.01\"");
    expect_ok("fiscal.payroll.101001", text, &ev);
    assert_false(fw_payroll_line_arith_ok(json_array_get(json_object_get(ev.body, "lines"), 0)));
    fw_event_clear(&ev);
    free(text);

    /* Undecoded or partial lines are never "ok". */
    json_t *raw = json_loads("{\"gross\": \"1.00\", \"net\": \"1.00\", \"earnings\": [],"
                             " \"deductions\": []}",
                             0, NULL);
    assert_false(fw_payroll_line_arith_ok(raw));
    json_decref(raw);
    raw = json_loads("{\"gross\": 100, \"net\": 100, \"earnings\": [{\"amount\": 100}]}", 0, NULL);
    assert_false(fw_payroll_line_arith_ok(raw)); /* no deductions array */
    json_decref(raw);
    raw = json_loads("{\"gross\": 100, \"net\": 100, \"earnings\": [{\"amount\": 100}],"
                     " \"deductions\": []}",
                     0, NULL);
    assert_true(fw_payroll_line_arith_ok(raw));
    json_decref(raw);
    raw = json_loads("{\"gross\": 0, \"net\": 0, \"earnings\": [{\"amount\": 9223372036854775807},"
                     " {\"amount\": 1}], \"deductions\": []}",
                     0, NULL);
    assert_false(fw_payroll_line_arith_ok(raw)); /* overflow is not ok */
    json_decref(raw);
}

/* ---- reimburse and subsidy ---- */

static void test_reimburse(void **state)
{
    (void)state;
    fw_event ev;
    expect_ok("fiscal.reimburse.101001", REIMBURSE, &ev);
    assert_int_equal(ev.kind, FW_KIND_REIMBURSE);
    assert_string_equal(ev.type, "reimburse");
    assert_string_equal(ev.id, "evt-300001");
    assert_int_equal(int_at(ev.body, "amount"), 123400);
    fw_event_clear(&ev);

    static const char *const required[] = {
        "id",     "reimb_id",   "occurred_at", "unit_code", "emp_id",  "name", "phone",
        "amount", "card_last4", "spent_on",    "paid_at",   "summary", NULL};
    run_missing("fiscal.reimburse.101001", REIMBURSE, required);
    static const mutation m[] = {
        {"reimb_id", "42", NULL, "must be a string"},
        {"emp_id", "1", NULL, "must be a string"},
        {"name", "1", NULL, "must be a string"},
        {"phone", "13800000000", NULL, "must be a string"},
        {"amount", "1234", NULL, "must be a string of yuan"},
        {"amount", "\"0\"", NULL, "greater than zero"},
        {"card_last4", "1234", NULL, "must be a string"},
        {"card_last4", "\"123\"", NULL, "must be 4 digits"},
        {"card_last4", "\"12345\"", NULL, "must be 4 digits"},
        {"card_last4", "\"12a4\"", NULL, "must be 4 digits"},
        {"spent_on", "\"2024-05-32\"", NULL, "must be a date"},
        {"spent_on", "20240528", NULL, "must be a string"},
        {"paid_at", "\"2024-06-05 10:00:00\"", NULL, "RFC 3339"},
        {"summary", "[]", NULL, "must be a string"},
    };
    run_mutations("fiscal.reimburse.101001", REIMBURSE, m, sizeof m / sizeof m[0]);
}

static void test_subsidy(void **state)
{
    (void)state;
    fw_event ev;
    expect_ok("fiscal.subsidy.101001", SUBSIDY, &ev);
    assert_int_equal(ev.kind, FW_KIND_SUBSIDY);
    assert_string_equal(ev.type, "subsidy");
    assert_string_equal(ev.id, "evt-400001");
    assert_int_equal(int_at(ev.body, "amount"), 180000);
    assert_int_equal(ev.occurred_at, 1717552800);
    fw_event_clear(&ev);

    static const char *const required[] = {"id",     "payout_id", "occurred_at", "unit_code",
                                           "emp_id", "name",      "phone",       "kind",
                                           "amount", "paid_at",   NULL};
    run_missing("fiscal.subsidy.101001", SUBSIDY, required);
    static const mutation m[] = {
        {"payout_id", "7", NULL, "must be a string"},
        {"kind", "7", NULL, "must be a string"},
        {"amount", "1800", NULL, "must be a string of yuan"},
        {"amount", "\"1800.000\"", NULL, "more than two decimals"},
        {"paid_at", "\"2024-06-05T10:00:00\"", NULL, "RFC 3339"},
        {"occurred_at", "null", NULL, "must be a string"},
    };
    run_mutations("fiscal.subsidy.101001", SUBSIDY, m, sizeof m / sizeof m[0]);
}

/* ---- envelope: subject, body, UTF-8, size, duplicates ---- */

static void test_subject(void **state)
{
    (void)state;
    assert_int_equal(fw_kind_from_subject("fiscal.voucher.101001"), FW_KIND_VOUCHER);
    assert_int_equal(fw_kind_from_subject("fiscal.indicator.101001"), FW_KIND_INDICATOR);
    assert_int_equal(fw_kind_from_subject("fiscal.payroll.101001"), FW_KIND_PAYROLL);
    assert_int_equal(fw_kind_from_subject("fiscal.reimburse.101001"), FW_KIND_REIMBURSE);
    assert_int_equal(fw_kind_from_subject("fiscal.subsidy.101001"), FW_KIND_SUBSIDY);
    assert_int_equal(fw_kind_from_subject("fiscal.pension.101001"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("fiscal.voucher"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("fiscal.voucher."), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("fiscal.voucher.101001.x"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("fiscal.voucher.*"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("fiscal.vouchers.101001"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject("other.voucher.101001"), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject(""), FW_KIND_UNKNOWN);
    assert_int_equal(fw_kind_from_subject(NULL), FW_KIND_UNKNOWN);
    assert_string_equal(fw_kind_name(FW_KIND_VOUCHER), "voucher");
    assert_string_equal(fw_kind_name(FW_KIND_INDICATOR), "indicator");
    assert_string_equal(fw_kind_name(FW_KIND_PAYROLL), "payroll");
    assert_string_equal(fw_kind_name(FW_KIND_REIMBURSE), "reimburse");
    assert_string_equal(fw_kind_name(FW_KIND_SUBSIDY), "subsidy");
    assert_string_equal(fw_kind_name(FW_KIND_UNKNOWN), "unknown");
    assert_string_equal(fw_kind_name((fw_kind)99), "unknown");

    expect_error("fiscal.pension.101001", VOUCHER_CREATED, "subject", NULL);
    expect_error("fiscal.voucher", VOUCHER_CREATED, "subject", NULL);
    expect_error("fiscal.voucher.101001.x", VOUCHER_CREATED, "subject", NULL);
    /* A voucher body on the subsidy subject fails subsidy validation. */
    expect_error("fiscal.subsidy.101001", VOUCHER_CREATED, "payout_id", "missing");
}

static void test_unit_mismatch(void **state)
{
    (void)state;
    expect_error("fiscal.voucher.101002", VOUCHER_CREATED, "unit_code", "subject");
    expect_error("fiscal.indicator.10100", INDICATOR_ALLOCATE, "unit_code", NULL);
    expect_error("fiscal.payroll.1010011", PAYROLL, "unit_code", NULL);
    expect_error("fiscal.reimburse.999999", REIMBURSE, "unit_code", NULL);
    expect_error("fiscal.subsidy.101001 ", SUBSIDY, "subject", NULL);
    expect_error("fiscal.subsidy.X", SUBSIDY, "unit_code", NULL);
}

static void test_body_errors(void **state)
{
    (void)state;
    fw_event ev;
    fw_decode_error err;
    expect_error("fiscal.voucher.101001", "", "body", "invalid JSON");
    expect_error("fiscal.voucher.101001", "{", "body", "invalid JSON");
    expect_error("fiscal.voucher.101001", "[1, 2]", "body", "must be a JSON object");
    expect_error("fiscal.voucher.101001", "{} {}", "body", "invalid JSON");
    expect_error("fiscal.voucher.101001", "{\"id\": \"a\\u0000b\"}", "body", NULL);
    assert_int_equal(fw_event_decode("fiscal.voucher.101001", NULL, 0, &ev, &err), -1);
    assert_string_equal(err.field, "body");

    /* The reason never echoes the input: no personal data, no control bytes
     * (it becomes a NATS header and a log field). */
    static const char *const leaky[] = {"{\"phone\": \"13800000000\" \"x\"}",
                                        "{\"id\": 13800000000x}", "{\"a\":\r\n\x01}",
                                        "{\"id\": \"a\tb\"}"};
    for (size_t i = 0; i < sizeof leaky / sizeof leaky[0]; i++) {
        assert_int_equal(decode_text("fiscal.voucher.101001", leaky[i], &ev, &err), -1);
        assert_string_equal(err.field, "body");
        assert_non_null(strstr(err.reason, "invalid JSON"));
        assert_null(strstr(err.reason, "13800000000"));
        for (const char *c = err.reason; *c; c++)
            assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    }

    /* Duplicate keys, at the top and nested. */
    expect_error("fiscal.subsidy.101001",
                 "{\"id\": \"a\", \"id\": \"b\", \"occurred_at\": \"2024-06-05T10:00:00Z\"}",
                 "body", "duplicate key");
    char dup[2048];
    snprintf(dup, sizeof dup, "%.*s, \"amount\": \"1.00\"}", (int)strlen(SUBSIDY) - 1, SUBSIDY);
    expect_error("fiscal.subsidy.101001", dup, "body", "duplicate key");
    char *text = mutate(PAYROLL, "lines[0].earnings[0]", "{\"name\": \"x\", \"amount\": \"1\"}");
    char *p = strstr(text, "\"name\":\"x\"");
    assert_non_null(p);
    memcpy(p, "\"amount\":1", 10); /* same length: {"amount":1,"amount":"1"} */
    expect_error("fiscal.payroll.101001", text, "body", NULL);
    free(text);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "\xc3\x28",         /* bad continuation */
        "\xe4\xb8",         /* truncated sequence */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate encoded in UTF-8 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text, "%.*s, \"note\": \"a%sb\"}", (int)strlen(SUBSIDY) - 1, SUBSIDY,
                 bad[i]);
        expect_error("fiscal.subsidy.101001", text, "body", "invalid UTF-8");
    }
    /* The same bytes in a key. */
    expect_error("fiscal.subsidy.101001", "{\"a\xff\": 1}", "body", "invalid UTF-8");
}

static void test_payload_too_large(void **state)
{
    (void)state;
    fw_event ev;
    fw_decode_error err;
    size_t n = FW_EVENT_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    /* A syntactically valid body with a long note: still too large. */
    size_t head = strlen(SUBSIDY) - 1;
    memcpy(big, SUBSIDY, head);
    const char *mid = ", \"note\": \"";
    memcpy(big + head, mid, strlen(mid));
    size_t pos = head + strlen(mid);
    memset(big + pos, 'x', n - pos - 2);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    assert_int_equal(fw_event_decode("fiscal.subsidy.101001", big, n, &ev, &err), -1);
    assert_string_equal(err.field, "body");
    assert_string_equal(err.reason, "payload too large");
    assert_null(ev.body);
    /* One byte less is within the limit; the (unknown) note is kept. */
    memmove(big + n - 3, "\"}", 2);
    if (fw_event_decode("fiscal.subsidy.101001", big, n - 1, &ev, &err) != 0)
        fail_msg("%s: %s", err.field, err.reason);
    assert_int_equal(json_string_length(json_object_get(ev.body, "note")), n - 1 - pos - 2);
    fw_event_clear(&ev);
    free(big);
}

static void test_extra_fields_kept(void **state)
{
    (void)state;
    fw_event ev;
    char *text = mutate(VOUCHER_CREATED, "x_upstream", "{\"batch\": 7, \"amount\": \"1.234\"}");
    expect_ok("fiscal.voucher.101001", text, &ev);
    json_t *x = json_object_get(ev.body, "x_upstream");
    assert_true(json_is_object(x));
    /* Unknown fields are not normalised: their content is not ours. */
    assert_string_equal(json_string_value(json_object_get(x, "amount")), "1.234");
    fw_event_clear(&ev);
    free(text);

    /* Whitespace and key order do not matter; a redecode of the output
     * of a successful decode is not required to succeed (money is now fen). */
    expect_ok("fiscal.subsidy.101001",
              "\n{ \"amount\":\"0.01\" ,\"paid_at\":\"2024-06-05T02:00:00Z\",\"kind\":\"\","
              "\"phone\":\"\",\"name\":\"\",\"emp_id\":\"\",\"unit_code\":\"101001\","
              "\"occurred_at\":\"2024-06-05T02:00:00.5Z\",\"payout_id\":\"P\",\"id\":\"i\"}\n",
              &ev);
    assert_int_equal(int_at(ev.body, "amount"), 1);
    assert_int_equal(ev.occurred_at, 1717552800);
    fw_event_clear(&ev);
}

static void test_check_request(void **state)
{
    (void)state;
    fw_event ev;
    fw_decode_error err;
    /* No id and no event: a created voucher. */
    char *t1 = mutate(VOUCHER_CREATED, "id", NULL);
    char *t2 = mutate(t1, "event", NULL);
    assert_int_equal(fw_event_decode_check(t2, strlen(t2), &ev, &err), 0);
    assert_int_equal(ev.kind, FW_KIND_VOUCHER);
    assert_string_equal(ev.type, "voucher.created");
    assert_null(ev.id);
    assert_string_equal(ev.unit_code, "101001");
    assert_string_equal(json_string_value(json_object_get(ev.body, "event")), "created");
    assert_int_equal(int_at(ev.body, "amount"), 1234567);
    fw_event_clear(&ev);
    /* Any unit is fine: there is no subject to compare with. */
    char *t3 = mutate(t2, "unit_code", "\"999999\"");
    assert_int_equal(fw_event_decode_check(t3, strlen(t3), &ev, &err), 0);
    assert_string_equal(ev.unit_code, "999999");
    fw_event_clear(&ev);
    free(t3);
    /* With an id it is kept. */
    assert_int_equal(fw_event_decode_check(VOUCHER_CREATED, strlen(VOUCHER_CREATED), &ev, &err), 0);
    assert_string_equal(ev.id, "evt-000001");
    fw_event_clear(&ev);
    /* Only created makes sense for a check. */
    t3 = mutate(VOUCHER_CREATED, "event", "\"paid\"");
    assert_int_equal(fw_event_decode_check(t3, strlen(t3), &ev, &err), -1);
    assert_string_equal(err.field, "event");
    assert_null(ev.body);
    free(t3);
    /* The rest of the created rules hold. */
    t3 = mutate(t2, "amount", "12345.67");
    assert_int_equal(fw_event_decode_check(t3, strlen(t3), &ev, &err), -1);
    assert_string_equal(err.field, "amount");
    assert_string_equal(err.reason, "must be a string of yuan");
    free(t3);
    t3 = mutate(t2, "unit_code", NULL);
    assert_int_equal(fw_event_decode_check(t3, strlen(t3), &ev, &err), -1);
    assert_string_equal(err.field, "unit_code");
    free(t3);
    t3 = mutate(t2, "id", "5");
    assert_int_equal(fw_event_decode_check(t3, strlen(t3), &ev, &err), -1);
    assert_string_equal(err.field, "id");
    free(t3);
    assert_int_equal(fw_event_decode_check("nope", 4, &ev, &err), -1);
    assert_string_equal(err.field, "body");
    free(t1);
    free(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_voucher_created_valid),
        cmocka_unit_test(test_voucher_created_missing),
        cmocka_unit_test(test_voucher_created_mistyped),
        cmocka_unit_test(test_voucher_created_limits),
        cmocka_unit_test(test_voucher_later_events),
        cmocka_unit_test(test_indicator_valid),
        cmocka_unit_test(test_indicator_missing),
        cmocka_unit_test(test_indicator_mistyped),
        cmocka_unit_test(test_payroll_valid),
        cmocka_unit_test(test_payroll_missing),
        cmocka_unit_test(test_payroll_mistyped),
        cmocka_unit_test(test_payroll_line_count_limit),
        cmocka_unit_test(test_payroll_arith),
        cmocka_unit_test(test_reimburse),
        cmocka_unit_test(test_subsidy),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_unit_mismatch),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_payload_too_large),
        cmocka_unit_test(test_extra_fields_kept),
        cmocka_unit_test(test_check_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
