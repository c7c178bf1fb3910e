/*
 * test_core_time.c - RFC 3339 parsing, dates, periods, the business zone,
 * civil-date arithmetic and the replaceable clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/timeutil.h"

static int reset_zone(void **state)
{
    (void)state;
    fw_time_set_zone(8 * 60);
    fw_clock_set(NULL);
    return 0;
}

static void expect_time(const char *s, int64_t want)
{
    int64_t t = 0;
    const char *reason = NULL;
    if (fw_time_parse(s, &t, &reason) != 0)
        fail_msg("\"%s\" rejected: %s", s, reason);
    if (t != want)
        fail_msg("\"%s\" -> %lld, want %lld", s, (long long)t, (long long)want);
}

static void expect_bad_time(const char *s)
{
    int64_t t = 4242;
    const char *reason = NULL;
    if (fw_time_parse(s, &t, &reason) == 0)
        fail_msg("\"%s\" accepted as %lld", s ? s : "(null)", (long long)t);
    assert_non_null(reason);
    assert_int_equal(t, 4242);
}

static void test_time_valid(void **state)
{
    (void)state;
    /* 2024-06-03T02:15:00Z = 1717380900 */
    expect_time("2024-06-03T10:15:00+08:00", 1717380900);
    expect_time("2024-06-03T02:15:00Z", 1717380900);
    expect_time("2024-06-03T02:15:00z", 1717380900);
    expect_time("2024-06-03t02:15:00+00:00", 1717380900);
    expect_time("2024-06-02T21:15:00-05:00", 1717380900);
    expect_time("2024-06-03T07:45:00+05:30", 1717380900);
    expect_time("2024-06-03T02:15:00-00:00", 1717380900);
    /* Fractional seconds are dropped, whatever their length. */
    expect_time("2024-06-03T10:15:00.999+08:00", 1717380900);
    expect_time("2024-06-03T10:15:00.123456789Z", 1717380900 + 8 * 3600);
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("1969-12-31T23:59:59Z", -1);
    expect_time("2000-02-29T00:00:00Z", 951782400);
    expect_time("2024-02-29T23:59:59+08:00", 1709222399);
    expect_time("2100-12-31T23:59:59Z", 4133980799LL);
}

static void test_time_invalid(void **state)
{
    (void)state;
    expect_bad_time("");
    expect_bad_time("2024-06-03T10:15:00");       /* offset is mandatory */
    expect_bad_time("2024-06-03 10:15:00+08:00"); /* space separator */
    expect_bad_time("2024-06-03");
    expect_bad_time("2024-06-03T10:15+08:00"); /* seconds required */
    expect_bad_time("2024-06-03T24:00:00+08:00");
    expect_bad_time("2024-06-03T23:60:00+08:00");
    expect_bad_time("2024-06-03T23:59:60+08:00"); /* leap seconds refused */
    expect_bad_time("2024-02-30T10:00:00+08:00");
    expect_bad_time("2023-02-29T10:00:00+08:00"); /* not a leap year */
    expect_bad_time("1900-02-29T10:00:00+08:00"); /* century, not leap */
    expect_bad_time("2024-04-31T10:00:00+08:00");
    expect_bad_time("2024-13-01T10:00:00+08:00");
    expect_bad_time("2024-00-01T10:00:00+08:00");
    expect_bad_time("2024-06-00T10:00:00+08:00");
    expect_bad_time("2024-06-03T10:15:00+8:00");
    expect_bad_time("2024-06-03T10:15:00+0800");
    expect_bad_time("2024-06-03T10:15:00+08");
    expect_bad_time("2024-06-03T10:15:00+24:00");
    expect_bad_time("2024-06-03T10:15:00+08:60");
    expect_bad_time("2024-06-03T10:15:00+08:00 ");
    expect_bad_time("2024-06-03T10:15:00Zjunk");
    expect_bad_time("2024-06-03T10:15:00.+08:00");
    expect_bad_time("2024-6-3T10:15:00+08:00");
    expect_bad_time("24-06-03T10:15:00+08:00");
    expect_bad_time("２０２４-06-03T10:15:00+08:00");
    expect_bad_time("2024-06-03T10:15:00UTC");
    expect_bad_time(NULL);
    const char *reason = NULL;
    assert_int_equal(fw_time_parse("2024-06-03T10:15:00", NULL, &reason), -1);
    assert_string_equal(reason, "missing UTC offset");
}

