/* test_core_json_fast.c - fw_json_load_fast() returns exactly what
 * json_loadb(JSON_REJECT_DUPLICATES) returns, or NULL (the caller then asks
 * json_loadb): on hand-written edge cases, on random documents and on
 * random mutations of them.  It must also take the common bodies, or it
 * would be a fast path that never runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/json_fast.h"

/* 1 when the fast path took it, 0 when it declined; fails the test if it
 * took something json_loadb treats otherwise. */
static int same_as_jansson(const char *data, size_t len)
{
    json_t *fast = fw_json_load_fast(data, len);
    if (!fast)
        return 0;
    json_error_t jerr;
    json_t *ref = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ref)
        fail_msg("fast path took what jansson rejects (%s): %.*s", jerr.text, (int)len, data);
    char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(a);
    assert_non_null(b);
    if (strcmp(a, b) != 0)
        fail_msg("differs from jansson:\n fast %s\n ref  %s", a, b);
    free(a);
    free(b);
    json_decref(fast);
    json_decref(ref);
    return 1;
}

static int take(const char *s)
{
    return same_as_jansson(s, strlen(s));
}

static const char k_voucher[] =
    "{\"id\":\"v123\",\"event\":\"created\",\"occurred_at\":\"2024-06-12T10:02:03+08:00\","
    "\"voucher_no\":\"ZF202400000123\",\"year\":2024,\"unit_code\":\"100023\","
    "\"unit_name\":\"三门峡市某单位\",\"indicator_id\":\"ZB2024-100023-0001\","
    "\"func_class\":\"2050201\",\"econ_class\":\"30201\",\"pay_method\":\"direct\","
    "\"settle_method\":\"transfer\",\"payee_name\":\"三门峡市某某有限公司123\","
    "\"payee_account\":\"41050166000000000123\",\"payee_bank\":\"中国建设银行三门峡分行\","
    "\"payee_type\":\"company\",\"amount\":\"1234.56\",\"purpose\":\"办公用品采购\"}";

static const char k_payroll[] =
    " {\"id\":\"p1\",\"run_id\":\"R1\",\"part\":1,\"parts\":2,\"flags\":[\"salary\"],"
    "\"ok\":true,\"no\":false,\"none\":null,\"neg\":-42,\"zero\":0,\"mz\":-0,"
    "\"lines\":[{\"emp_id\":\"E001\",\"earnings\":[{\"name\":\"岗位工资\",\"amount\":\"100.00\"}],"
    "\"deductions\":[],\"gross\":\"100.00\",\"net\":\"90.00\"},{}], \"e\" : { } ,\"😀\":\"𝄞\"}\n";

static void test_common_bodies_are_taken(void **state)
{
    (void)state;
    assert_int_equal(take(k_voucher), 1);
    assert_int_equal(take(k_payroll), 1);
    assert_int_equal(take("{}"), 1);
    assert_int_equal(take("\t\r\n {\"\":\"\"} \t\r\n"), 1);
    assert_int_equal(take("{\"big\":999999999999999999,\"small\":-999999999999999999}"), 1);
    assert_int_equal(take("{\"a\":{\"a\":{\"a\":[[[]]]}},\"b\":\"\x7f\"}"), 1);
}

static void test_edge_cases_match_or_decline(void **state)
{
    (void)state;
    /* Each either declined or identical to jansson; the ones jansson
     * rejects must be declined (same_as_jansson fails otherwise). */
    static const char *const declined[] = {
        "",
        " ",
        "[]",
        "[1]",
        "\"x\"",
        "1",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":1,\"b\":1}}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":-a}",
        "{\"a\":+1}",
        "{\"a\":1.5}",
        "{\"a\":1e5}",
        "{\"a\":1E5}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1234567890123456789}",
        "{\"a\":99999999999999999999999}",
        "{\"a\":-9223372036854775808}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":true1}",
        "{\"a\":nul}",
        "{\"a\":nulll}",
        "{\"a\":False}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\\u0000\":1}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\ud800\\ud800\"}",
        "{\"a\":\"\\ud800x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\\x41\"}",
        "{\"a\":\"\\U0041\"}",
        "{\"a\":\"\\\"}",
        "{\"a\":\"\\",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"\xc0\x80\"}",
        "{\"a\":\"\xc1\xbf\"}",
        "{\"a\":\"\xe0\x80\x80\"}",
        "{\"a\":\"\xe0\x9f\xbf\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xed\xbf\xbf\"}",
        "{\"a\":\"\xf0\x80\x80\x80\"}",
        "{\"a\":\"\xf0\x8f\xbf\xbf\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xf5\x80\x80\x80\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\x80\"}",
        "{\"a\":\"\xe4\xb8\"}",
        "{\"a\":\"\xe4\xb8",
        "{\"\xe4\":1}",
        "\xef\xbb\xbf{}",
        "{\"a\":1}\f",
        "\f{}",
        "{\"a\":\f1}",
    };
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++)
        if (take(declined[i]))
            fail_msg("fast path took case %zu: %s", i, declined[i]);
    /* A NUL byte, inside a string and between tokens. */
    assert_int_equal(same_as_jansson("{\"a\":\"x\0y\"}", 11), 0);
    assert_int_equal(same_as_jansson("{\"a\":1}\0", 8), 0);
    assert_int_equal(same_as_jansson("{\"a\":1\0}", 8), 0);
    /* Valid UTF-8 at the edges of each form is taken. */
    assert_int_equal(take("{\"a\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
                          "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}"),
                     1);
    /* Escapes are decoded as jansson decodes them. */
    assert_int_equal(
        take("{\"a\\n\":\"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\",\"b\":\"\\u0041\\u00e9\\u4E09"
             "\\uffff\\uD83D\\uDE00\\udbff\\udfff 三\"}"),
        1);
    /* Deep nesting: declined past 64 levels (jansson's own limit is
     * larger), taken below. */
    char deep[1024];
    for (int depth = 60; depth <= 70; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
        n += (size_t)snprintf(deep + n, sizeof deep - n, "1");
        for (int i = 0; i < depth; i++)
            deep[n++] = '}';
        deep[n] = '\0';
        assert_int_equal(take(deep), depth <= 64);
    }
}

