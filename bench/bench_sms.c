/*
 * bench_sms.c - SMS figures (issue 6):
 *
 *  1. queueing: a 10,000-line payroll run arriving -> all 10,000 SMS in the
 *     outbox: fw_sms_on_event inside one transaction + COMMIT (synchronous
 *     = FULL, as the daemon ships).  Target < 1 s.
 *  2. sending: SMS accepted per second by a local fake carrier
 *     (generic-json over loopback HTTP, keep-alive) with sms.rate = 2000
 *     and with no rate limit, to show that up to 2,000/s the limit, not the
 *     sender, is the bottleneck.
 *
 * Usage: bench_sms [lines=10000] [messages=10000]
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/money.h"
#include "sms/sms.h"
#include "tests/support/harness.h"

/* The fake carrier has no library of its own (see tests/support/carrier.h). */
#include "tests/support/carrier.c"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Part `part` of `parts` of a run: lines [first, first + n). */
static char *payroll_json(const char *run_id, int part, int parts, int first, int n)
{
    size_t cap = (size_t)n * 700 + 1024, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b, cap,
                            "{\"id\":\"evt-%s-%d\",\"run_id\":\"%s\",\"part\":%d,\"parts\":%d,"
                            "\"occurred_at\":\"2024-06-12T08:00:00+08:00\",\"unit_code\":"
                            "\"101001\",\"unit_name\":\"三门峡市教育局\",\"period\":\"2024-06\","
                            "\"pay_date\":\"2024-06-12\",\"indicator_id\":\"ZB1\",\"lines\":[",
                            run_id, part, run_id, part, parts);
    for (int i = first; i < first + n; i++) {
        int64_t e1 = 300000 + i, e2 = 120000, e3 = 250000, d1 = 48000, d2 = 24000, d3 = 12000,
                d4 = 72000, d5 = 5600;
        int64_t gross = e1 + e2 + e3, net = gross - d1 - d2 - d3 - d4 - d5;
        char a[10][32];
        int64_t v[10] = {e1, e2, e3, d1, d2, d3, d4, d5, gross, net};
        for (int k = 0; k < 10; k++)
            fw_money_format(v[k], a[k], sizeof a[k]);
        len += (size_t)snprintf(
            b + len, cap - len,
            "%s{\"emp_id\":\"E%05d\",\"name\":\"员工%d\",\"id_no\":\"4112021980%08d\","
            "\"phone\":\"13%09d\",\"account\":\"62220212345%08d\",\"earnings\":["
            "{\"name\":\"岗位工资\",\"amount\":\"%s\"},{\"name\":\"薪级工资\",\"amount\":\"%s\"},"
            "{\"name\":\"津贴补贴\",\"amount\":\"%s\"}],\"deductions\":["
            "{\"name\":\"养老保险\",\"amount\":\"%s\"},{\"name\":\"职业年金\",\"amount\":\"%s\"},"
            "{\"name\":\"医疗保险\",\"amount\":\"%s\"},{\"name\":\"住房公积金\",\"amount\":\"%s\"},"
            "{\"name\":\"个人所得税\",\"amount\":\"%s\"}],\"gross\":\"%s\",\"net\":\"%s\"}",
            i > first ? "," : "", i, i, i, 800000000 + i, i, a[0], a[1], a[2], a[3], a[4], a[5],
            a[6], a[7], a[8], a[9]);
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

static fw_config *make_cfg(const char *url, const char *rate)
{
    char err[512], u[200], r[64];
    snprintf(u, sizeof u, "sms.url=%s", url);
    snprintf(r, sizeof r, "sms.rate=%s", rate);
    char inflight[64];
    snprintf(inflight, sizeof inflight, "sms.max_inflight=%s",
             getenv("BENCH_INFLIGHT") ? getenv("BENCH_INFLIGHT") : "32");
    const char *over[] = {
        "sms.carrier=generic-json",  u,       "sms.token=t", r, "sms.quiet_hours=off",
        "sms.per_number_interval=0", inflight};
    fw_config *c = fw_config_new();
    fw_config_add_keys(c, fw_sms_config_keys, fw_sms_config_nkeys);
    if (fw_config_load(c, NULL, (char *const *)over, (int)(sizeof over / sizeof over[0]), err,
                       sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    return c;
}

static fw_store *open_store(const char *dir, const char *name)
{
    char path[700], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    static const fw_migration migs[] = {{"sms", fw_sms_schema}};
    fw_store *st =
        fw_store_open(path, migs, 1, 0, getenv("BENCH_SYNC_NORMAL") ? FW_SYNC_NORMAL : FW_SYNC_FULL,
                      err, sizeof err);
    if (!st) {
        fprintf(stderr, "store: %s\n", err);
        exit(1);
    }
    return st;
}

/* A run of `lines` lines arrives as parts of at most 2,500 lines (a
 * 10,000-line run as one message would pass FW_EVENT_MAX_BYTES, 4 MiB);
 * all parts are queued in one transaction and committed. */
static int queue_run(fw_store *st, fw_sms *s, const char *run_id, int lines, double *decode_s,
                     double *queue_s)
{
    enum { PART = 2500 };
    int parts = (lines + PART - 1) / PART;
    fw_event *evs = calloc((size_t)parts, sizeof *evs);
    double t0 = now_s();
    for (int p = 0; p < parts; p++) {
        int n = lines - p * PART < PART ? lines - p * PART : PART;
        char *j = payroll_json(run_id, p + 1, parts, p * PART, n);
        fw_decode_error e;
        if (fw_event_decode("fiscal.payroll.101001", j, strlen(j), &evs[p], &e) != 0) {
            fprintf(stderr, "decode: %s: %s\n", e.field, e.reason);
            exit(1);
        }
        free(j);
    }
    double t1 = now_s();
    fw_store_begin(st);
    int rc = 0;
    for (int p = 0; p < parts; p++)
        rc |= fw_sms_on_event(s, &evs[p]);
    rc |= fw_store_commit(st);
    double t2 = now_s();
    for (int p = 0; p < parts; p++)
        fw_event_clear(&evs[p]);
    free(evs);
    *decode_s = t1 - t0;
    *queue_s = t2 - t1;
    return rc;
}

static void send_bench(const char *dir, const char *label, const char *rate, int n)
{
    fw_t_carrier *car = fw_t_carrier_start(0);
    char url[128], name[64];
    fw_t_carrier_url(fw_t_carrier_port(car), url, sizeof url);
    fw_t_carrier_set_token(car, "t");
    snprintf(name, sizeof name, "send-%s.db", label);
    fw_store *st = open_store(dir, name);
    struct event_base *base = event_base_new();
    fw_config *cfg = make_cfg(url, rate);
    char err[512];
    /* queue offline first, so only the sending is timed */
    fw_sms *off = fw_sms_new(st, cfg, NULL, err, sizeof err);
    double d, q;
    queue_run(st, off, label, n, &d, &q);
    fw_sms_free(off);
    fw_sms *s = fw_sms_new(st, cfg, base, err, sizeof err);
    if (!s) {
        fprintf(stderr, "sms: %s\n", err);
        exit(1);
    }
    double t0 = now_s();
    while (fw_t_carrier_unique(car) < n && now_s() - t0 < 120) {
        struct timeval tv = {0, 20000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    /* let the last answers be recorded */
    while (fw_sms_count(s, "sent") < n && now_s() - t0 < 120) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    double el = now_s() - t0;
    int got = fw_t_carrier_unique(car);
    printf("sms send  rate=%-9s %6d SMS accepted in %6.3f s = %7.0f/s  (busiest 1 s window: "
           "%d, carrier requests %d, outbox sent %lld)\n",
           rate, got, el, got / el, fw_t_carrier_max_per_second(car), fw_t_carrier_count(car),
           (long long)fw_sms_count(s, "sent"));
    char *m = fw_metrics_render();
    const char *sum = strstr(m, "fundwatch_sms_send_seconds_sum");
    const char *cnt = strstr(m, "fundwatch_sms_send_seconds_count");
    if (sum && cnt) {
        double sv = atof(strchr(sum, ' ') + 1), cv = atof(strchr(cnt, ' ') + 1);
        printf("          mean carrier round trip %.2f ms over %.0f requests\n",
               cv > 0 ? sv / cv * 1000 : 0, cv);
    }
    free(m);
    fw_sms_free(s);
    fw_metrics_reset();
    fw_config_free(cfg);
    event_base_free(base);
    fw_store_close(st);
    fw_t_carrier_stop(car);
}

int main(int argc, char **argv)
{
    int lines = argc > 1 ? atoi(argv[1]) : 10000;
    int msgs = argc > 2 ? atoi(argv[2]) : 10000;
    fw_log_set_level(FW_LOG_WARN);
    char *dir = fw_t_tmpdir("bench-sms");
    char err[512];

    /* 1. a payroll run of `lines` lines -> `lines` outbox rows, committed */
    fw_store *st = open_store(dir, "queue.db");
    fw_config *cfg = make_cfg("http://127.0.0.1:9/", "50");
    fw_sms *s = fw_sms_new(st, cfg, NULL, err, sizeof err);
    if (!s) {
        fprintf(stderr, "sms: %s (run from the source tree: etc/templates)\n", err);
        return 1;
    }
    for (int round = 0; round < 3; round++) {
        char run[32];
        double d, q;
        snprintf(run, sizeof run, "GZ-%d", round);
        int64_t before = fw_sms_count(s, NULL);
        queue_run(st, s, run, lines, &d, &q);
        int64_t after = fw_sms_count(s, NULL);
        printf("sms queue %d-line payroll run (parts of 2,500): %lld SMS queued in %.3f s "
               "(on_event + COMMIT, synchronous=FULL); decoding took %.3f s\n",
               lines, (long long)(after - before), q, d);
    }
    fw_sms_free(s);
    fw_config_free(cfg);
    fw_store_close(st);

    /* 2. sending through a local carrier */
    send_bench(dir, "2000", "2000", msgs);
    send_bench(dir, "unlimited", "0", msgs);
    fw_t_rmtree(dir);
    free(dir);
    return 0;
}
