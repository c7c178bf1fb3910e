/*
 * bench_e2e.c - the headline figure: vouchers per second end to end.
 *
 *   bench_e2e [MESSAGES] [CITY.jsonl]     (defaults: 200000; a fresh
 *                                          `bench/city.py --seed 42` city)
 *
 * A nats-server (JetStream, file storage) on a free loopback port gets the
 * sample city's indicator operations (plus the top-ups of city_msgs.h) and
 * then MESSAGES in all of voucher events: the city's day of vouchers
 * (created, signed, sent, paid, returned, cancelled, planted violations)
 * replayed as many times as needed.  Then `fundwatch run` starts on a fresh
 * store with the shipped rules/ and the shipped defaults (store.synchronous
 * = full, store.batch_max = 512, rules.tick = 60 s): every message is decoded and validated,
 * judged by the whole rule pack, applied to the ledger, its alerts stored,
 * committed and acked.  Measured: committed messages per second from the
 * first committed message to the last (the store's intake.last_seq, polled
 * every 20 ms), the CPU seconds the daemon and nats-server used in that
 * window, the daemon's own histograms (batch size, commit time) and the
 * alerts created, by rule.
 *
 * Machine-readable lines for bench/run:  RESULT name=<key> value=<v> unit=<u>
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/city_msgs.h"
#include "bench/bench_util.h"
#include "tests/support/harness.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a process, in seconds (/proc/PID/stat fields 14, 15). */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The value of the metric line starting with `name ` (no labels). */
static double metric(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return atof(p + len + 1);
    return 0;
}

/* Quantile q from a Prometheus histogram's cumulative buckets: the upper
 * bound of the first bucket that holds q of the observations. */
