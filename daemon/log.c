/* log.c - see log.h */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Atomic: the check thread logs while the loop may change the level. */
static _Atomic int g_min = FW_LOG_INFO;
static const char *const g_names[] = {"debug", "info", "warn", "error"};

void fw_log_set_level(fw_log_level min)
{
    atomic_store(&g_min, (int)min);
}

int fw_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, g_names[i]) == 0)
            return i;
    return -1;
}

void fw_log(fw_log_level level, const char *event, const char *fmt, ...)
{
    if ((int)level < atomic_load(&g_min))
        return;
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char tz[8];
    strftime(tz, sizeof tz, "%z", &tm); /* +0800 */
    int n = snprintf(
        line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%c%c:%c%c level=%s event=%s",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        (int)(tv.tv_usec / 1000), tz[0], tz[1], tz[2], tz[3], tz[4], g_names[level], event);
    if (fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One fwrite per record: stdio locks the stream, so lines from cnats
     * threads and the loop never interleave. */
    fwrite(line, 1, (size_t)n, stderr);
}

const char *fw_mask_phone(const char *phone, char out[32])
{
    size_t len = phone ? strlen(phone) : 0;
    int digits = len == 11;
    for (size_t i = 0; digits && i < len; i++)
        digits = phone[i] >= '0' && phone[i] <= '9';
    if (digits)
        snprintf(out, 32, "%.3s****%s", phone, phone + 7);
    else
        fw_mask_tail(phone, out);
    return out;
}

const char *fw_mask_tail(const char *s, char out[32])
{
    size_t len = s ? strlen(s) : 0;
    snprintf(out, 32, "****%s", len >= 4 ? s + len - 4 : "");
    return out;
}

const char *fw_log_quote(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3) {
        if (outlen)
            out[0] = 0;
        return out;
    }
    out[o++] = '"';
    for (; s && *s && o + 3 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            continue;
        if (c == '"' || c == '\\')
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}