static void test_date_and_period(void **state)
{
    (void)state;
    int y = 0, m = 0, d = 0;
    const char *reason = NULL;
    assert_int_equal(fw_date_parse("2024-06-12", &y, &m, &d, &reason), 0);
    assert_int_equal(y, 2024);
    assert_int_equal(m, 6);
    assert_int_equal(d, 12);
    assert_int_equal(fw_date_parse("2024-02-29", &y, &m, &d, &reason), 0);
    assert_int_equal(fw_date_parse("2000-02-29", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(fw_date_parse("2023-02-29", &y, &m, &d, &reason), -1);
    assert_string_equal(reason, "day out of range");
    assert_int_equal(fw_date_parse("2100-02-29", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("2024-02-30", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("2024-13-01", &y, &m, &d, &reason), -1);
    assert_string_equal(reason, "month out of range");
    assert_int_equal(fw_date_parse("2024-06-12T00:00:00Z", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("2024-6-12", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("2024/06/12", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("", &y, &m, &d, &reason), -1);
    assert_int_equal(fw_date_parse("2024-06-1", &y, &m, &d, &reason), -1);

    assert_int_equal(fw_period_parse("2024-06", &y, &m, &reason), 0);
    assert_int_equal(y, 2024);
    assert_int_equal(m, 6);
    assert_int_equal(fw_period_parse("2024-12", &y, &m, &reason), 0);
    assert_int_equal(fw_period_parse("2024-13", &y, &m, &reason), -1);
    assert_int_equal(fw_period_parse("2024-00", &y, &m, &reason), -1);
    assert_int_equal(fw_period_parse("2024-6", &y, &m, &reason), -1);
    assert_int_equal(fw_period_parse("2024-06-01", &y, &m, &reason), -1);
    assert_int_equal(fw_period_parse("202406", &y, &m, &reason), -1);
}

static void test_civil_arith(void **state)
{
    (void)state;
    assert_int_equal(fw_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(fw_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(fw_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(fw_days_from_civil(2024, 6, 3), 19877);
    assert_int_equal(fw_days_from_civil(1600, 1, 1), -135140);
    /* Round trip over four centuries, through both sides of 1970. */
    for (int64_t days = -150000; days <= 150000; days += 7) {
        int y, m, d;
        fw_civil_from_days(days, &y, &m, &d);
        assert_int_equal(fw_days_from_civil(y, m, d), days);
    }
    int y, m, d;
    fw_civil_from_days(19877, &y, &m, &d);
    assert_int_equal(y, 2024);
    assert_int_equal(m, 6);
    assert_int_equal(d, 3);
}

static void test_zone_parse(void **state)
{
    (void)state;
    int z = 1;
    assert_int_equal(fw_time_zone_parse("+08:00", &z), 0);
    assert_int_equal(z, 480);
    assert_int_equal(fw_time_zone_parse("-05:30", &z), 0);
    assert_int_equal(z, -330);
    assert_int_equal(fw_time_zone_parse("+00:00", &z), 0);
    assert_int_equal(z, 0);
    assert_int_equal(fw_time_zone_parse("Z", &z), 0);
    assert_int_equal(z, 0);
    assert_int_equal(fw_time_zone_parse("+14:00", &z), 0);
    assert_int_equal(fw_time_zone_parse("-12:00", &z), 0);
    assert_int_equal(fw_time_zone_parse("+15:00", &z), -1);
    assert_int_equal(fw_time_zone_parse("-13:00", &z), -1);
    assert_int_equal(fw_time_zone_parse("08:00", &z), -1);
    assert_int_equal(fw_time_zone_parse("+8:00", &z), -1);
    assert_int_equal(fw_time_zone_parse("+0800", &z), -1);
    assert_int_equal(fw_time_zone_parse("+08:00x", &z), -1);
    assert_int_equal(fw_time_zone_parse("Asia/Shanghai", &z), -1);
    assert_int_equal(fw_time_zone_parse("", &z), -1);
    assert_int_equal(fw_time_zone(), 480); /* default is China Standard Time */
}

static void test_local_fields(void **state)
{
    (void)state;
    int y, mo, d, h, mi, s, wd;
    /* 2024-06-02T20:30:05Z is Monday 2024-06-03 04:30:05 in +08:00. */
    int64_t t = 1717380900 - 6 * 3600 + 15 * 60 + 5;
    fw_time_local(t, &y, &mo, &d, &h, &mi, &s, &wd);
    assert_int_equal(y, 2024);
    assert_int_equal(mo, 6);
    assert_int_equal(d, 3);
    assert_int_equal(h, 4);
    assert_int_equal(mi, 30);
    assert_int_equal(s, 5);
    assert_int_equal(wd, 1);

    /* The same instant in UTC is still Sunday June 2nd. */
    fw_time_set_zone(0);
    fw_time_local(t, &y, &mo, &d, &h, &mi, &s, &wd);
    assert_int_equal(d, 2);
    assert_int_equal(h, 20);
    assert_int_equal(wd, 0);

    /* Before 1970: 1969-12-31T23:00:00Z was a Wednesday. */
    fw_time_local(-3600, &y, &mo, &d, &h, &mi, &s, &wd);
    assert_int_equal(y, 1969);
    assert_int_equal(mo, 12);
    assert_int_equal(d, 31);
    assert_int_equal(h, 23);
    assert_int_equal(wd, 3);

    /* New Year's Eve in UTC is already New Year in Beijing. */
    fw_time_set_zone(480);
    int64_t nye = 0;
    assert_int_equal(fw_time_parse("2023-12-31T17:00:00Z", &nye, NULL), 0);
    fw_time_local(nye, &y, &mo, &d, &h, NULL, NULL, NULL);
    assert_int_equal(y, 2024);
    assert_int_equal(mo, 1);
    assert_int_equal(d, 1);
    assert_int_equal(h, 1);
}

static void test_from_local_and_format(void **state)
{
    (void)state;
    char buf[32];
    int64_t t = fw_time_from_local(2024, 6, 3, 10, 15, 0);
    assert_int_equal(t, 1717380900);
    assert_string_equal(fw_time_format(t, buf, sizeof buf), "2024-06-03T10:15:00+08:00");
    assert_int_equal(fw_time_from_local(2024, 6, 3, 0, 0, 0), 1717344000);

    fw_time_set_zone(-330);
    assert_string_equal(fw_time_format(1717380900, buf, sizeof buf), "2024-06-02T20:45:00-05:30");
    assert_int_equal(fw_time_from_local(2024, 6, 2, 20, 45, 0), 1717380900);
    fw_time_set_zone(0);
    assert_string_equal(fw_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00+00:00");

    /* format -> parse is the identity in any zone. */
    int zones[] = {480, -330, 0, 840, -720};
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        fw_time_set_zone(zones[z]);
        for (int64_t e = -86400 * 400; e < 4102444800LL; e += 86400 * 37 + 3671) {
            int64_t back = 0;
            fw_time_format(e, buf, sizeof buf);
            assert_int_equal(fw_time_parse(buf, &back, NULL), 0);
            assert_int_equal(back, e);
        }
    }
}

static int64_t fake_clock(void)
{
    return 1717380900;
}

static void test_clock(void **state)
{
    (void)state;
    int64_t real = fw_clock_now();
    assert_true(real > 1700000000); /* after Nov 2023 */
    int64_t ms = fw_clock_now_ms();
    assert_true(ms / 1000 >= real && ms / 1000 <= real + 5);
    fw_clock_set(fake_clock);
    assert_int_equal(fw_clock_now(), 1717380900);
    assert_int_equal(fw_clock_now_ms(), 1717380900000LL);
    fw_clock_set(NULL);
    assert_true(fw_clock_now() >= real);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_time_valid, reset_zone),
        cmocka_unit_test_setup(test_time_invalid, reset_zone),
        cmocka_unit_test_setup(test_date_and_period, reset_zone),
        cmocka_unit_test_setup(test_civil_arith, reset_zone),
        cmocka_unit_test_setup(test_zone_parse, reset_zone),
        cmocka_unit_test_setup(test_local_fields, reset_zone),
        cmocka_unit_test_setup(test_from_local_and_format, reset_zone),
        cmocka_unit_test_setup(test_clock, reset_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
