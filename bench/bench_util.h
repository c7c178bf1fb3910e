/*
 * bench_util.h - small pieces the benchmark programs share: the RESULT line
 * that bench/run parses, and the daemon configuration the daemon-driving
 * benchmarks start with.
 */
#ifndef FW_BENCH_UTIL_H
#define FW_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* One machine-readable figure: "RESULT name=... value=... unit=...". */
static inline void result(const char *name, double value, const char *unit)
{
    printf("RESULT name=%s value=%.6g unit=%s\n", name, value, unit);
    fflush(stdout);
}

/* The daemon's configuration beyond the harness's: the shipped tick of 60 s
 * (the harness's 1 s tick would run stuck_voucher every second with today's
 * wall clock against the city's 2024 vouchers), warnings only, and
 * $BENCH_DAEMON_INI appended (INI text, "\\n" for newlines: experiments
 * such as "[nats]\\nmax_ack_pending = 1024"). */
static inline const char *daemon_ini(void)
{
    static char ini[2048];
    const char *extra = getenv("BENCH_DAEMON_INI");
    size_t n = (size_t)snprintf(ini, sizeof ini, "[rules]\ntick = 60\n[log]\nlevel = warn\n");
    for (const char *p = extra ? extra : ""; *p && n + 2 < sizeof ini; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            ini[n++] = '\n';
            p++;
        } else
            ini[n++] = *p;
    }
    ini[n++] = '\n';
    ini[n] = 0;
    return ini;
}

#endif