static double hist_quantile(const char *text, const char *base, double q)
{
    char prefix[128], cnt[140];
    snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", base);
    snprintf(cnt, sizeof cnt, "%s_count", base);
    double total = metric(text, cnt);
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, len) != 0)
            continue;
        double le = strncmp(p + len, "+Inf", 4) == 0 ? 1e9 : atof(p + len);
        const char *v = strchr(p, '}');
        if (v && atof(v + 2) >= q * total)
            return le;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *city_path = argc > 2 ? argv[2] : NULL;
    if (n < 1000) {
        fprintf(stderr, "usage: bench_e2e [MESSAGES>=1000] [CITY.jsonl]\n");
        return 2;
    }
    char *tmp = fw_t_tmpdir("bench-e2e");
    char *gen = NULL;
    if (!city_path) {
        gen = city_generate(tmp);
        if (!gen) {
            fprintf(stderr, "bench_e2e: bench/city.py failed\n");
            return 1;
        }
        city_path = gen;
    }
    city c;
    if (city_load(&c, city_path) != 0) {
        fprintf(stderr, "bench_e2e: cannot read the city %s\n", city_path);
        return 1;
    }
    long nvoucher = n - c.ind.n;
    int replicas = city_replicas(&c, nvoucher);
    city_msgs msgs = {0};
    city_indicator_msgs(&c, replicas, &msgs);
    int nind = msgs.n;
    nvoucher = n - nind;
    for (long i = 0; i < nvoucher; i++) {
        const char *subject;
        char *body = city_voucher_msg(&c, replicas, i, &subject);
        city_msgs_add(&msgs, subject, body);
    }
    printf("city %s: %d indicator operations (+%d top-ups), %d voucher events a day (%d created) "
           "x %d replicas -> %ld voucher messages\n",
           city_path, c.ind.n, nind - c.ind.n, c.nv, c.ncreated, replicas, nvoucher);

    fw_t_nats nats = {0};
    if (fw_t_nats_start(&nats, tmp) != 0) {
        fprintf(stderr, "bench_e2e: cannot start nats-server\n");
        return 1;
    }
    double t0 = now_s();
    int pub = fw_t_js_publish(nats.url, msgs.n, (const char *const *)msgs.subjects,
                              (const char *const *)msgs.bodies);
    printf("published %d messages in %.2f s\n", pub, now_s() - t0);
    if (pub != msgs.n) {
        fprintf(stderr, "bench_e2e: only %d of %d published\n", pub, msgs.n);
        return 1;
    }

    char dir[700];
    snprintf(dir, sizeof dir, "%s/daemon", tmp);
    mkdir(dir, 0755);
    fw_t_daemon d = {0};
    double t_start = now_s();
    /* The shipped rules (NULL: $FW_SRC/rules) and store defaults. */
    if (fw_t_daemon_start(&d, dir, nats.url, NULL, daemon_ini()) != 0) {
        fprintf(stderr, "bench_e2e: cannot start the daemon\n");
        return 1;
    }
    double first = 0, last = 0, cpu_d0 = 0, cpu_n0 = 0;
    int64_t first_seq = 0, seq = 0;
    double deadline = now_s() + 900;
    while (seq < pub && now_s() < deadline) {
        seq = fw_t_sql_int(d.db, "SELECT value FROM meta WHERE key = 'intake.last_seq'");
        if (seq > 0 && first == 0) {
            first = now_s();
            first_seq = seq;
            cpu_d0 = cpu_seconds(d.pid);
            cpu_n0 = cpu_seconds(nats.pid);
        }
        last = now_s();
        if (seq < pub)
            usleep(20000);
    }
    double cpu_d = cpu_seconds(d.pid) - cpu_d0, cpu_n = cpu_seconds(nats.pid) - cpu_n0;
    double el = last - first;
    double rate = el > 0 ? (double)(seq - first_seq) / el : 0;
    char *m = NULL;
    fw_t_http(d.http_port, "GET", "/metrics", NULL, NULL, &m);
    if (!m)
        m = strdup("");

    printf("daemon: %lld of %d messages committed; %.0f msg/s from the first commit to the last "
           "(%.2f s; %.2f s from start)\n",
           (long long)seq, pub, rate, el, last - t_start);
    printf("  cpu in that window: daemon %.2f s (%.0f%% of a core), nats-server %.2f s (%.0f%%)\n",
           cpu_d, el > 0 ? 100 * cpu_d / el : 0, cpu_n, el > 0 ? 100 * cpu_n / el : 0);
    double bc = metric(m, "fundwatch_batch_messages_count");
    double bs = metric(m, "fundwatch_batch_messages_sum");
    double cc = metric(m, "fundwatch_commit_seconds_count");
    double cs = metric(m, "fundwatch_commit_seconds_sum");
    printf("  batches: %.0f, mean %.1f messages (p50 <= %g, p99 <= %g); commit mean %.2f ms "
           "(p50 <= %g ms, p99 <= %g ms), %.1f%% of the window\n",
           bc, bc > 0 ? bs / bc : 0, hist_quantile(m, "fundwatch_batch_messages", 0.5),
           hist_quantile(m, "fundwatch_batch_messages", 0.99), cc > 0 ? cs / cc * 1000 : 0,
           hist_quantile(m, "fundwatch_commit_seconds", 0.5) * 1000,
           hist_quantile(m, "fundwatch_commit_seconds", 0.99) * 1000, el > 0 ? 100 * cs / el : 0);
    /* How long a check could have waited behind the intake: per batch, the
     * longest stretch the loop spent on one message or on commit + acks;
     * and the WAL fdatasync and the checkpoints, both off the loop
     * (store.synchronous = deferred). */
    double hc = metric(m, "fundwatch_loop_hold_seconds_count");
    double hs = metric(m, "fundwatch_loop_hold_seconds_sum");
    double sc = metric(m, "fundwatch_wal_sync_seconds_count");
    double ss = metric(m, "fundwatch_wal_sync_seconds_sum");
    double kc = metric(m, "fundwatch_checkpoint_seconds_count");
    double ks = metric(m, "fundwatch_checkpoint_seconds_sum");
    printf("  loop held per batch: mean %.2f ms (p50 <= %g ms, p99 <= %g ms); WAL fdatasync off "
           "the loop: %.0f, mean %.2f ms; checkpoints off the loop: %.0f, mean %.2f ms (p99 <= %g "
           "ms)\n",
           hc > 0 ? hs / hc * 1000 : 0, hist_quantile(m, "fundwatch_loop_hold_seconds", 0.5) * 1000,
           hist_quantile(m, "fundwatch_loop_hold_seconds", 0.99) * 1000, sc,
           sc > 0 ? ss / sc * 1000 : 0, kc, kc > 0 ? ks / kc * 1000 : 0,
           hist_quantile(m, "fundwatch_checkpoint_seconds", 0.99) * 1000);
    printf("  intake held back (a WAL past 64 MiB waiting for a whole checkpoint): %.0f holds, "
           "%.2f s\n",
           metric(m, "fundwatch_intake_wal_holds_total"),
           metric(m, "fundwatch_intake_held_seconds_total"));
    result("e2e_loop_hold_ms_mean", hc > 0 ? hs / hc * 1000 : 0, "ms");
    result("e2e_loop_hold_ms_p99", hist_quantile(m, "fundwatch_loop_hold_seconds", 0.99) * 1000,
           "ms");

    /* Rule time per rule, from the daemon's counters: the top five. */
    typedef struct {
        char id[64];
        double s, n;
    } cost;
    cost costs[128];
    int nc = 0;
    double rules_total = 0;
    const char *key = "fundwatch_rule_seconds_total{rule=\"";
    for (const char *p = strstr(m, key); p && nc < 128; p = strstr(p + 1, key)) {
        const char *id = p + strlen(key), *q = strchr(id, '"');
        if (!q || q - id >= 64)
            continue;
        snprintf(costs[nc].id, sizeof costs[nc].id, "%.*s", (int)(q - id), id);
        costs[nc].s = atof(strchr(q, ' ') + 1);
        char ek[160];
        snprintf(ek, sizeof ek, "fundwatch_rule_evaluations_total{rule=\"%s\"}", costs[nc].id);
        const char *e = strstr(m, ek);
        costs[nc].n = e ? atof(e + strlen(ek) + 1) : 0;
        rules_total += costs[nc].s;
        nc++;
    }
    for (int i = 0; i < nc; i++)
        for (int j = i + 1; j < nc; j++)
            if (costs[j].s > costs[i].s) {
                cost x = costs[i];
                costs[i] = costs[j];
                costs[j] = x;
            }
    printf("  time in rule calls: %.2f s (%.1f%% of the window); top:", rules_total,
           el > 0 ? 100 * rules_total / el : 0);
    for (int i = 0; i < nc && i < 5; i++)
        printf(" %s %.2f s (%.1f us/call);", costs[i].id, costs[i].s,
               costs[i].n > 0 ? costs[i].s / costs[i].n * 1e6 : 0);
    printf("\n");

    int64_t alerts = fw_t_sql_int(d.db, "SELECT count(*) FROM alerts");
    int64_t hits = fw_t_sql_int(d.db, "SELECT coalesce(sum(occurrences), 0) FROM alerts");
    int64_t dlq = fw_t_sql_int(d.db, "SELECT count(*) FROM dlq");
    printf("  alerts created: %lld (%lld hits); dead-lettered: %lld; by rule:", (long long)alerts,
           (long long)hits, (long long)dlq);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    if (sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT rule, count(*) FROM alerts GROUP BY rule ORDER BY 2 DESC, 1",
                           -1, &q, NULL) == SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW)
            printf(" %s %lld;", (const char *)sqlite3_column_text(q, 0),
                   (long long)sqlite3_column_int64(q, 1));
    sqlite3_finalize(q);
    sqlite3_close(db);
    printf("\n");

    result("e2e_msgs_per_s", rate, "msg/s");
    result("e2e_messages", (double)seq, "msgs");
    result("e2e_alerts", (double)alerts, "alerts");
    result("e2e_daemon_cpu_pct", el > 0 ? 100 * cpu_d / el : 0, "%core");
    result("e2e_nats_cpu_pct", el > 0 ? 100 * cpu_n / el : 0, "%core");
    result("e2e_batch_mean", bc > 0 ? bs / bc : 0, "msgs");
    result("e2e_commit_ms_mean", cc > 0 ? cs / cc * 1000 : 0, "ms");
    result("e2e_commit_pct", el > 0 ? 100 * cs / el : 0, "%window");
    result("e2e_rules_pct", el > 0 ? 100 * rules_total / el : 0, "%window");

    free(m);
    fw_t_daemon_kill(&d, SIGTERM);
    fw_t_nats_stop(&nats);
    city_msgs_free(&msgs);
    city_free(&c);
    if (!getenv("BENCH_KEEP"))
        fw_t_rmtree(tmp);
    else
        printf("kept %s\n", tmp);
    free(tmp);
    free(gen);
    return seq >= pub ? 0 : 1;
}
