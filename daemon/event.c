/*
 * event.c - validate and decode the five inbound message kinds (contract §2).
 *
 * Each kind is described by tables of field specs (name, type, required);
 * one generic checker walks a table in order, so the first bad field in
 * table order is the one reported, and the error names its full path
 * ("lines[3].deductions[0].amount").  Money strings are parsed exactly and
 * replaced in place by JSON integers of fen; every other field keeps its
 * JSON type.  Fields the contract does not name are kept untouched.
 *
 * Decisions where the contract is silent:
 * - A JSON null in an optional field means "absent": the key is removed, so
 *   every consumer sees one form.  A null in a required field is a type
 *   error.
 * - Identifiers (id, voucher_no, unit_code, indicator_id, run_id, doc_no,
 *   reimb_id, payout_id, from_indicator_id) must be non-empty.  Names,
 *   accounts, phones and ID numbers may be anything textual: their validity
 *   is judged by rules and by the SMS module, not here.
 * - Money is non-negative unless the contract says otherwise (indicator
 *   adjust); voucher created, indicator allocate/transfer, reimburse and
 *   subsidy amounts must be greater than zero.
 * - A transfer to the indicator it comes from is malformed.
 */
#include "daemon/event.h"
#include "daemon/json_fast.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/money.h"
#include "daemon/timeutil.h"

#define MAXLEN_CODE 256  /* ids, codes, names, accounts */
#define MAXLEN_TEXT 1024 /* purpose, reason, note, summary */
#define MAX_PAYROLL_LINES 20000
#define MAX_LINE_ITEMS 200 /* earnings or deductions per line */
#define MAX_PARTS 10000

typedef enum {
    F_ID,     /* non-empty string, <= MAXLEN_CODE */
    F_STR,    /* string, <= MAXLEN_CODE */
    F_TEXT,   /* string, <= MAXLEN_TEXT */
    F_ENUM,   /* string, one of spec->values ("a|b|c") */
    F_MONEY,  /* yuan string -> integer fen; see spec->money */
    F_INT,    /* integer in [min, max] */
    F_TIME,   /* RFC 3339 with offset */
    F_DATE,   /* YYYY-MM-DD */
    F_PERIOD, /* YYYY-MM */
    F_LAST4,  /* exactly four ASCII digits */
} field_type;

typedef enum { M_NONNEG = 0, M_POSITIVE, M_NONZERO } money_rule;

typedef struct field_spec {
    const char *key;
    field_type type;
    int required;
    const char *values; /* F_ENUM: "a|b|c" */
    money_rule money;   /* F_MONEY */
    long long min, max; /* F_INT */
} field_spec;

#define REQ(k, t)                                                                                  \
    {                                                                                              \
        .key = k, .type = t, .required = 1                                                         \
    }
#define OPT(k, t)                                                                                  \
    {                                                                                              \
        .key = k, .type = t, .required = 0                                                         \
    }
#define REQ_ENUM(k, v)                                                                             \
    {                                                                                              \
        .key = k, .type = F_ENUM, .required = 1, .values = v                                       \
    }
#define REQ_MONEY(k, rule)                                                                         \
    {                                                                                              \
        .key = k, .type = F_MONEY, .required = 1, .money = rule                                    \
    }
#define OPT_MONEY(k, rule)                                                                         \
    {                                                                                              \
        .key = k, .type = F_MONEY, .required = 0, .money = rule                                    \
    }
#define REQ_INT(k, lo, hi)                                                                         \
    {                                                                                              \
        .key = k, .type = F_INT, .required = 1, .min = lo, .max = hi                               \
    }
#define OPT_INT(k, lo, hi)                                                                         \
    {                                                                                              \
        .key = k, .type = F_INT, .required = 0, .min = lo, .max = hi                               \
    }
#define END                                                                                        \
    {                                                                                              \
        .key = NULL                                                                                \
    }

#define VOUCHER_EVENTS "created|signed|sent|paid|returned|cancelled"
#define INDICATOR_OPS "allocate|adjust|transfer"
#define INDICATOR_FLAGS "salary|sangong|direct|subsidy|union"

/* `id` is handled by the caller (optional for check requests); `event` is
 * checked before the table is chosen. */
