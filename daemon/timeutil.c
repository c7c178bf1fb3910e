/*
 * timeutil.c - RFC 3339 parsing, civil-date arithmetic, the business zone
 * and the replaceable wall clock.
 *
 * All calendar arithmetic is done here with Howard Hinnant's
 * days_from_civil / civil_from_days (proleptic Gregorian), so nothing
 * depends on the process's TZ, on mktime/timegm, or on the C library's
 * locale.  The business zone is a fixed UTC offset (China has no DST).
 *
 * Decisions where RFC 3339 leaves room:
 * - 'T'/'t' separate date and time, 'Z'/'z' means UTC (RFC 3339 §5.6);
 *   a space instead of 'T' is rejected.
 * - Leap seconds (":60") are rejected: upstream systems do not emit them and
 *   accepting them would make two strings name the same instant.
 * - Fractional seconds of any length are accepted and dropped.
 * - Years are exactly four digits (0000..9999).
 */
#include "daemon/timeutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int g_zone_minutes = 8 * 60;
static _Atomic(fw_clock_fn) g_clock; /* NULL: the real clock */

static int fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return -1;
}

/* Floor division, so that instants before 1970 land on the right day. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int64_t fw_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = floor_div(yy, 400);
    int64_t yoe = yy - era * 400;                                 /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void fw_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int dd = (int)(doy - (153 * mp + 2) / 5 + 1);
    int mm = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (y)
        *y = (int)(yy + (mm <= 2));
    if (m)
        *m = mm;
    if (d)
        *d = dd;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Exactly n ASCII digits at s -> *out.  0 or -1. */
static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "YYYY-MM-DD" at s (exactly 10 chars, not necessarily NUL after). */
static int parse_date_prefix(const char *s, int *y, int *m, int *d, const char **reason)
{
    for (int i = 0; i < 10; i++)
        if (s[i] == '\0')
            return fail(reason, "must be a date YYYY-MM-DD");
    if (digits(s, 4, y) || s[4] != '-' || digits(s + 5, 2, m) || s[7] != '-' || digits(s + 8, 2, d))
        return fail(reason, "must be a date YYYY-MM-DD");
    if (*m < 1 || *m > 12)
        return fail(reason, "month out of range");
    if (*d < 1 || *d > days_in_month(*y, *m))
        return fail(reason, "day out of range");
    return 0;
}

/* Returns 0 / -1 (not the day number: -1 would be 1969-12-31).  The out
 * pointers may be NULL; the day number is fw_days_from_civil(y, m, d). */
int fw_date_parse(const char *s, int *y, int *m, int *d, const char **reason)
{
    int yy, mm, dd;
    if (s == NULL)
        return fail(reason, "must be a date YYYY-MM-DD");
    if (parse_date_prefix(s, &yy, &mm, &dd, reason))
        return -1;
    if (s[10] != '\0')
        return fail(reason, "must be a date YYYY-MM-DD");
    if (y)
        *y = yy;
    if (m)
        *m = mm;
    if (d)
        *d = dd;
    return 0;
}

int fw_period_parse(const char *s, int *y, int *m, const char **reason)
{
    int yy, mm;
    if (s == NULL || strlen(s) != 7 || digits(s, 4, &yy) || s[4] != '-' || digits(s + 5, 2, &mm))
        return fail(reason, "must be a period YYYY-MM");
    if (mm < 1 || mm > 12)
        return fail(reason, "month out of range");
    if (y)
        *y = yy;
    if (m)
        *m = mm;
    return 0;
}

/* "+hh:mm" / "-hh:mm" at s, exactly 6 chars; hh 00..23, mm 00..59. */
static int parse_offset(const char *s, int *minutes)
{
    int h, mi;
    if ((s[0] != '+' && s[0] != '-') || s[1] == '\0' || s[2] == '\0' || s[3] != ':' ||
        digits(s + 1, 2, &h) || digits(s + 4, 2, &mi) || s[6] != '\0')
        return -1;
    if (h > 23 || mi > 59)
        return -1;
    *minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + mi);
    return 0;
}

int fw_time_parse(const char *s, int64_t *epoch, const char **reason)
{
    static const char *bad = "must be an RFC 3339 time with offset";
    int y, mo, d, h, mi, sec, off;
    const char *p;

    if (s == NULL)
        return fail(reason, bad);
    if (parse_date_prefix(s, &y, &mo, &d, reason))
        return fail(reason, bad);
    p = s + 10;
    if (*p != 'T' && *p != 't')
        return fail(reason, bad);
    p++;
    if (strnlen(p, 8) < 8 || digits(p, 2, &h) || p[2] != ':' || digits(p + 3, 2, &mi) ||
        p[5] != ':' || digits(p + 6, 2, &sec))
        return fail(reason, bad);
    if (h > 23 || mi > 59 || sec > 59)
        return fail(reason, "time of day out of range");
    p += 8;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return fail(reason, bad);
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0')
        off = 0;
    else if (*p == '\0')
        return fail(reason, "missing UTC offset");
    else if (parse_offset(p, &off))
        return fail(reason, bad);

    if (epoch)
        *epoch = fw_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    return 0;
}

int fw_time_zone_parse(const char *s, int *minutes)
{
    int off;
    if (s == NULL)
        return -1;
    if (strcmp(s, "Z") == 0 || strcmp(s, "UTC") == 0) {
        off = 0;
    } else if (strlen(s) != 6 || parse_offset(s, &off)) {
        return -1;
    }
    /* Real zones run from -12:00 to +14:00. */
    if (off < -12 * 60 || off > 14 * 60)
        return -1;
    if (minutes)
        *minutes = off;
    return 0;
}

void fw_time_set_zone(int minutes)
{
    atomic_store(&g_zone_minutes, minutes);
}

int fw_time_zone(void)
{
    return atomic_load(&g_zone_minutes);
}

void fw_time_local(int64_t epoch, int *y, int *mo, int *d, int *h, int *mi, int *s, int *wday)
{
    int64_t local = epoch + (int64_t)fw_time_zone() * 60;
    int64_t days = floor_div(local, 86400);
    int64_t sod = local - days * 86400;
    fw_civil_from_days(days, y, mo, d);
    if (h)
        *h = (int)(sod / 3600);
    if (mi)
        *mi = (int)(sod / 60 % 60);
    if (s)
        *s = (int)(sod % 60);
    if (wday) /* 1970-01-01 was a Thursday (4). */
        *wday = (int)(((days % 7) + 11) % 7);
}

int64_t fw_time_from_local(int y, int mo, int d, int h, int mi, int s)
{
    return fw_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s -
           (int64_t)fw_time_zone() * 60;
}

char *fw_time_format(int64_t epoch, char *buf, int buflen)
{
    int y, mo, d, h, mi, s;
    int z = fw_time_zone();
    int az = z < 0 ? -z : z;
    fw_time_local(epoch, &y, &mo, &d, &h, &mi, &s, NULL);
    snprintf(buf, (size_t)buflen, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, h, mi, s,
             z < 0 ? '-' : '+', az / 60, az % 60);
    return buf;
}

static int64_t real_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fw_clock_now(void)
{
    fw_clock_fn fn = atomic_load(&g_clock);
    if (fn)
        return fn();
    return real_clock_ms() / 1000;
}

/* A test clock ticks in whole seconds; its millisecond view is s * 1000. */
int64_t fw_clock_now_ms(void)
{
    fw_clock_fn fn = atomic_load(&g_clock);
    if (fn)
        return fn() * 1000;
    return real_clock_ms();
}

void fw_clock_set(fw_clock_fn fn)
{
    atomic_store(&g_clock, fn);
}
