/*
 * timeutil.h - RFC 3339 times, dates, periods, and the business time zone.
 *
 * Inbound times carry an offset ("2024-06-03T10:15:00+08:00", or "Z").
 * Internally a time is int64 unix seconds.  Business dates (calendar day,
 * month, year) are reckoned in the configured zone (time.zone, default
 * +08:00), set once with fw_time_set_zone().
 *
 * fw_clock_now() is the one wall clock of the daemon; tests replace it with
 * fw_clock_set() so that escalation, expiry and quiet hours are testable.
 */
#ifndef FW_TIMEUTIL_H
#define FW_TIMEUTIL_H

#include <stdint.h>

/* Parse RFC 3339 with a mandatory offset; fractional seconds are accepted
 * and dropped.  Returns 0 or -1 (with *reason). */
int fw_time_parse(const char *s, int64_t *epoch, const char **reason);
/* "YYYY-MM-DD" -> days since 1970-01-01; checks the calendar. */
int fw_date_parse(const char *s, int *y, int *m, int *d, const char **reason);
/* "YYYY-MM" */
int fw_period_parse(const char *s, int *y, int *m, const char **reason);

/* Business zone as minutes east of UTC; parse "+08:00" / "-05:30". */
int fw_time_zone_parse(const char *s, int *minutes);
void fw_time_set_zone(int minutes);
int fw_time_zone(void);

/* Format in the business zone: "2024-06-03T10:15:00+08:00" (buf >= 32). */
char *fw_time_format(int64_t epoch, char *buf, int buflen);
/* Business calendar fields of an instant. wday: 0 = Sunday. */
void fw_time_local(int64_t epoch, int *y, int *mo, int *d, int *h, int *mi, int *s, int *wday);
/* Unix seconds of local midnight of y-m-d in the business zone. */
int64_t fw_time_from_local(int y, int mo, int d, int h, int mi, int s);
/* Days since 1970-01-01 of a civil date, and back. */
int64_t fw_days_from_civil(int y, int m, int d);
void fw_civil_from_days(int64_t days, int *y, int *m, int *d);

/* The wall clock (unix seconds), replaceable by tests. */
typedef int64_t (*fw_clock_fn)(void);
int64_t fw_clock_now(void);
int64_t fw_clock_now_ms(void);
void fw_clock_set(fw_clock_fn fn); /* NULL restores the real clock */

#endif