static const field_spec voucher_created[] = {
    REQ("occurred_at", F_TIME),
    REQ("voucher_no", F_ID),
    REQ_INT("year", 2000, 2100),
    REQ("unit_code", F_ID),
    REQ("unit_name", F_STR),
    REQ("indicator_id", F_ID),
    REQ("func_class", F_ID),
    REQ("econ_class", F_ID),
    REQ_ENUM("pay_method", "direct|authorized"),
    REQ_ENUM("settle_method", "transfer|cash|card|check"),
    REQ("payee_name", F_STR),
    REQ("payee_account", F_STR),
    REQ("payee_bank", F_STR),
    REQ_ENUM("payee_type", "company|individual|own_unit|government"),
    REQ_MONEY("amount", M_POSITIVE),
    REQ("purpose", F_TEXT),
    OPT("payer_name", F_STR),
    OPT("payer_account", F_STR),
    OPT("fund_type", F_STR),
    OPT("project_code", F_STR),
    END,
};

/* signed, sent, paid; `amount`, when present, is compared by a flow rule. */
static const field_spec voucher_later[] = {
    REQ("occurred_at", F_TIME),    REQ("voucher_no", F_ID), REQ("unit_code", F_ID),
    OPT_MONEY("amount", M_NONNEG), OPT("bank_ref", F_STR),  END,
};

/* returned, cancelled */
static const field_spec voucher_later_reason[] = {
    REQ("occurred_at", F_TIME),
    REQ("voucher_no", F_ID),
    REQ("unit_code", F_ID),
    OPT_MONEY("amount", M_NONNEG),
    OPT("bank_ref", F_STR),
    REQ("reason", F_TEXT),
    END,
};

static const field_spec indicator_common[] = {
    REQ("occurred_at", F_TIME), REQ("doc_no", F_ID),     REQ("indicator_id", F_ID),
    REQ("unit_code", F_ID),     OPT("fund_type", F_STR), OPT("fund_source", F_STR),
    OPT("project_code", F_STR), OPT("note", F_TEXT),     END,
};

static const field_spec indicator_allocate[] = {
    REQ_MONEY("amount", M_POSITIVE),
    REQ_INT("year", 2000, 2100),
    REQ("func_class", F_ID),
    REQ("econ_class", F_ID),
    END,
};

static const field_spec indicator_adjust[] = {
    REQ_MONEY("amount", M_NONZERO),
    OPT_INT("year", 2000, 2100),
    OPT("func_class", F_ID),
    OPT("econ_class", F_ID),
    END,
};

static const field_spec indicator_transfer[] = {
    REQ_MONEY("amount", M_POSITIVE), REQ("from_indicator_id", F_ID), OPT_INT("year", 2000, 2100),
    OPT("func_class", F_ID),         OPT("econ_class", F_ID),        END,
};

static const field_spec payroll_run[] = {
    REQ("run_id", F_ID),
    REQ_INT("part", 1, MAX_PARTS),
    REQ_INT("parts", 1, MAX_PARTS),
    REQ("occurred_at", F_TIME),
    REQ("unit_code", F_ID),
    OPT("unit_name", F_STR),
    REQ("period", F_PERIOD),
    REQ("pay_date", F_DATE),
    REQ("indicator_id", F_ID),
    END,
};

static const field_spec payroll_line[] = {
    REQ("emp_id", F_STR), REQ("name", F_STR),    REQ("id_no", F_STR),
    REQ("phone", F_STR),  REQ("account", F_STR), END,
};

static const field_spec payroll_line_money[] = {
    REQ_MONEY("gross", M_NONNEG),
    REQ_MONEY("net", M_NONNEG),
    END,
};

static const field_spec payroll_item[] = {
    REQ("name", F_STR),
    REQ_MONEY("amount", M_NONNEG),
    END,
};

static const field_spec reimburse_fields[] = {
    REQ("reimb_id", F_ID),
    REQ("occurred_at", F_TIME),
    REQ("unit_code", F_ID),
    REQ("emp_id", F_STR),
    REQ("name", F_STR),
    REQ("phone", F_STR),
    REQ_MONEY("amount", M_POSITIVE),
    REQ("card_last4", F_LAST4),
    REQ("spent_on", F_DATE),
    REQ("paid_at", F_TIME),
    REQ("summary", F_TEXT),
    END,
};

static const field_spec subsidy_fields[] = {
    REQ("payout_id", F_ID), REQ("occurred_at", F_TIME),
    REQ("unit_code", F_ID), REQ("emp_id", F_STR),
    REQ("name", F_STR),     REQ("phone", F_STR),
    REQ("kind", F_STR),     REQ_MONEY("amount", M_POSITIVE),
    REQ("paid_at", F_TIME), END,
};

