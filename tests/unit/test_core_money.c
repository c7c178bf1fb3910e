/*
 * test_core_money.c - contract §1: yuan strings parsed exactly into fen,
 * and the two formatters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/money.h"

static int parse(const char *s, int allow_negative, int64_t *fen, const char **reason)
{
    return fw_money_parse(s, strlen(s), allow_negative, fen, reason);
}

static void expect_fen(const char *s, int allow_negative, int64_t want)
{
    int64_t fen = -12345;
    const char *reason = NULL;
    int rc = parse(s, allow_negative, &fen, &reason);
    if (rc != 0)
        fail_msg("\"%s\" rejected: %s", s, reason);
    if (fen != want)
        fail_msg("\"%s\" -> %lld fen, want %lld", s, (long long)fen, (long long)want);
}

static void expect_reject(const char *s, int allow_negative, const char *want_reason)
{
    int64_t fen = 777;
    const char *reason = NULL;
    int rc = parse(s, allow_negative, &fen, &reason);
    if (rc != -1)
        fail_msg("\"%s\" accepted as %lld fen", s, (long long)fen);
    assert_non_null(reason);
    if (want_reason && strcmp(reason, want_reason) != 0)
        fail_msg("\"%s\": reason \"%s\", want \"%s\"", s, reason, want_reason);
    assert_int_equal(fen, 777); /* untouched on failure */
}

static void test_valid_forms(void **state)
{
    (void)state;
    expect_fen("12345.67", 0, 1234567);
    expect_fen("0.5", 0, 50);
    expect_fen("0.05", 0, 5);
    expect_fen("100", 0, 10000);
    expect_fen("0", 0, 0);
    expect_fen("0.00", 0, 0);
    expect_fen("1.1", 0, 110);
    expect_fen("6700.00", 0, 670000);
    expect_fen("007", 0, 700); /* leading zeros are unambiguous */
    expect_fen("00.50", 0, 50);
    expect_fen("999999999.99", 0, 99999999999LL);
}

static void test_negative(void **state)
{
    (void)state;
    expect_fen("-1.5", 1, -150);
    expect_fen("-0.01", 1, -1);
    expect_fen("-0", 1, 0);
    expect_fen("-10000000000000", 1, -FW_MONEY_MAX_FEN);
    expect_reject("-1.5", 0, "must not be negative");
    expect_reject("-", 1, "no digits");
    expect_reject("--1", 1, NULL);
    expect_reject("-.5", 1, NULL);
    expect_reject("- 1", 1, NULL);
}

static void test_rejected_forms(void **state)
{
    (void)state;
    expect_reject("", 0, "empty");
    expect_reject("1.234", 0, "more than two decimals");
    expect_reject("0.001", 0, "more than two decimals");
    expect_reject("1e3", 0, "exponent not allowed");
    expect_reject("1E3", 0, "exponent not allowed");
    expect_reject("1.5e2", 0, "exponent not allowed");
    expect_reject("+1", 0, "leading '+' not allowed");
    expect_reject("+1", 1, "leading '+' not allowed");
    expect_reject(".5", 0, NULL);
    expect_reject(".", 0, NULL);
    expect_reject("5.", 0, "trailing '.' not allowed");
    expect_reject(" 1", 0, NULL);
    expect_reject("1 ", 0, "whitespace not allowed");
    expect_reject("1\t", 0, "whitespace not allowed");
    expect_reject("1,000.00", 0, NULL);
    expect_reject("1.2.3", 0, NULL);
    expect_reject("abc", 0, NULL);
    expect_reject("0x10", 0, NULL);
    expect_reject("NaN", 0, NULL);
    expect_reject("Infinity", 0, NULL);
    expect_reject("１００", 0, NULL); /* full-width digits */
    expect_reject("1.-5", 0, NULL);
}

