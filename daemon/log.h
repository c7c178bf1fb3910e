/*
 * log.h - structured logging for fundwatch.
 *
 * Every log record is one line of key=value pairs on stderr:
 *
 *   ts=2024-06-03T10:15:00.123+08:00 level=info event=intake.batch n=64 ms=1.8
 *
 * `event` is a short dotted name that says what happened; the remaining
 * fields are given printf-style by the caller and must already be key=value.
 * Values that may contain spaces are quoted by the caller with fw_log_quote().
 *
 * Personal data never reaches the log whole: use fw_mask_phone() for phone
 * numbers (138****0000) and fw_mask_tail() for ID numbers and accounts (last
 * four characters only).  The functions are safe to call from any thread
 * (cnats callbacks log too): each record is written with one fwrite under
 * the stdio lock.
 */
#ifndef FW_LOG_H
#define FW_LOG_H

#include <stddef.h>

typedef enum { FW_LOG_DEBUG = 0, FW_LOG_INFO, FW_LOG_WARN, FW_LOG_ERROR } fw_log_level;

/* Records below `min` are dropped; default FW_LOG_INFO. */
void fw_log_set_level(fw_log_level min);
/* Parse "debug" / "info" / "warn" / "error"; returns -1 if unknown. */
int fw_log_level_parse(const char *s);

/* fmt may be NULL; otherwise it produces the " key=value ..." tail. */
void fw_log(fw_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define FW_DEBUG(ev, ...) fw_log(FW_LOG_DEBUG, ev, __VA_ARGS__)
#define FW_INFO(ev, ...) fw_log(FW_LOG_INFO, ev, __VA_ARGS__)
#define FW_WARN(ev, ...) fw_log(FW_LOG_WARN, ev, __VA_ARGS__)
#define FW_ERROR(ev, ...) fw_log(FW_LOG_ERROR, ev, __VA_ARGS__)

/* "13800001234" -> "138****1234"; anything not 11 digits -> "****" + last 4. */
const char *fw_mask_phone(const char *phone, char out[32]);
/* Any identifier -> "****" + its last four characters. */
const char *fw_mask_tail(const char *s, char out[32]);
/* Quote a value for a key=value log line: "..." with \" and \\ escaped,
 * control bytes dropped, cut to outlen-1. */
const char *fw_log_quote(const char *s, char *out, size_t outlen);

#endif