/* ---- random documents ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void ws(buf *b)
{
    static const char *const w[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    puts_(b, w[rnd(7)]);
}

static void gen_string(buf *b)
{
    static const char *const parts[] = {
        "a",    "Z",   "0",    " ",       "三门峡",         "😀",   "𝄞",  "\xc2\xa9",
        "\x7f", "\\n", "\\\"", "\\u00e9", "\\ud83d\\ude00", "key", "id", "amount",
        "-",    "_",
    };
    puts_(b, "\"");
    int n = (int)rnd(5);
    for (int i = 0; i < n; i++)
        puts_(b, parts[rnd(sizeof parts / sizeof parts[0])]);
    puts_(b, "\"");
}

static void gen_value(buf *b, int depth)
{
    static const char *const scalars[] = {
        "0",
        "-0",
        "7",
        "-12",
        "123456789012345678",
        "1234567890123456789",
        "1.5",
        "-2e3",
        "true",
        "false",
        "null",
        "9223372036854775807",
        "00",
        "1E2",
    };
    unsigned k = rnd(depth > 4 ? 3 : 6);
    if (k == 0) {
        puts_(b, scalars[rnd(sizeof scalars / sizeof scalars[0])]);
    } else if (k <= 2) {
        gen_string(b);
    } else if (k == 3) {
        puts_(b, "[");
        int n = (int)rnd(4);
        for (int i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            ws(b);
            gen_value(b, depth + 1);
            ws(b);
        }
        puts_(b, "]");
    } else {
        puts_(b, "{");
        int n = (int)rnd(5);
        for (int i = 0; i < n; i++) {
            if (i)
                puts_(b, ",");
            ws(b);
            /* few distinct keys: duplicates happen */
            static const char *const keys[] = {"\"a\"", "\"b\"", "\"id\"", "\"金额\"", "\"\""};
            if (rnd(8))
                puts_(b, keys[rnd(5)]);
            else
                gen_string(b);
            ws(b);
            puts_(b, ":");
            ws(b);
            gen_value(b, depth + 1);
        }
        ws(b);
        puts_(b, "}");
    }
}

static void test_random_and_mutated_documents(void **state)
{
    (void)state;
    static const char mutants[] = "{}[],:\"\\-0.e \x80\xe4\xff\x00tn";
    long taken = 0, total = 0;
    buf b = {0};
    for (int i = 0; i < 20000; i++) {
        b.n = 0;
        ws(&b);
        if (rnd(10) == 0) {
            gen_value(&b, 0); /* any top-level value */
        } else {
            puts_(&b, "{\"x\":");
            gen_value(&b, 0);
            puts_(&b, ",\"y\":");
            gen_value(&b, 0);
            puts_(&b, "}");
        }
        ws(&b);
        taken += same_as_jansson(b.p, b.n);
        total++;
        /* Mutations: a byte replaced, removed, inserted; a prefix. */
        for (int m = 0; m < 4; m++) {
            char *c = malloc(b.n + 2);
            assert_non_null(c);
            memcpy(c, b.p, b.n);
            size_t n = b.n, at = rnd((unsigned)b.n + 1);
            char x = mutants[rnd(sizeof mutants - 1)];
            if (m == 0 && at < n) {
                c[at] = x;
            } else if (m == 1 && at < n) {
                memmove(c + at, c + at + 1, n - at - 1);
                n--;
            } else if (m == 2) {
                memmove(c + at + 1, c + at, n - at);
                c[at] = x;
                n++;
            } else {
                n = at;
            }
            taken += same_as_jansson(c, n);
            total++;
            free(c);
        }
    }
    free(b.p);
    /* Not vacuous: a good share of the documents took the fast path. */
    assert_true(taken > total / 20);
    printf("fast path took %ld of %ld documents\n", taken, total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_bodies_are_taken),
        cmocka_unit_test(test_edge_cases_match_or_decline),
        cmocka_unit_test(test_random_and_mutated_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