static void test_bounds_and_overflow(void **state)
{
    (void)state;
    /* Exactly 10^13 yuan is allowed; a fen more is "over 10^13 yuan". */
    expect_fen("10000000000000", 0, FW_MONEY_MAX_FEN);
    expect_fen("10000000000000.00", 0, FW_MONEY_MAX_FEN);
    expect_fen("9999999999999.99", 0, FW_MONEY_MAX_FEN - 1);
    expect_reject("10000000000000.01", 0, "over 10^13 yuan");
    expect_reject("10000000000001", 0, "over 10^13 yuan");
    expect_reject("-10000000000000.01", 1, "over 10^13 yuan");
    /* Values that would overflow int64 (and uint64) if accumulated naively. */
    expect_reject("92233720368547758.08", 0, "over 10^13 yuan");
    expect_reject("184467440737095516160", 0, "over 10^13 yuan");
    expect_reject("99999999999999999999999999999999999999", 0, "over 10^13 yuan");
    /* Leading zeros do not count towards the bound. */
    expect_fen("0000000000000000000000001.00", 0, 100);
}

static void test_length_is_respected(void **state)
{
    (void)state;
    int64_t fen = 0;
    const char *reason = NULL;
    /* Only the first len bytes count: "12.34" of "12.345". */
    assert_int_equal(fw_money_parse("12.345", 5, 0, &fen, &reason), 0);
    assert_int_equal(fen, 1234);
    /* An embedded NUL (a JSON "\u0000") is not a digit. */
    assert_int_equal(fw_money_parse("1\0002", 3, 0, &fen, &reason), -1);
    assert_int_equal(fw_money_parse("12", 0, 0, &fen, &reason), -1);
    assert_string_equal(reason, "empty");
    assert_int_equal(fw_money_parse(NULL, 0, 0, &fen, &reason), -1);
}

static void test_format(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(fw_money_format(1234567, buf, sizeof buf), "12345.67");
    assert_string_equal(fw_money_format(0, buf, sizeof buf), "0.00");
    assert_string_equal(fw_money_format(5, buf, sizeof buf), "0.05");
    assert_string_equal(fw_money_format(50, buf, sizeof buf), "0.50");
    assert_string_equal(fw_money_format(-50, buf, sizeof buf), "-0.50");
    assert_string_equal(fw_money_format(-123456789, buf, sizeof buf), "-1234567.89");
    assert_string_equal(fw_money_format(FW_MONEY_MAX_FEN, buf, sizeof buf), "10000000000000.00");
    assert_string_equal(fw_money_format(INT64_MAX, buf, sizeof buf), "92233720368547758.07");
    assert_string_equal(fw_money_format(INT64_MIN, buf, sizeof buf), "-92233720368547758.08");
}

static void test_format_grouped(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(fw_money_format_grouped(508437, buf, sizeof buf), "5,084.37");
    assert_string_equal(fw_money_format_grouped(0, buf, sizeof buf), "0.00");
    assert_string_equal(fw_money_format_grouped(99999, buf, sizeof buf), "999.99");
    assert_string_equal(fw_money_format_grouped(100000, buf, sizeof buf), "1,000.00");
    assert_string_equal(fw_money_format_grouped(123456789, buf, sizeof buf), "1,234,567.89");
    assert_string_equal(fw_money_format_grouped(-123456789, buf, sizeof buf), "-1,234,567.89");
    assert_string_equal(fw_money_format_grouped(-5, buf, sizeof buf), "-0.05");
    assert_string_equal(fw_money_format_grouped(-100000, buf, sizeof buf), "-1,000.00");
    assert_string_equal(fw_money_format_grouped(FW_MONEY_MAX_FEN, buf, sizeof buf),
                        "10,000,000,000,000.00");
    assert_string_equal(fw_money_format_grouped(INT64_MIN, buf, sizeof buf),
                        "-92,233,720,368,547,758.08");
}

static void test_round_trip(void **state)
{
    (void)state;
    static const int64_t samples[] = {
        0, 1, 9, 10, 99, 100, 101, 123456, 670000, FW_MONEY_MAX_FEN - 1, FW_MONEY_MAX_FEN};
    char buf[40];
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            int64_t v = samples[i] * sign, back = -1;
            fw_money_format(v, buf, sizeof buf);
            assert_int_equal(parse(buf, 1, &back, NULL), 0);
            assert_int_equal(back, v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_forms),         cmocka_unit_test(test_negative),
        cmocka_unit_test(test_rejected_forms),      cmocka_unit_test(test_bounds_and_overflow),
        cmocka_unit_test(test_length_is_respected), cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_grouped),      cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