static const field_spec id_required = REQ("id", F_ID);
static const field_spec id_optional = OPT("id", F_ID);

static const char *const kind_names[FW_KIND__COUNT] = {
    [FW_KIND_VOUCHER] = "voucher", [FW_KIND_INDICATOR] = "indicator",
    [FW_KIND_PAYROLL] = "payroll", [FW_KIND_REIMBURSE] = "reimburse",
    [FW_KIND_SUBSIDY] = "subsidy", [FW_KIND_UNKNOWN] = "unknown",
};

const char *fw_kind_name(fw_kind k)
{
    if ((int)k < 0 || k >= FW_KIND__COUNT)
        return "unknown";
    return kind_names[k];
}

/* "fiscal.<kind>.<unit>" with exactly three non-empty tokens and no
 * wildcards.  Returns the kind and points *unit into subject. */
static fw_kind parse_subject(const char *subject, const char **unit)
{
    static const char prefix[] = "fiscal.";
    if (unit)
        *unit = NULL;
    if (subject == NULL || strncmp(subject, prefix, sizeof prefix - 1) != 0)
        return FW_KIND_UNKNOWN;
    const char *k = subject + sizeof prefix - 1;
    const char *dot = strchr(k, '.');
    if (dot == NULL || dot[1] == '\0')
        return FW_KIND_UNKNOWN;
    for (const char *p = dot + 1; *p; p++)
        if (*p == '.' || *p == '*' || *p == '>' || *p == ' ' || *p == '\t' || *p == '\r' ||
            *p == '\n')
            return FW_KIND_UNKNOWN;
    size_t klen = (size_t)(dot - k);
    for (int i = 0; i < FW_KIND_UNKNOWN; i++) {
        if (strlen(kind_names[i]) == klen && memcmp(kind_names[i], k, klen) == 0) {
            if (unit)
                *unit = dot + 1;
            return (fw_kind)i;
        }
    }
    return FW_KIND_UNKNOWN;
}

fw_kind fw_kind_from_subject(const char *subject)
{
    return parse_subject(subject, NULL);
}

__attribute__((format(printf, 3, 4))) static int fail(fw_decode_error *err, const char *reason,
                                                      const char *field_fmt, ...)
{
    va_list ap;
    va_start(ap, field_fmt);
    vsnprintf(err->field, sizeof err->field, field_fmt, ap);
    va_end(ap);
    snprintf(err->reason, sizeof err->reason, "%s", reason);
    return -1;
}

/* "must be one of a|b|c" if s is not one of the '|'-separated values. */
static int enum_has(const char *values, const char *s, size_t len)
{
    const char *p = values;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && memcmp(p, s, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static int check_string(json_t *v, const field_spec *f, const char *prefix, fw_decode_error *err)
{
    if (!json_is_string(v))
        return fail(err, "must be a string", "%s%s", prefix, f->key);
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    switch (f->type) {
    case F_ID:
        if (len == 0)
            return fail(err, "must not be empty", "%s%s", prefix, f->key);
        /* fall through */
    case F_STR:
        if (len > MAXLEN_CODE)
            return fail(err, "too long", "%s%s", prefix, f->key);
        break;
    case F_TEXT:
        if (len > MAXLEN_TEXT)
            return fail(err, "too long", "%s%s", prefix, f->key);
        break;
    case F_ENUM:
        if (!enum_has(f->values, s, len)) {
            char reason[sizeof err->reason];
            snprintf(reason, sizeof reason, "must be one of %s", f->values);
            return fail(err, reason, "%s%s", prefix, f->key);
        }
        break;
    case F_TIME:
        if (fw_time_parse(s, NULL, NULL) != 0)
            return fail(err, "must be an RFC 3339 time with offset", "%s%s", prefix, f->key);
        break;
    case F_DATE:
        if (fw_date_parse(s, NULL, NULL, NULL, NULL) != 0)
            return fail(err, "must be a date YYYY-MM-DD", "%s%s", prefix, f->key);
        break;
    case F_PERIOD:
        if (fw_period_parse(s, NULL, NULL, NULL) != 0)
            return fail(err, "must be a period YYYY-MM", "%s%s", prefix, f->key);
        break;
    case F_LAST4:
        if (len != 4 || strspn(s, "0123456789") != 4)
            return fail(err, "must be 4 digits", "%s%s", prefix, f->key);
        break;
    default:
        break;
    }
    return 0;
}

static int check_money(json_t *obj, json_t *v, const field_spec *f, const char *prefix,
                       fw_decode_error *err)
{
    const char *reason = NULL;
    int64_t fen = 0;
    if (!json_is_string(v))
        return fail(err, "must be a string of yuan", "%s%s", prefix, f->key);
    if (fw_money_parse(json_string_value(v), json_string_length(v), f->money == M_NONZERO, &fen,
                       &reason) != 0)
        return fail(err, reason, "%s%s", prefix, f->key);
    if (f->money == M_POSITIVE && fen <= 0)
        return fail(err, "must be greater than zero", "%s%s", prefix, f->key);
    if (f->money == M_NONZERO && fen == 0)
        return fail(err, "must not be zero", "%s%s", prefix, f->key);
    if (json_object_set_new(obj, f->key, json_integer((json_int_t)fen)) != 0)
        return fail(err, "out of memory", "%s%s", prefix, f->key);
    return 0;
}

static int check_field(json_t *obj, const field_spec *f, const char *prefix, fw_decode_error *err)
{
    json_t *v = json_object_get(obj, f->key);
    if (v == NULL) {
        if (f->required)
            return fail(err, "missing", "%s%s", prefix, f->key);
        return 0;
    }
    if (json_is_null(v) && !f->required) {
        json_object_del(obj, f->key);
        return 0;
    }
    switch (f->type) {
    case F_MONEY:
        return check_money(obj, v, f, prefix, err);
    case F_INT:
        if (!json_is_integer(v))
            return fail(err, "must be an integer", "%s%s", prefix, f->key);
        if (json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
            char reason[64];
            snprintf(reason, sizeof reason, "must be between %lld and %lld", f->min, f->max);
            return fail(err, reason, "%s%s", prefix, f->key);
        }
        return 0;
    default:
        return check_string(v, f, prefix, err);
    }
}

static int check_fields(json_t *obj, const field_spec *specs, const char *prefix,
                        fw_decode_error *err)
{
    for (const field_spec *f = specs; f->key; f++)
        if (check_field(obj, f, prefix, err) != 0)
            return -1;
    return 0;
}

static const char *str_of(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The `event` of a voucher body; for a check request an absent event means
 * created (and is filled in, so rules always see v.event). */
static int decode_voucher(json_t *body, fw_event *ev, int is_check, fw_decode_error *err)
{
    static const field_spec event_spec = REQ_ENUM("event", VOUCHER_EVENTS);
    const field_spec *table;
    const char *event;

    if (is_check && json_object_get(body, "event") == NULL)
        json_object_set_new(body, "event", json_string("created"));
    if (check_field(body, &event_spec, "", err) != 0)
        return -1;
    event = str_of(body, "event");
    if (is_check && strcmp(event, "created") != 0)
        return fail(err, "must be created for a check", "event");

    if (strcmp(event, "created") == 0)
        table = voucher_created;
    else if (strcmp(event, "returned") == 0 || strcmp(event, "cancelled") == 0)
        table = voucher_later_reason;
    else
        table = voucher_later;
    if (check_fields(body, table, "", err) != 0)
        return -1;
    snprintf(ev->type, sizeof ev->type, "voucher.%s", event);
    return 0;
}

static int check_flags(json_t *body, fw_decode_error *err)
{
    json_t *flags = json_object_get(body, "flags");
    size_t i;
    json_t *f;
    if (flags == NULL)
        return 0;
    if (json_is_null(flags)) {
        json_object_del(body, "flags");
        return 0;
    }
    if (!json_is_array(flags))
        return fail(err, "must be an array", "flags");
    json_array_foreach(flags, i, f)
    {
        if (!json_is_string(f))
            return fail(err, "must be a string", "flags[%zu]", i);
        if (!enum_has(INDICATOR_FLAGS, json_string_value(f), json_string_length(f)))
            return fail(err, "must be one of " INDICATOR_FLAGS, "flags[%zu]", i);
    }
    return 0;
}

static int decode_indicator(json_t *body, fw_event *ev, fw_decode_error *err)
{
    static const field_spec op_spec = REQ_ENUM("op", INDICATOR_OPS);
    const field_spec *table;
    const char *op;

    if (check_field(body, &op_spec, "", err) != 0)
        return -1;
    if (check_fields(body, indicator_common, "", err) != 0)
        return -1;
    op = str_of(body, "op");
    if (strcmp(op, "allocate") == 0)
        table = indicator_allocate;
    else if (strcmp(op, "adjust") == 0)
        table = indicator_adjust;
    else
        table = indicator_transfer;
    if (check_fields(body, table, "", err) != 0)
        return -1;
    if (check_flags(body, err) != 0)
        return -1;
    if (table == indicator_transfer &&
        strcmp(str_of(body, "from_indicator_id"), str_of(body, "indicator_id")) == 0)
        return fail(err, "must differ from indicator_id", "from_indicator_id");
    snprintf(ev->type, sizeof ev->type, "indicator.%s", op);
    return 0;
}

/* earnings / deductions of one line: arrays of {name, amount}. */
static int check_line_items(json_t *line, const char *key, size_t li, fw_decode_error *err)
{
    json_t *items = json_object_get(line, key);
    json_t *item;
    size_t i;
    char prefix[64];

    if (items == NULL)
        return fail(err, "missing", "lines[%zu].%s", li, key);
    if (!json_is_array(items))
        return fail(err, "must be an array", "lines[%zu].%s", li, key);
    if (json_array_size(items) > MAX_LINE_ITEMS)
        return fail(err, "too many entries", "lines[%zu].%s", li, key);
    json_array_foreach(items, i, item)
    {
        if (!json_is_object(item))
            return fail(err, "must be an object", "lines[%zu].%s[%zu]", li, key, i);
        snprintf(prefix, sizeof prefix, "lines[%zu].%s[%zu].", li, key, i);
        if (check_fields(item, payroll_item, prefix, err) != 0)
            return -1;
    }
    return 0;
}

static int decode_payroll(json_t *body, fw_event *ev, fw_decode_error *err)
{
    json_t *lines, *line;
    size_t i;
    char prefix[32];

    if (check_fields(body, payroll_run, "", err) != 0)
        return -1;
    if (json_integer_value(json_object_get(body, "parts")) <
        json_integer_value(json_object_get(body, "part")))
        return fail(err, "must be at least part", "parts");

    lines = json_object_get(body, "lines");
    if (lines == NULL)
        return fail(err, "missing", "lines");
    if (!json_is_array(lines))
        return fail(err, "must be an array", "lines");
    if (json_array_size(lines) == 0)
        return fail(err, "must not be empty", "lines");
    if (json_array_size(lines) > MAX_PAYROLL_LINES)
        return fail(err, "more than 20000 lines", "lines");
    json_array_foreach(lines, i, line)
    {
        if (!json_is_object(line))
            return fail(err, "must be an object", "lines[%zu]", i);
        snprintf(prefix, sizeof prefix, "lines[%zu].", i);
        if (check_fields(line, payroll_line, prefix, err) != 0 ||
            check_line_items(line, "earnings", i, err) != 0 ||
            check_line_items(line, "deductions", i, err) != 0 ||
            check_fields(line, payroll_line_money, prefix, err) != 0)
            return -1;
    }
    snprintf(ev->type, sizeof ev->type, "payroll.run");
    return 0;
}

/* jansson's message echoes the input after " near ": drop that part, so no
 * personal data (a phone number next to a syntax error) and no control
 * bytes reach the DLQ header or the log. */
static void fail_json_syntax(fw_decode_error *err, const json_error_t *jerr)
{
    char text[sizeof jerr->text];
    char reason[sizeof err->reason];
    snprintf(text, sizeof text, "%s", jerr->text);
    char *near = strstr(text, " near ");
    if (near)
        *near = '\0';
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    snprintf(reason, sizeof reason, "invalid JSON: %.100s (line %d column %d)", text, jerr->line,
             jerr->column);
    fail(err, reason, "body");
}

/* Shared tail of both entry points: parse, dispatch on kind, fill ev. */
static int decode_body(fw_kind kind, const char *unit, const char *data, size_t len, int is_check,
                       fw_event *ev, fw_decode_error *err)
{
    json_error_t jerr;
    json_t *body = NULL;
    int rc = -1;

    if (len > FW_EVENT_MAX_BYTES) {
        fail(err, "payload too large", "body");
        goto cleanup;
    }
    /* The common form directly; anything else (errors included) as
     * jansson reads it (see json_fast.h). */
    body = fw_json_load_fast(data, len);
    if (!body)
        body = json_loadb(data ? data : "", data ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        switch (json_error_code(&jerr)) {
        case json_error_invalid_utf8:
            fail(err, "invalid UTF-8", "body");
            break;
        case json_error_duplicate_key:
            fail(err, "duplicate key", "body");
            break;
        default:
            fail_json_syntax(err, &jerr);
            break;
        }
        goto cleanup;
    }
    if (!json_is_object(body)) {
        fail(err, "must be a JSON object", "body");
        goto cleanup;
    }

    if (check_field(body, is_check ? &id_optional : &id_required, "", err) != 0)
        goto cleanup;
    switch (kind) {
    case FW_KIND_VOUCHER:
        rc = decode_voucher(body, ev, is_check, err);
        break;
    case FW_KIND_INDICATOR:
        rc = decode_indicator(body, ev, err);
        break;
    case FW_KIND_PAYROLL:
        rc = decode_payroll(body, ev, err);
        break;
    case FW_KIND_REIMBURSE:
        rc = check_fields(body, reimburse_fields, "", err);
        snprintf(ev->type, sizeof ev->type, "reimburse");
        break;
    case FW_KIND_SUBSIDY:
        rc = check_fields(body, subsidy_fields, "", err);
        snprintf(ev->type, sizeof ev->type, "subsidy");
        break;
    default:
        fail(err, "unknown kind", "subject");
        break;
    }
    if (rc != 0)
        goto cleanup;
    rc = -1;
    /* Every table above requires unit_code, so it is a non-empty string. */
    if (unit && strcmp(unit, str_of(body, "unit_code")) != 0) {
        fail(err, "does not match the subject's unit", "unit_code");
        goto cleanup;
    }
    if (fw_time_parse(str_of(body, "occurred_at"), &ev->occurred_at, NULL) != 0) {
        fail(err, "must be an RFC 3339 time with offset", "occurred_at");
        goto cleanup;
    }
    ev->kind = kind;
    ev->id = str_of(body, "id");
    ev->unit_code = str_of(body, "unit_code");
    ev->body = body;
    body = NULL;
    rc = 0;

cleanup:
    json_decref(body);
    return rc;
}

int fw_event_decode(const char *subject, const char *data, size_t len, fw_event *ev,
                    fw_decode_error *err)
{
    const char *unit = NULL;
    fw_kind kind;
    int rc = -1;

    memset(ev, 0, sizeof *ev);
    memset(err, 0, sizeof *err);
    if (subject == NULL || strlen(subject) >= sizeof ev->subject) {
        fail(err, "must be fiscal.<kind>.<unit>", "subject");
        goto cleanup;
    }
    kind = parse_subject(subject, &unit);
    if (kind == FW_KIND_UNKNOWN) {
        fail(err, "must be fiscal.<kind>.<unit> with a known kind", "subject");
        goto cleanup;
    }
    rc = decode_body(kind, unit, data, len, 0, ev, err);
    if (rc == 0)
        snprintf(ev->subject, sizeof ev->subject, "%s", subject);

cleanup:
    if (rc != 0)
        fw_event_clear(ev);
    return rc;
}

int fw_event_decode_check(const char *data, size_t len, fw_event *ev, fw_decode_error *err)
{
    int rc;
    memset(ev, 0, sizeof *ev);
    memset(err, 0, sizeof *err);
    rc = decode_body(FW_KIND_VOUCHER, NULL, data, len, 1, ev, err);
    if (rc != 0)
        fw_event_clear(ev);
    return rc;
}

void fw_event_clear(fw_event *ev)
{
    if (ev == NULL)
        return;
    json_decref(ev->body);
    memset(ev, 0, sizeof *ev);
}

/* Sum of items[].amount (integer fen) into *sum; 0, or -1 when an item is
 * not decoded or the sum overflows. */
static int sum_amounts(const json_t *items, int64_t *sum)
{
    size_t i;
    const json_t *item;
    int64_t s = 0;
    if (!json_is_array(items))
        return -1;
    json_array_foreach(items, i, item)
    {
        const json_t *a = json_object_get(item, "amount");
        if (!json_is_integer(a) || __builtin_add_overflow(s, (int64_t)json_integer_value(a), &s))
            return -1;
    }
    *sum = s;
    return 0;
}

int fw_payroll_line_arith_ok(const json_t *line)
{
    int64_t earnings, deductions;
    const json_t *gross = json_object_get(line, "gross");
    const json_t *net = json_object_get(line, "net");
    int64_t expect_net;

    if (!json_is_integer(gross) || !json_is_integer(net))
        return 0;
    if (sum_amounts(json_object_get(line, "earnings"), &earnings) != 0 ||
        sum_amounts(json_object_get(line, "deductions"), &deductions) != 0)
        return 0;
    if (__builtin_sub_overflow((int64_t)json_integer_value(gross), deductions, &expect_net))
        return 0;
    return json_integer_value(gross) == earnings && json_integer_value(net) == expect_net;
}
